//! Live alerts in the client most public subscribers and wall displays use: a browser.
//! Headless Chromium (inside a loopback-only namespace) subscribes with the standard
//! `EventSource` and a `WebSocket` that reconnects with `since` = the last sequence number it
//! saw. The hub is SIGKILLed and restarted on the same address, and alerts are published while
//! the browser has not yet come back: `EventSource` reconnects by itself after the stream's
//! `retry:` with `Last-Event-ID`, and both clients end with exactly the acknowledged alerts
//! their filter matches, once each, in order, without any code of ours on the SSE side.

mod alerts_util;
mod common;
mod no_loss_util;

use std::time::Duration;

use alerts_util::{Fixture, cap_xml};
use testkit::browser::Browser;

/// The page's subscribers: both log `[seq, identifier]` per alert into `window.got`.
const SUBSCRIBE: &str = r#"
window.got = { sse: [], ws: [], sseOpens: 0, wsOpens: 0 };
const filter = 'region=330106&kind=food';
const es = new EventSource('/sse/alerts?' + filter);
es.onopen = () => { got.sseOpens += 1; };
es.onmessage = (e) => {
  const frame = JSON.parse(e.data);
  got.sse.push([Number(e.lastEventId), frame.alert.identifier]);
};
let last = null;
function openWs() {
  const since = last === null ? '' : '&since=' + last;
  const ws = new WebSocket('ws://' + location.host + '/ws/alerts?' + filter + since);
  ws.onopen = () => { got.wsOpens += 1; };
  ws.onmessage = (m) => {
    const frame = JSON.parse(m.data);
    if (frame.type === 'alert') {
      got.ws.push([frame.seq, frame.alert.identifier]);
      last = frame.seq;
    }
  };
  ws.onclose = () => setTimeout(openWs, 500);
}
openWs();
return true;
"#;

/// Alert `n`: food or spot-check, for Hangzhou (reaching 330106's subscribers) or for Ningbo
/// (not). Returns the XML and whether the page's filter matches it.
fn alert(n: usize) -> (String, bool) {
    let identifier = format!("browser-{n}");
    let (kind, regions): (&str, &[&str]) = match n % 4 {
        0 => ("food", &["330100"]),
        1 => ("food", &["330200"]),
        2 => ("spotcheck", &["330106"]),
        _ => ("food", &["330106"]),
    };
    let xml = cap_xml(&Fixture {
        identifier: &identifier,
        kind,
        severity: "Moderate",
        regions,
        sent: "2026-11-27T10:00:00+08:00",
        headline: "浏览器订阅测试",
        description: "EventSource 与 WebSocket 断线重连",
    });
    (xml, kind == "food" && regions != ["330200"])
}

/// Publishes alerts `range` and returns the matching ones as `[seq, identifier]`.
async fn publish(
    addr: std::net::SocketAddr,
    token: &str,
    range: std::ops::Range<usize>,
) -> Vec<serde_json::Value> {
    let mut matching = Vec::new();
    for n in range {
        let (xml, matches) = alert(n);
        let (status, body) = no_loss_util::try_post(addr, token, &xml)
            .await
            .expect("the hub answers");
        assert_eq!(status, 201, "alert {n}: {body}");
        if matches {
            matching.push(serde_json::json!([body["seq"], format!("browser-{n}")]));
        }
    }
    matching
}

/// A hub on a fixed loopback address (so a restarted one is found again) with its data dir,
/// a province admin's token, and Chromium on a page of the hub's origin.
struct Setup {
    addr: std::net::SocketAddr,
    data: tempfile::TempDir,
    hub: std::process::Child,
    token: String,
    browser: Browser,
}

impl Setup {
    async fn start(env: &[(&str, &str)]) -> Setup {
        let port = testkit::free_tcp_port().expect("a free port");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let data = tempfile::tempdir().expect("tmp");
        let hub = no_loss_util::spawn_hub(data.path(), addr, env);
        let token = common::mint_token(data.path(), "province-admin", "330000", &[], &[]);
        let browser = Browser::launch().await.expect("chromium");
        browser
            .goto(&format!("http://{addr}/healthz"))
            .await
            .expect("a page of the hub's origin");
        Setup {
            addr,
            data,
            hub,
            token,
            browser,
        }
    }

    async fn end(mut self) {
        self.browser.close().await.ok();
        self.hub.kill().ok();
        self.hub.wait().ok();
    }
}

