//! The live-delivery driver: one tokio task owns the sans-IO [`alerts::hub::Hub`]; publishes,
//! subscriptions and pops reach it over one bounded command channel.
//!
//! # Handoff between the hub task and connection tasks
//! Each subscriber has a [`Mailbox`] shared by the hub task and its connection: an inbox of
//! up to [`BATCH`] deliveries behind a mutex only these two touch, a lock-free wake-up (a
//! `pending` flag and an `AtomicWaker`), and, for plain-TCP connections, the socket. When the
//! hub raises `HubEvent::Ready` for a subscriber whose connection is idle, the hub task writes
//! the frame to the socket itself (one non-blocking `writev` of the shared bytes; no wake-up,
//! no task switch: a broadcast costs each such subscriber one syscall). Whatever cannot be
//! written at once (a full socket, a TLS connection, a connection busy writing) goes into the
//! inbox and wakes the connection (the flag keeps a wake-up that comes before the connection
//! waits), which swaps the inbox's vector with its own empty one (no copy, no allocation in
//! steady state) and writes; `mailbox` says how writes from both sides never interleave. The
//! rest of a backlog (a `since` replay, or a burst) stays in the hub's bounded queue, where the
//! slow-consumer rule applies: a connection that empties an inbox the hub task filled to its
//! limit sends `Refill` and is notified when more is there. `HubEvent::Disconnect` sets the
//! inbox's close reason and notifies.
//!
//! # Bounds
//! The command channel holds `COMMANDS` (1024) commands: a publisher waits (after its commit)
//! when it is full, a connection asking for a refill waits. Queues per subscriber are the
//! hub's (`alerts.queue_capacity`) plus an inbox of at most `BATCH`. An unsubscribe that
//! cannot be queued from `Drop` is sent from a spawned task, so a subscriber is never leaked
//! in the hub. The hub task does every subscriber's fan-out and inbox fill: one core's worth
//! of deliveries per process (BENCHMARKS.md, `alert-load`). With a shared (Redis) log, at most
//! `ahead::MAX_PARKED` (4096) subscribes whose `since` is ahead of this instance are held, for
//! at most ~9 s each; beyond, they are answered at once. An Update or Cancel carries the
//! audience it inherits from the store's record, so delivery never waits on a store read for
//! it.
//!
//! # Order
//! Concurrent publishes commit in sequence order but may reach this task out of order; the
//! task holds early ones (`pending`) until the gap fills. The store is gap-free, so a gap only
//! lasts if a hand-off was lost: after `GAP_WAIT` (2 s) the task reads the missing alerts from
//! the store.
//!
//! # Start
//! The hub is rebuilt from the store: `Hub::resuming_after(last - retain_count)` and the
//! retained tail re-published (`Store::since`), with each alert's age taken from its
//! `received_unix`, so `since` works across restarts.

mod ahead;
pub mod frame;
mod gap;
mod mailbox;
mod slots;
mod tail;
mod task;

pub use mailbox::{Direct, Mailbox, Wire};
pub use tail::Tail;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use alerts::hub::{Delivery, DisconnectReason, Filter, HubConfig, HubError, PublishedAlert, SubId};
use alerts::store::Store;
use tiers::RegionTree;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::alerts_metrics::LiveMetrics;
use crate::config::AlertsConfig;

/// Deliveries handed out per `Pop` command.
pub const BATCH: usize = 64;
/// Places a subscriber's delivery buffer keeps between pops (a steady subscriber takes one
/// delivery per broadcast); its inbox and the hyper SSE path's event buffer shrink back to it.
pub(crate) const KEEP_PLACES: usize = 4;

/// Whether an emptied delivery buffer of `capacity` places holds a burst's worth (a replay's,
/// up to [`BATCH`]) and goes back to [`KEEP_PLACES`]. Not after the few places a subscriber a
/// little behind grows it by: shrinking those at every drain would reallocate on the next
/// broadcast, on the hub task, per subscriber.
pub(crate) fn holds_a_burst(capacity: usize) -> bool {
    capacity > 4 * KEEP_PLACES
}
/// Capacity of the command channel.
const COMMANDS: usize = 1024;

