//! Other origins may read the public alert endpoints (archive, CAP documents, Atom, SSE — on
//! both SSE servers, errors included) and get a 204 to their preflights; nothing else is
//! opened to them.

mod alerts_live_util;
mod alerts_util;
mod common;

use common::Hub;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn public_alert_reads_allow_any_origin_and_nothing_else_does() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("city-admin", "330100", &[]);
    let seq = alerts_live_util::post_alert(hub.addr, &token, "cors-1").await;
    let origin = [("Origin", "https://other-agency.example")];

    for path in [
        "/api/v1/alerts?region=330100".to_owned(),
        format!("/alerts/{seq}.xml"),
        format!("/alerts/{seq}.json"),
        "/feeds/alerts.atom?region=330100".to_owned(),
        "/api/v1/alerts?region=999999".to_owned(),
        "/alerts/999.xml".to_owned(),
    ] {
        let response = common::get(hub.addr, &path, &origin).await;
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("*"),
            "{path}: {}",
            response.status
        );
    }
    for path in ["/api/v1/whoami", "/metrics", "/healthz"] {
        let response = common::get(hub.addr, path, &origin).await;
        assert_eq!(
            response.header("access-control-allow-origin"),
            None,
            "{path}"
        );
    }
    // Publishing is not opened to other origins.
    let response = alerts_util::post(&hub, None, Some("application/cap+xml"), b"<alert/>").await;
    assert_eq!(response.status, 401);
    assert_eq!(response.header("access-control-allow-origin"), None);

    // A preflight of an EventSource resuming with Last-Event-ID.
    let stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let preflight = common::request(
        stream,
        "OPTIONS",
        "/sse/alerts?region=330100",
        &[
            ("Origin", "https://other-agency.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let allowed = preflight
        .header("access-control-allow-headers")
        .unwrap_or("");
    assert!(
        allowed.to_ascii_lowercase().contains("last-event-id"),
        "{allowed}"
    );

    // The SSE stream served beside hyper (a connection's first request), and its errors.
    for (query, status) in [("region=330100", "200"), ("region=999999", "400")] {
        let mut stream = tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /sse/alerts?{query} HTTP/1.1\r\nHost: x\r\nOrigin: https://other-agency.example\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.expect("read"), 1, "head");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status}")), "{head}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
    }
}
