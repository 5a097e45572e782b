//! [`RedisStore`]: the multi-node backend. A Redis Stream is the one ordered alert log every
//! hub instance appends to and tails ([`LogTail`], in `redis_read`); history and recovery
//! (`get`, `since`, `by_identifier`) are read from it. The archive query, which needs full-text search Redis
//! does not have, runs on a local SQLite index of the log (`mirror`), caught up from the
//! stream before each query.
//!
//! # Guarantees
//! - **Gap-free, shared numbering**: one script numbers and appends atomically in Redis
//!   (`redis_log`), so every instance sees the same sequence. **No number twice**: each
//!   instance passes the highest number it has seen (its appends, its tail, its index, which
//!   survives restarts) and the script numbers above it, so a log that went back (a lagging
//!   replica took over, entries deleted) leaves a gap instead of giving a number out again.
//! - **Acknowledged means durable** as far as Redis is configured to make it: with
//!   `appendonly yes` + `appendfsync always` Redis fsyncs its AOF before answering the script,
//!   so an acknowledged alert survives a Redis crash. [`RedisStore::durability`] reports the
//!   server's settings; the hub warns at start when they are weaker.
//! - **Idempotent** on (sender, identifier) across instances: the script returns the existing
//!   number and the content is compared as in SQLite (`Conflict` if it differs).
//! - **Failure is loud**: Redis unreachable or slow (timeouts: 5 s) is
//!   [`StoreError::Redis`], transient (HTTP 503); nothing is acknowledged that Redis did not
//!   accept.
//!
//! # Connections
//! Synchronous (callers are blocking threads), pooled: an idle connection is reused, a broken
//! one dropped; reads retry once on a fresh connection. The tail has its own connection,
//! since `XREAD BLOCK` holds it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::{Client, Connection, Value};
use tiers::RegionCode;

use super::append::{Prepared, Target, build, existing_record, resolve_with};
use super::redis_log::{self, APPEND_SCRIPT, Entry, Keys, ScriptAnswer, Slot, entry_id, identity};
use super::redis_read::{self, LogTail};
use super::senders::{self, Publisher};
use super::sqlite::check_limit;
use super::{Appended, ArchiveQuery, MAX_PAGE, Page, SqliteStore, Store, StoreConfig, StoreError};
use super::{StoredAlert, types::public_id};
use crate::cap::Alert;

/// Connect, read and write timeout of pooled connections.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept.
const POOL: usize = 8;

/// The Redis server's persistence settings (`CONFIG GET`), when it lets us read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `appendonly`: `yes` or `no`.
    pub appendonly: String,
    /// `appendfsync`: `always`, `everysec` or `no`.
    pub appendfsync: String,
}

impl Durability {
    /// Whether an acknowledged append is on disk (AOF fsynced before the answer).
    pub fn is_synchronous(&self) -> bool {
        self.appendonly == "yes" && self.appendfsync == "always"
    }
}

/// Longest a query waits for another query's catch-up of the index before it reads the index
/// as it is: a healthy catch-up takes milliseconds.
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);
/// After a catch-up failed for a passing reason, queries read the index as it is for this
/// long without trying again (each try would wait out the connection timeouts).
const CATCH_UP_PAUSE: Duration = Duration::from_secs(2);

/// Numbers [`RedisStore::index_matches_log`] looks at, at most, for one both the log and the
/// index hold (a log that went back has holes).
const MATCH_PROBES: u32 = 64;

