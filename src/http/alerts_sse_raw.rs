//! `/sse/alerts` served beside hyper for plain-TCP connections whose first request it is: the
//! listener peeks at the request line ([`claims`]) and hands the socket here, which reads the
//! head, answers with the same checks and messages as `alerts_sse`, and writes the shared
//! event bytes straight to the socket (the hub task writes them itself while this task is
//! idle: `alerts_live::mailbox`).
//!
//! Why: an SSE stream stays an HTTP/1 connection for as long as the subscriber listens, and
//! hyper keeps an 8 KiB read and an 8 KiB write buffer per connection for its life (23 KiB
//! per idle subscriber measured, BENCHMARKS.md); here an idle subscriber is its socket, its
//! task and a few hundred bytes. The response is `Connection: close`, its body delimited by
//! the close (HTTP/1.1 § 6.3), so nothing is chunk-framed. TLS connections, and SSE requests
//! that come later on a kept-alive connection, take the hyper path (`alerts_sse`), same
//! protocol.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;
use std::io::IoSlice;

use alerts::hub::Delivery;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior};

use super::AppState;
use super::alerts_error::{AlertError, alerts_state};
use super::alerts_live::{parse_live, subscribe};
use super::cors::RAW_HEADER;
use super::raw;
use crate::alerts_live::{Direct, Subscription, Wire};
use crate::stall::StallGuard;
use crate::wslite::{read_shared, write_all_shared};

/// Events written per `writev` (the slice table lives in each subscriber's task: kept small).
const CHUNK: usize = 8;

/// The path served, as the router names its route (metrics).
const ROUTE: &str = "/sse/alerts";

/// Whether `peeked` (the connection's first bytes) starts an `/sse/alerts` request.
pub fn claims(peeked: &[u8]) -> bool {
    raw::claims(peeked, ROUTE.as_bytes())
}

/// Serves one SSE subscriber on `stream` (closed at the end) whose request head is due by
/// `deadline`; `held` (the listener's permit and gauge) is dropped with it.
pub async fn serve<H: Send>(
    state: AppState,
    stream: StallGuard<TcpStream>,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    held: H,
) {
    let _held = held;
    // The request's future (head parsing, subscription, error response) is its own
    // allocation, freed when it ends; the task keeps only the stream's.
    if let Some((stream, sub)) = Box::pin(request(&state, stream, peer, deadline)).await {
        // The stream's writes have their own timeouts from here on; the socket is shared
        // with the hub task, which writes events itself while this task is idle.
        run(&state, &Arc::new(stream), sub).await;
    }
}

