//! Live alert delivery against the real binary: `/ws/alerts` and `/sse/alerts` region subtree
//! (ancestor yes, sibling city no), kind and min_severity filters, 400 before the upgrade,
//! recovery with `since` / `Last-Event-ID` (exactly the missed ones, in order, then live),
//! restart on the same data dir, a stalled WebSocket dropped as a slow consumer while another
//! subscriber gets everything, the Atom feed, and the alert metrics.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::time::Duration;

use alerts_live_util::*;
use alerts_util::{cancel_xml, publish_xml};
use common::Hub;
use common::metric;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

fn alert(seq: u64, id: &str) -> Seen {
    Seen::Alert(seq, id.to_owned())
}

#[tokio::test]
async fn websocket_and_sse_filter_by_region_subtree_kind_and_severity() {
    // The hub task writes to idle subscribers (on a multi-thread runtime `auto` would not).
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__DIRECT_WRITES", "on")]);
    let token = hub.token("province-admin", "330000", &[]);
    for bad in [
        "region=999999",
        "region=330106&kind=nope",
        "kind=food",
        "region=330106&since=x",
    ] {
        assert_eq!(Ws::refused(hub.addr, bad).await, 400, "{bad}");
    }
    let mut all = Ws::connect(hub.addr, "region=330106").await;
    let mut severe_food = Ws::connect(
        hub.addr,
        "region=330106&kind=food,market&min_severity=severe",
    )
    .await;
    let mut sse = Sse::connect(hub.addr, "region=330106", &[]).await;

    let a = publish(&hub, &token, "A", "food", "Severe", "330100").await;
    let b = publish(&hub, &token, "B", "food", "Extreme", "330200").await;
    let c = publish(&hub, &token, "C", "spotcheck", "Moderate", "330106").await;
    let d = publish(&hub, &token, "D", "food", "Minor", "330000").await;
    let e = publish(&hub, &token, "E", "market", "Extreme", "330106").await;
    assert!(a < b && b < c && c < d && d < e);

    let want = [alert(a, "A"), alert(c, "C"), alert(d, "D"), alert(e, "E")];
    for (name, got) in [
        ("ws", collect_ws(&mut all, 4).await),
        ("sse", collect_sse(&mut sse, 4).await),
    ] {
        assert_eq!(
            got, want,
            "{name}: B (330200, a sibling city) must not arrive"
        );
    }
    assert_eq!(
        collect_ws(&mut severe_food, 2).await,
        [alert(a, "A"), alert(e, "E")]
    );
    all.silent(Duration::from_millis(300)).await;

    assert_eq!(
        metric(&hub, "hubcast_alert_subscribers{transport=\"websocket\"}").await,
        2.0
    );
    assert_eq!(
        metric(&hub, "hubcast_alert_published_total{kind=\"food\"}").await,
        3.0
    );
    let delivered = metric(&hub, "hubcast_alert_deliveries_total").await;
    assert!(delivered >= 10.0);
    // Idle plain-TCP subscribers get their frames written by the hub task itself.
    let direct = metric(&hub, "hubcast_alert_direct_writes_total").await;
    assert!(
        direct >= 1.0 && direct <= delivered,
        "{direct} of {delivered}"
    );
    assert!(metric(&hub, "hubcast_alert_publish_to_deliver_seconds_count").await >= 10.0);
}

async fn collect_ws(ws: &mut Ws, n: usize) -> Vec<Seen> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ws.next().await);
    }
    out
}

async fn collect_sse(sse: &mut Sse, n: usize) -> Vec<Seen> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sse.next().await);
    }
    out
}

