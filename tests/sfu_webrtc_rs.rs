//! Interop with an independent Rust stack: webrtc-rs (`webrtc` crate) publishers and viewers
//! against the str0m-based SFU, over real UDP on loopback (inside a loopback-only namespace).
//! Simulcast publish → viewer on one continuous SSRC and VP8 picture ID sequence with layer
//! switches; active speaker from RFC 6464 audio levels carried in real RTP header extensions.

mod common;

use std::time::Duration;

use common::{Hub, get};
use testkit::lossy_relay::{LossyRelay, RelayConfig};
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

const WAIT: Duration = Duration::from_secs(20);

/// A hub and a city admin's token, with a webrtc-rs simulcast publisher (q/h/f) in `room`.
async fn simulcast_room(room: &str) -> (Hub, String, WhipPublisher) {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions::with_token(&token);
    let publisher = WhipPublisher::connect(&hub.url, room, &opts, PublishOptions::simulcast())
        .await
        .expect("webrtc-rs publishes via WHIP");
    (hub, token, publisher)
}

#[tokio::test]
async fn webrtc_rs_publisher_and_viewer() {
    testkit::isolated!();
    let (hub, token, publisher) = simulcast_room("rs").await;
    let opts = ClientOptions::with_token(&token);
    let viewer = WhepViewer::connect(&hub.url, "rs", Some(publisher.session_id()), &opts)
        .await
        .expect("webrtc-rs plays via WHEP");
    let stats = viewer
        .wait_for("video and audio", WAIT, |s| {
            s.video.frames > 30 && s.audio.packets > 50
        })
        .await
        .expect("media flows");
    assert_eq!(
        stats.video.ssrcs.len(),
        1,
        "one SSRC whatever the layer: {stats:?}"
    );

    viewer.set_layer("q").await.expect("layer q");
    viewer
        .wait_for("q-layer keyframe", WAIT, |s| {
            s.video.last_keyframe_size == Some((320, 180))
        })
        .await
        .expect("switch to q");
    viewer.set_layer("h").await.expect("layer h");
    let after = viewer
        .wait_for("h-layer keyframe", WAIT, |s| {
            s.video.last_keyframe_size == Some((640, 360))
        })
        .await
        .expect("switch to h");
    assert_eq!(
        after.video.ssrcs.len(),
        1,
        "still one SSRC after two switches: {after:?}"
    );
    assert_eq!(
        after.video.lost, 0,
        "no gaps on loopback across switches: {after:?}"
    );
    assert!(
        after.video.max_gap < Duration::from_secs(1),
        "no long stall: {after:?}"
    );
    // Each layer's encoder numbers its own pictures (from a random start): the viewer still
    // sees one picture ID sequence, +1 per frame, across both switches (RFC 7741).
    assert_eq!(
        after.video.picture_id_jumps, 0,
        "VP8 picture IDs continue across switches: {after:?}"
    );
    // What the hub sent (copies plus RTCP, STUN, retransmissions, padding) and how long it
    // held each received datagram before handing what it caused to the kernel.
    let forwarded = common::metric(&hub, "hubcast_sfu_forwarded_packets_total").await;
    let sent = common::metric(&hub, "hubcast_sfu_sent_datagrams_total").await;
    assert!(
        forwarded > 0.0 && sent > forwarded,
        "{sent} sent, {forwarded} forwarded"
    );
    // Each worker adds its times to the shared histogram once a second.
    let timed = testkit::wait_until(WAIT, "datagrams timed", || async {
        let n = common::metric(&hub, "hubcast_sfu_receive_to_send_seconds_count").await;
        Ok((n > forwarded / 2.0).then_some(n))
    })
    .await
    .expect("received datagrams are timed");
    let within_100ms = common::metric(
        &hub,
        "hubcast_sfu_receive_to_send_seconds_bucket{le=\"0.1\"}",
    )
    .await;
    assert!(timed > forwarded / 2.0, "{timed} datagrams timed");
    assert!(
        within_100ms > 0.9 * timed,
        "{within_100ms} of {timed} within 100 ms"
    );
    // The room's listing carries what an operator needs to see which site struggles: the
    // room's counters, and each publisher's and viewer's.
    let auth = format!("Bearer {token}");
    let room = get(hub.addr, "/api/v1/rooms/rs", &[("Authorization", &auth)]).await;
    assert_eq!(room.status, 200, "{}", room.body);
    let room = room.json();
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("a count: {v}"));
    let stats = &room["stats"];
    assert!(
        n(&stats["packets_in"]) > 0 && n(&stats["forwarded_packets"]) > 0,
        "{room}"
    );
    assert!(n(&stats["layer_switches"]) >= 2, "{room}");
    assert_eq!(n(&stats["peers"]), 2, "{room}");
    let publisher_stats = &room["publishers"][0]["stats"];
    assert!(n(&publisher_stats["packets_in"]) > 0, "{room}");
    assert!(
        n(&publisher_stats["keyframe_requests_sent"]) >= 1,
        "switches ask: {room}"
    );
    let viewers = room["viewer_sessions"].as_array().expect("viewers");
    assert_eq!(viewers.len(), 1, "{room}");
    assert_eq!(room["viewers"], 1);
    let viewer_stats = &viewers[0]["stats"];
    assert!(n(&viewer_stats["forwarded_packets"]) > 0, "{room}");
    assert!(n(&viewer_stats["layer_switches"]) >= 2, "{room}");
    // The link as each end reports it (str0m's stats every second): the loss fraction of
    // the viewer's receiver reports and of what we received from the publisher, ~0 on
    // loopback. (webrtc-rs's reports carry no sender-report timing, so no RTT here.)
    let link = testkit::wait_until(WAIT, "link stats", || async {
        let room = get(hub.addr, "/api/v1/rooms/rs", &[("Authorization", &auth)]).await;
        let room = room.json();
        let v = room["viewer_sessions"][0]["stats"].clone();
        let p = room["publishers"][0]["stats"].clone();
        Ok((v["loss"].is_number() && p["loss"].is_number()).then_some((v, p)))
    })
    .await;
    let (v, p) = match link {
        Ok(link) => link,
        Err(e) => {
            let room = get(hub.addr, "/api/v1/rooms/rs", &[("Authorization", &auth)]).await;
            panic!("{e}: the viewer's and the publisher's loss: {}", room.body)
        }
    };
    let num = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
    // (Checked against Chromium in `sfu_browser`.)
    assert!(v["rtt_ms"].is_null(), "{v}");
    assert!((0.0..=0.05).contains(&num(&v["loss"])), "{v}");
    assert!((0.0..=0.05).contains(&num(&p["loss"])), "{p}");
    viewer.close().await.ok();
    publisher.close().await.ok();
}