/// The Redis [`Store`].
pub struct RedisStore {
    client: Client,
    keys: Keys,
    pool: Mutex<Vec<Connection>>,
    mirror: SqliteStore,
    /// Held while the mirror catches up, so two queries do not copy the same entries.
    catching_up: Mutex<()>,
    /// When a query's catch-up last failed for a passing reason (Redis unreachable):
    /// queries within [`CATCH_UP_PAUSE`] of it serve the index as it is without trying.
    catch_up_failed: Mutex<Option<std::time::Instant>>,
    config: StoreConfig,
    script: redis::Script,
    /// The highest number this instance has seen in the log (its appends, its tail, its
    /// index): the append script numbers above it. A log that went back (a replica without
    /// the newest entries took over, a Redis without fsync per write restarted, an entry
    /// deleted by hand) then never gives a number out twice: a subscriber holding one as
    /// its `since` would skip the new alert under it, and running instances, past that
    /// number already, would never deliver it.
    seen: Arc<AtomicU64>,
    /// The last log number the archive index has examined: what it holds, and past
    /// unreadable entries it does not have. Raised only once entries are in it.
    indexed: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("log", &self.keys.log)
            .field("mirror", &self.mirror.path())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[:password@]host:port/[db]`), checks the server answers, and
    /// opens the local archive index at `mirror_path` (rebuilt from the log if it belongs to
    /// another log).
    pub fn open(
        url: &str,
        prefix: &str,
        mirror_path: &Path,
        config: StoreConfig,
    ) -> Result<RedisStore, StoreError> {
        let client = Client::open(url)?;
        let mut store = RedisStore {
            client,
            keys: Keys::new(prefix),
            pool: Mutex::new(Vec::new()),
            mirror: SqliteStore::open_with(mirror_path, config.clone())?,
            catching_up: Mutex::new(()),
            catch_up_failed: Mutex::new(None),
            config,
            script: redis::Script::new(APPEND_SCRIPT),
            seen: Arc::new(AtomicU64::new(0)),
            indexed: AtomicU64::new(0),
        };
        let last = store.last_stored_seq()?;
        let mirrored = store.mirror.last_seq()?;
        // Numbers the index copied were given out, even if the log no longer has them (or
        // is another log now): new alerts are numbered above them.
        store.saw(last.max(mirrored));
        if !store.index_matches_log(last, mirrored)? {
            let config = store.config.clone();
            drop(store.mirror);
            remove_store_files(mirror_path)?;
            store = RedisStore {
                mirror: SqliteStore::open_with(mirror_path, config)?,
                ..store
            };
        }
        store.catch_up()?;
        store.bind_logged_senders()?;
        Ok(store)
    }

    /// Whether the local index (last number `mirrored`) copied this log (last number `last`):
    /// the highest number both hold (searched down through at most [`MATCH_PROBES`] numbers
    /// either lacks) names the same CAP identity in both. An index ahead of the log, or one
    /// with numbers the log lacks, is a log that went back (its alerts were acknowledged:
    /// the index keeps their only copy); only a number both hold for different alerts shows
    /// an index of another log, rebuilt then.
    fn index_matches_log(&self, last: u64, mirrored: u64) -> Result<bool, StoreError> {
        let mut seq = last.min(mirrored);
        for _ in 0..MATCH_PROBES {
            if seq == 0 {
                break;
            }
            if let (Some(theirs), Some(ours)) = (self.log_get(seq)?, self.mirror.get(seq)?) {
                return Ok((theirs.sender, theirs.identifier) == (ours.sender, ours.identifier));
            }
            seq -= 1;
        }
        Ok(true)
    }

    /// The entry numbered `seq` in the log itself, its targets completed.
    fn log_get(&self, seq: u64) -> Result<Option<StoredAlert>, StoreError> {
        let Some(mut entry) = self.raw_get(seq)? else {
            return Ok(None);
        };
        self.complete_targets(&mut entry)?;
        Ok(Some(entry.alert))
    }

    /// Binds each sender already in the log to the region of its first alert's publisher
    /// label, as SQLite's schema 2 does, once per log (`{P}:alerts:senders:from_log` marks it
    /// done; it is set last, so a crash half way just redoes it). Read from the local index,
    /// just caught up with the log; written with `HSETNX` in one pipeline, so a binding
    /// already made stays. It runs before this instance serves, so an old sender is bound
    /// before anyone can take it by first use (unless an instance of an older version, which
    /// neither backfills nor binds, is still serving the same log).
    fn bind_logged_senders(&self) -> Result<(), StoreError> {
        let done: bool = self.with_conn(|c| {
            Ok(redis::cmd("EXISTS")
                .arg(&self.keys.senders_from_log)
                .query(c)?)
        })?;
        if done {
            return Ok(());
        }
        let senders = self.mirror.first_labelled_senders()?;
        self.with_conn(|c| {
            let mut pipe = redis::pipe();
            for (sender, region) in &senders {
                pipe.cmd("HSETNX")
                    .arg(&self.keys.senders)
                    .arg(sender)
                    .arg(region.as_u32())
                    .ignore();
            }
            pipe.cmd("SET")
                .arg(&self.keys.senders_from_log)
                .arg(senders.len())
                .ignore();
            Ok(pipe.query::<()>(c)?)
        })
    }

    /// The server's persistence settings, `None` if `CONFIG GET` is not allowed.
    pub fn durability(&self) -> Option<Durability> {
        let read = |name: &str| -> Option<String> {
            let pair: Vec<String> = self
                .with_conn(|c| Ok(redis::cmd("CONFIG").arg("GET").arg(name).query(c)?))
                .ok()?;
            pair.into_iter().nth(1)
        };
        Some(Durability {
            appendonly: read("appendonly")?,
            appendfsync: read("appendfsync")?,
        })
    }

    /// A reader of the log from after `after`, on its own connection.
    pub fn tail(&self, after: u64) -> LogTail {
        LogTail::new(
            self.client.clone(),
            self.keys.log.clone(),
            after,
            self.seen.clone(),
        )
    }

    /// Notes that the log held (or gave out) `seq`.
    fn saw(&self, seq: u64) {
        self.seen.fetch_max(seq, Ordering::AcqRel);
    }

    /// The number the next append is numbered above, at least (see `seen`).
    fn numbering_floor(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// Copies the log's entries the local archive index lacks into it.
    fn catch_up(&self) -> Result<(), StoreError> {
        let _catching_up = self
            .catching_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.catch_up_from()
    }

    /// [`catch_up`](Self::catch_up) for a query: waits at most [`CATCH_UP_WAIT`] for another
    /// query's catch-up, and not at all within [`CATCH_UP_PAUSE`] of a failed one. With Redis
    /// unreachable a catch-up takes its connection timeouts (seconds); one query pays them,
    /// the others use the index as it is meanwhile instead of queueing behind it. True when
    /// the index was caught up now.
    fn catch_up_for_query(&self) -> Result<bool, StoreError> {
        let failed = self.catch_up_failed.lock().map_or(None, |at| *at);
        if failed.is_some_and(|at| at.elapsed() < CATCH_UP_PAUSE) {
            return Ok(false);
        }
        let deadline = std::time::Instant::now() + CATCH_UP_WAIT;
        let _catching_up = loop {
            match self.catching_up.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => break poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        let caught_up = self.catch_up_from();
        if let Ok(mut at) = self.catch_up_failed.lock() {
            *at = match &caught_up {
                Err(err) if err.is_transient() => Some(std::time::Instant::now()),
                _ => None,
            };
        }
        caught_up.map(|()| true)
    }

    /// Whether the index, not caught up now, still holds every entry `query` could return
    /// up to the last number this instance has seen (for a page below a cursor, up to the
    /// cursor): otherwise the page would silently lack alerts (a subscriber told to recover
    /// from the archive after a `reset` would think it had them all), and it is refused as
    /// [`StoreError::IndexBehind`] (503: retry).
    fn index_covers(&self, query: &ArchiveQuery) -> Result<(), StoreError> {
        let seen = self.numbering_floor();
        let needed = query
            .cursor
            .map_or(seen, |cursor| cursor.seq().saturating_sub(1).min(seen));
        let indexed = self.indexed.load(Ordering::Acquire);
        if indexed >= needed {
            Ok(())
        } else {
            Err(StoreError::IndexBehind { indexed, needed })
        }
    }

    /// Catches the index up from the last number examined (the caller holds
    /// `catching_up`).
    fn catch_up_from(&self) -> Result<(), StoreError> {
        let mut after = self
            .mirror
            .last_seq()?
            .max(self.indexed.load(Ordering::Acquire));
        self.indexed.fetch_max(after, Ordering::AcqRel);
        loop {
            let batch = self.entries_after(after, MAX_PAGE)?;
            let Some(last) = batch.last() else {
                return Ok(());
            };
            // Past unreadable entries too: they are skipped, not waited for (nor read again).
            after = last.seq;
            self.saw(after);
            let readable: Vec<Entry> = batch.into_iter().filter_map(Slot::readable).collect();
            if !readable.is_empty() {
                self.mirror
                    .insert_numbered(readable.iter().map(|e| (&e.alert, e.raw.as_str())))?;
            }
            // Only once the batch is in the index: a query that finds the index behind relies
            // on this number.
            self.indexed.fetch_max(after, Ordering::AcqRel);
        }
    }

    fn entries_after(&self, after: u64, limit: usize) -> Result<Vec<Slot>, StoreError> {
        let start = entry_id(after.saturating_add(1));
        let reply: Value = self.with_conn(|c| {
            Ok(redis::cmd("XRANGE")
                .arg(&self.keys.log)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(limit)
                .query(c)?)
        })?;
        let mut slots = redis_log::entries(reply)?;
        for slot in &mut slots {
            if let Ok(entry) = &mut slot.entry {
                self.complete_targets(entry)?;
            }
        }
        Ok(slots)
    }

    /// Entry `seq` as stored, without [`complete_targets`](Self::complete_targets).
    fn raw_get(&self, seq: u64) -> Result<Option<Entry>, StoreError> {
        self.with_conn(|c| redis_read::read_entry(c, &self.keys.log, seq))
    }

    /// Fills in the inherited targets of a record written before they were stored
    /// ([`redis_read::complete_targets`]).
    fn complete_targets(&self, entry: &mut Entry) -> Result<(), StoreError> {
        redis_read::complete_targets(entry, |seq| self.raw_get(seq))
    }

    /// Runs `f` on a pooled connection. A connection-level failure drops the connection and
    /// runs `f` once more on a fresh one: only for reads, which are safe to repeat.
    fn with_conn<T>(
        &self,
        f: impl Fn(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let mut conn = match self.take() {
                Ok(conn) => conn,
                Err(_) if !retried => {
                    retried = true;
                    continue;
                }
                Err(err) => return Err(err),
            };
            match f(&mut conn) {
                Ok(value) => {
                    self.give_back(conn);
                    return Ok(value);
                }
                Err(StoreError::Redis(err)) if err.is_unrecoverable_error() => {
                    if retried {
                        return Err(StoreError::Redis(err));
                    }
                    retried = true;
                    self.drop_pool();
                }
                Err(err) => {
                    self.give_back(conn);
                    return Err(err);
                }
            }
        }
    }

    /// Forgets every pooled connection: one failed at the connection level, so Redis likely
    /// restarted and the others are as stale; the retry then gets a fresh one.
    fn drop_pool(&self) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(conn) = pooled {
            return Ok(conn);
        }
        let conn = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < POOL {
            pool.push(conn);
        }
    }

    /// The region that owns `sender` (`{P}:alerts:senders`), if it is bound.
    fn sender_owner(&self, sender: &str) -> Result<Option<RegionCode>, StoreError> {
        let code: Option<u32> = self.with_conn(|c| {
            Ok(redis::cmd("HGET")
                .arg(&self.keys.senders)
                .arg(sender)
                .query(c)?)
        })?;
        owner_region(sender, code)
    }

    /// The owner of `sender` and the number stored under (`sender`, `identifier`), in one
    /// round trip. The identity is read first: the script records an identity and its
    /// sender's binding atomically, so an identity found comes with its binding, even if
    /// another client's script runs between the two reads.
    fn owner_and_seq(
        &self,
        sender: &str,
        identifier: &str,
    ) -> Result<(Option<RegionCode>, Option<u64>), StoreError> {
        let key = identity(sender, identifier);
        let (seq, code): (Option<u64>, Option<u32>) = self.with_conn(|c| {
            Ok(redis::pipe()
                .cmd("HGET")
                .arg(&self.keys.ids)
                .arg(&key)
                .cmd("HGET")
                .arg(&self.keys.senders)
                .arg(sender)
                .query(c)?)
        })?;
        Ok((owner_region(sender, code)?, seq))
    }

    fn seq_of(&self, sender: &str, identifier: &str) -> Result<Option<u64>, StoreError> {
        let key = identity(sender, identifier);
        self.with_conn(|c| Ok(redis::cmd("HGET").arg(&self.keys.ids).arg(&key).query(c)?))
    }

    /// The stored alerts `p.references` name ([`resolve_with`] on the shared log).
    fn resolve(&self, p: &Prepared, publisher: &Publisher<'_>) -> Result<Vec<Target>, StoreError> {
        resolve_with(p, publisher, |r| {
            match self.seq_of(&r.sender, &r.identifier)? {
                Some(seq) => self.get(seq),
                None => Ok(None),
            }
        })
    }
}

/// A sender's stored owner code as a region.
fn owner_region(sender: &str, code: Option<u32>) -> Result<Option<RegionCode>, StoreError> {
    match code.map(RegionCode::from_u32) {
        None => Ok(None),
        Some(Ok(region)) => Ok(Some(region)),
        Some(Err(err)) => Err(StoreError::Corrupt {
            seq: 0,
            reason: format!("sender {sender:?} is bound to an invalid region: {err}"),
        }),
    }
}

impl Store for RedisStore {
    fn append(
        &self,
        alert: &Alert,
        raw: &str,
        publisher: &Publisher<'_>,
        now_unix: i64,
    ) -> Result<Appended, StoreError> {
        let p = Prepared::new(alert, raw, publisher, now_unix, &self.config)?;
        // The owner and the identity in one round trip: the sender is checked first, as in
        // SQLite, for new alerts and re-posts alike (the script checks a new one again,
        // atomically).
        let (owner, known) = self.owner_and_seq(&p.sender, &p.identifier)?;
        senders::check(&p.sender, owner, publisher.region, publisher.rule)?;
        if let Some(existing) = known.map(|seq| self.get(seq)).transpose()?.flatten() {
            return p.same_as(existing);
        }
        let targets = self.resolve(&p, publisher)?;
        let key = identity(&p.sender, &p.identifier);
        let (owner, rule) = (
            publisher.region.as_u32().to_string(),
            publisher.rule.as_str(),
        );
        let (mut record, raw, _search) = build(p, 0, &targets)?;
        let rec = redis_log::encode(&record);
        let mut retried = false;
        let reply: Value = loop {
            let floor = self.numbering_floor();
            let mut conn = self.take()?;
            let result = self
                .script
                .key(&self.keys.log)
                .key(&self.keys.ids)
                .key(&self.keys.senders)
                .arg(&key)
                .arg(&rec)
                .arg(&raw)
                .arg(&record.sender)
                .arg(&owner)
                .arg(rule)
                .arg(floor)
                .invoke(&mut conn);
            match result {
                Ok(reply) => {
                    self.give_back(conn);
                    break reply;
                }
                // A stale pooled connection (Redis restarted) or a lost answer: whether the
                // script ran is told by the identity index, which it writes atomically with
                // the entry. Only if it did not run is it run again.
                Err(err) if err.is_unrecoverable_error() && !retried => {
                    retried = true;
                    self.drop_pool();
                    if let Some(found) = self.by_identifier(&record.sender, &record.identifier)? {
                        // Ours, or (rarely) another region's that bound the sender meanwhile.
                        let owner = self.sender_owner(&record.sender)?;
                        senders::check(&record.sender, owner, publisher.region, publisher.rule)?;
                        // Written by this very request (its answer was lost): created here.
                        let ours = found.publisher == record.publisher
                            && found.received_unix == record.received_unix;
                        let mut appended = existing_record(
                            &record.sender,
                            &record.identifier,
                            &record.xml,
                            found,
                        )?;
                        appended.created = ours;
                        return Ok(appended);
                    }
                }
                Err(err) => return Err(err.into()),
            }
        };
        let seq = match redis_log::script_answer(&reply)? {
            ScriptAnswer::Created(seq) => seq,
            ScriptAnswer::SenderTaken(owner) => {
                // Another region bound the sender between our check and the script.
                let sender = record.sender;
                return Err(StoreError::SenderTaken { sender, owner });
            }
            ScriptAnswer::Known(seq) => {
                // Another instance stored the same identity between our lookup and the script.
                let existing = self.get(seq)?.ok_or_else(|| StoreError::Corrupt {
                    seq,
                    reason: "the identity index names a missing log entry".to_owned(),
                })?;
                return existing_record(&record.sender, &record.identifier, &record.xml, existing);
            }
        };
        self.saw(seq);
        record.seq = seq;
        record.id = public_id(seq);
        Ok(Appended {
            seq,
            id: record.id.clone(),
            created: true,
            alert: record,
        })
    }

    /// The entry numbered `seq` in the log; a number the log lost after it went back (not
    /// above the numbering floor) that the archive index kept is the index's copy: the
    /// alert acknowledged and delivered under that number, listed by the archive too.
    fn get(&self, seq: u64) -> Result<Option<StoredAlert>, StoreError> {
        match self.log_get(seq)? {
            Some(alert) => Ok(Some(alert)),
            None if seq <= self.numbering_floor() => self.mirror.get(seq),
            None => Ok(None),
        }
    }

    fn by_identifier(
        &self,
        sender: &str,
        identifier: &str,
    ) -> Result<Option<StoredAlert>, StoreError> {
        match self.seq_of(sender, identifier)? {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }

    fn since(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        Ok(self.since_examined(after, limit)?.0)
    }

    fn since_examined(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredAlert>, u64), StoreError> {
        check_limit(limit)?;
        let slots = self.entries_after(after, limit)?;
        let examined = slots.last().map_or(after, |slot| slot.seq);
        self.saw(examined);
        let page = slots
            .into_iter()
            .filter_map(Slot::readable)
            .map(|e| e.alert)
            .collect();
        Ok((page, examined))
    }

    /// The log's last entry, or the numbering floor above it (numbers this instance saw
    /// given out before the log went back), like a restored SQLite store's floor.
    fn last_seq(&self) -> Result<u64, StoreError> {
        Ok(self.last_stored_seq()?.max(self.numbering_floor()))
    }

    fn last_stored_seq(&self) -> Result<u64, StoreError> {
        let reply: Value = self.with_conn(|c| {
            Ok(redis::cmd("XREVRANGE")
                .arg(&self.keys.log)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(c)?)
        })?;
        Ok(redis_log::entries(reply)?.pop().map_or(0, |slot| slot.seq))
    }

    /// Runs on the local index after catching it up; with Redis unreachable, on the index as
    /// it is (the archive stays readable, possibly a few alerts behind).
    fn query(&self, query: &ArchiveQuery) -> Result<Page, StoreError> {
        match self.catch_up_for_query() {
            Ok(true) => {}
            Ok(false) => self.index_covers(query)?,
            Err(err) if err.is_transient() => self.index_covers(query)?,
            Err(err) => return Err(err),
        }
        self.mirror.query(query)
    }
}

/// Removes a SQLite database and its log and shared-memory files (each if present).
pub fn remove_store_files(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
    }
    Ok(())
}
