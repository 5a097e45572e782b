//! Pure payload inspection: keyframe detection for VP8, VP9 and H.264 and the VP8 payload
//! descriptor (RFC 7741 § 4.2).
//!
//! The driver calls these once per incoming packet to fill [`Incoming::keyframe`] and
//! [`Incoming::vp8`]; the core itself never looks into payloads. Every function takes untrusted
//! bytes and returns `false` / `None` on anything short or malformed; none can panic (all access
//! goes through `get`), which the tests check exhaustively for short inputs and with proptest.
//!
//! [`Incoming::keyframe`]: super::Incoming::keyframe
//! [`Incoming::vp8`]: super::Incoming::vp8

use super::Codec;

/// The fields of a VP8 RTP payload descriptor that forwarding needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Info {
    /// PictureID (7 or 15 bits) when the I bit is set.
    pub picture_id: Option<u16>,
    /// Whether the PictureID field is the 15-bit form (M bit set).
    pub picture_id_15bit: bool,
    /// TL0PICIDX when the L bit is set.
    pub tl0picidx: Option<u8>,
    /// Temporal layer index (TID) when the T bit is set.
    pub tid: Option<u8>,
    /// Layer sync bit (Y), meaningful only with `tid`.
    pub layer_sync: bool,
    /// KEYIDX when the K bit is set.
    pub key_idx: Option<u8>,
    /// Non-reference frame (N bit): can be dropped without hurting later frames.
    pub non_reference: bool,
    /// Start of a VP8 partition (S bit).
    pub start_of_partition: bool,
    /// Partition index (PID).
    pub partition_id: u8,
    /// Whether this packet starts a keyframe (S=1, PID=0 and the VP8 header's P bit clear).
    pub keyframe: bool,
}

impl Vp8Info {
    /// Whether this packet carries the first bytes of a frame (S=1 and PID=0).
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_id == 0
    }
}

/// Parses a VP8 RTP payload descriptor (the payload only, no RTP header).
///
/// Returns `None` when the payload is truncated (including when no VP8 payload follows the
/// descriptor) or when L is set without T, the same combination str0m's `Vp8Descriptor` rejects,
/// so any descriptor accepted here can be patched by the driver.
pub fn parse_vp8_descriptor(payload: &[u8]) -> Option<Vp8Info> {
    let b0 = *payload.first()?;
    let mut info = Vp8Info {
        non_reference: b0 & 0x20 != 0,
        start_of_partition: b0 & 0x10 != 0,
        partition_id: b0 & 0x07,
        ..Vp8Info::default()
    };
    let mut at = 1usize;
    if b0 & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        let (has_i, has_l, has_t, has_k) = (
            ext & 0x80 != 0,
            ext & 0x40 != 0,
            ext & 0x20 != 0,
            ext & 0x10 != 0,
        );
        if has_l && !has_t {
            return None;
        }
        if has_i {
            let first = *payload.get(at)?;
            at += 1;
            if first & 0x80 != 0 {
                let low = *payload.get(at)?;
                at += 1;
                info.picture_id = Some((u16::from(first & 0x7f) << 8) | u16::from(low));
                info.picture_id_15bit = true;
            } else {
                info.picture_id = Some(u16::from(first & 0x7f));
            }
        }
        if has_l {
            info.tl0picidx = Some(*payload.get(at)?);
            at += 1;
        }
        if has_t || has_k {
            let b = *payload.get(at)?;
            at += 1;
            if has_t {
                info.tid = Some(b >> 6);
                info.layer_sync = b & 0x20 != 0;
            }
            if has_k {
                info.key_idx = Some(b & 0x1f);
            }
        }
    }
    let header = *payload.get(at)?;
    info.keyframe = info.starts_frame() && header & 0x01 == 0;
    Some(info)
}

