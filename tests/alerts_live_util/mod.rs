//! Helpers of the live-delivery end-to-end tests: fixture alerts published by identifier, a
//! WebSocket subscriber (tokio-tungstenite) and an SSE subscriber (raw HTTP/1.0, so the body is
//! the bare event stream) that both yield `(seq, identifier)` of each alert,
//! a publish that returns the seq (for concurrent publishers), and an Atom reader (quick-xml).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use quick_xml::events::Event;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::alerts_util::{Fixture, cap_xml, publish_xml};
use crate::common::Hub;

/// How long a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(10);

/// Publishes a fixture `identifier` of `kind`/`severity` for `region`; returns its seq.
pub async fn publish(
    hub: &Hub,
    token: &str,
    identifier: &str,
    kind: &str,
    severity: &str,
    region: &str,
) -> u64 {
    publish_sized(hub, token, identifier, kind, severity, region, 0).await
}

/// Like [`publish`], with a description of `pad` ASCII bytes (to make frames large).
pub async fn publish_sized(
    hub: &Hub,
    token: &str,
    identifier: &str,
    kind: &str,
    severity: &str,
    region: &str,
    pad: usize,
) -> u64 {
    let description = format!("说明 {}", "x".repeat(pad));
    let fixture = Fixture {
        identifier,
        kind,
        severity,
        regions: &[region],
        sent: "2025-07-01T08:00:00+08:00",
        headline: &format!("标题 {identifier}"),
        description: &description,
    };
    let (_, id) = publish_xml(hub, token, &cap_xml(&fixture)).await;
    id.parse().expect("numeric id")
}

/// An alert message seen by a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `(seq, identifier)`.
    Alert(u64, String),
    /// A reset with `oldest_available`.
    Reset(u64),
}

/// Parses one frame (`{"type":"alert",…}` or `{"type":"reset",…}`).
pub fn parse_frame(text: &str) -> Seen {
    let value: serde_json::Value = serde_json::from_str(text).expect("frame is JSON");
    match value["type"].as_str() {
        Some("alert") => Seen::Alert(
            value["seq"].as_u64().expect("seq"),
            value["alert"]["identifier"]
                .as_str()
                .expect("identifier")
                .to_owned(),
        ),
        Some("reset") => {
            let archive = value["archive"].as_str().expect("an archive link");
            assert!(archive.starts_with("/api/v1/alerts?region="), "{text}");
            Seen::Reset(value["oldest_available"].as_u64().expect("oldest"))
        }
        other => panic!("unexpected frame type {other:?}: {text}"),
    }
}

/// A WebSocket subscriber.
#[derive(Debug)]
pub struct Ws(pub WebSocketStream<MaybeTlsStream<TcpStream>>);

