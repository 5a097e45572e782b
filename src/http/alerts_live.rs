//! Live alert delivery over WebSocket: `GET /ws/alerts?region=&kind=&min_severity=&since=`
//! (public, no token), and the query and subscription steps SSE (`alerts_sse`) shares.
//!
//! Parameters (each at most once): `region` (required, six digits, in the hub's tree; matched
//! both ways), `kind` (comma list), `min_severity`, `since` (the last sequence number seen).
//! A bad or unknown one is 400 `bad_parameter` naming it, before any upgrade; over
//! `alerts.max_subscribers` is 503 `busy`. The subscription is registered before the upgrade
//! response, so nothing published after the handshake is missed.
//!
//! Messages are text frames: each alert as the store's frame `{"type":"alert","seq":N,…}`, and
//! `{"type":"reset","oldest_available":N,"missed_after":S,"archive":"/api/v1/alerts?…"}` first
//! when `since` is older than retention (`archive`: the same filter over what was missed,
//! `reset_text`), or still above the log's last number after a short wait for it
//! (`alerts_live::ahead`; no `missed_after` then). The server pings every `alerts.ping_secs` and closes 1001 after
//! `alerts.idle_timeout_secs` without a frame from the client, 4008 "slow consumer" when the
//! hub dropped the subscriber, 1001 on shutdown; a write blocked `alerts.write_timeout_secs`
//! drops the connection.
//!
//! The WebSocket is [`crate::wslite`]'s, not axum's: one `writev` of a header and the alert's
//! shared frame per delivery, no per-connection read buffer (see there why).

use std::time::Duration;

use alerts::hub::{Delivery, Filter, KindSet, Severity};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::close_code;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use tokio::time::Instant;

use super::alerts_archive::{parse_kinds, parse_min_severity, parse_region};
use super::alerts_error::{AlertError, alerts_state};
use super::{ApiError, AppState};
use crate::alerts_live::{Direct, SubscribeError, Subscription, Wire};
use crate::wslite::{ClientEvent, Conn, frame, handshake};

const KNOWN: &str = "region, kind, min_severity, since";

/// A parsed live query.
#[derive(Debug, Clone, Copy)]
pub(super) struct LiveQuery {
    pub(super) filter: Filter,
    pub(super) since: Option<u64>,
}

/// The query string as a filter, or 400 naming the first bad parameter.
pub(super) fn parse_live(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    state: &AppState,
) -> Result<LiveQuery, AlertError> {
    let Query(pairs) = query.map_err(|e| AlertError::bad_parameter("query", e.body_text()))?;
    let (mut region, mut kinds, mut min_severity, mut since) =
        (None, KindSet::ALL, Severity::Unknown, None);
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let name = name.as_str();
        if seen.contains(&name) {
            return Err(AlertError::bad_parameter(name, "given more than once"));
        }
        seen.push(name);
        let value = value.trim();
        match name {
            "region" => region = Some(parse_region(value, state.regions())?),
            "kind" => kinds = parse_kinds(value)?,
            "min_severity" => min_severity = parse_min_severity(name, value)?,
            "since" => since = Some(parse_seq(name, value)?),
            _ => {
                let why = format!("unknown parameter; known: {KNOWN}");
                return Err(AlertError::bad_parameter(name, why));
            }
        }
    }
    let region = region.ok_or_else(|| AlertError::bad_parameter("region", "is required"))?;
    if kinds.is_empty() {
        return Err(AlertError::bad_parameter("kind", "selects no kind"));
    }
    let filter = Filter {
        region,
        kinds,
        min_severity,
    };
    Ok(LiveQuery { filter, since })
}

/// A sequence number (`since`, `Last-Event-ID`).
pub(super) fn parse_seq(name: &str, value: &str) -> Result<u64, AlertError> {
    let digits =
        !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
    (digits.then(|| value.parse::<u64>().ok()).flatten()).ok_or_else(|| {
        let shown: String = value.chars().take(24).collect();
        AlertError::bad_parameter(name, format!("{shown:?} is not a sequence number"))
    })
}

