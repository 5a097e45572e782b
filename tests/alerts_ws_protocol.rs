//! The alert WebSocket's own RFC 6455 handling, spoken byte by byte over raw TCP against the
//! real binary: the handshake answer (and refusals as JSON errors), a client ping answered with
//! its payload, a client close echoed, protocol errors closed with 1002 / 1007 / 1009, and alert
//! frames as plain unmasked text frames; server pings, and the idle timeout for a client that
//! never answers them.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::time::Duration;

use common::Hub;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Which server answers the upgrade.
#[derive(Debug, Clone, Copy)]
enum Path {
    /// The connection's first request: the side path beside hyper (`alerts_ws_raw`).
    First,
    /// After a request on the same kept-alive connection: hyper's upgrade.
    KeptAlive,
}

const PATHS: [Path; 2] = [Path::First, Path::KeptAlive];

/// Reads a response head byte by byte.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert_eq!(n, 1, "connection closed in the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("head")
}

/// Opens `/ws/alerts?{query}` with `extra` handshake headers on `path`, sending `early` right
/// behind the request (a client that does not wait for the answer); returns the stream and
/// the response head.
async fn open(
    hub: &Hub,
    path: Path,
    query: &str,
    extra: &str,
    early: &[u8],
) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(hub.addr).await.expect("connect");
    if let Path::KeptAlive = path {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let head = read_head(&mut stream).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        read_body(&mut stream, &head).await;
    }
    let mut request = format!(
        "GET /ws/alerts?{query} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
    .into_bytes();
    request.extend_from_slice(early);
    stream.write_all(&request).await.expect("write");
    let head = read_head(&mut stream).await;
    (stream, head)
}

/// Reads the body `head` announces (`Content-Length`).
async fn read_body(stream: &mut TcpStream, head: &str) -> Vec<u8> {
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    body
}

async fn handshake(hub: &Hub, path: Path, query: &str, extra: &str) -> (TcpStream, String) {
    open(hub, path, query, extra, b"").await
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![0x80 | opcode];
    let len = u8::try_from(payload.len()).expect("short payload");
    assert!(len < 126);
    out.push(if masked { 0x80 | len } else { len });
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads one server frame: (opcode, payload). Server frames must be unmasked.
async fn server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut h = [0u8; 2];
        stream.read_exact(&mut h).await.expect("frame head");
        assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
        assert_eq!(h[0] & 0x80, 0x80, "unfragmented");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                stream.read_exact(&mut l).await.expect("len");
                usize::from(u16::from_be_bytes(l))
            }
            127 => panic!("no alert is that big"),
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.expect("payload");
        (h[0] & 0x0f, payload)
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("frame in time")
}

#[tokio::test]
async fn the_alert_websocket_speaks_rfc_6455() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__DIRECT_WRITES", "on")]);
    for path in PATHS {
        speaks_rfc_6455(&hub, path).await;
    }
    // Both paths delivered; the side path's idle subscriber got its alert from the hub task.
    assert!(common::metric(&hub, "hubcast_alert_direct_writes_total").await >= 1.0);
    // Both paths count their upgrades in the HTTP metrics (5 handshakes each).
    let upgrades = r#"hubcast_http_requests_total{method="GET",route="/ws/alerts",status="101"}"#;
    assert_eq!(common::metric(&hub, upgrades).await, 10.0);
}

async fn speaks_rfc_6455(hub: &Hub, path: Path) {
    let (mut ws, head) =
        handshake(hub, path, "region=330100", "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    // A ping is answered with its payload.
    ws.write_all(&client_frame(0x9, b"are you there", true))
        .await
        .expect("ping");
    assert_eq!(
        server_frame(&mut ws).await,
        (0xA, b"are you there".to_vec())
    );

    // An alert is one unmasked text frame holding the shared JSON.
    let token = hub.token("city-admin", "330100", &[]);
    let identifier = format!("wsp-{path:?}");
    let seq = alerts_live_util::post_alert(hub.addr, &token, &identifier).await;
    let (opcode, payload) = server_frame(&mut ws).await;
    assert_eq!(opcode, 0x1);
    let value: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(
        (value["type"].as_str(), value["seq"].as_u64()),
        (Some("alert"), Some(seq))
    );

    // A close is echoed with the client's code, then the connection ends.
    ws.write_all(&client_frame(0x8, &1000u16.to_be_bytes(), true))
        .await
        .expect("close");
    let (opcode, payload) = server_frame(&mut ws).await;
    assert_eq!((opcode, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(5), ws.read_to_end(&mut rest)).await;
    assert!(matches!(eof, Ok(Ok(0))), "connection ends after the close");

    // Protocol errors: an unmasked client frame is 1002, an oversized message 1009, text that
    // is not UTF-8 1007 (RFC 6455 § 8.1).
    let mut big = vec![0x81, 0x80 | 127];
    big.extend_from_slice(&(1u64 << 20).to_be_bytes());
    big.extend_from_slice(&[0, 0, 0, 0]);
    // The refused message's first bytes come with its header, still unread when the server
    // closes: the close frame must reach the client all the same (no reset in its way).
    big.extend(std::iter::repeat_n(b'x', 60_000));
    for (bytes, code) in [
        (client_frame(0x1, b"hello", false), 1002u16),
        (big, 1009),
        (client_frame(0x1, b"caf\xc3", true), 1007),
    ] {
        let (mut ws, _) =
            handshake(hub, path, "region=330100", "Sec-WebSocket-Version: 13\r\n").await;
        // More bytes behind the bad frame, still unread when the server closes.
        let mut bytes = bytes;
        bytes.extend_from_slice(&[0u8; 4096]);
        ws.write_all(&bytes).await.expect("a bad frame");
        let (opcode, payload) = server_frame(&mut ws).await;
        assert_eq!((opcode, &payload[..2]), (0x8, &code.to_be_bytes()[..]));
        // Then the connection ends cleanly once the client closes too. (What this cannot show
        // on loopback, where the close frame is delivered at once: that the server reads the
        // unread bytes before closing, since closing with bytes unread resets the connection,
        // and on a slow link a reset destroys a close frame still on its way.)
        let _ = ws.shutdown().await;
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), ws.read_to_end(&mut rest)).await;
        assert!(matches!(end, Ok(Ok(_))), "{path:?}, {code}: {end:?}");
    }

    // A ping sent right behind the handshake, before the answer, is answered too.
    let ping = client_frame(0x9, b"early", true);
    let (mut ws, head) = open(
        hub,
        path,
        "region=330100",
        "Sec-WebSocket-Version: 13\r\n",
        &ping,
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{path:?}: {head}");
    assert_eq!(server_frame(&mut ws).await, (0xA, b"early".to_vec()));
}

#[tokio::test]
async fn non_handshakes_get_json_errors() {
    let hub = Hub::start(&[], &[]);
    for path in PATHS {
        refusals(&hub, path).await;
    }
    let refused = r#"hubcast_http_requests_total{method="GET",route="/ws/alerts",status="426"}"#;
    assert_eq!(common::metric(&hub, refused).await, 2.0);

    // A request head over 16 KiB on a side path: 431 with the JSON error (SSE's with CORS).
    let huge = format!("X-Filler: {}\r\n", "a".repeat(20 * 1024));
    let (mut stream, head) = handshake(&hub, Path::First, "region=330100", &huge).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let body = read_body(&mut stream, &head).await;
    assert!(String::from_utf8_lossy(&body).contains("head_too_large"));
    let many: String = (0..60).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (mut stream, head) = handshake(&hub, Path::First, "region=330100", &many).await;
    assert!(head.starts_with("HTTP/1.1 431"), "too many headers: {head}");
    let body = read_body(&mut stream, &head).await;
    assert!(String::from_utf8_lossy(&body).contains("head_too_large"));
    let mut sse = TcpStream::connect(hub.addr).await.expect("connect");
    let request = format!("GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n{huge}\r\n");
    sse.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut sse).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );
}

