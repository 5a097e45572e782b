//! Hostile input at the media plane of a running hub: arbitrary datagrams (garbage, truncated
//! and lying STUN, RTP/RTCP-looking bytes) at the shared UDP port and ICE-TCP port, and
//! arbitrary SDP at the WHIP/WHEP endpoints. Nothing may panic or hang; every HTTP answer is a
//! clear 4xx with a JSON body; the hub stays healthy and counts what it dropped.

mod common;

use std::net::UdpSocket;

use common::{Hub, get};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A STUN binding request with the given USERNAME (possibly lying about lengths).
fn stun(username: &[u8], length_fudge: i32) -> Vec<u8> {
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username);
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut msg = vec![0x00, 0x01];
    let len = (attr.len() as i32 + length_fudge).clamp(0, 0xffff) as u16;
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    msg.extend_from_slice(&[9; 12]);
    msg.extend_from_slice(&attr);
    msg
}

#[tokio::test]
async fn arbitrary_datagrams_are_dropped_not_fatal() {
    let (hub, sfu) = common::hub_on_udp();
    let port = sfu.port();
    let client = UdpSocket::bind("127.0.0.1:0").expect("client");
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        ..Config::default()
    });
    let datagram = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..1500),
        (proptest::collection::vec(any::<u8>(), 0..64), -40i32..40).prop_map(|(u, f)| stun(&u, f)),
        // RTP / RTCP first bytes (RFC 7983 ranges) followed by junk.
        (128u8..192, proptest::collection::vec(any::<u8>(), 0..1200)).prop_map(|(b, mut rest)| {
            rest.insert(0, b);
            rest
        }),
        // DTLS record types followed by junk.
        (20u8..64, proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(b, mut rest)| {
            rest.insert(0, b);
            rest
        }),
    ];
    runner
        .run(&datagram, |bytes| {
            let _ = client.send_to(&bytes, ("127.0.0.1", port));
            Ok(())
        })
        .expect("sending never fails the test");
    // Oversize datagram too.
    let _ = client.send_to(&vec![0x80; 4000], ("127.0.0.1", port));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
    let metrics = get(hub.addr, "/metrics", &[]).await.body;
    let dropped: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("hubcast_sfu_dropped_packets_total{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum();
    assert!(
        dropped >= 1000.0,
        "garbage is counted as dropped: {dropped}\n{metrics}"
    );
}

#[tokio::test]
async fn arbitrary_sdp_gets_clear_4xx() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("city-admin", "330100", &[]);
    let auth = format!("Bearer {token}");
    let addr = hub.addr;
    let lines = prop_oneof![
        Just("v=0".to_owned()),
        Just("m=video 9 UDP/TLS/RTP/SAVPF 96".to_owned()),
        Just("m=audio 9 UDP/TLS/RTP/SAVPF 111".to_owned()),
        Just("a=sendonly".to_owned()),
        Just("a=recvonly".to_owned()),
        Just("a=rtpmap:96 VP8/90000".to_owned()),
        Just("a=rtpmap:111 opus/48000/2".to_owned()),
        Just("a=setup:actpass".to_owned()),
        Just("a=fingerprint:sha-256 00:11".to_owned()),
        Just("a=ice-ufrag:x".to_owned()),
        Just("a=simulcast:send q;h;f".to_owned()),
        Just("a=rid:q send".to_owned()),
        "[ -~]{0,80}".prop_map(|s| s),
        "a=[a-z\\-]{1,12}:[ -~]{0,40}".prop_map(|s| s),
    ];
    let sdp = proptest::collection::vec(lines, 0..30).prop_map(|l| l.join("\r\n"));
    let mut runner = TestRunner::new(Config {
        cases: 150,
        ..Config::default()
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    runner
        .run(&sdp, |body| {
            let _ = tx.send(body);
            Ok(())
        })
        .expect("generate");
    drop(tx);
    let mut seen = 0;
    while let Some(body) = rx.recv().await {
        for path in ["/whip/fuzzroom", "/whep/fuzzroom"] {
            let len = body.len().to_string();
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let response = common::request_with_body(
                stream,
                "POST",
                path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/sdp"),
                    ("Content-Length", &len),
                ],
                body.as_bytes(),
            )
            .await;
            assert!(
                (400..500).contains(&response.status) || response.status == 201,
                "{path} {}: {}\n--- offer ---\n{body}",
                response.status,
                response.body
            );
            if response.status != 201 {
                assert!(response.json()["error"].is_string(), "{}", response.body);
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 300);
    assert_eq!(get(hub.addr, "/healthz", &[]).await.status, 200);
}