/// A client handshake's outcome: the subscriber, or the refusal's status and body (any other
/// error panics).
pub fn accepted_or_refused(
    outcome: Result<
        (
            WebSocketStream<MaybeTlsStream<TcpStream>>,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        tokio_tungstenite::tungstenite::Error,
    >,
) -> Result<Ws, (u16, String)> {
    match outcome {
        Ok((ws, _)) => Ok(Ws(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("unexpected WebSocket error: {other}"),
    }
}

impl Ws {
    /// Connects to `/ws/alerts?{query}`.
    pub async fn connect(addr: SocketAddr, query: &str) -> Ws {
        let url = format!("ws://{addr}/ws/alerts?{query}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Ws(ws)
    }

    /// The HTTP status a refused handshake got.
    pub async fn refused(addr: SocketAddr, query: &str) -> u16 {
        let url = format!("ws://{addr}/ws/alerts?{query}");
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("{query}: unexpected error {other}"),
            Ok(_) => panic!("{query}: the handshake was accepted"),
        }
    }

    /// The next alert or reset (pings skipped); panics on close or after [`WAIT`].
    pub async fn next(&mut self) -> Seen {
        parse_frame(&self.next_text().await)
    }

    /// The next text frame as sent (pings skipped); panics on close or after [`WAIT`].
    pub async fn next_text(&mut self) -> String {
        loop {
            let message = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("no message in time")
                .expect("stream ended")
                .expect("ws error");
            match message {
                Message::Text(text) => return text.to_string(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn silent(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(quiet, self.0.next()).await
        {
            panic!("unexpected message {text}");
        }
    }
}

/// An SSE subscriber over raw HTTP/1.0.
pub struct Sse {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Status code of the response.
    pub status: u16,
}

impl Sse {
    /// `GET /sse/alerts?{query}` with extra headers.
    pub async fn connect(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Sse {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Sse::connect_on(stream, query, headers).await
    }

    async fn block(&mut self, end: &[u8]) -> String {
        self.block_or_end(end).await.expect("stream ended")
    }

    /// The bytes up to and including `end`, or `None` if the stream ended (cleanly, between
    /// blocks); panics after [`WAIT`] without either.
    async fn block_or_end(&mut self, end: &[u8]) -> Option<String> {
        loop {
            if let Some(at) = self.buf.windows(end.len()).position(|w| w == end) {
                let block: Vec<u8> = self.buf.drain(..at + end.len()).collect();
                return Some(String::from_utf8(block).expect("utf-8"));
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("no event or end in time")
                .expect("read");
            if n == 0 {
                assert!(self.buf.is_empty(), "stream ended inside an event");
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next alert or reset (comments and `retry:` skipped); checks `id:` = seq.
    pub async fn next(&mut self) -> Seen {
        self.next_or_end().await.expect("stream ended")
    }
}

impl Sse {
    /// Like [`Sse::connect`], over a stream the caller opened (e.g. with a small receive
    /// buffer, to stall it for real).
    pub async fn connect_on(mut stream: TcpStream, query: &str, headers: &[(&str, &str)]) -> Sse {
        let mut head = format!("GET /sse/alerts?{query} HTTP/1.0\r\nHost: localhost\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut sse = Sse {
            stream,
            buf: Vec::new(),
            status: 0,
        };
        let head = sse.block(b"\r\n\r\n").await;
        sse.status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        assert_eq!(sse.status, 200, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("text/event-stream"),
            "{head}"
        );
        sse
    }

    /// The next alert or reset like [`Sse::next`], or `None` once the server ended the
    /// stream (EOF after the last complete event); panics after [`WAIT`] without either.
    pub async fn next_or_end(&mut self) -> Option<Seen> {
        loop {
            let block = self.block_or_end(b"\n\n").await?;
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_owned())
            };
            let Some(data) = field("data:") else { continue };
            let seen = parse_frame(&data);
            if let Seen::Alert(seq, _) = &seen {
                assert_eq!(field("id:"), Some(seq.to_string()), "{block}");
            }
            return Some(seen);
        }
    }
}

/// A TCP connection to `addr` whose receive buffer is `bytes`, set before the handshake so
/// the advertised window stays small: a client that stops reading blocks the server's writes
/// as soon as the server's send buffer is full.
pub async fn small_window(addr: SocketAddr, bytes: u32) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    socket.connect(addr).await.expect("connect")
}

impl Ws {
    /// Like [`Ws::connect`], over a stream the caller opened (see [`small_window`]).
    pub async fn connect_on(stream: TcpStream, addr: SocketAddr, query: &str) -> Ws {
        let url = format!("ws://{addr}/ws/alerts?{query}");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("ws handshake");
        Ws(ws)
    }
}

/// Identifiers of `seen` alerts.
pub fn ids(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| match s {
            Seen::Alert(_, id) => id.clone(),
            Seen::Reset(n) => format!("reset {n}"),
        })
        .collect()
}

/// Publishes a food alert for 330100 by identifier; returns its seq.
pub async fn post_alert(addr: std::net::SocketAddr, token: &str, id: &str) -> u64 {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let response = post_alert_on(stream, token, id, "并发").await;
    response.json()["seq"].as_u64().expect("seq")
}

/// Like [`post_alert`] over a stream the caller opened (e.g. TLS), with `headline`; returns
/// the response.
pub async fn post_alert_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    token: &str,
    id: &str,
    headline: &str,
) -> crate::common::Response {
    let xml = crate::alerts_util::cap_xml(&Fixture {
        identifier: id,
        kind: "food",
        severity: "Severe",
        regions: &["330100"],
        sent: "2025-07-01T08:00:00+08:00",
        headline,
        description: headline,
    });
    post_cap_on(stream, token, &xml).await
}

/// `POST /api/v1/alerts` of the CAP document `xml` with `token` over `stream`.
pub async fn post_cap_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    token: &str,
    xml: &str,
) -> crate::common::Response {
    let len = xml.len().to_string();
    let auth = format!("Bearer {token}");
    let headers = [
        ("Content-Length", len.as_str()),
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/cap+xml"),
    ];
    crate::common::request_with_body(stream, "POST", "/api/v1/alerts", &headers, xml.as_bytes())
        .await
}

#[derive(Debug, Default)]
pub struct Entry {
    pub id: String,
    pub title: String,
    pub kind: String,
    pub href: String,
}

/// The feed's entries; panics unless it is well-formed Atom.
pub fn atom_entries(xml: &str) -> Vec<Entry> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    let mut path: Vec<String> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.read_event().expect("well-formed XML");
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_owned();
                let attr = |key: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.0 == key)
                        .map(|a| a.value.to_string())
                };
                if root.is_none() {
                    root = Some((name.clone(), attr("xmlns")));
                }
                match (name.as_str(), current.as_mut()) {
                    ("entry", _) => current = Some(Entry::default()),
                    ("category", Some(entry)) => entry.kind = attr("term").unwrap_or_default(),
                    ("link", Some(entry)) => {
                        assert_eq!(attr("rel").as_deref(), Some("alternate"));
                        assert_eq!(attr("type").as_deref(), Some("application/cap+xml"));
                        entry.href = attr("href").unwrap_or_default();
                    }
                    _ => {}
                }
                if !matches!(name.as_str(), "category" | "link") {
                    path.push(name);
                }
            }
            Event::Text(text) => {
                let text = text.xml10_content().into_owned();
                match (path.last().map(String::as_str), current.as_mut()) {
                    (Some("id"), Some(entry)) => entry.id = text,
                    (Some("title"), Some(entry)) => entry.title = text,
                    _ => {}
                }
            }
            Event::End(e) => {
                if e.name().as_ref() == "entry" {
                    entries.extend(current.take());
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = root.expect("a root element");
    assert_eq!(
        root,
        (
            "feed".to_owned(),
            Some("http://www.w3.org/2005/Atom".to_owned())
        )
    );
    entries
}