#[tokio::test]
async fn a_browser_resumes_after_a_hub_crash_with_nothing_lost_or_repeated() {
    testkit::isolated!();
    let mut setup = Setup::start(&[]).await;
    let (addr, token, browser) = (setup.addr, setup.token.clone(), &setup.browser);
    browser.execute(SUBSCRIBE, vec![]).await.expect("subscribe");
    browser
        .wait_for(
            "got.sseOpens === 1 && got.wsOpens === 1",
            Duration::from_secs(10),
        )
        .await
        .expect("both subscribers open");

    let mut expected = publish(addr, &token, 0..16).await;
    let want = serde_json::Value::Array(expected.clone()).to_string();
    let caught_up =
        format!("JSON.stringify(got.sse) === '{want}' && JSON.stringify(got.ws) === '{want}'");
    browser
        .wait_for(&caught_up, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("live alerts reach both: {e}"));

    // Crash and restart; publish while the browser is still waiting to reconnect
    // (EventSource after `retry: 3000`, the page's WebSocket after 0.5 s), then more.
    setup.hub.kill().expect("SIGKILL");
    setup.hub.wait().expect("reaped");
    setup.hub = no_loss_util::spawn_hub(setup.data.path(), addr, &[]);
    expected.extend(publish(addr, &token, 16..24).await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    expected.extend(publish(addr, &token, 24..32).await);

    let want = serde_json::Value::Array(expected.clone()).to_string();
    let caught_up =
        format!("JSON.stringify(got.sse) === '{want}' && JSON.stringify(got.ws) === '{want}'");
    let seen = browser.eval("JSON.stringify(got)").await.expect("got");
    browser
        .wait_for(&caught_up, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| {
            panic!("after the restart both end with exactly {want}: {e}; the page had {seen}")
        });
    let opens = browser
        .eval("[got.sseOpens, got.wsOpens]")
        .await
        .expect("opens");
    assert_eq!(opens, serde_json::json!([2, 2]), "each reconnected once");
    setup.end().await;
}

/// A wall display refused while the hub is full (503 `busy`) is not lost: Chromium's
/// `EventSource` gets the `refused` event, waits the stream's `retry:`, and reconnects by
/// itself once there is room, then receives alerts. (A plain 503 would end it for good.)
#[tokio::test]
async fn a_refused_event_source_comes_back_when_there_is_room() {
    testkit::isolated!();
    let setup = Setup::start(&[("HUBCAST_ALERTS__MAX_SUBSCRIBERS", "1")]).await;
    let (addr, token, browser) = (setup.addr, setup.token.clone(), &setup.browser);
    let open = r#"
        window.got = { first: 0, refused: 0, secondOpens: 0, alerts: [] };
        window.first = new EventSource('/sse/alerts?region=330106');
        first.onopen = () => { got.first += 1; };
        return true;
    "#;
    browser.execute(open, vec![]).await.expect("first");
    browser
        .wait_for("got.first === 1", Duration::from_secs(10))
        .await
        .expect("the first display takes the one place");
    let second = r#"
        const es = new EventSource('/sse/alerts?region=330106&kind=food');
        es.onopen = () => { got.secondOpens += 1; };
        es.addEventListener('refused', () => { got.refused += 1; });
        es.onmessage = (e) => { got.alerts.push(JSON.parse(e.data).alert.identifier); };
        return true;
    "#;
    browser.execute(second, vec![]).await.expect("second");
    browser
        .wait_for("got.refused >= 1", Duration::from_secs(10))
        .await
        .expect("the second is told it was refused");
    browser
        .execute("first.close(); return true;", vec![])
        .await
        .expect("close the first");
    // The second comes back after its retry (5–10 s) plus the first's slot being freed.
    browser
        .wait_for("got.secondOpens > got.refused", Duration::from_secs(25))
        .await
        .unwrap_or_else(|e| panic!("the refused EventSource reconnected by itself: {e}"));
    let connected = browser.eval("JSON.stringify(got)").await.expect("got");
    let ids: Vec<serde_json::Value> = (publish(addr, &token, 0..4).await.iter())
        .map(|pair| pair[1].clone())
        .collect();
    let want = serde_json::Value::Array(ids).to_string();
    browser
        .wait_for(
            &format!("JSON.stringify(got.alerts) === '{want}'"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("alerts reach it: {e}; before publishing: {connected}"));
    setup.end().await;
}
