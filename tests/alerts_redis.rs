//! The Redis backend end to end, against a real `redis-server` this test starts on a free
//! loopback port (`appendonly yes`, `appendfsync always`):
//! - two hub instances share one log: one numbering, idempotency and conflicts across
//!   instances, references resolved across instances, live delivery and replay on the other
//!   instance, the same `/alerts/{id}.xml`, the archive (its local index caught up); a CAP
//!   sender bound to a region on one instance is refused to other regions on every instance;
//! - no loss: 1000 alerts published to both instances while each in turn is killed with
//!   SIGKILL (and the first restarted); WebSocket and SSE subscribers fail over between the
//!   instances with their last sequence number and end with exactly the acknowledged alerts
//!   they match, once each, in order;
//! - Redis down: publishing answers 503 `store_unavailable` (with `Retry-After`) and nothing
//!   is acknowledged; the archive stays readable from the local index; after Redis restarts
//!   (SIGKILLed, so only its fsynced AOF survives) the acknowledged alert is there and live
//!   delivery resumes.

mod alerts_live_util;
mod alerts_util;
mod common;
mod no_loss_util;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alerts_live_util::{Seen, Ws};
use alerts_util::{Fixture, SENDER, archive, cancel_xml, cap_xml, enc, get, identifiers, post_cap};
use common::Hub;
use common::redis::Redis;
use no_loss_util::{Hubs, Sub, check, post_until_acked, spawn_hub, sse_subscriber, ws_subscriber};

/// A shared HS256 secret (32 bytes, base64): tokens minted by one instance verify on all.
const SECRET: &str = "aHViY2FzdC1yZWRpcy10ZXN0LXNoYXJlZC1zZWNyZXQtMzI=";
const SENT: &str = "2025-07-01T08:00:00+08:00";

fn redis_env(redis: &Redis) -> Vec<(&'static str, String)> {
    vec![
        ("HUBCAST_ALERTS__BACKEND", "redis".to_owned()),
        ("HUBCAST_ALERTS__REDIS_URL", redis.url()),
        ("HUBCAST_AUTH__SECRET", SECRET.to_owned()),
    ]
}

