//! The commands the HTTP side sends to the media plane, and their answers.

use std::time::Duration;

/// What a new session does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// WHIP: the peer sends audio/video into the room.
    Publish,
    /// WHEP: the peer receives from `source`.
    Play(PlaySource),
}

/// What a viewer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaySource {
    /// Whoever holds the floor, else the loudest speaker, else the first publisher.
    Floor,
    /// One publisher session.
    Publisher(u64),
}

/// Simulcast layer a viewer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerChoice {
    /// Lowest (rid `q`, thumbnails).
    Low,
    /// Middle (rid `h`).
    Mid,
    /// Highest (rid `f`, the floor).
    High,
    /// Best that fits the bandwidth estimate.
    Auto,
}

impl LayerChoice {
    /// Parses the rid names used on the wire (`q`, `h`, `f`, `auto`).
    pub fn from_rid(rid: &str) -> Option<Self> {
        match rid {
            "q" | "low" => Some(Self::Low),
            "h" | "mid" => Some(Self::Mid),
            "f" | "high" => Some(Self::High),
            "auto" => Some(Self::Auto),
            _ => None,
        }
    }
}

/// An existing session, named by a client that wants to end, patch or re-tune it, with who
/// asks. Only the session's creator (the subject it was created with, its `label`) or a
/// moderator of the room may act on it, and only through its own endpoint kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Room name.
    pub room: String,
    /// Session id (from the `Location` of its creation).
    pub id: u64,
    /// Named through WHIP (a publish session) or WHEP (a viewer); the other kind is not found.
    pub publish: bool,
    /// The asking subject.
    pub subject: String,
    /// The asker may act on any session of the room (meeting moderators).
    pub moderator: bool,
}

/// A session-creation request.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    /// Room name.
    pub room: String,
    /// Publish or play.
    pub kind: SessionKind,
    /// Who it is (shown in room listings), e.g. the token subject.
    pub label: String,
    /// The SDP offer.
    pub offer: String,
}

/// A created session.
#[derive(Debug, Clone)]
pub struct SessionCreated {
    /// Session id (unique on this node).
    pub session: u64,
    /// The SDP answer.
    pub answer: String,
    /// Our ICE ufrag in it: the session's entity tag (a `PATCH`'s `If-Match` names it).
    pub ufrag: String,
}

/// The answer to an ICE restart (RFC 9725 § 4.3.2).
#[derive(Debug, Clone)]
pub struct RestartAnswer {
    /// Our new credentials and candidates, as an `application/trickle-ice-sdpfrag`.
    pub fragment: String,
    /// Our new ICE ufrag: the session's new entity tag.
    pub ufrag: String,
}

/// A publisher as listed in a room.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublisherInfo {
    /// Session id (use with `POST /whep/{room}/{id}`).
    pub id: String,
    /// Label given at publish time.
    pub label: String,
    /// Whether ICE+DTLS completed.
    pub connected: bool,
    /// Media kinds published (`audio`, `video`).
    pub kinds: Vec<&'static str>,
    /// Simulcast layers seen on its video (rids).
    pub layers: Vec<String>,
    /// What it sent and what was asked of it.
    pub stats: SessionStats,
}

/// One viewer (WHEP session) of a room.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewerInfo {
    /// Session id.
    pub id: String,
    /// Label given at play time.
    pub label: String,
    /// Whether ICE+DTLS completed.
    pub connected: bool,
    /// What was forwarded to it and what it asked for.
    pub stats: SessionStats,
}

/// One session's counters since it joined: the room core's (as a publisher: `packets_in`,
/// `bytes_in`, `keyframe_requests_sent` to it; as a viewer: the rest) and its NACKs (sent to
/// a publisher for lost packets, or received from a viewer). A site with a bad link shows it
/// here: NACKs and keyframe requests climbing, a low `estimate_bps`, copies `dropped`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SessionStats {
    /// The room core's counters of this peer.
    #[serde(flatten)]
    pub core: crate::core::PeerStats,
    /// NACKs: sent to this publisher, or received from this viewer.
    pub nacks: u64,
    /// Round-trip time to it, ms: the largest of its streams' last reports, when they allow
    /// it (a viewer's receiver reports that refer to our sender reports, as browsers' do; a
    /// publisher's RTCP XR). `None` otherwise.
    pub rtt_ms: Option<f64>,
    /// Fraction of its packets lost (0–1), the worst of its streams' last reports: what this
    /// viewer reported losing of what we sent, or what we lost of this publisher's packets.
    pub loss: Option<f32>,
}

