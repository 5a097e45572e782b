//! Structured logs via `tracing`: human-readable text by default, one JSON object per line with
//! `log.format = "json"`. Logs go to stderr; stdout carries only command output.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `level`.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (in-process tests) is fine.
    drop(result);
}
