//! Structured logs via `tracing`: human-readable text by default, one JSON object per line with
//! `log.format = "json"`. Logs go to stderr; stdout carries only command output.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber with `level` (`log.level`: flag > `HUBCAST_LOG__LEVEL` >
/// file > default, validated by the config; `RUST_LOG` is not read, so it cannot silently
/// override an operator's `--log-level`). Text logs are coloured only on a terminal: a
/// journal or file gets no escape codes.
pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (in-process tests) is fine.
    drop(result);
}
