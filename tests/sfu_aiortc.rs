//! Interop with an independent stack: aiortc (Python) publishes VP8 + Opus via WHIP; Debian's
//! Chromium watches via WHEP and decodes both.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Hub;
use testkit::browser::Browser;

#[tokio::test]
async fn aiortc_publishes_chromium_watches() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[]);
    // The city convenes (its WHIP publish creates the room); a county in it watches.
    let token = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aiortc/whip_publish.py");
    let mut child = Command::new("python3")
        .args([script, &format!("{}/whip/aiortc", hub.url), &token, "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (scripts/test.sh installs aiortc)");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(40))
        .expect("aiortc reports connected");
    assert!(
        line.starts_with("connected /whip/aiortc/sessions/"),
        "{line}"
    );

    let ids = testkit::whip::WhipClient::new(&hub.url, Some(&token))
        .expect("client")
        .publisher_ids("aiortc")
        .await
        .expect("room");
    let viewer = Browser::launch().await.expect("chromium");
    viewer
        .goto(&format!(
            "{}/assets/test/view.html?room=aiortc&publisher={}&token={county}&muted=1",
            hub.url, ids[0]
        ))
        .await
        .expect("view page");
    let stats = viewer
        .wait_for(
            "hubcastStats().then(s => s.framesDecoded > 30 && s.audio.totalSamplesReceived > 48000 && s)",
            Duration::from_secs(40),
        )
        .await
        .expect("Chromium decodes aiortc's video and audio");
    assert_eq!(stats["frameWidth"].as_u64(), Some(640), "{stats}");
    viewer.close().await.ok();
    let _ = child.kill();
    let _ = child.wait();
}
