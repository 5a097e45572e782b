//! One peer connection: a str0m `Rtc` in RTP mode plus what the worker needs to route its
//! packets (which incoming SSRC is which track and layer; which outgoing stream carries
//! audio or video). Building it from an SDP offer lives here too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaKind, Mid, Pt};
use str0m::net::TcpType;
use str0m::rtp::{Ssrc, StreamTx};
use str0m::{Candidate, IceCreds, Rtc};

use super::api::{SessionKind, SfuError};
use super::config::SfuConfig;

/// An incoming stream as the room knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxStream {
    /// Track id in the room.
    pub track: u64,
    /// Simulcast layer index (0 = lowest).
    pub layer: u8,
    /// Codec of the stream.
    pub codec: crate::core::Codec,
    /// The sequence numbers str0m accepted lately on it (`replay`).
    pub replay: super::replay::ReplayWindow,
}

impl RxStream {
    /// Records `stream` as what arrives on `ssrc`, replacing the entry of an SSRC that
    /// carried the same track and layer before (str0m moves a stream to a publisher's new
    /// SSRC, an encoder restart, and the old one never arrives again): a publisher changing
    /// SSRC over and over cannot grow the table.
    pub(crate) fn insert(rx: &mut crate::core::IdMap<Ssrc, RxStream>, ssrc: Ssrc, stream: Self) {
        rx.retain(|_, s| s.track != stream.track || s.layer != stream.layer);
        rx.insert(ssrc, stream);
    }
}

/// An outgoing stream toward a viewer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxStream {
    /// Media line.
    pub mid: Mid,
    /// Our SSRC for it.
    pub ssrc: Ssrc,
}

/// What str0m's per-stream stats last said of one of a session's streams.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamReport {
    /// Cumulative NACKs (str0m's stats are cumulative; the metric counts the deltas).
    pub nacks: u64,
    /// Last round-trip time reported (a report without one keeps it).
    pub rtt: Option<std::time::Duration>,
    /// Last fraction lost reported (a viewer's receiver reports; for a publisher, what we
    /// measured of its packets).
    pub loss: Option<f32>,
}

/// A peer connection on a worker.
pub(crate) struct Session {
    pub id: u64,
    pub room: Arc<str>,
    pub kind: SessionKind,
    pub label: String,
    /// Our current ICE ufrag: the session's entity tag and its key in the ufrag table.
    pub ufrag: String,
    pub rtc: Rtc,
    pub created: Instant,
    pub connected: bool,
    /// When `rtc` next wants `Input::Timeout`.
    pub next_timeout: Instant,
    /// Publisher: incoming SSRC → track/layer (filled as streams appear).
    pub rx: crate::core::IdMap<Ssrc, RxStream>,
    /// str0m reported an error for it: reaped as `failed`, not `closed`.
    pub failed: bool,
    /// Publisher: media line → track id.
    pub tracks: HashMap<Mid, (u64, MediaKind)>,
    /// Publisher: each track's simulcast rids, lowest quality first (empty: no simulcast).
    pub layers: HashMap<u64, Vec<str0m::media::Rid>>,
    /// Publisher: tracks already announced to the room (at their first packet).
    pub announced: Vec<u64>,
    /// Publisher: rids seen on video.
    pub rids_seen: Vec<String>,
    /// Already in the worker's dirty list.
    pub queued: bool,
    /// Negotiated payload type per forwarded codec (see [`Session::negotiated_pts`]).
    pub pts: [Option<Pt>; 4],
    /// Per stream, what str0m's stats last reported.
    pub streams_seen: HashMap<(Mid, Option<str0m::media::Rid>), StreamReport>,
    /// The client's current ICE ufrag (a different one in a PATCH means ICE restart).
    pub remote_ufrag: String,
    /// Our `a=candidate:` lines, repeated in ICE-restart answers.
    pub candidate_lines: Vec<String>,
    /// Remote candidates trickled to it so far (at most [`MAX_TRICKLED`]).
    pub trickled: usize,
    /// Viewer: outgoing audio and video streams.
    pub tx_audio: Option<TxStream>,
    pub tx_video: Option<TxStream>,
    /// Viewer: the layer asked for before its video stream started (a wall page asks for
    /// thumbnails right after the answer); applied when it does.
    pub layer_wanted: Option<crate::core::LayerPref>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("room", &self.room)
            .field("kind", &self.kind)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

/// Remote candidates one session may be trickled over its life, ICE restarts included;
/// beyond, a trickle PATCH is refused (400) and an ICE restart's are left out. str0m's ICE agent keeps every remote candidate it cannot
/// pair and scans them all for each new one, so an unbounded stream of them would grow a
/// session without limit and stall its worker. A browser trickles a few per network
/// interface and ICE session (host, server-reflexive, relay): 128 is a dozen restarts.
pub const MAX_TRICKLED: usize = 128;

/// Codecs the SFU forwards (by their SDP names).
const FORWARDED: [&str; 4] = ["opus/", "vp8/", "vp9/", "h264/"];

/// How every session's `Rtc` is configured: SRTP authentication failures counted
/// (`srtp_audit`), ICE-lite, RTP mode (the SFU forwards packets, not frames), 1 s stats, the
/// forwarded codecs only; with `bwe_bps`, send-side bandwidth estimation starting there
/// (viewers, unless `sfu.viewer_bwe` is off). Public so the `str0m_floor` bench measures
/// exactly this `Rtc`.
pub fn rtc_config(bwe_bps: Option<u64>) -> str0m::RtcConfig {
    let builder = Rtc::builder()
        .set_crypto_provider(super::srtp_audit::provider())
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_stats_interval(Some(Duration::from_secs(1)))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true);
    match bwe_bps {
        Some(bps) => builder.enable_bwe(Some(Bitrate::bps(bps))),
        None => builder,
    }
}

