//! `--tls-self-signed`: an HTTPS client trusting the generated certificate gets `/healthz` 200
//! over TLS 1.3; plain HTTP on the TLS port is refused; operator PEM files work the same way;
//! the alert WebSocket (`wss://`) delivers over TLS; the CLI publishes over HTTPS.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::sync::Arc;

use common::Hub;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

async fn tls_connect(
    hub: &Hub,
    cert_pem: &std::path::Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

async fn https_get(
    hub: &Hub,
    cert_pem: &std::path::Path,
    path: &str,
) -> (common::Response, rustls::ProtocolVersion) {
    let tls = tls_connect(hub, cert_pem).await;
    let version = tls.get_ref().1.protocol_version().expect("negotiated");
    (common::request(tls, "GET", path, &[]).await, version)
}

#[tokio::test]
async fn alert_websocket_over_tls() {
    use futures_util::StreamExt as _;
    let hub = Hub::start(&["--tls-self-signed"], &[]);
    let cert = hub.data_dir.join("tls/self-signed-cert.pem");
    let tls = tls_connect(&hub, &cert).await;
    let url = format!(
        "wss://localhost:{}/ws/alerts?region=330100",
        hub.addr.port()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("wss handshake");
    let token = hub.token("city-admin", "330100", &[]);
    let post = tls_connect(&hub, &cert).await;
    let response = alerts_live_util::post_alert_on(post, &token, "tls-1", "加密通道").await;
    assert_eq!(response.status, 201, "{}", response.body);
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .expect("an alert in time")
        .expect("open")
        .expect("frame");
    let text = message.into_text().expect("text frame");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["alert"]["identifier"], "tls-1");
    assert_eq!(value["seq"], 1);
    // The hub task cannot write through TLS: the delivery went through the connection task.
    let (metrics, _) = https_get(&hub, &cert, "/metrics").await;
    let value_of = |name: &str| {
        metrics
            .body
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    assert_eq!(value_of("hubcast_alert_deliveries_total "), Some(1.0));
    assert_eq!(value_of("hubcast_alert_direct_writes_total "), Some(0.0));
}

#[tokio::test]
async fn self_signed_serves_tls13() {
    let hub = Hub::start(&["--tls-self-signed"], &[]);
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let cert = hub.data_dir.join("tls/self-signed-cert.pem");
    let (response, version) = https_get(&hub, &cert, "/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);

    // A plain-HTTP client on the TLS port gets no HTTP answer, and the hub keeps serving.
    let plain = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let raw = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut plain = plain;
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok();
        let mut buf = Vec::new();
        plain.read_to_end(&mut buf).await.ok();
        buf
    })
    .await
    .expect("closed, not hung");
    assert!(
        !raw.starts_with(b"HTTP/1.1 200"),
        "no plaintext service on the TLS port"
    );
    let (again, _) = https_get(&hub, &cert, "/readyz").await;
    assert_eq!(again.status, 200);
}

/// A hub serving the operator's PEM files `cert` and `key`.
fn start_with_files(cert: &std::path::Path, key: &std::path::Path) -> Hub {
    let path = |p: &std::path::Path| p.to_str().expect("path").to_owned();
    let (cert, key) = (path(cert), path(key));
    Hub::start(&["--tls-cert", &cert, "--tls-key", &key], &[])
}

#[tokio::test]
async fn operator_pem_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).expect("write");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write");
    let hub = start_with_files(&cert, &key);
    let (response, version) = https_get(&hub, &cert, "/healthz").await;
    assert_eq!(response.status, 200);
    assert_eq!(version, rustls::ProtocolVersion::TLSv1_3);
}

/// The certificate of a client's handshake (its end entity, DER).
async fn served_cert(hub: &Hub, trusted: &std::path::Path) -> Vec<u8> {
    let tls = tls_connect(hub, trusted).await;
    let chain = tls.get_ref().1.peer_certificates().expect("a certificate");
    chain[0].as_ref().to_vec()
}