/// Whether this RTP payload starts a frame a decoder can begin with.
///
/// - VP8: S=1, PID=0 and the P bit of the VP8 payload header is 0.
/// - H.264: a single NAL unit of type 5 (IDR) or 7 (SPS); a STAP-A aggregate containing one; or
///   the first fragment (S bit) of an FU-A/FU-B carrying type 5 or 7.
/// - VP9: B (start of frame) set and P (inter-picture predicted) clear, on spatial layer 0 when
///   layer indices are present.
/// - Opus: every packet decodes on its own, so always `true`.
pub fn is_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Opus => true,
        Codec::Vp8 => parse_vp8_descriptor(payload).is_some_and(|d| d.keyframe),
        Codec::H264 => h264_keyframe(payload),
        Codec::Vp9 => vp9_keyframe(payload),
    }
}

const H264_IDR: u8 = 5;
const H264_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;
const H264_FU_B: u8 = 29;

fn h264_is_key_nal(nal_type: u8) -> bool {
    nal_type == H264_IDR || nal_type == H264_SPS
}

fn h264_keyframe(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        t @ 1..=23 => h264_is_key_nal(t),
        H264_STAP_A => {
            let mut at = 1usize;
            while let (Some(&hi), Some(&lo)) = (payload.get(at), payload.get(at + 1)) {
                let size = usize::from(u16::from_be_bytes([hi, lo]));
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if size > 0 && h264_is_key_nal(nal & 0x1f) {
                    return true;
                }
                at = at.saturating_add(2).saturating_add(size);
            }
            false
        }
        H264_FU_A | H264_FU_B => payload
            .get(1)
            .is_some_and(|&fu| fu & 0x80 != 0 && h264_is_key_nal(fu & 0x1f)),
        _ => false,
    }
}