async fn refusals(hub: &Hub, path: Path) {
    // Wrong version: 426 naming the supported one.
    let (_, head) = handshake(hub, path, "region=330100", "Sec-WebSocket-Version: 8\r\n").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
    // A plain GET: 400 with the one error shape.
    let response = common::get(hub.addr, "/ws/alerts?region=330100", &[]).await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert_eq!(response.json()["error"], "not_a_websocket");
    // A valid handshake with a bad query: 400 naming the parameter, before any upgrade.
    let (mut stream, head) =
        handshake(hub, path, "region=999999", "Sec-WebSocket-Version: 13\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{path:?}: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body = read_body(&mut stream, &head).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("\"region\""),
        "{path:?}: names the parameter: {body}"
    );
}

/// Keep-alive: with `alerts.ping_secs = 1` and `alerts.idle_timeout_secs = 2`, the server pings
/// every second on both paths; a client that answers (with pongs) stays connected, one that
/// never sends anything is closed with 1001 "idle timeout" (wall displays behind NAT keep their
/// mapping alive; half-open connections give their subscriber slot back).
#[tokio::test]
async fn pings_keep_answering_clients_and_silent_ones_are_closed() {
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_ALERTS__PING_SECS", "1"),
            ("HUBCAST_ALERTS__IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    for path in PATHS {
        let (mut answering, head) =
            handshake(&hub, path, "region=330100", "Sec-WebSocket-Version: 13\r\n").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // Before the handshake: the server's idle clock starts during it.
        let opened = tokio::time::Instant::now();
        let (mut silent, head) =
            handshake(&hub, path, "region=330100", "Sec-WebSocket-Version: 13\r\n").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");

        // The silent one: pings, then the close, 2–4.5 s in (checked at the next ping).
        let silent_side = async {
            let mut pings = 0;
            let close = loop {
                match server_frame(&mut silent).await {
                    (0x9, _) => pings += 1,
                    (0x8, payload) => break payload,
                    (op, payload) => panic!("{path:?}: unexpected frame {op:#x} {payload:?}"),
                }
            };
            (pings, close, opened.elapsed())
        };
        // The answering one answers every ping and is still there at 5 s, more than twice
        // the idle timeout.
        let answering_side = async {
            let mut answered = 0;
            while opened.elapsed() < Duration::from_secs(5) {
                let (op, payload) = server_frame(&mut answering).await;
                assert_eq!(op, 0x9, "{path:?}: only pings, got {op:#x} {payload:?}");
                answering
                    .write_all(&client_frame(0xA, &payload, true))
                    .await
                    .expect("pong");
                answered += 1;
            }
            answered
        };
        let ((pings, close, closed_after), answered) = tokio::join!(silent_side, answering_side);
        assert!(pings >= 1, "{path:?}: pinged before the close");
        assert_eq!(close[..2], 1001u16.to_be_bytes(), "{path:?}: {close:?}");
        assert_eq!(&close[2..], b"idle timeout", "{path:?}");
        assert!(
            closed_after >= Duration::from_secs(2) && closed_after < Duration::from_millis(4500),
            "{path:?}: closed after {closed_after:?}"
        );
        assert!(answered >= 3, "{path:?}: {answered} pings in 5 s");
        answering
            .write_all(&client_frame(0x8, &1000u16.to_be_bytes(), true))
            .await
            .expect("close");
        let (op, payload) = server_frame(&mut answering).await;
        assert_eq!((op, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    }
}
