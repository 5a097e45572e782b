//! Scenario: simulcast videos (three layers: ~0.24, 0.48 and 1.2 Mbit/s) toward a subscriber
//! whose bandwidth estimate cannot carry even their lowest layers. The least important video
//! (a thumbnail) pauses first, the floor view drops to its lowest layer and goes on, the
//! audio is never touched; when the estimate recovers, the paused video resumes at a keyframe
//! of its lowest layer after the cooldown, its numbering continuous. Before, a simulcast
//! video's lowest layer was always sent whatever the estimate said.

mod core_util;

use std::time::Duration;

use core_util::{AudioPub, FRAME, Harness, VideoPub, assert_continuous};
use sfu::core::{Kind, LayerPref, Source};

const SUB: u64 = 100;
/// The floor view (preference High) and the thumbnail (preference Low).
const FLOOR_OUT: u64 = 1;
const THUMB_OUT: u64 = 2;
const AUDIO_OUT: u64 = 3;
const FLOOR_TRACK: u64 = 10;
const THUMB_TRACK: u64 = 20;
const AUDIO_TRACK: u64 = 30;

struct Scene {
    h: Harness,
    videos: Vec<VideoPub>,
    audio: AudioPub,
}

impl Scene {
    /// A subscriber of two three-layer videos (the floor, the thumbnail) and an audio track.
    /// The thumbnail is subscribed first: what pauses first is decided by preference, not by
    /// subscription order.
    fn new() -> Scene {
        Scene::with(&[
            (THUMB_OUT, THUMB_TRACK, 3, LayerPref::Low),
            (FLOOR_OUT, FLOOR_TRACK, 3, LayerPref::High),
        ])
    }

    /// A subscriber of one video per `(out track, track, layers, preference)`, in that order,
    /// each from its own publisher, and of an audio track.
    fn with(videos: &[(u64, u64, usize, LayerPref)]) -> Scene {
        let mut h = Harness::new();
        let audio = AudioPub::new(99, AUDIO_TRACK);
        audio.publish(&mut h);
        let mut pubs = Vec::new();
        for (i, &(out, track, layers, pref)) in videos.iter().enumerate() {
            let v = VideoPub::new(i as u64 + 1, track, layers);
            v.publish(&mut h);
            let now = h.now;
            h.room
                .subscribe(SUB, out, Source::Track(track), Kind::Video, now);
            h.room.set_preferred_layer(SUB, out, pref, now);
            pubs.push(v);
        }
        let now = h.now;
        h.room
            .subscribe(SUB, AUDIO_OUT, Source::Track(AUDIO_TRACK), Kind::Audio, now);
        h.drain();
        Scene {
            h,
            videos: pubs,
            audio,
        }
    }

    /// `frames` frames of every layer of both videos and one audio packet, one frame time
    /// apart; keyframes when asked for.
    fn run(&mut self, frames: usize) {
        for _ in 0..frames {
            self.h.advance(FRAME);
            for v in &mut self.videos {
                v.note_requests(&self.h);
                for layer in 0..v.layers.len() {
                    let key = std::mem::take(&mut v.key_next[layer]);
                    for pkt in v.frame(layer, key, self.h.now) {
                        self.h.send(&pkt);
                    }
                }
            }
            let pkt = self.audio.packet(30, self.h.now);
            self.h.send(&pkt);
        }
    }

    fn forwards(&self, out: u64) -> usize {
        self.h.forwards_to(SUB, out).len()
    }

    /// The layer of the last packet forwarded on `out`.
    fn last_layer(&self, out: u64) -> Option<u8> {
        self.h.forwards_to(SUB, out).last().map(|f| f.source.layer)
    }

    fn paused_for_bandwidth(&self, out: u64) -> usize {
        self.h.idle_for_bandwidth(SUB, out)
    }

    fn pauses(&self) -> u64 {
        self.h.bandwidth_pauses(SUB)
    }
}

