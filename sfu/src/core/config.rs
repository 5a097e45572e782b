//! Tunables of a [`Room`](super::Room), each default with its reason.
//!
//! Values are clamped to sane ranges by [`RoomConfig::sanitized`] (the room calls it), so a bad
//! config degrades behaviour but can never make the core divide by zero or spin.

use std::time::Duration;

/// Per-room forwarding tunables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomConfig {
    /// At most one keyframe request per (track, layer) is sent to a publisher per interval;
    /// requests inside the window are merged and sent when it ends unless a keyframe came.
    /// Default 500 ms: between Jitsi's 200 ms floor and mediasoup's 1 s, short enough that a
    /// layer switch waits at most about half a second longer than the encoder needs.
    pub keyframe_request_interval: Duration,
    /// A pending switch that saw no keyframe for this long asks again (a PLI can be lost).
    /// Default 1 s: two throttle windows.
    pub keyframe_retry: Duration,
    /// A layer with no packet for this long counts as stopped and is not chosen; subscriptions
    /// on it move to what is still sent. Default 1 s: Chromium pauses layers for bandwidth with
    /// no in-band signal, and at 30 fps a live layer sends several packets every 100 ms.
    pub layer_timeout: Duration,
    /// A layer whose last packet is this much older than the track's latest packet on another
    /// layer counts as stopped too: simulcast layers encode the same captured frames, so a
    /// live layer never lags its siblings by this much, while Chromium suspends its top layer
    /// under bandwidth pressure without a word. Default 300 ms (9 frames at 30 fps): a viewer
    /// of the suspended layer moves to one still sent within ~0.3 s plus a keyframe, not 1 s.
    pub layer_stall: Duration,
    /// To go up a layer its bitrate must fit the remaining estimate times this factor; staying
    /// needs only a factor of 1. Default 1.25: the hysteresis band that stops flapping when the
    /// estimate hovers around a layer's rate (LiveKit and mediasoup use 10–30 % headroom).
    pub layer_up_headroom: f64,
    /// After a bandwidth-driven downswitch, no upswitch of that subscription for this long.
    /// Default 4 s: long enough for the estimate to settle after congestion.
    pub layer_up_cooldown: Duration,
    /// A video whose base (its one layer, or its lowest simulcast layer) the subscriber's
    /// estimate cannot carry is paused only once that has lasted this long. Default 1 s: an
    /// estimate dips for a moment after a delay spike or a probe (seen here on a busy machine:
    /// two 4 s pauses in a 10 s run without it), and the pacer holds back at most this much of
    /// the excess meanwhile.
    pub bandwidth_pause_after: Duration,
    /// Period of the housekeeping tick: layer allocation, speaker evaluation, keyframe retries.
    /// Default 100 ms: the same grain as the bitrate meter's buckets.
    pub tick: Duration,
    /// Time constant of the audio-level exponential smoothing. Default 1 s: a word or two of
    /// speech, so single noises do not move the speaker.
    pub speaker_smoothing: Duration,
    /// A new speaker holds the role at least this long. Default 1 s.
    pub speaker_min_hold: Duration,
    /// A challenger must be this much louder (smoothed, in dB) than the current speaker.
    /// Default 6 dB: twice the amplitude; equal background noise never crosses it.
    pub speaker_margin_db: f32,
    /// Smoothed levels quieter than this (in -dBov) never make someone the speaker. Default 70:
    /// typical speech is -20 to -50 dBov, room noise -60 and below.
    pub speaker_threshold_dbov: u8,
    /// Bound on forwards waiting to be drained; past it new forwards are dropped and counted.
    /// Default 65 536: far more than one packet's fan-out; only a driver that never drains hits it.
    pub max_pending_forwards: usize,
    /// Bound on events waiting to be drained; past it events are dropped and counted.
    /// Default 4 096.
    pub max_pending_events: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            keyframe_request_interval: Duration::from_millis(500),
            keyframe_retry: Duration::from_secs(1),
            layer_timeout: Duration::from_secs(1),
            layer_stall: Duration::from_millis(300),
            layer_up_headroom: 1.25,
            layer_up_cooldown: Duration::from_secs(4),
            bandwidth_pause_after: Duration::from_secs(1),
            tick: Duration::from_millis(100),
            speaker_smoothing: Duration::from_secs(1),
            speaker_min_hold: Duration::from_secs(1),
            speaker_margin_db: 6.0,
            speaker_threshold_dbov: 70,
            max_pending_forwards: 65_536,
            max_pending_events: 4_096,
        }
    }
}

impl RoomConfig {
    /// This config with every value clamped into a range the core can run with: durations of at
    /// least 1 ms, a headroom of at least 1, a finite non-negative margin, bounds of at least 1.
    pub fn sanitized(&self) -> RoomConfig {
        let ms = Duration::from_millis(1);
        let headroom = if self.layer_up_headroom.is_finite() {
            self.layer_up_headroom.clamp(1.0, 10.0)
        } else {
            1.0
        };
        let margin = if self.speaker_margin_db.is_finite() {
            self.speaker_margin_db.clamp(0.0, 127.0)
        } else {
            0.0
        };
        RoomConfig {
            keyframe_request_interval: self.keyframe_request_interval.max(ms),
            keyframe_retry: self.keyframe_retry.max(ms),
            layer_timeout: self.layer_timeout.max(ms),
            layer_stall: self.layer_stall.max(ms),
            layer_up_headroom: headroom,
            layer_up_cooldown: self.layer_up_cooldown,
            bandwidth_pause_after: self.bandwidth_pause_after,
            tick: self.tick.max(ms),
            speaker_smoothing: self.speaker_smoothing.max(ms),
            speaker_min_hold: self.speaker_min_hold,
            speaker_margin_db: margin,
            speaker_threshold_dbov: self.speaker_threshold_dbov.min(127),
            max_pending_forwards: self.max_pending_forwards.max(1),
            max_pending_events: self.max_pending_events.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_already_sane() {
        let d = RoomConfig::default();
        assert_eq!(d.sanitized(), d);
    }

    #[test]
    fn zero_and_nan_are_clamped() {
        let bad = RoomConfig {
            keyframe_request_interval: Duration::ZERO,
            tick: Duration::ZERO,
            layer_up_headroom: f64::NAN,
            speaker_margin_db: f32::INFINITY,
            speaker_threshold_dbov: 255,
            max_pending_forwards: 0,
            ..RoomConfig::default()
        };
        let s = bad.sanitized();
        assert!(s.keyframe_request_interval > Duration::ZERO);
        assert!(s.tick > Duration::ZERO);
        assert_eq!(s.layer_up_headroom, 1.0);
        assert_eq!(s.speaker_margin_db, 0.0);
        assert_eq!(s.speaker_threshold_dbov, 127);
        assert_eq!(s.max_pending_forwards, 1);
    }

    #[test]
    fn the_room_runs_with_the_sanitized_config() {
        let room = crate::core::Room::new(RoomConfig {
            tick: Duration::ZERO,
            layer_up_headroom: 100.0,
            speaker_margin_db: -3.0,
            max_pending_events: 0,
            ..RoomConfig::default()
        });
        let c = room.config();
        assert_eq!(c.tick, Duration::from_millis(1));
        assert_eq!(c.layer_up_headroom, 10.0);
        assert_eq!(c.speaker_margin_db, 0.0);
        assert_eq!(c.max_pending_events, 1);
        assert_eq!(room.poll_timeout(), None, "no timer before the first input");
    }
}
