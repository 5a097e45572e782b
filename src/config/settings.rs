//! Validation: turns a [`Config`] into [`Settings`], reading every file it names (TLS material,
//! region tree) so that a bad value stops the process at start with the setting's name, never
//! later under load.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use tiers::{Algorithm, RegionTree};

use super::{AlertsConfig, Config, ConfigError, HttpConfig, parse_duration_secs};

/// How the listener speaks.
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// Plain HTTP (the default on loopback).
    Off,
    /// TLS with operator-provided PEM files, already loaded and checked; reloaded when
    /// renewed (`cert_reload`).
    Files(
        Arc<rustls::ServerConfig>,
        Arc<crate::cert_reload::CertFiles>,
    ),
    /// TLS with a development certificate generated into the data dir.
    SelfSigned,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listener address (port 0 picks a free port; the bound address is logged and printed).
    pub listen: SocketAddr,
    /// Data directory (created on start when missing).
    pub data_dir: PathBuf,
    /// JSON log lines instead of text.
    pub log_json: bool,
    /// Log filter.
    pub log_level: String,
    /// HTTP limits, validated.
    pub http: HttpConfig,
    /// TLS mode.
    pub tls: TlsMode,
    /// Token algorithm.
    pub algorithm: Algorithm,
    /// HS256 secret from config, if given (else the data-dir key is used).
    pub secret: Option<Vec<u8>>,
    /// Clock skew tolerance for tokens.
    pub leeway_secs: u64,
    /// The `iss` tokens carry and must carry, if set (`auth.issuer`).
    pub token_issuer: Option<String>,
    /// The audience tokens name and must name, if set (`auth.audience`).
    pub token_audience: Option<String>,
    /// Default token lifetime for `hubcast token`.
    pub default_ttl_secs: u64,
    /// The region tree in force.
    pub regions: RegionTree,
    /// Where the tree came from (file path or "built-in").
    pub regions_source: String,
    /// Media plane settings.
    pub sfu: sfu::driver::SfuConfig,
    /// Public alerts, validated.
    pub alerts: AlertsConfig,
    /// The merged configuration these settings came from (for `check-config`).
    pub config: Config,
}

impl Settings {
    /// Validates `config`, reading the files it names.
    pub fn from_config(config: Config) -> Result<Settings, ConfigError> {
        let listen = parse_listen(&config.listen)?;
        let log_json = match config.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("{other:?} is not one of \"text\", \"json\""),
                ));
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
            return Err(ConfigError::new(
                "log.level",
                format!(
                    "{:?} is not a log filter (examples: info, hubcast=debug)",
                    config.log.level
                ),
            ));
        }
        validate_http(&config.http)?;
        let algorithm: Algorithm = config.auth.algorithm.parse().map_err(|_| {
            ConfigError::new(
                "auth.algorithm",
                format!(
                    "{:?} is not one of \"HS256\", \"EdDSA\"",
                    config.auth.algorithm
                ),
            )
        })?;
        let secret = match &config.auth.secret {
            None => None,
            Some(_) if algorithm != Algorithm::Hs256 => {
                return Err(ConfigError::new(
                    "auth.secret",
                    "a shared secret only applies to HS256; EdDSA keys live in the data dir",
                ));
            }
            Some(text) => Some(decode_secret(text)?),
        };
        if config.auth.leeway_secs > 3600 {
            return Err(ConfigError::new(
                "auth.leeway_secs",
                "must be between 0 and 3600 (clock skew tolerated on token times)",
            ));
        }
        let token_issuer = registered_claim("auth.issuer", config.auth.issuer.as_deref())?;
        let token_audience = registered_claim("auth.audience", config.auth.audience.as_deref())?;
        let default_ttl_secs = token_lifetime_secs(&config.auth.default_ttl)
            .map_err(|msg| ConfigError::new("auth.default_ttl", msg))?;
        let (regions, regions_source) = load_regions(config.regions.file.as_ref())?;
        if config.tls.self_signed && (config.tls.cert.is_some() || config.tls.key.is_some()) {
            return Err(ConfigError::new(
                "tls.self_signed",
                "a self-signed certificate and certificate files exclude each other: set one",
            ));
        }
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => {
                let (config, files) = crate::tls::load_pem_files(cert, key)?;
                TlsMode::Files(config, files)
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "tls.key",
                    "tls.cert is set, tls.key is missing",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "tls.cert",
                    "tls.key is set, tls.cert is missing",
                ));
            }
            (None, None) if config.tls.self_signed => TlsMode::SelfSigned,
            (None, None) => TlsMode::Off,
        };
        let sfu = sfu_settings(&config.sfu)?;
        validate_alerts(&config.alerts)?;
        validate_senders(&config.alerts, &regions)?;
        let alerts = with_subscriber_cap(&config.alerts, config.http.max_connections)?;
        Ok(Settings {
            alerts,
            sfu,
            listen,
            data_dir: config.data_dir.clone(),
            log_json,
            log_level: config.log.level.clone(),
            http: config.http.clone(),
            tls,
            algorithm,
            secret,
            leeway_secs: config.auth.leeway_secs,
            token_issuer,
            token_audience,
            default_ttl_secs,
            regions,
            regions_source,
            config,
        })
    }

    /// Creates the data directory (mode 0700) if missing and checks it is writable.
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        let dir = &self.data_dir;
        let fail = |what: &str, err: std::io::Error| {
            ConfigError::new("data_dir", format!("{what} {}: {err}", dir.display()))
        };
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| fail("cannot create", e))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| fail("cannot set permissions on", e))?;
            }
        }
        if !dir.is_dir() {
            return Err(ConfigError::new(
                "data_dir",
                format!("{} exists and is not a directory", dir.display()),
            ));
        }
        // A name of this process's own: two processes probing one data dir (a `serve` and a
        // script minting tokens) must not remove each other's probe.
        let probe = dir.join(format!(".write-probe-{}", std::process::id()));
        std::fs::write(&probe, b"ok").map_err(|e| fail("cannot write into", e))?;
        std::fs::remove_file(&probe).map_err(|e| fail("cannot write into", e))?;
        Ok(())
    }

    /// Whether the listener serves TLS.
    pub fn tls_enabled(&self) -> bool {
        !matches!(self.tls, TlsMode::Off)
    }
}

