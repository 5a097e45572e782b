//! Prometheus metrics of live alert delivery, registered into the process registry:
//! subscribers by transport, alerts published by kind, deliveries, slow-consumer disconnects,
//! recovery replays and the publish→deliver latency (hub publish to hand-off to the
//! connection task).
//!
//! Every label has a bounded set of values: `transport` is `websocket` or `sse`, `kind` one
//! of the four alert kinds.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The live-delivery metrics (cheap to clone: every field is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    /// `hubcast_alert_subscribers{transport}`.
    pub subscribers: IntGaugeVec,
    /// `hubcast_alert_published_total{kind}`: alerts fanned out (after the store's commit).
    pub published: IntCounterVec,
    /// `hubcast_alert_deliveries_total`: alerts handed to connections (live and replayed).
    pub deliveries: IntCounter,
    /// `hubcast_alert_direct_writes_total`: of those, written to the subscriber's socket by the
    /// hub task itself (the rest went through the connection's inbox).
    pub direct_writes: IntCounter,
    /// `hubcast_alert_slow_consumer_disconnects_total`.
    pub slow_consumers: IntCounter,
    /// `hubcast_alert_replays_total`: subscriptions that asked to resume (`since`,
    /// `Last-Event-ID`).
    pub replays: IntCounter,
    /// `hubcast_alert_publish_to_deliver_seconds`.
    pub latency: Histogram,
    /// `hubcast_alert_log_rewinds_total`: alerts handed over under a number the hub already
    /// had for a different alert (the shared log lost entries and numbered again). Seen by the
    /// instance that committed the new alert, while the old one is still in its replay ring;
    /// other instances' log tails are already past that number and do not see it.
    pub log_rewinds: IntCounter,
}

impl LiveMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<LiveMetrics, prometheus::Error> {
        let subscribers = IntGaugeVec::new(
            Opts::new("hubcast_alert_subscribers", "Live alert subscribers."),
            &["transport"],
        )?;
        let published = IntCounterVec::new(
            Opts::new(
                "hubcast_alert_published_total",
                "Alerts fanned out to live subscribers, by kind.",
            ),
            &["kind"],
        )?;
        let deliveries = IntCounter::new(
            "hubcast_alert_deliveries_total",
            "Alert deliveries handed to subscriber connections (live and replayed).",
        )?;
        let direct_writes = IntCounter::new(
            "hubcast_alert_direct_writes_total",
            "Alert deliveries written to the subscriber's socket by the hub task itself.",
        )?;
        let slow_consumers = IntCounter::new(
            "hubcast_alert_slow_consumer_disconnects_total",
            "Subscribers closed because their queue was full (4008).",
        )?;
        let replays = IntCounter::new(
            "hubcast_alert_replays_total",
            "Subscriptions resuming from a sequence number (since / Last-Event-ID).",
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "hubcast_alert_publish_to_deliver_seconds",
                "Time from the live hub taking an alert in (after its durable commit, or its read \
                 from the shared log) to handing it to a subscriber's connection; live \
                 deliveries only, not replays.",
            )
            .buckets(vec![
                0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                0.5, 1.0, 2.5,
            ]),
        )?;
        let log_rewinds = IntCounter::new(
            "hubcast_alert_log_rewinds_total",
            "Alerts numbered again with a number already used (the shared log went back).",
        )?;
        registry.register(Box::new(subscribers.clone()))?;
        registry.register(Box::new(published.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(direct_writes.clone()))?;
        registry.register(Box::new(slow_consumers.clone()))?;
        registry.register(Box::new(replays.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(log_rewinds.clone()))?;
        Ok(LiveMetrics {
            subscribers,
            published,
            deliveries,
            direct_writes,
            slow_consumers,
            replays,
            latency,
            log_rewinds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_family_once() {
        let registry = Registry::new();
        let metrics = LiveMetrics::register(&registry).expect("register");
        metrics.subscribers.with_label_values(&["websocket"]).inc();
        metrics.published.with_label_values(&["food"]).inc();
        metrics.latency.observe(0.001);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == "hubcast_alert_subscribers"),
            "{names:?}"
        );
        assert!(
            names
                .iter()
                .any(|n| n == "hubcast_alert_publish_to_deliver_seconds")
        );
        assert!(
            LiveMetrics::register(&registry).is_err(),
            "a second registration is refused"
        );
    }
}
