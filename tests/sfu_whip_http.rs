//! WHIP/WHEP HTTP semantics against a running hub, with hand-written offers (no media flows):
//! status codes and JSON errors, permissions from the region tree, `Location` and `DELETE`,
//! per-room peer caps, and reaping of peers that never complete ICE/DTLS.

mod common;

use std::time::Duration;

use common::{Hub, call, get, request_with_body, sdp_offer as offer};

async fn post(
    hub: &Hub,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> common::Response {
    call(hub, "POST", path, token, content_type, body).await
}

async fn delete(hub: &Hub, path: &str, token: &str) -> common::Response {
    let stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let auth = format!("Bearer {token}");
    common::request(stream, "DELETE", path, &[("Authorization", &auth)]).await
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn whip_whep_status_codes_and_permissions() {
    let hub = Hub::start(&[], &[("HUBCAST_SFU__MAX_PEERS_PER_ROOM", "2")]);
    let city = hub.token("city-admin", "330100", &[]);
    let other_city = hub.token("city-admin", "330200", &[]);
    let wall = hub.token("wall", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let recv = offer("a=recvonly", "a=rtpmap:96 VP8/90000");

    let expect = expect_error;
    expect(
        &post(&hub, "/whip/r1", None, "application/sdp", &send).await,
        401,
        "missing_token",
    );
    expect(
        &post(&hub, "/whip/r1", Some(&city), "text/plain", &send).await,
        415,
        "unsupported_media_type",
    );
    expect(
        &post(
            &hub,
            "/whip/bad%20room",
            Some(&city),
            "application/sdp",
            &send,
        )
        .await,
        400,
        "bad_room",
    );
    expect(
        &post(&hub, "/whip/r1", Some(&city), "application/sdp", "hello").await,
        400,
        "bad_sdp",
    );
    expect(
        &post(&hub, "/whip/r1", Some(&city), "application/sdp", &recv).await,
        400,
        "bad_sdp",
    );
    let pcmu = offer("a=sendonly", "a=rtpmap:0 PCMU/8000");
    expect(
        &post(&hub, "/whip/r1", Some(&city), "application/sdp", &pcmu).await,
        406,
        "no_common_codec",
    );
    // A wall never publishes; a county may not convene a room.
    expect(
        &post(&hub, "/whip/r1", Some(&wall), "application/sdp", &send).await,
        403,
        "forbidden",
    );
    expect(
        &post(&hub, "/whip/r1", Some(&county), "application/sdp", &send).await,
        403,
        "forbidden",
    );
    // A city admin may not convene for another city's region.
    expect(
        &post(
            &hub,
            "/whip/r1?region=330200",
            Some(&city),
            "application/sdp",
            &send,
        )
        .await,
        403,
        "forbidden",
    );
    // A convening region that is no GB/T 2260 code, or one this hub does not know, is a bad
    // parameter (as on the alert endpoints), not a missing permission.
    for region in ["33010", "970073", "423151"] {
        expect(
            &post(
                &hub,
                &format!("/whip/r1?region={region}"),
                Some(&city),
                "application/sdp",
                &send,
            )
            .await,
            400,
            "bad_region",
        );
    }
    // WHEP on a room that does not exist.
    expect(
        &post(&hub, "/whep/nothing", Some(&wall), "application/sdp", &recv).await,
        404,
        "no_such_room",
    );

    // The city convenes r1.
    let created = post(&hub, "/whip/r1", Some(&city), "application/sdp", &send).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("content-type"), Some("application/sdp"));
    let location = created.header("location").expect("Location").to_owned();
    assert!(location.starts_with("/whip/r1/sessions/"), "{location}");
    assert!(
        created.body.contains("a=ice-lite"),
        "ICE-lite answer: {}",
        created.body
    );
    assert!(
        created.body.contains("typ host"),
        "host candidates: {}",
        created.body
    );
    assert!(
        created.body.contains(" tcp ") && created.body.contains("tcptype passive"),
        "{}",
        created.body
    );

    // The county joins the city's room (upward), another city may not watch it.
    expect(
        &post(
            &hub,
            "/whep/r1",
            Some(&other_city),
            "application/sdp",
            &recv,
        )
        .await,
        403,
        "forbidden",
    );
    let viewer = post(&hub, "/whep/r1", Some(&county), "application/sdp", &recv).await;
    assert_eq!(viewer.status, 201, "{}", viewer.body);
    let viewer_location = viewer.header("location").expect("Location").to_owned();
    // Per-room cap of 2 peers: the third gets 503.
    expect(
        &post(&hub, "/whep/r1", Some(&wall), "application/sdp", &recv).await,
        503,
        "peer_limit",
    );
    // Unknown publisher id.
    expect(
        &post(&hub, "/whep/r1/999", Some(&wall), "application/sdp", &recv).await,
        404,
        "no_such_publisher",
    );

    // Layer choice validation.
    let layer_path = format!("{viewer_location}/layer");
    let bad_layer = post(
        &hub,
        &layer_path,
        Some(&county),
        "application/json",
        r#"{"rid":"x"}"#,
    )
    .await;
    expect(&bad_layer, 400, "bad_layer");
    // A body that is not that JSON (malformed, no rid, another content type): the same JSON
    // 400, not axum's plain-text rejection.
    for (content_type, body) in [
        ("application/json", "{"),
        ("application/json", "{}"),
        ("text/plain", r#"{"rid":"q"}"#),
    ] {
        let answer = post(&hub, &layer_path, Some(&county), content_type, body).await;
        expect(&answer, 400, "bad_layer");
    }

    // Room listing.
    let auth = format!("Bearer {city}");
    let room = get(hub.addr, "/api/v1/rooms/r1", &[("Authorization", &auth)]).await;
    assert_eq!(room.status, 200, "{}", room.body);
    assert_eq!(room.json()["publishers"].as_array().map(Vec::len), Some(1));
    assert_eq!(room.json()["viewers"], 1);

    // DELETE ends the viewer (counted by why); again is 404.
    assert_eq!(delete(&hub, &viewer_location, &county).await.status, 200);
    expect(
        &delete(&hub, &viewer_location, &county).await,
        404,
        "no_such_session",
    );
    let metrics = get(hub.addr, "/metrics", &[]).await.body;
    let deleted = r#"hubcast_sfu_sessions_ended_total{reason="deleted"}"#;
    assert_eq!(metric(&metrics, deleted), 1.0, "{metrics}");
    // PATCH: trickle (same credentials) is 204; new credentials restart ICE: 200 with ours.
    let frag = "application/trickle-ice-sdpfrag";
    let (hub_ref, city_ref) = (&hub, city.as_str());
    let patch = |body: &str, content_type: &'static str| {
        let (location, body) = (location.clone(), body.to_owned());
        async move {
            call(
                hub_ref,
                "PATCH",
                &location,
                Some(city_ref),
                content_type,
                &body,
            )
            .await
        }
    };
    expect(
        &patch("a=ice-ufrag:abcd\r\n", "application/sdp").await,
        415,
        "unsupported_media_type",
    );
    let trickle = patch(
        "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n",
        frag,
    )
    .await;
    assert_eq!(trickle.status, 204, "{}", trickle.body);
    // A session takes at most 128 trickled candidates over its life (one came above).
    let candidates = |n: u16| -> String {
        (0..n)
            .map(|i| {
                format!(
                    "a=candidate:{i} 1 udp 2130706431 127.0.0.1 {} typ host\r\n",
                    41000 + i
                )
            })
            .collect()
    };
    let more = patch(&candidates(127), frag).await;
    assert_eq!(more.status, 204, "{}", more.body);
    let over = patch(&candidates(1), frag).await;
    expect(&over, 400, "bad_sdp");
    assert!(over.body.contains("more than 128"), "{}", over.body);
    expect(
        &patch("a=candidate:garbage\r\n", frag).await,
        400,
        "bad_sdp",
    );
    expect(&patch("a=ice-ufrag:efgh\r\n", frag).await, 400, "bad_sdp");
    // An ICE restart past the cap still restarts (its candidate is left out).
    let restart = patch(
        "a=ice-ufrag:efgh\r\na=ice-pwd:abcdefabcdefabcdefabcdef\r\n\
         a=candidate:9 1 udp 2130706431 127.0.0.1 49000 typ host\r\n",
        frag,
    )
    .await;
    assert_eq!(restart.status, 200, "{}", restart.body);
    assert_eq!(restart.header("content-type"), Some(frag));
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    assert_ne!(
        ufrag(&created.body),
        ufrag(&restart.body),
        "{}",
        restart.body
    );
    assert!(
        restart.body.contains("a=ice-pwd:") && restart.body.contains("a=candidate:"),
        "{}",
        restart.body
    );
}

/// `PATCH location` with a trickle fragment, as `token`, with `If-Match: if_match` if given.
async fn patch_if(
    hub: &Hub,
    location: &str,
    token: &str,
    if_match: Option<&str>,
    body: &str,
) -> common::Response {
    let stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let (auth, len) = (format!("Bearer {token}"), body.len().to_string());
    let mut headers = vec![
        ("Content-Type", "application/trickle-ice-sdpfrag"),
        ("Content-Length", len.as_str()),
        ("Authorization", auth.as_str()),
    ];
    if let Some(tag) = if_match {
        headers.push(("If-Match", tag));
    }
    request_with_body(stream, "PATCH", location, &headers, body.as_bytes()).await
}

/// RFC 9725 § 4.3: the answer's `ETag` names the ICE session (our ufrag); a `PATCH` whose
/// `If-Match` names another one is 412, `*` (an ICE restart) always matches, and the restart
/// answers with the new session's tag, which the next `PATCH` must use.
#[tokio::test]
async fn patch_follows_the_ice_session_entity_tag() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let created = post(&hub, "/whip/etag", Some(&city), "application/sdp", &send).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    let ufrag = |sdp: &str| {
        sdp.lines()
            .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
            .map(|u| format!("\"{u}\""))
    };
    let first = created.header("etag").expect("ETag").to_owned();
    assert_eq!(Some(first.clone()), ufrag(&created.body));
    let location = created.header("location").expect("Location").to_owned();
    let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n";

    let stale = patch_if(&hub, &location, &city, Some("\"nope\""), candidate).await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.json()["error"], "ice_session_changed");
    for tag in [Some(first.as_str()), None, Some("\"x\", W/\"x\"")] {
        let answer = patch_if(&hub, &location, &city, tag, candidate).await;
        let want = if tag == Some("\"x\", W/\"x\"") {
            412
        } else {
            204
        };
        assert_eq!(answer.status, want, "If-Match {tag:?}: {}", answer.body);
    }

    let restart = "a=ice-ufrag:efgh\r\na=ice-pwd:abcdefabcdefabcdefabcdef\r\n";
    let restarted = patch_if(&hub, &location, &city, Some("*"), restart).await;
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    let second = restarted.header("etag").expect("new ETag").to_owned();
    assert_eq!(Some(second.clone()), ufrag(&restarted.body));
    assert_ne!(first, second);
    // The same restart again (its answer was lost): the same answer, no new ICE session.
    let again = patch_if(&hub, &location, &city, Some("*"), restart).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("etag"), Some(second.as_str()));
    assert_eq!(again.body, restarted.body);
    let old = patch_if(&hub, &location, &city, Some(&first), candidate).await;
    assert_eq!(old.status, 412, "the old ICE session's tag: {}", old.body);
    // If-Match compares strongly (RFC 9110 § 13.1.1): a weak tag never matches.
    let weak = format!("W/{second}");
    let weakened = patch_if(&hub, &location, &city, Some(&weak), candidate).await;
    assert_eq!(weakened.status, 412, "{}", weakened.body);
    let current = patch_if(&hub, &location, &city, Some(&second), candidate).await;
    assert_eq!(current.status, 204, "{}", current.body);
}

