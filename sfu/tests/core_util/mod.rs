//! Shared simulated-time harness of the `core_*` tests: a [`Harness`] owning a [`Room`] and a
//! virtual clock (timers fire as time is advanced), and synthetic publishers that packetize
//! VP8 simulcast frames and Opus packets with audio levels (answering keyframe requests like a
//! real encoder when asked to).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu::core::{
    AudioLevel, Codec, Forward, IdleReason, Incoming, Layer, LayerIdx, OutTrackId, PeerId, Room,
    RoomConfig, RoomEvent, TrackId, is_keyframe, parse_vp8_descriptor,
};

/// Frame interval of the synthetic video (30 fps).
pub const FRAME: Duration = Duration::from_millis(33);
/// Packet interval of the synthetic audio (20 ms Opus).
pub const AUDIO_PTIME: Duration = Duration::from_millis(20);

/// A room plus a virtual clock and everything it emitted.
#[derive(Debug)]
pub struct Harness {
    pub room: Room,
    pub t0: Instant,
    pub now: Instant,
    pub forwards: Vec<Forward>,
    pub events: Vec<RoomEvent>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(RoomConfig::default())
    }

    pub fn with_config(cfg: RoomConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            room: Room::new(cfg),
            t0,
            now: t0,
            forwards: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Move the clock to `t`, firing every timer due on the way, in order.
    pub fn advance_to(&mut self, t: Instant) {
        while let Some(due) = self.room.poll_timeout() {
            if due > t {
                break;
            }
            self.now = self.now.max(due);
            self.room.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(t);
    }

    pub fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    pub fn send(&mut self, pkt: &Incoming) {
        self.room.handle_rtp(pkt, self.now);
        self.drain();
    }

    pub fn drain(&mut self) {
        self.forwards.extend(self.room.drain_forwards());
        while let Some(e) = self.room.poll_event() {
            self.events.push(e);
        }
    }

    pub fn forwards_to(&self, sub: PeerId, out: OutTrackId) -> Vec<&Forward> {
        self.forwards
            .iter()
            .filter(|f| f.sub == sub && f.out_track == out)
            .collect()
    }

    pub fn keyframe_requests(&self, track: TrackId, layer: LayerIdx) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, RoomEvent::KeyframeRequest { track: t, layer: l, .. } if *t == track && *l == layer))
            .count()
    }

    /// Bandwidth pauses counted for `sub`, checked against the room's total (the scenes using
    /// it have one subscriber).
    pub fn bandwidth_pauses(&self, sub: PeerId) -> u64 {
        let counted = self.room.peer_stats(sub).map_or(0, |p| p.bandwidth_pauses);
        assert_eq!(self.room.stats().bandwidth_pauses, counted);
        counted
    }

    /// How often `sub` was told its subscription `out` went idle for bandwidth.
    pub fn idle_for_bandwidth(&self, sub: PeerId, out: OutTrackId) -> usize {
        self.events
            .iter()
            .filter(|e| {
                matches!(e, RoomEvent::SubscriptionIdle { sub: s, out_track: o, reason: IdleReason::Bandwidth }
                    if *s == sub && *o == out)
            })
            .count()
    }

    pub fn switches_of(&self, sub: PeerId) -> Vec<RoomEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, RoomEvent::LayerSwitched { sub: s, .. } if *s == sub))
            .cloned()
            .collect()
    }
}

/// One simulcast layer's RTP state.
#[derive(Debug, Clone)]
pub struct LayerGen {
    pub ssrc: u32,
    pub seq: u64,
    pub ts: u64,
    pub pic: u16,
    pub tl0: u8,
    pub packets_per_frame: usize,
}

/// A synthetic VP8 publisher (one track, one or more simulcast layers).
#[derive(Debug, Clone)]
pub struct VideoPub {
    pub peer: PeerId,
    pub track: TrackId,
    pub layers: Vec<LayerGen>,
    /// Answer `KeyframeRequest`s with a keyframe on the next frame of that layer.
    pub answer_pli: bool,
    pub key_next: Vec<bool>,
    events_seen: usize,
}

impl VideoPub {
    /// Layers send 1, 2 and 5 packets of 1000 bytes per frame (about 0.24, 0.48 and
    /// 1.2 Mbit/s at 30 fps); each layer has its own SSRC, sequence, timestamp and picture id.
    pub fn new(peer: PeerId, track: TrackId, layers: usize) -> VideoPub {
        let ppf = [1usize, 2, 5, 8];
        VideoPub {
            peer,
            track,
            layers: (0..layers)
                .map(|l| LayerGen {
                    ssrc: (track as u32) * 16 + l as u32,
                    seq: 1_000 + 20_000 * l as u64,
                    ts: 3_000_000 * (l as u64 + 1),
                    pic: 100 + 5_000 * l as u16,
                    tl0: 10 * l as u8,
                    packets_per_frame: ppf[l.min(3)],
                })
                .collect(),
            answer_pli: true,
            key_next: vec![true; layers],
            events_seen: 0,
        }
    }