/// A renewed certificate on disk is served to new connections after `SIGHUP` (and within a
/// minute without it), with no restart; a broken renewal (a key that does not fit) is
/// refused and the last good certificate stays.
#[tokio::test]
async fn a_renewed_certificate_is_served_after_sighup() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    let first = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(&cert, first.cert.pem()).expect("write");
    std::fs::write(&key, first.signing_key.serialize_pem()).expect("write");
    let hub = start_with_files(&cert, &key);
    let first_path = tmp.path().join("first.pem");
    std::fs::write(&first_path, first.cert.pem()).expect("write");
    assert_eq!(
        served_cert(&hub, &first_path).await,
        first.cert.der().to_vec()
    );

    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &hub.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    // A broken renewal: the new certificate with the old key. Refused; the first stays.
    let second = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(&cert, second.cert.pem()).expect("write");
    hangup();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        served_cert(&hub, &first_path).await,
        first.cert.der().to_vec()
    );
    // The key arrives: served from the next handshake on.
    std::fs::write(&key, second.signing_key.serialize_pem()).expect("write");
    hangup();
    let second_path = tmp.path().join("second.pem");
    std::fs::write(&second_path, second.cert.pem()).expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let served = served_cert_or_none(&hub, &second_path).await;
        if served.as_deref() == Some(second.cert.der().as_ref()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate is served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        https_get(&hub, &second_path, "/healthz").await.0.status,
        200
    );
}

/// [`served_cert`], or `None` when the handshake fails (the client trusts another one).
async fn served_cert_or_none(hub: &Hub, trusted: &std::path::Path) -> Option<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(trusted).expect("cert file") {
        roots.add(cert.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.ok()?;
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.ok()?;
    let chain = tls.get_ref().1.peer_certificates()?;
    Some(chain[0].as_ref().to_vec())
}

/// A client that completes the TLS handshake and then says nothing is closed after the header
/// timeout (hyper's own timer starts only once it has read enough to choose HTTP/1 or 2).
#[tokio::test]
async fn silent_after_the_handshake_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt as _;
    let hub = Hub::start(
        &["--tls-self-signed"],
        &[("HUBCAST_HTTP__HEADER_READ_TIMEOUT_SECS", "1")],
    );
    let cert = hub.data_dir.join("tls/self-signed-cert.pem");
    let mut silent = tls_connect(&hub, &cert).await;
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        silent.read_to_end(&mut sink),
    )
    .await;
    assert!(read.is_ok(), "still open after 10 s");
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(900), "{took:?}");
    // A client that does speak is served as before.
    let (response, _) = https_get(&hub, &cert, "/healthz").await;
    assert_eq!(response.status, 200);
}

/// `hubcast alert publish` over HTTPS: trusting the hub's certificate with `--ca`, it publishes;
/// without it (the certificate is self-signed, not in the system's bundle) the TLS handshake
/// fails with a hint; a `--ca` that is not PEM is a usage error.
#[test]
fn the_cli_publishes_over_https() {
    let hub = Hub::start(&["--tls-self-signed"], &[]);
    let token = hub.token("city-admin", "330100", &[]);
    let cert = hub.data_dir.join("tls/self-signed-cert.pem");
    let cert = cert.to_str().expect("path");
    let file = alerts_util::data_path("food_warning_330100.xml");
    let publish = |extra: &[&str]| {
        let args = [
            &[
                "alert",
                "publish",
                file.as_str(),
                "--server",
                hub.url.as_str(),
            ][..],
            &["--token", token.as_str()],
            extra,
        ]
        .concat();
        common::run(&args, &[])
    };
    let (status, out, err) = publish(&["--ca", cert]);
    assert!(status.success(), "{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON answer");
    assert_eq!(answer["seq"], 1, "{out}");

    // Without --ca, the system's bundle (here pointed at another hub's certificate, so the
    // result does not depend on this machine's CAs) does not vouch for this hub.
    let other = Hub::start(&["--tls-self-signed"], &[]);
    let other_cert = other.data_dir.join("tls/self-signed-cert.pem");
    let (status, _, err) = common::run(
        &[
            "alert",
            "publish",
            file.as_str(),
            "--server",
            hub.url.as_str(),
            "--token",
            token.as_str(),
        ],
        &[("SSL_CERT_FILE", other_cert.to_str().expect("path"))],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("TLS with") && err.contains("--ca"), "{err}");

    let (status, _, err) = publish(&["--ca", file.as_str()]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("invalid config: ca:"), "{err}");
}
