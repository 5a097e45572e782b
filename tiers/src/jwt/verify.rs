//! [`TokenVerifier`]: turns a bearer token into a checked [`Principal`], or says why not.
//!
//! Order of checks, each failing fast:
//! 1. size (≤ [`MAX_TOKEN_BYTES`]), three segments, header base64url JSON → `Malformed`;
//! 2. header `alg`: `none` or anything but the configured algorithm → `UnsupportedAlgorithm`,
//!    before any key is used (no algorithm confusion); a `crit` header → `Malformed`;
//! 3. payload and signature base64url → `Malformed`; signature → `BadSignature`;
//! 4. payload JSON object → `Malformed`; the claims hubcast reads, each of its type →
//!    `InvalidClaims` (other claims are ignored, as RFC 7519 § 4 asks, so tokens of an
//!    identity provider that adds `jti`, `typ`, `azp`… are accepted);
//! 5. `iss` and `aud` against the configured issuer and audience (RFC 7519 § 4.1.1/4.1.3: a
//!    token naming an audience must name ours) → `InvalidClaims`;
//! 6. times against the caller's `now_unix` with leeway: `exp` → `Expired`, `nbf` and `iat`
//!    → `NotYetValid` (jsonwebtoken's own clock-reading validation is not used at all);
//! 7. the principal rebuilt against the tree → `InvalidClaims`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;

use super::key::{SigningKey, check_hs256, ed25519_public};
use super::{Algorithm, TokenError};
use crate::principal::Principal;
use crate::region::RegionCode;
use crate::region::{RegionTree, clip};
use crate::role::Role;

/// Largest token accepted, in bytes. Ours are ~250 bytes; 8 KiB bounds the work an
/// unauthenticated caller can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verifies tokens of one algorithm and key, against one region tree.
#[derive(Clone)]
pub struct TokenVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
    leeway_secs: u64,
    tree: RegionTree,
    /// The `iss` a token must carry, when set.
    issuer: Option<String>,
    /// The audience this hub is: a token with `aud` must name it; when set, `aud` is required.
    audience: Option<String>,
}

/// The claims a token is read for. Registered claims hubcast does not use (`jti`, …) and
/// private ones of other systems are ignored (RFC 7519 § 4); a repeated claim is an error.
#[derive(serde::Deserialize)]
struct Payload {
    sub: String,
    role: Role,
    region: RegionCode,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    meeting: Option<String>,
}

/// `aud`: one string or an array of them (RFC 7519 § 4.1.3).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

impl TokenVerifier {
    /// Prepares a verifier. `leeway_secs` is the clock skew tolerated on `exp` and `iat`.
    /// Only the public half of an EdDSA key is used (the private PEM may be empty).
    pub fn new(key: &SigningKey, leeway_secs: u64, tree: RegionTree) -> Result<Self, TokenError> {
        let decoding = match key {
            SigningKey::Hs256 { secret } => {
                check_hs256(secret)?;
                DecodingKey::from_secret(secret)
            }
            SigningKey::EdDsa { public_pem, .. } => {
                DecodingKey::from_ed_der(&ed25519_public(public_pem)?)
            }
        };
        Ok(TokenVerifier {
            algorithm: key.algorithm(),
            key: decoding,
            leeway_secs,
            tree,
            issuer: None,
            audience: None,
        })
    }

    /// Requires `iss` to be `issuer` and `aud` to name `audience`, each when given (an
    /// identity provider's tokens: `auth.issuer`, `auth.audience`). Without an audience, a
    /// token that names one is refused: it was meant for another service.
    pub fn expecting(mut self, issuer: Option<String>, audience: Option<String>) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// The one algorithm accepted.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The tree principals are checked against.
    pub fn tree(&self) -> &RegionTree {
        &self.tree
    }