#[tokio::test]
async fn reconnecting_with_since_or_last_event_id_gets_exactly_the_missed_alerts() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let mut ws = Ws::connect(hub.addr, "region=330100").await;
    let first = publish(&hub, &token, "R1", "food", "Severe", "330100").await;
    let second = publish(&hub, &token, "R2", "food", "Severe", "330106").await;
    assert_eq!(
        collect_ws(&mut ws, 2).await,
        [alert(first, "R1"), alert(second, "R2")]
    );
    drop(ws);

    let m1 = publish(&hub, &token, "M1", "consumer", "Minor", "330110").await;
    publish(&hub, &token, "OTHER", "food", "Severe", "330200").await;
    let m2 = publish(&hub, &token, "M2", "market", "Moderate", "330000").await;

    let mut ws = Ws::connect(hub.addr, &format!("region=330100&since={second}")).await;
    // Last-Event-ID wins over since=0.
    let last = second.to_string();
    let mut sse = Sse::connect(
        hub.addr,
        "region=330100&since=0",
        &[("Last-Event-ID", &last)],
    )
    .await;
    let missed = [alert(m1, "M1"), alert(m2, "M2")];
    assert_eq!(collect_ws(&mut ws, 2).await, missed);
    assert_eq!(collect_sse(&mut sse, 2).await, missed);

    let live = publish(&hub, &token, "L1", "food", "Extreme", "330100").await;
    assert_eq!(ws.next().await, alert(live, "L1"));
    assert_eq!(sse.next().await, alert(live, "L1"));
    ws.silent(Duration::from_millis(300)).await;
    assert!(metric(&hub, "hubcast_alert_replays_total").await >= 2.0);
}

