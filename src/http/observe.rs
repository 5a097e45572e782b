//! Request metrics middleware, `/metrics`, and the JSON 404/405 fallbacks.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::metrics::method_label;

/// Counts every request by matched route (bounded), method and status, and times it.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.metrics();
    metrics
        .http_duration
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), method, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`: Prometheus text format 0.0.4.
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The process collector lists `/proc/self/fd` (one entry per socket, ~20k under load):
    // blocking work, kept off the runtime threads.
    let metrics = state.metrics().clone();
    let encoded = match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(encoded) => encoded,
        Err(join) => return ApiError::internal(&join).into_response(),
    };
    match encoded {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => ApiError::internal(&err).into_response(),
    }
}

/// Unknown path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// Known path, wrong method.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here"),
    )
}
