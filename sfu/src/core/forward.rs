//! The hot path and the timers of a [`Room`].
//!
//! [`Room::handle_rtp`] per packet: one id-hash lookup of the track, meter and level updates
//! (fixed arrays), then for each listener of exactly that (track, layer):
//! - a switch point (keyframe, or any audio packet) of its pending source switches it: a new
//!   rewriting mapping starts, the old source's list drops it after the loop;
//! - a packet of its current source is rewritten and forwarded (late ones too, duplicates not);
//! - otherwise (pending, not a switch point) it waits, counted as dropped only if it has nothing
//!   else to show.
//!
//! Each forward is a `VecDeque` push of a [`Forward`] holding an `Arc` clone of the payload. No
//! allocation happens once the queue and the scratch list reached their working size.
//!
//! Timers: [`Room::poll_timeout`] is the earlier of the next housekeeping tick and the earliest
//! deferred keyframe request. The tick smooths audio levels and picks the speaker, re-sends
//! keyframe requests for switches still waiting, and reallocates layers from fresh bitrates.

use std::time::Instant;

use super::keyframe::Requested;
use super::packet::{Forward, Incoming, RoomEvent};
use super::rewrite::Reject;
use super::room::{Room, push_event};
use super::speaker::SpeakerCandidate;
use super::table::{LayerState, Table};
use super::{Kind, OutTrackId, PeerId, SourceLayer};

