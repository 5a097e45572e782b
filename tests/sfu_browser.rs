//! Real browsers against the SFU, inside a loopback-only network namespace: Debian's headless
//! Chromium publishes camera + microphone with three simulcast layers over WHIP; two Chromium
//! viewers watch over WHEP and decode video and audio; a viewer that asks for the low layer
//! drops to ≈320 px wide and comes back up on request without freezing. The same with VP9
//! simulcast (one L1T3 stream per layer).

mod common;

use std::time::Duration;

use common::Hub;
use testkit::browser::Browser;

const CONNECT: Duration = Duration::from_secs(30);

async fn stats(viewer: &Browser) -> serde_json::Value {
    viewer.eval("hubcastStats()").await.expect("stats")
}

fn num(value: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_f64().unwrap_or(0.0)
}

/// A Chromium publisher of room `room` (test page query `extra` appended), connected over
/// WHIP and sending all three simulcast encodings, the top one at least 640 px wide.
async fn publish(hub: &Hub, room: &str, extra: &str, token: &str) -> Browser {
    let publisher = common::chromium_publisher(hub, room, extra, token).await;
    let sent = publisher
        .wait_for(
            "hubcastStats().then(s => ['q','h','f'].every(r => s.video[r] && s.video[r].framesEncoded > 10) && s)",
            CONNECT,
        )
        .await
        .expect("three layers encoded");
    assert!(num(&sent, &["video", "f", "frameWidth"]) >= 640.0, "{sent}");
    publisher
}

#[tokio::test]
async fn chromium_simulcast_publish_two_viewers_and_layer_switch() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[]);
    let publisher_token = hub.token("city-admin", "330100", &["--sub", "杭州市局"]);
    let wall_token = hub.token("wall", "330100", &[]);
    let county_token = hub.token("county-operator", "330106", &[]);

    let publisher = publish(&hub, "weekly", "", &publisher_token).await;

    let client = testkit::whip::WhipClient::new(&hub.url, Some(&publisher_token)).expect("client");
    let ids = client.publisher_ids("weekly").await.expect("room listing");
    assert_eq!(ids.len(), 1, "{ids:?}");

    // Viewer 1: a city wall watching that publisher. Viewer 2: a county joining the city room,
    // watching the room's stage (`POST /whep/{room}`: floor, else speaker, else first publisher).
    let viewer1 = Browser::launch().await.expect("chromium");
    viewer1
        .goto(&format!(
            "{}/assets/test/view.html?room=weekly&publisher={}&muted=1#token={wall_token}",
            hub.url, ids[0]
        ))
        .await
        .expect("view page");
    let viewer2 = Browser::launch().await.expect("chromium");
    viewer2
        .goto(&format!(
            "{}/assets/test/view.html?room=weekly&token={county_token}&muted=1",
            hub.url
        ))
        .await
        .expect("view page");
    for (name, viewer) in [("viewer1", &viewer1), ("viewer2", &viewer2)] {
        viewer
            .wait_for("hubcastStats().then(s => s.framesDecoded > 30 && s.audio.totalSamplesReceived > 48000)", CONNECT)
            .await
            .unwrap_or_else(|e| panic!("{name} decodes video and audio: {e}"));
        let a = stats(viewer).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = stats(viewer).await;
        assert!(
            num(&b, &["framesDecoded"]) > num(&a, &["framesDecoded"]) + 10.0,
            "{name} keeps decoding: {a} → {b}"
        );
        assert!(
            num(&b, &["audio", "totalSamplesReceived"])
                > num(&a, &["audio", "totalSamplesReceived"]),
            "{name} audio keeps flowing: {a} → {b}"
        );
    }

    // The link to each viewer as str0m measures it from Chromium's receiver reports (which
    // echo str0m's sender reports): a round-trip time, short on loopback, and ~no loss.
    let auth = format!("Bearer {publisher_token}");
    let links = testkit::wait_until(CONNECT, "viewers' RTT", || async {
        let room = common::get(
            hub.addr,
            "/api/v1/rooms/weekly",
            &[("Authorization", &auth)],
        )
        .await
        .json();
        let stats: Vec<serde_json::Value> = (room["viewer_sessions"].as_array())
            .map(|v| v.iter().map(|s| s["stats"].clone()).collect())
            .unwrap_or_default();
        Ok((stats.len() == 2
            && stats
                .iter()
                .all(|s| s["rtt_ms"].is_number() && s["loss"].is_number()))
        .then_some(stats))
    })
    .await
    .expect("str0m measures an RTT to both Chromium viewers");
    for link in &links {
        println!(
            "viewer link: rtt {} ms, loss {}",
            link["rtt_ms"], link["loss"]
        );
        assert!((0.0..200.0).contains(&num(link, &["rtt_ms"])), "{link}");
        assert!((0.0..=0.05).contains(&num(link, &["loss"])), "{link}");
    }

    // Viewer 1 asks for the low layer: its picture drops to ≈320 wide, without freezing.
    switch_down_and_up(&viewer1).await;
    // The other viewer was not disturbed.
    let other = stats(&viewer2).await;
    assert!(
        num(&other, &["frameWidth"]) >= 640.0,
        "viewer2 stays on the high layer: {other}"
    );

    // ICE restart of the publisher over WHIP PATCH: media keeps flowing to the viewers.
    let new_ufrag = publisher
        .eval("hubcastRestartIce()")
        .await
        .expect("ICE restart");
    assert!(
        new_ufrag.as_str().is_some_and(|u| u.starts_with("hc")),
        "{new_ufrag}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = stats(&viewer2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = stats(&viewer2).await;
    assert_eq!(
        publisher
            .eval("hubcastState().connection")
            .await
            .expect("state"),
        "connected"
    );
    assert_eq!(
        publisher.eval("hubcastState().ice").await.expect("state"),
        "connected"
    );
    assert!(
        num(&b, &["framesDecoded"]) > num(&a, &["framesDecoded"]) + 10.0,
        "media flows after the ICE restart: {a} → {b}"
    );

    // The hub's metrics saw forwarding, keyframe requests and switches.
    let metrics = common::get(hub.addr, "/metrics", &[]).await.body;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    assert!(
        value("hubcast_sfu_forwarded_packets_total") > 500.0,
        "{metrics}"
    );
    assert!(
        value("hubcast_sfu_layer_switches_total") >= 2.0,
        "{metrics}"
    );
    assert_eq!(value("hubcast_sfu_peers"), 3.0);

    viewer1.close().await.ok();
    viewer2.close().await.ok();
    publisher.close().await.ok();
}

