//! The hub task of [`LiveHub`](super::LiveHub): the rebuild from the store at start, the
//! command loop (publish in sequence order, subscribe, unsubscribe, refill, live set), hub
//! events turned into inbox fills and wake-ups, and the 1 s timer (expiry, retention, stale
//! gaps).
//!
//! Everything here runs on the one task that owns the [`Hub`]; nothing is shared with
//! connection tasks but each subscriber's [`Mailbox`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alerts::hub::{Hub, HubConfig, HubEvent, PublishedAlert, SubId};
use alerts::store::{MAX_PAGE, Store, StoreError};
use tiers::RegionTree;
use tokio::sync::mpsc;

use super::ahead::Ahead;
use super::gap;
use super::slots::{Slots, release, subscribe};
use super::{BATCH, Command, Mailbox};
use crate::alerts_metrics::LiveMetrics;

/// How long an out-of-order publish waits for the alerts before it.
const GAP_WAIT: Duration = Duration::from_secs(2);
/// Publish instants kept for the publish→deliver histogram.
const TIMES: usize = 4096;
/// Subscribers served between yields of the hub task (~2–4 ms of direct writes).
const FILLS_PER_YIELD: usize = 512;

/// The hub over the store's retained tail.
pub(super) fn rebuild(
    store: &dyn Store,
    tree: &RegionTree,
    config: HubConfig,
    retain: u64,
) -> Result<Hub, StoreError> {
    let last = store.last_seq()?;
    // The retained window ends at the last stored alert: a restored store's numbering floor
    // may lie far above it (`skip_to` below).
    let mut after = store.last_stored_seq()?.saturating_sub(retain);
    let mut hub = Hub::resuming_after(tree, config, after);
    let now = Instant::now();
    let now_unix = crate::clock::unix_now();
    loop {
        // Paged by what was examined, not by the last readable alert: a page of entries this
        // build cannot read is not the end of the log.
        let (page, examined) = store.since_examined(after, MAX_PAGE)?;
        if examined <= after {
            break;
        }
        after = examined;
        for stored in &page {
            let received = u64::try_from(stored.received_unix).unwrap_or(0);
            let age = Duration::from_secs(now_unix.saturating_sub(received));
            let at = now.checked_sub(age).unwrap_or(now);
            let alert = super::frame::for_live(stored.to_published());
            if let Err(err) = hub.publish(alert, at) {
                tracing::warn!(%err, seq = stored.seq, "alert not reloaded into the live hub");
            }
        }
    }
    // Numbers a restored store gave out before its restore (`hubcast restore`) have no alert.
    hub.skip_to(last);
    hub.handle_timeout(now, now_unix);
    while hub.poll_event().is_some() {}
    Ok(hub)
}

/// The log the hub task follows.
pub(super) struct Log {
    /// Read for the alerts missing before a hand-off that came early.
    pub store: Arc<dyn Store>,
    /// Shared with other instances (Redis), which may be ahead of this one.
    pub shared: bool,
}