#[tokio::test]
async fn replay_racing_live_publishes_has_no_gap_and_no_duplicate() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let mut expected = Vec::new();
    for i in 0..10 {
        let id = format!("Q{i}");
        expected.push(alert(
            publish(&hub, &token, &id, "food", "Severe", "330100").await,
            &id,
        ));
    }
    // Publish 30 more from three concurrent publishers (commits may reach the hub task out of
    // order) while three subscribers resume from different points.
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let (addr, token) = (hub.addr, token.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..10 {
                    let id = format!("Q{p}-{i}");
                    out.push(alert(post_alert(addr, &token, &id).await, &id));
                }
                out
            })
        })
        .collect();
    let mut subscribers = Vec::new();
    for since in [0u64, 3, 9] {
        subscribers.push((
            since,
            Ws::connect(hub.addr, &format!("region=330106&since={since}")).await,
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut concurrent = Vec::new();
    for publisher in publishers {
        concurrent.extend(publisher.await.expect("publisher"));
    }
    concurrent.sort_by_key(|seen| match seen {
        Seen::Alert(seq, _) => *seq,
        Seen::Reset(_) => 0,
    });
    expected.extend(concurrent);
    for (since, mut ws) in subscribers {
        let skip = usize::try_from(since).expect("small");
        let got = collect_ws(&mut ws, expected.len() - skip).await;
        assert_eq!(got, expected[skip..], "since={since}");
        ws.silent(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn subscribers_over_the_cap_get_503_before_the_upgrade() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__MAX_SUBSCRIBERS", "1")]);
    let first = Ws::connect(hub.addr, "region=330100").await;
    assert_eq!(Ws::refused(hub.addr, "region=330100").await, 503);
    drop(first);
    // The slot comes back once the first connection is gone.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let url = format!("ws://{}/ws/alerts?region=330100", hub.addr);
        if tokio_tungstenite::connect_async(url).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the slot was not released");
}

/// Publishes severe food alerts `ids` for 330100, in order; their sequence numbers.
async fn publish_each(hub: &Hub, token: &str, ids: &[&str]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for id in ids {
        seqs.push(publish(hub, token, id, "food", "Severe", "330100").await);
    }
    seqs
}

/// A WebSocket subscriber of 330100 resuming with `since` and an SSE one with
/// `Last-Event-ID: last_event_id`; both must first receive `want`.
async fn resume_both(hub: &Hub, since: u64, last_event_id: u64, want: &[Seen]) -> (Ws, Sse) {
    let mut ws = Ws::connect(hub.addr, &format!("region=330100&since={since}")).await;
    let last = last_event_id.to_string();
    let mut sse = Sse::connect(hub.addr, "region=330100", &[("Last-Event-ID", &last)]).await;
    assert_eq!(collect_ws(&mut ws, want.len()).await, want);
    assert_eq!(collect_sse(&mut sse, want.len()).await, want);
    (ws, sse)
}

#[tokio::test]
async fn since_older_than_retention_gets_a_reset_then_what_is_retained() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__RETAIN_COUNT", "2")]);
    let token = hub.token("province-admin", "330000", &[]);
    let seqs = publish_each(&hub, &token, &["T1", "T2", "T3", "T4"]).await;
    let want = [
        Seen::Reset(seqs[2]),
        alert(seqs[2], "T3"),
        alert(seqs[3], "T4"),
    ];
    let (mut ws, _sse) = resume_both(&hub, 0, 1, &want).await;
    let live = publish(&hub, &token, "T5", "food", "Severe", "330100").await;
    assert_eq!(ws.next().await, alert(live, "T5"));
}

/// A reset says what was missed and links the archive query that returns exactly it: the
/// subscriber's filter, above its `since`, below the oldest alert still replayed; over SSE
/// the same.
#[tokio::test]
async fn a_reset_links_the_archive_query_for_what_was_missed() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__RETAIN_COUNT", "2")]);
    let token = hub.token("province-admin", "330000", &[]);
    let first = publish(&hub, &token, "GAP-1", "food", "Severe", "330100").await;
    publish(&hub, &token, "GAP-OTHER", "consumer", "Severe", "330100").await;
    publish(&hub, &token, "GAP-MINOR", "food", "Minor", "330100").await;
    publish(&hub, &token, "GAP-2", "food", "Extreme", "330106").await;
    let kept = publish_each(&hub, &token, &["GAP-3", "GAP-4"]).await;
    let query = format!("region=330106&kind=food&min_severity=severe&since={first}");
    let mut ws = Ws::connect(hub.addr, &query).await;
    let reset: serde_json::Value = serde_json::from_str(&ws.next_text().await).expect("JSON");
    assert_eq!(reset["type"], "reset", "{reset}");
    assert_eq!(reset["oldest_available"], kept[0], "{reset}");
    assert_eq!(reset["missed_after"], first, "{reset}");
    let link = reset["archive"].as_str().expect("archive link");
    assert!(
        link.starts_with("/api/v1/alerts?region=330106&kind=food&min_severity=severe&after="),
        "{link}"
    );
    let page = common::get(hub.addr, link, &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let missed = alerts_util::identifiers(&page.json());
    assert_eq!(
        missed,
        ["GAP-2"],
        "what the filter let through, and only the gap"
    );
    // SSE resuming from the same point gets the same reset.
    let last = first.to_string();
    let mut sse = Sse::connect(
        hub.addr,
        "region=330106&kind=food&min_severity=severe",
        &[("Last-Event-ID", &last)],
    )
    .await;
    assert_eq!(sse.next().await, Seen::Reset(kept[0]));
}

/// Retention by age (`alerts.retain_age_secs`): alerts older than it leave the replay
/// window, so a `since` before them gets a reset, while younger ones are still replayed.
#[tokio::test]
async fn alerts_older_than_the_retention_age_leave_the_replay_window() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__RETAIN_AGE_SECS", "2")]);
    let token = hub.token("province-admin", "330000", &[]);
    let old = publish_each(&hub, &token, &["AGE1", "AGE2"]).await;
    // The hub evicts on its 1 s timer: past 2 s of age, within a few ticks.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let young = publish(&hub, &token, "AGE3", "food", "Severe", "330100").await;
    let want = [Seen::Reset(young), alert(young, "AGE3")];
    resume_both(&hub, old[0], old[0], &want).await;
}

/// A `since` above everything this hub has (a restored store, a bogus value; one log, so it
/// cannot be lagging) is answered at once with a reset and every retained alert: never a
/// silent subscription that skips the numbers up to it. (With a shared Redis log it is held a
/// moment first: `alerts_redis`.)
#[tokio::test]
async fn since_ahead_of_the_log_gets_a_reset_then_everything_retained() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let seqs = publish_each(&hub, &token, &["A1", "A2"]).await;
    let want = [
        Seen::Reset(seqs[0]),
        alert(seqs[0], "A1"),
        alert(seqs[1], "A2"),
    ];
    let (mut ws, mut sse) = resume_both(&hub, 1000, 1000, &want).await;
    let live = publish(&hub, &token, "A3", "food", "Severe", "330100").await;
    assert_eq!(ws.next().await, alert(live, "A3"));
    assert_eq!(sse.next().await, alert(live, "A3"));
}

#[tokio::test]
async fn an_update_of_an_alert_from_before_a_restart_reaches_its_audience() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let env = [("HUBCAST_ALERTS__RETAIN_COUNT", "1")];
    let hub = Hub::start_in(&dir, &[], &env);
    let token = hub.token("province-admin", "330000", &[]);
    let original = publish(&hub, &token, "U-ORIG", "food", "Severe", "330106").await;
    publish(&hub, &token, "U-OTHER", "food", "Minor", "330200").await;
    drop(hub);
    let hub = Hub::start_in(&dir, &[], &env);
    let mut xihu_severe = Ws::connect(hub.addr, "region=330106&min_severity=severe").await;
    let fixture = alerts_util::Fixture {
        identifier: "U-UPD",
        kind: "food",
        severity: "Minor",
        regions: &["330110"],
        sent: "2025-07-01T09:00:00+08:00",
        headline: "更新：范围缩小",
        description: "更新说明",
    };
    let update = alerts_util::cap_xml(&fixture).replacen(
        "<msgType>Alert</msgType><scope>Public</scope>",
        &format!(
            "<msgType>Update</msgType><scope>Public</scope>\
             <references>{},U-ORIG,2025-07-01T08:00:00+08:00</references>",
            alerts_util::SENDER
        ),
        1,
    );
    let (status, id) = publish_xml(&hub, &token, &update).await;
    assert_eq!(status, 201, "{id}");
    let seq: u64 = id.parse().expect("numeric id");
    assert!(seq > original);
    assert_eq!(xihu_severe.next().await, alert(seq, "U-UPD"));
}

