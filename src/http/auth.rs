//! Bearer-token authentication: the [`Authenticated`] extractor verifies
//! `Authorization: Bearer <JWT>` with `tiers` and yields the principal, or answers 401;
//! [`AuthenticatedUntil`] also yields when the token stops being accepted, for streams.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use tiers::Principal;

use super::{ApiError, AppState};

/// The verified principal of a request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        verify(parts, state).map(|(principal, _)| Authenticated(principal))
    }
}

/// The verified principal of a request and the unix second from which its token is no longer
/// accepted: a stream opened with it ends then.
#[derive(Debug, Clone)]
pub struct AuthenticatedUntil(pub Principal, pub u64);

impl FromRequestParts<AppState> for AuthenticatedUntil {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        verify(parts, state).map(|(principal, until)| AuthenticatedUntil(principal, until))
    }
}

/// The request's bearer token, verified: its principal and when it stops being accepted.
fn verify(parts: &Parts, state: &AppState) -> Result<(Principal, u64), ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "send Authorization: Bearer <token>")
    })?;
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized("malformed_token", "Authorization header is not ASCII")
    })?;
    let token = bearer(value).ok_or_else(|| {
        ApiError::unauthorized("missing_token", "Authorization must use the Bearer scheme")
    })?;
    state
        .verifier()
        .verify_until(token, crate::clock::unix_now())
        .map_err(|err| ApiError::unauthorized(err.code(), err.to_string()))
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 7235 § 2.1).
pub(super) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
