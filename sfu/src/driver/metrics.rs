//! Prometheus metrics of the media plane. Labels have fixed, small value sets.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
    /// `hubcast_sfu_bandwidth_pauses_total`: videos paused toward a viewer whose estimate
    /// could not carry even their lowest layer.
    pub bandwidth_pauses: IntCounter,
    /// `hubcast_sfu_ice_failures_total`: sessions reaped before ICE/DTLS completed.
    pub ice_failures: IntCounter,
    /// `hubcast_sfu_dropped_packets_total{reason}`: invalid or unroutable input.
    pub dropped_packets: IntCounterVec,
    /// `dropped_packets` resolved per [`DropReason`], indexed by it: counting a drop is an
    /// atomic add, not a label lookup (drops come per datagram under a flood).
    drops: [IntCounter; DropReason::ALL.len()],
    /// `hubcast_sfu_send_errors_total`: datagrams the kernel refused to send.
    pub send_errors: IntCounter,
    /// `hubcast_sfu_sent_datagrams_total`: every datagram sent (media copies, their
    /// retransmissions, probe padding, RTCP, STUN, DTLS), counted per `sendmmsg` call.
    pub sent_datagrams: IntCounter,
    /// `hubcast_sfu_sent_bytes_total`: their bytes (after SRTP, before UDP/IP headers).
    pub sent_bytes: IntCounter,
    /// `hubcast_sfu_receive_to_send_seconds`: per received datagram, from its receipt (after
    /// `recvmmsg`) to the end of the worker pass that handled it, when what it caused (the
    /// forwarded copies, answers) is handed to the kernel. Copies a viewer's pacer holds leave
    /// in a later pass and are not timed here: the hub's own share of the added latency.
    pub receive_to_send: Histogram,
    /// `hubcast_sfu_send_dropped_total`: outgoing datagrams dropped because the socket's send
    /// buffer was full (the worker never waits for it).
    pub send_dropped: IntCounter,
    /// `hubcast_sfu_speaker_changes_total`.
    pub speaker_changes: IntCounter,
    /// `hubcast_sfu_tcp_connections`: ICE-TCP connections open.
    pub tcp_connections: IntGauge,
    /// `hubcast_sfu_sessions_ended_total{reason}`: sessions removed, by [`SessionEnd`]: an
    /// operator tells peers that hang up from ones whose ICE or DTLS failed.
    pub sessions_ended: IntCounterVec,
    /// `sessions_ended` resolved per [`SessionEnd`], indexed by it.
    ended: [IntCounter; SessionEnd::ALL.len()],
    /// `hubcast_sfu_tcp_closed_total{reason}`: ICE-TCP connections the SFU closed: `full`
    /// (over `max_tcp_connections`), `no_session` (nothing routed to a session within the
    /// connect timeout, or its session ended), `idle` (silent past the idle timeout), `write_stalled` (the peer
    /// stopped reading).
    pub tcp_closed: IntCounterVec,
}

/// Why a session ended: the `reason` label of `hubcast_sfu_sessions_ended_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// WHIP/WHEP `DELETE`.
    Deleted,
    /// The peer closed DTLS, or str0m gave the session up.
    Closed,
    /// ICE or DTLS never completed within the connect timeout.
    ConnectTimeout,
    /// ICE consent was lost.
    IceDisconnected,
    /// Its peer was silent and its last address went to a new session (a client restarted on
    /// the same port; `demux::QUIET_TAKEOVER`).
    AddressTaken,
    /// str0m reported an error for it.
    Failed,
    /// The SFU shut down.
    Shutdown,
}

