//! [`Room`]: one meeting's forwarding state, owned by one worker thread.
//!
//! This file holds the control plane: publishing and removing tracks, subscribing, preferences,
//! estimates, the floor, stats and the output queues. Every change that can move a
//! subscription ends in [`Room::reallocate`] (`select.rs`); packets and timers
//! are in `forward.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use super::layers::Candidate;
use super::packet::{Forward, IdleReason, RoomEvent};
use super::rewrite::Rewriter;
use super::select::{Gate, Target};
use super::speaker::SpeakerSelector;
use super::stats::{PeerStats, RoomStats, SubCounters, TrackCounters};
use super::table::{LayerState, Subscription, Table, TrackState, initial_seq};
use super::{
    Codec, Kind, Layer, LayerPref, MAX_LAYERS, OutTrackId, PeerId, RoomConfig, Source, SourceLayer,
    TrackId,
};

/// Capacities of the room's reusable buffers (to check that they stop growing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferCapacities {
    /// The forward queue.
    pub forwards: usize,
    /// The event queue.
    pub events: usize,
    /// The hot path's switch scratch list.
    pub switch_scratch: usize,
}

/// One meeting's forwarding state (see the [module docs](super) for the driving loop).
#[derive(Debug)]
pub struct Room {
    pub(crate) cfg: RoomConfig,
    pub(crate) table: Table,
    pub(crate) floor: Option<PeerId>,
    pub(crate) speaker: SpeakerSelector,
    pub(crate) forwards: VecDeque<Forward>,
    pub(crate) events: VecDeque<RoomEvent>,
    /// Hot-path scratch: (slot, previous source) of subscriptions switched by the last packet.
    pub(crate) switched: Vec<(u32, SourceLayer)>,
    pub(crate) cands: Vec<Candidate>,
    pub(crate) targets: Vec<(u32, Option<(TrackId, Target)>)>,
    pub(crate) gates: Vec<Gate>,
    pub(crate) gate_order: Vec<usize>,
    pub(crate) peer_scratch: Vec<PeerId>,
    pub(crate) stats: RoomStats,
    pub(crate) next_tick: Option<Instant>,
    pub(crate) last_tick: Option<Instant>,
    pub(crate) kf_deadline: Option<Instant>,
}

impl Room {
    /// An empty room. Buffers are preallocated for a typical fan-out.
    pub fn new(config: RoomConfig) -> Room {
        Room {
            cfg: config.sanitized(),
            table: Table::default(),
            floor: None,
            speaker: SpeakerSelector::default(),
            forwards: VecDeque::with_capacity(1024),
            events: VecDeque::with_capacity(64),
            switched: Vec::with_capacity(64),
            cands: Vec::new(),
            targets: Vec::new(),
            gates: Vec::new(),
            gate_order: Vec::new(),
            peer_scratch: Vec::new(),
            stats: RoomStats::default(),
            next_tick: None,
            last_tick: None,
            kf_deadline: None,
        }
    }

    /// The config in force (after [`RoomConfig::sanitized`]).
    pub fn config(&self) -> &RoomConfig {
        &self.cfg
    }

    /// Publish a track. `layers` lists its encodings lowest quality first (empty means one layer
    /// without rid; more than [`MAX_LAYERS`] are cut). The kind follows the codec. Publishing an
    /// existing track id replaces it.
    pub fn add_publisher_track(
        &mut self,
        peer: PeerId,
        track: TrackId,
        codec: Codec,
        layers: &[Layer],
        now: Instant,
    ) {
        self.touch(now);
        if self.table.tracks.contains_key(&track) {
            self.drop_track(track);
        }
        let mut states: Vec<LayerState> = layers
            .iter()
            .take(MAX_LAYERS)
            .map(|l| LayerState::new(l.rid))
            .collect();
        if states.is_empty() {
            states.push(LayerState::new(None));
        }
        self.table.tracks.insert(
            track,
            TrackState {
                peer,
                kind: codec.kind(),
                codec,
                layers: states,
                audio: Default::default(),
                counters: TrackCounters::default(),
            },
        );
        self.table.peers.entry(peer).or_default().tracks.push(track);
        self.reallocate_all(now);
    }

