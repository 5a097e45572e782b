//! The durable alert log: every alert the hub acknowledges is written here first, numbered,
//! and only then fanned out. [`Store`] is the interface; [`SqliteStore`] the embedded backend,
//! [`RedisStore`] the multi-node one (a Redis Stream shared by every instance; see its module
//! for what it guarantees and how it differs).
//!
//! # Layout
//! - `types`: [`StoredAlert`] (one numbered alert, with [`StoredAlert::to_published`] for the
//!   hub), [`Appended`], [`ArchiveQuery`], [`Page`], [`Cursor`], the limits.
//! - here: the [`Store`] trait and [`StoreError`].
//! - `sqlite`: [`SqliteStore`]: opening (pragmas, one writer and a few readers), reads.
//! - `schema`: the tables and their migrations (`PRAGMA user_version`).
//! - `append`: the publish transaction (idempotency, references, indexes).
//! - `senders`: [`Publisher`] and [`SenderRule`]: which region owns a CAP sender.
//! - `archive`: the archive query (region subtree, filters, full text, keyset pages).
//! - `backup`: [`copy_to`] (a consistent copy of a live store) and [`verify`] (a copy's check).
//! - `redis`, `redis_log`: [`RedisStore`] and [`LogTail`]; the stream's keys, append script
//!   and entry format.
//!
//! # Guarantees (SQLite)
//! - **Acknowledged means durable.** [`Store::append`] returns only after `COMMIT` under
//!   `journal_mode=WAL` + `synchronous=FULL`: the WAL is fsynced at every commit, so an
//!   acknowledged alert survives SIGKILL and power loss (`tests/store_durability.rs` kills a
//!   writer at random moments). A failed append leaves nothing behind: one transaction.
//! - **Sequence numbers are gap-free and monotonic** (1, 2, 3, …; the one gap is a restore's:
//!   a restored store numbers on above its numbering floor, the replaced store's last number,
//!   `SqliteStore::raise_numbering_floor`): the next number is
//!   `MAX(seq) + 1` read inside the `BEGIN IMMEDIATE` write transaction, so concurrent writers
//!   (threads or processes) serialize, a rolled-back append consumes no number, and rows are
//!   never deleted. The hub rejects a number not above its last, so nothing is fanned out twice.
//! - **Idempotent on (sender, identifier)**, CAP's identity of a message: posting the same
//!   content again returns the existing record (`created: false`); the same pair with different
//!   content is [`StoreError::Conflict`]. "Same content" means the same normalized XML
//!   ([`write_xml`](crate::cap::write_xml) output), so a JSON re-post of an XML alert matches.
//! - **A sender speaks for one region**: the first region to publish under a CAP `sender`
//!   owns it (or config names the owner); another region's append is
//!   [`StoreError::SenderTaken`] and writes nothing (`senders`).
//! - **References resolve or the append fails**: an `Update`/`Cancel` whose `references` name
//!   an alert not stored (sender and identifier unknown, or a different `sent`) is
//!   [`StoreError::UnknownReference`], and nothing is written.
//!
//! # What is stored
//! Per alert: the normalized CAP XML (served at `/alerts/{id}.xml`), the compact CAP JSON, the
//! body as received (audit), the publisher (token subject), receive time, and the indexed
//! fields: kind and severity in the hub's vocabulary ([`convert`](crate::convert)), `msgType`,
//! `sent` and `expires` as unix seconds, regions (GB2260 codes of its areas), references as
//! sequence numbers. An alert without an info block (a bare `Cancel`) takes its kind and
//! severity from what it references, and its *inherited regions* (the regions of the alerts it
//! references) are kept. Its *inherited targets* ([`StoredAlert::inherited_targets`]: each
//! referenced alert's areas with that alert's kind and severity, and what it inherited in
//! turn) are recorded with it, so live delivery routes an Update or Cancel to its originals'
//! audience from the record alone, and the archive indexes the same reach (own areas × own
//! kind and severity, plus the inherited targets) as one row per target, so it finds a
//! Cancel where, and for whom, its original was.
//!
//! # Public id
//! [`StoredAlert::id`] is the sequence number in decimal (`"42"`): short, URL-safe, never
//! reused, stable for the life of the store (and, with Redis, across nodes: the shared log
//! numbers alerts). CAP's own identity stays reachable through [`Store::by_identifier`].
//!
//! # Full text (Chinese)
//! FTS5 with the `trigram` tokenizer indexes, per alert, `event`, `headline`, `description`,
//! every `areaDesc`, `note`, and the spot-check record's product, producer, sampled business
//! and brand. A query term of 3 or more characters is a trigram phrase (any substring, CJK or
//! not, case-insensitive); a 1–2 character term cannot be trigram-indexed and falls back to
//! `LIKE '%term%'` over the same text, scanned newest first and stopped at the page size (a
//! rare short term can scan the whole archive; the page size bounds the result, not the work).
//! Whitespace separates terms; all must match.
//!
//! # Architecture invariants
//! - Only this module writes the database, and only through `append`'s single transaction.
//! - Every input is bounded: document sizes, page sizes ([`MAX_PAGE`]), query text.
//! - Reads never block the writer (WAL): readers have their own connections.

