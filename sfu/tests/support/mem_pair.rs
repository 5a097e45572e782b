//! Two str0m `Rtc`s connected entirely in memory on simulated time: the SFU's side of one
//! viewer (built by the caller, as `sfu/src/driver/session.rs` builds it) and a recv-only VP8
//! client. No sockets: each side's transmits are handed to the other by the caller, which
//! can drop, delay or inspect them. Shared by `sfu/tests/viewer_rtx.rs` and
//! `sfu/benches/str0m_floor.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// As the worker (`sfu/src/driver/worker.rs`) does on the real clock, where the pacer's
/// 1 µs has passed by the time it looks: timeouts this close are handled in the same drain
/// (the simulated clock advanced to them), at most the worker's `MAX_REPOLLS` times.
const IMMEDIATE: Duration = Duration::from_micros(100);

/// One side: its `Rtc`, when it next wants a timeout, what it sent, what it learnt.
pub struct Peer {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub next: Instant,
    pub out: Vec<Transmit>,
    pub connected: bool,
    pub video: Option<Mid>,
    /// Sequence numbers of the RTP packets this side received, when `record_rtp` is set.
    pub received: Vec<SeqNo>,
    pub record_rtp: bool,
}

impl Peer {
    pub fn new(rtc: Rtc, addr: SocketAddr, now: Instant) -> Self {
        let mut peer = Peer {
            rtc,
            addr,
            next: now,
            out: Vec::new(),
            connected: false,
            video: None,
            received: Vec::new(),
            record_rtp: false,
        };
        let candidate = Candidate::host(addr, "udp").expect("host candidate");
        peer.rtc.add_local_candidate(candidate);
        peer
    }

    /// `poll_output` until `Timeout`, keeping transmits in `out`.
    pub fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => {
                    self.next = t;
                    return;
                }
                Output::Transmit(t) => self.out.push(t),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaAdded(added)) if added.kind == MediaKind::Video => {
                    self.video = Some(added.mid);
                }
                Output::Event(Event::RtpPacket(packet)) if self.record_rtp => {
                    self.received.push(packet.seq_no);
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Feeds `datagrams` (the other side's transmits), draining after each one.
    pub fn receive(&mut self, datagrams: &mut Vec<Transmit>, now: Instant) {
        for t in datagrams.drain(..) {
            self.receive_one(&t, now);
        }
    }

    /// Feeds one datagram of the other side and drains.
    pub fn receive_one(&mut self, t: &Transmit, now: Instant) {
        let Ok(receive) = Receive::new(Protocol::Udp, t.source, self.addr, &t.contents) else {
            return;
        };
        // A datagram str0m refuses (e.g. after a restart) is just dropped.
        let _ = self.rtc.handle_input(Input::Receive(now, receive));
        self.drain();
    }

    /// Handles the timeouts str0m asks for at once, as the worker's drain does: its pacer
    /// takes new media at a timeout, and asks for another 1 µs after each packet it releases.
    pub fn settle(&mut self, now: Instant) {
        for _ in 0..sfu::driver::MAX_REPOLLS {
            if self.next > now + IMMEDIATE {
                return;
            }
            let at = self.next.max(now);
            self.rtc.handle_input(Input::Timeout(at)).expect("timeout");
            self.drain();
        }
    }

    /// Handles a due timeout and drains.
    pub fn tick(&mut self, now: Instant) {
        if self.next <= now {
            self.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            self.drain();
        }
    }
}

/// A connected pair: the SFU's side with the viewer's video send stream, and the client.
pub struct Connected {
    pub server: Peer,
    pub client: Peer,
    /// The simulated clock once both sides are connected.
    pub now: Instant,
    /// The viewer's video send stream.
    pub ssrc: Ssrc,
    /// VP8's payload type.
    pub pt: Pt,
}

/// Negotiates (the client offers recv-only video), then runs ICE and DTLS in memory.
pub fn connect(server: Rtc, mut now: Instant) -> Connected {
    let client_rtc = Rtc::builder().set_rtp_mode(true).build(now);
    let mut client = Peer::new(client_rtc, SocketAddr::from(([10, 0, 0, 1], 5000)), now);
    let mut server = Peer::new(server, SocketAddr::from(([10, 0, 0, 2], 7882)), now);
    let mut change = client.rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    let answer = server.rtc.sdp_api().accept_offer(offer).expect("answer");
    client
        .rtc
        .sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    for _ in 0..10_000 {
        client.drain();
        server.drain();
        server.receive(&mut client.out, now);
        client.receive(&mut server.out, now);
        if client.connected && server.connected && server.video.is_some() {
            break;
        }
        now = now.max(client.next.min(server.next));
        client.tick(now);
        server.tick(now);
    }
    assert!(client.connected && server.connected, "in-memory ICE + DTLS");
    let mid = server.video.expect("video media line");
    let ssrc = server
        .rtc
        .direct_api()
        .stream_tx_by_mid(mid, None)
        .map(|s| s.ssrc())
        .expect("a send stream for the viewer's video");
    let pt = server
        .rtc
        .codec_config()
        .find(|p| p.spec().codec == Codec::Vp8)
        .map(|p| p.pt())
        .expect("VP8 negotiated");
    Connected {
        server,
        client,
        now,
        ssrc,
        pt,
    }
}

/// Payload bytes of one forwarded video packet (a full-MTU browser packet).
pub const VIDEO_PAYLOAD: usize = 1200;

/// A VP8 payload of [`VIDEO_PAYLOAD`] bytes: a descriptor (S bit, picture id) in front of
/// filler, shared by every write as the SFU shares a forwarded payload.
pub fn vp8_payload() -> Arc<[u8]> {
    let mut payload = vec![0x5a_u8; VIDEO_PAYLOAD];
    payload[..4].copy_from_slice(&[0x90, 0x80, 0x80, 0x01]);
    payload.into()
}

/// Writes video packet `seq` (750 ticks apart, a marker on every fourth, nackable) on
/// `server`'s send stream `ssrc` at `now`, as the SFU writes a forwarded copy.
pub fn write_video(
    server: &mut Peer,
    ssrc: Ssrc,
    pt: Pt,
    seq: u64,
    now: Instant,
    payload: &Arc<[u8]>,
) {
    let write = RtpWrite::new(pt, seq.into(), (seq * 750) as u32, now, Arc::clone(payload))
        .marker(seq.is_multiple_of(4))
        .ext_vals(ExtensionValues::default())
        .nackable(true);
    let mut api = server.rtc.direct_api();
    api.stream_tx(&ssrc).expect("send stream").write_rtp(write);
}
