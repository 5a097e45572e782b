//! `/sse/alerts` has two servers: beside hyper when it is a plain connection's first request
//! (`alerts_sse_raw`), and hyper's (`alerts_sse`) when it comes later on a kept-alive
//! connection. Both speak the same protocol: the same events, `Last-Event-ID` replay, and JSON
//! errors naming the parameter, and keep-alive comments.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::time::Duration;

use alerts_live_util::post_alert;
use common::Hub;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads until `needle` has arrived (or panics after 10 s); returns everything read.
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(seen).contains(needle) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("{needle:?} not seen in: {}", String::from_utf8_lossy(seen)))
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(seen).into_owned()
}

/// A connection to `hub`; `kept_alive`: after one answered request (`/healthz`), so the
/// next request is served by hyper rather than beside it.
async fn connect(hub: &Hub, kept_alive: bool) -> TcpStream {
    let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
    if kept_alive {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("healthz");
        read_until(&mut stream, &mut Vec::new(), "\"ok\"").await;
    }
    stream
}

#[tokio::test]
async fn both_sse_servers_speak_the_same_protocol() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("city-admin", "330100", &[]);
    let first = post_alert(hub.addr, &token, "paths-1").await;

    // First request on its own connection: served beside hyper; replays after Last-Event-ID 0.
    let mut raw = TcpStream::connect(hub.addr).await.expect("connect");
    raw.write_all(b"GET /sse/alerts?region=330106 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n")
        .await
        .expect("request");
    let mut raw_seen = Vec::new();
    let text = read_until(&mut raw, &mut raw_seen, &format!("id: {first}\n")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head = text.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("retry: 3000"), "{text}");

    // Later on a kept-alive connection: hyper's server, same events.
    let mut kept = connect(&hub, true).await;
    let mut kept_seen = Vec::new();
    kept.write_all(b"GET /sse/alerts?region=330100&since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    read_until(&mut kept, &mut kept_seen, &format!("id: {first}\n")).await;

    // A new alert reaches both, as the same event bytes.
    let second = post_alert(hub.addr, &token, "paths-2").await;
    let event = format!("id: {second}\ndata: {{\"type\":\"alert\",\"seq\":{second}");
    let raw_text = read_until(&mut raw, &mut raw_seen, &event).await;
    let kept_text = read_until(&mut kept, &mut kept_seen, &event).await;
    let tail = |text: &str| {
        let at = text.find(&event).expect("event");
        let end = at + text[at..].find("\n\n").expect("event end");
        text[at..end].to_owned()
    };
    assert_eq!(tail(&raw_text), tail(&kept_text));

    // Errors before any stream, as JSON naming the parameter, on the side path too.
    let mut bad = TcpStream::connect(hub.addr).await.expect("connect");
    bad.write_all(b"GET /sse/alerts?region=999999 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    bad.read_to_string(&mut body).await.expect("answer");
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(
        body.contains("\"bad_parameter\"") && body.contains("\"parameter\":\"region\""),
        "{body}"
    );

    // Two Last-Event-IDs (a proxy adding its own) would make the resume point depend on
    // their order: refused on both servers, like a repeated query parameter.
    let twice = "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n\
                 Last-Event-ID: 5\r\nLast-Event-ID: 9\r\n\r\n";
    let mut bad = TcpStream::connect(hub.addr).await.expect("connect");
    bad.write_all(twice.as_bytes()).await.expect("request");
    let mut body = String::new();
    let answered =
        tokio::time::timeout(Duration::from_secs(10), bad.read_to_string(&mut body)).await;
    assert!(
        answered.is_ok(),
        "side path: a stream, not an answer: {body}"
    );
    assert!(body.starts_with("HTTP/1.1 400"), "side path: {body}");
    assert!(body.contains("\"parameter\":\"Last-Event-ID\""), "{body}");
    let mut kept = connect(&hub, true).await;
    let mut kept_seen = Vec::new();
    kept.write_all(twice.as_bytes()).await.expect("request");
    let text = read_until(&mut kept, &mut kept_seen, "Last-Event-ID\"").await;
    let answer = &text[text.rfind("HTTP/1.1").unwrap_or(0)..];
    assert!(answer.starts_with("HTTP/1.1 400"), "hyper: {answer}");
}

/// Keep-alive comments every `alerts.ping_secs` on both SSE servers, so proxies and NAT keep
/// an otherwise quiet stream open: three comments, not sooner than ~3 s after the request.
#[tokio::test]
async fn both_sse_servers_send_keep_alive_comments() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__PING_SECS", "1")]);
    // Raw (first request on its connection), then hyper's (after a kept-alive request).
    for kept_alive in [false, true] {
        let mut stream = connect(&hub, kept_alive).await;
        let mut seen = Vec::new();
        let requested = tokio::time::Instant::now();
        stream
            .write_all(b"GET /sse/alerts?region=330106 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        read_until(&mut stream, &mut seen, "retry: 3000").await;
        // No alert is published: comments only, at ~1, ~2 and ~3 s after the request.
        let deadline = requested + Duration::from_secs(8);
        let comments = |seen: &[u8]| String::from_utf8_lossy(seen).matches(":\n\n").count();
        while comments(&seen) < 3 {
            let mut chunk = [0u8; 256];
            let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&seen)))
                .expect("read");
            assert!(n > 0, "kept_alive={kept_alive}: stream ended");
            seen.extend_from_slice(&chunk[..n]);
        }
        assert!(
            requested.elapsed() >= Duration::from_millis(2500),
            "kept_alive={kept_alive}: three comments came too fast: {}",
            String::from_utf8_lossy(&seen)
        );
    }
}

