//! [`WhepViewer`]: a webrtc-rs WHEP viewer that counts what the SFU forwards.
//!
//! Offers recvonly audio + video, then reads every track through the interceptors (so NACKs
//! and receiver reports go back to the SFU) and keeps, per kind: unique packets and bytes,
//! duplicates, losses (per SSRC: expected − received over extended sequence numbers), the SSRCs
//! seen (an SFU that rewrites correctly shows one per kind across layer switches), VP8 frames
//! and keyframes, the size in the last keyframe (which synthetic layer arrives), and the longest
//! gap between two packets (a freeze detector).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;

use super::rtx::RepairTap;
use super::{ClientOptions, Session, loopback_peer_with};
use crate::Result;
use crate::synth::parse_vp8;

/// What arrived for one media kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Unique RTP packets (duplicates excluded).
    pub packets: u64,
    /// Payload bytes of those packets.
    pub bytes: u64,
    /// Packets whose sequence number was already seen recently.
    pub duplicates: u64,
    /// Sequence numbers never received (nor repaired), summed over SSRCs.
    pub lost: u64,
    /// Holes filled by RTX repairs (not included in `packets`).
    pub repaired: u64,
    /// SSRCs seen, in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// VP8 frame starts (video only).
    pub frames: u64,
    /// VP8 keyframes (video only).
    pub keyframes: u64,
    /// Width × height of the last keyframe (video only).
    pub last_keyframe_size: Option<(u16, u16)>,
    /// Distinct keyframe sizes, in order of first appearance (layers seen).
    pub sizes_seen: Vec<(u16, u16)>,
    /// Longest time between two consecutive packets.
    pub max_gap: Duration,
    /// VP8 frames whose picture ID is not the previous frame's + 1 (15-bit wrap): an SFU that
    /// switches layers without rewriting it shows each switch here (video only).
    pub picture_id_jumps: u64,
    /// Errors `read_rtp` returned (the track is read on after one, as a browser would; see
    /// [`MAX_READ_ERRORS`]) and the last of them.
    pub read_errors: u64,
    pub last_read_error: Option<String>,
}

/// Consecutive `read_rtp` errors after which a track is taken as ended (a closed track
/// returns its error at once, every time).
pub const MAX_READ_ERRORS: u32 = 50;

/// What arrived, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewerStats {
    /// Opus.
    pub audio: KindStats,
    /// VP8.
    pub video: KindStats,
}

#[derive(Debug, Default)]
struct Seq {
    base: u64,
    highest: u64,
    received: u64,
    recent: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl Seq {
    /// Window for duplicate detection (≈ 1 s of 1080p video).
    const WINDOW: usize = 2048;

    /// Records `seq`; returns false for a duplicate.
    fn record(&mut self, seq: u16) -> bool {
        let ext = if self.received == 0 {
            // Start high so that early reordering cannot underflow.
            let e = (1 << 32) | u64::from(seq);
            self.base = e;
            self.highest = e;
            e
        } else {
            let cand = (self.highest & !0xffff) | u64::from(seq);
            if cand + 0x8000 < self.highest {
                cand + 0x1_0000
            } else if cand > self.highest + 0x8000 {
                cand - 0x1_0000
            } else {
                cand
            }
        };
        if !self.seen.insert(ext) {
            return false;
        }
        self.recent.push_back(ext);
        if self.recent.len() > Self::WINDOW
            && let Some(old) = self.recent.pop_front()
        {
            self.seen.remove(&old);
        }
        self.received += 1;
        self.base = self.base.min(ext);
        self.highest = self.highest.max(ext);
        true
    }

    fn lost(&self) -> u64 {
        (self.highest - self.base + 1).saturating_sub(self.received)
    }
}

#[derive(Debug, Default)]
struct Track {
    stats: KindStats,
    seqs: HashMap<u32, Seq>,
    last: Option<Instant>,
    picture_id: Option<u16>,
}

impl Track {
    fn on_repair(&mut self, ssrc: u32, osn: u16, len: usize) {
        if let Some(seq) = self.seqs.get_mut(&ssrc)
            && seq.record(osn)
        {
            self.stats.repaired += 1;
            self.stats.bytes += len as u64;
        }
    }