/// A hub (with `env`), a webrtc-rs publisher of one video layer at `kbps` plus audio in
/// `room`, and a webrtc-rs viewer of it.
struct SingleLayer {
    hub: Hub,
    token: String,
    room: String,
    publisher: WhipPublisher,
    viewer: WhepViewer,
}

impl SingleLayer {
    async fn start(room: &str, kbps: u32, env: &[(&str, &str)]) -> SingleLayer {
        use testkit::rtc_client::Layer;
        let hub = Hub::start(&[], env);
        let token = hub.token("city-admin", "330100", &[]);
        let opts = ClientOptions::with_token(&token);
        let media = PublishOptions {
            layers: vec![Layer::new("", 1280, 720, kbps)],
            ..PublishOptions::default()
        };
        let publisher = WhipPublisher::connect(&hub.url, room, &opts, media)
            .await
            .expect("webrtc-rs publishes via WHIP");
        let viewer = WhepViewer::connect(&hub.url, room, Some(publisher.session_id()), &opts)
            .await
            .expect("webrtc-rs plays via WHEP");
        SingleLayer {
            hub,
            token,
            room: room.to_owned(),
            publisher,
            viewer,
        }
    }

    /// The viewer's session stats from `GET /api/v1/rooms/{room}`.
    async fn viewer_stats(&self) -> serde_json::Value {
        let auth = format!("Bearer {}", self.token);
        let path = format!("/api/v1/rooms/{}", self.room);
        let room = get(self.hub.addr, &path, &[("Authorization", &auth)]).await;
        assert_eq!(room.status, 200, "{}", room.body);
        room.json()["viewer_sessions"][0]["stats"].clone()
    }

