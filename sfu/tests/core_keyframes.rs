//! Scenario: keyframe requests (PLI/FIR) from many subscribers reach the publisher merged and
//! throttled: at most one per (track, layer) per 500 ms; a request inside the window is sent
//! when the window ends unless a keyframe came meanwhile; pending switches ask again.

mod core_util;

use std::time::Duration;

use core_util::{Harness, VideoPub};
use sfu::core::{Kind, LayerPref, RoomConfig, RoomEvent, Source};

const TRACK: u64 = 10;
const WINDOW: Duration = Duration::from_millis(500);

/// A single-layer publisher with `n` subscribers, all past their first keyframe and windows.
fn warmed(n: u64) -> (Harness, VideoPub) {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, TRACK, 1);
    p.publish(&mut h);
    for sub in 100..100 + n {
        h.room
            .subscribe(sub, 1, Source::Track(TRACK), Kind::Video, h.now);
    }
    p.stream(&mut h, 30, &[0]);
    p.answer_pli = false;
    (h, p)
}

#[test]
fn a_burst_from_many_subscribers_becomes_one_request_then_one_more() {
    let (mut h, _p) = warmed(50);
    let base = h.keyframe_requests(TRACK, 0);
    let merged_before = h.room.stats().keyframe_requests_merged;
    for sub in 100..150 {
        h.room.handle_keyframe_request(sub, 1, h.now);
        h.drain();
    }
    assert_eq!(h.keyframe_requests(TRACK, 0), base + 1, "one PLI for fifty");
    assert_eq!(h.room.stats().keyframe_requests_merged - merged_before, 49);
    assert_eq!(h.room.stats().keyframe_requests_received, 50);
    // The merged requests are remembered: one more exactly when the window ends.
    let t = h.now;
    assert!(h.room.poll_timeout().is_some_and(|d| d <= t + WINDOW));
    h.advance_to(t + WINDOW - Duration::from_millis(1));
    assert_eq!(h.keyframe_requests(TRACK, 0), base + 1);
    h.advance_to(t + WINDOW);
    assert_eq!(h.keyframe_requests(TRACK, 0), base + 2);
    h.advance(Duration::from_secs(3));
    assert_eq!(
        h.keyframe_requests(TRACK, 0),
        base + 2,
        "nothing more without new requests"
    );
    let ev = h
        .events
        .iter()
        .rev()
        .find(|e| matches!(e, RoomEvent::KeyframeRequest { .. }));
    assert_eq!(
        ev,
        Some(&RoomEvent::KeyframeRequest {
            peer: 1,
            track: TRACK,
            layer: 0,
            rid: None
        })
    );
}

#[test]
fn a_keyframe_inside_the_window_answers_the_merged_requests() {
    let (mut h, mut p) = warmed(5);
    let base = h.keyframe_requests(TRACK, 0);
    h.room.handle_keyframe_request(100, 1, h.now);
    h.advance(Duration::from_millis(100));
    h.room.handle_keyframe_request(101, 1, h.now);
    h.drain();
    assert_eq!(h.keyframe_requests(TRACK, 0), base + 1);
    // The encoder answers the first request.
    p.key_next[0] = true;
    p.stream(&mut h, 1, &[0]);
    h.advance(Duration::from_secs(2));
    assert_eq!(
        h.keyframe_requests(TRACK, 0),
        base + 1,
        "no redundant PLI after the keyframe"
    );
}

#[test]
fn continuous_requests_are_bounded_by_the_interval() {
    let (mut h, mut p) = warmed(10);
    let base = h.keyframe_requests(TRACK, 0);
    // Every subscriber asks every 10 ms for 10 s while the publisher keeps sending delta frames.
    for step in 0..1000u64 {
        h.room.handle_keyframe_request(100 + step % 10, 1, h.now);
        h.drain();
        if step % 3 == 0 {
            p.stream(&mut h, 1, &[0]);
        } else {
            h.advance(Duration::from_millis(10));
        }
    }
    let sent = h.keyframe_requests(TRACK, 0) - base;
    let elapsed = h.now - h.t0;
    let bound = (elapsed.as_millis() / WINDOW.as_millis()) as usize + 1;
    assert!(
        sent >= 10 && sent <= bound,
        "{sent} requests in {elapsed:?}"
    );
    assert_eq!(
        h.room
            .peer_stats(1)
            .map(|s| s.keyframe_requests_sent as usize),
        Some(h.keyframe_requests(TRACK, 0))
    );
}

#[test]
fn layers_are_throttled_independently_and_named_by_rid() {
    let mut h = Harness::new();
    let mut p = VideoPub::new(1, TRACK, 3);
    p.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.room
        .subscribe(101, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.room.set_preferred_layer(101, 1, LayerPref::Low, h.now);
    p.stream(&mut h, 30, &[0, 1, 2]);
    let (b0, b2) = (h.keyframe_requests(TRACK, 0), h.keyframe_requests(TRACK, 2));
    h.room.handle_keyframe_request(100, 1, h.now);
    h.room.handle_keyframe_request(101, 1, h.now);
    h.drain();
    assert_eq!(
        (h.keyframe_requests(TRACK, 0), h.keyframe_requests(TRACK, 2)),
        (b0 + 1, b2 + 1)
    );
    let rids: Vec<String> = h
        .events
        .iter()
        .rev()
        .take(2)
        .filter_map(|e| match e {
            RoomEvent::KeyframeRequest { rid, .. } => rid.map(|r| r.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(rids, vec!["q".to_string(), "f".to_string()]);
}

#[test]
fn a_switch_whose_keyframe_never_comes_asks_again_each_retry_interval() {
    let mut h = Harness::with_config(RoomConfig::default());
    let mut p = VideoPub::new(1, TRACK, 1);
    p.answer_pli = false;
    p.key_next[0] = false;
    p.publish(&mut h);
    h.room
        .subscribe(100, 1, Source::Track(TRACK), Kind::Video, h.now);
    h.drain();
    assert_eq!(h.keyframe_requests(TRACK, 0), 1);
    p.stream(&mut h, 91, &[0]); // ~3 s of delta frames only
    let n = h.keyframe_requests(TRACK, 0);
    assert!((3..=4).contains(&n), "{n} requests in 3 s with a 1 s retry");
    assert!(h.forwards_to(100, 1).is_empty());
    assert_eq!(h.room.stats().dropped.waiting_keyframe, 91);
}
