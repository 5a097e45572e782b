//! Scenario: active speaker detection from synthetic RFC 6464 levels, and subscriptions that
//! follow the speaker or the floor: they switch at the new source's next keyframe (asking for
//! one) and the subscriber's stream stays continuous across publishers.

mod core_util;

use std::time::Duration;

use core_util::{AudioPub, Harness, VideoPub, assert_continuous};
use sfu::core::{IdleReason, Kind, RoomEvent, Source, SourceLayer};

const A: u64 = 1;
const B: u64 = 2;
const VIEWER: u64 = 100;

/// Two peers, each with audio (track 11 / 21) and single-layer video (12 / 22).
struct Meeting {
    h: Harness,
    audio: [AudioPub; 2],
    video: [VideoPub; 2],
    elapsed_ms: u64,
}

impl Meeting {
    fn new() -> Meeting {
        let mut h = Harness::new();
        let audio = [AudioPub::new(A, 11), AudioPub::new(B, 21)];
        let video = [VideoPub::new(A, 12, 1), VideoPub::new(B, 22, 1)];
        for a in &audio {
            a.publish(&mut h);
        }
        for v in &video {
            v.publish(&mut h);
        }
        Meeting {
            h,
            audio,
            video,
            elapsed_ms: 0,
        }
    }

    /// Run `ms` of media in 10 ms steps: audio every 20 ms at the given levels (`None`: DTX
    /// silence, no packet), video frames every 30 ms.
    fn run(&mut self, ms: u64, mut levels: impl FnMut(u64) -> [Option<u8>; 2]) {
        for _ in 0..ms / 10 {
            self.h.advance(Duration::from_millis(10));
            self.elapsed_ms += 10;
            if self.elapsed_ms.is_multiple_of(20) {
                let lv = levels(self.elapsed_ms);
                for (a, l) in self.audio.iter_mut().zip(lv) {
                    if let Some(l) = l {
                        let pkt = a.packet(l, self.h.now);
                        self.h.send(&pkt);
                    }
                }
            }
            if self.elapsed_ms.is_multiple_of(30) {
                for v in &mut self.video {
                    v.note_requests(&self.h);
                    let key = std::mem::take(&mut v.key_next[0]);
                    for pkt in v.frame(0, key, self.h.now) {
                        self.h.send(&pkt);
                    }
                }
            }
        }
    }

    fn speaker_events(&self) -> Vec<Option<u64>> {
        self.h
            .events
            .iter()
            .filter_map(|e| match e {
                RoomEvent::SpeakerChanged { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect()
    }
}

/// Deterministic noise in -range..=range.
fn jitter(seed: &mut u64, range: i16) -> i16 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % (2 * range as u64 + 1)) as i16 - range
}

#[test]
fn the_speaker_follows_the_louder_publisher() {
    let mut m = Meeting::new();
    m.run(3_000, |_| [Some(25), Some(65)]);
    assert_eq!(m.speaker_events(), vec![Some(A)]);
    m.run(3_000, |_| [Some(65), Some(25)]);
    assert_eq!(m.speaker_events(), vec![Some(A), Some(B)]);
    // Everyone silent (DTX: no packets at all): the last speaker keeps the role.
    m.run(3_000, |_| [None, None]);
    assert_eq!(m.speaker_events(), vec![Some(A), Some(B)]);
    assert_eq!(m.h.room.speaker(), Some(B));
    assert_eq!(m.h.room.stats().speaker_changes, 2);
}

#[test]
fn equal_noise_and_short_bursts_do_not_flap() {
    let mut m = Meeting::new();
    let mut seed = 0x1234_5678_9abc_def0u64;
    // One minute of equal background noise around -50 dBov, ±4 dB per packet.
    m.run(60_000, |_| {
        let a = (50 + jitter(&mut seed, 4)) as u8;
        let b = (50 + jitter(&mut seed, 4)) as u8;
        [Some(a), Some(b)]
    });
    assert!(m.speaker_events().len() <= 1, "{:?}", m.speaker_events());
    // A speaks; B coughs for 200 ms: no change.
    let mut m = Meeting::new();
    m.run(3_000, |_| [Some(30), Some(70)]);
    m.run(200, |_| [Some(30), Some(5)]);
    m.run(3_000, |_| [Some(30), Some(70)]);
    assert_eq!(m.speaker_events(), vec![Some(A)]);
}

#[test]
fn loudest_speaker_subscriptions_follow_with_a_continuous_stream() {
    let mut m = Meeting::new();
    m.h.room
        .subscribe(VIEWER, 1, Source::LoudestSpeaker, Kind::Video, m.h.now);
    m.h.room
        .subscribe(VIEWER, 2, Source::LoudestSpeaker, Kind::Audio, m.h.now);
    m.run(3_000, |_| [Some(25), Some(65)]);
    let video = m.h.forwards_to(VIEWER, 1);
    assert!(!video.is_empty());
    assert!(video.iter().all(|f| f.source.track == 12), "A's video");
    assert!(
        m.h.forwards_to(VIEWER, 2)
            .iter()
            .all(|f| f.source.track == 11)
    );

    let asked = m.h.keyframe_requests(22, 0);
    m.video[1].answer_pli = false;
    m.run(3_000, |_| [Some(65), Some(25)]);
    assert_eq!(m.h.room.speaker(), Some(B));
    // Asked for at the change, then again each second while B's encoder does not answer.
    let asked_now = m.h.keyframe_requests(22, 0) - asked;
    assert!((1..=3).contains(&asked_now), "{asked_now}");
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(12),
        "A until B's keyframe"
    );
    assert_eq!(
        m.h.forwards_to(VIEWER, 2).last().map(|f| f.source.track),
        Some(21),
        "audio switches at once"
    );

