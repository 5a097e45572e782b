//! Per-subscription rewriting of sequence numbers, RTP timestamps and VP8 picture ids, so a
//! subscriber sees one continuous stream whatever layer or publisher is behind it.
//!
//! A *mapping* starts at a switch point (a keyframe of the new source) and adds fixed offsets to
//! everything from that source: out = in + offset. So upstream loss stays visible (a gap of one
//! in gives a gap of one out, and the subscriber's NACKs name real packets), while packets of
//! other layers never touch the counters. At a switch the offsets are re-chosen so that:
//! - the sequence number continues at last + 1;
//! - the timestamp continues at last + the wall time elapsed since that packet × clock rate
//!   (at least 1 tick, so two frames never merge);
//! - the VP8 PictureID continues at last + 1 (mod 2^15) and TL0PICIDX at last + 1 (mod 2^8).
//!
//! Late packets of the current mapping are forwarded with the same offsets if they are within a
//! 128-packet window and not before the mapping's first packet; duplicates in that window are
//! dropped. All arithmetic wraps, so extended and 32-bit inputs both work.

use std::time::Instant;

use super::packet::{Incoming, Vp8Rewrite};
use super::{LayerIdx, TrackId};

/// Width of the duplicate / reorder window, in packets.
pub const REORDER_WINDOW: u64 = 128;

/// Outgoing values for one forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// Outgoing extended sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub rtp_time: u64,
    /// VP8 fields to patch, when they differ from the source's.
    pub vp8: Option<Vp8Rewrite>,
}

/// Why a packet of the current mapping was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Already forwarded (same sequence number inside the window).
    Duplicate,
    /// Older than the reorder window or than the mapping's first packet.
    TooOld,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    track: TrackId,
    layer: LayerIdx,
    ssrc: u32,
    seq_off: u64,
    ts_off: u64,
    pic_off: u16,
    tl0_off: u8,
    base_in: u64,
    max_in: u64,
    /// Bit i set: `max_in - i` was forwarded.
    window: u128,
    /// The SSRC this mapping replaced on the same layer (encoder restart), whose stragglers
    /// must not be taken for yet another restart.
    retired: Option<u32>,
}

/// How long after the current SSRC's newest frame a packet of the SSRC it replaced is still
/// a straggler to drop, not the encoder coming back. Counted in time, not in the new SSRC's
/// packets: a late duplicate of the old SSRC long after the restart must not take the
/// mapping back from a source that is still sending (the viewer would then drop every packet
/// of the live one as the retired one's).
pub const RETIRED_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Last {
    seq: u64,
    ts: u64,
    arrival: Instant,
    pic: Option<u16>,
    tl0: Option<u8>,
}

/// The rewriting state of one subscription.
#[derive(Debug, Clone)]
pub struct Rewriter {
    first_seq: u64,
    map: Option<Mapping>,
    last: Option<Last>,
}

const PIC_MOD: u16 = 0x8000;

fn wrap_pic(v: u16, wide: bool) -> u16 {
    if wide { v % PIC_MOD } else { v & 0x7f }
}

/// Whether `a` is after `b` in wrapping order.
pub(crate) fn after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

impl Rewriter {
    /// A rewriter whose first forwarded packet gets sequence number `first_seq`.
    pub fn new(first_seq: u64) -> Rewriter {
        Rewriter {
            first_seq,
            map: None,
            last: None,
        }
    }

    /// Whether a mapping exists and the packet's SSRC differs from it (encoder restart).
    pub fn ssrc_changed(&self, ssrc: u32) -> bool {
        self.map.is_some_and(|m| m.ssrc != ssrc)
    }

    /// Whether a packet of `ssrc` arriving `at` is a late one of the encoder the current
    /// mapping replaced, to drop: its SSRC is the retired one and the current SSRC sent a
    /// frame within [`RETIRED_HOLD`] (`last` is the newest frame forwarded, and a mapping
    /// starts by forwarding one). After that silence, the old SSRC is a restart like any
    /// other.
    pub fn is_retired(&self, ssrc: u32, at: Instant) -> bool {
        let recent = self
            .last
            .is_some_and(|l| at.saturating_duration_since(l.arrival) < RETIRED_HOLD);
        recent && self.map.is_some_and(|m| m.retired == Some(ssrc))
    }

    /// Whether the current mapping forwards this exact (track, layer, ssrc).
    pub fn maps(&self, track: TrackId, layer: LayerIdx, ssrc: u32) -> bool {
        self.map
            .is_some_and(|m| m.track == track && m.layer == layer && m.ssrc == ssrc)
    }

