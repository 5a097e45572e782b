//! No loss across a crash: 1000 alerts are published while the hub is killed with SIGKILL and
//! restarted on the same data dir. Three subscribers (two WebSocket, one SSE) reconnect with
//! their last sequence number (`since` / `Last-Event-ID`) whenever their connection drops.
//! Each must end with exactly the acknowledged alerts it matches: once each, in order.

mod alerts_util;
mod common;
mod no_loss_util;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alerts_util::{Fixture, cap_xml};
use no_loss_util::{Hubs, Sub, check, post_until_acked, spawn_hub, sse_subscriber, ws_subscriber};

const N: usize = 1000;
const REGIONS: [&str; 4] = ["330100", "330106", "330200", "330000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_alert_is_lost_across_sigkill() {
    // Deliveries through the connection tasks (`auto` on a multi-thread runtime).
    across_sigkill(&[("HUBCAST_ALERTS__DIRECT_WRITES", "off")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_alert_is_lost_across_sigkill_with_hub_task_writes() {
    // The hub task writing to idle subscribers itself (`auto` with one runtime thread).
    across_sigkill(&[("HUBCAST_ALERTS__DIRECT_WRITES", "on")]).await;
}

async fn across_sigkill(env: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut hub = spawn_hub(&data, addr, env);
    let token = common::mint_token(&data, "province-admin", "330000", &[], &[]);

    let until = Instant::now() + Duration::from_secs(120);
    let subs: Vec<Sub> = vec![
        ("ws", "330106", Arc::default()),
        ("ws", "330000", Arc::default()),
        ("sse", "330200", Arc::default()),
    ];
    let mut tasks = Vec::new();
    for (transport, region, log) in &subs {
        let log = log.clone();
        tasks.push(match *transport {
            "ws" => tokio::spawn(ws_subscriber(Hubs::new(&[addr]), region, log, until)),
            _ => tokio::spawn(sse_subscriber(Hubs::new(&[addr]), region, log, until)),
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
                let seq = post_until_acked(&[addr], 0, &token, &xml).await;
                acked.lock().expect("acked").push((seq, region));
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
    let mut hub = spawn_hub(&data, addr, env);
    publisher.await.expect("publisher finished");

    let acked = acked.lock().expect("acked").clone();
    assert_eq!(acked.len(), N);
    check(&subs, &acked).await;
    for task in tasks {
        task.abort();
    }
    let _ = hub.kill();
    let _ = hub.wait();
}
