//! Prometheus metrics of the media plane. Labels have fixed, small value sets.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of the SFU.
#[derive(Debug, Clone)]
pub struct SfuMetrics {
    /// `hubcast_sfu_peers`: sessions (publishers + viewers) on this node.
    pub peers: IntGauge,
    /// `hubcast_sfu_tracks`: incoming tracks being forwarded.
    pub tracks: IntGauge,
    /// `hubcast_sfu_forwarded_packets_total`.
    pub forwarded_packets: IntCounter,
    /// `hubcast_sfu_forwarded_bytes_total` (RTP payload bytes).
    pub forwarded_bytes: IntCounter,
    /// `hubcast_sfu_keyframe_requests_total{direction}`: `from_viewers` and `to_publishers`.
    pub keyframe_requests: IntCounterVec,
    /// `hubcast_sfu_nacks_total{direction}`: NACKs received `from_viewers` (answered with
    /// retransmissions from the send buffer) and sent `to_publishers` (asking for RTX).
    pub nacks: IntCounterVec,
    /// `hubcast_sfu_layer_switches_total`.
    pub layer_switches: IntCounter,
    /// `hubcast_sfu_ice_failures_total`: sessions reaped before ICE/DTLS completed.
    pub ice_failures: IntCounter,
    /// `hubcast_sfu_dropped_packets_total{reason}`: invalid or unroutable input.
    pub dropped_packets: IntCounterVec,
    /// `dropped_packets` resolved per `DROP_REASONS` entry, same order: counting a drop is an
    /// atomic add, not a label lookup (drops come per datagram under a flood).
    drops: Vec<IntCounter>,
    /// `hubcast_sfu_send_errors_total`: datagrams the kernel refused to send.
    pub send_errors: IntCounter,
    /// `hubcast_sfu_send_dropped_total`: outgoing datagrams dropped because the socket's send
    /// buffer was full (the worker never waits for it).
    pub send_dropped: IntCounter,
    /// `hubcast_sfu_speaker_changes_total`.
    pub speaker_changes: IntCounter,
    /// `hubcast_sfu_tcp_connections`: ICE-TCP connections open.
    pub tcp_connections: IntGauge,
    /// `hubcast_sfu_tcp_closed_total{reason}`: ICE-TCP connections the SFU closed: `full`
    /// (over `max_tcp_connections`), `no_session` (nothing routed to a session within the
    /// connect timeout), `idle` (silent past the idle timeout), `write_stalled` (the peer
    /// stopped reading).
    pub tcp_closed: IntCounterVec,
}

/// Why the SFU closed an ICE-TCP connection (the label's whole value set).
pub const TCP_CLOSE_REASONS: [&str; 4] = ["full", "no_session", "idle", "write_stalled"];

/// Reasons a packet is dropped (the label's whole value set).
pub const DROP_REASONS: [&str; 8] = [
    "unknown_sender",
    "unknown_session",
    "unparseable",
    "not_accepted",
    "rejected",
    "queue_full",
    "oversize",
    "unknown_rid",
];