enum Command {
    Publish(Box<PublishedAlert>),
    Subscribe {
        filter: Filter,
        since: Option<u64>,
        reply: oneshot::Sender<Result<(SubId, Arc<Mailbox>), HubError>>,
    },
    Unsubscribe(SubId),
    /// The subscriber emptied an inbox filled to its limit: move more of its backlog in.
    Refill(SubId),
    Live {
        filter: Filter,
        unless: Option<LiveVersion>,
        newest: usize,
        reply: oneshot::Sender<(LiveVersion, Option<Vec<PublishedAlert>>)>,
    },
}

/// A version of the live alerts matching a filter: the hub's last sequence number and their
/// count. The same pair is the same set (between two publishes, alerts only leave it, by
/// expiry).
pub type LiveVersion = (u64, usize);

/// What one [`Subscription::pop`] took.
#[derive(Debug, Default)]
pub struct Batch {
    /// Deliveries, in order.
    pub items: Vec<Delivery>,
    /// Bytes of the first item's frame already written by the hub task (see
    /// [`Mailbox`]): write only the rest of it.
    pub written: usize,
    /// Set when the hub dropped the subscriber (or it is unknown): close the connection.
    pub closed: Option<DisconnectReason>,
    /// True if the subscriber is unknown to the hub (the driver stopped).
    pub gone: bool,
}

impl From<mailbox::Taken> for Batch {
    fn from(taken: mailbox::Taken) -> Batch {
        Batch {
            items: taken.items,
            written: taken.written,
            closed: taken.closed,
            gone: false,
        }
    }
}

/// Handle on the driver task (cheap to clone).
#[derive(Debug, Clone)]
pub struct LiveHub {
    tx: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    metrics: LiveMetrics,
    /// `alerts.direct_writes`, resolved for this runtime.
    direct_writes: bool,
}

/// Why a subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// `alerts.max_subscribers` reached.
    #[error("too many live subscribers")]
    Full,
    /// The hub refused the filter.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The driver task is gone (shutting down).
    #[error("live delivery is stopped")]
    Stopped,
}

impl LiveHub {
    /// Rebuilds the hub from `store` (on a blocking thread) and starts its task.
    pub async fn start(
        store: Arc<dyn Store>,
        tree: RegionTree,
        config: &AlertsConfig,
        metrics: LiveMetrics,
    ) -> anyhow::Result<LiveHub> {
        let hub_config = HubConfig {
            queue_capacity: config.queue_capacity,
            retain_count: config.retain_count,
            retain_age: std::time::Duration::from_secs(config.retain_age_secs),
            ..HubConfig::default()
        };
        let retain = config.retain_count as u64;
        let store_for_task = store.clone();
        let rebuilt = tokio::task::spawn_blocking(move || {
            task::rebuild(store.as_ref(), &tree, hub_config, retain)
        });
        let hub = rebuilt.await??;
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let direct_writes = config.direct_writes.enabled(workers);
        tracing::info!(
            direct_writes,
            runtime_threads = workers,
            "live alerts: {}",
            match direct_writes {
                true => "the hub task writes to idle subscribers",
                false => "connection tasks write every delivery",
            }
        );
        let (tx, rx) = mpsc::channel(COMMANDS);
        let task_metrics = metrics.clone();
        // Only a log shared with other instances can be ahead of this one for a moment.
        let shared_log = config.backend == crate::config::AlertsBackend::Redis;
        let log = task::Log {
            store: store_for_task,
            shared: shared_log,
        };
        tokio::spawn(task::run(hub, rx, task_metrics, log));
        Ok(LiveHub {
            tx,
            slots: Arc::new(Semaphore::new(config.max_subscribers)),
            metrics,
            direct_writes,
        })
    }

    /// The live-delivery metrics.
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    /// Hands a committed alert to the hub from a blocking thread (the one that committed it,
    /// so a cancelled HTTP request cannot lose the hand-off); waits while the channel is full.
    pub fn publish_blocking(&self, alert: PublishedAlert) {
        if !self.hand_off_blocking(alert) {
            tracing::warn!("live delivery stopped; alert stored but not fanned out");
        }
    }