impl Room {
    /// Forward one RTP packet from a publisher. Unknown tracks and layers are counted and
    /// ignored; nothing here can panic on any input.
    pub fn handle_rtp(&mut self, pkt: &Incoming, now: Instant) {
        self.touch(now);
        let Room {
            cfg,
            table,
            forwards,
            events,
            switched,
            stats,
            kf_deadline,
            ..
        } = self;
        let Table { tracks, subs, .. } = &mut *table;
        let Some(track) = tracks.get_mut(&pkt.track) else {
            stats.dropped.unknown_track += 1;
            return;
        };
        let (peer, codec, kind) = (track.peer, track.codec, track.kind);
        let Some(layer) = track.layers.get_mut(usize::from(pkt.layer)) else {
            stats.dropped.unknown_track += 1;
            return;
        };
        let bytes = pkt.payload.len() as u64;
        stats.packets_in += 1;
        stats.bytes_in += bytes;
        track.counters.packets += 1;
        track.counters.bytes += bytes;
        layer.meter.add(now, pkt.payload.len());
        layer.last_packet = Some(now);
        if let Some(level) = pkt.audio_level {
            track.audio.add(level);
        }
        // A keyframe's first packet arriving after later packets (a repair, reordering) starts
        // nothing: subscribers waiting to switch dropped the rest of its frame already.
        let keyframe = layer.note_seq(pkt.ssrc, pkt.seq) && pkt.keyframe;
        if keyframe {
            layer.throttle.on_keyframe();
        }
        let switch_point = keyframe || kind == Kind::Audio;
        let src = SourceLayer {
            track: pkt.track,
            layer: pkt.layer,
        };
        let LayerState {
            subs: listeners,
            throttle,
            rid,
            ..
        } = layer;
        switched.clear();
        for &slot in listeners.iter() {
            let Some(s) = subs.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            let is_current = s.current == Some(src);
            if is_current && s.rewriter.is_retired(pkt.ssrc, pkt.arrival) {
                s.counters.dropped += 1;
                stats.dropped.too_old += 1;
                continue;
            }
            let restarted = is_current && (s.rebase || s.rewriter.ssrc_changed(pkt.ssrc));
            let result = if switch_point && (s.pending == Some(src) || restarted) {
                let from = s.current;
                s.current = Some(src);
                if s.pending == Some(src) {
                    s.pending = None;
                    s.pending_since = None;
                }
                s.rebase = false;
                if from != Some(src) {
                    if let Some(f) = from {
                        switched.push((slot, f));
                    }
                    s.counters.layer_switches += 1;
                    stats.layer_switches += 1;
                    let ev = RoomEvent::LayerSwitched {
                        sub: s.sub,
                        out_track: s.out_track,
                        from,
                        to: src,
                    };
                    push_event(events, stats, cfg.max_pending_events, ev);
                }
                Ok(s.rewriter.start(pkt, codec.clock_rate()))
            } else if restarted {
                // New SSRC on the current layer: the decoder needs its keyframe first.
                s.rebase = true;
                s.counters.dropped += 1;
                stats.dropped.ssrc_changed += 1;
                match throttle.request(now, cfg.keyframe_request_interval) {
                    Requested::SendNow => {
                        stats.keyframe_requests_sent += 1;
                        let ev = keyframe_request(&mut track.counters, peer, src, *rid);
                        push_event(events, stats, cfg.max_pending_events, ev);
                    }
                    Requested::Deferred => {
                        stats.keyframe_requests_merged += 1;
                        let due = throttle.deadline(cfg.keyframe_request_interval);
                        *kf_deadline = earliest(*kf_deadline, due);
                    }
                }
                continue;
            } else if is_current {
                debug_assert!(s.rewriter.maps(pkt.track, pkt.layer, pkt.ssrc));
                s.rewriter.map(pkt)
            } else {
                if s.current.is_none() {
                    s.counters.dropped += 1;
                    stats.dropped.waiting_keyframe += 1;
                }
                continue;
            };
            match result {
                Ok(w) => {
                    if forwards.len() >= cfg.max_pending_forwards {
                        s.counters.dropped += 1;
                        stats.dropped.backpressure += 1;
                        continue;
                    }
                    forwards.push_back(Forward {
                        sub: s.sub,
                        out_track: s.out_track,
                        seq: w.seq,
                        rtp_time: w.rtp_time,
                        marker: pkt.marker,
                        keyframe: pkt.keyframe,
                        payload: pkt.payload.clone(),
                        vp8_rewrite: w.vp8,
                        audio_level: pkt.audio_level,
                        codec,
                        source: src,
                        arrival: pkt.arrival,
                    });
                    s.counters.packets += 1;
                    s.counters.bytes += bytes;
                    stats.forwarded_packets += 1;
                    stats.forwarded_bytes += bytes;
                }
                Err(reject) => {
                    s.counters.dropped += 1;
                    match reject {
                        Reject::Duplicate => stats.dropped.duplicate += 1,
                        Reject::TooOld => stats.dropped.too_old += 1,
                    }
                }
            }
        }
        for &(slot, old) in switched.iter() {
            table.detach_unused(slot, old);
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR) on one of its send streams: ask the
    /// publisher of what it shows (and of what it is switching to), through the throttle.
    pub fn handle_keyframe_request(&mut self, sub: PeerId, out_track: OutTrackId, now: Instant) {
        self.touch(now);
        self.stats.keyframe_requests_received += 1;
        let Some(&slot) = self.table.sub_index.get(&(sub, out_track)) else {
            return;
        };
        let Some(s) = self.table.sub_mut(slot) else {
            return;
        };
        s.counters.keyframe_requests += 1;
        let wanted = [s.current, s.pending];
        for sl in wanted.into_iter().flatten() {
            self.request_keyframe(sl, now);
        }
    }

    /// Ask the publisher of `sl` for a keyframe, through the throttle (video only).
    pub(crate) fn request_keyframe(&mut self, sl: SourceLayer, now: Instant) {
        let interval = self.cfg.keyframe_request_interval;
        let Some(track) = self.table.tracks.get_mut(&sl.track) else {
            return;
        };
        if track.kind == Kind::Audio {
            return;
        }
        let Some(layer) = track.layers.get_mut(usize::from(sl.layer)) else {
            return;
        };
        match layer.throttle.request(now, interval) {
            Requested::SendNow => {
                let ev = keyframe_request(&mut track.counters, track.peer, sl, layer.rid);
                self.stats.keyframe_requests_sent += 1;
                push_event(
                    &mut self.events,
                    &mut self.stats,
                    self.cfg.max_pending_events,
                    ev,
                );
            }
            Requested::Deferred => {
                self.stats.keyframe_requests_merged += 1;
                self.kf_deadline = earliest(self.kf_deadline, layer.throttle.deadline(interval));
            }
        }
    }

    /// When [`Room::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.next_tick, self.kf_deadline)
    }

