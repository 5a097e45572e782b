//! Synthetic media: VP8 and Opus RTP payloads that an SFU can route, and parsing of them.
//!
//! An SFU never decodes, so the payload content can be filler as long as what it inspects is
//! right: the VP8 payload descriptor (RFC 7741: start bit, picture ID, TL0PICIDX, TID) and the
//! keyframe bit of the VP8 frame tag. Keyframes also carry the VP8 start code and the frame
//! size (RFC 6386 § 9.1), so a viewer can tell which simulcast layer it is receiving.
//! Audio is the 3-byte Opus packet `f8 ff fe`: one 20 ms CELT fullband frame of silence that
//! real decoders accept.

use bytes::{BufMut, Bytes, BytesMut};
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;

/// RTP payload size budget per packet (fits a 1200-byte MTU after SRTP and extensions).
pub const MAX_PAYLOAD: usize = 1100;
/// VP8 RTP clock rate.
pub const VIDEO_CLOCK: u32 = 90_000;
/// Opus RTP clock rate.
pub const AUDIO_CLOCK: u32 = 48_000;
/// One 20 ms Opus frame of silence (TOC `0xf8`: CELT FB 20 ms, mono, one frame).
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Generates the RTP packets of one synthetic VP8 stream (one simulcast layer).
#[derive(Debug, Clone)]
pub struct Vp8Source {
    width: u16,
    height: u16,
    frame_bytes: usize,
    ts_step: u32,
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
}

impl Vp8Source {
    /// A `width`×`height` stream at `fps` frames/s and about `kbps` kbit/s of payload.
    pub fn new(width: u16, height: u16, fps: u32, kbps: u32) -> Self {
        let fps = fps.max(1);
        Self {
            width,
            height,
            frame_bytes: ((kbps as usize * 1000 / 8) / fps as usize).max(20),
            ts_step: VIDEO_CLOCK / fps,
            seq: rand::random(),
            ts: rand::random(),
            picture_id: rand::random::<u16>() & 0x7fff,
            tl0: rand::random(),
        }
    }

    /// The packets of the next frame (marker bit on the last). Keyframes are 3× larger.
    /// SSRC and payload type are left 0: webrtc-rs fills them in per binding.
    pub fn next_frame(&mut self, keyframe: bool) -> Vec<Packet> {
        let size = if keyframe {
            self.frame_bytes * 3
        } else {
            self.frame_bytes
        };
        let mut frame = BytesMut::with_capacity(size);
        let first_part = (size.saturating_sub(10) as u32).min(0x7_ffff);
        frame.put_u8(u8::from(!keyframe) | 0x10 | ((first_part & 0x7) << 5) as u8);
        frame.put_u8((first_part >> 3) as u8);
        frame.put_u8((first_part >> 11) as u8);
        if keyframe {
            frame.put_slice(&[0x9d, 0x01, 0x2a]);
            frame.put_u16_le(self.width & 0x3fff);
            frame.put_u16_le(self.height & 0x3fff);
        }
        frame.resize(size.max(frame.len()), 0);
        let frame = frame.freeze();

        let chunk = MAX_PAYLOAD - 6;
        let n = frame.len().div_ceil(chunk);
        let mut out = Vec::with_capacity(n);
        for (i, part) in frame.chunks(chunk).enumerate() {
            let mut p = BytesMut::with_capacity(part.len() + 6);
            // X=1, S=1 on the first packet of the frame, partition index 0.
            p.put_u8(0x80 | if i == 0 { 0x10 } else { 0 });
            p.put_u8(0xe0); // I, L, T present
            p.put_u16(0x8000 | self.picture_id); // M=1: 15-bit picture ID
            p.put_u8(self.tl0);
            p.put_u8(if keyframe { 0x20 } else { 0x00 }); // TID=0, Y=1 on keyframes
            p.put_slice(part);
            out.push(Packet {
                header: Header {
                    version: 2,
                    marker: i + 1 == n,
                    sequence_number: self.seq,
                    timestamp: self.ts,
                    ..Default::default()
                },
                payload: p.freeze(),
            });
            self.seq = self.seq.wrapping_add(1);
        }
        self.ts = self.ts.wrapping_add(self.ts_step);
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.tl0 = self.tl0.wrapping_add(1); // every frame is a TL0 frame (one temporal layer)
        out
    }
}

