//! Alerts over IPv6, against the real binary on `[::1]`: `hubcast alert publish --server
//! http://[::1]:…` publishes, a WebSocket and an SSE subscriber get the alert, and the
//! per-address cap on live connections counts an IPv6 client like any other (its /64).

mod alerts_live_util;
mod alerts_util;
mod common;

use alerts_live_util::{Seen, Sse, Ws};
use alerts_util::data_path;
use common::{Hub, run};

#[tokio::test]
async fn alerts_are_published_and_delivered_over_ipv6() {
    let hub = Hub::start_on(
        "[::1]:0",
        &[],
        &[("HUBCAST_ALERTS__MAX_CONNECTIONS_PER_IP", "2")],
    );
    assert!(hub.addr.is_ipv6(), "{}", hub.url);
    let mut ws = Ws::connect(hub.addr, "region=330106").await;
    let mut sse = Sse::connect(hub.addr, "region=330106", &[]).await;

    let token = hub.token("city-admin", "330100", &[]);
    let file = data_path("food_warning_330100.xml");
    let (status, stdout, stderr) = run(
        &[
            "alert", "publish", &file, "--server", &hub.url, "--token", &token,
        ],
        &[],
    );
    assert!(status.success(), "publish over IPv6: {stdout} {stderr}");
    let published: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON answer");
    let seq = published["seq"].as_u64().expect("seq");

    for seen in [ws.next().await, sse.next().await] {
        match seen {
            Seen::Alert(s, _) => assert_eq!(s, seq),
            other => panic!("expected the alert, got {other:?}"),
        }
    }

    // Two live connections from ::1 are its share: a third is refused with the cap's code.
    assert_eq!(Ws::refused(hub.addr, "region=330106").await, 429);
    drop(ws);
    drop(sse);
}
