//! Extractors whose rejections are [`ApiError`]s: a malformed path segment (say `%FF`, not
//! UTF-8) or query string gets the same JSON error body as every other bad request, not
//! axum's plain-text rejection.

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;

use super::ApiError;

/// [`axum::extract::Path`], rejecting with 400 `bad_path`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// [`axum::extract::Query`], rejecting with 400 `bad_parameter`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A client's mistake (axum's 4xx) is 400 `bad_path`; a route written wrong (axum's 500:
/// missing or miscounted parameters) is a 500.
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        if rejection.status().is_server_error() {
            return ApiError::internal(&rejection.body_text());
        }
        ApiError::bad_request("bad_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        if rejection.status().is_server_error() {
            return ApiError::internal(&rejection.body_text());
        }
        ApiError::bad_request("bad_parameter", rejection.body_text())
    }
}

/// A request to a WebSocket endpoint that is not a valid upgrade: axum's status (400, 405,
/// 426), `not_a_websocket` and what was wrong; a server-side failure (axum's 5xx) is a 500,
/// as for paths and queries.
impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: WebSocketUpgradeRejection) -> Self {
        if rejection.status().is_server_error() {
            return ApiError::internal(&rejection.body_text());
        }
        ApiError::new(rejection.status(), "not_a_websocket", rejection.body_text())
    }
}
