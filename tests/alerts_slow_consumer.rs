//! Slow consumer (issue 4), against the real binary over TCP on loopback: one subscriber
//! stops reading; the other subscribers' delivery latency p99 stays within 2× of the same hub
//! without it; the stalled one gets close 4008 "slow consumer" (SSE: its stream ends) and
//! recovers every alert it matches with `since` (SSE: `Last-Event-ID`), once each, in order.
//!
//! # Stalling for real
//! The stalled client opens its TCP connection with `SO_RCVBUF` = 4 KiB (set before the
//! handshake, so its advertised window stays small), reads its first alert, then reads
//! nothing more. The hub's writes to it block once the kernel buffers are full, then its
//! inbox and hub queue (`alerts.queue_capacity` = 16) fill, and the hub drops it. On plain
//! loopback that takes some 1650 alerts: `lo`'s 64 KiB MTU makes Linux autotune a 4 MiB send
//! buffer, where a client over Ethernet (MSS 1448) gets about 128 KiB. So each test runs in
//! its own network namespace (`testkit::isolated!`, as the SFU tests do; needs root) whose
//! `lo` gets an Ethernet MTU of 1500, and every alert has a realistic size (frames of about
//! 1.7 KiB): the stalled subscriber is dropped after some 140 alerts, as in production.
//!
//! # Latency
//! 100 healthy WebSocket subscribers stay connected through every round. A round publishes
//! 150 alerts from one publisher at a steady pace (one every 12 ms, each POST acknowledged
//! before the next): 7 of 8 for the whole province (reaching everyone, the stalled subscriber
//! included), 1 of 8 for the healthy subscribers' city only. Before a stalled round, the
//! stalled subscriber connects, reads one alert and stops; alerts that only it matches then
//! fill its buffers, 8 at a time, until `hubcast_alert_deliveries_total` shows some were not
//! handed to its connection: its writes are blocked and its hub queue holds at most 8. So
//! inside the measured window its queue fills, the hub drops it (within the first ~20
//! alerts) and its blocked connection lingers to the end. (Until then a stalled subscriber
//! costs the hub what a healthy one does.) A baseline round publishes as many of those
//! alerts, to nobody, before its window. Latency = from just before the publisher writes its
//! POST (connection already open) to the moment a healthy subscriber's reader task gets the
//! frame; it includes the store commit, the same in both kinds of round. The store lives on
//! tmpfs (`/dev/shm` when present), so the shared disk's fsync stalls, which have nothing to
//! do with fan-out, do not dominate the tail.
//!
//! # Robustness on a noisy, shared 2-core machine, without weakening the bound
//! One hub serves every round (a fresh hub per run would add process-to-process variance:
//! thread placement, allocator and store warm-up), after an unmeasured warm-up. Sixteen
//! rounds alternate S B B S S B B S … (S = with a stalled subscriber, B = baseline), which
//! cancels drift in the machine's load. The tail here is made of scheduling hiccups of other
//! processes (one can hold a few consecutive alerts back by 20–100 ms), so the p99 of one
//! round is its one or two worst alerts and varies up to 10× from round to round with no
//! stall at all; in a recorded null run (24 baseline rounds of 100 alerts, split at random
//! into two groups) the ratio of the groups' medians of per-round p99s went over 2 in 1.5 %
//! of splits. The assertion therefore takes the p99 of each kind's deliveries pooled over its
//! eight rounds (120 000 each: the "run with" and the "run without", spread over the same
//! stretch of time): stalled p99 ≤ 2 × baseline p99, with no floor and no retry. Pooled over
//! 1200 alerts per group, the same recording's random splits never reached a ratio of 1.6.
//! A hub that let a stalled subscriber slow the others (a fan-out waiting on its write, a
//! lock held across it, a drop that costs a pause) raises the tail of every stalled round and
//! fails; one that held deliveries back for the whole write timeout fails the bounded wait.
//!
//! Each stalled round also checks: the slow-consumer counter rose by exactly one (a healthy
//! subscriber dropped would raise it too), the stalled subscriber reads what was buffered (in
//! order, no gap) then close 4008 "slow consumer", and reconnecting with `since` brings
//! exactly the rest. Every healthy subscriber must end with every alert it matches, once, in
//! order, and no close.

