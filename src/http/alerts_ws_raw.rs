//! `/ws/alerts` served beside hyper for plain-TCP connections whose first request it is: the
//! listener peeks at the request line ([`claims`]) and hands the socket here, which reads the
//! head, runs the same checks in the same order as `alerts_live::ws_alerts` (handshake, then
//! query, then subscription, each failure the same JSON error), answers 101 and runs the same
//! session on the socket itself.
//!
//! Why (see `raw`): the session keeps the bare socket, so the alert hub task can write frames
//! to it directly (`alerts_live::mailbox`), and no hyper connection state is kept for it. TLS
//! connections, and upgrades that come later on a kept-alive connection, take the hyper path.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Query;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpStream;

use super::AppState;
use super::alerts_live::{MAX_CLIENT_MESSAGE, parse_live, session, subscribe};
use super::raw;
use crate::alerts_live::Subscription;
use crate::stall::StallGuard;
use crate::wslite::{Conn, handshake};

/// The path served, as the router names its route (metrics).
const ROUTE: &str = "/ws/alerts";

/// Whether `peeked` (the connection's first bytes) starts a `/ws/alerts` request.
pub fn claims(peeked: &[u8]) -> bool {
    raw::claims(peeked, ROUTE.as_bytes())
}

/// Serves one WebSocket subscriber on `stream` (closed at the end) whose request head is due
/// by `deadline`; `held` (the listener's permit and gauge) is dropped with it.
pub async fn serve<H: Send>(
    state: AppState,
    stream: StallGuard<TcpStream>,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
    held: H,
) {
    let _held = held;
    // The handshake's future (head parsing, subscription, error responses: ~1.7 KiB) is
    // its own allocation, freed when it ends; the task keeps only the session's.
    if let Some((state, conn, sub)) = Box::pin(handshake(state, stream, peer, deadline)).await {
        session(state, conn, sub).await;
    }
}

/// Reads and answers the handshake: the session's parts, or `None` once refused (answered).
async fn handshake(
    state: AppState,
    mut stream: StallGuard<TcpStream>,
    peer: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<(AppState, Conn, Subscription)> {
    let read = raw::read_head(&mut stream, deadline, "").await?;
    let started = std::time::Instant::now();
    let (sub, answer, rest) = match upgrade(&state, &read, peer).await {
        Ok(upgraded) => upgraded,
        Err(refused) => {
            raw::refuse(&mut stream, &state, ROUTE, started, refused, "").await;
            return None;
        }
    };
    raw::count(&state, ROUTE, StatusCode::SWITCHING_PROTOCOLS, started);
    drop(read);
    let limit = Duration::from_secs(state.http().header_read_timeout_secs);
    let answered = raw::write(&mut stream, answer.as_bytes(), limit).await;
    drop(answer);
    if !answered {
        return None;
    }
    // The session's writes have their own timeouts from here on.
    let stream = stream.into_inner();
    let conn = Conn::tcp(stream, rest.into(), MAX_CLIENT_MESSAGE);
    Some((state, conn, sub))
}

/// The checks of the request head `read`, in the hyper path's order (handshake, query,
/// subscription): the subscription, the 101 answer's head and the bytes read past the request,
/// or the error response.
async fn upgrade(
    state: &AppState,
    read: &[u8],
    peer: SocketAddr,
) -> Result<(Subscription, String, Vec<u8>), Response> {
    let head = raw::parse(read, handshake::HEADERS).map_err(IntoResponse::into_response)?;
    // Everything parsed from the head is dropped before the session: a header table alone is
    // a few KiB, held for the life of the connection otherwise.
    let raw::Head {
        uri,
        version,
        headers,
        rest,
    } = head;
    let accepted =
        handshake::check(&Method::GET, version, &headers).map_err(IntoResponse::into_response)?;
    let client = state.client_ip(peer, &headers);
    drop(headers);
    let query =
        parse_live(Query::try_from_uri(&uri), state).map_err(IntoResponse::into_response)?;
    drop(uri);
    // Registered before the 101 answer, as on the hyper path: nothing published after the
    // handshake is missed.
    let sub = subscribe(state, client, query, "websocket")
        .await
        .map_err(IntoResponse::into_response)?;
    let response = accepted.response();
    let answer = raw::head_text(response.status(), response.headers(), "");
    Ok((sub, answer, rest))
}