    pub fn publish(&self, h: &mut Harness) {
        let layers: Vec<Layer> = match self.layers.len() {
            1 => vec![Layer::single()],
            _ => ["q", "h", "f", "x"][..self.layers.len()]
                .iter()
                .map(|r| Layer::rid(r))
                .collect(),
        };
        h.room
            .add_publisher_track(self.peer, self.track, Codec::Vp8, &layers, h.now);
    }

    /// Packets of the next frame of `layer`, arriving at `at`; a keyframe if `key`.
    pub fn frame(&mut self, layer: usize, key: bool, at: Instant) -> Vec<Incoming> {
        let g = &mut self.layers[layer];
        let n = g.packets_per_frame;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut p = vec![0u8; 1000];
            let first = i == 0;
            p[0] = if first { 0x90 } else { 0x80 }; // X, S on the first packet, PID 0
            p[1] = 0xe0; // I, L, T
            p[2] = 0x80 | (g.pic >> 8) as u8;
            p[3] = g.pic as u8;
            p[4] = g.tl0;
            p[5] = 0x00; // TID 0
            p[6] = if key { 0x00 } else { 0x01 }; // VP8 header P bit
            let payload: Arc<[u8]> = Arc::from(p);
            out.push(Incoming {
                track: self.track,
                layer: layer as LayerIdx,
                ssrc: g.ssrc,
                seq: g.seq,
                rtp_time: g.ts,
                marker: i + 1 == n,
                keyframe: is_keyframe(Codec::Vp8, &payload),
                audio_level: None,
                vp8: parse_vp8_descriptor(&payload),
                payload,
                arrival: at,
            });
            g.seq += 1;
        }
        g.ts += 3_000;
        g.pic = (g.pic + 1) % 0x8000;
        g.tl0 = g.tl0.wrapping_add(1);
        out
    }

    /// Stream `frames` frames on `layers`, one every [`FRAME`], advancing the harness clock.
    /// Keyframes go out when requested (if `answer_pli`) and on the first frame of each layer.
    pub fn stream(&mut self, h: &mut Harness, frames: usize, layers: &[usize]) {
        for _ in 0..frames {
            h.advance(FRAME);
            self.note_requests(h);
            for &l in layers {
                let key = std::mem::take(&mut self.key_next[l]);
                for pkt in self.frame(l, key, h.now) {
                    h.send(&pkt);
                }
            }
        }
        self.note_requests(h);
    }

    /// Mark layers to send a keyframe next for every new `KeyframeRequest` (if `answer_pli`).
    pub fn note_requests(&mut self, h: &Harness) {
        for e in &h.events[self.events_seen..] {
            if let RoomEvent::KeyframeRequest { track, layer, .. } = e
                && *track == self.track
                && self.answer_pli
            {
                self.key_next[usize::from(*layer)] = true;
            }
        }
        self.events_seen = h.events.len();
    }
}

/// A synthetic Opus publisher with an RFC 6464 level per packet.
#[derive(Debug, Clone)]
pub struct AudioPub {
    pub peer: PeerId,
    pub track: TrackId,
    pub seq: u64,
    pub ts: u64,
    pub payload: Arc<[u8]>,
}

impl AudioPub {
    pub fn new(peer: PeerId, track: TrackId) -> AudioPub {
        AudioPub {
            peer,
            track,
            seq: 500 * track,
            ts: 77_000 * track,
            payload: Arc::from(vec![0xfcu8; 80]),
        }
    }

    pub fn publish(&self, h: &mut Harness) {
        h.room
            .add_publisher_track(self.peer, self.track, Codec::Opus, &[], h.now);
    }

    pub fn packet(&mut self, level: u8, at: Instant) -> Incoming {
        let p = Incoming {
            track: self.track,
            layer: 0,
            ssrc: self.track as u32,
            seq: self.seq,
            rtp_time: self.ts,
            marker: false,
            keyframe: true,
            audio_level: Some(AudioLevel {
                voice: level < 60,
                level,
            }),
            vp8: None,
            payload: self.payload.clone(),
            arrival: at,
        };
        self.seq += 1;
        self.ts += 960;
        p
    }
}

/// Check that a subscriber's forwards form one continuous stream: sequence numbers +1 each,
/// timestamps never going back and advancing with every new frame, VP8 picture id +1 per frame.
pub fn assert_continuous(fwds: &[&Forward]) {
    for w in fwds.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.seq, a.seq + 1, "seq gap between {a:?} and {b:?}");
        let dt = b.rtp_time.wrapping_sub(a.rtp_time) as i64;
        assert!(dt >= 0, "timestamp went back: {a:?} -> {b:?}");
        let pic = |f: &Forward| {
            f.vp8_rewrite
                .and_then(|r| r.picture_id)
                .or_else(|| parse_vp8_descriptor(&f.payload).and_then(|d| d.picture_id))
        };
        if let (Some(pa), Some(pb)) = (pic(a), pic(b)) {
            let step = pb.wrapping_sub(pa) % 0x8000;
            if dt == 0 {
                assert_eq!(step, 0, "picture id changed inside a frame: {a:?} -> {b:?}");
            } else {
                assert_eq!(
                    step, 1,
                    "picture id did not advance by one frame: {a:?} -> {b:?}"
                );
                assert!(a.marker, "a new frame began before the previous one ended");
            }
        }
    }
}