/// A room as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomInfo {
    /// Room name.
    pub room: String,
    /// Publishers.
    pub publishers: Vec<PublisherInfo>,
    /// Viewers.
    pub viewers: usize,
    /// Each viewer.
    pub viewer_sessions: Vec<ViewerInfo>,
    /// Current active speaker's session id, if any.
    pub speaker: Option<String>,
    /// Forwarded packets since the room started.
    pub forwarded_packets: u64,
    /// The room's counters since it started (departed peers included) and current gauges.
    pub stats: crate::core::RoomStats,
}

/// The `If-Match` of a WHIP/WHEP `PATCH` (RFC 9725 § 4.3, RFC 9110 § 13.1.1): which ICE
/// session the client means. A session's entity tag is its current local ICE ufrag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`: taken as the current session (clients before RFC 9725 send none).
    Absent,
    /// `If-Match: *` (what an ICE restart sends): any session.
    Any,
    /// These entity tags, unquoted: one must be the current one.
    Tags(Vec<String>),
}

impl IfMatch {
    /// Reads an `If-Match` field value: `*`, or a comma-separated list of entity tags
    /// (`"tag"`, or weak `W/"tag"`, which never matches: If-Match compares strongly, RFC 9110
    /// § 13.1.1). Anything that is not a quoted tag is kept as matching nothing.
    pub fn parse(value: Option<&str>) -> IfMatch {
        let Some(value) = value.map(str::trim) else {
            return IfMatch::Absent;
        };
        if value == "*" {
            return IfMatch::Any;
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                break;
            }
            let weak = rest.starts_with("W/");
            let body = rest.strip_prefix("W/").unwrap_or(rest);
            let Some(quoted) = body.strip_prefix('"') else {
                break; // not an entity tag: nothing after it can be trusted either
            };
            let Some(end) = quoted.find('"') else {
                break;
            };
            if !weak {
                tags.push(quoted[..end].to_owned());
            }
            rest = &quoted[end + 1..];
        }
        IfMatch::Tags(tags)
    }

    /// Whether it names the session whose local ufrag is `ufrag`.
    pub fn matches(&self, ufrag: &str) -> bool {
        match self {
            IfMatch::Absent | IfMatch::Any => true,
            IfMatch::Tags(tags) => tags.iter().any(|t| t == ufrag),
        }
    }
}

#[cfg(test)]
mod if_match_tests {
    use super::IfMatch;

    #[test]
    fn strong_tags_only_and_commas_inside_quotes() {
        let tags = |v| IfMatch::parse(Some(v));
        assert_eq!(IfMatch::parse(None), IfMatch::Absent);
        assert_eq!(tags(" * "), IfMatch::Any);
        assert!(tags("\"hc1\"").matches("hc1"));
        assert!(tags("\"x\", \"hc1\"").matches("hc1"));
        assert!(!tags("W/\"hc1\"").matches("hc1"), "weak never matches");
        assert!(!tags("hc1").matches("hc1"), "unquoted is not a tag");
        assert!(
            !tags("\"a,hc1\"").matches("hc1"),
            "one tag with a comma in it"
        );
        assert!(tags("\"a,hc1\", \"hc1\"").matches("hc1"));
        assert!(!tags("\"hc1").matches("hc1"), "unterminated");
        assert!(!tags("").matches("hc1"));
    }
}

/// Errors of the media plane, each mapping to one HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SfuError {
    /// The SDP offer could not be parsed or is not acceptable (400).
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// No audio/video codec in the offer that the SFU forwards (406).
    #[error("no common codec: the SFU forwards Opus, VP8, VP9 and H.264")]
    NoCommonCodec,
    /// Unknown session (404).
    #[error("no such session")]
    NoSuchSession,
    /// The session belongs to someone else and the asker does not moderate the room (403).
    #[error("this session belongs to another participant")]
    NotYours,
    /// Unknown room (404).
    #[error("no such room")]
    NoSuchRoom,
    /// Unknown publisher to play (404).
    #[error("no such publisher in this room")]
    NoSuchPublisher,
    /// The room or node is at its peer cap (503).
    #[error("limit reached: too many {0}")]
    Full(&'static str),
    /// The worker's inbox is full or it is shutting down (503).
    #[error("media plane busy or stopping; retry")]
    Busy,
    /// The worker did not answer in time (503).
    #[error("media plane did not answer within {0:?}")]
    Timeout(Duration),
    /// A `PATCH`'s `If-Match` names another ICE session than the current one (412).
    #[error("the ICE session changed (If-Match does not name the current entity tag)")]
    IceSessionChanged,
    /// A viewer's offer cannot take the video codec its publisher sends (406).
    #[error("no common codec: {0}")]
    CodecMismatch(String),
    /// A layer choice for a viewer session that receives no video: its offer negotiated
    /// none (409). One not yet connected keeps its choice for when its video starts.
    #[error("this session receives no video: there is no layer to choose")]
    NoVideo,
}
