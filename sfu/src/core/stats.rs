//! Counters of a room and of each peer, read with [`Room::stats`] / [`Room::peer_stats`].
//!
//! Counters only grow (they are Prometheus counters upstream); gauges (`peers`, `tracks`,
//! `subscriptions`) are computed when read. Room counters keep counting what departed peers did;
//! a peer's counters vanish with the peer.
//!
//! [`Room::stats`]: super::Room::stats
//! [`Room::peer_stats`]: super::Room::peer_stats

/// Why packets were not forwarded, room-wide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DropStats {
    /// Packets for a track id the room does not know, or a layer index it does not have.
    pub unknown_track: u64,
    /// Packet copies not sent because the subscription still waits for its first keyframe.
    pub waiting_keyframe: u64,
    /// Packet copies dropped as duplicates of one already forwarded.
    pub duplicate: u64,
    /// Packet copies older than the reorder window or than the current mapping.
    pub too_old: u64,
    /// Packet copies from a restarted encoder (new SSRC) before its first keyframe.
    pub ssrc_changed: u64,
    /// Forwards dropped because the driver did not drain `max_pending_forwards`.
    pub backpressure: u64,
    /// Events dropped because the driver did not drain `max_pending_events`.
    pub events: u64,
}

impl DropStats {
    /// Every packet copy not forwarded, whatever the reason (events excluded).
    pub fn total_packets(&self) -> u64 {
        self.unknown_track
            + self.waiting_keyframe
            + self.duplicate
            + self.too_old
            + self.ssrc_changed
            + self.backpressure
    }
}

/// Room-wide counters and gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomStats {
    /// Peers present (publishing, subscribing or with an estimate).
    pub peers: usize,
    /// Published tracks present.
    pub tracks: usize,
    /// Subscriptions present.
    pub subscriptions: usize,
    /// RTP packets received from publishers.
    pub packets_in: u64,
    /// Payload bytes received from publishers.
    pub bytes_in: u64,
    /// Packet copies forwarded to subscribers.
    pub forwarded_packets: u64,
    /// Payload bytes forwarded to subscribers.
    pub forwarded_bytes: u64,
    /// Keyframe requests received from subscribers (PLI/FIR).
    pub keyframe_requests_received: u64,
    /// Keyframe requests sent to publishers (after merging).
    pub keyframe_requests_sent: u64,
    /// Keyframe requests merged into an open throttle window.
    pub keyframe_requests_merged: u64,
    /// Switches of a subscription to another layer or track (first keyframe included).
    pub layer_switches: u64,
    /// Videos paused because the subscriber's estimate could not carry even their lowest
    /// layer.
    pub bandwidth_pauses: u64,
    /// Active speaker changes.
    pub speaker_changes: u64,
    /// Packets not forwarded, by reason.
    pub dropped: DropStats,
}

/// One peer's counters: as a publisher (`packets_in`, `bytes_in`, `keyframe_requests_sent`) and
/// as a subscriber (everything else).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeerStats {
    /// Tracks it publishes.
    pub tracks: usize,
    /// Subscriptions it has.
    pub subscriptions: usize,
    /// Its last egress bandwidth estimate, bit/s.
    pub estimate_bps: Option<u64>,
    /// The bitrate its estimator was last told to probe toward (what its subscriptions carry
    /// at their preferred layers, with the upswitch headroom), bit/s.
    pub wanted_bps: Option<u64>,
    /// RTP packets received from it.
    pub packets_in: u64,
    /// Payload bytes received from it.
    pub bytes_in: u64,
    /// Keyframe requests sent to it.
    pub keyframe_requests_sent: u64,
    /// Packet copies forwarded to it.
    pub forwarded_packets: u64,
    /// Payload bytes forwarded to it.
    pub forwarded_bytes: u64,
    /// Keyframe requests it made (PLI/FIR).
    pub keyframe_requests_received: u64,
    /// Layer/track switches of its subscriptions.
    pub layer_switches: u64,
    /// Times one of its videos was paused because its estimate could not carry even the
    /// video's lowest layer.
    pub bandwidth_pauses: u64,
    /// Packet copies meant for it but not forwarded (waiting for a keyframe, duplicates, ...).
    pub dropped: u64,
}

/// Counters kept per published track (hot path: plain additions).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackCounters {
    /// RTP packets received.
    pub packets: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Keyframe requests sent to the publisher for this track.
    pub keyframe_requests_sent: u64,
}

/// Counters kept per subscription (hot path: plain additions).
#[derive(Debug, Clone, Copy, Default)]
pub struct SubCounters {
    /// Packet copies forwarded.
    pub packets: u64,
    /// Payload bytes forwarded.
    pub bytes: u64,
    /// Keyframe requests the subscriber made for this subscription.
    pub keyframe_requests: u64,
    /// Layer/track switches.
    pub layer_switches: u64,
    /// Pauses of its videos for bandwidth (not even the lowest layer fitted).
    pub bandwidth_pauses: u64,
    /// Packet copies not forwarded.
    pub dropped: u64,
}

impl PeerStats {
    /// Add a track's counters (publisher side).
    pub fn add_track(&mut self, c: &TrackCounters) {
        self.packets_in += c.packets;
        self.bytes_in += c.bytes;
        self.keyframe_requests_sent += c.keyframe_requests_sent;
    }

    /// Add a subscription's counters (subscriber side).
    pub fn add_sub(&mut self, c: &SubCounters) {
        self.forwarded_packets += c.packets;
        self.forwarded_bytes += c.bytes;
        self.keyframe_requests_received += c.keyframe_requests;
        self.layer_switches += c.layer_switches;
        self.bandwidth_pauses += c.bandwidth_pauses;
        self.dropped += c.dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_stats_sum_tracks_and_subscriptions() {
        let mut p = PeerStats::default();
        p.add_track(&TrackCounters {
            packets: 3,
            bytes: 300,
            keyframe_requests_sent: 1,
        });
        p.add_sub(&SubCounters {
            packets: 2,
            bytes: 20,
            keyframe_requests: 4,
            layer_switches: 1,
            bandwidth_pauses: 2,
            dropped: 5,
        });
        p.add_sub(&SubCounters {
            packets: 1,
            ..SubCounters::default()
        });
        assert_eq!(
            (p.packets_in, p.bytes_in, p.keyframe_requests_sent),
            (3, 300, 1)
        );
        assert_eq!((p.forwarded_packets, p.forwarded_bytes), (3, 20));
        assert_eq!(
            (
                p.keyframe_requests_received,
                p.layer_switches,
                p.bandwidth_pauses,
                p.dropped
            ),
            (4, 1, 2, 5)
        );
    }

    #[test]
    fn drop_total_excludes_events() {
        let d = DropStats {
            unknown_track: 1,
            waiting_keyframe: 2,
            duplicate: 3,
            too_old: 4,
            ssrc_changed: 5,
            backpressure: 6,
            events: 100,
        };
        assert_eq!(d.total_packets(), 21);
    }
}
