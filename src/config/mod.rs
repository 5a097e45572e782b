//! Typed configuration of the hub: one struct per subsystem, each default documented with where
//! its number comes from.
//!
//! Sources, lowest precedence first: built-in defaults, the TOML file (`--config` /
//! `HUBCAST_CONFIG`), environment variables `HUBCAST_…` (nested keys joined with `__`, e.g.
//! `HUBCAST_TLS__CERT`), command-line flags. [`load()`] merges them; [`Settings`] is the validated
//! result the rest of the binary uses. Unknown keys are errors, so a typo never silently falls
//! back to a default.

pub mod load;
mod settings;

pub use load::{ConfigError, FlagOverrides, Loaded, load};
pub use settings::{Settings, TlsMode, token_lifetime_secs};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole configuration as read from its sources, before validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the one HTTP(S) listener for every page, API and WebSocket.
    /// Default `127.0.0.1:8080`: loopback only, so a first start exposes nothing.
    pub listen: String,
    /// Directory for the signing key, generated certificates and the alert store
    /// (`alerts.sqlite3`).
    pub data_dir: PathBuf,
    /// Logging.
    pub log: LogConfig,
    /// HTTP server limits and shutdown.
    pub http: HttpConfig,
    /// TLS for the listener.
    pub tls: TlsConfig,
    /// Token signing and verification.
    pub auth: AuthConfig,
    /// The region tree.
    pub regions: RegionsConfig,
    /// The media plane (SFU).
    pub sfu: SfuSection,
    /// Public alerts: publishing limits and the store.
    pub alerts: AlertsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./hubcast-data"),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            regions: RegionsConfig::default(),
            sfu: SfuSection::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human readable, default) or `json` (one object per line, for log shippers).
    pub format: String,
    /// A `tracing` filter such as `info` or `hubcast=debug,tower=warn` (the `RUST_LOG`
    /// syntax; `RUST_LOG` itself is not read: set this, or `HUBCAST_LOG__LEVEL`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// HTTP listener limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// How long shutdown waits for in-flight requests and WebSockets to finish. Default 10 s:
    /// inside the 30 s that systemd (`TimeoutStopSec`) and Kubernetes
    /// (`terminationGracePeriodSeconds`) allow before they kill the process.
    pub grace_period_secs: u64,
    /// Most connections served at once (TCP + TLS + WebSocket). Default 19 000: one process here
    /// may hold 20 000 file descriptors (shared/TESTING.md), leaving room for the store and UDP.
    pub max_connections: usize,
    /// Listen backlog. Default 4096, the machine's `somaxconn`; tokio's default of 128 drops
    /// connection storms.
    pub backlog: u32,
    /// Time allowed for a client to send request headers (slowloris guard). Default 30 s.
    pub header_read_timeout_secs: u64,
    /// Time allowed for a TLS handshake. Default 10 s.
    pub tls_handshake_timeout_secs: u64,
    /// A connection whose writes make no progress for this long is closed (a peer that stopped
    /// reading: a dead network under an SSE stream or a large response). Default 60 s: well
    /// past TCP's retransmission back-off on a lossy link, far below its minutes-long give-up.
    pub write_stall_secs: u64,
    /// Interval of the `/ws/health` status push. Default 5 s, a wall display's refresh rate.
    pub health_push_secs: u64,
    /// Serve `/debug/*` diagnostic routes (e.g. `/debug/delay?ms=`). Off by default; tests and
    /// operators probing shutdown behaviour turn it on.
    pub debug_routes: bool,
    /// Threads of the async runtime (HTTP, WebSockets, SSE, the alert hub task). 0 (default):
    /// one per core. Several hub processes on one machine (multi-node tests, the `alert-load`
    /// benchmark's 100k run) do better with 1 each than with a thread per core each.
    pub worker_threads: usize,
    /// Bearer token `GET /metrics` requires (`Authorization: Bearer <token>`, as Prometheus's
    /// `authorization.credentials_file` sends it): 16–512 visible ASCII characters. Unset
    /// (default): `/metrics` is public, which suits a loopback listener; on any other the hub
    /// warns at start, since the metrics tell outsiders how many meetings, peers and
    /// subscribers are live. Env `HUBCAST_HTTP__METRICS_TOKEN`; redacted by `check-config`.
    pub metrics_token: Option<String>,
    /// Reverse proxies (nginx, a load balancer, a WAF) whose forwarding header names the
    /// client: addresses or CIDR blocks (`["10.0.0.0/8", "192.0.2.7"]`). The per-address
    /// limits on live connections then count the client it names, not the proxy carrying
    /// every subscriber. Default empty: no header is believed (a client could put anything
    /// in one), the peer address is the client.
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
    /// The header those proxies name the client in: `x-forwarded-for` (default, nginx's
    /// `$proxy_add_x_forwarded_for` and most load balancers), `forwarded` (RFC 7239) or
    /// `x-real-ip`. It must be one the proxy sets or appends itself.
    pub client_ip_header: crate::client_ip::ClientIpHeader,
    /// Other origins whose pages may call the media API (WHIP/WHEP and their sessions, room
    /// info and room events) from a browser: `["https://portal.example.gov.cn"]`, or `["*"]`
    /// for any. These calls carry a bearer token, never a cookie, so a listed origin gains
    /// nothing a token does not already give. Default empty: same-origin pages only (the
    /// public alert reads are open to every origin regardless).
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            grace_period_secs: 10,
            max_connections: 19_000,
            backlog: 4096,
            header_read_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            write_stall_secs: 60,
            health_push_secs: 5,
            debug_routes: false,
            worker_threads: 0,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            client_ip_header: crate::client_ip::ClientIpHeader::default(),
            cors_origins: Vec::new(),
        }
    }
}

