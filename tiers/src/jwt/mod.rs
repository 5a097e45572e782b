//! JSON Web Tokens carrying a [`Principal`](crate::Principal): mint and verify.
//!
//! - `key.rs`: [`SigningKey`] (HS256 secret or EdDSA PEM pair) and its generation.
//! - `issue.rs`: [`Claims`], the token payload, and [`TokenIssuer`].
//! - `verify.rs`: [`TokenVerifier`], which checks `alg` before anything else, then the
//!   signature, then times against a caller-supplied clock, then the claims against the tree.
//!
//! Only the JWS compact form with exactly one configured algorithm is accepted; `none` and
//! every other algorithm are refused (no algorithm confusion). Times are unix seconds passed in
//! by the caller: this crate reads no clock.

mod issue;
mod key;
mod verify;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use issue::{Claims, TokenIssuer};
pub use key::{MIN_HS256_SECRET_BYTES, SigningKey};
pub use verify::{MAX_TOKEN_BYTES, TokenVerifier};

/// A supported JWS algorithm. HS256 is the default; EdDSA (Ed25519) lets verifiers hold only
/// a public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret of at least 32 bytes.
    #[serde(rename = "HS256")]
    Hs256,
    /// Ed25519 signatures (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl Algorithm {
    /// The JOSE name: `HS256` or `EdDSA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = TokenError;
    /// Exact JOSE names only (`HS256`, `EdDSA`); names are case-sensitive (RFC 7515 §4.1.1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HS256" => Ok(Algorithm::Hs256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(TokenError::UnsupportedAlgorithm(crate::region::clip(other))),
        }
    }
}

/// Why a key was refused or a token could not be minted or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS: too large, wrong number of segments, bad base64url, bad JSON.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names `none` or any algorithm other than the configured one.
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the header and payload under the configured key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("token not yet valid (nbf or iat in the future)")]
    NotYetValid,
    /// Signed correctly, but the claims are wrong: missing or mistyped fields, unknown role,
    /// unknown region, a role/region level mismatch, a bad ttl when minting.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// A key is unusable: bad PEM, mismatched pair, short HS256 secret.
    #[error("key error: {0}")]
    Key(String),
}

impl TokenError {
    /// A stable snake_case code for APIs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed_token",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            TokenError::BadSignature => "bad_signature",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::InvalidClaims(_) => "invalid_claims",
            TokenError::Key(_) => "key_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        for alg in [Algorithm::Hs256, Algorithm::EdDsa] {
            assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
            let json = serde_json::to_string(&alg).expect("serializes");
            assert_eq!(json, format!("\"{alg}\""));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).ok(), Some(alg));
        }
        for bad in ["none", "hs256", "HS384", "RS256", "eddsa", ""] {
            assert!(matches!(
                bad.parse::<Algorithm>(),
                Err(TokenError::UnsupportedAlgorithm(_))
            ));
        }
    }

    #[test]
    fn error_codes_are_stable() {
        let all = [
            (TokenError::Malformed(String::new()), "malformed_token"),
            (
                TokenError::UnsupportedAlgorithm(String::new()),
                "unsupported_algorithm",
            ),
            (TokenError::BadSignature, "bad_signature"),
            (TokenError::Expired, "token_expired"),
            (TokenError::NotYetValid, "token_not_yet_valid"),
            (TokenError::InvalidClaims(String::new()), "invalid_claims"),
            (TokenError::Key(String::new()), "key_error"),
        ];
        for (error, code) in all {
            assert_eq!(error.code(), code);
        }
    }
}
