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
    if let Some(secret) = &settings.secret {
        return Ok(SigningKey::Hs256 {
            secret: secret.clone(),
        });
    }
    let dir = &settings.data_dir;
    match settings.algorithm {
        Algorithm::Hs256 => {
            let path = dir.join(HS256_FILE);
            let text = read_or_create(&path, || {
                let mut secret = [0u8; 32];
                rand::rng().fill_bytes(&mut secret);
                base64::engine::general_purpose::STANDARD
                    .encode(secret)
                    .into_bytes()
            })?;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            anyhow::ensure!(
                secret.len() >= 32,
                "{} holds fewer than 32 bytes",
                path.display()
            );
            Ok(SigningKey::Hs256 { secret })
        }
        Algorithm::EdDsa => {
            let private_path = dir.join(ED25519_FILE);
            let public_path = dir.join(ED25519_PUB_FILE);
            if !private_path.exists() {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                let key = SigningKey::generate_eddsa(seed)?;
                if let SigningKey::EdDsa {
                    private_pem,
                    public_pem,
                } = &key
                {
                    write_private(&private_path, private_pem.as_bytes())?;
                    std::fs::write(&public_path, public_pem)?;
                }
                tracing::info!(path = %private_path.display(), "generated an Ed25519 signing key");
            }
            let private_pem = std::fs::read_to_string(&private_path)
                .with_context(|| format!("reading {}", private_path.display()))?;
            let public_pem = std::fs::read_to_string(&public_path)
                .with_context(|| format!("reading {}", public_path.display()))?;
            Ok(SigningKey::EdDsa {
                private_pem,
                public_pem,
            })
        }
    }
}

/// Reads `path`, or creates it with `make()` (mode 0600) if it does not exist. Two processes
/// racing to create it both end up reading the one that won.
fn read_or_create(path: &Path, make: impl FnOnce() -> Vec<u8>) -> anyhow::Result<String> {
    if !path.exists() {
        match write_private(path, &make()) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                "generated a signing key (mode 0600); mint tokens with `hubcast token --data-dir …`"
            ),
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) => {}
            Err(err) => return Err(err),
        }
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates `path` exclusively with mode 0600 and writes `bytes` (durably).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(anyhow::Error::from)?;
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

    fn fingerprint(key: &SigningKey) -> Vec<u8> {
        match key {
            SigningKey::Hs256 { secret } => secret.clone(),
            SigningKey::EdDsa { public_pem, .. } => public_pem.as_bytes().to_vec(),
        }
    }
}
