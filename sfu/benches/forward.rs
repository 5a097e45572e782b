//! Criterion bench of the core forwarding path: one VP8 simulcast publisher, N subscribers
//! (1, 10, 100), every subscriber on the top layer after a switch (so sequence, timestamp and
//! VP8 picture-id rewriting are all active). One iteration = one incoming packet handled and
//! its N forwards drained and dropped, as the driver would after `write_rtp`; throughput is
//! reported in forwarded packets (elements = N).
//!
//! How the hot path avoids allocation (there is no counting allocator: the workspace forbids
//! `unsafe`): the track lookup is a hash probe, the listeners are a `Vec<u32>` kept in the layer,
//! each `Forward` holds an `Arc` clone of the payload and goes into a `VecDeque` that keeps its
//! capacity across drains, and switch bookkeeping uses a reused scratch `Vec`.
//! `tests/core_stats.rs::buffers_do_not_grow_after_warmup` checks the capacities stay put.
//!
//! Run: `cargo bench -p sfu --bench forward -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sfu::core::{
    Codec, Incoming, Kind, Layer, LayerPref, Room, RoomConfig, Source, parse_vp8_descriptor,
};

const TRACK: u64 = 1;

fn vp8_packet(layer: u8, seq: u64, pic: u16, key: bool, at: Instant) -> Incoming {
    let mut p = vec![0u8; 1100];
    p[0] = 0x90;
    p[1] = 0xe0;
    p[2] = 0x80 | (pic >> 8) as u8;
    p[3] = pic as u8;
    p[4] = pic as u8;
    p[5] = 0;
    p[6] = if key { 0 } else { 1 };
    let payload: Arc<[u8]> = Arc::from(p);
    Incoming {
        track: TRACK,
        layer,
        ssrc: 1000 + u32::from(layer),
        seq,
        rtp_time: u64::from(pic) * 3000,
        marker: true,
        keyframe: key,
        audio_level: None,
        vp8: parse_vp8_descriptor(&payload),
        payload,
        arrival: at,
    }
}

/// A room with `n` subscribers that went q -> f, so every mapping carries offsets.
fn setup(n: u64) -> (Room, Instant) {
    let mut now = Instant::now();
    let mut room = Room::new(RoomConfig::default());
    room.add_publisher_track(9, TRACK, Codec::Vp8, &Layer::simulcast_qhf(), now);
    for sub in 0..n {
        room.subscribe(100 + sub, 1, Source::Track(TRACK), Kind::Video, now);
        room.set_preferred_layer(100 + sub, 1, LayerPref::Low, now);
    }
    let mut pic = 10;
    for i in 0..30u64 {
        now += Duration::from_millis(33);
        for layer in 0..3u8 {
            let seq = 10_000 * u64::from(layer) + i;
            room.handle_rtp(
                &vp8_packet(layer, seq, pic + 1000 * u16::from(layer), i == 0, now),
                now,
            );
        }
        pic += 1;
        room.drain_forwards().for_each(drop);
    }
    for sub in 0..n {
        room.set_preferred_layer(100 + sub, 1, LayerPref::High, now);
    }
    now += Duration::from_millis(33);
    room.handle_rtp(&vp8_packet(2, 20_030, pic + 2000, true, now), now);
    room.drain_forwards().for_each(drop);
    while room.poll_event().is_some() {}
    (room, now)
}

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    for n in [1u64, 10, 100] {
        let (mut room, now) = setup(n);
        let mut pkt = vp8_packet(2, 20_031, 3_041, false, now);
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(
            BenchmarkId::new("vp8_simulcast_top_layer", n),
            &n,
            |b, _| {
                b.iter(|| {
                    pkt.seq += 1;
                    pkt.rtp_time += 300;
                    room.handle_rtp(black_box(&pkt), now);
                    for f in room.drain_forwards() {
                        black_box(&f);
                    }
                });
            },
        );
        let st = room.stats();
        assert!(
            st.forwarded_packets > 0 && st.dropped.total_packets() == 0,
            "{st:?}"
        );
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
