//! Configuration of the media plane: ports, advertised addresses, workers and limits. Every
//! default says where its number comes from.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Settings of the SFU driver.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The one UDP socket all peers share. Default `127.0.0.1:7882` (LiveKit's default UDP
    /// port; loopback like the HTTP listener, production names its address).
    pub udp_listen: SocketAddr,
    /// The one TCP port for passive ICE-TCP candidates (networks that block UDP). Default
    /// `127.0.0.1:7881` (LiveKit's default TCP port). `None` disables ICE-TCP.
    pub tcp_listen: Option<SocketAddr>,
    /// Addresses advertised in host candidates. Empty: the bound addresses (after port 0 is
    /// resolved). Behind NAT or a load balancer, the public IPs go here.
    pub public_ips: Vec<IpAddr>,
    /// Worker threads; a room is pinned to one. Default: the number of cores.
    pub workers: usize,
    /// Peers (publishers + viewers) across the node. Default 2000: 102 sites × ~20 viewers
    /// each is the province-wide meeting with walls; beyond it the answer is 503.
    pub max_peers: usize,
    /// Peers in one room. Default 400 (102 publishing sites + walls + observers).
    pub max_peers_per_room: usize,
    /// A peer that has not completed ICE and DTLS by then is removed. Default 15 s, Chrome's
    /// own ICE checking timeout is about 15 s too.
    pub connect_timeout: Duration,
    /// Capacity of each worker's inbox (UDP batches, ICE-TCP datagrams, commands). Full:
    /// datagrams are dropped (counted, like a full socket buffer) and commands answer "busy".
    /// Default 8192 messages: ~80 ms of a loaded worker's ingress at one datagram each.
    pub worker_queue: usize,
    /// Batches of received UDP datagrams each worker may have queued (the receiving thread
    /// packs each `recvmmsg`'s datagrams for one worker into one batch, up to 32, and the
    /// worker hands it back for reuse). All out: that worker's datagrams are dropped and
    /// counted (`queue_full`) until one returns. Default 256: at least 256 datagrams queued
    /// per worker (more when the receiver reads several at once); buffers grow only to what
    /// bursts needed, at most 256 × 64 KiB per worker.
    pub ingress_batches: usize,
    /// Initial bandwidth estimate toward a viewer, bits/s. Default 1.5 Mbit/s: enough for the
    /// middle simulcast layer, so a new viewer starts sharp and probes upward.
    pub initial_bwe_bps: u64,
    /// Estimate each viewer's bandwidth (TWCC + pacing + probing) and choose simulcast layers
    /// by it. Default on: viewers on congested links get a layer they can take. Off, layers
    /// follow only the viewer's request and packets go out unpaced, which costs about a third
    /// less CPU per forwarded packet (BENCHMARKS.md) — for LAN-only deployments.
    pub viewer_bwe: bool,
    /// Minimum interval between keyframe requests per (track, layer). Default 500 ms (Jitsi
    /// uses 200 ms minimum, mediasoup 1 s).
    pub keyframe_interval: Duration,
    /// How long the video sent to a viewer is kept to answer its NACKs with retransmissions
    /// (RTX); a packet older than this is not resent. Default 1 s, Janus's cap (it keeps
    /// RTT + 100 ms, at most 1 s; mediasoup 2-4 s; str0m's own default 3 s): a second covers
    /// several NACK rounds at the round trips of a provincial network, and a loss still
    /// unrepaired by then is better served by the keyframe the viewer asks for next. Each
    /// second kept costs ~90 KiB per viewer per Mbit/s watched (BENCHMARKS.md).
    pub rtx_history: Duration,
    /// ICE-TCP connections open at once (each costs a reader and a writer thread); beyond it a
    /// new connection is closed at once and counted. Default 256: every site of a
    /// province-wide meeting (102) and its wall, all on networks that block UDP.
    pub max_tcp_connections: usize,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            udp_listen: SocketAddr::from(([127, 0, 0, 1], 7882)),
            tcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7881))),
            public_ips: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_peers: 2000,
            max_peers_per_room: 400,
            connect_timeout: Duration::from_secs(15),
            worker_queue: 8192,
            ingress_batches: 256,
            initial_bwe_bps: 1_500_000,
            viewer_bwe: true,
            keyframe_interval: Duration::from_millis(500),
            rtx_history: Duration::from_secs(1),
            max_tcp_connections: 256,
        }
    }
}

impl SfuConfig {
    /// A media port that binds the unspecified address (all interfaces) while no public IP is
    /// set: its candidates would advertise an address nobody can send to. `None` when every
    /// candidate is reachable as configured.
    pub fn unadvertised_bind(&self) -> Option<SocketAddr> {
        if !self.public_ips.is_empty() {
            return None;
        }
        std::iter::once(self.udp_listen)
            .chain(self.tcp_listen)
            .find(|addr| addr.ip().is_unspecified())
    }
}