#[tokio::test]
async fn a_restarted_hub_replays_what_was_published_before() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut hub = Hub::start_in(&dir, &[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let one = publish(&hub, &token, "P1", "food", "Severe", "330100").await;
    let two = publish(&hub, &token, "P2", "spotcheck", "Minor", "330106").await;
    let mut open = Ws::connect(hub.addr, "region=330106").await;
    let mut open_sse = Sse::connect(hub.addr, "region=330106", &[]).await;
    hub.terminate();
    let close = tokio::time::timeout(WAIT, open.0.next())
        .await
        .expect("closed in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001 on shutdown, got {other:?}"),
    }
    assert_eq!(
        open_sse.next_or_end().await,
        None,
        "the SSE stream ends on shutdown"
    );
    let (status, _) = hub
        .wait_exit(Duration::from_secs(15))
        .expect("exit after SIGTERM");
    assert!(status.success());
    drop(hub);

    let hub = Hub::start_in(&dir, &[], &[]);
    let mut ws = Ws::connect(hub.addr, "region=330106&since=0").await;
    let mut sse = Sse::connect(
        hub.addr,
        "region=330106",
        &[("Last-Event-ID", &one.to_string())],
    )
    .await;
    assert_eq!(
        collect_ws(&mut ws, 2).await,
        [alert(one, "P1"), alert(two, "P2")]
    );
    assert_eq!(sse.next().await, alert(two, "P2"));
    let three = publish(&hub, &token, "P3", "food", "Severe", "330106").await;
    assert_eq!(three, two + 1);
    assert_eq!(ws.next().await, alert(three, "P3"));
    assert_eq!(sse.next().await, alert(three, "P3"));
}