#[tokio::test]
async fn peers_that_never_connect_are_reaped() {
    let hub = Hub::start(&[], &[("HUBCAST_SFU__CONNECT_TIMEOUT_SECS", "1")]);
    let city = hub.token("city-admin", "330100", &[]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    for _ in 0..3 {
        let created = post(&hub, "/whip/reap", Some(&city), "application/sdp", &send).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let metrics = get(hub.addr, "/metrics", &[]).await.body;
    assert_eq!(metric(&metrics, "hubcast_sfu_peers"), 3.0);
    let mut reaped = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let metrics = get(hub.addr, "/metrics", &[]).await.body;
        if metric(&metrics, "hubcast_sfu_peers") == 0.0 {
            assert_eq!(
                metric(&metrics, "hubcast_sfu_ice_failures_total"),
                3.0,
                "{metrics}"
            );
            let reason = r#"hubcast_sfu_sessions_ended_total{reason="connect_timeout"}"#;
            assert_eq!(metric(&metrics, reason), 3.0, "{metrics}");
            reaped = true;
            break;
        }
    }
    assert!(
        reaped,
        "sessions without ICE/DTLS are removed after sfu.connect_timeout_secs"
    );
    // The room went with its last session.
    let auth = format!("Bearer {city}");
    let room = get(hub.addr, "/api/v1/rooms/reap", &[("Authorization", &auth)]).await;
    assert_eq!(room.status, 404, "{}", room.body);
}

/// Reads a response head (panics after 10 s).
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    String::from_utf8_lossy(&answer).into_owned()
}

