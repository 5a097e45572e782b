//! Counting SRTP that fails authentication. str0m drops a packet whose authentication tag
//! does not verify without telling anyone, so a forged or corrupted packet carrying a real
//! stream's SSRC (an attacker who sees the path and spoofs a peer's address) would leave no
//! trace. str0m takes its crypto from a pluggable [`CryptoProvider`]; this one is str0m's own
//! (the aws-lc backend, [`str0m::crypto::from_feature_flags`]) with the AEAD-GCM ciphers
//! wrapped: a decryption that fails (AES-GCM decrypts and authenticates in one step) is
//! counted on the calling thread, and the worker reads that count after each datagram it
//! feeds in ([`take_failures`]) and counts the drop as `unauthenticated`.
//!
//! Covered: the AEAD profiles (AES-256-GCM and AES-128-GCM, which str0m prefers and the
//! browsers and libraries it meets offer). Not covered: AES-128-CM-HMAC-SHA1-80, whose tag
//! str0m compares itself, outside any provider call. Packets str0m drops before decryption
//! (an SSRC it cannot map) are not counted here either.

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use str0m::crypto::{
    AeadAes128GcmCipher, AeadAes256GcmCipher, CryptoError, CryptoProvider, SrtpProvider,
    SupportedAeadAes128Gcm, SupportedAeadAes256Gcm, SupportedAes128CmSha1_80,
};

thread_local! {
    /// Failed AEAD decryptions on this thread since the last [`take_failures`].
    static FAILURES: Cell<usize> = const { Cell::new(0) };
}

/// The failed SRTP/SRTCP decryptions on this thread since the last call, and resets the
/// count. A worker calls it right after `handle_input` of one datagram.
pub(crate) fn take_failures() -> usize {
    FAILURES.with(|f| f.replace(0))
}

fn failed() {
    FAILURES.with(|f| f.set(f.get().saturating_add(1)));
}

/// The provider every session's `Rtc` is built with (one for the process).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                srtp_provider: &AUDITED,
                ..inner().clone()
            })
        })
        .clone()
}

/// str0m's own provider, which does the work.
fn inner() -> &'static CryptoProvider {
    static INNER: OnceLock<CryptoProvider> = OnceLock::new();
    INNER.get_or_init(str0m::crypto::from_feature_flags)
}

static AUDITED: AuditedSrtp = AuditedSrtp;
static GCM_128: Gcm128 = Gcm128;
static GCM_256: Gcm256 = Gcm256;

#[derive(Debug)]
struct AuditedSrtp;

impl SrtpProvider for AuditedSrtp {
    fn aes_128_cm_sha1_80(&self) -> &'static dyn SupportedAes128CmSha1_80 {
        inner().srtp_provider.aes_128_cm_sha1_80()
    }

    fn aead_aes_128_gcm(&self) -> &'static dyn SupportedAeadAes128Gcm {
        &GCM_128
    }

    fn aead_aes_256_gcm(&self) -> &'static dyn SupportedAeadAes256Gcm {
        &GCM_256
    }

    fn srtp_aes_128_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        inner()
            .srtp_provider
            .srtp_aes_128_ecb_round(key, input, output);
    }

    fn srtp_aes_256_ecb_round(&self, key: &[u8], input: &[u8], output: &mut [u8]) {
        inner()
            .srtp_provider
            .srtp_aes_256_ecb_round(key, input, output);
    }
}

