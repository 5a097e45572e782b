//! The media API from another origin (`http.cors_origins`): a Chromium page served from a
//! listed origin plays a meeting from the hub (WHEP `POST` with a bearer token, the session's
//! `Location` read, a layer asked for), while a page from an origin not listed is kept out by
//! the browser itself. Real Chromium enforces CORS, so this is what a portal's wall page
//! would meet. Inside a loopback-only namespace.

mod common;

use std::time::Duration;

use common::Hub;
use testkit::browser::Browser;
use testkit::rtc_client::{ClientOptions, PublishOptions, WhipPublisher};

#[tokio::test]
async fn a_listed_origin_plays_a_meeting_and_another_is_kept_out() {
    testkit::isolated!();
    let port = testkit::free_tcp_port().expect("port");
    let listed = format!("http://localhost:{port}");
    let origins = format!(r#"["{listed}"]"#);
    // On both families, so the same hub answers http://localhost, http://127.0.0.1 and
    // http://[::1]: three origins.
    let hub = Hub::start_on(
        &format!("[::]:{port}"),
        &[],
        &[("HUBCAST_HTTP__CORS_ORIGINS", origins.as_str())],
    );
    let api = format!("http://127.0.0.1:{port}");
    let token = hub.token("city-admin", "330100", &[]);
    let opts = ClientOptions::with_token(&token);
    let publisher = WhipPublisher::connect(&api, "cors", &opts, PublishOptions::simulcast())
        .await
        .expect("webrtc-rs publishes");
    let id = publisher.session_id().to_owned();

    let page = |origin: &str| {
        format!(
            "{origin}/assets/test/view.html?room=cors&publisher={id}&muted=1&base={api}#token={token}"
        )
    };
    let viewer = Browser::launch().await.expect("chromium");
    viewer.goto(&page(&listed)).await.expect("view page");
    viewer
        .wait_for(
            // The publisher's video is synthetic (not decodable): media arriving is the proof.
            "hubcastStats().then(s => s.packetsReceived > 100 && s)",
            Duration::from_secs(40),
        )
        .await
        .expect("the listed origin's page plays the meeting");
    let state = viewer
        .wait_for("hubcastState()", Duration::from_secs(5))
        .await
        .expect("state");
    let location = state["location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with(&format!("{api}/whep/cors/sessions/")),
        "the session's Location is readable from the page: {state}"
    );
    viewer
        .wait_for(
            "hubcastSetLayer('q').then(() => true)",
            Duration::from_secs(10),
        )
        .await
        .expect("a layer asked for across origins (preflighted POST)");

    let outsider = Browser::launch().await.expect("chromium");
    outsider
        .goto(&page(&format!("http://[::1]:{port}")))
        .await
        .expect("view page");
    let refused = outsider
        .wait_for(
            "(() => { const s = hubcastState(); return s.error && s; })()",
            Duration::from_secs(20),
        )
        .await
        .expect("the unlisted origin's page is refused by the browser");
    assert!(
        refused["location"].is_null() || refused["location"] == "",
        "{refused}"
    );
    outsider.close().await.ok();
    viewer.close().await.ok();
    publisher.close().await.expect("publisher closes");
}