/// WHIP/WHEP bodies are bounded: over 64 KiB is 413 `too_large`; a body that stops arriving
/// is 408 `timeout` after the header timeout (a trickling client cannot hold the handler).
#[tokio::test]
async fn oversize_and_stalled_bodies_are_refused() {
    use tokio::io::AsyncWriteExt as _;
    let hub = Hub::start(&[], &[("HUBCAST_HTTP__HEADER_READ_TIMEOUT_SECS", "1")]);
    let city = hub.token("city-admin", "330100", &[]);
    // Refused from the head: only the head is sent, so the answer is not raced by a reset
    // over unread body bytes.
    let mut big = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /whip/big HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {city}\r\n\
         Content-Type: application/sdp\r\nContent-Length: 70000\r\n\r\n"
    );
    big.write_all(head.as_bytes()).await.expect("write");
    let answer = read_head(&mut big).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let mut stalled = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /whip/slow HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {city}\r\n\
         Content-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0\r\n"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    let started = std::time::Instant::now();
    let text = read_head(&mut stalled).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // Nothing was created.
    let auth = format!("Bearer {city}");
    let room = get(hub.addr, "/api/v1/rooms/slow", &[("Authorization", &auth)]).await;
    assert_eq!(room.status, 404, "{}", room.body);
}