/// TLS for the listener. Plain HTTP is the default on loopback; production names a cert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain. Needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Generate (once) a self-signed development certificate in `<data_dir>/tls/` and serve TLS
    /// with it. Ignored when `cert`/`key` are given.
    pub self_signed: bool,
}

/// Token signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `HS256` (default, one shared secret) or `EdDSA` (Ed25519; verifiers need only the public
    /// key).
    pub algorithm: String,
    /// HS256 secret, base64 (at least 32 bytes decoded, RFC 7518 § 3.2). When unset, a random
    /// key is generated into `<data_dir>/jwt-hs256.key` (mode 0600) on first start and reused.
    pub secret: Option<String>,
    /// Clock skew tolerated on `exp`/`iat`. Default 60 s: bureau PCs on government networks
    /// are NTP-synced but not always tightly.
    pub leeway_secs: u64,
    /// Default lifetime of tokens minted by `hubcast token`. Default 8 h, one working day.
    pub default_ttl: String,
    /// The `iss` every accepted token must carry (an identity provider's tokens; `hubcast
    /// token` writes it). Unset: `iss` is not checked.
    pub issuer: Option<String>,
    /// The audience this hub is: every accepted token's `aud` must name it (`hubcast token`
    /// writes it). Unset: a token that names any audience is refused (RFC 7519 § 4.1.3: it
    /// was meant for another service).
    pub audience: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithm: "HS256".to_owned(),
            secret: None,
            leeway_secs: 60,
            default_ttl: "8h".to_owned(),
            issuer: None,
            audience: None,
        }
    }
}

/// Where the region tree comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionsConfig {
    /// A region data file (format: `tiers/data/zhejiang.tsv`). Unset: the built-in Zhejiang
    /// tree.
    pub file: Option<PathBuf>,
}

/// The media plane: one UDP port for every peer, one TCP port for ICE-TCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuSection {
    /// UDP address every peer's media uses. Default `127.0.0.1:7882` (LiveKit's default UDP
    /// port), loopback like the HTTP listener; production binds a public address.
    pub udp_listen: String,
    /// TCP address for passive ICE-TCP candidates (networks that block UDP); empty disables.
    /// Default `127.0.0.1:7881` (LiveKit's default TCP port).
    pub tcp_listen: String,
    /// IPs advertised in candidates when they differ from the bound ones (NAT, load
    /// balancer). Empty: the bound address.
    pub public_ips: Vec<String>,
    /// Worker threads (a room is pinned to one). 0: one per core.
    pub workers: usize,
    /// Peer connections on this node. Default 2000 (a 102-site meeting with walls and
    /// observers fits several times); beyond it WHIP/WHEP answer 503.
    pub max_peers: usize,
    /// Peer connections in one room. Default 400 (102 sites + walls + observers).
    pub max_peers_per_room: usize,
    /// Remove peers that have not completed ICE and DTLS after this long. Default 15 s.
    pub connect_timeout_secs: u64,
    /// Minimum interval between keyframe requests per track layer. Default 500 ms (Jitsi
    /// 200 ms, mediasoup 1 s).
    pub keyframe_interval_ms: u64,
    /// How long video sent to a viewer is kept to answer its NACKs (retransmission). Default
    /// 1000 ms (Janus's cap; mediasoup 2-4 s); each second costs ~90 KiB per viewer per Mbit/s.
    pub rtx_history_ms: u64,
    /// Estimate viewers' bandwidth (TWCC, pacing, probing) and pick simulcast layers by it.
    /// Default true; false saves ~30 % CPU per forwarded packet on LANs (BENCHMARKS.md).
    pub viewer_bwe: bool,
    /// ICE-TCP connections open at once (two threads each); beyond it new ones are closed.
    /// Default 256 (every site of a province-wide meeting and its wall over TCP).
    pub max_tcp_connections: usize,
}