    async fn close(self) {
        self.viewer.close().await.ok();
        self.publisher.close().await.ok();
    }
}

/// A wall asks for thumbnails right after the answer, before its viewer has connected: its
/// video starts at the low layer and never shows another (no keyframe of a higher one first).
#[tokio::test]
async fn a_layer_asked_before_connecting_is_the_one_video_starts_at() {
    testkit::isolated!();
    let (hub, token, publisher) = simulcast_room("thumbs").await;
    let thumbnail = ClientOptions {
        layer: Some("q".to_owned()),
        ..ClientOptions::with_token(&token)
    };
    let viewer = WhepViewer::connect(&hub.url, "thumbs", Some(publisher.session_id()), &thumbnail)
        .await
        .expect("a viewer asking for q before it connects");
    let stats = viewer
        .wait_for("video", WAIT, |s| s.video.frames > 60)
        .await
        .expect("media flows");
    assert_eq!(
        stats.video.sizes_seen,
        vec![(320, 180)],
        "only the low layer, from the first keyframe: {stats:?}"
    );
    viewer.close().await.ok();
    publisher.close().await.ok();
}

/// A stream four times a viewer's starting estimate (1.5 Mbit/s): the SFU tells the viewer's
/// bandwidth estimator what the viewer wants (the stream's rate with the upswitch headroom),
/// str0m probes toward it and the estimate passes the stream's rate within the first second
/// or so; the video, held back until then (one layer, nothing lower to send), starts. Without
/// a desired bitrate str0m never probes: before the video was held back, the estimate crept
/// up from what was acknowledged (~9 s of media, 6.6 MB, to pass 6 Mbit/s here) while the
/// pacer, at 1.1× the estimate, queued the rest (in `sfu-load` at 4 Mbit/s with 100 viewers it
/// never caught up: 1.35 s added latency at p99, BENCHMARKS.md); now the video would never
/// start. Progress is measured in media forwarded, not wall time.
#[tokio::test]
async fn a_viewers_estimate_climbs_to_what_it_watches() {
    testkit::isolated!();
    let scene = SingleLayer::start("bwe", 6_000, &[]).await;
    let viewer_stats = || scene.viewer_stats();
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let climbed = testkit::wait_until(WAIT, "the viewer's estimate to pass 6 Mbit/s", || async {
        let st = viewer_stats().await;
        Ok((n(&st["estimate_bps"]) > 6_000_000).then_some(st))
    })
    .await;
    let st = match climbed {
        Ok(st) => st,
        Err(e) => panic!("{e}: {}", viewer_stats().await),
    };
    // ~4 s of the stream: four times what probing needs here, under half of what creeping
    // up took.
    assert!(
        n(&st["forwarded_bytes"]) < 3_000_000,
        "the estimate passed the stream's rate within its first seconds: {st}"
    );
    scene
        .viewer
        .wait_for("the video", WAIT, |s| s.video.frames > 30)
        .await
        .expect("the video flows once the estimate has room for it");
    // What the viewer wants settles, once the publisher's meter spans a second, at the
    // stream's ~6.1 Mbit/s of video and audio payload × 1.25 (reported again on every move of
    // more than 10 %).
    let settled = testkit::wait_until(WAIT, "the wanted bitrate to settle", || async {
        let st = viewer_stats().await;
        Ok((6_500_000..=9_500_000)
            .contains(&n(&st["wanted_bps"]))
            .then_some(()))
    })
    .await;
    if let Err(e) = settled {
        panic!("{e}: {}", viewer_stats().await);
    }
    scene.close().await;
}

