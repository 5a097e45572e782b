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
//! - [`store`]: the durable, numbered alert log behind the [`store::Store`] trait; the embedded
//!   [`store::SqliteStore`] (WAL, `synchronous=FULL`: acknowledged means durable; gap-free
//!   sequence numbers; idempotent on (sender, identifier); references resolved to sequence
//!   numbers; archive query with region subtree, filters, Chinese full text (FTS5 trigram) and
//!   keyset cursors). Builds the hub's [`hub::PublishedAlert`] from a stored alert.
//!
//! - [`convert`]: the hub's `AlertKind`/`Severity`/`MsgType` are the delivery vocabulary
//!   (query-string spellings); the CAP module's are the wire model (schema spellings); `From`
//!   and `TryFrom` map one to the other.
//!
//! The Redis store and the HTTP surface land with the rest of the alerts issue.
//!
//! # Architecture invariants
//! - `cap` is pure: no I/O, no clock reads (`now` is passed in), no panics on any input.
//! - Never imports the `sfu` crate.

pub mod cap;
pub mod convert;
pub mod hub;
pub mod store;