/// DELETE, PATCH and layer calls act only on the caller's own session, through its own
/// endpoint kind, unless the caller moderates the room; a token bound to another meeting
/// reaches neither this room's sessions nor its listing, nor alert publishing.
#[tokio::test]
async fn sessions_answer_only_to_their_owner_or_a_moderator() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let other_county = hub.token("county-operator", "330108", &[]);
    let elsewhere = hub.token("city-admin", "330100", &["--meeting", "another"]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let recv = offer("a=recvonly", "a=rtpmap:96 VP8/90000");
    let publish = post(&hub, "/whip/own", Some(&city), "application/sdp", &send).await;
    assert_eq!(publish.status, 201, "{}", publish.body);
    let publisher = publish.header("location").expect("Location").to_owned();
    let view = post(&hub, "/whep/own", Some(&county), "application/sdp", &recv).await;
    assert_eq!(view.status, 201, "{}", view.body);
    let viewer = view.header("location").expect("Location").to_owned();
    let other = post(
        &hub,
        "/whep/own",
        Some(&other_county),
        "application/sdp",
        &recv,
    )
    .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_viewer = other.header("location").expect("Location").to_owned();

    // Another participant may not end, re-tune or restart someone else's session.
    expect_error(
        &delete(&hub, &publisher, &county).await,
        403,
        "not_your_session",
    );
    expect_error(
        &delete(&hub, &viewer, &other_county).await,
        403,
        "not_your_session",
    );
    let layer = format!("{viewer}/layer");
    let json = "application/json";
    let retune = post(&hub, &layer, Some(&other_county), json, r#"{"rid":"q"}"#).await;
    expect_error(&retune, 403, "not_your_session");
    let restart = "a=ice-ufrag:evil\r\na=ice-pwd:0123456789abcdef0123456789\r\n";
    let frag = "application/trickle-ice-sdpfrag";
    let hijack = call(&hub, "PATCH", &viewer, Some(&other_county), frag, restart).await;
    expect_error(&hijack, 403, "not_your_session");
    // A session named through the other endpoint kind does not exist there.
    let as_whep = publisher.replacen("/whip/", "/whep/", 1);
    expect_error(&delete(&hub, &as_whep, &city).await, 404, "no_such_session");
    // A token bound to another meeting reaches nothing of this room, nor alerts.
    expect_error(&delete(&hub, &viewer, &elsewhere).await, 403, "forbidden");
    let auth = format!("Bearer {elsewhere}");
    let listing = get(hub.addr, "/api/v1/rooms/own", &[("Authorization", &auth)]).await;
    expect_error(&listing, 403, "forbidden");
    let cap = "application/cap+xml";
    let alert = post(&hub, "/api/v1/alerts", Some(&elsewhere), cap, "<alert/>").await;
    expect_error(&alert, 403, "forbidden");

    // The owner trickles a candidate to its own session; the convening city moderates
    // anyone's session.
    let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
    let own = call(&hub, "PATCH", &viewer, Some(&county), frag, candidate).await;
    assert_eq!(own.status, 204, "{}", own.body);
    assert_eq!(delete(&hub, &other_viewer, &city).await.status, 200);
    assert_eq!(delete(&hub, &viewer, &county).await.status, 200);
    assert_eq!(delete(&hub, &publisher, &city).await.status, 200);
}

/// Asserts an error answer's status and `error` code.
fn expect_error(r: &common::Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["error"], code, "{}", r.body);
}

