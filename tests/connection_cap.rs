//! Caps on open connections. `http.max_connections` holds for every open socket, WebSockets
//! included: a connection hyper upgraded keeps its place until the socket closes (before,
//! hyper's connection future ended at the upgrade and gave the place back, so `/ws/health`
//! sockets, needing no token, could be opened until the process ran out of file
//! descriptors). And one source address holds at most `alerts.max_connections_per_ip` live
//! connections.

mod common;

use std::time::Duration;

use common::{Hub, get};

const CAP: usize = 3;

#[tokio::test]
async fn websockets_count_against_the_connection_cap_until_they_close() {
    let cap = CAP.to_string();
    let hub = Hub::start(&[], &[("HUBCAST_HTTP__MAX_CONNECTIONS", cap.as_str())]);
    let mut sockets = Vec::new();
    for _ in 0..CAP {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/health", hub.addr))
            .await
            .expect("a WebSocket within the cap");
        sockets.push(ws);
    }
    // Every place is taken by an open WebSocket: a new connection waits in the listen
    // backlog, unanswered.
    let waiting = tokio::spawn(get(hub.addr, "/healthz", &[]));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "a request was served beyond the cap while {CAP} WebSockets were open"
    );
    // One socket closes: its place goes to the waiting connection.
    drop(sockets.pop());
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a place is free")
        .expect("request task");
    assert_eq!(answered.status, 200);
    // The gauge counts the open WebSockets (and the scrape's own connection).
    let open = common::metric(&hub, r#"hubcast_http_connections{transport="tcp"}"#).await;
    assert_eq!(open, CAP as f64, "{} WebSockets + this scrape", CAP - 1);
    drop(sockets);
}

/// One source address holds at most `alerts.max_connections_per_ip` live connections open
/// (alert WebSockets and SSE streams, `/ws/health`), whatever rate it opens them at: beyond,
/// 429 `too_many_connections`; a closed one frees its place.
#[tokio::test]
async fn one_address_holds_at_most_its_share_of_live_connections() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "2")]);
    let ws = |path: &str| {
        let url = format!("ws://{}{path}", hub.addr);
        async move { tokio_tungstenite::connect_async(url).await }
    };
    let alerts = ws("/ws/alerts?region=330000").await.expect("first").0;
    let health = ws("/ws/health").await.expect("second").0;
    for path in ["/ws/alerts?region=330100", "/ws/health"] {
        match ws(path).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(refused)) => {
                assert_eq!(refused.status(), 429, "{path}");
                let body = String::from_utf8_lossy(refused.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("too_many_connections"), "{path}: {body}");
            }
            other => panic!("{path}: a third live connection: {other:?}"),
        }
    }
    let sse = get(hub.addr, "/sse/alerts?region=330000", &[]).await;
    assert_eq!(sse.status, 429, "{}", sse.body);
    assert!(sse.body.contains("too_many_connections"), "{}", sse.body);
    // Short requests are not live connections: still served.
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
    drop(alerts);
    // The hub notices the close when it reads the socket: retry briefly.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let third = loop {
        match ws("/ws/alerts?region=330100").await {
            Ok((third, _)) => break third,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("a place again after a close: {err}"),
        }
    };
    drop((health, third));
}
