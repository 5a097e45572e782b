//! Scenario: counters add up (room vs peers vs emitted events), queues are bounded with their
//! overflow counted, and the hot path stops growing its buffers after warm-up (the evidence
//! that forwarding does not allocate per packet: the workspace forbids the `unsafe` a counting
//! global allocator would need).

mod core_util;

use std::time::Duration;

use core_util::{Harness, VideoPub};
use sfu::core::{Kind, LayerPref, RoomConfig, RoomEvent, Source};

const TRACK: u64 = 10;

#[test]
fn room_and_peer_counters_agree_with_what_was_emitted() {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, TRACK, 3);
    p.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.room
        .subscribe(101, 1, Source::Track(TRACK), Kind::Video, h.now);
    p.stream(&mut h, 30, &[0, 1, 2]);
    h.room.set_preferred_layer(101, 1, LayerPref::Low, h.now);
    p.stream(&mut h, 30, &[0, 1, 2]);
    h.room.handle_keyframe_request(100, 1, h.now);
    h.room.handle_keyframe_request(100, 1, h.now);
    p.stream(&mut h, 30, &[0, 1, 2]);
    // A late joiner that never gets its keyframe (answers turned off).
    p.answer_pli = false;
    h.room
        .subscribe(102, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.room.set_preferred_layer(102, 1, LayerPref::Mid, h.now);
    p.stream(&mut h, 10, &[0, 1, 2]);

    let st = h.room.stats();
    let (publisher, a, b, c) = (
        h.room.peer_stats(1).expect("publisher"),
        h.room.peer_stats(100).expect("a"),
        h.room.peer_stats(101).expect("b"),
        h.room.peer_stats(102).expect("c"),
    );
    assert_eq!((st.peers, st.tracks, st.subscriptions), (4, 1, 3));
    assert_eq!(publisher.packets_in, st.packets_in);
    assert_eq!(publisher.packets_in, 100 * (1 + 2 + 5));
    assert_eq!(publisher.bytes_in, st.bytes_in);
    assert_eq!(
        a.forwarded_packets + b.forwarded_packets + c.forwarded_packets,
        st.forwarded_packets
    );
    assert_eq!(st.forwarded_packets, h.forwards.len() as u64);
    assert_eq!(
        st.forwarded_bytes,
        h.forwards
            .iter()
            .map(|f| f.payload.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(a.forwarded_packets, 100 * 5, "a stayed on the top layer");
    assert_eq!(c.forwarded_packets, 0);
    assert_eq!(c.dropped, 10 * 2, "c waited on h's delta frames");
    assert_eq!(st.dropped.waiting_keyframe, 20);
    let requests = h
        .events
        .iter()
        .filter(|e| matches!(e, RoomEvent::KeyframeRequest { .. }))
        .count() as u64;
    assert_eq!(st.keyframe_requests_sent, requests);
    assert_eq!(publisher.keyframe_requests_sent, requests);
    assert_eq!(st.keyframe_requests_received, 2);
    assert_eq!(a.keyframe_requests_received, 2);
    let switches = h
        .events
        .iter()
        .filter(|e| matches!(e, RoomEvent::LayerSwitched { .. }))
        .count() as u64;
    assert_eq!(st.layer_switches, switches);
    assert_eq!(
        a.layer_switches + b.layer_switches + c.layer_switches,
        switches
    );
    assert_eq!(b.layer_switches, 2, "first keyframe, then down to q");

    // Counters of a departed subscriber stay in the room totals.
    h.room.remove_peer(100, h.now);
    assert_eq!(h.room.stats().forwarded_packets, st.forwarded_packets);
    assert_eq!(h.room.stats().peers, 3);
}

#[test]
fn full_queues_drop_and_count_instead_of_growing() {
    let cfg = RoomConfig {
        max_pending_forwards: 10,
        max_pending_events: 3,
        ..RoomConfig::default()
    };
    let mut h = Harness::with_config(cfg);
    let mut p = VideoPub::new(1, TRACK, 1);
    p.publish(&mut h);
    for sub in 100..120 {
        h.room
            .subscribe(sub, 1, Source::Track(TRACK), Kind::Video, h.now);
    }
    // The driver does not drain: forwards and events pile up to their bounds only.
    let pkt = p.frame(0, true, h.now).remove(0);
    h.room.handle_rtp(&pkt, h.now);
    let st = h.room.stats();
    assert_eq!(st.forwarded_packets, 10);
    assert_eq!(st.dropped.backpressure, 10);
    assert!(st.dropped.events > 0);
    assert_eq!(h.room.drain_forwards().count(), 10);
    let mut events = 0;
    while h.room.poll_event().is_some() {
        events += 1;
    }
    assert_eq!(events, 3);
}

#[test]
fn buffers_do_not_grow_after_warmup() {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, TRACK, 3);
    p.publish(&mut h);
    for sub in 100..200 {
        h.room
            .subscribe(sub, 1, Source::Track(TRACK), Kind::Video, h.now);
        if sub % 3 == 0 {
            h.room.set_preferred_layer(sub, 1, LayerPref::Low, h.now);
        }
    }
    let mut out = Vec::with_capacity(256);
    let run = |h: &mut Harness, p: &mut VideoPub, out: &mut Vec<_>, frames: usize| {
        let mut forwarded = 0usize;
        for _ in 0..frames {
            h.advance(Duration::from_millis(33));
            p.note_requests(h);
            for l in 0..3 {
                let key = std::mem::take(&mut p.key_next[l]);
                for pkt in p.frame(l, key, h.now) {
                    h.room.handle_rtp(&pkt, h.now);
                    out.extend(h.room.drain_forwards());
                    forwarded += out.len();
                    out.clear();
                }
            }
            while let Some(e) = h.room.poll_event() {
                h.events.push(e);
            }
        }
        forwarded
    };
    run(&mut h, &mut p, &mut out, 100);
    let warm = h.room.buffer_capacities();
    let out_cap = out.capacity();
    // 1250 frames x 8 packets = 10k packets in, ~470k forwards out.
    let forwarded = run(&mut h, &mut p, &mut out, 1250);
    assert!(forwarded > 400_000, "{forwarded}");
    assert_eq!(
        h.room.buffer_capacities(),
        warm,
        "room buffers grew on the hot path"
    );
    assert_eq!(out.capacity(), out_cap, "driver-side buffer grew");
}
