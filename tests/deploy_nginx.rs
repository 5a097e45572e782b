//! The shipped nginx front (`deploy/nginx/hubcast.conf`, included unchanged) in front of a
//! real hub, with the hub trusting its `X-Forwarded-For`: an alert published through nginx
//! reaches a WebSocket and an SSE subscriber connected through nginx (upgraded, unbuffered),
//! the per-address cap counts each subscriber's own address (not nginx's), an oversize alert
//! gets the hub's own JSON 413, `/metrics` is only for the addresses the front allows, and a webrtc-rs publisher and viewer negotiate WHIP/WHEP
//! through nginx with the media going straight to the hub's port. nginx is Debian's binary
//! (`scripts/test.sh` unpacks it under `~/.cache/hubcast-tools` when it is not installed),
//! run in the test's loopback-only namespace.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alerts_live_util::{Seen, Sse, Ws, accepted_or_refused, post_cap_on};
use alerts_util::FOOD_XML;
use common::{Hub, Response};
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

/// A running nginx, killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on PATH (or /usr/sbin), else the copy `scripts/test.sh` unpacked.
fn nginx_binary() -> PathBuf {
    let cached = std::env::var("HOME")
        .map(|home| PathBuf::from(home).join(".cache/hubcast-tools/usr/sbin/nginx"))
        .ok();
    let candidates = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .chain(cached);
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("nginx (scripts/test.sh unpacks it from Debian's nginx package)")
}

impl Nginx {
    /// Starts nginx on a free port in front of `upstream`, serving `deploy/nginx/hubcast.conf`.
    fn start(upstream: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().expect("tmp");
        let port = testkit::free_tcp_port().expect("free port");
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let locations = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/hubcast.conf");
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             upstream hubcast {{ server {upstream}; keepalive 8; }}\n  \
             server {{\n    listen {addr};\n    include {};\n  }}\n}}\n",
            locations.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-e", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            addr,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A TCP connection to `to` from `source` (each source address is another subscriber).
async fn from(source: [u8; 4], to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind source");
    socket.connect(to).await.expect("connect")
}

/// `/ws/alerts?region=330106` through `nginx` from `source`: the socket or the refusal's
/// status and body.
async fn ws_from(nginx: &Nginx, source: [u8; 4]) -> Result<Ws, (u16, String)> {
    let stream = from(source, nginx.addr).await;
    let url = format!("ws://{}/ws/alerts?region=330106", nginx.addr);
    let plain = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    accepted_or_refused(tokio_tungstenite::client_async(url, plain).await)
}

/// `POST /api/v1/alerts` of `xml` through `nginx`.
async fn post_alert(nginx: &Nginx, token: &str, xml: &str) -> Response {
    let stream = tokio::net::TcpStream::connect(nginx.addr)
        .await
        .expect("connect");
    post_cap_on(stream, token, xml).await
}

#[tokio::test]
async fn the_shipped_nginx_front_carries_alerts_limits_and_whip() {
    testkit::isolated!();
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_HTTP__TRUSTED_PROXIES", r#"["127.0.0.1"]"#),
            ("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "2"),
        ],
    );
    let nginx = Nginx::start(hub.addr);

    // Subscribers through nginx, each from its own address.
    let mut ws = ws_from(&nginx, [127, 0, 0, 2]).await.expect("WebSocket");
    let sse_stream = from([127, 0, 0, 3], nginx.addr).await;
    let mut sse = Sse::connect_on(sse_stream, "region=330106", &[]).await;

    let token = hub.token("city-admin", "330100", &[]);
    let published = post_alert(&nginx, &token, FOOD_XML).await;
    assert_eq!(published.status, 201, "{}", published.body);
    let seq = published.json()["seq"].as_u64().expect("seq");
    for seen in [ws.next().await, sse.next().await] {
        assert!(
            matches!(seen, Seen::Alert(s, _) if s == seq),
            "the alert comes through nginx as it is published: {seen:?}"
        );
    }

    // The cap counts 127.0.0.2 (what nginx forwards), not nginx's own 127.0.0.1.
    let second = ws_from(&nginx, [127, 0, 0, 2]).await.expect("second");
    let (status, body) = match ws_from(&nginx, [127, 0, 0, 2]).await {
        Err(refused) => refused,
        Ok(_) => panic!("a third socket from 127.0.0.2 is refused"),
    };
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too_many_connections") && body.contains("127.0.0.2"),
        "the hub's JSON refusal, naming the subscriber: {body}"
    );
    let other = ws_from(&nginx, [127, 0, 0, 4])
        .await
        .expect("another subscriber through the same nginx");

    // An oversize alert is refused by the hub (its JSON), not by nginx (an HTML page).
    let huge = "x".repeat(300 * 1024);
    let refused = post_alert(&nginx, &token, &huge).await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert_eq!(refused.json()["error"], "too_large", "{}", refused.body);

    // Metrics only for the addresses the front allows (loopback as shipped).
    let outsider = common::request(
        from([127, 0, 0, 5], nginx.addr).await,
        "GET",
        "/metrics",
        &[],
    )
    .await;
    assert_eq!(outsider.status, 403, "{}", outsider.body);
    let local = common::get(nginx.addr, "/metrics", &[]).await;
    assert_eq!(local.status, 200);
    assert!(
        local.body.contains("hubcast_alert_published_total"),
        "{}",
        local.body
    );

    // WHIP and WHEP through nginx; the media goes straight to the hub's UDP port.
    let opts = ClientOptions::with_token(&token);
    let publisher = WhipPublisher::connect(&nginx.url(), "front", &opts, PublishOptions::default())
        .await
        .expect("WHIP through nginx");
    assert!(
        publisher.location().starts_with(&nginx.url()),
        "the session's Location resolves against the proxy: {}",
        publisher.location()
    );
    let viewer = WhepViewer::connect(&nginx.url(), "front", Some(publisher.session_id()), &opts)
        .await
        .expect("WHEP through nginx");
    common::media_flows_cleanly(&hub, &viewer).await;
    viewer.close().await.expect("viewer's DELETE through nginx");
    publisher
        .close()
        .await
        .expect("publisher's DELETE through nginx");
    drop((second, other));
}