/// Packets a viewer's video send stream may hold for retransmission whatever the age limit
/// (str0m's `send_buffer_video` default; at a 1 s history only a stream above ~10 Mbit/s
/// reaches it).
const RTX_MAX_PACKETS: usize = 1000;

/// Share of a stream's bytes resends may take before queued ones are dropped: str0m's own
/// default (`DEFAULT_RTX_RATIO_CAP`, crate-private), kept when the history is set.
const RTX_RATIO_CAP: f32 = 0.15;

/// Configures a viewer's video send stream as every session's is: its sent packets are kept
/// `history` (`sfu.rtx_history_ms`) to answer NACKs, instead of str0m's 3 s, and resends are
/// dropped beyond `RTX_RATIO_CAP` (15 %). Public so tests and the `str0m_floor` bench configure a
/// stream exactly so.
pub fn keep_for_retransmission(stream: &mut StreamTx, history: Duration) {
    stream.set_rtx_cache(RTX_MAX_PACKETS, history, Some(RTX_RATIO_CAP));
}

/// Builds the `Rtc` for `offer` and returns it with the SDP answer.
pub(crate) fn accept(
    config: &SfuConfig,
    kind: &SessionKind,
    offer: &str,
    creds: IceCreds,
    udp: SocketAddr,
    tcp: Option<SocketAddr>,
    now: Instant,
) -> Result<(Rtc, String), SfuError> {
    check_offer(kind, offer)?;
    let parsed = SdpOffer::from_sdp_string(offer).map_err(|e| SfuError::BadOffer(e.to_string()))?;
    let viewer_bwe = matches!(kind, SessionKind::Play(_)) && config.viewer_bwe;
    let mut rtc = rtc_config(viewer_bwe.then_some(config.initial_bwe_bps))
        .set_local_ice_credentials(creds)
        .build(now);
    for ip in super::local::advertised(config, udp) {
        let cand = Candidate::host(SocketAddr::new(ip, udp.port()), "udp")
            .map_err(|e| SfuError::BadOffer(format!("local candidate: {e}")))?;
        rtc.add_local_candidate(cand);
    }
    if let Some(tcp) = tcp {
        for ip in super::local::advertised(config, tcp) {
            let cand = Candidate::builder()
                .tcp()
                .host(SocketAddr::new(ip, tcp.port()))
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| SfuError::BadOffer(format!("local TCP candidate: {e}")))?;
            rtc.add_local_candidate(cand);
        }
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|e| SfuError::BadOffer(e.to_string()))?;
    Ok((rtc, answer.to_sdp_string()))
}

