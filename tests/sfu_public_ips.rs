//! The production shape of the media port: bound on all interfaces (`0.0.0.0`), with the
//! address peers reach named in `sfu.public_ips`. Peers send to the advertised address, the
//! socket reports its bound one; the SFU must pair the checks with the advertised candidate
//! (str0m's ICE agent discards checks addressed to anything else). webrtc-rs publisher and
//! viewer over real UDP, inside a loopback-only namespace (so `0.0.0.0` is loopback only).

mod common;

use common::Hub;
use testkit::rtc_client::{ClientOptions, PublishOptions, WhepViewer, WhipPublisher};

#[tokio::test]
async fn media_flows_through_an_all_interfaces_bind_with_public_ips() {
    testkit::isolated!();
    let hub = Hub::start(
        &[],
        &[
            ("HUBCAST_SFU__UDP_LISTEN", "0.0.0.0:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "0.0.0.0:0"),
            ("HUBCAST_SFU__PUBLIC_IPS", r#"["127.0.0.1"]"#),
        ],
    );
    let token = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions::with_token(&token);
    let publisher = WhipPublisher::connect(&hub.url, "wide", &opts, PublishOptions::default())
        .await
        .expect("webrtc-rs publishes via WHIP");
    let answer = publisher.answer();
    assert!(
        answer.contains(" 127.0.0.1 ") && !answer.contains(" 0.0.0.0 "),
        "the answer advertises the public IP, not the bound address: {answer}"
    );
    let viewer = WhepViewer::connect(&hub.url, "wide", Some(publisher.session_id()), &opts)
        .await
        .expect("webrtc-rs plays via WHEP");
    common::media_flows_cleanly(&hub, &viewer).await;
    viewer.close().await.expect("viewer closes");
    publisher.close().await.expect("publisher closes");
}