    /// Unpublish a track; its subscriptions go idle or move to another source.
    pub fn remove_track(&mut self, track: TrackId, now: Instant) {
        self.touch(now);
        self.drop_track(track);
        self.reallocate_all(now);
    }

    /// Remove a peer with all its tracks and subscriptions.
    pub fn remove_peer(&mut self, peer: PeerId, now: Instant) {
        self.touch(now);
        let Some(p) = self.table.peers.remove(&peer) else {
            return;
        };
        for track in p.tracks {
            self.drop_track(track);
        }
        for slot in p.subs {
            self.table.remove_sub(slot);
        }
        if self.floor == Some(peer) {
            self.floor = None;
        }
        if self.speaker.clear_peer(peer) {
            self.stats.speaker_changes += 1;
            self.push_event(RoomEvent::SpeakerChanged {
                peer: None,
                track: None,
            });
        }
        self.reallocate_all(now);
    }

    /// Create or change the subscription `(sub, out_track)`. Changing the source of an existing
    /// subscription keeps its outgoing stream continuous (same out track, seq, timestamps), and
    /// so does subscribing again on an out track whose subscription ended.
    pub fn subscribe(
        &mut self,
        sub: PeerId,
        out_track: OutTrackId,
        source: Source,
        kind: Kind,
        now: Instant,
    ) {
        self.subscribe_at(sub, out_track, source, kind, LayerPref::Auto, now);
    }

    /// [`Room::subscribe`] with the layer preference a new subscription starts at (one the
    /// subscriber asked for before its stream existed), so its first layer is that one and
    /// no keyframe is asked of another first. An existing subscription keeps its own.
    pub fn subscribe_at(
        &mut self,
        sub: PeerId,
        out_track: OutTrackId,
        source: Source,
        kind: Kind,
        pref: LayerPref,
        now: Instant,
    ) {
        self.touch(now);
        if let Some(&slot) = self.table.sub_index.get(&(sub, out_track)) {
            if let Some(s) = self.table.sub_mut(slot) {
                s.source = source;
                s.kind = kind;
            }
        } else {
            // The out track's earlier subscription, if any, numbered a stream the peer still
            // has: continue it.
            let rewriter = (self.table.peers.get_mut(&sub))
                .and_then(|p| p.unpark(out_track))
                .unwrap_or_else(|| Rewriter::new(initial_seq(sub, out_track)));
            let slot = self.table.insert_sub(Subscription {
                sub,
                out_track,
                source,
                kind,
                pref,
                current: None,
                pending: None,
                pending_since: None,
                rebase: false,
                rewriter,
                last_downgrade: None,
                over_budget_since: None,
                counters: SubCounters::default(),
            });
            self.table.peers.entry(sub).or_default().subs.push(slot);
        }
        self.reallocate(sub, now);
    }

    /// End the subscription `(sub, out_track)`.
    pub fn unsubscribe(&mut self, sub: PeerId, out_track: OutTrackId, now: Instant) {
        self.touch(now);
        let Some(&slot) = self.table.sub_index.get(&(sub, out_track)) else {
            return;
        };
        if let Some(s) = self.table.remove_sub(slot)
            && let Some(p) = self.table.peers.get_mut(&sub)
        {
            p.subs.retain(|&x| x != slot);
            p.retired.add_sub(&s.counters);
            p.park(out_track, s.rewriter);
        }
        self.reallocate(sub, now);
    }

    /// Set the highest layer a subscription wants (thumbnail vs floor view).
    pub fn set_preferred_layer(
        &mut self,
        sub: PeerId,
        out_track: OutTrackId,
        pref: LayerPref,
        now: Instant,
    ) {
        self.touch(now);
        let Some(&slot) = self.table.sub_index.get(&(sub, out_track)) else {
            return;
        };
        if let Some(s) = self.table.sub_mut(slot) {
            s.pref = pref;
        }
        self.reallocate(sub, now);
    }

    /// Set a subscriber's egress bandwidth estimate (str0m's BWE), in bit/s.
    pub fn set_estimate(&mut self, sub: PeerId, bitrate_bps: u64, now: Instant) {
        self.touch(now);
        self.table.peers.entry(sub).or_default().estimate = Some(bitrate_bps);
        self.reallocate(sub, now);
    }