/// Cheap structural checks before str0m parses the offer, so the client learns exactly what
/// is wrong: a media section of the right direction, a codec we forward.
fn check_offer(kind: &SessionKind, offer: &str) -> Result<(), SfuError> {
    if offer.len() > 64 * 1024 {
        return Err(SfuError::BadOffer("offer larger than 64 KiB".into()));
    }
    if !offer.starts_with("v=0") {
        return Err(SfuError::BadOffer(
            "not an SDP offer (must start with v=0)".into(),
        ));
    }
    let mut media = 0;
    let (mut audio, mut video) = (0, 0);
    let mut usable_direction = false;
    let mut codec = false;
    for section in offer.split("\nm=").skip(1) {
        if section.starts_with("audio") {
            audio += 1;
        } else if section.starts_with("video") {
            video += 1;
        } else {
            continue;
        }
        media += 1;
        let lower = section.to_ascii_lowercase();
        let direction = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"]
            .into_iter()
            .find(|d| lower.contains(d))
            .unwrap_or("a=sendrecv");
        usable_direction |= match kind {
            SessionKind::Publish => matches!(direction, "a=sendonly" | "a=sendrecv"),
            SessionKind::Play(_) => matches!(direction, "a=recvonly" | "a=sendrecv"),
        };
        codec |= lower
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
            .filter_map(|l| l.split_once(' ').map(|(_, name)| name))
            .any(|name| FORWARDED.iter().any(|c| name.starts_with(c)));
    }
    if media == 0 {
        return Err(SfuError::BadOffer("no audio or video media section".into()));
    }
    // A session is one camera and one microphone: what a viewer is sent, and what viewers
    // see of a publisher. More sections of a kind would be sent nothing (publish) or each be
    // sent the same packets (play: N copies for one peer's place under the caps).
    if audio > 1 || video > 1 {
        return Err(SfuError::BadOffer(format!(
            "{audio} audio and {video} video media sections: at most one of each"
        )));
    }
    if !usable_direction {
        let want = match kind {
            SessionKind::Publish => "sendonly or sendrecv (WHIP publishes)",
            SessionKind::Play(_) => "recvonly or sendrecv (WHEP plays)",
        };
        return Err(SfuError::BadOffer(format!("no media section is {want}")));
    }
    if !codec {
        return Err(SfuError::NoCommonCodec);
    }
    Ok(())
}

/// What a trickle-ICE SDP fragment (RFC 8840) carries.
#[derive(Debug, Default)]
pub(crate) struct Frag {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
    pub candidates: Vec<Candidate>,
}

/// The value of the first `a=NAME:value` line of `sdp`.
pub(crate) fn attribute(sdp: &str, name: &str) -> Option<String> {
    let prefix = format!("a={name}:");
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .map(|v| v.trim().to_owned())
}

/// Parses an `application/trickle-ice-sdpfrag` body.
pub(crate) fn parse_frag(frag: &str) -> Result<Frag, SfuError> {
    if frag.len() > 16 * 1024 {
        return Err(SfuError::BadOffer("SDP fragment larger than 16 KiB".into()));
    }
    let mut out = Frag {
        ufrag: attribute(frag, "ice-ufrag"),
        pwd: attribute(frag, "ice-pwd"),
        candidates: Vec::new(),
    };
    for line in frag.lines().map(str::trim) {
        if let Some(candidate) = line
            .strip_prefix("a=")
            .filter(|l| l.starts_with("candidate:"))
        {
            let parsed = Candidate::from_sdp_string(candidate)
                .map_err(|e| SfuError::BadOffer(format!("bad candidate {candidate:?}: {e}")))?;
            out.candidates.push(parsed);
        }
    }
    let valid = |v: &Option<String>, min: usize| {
        v.as_ref().is_none_or(|v| {
            (min..=256).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
        })
    };
    if !valid(&out.ufrag, 4) || !valid(&out.pwd, 22) {
        return Err(SfuError::BadOffer(
            "ice-ufrag must be 4-256 and ice-pwd 22-256 printable characters (RFC 8839)".into(),
        ));
    }
    // Checked here, before anything of the fragment is applied to a session.
    if out.ufrag.is_some() != out.pwd.is_some() {
        return Err(SfuError::BadOffer(
            "ice-ufrag and ice-pwd go together".into(),
        ));
    }
    Ok(out)
}

impl Session {
    /// Puts the session on the worker's `dirty` list (once) so the next flush drains it.
    pub(crate) fn queue(&mut self, dirty: &mut Vec<u64>) {
        if !self.queued {
            self.queued = true;
            dirty.push(self.id);
        }
    }

