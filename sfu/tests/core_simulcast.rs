//! Scenario: a three-layer VP8 simulcast publisher (about 0.24 / 0.48 / 1.2 Mbit/s) and
//! subscribers whose preference and bandwidth estimate change. Layers switch only at keyframes
//! of the target layer, the current layer keeps flowing meanwhile, the numbering stays
//! continuous (sequence, timestamp, picture id, TL0PICIDX), and the choice does not flap.

mod core_util;

use core_util::{Harness, VideoPub, assert_continuous};
use sfu::core::{Forward, Kind, LayerPref, RoomEvent, Source, SourceLayer, parse_vp8_descriptor};

const PUB: u64 = 1;
const TRACK: u64 = 10;
const SUB: u64 = 100;
const ALL: [usize; 3] = [0, 1, 2];

fn setup() -> (Harness, VideoPub) {
    let mut h = Harness::new();
    let p = VideoPub::new(PUB, TRACK, 3);
    p.publish(&mut h);
    h.room
        .subscribe(SUB, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.drain();
    (h, p)
}

fn layers_forwarded(fwds: &[&Forward]) -> Vec<u8> {
    let mut v: Vec<u8> = fwds.iter().map(|f| f.source.layer).collect();
    v.dedup();
    v
}

fn last_layer(h: &Harness) -> Option<u8> {
    h.forwards_to(SUB, 1).last().map(|f| f.source.layer)
}

#[test]
fn estimate_moves_the_layer_only_at_keyframes_and_stays_continuous() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 60, &ALL);
    assert_eq!(
        layers_forwarded(&h.forwards_to(SUB, 1)),
        vec![2],
        "no estimate: top layer"
    );

    // Estimate drops: the middle layer is wanted and asked for ...
    let asked = h.keyframe_requests(TRACK, 1);
    p.answer_pli = false;
    h.room.set_estimate(SUB, 800_000, h.now);
    h.drain();
    assert_eq!(
        h.keyframe_requests(TRACK, 1),
        asked + 1,
        "a keyframe of the target layer is asked for"
    );
    let pending = h.room.subscription_state(SUB, 1);
    assert_eq!(
        pending,
        Some((
            Some(SourceLayer {
                track: TRACK,
                layer: 2
            }),
            Some(SourceLayer {
                track: TRACK,
                layer: 1
            })
        ))
    );
    // ... but until it comes, the current layer keeps flowing (delta frames of h are skipped).
    let before = h.forwards_to(SUB, 1).len();
    p.stream(&mut h, 10, &ALL);
    let during = h.forwards_to(SUB, 1);
    assert_eq!(during.len() - before, 10 * 5, "still the whole top layer");
    assert_eq!(last_layer(&h), Some(2));

    // The keyframe of h comes: switch.
    p.key_next[1] = true;
    p.stream(&mut h, 10, &ALL);
    assert_eq!(last_layer(&h), Some(1));
    let sw = h.switches_of(SUB);
    assert!(matches!(
        sw.last(),
        Some(RoomEvent::LayerSwitched {
            from: Some(SourceLayer { layer: 2, .. }),
            to: SourceLayer { layer: 1, .. },
            ..
        })
    ));

    // Estimate recovers: no upswitch during the cooldown, then back to the top at its keyframe.
    p.answer_pli = true;
    h.room.set_estimate(SUB, 5_000_000, h.now);
    p.stream(&mut h, 90, &ALL);
    assert_eq!(last_layer(&h), Some(1), "cooldown after a downswitch");
    p.stream(&mut h, 60, &ALL);
    assert_eq!(last_layer(&h), Some(2));

    let all = h.forwards_to(SUB, 1);
    assert_eq!(layers_forwarded(&all), vec![2, 1, 2]);
    assert_continuous(&all);
    // Every switch landed on a keyframe.
    for w in all.windows(2) {
        if w[0].source != w[1].source {
            assert!(w[1].keyframe, "switched on a delta frame");
            let gap = w[1].rtp_time - w[0].rtp_time;
            assert!(gap <= 3_000, "timestamp jump {gap} across a switch");
        }
    }
}

#[test]
fn preference_caps_the_layer() {
    let (mut h, mut p) = setup();
    h.room.set_preferred_layer(SUB, 1, LayerPref::Low, h.now);
    p.stream(&mut h, 30, &ALL);
    assert_eq!(layers_forwarded(&h.forwards_to(SUB, 1)), vec![0]);
    h.room.set_preferred_layer(SUB, 1, LayerPref::Mid, h.now);
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(1));
    h.room.set_preferred_layer(SUB, 1, LayerPref::High, h.now);
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    assert_eq!(layers_forwarded(&h.forwards_to(SUB, 1)), vec![0, 1, 2]);
    assert_continuous(&h.forwards_to(SUB, 1));
}

