//! Request metrics middleware, `/metrics`, `/openapi.json`, and the JSON 404/405 fallbacks.

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

/// `GET /metrics`: Prometheus text format 0.0.4; with `http.metrics_token` set, only for a
/// request bearing it (401 `unauthorized` otherwise).
pub async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = &state.http().metrics_token {
        let given = (headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::bearer);
        if !given.is_some_and(|given| same_secret(given.as_bytes(), expected.as_bytes())) {
            let message = "GET /metrics needs the bearer token set as http.metrics_token";
            return ApiError::unauthorized("unauthorized", message).into_response();
        }
    }
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

/// `GET /openapi.json`: the OpenAPI 3.1 description of this API (`openapi.json` beside this
/// file, checked against the router by `tests/serve_http.rs`).
pub async fn openapi() -> Response {
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/json"),
        (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
    ];
    (headers, include_str!("openapi.json")).into_response()
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

/// Whether `a` and `b` are equal, in time independent of where they differ (a secret compared
/// byte by byte would tell a prober how much of its guess is right).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"", b"x"));
    }
}