/// A refusal that passes (here 503 `busy`: one subscriber place, taken) is, for a client that
/// asked for an event stream, a 200 stream with `retry:` 5–10 s and `event: refused` carrying
/// the JSON error, then the end: an `EventSource` reconnects after it, where a 503 would stop
/// it for good. Other clients get the 503; a bad request stays a 400 for everyone. On both
/// servers.
#[tokio::test]
async fn event_stream_clients_are_told_to_come_back() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__MAX_SUBSCRIBERS", "1")]);
    let mut holder = TcpStream::connect(hub.addr).await.expect("connect");
    holder
        .write_all(b"GET /sse/alerts?region=330106 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    read_until(&mut holder, &mut Vec::new(), "retry: 3000").await;

    for kept_alive in [false, true] {
        let ask = |query: &str, accept: bool| {
            let accept = if accept {
                "Accept: text/event-stream\r\n"
            } else {
                ""
            };
            format!(
                "GET /sse/alerts?{query} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
            )
        };
        for (request, status, body) in [
            (
                ask("region=330106", true),
                "200",
                "event: refused\ndata: {\"error\":\"busy\"",
            ),
            (ask("region=330106", false), "503", "\"busy\""),
            (ask("region=1", true), "400", "\"bad_parameter\""),
        ] {
            let mut stream = connect(&hub, kept_alive).await;
            stream.write_all(request.as_bytes()).await.expect("request");
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                .await
                .expect("answered and closed")
                .expect("read");
            let text = String::from_utf8_lossy(&answer);
            let text = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
            assert!(text.starts_with(status), "kept_alive={kept_alive}: {text}");
            assert!(text.contains(body), "kept_alive={kept_alive}: {text}");
            if status == "200" {
                let retry: u64 = text
                    .split("retry: ")
                    .nth(1)
                    .and_then(|rest| rest.split('\n').next())
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or_else(|| panic!("a retry field: {text}"));
                assert!((5_000..10_000).contains(&retry), "{retry} ms");
                assert!(
                    text.to_ascii_lowercase()
                        .contains("content-type: text/event-stream"),
                    "{text}"
                );
            }
        }
    }
}

/// A request head with bare LF line ends (which hyper and httparse accept) is answered on the
/// side path too: it used to wait for a CRLF blank line until the head deadline.
#[tokio::test]
async fn a_head_with_bare_lf_line_ends_is_served() {
    let hub = Hub::start(&[], &[]);
    let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
    stream
        .write_all(b"GET /sse/alerts?region=330106 HTTP/1.1\nHost: x\n\n")
        .await
        .expect("request");
    let text = read_until(&mut stream, &mut Vec::new(), "retry: 3000").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
