//! SIGTERM during a slow request: the request completes, WebSockets get close 1001, new
//! connections are refused, and the process exits 0 within the grace period.

mod common;

use std::time::{Duration, Instant};

use common::{Hub, get};
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn sigterm_drains_in_flight_work() {
    let grace_secs = 5;
    let mut hub = Hub::start(
        &[],
        &[
            ("HUBCAST_HTTP__DEBUG_ROUTES", "true"),
            ("HUBCAST_HTTP__GRACE_PERIOD_SECS", "5"),
        ],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/health", hub.addr))
        .await
        .expect("websocket");
    let first = ws.next().await.expect("a message").expect("ok");
    let snapshot: serde_json::Value =
        serde_json::from_str(first.to_text().expect("text")).expect("json");
    assert_eq!(snapshot["status"], "ready");

    let addr = hub.addr;
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let response = get(addr, "/debug/delay?ms=1500", &[]).await;
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    hub.terminate();

    // The WebSocket is told the server is going away.
    let close = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(message) = ws.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("close frame within 3 s")
    .expect("close frame carries a code");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "server shutting down");

    // New connections are refused once draining (poll briefly: the listener closes promptly).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting after SIGTERM"
    );

    // The in-flight request completes normally.
    let (response, took) = slow.await.expect("join");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["delayed_ms"], 1500);
    assert!(took >= Duration::from_millis(1500));

    let (status, _) = hub
        .wait_exit(Duration::from_secs(grace_secs + 2))
        .expect("exited within the grace period");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(grace_secs),
        "{:?}",
        signalled.elapsed()
    );
}

/// A hub with debug routes and `grace` seconds of grace, and a request to it that stays in
/// flight for a minute (its task, to abort at the end).
async fn hub_with_a_stuck_request(
    grace: &str,
) -> (
    Hub,
    tokio::task::JoinHandle<Result<common::Response, tokio::time::error::Elapsed>>,
) {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_HTTP__DEBUG_ROUTES", "true"),
            ("HUBCAST_HTTP__GRACE_PERIOD_SECS", grace),
        ],
    );
    let addr = hub.addr;
    let stuck = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::time::timeout(
            Duration::from_secs(20),
            common::request(stream, "GET", "/debug/delay?ms=60000", &[]),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (hub, stuck)
}

#[tokio::test]
async fn grace_period_bounds_a_stuck_request() {
    let (mut hub, stuck) = hub_with_a_stuck_request("1").await;
    let signalled = Instant::now();
    hub.terminate();
    let (status, _) = hub
        .wait_exit(Duration::from_secs(5))
        .expect("exits once the grace period is over");
    assert_eq!(status.code(), Some(0));
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    stuck.abort();
}

/// `systemctl reload` sends SIGHUP: without certificate files to reload it must not end the
/// hub (its default action would, and systemd would not restart a hub that exited on it).
#[tokio::test]
async fn sighup_never_ends_the_hub() {
    let mut hub = Hub::start(&[], &[]);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &hub.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hub.child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
}

/// A second SIGTERM (or Ctrl-C) during the drain ends the process at once, with status 1.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let (mut hub, stuck) = hub_with_a_stuck_request("60").await;
    hub.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hub.child.try_wait().expect("try_wait").is_none(),
        "draining"
    );
    let again = Instant::now();
    hub.terminate();
    let (status, _) = hub
        .wait_exit(Duration::from_secs(5))
        .expect("exits at the second signal");
    assert_eq!(status.code(), Some(1));
    assert!(
        again.elapsed() < Duration::from_secs(2),
        "{:?}",
        again.elapsed()
    );
    stuck.abort();
}
