//! The sans-IO forwarding core: one [`Room`] per meeting, driven with `now` passed in.
//!
//! No sockets, threads, clocks, locks or str0m sessions live here (only str0m's plain value
//! types such as [`Rid`]). The driver owns the `Rtc`s and the UDP socket; it turns what str0m
//! reports into `handle_*` calls and turns what the room decides into str0m writes. Everything is
//! deterministic, so every behaviour is tested on simulated time (`sfu/tests/core_*.rs`).
//!
//! # Layout
//! - `room`: `Room`, its setup/teardown API, stats and output queues.
//! - `select`: which (track, layer) each subscription forwards: source resolution (track,
//!   floor, loudest speaker) and the per-subscriber layer allocation.
//! - `forward`: the hot path (`Room::handle_rtp`), keyframe requests and timers.
//! - `table`: the forwarding table: publisher tracks, their layers, and for each layer the
//!   subscriptions that listen to it.
//! - `rewrite`: per-subscription sequence number / RTP timestamp / VP8 picture-id rewriting.
//! - `layers`: per-layer bitrate meters and the budgeted simulcast layer allocation.
//! - `keyframe`: the per-(track, layer) keyframe request throttle.
//! - `speaker`: RFC 6464 audio-level smoothing and active-speaker selection.
//! - `codec`: pure payload parsers (keyframe detection, VP8 payload descriptor).
//! - `packet`, `config`, `stats`: inputs and outputs, tunables, counters.
//!
//! # Driving a room (the str0m / quinn-proto loop)
//! ```text
//! room.handle_rtp(&incoming, now);              // one mutation ...
//! for fwd in room.drain_forwards() { .. }       // ... then drain: StreamTx::write_rtp per Forward
//! while let Some(ev) = room.poll_event() { .. } // KeyframeRequest -> Rtc PLI, SpeakerChanged, ...
//! if let Some(t) = room.poll_timeout() { /* arm a timer; at t: */ room.handle_timeout(t); }
//! ```
//! Ids are the driver's: [`PeerId`] per connection, [`TrackId`] per published track (one per
//! `Mid`, all simulcast layers included), [`OutTrackId`] per subscriber send stream. A [`Forward`]
//! names the out track; the driver writes it on that track's single `StreamTx`, which is how the
//! subscriber sees one SSRC whatever layer or publisher is behind it.
//!
//! # Hot path: no allocation, no lock
//! [`Room::handle_rtp`] does one hash lookup (track id, cheap integer hasher) and then walks only
//! the subscriptions listening to that exact (track, layer): a `Vec<u32>` of slots kept in the
//! layer. Each [`Forward`] carries an `Arc` clone of the incoming payload (no copy) and is pushed
//! into a `VecDeque` whose capacity is kept across drains; switch bookkeeping uses a reused
//! scratch `Vec`. After warm-up no per-packet allocation happens
//! (`tests/core_stats.rs::buffers_do_not_grow_after_warmup`).

pub mod codec;
mod config;
mod forward;
mod keyframe;
mod layers;
mod packet;
mod rewrite;
mod room;
mod select;
mod speaker;
mod stats;
mod table;

pub use table::IdMap;

pub use codec::{Vp8Info, is_keyframe, parse_vp8_descriptor};
pub use config::RoomConfig;
pub use packet::{AudioLevel, Forward, IdleReason, Incoming, RoomEvent, Vp8Rewrite};
pub use room::{BufferCapacities, Room};
pub use stats::{DropStats, PeerStats, RoomStats};
pub use str0m::media::Rid;

/// A peer (one WebRTC connection), assigned by the driver.
pub type PeerId = u64;
/// A published track (one `Mid`, all its simulcast layers), assigned by the driver.
pub type TrackId = u64;
/// A subscriber's send stream (one outgoing `Mid`/SSRC), assigned by the driver.
pub type OutTrackId = u64;
/// A simulcast layer index: 0 is the lowest quality (rid `q`), rising with quality.
pub type LayerIdx = u8;

/// At most this many simulcast layers per track are tracked; more are ignored.
pub const MAX_LAYERS: usize = 4;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An audio track (Opus).
    Audio,
    /// A video track (VP8, VP9, H.264).
    Video,
}

/// The codecs the core knows how to switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus audio, 48 kHz RTP clock.
    Opus,
    /// VP8 video (RFC 7741), 90 kHz; picture-id / TL0PICIDX rewritten across switches.
    Vp8,
    /// VP9 video, 90 kHz; forwarded as a whole stream (no SVC layer dropping).
    Vp9,
    /// H.264 video (RFC 6184), 90 kHz.
    H264,
}

impl Codec {
    /// The RTP clock rate in Hz.
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => 90_000,
        }
    }

    /// Whether this is an audio or a video codec.
    pub fn kind(self) -> Kind {
        match self {
            Codec::Opus => Kind::Audio,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 => Kind::Video,
        }
    }
}

/// One encoding of a published track, listed lowest quality first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// The RTP stream id (`q`, `h`, `f`) or `None` for a track without simulcast.
    pub rid: Option<Rid>,
}

impl Layer {
    /// The only layer of a track sent without simulcast.
    pub fn single() -> Layer {
        Layer { rid: None }
    }

    /// A simulcast layer named by its rid.
    pub fn rid(rid: &str) -> Layer {
        Layer {
            rid: Some(Rid::from(rid)),
        }
    }

    /// The usual Chromium three-layer simulcast: `q`, `h`, `f`.
    pub fn simulcast_qhf() -> [Layer; 3] {
        [Layer::rid("q"), Layer::rid("h"), Layer::rid("f")]
    }
}

/// The highest quality a subscriber asks for on one of its video subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerPref {
    /// The lowest layer (thumbnails).
    Low,
    /// At most the middle layer.
    Mid,
    /// At most the highest layer.
    High,
    /// As high as the bandwidth estimate allows (same cap as `High`).
    #[default]
    Auto,
}

impl LayerPref {
    /// The highest layer index this preference allows.
    pub fn max_layer(self) -> LayerIdx {
        match self {
            LayerPref::Low => 0,
            LayerPref::Mid => 1,
            LayerPref::High | LayerPref::Auto => LayerIdx::MAX,
        }
    }
}

/// What a subscription shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One published track.
    Track(TrackId),
    /// The first track of the subscription's kind of whoever holds the floor.
    Floor,
    /// The first track of the subscription's kind of the current active speaker.
    LoudestSpeaker,
    /// What the room shows on its main screen: the floor holder; without one, the active
    /// speaker; before anyone has spoken, the first publisher with a track of this kind.
    Stage,
}

/// A (track, layer) pair: the exact RTP stream a subscription forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceLayer {
    /// The published track.
    pub track: TrackId,
    /// The simulcast layer of that track.
    pub layer: LayerIdx,
}