    /// Verifies `token` at time `now_unix` and returns the principal it carries.
    /// Never panics, whatever the input.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Principal, TokenError> {
        self.verify_until(token, now_unix)
            .map(|(principal, _)| principal)
    }

    /// Like [`TokenVerifier::verify`], and also the unix second from which the token is no
    /// longer accepted (`exp` plus the leeway): what a long-lived stream opened with it must
    /// not outlive.
    pub fn verify_until(&self, token: &str, now_unix: u64) -> Result<(Principal, u64), TokenError> {
        let malformed = |why: &str| TokenError::Malformed(why.to_owned());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "token is {} bytes; the limit is {MAX_TOKEN_BYTES}",
                token.len()
            )));
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(malformed("expected three dot-separated segments"));
        };

        let header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .filter(|bytes| is_json_object(bytes))
            .and_then(|bytes| serde_json::from_slice::<JoseHeader>(&bytes).ok())
            .ok_or_else(|| {
                malformed("header is not a base64url JSON object with one \"alg\" string")
            })?;
        if header.alg != self.algorithm.as_str() {
            return Err(TokenError::UnsupportedAlgorithm(clip(&header.alg)));
        }
        if header.crit.is_some() {
            return Err(malformed("critical header extensions are not supported"));
        }

        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| malformed("payload is not base64url"))?;
        if URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
            return Err(malformed("signature is not base64url"));
        }
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(
            signature_b64,
            signed.as_bytes(),
            &self.key,
            self.algorithm.to_jwt(),
        ) {
            Ok(true) => {}
            Ok(false) => return Err(TokenError::BadSignature),
            Err(e) => return Err(TokenError::Key(format!("cannot verify: {e}"))),
        }

        if !is_json_object(&payload_bytes) {
            return Err(malformed("payload is not a JSON object"));
        }
        let claims: Payload = serde_json::from_slice(&payload_bytes).map_err(|e| {
            if e.is_data() {
                TokenError::InvalidClaims(e.to_string())
            } else {
                malformed("payload is not valid JSON")
            }
        })?;
        self.check_issuer_and_audience(&claims)?;

        if now_unix >= claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let from = claims.iat.into_iter().chain(claims.nbf).max();
        if from.is_some_and(|from| from > now_unix.saturating_add(self.leeway_secs)) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iat.is_some_and(|iat| claims.exp <= iat) {
            return Err(TokenError::InvalidClaims(
                "exp must be later than iat".into(),
            ));
        }
        let until = claims.exp.saturating_add(self.leeway_secs);
        Principal::new(
            &self.tree,
            claims.sub,
            claims.role,
            claims.region,
            claims.meeting,
        )
        .map(|principal| (principal, until))
        .map_err(|e| TokenError::InvalidClaims(e.to_string()))
    }
}

impl TokenVerifier {
    fn check_issuer_and_audience(&self, claims: &Payload) -> Result<(), TokenError> {
        let invalid = |why: String| Err(TokenError::InvalidClaims(why));
        if let Some(issuer) = &self.issuer
            && claims.iss.as_deref() != Some(issuer)
        {
            let got = claims
                .iss
                .as_deref()
                .map_or("none".to_owned(), |i| format!("{:?}", clip(i)));
            return invalid(format!("iss is {got}; this hub accepts {issuer:?}"));
        }
        match (&claims.aud, &self.audience) {
            (None, None) => Ok(()),
            (Some(aud), Some(ours)) if aud.names(ours) => Ok(()),
            (None, Some(ours)) => invalid(format!("aud is missing; this hub is {ours:?}")),
            (Some(_), Some(ours)) => invalid(format!("aud does not name this hub ({ours:?})")),
            (Some(_), None) => invalid(
                "aud names another service (set auth.audience to accept tokens for this hub)"
                    .into(),
            ),
        }
    }
}

/// The JOSE header fields we look at. Other fields (`typ`, `kid`, …) are ignored, but a
/// repeated `alg` is an error rather than "last one wins".
#[derive(serde::Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// True if `bytes` starts (after whitespace) with `{`: derived `Deserialize` would otherwise
/// also accept a JSON array for a struct.
fn is_json_object(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"{")
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.algorithm)
            .field("leeway_secs", &self.leeway_secs)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("root", &self.tree.root())
            .finish_non_exhaustive()
    }
}