    /// Forget the current mapping (source gone); continuity is kept for the next [`start`].
    ///
    /// [`start`]: Rewriter::start
    pub fn stop(&mut self) {
        self.map = None;
    }

    /// Start a new mapping at `pkt` (a switch point) and rewrite it.
    pub fn start(&mut self, pkt: &Incoming, clock_rate: u32) -> Rewritten {
        let vp8 = pkt.vp8.as_ref();
        let (seq_out, ts_out, pic_out, tl0_out) = match self.last {
            None => (self.first_seq, pkt.rtp_time, None, None),
            Some(last) => {
                let elapsed = pkt.arrival.saturating_duration_since(last.arrival);
                let ticks = (elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000).max(1);
                let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
                (
                    last.seq.wrapping_add(1),
                    last.ts.wrapping_add(ticks),
                    last.pic.map(|p| p.wrapping_add(1) % PIC_MOD),
                    last.tl0.map(|t| t.wrapping_add(1)),
                )
            }
        };
        let pic_in = vp8.and_then(|v| v.picture_id);
        let tl0_in = vp8.and_then(|v| v.tl0picidx);
        let pic_off = match (pic_in, pic_out) {
            (Some(i), Some(o)) => o.wrapping_sub(i) % PIC_MOD,
            _ => 0,
        };
        let tl0_off = match (tl0_in, tl0_out) {
            (Some(i), Some(o)) => o.wrapping_sub(i),
            _ => 0,
        };
        let retired = self
            .map
            .filter(|m| m.track == pkt.track && m.layer == pkt.layer && m.ssrc != pkt.ssrc)
            .map(|m| m.ssrc);
        self.map = Some(Mapping {
            retired,
            track: pkt.track,
            layer: pkt.layer,
            ssrc: pkt.ssrc,
            seq_off: seq_out.wrapping_sub(pkt.seq),
            ts_off: ts_out.wrapping_sub(pkt.rtp_time),
            pic_off,
            tl0_off,
            base_in: pkt.seq,
            max_in: pkt.seq,
            window: 1,
        });
        self.rewrite(pkt, true)
    }

    /// Rewrite a packet of the current mapping's source. Call only when [`maps`] holds.
    ///
    /// [`maps`]: Rewriter::maps
    pub fn map(&mut self, pkt: &Incoming) -> Result<Rewritten, Reject> {
        let Some(m) = self.map.as_mut() else {
            return Err(Reject::TooOld);
        };
        if after(pkt.seq, m.max_in) {
            let shift = pkt.seq.wrapping_sub(m.max_in);
            m.window = if shift >= REORDER_WINDOW {
                0
            } else {
                m.window << shift
            };
            m.window |= 1;
            m.max_in = pkt.seq;
            Ok(self.rewrite(pkt, true))
        } else {
            let back = m.max_in.wrapping_sub(pkt.seq);
            if back >= REORDER_WINDOW || after(m.base_in, pkt.seq) {
                return Err(Reject::TooOld);
            }
            let bit = 1u128 << back;
            if m.window & bit != 0 {
                return Err(Reject::Duplicate);
            }
            m.window |= bit;
            Ok(self.rewrite(pkt, false))
        }
    }

