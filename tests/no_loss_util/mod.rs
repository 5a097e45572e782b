//! The no-loss harness shared by the single-node and Redis tests: subscribers (WebSocket and
//! SSE) that reconnect with their last sequence number, a publish that may fail while a hub is
//! down, and the check that each subscriber ended with exactly the acknowledged alerts it
//! matches, once each, in order.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// The hubs a subscriber may connect to; each reconnect tries the next one.
#[derive(Debug, Clone)]
pub struct Hubs(pub Arc<Vec<SocketAddr>>);

impl Hubs {
    pub fn new(addrs: &[SocketAddr]) -> Hubs {
        Hubs(Arc::new(addrs.to_vec()))
    }

    fn pick(&self, attempt: &mut usize) -> SocketAddr {
        let addr = self.0[*attempt % self.0.len()];
        *attempt += 1;
        addr
    }
}

/// `hubcast serve` on `addr` (fixed, so subscribers find it again after a restart) with
/// `data` and extra `env`; returns once it accepts connections.
pub fn spawn_hub(data: &std::path::Path, addr: SocketAddr, env: &[(&str, &str)]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hubcast"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hubcast");
    for _ in 0..300 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("hub did not come up on {addr}");
}

/// One POST that may fail (hub down): `None` on any transport error.
pub async fn try_post(
    addr: SocketAddr,
    token: &str,
    xml: &str,
) -> Option<(u16, serde_json::Value)> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head = format!(
            "POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/cap+xml\r\nContent-Length: {}\r\n\r\n",
            xml.len()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(xml.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((
            status,
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .ok()
        .flatten()
}

/// Posts `xml` until a hub acknowledges it, trying `hubs` in turn from index `first` while
/// they fail (a hub killed or restarting); a 4xx answer panics. Returns the acknowledged
/// sequence number. A retry after a lost answer is safe: the identity makes it idempotent.
pub async fn post_until_acked(hubs: &[SocketAddr], first: usize, token: &str, xml: &str) -> u64 {
    let mut target = first;
    loop {
        match try_post(hubs[target % hubs.len()], token, xml).await {
            Some((200 | 201, body)) => return body["seq"].as_u64().expect("seq"),
            Some((status, body)) if status < 500 => panic!("publish refused: {status} {body}"),
            _ => {
                target += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Whether a subscriber to `sub` receives an alert for `area` (subtree both ways).
pub fn matches(sub: &str, area: &str) -> bool {
    let ancestors = |c: &str| -> Vec<String> {
        let mut out = vec![c.to_owned()];
        if !c.ends_with("00") {
            out.push(format!("{}00", &c[..4]));
        }
        if !c.ends_with("0000") {
            out.push(format!("{}0000", &c[..2]));
        }
        out
    };
    ancestors(sub).iter().any(|a| a == area) || ancestors(area).iter().any(|a| a == sub)
}

#[derive(Default)]
pub struct Log {
    pub seqs: Vec<u64>,
    pub violations: Vec<String>,
    pub reconnects: u32,
}

pub fn record(log: &Mutex<Log>, seq: u64) {
    if let Ok(mut log) = log.lock() {
        if log.seqs.last().is_some_and(|last| seq <= *last) {
            let last = log.seqs.last().copied();
            log.violations.push(format!("seq {seq} after {last:?}"));
        }
        log.seqs.push(seq);
    }
}

/// Records one delivered frame: an alert's seq, anything else (reset, garbage) a violation.
pub fn on_frame(log: &Mutex<Log>, text: &str) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    match value["type"].as_str() {
        Some("alert") => record(log, value["seq"].as_u64().unwrap_or(0)),
        other => log
            .lock()
            .expect("log")
            .violations
            .push(format!("unexpected {other:?}: {text}")),
    }
}

pub fn last(log: &Mutex<Log>) -> Option<u64> {
    log.lock().ok().and_then(|l| l.seqs.last().copied())
}

/// A WebSocket subscriber to `region` until `until`, reconnecting (to the next of `hubs`,
/// round robin) with `since` = the last sequence number it got.
pub async fn ws_subscriber(hubs: Hubs, region: &'static str, log: Arc<Mutex<Log>>, until: Instant) {
    let mut attempt = 0usize;
    while Instant::now() < until {
        let addr = hubs.pick(&mut attempt);
        let since = last(&log)
            .map(|s| format!("&since={s}"))
            .unwrap_or_default();
        let url = format!("ws://{addr}/ws/alerts?region={region}{since}");
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(url),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            let message = match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                Err(_) if Instant::now() < until => continue,
                Err(_) => return,
                Ok(Some(Ok(message))) => message,
                Ok(_) => break,
            };
            if let Message::Text(text) = message {
                on_frame(&log, &text);
            }
            if Instant::now() >= until {
                return;
            }
        }
        log.lock().expect("log").reconnects += 1;
    }
}

/// An SSE subscriber to `region` until `until`, reconnecting (to the next of `hubs`, round
/// robin) with `Last-Event-ID` = the last sequence number it got.
pub async fn sse_subscriber(
    hubs: Hubs,
    region: &'static str,
    log: Arc<Mutex<Log>>,
    until: Instant,
) {
    let mut attempt = 0usize;
    while Instant::now() < until {
        let addr = hubs.pick(&mut attempt);
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
                .await
        else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let resume = last(&log)
            .map(|s| format!("Last-Event-ID: {s}\r\n"))
            .unwrap_or_default();
        let head = format!("GET /sse/alerts?region={region} HTTP/1.0\r\nHost: x\r\n{resume}\r\n");
        if stream.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        let mut in_body = false;
        loop {
            match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                Err(_) if Instant::now() < until => continue,
                _ => break,
            }
            if !in_body {
                let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                buf.drain(..at + 4);
                in_body = true;
            }
            while let Some(at) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..at + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let data = text
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(str::trim);
                if let Some(data) = data {
                    on_frame(&log, data);
                }
            }
            if Instant::now() >= until {
                return;
            }
        }
        log.lock().expect("log").reconnects += 1;
    }
}

/// A subscriber of the check: transport, region, what it got.
pub type Sub = (&'static str, &'static str, Arc<Mutex<Log>>);

/// Waits (up to 60 s) for every subscriber to have as many alerts as it should, then asserts
/// each got exactly the acknowledged alerts it matches, once each, in order, and that each
/// lived through at least one reconnect.
pub async fn check(subs: &[Sub], acked: &[(u64, &'static str)]) {
    let expected = |region: &str| -> Vec<u64> {
        let mut seqs: Vec<u64> = acked
            .iter()
            .filter(|(_, a)| matches(region, a))
            .map(|(s, _)| *s)
            .collect();
        seqs.sort_unstable();
        seqs
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = subs
            .iter()
            .all(|(_, region, log)| log.lock().expect("log").seqs.len() >= expected(region).len());
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (transport, region, log) in subs {
        let log = log.lock().expect("log");
        let want = expected(region);
        assert!(
            log.violations.is_empty(),
            "{transport} {region}: {:?}",
            log.violations
        );
        assert!(
            log.reconnects >= 1,
            "{transport} {region} lived through the crash"
        );
        assert_eq!(log.seqs.len(), want.len(), "{transport} {region}: count");
        assert_eq!(
            log.seqs, want,
            "{transport} {region}: exactly the acknowledged matching alerts, in order"
        );
    }
}