impl SfuMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let peers = IntGauge::new("hubcast_sfu_peers", "Peer connections on this node.")?;
        let tracks = IntGauge::new("hubcast_sfu_tracks", "Incoming media tracks.")?;
        let forwarded_packets = IntCounter::new(
            "hubcast_sfu_forwarded_packets_total",
            "RTP packets forwarded to viewers.",
        )?;
        let forwarded_bytes = IntCounter::new(
            "hubcast_sfu_forwarded_bytes_total",
            "RTP payload bytes forwarded to viewers.",
        )?;
        let keyframe_requests = IntCounterVec::new(
            Opts::new(
                "hubcast_sfu_keyframe_requests_total",
                "Keyframe requests (PLI/FIR).",
            ),
            &["direction"],
        )?;
        let nacks = IntCounterVec::new(
            Opts::new(
                "hubcast_sfu_nacks_total",
                "Generic NACKs (RFC 4585), by direction.",
            ),
            &["direction"],
        )?;
        let layer_switches = IntCounter::new(
            "hubcast_sfu_layer_switches_total",
            "Simulcast layer or source switches completed.",
        )?;
        let ice_failures = IntCounter::new(
            "hubcast_sfu_ice_failures_total",
            "Sessions removed because ICE/DTLS did not complete in time.",
        )?;
        let dropped_packets = IntCounterVec::new(
            Opts::new(
                "hubcast_sfu_dropped_packets_total",
                "Datagrams dropped, by reason.",
            ),
            &["reason"],
        )?;
        let send_errors = IntCounter::new(
            "hubcast_sfu_send_errors_total",
            "Datagrams the kernel refused to send.",
        )?;
        let send_dropped = IntCounter::new(
            "hubcast_sfu_send_dropped_total",
            "Outgoing datagrams dropped on a full socket send buffer.",
        )?;
        let speaker_changes = IntCounter::new(
            "hubcast_sfu_speaker_changes_total",
            "Active speaker changes.",
        )?;
        let tcp_connections =
            IntGauge::new("hubcast_sfu_tcp_connections", "ICE-TCP connections open.")?;
        let tcp_closed = IntCounterVec::new(
            Opts::new(
                "hubcast_sfu_tcp_closed_total",
                "ICE-TCP connections closed by the SFU, by reason.",
            ),
            &["reason"],
        )?;
        for reason in TCP_CLOSE_REASONS {
            tcp_closed.with_label_values(&[reason]);
        }
        let drops = DROP_REASONS
            .iter()
            .map(|reason| dropped_packets.with_label_values(&[reason]))
            .collect();
        for direction in ["from_viewers", "to_publishers"] {
            keyframe_requests.with_label_values(&[direction]);
            nacks.with_label_values(&[direction]);
        }
        let metrics = SfuMetrics {
            peers,
            tracks,
            forwarded_packets,
            forwarded_bytes,
            keyframe_requests,
            nacks,
            layer_switches,
            ice_failures,
            dropped_packets,
            drops,
            send_errors,
            send_dropped,
            speaker_changes,
            tcp_connections,
            tcp_closed,
        };
        registry.register(Box::new(metrics.peers.clone()))?;
        registry.register(Box::new(metrics.tracks.clone()))?;
        registry.register(Box::new(metrics.forwarded_packets.clone()))?;
        registry.register(Box::new(metrics.forwarded_bytes.clone()))?;
        registry.register(Box::new(metrics.keyframe_requests.clone()))?;
        registry.register(Box::new(metrics.nacks.clone()))?;
        registry.register(Box::new(metrics.layer_switches.clone()))?;
        registry.register(Box::new(metrics.ice_failures.clone()))?;
        registry.register(Box::new(metrics.dropped_packets.clone()))?;
        registry.register(Box::new(metrics.send_errors.clone()))?;
        registry.register(Box::new(metrics.send_dropped.clone()))?;
        registry.register(Box::new(metrics.speaker_changes.clone()))?;
        registry.register(Box::new(metrics.tcp_connections.clone()))?;
        registry.register(Box::new(metrics.tcp_closed.clone()))?;
        Ok(metrics)
    }

    /// Counts a dropped datagram. `reason` must be one of `DROP_REASONS`.
    pub fn dropped(&self, reason: &'static str) {
        self.dropped_many(reason, 1);
    }

    /// Counts `n` datagrams dropped for the same reason (one of `DROP_REASONS`).
    pub fn dropped_many(&self, reason: &'static str, n: usize) {
        debug_assert!(DROP_REASONS.contains(&reason));
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        match DROP_REASONS.iter().position(|r| *r == reason) {
            Some(i) => self.drops[i].inc_by(n),
            None => self.dropped_packets.with_label_values(&[reason]).inc_by(n),
        }
    }
}