/// A viewer whose estimate starts far below a single-layer video (100 kbit/s against
/// ~1 Mbit/s, and no lower layer to switch to) gets the audio at once and the video once
/// probing has found room for it: the paused video's rate still counts in what the viewer
/// wants, so its estimator keeps probing and nothing deadlocks. The video was never flowing,
/// so no pause is counted.
#[tokio::test]
async fn a_video_too_big_for_the_starting_estimate_starts_once_probing_finds_room() {
    testkit::isolated!();
    let scene = SingleLayer::start(
        "start",
        1_000,
        &[("HUBCAST_SFU__INITIAL_BWE_BPS", "100000")],
    )
    .await;
    let stats = scene
        .viewer
        .wait_for("video and audio", WAIT, |s| {
            s.video.frames > 30 && s.audio.packets > 50
        })
        .await
        .expect("the video starts");
    assert_eq!(stats.video.lost, 0, "{stats:?}");
    let viewer_stats = &scene.viewer_stats().await;
    assert!(
        viewer_stats["estimate_bps"].as_u64().unwrap_or(0) > 1_000_000,
        "{viewer_stats}"
    );
    assert_eq!(viewer_stats["bandwidth_pauses"], 0, "{viewer_stats}");
    let metrics = get(scene.hub.addr, "/metrics", &[]).await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l == "hubcast_sfu_bandwidth_pauses_total 0"),
        "the counter is there, at 0: {metrics}"
    );
    scene.close().await;
}

/// A hub, a webrtc-rs simulcast publisher reaching its SFU through testkit's relay (set up
/// with `relay`), and a direct webrtc-rs viewer of it, in `room`, once media flows.
struct Relayed {
    hub: Hub,
    relay: LossyRelay,
    publisher: WhipPublisher,
    viewer: WhepViewer,
    token: String,
    /// What the viewer had received when media was seen flowing.
    flowing: testkit::rtc_client::ViewerStats,
}

impl Relayed {
    async fn start(room: &str, relay: RelayConfig) -> Relayed {
        let (hub, relay) = common::hub_behind_relay(relay).await;
        let token = hub.token("city-admin", "330100", &[]);
        let via = ClientOptions {
            media_via: Some(relay.local_addr()),
            ..ClientOptions::with_token(&token)
        };
        let publisher = WhipPublisher::connect(&hub.url, room, &via, PublishOptions::simulcast())
            .await
            .expect("publishes through the relay");
        let opts = ClientOptions::with_token(&token);
        let viewer = WhepViewer::connect(&hub.url, room, Some(publisher.session_id()), &opts)
            .await
            .expect("plays");
        let flowing = viewer
            .wait_for("video and audio", WAIT, |s| {
                s.video.frames > 30 && s.audio.packets > 50
            })
            .await
            .expect("media flows");
        Relayed {
            hub,
            relay,
            publisher,
            viewer,
            token,
            flowing,
        }
    }
}

/// Replayed RTP (here every datagram of the publisher arrives twice, as a duplicating
/// network or an attacker on the path would send it) is dropped before decryption and
/// counted; the viewer gets each packet once.
#[tokio::test]
async fn replayed_rtp_is_dropped_and_counted() {
    testkit::isolated!();
    let duplicating = RelayConfig {
        seed: 3,
        duplicate: 1.0,
        ..RelayConfig::passthrough()
    };
    let Relayed {
        hub,
        relay,
        publisher,
        viewer,
        flowing: stats,
        ..
    } = Relayed::start("dup", duplicating).await;
    assert_eq!(
        (stats.video.duplicates, stats.audio.duplicates),
        (0, 0),
        "each packet once: {stats:?}"
    );
    assert_drops_counted(&hub, "replayed", 100.0, || {
        relay.stats().to_server.duplicated
    })
    .await;
    viewer.close().await.ok();
    publisher.close().await.ok();
}

