//! Which (track, layer) each subscription should forward: source resolution (a track, the floor,
//! the active speaker) and the per-subscriber layer allocation.
//!
//! [`Room::reallocate`] runs for a subscriber whenever its subscriptions, preferences or estimate
//! change, and for everyone on every tick (fresh bitrates, new floor or speaker). It never cuts
//! a stream: a new target becomes `pending` with a keyframe request, and the hot path
//! (`forward.rs`) switches when that keyframe arrives.

use std::time::Instant;

use super::config::RoomConfig;
use super::layers::{Candidate, allocate};
use super::packet::{IdleReason, RoomEvent};
use super::room::Room;
use super::speaker::SpeakerSelector;
use super::table::{Subscription, Table, TrackState};
use super::{Kind, LayerIdx, PeerId, Source, SourceLayer, TrackId};

/// A subscriber's wanted bitrate is reported again once it moves by more than this fraction:
/// the meters move a few percent between ticks and each report re-arms the estimator's probe
/// control.
pub(crate) const WANTED_STEP: f64 = 0.1;

/// str0m's pacer sends at 1.1× the bandwidth estimate (its `PACING_FACTOR`): a flowing
/// video's base (its one layer or its lowest simulcast layer) up to that much over what the
/// estimate leaves drains without queueing, so it is not over budget.
const PACER_SLACK: f64 = 1.1;

/// How a subscription's layer is decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Audio: its one layer, always.
    Audio,
    /// A video with one layer: forwarded or paused for bandwidth, as its [`Gate`] at this
    /// index decided.
    Single(usize),
    /// A simulcast video: paused for bandwidth or forwarded, as its [`Gate`] (index `gate`)
    /// decided for its base layer; if forwarded, at the layer [`allocate`] chose for the
    /// candidate at index `cand`.
    Allocated { cand: usize, gate: usize },
}

/// Whether a video subscription's base (its one layer, or the lowest simulcast layer it would
/// take) is forwarded: while its rate fits what the estimate leaves after the subscriber's
/// audio and more important videos, yes; after it has not fitted for
/// `bandwidth_pause_after`, paused (audio keeps flowing); resumed when its rate × the upswitch
/// headroom fits again and the cooldown since the pause has passed. The same hysteresis as a
/// simulcast upswitch. Gates are decided in the order of the subscriptions' preferences
/// (highest first: the floor before thumbnails), so the least important videos pause first.
///
/// Toward a subscriber with an estimate, a video is only started once its base has a measured
/// rate that fits × the headroom, and not during the cooldown after a bandwidth downswitch or
/// pause of that subscription: a simulcast track that has sent nothing yet waits for the tick
/// after its first packets (as a single-layer one always did) instead of being asked for a
/// keyframe at once. A viewer without an estimate is never held back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate {
    /// The subscription's preference ([`LayerPref::max_layer`](super::LayerPref)): the order
    /// in which gates take the budget.
    priority: LayerIdx,
    /// Its simulcast candidate for [`allocate`] (marked paused when this holds it back).
    cand: Option<usize>,
    /// Its base's measured bitrate (0: nothing sent yet; such a video is not started toward
    /// a subscriber with an estimate until it is).
    rate: u64,
    /// Forwarded now (not merely waiting for the keyframe that starts it).
    forwarding: bool,
    /// The viewer already has video under way in this subscription: it waits for this
    /// track's keyframe, or still shows another track (the floor or the speaker moved).
    /// Kept while it fits as a flowing one would: not a resume, so no headroom or cooldown.
    engaged: bool,
    /// The viewer still shows another track in this subscription (the floor or the
    /// speaker moved to this one).
    shows_other: bool,
    /// False during the cooldown after a pause or a downswitch.
    may_go_up: bool,
    /// In and out: since when it has not fitted (paused once that lasts
    /// `bandwidth_pause_after`).
    over_since: Option<Instant>,
    /// Output: forward it.
    forward: bool,
}

impl Gate {
    /// Decides `forward` against `budget` (what is left of the estimate; `limited` false:
    /// no estimate, nothing is held back) at `now`.
    fn decide(&mut self, limited: bool, budget: u64, cfg: &RoomConfig, now: Instant) {
        // A flowing video fits while the pacer can drain it: str0m paces at `PACER_SLACK` ×
        // the estimate.
        let fits = self.rate as f64 <= budget as f64 * PACER_SLACK;
        self.forward = if !limited || (self.forwarding && fits) {
            true
        } else if self.forwarding {
            // Over budget for a moment (an estimate dipping after a delay spike) is
            // tolerated; for `bandwidth_pause_after` it pauses.
            let since = *self.over_since.get_or_insert(now);
            now.saturating_duration_since(since) < cfg.bandwidth_pause_after
        } else if self.engaged && (self.rate > 0 || self.shows_other) {
            // Under way: an estimate between the stay and start thresholds does not call it
            // off and re-ask (a keyframe request each time); a video that has sent nothing
            // yet while the viewer still shows another (the floor moved to a camera still
            // starting) has nothing to measure and stays under way.
            self.rate == 0 || fits
        } else {
            // Not measured yet (no packet since it was published): the tick after its first
            // packets decides.
            self.rate > 0
                && self.may_go_up
                && self.rate as f64 * cfg.layer_up_headroom <= budget as f64
        };
        if fits || !self.forward {
            self.over_since = None;
        }
    }
}

