//! Scenario: bad and hostile input. Unknown ids, impossible layers, out-of-order and duplicate
//! packets, time going backwards, tracks replaced or removed mid-stream, and long random
//! sequences of API calls: the room never panics and its forwarding table stays consistent.

mod core_util;

use std::sync::Arc;
use std::time::Duration;

use core_util::{Harness, VideoPub, assert_continuous};
use proptest::prelude::*;
use sfu::core::{
    AudioLevel, Codec, Incoming, Kind, Layer, LayerPref, Room, RoomConfig, Source, is_keyframe,
    parse_vp8_descriptor,
};

#[test]
fn unknown_ids_are_counted_and_ignored() {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, 10, 1);
    let pkts = p.frame(0, true, h.now);
    h.send(&pkts[0]); // track not published yet
    p.publish(&mut h);
    let mut wrong_layer = pkts[0].clone();
    wrong_layer.layer = 7;
    h.send(&wrong_layer);
    assert_eq!(h.room.stats().dropped.unknown_track, 2);
    h.room.handle_keyframe_request(99, 99, h.now);
    h.room.set_preferred_layer(99, 1, LayerPref::Low, h.now);
    h.room.unsubscribe(99, 1, h.now);
    h.room.remove_peer(99, h.now);
    h.room.remove_track(99, h.now);
    h.room.set_floor(Some(12345), h.now);
    h.drain();
    assert_eq!(h.room.peer_stats(99), None);
    assert!(h.forwards.is_empty());
    assert!(h.room.is_consistent());
}

#[test]
fn subscribing_before_the_track_exists_starts_when_it_is_published() {
    let mut h = Harness::new();
    h.room
        .subscribe(100, 1, Source::Track(10), Kind::Video, h.now);
    let mut p = VideoPub::new(1, 10, 3);
    p.stream(&mut h, 3, &[0, 1, 2]);
    assert!(h.forwards.is_empty());
    p.publish(&mut h);
    p.key_next = vec![true; 3];
    p.stream(&mut h, 30, &[0, 1, 2]);
    assert!(!h.forwards_to(100, 1).is_empty());
    assert_continuous(&h.forwards_to(100, 1));
}

#[test]
fn time_going_backwards_does_not_panic() {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, 10, 3);
    p.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(10), Kind::Video, h.now);
    p.stream(&mut h, 30, &[0, 1, 2]);
    let past = h.t0;
    let pkts = p.frame(1, true, past);
    for pkt in &pkts {
        h.room.handle_rtp(pkt, past);
    }
    h.room.handle_timeout(past);
    h.room.set_estimate(100, 1, past);
    h.room.handle_keyframe_request(100, 1, past);
    h.drain();
    assert!(h.room.is_consistent());
}

#[test]
fn republishing_a_track_and_resubscribing_keep_the_stream_continuous() {
    let mut h = Harness::new();
    let mut a = VideoPub::new(1, 10, 1);
    a.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(10), Kind::Video, h.now);
    a.stream(&mut h, 10, &[0]);
    // Same track id published again (renegotiation): new SSRC and numbering.
    let mut a2 = VideoPub::new(1, 10, 1);
    a2.layers[0].ssrc = 4242;
    a2.layers[0].seq = 9;
    a2.publish(&mut h);
    a2.stream(&mut h, 10, &[0]);
    // Re-subscribe the same out track to another publisher.
    let mut b = VideoPub::new(2, 20, 1);
    b.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(20), Kind::Video, h.now);
    b.stream(&mut h, 10, &[0]);
    let got = h.forwards_to(100, 1);
    assert_eq!(got.len(), 30);
    assert_continuous(&got);
    assert_eq!(h.room.peer_stats(100).map(|s| s.subscriptions), Some(1));
    assert!(h.room.is_consistent());
}

