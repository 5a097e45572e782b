//! Tests of the hub task's publishing: out-of-order hand-offs go out in sequence order,
//! numbers the store cannot read are not waited for, only live deliveries are timed; a
//! subscribe dropped while it waits for the hub task leaves no subscriber behind; a `since`
//! handed over out of order is held, not reset; a hanging gap read stalls nothing else.

use alerts::hub::{Delivery, Filter};
use axum::body::Bytes;
use tiers::RegionCode;

use super::*;

fn alert(seq: u64) -> PublishedAlert {
    super::super::frame::test_alert(seq, Bytes::from(format!("{{\"seq\":{seq}}}")))
}

#[test]
fn out_of_order_hand_offs_are_published_in_sequence_order() {
    let metrics = LiveMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    let sub = hub
        .subscribe(filter, None, Instant::now())
        .expect("subscribe");
    let mut pending = BTreeMap::new();
    let mut times = VecDeque::new();
    for seq in [2, 3, 1, 5] {
        pending.insert(seq, (alert(seq), Instant::now()));
        publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    }
    assert_eq!(hub.last_seq(), 3, "5 waits for 4");
    assert_eq!(pending.keys().copied().collect::<Vec<_>>(), [5]);
    pending.insert(4, (alert(4), Instant::now()));
    publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    let mut seqs = Vec::new();
    while let Some(Delivery::Alert { seq, .. }) = hub.pop(sub) {
        seqs.push(seq);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(metrics.published.with_label_values(&["food"]).get(), 5);
    assert_eq!(times.len(), 5);
}

#[test]
fn numbers_the_store_cannot_read_are_not_waited_for() {
    let metrics = LiveMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let mut pending = BTreeMap::new();
    let mut times = VecDeque::new();
    for seq in [1, 4, 5] {
        pending.insert(seq, (alert(seq), Instant::now()));
    }
    publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    assert_eq!(hub.last_seq(), 1, "4 waits for 2 and 3");
    // 2 and 3 turned out unreadable in the store.
    publish_ready(&mut hub, &mut pending, 3, &mut times, &metrics);
    assert_eq!(hub.last_seq(), 5);
    assert!(pending.is_empty());
}

/// The publish→deliver histogram counts live deliveries only: a subscriber resuming from
/// `since` gets the retained alerts replayed, but their age is how long it was away.
#[test]
fn replayed_deliveries_are_not_timed() {
    let metrics = LiveMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let mut pending = BTreeMap::new();
    let mut times = VecDeque::new();
    for seq in 1..=3 {
        pending.insert(seq, (alert(seq), Instant::now()));
    }
    publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    let sub = hub
        .subscribe(filter, Some(0), Instant::now())
        .expect("subscribe");
    let live_after = hub.last_seq();
    pending.insert(4, (alert(4), Instant::now()));
    publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    let mailbox = Mailbox::default();
    {
        let mut ages = Ages::new(&times, &metrics);
        fill(&mut hub, &mailbox, sub, live_after, &mut ages);
    }
    assert_eq!(metrics.deliveries.get(), 4, "three replayed, one live");
    assert_eq!(
        metrics.latency.get_sample_count(),
        1,
        "only the live one timed"
    );
}

/// A connection task dropped while its subscribe waits for the hub task leaves nothing
/// behind: answered, the subscriber is undone; unanswered, the hub task's reply fails (and
/// `slots::subscribe` undoes it there).
#[test]
fn a_subscribe_dropped_while_waiting_is_undone() {
    use super::super::Awaiting;
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    let sub = hub
        .subscribe(filter, None, Instant::now())
        .expect("subscribe");
    let (tx, mut commands) = mpsc::channel(4);
    // Answered, never read.
    let (reply, rx) = tokio::sync::oneshot::channel();
    assert!(reply.send(Ok((sub, Arc::new(Mailbox::default())))).is_ok());
    drop(Awaiting { rx, tx: tx.clone() });
    assert!(
        matches!(commands.try_recv(), Ok(Command::Unsubscribe(undone)) if undone == sub),
        "the answered subscriber is unsubscribed"
    );
    // Not answered yet: the reply can no longer be delivered, so the hub task undoes it.
    let (reply, rx) = tokio::sync::oneshot::channel();
    drop(Awaiting { rx, tx: tx.clone() });
    assert!(reply.send(Ok((sub, Arc::new(Mailbox::default())))).is_err());
    assert!(commands.try_recv().is_err(), "nothing to undo here");
    // Read: the subscription owns it from then on.
    let (reply, rx) = tokio::sync::oneshot::channel();
    assert!(reply.send(Ok((sub, Arc::new(Mailbox::default())))).is_ok());
    let mut awaiting = Awaiting { rx, tx };
    assert!(awaiting.rx.try_recv().is_ok());
    drop(awaiting);
    assert!(commands.try_recv().is_err(), "not undone once taken");
}

/// A `since` whose alert was handed over but waits for an earlier hand-off (concurrent
/// publishes on one SQLite log; its publisher has already answered with the number) is held
/// until the hub has it, not answered with a reset and every retained alert again.
#[tokio::test]
async fn a_since_handed_over_out_of_order_is_held_not_reset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn Store> =
        Arc::new(alerts::store::SqliteStore::open(tmp.path().join("alerts.db")).expect("store"));
    let metrics = LiveMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let mut pending = BTreeMap::new();
    let mut times = VecDeque::new();
    for seq in 1..=40 {
        pending.insert(seq, (alert(seq), Instant::now()));
    }
    publish_ready(&mut hub, &mut pending, 0, &mut times, &metrics);
    let (tx, rx) = mpsc::channel(16);
    let log = Log {
        store,
        shared: false,
    };
    let task = tokio::spawn(run(hub, rx, metrics, log));
    let send = |command| {
        let tx = tx.clone();
        async move { tx.send(command).await.expect("task alive") }
    };
    // 42's publisher handed over first; 41's hand-off is late.
    send(Command::Publish(Box::new(alert(42)))).await;
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    let (reply, answer) = tokio::sync::oneshot::channel();
    send(Command::Subscribe {
        filter,
        since: Some(42),
        reply,
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(Command::Publish(Box::new(alert(41)))).await;
    let (_, mailbox) = tokio::time::timeout(Duration::from_secs(3), answer)
        .await
        .expect("answered once the hub has 42")
        .expect("reply")
        .expect("subscribed");
    send(Command::Publish(Box::new(alert(43)))).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        got = mailbox.take(Vec::new()).items;
    }
    let seqs: Vec<String> = got
        .iter()
        .map(|d| match d {
            Delivery::Alert { seq, .. } => seq.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, ["43"], "no reset, nothing it had");

    // A number never handed over (a bogus value, a store restored from a backup) is not
    // held on a single log: the reset comes at once, not after the hold's 8 s.
    let (reply, answer) = tokio::sync::oneshot::channel();
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    send(Command::Subscribe {
        filter,
        since: Some(1000),
        reply,
    })
    .await;
    let (_, mailbox) = tokio::time::timeout(Duration::from_secs(1), answer)
        .await
        .expect("answered at once")
        .expect("reply")
        .expect("subscribed");
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while first.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        first = mailbox.take(Vec::new()).items;
    }
    assert!(
        matches!(first.first(), Some(Delivery::Reset { .. })),
        "{first:?}"
    );
    drop(tx);
    task.await.expect("task ends");
}

/// A store whose reads of the log hang (Redis unreachable: seconds of timeouts).
#[derive(Debug)]
struct Hanging(
    alerts::store::SqliteStore,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Store for Hanging {
    fn append(
        &self,
        alert: &alerts::cap::Alert,
        raw: &str,
        publisher: &alerts::store::Publisher<'_>,
        now_unix: i64,
    ) -> Result<alerts::store::Appended, StoreError> {
        self.0.append(alert, raw, publisher, now_unix)
    }

    fn get(&self, seq: u64) -> Result<Option<alerts::store::StoredAlert>, StoreError> {
        self.0.get(seq)
    }

    fn by_identifier(
        &self,
        sender: &str,
        identifier: &str,
    ) -> Result<Option<alerts::store::StoredAlert>, StoreError> {
        self.0.by_identifier(sender, identifier)
    }

    fn since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<alerts::store::StoredAlert>, StoreError> {
        self.1.store(true, std::sync::atomic::Ordering::Release);
        std::thread::sleep(Duration::from_secs(4));
        self.0.since(after, limit)
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.0.last_seq()
    }

    fn query(
        &self,
        query: &alerts::store::ArchiveQuery,
    ) -> Result<alerts::store::Page, StoreError> {
        self.0.query(query)
    }
}

/// While the store read that fills a hand-off gap hangs, the hub task goes on: a subscribe
/// is answered at once, not after the read.
#[tokio::test]
async fn a_hanging_gap_read_does_not_stall_the_hub_task() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sqlite = alerts::store::SqliteStore::open(tmp.path().join("alerts.db")).expect("store");
    let entered = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store: Arc<dyn Store> = Arc::new(Hanging(sqlite, entered.clone()));
    let metrics = LiveMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let (tx, rx) = mpsc::channel(16);
    let log = Log {
        store,
        shared: true,
    };
    let task = tokio::spawn(run(hub, rx, metrics, log));
    // 2 is handed over; 1 never is, so after GAP_WAIT the task reads the store for it.
    tx.send(Command::Publish(Box::new(alert(2))))
        .await
        .expect("task");
    let deadline = Instant::now() + GAP_WAIT + Duration::from_secs(10);
    while !entered.load(std::sync::atomic::Ordering::Acquire) {
        assert!(Instant::now() < deadline, "the gap read never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let filter = Filter::all(RegionCode::from_u32(330_106).expect("code"));
    tx.send(Command::Subscribe {
        filter,
        since: None,
        reply,
    })
    .await
    .expect("task");
    let answered = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered")
        .expect("reply");
    assert!(answered.is_ok(), "subscribed");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "the subscribe waited {waited:?} for the store read"
    );
    drop(tx);
    task.await.expect("task ends");
}
