//! The system under test, driven from outside: `hubcast serve` child processes (one, or several
//! on one Redis), the Redis server itself, a publisher token from `hubcast token`, and the
//! publish request (`POST /api/v1/alerts`, CAP 1.2 XML, over a plain HTTP/1.1 connection), and
//! [`phase`], the hubcast part of a run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use crate::RunArgs;
use crate::measure::{self, Phase, Servers, Trigger};
use crate::procs::{Fleet, Group, mono_ns};
use crate::report::Run;

/// The region every subscriber watches and every alert targets.
pub const REGION: &str = "330000";
/// Path of WebSocket subscribers.
pub const SUBSCRIBE_PATH: &str = "/ws/alerts?region=330000";
/// Path of SSE subscribers (`--sse`).
pub const SSE_PATH: &str = "/sse/alerts?region=330000";

/// The subscribers' path for the transport chosen.
pub fn subscribe_path(sse: bool) -> &'static str {
    if sse { SSE_PATH } else { SUBSCRIBE_PATH }
}

/// How the hubs are configured.
#[derive(Debug, Clone)]
pub struct HubEnv {
    /// `redis://127.0.0.1:PORT/` when the hubs share a Redis backend.
    pub redis_url: Option<String>,
    /// The shared HS256 secret (base64) when there are several hubs.
    pub secret: Option<String>,
    /// `http.worker_threads` of each hub (0: the hub's default, one per core).
    pub threads: usize,
}

impl HubEnv {
    fn apply(&self, command: &mut Command) {
        if let Some(url) = &self.redis_url {
            command
                .env("HUBCAST_ALERTS__BACKEND", "redis")
                .env("HUBCAST_ALERTS__REDIS_URL", url);
        }
        if let Some(secret) = &self.secret {
            command.env("HUBCAST_AUTH__SECRET", secret);
        }
        if self.threads > 0 {
            command.env("HUBCAST_HTTP__WORKER_THREADS", self.threads.to_string());
        }
    }
}

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    pub pid: u32,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

/// Starts `hubcast serve` on a free loopback port for `subscribers` live subscribers (limits
/// raised above them, the per-IP connect limit out of the way); its log goes to
/// `<data_dir>/hub.log`.
pub async fn start(
    fleet: &mut Fleet,
    binary: &Path,
    data_dir: &Path,
    subscribers: usize,
    env: &HubEnv,
) -> anyhow::Result<Hub> {
    let log = std::fs::File::create(data_dir.join("hub.log"))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
        .env(
            "HUBCAST_ALERTS__MAX_SUBSCRIBERS",
            (subscribers + 64).to_string(),
        )
        .env(
            "HUBCAST_HTTP__MAX_CONNECTIONS",
            (subscribers + 256).max(19_000).to_string(),
        )
        .env("HUBCAST_ALERTS__CONNECT_RATE_PER_IP", "1000000")
        .env("HUBCAST_ALERTS__CONNECT_BURST_PER_IP", "1000000")
        // The clients come from a few source addresses, thousands of subscribers each.
        .env("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "1000000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    env.apply(&mut command);
    let spawned = fleet.spawn("hubcast serve", &mut command)?;
    let stdout = spawned.stdout.context("hub without stdout")?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Reads the banner, then keeps draining stdout so the hub never blocks on it.
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("hubcast listening on http://")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let addr = match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(url)) => url.parse().context("the hub's listening address")?,
        _ => {
            let tail = std::fs::read_to_string(data_dir.join("hub.log")).unwrap_or_default();
            bail!("hubcast serve did not start within 30 s; its log:\n{tail}");
        }
    };
    Ok(Hub {
        pid: spawned.pid,
        addr,
        data_dir: data_dir.to_path_buf(),
    })
}