/// The hub's drops for `reason` are at least `min` and at most what the relay did to cause
/// them (`caused`, read after the metric: each drop counted was caused first).
async fn assert_drops_counted(hub: &Hub, reason: &str, min: f64, caused: impl Fn() -> u64) {
    let name = format!(r#"hubcast_sfu_dropped_packets_total{{reason="{reason}"}}"#);
    let counted = common::metric(hub, &name).await;
    let caused = caused();
    assert!(
        counted >= min && counted <= caused as f64,
        "{reason}: {counted} counted of {caused} the relay caused"
    );
}

/// SRTP and SRTCP whose authentication tag does not verify (here one in twenty of the
/// publisher's packets arrives with its tag's last byte flipped, as a forger on the path or
/// a corrupting middlebox would send it) is dropped and counted as `unauthenticated`, which
/// str0m alone does silently; the viewer still gets the stream, the holes NACKed to the publisher.
#[tokio::test]
async fn forged_srtp_is_dropped_and_counted() {
    testkit::isolated!();
    let tampering = RelayConfig {
        tamper: 0.05,
        ..RelayConfig::passthrough()
    };
    let Relayed {
        hub,
        relay,
        publisher,
        viewer,
        ..
    } = Relayed::start("forged", tampering).await;
    viewer
        .wait_for("more video", WAIT, |s| s.video.frames > 120)
        .await
        .expect("the stream goes on");
    // A dropped forgery is a hole in the publisher's stream: the SFU asks for it again.
    let nacked = testkit::wait_until(WAIT, "NACKs to the publisher", || async {
        let n = common::metric(
            &hub,
            r#"hubcast_sfu_nacks_total{direction="to_publishers"}"#,
        )
        .await;
        Ok((n > 0.0).then_some(()))
    })
    .await;
    assert!(nacked.is_ok(), "{nacked:?}");
    assert_drops_counted(&hub, "unauthenticated", 20.0, || {
        relay.stats().to_server.tampered
    })
    .await;
    viewer.close().await.ok();
    publisher.close().await.ok();
}

/// Garbage from a connected peer's own address (where the demux sends it to that peer's
/// session, past the stranger checks): random bytes in every RFC 7983 range, RTP and RTCP
/// headers with junk behind them, truncated ones. The session survives, media keeps flowing
/// to the viewer, and the hub stays healthy.
#[tokio::test]
async fn garbage_from_a_connected_peer_does_not_disturb_its_session() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    testkit::isolated!();
    let clean = RelayConfig::passthrough();
    let Relayed {
        hub,
        relay,
        publisher,
        viewer,
        token,
        flowing: before,
    } = Relayed::start("junk", clean).await;
    let datagram = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1400),
        // RTP (RFC 7983: 128–191) and RTCP (payload types 192–223 in the second byte).
        (
            128u8..192,
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..1300)
        )
            .prop_map(|(b0, b1, rest)| [vec![b0, b1], rest].concat()),
        (
            128u8..192,
            192u8..224,
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(b0, b1, rest)| [vec![b0, b1], rest].concat()),
        // STUN (0–3) and DTLS (20–63) first bytes.
        (0u8..4, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(b, rest)| [
            vec![b],
            rest
        ]
        .concat()),
        (20u8..64, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(b, rest)| [
            vec![b],
            rest
        ]
        .concat()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let junk = std::cell::RefCell::new(Vec::new());
    runner
        .run(&datagram, |d| {
            junk.borrow_mut().push(d);
            Ok(())
        })
        .expect("generate");
    let junk = junk.into_inner();
    let mut sent = 0;
    for d in &junk {
        sent += relay.inject(d).await;
        if sent % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(sent, junk.len(), "sent from the publisher's address");
    let after = viewer
        .wait_for("media after the junk", WAIT, |s| {
            s.video.frames > before.video.frames + 60
                && s.audio.packets > before.audio.packets + 100
        })
        .await
        .expect("media keeps flowing");
    assert_eq!(after.video.ssrcs.len(), 1, "{after:?}");
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
    let auth = format!("Bearer {token}");
    let room = get(hub.addr, "/api/v1/rooms/junk", &[("Authorization", &auth)]).await;
    assert_eq!(room.status, 200, "{}", room.body);
    assert_eq!(
        room.json()["publishers"][0]["connected"],
        true,
        "{}",
        room.body
    );
    viewer.close().await.ok();
    publisher.close().await.ok();
}

fn speaker(body: &serde_json::Value) -> Option<String> {
    body["speaker"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn active_speaker_follows_the_louder_publisher() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let opts = ClientOptions::with_token(&token);
    // RFC 6464 levels are -dBov: 20 is loud speech, 90 is near silence.
    let loud = WhipPublisher::connect(&hub.url, "talk", &opts, PublishOptions::audio_only(20))
        .await
        .expect("publisher A");
    let quiet = WhipPublisher::connect(&hub.url, "talk", &opts, PublishOptions::audio_only(90))
        .await
        .expect("publisher B");
    let auth = format!("Bearer {token}");
    let room = || async {
        let r = get(hub.addr, "/api/v1/rooms/talk", &[("Authorization", &auth)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let mut current = None;
    for _ in 0..100 {
        current = speaker(&room().await);
        if current.as_deref() == Some(loud.session_id()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        current.as_deref(),
        Some(loud.session_id()),
        "the louder one speaks"
    );
    // They swap: the speaker follows, after smoothing and hold time.
    loud.set_audio_level(90);
    quiet.set_audio_level(20);
    for _ in 0..100 {
        current = speaker(&room().await);
        if current.as_deref() == Some(quiet.session_id()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        current.as_deref(),
        Some(quiet.session_id()),
        "the speaker changes"
    );
    let metrics = get(hub.addr, "/metrics", &[]).await.body;
    assert!(
        metrics.contains("hubcast_sfu_speaker_changes_total 2"),
        "{metrics}"
    );
    loud.close().await.ok();
    quiet.close().await.ok();
}

/// `GET /sse/rooms/{room}` read over raw HTTP/1.0 (the body is then the bare event stream).
struct RoomEvents {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RoomEvents {
    async fn open(hub: &Hub, room: &str, token: &str) -> RoomEvents {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /sse/rooms/{room} HTTP/1.0\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        let mut events = RoomEvents {
            stream,
            buf: Vec::new(),
        };
        let head = events.block().await;
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("text/event-stream"),
            "{head}"
        );
        events
    }

    /// The next block up to a blank line (the response head, then one event each).
    async fn block(&mut self) -> String {
        use tokio::io::AsyncReadExt as _;
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            let end = text
                .find("\r\n\r\n")
                .map(|i| (i, 4))
                .or(text.find("\n\n").map(|i| (i, 2)));
            if let Some((at, len)) = end {
                self.buf.drain(..at + len);
                return text[..at].to_owned();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("an event in time")
                .expect("read");
            assert!(n > 0, "stream ended: {text}");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next event (comments skipped): its name and data.
    async fn next(&mut self) -> (String, serde_json::Value) {
        loop {
            let block = self.block().await;
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                return (event, serde_json::from_str(&data).expect("JSON data"));
            }
        }
    }

    /// Whether the server ends the stream (EOF) within the wait, comments aside.
    async fn ended(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut chunk = [0u8; 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => {
                    let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                    if text.contains("event:") {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Skips events until one named `name` whose data satisfies `want`.
    async fn until(
        &mut self,
        name: &str,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            let (event, data) = self.next().await;
            if event == name && want(&data) {
                return data;
            }
        }
    }
}

/// A wall display watches a room: the room first, then publishers joining and leaving and the
/// active speaker changing, pushed as they happen; other rooms' events are not sent.
#[tokio::test]
async fn room_events_push_joins_leaves_and_the_speaker() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let wall = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions::with_token(&token);
    let first = WhipPublisher::connect(&hub.url, "wall", &opts, PublishOptions::audio_only(90))
        .await
        .expect("first publisher");
    let mut events = RoomEvents::open(&hub, "wall", &wall).await;
    let (name, room) = events.next().await;
    assert_eq!(name, "room", "{room}");
    assert_eq!(room["publishers"][0]["id"], first.session_id(), "{room}");
    // Another room's publisher is not this room's news.
    let elsewhere =
        WhipPublisher::connect(&hub.url, "other", &opts, PublishOptions::audio_only(90))
            .await
            .expect("other room");
    let loud = WhipPublisher::connect(&hub.url, "wall", &opts, PublishOptions::audio_only(20))
        .await
        .expect("second publisher");
    let (name, joined) = events.next().await;
    assert_eq!(name, "publisher_joined", "{joined}");
    assert_eq!(
        joined["id"],
        loud.session_id(),
        "not the other room's: {joined}"
    );
    events
        .until("speaker", |d| d["speaker"] == loud.session_id())
        .await;
    loud.set_audio_level(90);
    first.set_audio_level(20);
    events
        .until("speaker", |d| d["speaker"] == first.session_id())
        .await;
    let loud_id = loud.session_id().to_owned();
    loud.close().await.ok();
    let left = events.until("publisher_left", |_| true).await;
    assert_eq!(left["id"], loud_id.as_str(), "{left}");
    // A token for another meeting may not watch this one: refused before any stream.
    let stranger = hub.token("city-admin", "330100", &["--meeting", "other"]);
    let auth = [("Authorization", format!("Bearer {stranger}"))];
    let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = tokio::time::timeout(WAIT, get(hub.addr, "/sse/rooms/wall", &headers))
        .await
        .expect("refused at once, not streamed");
    assert_eq!(refused.status, 403, "{}", refused.body);
    // The last publisher leaves: the room closes, and so does the stream.
    let first_id = first.session_id().to_owned();
    first.close().await.ok();
    let left = events.until("publisher_left", |_| true).await;
    assert_eq!(left["id"], first_id.as_str(), "{left}");
    let (name, _) = events.next().await;
    assert_eq!(name, "room_closed");
    assert!(events.ended().await, "the stream ends with the room");
    elsewhere.close().await.ok();
}

/// A room-events stream does not outlive the token that opened it: at its `exp` (plus the
/// leeway, 0 here) the stream says `token_expired` and ends.
#[tokio::test]
async fn a_room_events_stream_ends_when_its_token_expires() {
    testkit::isolated!();
    let hub = Hub::start(&[], &[("HUBCAST_AUTH__LEEWAY_SECS", "0")]);
    let token = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions::with_token(&token);
    let publisher =
        WhipPublisher::connect(&hub.url, "short", &opts, PublishOptions::audio_only(90))
            .await
            .expect("publisher");
    let brief = hub.token("city-admin", "330100", &["--ttl", "3s"]);
    let opened = tokio::time::Instant::now();
    let mut events = RoomEvents::open(&hub, "short", &brief).await;
    assert_eq!(events.next().await.0, "room");
    let (name, _) = events.next().await;
    assert_eq!(name, "token_expired");
    assert!(
        opened.elapsed() <= Duration::from_secs(4),
        "at the token's expiry: {:?}",
        opened.elapsed()
    );
    assert!(events.ended().await, "then the stream ends");
    publisher.close().await.ok();
}

/// Each media session leaves three INFO lines an operator can follow when a site drops out
/// of a meeting: opened (who, from where), connected (how long ICE and DTLS took), ended
/// (why, after how long).
#[tokio::test]
async fn sessions_are_logged_when_opened_connected_and_ended() {
    testkit::isolated!();
    let (hub, token, publisher) = simulcast_room("logged").await;
    let session = format!("session={}", publisher.session_id());
    let opts = ClientOptions::with_token(&token);
    let viewer = WhepViewer::connect(&hub.url, "logged", Some(publisher.session_id()), &opts)
        .await
        .expect("webrtc-rs plays via WHEP");
    let viewer_session = format!("session={}", testkit::whip::session_id(viewer.location()));
    let opened = hub
        .wait_log(&["media session opened", &session], WAIT)
        .await;
    for part in [
        "INFO",
        "room=logged",
        "endpoint=whip",
        "who=city-admin@330100",
        "client=127.0.0.1",
    ] {
        assert!(opened.contains(part), "{part} in {opened}");
    }
    let connected = hub
        .wait_log(&["media session connected", &session], WAIT)
        .await;
    assert!(connected.contains("after_ms="), "{connected}");
    let opened_viewer = [
        "media session opened",
        viewer_session.as_str(),
        "endpoint=whep",
    ];
    hub.wait_log(&opened_viewer, WAIT).await;

    viewer.close().await.expect("viewer closes");
    publisher.close().await.expect("publisher closes");
    for id in [&session, &viewer_session] {
        let ended = hub
            .wait_log(&["media session ended", id.as_str()], WAIT)
            .await;
        for part in [
            "reason=deleted",
            "connected=true",
            "secs=",
            "who=city-admin@330100",
        ] {
            assert!(ended.contains(part), "{part} in {ended}");
        }
    }
}
