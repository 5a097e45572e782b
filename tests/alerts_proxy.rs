//! Behind a reverse proxy: with `http.trusted_proxies` naming it, the per-address cap on live
//! connections counts the client its `X-Forwarded-For` names (WebSocket and SSE beside hyper,
//! and `/ws/health` through hyper), so one proxy carrying many subscribers does not turn them
//! away; without it the header is ignored, so a client cannot dodge the cap by naming itself
//! someone else.

mod alerts_live_util;
mod alerts_util;
mod common;

use alerts_live_util::{Ws, accepted_or_refused};
use common::Hub;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// Opens a WebSocket to `path` with `X-Forwarded-For: forwarded`; the socket, or the refusal's
/// status and body.
async fn ws_from(hub: &Hub, path: &str, forwarded: &str) -> Result<Ws, (u16, String)> {
    let mut request = format!("ws://{}{path}", hub.addr)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded.parse().expect("header value"));
    accepted_or_refused(tokio_tungstenite::connect_async(request).await)
}

const LIVE: &str = "/ws/alerts?region=330106";

#[tokio::test]
async fn behind_a_trusted_proxy_the_cap_counts_the_forwarded_client() {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "2"),
            ("HUBCAST_HTTP__TRUSTED_PROXIES", r#"["127.0.0.0/8"]"#),
        ],
    );
    let a1 = ws_from(&hub, LIVE, "198.51.100.7").await.expect("first");
    // A client's own claim left of what the proxy appended does not make it someone else.
    let a2 = ws_from(&hub, LIVE, "192.0.2.1, 198.51.100.7")
        .await
        .expect("second");
    let (status, body) = ws_from(&hub, LIVE, "198.51.100.7")
        .await
        .expect_err("a third from the same client is refused");
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too_many_connections") && body.contains("198.51.100.7"),
        "the refusal names the client, not the proxy: {body}"
    );
    // The proxy's own address holds more than the cap: each client is counted apart.
    let b1 = ws_from(&hub, LIVE, "198.51.100.8")
        .await
        .expect("another client through the same proxy");
    // SSE beside hyper and /ws/health through hyper count the same client.
    let sse = common::get(
        hub.addr,
        "/sse/alerts?region=330106",
        &[("X-Forwarded-For", "198.51.100.7")],
    )
    .await;
    assert_eq!(sse.status, 429, "{}", sse.body);
    assert!(sse.body.contains("198.51.100.7"), "{}", sse.body);
    let (status, body) = ws_from(&hub, "/ws/health", "198.51.100.7")
        .await
        .expect_err("the health socket counts against the same client");
    assert_eq!(status, 429, "{body}");
    let b2 = ws_from(&hub, "/ws/health", "198.51.100.8")
        .await
        .expect("the other client has room");
    drop((a1, a2, b1, b2));
}

#[tokio::test]
async fn without_trusted_proxies_the_header_is_ignored() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "2")]);
    let a = ws_from(&hub, LIVE, "198.51.100.7").await.expect("first");
    let b = ws_from(&hub, LIVE, "198.51.100.8").await.expect("second");
    let (status, body) = ws_from(&hub, LIVE, "198.51.100.9")
        .await
        .expect_err("a third from 127.0.0.1 is refused whatever it claims");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("127.0.0.1"), "{body}");
    drop((a, b));
}