#[test]
fn the_thumbnail_pauses_first_when_even_the_lowest_layers_do_not_fit_and_resumes_at_a_keyframe() {
    let mut s = Scene::new();
    s.h.room.set_estimate(SUB, 3_000_000, s.h.now);
    s.run(90);
    assert_eq!(
        s.last_layer(FLOOR_OUT),
        Some(2),
        "the floor view on its top layer"
    );
    assert_eq!(
        s.last_layer(THUMB_OUT),
        Some(0),
        "the thumbnail on its lowest"
    );

    // 0.3 Mbit/s: the floor's lowest layer (~0.24) fits, the thumbnail's lowest on top of it
    // does not. Tolerated for a second, then the thumbnail pauses; the floor drops to its
    // lowest layer at once and goes on.
    s.h.room.set_estimate(SUB, 300_000, s.h.now);
    let dipped = s.h.now;
    s.run(24);
    assert_eq!(s.pauses(), 0, "not within the first 0.8 s");
    s.run(9);
    assert!(s.h.now.duration_since(dipped) >= Duration::from_secs(1));
    assert_eq!(s.pauses(), 1, "{:?}", s.h.events);
    assert_eq!(
        s.paused_for_bandwidth(THUMB_OUT),
        1,
        "the thumbnail, told why"
    );
    assert_eq!(s.paused_for_bandwidth(FLOOR_OUT), 0, "not the floor");
    let (floor, thumb, audio) = (
        s.forwards(FLOOR_OUT),
        s.forwards(THUMB_OUT),
        s.forwards(AUDIO_OUT),
    );
    s.run(60);
    assert_eq!(s.forwards(THUMB_OUT), thumb, "nothing while paused");
    assert!(s.forwards(FLOOR_OUT) >= floor + 59, "the floor goes on");
    assert_eq!(s.last_layer(FLOOR_OUT), Some(0), "at its lowest layer");
    assert_eq!(s.forwards(AUDIO_OUT), audio + 60, "the audio goes on");

    // Room again: after the cooldown since the pause (4 s), a keyframe of the thumbnail's
    // lowest layer is asked for and it resumes with it, one continuous stream.
    let asked = s.h.keyframe_requests(THUMB_TRACK, 0);
    s.h.room.set_estimate(SUB, 3_000_000, s.h.now);
    s.run(90);
    assert!(
        s.h.keyframe_requests(THUMB_TRACK, 0) > asked,
        "resume asks for a keyframe"
    );
    let fwds = s.h.forwards_to(SUB, THUMB_OUT);
    assert!(
        fwds.len() > thumb + 20,
        "resumed: {} -> {}",
        thumb,
        fwds.len()
    );
    assert!(fwds[thumb].keyframe, "at a keyframe: {:?}", fwds[thumb]);
    assert_continuous(&fwds);
    assert_continuous(&s.h.forwards_to(SUB, FLOOR_OUT));
    assert_eq!(s.last_layer(FLOOR_OUT), Some(2), "the floor back on top");
    assert_eq!(s.pauses(), 1, "paused once");
}

#[test]
fn a_lone_simulcast_video_below_its_lowest_layer_pauses_and_a_dip_does_not() {
    let mut s = Scene::new();
    s.h.room.unsubscribe(SUB, THUMB_OUT, s.h.now);
    s.h.room.set_estimate(SUB, 3_000_000, s.h.now);
    s.run(60);
    // Dips under the lowest layer shorter than a second: nothing paused.
    for _ in 0..3 {
        s.h.room.set_estimate(SUB, 100_000, s.h.now);
        s.run(24);
        s.h.room.set_estimate(SUB, 3_000_000, s.h.now);
        s.run(6);
    }
    assert_eq!(s.pauses(), 0, "three 0.8 s dips");
    // A lasting one pauses the video; the audio goes on.
    s.h.room.set_estimate(SUB, 100_000, s.h.now);
    s.run(40);
    assert_eq!(s.pauses(), 1);
    let (video, audio) = (s.forwards(FLOOR_OUT), s.forwards(AUDIO_OUT));
    s.run(30);
    assert_eq!(s.forwards(FLOOR_OUT), video);
    assert_eq!(s.forwards(AUDIO_OUT), audio + 30);
}

