//! The token signing key: from config (HS256 secret), or generated on first use into the data
//! dir with mode 0600 and reused afterwards, so `hubcast serve --data-dir D` and
//! `hubcast token --data-dir D` always agree.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use rand::RngCore as _;
use tiers::{Algorithm, SigningKey};

use crate::config::Settings;

const HS256_FILE: &str = "jwt-hs256.key";
const ED25519_FILE: &str = "jwt-ed25519.key.pem";
const ED25519_PUB_FILE: &str = "jwt-ed25519.pub.pem";

/// Returns the signing key in force for `settings`, generating it when absent.
pub fn load_or_generate(settings: &Settings) -> anyhow::Result<SigningKey> {
    load_or_generate_noting(settings).map(|(key, _)| key)
}

/// [`load_or_generate`], and whether this call generated the key (`hubcast token` says so:
/// a hub on another data dir refuses tokens signed with it).
pub fn load_or_generate_noting(settings: &Settings) -> anyhow::Result<(SigningKey, bool)> {
    if let Some(secret) = &settings.secret {
        let key = SigningKey::Hs256 {
            secret: secret.clone(),
        };
        return Ok((key, false));
    }
    let dir = &settings.data_dir;
    match settings.algorithm {
        Algorithm::Hs256 => {
            let path = dir.join(HS256_FILE);
            let (text, generated) = read_or_create(&path, || {
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                Ok(base64::engine::general_purpose::STANDARD
                    .encode(secret)
                    .into_bytes())
            })?;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            anyhow::ensure!(
                secret.len() >= 32,
                "{} holds fewer than 32 bytes",
                path.display()
            );
            Ok((SigningKey::Hs256 { secret }, generated))
        }
        Algorithm::EdDsa => {
            let private_path = dir.join(ED25519_FILE);
            let public_path = dir.join(ED25519_PUB_FILE);
            let (private_pem, generated) = read_or_create(&private_path, || {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                match SigningKey::generate_eddsa(seed)? {
                    SigningKey::EdDsa { private_pem, .. } => Ok(private_pem.into_bytes()),
                    SigningKey::Hs256 { .. } => anyhow::bail!("not an Ed25519 key"),
                }
            })?;
            let key = SigningKey::eddsa_from_private_pem(&private_pem)
                .with_context(|| format!("reading {}", private_path.display()))?;
            // The public half, for verifiers elsewhere: written once, checked after.
            if let SigningKey::EdDsa { public_pem, .. } = &key {
                let (on_disk, _) =
                    read_or_create(&public_path, || Ok(public_pem.clone().into_bytes()))?;
                anyhow::ensure!(
                    on_disk.trim() == public_pem.trim(),
                    "{} does not match {}: remove it, it is rewritten from the private key",
                    public_path.display(),
                    private_path.display()
                );
            }
            Ok((key, generated))
        }
    }
}

/// Reads `path`, or creates it with `make()` (mode 0600) if it does not exist (then `true`
/// with the text: this call created it). The file
/// appears whole or not at all (written aside, then linked into place, which fails if another
/// process got there first): racing processes all read the one that won, and a crash mid-write
/// leaves no half-written key behind.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(String, bool)> {
    let mut created = false;
    if !path.exists() {
        match create_whole(path, &make()?) {
            Ok(()) => {
                let note = "generated a key file (mode 0600); `hubcast token --data-dir …` uses it";
                tracing::info!(path = %path.display(), "{note}");
                created = true;
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(err).with_context(|| format!("creating {}", path.display()));
            }
        }
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((text, created))
}

/// Creates `path` holding `bytes`, mode 0600, durably and atomically; `AlreadyExists` if it
/// exists.
fn create_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let aside = path.with_file_name(format!(
        ".{name}.{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    if let Err(err) = write_private(&aside, bytes) {
        // A disk that filled up part way: no partial key left behind.
        let _ = std::fs::remove_file(&aside);
        return Err(err);
    }
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    linked?;
    // Best effort: the key is whole in place either way.
    let _ = alerts::store::sync_dir_of(path);
    Ok(())
}

/// Creates `path` exclusively with mode 0600 and writes `bytes` (durably).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn settings(dir: &Path, algorithm: &str) -> Settings {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        config.auth.algorithm = algorithm.to_owned();
        Settings::from_config(config).expect("valid")
    }

    #[test]
    fn generated_once_then_reused_with_0600() {
        for algorithm in ["HS256", "EdDSA"] {
            let dir = std::env::temp_dir()
                .join(format!("hubcast-keys-{algorithm}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("dir");
            let s = settings(&dir, algorithm);
            let first = format!("{:?}", fingerprint(&load_or_generate(&s).expect("gen")));
            let second = format!("{:?}", fingerprint(&load_or_generate(&s).expect("reuse")));
            assert_eq!(first, second, "{algorithm}: same key on second start");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let file = if algorithm == "HS256" {
                    HS256_FILE
                } else {
                    ED25519_FILE
                };
                let mode = std::fs::metadata(dir.join(file))
                    .expect("meta")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{algorithm}");
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// Processes (here threads) that start on a fresh data dir at once all end up with the
    /// one key that was created, whole, for either algorithm; no stray files are left.
    #[test]
    fn racing_creators_share_one_whole_key() {
        for algorithm in ["HS256", "EdDSA"] {
            let dir = std::env::temp_dir().join(format!(
                "hubcast-keys-race-{algorithm}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("dir");
            let s = settings(&dir, algorithm);
            let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| load_or_generate(&s).map(|k| fingerprint(&k))))
                    .collect();
                racers
                    .into_iter()
                    .map(|r| r.join().expect("thread").expect("a key"))
                    .collect()
            });
            assert!(
                keys.windows(2).all(|w| w[0] == w[1]),
                "{algorithm}: one key"
            );
            let names: Vec<String> = std::fs::read_dir(&dir)
                .expect("dir")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            assert!(
                names.iter().all(|n| !n.starts_with('.')),
                "{algorithm}: nothing left aside: {names:?}"
            );
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    /// An Ed25519 public file that does not match the private key is an error naming it, and
    /// a missing one is written again from the private key.
    #[test]
    fn the_public_file_follows_the_private_key() {
        let dir = std::env::temp_dir().join(format!("hubcast-keys-pub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let s = settings(&dir, "EdDSA");
        let first = fingerprint(&load_or_generate(&s).expect("gen"));
        std::fs::remove_file(dir.join(ED25519_PUB_FILE)).expect("rm");
        assert_eq!(
            fingerprint(&load_or_generate(&s).expect("rewritten")),
            first
        );
        std::fs::write(dir.join(ED25519_PUB_FILE), "-----BEGIN PUBLIC KEY-----\n").expect("w");
        let err = load_or_generate(&s).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref().is_some_and(|e| e.contains(ED25519_PUB_FILE)),
            "{err:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn fingerprint(key: &SigningKey) -> Vec<u8> {
        match key {
            SigningKey::Hs256 { secret } => secret.clone(),
            SigningKey::EdDsa { public_pem, .. } => public_pem.as_bytes().to_vec(),
        }
    }
}
