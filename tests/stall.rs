//! A peer that stops reading is cut off: an SSE subscriber whose receive window stays shut
//! (small `SO_RCVBUF`, never read) is disconnected once the hub's writes to it have made no
//! progress for `http.write_stall_secs`, and its subscriber slot is freed; a subscriber that
//! reads through the same alerts stays connected. The stalled stream is a kept-alive
//! connection's second request, so hyper's server (under the stall guard) serves it; a
//! first request is served beside hyper, where `alerts.write_timeout_secs` ends it. On both
//! paths the socket's send buffer is bounded, so a few MB of alerts are enough to block it.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::time::{Duration, Instant};

use alerts_live_util::{Sse, publish_sized, small_window};
use common::Hub;
use common::{metric, metric_reaches};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SSE_GAUGE: &str = "hubcast_alert_subscribers{transport=\"sse\"}";

/// Waits until the SSE subscribers are down to `n` (the stalled one cut off), or panics.
async fn subscribers_fall_to(hub: &Hub, n: f64, within: Duration) {
    let deadline = Instant::now() + within;
    while metric(hub, SSE_GAUGE).await > n {
        assert!(
            Instant::now() < deadline,
            "the stalled subscriber was not cut off within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An SSE subscriber that never reads, subscribed by a kept-alive connection's second request
/// (so hyper serves it) over a socket with a 4 KiB receive buffer.
async fn kept_alive_sse(hub: &Hub) -> tokio::net::TcpStream {
    let mut stalled = small_window(hub.addr, 4096).await;
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a first request");
    let mut answer = [0u8; 1024];
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"ok\"") {
        let n = stalled.read(&mut answer).await.expect("healthz answer");
        assert!(n > 0, "closed early");
        seen.extend_from_slice(&answer[..n]);
    }
    let head = "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n\r\n";
    stalled.write_all(head.as_bytes()).await.expect("request");
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_cut_off_after_the_stall_limit() {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_HTTP__WRITE_STALL_SECS", "2"),
            ("HUBCAST_ALERTS__WRITE_TIMEOUT_SECS", "600"),
            // Large enough that the hub's own slow-consumer rule is not what ends it.
            ("HUBCAST_ALERTS__QUEUE_CAPACITY", "100000"),
            ("HUBCAST_ALERTS__MAX_BODY_BYTES", "1048576"),
        ],
    );
    let token = hub.token("city-admin", "330100", &[]);

    // The stalled one: subscribes, then never reads again.
    let stalled = kept_alive_sse(&hub).await;
    // The healthy one reads everything, concurrently.
    let mut healthy = Sse::connect(hub.addr, "region=330100", &[]).await;
    let poll = Duration::from_millis(20);
    let both = metric_reaches(&hub, SSE_GAUGE, 2.0, Duration::from_secs(10), poll).await;
    assert!(both.is_some(), "both subscribers registered");

    // ~48 MB of events: far past the stalled socket's kernel buffers.
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < 40 {
            healthy.next().await;
            seen += 1;
        }
        healthy
    });
    for i in 0..40 {
        publish_sized(
            &hub,
            &token,
            &format!("big-{i}"),
            "food",
            "Severe",
            "330100",
            400_000,
        )
        .await;
    }
    let healthy = reader.await.expect("the healthy subscriber got all 40");

    // Within the stall limit (plus slack), the stalled connection is gone and its slot free;
    // the healthy one is still there.
    subscribers_fall_to(&hub, 1.0, Duration::from_secs(15)).await;
    assert_eq!(metric(&hub, SSE_GAUGE).await, 1.0, "the healthy one stays");
    drop(healthy);
    drop(stalled);
}

/// A first-request SSE subscriber (served beside hyper) that stops reading is ended by
/// `alerts.write_timeout_secs` once its socket takes nothing more, and the socket's send
/// buffer is bounded (128 KiB) so that comes after a few hundred KiB, not after the kernel's
/// autotuned 4 MiB: ~2.4 MB of alerts here, one that never reads is gone within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_path_reader_that_stops_is_cut_off_after_the_write_timeout() {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_ALERTS__WRITE_TIMEOUT_SECS", "2"),
            ("HUBCAST_ALERTS__QUEUE_CAPACITY", "100000"),
            ("HUBCAST_ALERTS__MAX_BODY_BYTES", "1048576"),
        ],
    );
    let mut stalled = small_window(hub.addr, 4096).await;
    let head = "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n\r\n";
    stalled.write_all(head.as_bytes()).await.expect("request");
    publish_past_a_bounded_buffer(&hub, "side").await;
    drop(stalled);
}

/// The same through hyper (a kept-alive connection's second request, as a proxy's pooled
/// upstream connection sends it): the send buffer is bounded there too, so ~2.4 MB of alerts
/// fill it and the stall limit ends the reader within seconds. With the kernel's autotuned
/// buffer (up to 4 MiB) the writes never blocked and it stayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_path_reader_that_stops_is_cut_off_after_a_bounded_buffer() {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_HTTP__WRITE_STALL_SECS", "2"),
            ("HUBCAST_ALERTS__QUEUE_CAPACITY", "100000"),
            ("HUBCAST_ALERTS__MAX_BODY_BYTES", "1048576"),
        ],
    );
    let stalled = kept_alive_sse(&hub).await;
    publish_past_a_bounded_buffer(&hub, "hyper").await;
    drop(stalled);
}

/// Once the one stalled SSE subscriber is registered, publishes 12 alerts of 200 KB (~2.4 MB,
/// past a bounded send buffer, well within the kernel's autotuned 4 MiB) and waits up to 12 s
/// for it to be cut off.
async fn publish_past_a_bounded_buffer(hub: &Hub, prefix: &str) {
    let poll = Duration::from_millis(20);
    let registered = metric_reaches(hub, SSE_GAUGE, 1.0, Duration::from_secs(10), poll).await;
    assert!(registered.is_some(), "the stalled subscriber registered");
    let token = hub.token("city-admin", "330100", &[]);
    for i in 0..12 {
        let id = format!("{prefix}-{i}");
        publish_sized(hub, &token, &id, "food", "Severe", "330100", 200_000).await;
    }
    subscribers_fall_to(hub, 0.0, Duration::from_secs(12)).await;
}
