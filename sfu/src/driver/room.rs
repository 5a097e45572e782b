//! Glue between str0m events and the sans-IO room core: negotiated media lines become
//! publisher tracks or viewer subscriptions, incoming RTP becomes `core::Incoming`, viewers'
//! keyframe requests, estimates and layer choices go to the core, and rooms are described for
//! the API. What the core answers is applied in `pump`.

use std::time::Instant;

use str0m::media::{KeyframeRequest, MediaAdded, MediaKind, Rid};
use str0m::rtp::RtpPacket;

use super::api::{
    LayerChoice, PlaySource, PublisherInfo, RoomInfo, SessionKind, SessionStats, SfuError,
    ViewerInfo,
};
use super::config::SfuConfig;
use super::metrics::DropReason;
use super::replay::ReplayWindow;
use super::session::{RxStream, TxStream};
use super::worker::Worker;
use crate::core;

/// A room on a worker: the core plus the session ids in it.
pub(crate) struct RoomSlot {
    pub core: core::Room,
    sessions: Vec<u64>,
    next_track: u64,
}

impl RoomSlot {
    pub(crate) fn new(config: &SfuConfig) -> Self {
        let room_config = core::RoomConfig {
            keyframe_request_interval: config.keyframe_interval,
            ..core::RoomConfig::default()
        };
        RoomSlot {
            core: core::Room::new(room_config),
            sessions: Vec::new(),
            next_track: 1,
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn add_session(&mut self, id: u64) {
        self.sessions.push(id);
    }

    pub(crate) fn remove_session(&mut self, id: u64, now: Instant) {
        self.sessions.retain(|s| *s != id);
        self.core.remove_peer(id, now);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }
}

/// Quality rank of a rid by the usual names (`q`/`h`/`f`, `l`/`m`/`h`, `0`/`1`/`2`). `h` is
/// the middle of `q`/`h`/`f` (half) but the top of `l`/`m`/`h` (high): with `l` or `m` among
/// the track's rids (`l_m_scheme`), it ranks highest.
fn rid_rank(rid: &str, l_m_scheme: bool) -> u8 {
    match rid {
        "h" if l_m_scheme => 2,
        "q" | "l" | "low" | "0" => 0,
        "h" | "m" | "mid" | "1" => 1,
        "f" | "high" | "2" => 2,
        _ => 3,
    }
}

/// Orders a track's rids from the lowest quality to the highest (stable for unknown names).
fn sort_rids(rids: &mut [Rid]) {
    let l_m_scheme = rids
        .iter()
        .any(|r| matches!(&**r, "l" | "m" | "low" | "mid"));
    rids.sort_by_key(|r| rid_rank(r, l_m_scheme));
}

fn core_codec(codec: str0m::format::Codec) -> Option<core::Codec> {
    use str0m::format::Codec as C;
    match codec {
        C::Opus => Some(core::Codec::Opus),
        C::Vp8 => Some(core::Codec::Vp8),
        C::Vp9 => Some(core::Codec::Vp9),
        C::H264 => Some(core::Codec::H264),
        _ => None,
    }
}

pub(crate) fn str0m_codec(codec: core::Codec) -> str0m::format::Codec {
    use str0m::format::Codec as C;
    match codec {
        core::Codec::Opus => C::Opus,
        core::Codec::Vp8 => C::Vp8,
        core::Codec::Vp9 => C::Vp9,
        core::Codec::H264 => C::H264,
    }
}

impl Worker {
    /// A media line was negotiated: a publisher's track (announced to the room at its first
    /// packet, when the codec is known) or a viewer's send stream (subscribed now).
    pub(crate) fn media_added(&mut self, id: u64, added: &MediaAdded) {
        let now = Instant::now();
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(slot) = self.rooms.get_mut(&session.room) else {
            return;
        };
        let kind = if added.kind == MediaKind::Audio {
            core::Kind::Audio
        } else {
            core::Kind::Video
        };
        match session.kind {
            SessionKind::Publish => {
                let track = slot.next_track;
                slot.next_track += 1;
                // The publisher's `a=simulcast:send` is what we receive.
                let mut rids: Vec<Rid> = added
                    .simulcast
                    .as_ref()
                    .map(|s| if s.recv.is_empty() { &s.send } else { &s.recv })
                    .map(|layers| layers.iter().map(|l| l.rid).collect())
                    .unwrap_or_default();
                sort_rids(&mut rids);
                session.tracks.insert(added.mid, (track, added.kind));
                session.layers.insert(track, rids);
            }
            SessionKind::Play(source) => {
                // One stream per kind (`check_offer`): a second would get every packet again.
                let taken = match added.kind {
                    MediaKind::Audio => session.tx_audio.is_some(),
                    _ => session.tx_video.is_some(),
                };
                if taken {
                    tracing::debug!(session = id, mid = %added.mid, "second viewer media of a kind ignored");
                    return;
                }
                let mut api = session.rtc.direct_api();
                let Some(stream) = api.stream_tx_by_mid(added.mid, None) else {
                    tracing::debug!(session = id, mid = %added.mid, "no send stream for viewer media");
                    return;
                };
                if added.kind == MediaKind::Video {
                    super::session::keep_for_retransmission(stream, self.shared.config.rtx_history);
                }
                let ssrc = stream.ssrc();
                let tx = TxStream {
                    mid: added.mid,
                    ssrc,
                };
                let out_track = u64::from(*tx.ssrc);
                if added.kind == MediaKind::Audio {
                    session.tx_audio = Some(tx);
                } else {
                    session.tx_video = Some(tx);
                }
                let source = match source {
                    PlaySource::Floor => core::Source::Stage,
                    PlaySource::Publisher(p) => match self.sessions.get(&p) {
                        Some(publisher) => {
                            match publisher.tracks.values().find(|(_, k)| *k == added.kind) {
                                Some((track, _)) => core::Source::Track(*track),
                                None => return,
                            }
                        }
                        None => return,
                    },
                };
                let asked = match self.sessions.get_mut(&id) {
                    Some(s) if kind == core::Kind::Video => s.layer_wanted.take(),
                    _ => None,
                };
                let Some(slot) = self.rooms.get_mut(&self.sessions[&id].room) else {
                    return;
                };
                let pref = asked.unwrap_or(core::LayerPref::Auto);
                slot.core
                    .subscribe_at(id, out_track, source, kind, pref, now);
            }
        }
        let room = self.sessions[&id].room.clone();
        self.pump_room(&room);
    }

    /// One RTP packet from a publisher into its room.
    pub(crate) fn rtp_in(&mut self, id: u64, packet: RtpPacket) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        if session.kind != SessionKind::Publish {
            return;
        }
        let ssrc = packet.header.ssrc;
        // str0m accepted it (repairs come out under their main SSRC and number).
        // What the room needs of the stream (not its replay window): track, layer, codec.
        let (track, layer, codec) = match session.rx.get_mut(&ssrc) {
            Some(s) => {
                s.replay.accepted(*packet.seq_no);
                (s.track, s.layer, s.codec)
            }
            None => {
                let mut api = session.rtc.direct_api();
                let Some((mid, rid)) = api.stream_rx(&ssrc).map(|rx| (rx.mid(), rx.rid())) else {
                    return;
                };
                let Some(&(track, _)) = session.tracks.get(&mid) else {
                    return;
                };
                let Some(codec) = session
                    .codec_of(packet.header.payload_type)
                    .and_then(core_codec)
                else {
                    return;
                };
                let rids = session.layers.get(&track).cloned().unwrap_or_default();
                // A rid outside the negotiated ones is not layer 0: fed there, its SSRC would
                // alternate with the real layer 0's and look like encoder restarts.
                let layer = match rid {
                    Some(r) => match rids.iter().position(|x| *x == r) {
                        Some(i) => i as u8,
                        None => {
                            self.shared.metrics.dropped(DropReason::UnknownRid);
                            return;
                        }
                    },
                    None => 0,
                };
                if let Some(rid) = rid {
                    let name = rid.to_string();
                    if !session.rids_seen.contains(&name) {
                        session.rids_seen.push(name);
                    }
                }
                if !session.announced.contains(&track) {
                    let layers: Vec<core::Layer> =
                        rids.iter().map(|r| core::Layer { rid: Some(*r) }).collect();
                    if let Some(slot) = self.rooms.get_mut(&session.room) {
                        slot.core
                            .add_publisher_track(id, track, codec, &layers, packet.timestamp);
                        self.shared.metrics.tracks.inc();
                        session.announced.push(track);
                    }
                }
                let mut s = RxStream {
                    track,
                    layer,
                    codec,
                    replay: ReplayWindow::default(),
                };
                s.replay.accepted(*packet.seq_no);
                RxStream::insert(&mut session.rx, ssrc, s);
                (track, layer, codec)
            }
        };
        let Some(slot) = self.rooms.get_mut(&session.room) else {
            return;
        };
        let now = packet.timestamp;
        let payload = packet.payload;
        // The VP8 descriptor is parsed once: it also says whether this is a keyframe.
        let vp8 = match codec {
            core::Codec::Vp8 => core::parse_vp8_descriptor(&payload),
            _ => None,
        };
        let keyframe = match codec {
            core::Codec::Vp8 => vp8.is_some_and(|d| d.keyframe),
            codec => core::is_keyframe(codec, &payload),
        };
        let incoming = core::Incoming {
            track,
            layer,
            ssrc: *ssrc,
            seq: *packet.seq_no,
            rtp_time: packet.time.numer(),
            marker: packet.header.marker,
            keyframe,
            audio_level: packet
                .header
                .ext_vals
                .audio_level
                .map(|level| core::AudioLevel {
                    voice: packet.header.ext_vals.voice_activity.unwrap_or(false),
                    level: level.unsigned_abs().min(127),
                }),
            vp8,
            payload,
            arrival: now,
        };
        slot.core.handle_rtp(&incoming, now);
        let room = session.room.clone();
        self.pump_room(&room);
    }

    /// A viewer asked for a keyframe (PLI/FIR): the room merges and throttles.
    pub(crate) fn keyframe_requested(&mut self, id: u64, request: &KeyframeRequest) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let Some(video) = session.tx_video.filter(|v| v.mid == request.mid) else {
            return;
        };
        let room = session.room.clone();
        if let Some(slot) = self.rooms.get_mut(&room) {
            self.shared
                .metrics
                .keyframe_requests
                .with_label_values(&["from_viewers"])
                .inc();
            slot.core
                .handle_keyframe_request(id, u64::from(*video.ssrc), Instant::now());
        }
        self.pump_room(&room);
    }