impl Room {
    /// [`Room::reallocate`] every subscriber.
    pub(crate) fn reallocate_all(&mut self, now: Instant) {
        let mut peers = std::mem::take(&mut self.peer_scratch);
        peers.clear();
        peers.extend(
            self.table
                .peers
                .iter()
                .filter(|(_, p)| !p.subs.is_empty())
                .map(|(&id, _)| id),
        );
        for &peer in &peers {
            self.reallocate(peer, now);
        }
        self.peer_scratch = peers;
    }

    /// Decide the target (track, layer) of every subscription of `peer`: resolve its source,
    /// then share the peer's estimate: audio first, then each video's base by its [`Gate`]
    /// (most important first), then the simulcast upgrades ([`allocate`]).
    pub(crate) fn reallocate(&mut self, peer: PeerId, now: Instant) {
        let Some(p) = self.table.peers.get(&peer) else {
            return;
        };
        // Without an estimate (bandwidth estimation off) nothing is limited.
        let limited = p.estimate.is_some();
        let mut budget = p.estimate.unwrap_or(u64::MAX);
        // What its subscriptions would carry at their preferred layers (see `WantedBitrate`).
        let mut wanted = 0u64;
        self.cands.clear();
        self.gates.clear();
        self.targets.clear();
        for &slot in &p.subs {
            let Some(s) = self.table.sub(slot) else {
                continue;
            };
            let Some((id, t)) = resolve(&self.table, self.floor, &self.speaker, s) else {
                self.targets.push((slot, None));
                continue;
            };
            if t.kind == Kind::Audio {
                let bps = t.total_bps(now);
                budget = budget.saturating_sub(bps);
                wanted = wanted.saturating_add(bps);
                self.targets.push((slot, Some((id, Target::Audio))));
                continue;
            }
            let may_go_up = s
                .last_downgrade
                .is_none_or(|d| now.saturating_duration_since(d) >= self.cfg.layer_up_cooldown);
            let forwarding = s.current.is_some_and(|c| c.track == id);
            let mut gate = Gate {
                priority: s.pref.max_layer(),
                cand: None,
                rate: 0,
                forwarding,
                engaged: !forwarding && s.current.or(s.pending).is_some(),
                shows_other: s.current.is_some_and(|c| c.track != id),
                may_go_up,
                over_since: s.over_budget_since,
                forward: true,
            };
            let target = if t.layers.len() == 1 {
                gate.rate = t.total_bps(now);
                wanted = wanted.saturating_add(gate.rate);
                Target::Single(self.gates.len())
            } else {
                let max_layer = s.pref.max_layer().min(t.layers.len() as LayerIdx - 1);
                let candidate = Candidate {
                    max_layer,
                    rates: t.active_rates(now, self.cfg.layer_timeout, self.cfg.layer_stall),
                    current: s.current.filter(|c| c.track == id).map(|c| c.layer),
                    may_go_up,
                    paused: false,
                    choice: None,
                };
                gate.rate = candidate.base_rate();
                gate.cand = Some(self.cands.len());
                wanted = wanted.saturating_add(candidate.preferred_rate());
                self.cands.push(candidate);
                Target::Allocated {
                    cand: self.cands.len() - 1,
                    gate: self.gates.len(),
                }
            };
            self.gates.push(gate);
            self.targets.push((slot, Some((id, target))));
        }
        // Audio has taken its share; the videos' bases next, most important first (stable:
        // equal preferences in subscription order), then the simulcast upgrades share the
        // rest.
        let mut order = std::mem::take(&mut self.gate_order);
        order.clear();
        order.extend(0..self.gates.len());
        order.sort_by_key(|&i| std::cmp::Reverse(self.gates[i].priority));
        for &i in &order {
            let gate = &mut self.gates[i];
            gate.decide(limited, budget, &self.cfg, now);
            if gate.forward {
                budget = budget.saturating_sub(gate.rate);
            }
            if let Some(c) = gate.cand {
                self.cands[c].paused = !gate.forward;
            }
        }
        self.gate_order = order;
        allocate(budget, &mut self.cands, self.cfg.layer_up_headroom);
        self.report_wanted(peer, wanted);
        let targets = std::mem::take(&mut self.targets);
        for &(slot, target) in &targets {
            let (track, target) = match target {
                None => {
                    self.set_target(slot, None, false, now);
                    continue;
                }
                Some(t) => t,
            };
            let gate = match target {
                Target::Audio => None,
                Target::Single(gate) | Target::Allocated { gate, .. } => Some(self.gates[gate]),
            };
            if let Some(g) = gate
                && let Some(s) = self.table.sub_mut(slot)
            {
                s.over_budget_since = g.over_since;
            }
            let (sl, bandwidth) = match (target, gate) {
                (Target::Audio, _) => (Some(SourceLayer { track, layer: 0 }), false),
                // Held back for its rate, not for having sent nothing yet.
                (_, Some(g)) if !g.forward => (None, g.rate > 0),
                (Target::Single(_), _) => (Some(SourceLayer { track, layer: 0 }), false),
                (Target::Allocated { cand, .. }, _) => {
                    let c = &self.cands[cand];
                    // Leaving a layer that is still sent is a bandwidth decision.
                    let bandwidth = c
                        .current
                        .is_some_and(|l| c.rates.get(usize::from(l)).is_some_and(Option::is_some));
                    // No layer sent at all: keep what it has, or wait on its preferred layer.
                    let layer = c.choice.or(c.current).unwrap_or(c.max_layer);
                    (Some(SourceLayer { track, layer }), bandwidth)
                }
            };
            self.set_target(slot, sl, bandwidth, now);
        }
        self.targets = targets;
    }