fn vp9_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let (has_i, inter, has_l, begin) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x08 != 0,
    );
    if inter || !begin {
        return false;
    }
    let mut at = 1usize;
    if has_i {
        let Some(&pid) = payload.get(at) else {
            return false;
        };
        at += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if has_l {
        // TID(3) U(1) SID(3) D(1): only the base spatial layer starts a decodable picture.
        return payload.get(at).is_some_and(|&l| (l >> 1) & 0x07 == 0);
    }
    at <= payload.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Codec; 4] = [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264];

    #[test]
    fn vp8_minimal_keyframe_and_delta() {
        // X=0, S=1, PID=0; VP8 header P=0 => keyframe, P=1 => delta.
        assert!(is_keyframe(Codec::Vp8, &[0x10, 0x00, 0x9d]));
        assert!(!is_keyframe(Codec::Vp8, &[0x10, 0x01, 0x9d]));
        // S=0: a continuation packet is never a keyframe start.
        assert!(!is_keyframe(Codec::Vp8, &[0x00, 0x00]));
        // Descriptor only, no payload: not parseable.
        assert_eq!(parse_vp8_descriptor(&[0x10]), None);
    }

    #[test]
    fn vp8_full_descriptor() {
        // X=1 S=1; I L T K; M=1 pid=0x1234; tl0=7; tid=2 y=1 keyidx=3; payload header P=0.
        let p = [0x90, 0xf0, 0x80 | 0x12, 0x34, 7, 0b1010_0011, 0x00, 0xff];
        let d = parse_vp8_descriptor(&p).expect("valid");
        assert_eq!(d.picture_id, Some(0x1234));
        assert!(d.picture_id_15bit);
        assert_eq!(d.tl0picidx, Some(7));
        assert_eq!(d.tid, Some(2));
        assert!(d.layer_sync);
        assert_eq!(d.key_idx, Some(3));
        assert!(d.keyframe);
        // 7-bit picture id.
        let d = parse_vp8_descriptor(&[0x90, 0x80, 0x05, 0x01]).expect("valid");
        assert_eq!(
            (d.picture_id, d.picture_id_15bit, d.keyframe),
            (Some(5), false, false)
        );
        // L without T is rejected, as str0m does.
        assert_eq!(parse_vp8_descriptor(&[0x90, 0x40, 1, 0]), None);
    }

    #[test]
    fn vp8_agrees_with_str0m() {
        let samples: [&[u8]; 5] = [
            &[0x90, 0xe0, 0x80 | 0x12, 0x34, 7, 0x40, 0x00],
            &[0x90, 0x80, 0x05, 0x01],
            &[0x10, 0x00],
            &[0x00, 0x00],
            &[0x80, 0x00, 0x00],
        ];
        for p in samples {
            let ours = parse_vp8_descriptor(p);
            let theirs = str0m::rtp::Vp8Descriptor::parse(p).ok();
            assert_eq!(
                ours.map(|d| d.picture_id),
                theirs.map(|d| d.picture_id()),
                "{p:?}"
            );
            assert_eq!(
                ours.map(|d| d.tl0picidx),
                theirs.map(|d| d.tl0_pic_idx()),
                "{p:?}"
            );
            let str0m_key = theirs.is_some_and(|d| d.starts_keyframe(p));
            assert_eq!(is_keyframe(Codec::Vp8, p), str0m_key, "{p:?}");
        }
    }

    #[test]
    fn h264_nal_forms() {
        assert!(is_keyframe(Codec::H264, &[0x65, 0x88])); // IDR
        assert!(is_keyframe(Codec::H264, &[0x67, 0x42])); // SPS
        assert!(!is_keyframe(Codec::H264, &[0x41, 0x9a])); // non-IDR slice
        // STAP-A: [hdr][len=2][SPS..][len=1][PPS]
        assert!(is_keyframe(
            Codec::H264,
            &[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]
        ));
        assert!(!is_keyframe(Codec::H264, &[0x78, 0, 1, 0x68, 0, 1, 0x06]));
        assert!(!is_keyframe(Codec::H264, &[0x78, 0, 9, 0x41])); // truncated, no key NAL
        // FU-A start of IDR, middle of IDR.
        assert!(is_keyframe(Codec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe(Codec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe(Codec::H264, &[0x7c]));
    }

    #[test]
    fn vp9_descriptor() {
        assert!(is_keyframe(Codec::Vp9, &[0x08, 0x00])); // B, not P
        assert!(!is_keyframe(Codec::Vp9, &[0x48, 0x00])); // P set
        assert!(!is_keyframe(Codec::Vp9, &[0x00, 0x00])); // not start of frame
        assert!(is_keyframe(Codec::Vp9, &[0x88, 0x80, 0x01, 0x00])); // I with 15-bit pid
        assert!(!is_keyframe(Codec::Vp9, &[0x88, 0x80])); // truncated pid
        assert!(is_keyframe(Codec::Vp9, &[0xa8, 0x01, 0x00])); // L, SID=0
        assert!(!is_keyframe(Codec::Vp9, &[0xa8, 0x01, 0x02])); // L, SID=1
    }

    #[test]
    fn exhaustive_short_inputs_never_panic() {
        for len in 0..=2usize {
            let combos = 1usize << (8 * len);
            for n in 0..combos {
                let bytes = n.to_be_bytes();
                let p = &bytes[bytes.len() - len..];
                for c in ALL {
                    let _ = is_keyframe(c, p);
                }
                let _ = parse_vp8_descriptor(p);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(p in proptest::collection::vec(any::<u8>(), 0..64)) {
            for c in ALL {
                let _ = is_keyframe(c, &p);
            }
            if let Some(d) = parse_vp8_descriptor(&p) {
                // Whatever we accept, str0m accepts with the same values (the driver patches it).
                let s = str0m::rtp::Vp8Descriptor::parse(&p);
                prop_assert!(s.is_ok());
                if let Ok(s) = s {
                    prop_assert_eq!(d.picture_id, s.picture_id());
                    prop_assert_eq!(d.tl0picidx, s.tl0_pic_idx());
                    prop_assert_eq!(d.keyframe, s.starts_keyframe(&p));
                }
            }
        }
    }
}
