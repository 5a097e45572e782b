//! The forwarding table: peers, published tracks with their layers, and subscriptions.
//!
//! Subscriptions live in a slab (`Vec<Option<Subscription>>` plus a free list) and are named by
//! their slot (`u32`). Each published layer keeps the slots of the subscriptions listening to it,
//! so forwarding a packet walks exactly its listeners. The invariant, kept by [`Table::attach`] /
//! [`Table::detach_unused`] and checked in tests: slot `s` is in the list of (track, layer) `x`
//! iff subscription `s` has `current == x` or `pending == x`.
//!
//! Maps are keyed by the driver's integer ids with [`IdHasher`] (a multiply-fold hash: ids are
//! not attacker-chosen, so SipHash's DoS resistance buys nothing on the hot path).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::keyframe::KeyframeThrottle;
use super::layers::RateMeter;
use super::rewrite::Rewriter;
use super::speaker::AudioActivity;
use super::stats::{PeerStats, SubCounters, TrackCounters};
use super::{
    Codec, Kind, LayerPref, MAX_LAYERS, OutTrackId, PeerId, Rid, Source, SourceLayer, TrackId,
};

/// A fast hasher for integer ids.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }

    /// One round for a `u32` key (an SSRC): the default would feed its 4 bytes one by one.
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// A `HashMap` keyed by ids with `IdHasher`: a multiply-rotate hash, no SipHash. For ids
/// assigned here, and for peer-chosen SSRCs only in a map bounded by what was negotiated
/// (a session's incoming streams), where colliding keys cannot grow a table.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A peer: what it publishes and what it subscribes to.
#[derive(Debug, Clone, Default)]
pub struct PeerState {
    /// Its published tracks, in the order added.
    pub tracks: Vec<TrackId>,
    /// Slots of its subscriptions.
    pub subs: Vec<u32>,
    /// Its egress bandwidth estimate, bit/s.
    pub estimate: Option<u64>,
    /// The wanted bitrate last reported in a [`RoomEvent::WantedBitrate`](super::RoomEvent).
    pub wanted: Option<u64>,
    /// Counters of its removed tracks and subscriptions.
    pub retired: PeerStats,
    /// The rewriters of its ended subscriptions, newest last (at most [`PARKED_REWRITERS`]):
    /// a later subscription on the same out track continues that stream's numbering instead
    /// of starting it again (the peer still has the stream, and numbers going back would be
    /// taken for duplicates).
    pub parked: Vec<(OutTrackId, super::rewrite::Rewriter)>,
}

/// Ended subscriptions' rewriters a peer keeps (a viewer has an audio and a video out track;
/// beyond this the oldest is forgotten and its out track would start from its first number).
pub const PARKED_REWRITERS: usize = 8;

impl PeerState {
    /// Keeps the rewriter of `out_track`'s ended subscription.
    pub fn park(&mut self, out_track: OutTrackId, rewriter: super::rewrite::Rewriter) {
        self.parked.retain(|(t, _)| *t != out_track);
        if self.parked.len() >= PARKED_REWRITERS {
            self.parked.remove(0);
        }
        self.parked.push((out_track, rewriter));
    }

    /// The rewriter `out_track`'s last subscription ended with, if kept.
    pub fn unpark(&mut self, out_track: OutTrackId) -> Option<super::rewrite::Rewriter> {
        let at = self.parked.iter().position(|(t, _)| *t == out_track)?;
        Some(self.parked.remove(at).1)
    }
}

/// One simulcast layer of a published track.
#[derive(Debug, Clone)]
pub struct LayerState {
    /// Its rid, `None` without simulcast.
    pub rid: Option<Rid>,
    /// Its recent bitrate.
    pub meter: RateMeter,
    /// When its last packet came.
    pub last_packet: Option<Instant>,
    /// Its keyframe request throttle.
    pub throttle: KeyframeThrottle,
    /// Slots of the subscriptions whose current or pending source it is.
    pub subs: Vec<u32>,
    /// The newest sequence number seen on it, with its SSRC: a keyframe's first packet that
    /// comes after later ones (repaired, reordered) is no switch point, its frame's other
    /// packets having been dropped for the waiting subscribers already.
    pub newest: Option<(u32, u64)>,
}

