//! Simulcast layer choice: a bitrate meter per published layer and the per-subscriber budget
//! allocation that picks a layer for each of a subscriber's video subscriptions.
//!
//! Allocation (run on every estimate or preference change and on every tick):
//! 1. every subscription not paused for bandwidth (decided before, in `select.rs`, for its
//!    base layer) gets its base: the lowest layer being sent within its preference, else the
//!    lowest being sent;
//! 2. then, highest preference first, each is raised to the highest layer within its preference
//!    whose extra bitrate fits what is left of the estimate.
//!
//! Hysteresis: going *above* the current layer needs the extra bitrate × `headroom` to fit and
//! is barred during the cooldown after a downswitch; staying on (or below) the current layer
//! needs only the bitrate itself to fit. So an estimate hovering near a layer's rate does not
//! make the subscription flap.

use std::time::{Duration, Instant};

use super::{LayerIdx, MAX_LAYERS};

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);

/// Bytes per 100 ms over the last second; O(1) per packet, no allocation.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    buckets: [u64; BUCKETS],
    head: usize,
    head_start: Option<Instant>,
    first: Option<Instant>,
}

impl RateMeter {
    /// Count `bytes` received at `now`.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        match self.head_start {
            None => {
                self.head_start = Some(now);
                self.first = Some(now);
            }
            Some(start) => {
                let expired = Self::expired(start, now);
                if expired >= BUCKETS {
                    // Resumed after a second or more of silence: measured from now, like a
                    // new layer (over a whole second, its first 100 ms would read ~10× low).
                    self.buckets = [0; BUCKETS];
                    self.head_start = Some(now);
                    self.first = Some(now);
                } else if expired > 0 {
                    for _ in 0..expired {
                        self.head = (self.head + 1) % BUCKETS;
                        self.buckets[self.head] = 0;
                    }
                    self.head_start = Some(start + BUCKET * expired as u32);
                }
            }
        }
        self.buckets[self.head] = self.buckets[self.head].saturating_add(bytes as u64);
    }

    fn expired(start: Instant, now: Instant) -> usize {
        let n = now.saturating_duration_since(start).as_nanos() / BUCKET.as_nanos();
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The bitrate over the last second (or since the first packet, if younger), in bit/s.
    pub fn bps(&self, now: Instant) -> u64 {
        let (Some(start), Some(first)) = (self.head_start, self.first) else {
            return 0;
        };
        let expired = Self::expired(start, now);
        if expired >= BUCKETS {
            return 0;
        }
        let mut sum = 0u64;
        for back in 0..BUCKETS - expired {
            sum = sum.saturating_add(self.buckets[(self.head + BUCKETS - back) % BUCKETS]);
        }
        let into_head = now.saturating_duration_since(start) - BUCKET * expired as u32;
        let covered = BUCKET * (BUCKETS as u32 - 1) + into_head;
        let span = covered
            .min(now.saturating_duration_since(first))
            .max(BUCKET);
        let bps = u128::from(sum) * 8 * 1_000_000_000 / span.as_nanos();
        u64::try_from(bps).unwrap_or(u64::MAX)
    }
}

/// One video subscription's input to [`allocate`] and its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The highest layer the subscriber's preference allows.
    pub max_layer: LayerIdx,
    /// Measured bitrate of each layer being sent; `None` for a stopped or missing layer.
    pub rates: [Option<u64>; MAX_LAYERS],
    /// The layer forwarded now, if it is of the same track.
    pub current: Option<LayerIdx>,
    /// False during the cooldown after a downswitch: no layer above `current`.
    pub may_go_up: bool,
    /// Paused for bandwidth (decided before, for its base layer): takes nothing.
    pub paused: bool,
    /// Output: the chosen layer; `None` when paused or no layer of the track is being sent.
    pub choice: Option<LayerIdx>,
}

impl Candidate {
    fn rate(&self, layer: LayerIdx) -> Option<u64> {
        self.rates.get(usize::from(layer)).copied().flatten()
    }

    fn active(&self) -> impl DoubleEndedIterator<Item = LayerIdx> + '_ {
        (0..MAX_LAYERS as LayerIdx).filter(|&l| self.rate(l).is_some())
    }

    /// The layer it takes before any upgrade: the lowest one sent within its preference, else
    /// the lowest sent.
    fn base(&self) -> Option<LayerIdx> {
        self.active()
            .find(|&l| l <= self.max_layer)
            .or_else(|| self.active().next())
    }

    /// The bitrate of its base layer (0 when none is sent): what pausing it would save.
    pub fn base_rate(&self) -> u64 {
        self.base().and_then(|l| self.rate(l)).unwrap_or(0)
    }

    /// The bitrate of the layer it would take with an unlimited budget: the highest one sent
    /// within its preference, else the lowest sent (what [`allocate`] falls back to); 0 when
    /// none is sent.
    pub fn preferred_rate(&self) -> u64 {
        let layer =
            (self.active().rev().find(|&l| l <= self.max_layer)).or_else(|| self.active().next());
        layer.and_then(|l| self.rate(l)).unwrap_or(0)
    }
}

