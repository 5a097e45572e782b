//! `http.max_connections` holds for every open socket, WebSockets included: a connection
//! hyper upgraded keeps its place until the socket closes (before, hyper's connection future
//! ended at the upgrade and gave the place back, so `/ws/health` sockets, needing no token,
//! could be opened until the process ran out of file descriptors).

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