    /// Payload types negotiated with this peer, indexed by `core::Codec as usize` (looked
    /// up once after the answer, so forwarding does an array read instead of a scan).
    /// The payload type of each forwarded codec that this peer accepted: configured here
    /// and listed by its offer in a media section of the codec's kind (the sections named by
    /// `answer`'s `a=mid:` lines). A viewer is sent no codec it did not offer.
    pub fn negotiated_pts(rtc: &Rtc, answer: &str) -> [Option<Pt>; 4] {
        use crate::core::Codec as C;
        let accepted: Vec<(MediaKind, Vec<Pt>)> = answer
            .lines()
            .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
            .filter_map(|mid| rtc.media(Mid::from(mid)))
            .map(|m| (m.kind(), m.remote_pts().to_vec()))
            .collect();
        // Declaration order of `core::Codec`, so `codec as usize` indexes this array.
        [C::Opus, C::Vp8, C::Vp9, C::H264].map(|codec| {
            let kind = match codec.kind() {
                crate::core::Kind::Audio => MediaKind::Audio,
                crate::core::Kind::Video => MediaKind::Video,
            };
            let codec = super::room::str0m_codec(codec);
            rtc.codec_config()
                .iter()
                .filter(|p| p.spec().codec == codec)
                .map(|p| p.pt())
                .find(|pt| {
                    accepted
                        .iter()
                        .any(|(k, pts)| *k == kind && pts.contains(pt))
                })
        })
    }

    /// Whether this peer negotiated a video codec (a viewer: it can be sent video).
    pub fn takes_video(&self) -> bool {
        Self::negotiates_video(&self.pts)
    }

    /// Whether `pts` ([`Session::negotiated_pts`]) holds a video codec (every one after Opus).
    pub fn negotiates_video(pts: &[Option<Pt>; 4]) -> bool {
        pts[1..].iter().any(Option::is_some)
    }

    /// The video codec this publisher sends: the one its media arrives in, else the first
    /// it was accepted for in the SFU's order (what a browser sends).
    pub fn sent_video_codec(&self) -> Option<crate::core::Codec> {
        use crate::core::Codec as C;
        let arriving = self
            .rx
            .values()
            .map(|s| s.codec)
            .find(|c| c.kind() == crate::core::Kind::Video);
        arriving.or_else(|| {
            [C::Vp8, C::Vp9, C::H264]
                .into_iter()
                .find(|c| self.pts[*c as usize].is_some())
        })
    }

    /// Codec of payload type `pt` as negotiated with this peer.
    pub fn codec_of(&self, pt: Pt) -> Option<Codec> {
        self.rtc
            .codec_config()
            .find(|p| p.pt() == pt)
            .map(|p| p.spec().codec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ssrc_for_a_layer_replaces_the_old_one() {
        let stream = |track, layer| RxStream {
            track,
            layer,
            codec: crate::core::Codec::Vp8,
            replay: super::super::replay::ReplayWindow::default(),
        };
        let mut rx = crate::core::IdMap::default();
        RxStream::insert(&mut rx, 1.into(), stream(7, 0));
        RxStream::insert(&mut rx, 2.into(), stream(7, 1));
        RxStream::insert(&mut rx, 3.into(), stream(8, 0));
        for ssrc in 10..1000u32 {
            RxStream::insert(&mut rx, ssrc.into(), stream(7, 0));
        }
        assert_eq!(rx.len(), 3, "one entry per track and layer");
        assert!(rx.contains_key(&999.into()) && rx.contains_key(&2.into()));
        assert!(!rx.contains_key(&1.into()));
    }

    #[test]
    fn offer_checks_name_the_problem() {
        let play = SessionKind::Play(super::super::api::PlaySource::Floor);
        let bad =
            |kind: &SessionKind, sdp: &str| check_offer(kind, sdp).expect_err(sdp).to_string();
        assert!(bad(&SessionKind::Publish, "hello").contains("v=0"));
        assert!(bad(&SessionKind::Publish, "v=0\r\ns=-\r\n").contains("no audio or video"));
        let recv =
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
        assert!(bad(&SessionKind::Publish, recv).contains("sendonly"));
        assert!(check_offer(&play, recv).is_ok());
        let two_videos = format!(
            "{recv}m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
        );
        assert!(bad(&play, &two_videos).contains("at most one of each"));
        let g711 = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n";
        assert!(matches!(
            check_offer(&SessionKind::Publish, g711),
            Err(SfuError::NoCommonCodec)
        ));
    }
}

#[cfg(test)]
#[path = "session_fuzz.rs"]
mod fuzz;
