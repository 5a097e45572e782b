//! TLS for the listener (rustls, ring provider): operator PEM files, or a self-signed
//! development certificate generated once into `<data_dir>/tls/` and reused. Private keys are
//! written with mode 0600 and never committed (the repository ships no key material). Also the
//! CLI's client side ([`client_config`]): the operator's CA file, else the system's bundle.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::cert_reload::CertFiles;
use crate::config::ConfigError;

/// Names the generated development certificate is valid for.
const SELF_SIGNED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The certificates of PEM file `path` (at least one), errors naming `setting`.
pub(crate) fn load_certs(
    path: &Path,
    setting: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|err| ConfigError::new(setting, format!("cannot read {}: {err}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|err| ConfigError::new(setting, format!("{}: bad PEM: {err}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            setting,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    Ok(certs)
}

/// Loads a PEM certificate chain and key, checking they belong together: the listener's
/// config, serving them through the returned [`CertFiles`] (which reloads them when renewed).
pub fn load_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<ServerConfig>, Arc<CertFiles>), ConfigError> {
    let files = CertFiles::open(cert, key)?;
    let config = server_config(files.clone())
        .map_err(|err| ConfigError::new("tls.cert", format!("TLS setup: {err}")))?;
    Ok((config, files))
}

/// Returns the self-signed development certificate in `<data_dir>/tls/`, generating it first
/// when absent. Returns the config and the certificate's path (for clients to trust).
pub fn self_signed(data_dir: &Path) -> anyhow::Result<(Arc<ServerConfig>, std::path::PathBuf)> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("self-signed-cert.pem");
    let key_path = dir.join("self-signed-key.pem");
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(&dir)?;
        // A half-written pair (a crash between the two writes) is replaced, not an error:
        // the key goes first and the certificate last, so a present certificate means both.
        for stale in [&key_path, &cert_path] {
            match std::fs::remove_file(stale) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
                _ => {}
            }
        }
        let names: Vec<String> = SELF_SIGNED_NAMES.iter().map(|s| (*s).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names)?;
        crate::keys::write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, generated.cert.pem())?;
        tracing::info!(cert = %cert_path.display(), "generated a self-signed development certificate");
    }
    let (config, _) =
        load_pem_files(&cert_path, &key_path).map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok((config, cert_path))
}

fn server_config(files: Arc<CertFiles>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(files);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where distributions keep the system's CA bundle (Debian/Ubuntu/UOS, then RHEL/Kylin/
/// openEuler, then SUSE and Alpine); `SSL_CERT_FILE` comes first when set.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A TLS client trusting the certificates in `ca` (PEM: a government network's own CA, or a
/// hub's self-signed certificate), or without it the system's bundle. TLS 1.3 and 1.2.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, ConfigError> {
    let path = match ca {
        Some(path) => path.to_path_buf(),
        None => {
            let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            let found = env
                .into_iter()
                .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
                .find(|p| p.is_file());
            let Some(path) = found else {
                let message = "no system CA bundle found (SSL_CERT_FILE or /etc/ssl/certs/\
                               ca-certificates.crt): give --ca FILE";
                return Err(ConfigError::new("ca", message));
            };
            path
        }
    };
    let bad = |why: String| ConfigError::new("ca", format!("{}: {why}", path.display()));
    let mut roots = RootCertStore::empty();
    // A bundle may hold certificates this build cannot use; the others still count.
    let (_, unusable) = roots.add_parsable_certificates(load_certs(&path, "ca")?);
    if roots.is_empty() {
        return Err(bad(format!(
            "none of its {unusable} certificates is usable"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("hubcast-tls-{}", std::process::id()));
        let (_, cert) = self_signed(&dir).expect("generate");
        let first = std::fs::read(&cert).expect("read");
        let (_, again) = self_signed(&dir).expect("reuse");
        assert_eq!(
            first,
            std::fs::read(again).expect("read"),
            "reused, not regenerated"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("tls/self-signed-key.pem"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn garbage_pem_names_the_file_setting() {
        let dir = std::env::temp_dir().join(format!("hubcast-tlsbad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let cert = dir.join("c.pem");
        let key = dir.join("k.pem");
        std::fs::write(&cert, "not a pem").expect("w");
        std::fs::write(&key, "not a pem").expect("w");
        let err = load_pem_files(&cert, &key).expect_err("garbage");
        assert_eq!(err.setting, "tls.cert");
        std::fs::remove_dir_all(&dir).ok();
    }
}
