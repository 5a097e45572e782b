//! The room core's output, applied: forwards become `write_rtp` on viewers' send streams (the
//! payload `Arc` is shared, never copied, and the VP8 descriptor of a packet is parsed once
//! for all its viewers), keyframe requests become PLIs toward publishers, and the room's timers
//! are run. Per forwarded packet nothing here allocates or locks; the shared counters are
//! touched once per pump.

use std::sync::Arc;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpWrite, Vp8Descriptor};

use super::events::{RoomEvent, notify};
use super::worker::Worker;
use crate::core;

impl Worker {
    /// Room timers (layer allocation tick, keyframe retries, speaker evaluation) of a room
    /// whose timer is due (the worker's timer pass picks those).
    pub(crate) fn room_timeout(&mut self, room: &Arc<str>, now: Instant) {
        if let Some(slot) = self.rooms.get_mut(room) {
            slot.core.handle_timeout(now);
        }
        self.pump_room(room);
    }

    /// Drains the room core: forwards become `write_rtp` on viewers' streams (the payload `Arc`
    /// is shared, never copied), events become PLIs toward publishers and speaker updates.
    pub(crate) fn pump_room(&mut self, room: &Arc<str>) {
        let Some(slot) = self.rooms.get_mut(room) else {
            return;
        };
        let metrics = &self.shared.metrics;
        let (mut packets, mut bytes) = (0u64, 0u64);
        // One incoming packet fans out to many forwards in a row: parse its VP8 descriptor
        // once, not once per subscriber.
        let mut vp8: Option<(Arc<[u8]>, Option<Vp8Descriptor>)> = None;
        for f in slot.core.drain_forwards() {
            let Some(sub) = self.sessions.get_mut(&f.sub) else {
                continue;
            };
            let kind = f.codec.kind();
            let tx = if kind == core::Kind::Audio {
                sub.tx_audio
            } else {
                sub.tx_video
            };
            let Some(tx) = tx else { continue };
            let Some(pt) = sub.pts[f.codec as usize] else {
                continue;
            };
            let mut ext = ExtensionValues::default();
            if let Some(level) = f.audio_level {
                ext.audio_level = Some(-(level.level.min(127) as i8));
                ext.voice_activity = Some(level.voice);
            }
            // The VP8 patch first, from a borrow: the payload `Arc` then moves into the write
            // (no refcount traffic per forwarded packet).
            let patch = match f.vp8_rewrite {
                Some(rewrite) => {
                    let descriptor = match &vp8 {
                        Some((payload, d)) if Arc::ptr_eq(payload, &f.payload) => *d,
                        _ => {
                            let d = Vp8Descriptor::parse(&f.payload).ok();
                            vp8 = Some((f.payload.clone(), d));
                            d
                        }
                    };
                    descriptor.and_then(|d| vp8_patch(&d, rewrite))
                }
                None => None,
            };
            let len = f.payload.len() as u64;
            let mut write =
                RtpWrite::new(pt, f.seq.into(), f.rtp_time as u32, f.arrival, f.payload)
                    .marker(f.marker)
                    .ext_vals(ext)
                    .nackable(kind == core::Kind::Video);
            if let Some(patch) = patch {
                write = write.vp8_patch(patch);
            }
            let mut api = sub.rtc.direct_api();
            let Some(stream) = api.stream_tx(&tx.ssrc) else {
                continue;
            };
            stream.write_rtp(write);
            packets += 1;
            bytes += len;
            sub.queue(&mut self.dirty);
        }
        // Counters are atomics shared by all workers: touch them once per pump, not per packet.
        if packets > 0 {
            metrics.forwarded_packets.inc_by(packets);
            metrics.forwarded_bytes.inc_by(bytes);
        }
        while let Some(event) = slot.core.poll_event() {
            match event {
                core::RoomEvent::KeyframeRequest {
                    peer, track, rid, ..
                } => {
                    tracing::debug!(peer, track, ?rid, "keyframe request to publisher");
                    let Some(publisher) = self.sessions.get_mut(&peer) else {
                        continue;
                    };
                    let Some((&mid, _)) = publisher.tracks.iter().find(|(_, (t, _))| *t == track)
                    else {
                        continue;
                    };
                    let mut api = publisher.rtc.direct_api();
                    if let Some(stream) = api.stream_rx_by_mid(mid, rid) {
                        stream.request_keyframe(KeyframeRequestKind::Pli);
                        metrics
                            .keyframe_requests
                            .with_label_values(&["to_publishers"])
                            .inc();
                        publisher.queue(&mut self.dirty);
                    }
                }
                core::RoomEvent::SpeakerChanged { peer, .. } => {
                    metrics.speaker_changes.inc();
                    let speaker = peer.map(|p| p.to_string());
                    notify(&self.shared.notices, room, RoomEvent::Speaker { speaker });
                }
                core::RoomEvent::LayerSwitched { sub, from, to, .. } => {
                    tracing::debug!(sub, ?from, ?to, "layer switched");
                    metrics.layer_switches.inc();
                }
                core::RoomEvent::SubscriptionIdle { sub, reason, .. } => {
                    if reason == core::IdleReason::Bandwidth {
                        tracing::debug!(sub, "video paused: the viewer's estimate cannot carry it");
                        metrics.bandwidth_pauses.inc();
                    }
                }
                core::RoomEvent::WantedBitrate { sub, bps } => {
                    // str0m probes for capacity only toward a desired bitrate; without one a
                    // viewer's estimate never climbs past what it already carries, and a
                    // stream above it queues in the pacer. No minimum: padding would cost
                    // every viewer packets that carry nothing (str0m keeps its own 50 kbit/s
                    // floor). A no-op for a session without bandwidth estimation.
                    let Some(viewer) = self.sessions.get_mut(&sub) else {
                        continue;
                    };
                    viewer
                        .rtc
                        .bwe()
                        .set_bitrate(Bitrate::ZERO, Bitrate::bps(bps));
                    viewer.queue(&mut self.dirty);
                }
            }
        }
    }
}

/// The str0m patch that writes the rewritten VP8 picture id / TL0PICIDX while serializing.
fn vp8_patch(
    descriptor: &Vp8Descriptor,
    rewrite: core::Vp8Rewrite,
) -> Option<str0m::rtp::Vp8Patch> {
    let mut builder = descriptor.patch();
    if let Some(id) = rewrite.picture_id {
        builder = builder.picture_id(id);
    }
    if let Some(idx) = rewrite.tl0picidx {
        builder = builder.tl0_pic_idx(idx);
    }
    builder.build().ok()
}