fn start(redis: &Redis) -> Hub {
    let env = redis_env(redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Hub::start(&[], &env)
}

/// A province-admin token signed with [`SECRET`].
fn token() -> String {
    let tmp = tempfile::tempdir().expect("tmp");
    let env = [("HUBCAST_AUTH__SECRET", SECRET)];
    common::mint_token(tmp.path(), "province-admin", "330000", &[], &env)
}

fn alert(identifier: &str, region: &str, headline: &str) -> String {
    cap_xml(&Fixture {
        identifier,
        kind: "food",
        severity: "Severe",
        regions: &[region],
        sent: SENT,
        headline,
        description: "多节点共享日志",
    })
}

async fn publish(hub: &Hub, token: &str, xml: &str) -> (u16, serde_json::Value) {
    let response = post_cap(hub, token, xml).await;
    let body = serde_json::from_str(&response.body).unwrap_or_default();
    (response.status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_log() {
    let redis = Redis::start();
    let (a, b) = (start(&redis), start(&redis));
    let token = token();
    let mut on_b = Ws::connect(b.addr, "region=330106").await;

    let (status, body) = publish(&a, &token, &alert("r-1", "330100", "杭州市食品预警")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
    assert_eq!(
        on_b.next().await,
        Seen::Alert(1, "r-1".into()),
        "A's alert live on B"
    );

    let (status, body) = publish(&b, &token, &alert("r-2", "330106", "西湖区抽检")).await;
    assert_eq!(
        (status, body["seq"].as_u64()),
        (201, Some(2)),
        "one numbering"
    );
    assert_eq!(on_b.next().await, Seen::Alert(2, "r-2".into()));

    // Idempotency and conflicts hold across instances.
    let (status, body) = publish(&b, &token, &alert("r-1", "330100", "杭州市食品预警")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["seq"].as_u64(), body["created"].as_bool()),
        (Some(1), Some(false))
    );
    let (status, body) = publish(&b, &token, &alert("r-1", "330100", "改过的标题")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    // A Cancel posted on B resolves the alert A stored, and reaches its audience.
    let cancel = cancel_xml("r-1-cancel", "r-1", SENT, "2025-07-01T09:00:00+08:00");
    let (status, body) = publish(&b, &token, &cancel).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(3)), "{body}");
    assert_eq!(on_b.next().await, Seen::Alert(3, "r-1-cancel".into()));
    let unknown = cancel_xml("r-x", "nope", SENT, "2025-07-01T09:00:00+08:00");
    let (status, body) = publish(&a, &token, &unknown).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unknown_reference"))
    );
    on_b.silent(Duration::from_millis(300)).await;

    // The same document from either instance.
    let (xml_a, xml_b) = (
        get(&a, "/alerts/2.xml").await,
        get(&b, "/alerts/2.xml").await,
    );
    assert_eq!((xml_a.status, xml_b.status), (200, 200));
    assert_eq!(xml_a.body, xml_b.body);
    assert!(xml_a.body.contains("<identifier>r-2</identifier>"));

    // Replay from the log on the other instance, in order.
    let mut replay = Ws::connect(a.addr, "region=330000&since=0").await;
    for (seq, id) in [(1, "r-1"), (2, "r-2"), (3, "r-1-cancel")] {
        assert_eq!(replay.next().await, Seen::Alert(seq, id.into()));
    }

    // The archive (full text, Chinese) on both, from each one's local index.
    for hub in [&a, &b] {
        let page = archive(hub, &format!("q={}", enc("西湖区抽检"))).await;
        assert_eq!(identifiers(&page), ["r-2"]);
        let page = archive(hub, "region=330100").await;
        assert_eq!(identifiers(&page), ["r-1-cancel", "r-2", "r-1"]);
    }
    // A third instance started later builds its index and live ring from the log.
    let c = start(&redis);
    let page = archive(&c, "").await;
    assert_eq!(identifiers(&page), ["r-1-cancel", "r-2", "r-1"]);
    let mut late = Ws::connect(c.addr, "region=330106&since=1").await;
    assert_eq!(late.next().await, Seen::Alert(2, "r-2".into()));
    assert_eq!(late.next().await, Seen::Alert(3, "r-1-cancel".into()));
    // Each instance's own publishes came back through the tail as the same alerts: no
    // false alarm of a rewound log.
    for hub in [&a, &b, &c] {
        let metrics = get(hub, "/metrics").await.body;
        assert!(
            metrics.contains("hubcast_alert_log_rewinds_total 0"),
            "{metrics}"
        );
    }
}

/// With a shared log, a `since` a little ahead of this instance (a client coming from an
/// instance whose log is further) is held until this instance's log reaches it: an ordinary
/// subscription, no reset. One still ahead after the wait gets a reset and everything
/// retained.
#[tokio::test]
async fn since_ahead_on_a_shared_log_is_held_then_reset_if_still_ahead() {
    let redis = Redis::start();
    let (a, b) = (start(&redis), start(&redis));
    let token = token();
    let (status, body) = publish(&a, &token, &alert("h-1", "330100", "第一条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
    // Seen on B, so B's log has 1.
    let mut on_b = Ws::connect(b.addr, "region=330000&since=0").await;
    assert_eq!(on_b.next().await, Seen::Alert(1, "h-1".into()));
    // A client that saw 2 elsewhere connects to B before 2 exists: held (its handshake too).
    let addr = b.addr;
    let held = tokio::spawn(async move { Ws::connect(addr, "region=330000&since=2").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = publish(&a, &token, &alert("h-2", "330100", "第二条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(2)), "{body}");
    let mut held = held.await.expect("connect task");
    let (status, body) = publish(&a, &token, &alert("h-3", "330100", "第三条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(3)), "{body}");
    assert_eq!(
        held.next().await,
        Seen::Alert(3, "h-3".into()),
        "no reset: B's log caught up"
    );
    // Far ahead: after the wait, a reset and everything retained.
    let started = std::time::Instant::now();
    let mut far = Ws::connect(b.addr, "region=330000&since=1000").await;
    assert_eq!(far.next().await, Seen::Reset(1));
    // Held first, for longer than the tail can trail the log after a Redis outage (its
    // longest backoff, 5 s, and a blocking read): `ahead::AHEAD_WAIT`, 8 s.
    assert!(
        started.elapsed() >= Duration::from_millis(7500),
        "held first: {:?}",
        started.elapsed()
    );
    for (seq, id) in [(1, "h-1"), (2, "h-2"), (3, "h-3")] {
        assert_eq!(far.next().await, Seen::Alert(seq, id.into()));
    }
}

/// A token for `role` at `region` signed with [`SECRET`].
fn token_for(role: &str, region: &str) -> String {
    let tmp = tempfile::tempdir().expect("tmp");
    let env = [("HUBCAST_AUTH__SECRET", SECRET)];
    common::mint_token(tmp.path(), role, region, &[], &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_bound_on_one_instance_is_bound_on_all() {
    let redis = Redis::start();
    let (a, b) = (start(&redis), start(&redis));
    let city = token_for("city-admin", "330100");
    let county = token_for("county-operator", "330106");
    let (status, body) = publish(&a, &city, &alert("s-1", "330106", "杭州市发布")).await;
    assert_eq!(status, 201, "{body}");
    // The fixtures' sender is the city's now, on both instances, for new alerts and re-posts.
    for (hub, identifier) in [(&b, "s-2"), (&a, "s-3"), (&b, "s-1")] {
        let (status, body) = publish(hub, &county, &alert(identifier, "330106", "区县冒用")).await;
        assert_eq!(
            (status, &body["error"]),
            (403, &"sender_not_yours".into()),
            "{body}"
        );
    }
    assert!(
        redis
            .command("HGET {hubcast}:alerts:senders scjg.zj.gov.cn")
            .contains("330100")
    );
    let (status, body) = publish(&b, &city, &alert("s-4", "330106", "杭州市再发布")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(2)), "{body}");

    // A log from before sender bindings: no binding, no marker. An instance starting on it
    // binds each sender to its first alert's publisher region before it serves.
    assert!(redis.command("DEL {hubcast}:alerts:senders").contains(":1"));
    assert!(
        redis
            .command("DEL {hubcast}:alerts:senders:from_log")
            .contains(":1")
    );
    let c = start(&redis);
    assert!(
        redis
            .command("HGET {hubcast}:alerts:senders scjg.zj.gov.cn")
            .contains("330100")
    );
    let (status, body) = publish(&c, &county, &alert("s-5", "330106", "区县冒用")).await;
    assert_eq!(
        (status, &body["error"]),
        (403, &"sender_not_yours".into()),
        "{body}"
    );
}

/// Makes the log go back from 2 to 1 entries, as a Redis without fsync per write that
/// crashed, or a lagging replica that took over, would: entry 2 (CAP identifier
/// `identifier`), its identity and the stream's last id are gone.
fn lose_the_second_entry(redis: &Redis, identifier: &str) {
    let deleted = redis.command("XDEL {hubcast}:alerts:log 2-0");
    assert!(deleted.contains(":1"), "{deleted}");
    let set = redis.command("XSETID {hubcast}:alerts:log 1-0");
    assert!(set.contains("OK"), "{set}");
    let lost = format!("{SENDER}\n{identifier}");
    let forgotten = redis.command_args(&["HDEL", "{hubcast}:alerts:ids", &lost]);
    assert!(forgotten.contains(":1"), "{forgotten}");
}

/// A log that went back (here: its newest entry and its identity deleted and its last id set
/// back, as when a Redis without fsync per write crashes or a lagging replica takes over)
/// never gives a number out twice: the instance numbers new alerts above the highest it has
/// seen, so they reach its live subscribers (who are past the lost number already) and
/// nobody holding the lost number as `since` skips them. The lost alert, published again,
/// gets a new number; the archive index keeps answering.
#[tokio::test]
async fn a_log_that_went_back_never_gives_a_number_out_twice() {
    let redis = Redis::start();
    let a = start(&redis);
    let token = token();
    let mut live = Ws::connect(a.addr, "region=330000").await;
    for (i, id) in ["w-1", "w-2"].into_iter().enumerate() {
        let (status, body) = publish(&a, &token, &alert(id, "330100", "回退前")).await;
        assert_eq!(
            (status, body["seq"].as_u64()),
            (201, Some(i as u64 + 1)),
            "{body}"
        );
        assert_eq!(live.next().await, Seen::Alert(i as u64 + 1, id.into()));
    }
    // The archive index has both.
    assert_eq!(get(&a, "/api/v1/alerts").await.status, 200);
    lose_the_second_entry(&redis, "w-2");

    let (status, body) = publish(&a, &token, &alert("w-3", "330100", "回退后")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(3)), "{body}");
    assert_eq!(live.next().await, Seen::Alert(3, "w-3".into()));
    let (status, body) = publish(&a, &token, &alert("w-2", "330100", "回退前")).await;
    assert_eq!(
        (status, body["seq"].as_u64()),
        (201, Some(4)),
        "published again: {body}"
    );
    assert_eq!(live.next().await, Seen::Alert(4, "w-2".into()));

    let page = get(&a, "/api/v1/alerts").await;
    assert_eq!(
        page.status, 200,
        "the archive index still answers: {}",
        page.body
    );
    assert!(page.body.contains("w-3"), "{}", page.body);
    let metrics = get(&a, "/metrics").await.body;
    assert!(
        metrics.contains("hubcast_alert_log_rewinds_total 0"),
        "no number was handed out twice"
    );
}

fn kill(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = child.wait();
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

const N: usize = 1000;
const REGIONS: [&str; 4] = ["330100", "330106", "330200", "330000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_alert_is_lost_when_instances_die() {
    let redis = Redis::start();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let mut hub_a = spawn_hub(&data_a, addr_a, &env);
    let mut hub_b = spawn_hub(&data_b, addr_b, &env);
    let token = token();

    let until = Instant::now() + Duration::from_secs(150);
    let subs: Vec<Sub> = vec![
        ("ws", "330106", Arc::default()),
        ("ws", "330000", Arc::default()),
        ("sse", "330200", Arc::default()),
    ];
    let mut tasks = Vec::new();
    for (i, (transport, region, log)) in subs.iter().enumerate() {
        // Every subscriber starts on A; each reconnect goes to the other instance.
        let hubs = match i % 2 {
            0 => Hubs::new(&[addr_a, addr_b]),
            _ => Hubs::new(&[addr_a, addr_a, addr_b]),
        };
        let log = log.clone();
        tasks.push(match *transport {
            "ws" => tokio::spawn(ws_subscriber(hubs, region, log, until)),
            _ => tokio::spawn(sse_subscriber(hubs, region, log, until)),
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let acked: Arc<Mutex<Vec<(u64, &'static str)>>> = Arc::default();
    let publisher = {
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let region = REGIONS[i % REGIONS.len()];
                let identifier = format!("rl-{i}");
                let xml = cap_xml(&Fixture {
                    identifier: &identifier,
                    kind: if i % 2 == 0 { "food" } else { "consumer" },
                    severity: "Severe",
                    regions: &[region],
                    sent: SENT,
                    headline: "多节点不丢失",
                    description: "压力测试",
                });
                // Alternate instances; a failed post is retried on the other one (the same
                // identity: at most one record, whichever instance took it).
                let seq = post_until_acked(&[addr_a, addr_b], i % 2, &token, &xml).await;
                acked.lock().expect("acked").push((seq, region));
            }
        })
    };
    let wait_acked = |n: usize| {
        let acked = acked.clone();
        async move {
            while acked.lock().expect("acked").len() < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    // A dies a quarter of the way through and comes back at half; then B dies.
    wait_acked(N / 4).await;
    kill(&mut hub_a);
    wait_acked(N / 2).await;
    let mut hub_a = spawn_hub(&data_a, addr_a, &env);
    wait_acked(3 * N / 4).await;
    kill(&mut hub_b);
    publisher.await.expect("publisher finished");

    let acked = acked.lock().expect("acked").clone();
    assert_eq!(acked.len(), N);
    let mut seqs: Vec<u64> = acked.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=N as u64).collect::<Vec<_>>(),
        "one gap-free numbering"
    );
    check(&subs, &acked).await;
    for task in tasks {
        task.abort();
    }
    kill(&mut hub_a);
}

/// A subscriber told to recover from the archive (`reset`) must not get a page that silently
/// lacks alerts: with Redis gone before the index caught up, the archive link answers 503
/// (retry), and once Redis is back it lists every missed alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_index_behind_the_log_is_503_not_a_short_page() {
    let mut redis = Redis::start();
    let mut env = redis_env(&redis);
    env.push(("HUBCAST_ALERTS__RETAIN_COUNT", "2".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = Hub::start(&[], &env);
    let token = token();
    for i in 1..=5 {
        let (status, _) = publish(&hub, &token, &alert(&format!("b-{i}"), "330100", "补录")).await;
        assert_eq!(status, 201);
    }
    let mut ws = Ws::connect(hub.addr, "region=330100&since=0").await;
    let reset = ws.next_text().await;
    let value: serde_json::Value = serde_json::from_str(&reset).expect("json");
    assert_eq!(value["type"], "reset", "{reset}");
    let link = value["archive"].as_str().expect("archive link").to_owned();

    redis.kill();
    let page = get(&hub, &link).await;
    assert_eq!(
        page.status, 503,
        "a page lacking the missed alerts: {}",
        page.body
    );
    assert_eq!(page.json()["error"], "store_unavailable", "{}", page.body);

    redis.restart();
    let listed = listed_once_served(&hub, &link).await;
    assert_eq!(
        listed,
        ["b-3", "b-2", "b-1"],
        "every alert below the replayable ones"
    );
}

/// After the log went back, an instance restarted on its data directory keeps the archive
/// index's copy of the alerts the log lost (they were acknowledged and delivered; it is their
/// only copy), and goes on numbering above them.
#[tokio::test]
async fn a_restart_after_the_log_went_back_keeps_the_lost_alerts_in_the_archive() {
    let redis = Redis::start();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let token = token();
    let mut a = Hub::start_in(&data, &[], &env);
    for id in ["k-1", "k-2"] {
        let (status, _) = publish(&a, &token, &alert(id, "330100", "回退前")).await;
        assert_eq!(status, 201);
    }
    assert_eq!(identifiers(&archive(&a, "").await), ["k-2", "k-1"]);
    lose_the_second_entry(&redis, "k-2");
    a.terminate();
    assert!(
        a.wait_exit(Duration::from_secs(10)).is_some(),
        "the hub stops"
    );

    let b = Hub::start_in(&data, &[], &env);
    assert_eq!(identifiers(&archive(&b, "").await), ["k-2", "k-1"], "kept");
    // Its own URL (the Atom feed's link) answers from the index's copy too.
    let lost = get(&b, "/alerts/2.xml").await;
    assert_eq!(lost.status, 200, "{}", lost.body);
    assert!(
        lost.body.contains("<identifier>k-2</identifier>"),
        "{}",
        lost.body
    );
    let (status, body) = publish(&b, &token, &alert("k-3", "330100", "回退后")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(3)), "{body}");
    assert_eq!(identifiers(&archive(&b, "").await), ["k-3", "k-2", "k-1"]);
}

/// An index that cannot take the entries it lacks (its file write-locked by another process
/// past the busy timeout) is behind: 503, not a page without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_that_cannot_take_new_entries_is_503() {
    let redis = Redis::start();
    let env = redis_env(&redis);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let hub = Hub::start_in(&data, &[], &env);
    let token = token();
    for id in ["l-1", "l-2", "l-3"] {
        let (status, _) = publish(&hub, &token, &alert(id, "330100", "锁住")).await;
        assert_eq!(status, 201);
    }
    let index = data.join("alerts-redis-index.sqlite3");
    let lock = rusqlite::Connection::open(&index).expect("index");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let page = get(&hub, "/api/v1/alerts").await;
    assert_eq!(page.status, 503, "a page without l-1..l-3: {}", page.body);
    assert_eq!(page.json()["error"], "store_unavailable", "{}", page.body);
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    let listed = listed_once_served(&hub, "/api/v1/alerts").await;
    assert_eq!(listed, ["l-3", "l-2", "l-1"]);
}

/// The identifiers an archive page at `path` lists once it is served (200), within 10 s.
async fn listed_once_served(hub: &Hub, path: &str) -> Vec<String> {
    for _ in 0..50 {
        let page = get(hub, path).await;
        if page.status == 200 {
            return identifiers(&page.json());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{path} was not served within 10 s");
}

/// Publishing `xml` is refused with 503 `store_unavailable` and `Retry-After: 1`.
async fn assert_unavailable(hub: &Hub, token: &str, xml: &str, what: &str) {
    let response = post_cap(hub, token, xml).await;
    assert_eq!(response.status, 503, "{what}: {}", response.body);
    assert_eq!(response.json()["error"], "store_unavailable", "{what}");
    assert_eq!(response.header("retry-after"), Some("1"), "{what}");
}

/// Redis refusing writes for a reason that passes or needs an operator (too few replicas
/// in reach, memory full) is 503 with `Retry-After`, like an outage: a publisher retries
/// instead of taking a 500 for a bad request; once Redis accepts writes again it goes through.
#[tokio::test]
async fn redis_refusing_writes_is_503() {
    let redis = Redis::start();
    let hub = start(&redis);
    let token = token();
    for (setting, value, undo) in [("min-replicas-to-write", "1", "0"), ("maxmemory", "1", "0")] {
        let set = redis.command(&format!("CONFIG SET {setting} {value}"));
        assert!(set.contains("OK"), "{setting}: {set}");
        let xml = alert(&format!("r-{setting}"), "330100", "拒写");
        assert_unavailable(&hub, &token, &xml, setting).await;
        assert!(
            redis
                .command(&format!("CONFIG SET {setting} {undo}"))
                .contains("OK")
        );
        let (status, body) = publish(&hub, &token, &xml).await;
        assert_eq!(status, 201, "{setting}, accepted again: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_503_and_loses_nothing() {
    let mut redis = Redis::start();
    let hub = start(&redis);
    let token = token();
    let mut live = Ws::connect(hub.addr, "region=330100").await;
    let (status, _) = publish(&hub, &token, &alert("o-1", "330100", "停电前")).await;
    assert_eq!(status, 201);
    assert_eq!(live.next().await, Seen::Alert(1, "o-1".into()));
    // The index has it before the outage.
    assert_eq!(identifiers(&archive(&hub, "").await), ["o-1"]);

    redis.kill();
    let xml = alert("o-2", "330100", "停电中");
    assert_unavailable(&hub, &token, &xml, "Redis down").await;
    // Reading the archive still works, from the local index.
    assert_eq!(identifiers(&archive(&hub, "").await), ["o-1"]);
    live.silent(Duration::from_millis(300)).await;

    // SIGKILLed Redis comes back from its AOF: the acknowledged alert is there, the refused
    // one is not, and publishing and live delivery resume.
    redis.restart();
    assert!(redis.command("XLEN {hubcast}:alerts:log").contains(":1"));
    let (status, body) = publish(&hub, &token, &xml).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(2)), "{body}");
    assert_eq!(live.next().await, Seen::Alert(2, "o-2".into()));
    let fetched = get(&hub, "/alerts/1.xml").await;
    assert_eq!(fetched.status, 200);
    assert!(fetched.body.contains("<identifier>o-1</identifier>"));
}

/// Runs `hubcast serve` on `redis_url` with data in `dir` until it exits (a start error);
/// returns (status, stdout, stderr).
fn serve_on_redis(
    dir: &std::path::Path,
    redis_url: &str,
) -> (std::process::ExitStatus, String, String) {
    let dir = dir.display().to_string();
    common::run(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
        &[
            ("HUBCAST_ALERTS__BACKEND", "redis"),
            ("HUBCAST_ALERTS__REDIS_URL", redis_url),
            ("HUBCAST_SFU__UDP_LISTEN", "127.0.0.1:0"),
            ("HUBCAST_SFU__TCP_LISTEN", "127.0.0.1:0"),
        ],
    )
}

/// Redis not up (yet): a start error naming the setting, with status 1, which the systemd
/// unit restarts (2, an invalid setting, it does not: a hub booting before its Redis would
/// stay down).
#[test]
fn unreachable_redis_is_a_start_error_naming_the_setting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_addr().port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (status, _, err) = serve_on_redis(tmp.path(), &url);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("cannot start: alerts.redis_url"), "{err}");
}

#[tokio::test]
async fn a_password_protected_redis_works_and_a_wrong_password_is_a_start_error() {
    let redis = Redis::start_with(Some("s3cret-pass"));
    let hub = start(&redis);
    let token = token();
    let (status, body) = publish(&hub, &token, &alert("pw-1", "330100", "有密码的 Redis")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
    assert!(redis.command("XLEN {hubcast}:alerts:log").contains(":1"));

    let tmp = tempfile::tempdir().expect("tmp");
    let wrong = format!("redis://:wrong@127.0.0.1:{}/", redis.port);
    let (status, out, err) = serve_on_redis(tmp.path(), &wrong);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("alerts.redis_url"), "{err}");
    assert!(
        !err.contains("wrong") && !out.contains("wrong"),
        "the password is not printed: {err}"
    );
}

/// A Redis that does not fsync each write could lose acknowledged alerts (and reuse their
/// numbers): the hub refuses to start on it, naming the setting and the override, and starts
/// with `alerts.redis_unsafe_durability = true`.
#[tokio::test]
async fn a_redis_without_fsync_per_write_is_refused_unless_overridden() {
    let redis = Redis::start();
    let set = redis.command("CONFIG SET appendfsync everysec");
    assert!(set.contains("OK"), "{set}");
    let tmp = tempfile::tempdir().expect("tmp");
    let (status, _, err) = serve_on_redis(tmp.path(), &redis.url());
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("appendfsync everysec"), "{err}");
    assert!(err.contains("alerts.redis_unsafe_durability"), "{err}");
    let mut env = redis_env(&redis);
    env.push(("HUBCAST_ALERTS__REDIS_UNSAFE_DURABILITY", "true".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = Hub::start(&[], &env);
    let (status, body) = publish(&hub, &token(), &alert("w-1", "330100", "知情启动")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
}

/// An entry in the shared log that no instance can read (written by another tool or a later
/// version) is skipped, not a dead end: numbering goes on after it, live delivery continues
/// past it (after the gap wait), and an instance started later rebuilds its live ring and
/// archive around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_log_entry_is_skipped_not_a_dead_end() {
    let redis = Redis::start();
    let a = start(&redis);
    let token = token();
    let mut live = Ws::connect(a.addr, "region=330000").await;
    let (status, body) = publish(&a, &token, &alert("u-1", "330100", "第一条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
    assert_eq!(live.next().await, Seen::Alert(1, "u-1".into()));

    let added = redis.command("XADD {hubcast}:alerts:log 2-0 rec {truncated");
    assert!(added.contains("2-0"), "{added}");
    let (status, body) = publish(&a, &token, &alert("u-3", "330100", "第三条")).await;
    assert_eq!(
        (status, body["seq"].as_u64()),
        (201, Some(3)),
        "numbering continues after the unreadable entry: {body}"
    );
    assert_eq!(
        live.next().await,
        Seen::Alert(3, "u-3".into()),
        "delivered once the gap is known to be unreadable"
    );
    let (status, body) = publish(&a, &token, &alert("u-4", "330100", "第四条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(4)), "{body}");
    assert_eq!(live.next().await, Seen::Alert(4, "u-4".into()));

    // A later instance: replay and archive around the entry.
    let b = start(&redis);
    let mut replay = Ws::connect(b.addr, "region=330000&since=0").await;
    for (seq, id) in [(1, "u-1"), (3, "u-3"), (4, "u-4")] {
        assert_eq!(replay.next().await, Seen::Alert(seq, id.into()));
    }
    let page = archive(&b, "").await;
    assert_eq!(identifiers(&page), ["u-4", "u-3", "u-1"]);
    // The unreadable number itself is an error, not a silent absence.
    let missing = get(&b, "/alerts/2.xml").await;
    assert!(missing.status >= 500, "{} {}", missing.status, missing.body);
}

/// More unreadable entries in a row than one page of the log (500): an instance rebuilding
/// its live ring pages on past them by the numbers it examined (it used to take the empty
/// page for the end of the log and lose every alert after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_unreadable_entries_is_not_the_end_of_the_log() {
    let redis = Redis::start();
    let a = start(&redis);
    let token = token();
    let (status, body) = publish(&a, &token, &alert("p-1", "330100", "第一条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(1)), "{body}");
    for seq in 2..=601 {
        let added = redis.command(&format!("XADD {{hubcast}}:alerts:log {seq}-0 rec {{x"));
        assert!(added.contains(&format!("{seq}-0")), "{added}");
    }
    let (status, body) = publish(&a, &token, &alert("p-602", "330100", "最后一条")).await;
    assert_eq!((status, body["seq"].as_u64()), (201, Some(602)), "{body}");
    let b = start(&redis);
    let mut replay = Ws::connect(b.addr, "region=330000&since=0").await;
    assert_eq!(replay.next().await, Seen::Alert(1, "p-1".into()));
    assert_eq!(replay.next().await, Seen::Alert(602, "p-602".into()));
}

/// Redis hung (stopped, so connections are taken and nothing answers): one archive query
/// pays the read timeout catching the index up, the others read the index as it is meanwhile
/// (they used to queue behind it, each paying the timeouts in turn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_queries_do_not_queue_behind_a_hung_redis() {
    let redis = Redis::start();
    let hub = start(&redis);
    let token = token();
    let (status, _) = publish(&hub, &token, &alert("h-1", "330100", "挂起前")).await;
    assert_eq!(status, 201);
    assert_eq!(identifiers(&archive(&hub, "").await), ["h-1"]);
    redis.freeze(true);
    let started = std::time::Instant::now();
    let first = tokio::spawn({
        let addr = hub.addr;
        async move {
            let page = common::get(addr, "/api/v1/alerts", &[]).await;
            (page, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let page = archive(&hub, "").await;
        assert_eq!(identifiers(&page), ["h-1"], "the index as it is");
    }
    let others = started.elapsed();
    let (first, catching_up) = first.await.expect("task");
    redis.freeze(false);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        others < catching_up,
        "the others ({others:?}) were not served before the catching-up query ({catching_up:?})"
    );
}

/// After Redis restarts, the pooled connections are all stale: the first request to find
/// one stale drops them all and goes on with a fresh connection, so publishing answers 201
/// (created) at once instead of 503 until every stale connection has failed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_used_again_at_once() {
    let mut redis = Redis::start();
    let hub = start(&redis);
    let token = token();
    // Several publishes at once leave several connections in the pool.
    let before: Vec<String> = (0..6)
        .map(|i| alert(&format!("r-{i}"), "330100", "重启前"))
        .collect();
    let answers =
        futures_util::future::join_all(before.iter().map(|xml| publish(&hub, &token, xml))).await;
    for (status, body) in answers {
        assert_eq!(status, 201, "{body}");
    }
    redis.restart();
    for i in 0..3 {
        let (status, body) = publish(
            &hub,
            &token,
            &alert(&format!("r-after-{i}"), "330100", "重启后"),
        )
        .await;
        assert_eq!(status, 201, "publish {i} after the restart: {body}");
        assert_eq!(body["created"], true, "{body}");
    }
}
