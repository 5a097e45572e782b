//! [`SigningKey`]: the secret material tokens are signed with, and how to make one.
//!
//! Randomness is the caller's: this crate takes 32 random bytes (HS256 secret or Ed25519 seed)
//! rather than reading an RNG, so key generation is deterministic and testable.

use std::fmt;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};

use super::{Algorithm, TokenError};

/// Shortest HS256 secret accepted: the hash output size, as RFC 7518 §3.2 requires.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A token signing key. `Debug` never prints secret material; there is deliberately no
/// `PartialEq` (comparing secrets is a timing side channel waiting to happen).
#[derive(Clone)]
pub enum SigningKey {
    /// HMAC-SHA-256 with a shared secret (at least 32 bytes).
    Hs256 {
        /// The raw secret.
        secret: Vec<u8>,
    },
    /// Ed25519 as a PEM pair.
    EdDsa {
        /// PKCS#8 `PRIVATE KEY` PEM.
        private_pem: String,
        /// SPKI `PUBLIC KEY` PEM.
        public_pem: String,
    },
}

impl SigningKey {
    /// An HS256 key from 32 bytes the caller drew from a CSPRNG.
    pub fn generate_hs256(random: [u8; 32]) -> SigningKey {
        SigningKey::Hs256 {
            secret: random.to_vec(),
        }
    }

    /// An Ed25519 key pair from a 32-byte seed the caller drew from a CSPRNG.
    pub fn generate_eddsa(seed: [u8; 32]) -> Result<SigningKey, TokenError> {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        // PKCS#8 v1 (RFC 5208; no public key inside): what OpenSSL 3.0, Python's
        // cryptography and Go read. The v2 form (RFC 5958, public key appended) that
        // ed25519-dalek writes by default is refused by both of the first two.
        let private_pem = v1(&key)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| TokenError::Key(format!("cannot encode Ed25519 private key: {e}")))?;
        Self::eddsa_from_private_pem(&private_pem)
    }

    /// The Ed25519 key whose private half is `private_pem` (PKCS#8 v1 or v2), its public PEM
    /// derived from it: the public file is then a copy for others, never a second source of
    /// truth that a crash between two writes could leave missing or mismatched.
    pub fn eddsa_from_private_pem(private_pem: &str) -> Result<SigningKey, TokenError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem.trim())
            .map_err(|e| TokenError::Key(format!("invalid Ed25519 private key PEM: {e}")))?;
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| TokenError::Key(format!("cannot encode Ed25519 public key: {e}")))?;
        Ok(SigningKey::EdDsa {
            private_pem: private_pem.to_owned(),
            public_pem,
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Hs256 { .. } => Algorithm::Hs256,
            SigningKey::EdDsa { .. } => Algorithm::EdDsa,
        }
    }
}

/// Checks an HS256 secret's length.
pub(super) fn check_hs256(secret: &[u8]) -> Result<(), TokenError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(TokenError::Key(format!(
            "HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes, got {}",
            secret.len()
        )));
    }
    Ok(())
}

/// Parses an SPKI PEM Ed25519 public key, returning its 32 raw bytes.
pub(super) fn ed25519_public(public_pem: &str) -> Result<[u8; 32], TokenError> {
    ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem.trim())
        .map(|k| k.to_bytes())
        .map_err(|e| TokenError::Key(format!("invalid Ed25519 public key PEM: {e}")))
}

/// The PKCS#8 v1 form of `key`: the secret only.
fn v1(key: &ed25519_dalek::SigningKey) -> ed25519_dalek::pkcs8::KeypairBytes {
    ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
}

/// Parses a PKCS#8 PEM Ed25519 private key (v1, or v2 as earlier builds wrote it), checks it matches `public_pem`, and returns its
/// PKCS#8 DER encoding.
pub(super) fn ed25519_private_der(
    private_pem: &str,
    public_pem: &str,
) -> Result<Vec<u8>, TokenError> {
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem.trim())
        .map_err(|e| TokenError::Key(format!("invalid Ed25519 private key PEM: {e}")))?;
    if key.verifying_key().to_bytes() != ed25519_public(public_pem)? {
        return Err(TokenError::Key(
            "Ed25519 private and public keys do not match".into(),
        ));
    }
    let der = v1(&key)
        .to_pkcs8_der()
        .map_err(|e| TokenError::Key(format!("cannot encode Ed25519 private key: {e}")))?;
    Ok(der.as_bytes().to_vec())
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigningKey::Hs256 { secret } => f
                .debug_struct("Hs256")
                .field(
                    "secret",
                    &format_args!("[redacted; {} bytes]", secret.len()),
                )
                .finish(),
            SigningKey::EdDsa { public_pem, .. } => f
                .debug_struct("EdDsa")
                .field("private_pem", &format_args!("[redacted]"))
                .field("public_pem", &format_args!("[{} bytes]", public_pem.len()))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let hs = SigningKey::generate_hs256([0xAB; 32]);
        let shown = format!("{hs:?}");
        assert_eq!(shown, "Hs256 { secret: [redacted; 32 bytes] }");
        let ed = SigningKey::generate_eddsa([7; 32]).expect("generates");
        let shown = format!("{ed:?} {ed:#?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("MC4C"),
            "{shown}"
        );
    }

    #[test]
    fn eddsa_generation_is_deterministic_pem() {
        let pems = |seed| match SigningKey::generate_eddsa(seed) {
            Ok(SigningKey::EdDsa {
                private_pem,
                public_pem,
            }) => (private_pem, public_pem),
            other => panic!("EdDSA key expected, got {other:?}"),
        };
        assert_eq!(pems([1; 32]), pems([1; 32]));
        assert_ne!(pems([1; 32]).1, pems([2; 32]).1);
        let a = SigningKey::generate_eddsa([1; 32]).expect("generates");
        assert_eq!(a.algorithm(), Algorithm::EdDsa);
        let SigningKey::EdDsa {
            private_pem,
            public_pem,
        } = &a
        else {
            panic!("EdDSA key")
        };
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(ed25519_private_der(private_pem, public_pem).is_ok());
    }

    #[test]
    fn mismatched_or_bad_pems_are_key_errors() {
        let (
            SigningKey::EdDsa {
                private_pem: p1, ..
            },
            SigningKey::EdDsa { public_pem: q2, .. },
        ) = (
            SigningKey::generate_eddsa([1; 32]).expect("generates"),
            SigningKey::generate_eddsa([2; 32]).expect("generates"),
        )
        else {
            panic!("EdDSA keys")
        };
        assert!(matches!(
            ed25519_private_der(&p1, &q2),
            Err(TokenError::Key(_))
        ));
        assert!(matches!(
            ed25519_public("not a pem"),
            Err(TokenError::Key(_))
        ));
        assert!(matches!(
            ed25519_private_der("", &q2),
            Err(TokenError::Key(_))
        ));
        assert!(check_hs256(&[0; 31]).is_err() && check_hs256(&[0; 32]).is_ok());
    }
}