    fn rewrite(&mut self, pkt: &Incoming, newest: bool) -> Rewritten {
        let Some(m) = self.map else {
            return Rewritten {
                seq: pkt.seq,
                rtp_time: pkt.rtp_time,
                vp8: None,
            };
        };
        let seq = pkt.seq.wrapping_add(m.seq_off);
        let rtp_time = pkt.rtp_time.wrapping_add(m.ts_off);
        let (mut pic, mut tl0) = (None, None);
        let mut vp8 = None;
        if let Some(v) = pkt.vp8.as_ref() {
            pic = v
                .picture_id
                .map(|p| wrap_pic(p.wrapping_add(m.pic_off), v.picture_id_15bit));
            tl0 = v.tl0picidx.map(|t| t.wrapping_add(m.tl0_off));
            if pic != v.picture_id || tl0 != v.tl0picidx {
                vp8 = Some(Vp8Rewrite {
                    picture_id: pic,
                    tl0picidx: tl0,
                });
            }
        }
        if newest || self.last.is_none() {
            let prev = self.last;
            let ts_newer = prev.is_none_or(|l| !after(l.ts, rtp_time));
            self.last = Some(Last {
                seq,
                ts: if ts_newer {
                    rtp_time
                } else {
                    prev.map_or(rtp_time, |l| l.ts)
                },
                arrival: if ts_newer {
                    pkt.arrival
                } else {
                    prev.map_or(pkt.arrival, |l| l.arrival)
                },
                pic: pic.or(prev.and_then(|l| l.pic)),
                tl0: tl0.or(prev.and_then(|l| l.tl0)),
            });
        }
        Rewritten { seq, rtp_time, vp8 }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::core::codec::Vp8Info;

    fn pkt(track: TrackId, layer: LayerIdx, seq: u64, ts: u64, at: Instant) -> Incoming {
        Incoming {
            track,
            layer,
            ssrc: 100 + u32::from(layer),
            seq,
            rtp_time: ts,
            marker: false,
            keyframe: false,
            audio_level: None,
            vp8: None,
            payload: Arc::from(&[0u8][..]),
            arrival: at,
        }
    }

    fn with_vp8(mut p: Incoming, pic: u16, tl0: u8) -> Incoming {
        p.vp8 = Some(Vp8Info {
            picture_id: Some(pic),
            picture_id_15bit: true,
            tl0picidx: Some(tl0),
            tid: Some(0),
            ..Vp8Info::default()
        });
        p
    }

    #[test]
    fn gaps_are_kept_and_duplicates_dropped() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(1000);
        assert_eq!(r.start(&pkt(1, 0, 50, 9000, t0), 90_000).seq, 1000);
        assert_eq!(r.map(&pkt(1, 0, 51, 9000, t0)).map(|w| w.seq), Ok(1001));
        // 52 lost upstream: 53 comes out as 1003, leaving the gap for NACK.
        assert_eq!(r.map(&pkt(1, 0, 53, 9000, t0)).map(|w| w.seq), Ok(1003));
        // 52 arrives late: same mapping.
        assert_eq!(r.map(&pkt(1, 0, 52, 9000, t0)).map(|w| w.seq), Ok(1002));
        assert_eq!(r.map(&pkt(1, 0, 52, 9000, t0)), Err(Reject::Duplicate));
        assert_eq!(r.map(&pkt(1, 0, 49, 9000, t0)), Err(Reject::TooOld));
        assert_eq!(
            r.map(&pkt(1, 0, 53 + REORDER_WINDOW, 9000, t0))
                .map(|w| w.seq),
            Ok(1003 + REORDER_WINDOW)
        );
        assert_eq!(r.map(&pkt(1, 0, 53, 9000, t0)), Err(Reject::TooOld));
    }

    #[test]
    fn switch_continues_seq_ts_and_vp8() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(7);
        r.start(&with_vp8(pkt(1, 0, 500, 1_000, t0), 0x7ffe, 250), 90_000);
        let last = r
            .map(&with_vp8(pkt(1, 0, 501, 4_000, t0), 0x7fff, 255))
            .expect("fwd");
        assert_eq!(last.vp8, None, "first mapping leaves VP8 fields alone");
        // Switch to layer 2 (own seq/ts/pic spaces) 100 ms later.
        let at = t0 + Duration::from_millis(100);
        let first = r.start(&with_vp8(pkt(1, 2, 9, 77_777, at), 42, 3), 90_000);
        assert_eq!(first.seq, last.seq + 1);
        assert_eq!(first.rtp_time, last.rtp_time + 9_000);
        assert_eq!(
            first.vp8,
            Some(Vp8Rewrite {
                picture_id: Some(0),
                tl0picidx: Some(0)
            })
        );
        let next = r
            .map(&with_vp8(pkt(1, 2, 10, 80_777, at), 43, 3))
            .expect("fwd");
        assert_eq!(
            (next.seq, next.rtp_time),
            (first.seq + 1, first.rtp_time + 3_000)
        );
        assert_eq!(next.vp8.and_then(|v| v.picture_id), Some(1));
    }

    #[test]
    fn wraparound_of_32_bit_inputs() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(1);
        let a = r.start(&pkt(1, 0, 65_535, u64::from(u32::MAX) - 10, t0), 90_000);
        // Driver passed non-extended values that wrapped: still +1 / +20 in the low bits.
        let b = r.map(&pkt(1, 0, 65_536, 9, t0)).expect("fwd");
        assert_eq!(b.seq, a.seq + 1);
        assert_eq!((b.rtp_time as u32).wrapping_sub(a.rtp_time as u32), 20);
    }

    #[test]
    fn same_instant_switch_still_advances_timestamp() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(1);
        let a = r.start(&pkt(1, 0, 1, 100, t0), 90_000);
        let b = r.start(&pkt(2, 0, 1, 5, t0), 90_000);
        assert_eq!(b.rtp_time, a.rtp_time + 1);
        assert!(r.maps(2, 0, 100));
        assert!(r.ssrc_changed(101));
    }
}