    m.video[1].answer_pli = true;
    m.video[1].key_next[0] = true;
    m.run(1_000, |_| [Some(65), Some(25)]);
    let video = m.h.forwards_to(VIEWER, 1);
    assert_eq!(video.last().map(|f| f.source.track), Some(22));
    assert_continuous(&video);
    let audio = m.h.forwards_to(VIEWER, 2);
    for w in audio.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1);
        assert!(w[1].rtp_time > w[0].rtp_time);
    }
    assert!(m.h.events.iter().any(|e| matches!(
        e,
        RoomEvent::LayerSwitched {
            sub: VIEWER,
            out_track: 1,
            from: Some(SourceLayer { track: 12, .. }),
            to: SourceLayer { track: 22, .. }
        }
    )));
    assert!(m.h.room.is_consistent());
}

#[test]
fn floor_subscriptions_follow_the_chair() {
    let mut m = Meeting::new();
    m.h.room
        .subscribe(VIEWER, 1, Source::Floor, Kind::Video, m.h.now);
    // The floor holder watching the floor never gets its own video back.
    m.h.room
        .subscribe(A, 1, Source::Floor, Kind::Video, m.h.now);
    m.h.room.set_floor(Some(A), m.h.now);
    m.run(1_000, |_| [None, None]);
    assert!(
        m.h.forwards_to(VIEWER, 1)
            .iter()
            .all(|f| f.source.track == 12)
    );
    assert!(!m.h.forwards_to(VIEWER, 1).is_empty());
    assert!(m.h.forwards_to(A, 1).is_empty());

    m.h.room.set_floor(Some(B), m.h.now);
    m.h.drain();
    assert!(m.h.keyframe_requests(22, 0) >= 1);
    m.run(1_000, |_| [None, None]);
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(22)
    );
    assert_continuous(&m.h.forwards_to(VIEWER, 1));
    assert_eq!(
        m.h.forwards_to(A, 1).last().map(|f| f.source.track),
        Some(22)
    );

    // Back to A: A keeps seeing B rather than itself.
    m.h.room.set_floor(Some(A), m.h.now);
    m.run(1_000, |_| [None, None]);
    assert_eq!(
        m.h.forwards_to(A, 1).last().map(|f| f.source.track),
        Some(22)
    );
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(12)
    );

    // The floor holder leaves: the floor is free, the viewer idles.
    m.h.room.remove_peer(A, m.h.now);
    m.h.drain();
    assert_eq!(m.h.room.floor(), None);
    assert!(m.h.events.iter().any(|e| matches!(
        e,
        RoomEvent::SubscriptionIdle {
            sub: VIEWER,
            out_track: 1,
            reason: IdleReason::NoSource,
        }
    )));
    let n = m.h.forwards_to(VIEWER, 1).len();
    m.video[1].key_next[0] = true;
    m.run(500, |_| [None, None]);
    assert_eq!(m.h.forwards_to(VIEWER, 1).len(), n, "nothing while idle");
    assert_eq!(m.h.room.subscription_state(VIEWER, 1), Some((None, None)));
    assert!(m.h.room.is_consistent());
}

#[test]
fn stage_shows_first_publisher_then_speaker_then_floor() {
    let mut m = Meeting::new();
    m.h.room
        .subscribe(VIEWER, 1, Source::Stage, Kind::Video, m.h.now);
    // Nobody spoke and no floor: the earliest published video (A's track 12).
    m.run(1_000, |_| [None, None]);
    assert!(
        !m.h.forwards_to(VIEWER, 1).is_empty(),
        "the stage is never empty while someone publishes"
    );
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(12)
    );
    // B speaks loudly: the stage follows the active speaker.
    m.run(4_000, |_| [Some(90), Some(20)]);
    assert_eq!(m.h.room.speaker(), Some(B));
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(22)
    );
    // The chair gives A the floor: the floor wins over the speaker.
    m.h.room.set_floor(Some(A), m.h.now);
    m.run(1_500, |_| [Some(90), Some(20)]);
    assert_eq!(
        m.h.forwards_to(VIEWER, 1).last().map(|f| f.source.track),
        Some(12)
    );
    assert_continuous(&m.h.forwards_to(VIEWER, 1));
    assert!(m.h.room.is_consistent());
}