/// An offer is one audio and one video section at most (400 `bad_sdp` naming the counts: a
/// second section of a kind would get every packet again); a layer choice for a viewer that
/// receives no video is 409 `no_video`, not a missing session, while one whose video has not
/// started yet (not connected) is taken for when it does.
#[tokio::test]
async fn one_section_of_each_kind_and_layers_only_for_video() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let publisher = post(&hub, "/whip/kinds", Some(&city), "application/sdp", &send).await;
    assert_eq!(publisher.status, 201, "{}", publisher.body);
    let recv = offer("a=recvonly", "a=rtpmap:96 VP8/90000");
    let second_video = recv.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
        + &recv[recv.find("m=video").expect("m-line")..].replace("a=mid:0", "a=mid:1");
    let twice = post(
        &hub,
        "/whep/kinds",
        Some(&city),
        "application/sdp",
        &second_video,
    )
    .await;
    expect_error(&twice, 400, "bad_sdp");
    assert!(twice.body.contains("2 video"), "{}", twice.body);
    let audio_only = recv
        .replace(
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        )
        .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:111 opus/48000/2");
    // A viewer with no video section: no layer to choose. One with video that has not
    // connected yet: its choice is kept for when its video starts.
    for (offer, status) in [(&audio_only, 409), (&recv, 204)] {
        let viewer = post(&hub, "/whep/kinds", Some(&city), "application/sdp", offer).await;
        assert_eq!(viewer.status, 201, "{}", viewer.body);
        let location = viewer.header("location").expect("Location").to_owned();
        let layer = post(
            &hub,
            &format!("{location}/layer"),
            Some(&city),
            "application/json",
            r#"{"rid":"q"}"#,
        )
        .await;
        assert_eq!(layer.status, status, "{}", layer.body);
        if status == 409 {
            expect_error(&layer, 409, "no_video");
        }
    }
}

/// A viewer of one publisher whose offer cannot take the video codec that publisher sends
/// gets 406 naming it, not a session that never shows video; an offer that can is 201.
#[tokio::test]
async fn a_viewer_that_cannot_decode_its_publisher_is_told() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let send = offer("a=sendonly", "a=rtpmap:96 VP8/90000");
    let publisher = post(&hub, "/whip/codecs", Some(&city), "application/sdp", &send).await;
    assert_eq!(publisher.status, 201, "{}", publisher.body);
    let location = publisher.header("location").expect("Location").to_owned();
    let id = location.rsplit('/').next().expect("session id").to_owned();
    let path = format!("/whep/codecs/{id}");
    let h264_only = offer(
        "a=recvonly",
        "a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    )
    .replace("SAVPF 96", "SAVPF 102");
    let refused = post(&hub, &path, Some(&city), "application/sdp", &h264_only).await;
    expect_error(&refused, 406, "no_common_codec");
    assert!(refused.body.contains("Vp8"), "{}", refused.body);
    let vp8 = offer("a=recvonly", "a=rtpmap:96 VP8/90000");
    let viewer = post(&hub, &path, Some(&city), "application/sdp", &vp8).await;
    assert_eq!(viewer.status, 201, "{}", viewer.body);
}
