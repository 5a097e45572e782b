//! ICE-TCP: with UDP to the SFU dropped by a firewall rule in the test's network namespace,
//! a Chromium publisher and a Chromium viewer still connect, over the passive TCP candidate
//! (RFC 6544, RFC 4571 framing), and video flows.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Hub;
use testkit::browser::Browser;

fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    } else {
        let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    }
}

/// Drops every UDP datagram sent to `port` (nftables, this namespace only).
fn block_udp_to(port: u16) {
    let run = |args: &[&str]| {
        let status = Command::new("nft")
            .args(args)
            .status()
            .expect("nft (apt package nftables)");
        assert!(status.success(), "nft {args:?}");
    };
    run(&["add", "table", "inet", "hubcast_test"]);
    run(&[
        "add",
        "chain",
        "inet",
        "hubcast_test",
        "out",
        "{ type filter hook output priority 0; }",
    ]);
    let port = port.to_string();
    run(&[
        "add",
        "rule",
        "inet",
        "hubcast_test",
        "out",
        "udp",
        "dport",
        &port,
        "drop",
    ]);
}

#[tokio::test]
async fn chromium_connects_over_tcp_when_udp_is_blocked() {
    testkit::isolated!();
    let udp = free_port(true);
    let tcp = free_port(false);
    // Bound as in production, on all interfaces with the address peers reach advertised:
    // the TCP listener's socket reports 0.0.0.0, the checks must still meet the candidate.
    let udp_addr = format!("0.0.0.0:{udp}");
    let tcp_addr = format!("0.0.0.0:{tcp}");
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", udp_addr.as_str()),
            ("HUBCAST_SFU__TCP_LISTEN", tcp_addr.as_str()),
            ("HUBCAST_SFU__PUBLIC_IPS", r#"["127.0.0.1"]"#),
        ],
    );
    block_udp_to(udp);
    // The rule blocks exactly that port: other UDP still flows.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    probe
        .send_to(b"x", sink.local_addr().expect("addr"))
        .expect("send");
    assert!(
        sink.recv_from(&mut [0u8; 8]).is_ok(),
        "other UDP still flows"
    );

    let token = hub.token("city-admin", "330100", &[]);
    let publisher = Browser::launch().await.expect("chromium");
    publisher
        .goto(&format!(
            "{}/assets/test/publish.html?room=tcp&token={token}",
            hub.url
        ))
        .await
        .expect("publish page");
    let state = publisher
        .wait_for(
            "(async () => { const s = await hubcastStats(); return s.candidate && s.candidate.protocol === 'tcp' && s; })()",
            Duration::from_secs(40),
        )
        .await
        .expect("publisher connected over TCP");
    assert_eq!(
        state["candidate"]["port"].as_u64(),
        Some(u64::from(tcp)),
        "{state}"
    );

    let viewer = Browser::launch().await.expect("chromium");
    let client = testkit::whip::WhipClient::new(&hub.url, Some(&token)).expect("client");
    let ids = client.publisher_ids("tcp").await.expect("room");
    viewer
        .goto(&format!(
            "{}/assets/test/view.html?room=tcp&publisher={}&token={token}&muted=1",
            hub.url, ids[0]
        ))
        .await
        .expect("view page");
    let stats = viewer
        .wait_for(
            "hubcastStats().then(s => s.framesDecoded > 30 && s)",
            Duration::from_secs(40),
        )
        .await
        .expect("viewer decodes over TCP");
    assert_eq!(stats["candidate"]["protocol"], "tcp", "{stats}");
    viewer.close().await.ok();
    publisher.close().await.ok();
}
