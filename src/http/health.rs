//! Liveness (`/healthz`), readiness (`/readyz`), the `/ws/health` status push for wall
//! displays, and the opt-in `/debug/delay` route used to probe graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::extract::ApiQuery;
use super::{ApiError, AppState};
use crate::metrics::{GIT_COMMIT, VERSION};

/// Longest delay `/debug/delay` accepts.
const MAX_DEBUG_DELAY_MS: u64 = 120_000;

/// A snapshot of the hub's health, as `/readyz` and `/ws/health` report it.
#[derive(Debug, Serialize)]
pub struct HealthSnapshot {
    /// `ready`, `starting` or `draining`.
    pub status: &'static str,
    /// Binary version.
    pub version: &'static str,
    /// Git commit.
    pub commit: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
}

fn snapshot(state: &AppState) -> HealthSnapshot {
    let status = if state.shutdown().is_triggered() {
        "draining"
    } else if state.is_ready() {
        "ready"
    } else {
        "starting"
    };
    HealthSnapshot {
        status,
        version: VERSION,
        commit: GIT_COMMIT,
        uptime_secs: state.uptime_secs(),
    }
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once every subsystem started, 503 while starting or draining.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let snap = snapshot(&state);
    let status = if snap.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(snap)).into_response()
}

/// `GET /ws/health`: a WebSocket that pushes a [`HealthSnapshot`] on connect and every
/// `http.health_push_secs`; closed with 1001 (going away) when the hub shuts down. Public,
/// so held to the live endpoints' per-IP limits (`alerts.connect_rate_per_ip`,
/// `alerts.max_connections_per_ip`: 429) besides `http.max_connections`.
pub async fn ws_health(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return ApiError::from(rejection).into_response(),
    };
    let admitted = match state.alerts() {
        Some(alerts) => match super::alerts_live::admit(
            &alerts.connect_limiter,
            state.client_ip(peer, &headers),
        ) {
            Ok(admitted) => Some(admitted),
            Err(refused) => return refused.into_response(),
        },
        None => None,
    };
    let shutdown = state.shutdown().clone();
    upgrade
        .read_buffer_size(4096)
        .max_message_size(4096)
        .on_upgrade(move |socket| {
            shutdown.track(async move {
                let _admitted = admitted;
                health_session(state, socket).await;
            })
        })
}

async fn health_session(state: AppState, mut socket: WebSocket) {
    let _counted =
        crate::held::Counted::new(state.metrics().websockets.with_label_values(&["health"]));
    let mut tick = tokio::time::interval(Duration::from_secs(state.http().health_push_secs));
    let token = state.shutdown().token().clone();
    loop {
        tokio::select! {
            () = token.cancelled() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                let _ = socket.send(Message::Close(Some(frame))).await;
                break;
            }
            _ = tick.tick() => {
                let Ok(text) = serde_json::to_string(&snapshot(&state)) else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; text from the client is not part of
                // this protocol.
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    let frame = CloseFrame { code: close_code::POLICY, reason: "this endpoint only sends".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Query of `/debug/delay`.
#[derive(Debug, Deserialize)]
pub struct DelayQuery {
    /// How long to wait before answering.
    ms: u64,
}

/// `GET /debug/delay?ms=N` (only with `http.debug_routes`): answers after N ms, for probing
/// graceful shutdown with a request in flight.
pub async fn debug_delay(
    ApiQuery(query): ApiQuery<DelayQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if query.ms > MAX_DEBUG_DELAY_MS {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("ms must be at most {MAX_DEBUG_DELAY_MS}"),
        ));
    }
    tokio::time::sleep(Duration::from_millis(query.ms)).await;
    Ok(Json(serde_json::json!({ "delayed_ms": query.ms })))
}
