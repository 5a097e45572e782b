//! Test harness shared by the end-to-end tests: runs the real `hubcast` binary on a free
//! loopback port with its own data dir, and speaks HTTP/1.1 to it over plain TCP or TLS.
#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hubcast")
}

/// The lines `child` writes to its (piped) stdout, as they come, read by a thread of their
/// own; the channel closes when the child does.
pub fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `hubcast ARGS` to completion with extra env vars; returns (status, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let out = Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run hubcast");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `hubcast serve`, killed on drop.
pub struct Hub {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Its log lines so far (also passed on to the test's stderr as they come).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

/// Log lines a hub keeps for [`Hub::log_lines`], at most (the newest are dropped beyond).
const LOG_KEEP: usize = 20_000;

/// Passes `child`'s stderr on line by line, keeping a copy of each.
fn tee_stderr(child: &mut Child) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let into = kept.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut kept = into
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() < LOG_KEEP {
                kept.push(line);
            }
        }
    });
    kept
}

impl Hub {
    /// The newest log line containing every one of `parts`, waited for up to `within`.
    pub async fn wait_log(&self, parts: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.log_lines(parts).pop() {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {parts:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log lines the hub wrote so far that contain every one of `parts`.
    pub fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        let kept = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .cloned()
            .collect()
    }

    /// Starts `hubcast serve --listen 127.0.0.1:0` with a fresh data dir plus `args`/`env`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::start_on("127.0.0.1:0", args, env)
    }

    /// [`Hub::start`] with the HTTP listener on `listen` (`[::1]:0`, `[::]:PORT`).
    pub fn start_on(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let tmp = tempfile::tempdir().expect("tmp");
        let data_dir = tmp.path().join("data");
        let mut hub = Self::start_listening(listen, &data_dir, args, env);
        hub._tmp = Some(tmp);
        hub
    }

    /// Starts with a given data dir (kept by the caller).
    pub fn start_in(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::start_listening("127.0.0.1:0", data_dir, args, env)
    }

    /// Starts with the HTTP listener on `listen` (`[::1]:0`) and a given data dir.
    pub fn start_listening(
        listen: &str,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Hub {
        let mut child = Command::new(binary())
            .arg("serve")
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(args)
            // Parallel hubs: media ports picked by the kernel unless a test says otherwise.
            .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
            .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hubcast serve");
        let log = tee_stderr(&mut child);
        let lines = stdout_lines(&mut child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line =
                (lines.recv_timeout(left)).expect("hubcast did not report its address within 30 s");
            if let Some(url) = line.strip_prefix("hubcast listening on ") {
                break url.to_owned();
            }
        };
        let addr = url
            .rsplit("//")
            .next()
            .and_then(|a| a.parse().ok())
            .expect("address in url");
        Hub {
            child,
            url,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
            _tmp: None,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits up to `limit` for exit; returns the status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Mints a token with `hubcast token` against this hub's data dir.
    pub fn token(&self, role: &str, region: &str, extra: &[&str]) -> String {
        mint_token(&self.data_dir, role, region, extra, &[])
    }
}

/// `hubcast token --role ROLE --region REGION --data-dir DIR EXTRA…` with `env` (e.g. a shared
/// `HUBCAST_AUTH__SECRET`); panics if it fails.
pub fn mint_token(
    data_dir: &Path,
    role: &str,
    region: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> String {
    let dir = data_dir.display().to_string();
    let mut args = vec![
        "token",
        "--role",
        role,
        "--region",
        region,
        "--data-dir",
        &dir,
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = run(&args, env);
    assert!(status.success(), "hubcast token failed: {err}");
    out.trim().to_owned()
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh plain TCP connection.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    request(stream, "GET", path, headers).await
}

/// A hub whose SFU listens on a UDP port chosen here (to front it, or to aim datagrams at
/// it), and that address.
pub fn hub_on_udp() -> (Hub, SocketAddr) {
    let sfu = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let udp = sfu.to_string();
    let hub = Hub::start(&[], &[("HUBCAST_SFU__UDP_LISTEN", udp.as_str())]);
    (hub, sfu)
}

/// [`hub_on_udp`] with a lossy relay in front of its port (clients are pointed at the relay
/// with `via` / `ClientOptions::media_via`).
pub async fn hub_behind_relay(
    cfg: testkit::lossy_relay::RelayConfig,
) -> (Hub, testkit::lossy_relay::LossyRelay) {
    let (hub, sfu) = hub_on_udp();
    let relay = testkit::lossy_relay::LossyRelay::start(sfu, cfg)
        .await
        .expect("relay");
    (hub, relay)
}

/// Polls `name` every `poll` until it reaches `at_least`: how long that took, or `None` once
/// `within` has passed.
pub async fn metric_reaches(
    hub: &Hub,
    name: &str,
    at_least: f64,
    within: Duration,
    poll: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if metric(hub, name).await >= at_least {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(poll).await;
    }
}

/// A headless Chromium on the hub's `publish.html` for room `room` (query `extra` appended,
/// e.g. `&via=…`; the token in the fragment), once its WHIP session is connected.
pub async fn chromium_publisher(
    hub: &Hub,
    room: &str,
    extra: &str,
    token: &str,
) -> testkit::browser::Browser {
    let publisher = testkit::browser::Browser::launch().await.expect("chromium");
    publisher
        .goto(&format!(
            "{}/assets/test/publish.html?room={room}{extra}#token={token}",
            hub.url
        ))
        .await
        .expect("publish page");
    publisher
        .wait_for(
            "hubcastState().connection === 'connected'",
            Duration::from_secs(40),
        )
        .await
        .expect("publisher connected over WHIP");
    publisher
}

/// The value of `hub`'s metric sample whose line starts with `prefix` (0 when absent).
pub async fn metric(hub: &Hub, prefix: &str) -> f64 {
    let text = get(hub.addr, "/metrics", &[]).await.body;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// One HTTP/1.1 request (`Connection: close`) over any stream; reads until EOF.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    request_with_body(stream, method, path, headers, b"").await
}

/// Like [`request`], with a body (the caller sets Content-Length).
pub async fn request_with_body<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else { break };
        let after = &rest[eol + 2..];
        if size == 0 || after.len() < size {
            break;
        }
        out.extend_from_slice(&after[..size]);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    out
}

/// A minimal but complete WebRTC offer (BUNDLE, ICE, DTLS fingerprint, rtcp-mux).
pub fn sdp_offer(direction: &str, codec_line: &str) -> String {
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:0123456789abcdef0123456789",
        "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08",
        "a=setup:actpass",
        "a=mid:0",
        direction,
        "a=rtcp-mux",
        "a=rtcp-rsize",
        codec_line,
        "",
    ]
    .join("\r\n")
}

/// `method path` with a body of `content_type`, and the bearer `token` if any.
pub async fn call(
    hub: &Hub,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> Response {
    let stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let auth = token.map(|t| format!("Bearer {t}"));
    let len = body.len().to_string();
    let mut headers = vec![
        ("Content-Type", content_type),
        ("Content-Length", len.as_str()),
    ];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    request_with_body(stream, method, path, &headers, body.as_bytes()).await
}

/// Waits up to 20 s for a webrtc-rs viewer to decode video (> 30 frames) and receive audio
/// (> 50 packets), then checks it lost no video packet and that no session of `hub` ended
/// waiting for ICE (a connectivity check paired with the wrong candidate ends that way).
pub async fn media_flows_cleanly(hub: &Hub, viewer: &testkit::rtc_client::WhepViewer) {
    let stats = viewer
        .wait_for("video and audio", Duration::from_secs(20), |s| {
            s.video.frames > 30 && s.audio.packets > 50
        })
        .await
        .expect("media flows to the viewer");
    assert_eq!(stats.video.lost, 0, "{stats:?}");
    let timeouts = metric(
        hub,
        r#"hubcast_sfu_sessions_ended_total{reason="connect_timeout"}"#,
    )
    .await;
    assert_eq!(timeouts, 0.0, "no session waited for ICE in vain");
}
