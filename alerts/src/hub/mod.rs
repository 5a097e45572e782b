//! The sans-IO alert fan-out core: region/kind/severity filters, per-subscriber bounded queues,
//! recovery from a sequence number, the live set behind the Atom feed.
//!
//! No sockets, tasks, clocks or locks live here: time comes in as `now: Instant` (retention)
//! and `now_unix` (CAP `expires`). The driver (HTTP layer) owns connections and writes frames;
//! the hub decides who gets what, in which order. Every behaviour is tested on simulated time
//! (`alerts/tests/hub_*.rs`).
//!
//! # Layout
//! - `machine`: [`Hub`], its inputs (`publish`, `subscribe`, `unsubscribe`, `handle_timeout`)
//!   and outputs (`pop`, `poll_event`, `live_alerts`, `stats`).
//! - `subs`: the subscriber slab, region buckets, per-subscriber queues, the fan-out loop.
//! - `regions`: the region tree as dense indices; per region the buckets an alert reaches.
//! - `retain`: stored entries and their targets, the replay ring, the live set.
//! - `types`, `config`: values in and out, tunables and counters.
//!
//! # Driving the hub (one owner task; the quinn-proto / str0m loop)
//! ```text
//! hub.publish(alert, now)?;                 // one mutation (the store has numbered it) ...
//! while let Some(ev) = hub.poll_event() {   // ... then drain events
//!     Ready { sub }      => wake sub's connection; when writable it calls hub.pop(sub)
//!                           until None, sending each Delivery (Alert or Reset)
//!     Disconnect { sub, .. } => close 4008 "slow consumer" / end the SSE stream
//! }
//! if let Some(t) = hub.poll_timeout() { /* at unix time t: */ hub.handle_timeout(now, t) }
//! ```
//!
//! # Matching: indexed by region, never a scan of all subscribers
//! Each subscriber sits in the bucket of its filter's region. An alert for R reaches buckets
//! R, R's ancestors and R's descendants (precomputed per region: at most 102 buckets in
//! Zhejiang; 3 for a county). Fan-out first marks, per reached bucket and per kind, the best
//! severity the alert brings there (over all its areas and inherited targets), then walks each
//! marked bucket once, testing each subscriber with one AND of its kind bits against the kinds
//! accepted at its minimum severity. An alert with several areas thus reaches a subscriber
//! once. An Update or Cancel carries the targets of what it references (found in the ring or
//! the live set), so it reaches everyone the original reached, plus its own audience.
//!
//! # Queues: bounded, shared frames, no allocation per subscriber per alert
//! A live delivery is `(seq, Bytes)`: the caller serialized the frame once; queueing it is a
//! refcount increment. Each subscriber's queue is a `VecDeque` that grows on demand and keeps
//! its capacity: an idle subscriber holds 4 slots (160 bytes) rather than a preallocated
//! 256-slot ring (10 KB × 100k subscribers = 1 GB, against a budget of a few KB per
//! connection). It never exceeds `queue_capacity`: a publish that finds the queue full
//! disconnects that subscriber (`HubEvent::Disconnect { reason: SlowConsumer }`, close code
//! 4008) and drops its queue; nobody else waits on it. Once queues and scratch buffers reached
//! their working size, publishing and draining allocate nothing per subscriber
//! (`tests/hub_zero_growth.rs` checks [`Hub::capacities`]).
//!
//! # Recovery: lazy replay from the ring, then live
//! Retained alerts sit in a ring bounded by `retain_count` and `retain_age`, addressed by
//! absolute position. `subscribe(filter, Some(since), now)` does not copy anything: the
//! subscriber starts in *replay mode* with a cursor at the first retained alert above `since`
//! (or at the oldest one, behind a [`Delivery::Reset`], if alerts above `since` were evicted:
//! `since < evicted_upto`, exact even with gaps in the sequence). `pop` walks the cursor,
//! returning matching entries. While replaying, fan-out skips the subscriber: every new alert
//! is appended to the ring ahead of the cursor, so the cursor reaches it. When `pop` finds the
//! cursor at the end of the ring, the subscriber switches to live mode, atomically (the hub is
//! single-threaded), and from the next publish on, fan-out queues for it. A per-subscriber
//! high-water mark (`last`) makes a second delivery of any sequence number impossible.
//! So a replay of any length never fills the queue and never triggers a slow-consumer
//! disconnect; only a replay so slow that the retention window moves past its cursor is
//! disconnected as a slow consumer (it resubscribes and gets a `Reset`).
//! `since` above the last published sequence (a client that saw more on another node, or a
//! bogus value) is answered with a reset and a replay from the oldest retained alert: this
//! log cannot vouch for numbers it has not seen. The driver holds such a subscribe until its
//! log reaches `since` first (`alerts_live::ahead`), so a client moving between nodes gets
//! no reset unless the log never gets there.
//!
//! # Architecture invariants
//! - Pure and deterministic: no I/O, no clock reads, no tokio; one owner mutates it, so a
//!   replay and the registration that follows it are atomic with respect to publishes.
//! - Only stored alerts enter: `publish` takes what the store numbered, and a sequence number
//!   not above the last is rejected (`HubError::SeqNotIncreasing`), never fanned out twice.
//! - Every buffer is bounded: queues by `queue_capacity` (then disconnect), the ring by
//!   `retain_count`/`retain_age`, the live set by `max_live`, the event queue by one unpolled
//!   `Ready` per subscriber plus one `Disconnect` per disconnect.
//! - A subscriber is in exactly one bucket, in exactly one mode (replay: fed by its cursor;
//!   live: fed by fan-out), and receives sequence numbers strictly increasing.
//!
//! # API boundary
//! The hub knows alerts only as [`PublishedAlert`] metadata plus an opaque frame; the CAP
//! model maps onto [`AlertKind`] and [`Severity`], and the store resolves CAP `references`
//! triples to sequence numbers. Transport details (4008, SSE `id:`) stay in the driver; the
//! hub only names them ([`DisconnectReason::close_code`]).

mod config;
mod machine;
mod regions;
mod retain;
mod subs;
mod types;

pub use config::{BufferCapacities, HubConfig, HubStats};
pub use machine::Hub;
pub use types::{
    AlertKind, Delivery, DisconnectReason, Filter, HubError, HubEvent, Inherited, KindSet, MsgType,
    PublishedAlert, Severity, SubId, UnknownName,
};