mod alerts_live_util;
mod alerts_util;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alerts_live_util::{Seen, Sse, WAIT, Ws, parse_frame, small_window};
use alerts_util::{Fixture, cap_xml};
use common::Hub;
use common::metric;
use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Healthy WebSocket subscribers.
const HEALTHY: usize = 100;
/// Measured alerts per round.
const PER_ROUND: usize = 150;
/// One publish every `PACE`.
const PACE: Duration = Duration::from_millis(12);
/// Measured rounds: true = with a stalled subscriber (S B B S, four times).
const ROUNDS: [bool; 16] = {
    let mut rounds = [false; 16];
    let mut i = 0;
    while i < rounds.len() {
        rounds[i] = matches!(i % 4, 0 | 3);
        i += 1;
    }
    rounds
};
/// Unmeasured alerts before the first round.
const WARM_UP: usize = 40;
/// Description padding of an alert (frame about 1.7 KiB).
const PAD: usize = 1200;
/// `alerts.queue_capacity`.
const QUEUE: &str = "16";
/// Most alerts a stalled subscriber may take before its writes block (about 120 do).
const MAX_FILL: usize = 2000;
/// Fill alerts published between two looks at the deliveries counter (< `QUEUE`).
const FILL_STEP: usize = 8;
/// `SO_RCVBUF` of a stalled client.
const RCVBUF: u32 = 4096;
/// MTU given to `lo` in the test's namespace (Ethernet).
const MTU: &str = "1500";
/// Healthy subscribers' region (Ningbo city).
const HEALTHY_REGION: &str = "330200";
/// The stalled subscriber's region (Hangzhou, Xihu district).
const STALLED_REGION: &str = "330106";
/// The province: reaches both.
const PROVINCE: &str = "330000";
/// Whole-scenario guard against a hang (each wait inside is bounded too).
const LIMIT: Duration = Duration::from_secs(120);

const DELIVERIES: &str = "hubcast_alert_deliveries_total";
const GAUGE: &str = "hubcast_alert_subscribers{transport=\"websocket\"}";
const SLOW: &str = "hubcast_alert_slow_consumer_disconnects_total";
const REPLAYS: &str = "hubcast_alert_replays_total";

const ENV: [(&str, &str); 5] = [
    ("HUBCAST_ALERTS__QUEUE_CAPACITY", QUEUE),
    // The stalled connection's write stays blocked until the test reads again after its
    // round (a few seconds); past this timeout the hub would cut the TCP connection instead
    // of closing with 4008, which this test would report as a failure.
    ("HUBCAST_ALERTS__WRITE_TIMEOUT_SECS", "30"),
    // A hundred subscribers from one address in a second.
    ("HUBCAST_ALERTS__CONNECT_RATE_PER_IP", "10000"),
    ("HUBCAST_ALERTS__CONNECT_BURST_PER_IP", "10000"),
    // No log line per publish on the shared cores.
    ("HUBCAST_LOG__LEVEL", "warn"),
];

/// Inside the test's network namespace: gives `lo` an Ethernet MTU (see the module docs).
fn ethernet_mtu() {
    assert!(
        testkit::netns::in_netns(),
        "only inside the test's namespace"
    );
    let status = std::process::Command::new("ip")
        .args(["link", "set", "lo", "mtu", MTU])
        .status()
        .expect("run ip");
    assert!(status.success(), "ip link set lo mtu {MTU}: {status}");
}

/// A data dir on tmpfs when there is one.
fn data_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("hubcast-slow-")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tmp")
}

/// Publishes a food alert `id` for `region`; returns its seq and when the request started to
/// be written.
async fn post(addr: SocketAddr, token: &str, id: &str, region: &str) -> (u64, Instant) {
    let description = format!("说明 {}", "x".repeat(PAD));
    let xml = cap_xml(&Fixture {
        identifier: id,
        kind: "food",
        severity: "Severe",
        regions: &[region],
        sent: "2025-07-01T08:00:00+08:00",
        headline: &format!("标题 {id}"),
        description: &description,
    });
    let stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let at = Instant::now();
    let request = alerts_live_util::post_cap_on(stream, token, &xml);
    let response = tokio::time::timeout(WAIT, request)
        .await
        .expect("publish acknowledged in time");
    assert_eq!(response.status, 201, "{id}: {}", response.body);
    (response.json()["seq"].as_u64().expect("seq"), at)
}

