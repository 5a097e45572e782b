//! Interop with an independent stack: aiortc (Python) publishes VP8 + Opus, then H.264 + Opus,
//! via WHIP; Debian's Chromium watches via WHEP and decodes both, with the codec checked.

mod common;

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
    let viewer = Browser::launch().await.expect("chromium");
    for (codec, mime) in [("vp8", "video/VP8"), ("h264", "video/H264")] {
        let room = format!("aiortc-{codec}");
        let mut publisher = Publisher::start(&hub, &room, &token, codec);
        let ids = testkit::whip::WhipClient::new(&hub.url, Some(&token))
            .expect("client")
            .publisher_ids(&room)
            .await
            .expect("room");
        viewer
            .goto(&format!(
                "{}/assets/test/view.html?room={room}&publisher={}&token={county}&muted=1",
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
            .unwrap_or_else(|e| panic!("Chromium decodes aiortc's {codec} and Opus: {e}"));
        assert_eq!(stats["frameWidth"].as_u64(), Some(640), "{codec}: {stats}");
        assert_eq!(stats["codec"].as_str(), Some(mime), "{codec}: {stats}");
        publisher.stop();
    }
    viewer.close().await.ok();
}

/// The aiortc publisher script, running until stopped.
struct Publisher(std::process::Child);

impl Publisher {
    /// Starts it publishing `codec` into `room`; returns once it reports ICE+DTLS connected.
    fn start(hub: &Hub, room: &str, token: &str, codec: &str) -> Publisher {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aiortc/whip_publish.py");
        let mut child = Command::new("python3")
            .args([
                script,
                &format!("{}/whip/{room}", hub.url),
                token,
                "60",
                codec,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (scripts/test.sh installs aiortc)");
        let line = common::stdout_lines(&mut child)
            .recv_timeout(Duration::from_secs(40))
            .expect("aiortc reports connected");
        assert!(
            line.starts_with(&format!("connected /whip/{room}/sessions/")),
            "{line}"
        );
        Publisher(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}