/// Admits one more long-lived connection from client `ip` (`rate_limit`; behind a trusted
/// proxy, the client it names: `AppState::client_ip`): 429 `rate_limited` naming the wait, or
/// 429 `too_many_connections` when it holds its limit open already.
pub(super) fn admit(
    limiter: &std::sync::Arc<crate::rate_limit::ConnectLimiter>,
    ip: std::net::IpAddr,
) -> Result<crate::rate_limit::Admitted, ApiError> {
    use crate::rate_limit::Refused;
    limiter
        .admit(ip, std::time::Instant::now())
        .map_err(|refused| match refused {
            Refused::Rate(retry) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many new connections from {ip}; retry in {retry} s (alerts.connect_rate_per_ip)"
                ),
            ),
            Refused::Open(max) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                format!(
                    "{ip} holds {max} live connections open already; close one first (alerts.max_connections_per_ip)"
                ),
            ),
        })
}

/// Reserves a slot and registers the subscriber, or 429 (per-IP rate or open connections) /
/// 503 / 400.
pub(super) async fn subscribe(
    state: &AppState,
    client: std::net::IpAddr,
    query: LiveQuery,
    transport: &'static str,
) -> Result<Subscription, AlertError> {
    let alerts = alerts_state(state)?;
    let admitted = admit(&alerts.connect_limiter, client)?;
    let live = &alerts.live;
    let busy = |why: &str| -> AlertError { ApiError::busy(why).into() };
    let permit = live
        .reserve()
        .map_err(|_| busy("too many live subscribers (alerts.max_subscribers); retry later"))?;
    match live
        .subscribe(query.filter, query.since, (permit, admitted), transport)
        .await
    {
        Ok(sub) => Ok(sub),
        Err(SubscribeError::Hub(err)) => Err(AlertError::bad_parameter("region", err)),
        Err(err) => Err(busy(&err.to_string())),
    }
}