    /// Reports `wanted` (times the upswitch headroom, so probing finds room for the switch the
    /// allocator would make) when it moved by more than [`WANTED_STEP`] since last reported.
    fn report_wanted(&mut self, peer: PeerId, wanted: u64) {
        let bps = (wanted as f64 * self.cfg.layer_up_headroom) as u64;
        let Some(p) = self.table.peers.get_mut(&peer) else {
            return;
        };
        let moved = match p.wanted {
            None => bps > 0,
            Some(last) => last.abs_diff(bps) as f64 > last as f64 * WANTED_STEP,
        };
        if !moved {
            return;
        }
        p.wanted = Some(bps);
        self.push_event(RoomEvent::WantedBitrate { sub: peer, bps });
    }

    /// Make `target` the subscription's source: keep it if current, else make it pending and
    /// ask for a keyframe; `None` makes the subscription idle (paused, for `bandwidth`). A
    /// downswitch or a pause decided for `bandwidth` starts the upswitch cooldown.
    fn set_target(
        &mut self,
        slot: u32,
        target: Option<SourceLayer>,
        bandwidth: bool,
        now: Instant,
    ) {
        let Some(s) = self.table.sub_mut(slot) else {
            return;
        };
        let Some(t) = target else {
            if s.current.is_none() && s.pending.is_none() {
                return;
            }
            // Only a video that was flowing is paused (counted, cooldown started); one still
            // waiting for its first keyframe just stops waiting.
            let reason = if bandwidth && s.current.is_some() {
                s.last_downgrade = Some(now);
                s.counters.bandwidth_pauses += 1;
                self.stats.bandwidth_pauses += 1;
                IdleReason::Bandwidth
            } else {
                IdleReason::NoSource
            };
            let old = [s.current.take(), s.pending.take()];
            s.pending_since = None;
            s.rewriter.stop();
            let (sub, out_track) = (s.sub, s.out_track);
            for sl in old.into_iter().flatten() {
                self.table.detach_unused(slot, sl);
            }
            self.push_event(RoomEvent::SubscriptionIdle {
                sub,
                out_track,
                reason,
            });
            return;
        };
        if s.current == Some(t) {
            if let Some(p) = s.pending.take() {
                s.pending_since = None;
                self.table.detach_unused(slot, p);
            }
            return;
        }
        if s.pending == Some(t) {
            return;
        }
        if let Some(c) = s.current
            && bandwidth
            && c.track == t.track
            && t.layer < c.layer
            && c.layer <= s.pref.max_layer()
        {
            s.last_downgrade = Some(now);
        }
        let old = s.pending.replace(t);
        s.pending_since = Some(now);
        if let Some(o) = old {
            self.table.detach_unused(slot, o);
        }
        self.table.attach(slot, t);
        self.request_keyframe(t, now);
    }
}

/// The track a subscription should show now, if any. A subscriber is never shown its own media
/// through `Floor` / `LoudestSpeaker`: it keeps showing what it had.
fn resolve<'t>(
    table: &'t Table,
    floor: Option<PeerId>,
    speaker: &SpeakerSelector,
    s: &Subscription,
) -> Option<(TrackId, &'t TrackState)> {
    let peer = match s.source {
        Source::Track(id) => return table.tracks.get(&id).map(|t| (id, t)),
        Source::Floor => floor?,
        Source::LoudestSpeaker => speaker.current()?.0,
        Source::Stage => match floor.or_else(|| speaker.current().map(|c| c.0)) {
            Some(peer) => peer,
            None => {
                // Nobody holds the floor or has spoken: the earliest published track.
                return table
                    .tracks
                    .iter()
                    .filter(|(_, t)| t.kind == s.kind && t.peer != s.sub)
                    .min_by_key(|(id, _)| **id)
                    .map(|(id, t)| (*id, t));
            }
        },
    };
    if peer == s.sub {
        let id = s.pending.or(s.current)?.track;
        return table.tracks.get(&id).map(|t| (id, t));
    }
    let p = table.peers.get(&peer)?;
    p.tracks
        .iter()
        .filter_map(|id| table.tracks.get(id).map(|t| (*id, t)))
        .find(|(_, t)| t.kind == s.kind)
}
