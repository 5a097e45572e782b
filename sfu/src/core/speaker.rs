//! Active speaker detection from RFC 6464 audio levels.
//!
//! Per audio track, [`AudioActivity`] sums the loudness (`127 - level`, i.e. dB above -127 dBov)
//! of the packets of one tick; at each tick the interval mean (0 when no packet came, as with
//! Opus DTX) feeds an exponential moving average with time constant `speaker_smoothing`.
//! [`SpeakerSelector`] then picks the loudest smoothed track, but only changes the speaker when
//! - the challenger is above the threshold (`speaker_threshold_dbov`),
//! - the current speaker has held the role for `speaker_min_hold`, and
//! - the challenger is louder than the current speaker by `speaker_margin_db`.
//!
//! The V (voice) flag is not used: not every sender sets it, and the level alone already tells
//! speech from room noise once smoothed.

use std::time::{Duration, Instant};

use super::packet::AudioLevel;
use super::{PeerId, RoomConfig, TrackId};

/// The per-track level accumulator and smoothed loudness.
#[derive(Debug, Clone, Default)]
pub struct AudioActivity {
    sum: u64,
    count: u64,
    smoothed: f32,
}

impl AudioActivity {
    /// Account one packet's level (hot path: two additions).
    pub fn add(&mut self, level: AudioLevel) {
        self.sum += u64::from(level.loudness());
        self.count += 1;
    }

    /// Close an interval of length `dt`: fold its mean loudness into the moving average.
    pub fn close_interval(&mut self, dt: Duration, tau: Duration) {
        let mean = if self.count == 0 {
            0.0
        } else {
            self.sum as f32 / self.count as f32
        };
        let alpha = (dt.as_secs_f32() / tau.as_secs_f32().max(1e-3)).min(1.0);
        self.smoothed += alpha * (mean - self.smoothed);
        self.sum = 0;
        self.count = 0;
    }

    /// Smoothed loudness in dB above silence (0..=127).
    pub fn level(&self) -> f32 {
        self.smoothed
    }
}

/// One audio track as seen by [`SpeakerSelector::select`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerCandidate {
    /// The publisher.
    pub peer: PeerId,
    /// Its audio track.
    pub track: TrackId,
    /// Its smoothed loudness ([`AudioActivity::level`]).
    pub level: f32,
}

/// The current active speaker and since when.
#[derive(Debug, Clone, Default)]
pub struct SpeakerSelector {
    current: Option<(PeerId, TrackId)>,
    since: Option<Instant>,
}

impl SpeakerSelector {
    /// The current speaker (peer, audio track).
    pub fn current(&self) -> Option<(PeerId, TrackId)> {
        self.current
    }

    /// Forget `peer` if it is the speaker (it left); returns whether it was.
    pub fn clear_peer(&mut self, peer: PeerId) -> bool {
        if self.current.is_some_and(|(p, _)| p == peer) {
            self.current = None;
            self.since = None;
            return true;
        }
        false
    }

    /// Re-evaluate at `now`; returns the new speaker when the speaking *peer* changed.
    pub fn select<I>(
        &mut self,
        cands: I,
        now: Instant,
        cfg: &RoomConfig,
    ) -> Option<(PeerId, TrackId)>
    where
        I: IntoIterator<Item = SpeakerCandidate>,
    {
        let mut best: Option<SpeakerCandidate> = None;
        let mut current_level = 0.0f32;
        for c in cands {
            if self.current.is_some_and(|(_, t)| t == c.track) {
                current_level = c.level;
            }
            let better = match best {
                None => true,
                Some(b) => c.level > b.level || (c.level == b.level && c.track < b.track),
            };
            if better {
                best = Some(c);
            }
        }
        let best = best?;
        let threshold = f32::from(127 - cfg.speaker_threshold_dbov.min(127));
        if best.level < threshold {
            return None;
        }
        match self.current {
            Some((peer, _)) if peer == best.peer => None,
            Some(_) => {
                let held = self
                    .since
                    .map_or(Duration::MAX, |s| now.saturating_duration_since(s));
                if held < cfg.speaker_min_hold || best.level < current_level + cfg.speaker_margin_db
                {
                    return None;
                }
                self.set(best, now)
            }
            None => self.set(best, now),
        }
    }

    fn set(&mut self, c: SpeakerCandidate, now: Instant) -> Option<(PeerId, TrackId)> {
        self.current = Some((c.peer, c.track));
        self.since = Some(now);
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(peer: PeerId, level: f32) -> SpeakerCandidate {
        SpeakerCandidate {
            peer,
            track: peer * 10,
            level,
        }
    }

    #[test]
    fn smoothing_follows_mean_with_time_constant() {
        let mut a = AudioActivity::default();
        let tick = Duration::from_millis(100);
        for _ in 0..50 {
            for _ in 0..5 {
                a.add(AudioLevel {
                    voice: true,
                    level: 27,
                });
            }
            a.close_interval(tick, Duration::from_secs(1));
        }
        assert!((a.level() - 100.0).abs() < 1.0, "{}", a.level());
        // One silent (DTX) second decays it by about 1/e.
        for _ in 0..10 {
            a.close_interval(tick, Duration::from_secs(1));
        }
        assert!((30.0..40.0).contains(&a.level()), "{}", a.level());
    }

    #[test]
    fn margin_hold_and_threshold() {
        let cfg = RoomConfig::default();
        let t0 = Instant::now();
        let mut s = SpeakerSelector::default();
        assert_eq!(
            s.select([c(1, 20.0), c(2, 30.0)], t0, &cfg),
            None,
            "below threshold"
        );
        assert_eq!(s.select([c(1, 80.0), c(2, 70.0)], t0, &cfg), Some((1, 10)));
        let later = t0 + Duration::from_secs(2);
        assert_eq!(
            s.select([c(1, 80.0), c(2, 84.0)], later, &cfg),
            None,
            "inside margin"
        );
        let soon = t0 + Duration::from_millis(500);
        assert_eq!(s.select([c(1, 60.0), c(2, 90.0)], soon, &cfg), None, "hold");
        assert_eq!(
            s.select([c(1, 60.0), c(2, 90.0)], later, &cfg),
            Some((2, 20))
        );
        assert!(s.clear_peer(2));
        assert_eq!(s.current(), None);
    }

    #[test]
    fn ties_pick_the_lower_track_deterministically() {
        let cfg = RoomConfig::default();
        let mut s = SpeakerSelector::default();
        assert_eq!(
            s.select([c(2, 80.0), c(1, 80.0)], Instant::now(), &cfg),
            Some((1, 10))
        );
    }
}