impl LayerState {
    /// A layer with nothing seen yet.
    pub fn new(rid: Option<Rid>) -> LayerState {
        LayerState {
            rid,
            meter: Default::default(),
            last_packet: None,
            throttle: Default::default(),
            subs: Vec::new(),
            newest: None,
        }
    }

    /// Records a packet of `ssrc` numbered `seq`: whether it is the newest seen (a new SSRC
    /// starts afresh).
    pub fn note_seq(&mut self, ssrc: u32, seq: u64) -> bool {
        let fresh = match self.newest {
            Some((s, newest)) if s == ssrc => super::rewrite::after(seq, newest),
            _ => true,
        };
        if fresh {
            self.newest = Some((ssrc, seq));
        }
        fresh
    }
}

/// A published track.
#[derive(Debug, Clone)]
pub struct TrackState {
    /// The publisher.
    pub peer: PeerId,
    /// Audio or video.
    pub kind: Kind,
    /// Its codec.
    pub codec: Codec,
    /// Its layers, lowest quality first (at least one, at most [`MAX_LAYERS`]).
    pub layers: Vec<LayerState>,
    /// Audio level accumulator (audio tracks).
    pub audio: AudioActivity,
    /// Its counters.
    pub counters: TrackCounters,
}

impl TrackState {
    /// The bitrate of each layer that sent a packet within `timeout` and no more than `stall`
    /// before the track's most recent packet on any layer; `None` for the others.
    pub fn active_rates(
        &self,
        now: Instant,
        timeout: Duration,
        stall: Duration,
    ) -> [Option<u64>; MAX_LAYERS] {
        let mut rates = [None; MAX_LAYERS];
        let Some(freshest) = self.layers.iter().filter_map(|l| l.last_packet).max() else {
            return rates;
        };
        for (rate, layer) in rates.iter_mut().zip(&self.layers) {
            let alive = layer.last_packet.is_some_and(|t| {
                now.saturating_duration_since(t) <= timeout
                    && freshest.saturating_duration_since(t) <= stall
            });
            if alive {
                *rate = Some(layer.meter.bps(now));
            }
        }
        rates
    }

    /// The total recent bitrate of all layers.
    pub fn total_bps(&self, now: Instant) -> u64 {
        self.layers.iter().map(|l| l.meter.bps(now)).sum()
    }
}

/// One subscriber send stream and what feeds it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The subscriber.
    pub sub: PeerId,
    /// The subscriber's send stream.
    pub out_track: OutTrackId,
    /// What it wants to show.
    pub source: Source,
    /// Audio or video.
    pub kind: Kind,
    /// The highest layer wanted.
    pub pref: LayerPref,
    /// What it forwards now.
    pub current: Option<SourceLayer>,
    /// What it switches to at that source's next keyframe.
    pub pending: Option<SourceLayer>,
    /// When `pending` was last requested (for keyframe retries).
    pub pending_since: Option<Instant>,
    /// The current source restarted (new SSRC): rebase at its next keyframe.
    pub rebase: bool,
    /// Sequence / timestamp / picture-id rewriting.
    pub rewriter: Rewriter,
    /// When the last bandwidth-driven downswitch was decided.
    pub last_downgrade: Option<Instant>,
    /// Since when its video's base (its one layer, or its lowest simulcast layer) has been
    /// more than the subscriber's estimate can carry (paused once that lasts
    /// `bandwidth_pause_after`).
    pub over_budget_since: Option<Instant>,
    /// Its counters.
    pub counters: SubCounters,
}

/// The whole table.
#[derive(Debug, Default)]
pub struct Table {
    /// Peers by id.
    pub peers: IdMap<PeerId, PeerState>,
    /// Published tracks by id.
    pub tracks: IdMap<TrackId, TrackState>,
    /// The subscription slab.
    pub subs: Vec<Option<Subscription>>,
    /// Free slots of the slab.
    pub free: Vec<u32>,
    /// Slot of each (subscriber, out track).
    pub sub_index: IdMap<(PeerId, OutTrackId), u32>,
}

impl Table {
    /// The subscription in `slot`.
    pub fn sub(&self, slot: u32) -> Option<&Subscription> {
        self.subs.get(slot as usize).and_then(Option::as_ref)
    }

