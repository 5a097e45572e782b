//! `/sse/alerts` served beside hyper for plain-TCP connections whose first request it is: the
//! listener peeks at the request line ([`claims`]) and hands the socket here, which reads the
//! head, answers with the same checks and messages as `alerts_sse`, and writes the shared
//! event bytes straight to the socket.
//!
//! Why: an SSE stream stays an HTTP/1 connection for as long as the subscriber listens, and
//! hyper keeps an 8 KiB read and an 8 KiB write buffer per connection for its life (23 KiB
//! per idle subscriber measured, BENCHMARKS.md); here an idle subscriber is its socket, its
//! task and a few hundred bytes. The response is `Connection: close`, its body delimited by
//! the close (HTTP/1.1 § 6.3), so nothing is chunk-framed. TLS connections, and SSE requests
//! that come later on a kept-alive connection, take the hyper path (`alerts_sse`), same
//! protocol.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;
use axum::response::{IntoResponse as _, Response};
use std::io::IoSlice;

use alerts::hub::Delivery;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::{Instant, MissedTickBehavior};

use super::AppState;
use super::alerts_error::{AlertError, alerts_state};
use super::alerts_live::{parse_live, parse_seq, subscribe};
use crate::wslite::write_all_vectored;

/// Events written per `writev` (the slice table lives in each subscriber's task: kept small).
const CHUNK: usize = 8;

/// The request-line prefix this path takes.
const PREFIX: &[u8] = b"GET /sse/alerts";
/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 48;

/// Whether `peeked` (the connection's first bytes) starts an `/sse/alerts` request.
pub fn claims(peeked: &[u8]) -> bool {
    peeked.starts_with(PREFIX) && matches!(peeked.get(PREFIX.len()), Some(b'?' | b' '))
}

/// Serves one SSE subscriber on `stream` (closed at the end).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    state: AppState,
    mut stream: S,
    peer: SocketAddr,
) {
    let limit = Duration::from_secs(state.http().header_read_timeout_secs);
    let Ok(Some(head)) = tokio::time::timeout(limit, read_head(&mut stream)).await else {
        return;
    };
    // Parsed into owned values before any wait: the header table and the head's buffer are
    // not kept in this task for the life of the stream.
    let parsed = parse_head(&head);
    drop(head);
    let opened = match parsed {
        Ok((uri, last_event_id)) => open(&state, &uri, last_event_id.as_deref(), peer).await,
        Err(err) => Err(err),
    };
    match opened {
        Ok(sub) => run(&state, &mut stream, sub).await,
        Err(err) => write_response(&mut stream, err.into_response()).await,
    }
}

/// Reads up to the end of the request head; `None` if the peer closed or it is too long.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    loop {
        let n = stream.read_buf(&mut head).await.ok()?;
        if n == 0 {
            return None;
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return None;
        }
        head.reserve(512);
    }
}

/// The request target and `Last-Event-ID` of a request head.
fn parse_head(head: &[u8]) -> Result<(Uri, Option<String>), AlertError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let bad = |why: &str| AlertError::from(super::ApiError::bad_request("bad_request", why));
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("malformed request head")),
    }
    let uri: Uri = request
        .path
        .unwrap_or("/")
        .parse()
        .map_err(|_| bad("malformed request target"))?;
    let last_event_id = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned());
    Ok((uri, last_event_id))
}

/// Subscribes with `alerts_sse`'s checks and errors.
async fn open(
    state: &AppState,
    uri: &Uri,
    last_event_id: Option<&str>,
    peer: SocketAddr,
) -> Result<crate::alerts_live::Subscription, AlertError> {
    let mut query = parse_live(Query::try_from_uri(uri), state)?;
    if let Some(text) = last_event_id {
        query.since = Some(parse_seq("Last-Event-ID", text)?);
    }
    subscribe(state, peer, query, "sse").await
}

/// Writes the stream until the subscriber leaves, is dropped, or the server shuts down.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    state: &AppState,
    stream: &mut S,
    mut sub: crate::alerts_live::Subscription,
) {
    let Ok(alerts) = alerts_state(state) else {
        return;
    };
    let write_timeout = Duration::from_secs(alerts.config.write_timeout_secs);
    let every = Duration::from_secs(alerts.config.ping_secs);
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let cancelled = state.shutdown().token().clone().cancelled_owned();
    tokio::pin!(cancelled);
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
                 x-accel-buffering: no\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\r\n\
                 retry: 3000\n\n";
    if !write(stream, head, write_timeout).await {
        return;
    }
    let mut input = [0u8; 64];
    loop {
        tokio::select! {
            () = &mut cancelled => return,
            () = sub.ready() => {}
            _ = ping.tick() => {
                if !write(stream, b":\n\n", write_timeout).await {
                    return;
                }
                continue;
            }
            // A subscriber says nothing after its request: anything (or the close) ends it.
            _ = stream.read(&mut input) => return,
        }
        let batch = sub.pop().await;
        let mut items = batch.items;
        // A reset comes first and alone (a replay's start); the alerts' shared event bytes
        // go out straight from the batch, one `writev` per chunk, nothing copied or held.
        if let Some(reset @ Delivery::Reset { .. }) = items.first() {
            let event = super::alerts_sse::event(reset.clone());
            if write_all_vectored(stream, &mut [IoSlice::new(&event)], write_timeout)
                .await
                .is_err()
            {
                return;
            }
        }
        for chunk in items.chunks(CHUNK) {
            let mut slices: [IoSlice<'_>; CHUNK] = std::array::from_fn(|i| match chunk.get(i) {
                Some(Delivery::Alert { frame, .. }) => IoSlice::new(frame),
                _ => IoSlice::new(&[]),
            });
            if write_all_vectored(stream, &mut slices, write_timeout)
                .await
                .is_err()
            {
                return;
            }
        }
        items.clear();
        sub.recycle(items);
        if batch.closed.is_some() || batch.gone {
            return;
        }
    }
}

/// Writes `bytes` within `limit`; false if the connection must end.
async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Writes an error response (status, headers, body) and closes.
async fn write_response<S: AsyncWrite + Unpin>(stream: &mut S, response: Response) {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return;
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if name == axum::http::header::CONTENT_LENGTH || name == axum::http::header::CONNECTION {
            continue;
        }
        if let Ok(value) = value.to_str() {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str(super::cors::RAW_HEADER);
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let limit = Duration::from_secs(5);
    if write(stream, out.as_bytes(), limit).await {
        let _ = write(stream, &body, limit).await;
    }
    let _ = tokio::time::timeout(limit, stream.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::claims;

    #[test]
    fn only_first_requests_for_the_sse_path_are_claimed() {
        assert!(claims(b"GET /sse/alerts?region=330100 HTTP/1.1\r\n"));
        assert!(claims(b"GET /sse/alerts HTTP/1.1\r\n"));
        assert!(!claims(b"GET /sse/alertsX HTTP/1.1\r\n"));
        assert!(!claims(b"GET /ws/alerts?region=330100 HTTP/1.1\r\n"));
        assert!(!claims(b"POST /sse/alerts HTTP/1.1\r\n"));
        assert!(!claims(b"GET /sse/al"));
    }
}
