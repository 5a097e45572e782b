//! No loss across a crash: 1000 alerts are published while the hub is killed with SIGKILL and
//! restarted on the same data dir. Three subscribers (two WebSocket, one SSE) reconnect with
//! their last sequence number (`since` / `Last-Event-ID`) whenever their connection drops.
//! Each must end with exactly the acknowledged alerts it matches: once each, in order.

mod alerts_util;
mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alerts_util::{Fixture, cap_xml};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

const N: usize = 1000;
const REGIONS: [&str; 4] = ["330100", "330106", "330200", "330000"];

fn start(data: &std::path::Path, addr: SocketAddr) -> Child {
    let mut child = Command::new(common::binary())
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .env("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0")
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
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
async fn try_post(addr: SocketAddr, token: &str, xml: &str) -> Option<(u16, serde_json::Value)> {
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

/// Whether a subscriber to `sub` receives an alert for `area` (subtree both ways).
fn matches(sub: &str, area: &str) -> bool {
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
struct Log {
    seqs: Vec<u64>,
    violations: Vec<String>,
    reconnects: u32,
}

fn record(log: &Mutex<Log>, seq: u64) {
    if let Ok(mut log) = log.lock() {
        if log.seqs.last().is_some_and(|last| seq <= *last) {
            let last = log.seqs.last().copied();
            log.violations.push(format!("seq {seq} after {last:?}"));
        }
        log.seqs.push(seq);
    }
}

/// Records one delivered frame: an alert's seq, anything else (reset, garbage) a violation.
fn on_frame(log: &Mutex<Log>, text: &str) {
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

fn last(log: &Mutex<Log>) -> Option<u64> {
    log.lock().ok().and_then(|l| l.seqs.last().copied())
}

async fn ws_subscriber(
    addr: SocketAddr,
    region: &'static str,
    log: Arc<Mutex<Log>>,
    until: Instant,
) {
    while Instant::now() < until {
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

async fn sse_subscriber(
    addr: SocketAddr,
    region: &'static str,
    log: Arc<Mutex<Log>>,
    until: Instant,
) {
    while Instant::now() < until {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_alert_is_lost_across_sigkill() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut hub = start(&data, addr);
    let dir = data.display().to_string();
    let (status, token, err) = common::run(
        &[
            "token",
            "--role",
            "province-admin",
            "--region",
            "330000",
            "--data-dir",
            &dir,
        ],
        &[],
    );
    assert!(status.success(), "{err}");
    let token = token.trim().to_owned();

    let until = Instant::now() + Duration::from_secs(120);
    let subs: Vec<(&'static str, &'static str, Arc<Mutex<Log>>)> = vec![
        ("ws", "330106", Arc::default()),
        ("ws", "330000", Arc::default()),
        ("sse", "330200", Arc::default()),
    ];
    let mut tasks = Vec::new();
    for (transport, region, log) in &subs {
        let log = log.clone();
        tasks.push(match *transport {
            "ws" => tokio::spawn(ws_subscriber(addr, region, log, until)),
            _ => tokio::spawn(sse_subscriber(addr, region, log, until)),
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let acked: Arc<Mutex<Vec<(u64, &'static str)>>> = Arc::default();
    let publisher = {
        let acked = acked.clone();
        let token = token.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let region = REGIONS[i % REGIONS.len()];
                let kind = if i % 2 == 0 { "food" } else { "consumer" };
                let identifier = format!("nl-{i}");
                let xml = cap_xml(&Fixture {
                    identifier: &identifier,
                    kind,
                    severity: "Severe",
                    regions: &[region],
                    sent: "2025-07-01T08:00:00+08:00",
                    headline: "不丢失",
                    description: "压力测试",
                });
                loop {
                    match try_post(addr, &token, &xml).await {
                        Some((200 | 201, body)) => {
                            let seq = body["seq"].as_u64().expect("seq");
                            acked.lock().expect("acked").push((seq, region));
                            break;
                        }
                        Some((status, body)) if status < 500 => {
                            panic!("{identifier}: {status} {body}")
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        })
    };

    // Kill the hub hard a third of the way through, then bring it back on the same data dir.
    while acked.lock().expect("acked").len() < N / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = Command::new("kill")
        .args(["-KILL", &hub.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = hub.wait();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut hub = start(&data, addr);
    publisher.await.expect("publisher finished");

    let acked = acked.lock().expect("acked").clone();
    assert_eq!(acked.len(), N);
    let expected = |region: &str| -> Vec<u64> {
        let mut seqs: Vec<u64> = acked
            .iter()
            .filter(|(_, a)| matches(region, a))
            .map(|(s, _)| *s)
            .collect();
        seqs.sort_unstable();
        seqs
    };
    // Wait for every subscriber to catch up.
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
    for (transport, region, log) in &subs {
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
    for task in tasks {
        task.abort();
    }
    let _ = hub.kill();
    let _ = hub.wait();
}