#[test]
fn an_estimate_hovering_near_a_layer_does_not_flap() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 60, &ALL);
    // Top layer needs ~1.45 Mbit/s in total; the estimate swings 1.15 .. 1.40 every 100 ms.
    for i in 0..200 {
        let est = if i % 2 == 0 { 1_150_000 } else { 1_400_000 };
        h.room.set_estimate(SUB, est, h.now);
        p.stream(&mut h, 3, &ALL);
    }
    let switches = h.switches_of(SUB).len();
    assert!(switches <= 2, "{switches} switches: flapping");
    assert_eq!(last_layer(&h), Some(1));
    assert_continuous(&h.forwards_to(SUB, 1));
}

#[test]
fn a_layer_that_stops_is_replaced_at_the_next_keyframe() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    // The publisher stops sending f (Chromium does this under congestion) while q and h go
    // on: f is taken as stopped once it lags them by 300 ms (`layer_stall`), not after the
    // full second of silence (`layer_timeout`) that a publisher pausing all layers gets.
    p.stream(&mut h, 8, &[0, 1]);
    assert_eq!(
        last_layer(&h),
        Some(2),
        "not before 300 ms behind its siblings"
    );
    p.stream(&mut h, 5, &[0, 1]);
    assert_eq!(
        last_layer(&h),
        Some(1),
        "within ~0.45 s (a tick and a keyframe)"
    );
    // And it comes back.
    p.key_next[2] = true;
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    assert_continuous(&h.forwards_to(SUB, 1));
}

#[test]
fn a_publisher_pausing_every_layer_keeps_its_viewers_on_their_layer() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    let asked = h.keyframe_requests(TRACK, 1);
    // 0.8 s without any packet (a stalled camera, a paused publisher): no layer lags another,
    // so nothing is "stopped" before `layer_timeout`; no switch is asked for.
    h.advance(std::time::Duration::from_millis(800));
    p.stream(&mut h, 30, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    assert_eq!(
        h.keyframe_requests(TRACK, 1),
        asked,
        "no switch to h asked for"
    );
    assert_continuous(&h.forwards_to(SUB, 1));
}