/// The reset message for `oldest_available`, sent to a subscriber that asked for `filter`
/// after `since`. `archive` is the archive query for what it cannot be replayed: its filter,
/// numbered below `oldest_available` and, when `since` is below that, above `since` (then
/// `missed_after` says so; a `since` ahead of the log bounds nothing). Paging on with each
/// answer's `next_cursor` (and the other parameters kept) reads the gap to its end.
pub(super) fn reset_text(oldest_available: u64, filter: &Filter, since: Option<u64>) -> String {
    use std::fmt::Write as _;
    let missed_after = since.filter(|&s| s < oldest_available);
    // Region codes, kind and severity names, digits and a base64url cursor: nothing to escape.
    let mut text = format!(r#"{{"type":"reset","oldest_available":{oldest_available}"#);
    if let Some(after) = missed_after {
        let _ = write!(text, r#","missed_after":{after}"#);
    }
    let _ = write!(
        text,
        r#","archive":"/api/v1/alerts?region={}"#,
        filter.region
    );
    if filter.kinds != KindSet::ALL {
        let kinds: Vec<&str> = filter.kinds.iter().map(|k| k.as_str()).collect();
        let _ = write!(text, "&kind={}", kinds.join(","));
    }
    if filter.min_severity > Severity::Unknown {
        let _ = write!(text, "&min_severity={}", filter.min_severity.as_str());
    }
    if let Some(after) = missed_after {
        let _ = write!(text, "&after={after}");
    }
    let cursor = alerts::store::Cursor::below(oldest_available);
    let _ = write!(text, r#"&cursor={cursor}"}}"#);
    text
}

/// `GET /ws/alerts`: the handshake is checked first, then the query; the subscription is
/// registered before the 101 answer, and the session runs on the upgraded connection
/// ([`crate::wslite`]).
pub async fn ws_alerts(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut request: Request,
) -> Result<Response, AlertError> {
    let accepted = match handshake::check(request.method(), request.version(), request.headers()) {
        Ok(accepted) => accepted,
        Err(refused) => return Ok(refused.into_response()),
    };
    let query = parse_live(query, &state)?;
    let client = state.client_ip(peer, request.headers());
    let sub = subscribe(&state, client, query, "websocket").await?;
    let on_upgrade = hyper::upgrade::on(&mut request);
    let shutdown = state.shutdown().clone();
    tokio::spawn(shutdown.track(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(state, Conn::new(upgraded, MAX_CLIENT_MESSAGE), sub).await,
            Err(err) => tracing::debug!(%err, "alert WebSocket upgrade failed"),
        }
    }));
    Ok(accepted.response())
}

/// Largest message a subscriber may send (it has nothing to say but pings and close).
pub(super) const MAX_CLIENT_MESSAGE: u64 = 4096;

/// Runs one subscriber's WebSocket session until it ends (both paths: hyper's upgrade and
/// `alerts_ws_raw`).
pub(super) async fn session(state: AppState, mut conn: Conn, mut sub: Subscription) {
    let Ok(alerts) = alerts_state(&state) else {
        return;
    };
    let config = &alerts.config;
    let write_timeout = Duration::from_secs(config.write_timeout_secs);
    let idle = Duration::from_secs(config.idle_timeout_secs);
    let every = Duration::from_secs(config.ping_secs);
    let ping = tokio::time::sleep(every);
    tokio::pin!(ping);
    let cancelled = state.shutdown().token().clone().cancelled_owned();
    tokio::pin!(cancelled);
    let mut heard = Instant::now();
    let mut input = [0u8; 256];
    let _counted =
        crate::held::Counted::new(state.metrics().websockets.with_label_values(&["alerts"]));
    // Plain TCP: the hub task may write deliveries itself while this task is idle, and when
    // woken this task first writes without waiting (`Subscription::write_out`). The awaiting
    // steps below are boxed: their futures (slice tables, timers) exist only while they run,
    // not in every idle subscriber's task.
    let socket = conn.socket().map(|tcp| Direct::new(tcp, Wire::WebSocket));
    if let Some(socket) = &socket {
        sub.attach(socket.clone());
    }
    loop {
        tokio::select! {
            () = &mut cancelled => {
                Box::pin(close(&mut conn, &mut sub, close_code::AWAY, "server shutting down", write_timeout)).await;
                break;
            }
            () = sub.ready() => {
                if let Some(socket) = &socket {
                    match sub.write_out(socket).await {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(()) => {
                            Box::pin(close(&mut conn, &mut sub, close_code::AWAY, "server shutting down", write_timeout)).await;
                            break;
                        }
                    }
                }
                if !Box::pin(drain(&mut conn, &mut sub, &[], write_timeout)).await {
                    break;
                }
            }
            () = &mut ping => {
                if heard.elapsed() > idle {
                    Box::pin(close(&mut conn, &mut sub, close_code::AWAY, "idle timeout", write_timeout)).await;
                    break;
                }
                if !Box::pin(drain(&mut conn, &mut sub, &frame::EMPTY_PING, write_timeout)).await {
                    break;
                }
                ping.as_mut().reset(Instant::now() + every);
            }
            read = conn.read(&mut input) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                heard = Instant::now();
                if !Box::pin(answer(&mut conn, &mut sub, &input[..n], write_timeout)).await {
                    break;
                }
            }
        }
    }
}

/// Handles what the client sent: pings answered, a close echoed; false when the connection
/// must end (a close, or a protocol error, closed with its code).
async fn answer(
    conn: &mut Conn,
    sub: &mut Subscription,
    input: &[u8],
    write_timeout: Duration,
) -> bool {
    let (mut pongs, mut closing) = (Vec::new(), None);
    if let Err(err) = conn.decode(input, |event| match event {
        ClientEvent::Ping(payload) => pongs.extend(frame::control(frame::PONG, &payload)),
        ClientEvent::Close(code) => closing = Some(code),
        ClientEvent::Pong | ClientEvent::Data => {}
    }) {
        close(conn, sub, err.close_code(), "protocol error", write_timeout).await;
        return false;
    }
    if !pongs.is_empty() && !drain(conn, sub, &pongs, write_timeout).await {
        return false;
    }
    if let Some(code) = closing {
        // Echo the client's code (RFC 6455 § 5.5.1) when it may be sent; see `echo_code`.
        close(conn, sub, frame::echo_code(code), "", write_timeout).await;
        return false;
    }
    true
}