impl SessionEnd {
    /// Every reason, in declaration order (the label's whole value set).
    pub const ALL: [SessionEnd; 7] = [
        SessionEnd::Deleted,
        SessionEnd::Closed,
        SessionEnd::ConnectTimeout,
        SessionEnd::IceDisconnected,
        SessionEnd::AddressTaken,
        SessionEnd::Failed,
        SessionEnd::Shutdown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Deleted => "deleted",
            SessionEnd::Closed => "closed",
            SessionEnd::ConnectTimeout => "connect_timeout",
            SessionEnd::IceDisconnected => "ice_disconnected",
            SessionEnd::AddressTaken => "address_taken",
            SessionEnd::Failed => "failed",
            SessionEnd::Shutdown => "shutdown",
        }
    }
}

/// Why the SFU closed an ICE-TCP connection (the label's whole value set).
pub const TCP_CLOSE_REASONS: [&str; 4] = ["full", "no_session", "idle", "write_stalled"];

/// Why a datagram was dropped: the `reason` label of `hubcast_sfu_dropped_packets_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// From an address no session owns, and not a STUN request naming one.
    UnknownSender,
    /// A STUN request naming another session, from an address a live session heard from
    /// lately owns (`demux::QUIET_TAKEOVER`): a client reusing the port of a session it
    /// abandoned (it gets through once that one is quiet or ends), or a forged request.
    AddressInUse,
    /// Routed to a session the worker no longer has (it just ended).
    UnknownSession,
    /// Not STUN, DTLS, RTP or RTCP (RFC 7983 first byte), or truncated.
    Unparseable,
    /// str0m would not take it in the session's state.
    NotAccepted,
    /// str0m returned an error for it (malformed). str0m drops SRTP that fails
    /// authentication without an error: that is `Unauthenticated`.
    Rejected,
    /// The worker's inbox or batch pool was full.
    QueueFull,
    /// Larger than any datagram the SFU reads.
    Oversize,
    /// Simulcast RTP whose rid the publisher's track does not have.
    UnknownRid,
    /// RTP carrying a sequence number its stream already delivered: a replay or a network
    /// duplicate (`replay`), dropped before decryption.
    Replayed,
    /// SRTP or SRTCP of a known stream whose authentication tag did not verify: forged or
    /// corrupted (`srtp_audit`; AEAD-GCM sessions).
    Unauthenticated,
}