#[derive(Debug, Clone)]
enum Op {
    Publish {
        peer: u64,
        track: u64,
        codec: u8,
        layers: u8,
    },
    RemoveTrack(u64),
    RemovePeer(u64),
    Subscribe {
        sub: u64,
        out: u64,
        source: u8,
        track: u64,
    },
    Unsubscribe {
        sub: u64,
        out: u64,
    },
    Pref {
        sub: u64,
        out: u64,
        pref: u8,
    },
    Estimate {
        sub: u64,
        bps: u64,
    },
    Floor(Option<u64>),
    Pli {
        sub: u64,
        out: u64,
    },
    Rtp {
        track: u64,
        layer: u8,
        seq: u64,
        ts: u64,
        level: Option<u8>,
        payload: Vec<u8>,
    },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u64..6;
    prop_oneof![
        (id.clone(), id.clone(), 0u8..4, 0u8..6).prop_map(|(peer, track, codec, layers)| {
            Op::Publish {
                peer,
                track,
                codec,
                layers,
            }
        }),
        id.clone().prop_map(Op::RemoveTrack),
        id.clone().prop_map(Op::RemovePeer),
        (id.clone(), 0u64..3, 0u8..3, id.clone()).prop_map(|(sub, out, source, track)| {
            Op::Subscribe {
                sub,
                out,
                source,
                track,
            }
        }),
        (id.clone(), 0u64..3).prop_map(|(sub, out)| Op::Unsubscribe { sub, out }),
        (id.clone(), 0u64..3, 0u8..4).prop_map(|(sub, out, pref)| Op::Pref { sub, out, pref }),
        (id.clone(), any::<u64>()).prop_map(|(sub, bps)| Op::Estimate { sub, bps }),
        proptest::option::of(id.clone()).prop_map(Op::Floor),
        (id.clone(), 0u64..3).prop_map(|(sub, out)| Op::Pli { sub, out }),
        (
            id,
            0u8..5,
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(any::<u8>()),
            proptest::collection::vec(any::<u8>(), 0..12)
        )
            .prop_map(|(track, layer, seq, ts, level, payload)| Op::Rtp {
                track,
                layer,
                seq,
                ts,
                level,
                payload
            }),
        (0u64..1500).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_api_sequences_never_panic(ops in proptest::collection::vec(op(), 1..300)) {
        let mut room = Room::new(RoomConfig { max_pending_forwards: 64, max_pending_events: 16, ..RoomConfig::default() });
        let mut now = std::time::Instant::now();
        let codecs = [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264];
        let prefs = [LayerPref::Low, LayerPref::Mid, LayerPref::High, LayerPref::Auto];
        let mut seqs = [0u64; 6];
        for op in ops {
            match op {
                Op::Publish { peer, track, codec, layers } => {
                    let ls: Vec<Layer> = (0..layers).map(|i| Layer::rid(&i.to_string())).collect();
                    room.add_publisher_track(peer, track, codecs[usize::from(codec)], &ls, now);
                }
                Op::RemoveTrack(t) => room.remove_track(t, now),
                Op::RemovePeer(p) => room.remove_peer(p, now),
                Op::Subscribe { sub, out, source, track } => {
                    let src = [Source::Track(track), Source::Floor, Source::LoudestSpeaker][usize::from(source)];
                    let kind = if out == 0 { Kind::Audio } else { Kind::Video };
                    room.subscribe(sub, out, src, kind, now);
                }
                Op::Unsubscribe { sub, out } => room.unsubscribe(sub, out, now),
                Op::Pref { sub, out, pref } => room.set_preferred_layer(sub, out, prefs[usize::from(pref)], now),
                Op::Estimate { sub, bps } => room.set_estimate(sub, bps, now),
                Op::Floor(p) => room.set_floor(p, now),
                Op::Pli { sub, out } => room.handle_keyframe_request(sub, out, now),
                Op::Rtp { track, layer, seq, ts, level, payload } => {
                    // Mostly near the previous sequence number, sometimes anywhere.
                    let s = &mut seqs[track as usize];
                    *s = if seq % 4 == 0 { seq } else { s.wrapping_add(seq % 300).wrapping_sub(100) };
                    let payload: Arc<[u8]> = Arc::from(payload);
                    let pkt = Incoming {
                        track,
                        layer,
                        ssrc: (track as u32) << 4 | u32::from(layer),
                        seq: *s,
                        rtp_time: ts,
                        marker: seq % 2 == 0,
                        keyframe: is_keyframe(Codec::Vp8, &payload) || seq % 5 == 0,
                        audio_level: level.map(|l| AudioLevel { voice: l % 2 == 0, level: l }),
                        vp8: parse_vp8_descriptor(&payload),
                        payload,
                        arrival: now,
                    };
                    room.handle_rtp(&pkt, now);
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    while let Some(t) = room.poll_timeout() {
                        if t > now { break; }
                        room.handle_timeout(t);
                    }
                }
            }
            prop_assert!(room.is_consistent());
            if seqs[0] % 3 == 0 {
                room.drain_forwards().for_each(drop);
                while room.poll_event().is_some() {}
            }
        }
        let st = room.stats();
        prop_assert!(st.forwarded_packets <= st.packets_in.saturating_mul(64));
    }
}
