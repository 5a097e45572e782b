//! THROWAWAY: webrtc-rs clients against the real hub. NOT TO BE COMMITTED.
#![allow(clippy::unwrap_used, missing_debug_implementations)]
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::lossy_relay::{Direction, LossyRelay, RelayConfig};
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_clients_against_real_hub() {
    testkit::isolated!();
    let bin = format!(
        "{}/debug/hubcast",
        std::env::var("CARGO_TARGET_DIR").unwrap_or("/root/.cache/hubcast-target".into())
    );
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("HUBCAST_SFU__UDP_LISTEN", udp.to_string())
        .env("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut url = String::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("hubcast listening on ") {
            url = u.to_owned();
            break;
        }
    }
    let tok = String::from_utf8(
        Command::new(&bin)
            .args([
                "token",
                "--role",
                "city-admin",
                "--region",
                "330100",
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let opts = ClientOptions::with_token(&tok);
    let publisher = WhipPublisher::connect(&url, "r1", &opts, PublishOptions::simulcast())
        .await
        .unwrap();
    println!(
        "publisher {} answer has tcp: {}",
        publisher.location(),
        publisher.answer().contains(" tcp ")
    );
    let ids = testkit::whip::WhipClient::new(&url, Some(&tok))
        .unwrap()
        .publisher_ids("r1")
        .await
        .unwrap();
    println!("ids {ids:?} session_id {}", publisher.session_id());
    let viewer = WhepViewer::connect(&url, "r1", Some(&ids[0]), &opts)
        .await
        .unwrap();
    let s = viewer
        .wait_for("media", Duration::from_secs(10), |s| {
            s.video.keyframes > 0 && s.audio.packets > 25
        })
        .await
        .unwrap_or_else(|e| panic!("{e} {:?} {:?}", viewer.stats(), publisher.stats()));
    println!("initial {:?}", s.video);
    viewer.set_layer("q").await.unwrap();
    let s = viewer
        .wait_for("q", Duration::from_secs(10), |s| {
            s.video.last_keyframe_size == Some((320, 180))
        })
        .await
        .unwrap_or_else(|e| panic!("{e} {:?}", viewer.stats()));
    println!("q {:?}", s.video);
    viewer.set_layer("f").await.unwrap();
    let s = viewer
        .wait_for("f", Duration::from_secs(10), |s| {
            s.video.last_keyframe_size.is_some_and(|x| x.0 > 320)
        })
        .await
        .unwrap_or_else(|e| panic!("{e} {:?}", viewer.stats()));
    println!("f {:?}\npub {:?}", s.video, publisher.stats());
    let floor = WhepViewer::connect(&url, "r1", None, &opts).await.unwrap();
    let fs = floor
        .wait_for("floor media", Duration::from_secs(5), |s| {
            s.video.packets > 50 && s.audio.packets > 25
        })
        .await;
    println!("floor {:?} {:?}", fs.is_ok(), floor.stats());
    // lossy viewer downlink
    let relay = LossyRelay::start(
        udp,
        RelayConfig {
            direction: Direction::ToClient,
            ..RelayConfig::default()
        },
    )
    .await
    .unwrap();
    let lopts = ClientOptions {
        media_via: Some(relay.local_addr()),
        ..opts.clone()
    };
    let lossy = WhepViewer::connect(&url, "r1", Some(&ids[0]), &lopts)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    println!(
        "lossy viewer {:?}\nrelay {:?}",
        lossy.stats(),
        relay.stats()
    );
    // lossy publisher uplink
    let relay2 = LossyRelay::start(udp, RelayConfig::default())
        .await
        .unwrap();
    let popts = ClientOptions {
        media_via: Some(relay2.local_addr()),
        ..opts.clone()
    };
    let p2 = WhipPublisher::connect(&url, "r2", &popts, PublishOptions::default())
        .await
        .unwrap();
    let v2 = WhepViewer::connect(&url, "r2", Some(p2.session_id()), &opts)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    println!(
        "lossy pub {:?}\nviewer {:?}\nrelay2 {:?}",
        p2.stats(),
        v2.stats(),
        relay2.stats()
    );
    for v in [viewer, floor, lossy, v2] {
        v.close().await.unwrap();
    }
    publisher.close().await.unwrap();
    p2.close().await.unwrap();
    let _ = child.kill();
    let _ = child.wait();
}
