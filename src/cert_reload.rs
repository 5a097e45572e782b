//! The operator's TLS certificate, reloaded while the hub runs. A certificate renewed on disk
//! (ACME or a 60–90-day CA certificate) is picked up on `SIGHUP` or within
//! [`CHECK_EVERY`] of its files changing, for new handshakes; connections already open keep
//! theirs. A pair that does not load or whose key does not fit is refused (logged) and the
//! certificate served so far stays: a half-copied renewal never takes the listener down.
//! Without this, a hub running for months served the certificate it started with until it
//! expired, and every new connection failed from then on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::config::ConfigError;

/// How often the files' modification times are compared (a `SIGHUP` checks at once).
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The certificate files and the pair loaded from them.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last read (loaded or refused).
    seen: Mutex<Option<(SystemTime, SystemTime)>>,
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Both files' modification times, if they can be read.
fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

/// The chain and key in `cert` and `key`, checked to belong together.
fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, ConfigError> {
    let chain = super::tls::load_certs(cert, "tls.cert")?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        ConfigError::new(
            "tls.key",
            format!("cannot load a private key from {}: {err}", key.display()),
        )
    })?;
    CertifiedKey::from_der(chain, key_der, &rustls::crypto::ring::default_provider()).map_err(
        |err| {
            ConfigError::new(
                "tls.key",
                format!("{} does not fit {}: {err}", key.display(), cert.display()),
            )
        },
    )
}

impl CertFiles {
    /// Loads the pair, or the error naming the setting (a start error).
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<CertFiles>, ConfigError> {
        let seen = stamps(cert, key);
        let loaded = load(cert, key)?;
        Ok(Arc::new(CertFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(seen),
        }))
    }

    /// Loads the files again if they changed since last read (`force`: whatever their
    /// times say). Returns whether a new pair is served now.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamps(&self.cert, &self.key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !force && (now.is_none() || *seen == now) {
                return false;
            }
            *seen = now;
        }
        match load(&self.cert, &self.key) {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "TLS certificate not reloaded; still serving the previous one");
                false
            }
        }
    }

    /// Reloads on `SIGHUP` and every [`CHECK_EVERY`] when the files changed, until
    /// `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(signals) => signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            let force = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => false,
                _ = hangup => true,
            };
            let files = self.clone();
            let _ = tokio::task::spawn_blocking(move || files.reload(force)).await;
        }
    }
}