#[tokio::test]
async fn a_stalled_websocket_is_dropped_as_slow_consumer_and_others_get_everything() {
    // The write timeout is far longer than filling the queue can take even on a loaded
    // machine (the socket buffers and the connection's inbox hold ~130 of these alerts before
    // the queue starts to fill): the slow-consumer path, not the write timeout, must end the
    // stalled subscriber. (At 2 s, a CI run publishing ~30 alerts/s hit the timeout first.)
    let env = [
        ("HUBCAST_ALERTS__QUEUE_CAPACITY", "2"),
        ("HUBCAST_ALERTS__WRITE_TIMEOUT_SECS", "60"),
    ];
    let hub = Hub::start(&[], &env);
    let token = hub.token("province-admin", "330000", &[]);
    // The stalled client: a small receive buffer, never read.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(hub.addr).await.expect("connect");
    let url = format!("ws://{}/ws/alerts?region=330100", hub.addr);
    let (mut stalled, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("handshake");
    let mut reader = Ws::connect(hub.addr, "region=330100").await;

    let mut published = Vec::new();
    for i in 0..300 {
        let id = format!("S{i}");
        let seq = publish_sized(&hub, &token, &id, "food", "Severe", "330100", 60_000).await;
        published.push(alert(seq, &id));
        assert_eq!(reader.next().await, alert(seq, &id), "the reader keeps up");
        if metric(&hub, "hubcast_alert_slow_consumer_disconnects_total").await >= 1.0 {
            break;
        }
    }
    assert!(
        metric(&hub, "hubcast_alert_slow_consumer_disconnects_total").await >= 1.0,
        "the stalled subscriber was never dropped"
    );
    // The reader still gets what follows.
    let seq = publish(&hub, &token, "AFTER", "food", "Severe", "330100").await;
    assert_eq!(reader.next().await, alert(seq, "AFTER"));

    // The stalled connection ends: what was buffered, then close 4008 or end of stream.
    let mut read = 0;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stalled.next().await {
                Some(Ok(Message::Text(_))) => read += 1,
                Some(Ok(Message::Close(frame))) => {
                    if let Some(frame) = frame {
                        assert_eq!(u16::from(frame.code), 4008, "{frame:?}");
                    }
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled connection was not closed");
    assert!(read < published.len() + 1, "it cannot have had everything");
}

#[tokio::test]
async fn the_atom_feed_lists_live_alerts_with_cap_links() {
    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let city = publish(&hub, &token, "F1", "food", "Severe", "330100").await;
    publish(&hub, &token, "F2", "spotcheck", "Minor", "330200").await;
    let county = publish(&hub, &token, "F3", "spotcheck", "Moderate", "330106").await;

    let feed = alerts_util::get(&hub, "/feeds/alerts.atom?region=330106").await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert!(
        feed.header("content-type")
            .is_some_and(|t| t.starts_with("application/atom+xml"))
    );
    let entries = atom_entries(&feed.body);
    let want = [(county, "spotcheck"), (city, "food")];
    assert_eq!(entries.len(), 2, "{}", feed.body);
    for ((seq, kind), entry) in want.iter().zip(&entries) {
        assert_eq!(entry.href, format!("/alerts/{seq}.xml"));
        assert_eq!(entry.kind, *kind);
        assert!(entry.title.starts_with("标题 F"), "{}", entry.title);
        assert!(entry.id.ends_with(&format!(":{seq}")));
        let cap = alerts_util::get(&hub, &entry.href).await;
        assert_eq!(cap.status, 200);
    }

    // A Cancel takes F1 out of the live set.
    let sent = "2025-07-01T08:00:00+08:00";
    let cancel = cancel_xml("F1-cancel", "F1", sent, "2025-07-01T10:00:00+08:00");
    publish_xml(&hub, &token, &cancel).await;
    let feed = alerts_util::get(&hub, "/feeds/alerts.atom?region=330106").await;
    let entries = atom_entries(&feed.body);
    assert_eq!(entries.len(), 1, "{}", feed.body);
    assert_eq!(entries[0].href, format!("/alerts/{county}.xml"));
    let bad = alerts_util::get(&hub, "/feeds/alerts.atom?region=12").await;
    assert_eq!(bad.status, 400);
}

/// The feed lists the newest live alerts up to `alerts.feed_entries` and links the archive,
/// which has the rest.
#[tokio::test]
async fn the_atom_feed_lists_the_newest_up_to_its_limit() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__FEED_ENTRIES", "2")]);
    let token = hub.token("province-admin", "330000", &[]);
    let mut seqs = Vec::new();
    for n in 0..3 {
        seqs.push(publish(&hub, &token, &format!("L{n}"), "food", "Severe", "330100").await);
    }
    let feed = alerts_util::get(&hub, "/feeds/alerts.atom?region=330100").await;
    let hrefs: Vec<String> = atom_entries(&feed.body)
        .into_iter()
        .map(|e| e.href)
        .collect();
    assert_eq!(
        hrefs,
        vec![
            format!("/alerts/{}.xml", seqs[2]),
            format!("/alerts/{}.xml", seqs[1])
        ],
        "{}",
        feed.body
    );
    assert!(
        feed.body.contains(
            r#"<link rel="related" type="application/json" href="/api/v1/alerts?region=330100"/>"#
        ),
        "{}",
        feed.body
    );
}

/// Feed requests take turns on one lane (so a burst holds one public-read place, not all
/// of them) and share a rendering while the live set is unchanged: with one place in all, a
/// burst is served in full (before, all but one of it were 503 `busy`).
#[tokio::test]
async fn a_burst_of_feed_requests_is_served_in_turn() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__MAX_CONCURRENT_READS", "1")]);
    let token = hub.token("province-admin", "330000", &[]);
    for i in 0..20 {
        publish(&hub, &token, &format!("B{i}"), "food", "Severe", "330100").await;
    }
    let feeds: Vec<_> = (0..24)
        .map(|_| {
            let addr = hub.addr;
            tokio::spawn(
                async move { common::get(addr, "/feeds/alerts.atom?region=330106", &[]).await },
            )
        })
        .collect();
    let mut bodies = Vec::new();
    for feed in feeds {
        let feed = feed.await.expect("task");
        assert_eq!(feed.status, 200, "{}", feed.body);
        bodies.push(feed.body);
    }
    assert_eq!(atom_entries(&bodies[0]).len(), 20);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "one live set, one feed"
    );
    // A new alert changes the set: the next request renders it.
    publish(&hub, &token, "B-new", "food", "Severe", "330100").await;
    let feed = alerts_util::get(&hub, "/feeds/alerts.atom?region=330106").await;
    assert_eq!(atom_entries(&feed.body).len(), 21, "{}", feed.body);
}

