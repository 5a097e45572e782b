//! Scenario: one publisher, many subscribers, on simulated time. Fan-out shares the payload,
//! each subscriber gets its own continuous numbering, joins wait for a keyframe, and upstream
//! loss, reordering, duplicates and wraparound come out right.

mod core_util;

use std::sync::Arc;
use std::time::Duration;

use core_util::{AudioPub, Harness, VideoPub, assert_continuous};
use sfu::core::{Kind, RoomEvent, Source, SourceLayer};

const PUB: u64 = 1;
const TRACK: u64 = 10;

fn room_with_subs(n: u64) -> (Harness, VideoPub) {
    let mut h = Harness::new();
    let p = VideoPub::new(PUB, TRACK, 1);
    p.publish(&mut h);
    for sub in 100..100 + n {
        h.room
            .subscribe(sub, 1, Source::Track(TRACK), Kind::Video, h.now);
    }
    h.drain();
    (h, p)
}

#[test]
fn every_subscriber_gets_the_same_payload_arc() {
    let (mut h, mut p) = room_with_subs(20);
    let frame = p.frame(0, true, h.now);
    for pkt in &frame {
        h.send(pkt);
        let fwds: Vec<_> = h.forwards.drain(..).collect();
        assert_eq!(fwds.len(), 20);
        for f in &fwds {
            assert!(Arc::ptr_eq(&f.payload, &pkt.payload), "payload was copied");
            assert_eq!(
                f.source,
                SourceLayer {
                    track: TRACK,
                    layer: 0
                }
            );
        }
        let mut subs: Vec<_> = fwds.iter().map(|f| f.sub).collect();
        subs.sort_unstable();
        subs.dedup();
        assert_eq!(subs.len(), 20, "one copy per subscriber");
    }
    let st = h.room.stats();
    assert_eq!(st.forwarded_packets, 20 * frame.len() as u64);
    assert_eq!(st.forwarded_bytes, 20 * 1000 * frame.len() as u64);
    assert_eq!(st.packets_in, frame.len() as u64);
    assert!(h.room.is_consistent());
}

#[test]
fn each_subscriber_sees_one_continuous_stream_of_its_own() {
    let (mut h, mut p) = room_with_subs(3);
    p.stream(&mut h, 90, &[0]);
    let a = h.forwards_to(100, 1);
    let b = h.forwards_to(101, 1);
    assert_eq!(a.len(), 90);
    assert_continuous(&a);
    assert_continuous(&b);
    // Numbering starts below 2^15 (no SRTP rollover counter to signal) and differs per stream.
    assert!(a[0].seq < 0x8000 && b[0].seq < 0x8000);
    assert_ne!(a[0].seq, b[0].seq);
    // Timestamps keep the source spacing.
    assert_eq!(a[1].rtp_time - a[0].rtp_time, 3_000);
}

#[test]
fn a_late_joiner_waits_for_a_keyframe_and_asks_for_one() {
    let (mut h, mut p) = room_with_subs(1);
    p.answer_pli = false;
    p.stream(&mut h, 30, &[0]);
    let before = h.keyframe_requests(TRACK, 0);
    h.room
        .subscribe(200, 7, Source::Track(TRACK), Kind::Video, h.now);
    h.drain();
    assert_eq!(
        h.keyframe_requests(TRACK, 0),
        before + 1,
        "join asks for a keyframe"
    );
    p.stream(&mut h, 10, &[0]);
    assert!(
        h.forwards_to(200, 7).is_empty(),
        "nothing before the keyframe"
    );
    assert_eq!(h.room.stats().dropped.waiting_keyframe, 10);
    assert_eq!(h.room.peer_stats(200).map(|s| s.dropped), Some(10));
    p.answer_pli = true;
    p.key_next[0] = true;
    p.stream(&mut h, 10, &[0]);
    let got = h.forwards_to(200, 7);
    assert_eq!(got.len(), 10);
    assert!(
        got[0].keyframe,
        "the first packet forwarded starts a keyframe"
    );
    assert_continuous(&got);
    assert!(h.events.iter().any(|e| matches!(
        e,
        RoomEvent::LayerSwitched {
            sub: 200,
            out_track: 7,
            from: None,
            ..
        }
    )));
}

#[test]
fn upstream_loss_stays_visible_reordering_is_mapped_duplicates_dropped() {
    let (mut h, mut p) = room_with_subs(1);
    // One frame of 8 packets: 5 go through, index 3 is lost, 5 arrives before 4, 6 is duplicated.
    p.layers[0].packets_per_frame = 8;
    let pkts = p.frame(0, true, h.now);
    for i in [0usize, 1, 2, 5, 4, 6, 6, 7] {
        h.send(&pkts[i]);
    }
    let out: Vec<u64> = h.forwards_to(100, 1).iter().map(|f| f.seq).collect();
    let seqs: Vec<u64> = out.iter().map(|s| s - out[0]).collect();
    assert_eq!(
        seqs,
        vec![0, 1, 2, 5, 4, 6, 7],
        "gap of one kept, late 4 mapped, duplicate 6 dropped"
    );
    let st = h.room.stats();
    assert_eq!(st.dropped.duplicate, 1);
    // The lost packet retransmitted far too late is dropped, not mis-mapped.
    for _ in 0..3 {
        p.layers[0].packets_per_frame = 60;
        let burst = p.frame(0, false, h.now);
        for pkt in &burst {
            h.send(pkt);
        }
    }
    h.send(&pkts[3]);
    assert_eq!(h.room.stats().dropped.too_old, 1);
}