#[test]
fn a_new_simulcast_subscription_waits_for_room_for_its_lowest_layer() {
    let mut s = Scene::new();
    s.h.room.unsubscribe(SUB, THUMB_OUT, s.h.now);
    // Too small from the start: never started, so never paused, and no keyframe requests
    // for a video that is not going to be sent.
    s.h.room.unsubscribe(SUB, FLOOR_OUT, s.h.now);
    s.h.room.set_estimate(SUB, 100_000, s.h.now);
    s.run(30);
    let asked: usize = (0..3).map(|l| s.h.keyframe_requests(FLOOR_TRACK, l)).sum();
    s.h.room.subscribe(
        SUB,
        FLOOR_OUT,
        Source::Track(FLOOR_TRACK),
        Kind::Video,
        s.h.now,
    );
    s.run(60);
    assert_eq!(s.forwards(FLOOR_OUT), 0, "not started");
    assert_eq!(s.pauses(), 0, "never forwarded, so never paused");
    let now_asked: usize = (0..3).map(|l| s.h.keyframe_requests(FLOOR_TRACK, l)).sum();
    assert_eq!(now_asked, asked, "no keyframe asked for");
    assert!(s.forwards(AUDIO_OUT) >= 89, "audio flows");
    // Room for its lowest layer × the upswitch headroom: started there.
    s.h.room.set_estimate(SUB, 400_000, s.h.now);
    s.run(30);
    assert!(s.forwards(FLOOR_OUT) > 20, "started once there is room");
    assert_eq!(s.last_layer(FLOOR_OUT), Some(0));
}

#[test]
fn bases_are_counted_once_and_a_single_layer_thumbnail_pauses_before_a_simulcast_floor() {
    // A single-layer thumbnail (~0.24 Mbit/s) subscribed before the simulcast floor view.
    const SINGLE_OUT: u64 = 4;
    const SINGLE_TRACK: u64 = 40;
    let mut s = Scene::with(&[
        (SINGLE_OUT, SINGLE_TRACK, 1, LayerPref::Low),
        (FLOOR_OUT, FLOOR_TRACK, 3, LayerPref::High),
    ]);
    // 1.85 Mbit/s: audio (~0.02) + the thumbnail (0.24) + the floor's lowest layer (0.24)
    // leave ~1.35, which carries the step to the top layer (+0.97, × 1.25 = 1.21). Counting
    // the floor's lowest layer twice would leave only ~1.1: the middle layer.
    s.h.room.set_estimate(SUB, 1_850_000, s.h.now);
    s.run(90);
    assert_eq!(
        s.last_layer(FLOOR_OUT),
        Some(2),
        "the floor on its top layer"
    );
    assert!(s.forwards(SINGLE_OUT) > 60, "the thumbnail flows");

    // 0.3 Mbit/s: room for one base beside the audio. The floor keeps its lowest layer, the
    // thumbnail, though subscribed first, pauses.
    s.h.room.set_estimate(SUB, 300_000, s.h.now);
    s.run(40);
    assert_eq!(s.paused_for_bandwidth(SINGLE_OUT), 1, "{:?}", s.h.events);
    assert_eq!(s.paused_for_bandwidth(FLOOR_OUT), 0);
    let (single, floor) = (s.forwards(SINGLE_OUT), s.forwards(FLOOR_OUT));
    s.run(30);
    assert_eq!(s.forwards(SINGLE_OUT), single, "paused");
    assert!(s.forwards(FLOOR_OUT) >= floor + 29, "the floor goes on");
    assert_eq!(s.last_layer(FLOOR_OUT), Some(0));
}
