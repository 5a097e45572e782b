//! What goes into a [`Room`](super::Room) per packet ([`Incoming`]) and what comes out
//! ([`Forward`] per subscriber copy, [`RoomEvent`] for everything else).

use std::sync::Arc;
use std::time::Instant;

use super::codec::Vp8Info;
use super::{Codec, LayerIdx, OutTrackId, PeerId, Rid, SourceLayer, TrackId};

/// An RFC 6464 client-to-mixer audio level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioLevel {
    /// The V flag: the sender's voice activity detector says this packet holds speech.
    pub voice: bool,
    /// The level in -dBov: 0 is the loudest, 127 silence.
    pub level: u8,
}

impl AudioLevel {
    /// Loudness on a 0 (silence) ..= 127 (full scale) scale: `127 - level`, clamped.
    pub fn loudness(self) -> u8 {
        127u8.saturating_sub(self.level.min(127))
    }
}

/// One RTP packet received from a publisher, already parsed and decrypted by the driver.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The published track it belongs to.
    pub track: TrackId,
    /// Its simulcast layer (index into the layers given to `add_publisher_track`).
    pub layer: LayerIdx,
    /// The publisher's SSRC for this layer; a change means the encoder restarted.
    pub ssrc: u32,
    /// Extended (rollover-counted) sequence number, as str0m's `SeqNo`.
    pub seq: u64,
    /// Extended RTP timestamp in the codec clock. A 32-bit value also works: all timestamp
    /// arithmetic is wrapping, so the low 32 bits of every output stay right.
    pub rtp_time: u64,
    /// The RTP marker bit (end of a video frame).
    pub marker: bool,
    /// Whether this packet starts a keyframe ([`is_keyframe`](super::is_keyframe)). Audio
    /// packets are always switch points whatever this says.
    pub keyframe: bool,
    /// The RFC 6464 audio level header extension, when present.
    pub audio_level: Option<AudioLevel>,
    /// The parsed VP8 payload descriptor for VP8 tracks.
    pub vp8: Option<Vp8Info>,
    /// The RTP payload, shared (never copied) with every subscriber's [`Forward`].
    pub payload: Arc<[u8]>,
    /// When the driver received it (used as the send wallclock and for timestamp gaps).
    pub arrival: Instant,
}

/// Rewritten VP8 payload descriptor fields for one forwarded packet.
///
/// The driver turns this into a str0m `Vp8Patch` (`Vp8Descriptor::parse(payload)?.patch()
/// .picture_id(..).tl0_pic_idx(..).build()`). A field is `Some` only when the packet has it; the
/// value always fits the packet's own field width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Rewrite {
    /// The new PictureID.
    pub picture_id: Option<u16>,
    /// The new TL0PICIDX.
    pub tl0picidx: Option<u8>,
}

/// One packet to send to one subscriber: `StreamTx::write_rtp` on `out_track`'s stream.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The subscriber.
    pub sub: PeerId,
    /// The subscriber's send stream.
    pub out_track: OutTrackId,
    /// Extended outgoing sequence number (`SeqNo::from(seq)`); starts below 2^15 so a fresh
    /// receiver's SRTP rollover counter of 0 is right.
    pub seq: u64,
    /// Outgoing RTP timestamp; the driver sends the low 32 bits.
    pub rtp_time: u64,
    /// The RTP marker bit, passed through.
    pub marker: bool,
    /// Whether this packet starts a keyframe.
    pub keyframe: bool,
    /// The payload: an `Arc` clone of the incoming one.
    pub payload: Arc<[u8]>,
    /// VP8 descriptor fields to patch; `None` when the payload goes out unchanged.
    pub vp8_rewrite: Option<Vp8Rewrite>,
    /// The audio level to echo in the outgoing header extension.
    pub audio_level: Option<AudioLevel>,
    /// The codec of the source (picks the payload type when a subscription changes source).
    pub codec: Codec,
    /// Where the packet came from.
    pub source: SourceLayer,
    /// When the source packet arrived (the `wallclock` for `RtpWrite`).
    pub arrival: Instant,
}

/// Something other than media that the driver must act on or may report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// Ask the publisher for a keyframe on one layer (send a PLI for `rid` on its `Mid`).
    KeyframeRequest {
        /// The publisher.
        peer: PeerId,
        /// The published track.
        track: TrackId,
        /// The layer wanted.
        layer: LayerIdx,
        /// The layer's rid, `None` without simulcast.
        rid: Option<Rid>,
    },
    /// The active speaker changed (`None`: the speaker left and nobody has spoken since).
    SpeakerChanged {
        /// The new speaker.
        peer: Option<PeerId>,
        /// The speaker's audio track.
        track: Option<TrackId>,
    },
    /// A subscription started forwarding a different layer or a different track.
    LayerSwitched {
        /// The subscriber.
        sub: PeerId,
        /// The subscriber's send stream.
        out_track: OutTrackId,
        /// What it forwarded before (`None` on its first keyframe).
        from: Option<SourceLayer>,
        /// What it forwards now.
        to: SourceLayer,
    },
    /// A subscription forwards nothing any more: it lost its source (track removed, floor
    /// released), or its video, even at its lowest layer, no longer fits the subscriber's estimate.
    SubscriptionIdle {
        /// The subscriber.
        sub: PeerId,
        /// The subscriber's send stream.
        out_track: OutTrackId,
        /// Why.
        reason: IdleReason,
    },
    /// What a subscriber's subscriptions would carry at the layers it prefers, with the
    /// upswitch headroom, changed by more than a tenth since last reported: the bitrate its egress bandwidth estimator should probe toward (str0m only probes
    /// when told one). Zero when it has nothing to receive.
    WantedBitrate {
        /// The subscriber.
        sub: PeerId,
        /// Bits/s.
        bps: u64,
    },
}

/// Why a subscription went idle ([`RoomEvent::SubscriptionIdle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleReason {
    /// Nothing to show (the track was removed, the floor released, nobody has spoken), or
    /// a start still waiting for its first keyframe was called off: nothing had flowed.
    NoSource,
    /// Paused for bandwidth: a video with one layer (nothing lower to switch to) above what
    /// the subscriber's estimate leaves after its audio. Its audio keeps flowing; the video
    /// resumes at a keyframe once the estimate has room for it again.
    Bandwidth,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudness_is_inverse_of_dbov() {
        let l = |level| AudioLevel { voice: true, level }.loudness();
        assert_eq!(l(0), 127);
        assert_eq!(l(127), 0);
        assert_eq!(l(200), 0);
        assert_eq!(l(30), 97);
    }
}