/// The hub task: commands in, events out, a 1 s timer for expiry and retention.
pub(super) async fn run(
    mut hub: Hub,
    mut rx: mpsc::Receiver<Command>,
    metrics: LiveMetrics,
    log: Log,
) {
    let Log {
        store,
        shared: shared_log,
    } = log;
    let mut slots = Slots::default();
    let mut times: VecDeque<(u64, Instant)> = VecDeque::with_capacity(TIMES);
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    // Numbers up to here that the store holds but cannot read: not waited for.
    let mut skipped = 0;
    let mut ahead = Ahead::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A gap's store read runs beside this task (a hung store must not stall it); one at a
    // time, its answer comes back here.
    let (gap_done, mut gap_reads) = mpsc::channel::<gap::Read>(1);
    let mut filling = false;
    loop {
        let command = tokio::select! {
            command = rx.recv() => match command {
                Some(command) => command,
                None => break,
            },
            Some(read) = gap_reads.recv() => {
                filling = false;
                skipped = gap::apply(read, hub.last_seq(), &mut pending, skipped);
                publish_ready(&mut hub, &mut pending, skipped, &mut times, &metrics);
                release(&mut hub, &mut slots, &mut ahead);
                drain_events(&mut hub, &mut slots, &times, &metrics).await;
                continue;
            }
            _ = tick.tick() => {
                let stale = pending.values().next().is_some_and(|(_, at)| at.elapsed() > GAP_WAIT);
                if stale && !filling {
                    let after = hub.last_seq().max(skipped);
                    filling = gap::start(after, &store, &pending, &gap_done);
                }
                hub.handle_timeout(Instant::now(), crate::clock::unix_now());
                release(&mut hub, &mut slots, &mut ahead);
                drain_events(&mut hub, &mut slots, &times, &metrics).await;
                continue;
            }
        };
        match command {
            Command::Publish(alert) => {
                // The first hand-off of a number wins (with Redis, an instance's own publishes
                // also come back through the log tail).
                if alert.seq > hub.last_seq() && !pending.contains_key(&alert.seq) {
                    pending.insert(alert.seq, (*alert, Instant::now()));
                } else if hub
                    .retained(alert.seq)
                    .is_some_and(|had| had.frame != alert.frame)
                {
                    // The same number for a different alert: the log lost its newest entries
                    // (a Redis without fsync per write crashed, a replica took over) and
                    // numbered new alerts again. This one cannot be delivered live.
                    metrics.log_rewinds.inc();
                    tracing::error!(
                        seq = alert.seq,
                        "alert number reused by a different alert: the shared log went back; \
                         subscribers will not get it live (archive and restart recover it)"
                    );
                }
                publish_ready(&mut hub, &mut pending, skipped, &mut times, &metrics);
                release(&mut hub, &mut slots, &mut ahead);
            }
            Command::Subscribe {
                filter,
                since,
                reply,
            } => {
                // Held only when `since` is ahead of this hub but the log has it (another
                // instance may be ahead of this one on a shared log; on any log a number
                // already handed over may wait in `pending` for an earlier one's hand-off:
                // its publisher answered only after queueing it on this channel, so it is
                // here before any subscribe that learned it from that answer), and the
                // filter is valid (an invalid one is answered now).
                let (last, now) = (hub.last_seq(), Instant::now());
                let ahead_of_us = since.is_some_and(|s| s > last);
                let newest_pending = pending.last_key_value().map_or(0, |(&seq, _)| seq);
                let on_its_way = since.is_some_and(|s| s <= newest_pending);
                let may_hold =
                    ahead_of_us && (shared_log || on_its_way) && hub.check_filter(&filter).is_ok();
                if let Err((filter, since, reply)) =
                    ahead.park(filter, since, reply, last, may_hold, now)
                {
                    subscribe(&mut hub, &mut slots, filter, since, reply);
                }
            }
            Command::Unsubscribe(sub) => {
                hub.unsubscribe(sub);
                slots.remove(&sub);
            }
            Command::Refill(sub) => {
                if let Some((mailbox, live_after)) = slots.get(&sub) {
                    let mut ages = Ages::new(&times, &metrics);
                    fill(&mut hub, mailbox, sub, live_after, &mut ages);
                }
            }
            Command::Live {
                filter,
                unless,
                newest,
                reply,
            } => {
                let version = (hub.last_seq(), hub.live_alerts(filter).count());
                // The feed's entries only: this task also fans out, it copies no more.
                let alerts = (unless != Some(version)).then(|| {
                    let newest_first = hub.live_alerts(filter).rev().take(newest);
                    newest_first.cloned().collect()
                });
                let _ = reply.send((version, alerts));
            }
        }
        drain_events(&mut hub, &mut slots, &times, &metrics).await;
    }
}

/// An alert waiting for its turn, and when it was handed over. An Update or Cancel carries
/// the audience it inherits (`PublishedAlert::inherited`, resolved by the store), so nothing
/// is read back for it here.
pub(super) type Pending = (PublishedAlert, Instant);

/// Publishes the pending alerts that follow the hub's last sequence number (or the last
/// unreadable one, `skipped`) without a gap.
fn publish_ready(
    hub: &mut Hub,
    pending: &mut BTreeMap<u64, Pending>,
    skipped: u64,
    times: &mut VecDeque<(u64, Instant)>,
    metrics: &LiveMetrics,
) {
    while let Some(entry) = pending.first_entry() {
        if *entry.key() > hub.last_seq().max(skipped).saturating_add(1) {
            break;
        }
        let (alert, at) = entry.remove();
        let (seq, kind) = (alert.seq, alert.kind);
        match hub.publish(alert, Instant::now()) {
            Ok(()) => {
                metrics.published.with_label_values(&[kind.as_str()]).inc();
                if times.len() == TIMES {
                    times.pop_front();
                }
                times.push_back((seq, at));
            }
            Err(err) => tracing::warn!(%err, "alert not fanned out"),
        }
    }
}

