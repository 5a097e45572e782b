//! The floor str0m puts under per-viewer egress, whatever the driver around it: two str0m
//! `Rtc`s connected entirely in memory on simulated time (SDP offer/answer, ICE, DTLS), the
//! server side built like `sfu/src/driver/session.rs` `accept` (ICE-lite, RTP mode, stats
//! every second, Opus/VP8/VP9/H.264; viewer BWE on or off; video kept for retransmission as
//! `room.rs` keeps it), the client a recv-only VP8 peer (`sfu/tests/support/mem_pair.rs`).
//!
//! One iteration = one forwarded packet on the server side, as `pump_room` and the worker's
//! flush do it: `Input::Timeout` when str0m's timer is due, `write_rtp` of a 1200-byte VP8
//! payload (shared `Arc`, nackable) on the viewer's send stream, then `poll_output` until
//! `Timeout` (handling the timeouts str0m's pacer asks for at once, as the worker does). The
//! transmits are not sent anywhere; outside the timed part they are fed to the client every
//! [`CHUNK`] packets and the client's answers (receiver reports, TWCC feedback, NACKs, ICE
//! keep-alives) fed back, so the connection, the pacer and the estimate stay as in a real
//! session. The `egress_and_feedback_*` variants also time the server taking those answers:
//! str0m's whole per-viewer cost per forwarded packet, minus the publisher's side. Simulated time advances [`PACKET_GAP`] per packet (~120 packets/s, the
//! video of `sfu-load`'s publishers). Same-run baselines: one AES-GCM seal of 1200 bytes with
//! aws-lc (128-bit as `sfu-load`'s ceiling; 256-bit, the SRTP profile str0m prefers).
//!
//! Run: `cargo bench -p sfu --bench str0m_floor -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, Algorithm, LessSafeKey, Nonce, UnboundKey};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sfu::driver::SfuConfig;
use str0m::Rtc;
use str0m::media::Pt;
use str0m::rtp::Ssrc;

#[path = "../tests/support/mem_pair.rs"]
mod mem_pair;
use mem_pair::Peer;

/// Payload of one forwarded packet (as `sfu-load`'s video).
const PAYLOAD: usize = mem_pair::VIDEO_PAYLOAD;
/// Simulated time between forwarded packets.
const PACKET_GAP: Duration = Duration::from_micros(8_333);
/// Packets timed in a row before the client's side is caught up (untimed).
const CHUNK: u64 = 32;
/// The server built as `session::accept` builds a viewer's `Rtc` (the same configuration).
fn server_rtc(bwe: bool, now: Instant) -> Rtc {
    let bps = SfuConfig::default().initial_bwe_bps;
    sfu::driver::rtc_config(bwe.then_some(bps)).build(now)
}

/// A connected pair: the viewer's server-side `Rtc` with its video send stream, and the client.
struct Pair {
    server: Peer,
    client: Peer,
    now: Instant,
    ssrc: Ssrc,
    pt: Pt,
    seq: u64,
    payload: Arc<[u8]>,
    /// Datagrams that came out of the timed part.
    timed_out: usize,
}

impl Pair {
    fn connect(bwe: bool) -> Self {
        let now = Instant::now();
        let mem_pair::Connected {
            mut server,
            client,
            now,
            ssrc,
            pt,
        } = mem_pair::connect(server_rtc(bwe, now), now);
        let history = SfuConfig::default().rtx_history;
        let mut api = server.rtc.direct_api();
        let stream = api.stream_tx(&ssrc).expect("send stream");
        sfu::driver::keep_for_retransmission(stream, history);
        Pair {
            server,
            client,
            now,
            ssrc,
            pt,
            seq: 1,
            payload: mem_pair::vp8_payload(),
            timed_out: 0,
        }
    }

    /// One forwarded packet on the server side (the timed part).
    fn forward(&mut self) {
        self.now += PACKET_GAP;
        let before = self.server.out.len();
        self.server.tick(self.now);
        let (ssrc, pt, seq, now) = (self.ssrc, self.pt, self.seq, self.now);
        mem_pair::write_video(&mut self.server, ssrc, pt, seq, now, &self.payload);
        self.seq += 1;
        self.server.drain();
        self.server.settle(self.now);
        self.timed_out += self.server.out.len() - before;
    }

    /// Lets the client see what the server sent and answer it (untimed). Returns the number
    /// of datagrams the server had sent.
    fn client_side(&mut self) -> usize {
        let sent = self.server.out.len();
        self.client.receive(&mut self.server.out, self.now);
        self.client.tick(self.now);
        sent
    }

    /// The server takes the client's answers (RTCP receiver reports, TWCC feedback for the
    /// estimate, NACKs, STUN keep-alives).
    fn server_side(&mut self) {
        self.server.receive(&mut self.client.out, self.now);
    }
}

fn egress(c: &mut Criterion) {
    let mut group = c.benchmark_group("str0m_floor");
    group.throughput(Throughput::Elements(1));
    let variants = [
        ("egress_bwe_on", true, false),
        ("egress_bwe_off", false, false),
        ("egress_and_feedback_bwe_on", true, true),
        ("egress_and_feedback_bwe_off", false, true),
    ];
    for (name, bwe, feedback_timed) in variants {
        let mut pair = Pair::connect(bwe);
        let (mut packets, mut datagrams) = (0u64, 0usize);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    let start = Instant::now();
                    for _ in 0..n {
                        pair.forward();
                    }
                    timed += start.elapsed();
                    datagrams += pair.client_side();
                    let start = Instant::now();
                    pair.server_side();
                    if feedback_timed {
                        timed += start.elapsed();
                    }
                    left -= n;
                }
                packets += iters;
                timed
            });
        });
        assert!(pair.server.connected, "{name}: still connected");
        if packets > 0 {
            eprintln!(
                "{name}: {packets} packets written; datagrams out {:.3} per packet, {:.3} of them from the timed part (RTP, RTCP, probes)",
                datagrams as f64 / packets as f64,
                pair.timed_out as f64 / packets as f64
            );
        }
    }
    group.finish();
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("str0m_floor");
    group.throughput(Throughput::Elements(1));
    let algorithms: [(&str, &'static Algorithm); 2] = [
        ("aes128gcm_seal_1200", &AES_128_GCM),
        ("aes256gcm_seal_1200", &AES_256_GCM),
    ];
    for (name, algorithm) in algorithms {
        let key_bytes = vec![7u8; algorithm.key_len()];
        let key = LessSafeKey::new(UnboundKey::new(algorithm, &key_bytes).expect("key"));
        let mut buf = vec![0x5a_u8; PAYLOAD];
        let mut counter = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&[0x80_u8; 12]),
                        &mut buf,
                    )
                    .expect("seal");
                black_box(tag.as_ref()[0])
            });
        });
    }
    group.finish();
}

criterion_group!(benches, egress, seal);
criterion_main!(benches);
