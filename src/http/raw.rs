//! What the side-path servers (`alerts_sse_raw`, `alerts_ws_raw`) share: the listener's test
//! of a connection's first bytes, reading and parsing one HTTP/1.1 request head, and writing a
//! response (status, headers, body) without hyper.
//!
//! Why side paths at all: a live subscriber's connection lives for hours, and hyper keeps
//! 8 KiB read and write buffers per HTTP/1 connection for its life; and an upgraded connection
//! comes out of hyper's auto (HTTP/1 + HTTP/2) server wrapped in a type that hides the socket,
//! so the alert hub task could not write to it directly. Connections whose *first* request is
//! a live subscription are therefore served here; everything else (TLS, later requests on a
//! kept-alive connection) takes the hyper path, with the same protocol.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, Version, header};
use axum::response::Response;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::alerts_error::AlertError;

/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 48;

/// Whether `peeked` (a connection's first bytes) starts `GET {path}` with a query or nothing.
pub fn claims(peeked: &[u8], path: &[u8]) -> bool {
    peeked.starts_with(b"GET ")
        && peeked[4..].starts_with(path)
        && matches!(peeked.get(4 + path.len()), Some(b'?' | b' '))
}

/// A parsed request head.
#[derive(Debug)]
pub struct Head {
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// Bytes read past the head (a client that did not wait for the answer).
    pub rest: Vec<u8>,
}

/// Reads the request head by `deadline` (the listener's first-request deadline, counted from
/// the accept): `None` if the peer closed or stayed silent (closed without an answer, as
/// hyper does), or if it is over [`MAX_HEAD`] (answered 431 with the JSON error and `extra`
/// header lines).
pub async fn read_head<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    deadline: tokio::time::Instant,
    extra: &str,
) -> Option<Vec<u8>> {
    match tokio::time::timeout_at(deadline, read_until_blank_line(stream)).await {
        Ok(Ok(head)) => Some(head),
        Ok(Err(Unread::TooLarge)) => {
            let error = axum::response::IntoResponse::into_response(too_large());
            write_response(stream, error, extra).await;
            None
        }
        Ok(Err(Unread::Closed)) | Err(_) => None,
    }
}

/// Where the request head in `buf` ends (just past its blank line), looking at line ends
/// from `from` on: CRLF or a bare LF, as httparse (and hyper) read them.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(2);
    (start..buf.len()).find_map(|i| {
        let blank = buf[i] == b'\n'
            && match i.checked_sub(1).map(|j| buf[j]) {
                Some(b'\n') => true,
                Some(b'\r') => i >= 2 && buf[i - 2] == b'\n',
                _ => false,
            };
        blank.then_some(i + 1)
    })
}

/// 431 `head_too_large`: over [`MAX_HEAD`] bytes or `MAX_HEADERS` headers.
fn too_large() -> AlertError {
    AlertError::from(super::ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "head_too_large",
        format!(
            "the request head is over {} KiB or {MAX_HEADERS} headers",
            MAX_HEAD / 1024
        ),
    ))
}

/// Why no request head was read.
enum Unread {
    Closed,
    TooLarge,
}

async fn read_until_blank_line<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Unread> {
    let mut head = Vec::with_capacity(512);
    loop {
        let scanned = head.len();
        let n = stream
            .read_buf(&mut head)
            .await
            .map_err(|_| Unread::Closed)?;
        if n == 0 {
            return Err(Unread::Closed);
        }
        // Only the new bytes (and the two before them) are searched: a head sent a byte at
        // a time costs its length, not its length squared.
        let end = head_end(&head, scanned);
        match end {
            Some(end) if end <= MAX_HEAD => return Ok(head),
            Some(_) => return Err(Unread::TooLarge),
            None if head.len() > MAX_HEAD => return Err(Unread::TooLarge),
            None => {}
        }
        head.reserve(512);
    }
}

/// Parses what [`read_head`] read (owned values: nothing borrowed from the buffer is kept),
/// keeping only the headers named in `wanted` (lowercase) and the forwarding headers
/// `crate::client_ip` may read: the table stays as small as the few headers a side path reads.
pub fn parse(read: &[u8], wanted: &[&str]) -> Result<Head, AlertError> {
    let mut table = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut table);
    let bad = |why: &str| AlertError::from(super::ApiError::bad_request("bad_request", why));
    let len = match request.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(too_large()),
        _ => return Err(bad("malformed request head")),
    };
    let uri: Uri = request
        .path
        .unwrap_or("/")
        .parse()
        .map_err(|_| bad("malformed request target"))?;
    let version = match request.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(wanted.len());
    for h in request.headers.iter() {
        let mut names = wanted.iter().chain(crate::client_ip::HEADERS);
        if !names.any(|w| h.name.eq_ignore_ascii_case(w)) {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes());
        let value = HeaderValue::from_bytes(h.value);
        match (name, value) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => return Err(bad("malformed header")),
        }
    }
    Ok(Head {
        uri,
        version,
        headers,
        rest: read[len..].to_vec(),
    })
}

/// Counts a side-path answer in the HTTP metrics (`route`, GET, `status`), as the router's
/// middleware counts the requests it serves.
pub fn count(state: &super::AppState, route: &str, status: StatusCode, started: Instant) {
    let metrics = state.metrics();
    metrics
        .http_duration
        .with_label_values(&[route, "GET"])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route, "GET", status.as_str()])
        .inc();
}

