//! Replayed RTP, found before decryption: per incoming SSRC (kept in its `RxStream`, so the
//! check and the record are the lookup the packet needs anyway), the sequence numbers str0m
//! accepted lately. A datagram carrying one of them again (a replay, or a network duplicate)
//! is dropped and counted (`dropped_packets{reason="replayed"}`) without the SRTP work str0m
//! would spend on it before dropping it silently.
//!
//! Only numbers str0m *accepted* (it emitted the packet) are recorded, so a forged packet
//! cannot reserve a number and make the genuine one look replayed. Only main-stream SSRCs get
//! a window (str0m hands repaired packets over under their main SSRC), so RTX and padding on
//! a repair SSRC always go to str0m.

/// The header fields the check needs, read from a datagram that is RTP by RFC 7983's first
/// byte and not RTCP by RFC 5761's payload type range.
pub(crate) fn rtp_ssrc_seq(data: &[u8]) -> Option<(u32, u16)> {
    let [b0, b1, s0, s1, _, _, _, _, x0, x1, x2, x3, ..] = *data else {
        return None;
    };
    let rtp = (128..=191).contains(&b0) && !(192..=223).contains(&b1);
    rtp.then(|| {
        (
            u32::from_be_bytes([x0, x1, x2, x3]),
            u16::from_be_bytes([s0, s1]),
        )
    })
}

/// Width of the window, in sequence numbers.
const WIDTH: u64 = 128;

/// The last [`WIDTH`] sequence numbers of one SSRC and which of them were accepted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayWindow {
    /// Highest accepted extended sequence number (`None` before the first).
    highest: Option<u64>,
    /// Bit `i`: `highest - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// Records that str0m accepted extended sequence number `ext`.
    pub(crate) fn accepted(&mut self, ext: u64) {
        match self.highest {
            None => {
                self.highest = Some(ext);
                self.seen = 1;
            }
            Some(high) if ext > high => {
                let shift = ext - high;
                self.seen = if shift >= WIDTH {
                    1
                } else {
                    (self.seen << shift) | 1
                };
                self.highest = Some(ext);
            }
            Some(high) if high - ext < WIDTH => self.seen |= 1 << (high - ext),
            Some(_) => {}
        }
    }

    /// Whether 16-bit sequence number `seq` was accepted already (within the window; older
    /// ones are left to str0m).
    pub(crate) fn is_replay(&self, seq: u16) -> bool {
        let Some(high) = self.highest else {
            return false;
        };
        // The extended number nearest to the highest one.
        let cand = (high & !0xffff) | u64::from(seq);
        let ext = if cand > high + 0x8000 {
            cand.wrapping_sub(0x1_0000)
        } else if cand + 0x8000 < high {
            cand + 0x1_0000
        } else {
            cand
        };
        ext <= high && high - ext < WIDTH && self.seen & (1 << (high - ext)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_numbers_are_replays_others_are_not() {
        let mut w = ReplayWindow::default();
        assert!(!w.is_replay(5), "nothing accepted yet");
        for ext in [0x1_fff0_u64, 0x1_fff1, 0x1_fff3] {
            w.accepted(ext);
        }
        assert!(w.is_replay(0xfff0) && w.is_replay(0xfff1) && w.is_replay(0xfff3));
        assert!(
            !w.is_replay(0xfff2),
            "a gap is still welcome (a late original or RTX)"
        );
        assert!(!w.is_replay(0xfff4), "ahead");
        // Across the 16-bit wrap.
        w.accepted(0x2_0002);
        assert!(w.is_replay(2) && w.is_replay(0xfff3));
        assert!(!w.is_replay(1) && !w.is_replay(3));
        // A late one inside the window is recorded too.
        w.accepted(0x1_fff2);
        assert!(w.is_replay(0xfff2));
    }

    #[test]
    fn only_the_last_128_are_remembered() {
        let mut w = ReplayWindow::default();
        w.accepted(1000);
        w.accepted(1000 + WIDTH - 1);
        assert!(w.is_replay(1000));
        w.accepted(1000 + WIDTH);
        assert!(!w.is_replay(1000), "slid out: left to str0m");
        w.accepted(1000 + 10 * WIDTH);
        assert!(!w.is_replay((1000 + WIDTH) as u16));
        assert!(w.is_replay((1000 + 10 * WIDTH) as u16));
        // Too old to record: ignored.
        w.accepted(5);
        assert!(!w.is_replay(5));
    }

    #[test]
    fn rtp_headers_are_told_from_rtcp_and_others() {
        let mut rtp = [0u8; 20];
        rtp[0] = 0x80;
        rtp[1] = 96;
        rtp[2..4].copy_from_slice(&0x1234u16.to_be_bytes());
        rtp[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        assert_eq!(rtp_ssrc_seq(&rtp), Some((0xdead_beef, 0x1234)));
        let mut rtcp = rtp;
        rtcp[1] = 200;
        assert_eq!(rtp_ssrc_seq(&rtcp), None, "sender report");
        assert_eq!(rtp_ssrc_seq(&rtp[..11]), None, "truncated");
        let mut stun = rtp;
        stun[0] = 0x00;
        assert_eq!(rtp_ssrc_seq(&stun), None);
        let mut dtls = rtp;
        dtls[0] = 22;
        assert_eq!(rtp_ssrc_seq(&dtls), None);
    }
}