mod append;
mod archive;
mod backup;
mod redis;
mod redis_log;
mod redis_read;
mod schema;
mod senders;
mod sqlite;
mod types;

pub use self::backup::{Snapshot, checkpoint, copy_to, last_number, verify};
pub use self::redis::{Durability, RedisStore, remove_store_files};
pub use redis_read::LogTail;
pub use schema::SCHEMA_VERSION;
pub use senders::{Publisher, SenderRule};
pub use sqlite::{DOCUMENT_GROWTH, SqliteStore, StoreConfig, sync_dir_of};
pub use types::{
    Appended, ArchiveQuery, Cursor, DEFAULT_PAGE, MAX_PAGE, MAX_QUERY_CHARS, MAX_QUERY_TERMS, Page,
    StoredAlert, parse_id, public_id,
};

use tiers::RegionCode;

use crate::cap::{Alert, CapError};
use crate::convert::NotPublic;

/// The durable, numbered alert log. Synchronous: an async caller runs it on a blocking thread
/// (`spawn_blocking`). Implementations are shared between threads.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores `alert` durably and gives it the next sequence number, or returns the record
    /// already stored under its (sender, identifier) if the content is the same.
    ///
    /// `raw` is the body as received (XML or JSON text), kept for audit; `publisher` the
    /// authenticated principal (its label is kept; its region must own the alert's sender,
    /// see [`Publisher`]); `now_unix` the receive time. The caller has validated the alert
    /// ([`cap::validate`](crate::cap::validate())); the store checks what it indexes.
    /// Returns after the commit is durable.
    fn append(
        &self,
        alert: &Alert,
        raw: &str,
        publisher: &Publisher<'_>,
        now_unix: i64,
    ) -> Result<Appended, StoreError>;

    /// The alert with sequence number `seq`.
    fn get(&self, seq: u64) -> Result<Option<StoredAlert>, StoreError>;

    /// The alert with public id `id` (see [`StoredAlert::id`]); `None` for a malformed id.
    fn get_by_id(&self, id: &str) -> Result<Option<StoredAlert>, StoreError> {
        match parse_id(id) {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }

    /// The alert CAP knows as (`sender`, `identifier`).
    fn by_identifier(
        &self,
        sender: &str,
        identifier: &str,
    ) -> Result<Option<StoredAlert>, StoreError>;

    /// Up to `limit` (1..=[`MAX_PAGE`]) alerts with a sequence number above `after`, oldest
    /// first: the hub's ring after a restart, a subscriber's replay beyond retention.
    fn since(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError>;

    /// [`since`](Self::since), and the highest number it looked at: a log whose entries are
    /// not all readable (a shared log another version wrote to) may return fewer alerts than
    /// it passed, even none, with more after them. Paging goes on from that number, and only
    /// numbers up to it are known to be unreadable.
    fn since_examined(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredAlert>, u64), StoreError> {
        let page = self.since(after, limit)?;
        let examined = page.last().map_or(after, |alert| alert.seq);
        Ok((page, examined))
    }

    /// The last sequence number given out, 0 if none: the highest stored, or the numbering
    /// floor a restore set above it (SQLite).
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// The highest sequence number of a stored alert, 0 if none (below [`Store::last_seq`]
    /// only in a store restored from a backup).
    fn last_stored_seq(&self) -> Result<u64, StoreError> {
        self.last_seq()
    }

    /// One page of the archive, newest first.
    fn query(&self, query: &ArchiveQuery) -> Result<Page, StoreError>;
}

/// Why a store operation failed. Publish-path variants map to 4xx responses (`Conflict` 409,
/// `UnknownReference`/`Invalid`/`NotPublic`/`TooLarge` 422 or 413), query variants to 400;
/// the rest are server errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same (sender, identifier) is already stored with different content.
    #[error("alert ({sender}, {identifier}) is already stored as #{seq} with different content")]
    Conflict {
        /// CAP sender.
        sender: String,
        /// CAP identifier.
        identifier: String,
        /// Sequence number of the stored alert.
        seq: u64,
    },
    /// The alert's sender belongs to another region (see [`Publisher`]).
    #[error("sender {sender:?} belongs to region {owner}; publish under your own region's sender")]
    SenderTaken {
        /// CAP sender.
        sender: String,
        /// The region that owns it.
        owner: RegionCode,
    },
    /// A referenced alert reaches a region the publisher may not publish to (see
    /// [`Publisher::may_reach`]).
    #[error("the referenced alert {reference} reaches region {region}, where you may not publish")]
    ReferenceOutOfReach {
        /// The `sender,identifier,sent` triple.
        reference: String,
        /// The first region out of reach.
        region: RegionCode,
    },
    /// An Update or Cancel references an alert issued for a region the publisher may not
    /// publish to: only the issuing region, or a tier above it, may supersede or cancel it
    /// (see [`Publisher::may_reach`]).
    #[error(
        "the referenced alert {reference} was issued for region {issuer}; only that region or a tier above it may update or cancel it"
    )]
    NotTheIssuer {
        /// The `sender,identifier,sent` triple.
        reference: String,
        /// The region its publisher acted for.
        issuer: RegionCode,
    },
    /// An Update or Cancel references a message this store does not have.
    #[error("references names no known alert: {reference}")]
    UnknownReference {
        /// The `sender,identifier,sent` triple.
        reference: String,
    },
    /// The alert lacks what the store indexes (kind, regions, references).
    #[error("cannot store the alert: {0}")]
    Invalid(#[from] CapError),
    /// `Ack` and `Error` messages are not published.
    #[error(transparent)]
    NotPublic(#[from] NotPublic),
    /// An input is over its size limit.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A page size outside `1..=MAX_PAGE`.
    #[error("limit {limit} is outside 1..={max}")]
    BadLimit {
        /// The requested limit.
        limit: usize,
        /// The largest allowed.
        max: usize,
    },
    /// A cursor this store did not issue.
    #[error("malformed or foreign cursor")]
    BadCursor,
    /// An archive query that cannot be run (bad time range, text query too long or empty).
    #[error("bad query: {0}")]
    BadQuery(&'static str),
    /// The query's region is not in this store's region tree.
    #[error("region {0} is not in this hub's region tree")]
    UnknownRegion(RegionCode),
    /// The database was written by a newer hubcast (schema version above this build's).
    #[error("database schema version {found} is newer than this build's {supported}")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// The database refused WAL mode (e.g. an in-memory database), so durability is not given.
    #[error("journal_mode is {0}, expected wal")]
    NotWal(String),
    /// A stored row could not be read back (manual edits or a bug).
    #[error("stored alert #{seq} is unreadable: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A read ran past [`StoreConfig::query_timeout`] and was interrupted (an archive query
    /// too broad for the store's size, e.g. a one-character term over every document).
    #[error(
        "the query ran over {0:?} and was stopped; narrow it (region, kind, time range, longer terms)"
    )]
    QueryTimeout(std::time::Duration),
    /// SQLite failed (I/O error, disk full, lock timeout).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Creating the database's directory or syncing it failed.
    #[error("database file: {0}")]
    Io(#[from] std::io::Error),
    /// The shared log (Redis) failed, refused, or did not answer in time.
    #[error("shared alert log (Redis): {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The archive index of a shared log lags what this instance has seen and cannot catch
    /// up now (Redis unreachable, or another catch-up still running): its page would lack
    /// alerts. Passing (HTTP 503).
    #[error(
        "the archive index holds the log up to {indexed} but alerts up to {needed} exist, and it cannot catch up now; retry shortly"
    )]
    IndexBehind {
        /// The last log number the index has examined.
        indexed: u64,
        /// The last number the query needs.
        needed: u64,
    },
    /// A file offered as a store (a backup) is not one this build can read, or is damaged.
    #[error("{0}")]
    NotAStore(String),
}

impl StoreError {
    /// Whether the failure is of the store's availability rather than the request: Redis
    /// unreachable or timing out, SQLite busy past its timeout. Worth retrying (HTTP 503).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Redis(err) => {
                err.is_unrecoverable_error()
                    || err.is_timeout()
                    || err.is_connection_refusal()
                    // Loading its data, a failover, a replica, refusing writes because its
                    // last fsync failed, its memory is full or too few replicas are in reach:
                    // all pass (or need an operator); none is the request's fault.
                    || matches!(
                        err.code(),
                        Some("LOADING" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY"
                            | "MISCONF" | "BUSY" | "OOM" | "NOREPLICAS")
                    )
            }
            StoreError::IndexBehind { .. } => true,
            StoreError::Sqlite(err) => matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}