/// A province-admin token for 330000, minted with `hub`'s data dir (and the shared secret).
pub async fn token(binary: &Path, hub: &Hub, env: &HubEnv) -> anyhow::Result<String> {
    let mut command = Command::new(binary);
    command
        .args(["token", "--role", "province-admin", "--region", REGION])
        .arg("--data-dir")
        .arg(&hub.data_dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    env.apply(&mut command);
    let out = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .context("hubcast token took over 30 s")??;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("hubcast token failed ({}): {err}", out.status);
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A fresh HS256 secret: base64 of 32 bytes from the kernel.
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Starts `redis-server` on a free loopback port with an fsync-always append-only file in
/// `dir`; returns its pid and URL once it accepts connections.
pub async fn start_redis(fleet: &mut Fleet, dir: &Path) -> anyhow::Result<(u32, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--maxclients", "1000"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::inherit());
    let spawned = fleet.spawn("redis-server", &mut command)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if tokio::time::Instant::now() > deadline {
            bail!("redis-server did not accept connections on port {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((spawned.pid, format!("redis://127.0.0.1:{port}/")))
}

/// A valid CAP 1.2 alert for the whole province, with a distinct `identifier`.
pub fn cap_xml(identifier: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{identifier}</identifier><sender>alert-load.hubcast.invalid</sender><sent>2026-11-26T08:00:00+08:00</sent>
<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><language>zh-CN</language><category>Health</category><event>市场监管信息</event>
<urgency>Expected</urgency><severity>Moderate</severity><certainty>Likely</certainty>
<eventCode><valueName>hubcast:kind</valueName><value>food</value></eventCode>
<headline>负载测试</headline><description>alert-load</description>
<area><areaDesc>浙江省</areaDesc><geocode><valueName>GB2260</valueName><value>{REGION}</value></geocode></area>
</info>
</alert>"#
    )
}

/// When a publish was sent and answered, and the sequence number it got.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub seq: u64,
    /// `CLOCK_MONOTONIC` just before the request's first byte was written.
    pub sent_ns: u64,
    /// … and when the whole answer had been read.
    pub acked_ns: u64,
}

/// `POST /api/v1/alerts`; the connection is opened before the clock starts.
pub async fn publish(addr: SocketAddr, token: &str, xml: &str) -> anyhow::Result<Published> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/cap+xml\r\n\
         Content-Length: {}\r\n\r\n{xml}",
        xml.len()
    );
    let sent_ns = mono_ns();
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let acked_ns = mono_ns();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "201" {
        bail!("publish answered {status}: {body}");
    }
    let json: serde_json::Value = serde_json::from_str(body.trim())
        .with_context(|| format!("publish answer is not JSON: {body:?}"))?;
    let seq = json
        .get("seq")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("no seq in the publish answer {body:?}"))?;
    Ok(Published {
        seq,
        sent_ns,
        acked_ns,
    })
}

/// The hubcast phase: Redis if asked, the hubs, a token, one warm-up publish, then the
/// measurement with the run's worker layout on 127.0.0.2 and up.
pub async fn phase(
    args: &RunArgs,
    fleet: &mut Fleet,
    binary: &std::path::Path,
    dir: &std::path::Path,
    run: &mut Run,
) -> anyhow::Result<Phase> {
    let mut env = HubEnv {
        redis_url: None,
        secret: (args.hubs > 1).then(new_secret).transpose()?,
        threads: args.hub_threads,
    };
    let mut extra_pids = Vec::new();
    if args.redis {
        let redis_dir = dir.join("redis");
        std::fs::create_dir_all(&redis_dir)?;
        let (pid, url) = start_redis(fleet, &redis_dir).await?;
        eprintln!("alert-load: redis-server pid {pid} at {url}");
        extra_pids.push(pid);
        env.redis_url = Some(url);
    }
    let per_hub = args.subscribers.div_ceil(args.hubs);
    let mut hubs = Vec::with_capacity(args.hubs);
    for i in 0..args.hubs {
        let data = dir.join(format!("hub-{i}"));
        std::fs::create_dir_all(&data)?;
        let hub = start(fleet, binary, &data, per_hub, &env).await?;
        eprintln!(
            "alert-load: hub {i} pid {} on http://{} (log {}/hub.log)",
            hub.pid,
            hub.addr,
            data.display()
        );
        hubs.push(hub);
    }
    let first = hubs.first().context("no hub")?;
    let token = token(binary, first, &env).await?;
    // Warm the publish path (store, first allocations) before the base RSS is read.
    let warm = cap_xml(&format!("alert-load-warm-{}", std::process::id()));
    publish(first.addr, &token, &warm).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut servers = Servers {
        pids: hubs.iter().map(|h| h.pid).collect(),
        addrs: hubs.iter().map(|h| h.addr).collect(),
        extra_pids,
        group: Group::default(),
        trigger: Trigger::Publish {
            addr: first.addr,
            token,
        },
    };
    run.hub_threads = thread_count(first.pid);
    measure::run(fleet, &args.layout(2), &mut servers, "hubcast").await
}

/// Threads of process `pid`.
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_carries_its_identifier_and_region() {
        let xml = cap_xml("load-1");
        assert!(xml.contains("<identifier>load-1</identifier>"));
        assert!(xml.contains("<value>330000</value>"));
    }

    #[test]
    fn secrets_are_32_random_bytes() -> anyhow::Result<()> {
        let (a, b) = (new_secret()?, new_secret()?);
        let bytes = base64::engine::general_purpose::STANDARD.decode(&a)?;
        assert_eq!(bytes.len(), 32);
        assert_ne!(a, b);
        Ok(())
    }
}