    /// Run the timers due at `now`: deferred keyframe requests and the housekeeping tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.touch(now);
        if self.kf_deadline.is_some_and(|d| d <= now) {
            self.flush_keyframe_requests(now);
        }
        if self.next_tick.is_some_and(|t| t <= now) {
            self.tick(now);
            // An empty room sleeps until its next input (`touch` re-arms the tick).
            let empty = self.table.tracks.is_empty() && self.table.sub_index.is_empty();
            self.next_tick = (!empty).then(|| now + self.cfg.tick);
        }
    }

    fn flush_keyframe_requests(&mut self, now: Instant) {
        let interval = self.cfg.keyframe_request_interval;
        let mut next = None;
        for (&id, track) in self.table.tracks.iter_mut() {
            for (i, layer) in track.layers.iter_mut().enumerate() {
                if layer.throttle.poll(now, interval) {
                    let sl = SourceLayer {
                        track: id,
                        layer: i as u8,
                    };
                    let ev = keyframe_request(&mut track.counters, track.peer, sl, layer.rid);
                    self.stats.keyframe_requests_sent += 1;
                    push_event(
                        &mut self.events,
                        &mut self.stats,
                        self.cfg.max_pending_events,
                        ev,
                    );
                }
                next = earliest(next, layer.throttle.deadline(interval));
            }
        }
        self.kf_deadline = next;
    }

    fn tick(&mut self, now: Instant) {
        let dt = self
            .last_tick
            .map_or(self.cfg.tick, |t| now.saturating_duration_since(t));
        self.last_tick = Some(now);

        // Active speaker.
        for t in self
            .table
            .tracks
            .values_mut()
            .filter(|t| t.kind == Kind::Audio)
        {
            t.audio.close_interval(dt, self.cfg.speaker_smoothing);
        }
        let cands = self
            .table
            .tracks
            .iter()
            .filter(|(_, t)| t.kind == Kind::Audio)
            .map(|(&track, t)| SpeakerCandidate {
                peer: t.peer,
                track,
                level: t.audio.level(),
            });
        if let Some((peer, track)) = self.speaker.select(cands, now, &self.cfg) {
            self.stats.speaker_changes += 1;
            self.push_event(RoomEvent::SpeakerChanged {
                peer: Some(peer),
                track: Some(track),
            });
        }

        // Switches still waiting for their keyframe ask again (a PLI may have been lost).
        let retry = self.cfg.keyframe_retry;
        for slot in 0..self.table.subs.len() as u32 {
            let Some(s) = self.table.sub_mut(slot) else {
                continue;
            };
            let (Some(p), Some(since)) = (s.pending, s.pending_since) else {
                continue;
            };
            if now.saturating_duration_since(since) >= retry {
                s.pending_since = Some(now);
                self.request_keyframe(p, now);
            }
        }

        // Layers from fresh bitrates, sources from the new floor / speaker.
        self.reallocate_all(now);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Counts a keyframe request sent for `sl` of a track and builds its event.
fn keyframe_request(
    counters: &mut super::stats::TrackCounters,
    peer: super::PeerId,
    sl: SourceLayer,
    rid: Option<super::Rid>,
) -> RoomEvent {
    counters.keyframe_requests_sent += 1;
    RoomEvent::KeyframeRequest {
        peer,
        track: sl.track,
        layer: sl.layer,
        rid,
    }
}