    /// str0m's egress bandwidth estimate toward a viewer.
    pub(crate) fn estimate(&mut self, id: u64, bps: u64) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let room = session.room.clone();
        if let Some(slot) = self.rooms.get_mut(&room) {
            slot.core.set_estimate(id, bps, Instant::now());
        }
        self.pump_room(&room);
    }

    /// The layer viewer session `id` asks for (access already checked: it exists in the
    /// named room and plays).
    pub(crate) fn set_layer(&mut self, id: u64, choice: LayerChoice) -> Result<(), SfuError> {
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SfuError::NoSuchSession);
        };
        let pref = match choice {
            LayerChoice::Low => core::LayerPref::Low,
            LayerChoice::Mid => core::LayerPref::Mid,
            LayerChoice::High => core::LayerPref::High,
            LayerChoice::Auto => core::LayerPref::Auto,
        };
        let Some(video) = session.tx_video else {
            // Not connected yet: kept until its video stream starts (then subscribed at it).
            if session.takes_video() {
                session.layer_wanted = Some(pref);
                return Ok(());
            }
            return Err(SfuError::NoVideo);
        };
        let room = session.room.clone();
        if let Some(slot) = self.rooms.get_mut(&room) {
            slot.core
                .set_preferred_layer(id, u64::from(*video.ssrc), pref, Instant::now());
        }
        self.pump_room(&room);
        Ok(())
    }

    pub(crate) fn room_info(&self, room: &str) -> Result<RoomInfo, SfuError> {
        let slot = self.rooms.get(room).ok_or(SfuError::NoSuchRoom)?;
        let mut publishers = Vec::new();
        let mut viewer_sessions = Vec::new();
        for id in &slot.sessions {
            let Some(s) = self.sessions.get(id) else {
                continue;
            };
            let stats = SessionStats {
                core: slot.core.peer_stats(*id).unwrap_or_default(),
                nacks: s.streams_seen.values().map(|r| r.nacks).sum(),
                rtt_ms: (s.streams_seen.values().filter_map(|r| r.rtt).max())
                    .map(|d| d.as_secs_f64() * 1000.0),
                loss: (s.streams_seen.values().filter_map(|r| r.loss)).reduce(f32::max),
            };
            match s.kind {
                SessionKind::Publish => {
                    let mut kinds: Vec<&'static str> = s
                        .tracks
                        .values()
                        .map(|(_, k)| {
                            if *k == MediaKind::Audio {
                                "audio"
                            } else {
                                "video"
                            }
                        })
                        .collect();
                    kinds.sort_unstable();
                    kinds.dedup();
                    publishers.push(PublisherInfo {
                        id: id.to_string(),
                        label: s.label.clone(),
                        connected: s.connected,
                        kinds,
                        layers: s.rids_seen.clone(),
                        stats,
                    });
                }
                SessionKind::Play(_) => viewer_sessions.push(ViewerInfo {
                    id: id.to_string(),
                    label: s.label.clone(),
                    connected: s.connected,
                    stats,
                }),
            }
        }
        let stats = slot.core.stats();
        Ok(RoomInfo {
            room: room.to_owned(),
            publishers,
            viewers: viewer_sessions.len(),
            viewer_sessions,
            speaker: slot.core.speaker().map(|s| s.to_string()),
            forwarded_packets: stats.forwarded_packets,
            stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut rids: Vec<Rid> = names.iter().map(|n| Rid::from(*n)).collect();
        sort_rids(&mut rids);
        rids.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn rids_are_ordered_low_to_high_in_either_naming() {
        assert_eq!(sorted(&["f", "h", "q"]), ["q", "h", "f"]);
        // High first, as some clients offer it: `h` is the top of l/m/h.
        assert_eq!(sorted(&["h", "m", "l"]), ["l", "m", "h"]);
        assert_eq!(sorted(&["2", "0", "1"]), ["0", "1", "2"]);
        assert_eq!(sorted(&["high", "low", "mid"]), ["low", "mid", "high"]);
    }
}