/// Reads the request and subscribes: the socket and subscription, or `None` once refused
/// (answered).
async fn request(
    state: &AppState,
    mut stream: StallGuard<TcpStream>,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<(TcpStream, Subscription)> {
    let read = raw::read_head(&mut stream, deadline, RAW_HEADER).await?;
    let started = std::time::Instant::now();
    let parsed = raw::parse(&read, &["last-event-id", "accept"]);
    drop(read);
    let mut accept = None;
    let opened = match parsed {
        Ok(head) => {
            accept = head.headers.get(axum::http::header::ACCEPT).cloned();
            let client = state.client_ip(peer, &head.headers);
            match super::alerts_sse::last_event_id(&head.headers) {
                Ok(since) => open(state, &head.uri, since, client).await,
                Err(err) => Err(err),
            }
        }
        Err(err) => Err(err),
    };
    match opened {
        Ok(sub) => {
            raw::count(state, ROUTE, axum::http::StatusCode::OK, started);
            let stream = stream.into_inner();
            Some((stream, sub))
        }
        Err(err) => {
            let refused = super::alerts_sse::refused(err, accept.as_ref());
            raw::refuse(&mut stream, state, ROUTE, started, refused, RAW_HEADER).await;
            None
        }
    }
}

/// Subscribes with `alerts_sse`'s checks and errors.
async fn open(
    state: &AppState,
    uri: &Uri,
    last_event_id: Option<u64>,
    client: std::net::IpAddr,
) -> Result<Subscription, AlertError> {
    let mut query = parse_live(Query::try_from_uri(uri), state)?;
    if let Some(since) = last_event_id {
        query.since = Some(since);
    }
    subscribe(state, client, query, "sse").await
}

/// Writes the stream until the subscriber leaves, is dropped, or the server shuts down.
async fn run(state: &AppState, stream: &Arc<TcpStream>, mut sub: Subscription) {
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
                 x-accel-buffering: no\r\n";
    let tail = b"connection: close\r\n\r\n";
    let mut parts = [
        IoSlice::new(head),
        IoSlice::new(RAW_HEADER.as_bytes()),
        IoSlice::new(tail),
        IoSlice::new(super::alerts_sse::RETRY.as_bytes()),
    ];
    // Nothing is attached yet: the head goes out before any event.
    if write_all_shared(stream, &mut parts, write_timeout)
        .await
        .is_err()
    {
        return;
    }
    let socket = Direct::new(stream.clone(), Wire::Sse);
    sub.attach(socket.clone());
    let mut input = [0u8; 64];
    loop {
        let extra: &[u8] = tokio::select! {
            () = &mut cancelled => break,
            () = sub.ready() => b"",
            _ = ping.tick() => b":\n\n",
            // A subscriber says nothing after its request: anything (or the close) ends it.
            _ = read_shared(stream, &mut input) => break,
        };
        // Woken with events: written at once if the socket takes them all (no future).
        if extra.is_empty() {
            match sub.write_out(&socket).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(()) => break,
            }
        }
        // Boxed: the awaiting step's future exists only while it runs (see `alerts_live`).
        if !Box::pin(drain(stream, &mut sub, extra, write_timeout)).await {
            break;
        }
    }
    // Completes an event the hub task left half written, so the stream ends on an event.
    let batch = sub.pop().await;
    if batch.written > 0 {
        let limit = write_timeout.min(Duration::from_secs(1));
        let _ = write_events(stream, &batch.items[..1], batch.written, limit).await;
    }
}

/// Takes what the inbox holds and writes it, then `extra` (a keep-alive comment, or nothing);
/// false when the stream must end. Between the take and the release the hub task does not
/// write.
async fn drain(
    stream: &TcpStream,
    sub: &mut Subscription,
    extra: &[u8],
    write_timeout: Duration,
) -> bool {
    let batch = sub.pop().await;
    let mut items = batch.items;
    let mut written = true;
    // A reset comes first and alone (a replay's start; never written by the hub task); the
    // alerts' shared event bytes go out straight from the batch, nothing copied or held.
    if let Some(reset @ Delivery::Reset { .. }) = items.first() {
        let event = super::alerts_sse::event(reset.clone(), sub);
        written = write_all_shared(stream, &mut [IoSlice::new(&event)], write_timeout)
            .await
            .is_ok();
    }
    written = written
        && write_events(stream, &items, batch.written, write_timeout)
            .await
            .is_ok();
    if written && !extra.is_empty() {
        written = write_all_shared(stream, &mut [IoSlice::new(extra)], write_timeout)
            .await
            .is_ok();
    }
    items.clear();
    sub.recycle(items);
    // After a failed write the connection ends, its socket maybe mid-frame: the hub task
    // must not write the next delivery after that half frame, so it stays shut out.
    if written {
        sub.release();
    }
    written && batch.closed.is_none() && !batch.gone
}

/// Writes the alerts' events of `items`, `CHUNK` per `writev`, without the first `skip`
/// bytes (already written by the hub task).
async fn write_events(
    stream: &TcpStream,
    items: &[Delivery],
    mut skip: usize,
    limit: Duration,
) -> std::io::Result<()> {
    for chunk in items.chunks(CHUNK) {
        let mut slices: [IoSlice<'_>; CHUNK] = std::array::from_fn(|i| match chunk.get(i) {
            Some(Delivery::Alert { frame, .. }) => IoSlice::new(frame),
            _ => IoSlice::new(&[]),
        });
        let mut slices = &mut slices[..];
        let total: usize = slices.iter().map(|s| s.len()).sum();
        IoSlice::advance_slices(&mut slices, std::mem::take(&mut skip).min(total));
        write_all_shared(stream, slices, limit).await?;
    }
    Ok(())
}