    /// [`publish_blocking`](LiveHub::publish_blocking) without the warning: false if live
    /// delivery has stopped (the Redis log tail then ends).
    pub fn hand_off_blocking(&self, alert: PublishedAlert) -> bool {
        self.tx
            .blocking_send(Command::Publish(Box::new(frame::for_live(alert))))
            .is_ok()
    }

    /// A connection slot, or `Full` (checked before a WebSocket upgrade).
    pub fn reserve(&self) -> Result<OwnedSemaphorePermit, SubscribeError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| SubscribeError::Full)
    }

    /// Registers a subscriber holding `place` (its slot, its address's admission);
    /// `transport` labels the gauge.
    pub async fn subscribe(
        &self,
        filter: Filter,
        since: Option<u64>,
        place: (OwnedSemaphorePermit, crate::rate_limit::Admitted),
        transport: &'static str,
    ) -> Result<Subscription, SubscribeError> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Subscribe {
            filter,
            since,
            reply,
        };
        self.tx
            .send(command)
            .await
            .map_err(|_| SubscribeError::Stopped)?;
        let mut awaiting = Awaiting {
            rx,
            tx: self.tx.clone(),
        };
        let (sub, mailbox) = (&mut awaiting.rx)
            .await
            .map_err(|_| SubscribeError::Stopped)??;
        if since.is_some() {
            self.metrics.replays.inc();
        }
        let counted =
            crate::held::Counted::new(self.metrics.subscribers.with_label_values(&[transport]));
        Ok(Subscription {
            tx: self.tx.clone(),
            sub,
            mailbox,
            // Grows to what pops need (one delivery per broadcast, typically) rather than BATCH
            // up front: an idle subscriber holds no delivery buffer.
            buf: Vec::new(),
            direct_writes: self.direct_writes,
            filter,
            since,
            _counted: counted,
            _place: place,
        })
    }

    /// The version of the alerts matching `filter` now (the Atom feed), and the `newest` of
    /// them, newest first, unless that version is `unless` (the caller has them already:
    /// nothing is copied then). Only those are copied, on the hub task.
    pub async fn live_alerts(
        &self,
        filter: Filter,
        unless: Option<LiveVersion>,
        newest: usize,
    ) -> Option<(LiveVersion, Option<Vec<PublishedAlert>>)> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Live {
            filter,
            unless,
            newest,
            reply,
        };
        self.tx.send(command).await.ok()?;
        rx.await.ok()
    }
}

/// One subscriber's side of the handoff; unsubscribes on drop.
#[derive(Debug)]
pub struct Subscription {
    tx: mpsc::Sender<Command>,
    sub: SubId,
    mailbox: Arc<Mailbox>,
    /// The empty vector swapped into the inbox on each take, so a steady subscriber costs no
    /// allocation per alert (see [`Subscription::recycle`]).
    buf: Vec<Delivery>,
    /// `alerts.direct_writes` as resolved: whether [`Subscription::attach`] takes effect.
    direct_writes: bool,
    /// Its place in the subscribers gauge.
    _counted: crate::held::Counted,
    /// Its place under `alerts.max_subscribers`, and its source address's count of open
    /// connections: given back when it is dropped.
    _place: (OwnedSemaphorePermit, crate::rate_limit::Admitted),
    /// What it asked for, for the archive link of a reset.
    filter: Filter,
    since: Option<u64>,
}

impl Subscription {
    /// The filter and `since` it was opened with.
    pub fn asked(&self) -> (Filter, Option<u64>) {
        (self.filter, self.since)
    }

