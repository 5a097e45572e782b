//! The live-delivery driver: one tokio task owns the sans-IO [`alerts::hub::Hub`]; publishes,
//! subscriptions and pops reach it over one bounded command channel.
//!
//! # Handoff between the hub task and connection tasks
//! Each subscriber gets an `Arc<Notify>`. The hub task turns `HubEvent::Ready` into
//! `notify_one` (a stored permit, so a wake-up before the connection waits is not lost) and
//! `HubEvent::Disconnect` into a remembered reason plus `notify_one`. A woken connection asks
//! for up to [`BATCH`] deliveries per command (`Pop`), so the cost is one channel round trip
//! per batch, not per delivery, and no lock is shared between the hub and connections. A
//! batch that came back full means "more may be waiting" (the hub only raises `Ready` again
//! once `pop` returned `None`), so the connection pops again without waiting.
//!
//! # Bounds
//! The command channel holds `COMMANDS` (1024) commands: a publisher waits (after its commit)
//! when it is full, connections wait for their pops. Queues per subscriber are the hub's
//! (`alerts.queue_capacity`). An unsubscribe that cannot be queued from `Drop` is sent from a
//! spawned task, so a subscriber is never leaked in the hub. Every pop goes through the one
//! task: a broadcast to N subscribers costs N hub pops and N/64 channel round trips there
//! (plus one per subscriber woken with fewer than 64 waiting, the usual case), which bounds
//! the deliveries per second of one process to what one core does; the benchmark of issue 4
//! has not been run against it yet.
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

mod tail;
mod task;

pub use tail::Tail;

use std::sync::Arc;

use alerts::hub::{Delivery, DisconnectReason, Filter, HubConfig, HubError, PublishedAlert, SubId};
use alerts::store::Store;
use tiers::RegionTree;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::alerts_metrics::LiveMetrics;
use crate::config::AlertsConfig;

/// Deliveries handed out per `Pop` command.
pub const BATCH: usize = 64;
/// Capacity of the command channel.
const COMMANDS: usize = 1024;

enum Command {
    Publish(Box<PublishedAlert>),
    Subscribe {
        filter: Filter,
        since: Option<u64>,
        reply: oneshot::Sender<Result<(SubId, Arc<Notify>), HubError>>,
    },
    Unsubscribe(SubId),
    Pop {
        sub: SubId,
        /// The subscriber's recycled buffer (empty, capacity kept), filled and sent back.
        buf: Vec<Delivery>,
        reply: oneshot::Sender<Batch>,
    },
    Live {
        filter: Filter,
        reply: oneshot::Sender<Vec<PublishedAlert>>,
    },
}

/// One answer to a pop.
#[derive(Debug, Default)]
pub struct Batch {
    /// Deliveries, in order.
    pub items: Vec<Delivery>,
    /// True if the batch is full and more may be waiting.
    pub more: bool,
    /// Set when the hub dropped the subscriber (or it is unknown): close the connection.
    pub closed: Option<DisconnectReason>,
    /// True if the subscriber is unknown to the hub (the driver stopped).
    pub gone: bool,
}

/// Handle on the driver task (cheap to clone).
#[derive(Debug, Clone)]
pub struct LiveHub {
    tx: mpsc::Sender<Command>,
    slots: Arc<Semaphore>,
    metrics: LiveMetrics,
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
            ..HubConfig::default()
        };
        let retain = config.retain_count as u64;
        let store_for_task = store.clone();
        let rebuilt = tokio::task::spawn_blocking(move || {
            task::rebuild(store.as_ref(), &tree, hub_config, retain)
        });
        let hub = rebuilt.await??;
        let (tx, rx) = mpsc::channel(COMMANDS);
        let task_metrics = metrics.clone();
        tokio::spawn(task::run(hub, rx, task_metrics, store_for_task));
        Ok(LiveHub {
            tx,
            slots: Arc::new(Semaphore::new(config.max_subscribers)),
            metrics,
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
            .blocking_send(Command::Publish(Box::new(alert)))
            .is_ok()
    }

    /// A connection slot, or `Full` (checked before a WebSocket upgrade).
    pub fn reserve(&self) -> Result<OwnedSemaphorePermit, SubscribeError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| SubscribeError::Full)
    }

    /// Registers a subscriber holding `permit`; `transport` labels the gauge.
    pub async fn subscribe(
        &self,
        filter: Filter,
        since: Option<u64>,
        permit: OwnedSemaphorePermit,
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
        let (sub, notify) = rx.await.map_err(|_| SubscribeError::Stopped)??;
        if since.is_some() {
            self.metrics.replays.inc();
        }
        let gauge = self.metrics.subscribers.with_label_values(&[transport]);
        gauge.inc();
        Ok(Subscription {
            tx: self.tx.clone(),
            sub,
            notify,
            more: false,
            buf: Vec::with_capacity(BATCH),
            gauge,
            _permit: permit,
        })
    }

    /// Current alerts matching `filter` (the Atom feed).
    pub async fn live_alerts(&self, filter: Filter) -> Option<Vec<PublishedAlert>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Live { filter, reply }).await.ok()?;
        rx.await.ok()
    }
}

/// One subscriber's side of the handoff; unsubscribes on drop.
#[derive(Debug)]
pub struct Subscription {
    tx: mpsc::Sender<Command>,
    sub: SubId,
    notify: Arc<Notify>,
    more: bool,
    /// Delivery buffer passed back and forth with each pop, so a steady subscriber costs no
    /// allocation per alert (see [`Subscription::recycle`]).
    buf: Vec<Delivery>,
    gauge: prometheus::IntGauge,
    _permit: OwnedSemaphorePermit,
}

impl Subscription {
    /// Resolves when deliveries (or a disconnect) may be waiting. Cancel-safe.
    pub async fn ready(&self) {
        if !self.more {
            self.notify.notified().await;
        }
    }

    /// Pops up to [`BATCH`] deliveries. Not cancel-safe: call it outside `select!`.
    pub async fn pop(&mut self) -> Batch {
        let (reply, rx) = oneshot::channel();
        let gone = Batch {
            gone: true,
            ..Batch::default()
        };
        if self
            .tx
            .send(Command::Pop {
                sub: self.sub,
                buf: std::mem::take(&mut self.buf),
                reply,
            })
            .await
            .is_err()
        {
            return gone;
        }
        let batch = rx.await.unwrap_or(gone);
        self.more = batch.more;
        batch
    }

    /// Hands a drained `Batch::items` back for the next pop (keeps its capacity).
    pub fn recycle(&mut self, mut items: Vec<Delivery>) {
        items.clear();
        self.buf = items;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.gauge.dec();
        if let Err(mpsc::error::TrySendError::Full(command)) =
            self.tx.try_send(Command::Unsubscribe(self.sub))
        {
            let tx = self.tx.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tx.send(command).await;
                });
            }
        }
    }
}
