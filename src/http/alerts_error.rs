//! The error type of the alerts endpoints and the plumbing they share.
//!
//! [`AlertError`] is an [`ApiError`] (the one error shape, `{"error","message"}`) that may carry
//! one more body field: `problems: [{"path","kind","message"}]` for CAP documents (`path` the
//! element path such as `alert/info[0]/severity`, or `null` for syntax errors that name a
//! position in `message`; `kind` the stable [`CapError::kind`]), or `parameter` for archive
//! queries. Reader errors split by level: syntax (not well-formed, DTD, undeclared entity,
//! not CAP) is 400 `bad_cap`; schema and rule problems are 422 `invalid_cap`. [`store_error`]
//! maps every [`StoreError`]; [`blocking`] runs a store call off the async workers.

use alerts::cap::CapError;
use alerts::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiers::Denied;

use super::alerts::AlertsState;
use super::{ApiError, AppState};

/// Most problems listed in one 422 body.
const MAX_PROBLEMS: usize = 100;

/// A failure of an alerts endpoint: an [`ApiError`], optionally with one more body field.
#[derive(Debug)]
pub struct AlertError {
    api: ApiError,
    extra: Option<(&'static str, Value)>,
}

impl From<ApiError> for AlertError {
    fn from(api: ApiError) -> Self {
        AlertError { api, extra: None }
    }
}

impl From<Denied> for AlertError {
    fn from(denied: Denied) -> Self {
        ApiError::from(denied).into()
    }
}

impl IntoResponse for AlertError {
    fn into_response(self) -> Response {
        let Some((key, value)) = self.extra else {
            return self.api.into_response();
        };
        let mut body = json!({ "error": self.api.code, "message": self.api.message });
        body[key] = value;
        (self.api.status, Json(body)).into_response()
    }
}

impl AlertError {
    /// A reader error: syntax-level (400 `bad_cap`) or schema-level (422 `invalid_cap`).
    pub(super) fn cap(err: &CapError) -> Self {
        let syntax = matches!(
            err,
            CapError::TooLarge { .. }
                | CapError::DtdForbidden { .. }
                | CapError::UndeclaredEntity { .. }
                | CapError::Malformed { .. }
                | CapError::NotCap { .. }
        );
        if !syntax {
            return Self::invalid(std::slice::from_ref(err));
        }
        let message = format!("not a readable CAP 1.2 document: {err}");
        AlertError {
            api: ApiError::bad_request("bad_cap", message),
            extra: Some(("problems", json!([problem(err)]))),
        }
    }

    /// 422 `invalid_cap` listing `errors`.
    pub(super) fn invalid(errors: &[CapError]) -> Self {
        let shown: Vec<String> = errors.iter().take(10).map(ToString::to_string).collect();
        let more = match errors.len() {
            n if n > 10 => format!("; and {} more", n - 10),
            _ => String::new(),
        };
        let message = format!("invalid CAP alert: {}{more}", shown.join("; "));
        let problems: Vec<Value> = errors.iter().take(MAX_PROBLEMS).map(problem).collect();
        AlertError {
            api: ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cap", message),
            extra: Some(("problems", Value::Array(problems))),
        }
    }

    /// 400 `bad_parameter` naming the query parameter `name`.
    pub(super) fn bad_parameter(name: &str, why: impl std::fmt::Display) -> Self {
        let name: String = name.chars().take(40).collect();
        AlertError {
            api: ApiError::bad_request("bad_parameter", format!("`{name}`: {why}")),
            extra: Some(("parameter", Value::String(name))),
        }
    }
}

impl AlertError {
    /// The parameter a `bad_parameter` error names.
    #[cfg(test)]
    pub(super) fn parameter(&self) -> Option<&str> {
        match &self.extra {
            Some(("parameter", Value::String(name))) => Some(name),
            _ => None,
        }
    }
}

fn problem(err: &CapError) -> Value {
    json!({ "path": err.path(), "kind": err.kind(), "message": err.to_string() })
}

/// The HTTP answer to a store failure.
pub(super) fn store_error(err: &StoreError) -> AlertError {
    let status = |status, code| ApiError::new(status, code, err.to_string()).into();
    match err {
        StoreError::Conflict { .. } => status(StatusCode::CONFLICT, "conflict"),
        StoreError::UnknownReference { .. } => {
            status(StatusCode::UNPROCESSABLE_ENTITY, "unknown_reference")
        }
        StoreError::Invalid(cap) => AlertError::invalid(std::slice::from_ref(cap)),
        StoreError::NotPublic(_) => not_public(err.to_string()),
        StoreError::TooLarge { .. } => status(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        StoreError::BadLimit { .. } => AlertError::bad_parameter("limit", err),
        StoreError::BadCursor => AlertError::bad_parameter("cursor", err),
        StoreError::BadQuery(_) => AlertError::bad_parameter("q", err),
        StoreError::UnknownRegion(_) => AlertError::bad_parameter("region", err),
        _ if err.is_transient() => {
            // Nothing was acknowledged; the publisher retries (idempotent on its identity).
            tracing::warn!(error = %err, "alert store unavailable");
            let message = format!("the alert store is unavailable, retry shortly: {err}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            )
            .into()
        }
        _ => ApiError::internal(err).into(),
    }
}

pub(super) fn not_public(reason: String) -> AlertError {
    let path = "alert/msgType".to_owned();
    AlertError::invalid(&[CapError::Invalid { path, reason }])
}

/// The alerts subsystem, or 503 when this hub runs without it.
pub(super) fn alerts_state(state: &AppState) -> Result<&AlertsState, AlertError> {
    state.alerts().ok_or_else(|| {
        let message = "the alert store is not running on this hub";
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "alerts_disabled", message).into()
    })
}

/// Runs a store call on a blocking thread (SQLite commits fsync).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AlertError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| store_error(&e)),
        Err(join) => Err(ApiError::internal(&join).into()),
    }
}