/// Answers a refused side-path request: counted as [`count`] does, then written and closed as
/// [`write_response`] does.
pub async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    state: &super::AppState,
    route: &str,
    started: Instant,
    response: Response,
    extra: &str,
) {
    count(state, route, response.status(), started);
    write_response(stream, response, extra).await;
}

/// Writes `bytes` within `limit`; false if the connection must end.
pub async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    limit: std::time::Duration,
) -> bool {
    matches!(
        tokio::time::timeout(limit, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// A status line and headers (`extra` lines appended), ending the head.
pub fn head_text(status: StatusCode, headers: &HeaderMap, extra: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::CONNECTION && !status.is_informational()
        {
            continue;
        }
        if let Ok(value) = value.to_str() {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str(extra);
    out.push_str("\r\n");
    out
}

/// Writes an error response (status, headers, `extra` header lines, body) and closes.
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: Response,
    extra: &str,
) {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return;
    };
    let lines = format!(
        "{extra}content-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    // One write: a client that reads the response once (tungstenite does) gets the body too.
    let mut whole = head_text(parts.status, &parts.headers, &lines).into_bytes();
    whole.extend_from_slice(&body);
    let limit = std::time::Duration::from_secs(5);
    let _ = write(stream, &whole, limit).await;
    let _ = tokio::time::timeout(limit, stream.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_blank_line_with_crlf_or_bare_lf() {
        let crlf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let lf = b"GET / HTTP/1.1\nHost: x\n\nrest";
        let mixed = b"GET / HTTP/1.1\nHost: x\n\r\nrest";
        for (bytes, end) in [
            (&crlf[..], crlf.len() - 4),
            (lf, lf.len() - 4),
            (mixed, mixed.len() - 4),
        ] {
            assert_eq!(head_end(bytes, 0), Some(end));
            // Fed a byte at a time, found when its last byte arrives.
            let found = (1..=bytes.len()).find_map(|n| head_end(&bytes[..n], n - 1));
            assert_eq!(found, Some(end));
        }
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        assert_eq!(head_end(b"\r\r\n", 0), None);
    }

    #[test]
    fn only_first_requests_for_the_path_are_claimed() {
        let sse = b"/sse/alerts";
        assert!(claims(b"GET /sse/alerts?region=330100 HTTP/1.1\r\n", sse));
        assert!(claims(b"GET /sse/alerts HTTP/1.1\r\n", sse));
        assert!(!claims(b"GET /sse/alertsX HTTP/1.1\r\n", sse));
        assert!(!claims(b"GET /ws/alerts?region=330100 HTTP/1.1\r\n", sse));
        assert!(claims(
            b"GET /ws/alerts?region=330100 HTTP/1.1\r\n",
            b"/ws/alerts"
        ));
        assert!(!claims(b"POST /sse/alerts HTTP/1.1\r\n", sse));
        assert!(!claims(b"GET /sse/al", sse));
        assert!(!claims(b"GET", sse));
    }

    #[test]
    fn a_head_parses_into_owned_parts_and_keeps_what_follows() {
        let read = b"GET /ws/alerts?region=330100 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n\x81\x80";
        let head = parse(read, &["upgrade"]).expect("parsed");
        assert_eq!(head.uri.query(), Some("region=330100"));
        assert_eq!(head.version, Version::HTTP_11);
        assert_eq!(head.headers["upgrade"], "websocket");
        assert_eq!(head.headers.len(), 1, "only what was asked for");
        assert_eq!(head.rest, b"\x81\x80");
        assert!(parse(b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", &[]).is_err());
        let forwarded = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n";
        let head = parse(forwarded, &[]).expect("parsed");
        assert_eq!(
            head.headers["x-forwarded-for"], "192.0.2.1",
            "kept for client_ip"
        );
        assert_eq!(head.headers.len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// The side paths face the internet without a login: arbitrary first bytes and heads
        /// never panic the claim test or the parser, and what parses keeps only the wanted
        /// headers (and the forwarding ones).
        #[test]
        fn arbitrary_heads_never_panic(
            start in proptest::sample::select(vec![
                "", "GET ", "GET /sse/alerts", "GET /sse/alerts?", "GET /ws/alerts ",
                "GET /sse/alerts?region=330100 HTTP/1.1\r\n",
            ]),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            // Request-like starts, so the claim test and the parser get past their first
            // checks, followed by anything.
            let mut bytes = start.as_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            let _ = claims(&bytes, b"/sse/alerts");
            let _ = claims(&bytes, b"/ws/alerts");
            let _ = claims(&bytes, b"");
            if let Ok(head) = parse(&bytes, &["last-event-id"]) {
                proptest::prop_assert!(head.headers.keys().all(|k| k == "last-event-id"
                    || crate::client_ip::HEADERS.contains(&k.as_str())));
                proptest::prop_assert!(head.rest.len() <= bytes.len());
            }
        }

        /// Well-formed heads with arbitrary header values parse; the bytes after the head are
        /// kept as they came.
        #[test]
        fn well_formed_heads_parse(
            value in "[ -~]{0,200}",
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut bytes = format!(
                "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {value}\r\n\r\n"
            )
            .into_bytes();
            bytes.extend_from_slice(&rest);
            let head = parse(&bytes, &["last-event-id"])
                .map_err(|_| proptest::test_runner::TestCaseError::fail("did not parse"))?;
            proptest::prop_assert_eq!(head.rest, rest);
            proptest::prop_assert_eq!(head.uri.path(), "/sse/alerts");
        }
    }
}