/// The JSON of an alert delivery, borrowed from the shared SSE-encoded frame (the same bytes
/// the hub task's direct writes send: `frame::ws_body`); a fn, not a closure, so the session
/// future is `Send` for every lifetime.
fn ws_payload(item: &Delivery) -> Option<&[u8]> {
    match item {
        Delivery::Alert { seq, frame } => Some(crate::alerts_live::frame::ws_body(frame, *seq)),
        Delivery::Reset { .. } => None,
    }
}

/// Takes what the inbox holds and writes it, then `extra` (an encoded control frame, or
/// nothing); false when the connection must end. Every write of this connection goes through
/// here or [`close`]: between the take and the release the hub task does not write.
async fn drain(
    conn: &mut Conn,
    sub: &mut Subscription,
    extra: &[u8],
    write_timeout: Duration,
) -> bool {
    let batch = sub.pop().await;
    let closing = match (batch.closed, batch.gone) {
        (Some(reason), _) => Some((reason.close_code(), reason.as_str())),
        (None, true) => Some((close_code::AWAY, "server shutting down")),
        (None, false) => None,
    };
    if let Some((code, reason)) = closing {
        finish(conn, batch, code, reason, write_timeout).await;
        return false;
    }
    let mut items = batch.items;
    let mut written = true;
    // A reset comes first and alone (a replay's start; never written by the hub task); alerts
    // go out in chunks, the first without what the hub task already wrote of it.
    if let Some(Delivery::Reset { oldest_available }) = items.first() {
        let (filter, since) = sub.asked();
        let text = reset_text(*oldest_available, &filter, since);
        written = conn.send_text(&text, write_timeout).await.is_ok();
    }
    if written {
        let frames = items.iter().filter_map(ws_payload);
        written = conn
            .send_texts(frames, batch.written, write_timeout)
            .await
            .is_ok();
    }
    if written && !extra.is_empty() {
        written = conn.send_raw(extra, write_timeout).await.is_ok();
    }
    items.clear();
    sub.recycle(items);
    // After a failed write the connection ends, its socket maybe mid-frame: the hub task
    // must not write the next delivery after that half frame, so it stays shut out.
    if written {
        sub.release();
    }
    written
}

/// Closes with `code`: takes the inbox first (so the hub task stops writing) and completes a
/// frame the hub task left half written, so the close frame starts on a frame boundary.
async fn close(
    conn: &mut Conn,
    sub: &mut Subscription,
    code: u16,
    reason: &str,
    write_timeout: Duration,
) {
    let batch = sub.pop().await;
    finish(conn, batch, code, reason, write_timeout).await;
}

/// Closes with `code` after the rest of a frame the hub task started (if any); drops the
/// other deliveries (a closing subscriber recovers them with `since`).
async fn finish(
    conn: &mut Conn,
    batch: crate::alerts_live::Batch,
    code: u16,
    reason: &str,
    write_timeout: Duration,
) {
    let first = batch.items.first().and_then(ws_payload);
    close_on_boundary(conn, first, batch.written, code, reason, write_timeout).await;
}

/// Writes the rest of a frame of which `written` bytes (header included) went out, then
/// the close frame. If that rest cannot be written in time (the client is not reading), no
/// close frame follows: written later, as soon as the client read again, it would land
/// inside the unfinished frame and corrupt that alert. The connection just ends then; the
/// client sees an abnormal closure and resumes with `since` from its last whole alert.
pub(super) async fn close_on_boundary(
    conn: &mut Conn,
    first: Option<&[u8]>,
    written: usize,
    code: u16,
    reason: &str,
    write_timeout: Duration,
) {
    if written > 0 {
        let limit = write_timeout.min(Duration::from_secs(1));
        if conn.send_texts(first, written, limit).await.is_err() {
            return;
        }
    }
    conn.close(code, reason).await;
}

#[cfg(test)]
#[path = "alerts_live_tests.rs"]
mod tests;