    /// Resolves when deliveries (or a disconnect) may be waiting. Cancel-safe.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| {
            if self.mailbox.pending.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.mailbox.waker.register(cx.waker());
            // A notify between the check and the registration would be lost: check again.
            match self.mailbox.pending.swap(false, Ordering::AcqRel) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await;
    }

    /// Takes what the inbox holds (possibly nothing) and stops the hub task's direct writes
    /// until [`release`](Subscription::release): call it before writing anything to the
    /// connection. Not cancel-safe: call it outside `select!`.
    pub async fn pop(&mut self) -> Batch {
        let mut taken = self.mailbox.take(std::mem::take(&mut self.buf));
        if taken.closed.is_some() {
            // Dropped: nothing more goes out but the rest of a frame the hub task started.
            let keep = usize::from(taken.written > 0).min(taken.items.len());
            taken.items.truncate(keep);
            return Batch::from(taken);
        }
        let mut gone = false;
        if taken.more {
            gone = self.tx.send(Command::Refill(self.sub)).await.is_err();
        }
        Batch {
            gone,
            ..Batch::from(taken)
        }
    }

    /// When woken: writes the inbox to `socket` (this connection's) without waiting, if it
    /// all goes out at once; `false` means nothing was settled and [`pop`](Subscription::pop)
    /// must run. An inbox the hub task filled to its limit asks for the rest (`Refill`) when
    /// emptied, here as in `pop`. The per-delivery path when connection tasks write: no allocation, no
    /// future. `Err(())`: the hub task is gone (shutting down).
    pub async fn write_out(&mut self, socket: &Direct) -> Result<bool, ()> {
        match self.mailbox.write_out(socket) {
            Some(true) => match self.tx.send(Command::Refill(self.sub)).await {
                Ok(()) => Ok(true),
                Err(_) => Err(()),
            },
            Some(false) => Ok(true),
            None => Ok(false),
        }
    }

    /// Done writing what [`pop`](Subscription::pop) gave (and any control frames): the hub
    /// task may write directly again once the inbox is empty.
    pub fn release(&self) {
        self.mailbox.release();
    }

    /// Lets the hub task write deliveries straight to this plain-TCP socket (see
    /// [`Mailbox`]).
    /// Does nothing when `alerts.direct_writes` resolved to off.
    pub fn attach(&self, direct: Direct) {
        if self.direct_writes {
            self.mailbox.attach(Some(direct));
        }
    }

    /// Hands a drained `Batch::items` back for the next pop: it keeps a steady subscriber's
    /// few places, but not a replay's burst of up to `BATCH` for the rest of a connection
    /// that may last weeks.
    pub fn recycle(&mut self, mut items: Vec<Delivery>) {
        items.clear();
        if holds_a_burst(items.capacity()) {
            items.shrink_to(KEEP_PLACES);
        }
        self.buf = items;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The socket closes with the connection, not when the hub task gets to the unsubscribe.
        self.mailbox.attach(None);
        unsubscribe(&self.tx, self.sub);
    }
}

/// Tells the hub task `sub` is gone, from a `Drop` (no waiting): at once if the command
/// channel has room, else from a task.
fn unsubscribe(tx: &mpsc::Sender<Command>, sub: SubId) {
    if let Err(mpsc::error::TrySendError::Full(command)) = tx.try_send(Command::Unsubscribe(sub)) {
        let tx = tx.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = tx.send(command).await;
            });
        }
    }
}

/// A subscribe waiting for the hub task's answer. A connection's task dropped meanwhile (the
/// client reset the stream, the hub shuts down) would otherwise leave behind a subscriber the
/// hub made and answered for, that nothing reads and no [`Subscription`] will unsubscribe:
/// dropped unanswered, the reply can no longer be sent (the hub task undoes the subscribe
/// itself); dropped answered but unread, the subscriber is undone here.
struct Awaiting {
    rx: oneshot::Receiver<Result<(SubId, Arc<Mailbox>), HubError>>,
    tx: mpsc::Sender<Command>,
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(Ok((sub, _))) = self.rx.try_recv() {
            unsubscribe(&self.tx, sub);
        }
    }
}

#[cfg(test)]
mod burst_tests {
    use super::{BATCH, KEEP_PLACES, holds_a_burst};

    #[test]
    fn only_a_bursts_places_are_given_back() {
        assert!(!holds_a_burst(KEEP_PLACES));
        assert!(
            !holds_a_burst(2 * KEEP_PLACES),
            "a subscriber a little behind keeps them"
        );
        assert!(holds_a_burst(BATCH), "a replay's burst goes");
    }
}