/// Generates 20 ms Opus RTP packets of silence.
#[derive(Debug, Clone)]
pub struct OpusSource {
    seq: u16,
    ts: u32,
}

impl Default for OpusSource {
    fn default() -> Self {
        Self {
            seq: rand::random(),
            ts: rand::random(),
        }
    }
}

impl OpusSource {
    /// The next packet (20 ms later than the previous one).
    pub fn next_packet(&mut self) -> Packet {
        let p = Packet {
            header: Header {
                version: 2,
                sequence_number: self.seq,
                timestamp: self.ts,
                ..Default::default()
            },
            payload: Bytes::from_static(&OPUS_SILENCE),
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(AUDIO_CLOCK / 50);
        p
    }
}

/// What a viewer can read from one VP8 RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Info {
    /// First packet of a frame (S=1, partition 0).
    pub start_of_frame: bool,
    /// The frame is a keyframe (only meaningful when `start_of_frame`).
    pub keyframe: bool,
    /// Picture ID, if present.
    pub picture_id: Option<u16>,
    /// Width × height from a keyframe header.
    pub size: Option<(u16, u16)>,
}

/// Parses the VP8 payload descriptor (RFC 7741 § 4.2) and, at a frame start, the frame tag.
/// Returns `None` for a payload too short to hold what its descriptor announces.
pub fn parse_vp8(p: &[u8]) -> Option<Vp8Info> {
    let b0 = *p.first()?;
    let mut i = 1;
    let mut picture_id = None;
    if b0 & 0x80 != 0 {
        let b1 = *p.get(1)?;
        i = 2;
        if b1 & 0x80 != 0 {
            let m = *p.get(i)?;
            if m & 0x80 != 0 {
                picture_id = Some((u16::from(m & 0x7f) << 8) | u16::from(*p.get(i + 1)?));
                i += 2;
            } else {
                picture_id = Some(u16::from(m));
                i += 1;
            }
        }
        if b1 & 0x40 != 0 {
            i += 1;
        }
        if b1 & 0x30 != 0 {
            i += 1;
        }
    }
    let start_of_frame = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let body = p.get(i..)?;
    let keyframe = start_of_frame && body.first().is_some_and(|t| t & 0x01 == 0);
    let size = match body {
        [_, _, _, 0x9d, 0x01, 0x2a, w0, w1, h0, h1, ..] if keyframe => Some((
            u16::from_le_bytes([*w0, *w1]) & 0x3fff,
            u16::from_le_bytes([*h0, *h1]) & 0x3fff,
        )),
        _ => None,
    };
    Some(Vp8Info {
        start_of_frame,
        keyframe,
        picture_id,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_roundtrips_through_the_parser() {
        let mut src = Vp8Source::new(640, 360, 30, 500);
        let pkts = src.next_frame(true);
        assert!(pkts.len() > 1 && pkts.last().is_some_and(|p| p.header.marker));
        let first = parse_vp8(&pkts[0].payload).expect("parses");
        assert!(first.start_of_frame && first.keyframe);
        assert_eq!(first.size, Some((640, 360)));
        let cont = parse_vp8(&pkts[1].payload).expect("parses");
        assert!(!cont.start_of_frame && cont.size.is_none());
        let delta = parse_vp8(&src.next_frame(false)[0].payload).expect("parses");
        assert!(delta.start_of_frame && !delta.keyframe);
        assert_eq!(delta.picture_id, first.picture_id.map(|p| (p + 1) & 0x7fff));
    }

    #[test]
    fn short_payloads_are_rejected_not_panicking() {
        for p in [&[][..], &[0x80], &[0x80, 0x80], &[0x90, 0x80, 0x81]] {
            let _ = parse_vp8(p);
        }
        assert!(parse_vp8(&[0x80]).is_none());
    }
}
