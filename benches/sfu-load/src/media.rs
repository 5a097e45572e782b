//! Synthetic media the SFU can route: VP8 payloads with a valid payload descriptor (RFC 7741:
//! picture id, TL0PICIDX, TID) and a VP8 frame tag whose P bit marks keyframes, and Opus
//! packets. Every payload carries a send stamp (CLOCK_REALTIME nanoseconds, the clock of the
//! kernel's SO_TIMESTAMPNS receive stamps) and a magic number, at an offset the SFU never
//! rewrites, so a subscriber can compute the latency the hop through the SFU added. Video
//! payloads also say whether their frame is a keyframe (keyframe bursts are paced by the SFU's
//! per-viewer pacer, so their latency is reported apart).

use std::time::{SystemTime, UNIX_EPOCH};

/// Marks a payload as ours ("hcld").
pub const MAGIC: u32 = 0x6863_6c64;
/// VP8 RTP payload size. With the RTP header, extensions and the SRTP tag the datagram is
/// about 1200 bytes, like a browser's full-MTU video packet.
pub const VIDEO_PAYLOAD: usize = 1150;
/// Shortest VP8 payload: the descriptor, the keyframe header and the stamp fit.
pub const MIN_VIDEO_PAYLOAD: usize = 32;
/// Opus payload size (a 20 ms frame at ~24 kbit/s).
pub const AUDIO_PAYLOAD: usize = 60;
/// Offset of the stamp in a VP8 payload: after the 6-byte descriptor and the 10-byte keyframe
/// header (start of frame), so it is at the same place in every packet.
const VIDEO_STAMP_AT: usize = 16;
/// Offset of the stamp in an Opus payload: after the TOC byte.
const AUDIO_STAMP_AT: usize = 1;
/// VP8 RTP clock rate.
pub const VIDEO_CLOCK: u32 = 90_000;
/// Opus RTP clock rate.
pub const AUDIO_CLOCK: u32 = 48_000;

/// Nanoseconds on CLOCK_REALTIME, the clock of SO_TIMESTAMPNS.
pub fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One packet of a VP8 frame.
#[derive(Debug, Clone, Copy)]
pub struct Vp8Packet {
    /// First packet of the frame (S=1, carries the frame tag).
    pub start: bool,
    /// The frame is a keyframe (P bit 0 in the frame tag).
    pub keyframe: bool,
    /// 15-bit picture id.
    pub picture_id: u16,
    /// TL0PICIDX.
    pub tl0: u8,
}

/// Builds a VP8 RTP payload of `len` bytes (at least [`MIN_VIDEO_PAYLOAD`]) stamped with
/// `stamp_ns`.
pub fn vp8_payload(p: Vp8Packet, stamp_ns: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(MIN_VIDEO_PAYLOAD)];
    // X=1, N=0, S, PID=0.
    b[0] = 0x80 | if p.start { 0x10 } else { 0 };
    // I (picture id), L (TL0PICIDX), T (TID; the SFU requires T when L is present).
    b[1] = 0xe0;
    let [hi, lo] = (p.picture_id & 0x7fff).to_be_bytes();
    b[2] = 0x80 | hi;
    b[3] = lo;
    b[4] = p.tl0;
    // TID 0, Y=1 (layer sync).
    b[5] = 0x20;
    if p.start {
        // Frame tag (RFC 6386 § 9.1): P bit (bit 0) is 0 on keyframes; show_frame = 1.
        b[6] = if p.keyframe { 0x10 } else { 0x11 };
        if p.keyframe {
            b[9..12].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            b[12..14].copy_from_slice(&640u16.to_le_bytes());
            b[14..16].copy_from_slice(&480u16.to_le_bytes());
        }
    }
    stamp(&mut b[VIDEO_STAMP_AT..], stamp_ns);
    b[VIDEO_STAMP_AT + 12] = u8::from(p.keyframe);
    b
}

/// Builds an Opus payload stamped with `stamp_ns` (TOC 0xf8: CELT fullband 20 ms).
pub fn opus_payload(stamp_ns: u64) -> Vec<u8> {
    let mut b = vec![0u8; AUDIO_PAYLOAD];
    b[0] = 0xf8;
    stamp(&mut b[AUDIO_STAMP_AT..], stamp_ns);
    b
}

fn stamp(at: &mut [u8], ns: u64) {
    at[..8].copy_from_slice(&ns.to_le_bytes());
    at[8..12].copy_from_slice(&MAGIC.to_le_bytes());
}

/// The send stamp of a payload of ours, if it is one, and whether it belongs to a keyframe.
pub fn read_stamp(payload: &[u8], video: bool) -> Option<(u64, bool)> {
    let at = if video {
        VIDEO_STAMP_AT
    } else {
        AUDIO_STAMP_AT
    };
    let field = payload.get(at..at + 13)?;
    let magic = u32::from_le_bytes(field[8..12].try_into().ok()?);
    let stamp = u64::from_le_bytes(field[..8].try_into().ok()?);
    (magic == MAGIC).then_some((stamp, video && field[12] == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_keyframes_are_marked() {
        let key = Vp8Packet {
            start: true,
            keyframe: true,
            picture_id: 0x1234,
            tl0: 7,
        };
        let p = vp8_payload(key, 42, VIDEO_PAYLOAD);
        assert_eq!(p.len(), VIDEO_PAYLOAD);
        assert_eq!(read_stamp(&p, true), Some((42, true)));
        assert_eq!(p[6] & 0x01, 0, "keyframe: P bit clear");
        let delta = vp8_payload(
            Vp8Packet {
                keyframe: false,
                ..key
            },
            43,
            1,
        );
        assert_eq!(
            delta.len(),
            MIN_VIDEO_PAYLOAD,
            "a frame's short last packet"
        );
        assert_eq!(delta[6] & 0x01, 1, "delta frame: P bit set");
        assert_eq!(read_stamp(&delta, true), Some((43, false)));
        assert_eq!(read_stamp(&opus_payload(44), false), Some((44, false)));
        assert_eq!(read_stamp(&[0u8; 40], true), None);
    }
}