impl Default for SfuSection {
    fn default() -> Self {
        SfuSection {
            udp_listen: "127.0.0.1:7882".to_owned(),
            tcp_listen: "127.0.0.1:7881".to_owned(),
            public_ips: Vec::new(),
            workers: 0,
            max_peers: 2000,
            max_peers_per_room: 400,
            connect_timeout_secs: 15,
            keyframe_interval_ms: 500,
            rtx_history_ms: 1000,
            viewer_bwe: true,
            max_tcp_connections: 256,
        }
    }
}

/// Public alerts: publishing limits and the embedded store (`<data_dir>/alerts.sqlite3`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Largest body `POST /api/v1/alerts` accepts, bytes (413 beyond). Default 262144
    /// (256 KiB): real CAP alerts are a few KiB; the limit bounds what an untrusted body can
    /// make the parser hold. The store keeps documents up to 4× this (normalized XML grows).
    pub max_body_bytes: usize,
    /// Reader connections of the store (archive queries and `/alerts/{id}.xml`; the one
    /// writer is separate). Default 2, one per core of the reference machine.
    pub store_readers: usize,
    /// Public store reads (archive queries, `/alerts/{id}.xml|json`) running or waiting for a
    /// reader at once; beyond, 503 `busy` with `Retry-After: 1`. Default 32 (16 per reader):
    /// a page takes milliseconds, so 32 waiting is already a flood, and each holds a blocking
    /// thread. Publishes are not counted here.
    pub max_concurrent_reads: usize,
    /// Most entries the Atom feed lists: the newest live alerts of the filter (an alert
    /// without `expires` stays live until updated, cancelled or 10,000 newer ones came).
    /// Default 500: an aggregator's poll stays ~200 KiB; the feed links the archive for the
    /// rest.
    pub feed_entries: usize,
    /// Longest one store read may run before it is stopped (503 `query_timeout`), ms. Default
    /// 5000: a page takes milliseconds; only an archive query scanning every document of a
    /// large archive (a one- or two-character term and no other filter) comes near.
    pub query_timeout_ms: u64,
    /// Live deliveries one subscriber may have waiting before it is closed as a slow consumer
    /// (WebSocket 4008, SSE end of stream). Default 256: alerts come a few per second at most,
    /// so a subscriber 256 behind is stalled, not busy.
    pub queue_capacity: usize,
    /// Recent alerts kept in memory for `since` / `Last-Event-ID` replay (reloaded from the
    /// store at start). Default 10000: days of a province's traffic; older → `reset` + archive.
    pub retain_count: usize,
    /// Seconds a retained alert stays in the replay window (`retain_count` bounds it too).
    /// Default 604800 (7 days): a wall display switched off over a week-long public holiday
    /// (国庆, 春节) still catches up by `since` instead of the archive.
    pub retain_age_secs: u64,
    /// Most live subscribers (WebSocket + SSE) at once; beyond, 503 before the upgrade.
    /// Default 0: `http.max_connections` less a twentieth of it, at most 1000 (18050 with the
    /// default 19000, what one process holds on the reference machine), leaving connections
    /// for publishers, the API, media signalling and health checks. A value set must be below
    /// `http.max_connections`.
    pub max_subscribers: usize,
    /// Seconds between WebSocket pings (SSE: keep-alive comments). Default 30: below common
    /// proxy and NAT idle timeouts (60 s).
    pub ping_secs: u64,
    /// Seconds without any frame from a WebSocket client (pongs count) before it is closed.
    /// Default 90: three missed pings. At least twice `ping_secs`.
    pub idle_timeout_secs: u64,
    /// Seconds a write to one subscriber may go without progress before it is dropped.
    /// Default 10: a client that reads nothing for that long is gone (it resumes with
    /// `since`); a slow one that keeps reading is not cut off.
    pub write_timeout_secs: u64,
    /// New live connections (`/ws/alerts`, `/sse/alerts`) per second per source IP (an IPv6 address by its /64), sustained;
    /// beyond, 429 `rate_limited` naming the wait. Default 20: a bureau's whole office behind one NAT
    /// address can open the page at once; a client reconnecting in a tight loop cannot.
    pub connect_rate_per_ip: u32,
    /// Connections per source IP allowed in a burst. Default 100.
    pub connect_burst_per_ip: u32,
    /// Live connections (`/ws/alerts`, `/sse/alerts`, `/ws/health`) one source IP (an IPv6
    /// address by its /64) may hold open at once; beyond, 429 `too_many_connections`. Default
    /// 1000: a provincial office behind one NAT address, about 5 % of `max_subscribers`' default,
    /// so one address cannot take every subscriber slot by connecting slowly.
    pub max_connections_per_ip: u32,
    /// Where the alert log lives: `sqlite` (default: `<data_dir>/alerts.sqlite3`, one node) or
    /// `redis` (a Redis Stream shared by every hub instance on `redis_url`; each instance
    /// tails it and fans out to its own subscribers).
    pub backend: AlertsBackend,
    /// Redis server of the `redis` backend, `redis://[:password@]host:port/[db]`. Default
    /// `redis://127.0.0.1:6379/` (Redis's default port). For "acknowledged means durable" the
    /// server needs `appendonly yes` and `appendfsync always`; the hub refuses to start if not
    /// (see `redis_unsafe_durability`).
    pub redis_url: String,
    /// Key prefix in Redis, so several hubs (a test and a production province) can share one
    /// server: keys are `{prefix}:alerts:*`. Default `hubcast`.
    pub redis_prefix: String,
    /// Start even though Redis does not fsync every write (`appendonly yes` +
    /// `appendfsync always`) or will not say (`CONFIG GET` refused). Default false: then an
    /// acknowledged alert could be lost in a Redis crash, and the numbers after it reused by
    /// new alerts, so the hub refuses to start; set true only knowingly (e.g. a managed Redis
    /// with its own durability guarantees).
    pub redis_unsafe_durability: bool,
    /// Who writes live alerts to idle plain-TCP subscribers: `on`, the live hub task itself
    /// (no task wake-up per delivery: the least CPU per delivery, but one thread's worth of
    /// writes per process); `off`, each subscriber's connection task (a broadcast's writes
    /// spread over all runtime threads); `auto` (default), `on` when the runtime has one worker
    /// thread (`http.worker_threads = 1`) and `off` otherwise: measured on 2 cores, the spread
    /// delivered 10k subscribers 10–25 % sooner, the direct writes 6 hubs × 1 thread at 100k
    /// 20 % sooner (BENCHMARKS.md).
    pub direct_writes: DirectWrites,
    /// CAP senders and the region that owns each (`"scjg.zj.gov.cn" = "330000"`): an alert
    /// under a listed sender is accepted only from a token acting for that region (403
    /// `sender_not_yours` otherwise), whoever published under it before. A sender not listed
    /// belongs to the first region that publishes under it. Default empty (first use binds
    /// every sender). In the file as `[alerts.senders]`, in the environment whole
    /// (`HUBCAST_ALERTS__SENDERS='{"scjg.zj.gov.cn"="330000"}'`); each region must be in the tree.
    pub senders: std::collections::BTreeMap<String, tiers::RegionCode>,
}

