//! hubcast: the real-time operations hub of a provincial market-regulation administration.
//!
//! # Layout
//! - `cli`, `commands`: the command line (`serve`, `check-config`, `token`, `regions`);
//!   `commands_alert`: `alert publish` (a minimal HTTP/1.1 client).
//! - `config`: typed configuration, merged from defaults, file, env and flags, validated once.
//! - `app`: wiring from settings to a running hub; `server`: the listener (plain or TLS,
//!   connection cap, graceful shutdown); `shutdown`: the one shutdown signal; `stall`: every
//!   connection's write-stall cut-off.
//! - `http`: the axum router, its error type, auth extractor, health and metrics endpoints,
//!   WHIP/WHEP, alert publishing, reading and archive.
//! - `keys`, `tls`: key material generated into the data dir (never shipped).
//! - `alerts_live`: the task owning the alert fan-out hub (live WebSocket/SSE/Atom delivery);
//!   `alerts_metrics`: its Prometheus metrics.
//! - `metrics`, `telemetry`: Prometheus registry and structured logs.
//! - `wslite`: the lean server-side WebSocket of broadcast endpoints (handshake, framing,
//!   shared-payload writes).
//!
//! Subsystem crates: `tiers` (regions, roles, tokens, permissions), `signaling`, `sfu`,
//! `alerts`, `dashboard`. See ARCHITECTURE.md.

pub mod alerts_live;
pub mod alerts_metrics;
pub mod app;
pub mod backup;
pub mod cert_reload;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod commands;
pub mod commands_alert;
pub mod config;
pub mod data_lock;
pub mod held;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod rate_limit;
pub mod server;
pub mod shutdown;
pub mod stall;
pub mod telemetry;
pub mod tls;
pub mod wslite;
