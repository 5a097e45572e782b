//! Live alert delivery as Server-Sent Events: `GET /sse/alerts?region=&kind=&min_severity=&since=`
//! (public). Same parameters and answers as `/ws/alerts` (`alerts_live`).
//!
//! The stream opens with `retry: 3000`; each alert is an event with `id: <seq>` and the store's
//! frame as `data:`, a reset is `event: reset` (no id, so the resume point is unchanged).
//! `Last-Event-ID` (what browsers send when they reconnect) takes precedence over `since`.
//! Keep-alive comments every `alerts.ping_secs`. The stream ends when the hub drops the
//! subscriber as a slow consumer (the client reconnects with `Last-Event-ID`) and on shutdown.
//!
//! Each alert's event is the bytes the hub shares with every subscriber (see
//! `crate::alerts_live::frame`): nothing is formatted or copied per subscriber.
//!
//! A client that stops reading stalls the response body, so the stream is not polled: its hub
//! queue is dropped (4008 in the hub), so it holds no alerts, and once the connection's writes
//! have made no progress for `http.write_stall_secs` the connection is closed
//! ([`crate::stall`]), which frees its subscriber slot.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use alerts::hub::Delivery;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::alerts_error::{AlertError, alerts_state};
use super::alerts_live::{parse_live, parse_seq, reset_text, subscribe};
use crate::alerts_live::Subscription;

/// The reconnection delay the stream advertises (`retry:`, milliseconds).
pub(super) const RETRY: &str = "retry: 3000\n\n";
/// A keep-alive comment.
const KEEP_ALIVE: &str = ":\n\n";

/// What a refused event-stream client is told to wait before reconnecting (`retry:`, ms),
/// before the jitter that spreads the reconnects of displays refused together.
const REFUSED_RETRY_MS: u64 = 5_000;

/// The answer to a refused `/sse/alerts` request (both servers).
///
/// An `EventSource` that gets anything but a 200 event stream fails for good (WHATWG HTML,
/// server-sent events: "fail the connection"; it never reconnects), so a wall display turned
/// away while its hub is full, or while its office's shared address is at its limit, would
/// stay dark until someone reloads it. So a client that asked for an event stream (`Accept:
/// text/event-stream`, as `EventSource` sends) and is refused for a passing reason (429,
/// 503) gets a 200 stream that says so and ends: `retry:` 5–10 s, then `event: refused`
/// with the JSON error. The browser reconnects after the wait with its `Last-Event-ID`, and
/// misses nothing. A bad request (400) and every other client get the status itself.
pub(super) fn refused(err: AlertError, accept: Option<&HeaderValue>) -> Response {
    let wants_stream = (accept.and_then(|v| v.to_str().ok()))
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    let passing = matches!(
        err.status(),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    );
    if !(wants_stream && passing) {
        return err.into_response();
    }
    let wait = REFUSED_RETRY_MS + rand::random_range(0..REFUSED_RETRY_MS);
    let text = format!("retry: {wait}\nevent: refused\ndata: {}\n\n", err.body());
    let mut response = (StatusCode::OK, text).into_response();
    event_stream_headers(response.headers_mut());
    response
}

/// The headers of an event stream: its type, not cached, and passed on by reverse proxies
/// (nginx) as it comes rather than buffered.
pub(super) fn event_stream_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// `GET /sse/alerts`.
pub async fn sse_alerts(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match open(state, peer, &headers, query).await {
        Ok(response) => response,
        Err(err) => refused(err, headers.get(header::ACCEPT)),
    }
}

/// The `Last-Event-ID` a reconnecting client resumes from: a sequence number, given at most
/// once (two, say one added by a proxy, would make the resume point depend on header order:
/// 400 like a repeated query parameter).
pub(super) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, AlertError> {
    let mut values = headers.get_all("last-event-id").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AlertError::bad_parameter(
            "Last-Event-ID",
            "given more than once",
        ));
    }
    let text = String::from_utf8_lossy(value.as_bytes());
    parse_seq("Last-Event-ID", text.trim()).map(Some)
}

async fn open(
    state: AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, AlertError> {
    let mut query = parse_live(query, &state)?;
    if let Some(since) = last_event_id(headers)? {
        query.since = Some(since);
    }
    let every = Duration::from_secs(alerts_state(&state)?.config.ping_secs);
    let sub = subscribe(&state, state.client_ip(peer, headers), query, "sse").await?;
    // Keep-alive comments on a fixed period (not re-armed per event: no timer work per
    // delivery); a comment between busy events costs three bytes.
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let stream = Stream {
        sub,
        token: state.shutdown().token().clone(),
        ping,
        buffered: VecDeque::new(),
        started: false,
        done: false,
    };
    let mut response =
        Body::from_stream(futures_util::stream::unfold(stream, next)).into_response();
    event_stream_headers(response.headers_mut());
    Ok(response)
}

struct Stream {
    sub: Subscription,
    token: CancellationToken,
    ping: Interval,
    buffered: VecDeque<Bytes>,
    started: bool,
    done: bool,
}

/// The bytes of one delivery: an alert's shared frame is already a complete event
/// (`crate::alerts_live::frame`), written as it is; a reset is built (rare).
pub(super) fn event(item: Delivery, sub: &Subscription) -> Bytes {
    match item {
        Delivery::Alert { frame, .. } => frame,
        Delivery::Reset { oldest_available } => {
            let (filter, since) = sub.asked();
            Bytes::from(format!(
                "event: reset\ndata: {}\n\n",
                reset_text(oldest_available, &filter, since)
            ))
        }
    }
}

async fn next(mut st: Stream) -> Option<(Result<Bytes, Infallible>, Stream)> {
    if !st.started {
        st.started = true;
        return Some((Ok(Bytes::from_static(RETRY.as_bytes())), st));
    }
    loop {
        if let Some(bytes) = st.buffered.pop_front() {
            return Some((Ok(bytes), st));
        }
        // Emptied after a burst (a replay): the steady size again, for a weeks-long stream.
        if crate::alerts_live::holds_a_burst(st.buffered.capacity()) {
            st.buffered.shrink_to(crate::alerts_live::KEEP_PLACES);
        }
        if st.done {
            return None;
        }
        tokio::select! {
            () = st.token.cancelled() => return None,
            () = st.sub.ready() => {}
            _ = st.ping.tick() => {
                return Some((Ok(Bytes::from_static(KEEP_ALIVE.as_bytes())), st));
            }
        }
        let batch = st.sub.pop().await;
        st.done = batch.closed.is_some() || batch.gone;
        let mut items = batch.items;
        let sub = &st.sub;
        st.buffered
            .extend(items.drain(..).map(|item| event(item, sub)));
        st.sub.recycle(items);
    }
}
