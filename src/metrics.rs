//! Prometheus metrics of the process and its HTTP surface, served at `/metrics`.
//!
//! One [`Registry`] per process (not the global default, so in-process tests do not share
//! counters); subsystems register their own collectors into it. Every label has a bounded set of
//! values: routes are the router's matched patterns (or `unmatched`), methods are the standard
//! ones (or `other`), status is the numeric code.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Version of the binary, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the binary was built from (`unknown` outside a checkout), from build.rs.
pub const GIT_COMMIT: &str = env!("HC_BUILD_GIT_COMMIT");

/// The process's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hubcast_http_requests_total{route,method,status}`.
    pub http_requests: IntCounterVec,
    /// `hubcast_http_request_duration_seconds{route,method}`.
    pub http_duration: HistogramVec,
    /// `hubcast_http_connections{transport}`: open connections (`tcp`, `tls`).
    pub http_connections: IntGaugeVec,
    /// `hubcast_websocket_connections{endpoint}`: open WebSockets.
    pub websockets: IntGaugeVec,
    /// `hubcast_ready`: 1 once every subsystem started, 0 while starting or draining.
    pub ready: IntGauge,
}

impl Metrics {
    /// Creates the registry with build info, process collectors and HTTP metrics.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(
                "hubcast_build_info",
                "Build of the running binary (value is always 1).",
            ),
            &["version", "commit", "profile"],
        )?;
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        build
            .with_label_values(&[VERSION, GIT_COMMIT, profile])
            .set(1);
        registry.register(Box::new(build))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let http_requests = IntCounterVec::new(
            Opts::new("hubcast_http_requests_total", "HTTP requests answered."),
            &["route", "method", "status"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "hubcast_http_request_duration_seconds",
                "Time from request head to response head.",
            )
            .buckets(vec![
                0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(http_duration.clone()))?;
        let http_connections = IntGaugeVec::new(
            Opts::new("hubcast_http_connections", "Open HTTP connections."),
            &["transport"],
        )?;
        registry.register(Box::new(http_connections.clone()))?;
        let websockets = IntGaugeVec::new(
            Opts::new(
                "hubcast_websocket_connections",
                "Open WebSocket connections.",
            ),
            &["endpoint"],
        )?;
        registry.register(Box::new(websockets.clone()))?;
        let ready = IntGauge::new("hubcast_ready", "1 when ready to serve, 0 otherwise.")?;
        registry.register(Box::new(ready.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            http_connections,
            websockets,
            ready,
        })
    }

    /// The registry, for subsystems to add their collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Encodes every metric in the Prometheus text format.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}

/// Maps a method to a bounded label value.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_build_info_and_process_metrics() {
        let metrics = Metrics::new().expect("metrics");
        let text = metrics.encode().expect("encode");
        assert!(text.contains("hubcast_build_info{"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(text.contains("process_open_fds"), "{text}");
    }
}