/// The seq of an alert frame (`{"type":"alert","seq":N,…}`) without parsing the rest.
fn alert_seq(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"type":"alert","seq":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

/// A healthy subscriber's reader task and the last seq it got.
struct Healthy {
    last: Arc<AtomicU64>,
    task: JoinHandle<Result<Vec<(u64, Instant)>, String>>,
}

/// Reads every frame as it comes, stamping its arrival, until `stop`.
async fn read_healthy(
    mut ws: Ws,
    last: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(u64, Instant)>, String> {
    let mut log = Vec::with_capacity(ROUNDS.len() * PER_ROUND + WARM_UP);
    loop {
        tokio::select! {
            message = ws.0.next() => {
                let at = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let seq = alert_seq(&text).ok_or_else(|| {
                            let head: String = text.chars().take(80).collect();
                            format!("not an alert frame: {head}")
                        })?;
                        log.push((seq, at));
                        last.store(seq, Ordering::Release);
                    }
                    Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return Err(format!("error: {err}")),
                    None => return Err("stream ended".to_owned()),
                }
            }
            _ = stop.changed() => return Ok(log),
        }
    }
}

/// Waits until every healthy subscriber got `seq`.
async fn all_reached(healthy: &mut [Healthy], seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let behind = healthy
            .iter()
            .filter(|h| h.last.load(Ordering::Acquire) < seq)
            .count();
        if behind == 0 {
            return;
        }
        for (i, h) in healthy.iter_mut().enumerate() {
            if h.task.is_finished() {
                let outcome = (&mut h.task).await;
                panic!("healthy subscriber {i} stopped early: {outcome:?}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{behind} healthy subscribers did not get seq {seq} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Publishes alerts for the stalled subscriber's district (only it matches), `FILL_STEP` at a
/// time, until some are not handed to its connection (`hubcast_alert_deliveries_total` stops
/// short): its writes are blocked, every buffer between the hub and its socket is full, and
/// its hub queue holds 1 to `FILL_STEP` alerts, fewer than `alerts.queue_capacity`. Returns
/// their seqs.
async fn fill_until_blocked(hub: &Hub, token: &str, tag: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < MAX_FILL {
        let before = metric(hub, DELIVERIES).await;
        for _ in 0..FILL_STEP {
            let id = format!("{tag}-fill{}", seqs.len());
            seqs.push(post(hub.addr, token, &id, STALLED_REGION).await.0);
        }
        let all = before + FILL_STEP as f64;
        let within = Duration::from_millis(200);
        let poll = Duration::from_millis(2);
        if common::metric_reaches(hub, DELIVERIES, all, within, poll)
            .await
            .is_none()
        {
            // Still short 200 ms later: blocked, not just late. (Were it only late, the
            // round's first alerts would fill what is left anyway.)
            tokio::time::sleep(Duration::from_millis(200)).await;
            if metric(hub, DELIVERIES).await < all {
                return seqs;
            }
        }
    }
    panic!("the stalled connection's writes never blocked after {MAX_FILL} alerts");
}

/// Waits until the hub counts exactly `n` WebSocket subscribers. A connection's subscription
/// leaves this gauge as its unsubscribe is queued to the hub task, so alerts published after
/// this cannot reach a connection the test already closed (which would skew the fill).
async fn settle(hub: &Hub, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = metric(hub, GAUGE).await;
        if count == n as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} WebSocket subscribers, not {n}, 10 s after closing the others"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One measured alert: seq, when its POST started, whether the stalled subscriber matches it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    at: Instant,
    province: bool,
}

/// `count` alerts at `PACE`: 7 of 8 province-wide, 1 of 8 for the healthy city only.
async fn publish_round(hub: &Hub, token: &str, tag: &str, count: usize) -> Vec<Sent> {
    let mut tick = tokio::time::interval(PACE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        tick.tick().await;
        let province = i % 8 != 7;
        let region = if province { PROVINCE } else { HEALTHY_REGION };
        let (seq, at) = post(hub.addr, token, &format!("{tag}-{i}"), region).await;
        sent.push(Sent { seq, at, province });
    }
    sent
}

/// Reads a resumed WebSocket until its close frame; returns the seqs read before it.
async fn read_until_close(ws: &mut Ws) -> (Vec<u64>, CloseFrame) {
    let mut seqs = Vec::new();
    let read = async {
        loop {
            match ws.0.next().await {
                Some(Ok(Message::Text(text))) => match parse_frame(&text) {
                    Seen::Alert(seq, _) => seqs.push(seq),
                    other => panic!("unexpected {other:?} before the close"),
                },
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("ended without a close frame: {err}"),
                None => panic!("ended without a close frame"),
            }
        }
    };
    let frame = tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stalled connection was closed within 30 s of reading again");
    (seqs, frame)
}

/// Asserts `got` is a strict prefix of `expected`, naming the first difference (the lists are
/// long: no dump).
fn assert_strict_prefix<T: PartialEq + std::fmt::Debug>(got: &[T], expected: &[T], what: &str) {
    assert!(
        got.len() < expected.len(),
        "{what}: dropped, it cannot have had all {} alerts (read {})",
        expected.len(),
        got.len()
    );
    if let Some(i) = got.iter().zip(expected).position(|(g, e)| g != e) {
        panic!(
            "{what}: item {i} is {:?}, expected {:?} (in order, no gap, no duplicate)",
            got[i], expected[i]
        );
    }
}

/// Asserts `rest` is exactly `want`, without dumping long lists.
fn assert_rest<T: PartialEq + std::fmt::Debug>(rest: &[T], want: &[T], what: &str) {
    assert!(
        rest == want,
        "{what} must recover exactly the {} alerts after it ({:?} to {:?}); got {} ({:?} to {:?})",
        want.len(),
        want.first(),
        want.last(),
        rest.len(),
        rest.first(),
        rest.last()
    );
}

/// Resumes the stalled subscriber, which read `first`: what was buffered, close 4008 "slow
/// consumer", then `since` brings exactly the rest of `expected` (every acked alert it
/// matches after `first`). Returns how many it read before the close.
async fn resume_and_recover(hub: &Hub, mut stalled: Ws, first: u64, expected: &[u64]) -> usize {
    let (got, frame) = read_until_close(&mut stalled).await;
    assert_eq!(u16::from(frame.code), 4008, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "slow consumer");
    assert_strict_prefix(&got, expected, "what was buffered before the close");
    drop(stalled);
    let last = got.last().copied().unwrap_or(first);
    let mut again = Ws::connect(hub.addr, &format!("region={STALLED_REGION}&since={last}")).await;
    let mut rest = Vec::new();
    for _ in got.len()..expected.len() {
        match again.next().await {
            Seen::Alert(seq, _) => rest.push(seq),
            Seen::Reset(oldest) => panic!("reset (oldest {oldest}) after since={last}"),
        }
    }
    assert_rest(&rest, &expected[got.len()..], &format!("since={last}"));
    again.silent(Duration::from_millis(200)).await;
    got.len()
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `ENV` plus who writes deliveries (`alerts.direct_writes`).
fn env(direct_writes: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut env = ENV.to_vec();
    env.push(("HUBCAST_ALERTS__DIRECT_WRITES", direct_writes));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_never_delays_the_others_and_recovers_with_since() {
    testkit::isolated!();
    ethernet_mtu();
    // Connection tasks write (`auto` on a multi-thread runtime).
    tokio::time::timeout(LIMIT, Box::pin(websocket_scenario("off")))
        .await
        .expect("the scenario finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hub_task_writes_a_stalled_websocket_never_delays_the_others() {
    testkit::isolated!();
    ethernet_mtu();
    // The hub task writes to idle subscribers itself (`auto` with one runtime thread): a
    // stalled socket refuses at once and falls back to its inbox, the others go on.
    tokio::time::timeout(LIMIT, Box::pin(websocket_scenario("on")))
        .await
        .expect("the scenario finished in time");
}

async fn websocket_scenario(direct_writes: &'static str) {
    let tmp = data_dir();
    let hub = Hub::start_in(&tmp.path().join("data"), &[], &env(direct_writes));
    let token = hub.token("province-admin", "330000", &[]);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut healthy = Vec::with_capacity(HEALTHY);
    for _ in 0..HEALTHY {
        let ws = Ws::connect(hub.addr, &format!("region={HEALTHY_REGION}")).await;
        let last = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(read_healthy(ws, last.clone(), stop_rx.clone()));
        healthy.push(Healthy { last, task });
    }
    let warm = publish_round(&hub, &token, "warm", WARM_UP).await;
    let mut healthy_expected: Vec<u64> = warm.iter().map(|s| s.seq).collect();
    all_reached(&mut healthy, warm.last().expect("warm-up").seq).await;

    let mut rounds: Vec<(bool, usize, usize, Vec<Sent>)> = Vec::new();
    let mut fill_count = 0;
    for (r, &stalled_round) in ROUNDS.iter().enumerate() {
        let tag = format!("r{r}");
        // Before the measured window, alerts for the stalled subscriber's district only
        // (nobody else matches it): in a stalled round it reads the first, then stops, and
        // these fill its buffers; a baseline round publishes as many, to nobody.
        settle(&hub, HEALTHY).await;
        let mut stalled = None;
        let id = format!("{tag}-first");
        if stalled_round {
            let stream = small_window(hub.addr, RCVBUF).await;
            let query = format!("region={STALLED_REGION}");
            let mut ws = Ws::connect_on(stream, hub.addr, &query).await;
            let (first, _) = post(hub.addr, &token, &id, STALLED_REGION).await;
            assert_eq!(ws.next().await, Seen::Alert(first, id), "its first alert");
            let fill = fill_until_blocked(&hub, &token, &tag).await;
            fill_count = fill.len();
            stalled = Some((ws, first, fill));
        } else {
            post(hub.addr, &token, &id, STALLED_REGION).await;
            for i in 0..fill_count {
                post(hub.addr, &token, &format!("{tag}-fill{i}"), STALLED_REGION).await;
            }
        }
        let slow_before = metric(&hub, SLOW).await;

        let sent = publish_round(&hub, &token, &tag, PER_ROUND).await;
        all_reached(&mut healthy, sent.last().expect("a round").seq).await;

        let dropped = metric(&hub, SLOW).await - slow_before;
        let want = if stalled_round { 1.0 } else { 0.0 };
        assert_eq!(
            dropped, want,
            "round {r}: slow-consumer disconnects (a healthy subscriber dropped would count too)"
        );
        healthy_expected.extend(sent.iter().map(|s| s.seq));
        let mut read = 0;
        if let Some((ws, first, fill)) = stalled {
            let mut expected = fill;
            expected.extend(sent.iter().filter(|s| s.province).map(|s| s.seq));
            read = resume_and_recover(&hub, ws, first, &expected).await;
        }
        rounds.push((stalled_round, fill_count, read, sent));
    }

    stop_tx.send(true).expect("stop");
    let mut logs = Vec::with_capacity(HEALTHY);
    for (i, h) in healthy.into_iter().enumerate() {
        let log = tokio::time::timeout(WAIT, h.task)
            .await
            .expect("reader stops")
            .expect("reader task")
            .unwrap_or_else(|e| panic!("healthy subscriber {i}: {e}"));
        let seqs: Vec<u64> = log.iter().map(|&(seq, _)| seq).collect();
        assert!(
            seqs == healthy_expected,
            "healthy subscriber {i}: every alert it matches, once, in order ({} of {})",
            seqs.len(),
            healthy_expected.len()
        );
        logs.push(log);
    }

    // Per round (for the record), then pooled by kind: the assertion.
    let (mut base, mut stall) = (Vec::new(), Vec::new());
    for (r, (stalled_round, fill, read, sent)) in rounds.iter().enumerate() {
        let at: HashMap<u64, Instant> = sent.iter().map(|s| (s.seq, s.at)).collect();
        let mut samples: Vec<Duration> = logs
            .iter()
            .flatten()
            .filter_map(|(seq, arrived)| at.get(seq).map(|sent| *arrived - *sent))
            .collect();
        assert_eq!(samples.len(), HEALTHY * PER_ROUND);
        samples.sort();
        let kind = if *stalled_round {
            format!("stalled (fill {fill:3}, read {read:3} before 4008)")
        } else {
            "baseline".to_owned()
        };
        println!(
            "round {r:2} {kind:41}: p50 {:6.2} ms  p99 {:6.2} ms  max {:7.2} ms",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99)),
            ms(percentile(&samples, 1.0)),
        );
        if *stalled_round {
            &mut stall
        } else {
            &mut base
        }
        .extend(samples);
    }
    base.sort();
    stall.sort();
    let (base_p99, stall_p99) = (percentile(&base, 0.99), percentile(&stall, 0.99));
    println!(
        "healthy p50/p99 over {} deliveries each: baseline {:.2}/{:.2} ms, with a stalled \
         subscriber {:.2}/{:.2} ms; p99 ratio {:.2} (bound 2)",
        base.len(),
        ms(percentile(&base, 0.5)),
        ms(base_p99),
        ms(percentile(&stall, 0.5)),
        ms(stall_p99),
        stall_p99.as_secs_f64() / base_p99.as_secs_f64()
    );
    assert!(
        stall_p99 <= base_p99 * 2,
        "healthy p99 with a stalled subscriber ({:.2} ms) is over 2× the baseline ({:.2} ms)",
        ms(stall_p99),
        ms(base_p99)
    );
    let stalled_rounds = ROUNDS.iter().filter(|&&s| s).count() as f64;
    assert_eq!(metric(&hub, SLOW).await, stalled_rounds);
    assert!(metric(&hub, REPLAYS).await >= stalled_rounds);
    let direct = metric(&hub, "hubcast_alert_direct_writes_total").await;
    assert_eq!(
        direct > 0.0,
        direct_writes == "on",
        "{direct} direct writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sse_stream_ends_and_last_event_id_recovers_everything() {
    testkit::isolated!();
    ethernet_mtu();
    for direct_writes in ["off", "on"] {
        tokio::time::timeout(LIMIT, Box::pin(sse_scenario(direct_writes)))
            .await
            .expect("the scenario finished in time");
    }
}

async fn sse_scenario(direct_writes: &'static str) {
    let tmp = data_dir();
    let hub = Hub::start_in(&tmp.path().join("data"), &[], &env(direct_writes));
    let token = hub.token("province-admin", "330000", &[]);
    // The healthy reader (Hangzhou) gets everything below; the stalled one (Xihu district)
    // three alerts of four: the fourth is for a sibling district.
    let mut healthy = Sse::connect(hub.addr, "region=330100", &[]).await;
    let stream = small_window(hub.addr, RCVBUF).await;
    let mut stalled = Sse::connect_on(stream, &format!("region={STALLED_REGION}"), &[]).await;

    let mut expected = Vec::new();
    let mut publish = async |id: String, region: &str| -> Seen {
        let (seq, _) = post(hub.addr, &token, &id, region).await;
        let seen = Seen::Alert(seq, id);
        assert_eq!(healthy.next().await, seen, "the healthy reader keeps up");
        if region == STALLED_REGION {
            expected.push(seen.clone());
        }
        seen
    };
    let first = publish("E0".to_owned(), STALLED_REGION).await;
    assert_eq!(stalled.next().await, first);
    // It stops reading: publish until the hub drops it (its kernel buffers fill first).
    let mut i = 1;
    loop {
        let region = if i % 4 == 3 { "330110" } else { STALLED_REGION };
        publish(format!("E{i}"), region).await;
        if metric(&hub, SLOW).await >= 1.0 {
            break;
        }
        i += 1;
        assert!(i < 5_000, "the stalled SSE subscriber was never dropped");
    }
    // Published after the drop: only the recovery can bring these.
    for j in 0..5 {
        publish(format!("AFTER{j}"), STALLED_REGION).await;
    }
    // What it matches after the first alert, which it read.
    let expected = &expected[1..];

    // Reading again: what was buffered, then the end of the stream.
    let mut got = Vec::new();
    let read = async {
        while let Some(seen) = stalled.next_or_end().await {
            got.push(seen);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stalled stream ended within 30 s of reading again");
    println!(
        "SSE: dropped after {i} alerts; read {} of them before the end",
        got.len()
    );
    assert_strict_prefix(&got, expected, "what was buffered before the end");
    let last = match got.last().unwrap_or(&first) {
        Seen::Alert(seq, _) => seq.to_string(),
        Seen::Reset(_) => unreachable!("only alerts are collected"),
    };
    let mut again = Sse::connect(
        hub.addr,
        &format!("region={STALLED_REGION}"),
        &[("Last-Event-ID", &last)],
    )
    .await;
    let mut rest = Vec::new();
    for _ in got.len()..expected.len() {
        rest.push(again.next().await);
    }
    assert_rest(
        &rest,
        &expected[got.len()..],
        &format!("Last-Event-ID {last}"),
    );
    // And it is live again.
    let (seq, _) = post(hub.addr, &token, "LIVE", STALLED_REGION).await;
    assert_eq!(again.next().await, Seen::Alert(seq, "LIVE".to_owned()));
    assert_eq!(healthy.next().await, Seen::Alert(seq, "LIVE".to_owned()));
    assert_eq!(metric(&hub, SLOW).await, 1.0);
    assert!(metric(&hub, REPLAYS).await >= 1.0);
}
