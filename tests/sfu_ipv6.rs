//! IPv6 end to end (government networks are moving to it, and a bureau's site may reach the
//! hub over either family): WHIP/WHEP over `[::1]` with media on `::1`, and the production
//! shape of a dual-stack media port (`[::]` with one public IP per family) serving an IPv4
//! publisher and an IPv6 viewer at once (webrtc-rs peers), and Chromium publishing and
//! watching over IPv6. Real UDP inside the test's own network namespace.

mod common;

use common::Hub;
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

/// Candidate lines (`a=candidate:…`) of an SDP answer.
fn candidates(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect()
}

#[tokio::test]
async fn whip_and_whep_work_over_ipv6_only() {
    testkit::isolated!();
    let hub = Hub::start_on(
        "[::1]:0",
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", "[::1]:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "[::1]:0"),
        ],
    );
    assert!(hub.url.starts_with("http://[::1]:"), "{}", hub.url);
    let token = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions {
        ipv6: true,
        ..ClientOptions::with_token(&token)
    };
    let publisher = WhipPublisher::connect(&hub.url, "six", &opts, PublishOptions::default())
        .await
        .expect("webrtc-rs publishes via WHIP over IPv6");
    let answer = publisher.answer();
    let lines = candidates(answer);
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.contains(" ::1 ")),
        "the answer's candidates are on ::1: {answer}"
    );
    let viewer = WhepViewer::connect(&hub.url, "six", Some(publisher.session_id()), &opts)
        .await
        .expect("webrtc-rs plays via WHEP over IPv6");
    common::media_flows_cleanly(&hub, &viewer).await;
    viewer.close().await.expect("viewer closes");
    publisher.close().await.expect("publisher closes");
}

#[tokio::test]
async fn a_dual_stack_media_port_serves_both_families() {
    testkit::isolated!();
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__PUBLIC_IPS", r#"["127.0.0.1", "::1"]"#),
        ],
    );
    let token = hub.token("city-admin", "330100", &[]);
    let v4 = ClientOptions::with_token(&token);
    let v6 = ClientOptions {
        ipv6: true,
        ..ClientOptions::with_token(&token)
    };
    let publisher = WhipPublisher::connect(&hub.url, "both", &v4, PublishOptions::default())
        .await
        .expect("an IPv4 publisher connects to the dual-stack port");
    let answer = publisher.answer();
    let lines = candidates(answer);
    assert!(
        lines.iter().any(|l| l.contains(" 127.0.0.1 "))
            && lines.iter().any(|l| l.contains(" ::1 ")),
        "the answer offers a candidate of each family: {answer}"
    );
    assert!(
        !answer.contains(" :: ") && !answer.contains("::ffff:"),
        "no wildcard or v4-mapped address is advertised: {answer}"
    );
    let viewer6 = WhepViewer::connect(&hub.url, "both", Some(publisher.session_id()), &v6)
        .await
        .expect("an IPv6 viewer connects to the same port");
    let viewer4 = WhepViewer::connect(&hub.url, "both", Some(publisher.session_id()), &v4)
        .await
        .expect("an IPv4 viewer connects to the same port");
    common::media_flows_cleanly(&hub, &viewer6).await;
    common::media_flows_cleanly(&hub, &viewer4).await;
    viewer6.close().await.expect("viewer closes");
    viewer4.close().await.expect("viewer closes");
    publisher.close().await.expect("publisher closes");
}

/// A host set to `net.ipv6.bindv6only = 1` (some hardened images are) would make `[::]` an
/// IPv6-only bind; the hub's wildcard binds take both families anyway, as the README says.
#[tokio::test]
async fn wildcard_binds_take_both_families_even_with_bindv6only() {
    testkit::isolated!();
    // Per network namespace: this changes only the test's own.
    std::fs::write("/proc/sys/net/ipv6/bindv6only", "1").expect("set bindv6only");
    let hub = Hub::start_on(
        "[::]:0",
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__PUBLIC_IPS", r#"["127.0.0.1", "::1"]"#),
        ],
    );
    let port = hub.addr.port();
    let v4_url = format!("http://127.0.0.1:{port}");
    let v6_url = format!("http://[::1]:{port}");
    for addr in [
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
    ] {
        let health = common::get(addr, "/healthz", &[]).await;
        assert_eq!(health.status, 200, "{addr}: {}", health.body);
    }
    let token = hub.token("city-admin", "330100", &[]);
    let v4 = ClientOptions::with_token(&token);
    let v6 = ClientOptions {
        ipv6: true,
        ..ClientOptions::with_token(&token)
    };
    let publisher = WhipPublisher::connect(&v4_url, "wild", &v4, PublishOptions::default())
        .await
        .expect("an IPv4 publisher connects over IPv4 HTTP");
    let viewer = WhepViewer::connect(&v6_url, "wild", Some(publisher.session_id()), &v6)
        .await
        .expect("an IPv6 viewer connects over IPv6 HTTP");
    common::media_flows_cleanly(&hub, &viewer).await;
    viewer.close().await.expect("viewer closes");
    publisher.close().await.expect("publisher closes");
}

/// Chromium itself over IPv6. Chromium gathers no `::1` candidate (its loopback allowance is
/// IPv4 only), so the namespace gets a veth pair (both ends inside it) with a unique-local
/// address, reachable only inside it: the test pages are loaded over `[::1]`, the hub's media port advertises
/// `fd00:68::1`, and a Chromium publisher's and viewer's ICE pairs over IPv6, video decoded.
#[tokio::test]
async fn chromium_publishes_and_watches_over_ipv6() {
    testkit::isolated!();
    for args in [
        &[
            "link", "add", "hc6a", "type", "veth", "peer", "name", "hc6b",
        ][..],
        &["addr", "add", "fd00:68::1/64", "dev", "hc6a", "nodad"],
        &["link", "set", "hc6a", "up"],
        &["link", "set", "hc6b", "up"],
    ] {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip (apt package iproute2)");
        assert!(status.success(), "ip {args:?}");
    }
    let hub = Hub::start_on(
        "[::1]:0",
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "[::]:0"),
            ("HUBCAST_SFU__PUBLIC_IPS", r#"["fd00:68::1"]"#),
        ],
    );
    let token = hub.token("city-admin", "330100", &[]);
    let publisher = testkit::browser::Browser::launch().await.expect("chromium");
    publisher
        .goto(&format!(
            "{}/assets/test/publish.html?room=six&token={token}",
            hub.url
        ))
        .await
        .expect("publish page");
    let state = publisher
        .wait_for(
            "(async () => { const s = await hubcastStats(); return s.candidate && s.candidate.address && s; })()",
            std::time::Duration::from_secs(40),
        )
        .await
        .expect("publisher connected");
    assert_eq!(state["candidate"]["address"], "fd00:68::1", "{state}");
    assert_eq!(state["candidate"]["protocol"], "udp", "{state}");

    let client = testkit::whip::WhipClient::new(&hub.url, Some(&token)).expect("client");
    let ids = client.publisher_ids("six").await.expect("room");
    let viewer = testkit::browser::Browser::launch().await.expect("chromium");
    viewer
        .goto(&format!(
            "{}/assets/test/view.html?room=six&publisher={}&token={token}&muted=1",
            hub.url, ids[0]
        ))
        .await
        .expect("view page");
    viewer
        .wait_for(
            "hubcastStats().then(s => s.framesDecoded > 30 && s)",
            std::time::Duration::from_secs(40),
        )
        .await
        .expect("the viewer decodes over IPv6");
    viewer.close().await.ok();
    publisher.close().await.ok();
}
