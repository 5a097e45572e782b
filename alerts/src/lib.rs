//! Public alerts: CAP 1.2 model and validation, durable store (SQLite, Redis), sans-IO fan-out
//! hub, and the HTTP surface (publish, WebSocket, SSE, Atom, archive).
//!
//! # Layout
//! - [`cap`]: the CAP 1.2 message model; XML and JSON read/write (untrusted input: size limit,
//!   no DTDs, no entity expansion); [`cap::validate()`] with errors naming the element path;
//!   hubcast's meaning on top: [`cap::AlertKind`] (`hubcast:kind` event code), GB2260 regions,
//!   China's warning levels ↔ CAP severity, `references` triples, spot-check records
//!   ([`cap::SpotCheck`]) carried as `spotcheck:*` parameters.
//!
//! - [`hub`]: the sans-IO fan-out state machine: subscribers indexed by region (an alert visits
//!   only the region buckets of its area, ancestors and descendants), kind/severity filters,
//!   one serialized frame shared as `Bytes` by every delivery, per-subscriber bounded queues
//!   (full: disconnect with 4008 "slow consumer"), replay from a retained ring for `since`
//!   with no gap and no duplicate, `Reset` when `since` is older than retention, live set for
//!   the Atom feed.
//!
//! The store (SQLite, Redis) and the HTTP surface land with the rest of the alerts issue. The
//! hub's `AlertKind`/`Severity` are the delivery vocabulary (query-string spellings); the
//! CAP module's are the wire model (schema spellings); the HTTP layer maps one to the other.
//!
//! # Architecture invariants
//! - `cap` is pure: no I/O, no clock reads (`now` is passed in), no panics on any input.
//! - Never imports the `sfu` crate.

pub mod cap;
pub mod hub;