impl DropReason {
    /// Every reason, in declaration order (the label's whole value set).
    pub const ALL: [DropReason; 11] = [
        DropReason::UnknownSender,
        DropReason::AddressInUse,
        DropReason::UnknownSession,
        DropReason::Unparseable,
        DropReason::NotAccepted,
        DropReason::Rejected,
        DropReason::QueueFull,
        DropReason::Oversize,
        DropReason::UnknownRid,
        DropReason::Replayed,
        DropReason::Unauthenticated,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSender => "unknown_sender",
            DropReason::AddressInUse => "address_in_use",
            DropReason::UnknownSession => "unknown_session",
            DropReason::Unparseable => "unparseable",
            DropReason::NotAccepted => "not_accepted",
            DropReason::Rejected => "rejected",
            DropReason::QueueFull => "queue_full",
            DropReason::Oversize => "oversize",
            DropReason::UnknownRid => "unknown_rid",
            DropReason::Replayed => "replayed",
            DropReason::Unauthenticated => "unauthenticated",
        }
    }
}

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
        let bandwidth_pauses = IntCounter::new(
            "hubcast_sfu_bandwidth_pauses_total",
            "Videos paused toward a viewer whose bandwidth estimate could not carry even their lowest layer (its audio goes on; the video resumes at a keyframe).",
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
        let sent_datagrams = IntCounter::new(
            "hubcast_sfu_sent_datagrams_total",
            "Datagrams sent: media copies, retransmissions, probe padding, RTCP, STUN, DTLS.",
        )?;
        let sent_bytes = IntCounter::new(
            "hubcast_sfu_sent_bytes_total",
            "Bytes of the datagrams sent (UDP payload).",
        )?;
        let receive_to_send = Histogram::with_opts(
            HistogramOpts::new(
                "hubcast_sfu_receive_to_send_seconds",
                "Per received datagram: receipt to the hand-off of what it caused to the kernel (copies held by a viewer's pacer excluded).",
            )
            .buckets(vec![
                25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                100e-3,
            ]),
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
        let sessions_ended = IntCounterVec::new(
            Opts::new(
                "hubcast_sfu_sessions_ended_total",
                "Sessions removed, by reason.",
            ),
            &["reason"],
        )?;
        let ended =
            SessionEnd::ALL.map(|reason| sessions_ended.with_label_values(&[reason.as_str()]));
        let drops =
            DropReason::ALL.map(|reason| dropped_packets.with_label_values(&[reason.as_str()]));
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
            bandwidth_pauses,
            ice_failures,
            dropped_packets,
            drops,
            send_errors,
            sent_datagrams,
            sent_bytes,
            receive_to_send,
            send_dropped,
            speaker_changes,
            tcp_connections,
            sessions_ended,
            ended,
            tcp_closed,
        };
        registry.register(Box::new(metrics.peers.clone()))?;
        registry.register(Box::new(metrics.tracks.clone()))?;
        registry.register(Box::new(metrics.forwarded_packets.clone()))?;
        registry.register(Box::new(metrics.forwarded_bytes.clone()))?;
        registry.register(Box::new(metrics.keyframe_requests.clone()))?;
        registry.register(Box::new(metrics.nacks.clone()))?;
        registry.register(Box::new(metrics.layer_switches.clone()))?;
        registry.register(Box::new(metrics.bandwidth_pauses.clone()))?;
        registry.register(Box::new(metrics.ice_failures.clone()))?;
        registry.register(Box::new(metrics.dropped_packets.clone()))?;
        registry.register(Box::new(metrics.send_errors.clone()))?;
        registry.register(Box::new(metrics.send_dropped.clone()))?;
        registry.register(Box::new(metrics.sent_datagrams.clone()))?;
        registry.register(Box::new(metrics.sent_bytes.clone()))?;
        registry.register(Box::new(metrics.receive_to_send.clone()))?;
        registry.register(Box::new(metrics.speaker_changes.clone()))?;
        registry.register(Box::new(metrics.tcp_connections.clone()))?;
        registry.register(Box::new(metrics.sessions_ended.clone()))?;
        registry.register(Box::new(metrics.tcp_closed.clone()))?;
        Ok(metrics)
    }

    /// Counts a dropped datagram.
    pub fn dropped(&self, reason: DropReason) {
        self.dropped_many(reason, 1);
    }

    /// Counts a session that ended for `reason`.
    pub fn session_ended(&self, reason: SessionEnd) {
        // One counter per reason, in declaration order: the index is always in range.
        self.ended[reason as usize].inc();
    }

    /// Counts `n` datagrams dropped for the same reason.
    pub fn dropped_many(&self, reason: DropReason, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        // One counter per reason, in declaration order: the index is always in range.
        self.drops[reason as usize].inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_drop_reason_counts_under_its_own_label() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "ALL is in declaration order");
        }
        let metrics = SfuMetrics::new(&Registry::new()).expect("metrics");
        for (n, reason) in DropReason::ALL.into_iter().enumerate() {
            metrics.dropped_many(reason, n + 1);
        }
        for (n, reason) in DropReason::ALL.into_iter().enumerate() {
            let counted = (metrics.dropped_packets)
                .with_label_values(&[reason.as_str()])
                .get();
            assert_eq!(counted, n as u64 + 1, "{}", reason.as_str());
        }
    }

    #[test]
    fn each_session_end_counts_under_its_own_label() {
        let metrics = SfuMetrics::new(&Registry::new()).expect("metrics");
        for (i, reason) in SessionEnd::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "ALL is in declaration order");
            for _ in 0..=i {
                metrics.session_ended(reason);
            }
        }
        for (i, reason) in SessionEnd::ALL.into_iter().enumerate() {
            let counted = (metrics.sessions_ended)
                .with_label_values(&[reason.as_str()])
                .get();
            assert_eq!(counted, i as u64 + 1, "{}", reason.as_str());
        }
    }
}