fn sfu_settings(section: &super::SfuSection) -> Result<sfu::driver::SfuConfig, ConfigError> {
    let defaults = sfu::driver::SfuConfig::default();
    let udp_listen = parse_addr("sfu.udp_listen", &section.udp_listen)?;
    let tcp_listen = if section.tcp_listen.trim().is_empty() {
        None
    } else {
        Some(parse_addr("sfu.tcp_listen", &section.tcp_listen)?)
    };
    let public_ips = section
        .public_ips
        .iter()
        .map(|ip| {
            ip.parse::<IpAddr>().map_err(|_| {
                ConfigError::new("sfu.public_ips", format!("{ip:?} is not an IP address"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_public_ips(&public_ips)?;
    let positive = |name: &str, value: u64| positive(&format!("sfu.{name}"), value);
    // Durations past an hour are typos, and far larger ones overflow the clock arithmetic.
    let duration = |name: &str, value: u64, max: u64| within(&format!("sfu.{name}"), value, max);
    let config = sfu::driver::SfuConfig {
        udp_listen,
        tcp_listen,
        public_ips,
        workers: if section.workers == 0 {
            defaults.workers
        } else {
            section.workers
        },
        max_peers: positive("max_peers", section.max_peers as u64)? as usize,
        max_peers_per_room: positive("max_peers_per_room", section.max_peers_per_room as u64)?
            as usize,
        connect_timeout: std::time::Duration::from_secs(duration(
            "connect_timeout_secs",
            section.connect_timeout_secs,
            3600,
        )?),
        keyframe_interval: std::time::Duration::from_millis(duration(
            "keyframe_interval_ms",
            section.keyframe_interval_ms,
            60_000,
        )?),
        rtx_history: std::time::Duration::from_millis(duration(
            "rtx_history_ms",
            section.rtx_history_ms,
            60_000,
        )?),
        viewer_bwe: section.viewer_bwe,
        max_tcp_connections: positive("max_tcp_connections", section.max_tcp_connections as u64)?
            as usize,
        ..defaults
    };
    check_advertised(&config)?;
    Ok(config)
}

/// Public IPs go into candidates: each must be an address peers can send to (not
/// unspecified, multicast or broadcast).
fn check_public_ips(public_ips: &[IpAddr]) -> Result<(), ConfigError> {
    for ip in public_ips {
        let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_unspecified() || ip.is_multicast() || broadcast {
            return Err(ConfigError::new(
                "sfu.public_ips",
                format!("{ip} cannot be advertised: name an address peers can send to"),
            ));
        }
    }
    Ok(())
}

/// A media port binding all interfaces needs public IPs naming the host's reachable ones
/// (`SfuConfig::unadvertised_bind`, which `Sfu::start` refuses too): the SFU cannot guess
/// which interface peers see.
fn check_advertised(config: &sfu::driver::SfuConfig) -> Result<(), ConfigError> {
    let Some(addr) = config.unadvertised_bind() else {
        return Ok(());
    };
    let setting = if addr == config.udp_listen {
        "sfu.udp_listen"
    } else {
        "sfu.tcp_listen"
    };
    Err(ConfigError::new(
        "sfu.public_ips",
        format!(
            "required when {setting} binds {addr} (all interfaces): list the IPs peers \
             reach this host at, e.g. public_ips = [\"203.0.113.10\"]"
        ),
    ))
}

fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    parse_addr("listen", text)
}

fn parse_addr(setting: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |why: String| ConfigError::new(setting, format!("{text:?}: {why}"));
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| bad("expected IP:PORT, e.g. 127.0.0.1:8080 or [::]:443".to_owned()))?;
    let port: u16 = port.parse().map_err(|_| {
        bad(format!(
            "port {port:?} is not a number from 0 to 65535 (0 picks a free port)"
        ))
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().map_err(|_| {
        bad(format!(
            "{host:?} is not an IP address (use 127.0.0.1, 0.0.0.0 or ::)"
        ))
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// `value` if it is from 1 to `max`, else an error naming `name` and the range.
fn within(name: &str, value: u64, max: u64) -> Result<u64, ConfigError> {
    if (1..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            name,
            format!("must be between 1 and {max}"),
        ))
    }
}

/// `value` if it is not 0, else an error naming `name`.
fn positive(name: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        Err(ConfigError::new(name, "must be greater than 0"))
    } else {
        Ok(value)
    }
}

/// Longest token lifetime (400 days: a wall display's token renewed yearly).
const MAX_TTL_SECS: u64 = 400 * 24 * 3600;

/// A token lifetime (`8h`, `30d`), at most 400 days: `auth.default_ttl` and
/// `hubcast token --ttl` alike.
pub fn token_lifetime_secs(text: &str) -> Result<u64, String> {
    let secs = parse_duration_secs(text)?;
    if secs > MAX_TTL_SECS {
        return Err(
            "at most 400 days: a token is revoked only by changing the key, so it must expire"
                .to_owned(),
        );
    }
    Ok(secs)
}

fn validate_http(http: &HttpConfig) -> Result<(), ConfigError> {
    // Durations past an hour (a day for the health push) are typos, and far larger ones
    // overflow the clock arithmetic of every connection.
    let duration = |name: &str, value: u64, max: u64| within(&format!("http.{name}"), value, max);
    duration("grace_period_secs", http.grace_period_secs, 3600)?;
    duration(
        "header_read_timeout_secs",
        http.header_read_timeout_secs,
        3600,
    )?;
    duration(
        "tls_handshake_timeout_secs",
        http.tls_handshake_timeout_secs,
        3600,
    )?;
    duration("health_push_secs", http.health_push_secs, 86_400)?;
    duration("write_stall_secs", http.write_stall_secs, 3600)?;
    positive("http.backlog", u64::from(http.backlog))?;
    if http.worker_threads > 1024 {
        return Err(ConfigError::new(
            "http.worker_threads",
            "must be between 0 (one per core) and 1024",
        ));
    }
    for origin in &http.cors_origins {
        if origin != "*" && !crate::http::cors::is_origin(origin) {
            return Err(ConfigError::new(
                "http.cors_origins",
                format!(
                    "{origin:?} is not an origin: scheme and host (and port), \
                     e.g. \"https://portal.example.gov.cn\", no path or trailing slash; or \"*\""
                ),
            ));
        }
        let form = crate::http::cors::browser_form(origin);
        if origin != "*" && form != *origin {
            return Err(ConfigError::new(
                "http.cors_origins",
                format!(
                    "{origin:?} would never match: browsers send it as {form:?} (lower case, \
                     no default port); write it so"
                ),
            ));
        }
    }
    if let Some(token) = &http.metrics_token {
        let visible = token.bytes().all(|b| b.is_ascii_graphic());
        if !(16..=512).contains(&token.len()) || !visible {
            return Err(ConfigError::new(
                "http.metrics_token",
                "must be 16–512 visible ASCII characters (no spaces)",
            ));
        }
    }
    if http.max_connections == 0 || http.max_connections > 1_000_000 {
        return Err(ConfigError::new(
            "http.max_connections",
            "must be between 1 and 1000000",
        ));
    }
    Ok(())
}

/// `alerts` with its subscriber cap in force: as set, or (0, the default) the connection cap
/// less a twentieth of it, at most 1000 (19000 → 18050), for publishers, the API, media
/// signalling and health checks. Every subscriber holds a connection, so a cap at or above
/// the connection cap would never be reached: the listener would stop accepting first, and
/// publishers and `/healthz` would queue behind the subscribers instead of the last
/// subscribers getting a clean 503.
fn with_subscriber_cap(
    alerts: &AlertsConfig,
    max_connections: usize,
) -> Result<AlertsConfig, ConfigError> {
    let mut alerts = alerts.clone();
    if alerts.max_subscribers == 0 {
        alerts.max_subscribers = max_connections - (max_connections / 20).clamp(1, 1000);
    } else if alerts.max_subscribers >= max_connections {
        return Err(ConfigError::new(
            "alerts.max_subscribers",
            format!(
                "{} must be below http.max_connections ({max_connections}): every subscriber holds a connection, and publishers, the API and health checks need some too",
                alerts.max_subscribers
            ),
        ));
    }
    Ok(alerts)
}

fn validate_alerts(alerts: &AlertsConfig) -> Result<(), ConfigError> {
    if !(1024..=16 * 1024 * 1024).contains(&alerts.max_body_bytes) {
        let message = "must be between 1024 and 16777216 (16 MiB)";
        return Err(ConfigError::new("alerts.max_body_bytes", message));
    }
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    within("alerts.store_readers", count(alerts.store_readers), 64)?;
    let ranges: [(&str, u64, u64); 12] = [
        (
            "alerts.connect_rate_per_ip",
            u64::from(alerts.connect_rate_per_ip),
            1_000_000,
        ),
        (
            "alerts.connect_burst_per_ip",
            u64::from(alerts.connect_burst_per_ip),
            1_000_000,
        ),
        (
            "alerts.max_connections_per_ip",
            u64::from(alerts.max_connections_per_ip),
            1 << 24,
        ),
        (
            "alerts.queue_capacity",
            count(alerts.queue_capacity),
            1 << 20,
        ),
        ("alerts.retain_count", count(alerts.retain_count), 1_000_000),
        // 90 days: beyond, the archive is the place to look.
        (
            "alerts.retain_age_secs",
            alerts.retain_age_secs,
            90 * 24 * 3600,
        ),
        (
            "alerts.max_concurrent_reads",
            count(alerts.max_concurrent_reads),
            4096,
        ),
        ("alerts.feed_entries", count(alerts.feed_entries), 10_000),
        ("alerts.query_timeout_ms", alerts.query_timeout_ms, 600_000),
        ("alerts.ping_secs", alerts.ping_secs, 3600),
        ("alerts.idle_timeout_secs", alerts.idle_timeout_secs, 86_400),
        ("alerts.write_timeout_secs", alerts.write_timeout_secs, 3600),
    ];
    for (setting, value, high) in ranges {
        within(setting, value, high)?;
    }
    // A client that sends nothing but pongs is heard from once per ping: an idle timeout not
    // above two pings would close every healthy quiet client, over and over.
    if alerts.idle_timeout_secs < alerts.ping_secs.saturating_mul(2) {
        return Err(ConfigError::new(
            "alerts.idle_timeout_secs",
            format!(
                "{} s must be at least twice alerts.ping_secs ({} s): a quiet client is heard from only when it answers a ping",
                alerts.idle_timeout_secs, alerts.ping_secs
            ),
        ));
    }
    if alerts.backend == super::AlertsBackend::Redis {
        validate_redis_url(&alerts.redis_url)?;
    }
    let prefix_ok = !alerts.redis_prefix.is_empty()
        && alerts.redis_prefix.len() <= 64
        && (alerts.redis_prefix.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if !prefix_ok {
        let message = "must be 1–64 characters of letters, digits, '-', '_', '.', ':'";
        return Err(ConfigError::new("alerts.redis_prefix", message));
    }
    Ok(())
}

/// `alerts.senders`: each sender as CAP allows it (the publish path's own rule,
/// `alerts::cap::id_problem`), each owner in the region tree.
fn validate_senders(alerts: &AlertsConfig, regions: &RegionTree) -> Result<(), ConfigError> {
    for (sender, owner) in &alerts.senders {
        if let Some(problem) = alerts::cap::id_problem(sender) {
            let message = format!("sender {sender:?} is not a CAP sender: it {problem}");
            return Err(ConfigError::new("alerts.senders", message));
        }
        if regions.get(*owner).is_none() {
            let message = format!("sender {sender:?}: region {owner} is not in the region tree");
            return Err(ConfigError::new("alerts.senders", message));
        }
    }
    Ok(())
}

/// `redis://` or `rediss://`, a host, an optional port and database number.
fn validate_redis_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        let message = format!("{why} (expected redis://[:password@]host:port/[db])");
        ConfigError::new("alerts.redis_url", message)
    };
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| bad("must start with redis:// or rediss://"))?;
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed '['"))?;
            match after {
                "" => (host, "6379"),
                _ => (host, after.strip_prefix(':').unwrap_or(after)),
            }
        }
        None => host_port.rsplit_once(':').unwrap_or((host_port, "6379")),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad(&format!("port {port:?} is not a port number")));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(bad(&format!("database {db:?} is not a number")));
    }
    Ok(())
}

/// `auth.issuer` / `auth.audience`: unset, or a non-empty string of at most 256 bytes
/// without control characters (compared byte for byte with the token's claim).
fn registered_claim(key: &str, value: Option<&str>) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control) => {
            Ok(Some(v.to_owned()))
        }
        Some(_) => Err(ConfigError::new(
            key,
            "must be 1-256 characters without control characters (or left unset)",
        )),
    }
}