/// A factory (`$factory`, implementing `$supported` with `$key`-byte keys) of `$audited`
/// ciphers: str0m's own (`$inner` of its provider) whose failed decryptions are counted.
macro_rules! audited_aead {
    ($factory:ident, $supported:ident, $key:literal, $audited:ident, $cipher:ident, $inner:ident) => {
        #[derive(Debug)]
        struct $factory;

        impl $supported for $factory {
            fn create_cipher(&self, key: [u8; $key], encrypt: bool) -> Box<dyn $cipher> {
                let cipher = inner().srtp_provider.$inner().create_cipher(key, encrypt);
                // Only decryption can fail authentication: the encrypting cipher, used for
                // every forwarded copy, stays str0m's own (no extra indirection per packet).
                if encrypt {
                    cipher
                } else {
                    Box::new($audited(cipher))
                }
            }
        }

        #[derive(Debug)]
        struct $audited(Box<dyn $cipher>);

        impl $cipher for $audited {
            fn encrypt(
                &mut self,
                iv: &[u8; 12],
                aad: &[u8],
                input: &[u8],
                output: &mut [u8],
            ) -> Result<(), CryptoError> {
                self.0.encrypt(iv, aad, input, output)
            }

            fn decrypt(
                &mut self,
                iv: &[u8; 12],
                aads: &[&[u8]],
                input: &[u8],
                output: &mut [u8],
            ) -> Result<usize, CryptoError> {
                self.0
                    .decrypt(iv, aads, input, output)
                    .inspect_err(|_| failed())
            }
        }
    };
}

audited_aead!(
    Gcm128,
    SupportedAeadAes128Gcm,
    16,
    Audited128,
    AeadAes128GcmCipher,
    aead_aes_128_gcm
);
audited_aead!(
    Gcm256,
    SupportedAeadAes256Gcm,
    32,
    Audited256,
    AeadAes256GcmCipher,
    aead_aes_256_gcm
);

#[cfg(test)]
mod tests {
    use super::*;

    const IV: [u8; 12] = [7; 12];
    /// At least 12 bytes, like the RTP header it stands for (aws-lc asserts it).
    const AAD: &[u8] = b"a 12+ byte rtp header";
    const PLAIN: &[u8] = b"some media payload";

    /// Seals `PLAIN` into the buffer.
    type Seal<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<(), CryptoError>;
    /// Opens the first buffer into the second; the plaintext's length.
    type Open<'a> = &'a mut dyn FnMut(&[u8], &mut [u8]) -> Result<usize, CryptoError>;

    /// Seals `PLAIN`, opens it (no failure counted), flips the tag's last byte: the opening
    /// fails, is counted once, and `take_failures` resets the count.
    fn genuine_opens_tampered_is_counted(seal: Seal<'_>, open: Open<'_>) {
        let mut sealed = vec![0u8; PLAIN.len() + 16];
        let mut opened = vec![0u8; PLAIN.len() + 16];
        take_failures();
        seal(&mut sealed).expect("seal");
        let n = open(&sealed, &mut opened).expect("the genuine packet opens");
        assert_eq!(&opened[..n], PLAIN);
        assert_eq!(take_failures(), 0);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open(&sealed, &mut opened).is_err(), "a flipped tag fails");
        assert_eq!(take_failures(), 1, "counted once");
        assert_eq!(take_failures(), 0, "and taken");
    }

    #[test]
    fn a_failed_aes_128_gcm_opening_is_counted_on_this_thread() {
        let srtp = provider().srtp_provider;
        let mut e = srtp.aead_aes_128_gcm().create_cipher([1; 16], true);
        let mut d = srtp.aead_aes_128_gcm().create_cipher([1; 16], false);
        genuine_opens_tampered_is_counted(
            &mut |out| e.encrypt(&IV, AAD, PLAIN, out),
            &mut |input, out| d.decrypt(&IV, &[AAD], input, out),
        );
    }

    #[test]
    fn a_failed_aes_256_gcm_opening_is_counted_on_this_thread() {
        let srtp = provider().srtp_provider;
        let mut e = srtp.aead_aes_256_gcm().create_cipher([2; 32], true);
        let mut d = srtp.aead_aes_256_gcm().create_cipher([2; 32], false);
        genuine_opens_tampered_is_counted(
            &mut |out| e.encrypt(&IV, AAD, PLAIN, out),
            &mut |input, out| d.decrypt(&IV, &[AAD], input, out),
        );
    }
}