#[tokio::test]
async fn live_connections_are_rate_limited_per_ip() {
    let hub = common::Hub::start(
        &[],
        &[
            ("HUBCAST_ALERTS__CONNECT_RATE_PER_IP", "1"),
            ("HUBCAST_ALERTS__CONNECT_BURST_PER_IP", "2"),
        ],
    );
    let url = format!("ws://{}/ws/alerts?region=330100", hub.addr);
    let first = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("first");
    let second = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("second");
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            assert!(
                body.as_deref().is_some_and(|b| b.contains("rate_limited")),
                "{body:?}"
            );
        }
        other => panic!("third connection in the same second should be refused: {other:?}"),
    }
    // A token comes back after a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(again.is_ok(), "{:?}", again.err());
    drop((first, second, again));
}

/// `alerts.direct_writes = "off"`: every delivery goes through the connection tasks (spread
/// over the runtime's threads), with the same messages and order.
#[tokio::test]
async fn with_direct_writes_off_connection_tasks_write_everything() {
    let hub = Hub::start(&[], &[("HUBCAST_ALERTS__DIRECT_WRITES", "off")]);
    let token = hub.token("province-admin", "330000", &[]);
    let mut ws = Ws::connect(hub.addr, "region=330106").await;
    let mut sse = Sse::connect(hub.addr, "region=330106", &[]).await;
    let a = publish(&hub, &token, "DW-A", "food", "Severe", "330100").await;
    let b = publish(&hub, &token, "DW-B", "food", "Severe", "330106").await;
    let want = [alert(a, "DW-A"), alert(b, "DW-B")];
    assert_eq!(collect_ws(&mut ws, 2).await, want);
    assert_eq!(collect_sse(&mut sse, 2).await, want);
    assert!(metric(&hub, "hubcast_alert_deliveries_total").await >= 4.0);
    assert_eq!(metric(&hub, "hubcast_alert_direct_writes_total").await, 0.0);
}

/// A replay longer than the inbox (300 alerts, inbox 64) with the hub task writing: it comes
/// whole and in order, refill after refill, for each of several resubscriptions.
#[tokio::test]
async fn a_long_replay_with_hub_task_writes_arrives_whole() {
    let env = [
        ("HUBCAST_ALERTS__DIRECT_WRITES", "on"),
        ("HUBCAST_ALERTS__CONNECT_RATE_PER_IP", "10000"),
        ("HUBCAST_ALERTS__CONNECT_BURST_PER_IP", "10000"),
    ];
    let hub = Hub::start(&[], &env);
    let token = hub.token("province-admin", "330000", &[]);
    let mut seqs = Vec::new();
    for i in 0..300 {
        let id = format!("R-{i}");
        seqs.push(publish(&hub, &token, &id, "food", "Severe", "330106").await);
    }
    for round in 0..5 {
        let mut ws = Ws::connect(hub.addr, "region=330106&since=0").await;
        for (i, want) in seqs.iter().enumerate() {
            match ws.next().await {
                Seen::Alert(seq, _) => assert_eq!(seq, *want, "round {round}, alert {i}"),
                other => panic!("round {round}, alert {i}: {other:?}"),
            }
        }
        ws.silent(Duration::from_millis(100)).await;
    }
}
