//! The HTTP surface: one axum router for every page, API and WebSocket.
//!
//! Layout: `error` (the one `IntoResponse` error type), `auth` (bearer-token extractor),
//! `health` (liveness, readiness, `/ws/health`, debug routes), `observe` (metrics middleware and
//! `/metrics`), `api` (`/api/v1/…`), `media` (WHIP/WHEP), `alerts` (publish,
//! `/alerts/{id}.xml`), `alerts_archive` (the archive query), `alerts_error` (their error
//! type), `alerts_live` (`/ws/alerts`), `alerts_sse` (`/sse/alerts`; `alerts_sse_raw` serves
//! it beside hyper when it is a plain connection's first request) and `alerts_feed`
//! (`/feeds/alerts.atom`); `cors` lets other origins read the public alert endpoints.
//! Subsystems add their routes here as they land.

mod alerts;
mod alerts_archive;
mod alerts_error;
mod alerts_feed;
mod alerts_live;
mod alerts_sse;
pub mod alerts_sse_raw;
pub mod alerts_ws_raw;
mod api;
mod auth;
pub mod cors;
mod error;
mod extract;
mod health;
mod media;
mod media_events;
mod media_rooms;
mod observe;
mod raw;

pub use alerts::AlertsState;
pub use auth::{Authenticated, AuthenticatedUntil};
pub use error::ApiError;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use tiers::{RegionTree, TokenVerifier};

use crate::config::HttpConfig;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
pub use media_rooms::RoomRegistry;

/// State shared by every handler (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    metrics: Metrics,
    scrape: observe::Scrape,
    verifier: TokenVerifier,
    regions: RegionTree,
    http: HttpConfig,
    /// Who the client is behind `http.trusted_proxies`.
    client_ip: crate::client_ip::ClientIp,
    shutdown: Shutdown,
    ready: AtomicBool,
    started: Instant,
    sfu: Option<sfu::driver::Sfu>,
    media_rooms: media_rooms::RoomRegistry,
    alerts: Option<AlertsState>,
}

impl AppState {
    /// Builds the state; not ready until [`AppState::set_ready`].
    pub fn new(
        metrics: Metrics,
        verifier: TokenVerifier,
        regions: RegionTree,
        http: HttpConfig,
        shutdown: Shutdown,
        sfu: Option<sfu::driver::Sfu>,
        alerts: Option<AlertsState>,
    ) -> Self {
        AppState(Arc::new(Inner {
            metrics,
            scrape: observe::Scrape::default(),
            verifier,
            regions,
            client_ip: crate::client_ip::ClientIp::new(
                http.trusted_proxies.clone(),
                http.client_ip_header,
            ),
            http,
            shutdown,
            ready: AtomicBool::new(false),
            started: Instant::now(),
            sfu,
            media_rooms: media_rooms::RoomRegistry::default(),
            alerts,
        }))
    }

    /// The media plane, when running.
    pub fn sfu(&self) -> Option<&sfu::driver::Sfu> {
        self.0.sfu.as_ref()
    }

    /// The alert store, when running.
    pub fn alerts(&self) -> Option<&AlertsState> {
        self.0.alerts.as_ref()
    }

    /// Room → convening region.
    pub fn media_rooms(&self) -> &media_rooms::RoomRegistry {
        &self.0.media_rooms
    }

    /// Marks the hub ready (or not: while draining).
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::SeqCst);
        self.0.metrics.ready.set(i64::from(ready));
    }

    /// Whether every subsystem started and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst) && !self.0.shutdown.is_triggered()
    }

    /// Process metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The last `/metrics` text, shared by concurrent scrapes.
    pub fn scrape(&self) -> &observe::Scrape {
        &self.0.scrape
    }

    /// Token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.0.verifier
    }

    /// The region tree.
    pub fn regions(&self) -> &RegionTree {
        &self.0.regions
    }

    /// The shutdown handle.
    pub fn shutdown(&self) -> &Shutdown {
        &self.0.shutdown
    }

    /// HTTP settings.
    pub fn http(&self) -> &HttpConfig {
        &self.0.http
    }

    /// The client of a request from `peer` with `headers`: `peer`'s address, or the one its
    /// forwarding header names when `peer` is a trusted proxy (`crate::client_ip`).
    pub fn client_ip(
        &self,
        peer: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        self.0.client_ip.resolve(peer.ip(), headers)
    }

    /// Seconds since the state was built.
    pub fn uptime_secs(&self) -> u64 {
        self.0.started.elapsed().as_secs()
    }
}

/// WHIP/WHEP: bodies are SDP (or a small JSON), read whole within the header timeout and at
/// most `media::MAX_BODY_BYTES` before a handler runs.
fn media_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", post(media::whip))
        .route("/whip/{room}/sessions/{id}", session(media::Endpoint::Whip))
        .route("/whep/{room}", post(media::whep_floor))
        .route("/whep/{room}/{publisher}", post(media::whep_publisher))
        .route("/whep/{room}/sessions/{id}", session(media::Endpoint::Whep))
        .route(
            "/whep/{room}/sessions/{id}/layer",
            post(media::layer).layer(Extension(media::Endpoint::Whep)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            media::bounded_body,
        ))
}

/// `DELETE` and `PATCH` of a WHIP or WHEP session location, marked with its endpoint kind.
fn session(endpoint: media::Endpoint) -> axum::routing::MethodRouter<AppState> {
    delete(media::end)
        .patch(media::patch)
        .layer(Extension(endpoint))
}

/// The router for `state`.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/openapi.json", get(observe::openapi))
        .route("/ws/health", get(health::ws_health))
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/regions", get(api::regions))
        .route("/api/v1/regions/{code}", get(api::region))
        .route("/api/v1/rooms/{room}", get(media::room_info))
        .route("/sse/rooms/{room}", get(media_events::room_events))
        .merge(media_routes(&state))
        .route(
            "/api/v1/alerts",
            post(alerts::publish).get(alerts_archive::archive),
        )
        .route("/alerts/{file}", get(alerts::get_alert))
        .route("/ws/alerts", get(alerts_live::ws_alerts))
        .route("/sse/alerts", get(alerts_sse::sse_alerts))
        .route("/feeds/alerts.atom", get(alerts_feed::atom))
        .route("/assets/{*path}", get(api::asset));
    if state.http().debug_routes {
        router = router.route("/debug/delay", get(health::debug_delay));
    }
    router
        .fallback(observe::not_found)
        .method_not_allowed_fallback(observe::method_not_allowed)
        .layer(axum::middleware::from_fn(cors::public_reads))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::media_origins,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::track,
        ))
        .with_state(state)
}