#[test]
fn sequence_and_timestamp_wraparound() {
    let (mut h, mut p) = room_with_subs(1);
    p.layers[0].seq = 65_530; // extended seq crosses 65535 -> 65536
    p.layers[0].ts = u64::from(u32::MAX) - 4_000; // a 32-bit driver value that wraps
    p.stream(&mut h, 10, &[0]);
    // Emulate a driver passing 32-bit timestamps: wrap them by hand from here on.
    for _ in 0..10 {
        h.advance(Duration::from_millis(33));
        let mut pkts = p.frame(0, false, h.now);
        for pkt in &mut pkts {
            pkt.rtp_time &= 0xffff_ffff;
            h.send(pkt);
        }
    }
    let got = h.forwards_to(100, 1);
    assert_eq!(got.len(), 20);
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert_eq!(
            (w[1].rtp_time as u32).wrapping_sub(w[0].rtp_time as u32),
            3_000
        );
    }
}

#[test]
fn an_encoder_restart_rebases_at_its_keyframe() {
    let (mut h, mut p) = room_with_subs(1);
    p.stream(&mut h, 5, &[0]);
    // A packet of the old encoder that will arrive late, after the restart.
    let straggler = p.frame(0, false, h.now);
    // New SSRC with unrelated numbering, first a delta frame, then (after the PLI) a keyframe.
    p.layers[0].ssrc = 999;
    p.layers[0].seq = 40_000;
    p.layers[0].ts = 123;
    p.key_next[0] = false;
    let before = h.keyframe_requests(TRACK, 0);
    p.stream(&mut h, 30, &[0]);
    assert!(h.room.stats().dropped.ssrc_changed >= 1);
    assert!(
        h.keyframe_requests(TRACK, 0) > before,
        "restart asks for a keyframe"
    );
    let too_old = h.room.stats().dropped.too_old;
    h.send(&straggler[0]);
    assert_eq!(
        h.room.stats().dropped.too_old,
        too_old + 1,
        "straggler dropped"
    );
    p.stream(&mut h, 3, &[0]);
    let got = h.forwards_to(100, 1);
    assert!(got.len() >= 9);
    assert_continuous(&got);
}

/// Audio from an encoder that restarted (SSRC A → B): a late packet of A long after the
/// restart (here after 200 of B's, beyond the reorder window) is a straggler to drop while
/// B is sending, not a restart back to A. (It used to take the mapping back, retiring B:
/// every B packet after it was dropped as the retired SSRC's, for good.)
#[test]
fn a_late_packet_of_a_replaced_audio_ssrc_does_not_silence_the_new_one() {
    let mut h = Harness::new();
    let mut audio = AudioPub::new(1, 20);
    audio.publish(&mut h);
    h.room
        .subscribe(100, 2, Source::Track(20), Kind::Audio, h.now);
    let send = |h: &mut Harness, audio: &mut AudioPub, ssrc: u32| {
        h.advance(Duration::from_millis(20));
        let mut pkt = audio.packet(30, h.now);
        pkt.ssrc = ssrc;
        h.send(&pkt);
    };
    for _ in 0..10 {
        send(&mut h, &mut audio, 20);
    }
    let straggler_seq = audio.seq;
    audio.seq = 30_000;
    for _ in 0..200 {
        send(&mut h, &mut audio, 21);
    }
    let before = h.forwards_to(100, 2).len();
    // The straggler: the old SSRC and numbering, arriving now.
    let (seq, ts) = (audio.seq, audio.ts);
    audio.seq = straggler_seq;
    send(&mut h, &mut audio, 20);
    (audio.seq, audio.ts) = (seq, ts);
    for _ in 0..50 {
        send(&mut h, &mut audio, 21);
    }
    let seqs_continue = |h: &Harness| {
        let got = h.forwards_to(100, 2);
        got.windows(2).all(|w| w[1].seq == w[0].seq + 1)
    };
    let got = h.forwards_to(100, 2);
    assert_eq!(
        got.len(),
        before + 50,
        "every packet of the live SSRC after the straggler"
    );
    assert!(seqs_continue(&h));
    // The new SSRC falls silent for longer than RETIRED_HOLD and the old one comes back:
    // that is a restart, followed.
    h.advance(Duration::from_secs(2));
    for _ in 0..10 {
        send(&mut h, &mut audio, 20);
    }
    assert_eq!(h.forwards_to(100, 2).len(), before + 60);
    assert!(seqs_continue(&h));
}

/// A subscription that ends and starts again on the same out track (the peer still has that
/// stream) continues its numbering and timestamps: numbers going back would be dropped by the
/// receiver as duplicates.
#[test]
fn subscribing_again_on_an_out_track_continues_its_stream() {
    let (mut h, mut p) = room_with_subs(2);
    p.stream(&mut h, 30, &[0]);
    h.room.unsubscribe(100, 1, h.now);
    p.stream(&mut h, 30, &[0]);
    let before = h.forwards_to(100, 1).len();
    assert_eq!(before, 30, "nothing forwarded while unsubscribed");
    h.room
        .subscribe(100, 1, Source::Track(TRACK), Kind::Video, h.now);
    p.stream(&mut h, 30, &[0]);
    let again = h.forwards_to(100, 1);
    assert!(again.len() > before + 20, "{} forwards", again.len());
    assert_continuous(&again);
    // The other subscriber's stream was never interrupted.
    assert_eq!(h.forwards_to(101, 1).len(), 90);
    assert!(h.room.is_consistent());
}