#[test]
fn two_subscribers_get_their_own_layers() {
    let (mut h, mut p) = setup();
    h.room
        .subscribe(200, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.room.set_estimate(200, 300_000, h.now);
    p.stream(&mut h, 60, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    let low = h.forwards_to(200, 1);
    assert_eq!(low.last().map(|f| f.source.layer), Some(0));
    assert_continuous(&low);
    assert!(h.room.is_consistent());
}

#[test]
fn vp8_picture_id_and_tl0picidx_continue_across_switches_and_wrap() {
    let (mut h, mut p) = setup();
    p.layers[2].pic = 0x7ff0; // f wraps its 15-bit picture id during the run
    p.layers[1].tl0 = 250;
    p.stream(&mut h, 30, &ALL);
    h.room.set_preferred_layer(SUB, 1, LayerPref::Mid, h.now);
    p.stream(&mut h, 30, &ALL);
    h.room.set_preferred_layer(SUB, 1, LayerPref::High, h.now);
    p.stream(&mut h, 30, &ALL);
    let all = h.forwards_to(SUB, 1);
    assert_eq!(layers_forwarded(&all), vec![2, 1, 2]);
    assert_continuous(&all);
    let firsts: Vec<&Forward> = all
        .iter()
        .copied()
        .filter(|f| parse_vp8_descriptor(&f.payload).is_some_and(|d| d.starts_frame()))
        .collect();
    for w in firsts.windows(2) {
        let tl0 = |f: &Forward| {
            f.vp8_rewrite
                .and_then(|r| r.tl0picidx)
                .or_else(|| parse_vp8_descriptor(&f.payload).and_then(|d| d.tl0picidx))
        };
        let (a, b) = (tl0(w[0]), tl0(w[1]));
        assert_eq!(
            b.zip(a).map(|(b, a)| b.wrapping_sub(a)),
            Some(1),
            "TL0PICIDX +1 per frame"
        );
    }
    assert!(
        all.iter().any(|f| f.vp8_rewrite.is_some()),
        "rewrites happened after the first switch"
    );
}

/// The bitrates reported for `SUB` to probe toward, in order.
fn wanted(h: &Harness) -> Vec<u64> {
    h.events
        .iter()
        .filter_map(|e| match e {
            RoomEvent::WantedBitrate { sub, bps } if *sub == SUB => Some(*bps),
            _ => None,
        })
        .collect()
}

/// What a subscriber wants, for its bandwidth estimator to probe toward, follows its
/// preference and what the publisher sends, never its estimate (a low estimate must not stop
/// the probing that would raise it): the top layer's rate × 1.25 for `Auto`, the low layer's
/// for `Low`. Steady meters are not re-reported; ending the subscription reports zero.
#[test]
fn the_wanted_bitrate_follows_the_preference_not_the_estimate() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 60, &ALL);
    // Top layer: 5 × 1000 B per frame at 30 fps = 1.2 Mbit/s, × 1.25.
    let top = *wanted(&h).last().expect("the wanted bitrate is reported");
    assert!((1_350_000..=1_650_000).contains(&top), "{top}");
    let reports = wanted(&h).len();

    h.room.set_estimate(SUB, 300_000, h.now);
    p.stream(&mut h, 60, &ALL);
    assert_eq!(last_layer(&h), Some(0), "the estimate caps the layer");
    assert_eq!(
        wanted(&h).len(),
        reports,
        "neither the estimate nor the meters' few-percent moves are reported: {:?}",
        wanted(&h)
    );

    h.room.set_preferred_layer(SUB, 1, LayerPref::Low, h.now);
    p.stream(&mut h, 30, &ALL);
    // Low layer: 1 × 1000 B per frame = 0.24 Mbit/s, × 1.25.
    let low = *wanted(&h).last().expect("reported");
    assert!(
        (270_000..=330_000).contains(&low),
        "{low}: {:?}",
        wanted(&h)
    );

    // A layer the publisher stops sending is not wanted any more: with `High` and the top
    // layer gone, the middle layer's rate (2 × 1000 B per frame = 0.48 Mbit/s).
    h.room.set_preferred_layer(SUB, 1, LayerPref::High, h.now);
    p.stream(&mut h, 90, &[0, 1]);
    let mid = *wanted(&h).last().expect("reported");
    assert!(
        (540_000..=660_000).contains(&mid),
        "{mid}: {:?}",
        wanted(&h)
    );

    h.room.unsubscribe(SUB, 1, h.now);
    h.drain();
    assert_eq!(wanted(&h).last(), Some(&0), "nothing to receive");
    assert_eq!(h.room.peer_stats(SUB).and_then(|s| s.wanted_bps), Some(0));
}

/// A switch waits for a keyframe whose first packet comes before the rest of its frame: one
/// that arrives after its frame's other packets (repaired by a retransmission, reordered)
/// starts nothing, since the waiting subscriber dropped those packets already. (A switch
/// there sent one keyframe fragment and then delta frames, a gap no NACK could repair.)
#[test]
fn a_keyframe_start_arriving_after_its_frame_is_no_switch_point() {
    let (mut h, mut p) = setup();
    p.stream(&mut h, 60, &ALL);
    assert_eq!(last_layer(&h), Some(2));
    p.answer_pli = false;
    h.room.set_preferred_layer(SUB, 1, LayerPref::Mid, h.now);
    h.drain();
    h.advance(std::time::Duration::from_millis(33));
    let key = p.frame(1, true, h.now);
    assert!(key[0].keyframe && key.len() > 1);
    for pkt in &key[1..] {
        h.send(pkt);
    }
    let delta = p.frame(1, false, h.now);
    for pkt in &delta {
        h.send(pkt);
    }
    h.send(&key[0]);
    h.drain();
    assert_eq!(last_layer(&h), Some(2), "still on the top layer");
    assert!(
        matches!(
            h.room.subscription_state(SUB, 1),
            Some((_, Some(SourceLayer { layer: 1, .. })))
        ),
        "still waiting for a keyframe of the middle layer"
    );
    // The next whole keyframe switches, and the stream is continuous across it.
    p.key_next[1] = true;
    p.stream(&mut h, 5, &ALL);
    assert_eq!(last_layer(&h), Some(1));
    let all = h.forwards_to(SUB, 1);
    assert_continuous(&all);
    for w in all.windows(2) {
        if w[0].source != w[1].source {
            assert!(w[1].keyframe, "switched on a delta frame");
        }
    }
}