/// Hands out what the hub produced. Yields to the runtime every [`FILLS_PER_YIELD`]
/// subscribers: the direct writes of a broadcast to many subscribers take a while, and the
/// publisher's answer, pings and new connections on the same runtime thread must not wait for
/// all of them.
async fn drain_events(
    hub: &mut Hub,
    slots: &mut Slots,
    times: &VecDeque<(u64, Instant)>,
    metrics: &LiveMetrics,
) {
    let mut ages = Ages::new(times, metrics);
    let mut fills = 0;
    while let Some(event) = hub.poll_event() {
        match event {
            HubEvent::Ready { sub } => {
                if let Some((mailbox, live_after)) = slots.get(&sub) {
                    fill(hub, mailbox, sub, live_after, &mut ages);
                }
                fills += 1;
                if fills % FILLS_PER_YIELD == 0 {
                    tokio::task::yield_now().await;
                    ages = Ages::new(times, metrics);
                }
            }
            HubEvent::Disconnect { sub, reason } => {
                metrics.slow_consumers.inc();
                if let Some(mailbox) = slots.remove(&sub) {
                    mailbox.close(reason);
                }
            }
        }
    }
}

/// Publish→fill ages for the latency histogram, from one clock reading per pass, and the
/// pass's counts (added to the shared metrics once, on drop): a broadcast
/// to N subscribers looks its alert up once, not N times.
struct Ages<'a> {
    times: &'a VecDeque<(u64, Instant)>,
    now: Instant,
    last: Option<(u64, Option<f64>)>,
    /// The pass's metrics, kept locally and added to the shared ones once, when the pass ends
    /// (drop): no atomic update per subscriber.
    metrics: &'a LiveMetrics,
    /// Made on the first observation (a local histogram allocates its buckets), and flushed
    /// into the shared one when dropped.
    latency: Option<prometheus::local::LocalHistogram>,
    delivered: u64,
    direct: u64,
}

impl Drop for Ages<'_> {
    fn drop(&mut self) {
        if self.delivered > 0 {
            self.metrics.deliveries.inc_by(self.delivered);
        }
        if self.direct > 0 {
            self.metrics.direct_writes.inc_by(self.direct);
        }
    }
}

impl<'a> Ages<'a> {
    fn new(times: &'a VecDeque<(u64, Instant)>, metrics: &'a LiveMetrics) -> Ages<'a> {
        Ages {
            times,
            now: Instant::now(),
            last: None,
            metrics,
            latency: None,
            delivered: 0,
            direct: 0,
        }
    }

    /// Seconds since alert `seq` was handed to the hub, if it is still remembered.
    fn of(&mut self, seq: u64) -> Option<f64> {
        if let Some((s, age)) = self.last
            && s == seq
        {
            return age;
        }
        let age = self
            .times
            .binary_search_by_key(&seq, |&(s, _)| s)
            .ok()
            .map(|i| {
                self.now
                    .saturating_duration_since(self.times[i].1)
                    .as_secs_f64()
            });
        self.last = Some((seq, age));
        age
    }
}

/// Hands `sub`'s waiting deliveries to its connection: written to its socket directly while
/// that completes at once, then into its inbox (up to [`BATCH`]), waking the connection if the
/// inbox got anything. What does not fit stays in the hub's queue until the connection asks
/// for a refill.
fn fill(hub: &mut Hub, mailbox: &Mailbox, sub: SubId, live_after: u64, ages: &mut Ages<'_>) {
    let filled = mailbox.fill(
        BATCH,
        || hub.pop(sub),
        |seq| {
            // Live deliveries only: a replay's age is how long the subscriber was away.
            if seq > live_after
                && let Some(age) = ages.of(seq)
            {
                let metrics = ages.metrics;
                (ages.latency.get_or_insert_with(|| metrics.latency.local())).observe(age);
            }
        },
    );
    ages.delivered += filled.delivered;
    ages.direct += filled.direct;
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
