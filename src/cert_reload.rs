//! The operator's TLS certificate, reloaded while the hub runs. A certificate renewed on disk
//! (ACME or a 60–90-day CA certificate) is picked up on `SIGHUP` or within
//! [`CHECK_EVERY`] of its files changing, for new handshakes; connections already open keep
//! theirs. A pair that does not load or whose key does not fit is refused (logged) and the
//! certificate served so far stays: a half-copied renewal never takes the listener down.
//! The periodic check also waits until neither file has changed for [`SETTLE`]: a chain
//! copied in place is read once the copy is over, not cut at a certificate boundary (which
//! would load, with its intermediates missing). `SIGHUP` is the operator saying the files
//! are ready: it reloads at once.
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

/// How long both files must have stayed unchanged before the periodic check reads them (a
/// copy in progress keeps moving their modification time).
pub const SETTLE: Duration = Duration::from_secs(2);

/// What one check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are as last read: nothing to do.
    Unchanged,
    /// A new pair is served.
    Loaded,
    /// The files did not load or do not fit together; the previous pair stays.
    Refused,
    /// The files changed within [`SETTLE`] (or while being read): checked again after it.
    Settling,
}

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

    /// Loads the files again if they changed since last read and have stayed unchanged for
    /// [`SETTLE`] before `now` (`force`: at once, whatever their times say).
    pub fn reload(&self, force: bool, now: SystemTime) -> Reload {
        let before = stamps(&self.cert, &self.key);
        if !force {
            let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((cert, key)) = before else {
                return Reload::Unchanged;
            };
            if *seen == before {
                return Reload::Unchanged;
            }
            // A time ahead of the clock (a skewed file server, the clock stepped back) says
            // nothing about a copy in progress: not waited for, or it would be until the clock
            // caught up. The check after the read below still catches a file still moving.
            let newest = cert.max(key);
            if now.duration_since(newest).is_ok_and(|age| age < SETTLE) {
                return Reload::Settling;
            }
        }
        let loaded = load(&self.cert, &self.key);
        if !force && stamps(&self.cert, &self.key) != before {
            return Reload::Settling;
        }
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = before;
        match loaded {
            Ok(loaded) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                Reload::Loaded
            }
            Err(err) => {
                tracing::warn!(error = %err, "TLS certificate not reloaded; still serving the previous one");
                Reload::Refused
            }
        }
    }

    /// Reloads on `SIGHUP` and every [`CHECK_EVERY`] when the files changed (again after
    /// [`SETTLE`] while they are still changing), until `shutdown`.
    pub async fn watch(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut settling = false;
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(signals) => signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            let again = async {
                if settling {
                    tokio::time::sleep(SETTLE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let force = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => false,
                () = again => false,
                _ = hangup => true,
            };
            let files = self.clone();
            let done = tokio::task::spawn_blocking(move || files.reload(force, SystemTime::now()));
            settling = matches!(done.await, Ok(Reload::Settling));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fresh self-signed pair for `name` into `dir`; returns its leaf's DER.
    fn write_pair(dir: &Path, name: &str) -> Vec<u8> {
        let generated =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("generate");
        std::fs::write(dir.join("cert.pem"), generated.cert.pem()).expect("cert");
        std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).expect("key");
        generated.cert.der().to_vec()
    }

    fn serving(files: &CertFiles) -> Vec<u8> {
        let current = files.current.read().unwrap_or_else(PoisonError::into_inner);
        current.end_entity_cert().expect("leaf").to_vec()
    }

    fn modified(dir: &Path) -> SystemTime {
        let m = |f: &str| std::fs::metadata(dir.join(f)).and_then(|m| m.modified());
        m("cert.pem")
            .expect("mtime")
            .max(m("key.pem").expect("mtime"))
    }

    #[test]
    fn the_periodic_check_waits_for_the_files_to_settle() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = write_pair(dir.path(), "first.example");
        let files = CertFiles::open(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .expect("open");
        assert_eq!(serving(&files), first);
        let written = modified(dir.path());
        assert_eq!(files.reload(false, written + SETTLE), Reload::Unchanged);

        let second = write_pair(dir.path(), "second.example");
        let written = modified(dir.path());
        // Still being written, as far as the check can tell: not read yet.
        assert_eq!(files.reload(false, written), Reload::Settling);
        assert_eq!(files.reload(false, written + SETTLE / 2), Reload::Settling);
        assert_eq!(serving(&files), first, "the old pair is served meanwhile");
        // Settled: read, served, and then unchanged.
        assert_eq!(files.reload(false, written + SETTLE), Reload::Loaded);
        assert_eq!(serving(&files), second);
        assert_eq!(
            files.reload(false, written + 10 * SETTLE),
            Reload::Unchanged
        );

        // Files dated ahead of the clock are read, not waited for until it catches up.
        let third = write_pair(dir.path(), "third.example");
        let written = modified(dir.path());
        assert_eq!(files.reload(false, written - SETTLE * 30), Reload::Loaded);
        assert_eq!(serving(&files), third);
    }

    #[test]
    fn sighup_reloads_at_once_and_a_broken_pair_is_refused_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = write_pair(dir.path(), "first.example");
        let files = CertFiles::open(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .expect("open");
        let second = write_pair(dir.path(), "second.example");
        let written = modified(dir.path());
        assert_eq!(
            files.reload(true, written),
            Reload::Loaded,
            "SIGHUP: no wait"
        );
        assert_eq!(serving(&files), second);

        // Half a chain: the certificate file cut short. Refused once settled; not retried
        // until the files change again.
        let pem = std::fs::read_to_string(dir.path().join("cert.pem")).expect("read");
        std::fs::write(dir.path().join("cert.pem"), &pem[..pem.len() / 2]).expect("cut");
        let written = modified(dir.path());
        assert_eq!(files.reload(false, written + SETTLE), Reload::Refused);
        assert_eq!(serving(&files), second, "the previous pair stays");
        assert_eq!(files.reload(false, written + 2 * SETTLE), Reload::Unchanged);
        assert_ne!(first, second);
    }
}
