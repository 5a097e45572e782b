//! The error type of the alerts endpoints and the plumbing they share.
//!
//! [`AlertError`] is an [`ApiError`] (the one error shape, `{"error","message"}`) that may carry
//! one more body field: `problems: [{"path","kind","message"}]` for CAP documents (`path` the
//! element path such as `alert/info[0]/severity`, or `null` for syntax errors that name a
//! position in `message`; `kind` the stable [`CapError::kind`]), or `parameter` for archive
//! queries. Reader errors split by level: syntax (not well-formed, DTD, undeclared entity,
//! not CAP) is 400 `bad_cap`; schema and rule problems are 422 `invalid_cap`. [`store_error`]
//! maps every [`StoreError`]; [`public_work`] and [`read_store`] run public reads off the
//! async workers, at most `alerts.max_concurrent_reads` at once.

use std::sync::Arc;

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
    /// The HTTP status this error answers with.
    pub(super) fn status(&self) -> StatusCode {
        self.api.status
    }

    /// The JSON body this error answers with.
    pub(super) fn body(&self) -> Value {
        let mut body = json!({ "error": self.api.code, "message": self.api.message });
        if let Some((key, value)) = &self.extra {
            body[*key] = value.clone();
        }
        body
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
        StoreError::SenderTaken { .. } => status(StatusCode::FORBIDDEN, "sender_not_yours"),
        StoreError::ReferenceOutOfReach { .. } => status(StatusCode::FORBIDDEN, "forbidden"),
        StoreError::NotTheIssuer { .. } => status(StatusCode::FORBIDDEN, "not_the_issuer"),
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
        StoreError::QueryTimeout(_) => status(StatusCode::SERVICE_UNAVAILABLE, "query_timeout"),
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
    not_public_at("alert/msgType", reason)
}

/// 422 `invalid_cap`: the field at `path` makes the message one this public hub does not
/// disseminate.
pub(super) fn not_public_at(path: &str, reason: String) -> AlertError {
    let path = path.to_owned();
    AlertError::invalid(&[CapError::Invalid { path, reason }])
}

/// The alerts subsystem, or 503 when this hub runs without it.
pub(super) fn alerts_state(state: &AppState) -> Result<&AlertsState, AlertError> {
    state.alerts().ok_or_else(|| {
        let message = "the alert store is not running on this hub";
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "alerts_disabled", message).into()
    })
}

/// Public work off the runtime threads: a store read (archive page, one stored alert) or
/// rendering the Atom feed, on a blocking thread, if one of `alerts.max_concurrent_reads`
/// places is free: otherwise 503 `busy` (with `Retry-After: 1`) at once, instead of queueing
/// blocking threads without bound. The place moves into the blocking task, so a client that
/// hangs up does not free it early.
pub(super) async fn public_work<T: Send + 'static>(
    alerts: &AlertsState,
    f: impl FnOnce() -> Result<T, AlertError> + Send + 'static,
) -> Result<T, AlertError> {
    public_work_in(public_place(alerts)?, f).await
}

/// One of the `alerts.max_concurrent_reads` places, or 503 `busy`: for a request that must
/// hold its place before work of its own (the Atom feed asks the hub task for the live set).
pub(super) fn public_place(
    alerts: &AlertsState,
) -> Result<tokio::sync::OwnedSemaphorePermit, AlertError> {
    read_place(&alerts.public_reads)
}

/// [`public_work`] in a place already taken.
pub(super) async fn public_work_in<T: Send + 'static>(
    place: tokio::sync::OwnedSemaphorePermit,
    f: impl FnOnce() -> Result<T, AlertError> + Send + 'static,
) -> Result<T, AlertError> {
    let work = tokio::task::spawn_blocking(move || {
        let _place = place;
        f()
    });
    match work.await {
        Ok(result) => result,
        Err(join) => Err(ApiError::internal(&join).into()),
    }
}

/// [`public_work`] reading the store.
pub(super) async fn read_store<T: Send + 'static>(
    alerts: &AlertsState,
    f: impl FnOnce(&dyn alerts::store::Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AlertError> {
    let store = alerts.store.clone();
    public_work(alerts, move || {
        f(store.as_ref()).map_err(|e| store_error(&e))
    })
    .await
}

/// One of the public-read places, or 503 `busy`.
fn read_place(
    places: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, AlertError> {
    places.clone().try_acquire_owned().map_err(|_| {
        let message = "too many archive and alert reads at once; retry in a second";
        ApiError::busy(message).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_reads_beyond_the_limit_are_busy_until_a_place_frees() {
        let places = Arc::new(tokio::sync::Semaphore::new(1));
        let first = read_place(&places).expect("a free place");
        let refused = read_place(&places).expect_err("full");
        assert_eq!(refused.api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.api.code, "busy");
        drop(first);
        assert!(read_place(&places).is_ok(), "the place came back");
    }

    #[test]
    fn a_stopped_query_is_a_503_naming_the_timeout() {
        let err = store_error(&StoreError::QueryTimeout(std::time::Duration::from_secs(5)));
        assert_eq!(err.api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.api.code, "query_timeout");
        assert!(err.api.message.contains("narrow it"), "{}", err.api.message);
    }
}