/// Choose a layer for every candidate (see the module docs): each not paused takes its base,
/// and the upgrades share `left`, the bit/s of the estimate that remain once those bases
/// (taken by the caller, in `select.rs`) and everything else have had their share.
pub fn allocate(mut left: u64, cands: &mut [Candidate], headroom: f64) {
    for c in cands.iter_mut() {
        c.choice = if c.paused { None } else { c.base() };
    }
    for cap in (0..MAX_LAYERS as LayerIdx).rev() {
        for c in cands.iter_mut() {
            if c.max_layer.min(MAX_LAYERS as LayerIdx - 1) != cap {
                continue;
            }
            let Some(base) = c.choice else { continue };
            let base_rate = c.rate(base).unwrap_or(0);
            for l in (base + 1..=cap).rev() {
                let Some(rate) = c.rate(l) else { continue };
                let extra = rate.saturating_sub(base_rate);
                let staying = c.current.is_some_and(|cur| l <= cur);
                if !staying && !c.may_go_up {
                    continue;
                }
                let need = if staying {
                    extra as f64
                } else {
                    extra as f64 * headroom
                };
                if need <= left as f64 {
                    c.choice = Some(l);
                    left = left.saturating_sub(extra);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1_000;

    fn cand(max_layer: LayerIdx, current: Option<LayerIdx>) -> Candidate {
        Candidate {
            max_layer,
            rates: [Some(150 * K), Some(500 * K), Some(1_500 * K), None],
            current,
            may_go_up: true,
            paused: false,
            choice: None,
        }
    }

    /// [`allocate`] with a whole `budget`: the bases' share first, as the caller takes it.
    fn allocate_within(budget: u64, cands: &mut [Candidate]) {
        let bases: u64 = cands.iter().map(Candidate::base_rate).sum();
        allocate(budget.saturating_sub(bases), cands, 1.25);
    }

    fn one(budget: u64, c: Candidate) -> Option<LayerIdx> {
        let mut cs = [c];
        allocate_within(budget, &mut cs);
        cs[0].choice
    }

    #[test]
    fn meter_measures_steady_rate() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 1000 bytes every 10 ms = 800 kbit/s, for 3 s.
        for i in 0..300u64 {
            m.add(t0 + Duration::from_millis(10 * i), 1000);
        }
        let bps = m.bps(t0 + Duration::from_millis(2995));
        assert!((780_000..=820_000).contains(&bps), "{bps}");
        // Young meter extrapolates from its age.
        let mut y = RateMeter::default();
        for i in 0..20u64 {
            y.add(t0 + Duration::from_millis(10 * i), 1000);
        }
        let bps = y.bps(t0 + Duration::from_millis(200));
        assert!((700_000..=900_000).contains(&bps), "{bps}");
        // Silence empties it.
        assert_eq!(m.bps(t0 + Duration::from_secs(5)), 0);
        m.add(t0 + Duration::from_secs(10), 10);
        assert!(m.bps(t0 + Duration::from_secs(10)) > 0);
        // Resumed at the old rate: measured from the resume, not diluted over a second.
        let resumed = t0 + Duration::from_secs(20);
        for i in 0..20u64 {
            m.add(resumed + Duration::from_millis(10 * i), 1000);
        }
        let bps = m.bps(resumed + Duration::from_millis(200));
        assert!((700_000..=900_000).contains(&bps), "{bps}");
    }

    #[test]
    fn preference_and_estimate_cap_the_layer() {
        assert_eq!(one(u64::MAX, cand(2, None)), Some(2));
        assert_eq!(one(u64::MAX, cand(0, None)), Some(0));
        assert_eq!(one(800 * K, cand(2, None)), Some(1));
        assert_eq!(
            one(10 * K, cand(2, None)),
            Some(0),
            "never starved below the lowest layer"
        );
    }

    #[test]
    fn hysteresis_band() {
        // 1.6 Mbit/s: the top layer (1.5) fits but not with 25 % headroom on the extra.
        assert_eq!(one(1_600 * K, cand(2, Some(2))), Some(2), "stays");
        assert_eq!(one(1_600 * K, cand(2, Some(1))), Some(1), "does not go up");
        assert_eq!(
            one(1_900 * K, cand(2, Some(1))),
            Some(2),
            "goes up with headroom"
        );
        assert_eq!(
            one(1_400 * K, cand(2, Some(2))),
            Some(1),
            "goes down when it no longer fits"
        );
        let mut c = cand(2, Some(1));
        c.may_go_up = false;
        assert_eq!(one(u64::MAX, c), Some(1), "cooldown");
    }

    #[test]
    fn stopped_layers_are_skipped() {
        let mut c = cand(2, Some(2));
        c.rates[2] = None;
        assert_eq!(one(u64::MAX, c), Some(1));
        c.rates = [None, None, Some(1_500 * K), None];
        assert_eq!(one(0, cand_with(c, 0)), Some(2), "only what is sent");
        c.rates = [None; MAX_LAYERS];
        assert_eq!(one(u64::MAX, c), None);
    }

    fn cand_with(mut c: Candidate, max_layer: LayerIdx) -> Candidate {
        c.max_layer = max_layer;
        c
    }

    #[test]
    fn higher_preference_is_served_first() {
        let mut cs = [cand(0, None), cand(2, None), cand(1, None)];
        allocate_within(2_000 * K, &mut cs);
        // Everyone gets q (450k), then the High one goes to f (+1350k*1.25 > 1550k? no) -> h.
        assert_eq!(cs.map(|c| c.choice), [Some(0), Some(1), Some(1)]);
        let mut cs = [cand(0, None), cand(2, None), cand(1, None)];
        allocate_within(3_000 * K, &mut cs);
        assert_eq!(cs.map(|c| c.choice), [Some(0), Some(2), Some(1)]);
    }
}