    /// Give the floor to `peer` (or take it back); `Source::Floor` subscriptions follow.
    pub fn set_floor(&mut self, peer: Option<PeerId>, now: Instant) {
        self.touch(now);
        if self.floor != peer {
            self.floor = peer;
            self.reallocate_all(now);
        }
    }

    /// Who holds the floor.
    pub fn floor(&self) -> Option<PeerId> {
        self.floor
    }

    /// The active speaker.
    pub fn speaker(&self) -> Option<PeerId> {
        self.speaker.current().map(|(p, _)| p)
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<RoomEvent> {
        self.events.pop_front()
    }

    /// The next packet to send.
    pub fn poll_forward(&mut self) -> Option<Forward> {
        self.forwards.pop_front()
    }

    /// All packets to send, in order; the queue keeps its capacity (no allocation next time).
    pub fn drain_forwards(&mut self) -> std::collections::vec_deque::Drain<'_, Forward> {
        self.forwards.drain(..)
    }

    /// Room-wide counters and gauges.
    pub fn stats(&self) -> RoomStats {
        RoomStats {
            peers: self.table.peers.len(),
            tracks: self.table.tracks.len(),
            subscriptions: self.table.sub_index.len(),
            ..self.stats
        }
    }

    /// One peer's counters, `None` for an unknown peer.
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        let p = self.table.peers.get(&peer)?;
        let mut st = p.retired;
        st.tracks = p.tracks.len();
        st.subscriptions = p.subs.len();
        st.estimate_bps = p.estimate;
        st.wanted_bps = p.wanted;
        for t in p.tracks.iter().filter_map(|t| self.table.tracks.get(t)) {
            st.add_track(&t.counters);
        }
        for s in p.subs.iter().filter_map(|&slot| self.table.sub(slot)) {
            st.add_sub(&s.counters);
        }
        Some(st)
    }

    /// What the subscription `(sub, out_track)` forwards now and what it waits to switch to.
    pub fn subscription_state(
        &self,
        sub: PeerId,
        out_track: OutTrackId,
    ) -> Option<(Option<SourceLayer>, Option<SourceLayer>)> {
        let slot = *self.table.sub_index.get(&(sub, out_track))?;
        self.table.sub(slot).map(|s| (s.current, s.pending))
    }

    /// Capacities of the reusable buffers.
    pub fn buffer_capacities(&self) -> BufferCapacities {
        BufferCapacities {
            forwards: self.forwards.capacity(),
            events: self.events.capacity(),
            switch_scratch: self.switched.capacity(),
        }
    }

    /// Whether the forwarding table's internal invariant holds (for tests).
    pub fn is_consistent(&self) -> bool {
        self.table.lists_consistent()
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + self.cfg.tick);
            self.last_tick = Some(now);
        }
    }

    pub(crate) fn push_event(&mut self, ev: RoomEvent) {
        push_event(
            &mut self.events,
            &mut self.stats,
            self.cfg.max_pending_events,
            ev,
        );
    }

    /// Remove a track from the table; its listeners lose it as current or pending source.
    fn drop_track(&mut self, track: TrackId) {
        let Some(t) = self.table.tracks.remove(&track) else {
            return;
        };
        if let Some(p) = self.table.peers.get_mut(&t.peer) {
            p.tracks.retain(|&x| x != track);
            p.retired.add_track(&t.counters);
        }
        for slot in t.layers.iter().flat_map(|l| l.subs.iter().copied()) {
            let Some(s) = self.table.sub_mut(slot) else {
                continue;
            };
            if s.pending.is_some_and(|p| p.track == track) {
                s.pending = None;
                s.pending_since = None;
            }
            if s.current.is_some_and(|c| c.track == track) {
                s.current = None;
                s.rewriter.stop();
                let (sub, out_track) = (s.sub, s.out_track);
                self.push_event(RoomEvent::SubscriptionIdle {
                    sub,
                    out_track,
                    reason: IdleReason::NoSource,
                });
            }
        }
    }
}

/// Push an event, dropping (and counting) it when the queue is full.
pub(crate) fn push_event(
    events: &mut VecDeque<RoomEvent>,
    stats: &mut RoomStats,
    cap: usize,
    ev: RoomEvent,
) {
    if events.len() >= cap {
        stats.dropped.events += 1;
    } else {
        events.push_back(ev);
    }
}
