//! Live alert delivery as Server-Sent Events: `GET /sse/alerts?region=&kind=&min_severity=&since=`
//! (public). Same parameters and answers as `/ws/alerts` (`alerts_live`).
//!
//! The stream opens with `retry: 3000`; each alert is an event with `id: <seq>` and the store's
//! frame as `data:`, a reset is `event: reset` (no id, so the resume point is unchanged).
//! `Last-Event-ID` (what browsers send when they reconnect) takes precedence over `since`.
//! Keep-alive comments every `alerts.ping_secs`. The stream ends when the hub drops the
//! subscriber as a slow consumer (the client reconnects with `Last-Event-ID`) and on shutdown.
//!
//! Limit: a client that stops reading stalls the response body, so the stream is not polled
//! until the peer goes away or the server shuts down; its hub queue is dropped (4008 in the
//! hub), so it holds no alerts meanwhile.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use alerts::hub::Delivery;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::alerts_error::{AlertError, alerts_state};
use super::alerts_live::{parse_live, parse_seq, reset_text, subscribe};
use crate::alerts_live::Subscription;

/// The reconnection delay the stream advertises.
const RETRY: Duration = Duration::from_secs(3);

/// `GET /sse/alerts`.
pub async fn sse_alerts(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, AlertError> {
    let mut query = parse_live(query, &state)?;
    if let Some(value) = headers.get("last-event-id") {
        let text = value.to_str().unwrap_or("(not ASCII)").trim();
        query.since = Some(parse_seq("Last-Event-ID", text)?);
    }
    let ping = Duration::from_secs(alerts_state(&state)?.config.ping_secs);
    let sub = subscribe(&state, peer, query, "sse").await?;
    let stream = Stream {
        sub,
        token: state.shutdown().token().clone(),
        buffered: VecDeque::new(),
        started: false,
        done: false,
    };
    let events = futures_util::stream::unfold(stream, next);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(ping))
        .into_response())
}

struct Stream {
    sub: Subscription,
    token: CancellationToken,
    buffered: VecDeque<Event>,
    started: bool,
    done: bool,
}

fn event(item: Delivery) -> Option<Event> {
    match item {
        Delivery::Alert { seq, frame } => {
            let text = std::str::from_utf8(&frame).ok()?;
            Some(Event::default().id(seq.to_string()).data(text))
        }
        Delivery::Reset { oldest_available } => Some(
            Event::default()
                .event("reset")
                .data(reset_text(oldest_available)),
        ),
    }
}

async fn next(mut st: Stream) -> Option<(Result<Event, Infallible>, Stream)> {
    if !st.started {
        st.started = true;
        return Some((Ok(Event::default().retry(RETRY)), st));
    }
    loop {
        if let Some(ev) = st.buffered.pop_front() {
            return Some((Ok(ev), st));
        }
        if st.done {
            return None;
        }
        tokio::select! {
            () = st.token.cancelled() => return None,
            () = st.sub.ready() => {}
        }
        let batch = st.sub.pop().await;
        st.done = batch.closed.is_some() || batch.gone;
        let mut items = batch.items;
        st.buffered.extend(items.drain(..).filter_map(event));
        st.sub.recycle(items);
    }
}