fn decode_secret(text: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
        .map_err(|_| ConfigError::new("auth.secret", "is not base64"))?;
    if bytes.len() < 32 {
        return Err(ConfigError::new(
            "auth.secret",
            format!(
                "decodes to {} bytes; HS256 needs at least 32 (RFC 7518 § 3.2)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

fn load_regions(file: Option<&PathBuf>) -> Result<(RegionTree, String), ConfigError> {
    let Some(path) = file else {
        return Ok((RegionTree::zhejiang(), "built-in (Zhejiang)".to_owned()));
    };
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::new(
            "regions.file",
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    let tree = RegionTree::parse(&text)
        .map_err(|err| ConfigError::new("regions.file", format!("{}: {err}", path.display())))?;
    Ok((tree, path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut Config)) -> Result<Settings, ConfigError> {
        let mut config = Config::default();
        edit(&mut config);
        Settings::from_config(config)
    }

    #[test]
    fn defaults_are_valid() {
        let settings = with(|_| {}).expect("defaults");
        assert_eq!(
            settings.listen,
            "127.0.0.1:8080"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
        assert!(!settings.tls_enabled());
        assert_eq!(settings.default_ttl_secs, 8 * 3600);
        // The subscriber cap follows the connection cap, with room left for everything else.
        assert_eq!(settings.alerts.max_subscribers, 18_050);
        let small = with(|c| c.http.max_connections = 40).expect("small");
        assert_eq!(small.alerts.max_subscribers, 38);
        let tiny = with(|c| c.http.max_connections = 3).expect("tiny");
        assert_eq!(tiny.alerts.max_subscribers, 2);
        let set = with(|c| c.alerts.max_subscribers = 500).expect("set");
        assert_eq!(set.alerts.max_subscribers, 500);
    }

    #[test]
    fn redis_urls() {
        for good in [
            "redis://127.0.0.1:6379/",
            "redis://127.0.0.1",
            "redis://:secret@10.0.0.5:6380/2",
            "rediss://user:pw@redis.internal:6380",
            "redis://[::1]:6379/0",
            "redis://[::1]",
        ] {
            assert!(validate_redis_url(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "127.0.0.1:6379",
            "redis://",
            "redis://h:x/",
            "redis://h/db",
        ] {
            let err = validate_redis_url(bad).expect_err(bad);
            assert_eq!(err.setting, "alerts.redis_url", "{bad}");
        }
    }

    #[test]
    fn each_bad_value_names_its_setting() {
        type Edit = Box<dyn FnOnce(&mut Config)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("listen", Box::new(|c| c.listen = "127.0.0.1:70000".into())),
            ("listen", Box::new(|c| c.listen = "localhost".into())),
            ("listen", Box::new(|c| c.listen = "example:80".into())),
            (
                "sfu.udp_listen",
                Box::new(|c| c.sfu.udp_listen = "127.0.0.1:99999".into()),
            ),
            (
                "sfu.tcp_listen",
                Box::new(|c| c.sfu.tcp_listen = "nowhere".into()),
            ),
            (
                "sfu.public_ips",
                Box::new(|c| c.sfu.public_ips = vec!["1.2.3".into()]),
            ),
            (
                "sfu.public_ips",
                Box::new(|c| c.sfu.public_ips = vec!["0.0.0.0".into()]),
            ),
            (
                "sfu.public_ips",
                Box::new(|c| c.sfu.public_ips = vec!["224.0.0.1".into()]),
            ),
            (
                "sfu.public_ips",
                Box::new(|c| c.sfu.udp_listen = "0.0.0.0:7882".into()),
            ),
            (
                "sfu.public_ips",
                Box::new(|c| c.sfu.tcp_listen = "[::]:7881".into()),
            ),
            ("sfu.max_peers", Box::new(|c| c.sfu.max_peers = 0)),
            ("sfu.rtx_history_ms", Box::new(|c| c.sfu.rtx_history_ms = 0)),
            (
                "sfu.rtx_history_ms",
                Box::new(|c| c.sfu.rtx_history_ms = 60_001),
            ),
            (
                "sfu.connect_timeout_secs",
                Box::new(|c| c.sfu.connect_timeout_secs = u64::MAX),
            ),
            (
                "http.header_read_timeout_secs",
                Box::new(|c| c.http.header_read_timeout_secs = i64::MAX as u64),
            ),
            (
                "http.health_push_secs",
                Box::new(|c| c.http.health_push_secs = 86_401),
            ),
            ("auth.leeway_secs", Box::new(|c| c.auth.leeway_secs = 3601)),
            (
                "tls.self_signed",
                Box::new(|c| {
                    c.tls.self_signed = true;
                    c.tls.cert = Some("/etc/hubcast/cert.pem".into());
                }),
            ),
            (
                "auth.issuer",
                Box::new(|c| c.auth.issuer = Some(String::new())),
            ),
            (
                "auth.audience",
                Box::new(|c| c.auth.audience = Some("hub\ncast".into())),
            ),
            (
                "alerts.max_body_bytes",
                Box::new(|c| c.alerts.max_body_bytes = 10),
            ),
            (
                "alerts.store_readers",
                Box::new(|c| c.alerts.store_readers = 0),
            ),
            (
                "alerts.queue_capacity",
                Box::new(|c| c.alerts.queue_capacity = 0),
            ),
            (
                "alerts.max_concurrent_reads",
                Box::new(|c| c.alerts.max_concurrent_reads = 0),
            ),
            (
                "alerts.query_timeout_ms",
                Box::new(|c| c.alerts.query_timeout_ms = 0),
            ),
            (
                "http.metrics_token",
                Box::new(|c| c.http.metrics_token = Some("short".to_owned())),
            ),
            (
                "http.cors_origins",
                Box::new(|c| c.http.cors_origins = vec!["https://portal.example/wall".into()]),
            ),
            (
                "http.cors_origins",
                Box::new(|c| c.http.cors_origins = vec!["https://Portal.example".into()]),
            ),
            (
                "http.cors_origins",
                Box::new(|c| c.http.cors_origins = vec!["https://portal.example:443".into()]),
            ),
            (
                "http.metrics_token",
                Box::new(|c| c.http.metrics_token = Some("sixteen chars or more".to_owned())),
            ),
            (
                "alerts.senders",
                Box::new(|c| {
                    let owner = tiers::RegionCode::parse("330000").expect("code");
                    c.alerts.senders.insert("scjg zj".to_owned(), owner);
                }),
            ),
            (
                "alerts.senders",
                Box::new(|c| {
                    // A well-formed code that is not in the built-in tree.
                    let owner = tiers::RegionCode::parse("990000").expect("code");
                    c.alerts.senders.insert("scjg.x.gov.cn".to_owned(), owner);
                }),
            ),
            ("alerts.ping_secs", Box::new(|c| c.alerts.ping_secs = 0)),
            (
                "alerts.idle_timeout_secs",
                Box::new(|c| {
                    c.alerts.ping_secs = 60;
                    c.alerts.idle_timeout_secs = 45;
                }),
            ),
            (
                "alerts.idle_timeout_secs",
                Box::new(|c| {
                    c.alerts.ping_secs = 30;
                    c.alerts.idle_timeout_secs = 59;
                }),
            ),
            (
                "alerts.retain_age_secs",
                Box::new(|c| c.alerts.retain_age_secs = 0),
            ),
            (
                "alerts.retain_age_secs",
                Box::new(|c| c.alerts.retain_age_secs = 91 * 24 * 3600),
            ),
            (
                "alerts.max_subscribers",
                Box::new(|c| c.alerts.max_subscribers = c.http.max_connections),
            ),
            (
                "alerts.redis_url",
                Box::new(|c| {
                    c.alerts.backend = crate::config::AlertsBackend::Redis;
                    c.alerts.redis_url = "http://127.0.0.1:6379/".into();
                }),
            ),
            (
                "alerts.redis_url",
                Box::new(|c| {
                    c.alerts.backend = crate::config::AlertsBackend::Redis;
                    c.alerts.redis_url = "redis://127.0.0.1:0/".into();
                }),
            ),
            (
                "alerts.redis_url",
                Box::new(|c| {
                    c.alerts.backend = crate::config::AlertsBackend::Redis;
                    c.alerts.redis_url = "redis://:pw@/x".into();
                }),
            ),
            (
                "alerts.redis_prefix",
                Box::new(|c| c.alerts.redis_prefix = "a b".into()),
            ),
            ("log.format", Box::new(|c| c.log.format = "xml".into())),
            (
                "log.level",
                Box::new(|c| c.log.level = "hubcast=loud".into()),
            ),
            (
                "http.grace_period_secs",
                Box::new(|c| c.http.grace_period_secs = 0),
            ),
            (
                "http.max_connections",
                Box::new(|c| c.http.max_connections = 0),
            ),
            (
                "auth.algorithm",
                Box::new(|c| c.auth.algorithm = "RS256".into()),
            ),
            (
                "auth.secret",
                Box::new(|c| c.auth.secret = Some("c2hvcnQ=".into())),
            ),
            (
                "auth.secret",
                Box::new(|c| c.auth.secret = Some("!!".into())),
            ),
            (
                "auth.default_ttl",
                Box::new(|c| c.auth.default_ttl = "forever".into()),
            ),
            (
                "auth.default_ttl",
                Box::new(|c| c.auth.default_ttl = "500d".into()),
            ),
            (
                "regions.file",
                Box::new(|c| c.regions.file = Some("/nonexistent.tsv".into())),
            ),
            (
                "tls.cert",
                Box::new(|c| {
                    c.tls.cert = Some("/nonexistent/cert.pem".into());
                    c.tls.key = Some("/nonexistent/key.pem".into());
                }),
            ),
            (
                "tls.key",
                Box::new(|c| c.tls.cert = Some("/nonexistent/cert.pem".into())),
            ),
        ];
        for (setting, edit) in cases {
            let err = with(edit).expect_err(setting);
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn all_interfaces_bind_with_the_public_ips_advertised() {
        let settings = with(|c| {
            c.sfu.udp_listen = "0.0.0.0:7882".into();
            c.sfu.tcp_listen = "[::]:7881".into();
            c.sfu.public_ips = vec!["203.0.113.10".into(), "2001:db8::10".into()];
        })
        .expect("valid");
        assert!(settings.sfu.udp_listen.ip().is_unspecified());
        assert_eq!(settings.sfu.public_ips.len(), 2);
    }
}