    /// The subscription in `slot`, mutably.
    pub fn sub_mut(&mut self, slot: u32) -> Option<&mut Subscription> {
        self.subs.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Store a subscription, reusing a free slot.
    pub fn insert_sub(&mut self, s: Subscription) -> u32 {
        let key = (s.sub, s.out_track);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.subs[slot as usize] = Some(s);
                slot
            }
            None => {
                self.subs.push(Some(s));
                u32::try_from(self.subs.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.sub_index.insert(key, slot);
        slot
    }

    /// Take a subscription out of the slab and out of every layer list.
    pub fn remove_sub(&mut self, slot: u32) -> Option<Subscription> {
        let s = self.subs.get_mut(slot as usize)?.take()?;
        for sl in [s.current, s.pending].into_iter().flatten() {
            self.unlist(slot, sl);
        }
        self.sub_index.remove(&(s.sub, s.out_track));
        self.free.push(slot);
        Some(s)
    }

    /// Put `slot` in the listener list of `sl` (idempotent).
    pub fn attach(&mut self, slot: u32, sl: SourceLayer) {
        if let Some(layer) = self
            .tracks
            .get_mut(&sl.track)
            .and_then(|t| t.layers.get_mut(usize::from(sl.layer)))
            && !layer.subs.contains(&slot)
        {
            layer.subs.push(slot);
        }
    }

    /// Remove `slot` from the list of `sl` unless the subscription still uses `sl`.
    pub fn detach_unused(&mut self, slot: u32, sl: SourceLayer) {
        let used = self
            .sub(slot)
            .is_some_and(|s| s.current == Some(sl) || s.pending == Some(sl));
        if !used {
            self.unlist(slot, sl);
        }
    }

    fn unlist(&mut self, slot: u32, sl: SourceLayer) {
        if let Some(layer) = self
            .tracks
            .get_mut(&sl.track)
            .and_then(|t| t.layers.get_mut(usize::from(sl.layer)))
        {
            layer.subs.retain(|&s| s != slot);
        }
    }

    /// Whether every layer list matches the subscriptions (the module invariant).
    pub fn lists_consistent(&self) -> bool {
        let listed = self.tracks.iter().all(|(&track, t)| {
            t.layers.iter().enumerate().all(|(i, l)| {
                let sl = SourceLayer {
                    track,
                    layer: i as u8,
                };
                l.subs.iter().all(|&slot| {
                    self.sub(slot)
                        .is_some_and(|s| s.current == Some(sl) || s.pending == Some(sl))
                })
            })
        });
        let complete = self.subs.iter().enumerate().all(|(slot, s)| {
            let Some(s) = s else { return true };
            [s.current, s.pending].into_iter().flatten().all(|sl| {
                self.tracks
                    .get(&sl.track)
                    .and_then(|t| t.layers.get(usize::from(sl.layer)))
                    .is_some_and(|l| l.subs.contains(&(slot as u32)))
            })
        });
        listed && complete
    }
}

/// The first outgoing sequence number of a subscription: spread per (peer, out track) and below
/// 2^15, so it never needs an SRTP rollover counter signalled out of band.
pub fn initial_seq(sub: PeerId, out_track: OutTrackId) -> u64 {
    let mut h = IdHasher::default();
    h.write_u64(sub);
    h.write_u64(out_track);
    0x100 + h.finish() % 0x7000
}

#[cfg(test)]
mod tests {
    use super::{PARKED_REWRITERS, PeerState};
    use crate::core::rewrite::Rewriter;

    #[test]
    fn a_peer_keeps_one_parked_rewriter_per_out_track_and_a_bounded_few() {
        let mut peer = PeerState::default();
        peer.park(7, Rewriter::new(1));
        peer.park(7, Rewriter::new(2));
        assert_eq!(peer.parked.len(), 1, "one per out track, the newest");
        for track in 0..PARKED_REWRITERS as u64 {
            peer.park(100 + track, Rewriter::new(3));
        }
        assert_eq!(peer.parked.len(), PARKED_REWRITERS);
        assert!(peer.unpark(7).is_none(), "the oldest went first");
        assert!(peer.unpark(100).is_some());
        assert!(peer.unpark(100).is_none(), "taken once");
    }
}
