//! `/metrics` as Prometheus' own tool reads it: after the hub has published and delivered
//! alerts, hosted a media session and refused requests (so every family has samples), the
//! exposition is fed to `promtool check metrics` (from Debian's `prometheus` package, which
//! `scripts/test.sh` unpacks under `~/.cache/hubcast-tools`), which parses it and lints names,
//! units, types and help texts. Any problem it prints fails the test.

mod alerts_util;
mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Hub, call, get, sdp_offer};

#[tokio::test]
async fn the_metrics_pass_promtool() {
    let hub = Hub::start(&[], &[]);
    let province = hub.token("province-admin", "330000", &[]);
    // A live subscriber, then alerts it receives.
    let mut stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let head = "GET /sse/alerts?region=330100 HTTP/1.1\r\nHost: x\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .expect("subscribe");
    for xml in [alerts_util::FOOD_XML, alerts_util::SPOT_XML] {
        alerts_util::publish_xml(&hub, &province, xml).await;
    }
    // A media session, refusals, an archive read and a feed.
    let offer = sdp_offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let answer = call(
        &hub,
        "POST",
        "/whip/metrics",
        Some(&province),
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    for path in [
        "/nothing",
        "/api/v1/alerts?region=1",
        "/api/v1/alerts",
        "/feeds/alerts.atom",
    ] {
        get(hub.addr, path, &[]).await;
    }
    // Deliveries are counted when written.
    testkit::wait_until(Duration::from_secs(10), "deliveries counted", || async {
        let n = common::metric(&hub, "hubcast_alert_deliveries_total").await;
        Ok((n >= 2.0).then_some(()))
    })
    .await
    .expect("the subscriber got both alerts");

    let exposition = get(hub.addr, "/metrics", &[]).await;
    assert_eq!(exposition.status, 200);
    // On the PATH, or where scripts/test.sh unpacks it.
    let cached = std::env::var("HOME")
        .map(|home| format!("{home}/.cache/hubcast-tools/usr/bin/promtool"))
        .ok()
        .filter(|path| std::path::Path::new(path).exists());
    let mut promtool = Command::new(cached.as_deref().unwrap_or("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test.sh unpacks it from Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.body.as_bytes())
        .expect("write the exposition");
    let out = promtool.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}\n--- the exposition ---\n{}",
        out.status,
        exposition.body
    );
    // What was checked covers the three jobs and the process.
    for family in [
        "hubcast_build_info",
        "hubcast_http_requests_total",
        "hubcast_alert_published_total",
        "hubcast_alert_deliveries_total",
        "hubcast_sfu_peers",
        "process_cpu_seconds_total",
    ] {
        assert!(
            exposition.body.contains(&format!("\n{family}")),
            "{family} in the exposition:\n{}",
            exposition.body
        );
    }
}