    fn on_packet(&mut self, video: bool, ssrc: u32, seq: u16, payload: &[u8]) {
        let now = Instant::now();
        if let Some(prev) = self.last.replace(now) {
            self.stats.max_gap = self.stats.max_gap.max(now - prev);
        }
        if !self.stats.ssrcs.contains(&ssrc) {
            self.stats.ssrcs.push(ssrc);
        }
        if !self.seqs.entry(ssrc).or_default().record(seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.packets += 1;
        self.stats.bytes += payload.len() as u64;
        if video && let Some(info) = parse_vp8(payload).filter(|i| i.start_of_frame) {
            self.stats.frames += 1;
            if let Some(id) = info.picture_id {
                let expected = self.picture_id.map(|prev| prev.wrapping_add(1) & 0x7fff);
                if expected.is_some_and(|e| e != id) {
                    self.stats.picture_id_jumps += 1;
                }
                self.picture_id = Some(id);
            }
            if info.keyframe {
                self.stats.keyframes += 1;
                if let Some(size) = info.size {
                    self.stats.last_keyframe_size = Some(size);
                    if !self.stats.sizes_seen.contains(&size) {
                        self.stats.sizes_seen.push(size);
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    audio: Track,
    video: Track,
}

/// Counts the RTP of every remote track of a peer connection.
#[derive(Debug, Clone, Default)]
pub struct MediaCounter {
    shared: Arc<Mutex<Shared>>,
}

impl MediaCounter {
    /// Installs the `on_track` handler on `pc`; with `add_recvonly`, also adds recvonly audio
    /// and video transceivers (for an offerer such as a WHEP client). RTX repairs are not
    /// counted unless `pc` was built with [`MediaCounter::repair_tap`].
    pub async fn add_to(pc: &RTCPeerConnection, add_recvonly: bool) -> Result<Self> {
        let counter = Self::default();
        counter.attach(pc, add_recvonly).await?;
        Ok(counter)
    }

    /// The tap to build the peer connection with ([`super::loopback_peer_with`]) so that RTX
    /// repairs fill holes (they count as `repaired`, not as packets).
    pub fn repair_tap(&self) -> RepairTap {
        let shared = self.shared.clone();
        Arc::new(move |ssrc, osn, len| {
            // Only video has RTX (see `rtx::register_rtx`).
            if let Ok(mut s) = shared.lock() {
                s.video.on_repair(ssrc, osn, len);
            }
        })
    }

    /// See [`MediaCounter::add_to`].
    pub async fn attach(&self, pc: &RTCPeerConnection, add_recvonly: bool) -> Result<()> {
        if add_recvonly {
            for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
                let init = RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    send_encodings: Vec::new(),
                };
                pc.add_transceiver_from_kind(kind, Some(init)).await?;
            }
        }
        let on_track = self.shared.clone();
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            let shared = on_track.clone();
            tokio::spawn(async move {
                let video = track.kind() == RTPCodecType::Video;
                let mut failing = 0u32;
                while failing < MAX_READ_ERRORS {
                    let read = track.read_rtp().await;
                    let Ok(mut s) = shared.lock() else { return };
                    let t = if video { &mut s.video } else { &mut s.audio };
                    match read {
                        Ok((pkt, _)) => {
                            failing = 0;
                            t.on_packet(
                                video,
                                pkt.header.ssrc,
                                pkt.header.sequence_number,
                                &pkt.payload,
                            );
                        }
                        Err(err) => {
                            failing += 1;
                            t.stats.read_errors += 1;
                            t.stats.last_read_error = Some(err.to_string());
                        }
                    }
                }
            });
            Box::pin(async {})
        }));
        Ok(())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ViewerStats {
        let Ok(s) = self.shared.lock() else {
            return ViewerStats::default();
        };
        let snap = |t: &Track| KindStats {
            lost: t.seqs.values().map(Seq::lost).sum(),
            ..t.stats.clone()
        };
        ViewerStats {
            audio: snap(&s.audio),
            video: snap(&s.video),
        }
    }

    /// Polls [`MediaCounter::stats`] until `pred` holds; `what` names it in the timeout error.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ViewerStats) -> bool,
    ) -> Result<ViewerStats> {
        crate::wait_until(timeout, what, || {
            let s = self.stats();
            std::future::ready(Ok(pred(&s).then_some(s)))
        })
        .await
    }
}

/// A connected WHEP viewer; counting runs until [`WhepViewer::close`] or drop.
#[derive(Debug)]
pub struct WhepViewer {
    session: Session,
    counter: MediaCounter,
}

impl WhepViewer {
    /// Plays `POST {base_url}/whep/{room}` (the floor), or `/whep/{room}/{publisher}`.
    pub async fn connect(
        base_url: &str,
        room: &str,
        publisher: Option<&str>,
        client: &ClientOptions,
    ) -> Result<Self> {
        let counter = MediaCounter::default();
        let (pc, state) = loopback_peer_with(Some(counter.repair_tap()), client.ipv6).await?;
        counter.attach(&pc, true).await?;
        let path = match publisher {
            Some(p) => format!("/whep/{room}/{p}"),
            None => format!("/whep/{room}"),
        };
        let session = Session::establish(pc, state, base_url, &path, client).await?;
        Ok(Self { session, counter })
    }

    /// Absolute URL of the WHEP session resource.
    pub fn location(&self) -> &str {
        &self.session.whip.location
    }

    /// Current peer connection state.
    pub fn state(&self) -> RTCPeerConnectionState {
        self.session.state()
    }

    /// Asks the SFU for simulcast layer `rid` (`q`, `h`, `f` or `auto`).
    pub async fn set_layer(&self, rid: &str) -> Result<()> {
        self.session
            .signal
            .set_layer(&self.session.whip.location, rid)
            .await
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ViewerStats {
        self.counter.stats()
    }

    /// Polls [`WhepViewer::stats`] until `pred` holds; `what` names it in the timeout error.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ViewerStats) -> bool,
    ) -> Result<ViewerStats> {
        self.counter.wait_for(what, timeout, pred).await
    }

    /// `DELETE`s the session and closes the peer connection.
    pub async fn close(self) -> Result<()> {
        self.session.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;

    #[test]
    fn losses_and_duplicates_across_wraparound() {
        let mut s = Seq::default();
        for seq in [65_533u16, 65_534, 0, 1, 1, 3] {
            s.record(seq);
        }
        // 65533..=3 spans 7 numbers; 65535 and 2 missing; the second 1 is a duplicate.
        assert_eq!((s.received, s.lost()), (5, 2));
        assert!(s.record(2), "late packet fills the hole");
        assert_eq!(s.lost(), 1);
    }
}