/// Asks `viewer` for the low layer, then the high one: its picture drops to ≈320 px wide and
/// comes back, freezing at most once for at most a keyframe's round trip in all.
async fn switch_down_and_up(viewer: &Browser) {
    let before = stats(viewer).await;
    viewer.eval("hubcastSetLayer('q')").await.expect("layer q");
    let low = viewer
        .wait_for(
            "hubcastStats().then(s => s.frameWidth > 0 && s.frameWidth <= 400 && s)",
            Duration::from_secs(15),
        )
        .await
        .expect("frameWidth drops to the q layer");
    assert!(
        (240.0..=400.0).contains(&num(&low, &["frameWidth"])),
        "{low}"
    );
    // And back up on request.
    viewer.eval("hubcastSetLayer('f')").await.expect("layer f");
    let high = viewer
        .wait_for(
            "hubcastStats().then(s => s.frameWidth >= 640 && s)",
            Duration::from_secs(15),
        )
        .await
        .expect("frameWidth rises again");
    let freezes = num(&high, &["freezeCount"]) - num(&before, &["freezeCount"]);
    assert!(
        freezes <= 1.0,
        "at most one freeze across two switches: {before} → {high}"
    );
    // A switch waits for the target layer's keyframe, which the SFU requests at once: the
    // picture may stand still for that one keyframe's round trip (PLI, encode, send), not
    // until the encoder's next periodic keyframe.
    let frozen = num(&high, &["totalFreezesDuration"]) - num(&before, &["totalFreezesDuration"]);
    println!("layer switches: {freezes} freezes, {frozen:.3} s frozen");
    assert!(
        frozen <= 1.0,
        "frozen at most one keyframe round trip across two switches ({frozen:.3} s): {before} → {high}"
    );
}

#[tokio::test]
async fn chromium_vp9_simulcast_publish_view_and_layer_switch() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[]);
    let publisher_token = hub.token("city-admin", "330100", &["--sub", "杭州市局"]);
    let wall_token = hub.token("wall", "330100", &[]);
    let publisher = publish(&hub, "vp9", "&codec=vp9", &publisher_token).await;
    let client = testkit::whip::WhipClient::new(&hub.url, Some(&publisher_token)).expect("client");
    let ids = client.publisher_ids("vp9").await.expect("room listing");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let viewer = Browser::launch().await.expect("chromium");
    viewer
        .goto(&format!(
            "{}/assets/test/view.html?room=vp9&publisher={}&muted=1#token={wall_token}",
            hub.url, ids[0]
        ))
        .await
        .expect("view page");
    let decoding = viewer
        .wait_for(
            "hubcastStats().then(s => s.framesDecoded > 30 && s)",
            CONNECT,
        )
        .await
        .expect("the viewer decodes");
    assert_eq!(decoding["codec"], "video/VP9", "{decoding}");
    switch_down_and_up(&viewer).await;
    let a = stats(&viewer).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = stats(&viewer).await;
    assert!(
        num(&b, &["framesDecoded"]) > num(&a, &["framesDecoded"]) + 10.0,
        "keeps decoding after the switches: {a} → {b}"
    );
    viewer.close().await.ok();
    publisher.close().await.ok();
}
