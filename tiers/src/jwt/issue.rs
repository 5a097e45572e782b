//! [`Claims`], the token payload, and [`TokenIssuer`], which signs them.

use std::fmt;

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::key::{SigningKey, check_hs256, ed25519_private_der};
use super::{Algorithm, TokenError};
use crate::principal::Principal;
use crate::region::RegionCode;
use crate::role::Role;

/// The JWT payload `hubcast token` writes (a verifier reads tokens of other issuers too:
/// `verify.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal's subject.
    pub sub: String,
    /// The principal's role (`city-admin`).
    pub role: Role,
    /// The principal's region (`"330100"`).
    pub region: RegionCode,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issue time, unix seconds.
    pub iat: u64,
    /// The meeting the token is limited to, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meeting: Option<String>,
    /// The issuer (`auth.issuer`), when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iss: Option<String>,
    /// The audience (`auth.audience`), when configured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
}

/// Signs tokens for principals with one key.
pub struct TokenIssuer {
    algorithm: Algorithm,
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenIssuer {
    /// Prepares an issuer. Fails on an HS256 secret under 32 bytes, an unreadable PEM, or an
    /// EdDSA private key that does not match its public key.
    pub fn new(key: &SigningKey) -> Result<Self, TokenError> {
        let encoding = match key {
            SigningKey::Hs256 { secret } => {
                check_hs256(secret)?;
                EncodingKey::from_secret(secret)
            }
            SigningKey::EdDsa {
                private_pem,
                public_pem,
            } => EncodingKey::from_ed_der(&ed25519_private_der(private_pem, public_pem)?),
        };
        Ok(TokenIssuer {
            algorithm: key.algorithm(),
            key: encoding,
            issuer: None,
            audience: None,
        })
    }

    /// Writes `iss` and `aud` into every token, each when given, so the hub's verifier with
    /// the same `auth.issuer` / `auth.audience` accepts them.
    pub fn naming(mut self, issuer: Option<String>, audience: Option<String>) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Signs a token for `principal`, issued at `now_unix` and valid for `ttl_secs` (≥ 1).
    ///
    /// The principal's subject, meeting id and role/level pairing are checked here; whether
    /// its region exists is checked by whoever verifies the token against their tree.
    pub fn mint(
        &self,
        principal: &Principal,
        now_unix: u64,
        ttl_secs: u64,
    ) -> Result<String, TokenError> {
        principal
            .check_shape()
            .map_err(|e| TokenError::InvalidClaims(e.to_string()))?;
        if ttl_secs == 0 {
            return Err(TokenError::InvalidClaims(
                "ttl must be at least one second".into(),
            ));
        }
        let exp = now_unix
            .checked_add(ttl_secs)
            .ok_or_else(|| TokenError::InvalidClaims("issue time plus ttl overflows".into()))?;
        let claims = Claims {
            sub: principal.subject.clone(),
            role: principal.role,
            region: principal.region,
            exp,
            iat: now_unix,
            meeting: principal.meeting.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm.to_jwt()), &claims, &self.key)
            .map_err(|e| TokenError::Key(format!("signing failed: {e}")))
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::RegionTree;

    fn principal() -> Principal {
        let tree = RegionTree::zhejiang();
        let region = RegionCode::parse("330106").expect("valid");
        Principal::new(&tree, "xihu-op", Role::CountyOperator, region, None).expect("valid")
    }

    #[test]
    fn short_hs256_secret_is_refused() {
        let e = TokenIssuer::new(&SigningKey::Hs256 {
            secret: vec![1; 16],
        })
        .err();
        assert_eq!(e.map(|e| e.code()), Some("key_error"));
    }

    #[test]
    fn ttl_rules() {
        let issuer = TokenIssuer::new(&SigningKey::generate_hs256([9; 32])).expect("key ok");
        assert!(issuer.mint(&principal(), 1_000, 60).is_ok());
        assert!(matches!(
            issuer.mint(&principal(), 1_000, 0),
            Err(TokenError::InvalidClaims(_))
        ));
        assert!(matches!(
            issuer.mint(&principal(), u64::MAX, 1),
            Err(TokenError::InvalidClaims(_))
        ));
    }

    #[test]
    fn mint_refuses_a_mis_levelled_principal() {
        let issuer = TokenIssuer::new(&SigningKey::generate_hs256([9; 32])).expect("key ok");
        let mut p = principal();
        p.role = Role::CityAdmin;
        assert!(matches!(
            issuer.mint(&p, 1_000, 60),
            Err(TokenError::InvalidClaims(_))
        ));
        assert_eq!(
            format!("{issuer:?}"),
            "TokenIssuer { algorithm: Hs256, .. }"
        );
    }

    #[test]
    fn claims_json_shape() {
        let claims = Claims {
            sub: "a".into(),
            role: Role::Wall,
            region: RegionCode::parse("330100").expect("valid"),
            exp: 20,
            iat: 10,
            meeting: None,
            iss: None,
            aud: None,
        };
        let json = serde_json::to_string(&claims).expect("serializes");
        assert_eq!(
            json,
            r#"{"sub":"a","role":"wall","region":"330100","exp":20,"iat":10}"#
        );
        let named = Claims {
            iss: Some("https://idp".into()),
            aud: Some("hubcast".into()),
            ..claims
        };
        let json = serde_json::to_string(&named).expect("serializes");
        assert!(
            json.ends_with(r#""iat":10,"iss":"https://idp","aud":"hubcast"}"#),
            "{json}"
        );
    }
}
