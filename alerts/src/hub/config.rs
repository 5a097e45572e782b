//! Tunables of the [`Hub`](super::Hub), each default with its reason, and what it reports back:
//! [`HubStats`] (counters and gauges for `/metrics`) and [`BufferCapacities`] (for the
//! no-growth test).

use std::time::Duration;

/// Hub tunables. The hub runs [`HubConfig::sanitized`] on what it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubConfig {
    /// Live deliveries a subscriber may have waiting; one more and it is disconnected as a slow
    /// consumer (4008). Default 256: alerts arrive at most a few per second even in a burst, so
    /// a connection 256 alerts behind is stalled, not busy; and 256 × 40 bytes is the worst-case
    /// queue of one subscriber (queues grow on demand; an idle one holds 4 slots).
    pub queue_capacity: usize,
    /// Recent alerts kept for replay (`since` / `Last-Event-ID`). Default 10 000: several days of
    /// a province's traffic, a few tens of MB of frames at most.
    pub retain_count: usize,
    /// Age past which a retained alert is dropped from the replay window. Default 24 h: a client
    /// away longer than a day gets a `Reset` and reads the archive instead. (The binary sets it
    /// from `alerts.retain_age_secs`, 7 days by default.)
    pub retain_age: Duration,
    /// Bound on the live set (current alerts, the Atom feed). Default 10 000: far above the
    /// alerts a province has in force at once; past it the oldest leaves the feed (counted).
    pub max_live: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_capacity: 256,
            retain_count: 10_000,
            retain_age: Duration::from_secs(24 * 3600),
            max_live: 10_000,
        }
    }
}

impl HubConfig {
    /// This config with every bound at least 1 (and the age at least 1 s), so a bad value
    /// degrades behaviour but cannot stop delivery altogether.
    pub fn sanitized(&self) -> HubConfig {
        HubConfig {
            queue_capacity: self.queue_capacity.max(1),
            retain_count: self.retain_count.max(1),
            retain_age: self.retain_age.max(Duration::from_secs(1)),
            max_live: self.max_live.max(1),
        }
    }
}

/// Counters (monotonic) and gauges of a hub, from [`Hub::stats`](super::Hub::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Gauge: current subscribers.
    pub subscribers: usize,
    /// Gauge: subscribers still replaying from the ring.
    pub replaying: usize,
    /// Gauge: alerts in the replay window.
    pub retained: usize,
    /// Gauge: alerts in the live set.
    pub live: usize,
    /// Alerts accepted by `publish`.
    pub published: u64,
    /// Alerts accepted by `publish`, by [`AlertKind::index`](super::AlertKind::index).
    pub published_by_kind: [u64; 4],
    /// Published alerts with no area in the region tree and none inherited from what they
    /// reference (they reach nobody live).
    pub unrouted: u64,
    /// Publishes rejected for a non-increasing sequence number.
    pub rejected: u64,
    /// Live deliveries put in queues by fan-out.
    pub enqueued: u64,
    /// Alert deliveries handed to drivers by `pop` (live and replayed; resets excluded).
    pub deliveries: u64,
    /// Of `deliveries`, those that came from a replay.
    pub replayed: u64,
    /// Subscriptions that started with a replay (`since` with something to replay or a reset).
    pub replays: u64,
    /// Resets delivered (`since` older than retention).
    pub resets: u64,
    /// Subscribers disconnected as slow consumers (queue full or replay overtaken).
    pub slow_consumer_disconnects: u64,
    /// Alerts that left the live set by expiry.
    pub expired: u64,
    /// Alerts dropped from the live set because it was full.
    pub live_overflow: u64,
}

/// Capacities of every growable buffer of a hub, from
/// [`Hub::capacities`](super::Hub::capacities). Once warmed up, publishing and draining must
/// leave them all unchanged: fan-out allocates nothing per subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferCapacities {
    /// Sum of all subscriber queue capacities (in deliveries).
    pub queues_total: usize,
    /// Largest single subscriber queue capacity.
    pub queues_max: usize,
    /// Sum of region bucket capacities (in subscribers).
    pub buckets: usize,
    /// Subscriber slab capacity.
    pub slots: usize,
    /// Event queue capacity.
    pub events: usize,
    /// Replay ring capacity (in alerts).
    pub ring: usize,
    /// Fan-out scratch buffers (touched buckets, slow list, replaying list).
    pub scratch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_keeps_good_values_and_clamps_zeroes() {
        let good = HubConfig::default();
        assert_eq!(good.sanitized(), good);
        let zero = HubConfig {
            queue_capacity: 0,
            retain_count: 0,
            retain_age: Duration::ZERO,
            max_live: 0,
        };
        let fixed = zero.sanitized();
        assert_eq!(
            (fixed.queue_capacity, fixed.retain_count, fixed.max_live),
            (1, 1, 1)
        );
        assert_eq!(fixed.retain_age, Duration::from_secs(1));
    }
}