/// [`AlertsConfig::direct_writes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectWrites {
    /// `on` with one runtime worker thread, `off` with more.
    #[default]
    Auto,
    /// The live hub task writes to idle subscribers itself.
    On,
    /// Connection tasks write every delivery.
    Off,
}

impl DirectWrites {
    /// Whether the hub task writes, on a runtime of `workers` threads.
    pub fn enabled(self, workers: usize) -> bool {
        match self {
            DirectWrites::Auto => workers <= 1,
            DirectWrites::On => true,
            DirectWrites::Off => false,
        }
    }
}

/// The alert store of [`AlertsConfig::backend`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertsBackend {
    /// Embedded SQLite under the data dir: a single node.
    #[default]
    Sqlite,
    /// A Redis Stream shared by several hub instances.
    Redis,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            max_body_bytes: 256 * 1024,
            store_readers: 2,
            max_concurrent_reads: 32,
            feed_entries: 500,
            query_timeout_ms: 5000,
            queue_capacity: 256,
            retain_count: 10_000,
            retain_age_secs: 7 * 24 * 3600,
            max_subscribers: 0,
            ping_secs: 30,
            idle_timeout_secs: 90,
            write_timeout_secs: 10,
            connect_rate_per_ip: 20,
            connect_burst_per_ip: 100,
            max_connections_per_ip: 1000,
            backend: AlertsBackend::Sqlite,
            redis_url: "redis://127.0.0.1:6379/".to_owned(),
            redis_prefix: "hubcast".to_owned(),
            redis_unsafe_durability: false,
            direct_writes: DirectWrites::Auto,
            senders: std::collections::BTreeMap::new(),
        }
    }
}

/// Parses a duration such as `90s`, `15m`, `8h`, `7d` or a bare number of seconds.
pub fn parse_duration_secs(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 90s, 15m, 8h, 7d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    value
        .checked_mul(scale)
        .filter(|secs| *secs > 0)
        .ok_or_else(|| format!("{text:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("8h"), Ok(8 * 3600));
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert!(parse_duration_secs("").is_err());
        assert!(parse_duration_secs("0s").is_err());
        assert!(parse_duration_secs("8 hours").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("99999999999999999999d").is_err());
    }
}
