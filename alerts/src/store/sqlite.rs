//! [`SqliteStore`]: the embedded backend. One file under the data dir; one writer connection
//! (appends serialize on it, and `BEGIN IMMEDIATE` serializes them with other processes) and a
//! few reader connections (WAL lets them read while the writer commits).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Row, params};
use tiers::{RegionCode, RegionTree};

use super::types::{MAX_PAGE, public_id};
use super::{Appended, ArchiveQuery, Page, Store, StoreError, StoredAlert};
use crate::cap::{Alert, DEFAULT_MAX_SIZE};
use crate::convert::parse_msg_type;
use crate::hub::{Inherited, Severity};

/// How much larger than the body it came in a stored document may be. Normalizing grows a
/// CAP document: every `&` in a JSON string becomes `&amp;` (5×), and most of all a list of
/// one-digit codes (`0,`, 2 bytes each) becomes indented `<code>0</code>` lines (17 bytes:
/// 8.5×); 9× holds any alert whose body was within the publish limit.
pub const DOCUMENT_GROWTH: usize = 9;

/// Tunables of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The regions the archive's region filter expands over (both ways, like the hub).
    /// Default: Zhejiang, the shipped tree.
    pub tree: RegionTree,
    /// Largest stored document (body as received, normalized XML, JSON), bytes. Default
    /// 2.25 MiB: [`DOCUMENT_GROWTH`]× the publish limit ([`DEFAULT_MAX_SIZE`]), since
    /// normalizing can grow a document; the bound protects the file, the publish limit the
    /// parser.
    pub max_document_bytes: usize,
    /// How long a statement waits for another connection's lock before failing. Default 5 s:
    /// far above one append's commit (one fsync), short enough to surface a stuck writer.
    pub busy_timeout: Duration,
    /// Reader connections (at least 1). Default 2, one per core of the reference machine;
    /// more readers than cores only queue in the kernel.
    pub readers: usize,
    /// Longest a read may run before SQLite interrupts it ([`StoreError::QueryTimeout`]).
    /// Default 5 s: an archive page takes milliseconds; only a query scanning every stored
    /// document (a one- or two-character term, no other filter, a large archive) comes near,
    /// and it must not hold one of the few readers for longer.
    pub query_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            tree: RegionTree::zhejiang(),
            max_document_bytes: DOCUMENT_GROWTH * DEFAULT_MAX_SIZE,
            busy_timeout: Duration::from_secs(5),
            readers: 2,
            query_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite [`Store`]. Cheap to share (`Arc`); every method is synchronous.
#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    /// Per reader: when its current read must stop, in nanoseconds since `epoch` (0: none).
    /// Its SQLite progress handler looks at it every [`PROGRESS_OPS`] VM instructions.
    deadlines: Vec<Arc<AtomicU64>>,
    epoch: Instant,
    next_reader: AtomicUsize,
    config: StoreConfig,
    path: PathBuf,
}

/// SQLite virtual-machine instructions between two looks at a reader's deadline. A look is a
/// clock read (~25 ns); the count is low because one instruction can be a `LIKE` over a whole
/// stored document.
const PROGRESS_OPS: i32 = 1_000;

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn nanos_since(epoch: Instant) -> u64 {
    nanos(epoch.elapsed())
}

/// A poisoned lock only means another thread panicked mid-call; SQLite rolled its open
/// transaction back when the guard's statement dropped, so the connection is still sound.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with the default [`StoreConfig`].
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, StoreConfig::default())
    }

    /// Opens (creating if needed) the store at `path`: creates the directory, sets WAL and
    /// `synchronous=FULL`, migrates the schema, opens the readers.
    pub fn open_with(
        path: impl AsRef<Path>,
        config: StoreConfig,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)?;
        }
        let created = !path.exists();
        let mut writer = Connection::open(&path)?;
        super::schema::configure(&writer, config.busy_timeout)?;
        super::schema::configure_writer(&writer)?;
        super::schema::migrate(&mut writer)?;
        let rebuilt = super::schema::reindex(&mut writer)?;
        if rebuilt > 0 {
            tracing::info!(rebuilt, path = %path.display(), "rebuilt the searchable text of stored alerts");
        }
        if created {
            // The new file's directory entry must be durable too.
            sync_dir_of(&path)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let epoch = Instant::now();
        let deadlines: Vec<Arc<AtomicU64>> = (0..config.readers.max(1))
            .map(|_| Arc::new(AtomicU64::new(0)))
            .collect();
        let readers = deadlines
            .iter()
            .map(|deadline| {
                let mut conn = Connection::open_with_flags(&path, flags)?;
                super::schema::configure(&conn, config.busy_timeout)?;
                let deadline = deadline.clone();
                conn.progress_handler(
                    PROGRESS_OPS,
                    Some(move || {
                        let at = deadline.load(Ordering::Relaxed);
                        at != 0 && nanos_since(epoch) > at
                    }),
                )?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers,
            deadlines,
            epoch,
            next_reader: AtomicUsize::new(0),
            config,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The body of alert `seq` exactly as it was received (audit).
    pub fn received_body(&self, seq: u64) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT raw FROM alerts WHERE seq = ?1")?;
            let mut rows = stmt.query(params![to_sql_seq(seq)])?;
            Ok(match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            })
        })
    }

    /// Numbers the next alert above `floor` as well as above every stored one (a restore:
    /// the store it replaced had given out numbers up to `floor`); a lower floor than the
    /// one set changes nothing. Durable when it returns.
    pub fn raise_numbering_floor(&self, floor: u64) -> Result<(), StoreError> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO numbering (id, floor) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET floor = MAX(floor, excluded.floor)",
            params![to_sql_seq(floor)],
        )?;
        Ok(())
    }

    /// Copies alerts numbered elsewhere (the shared Redis log), each with its received body,
    /// into this file in one transaction; one whose number is already here is skipped. The
    /// local archive index of a Redis-backed hub is filled this way, in sequence order.
    pub fn insert_numbered<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a StoredAlert, &'a str)>,
    ) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        super::append::insert_numbered(&mut conn, records)
    }

    /// Each sender with the region of its first alert (by number) whose publisher label names
    /// one, by the rule schema 2 applies ([`super::schema::LABELLED_SENDERS`]): how senders
    /// stored before bindings existed are bound.
    pub(super) fn first_labelled_senders(&self) -> Result<Vec<(String, RegionCode)>, StoreError> {
        let conn = lock(&self.writer);
        let mut stmt = conn.prepare(super::schema::LABELLED_SENDERS)?;
        let mut rows = stmt.query([])?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (sender, code): (String, u32) = (row.get(0)?, row.get(1)?);
            // A code the GLOB took but the region rules do not: bound to nothing, as a
            // reader of the senders table would refuse it.
            if let Ok(region) = RegionCode::from_u32(code)
                && seen.insert(sender.clone())
            {
                out.push((sender, region));
            }
        }
        Ok(out)
    }

    /// Runs `f` on a free reader connection (or waits for one, round robin).
    pub(super) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        let free = (0..n).find_map(|i| {
            let at = (start + i) % n;
            self.readers[at].try_lock().ok().map(|guard| (at, guard))
        });
        let (at, guard) = free.unwrap_or_else(|| (start % n, lock(&self.readers[start % n])));
        let limit = self.config.query_timeout;
        let deadline = nanos_since(self.epoch).saturating_add(nanos(limit)).max(1);
        self.deadlines[at].store(deadline, Ordering::Relaxed);
        let result = f(&guard);
        self.deadlines[at].store(0, Ordering::Relaxed);
        result.map_err(|err| match err {
            StoreError::Sqlite(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
            {
                StoreError::QueryTimeout(limit)
            }
            other => other,
        })
    }
}

impl Store for SqliteStore {
    fn append(
        &self,
        alert: &Alert,
        raw: &str,
        publisher: &super::Publisher<'_>,
        now_unix: i64,
    ) -> Result<Appended, StoreError> {
        let prepared = super::append::Prepared::new(alert, raw, publisher, now_unix, &self.config)?;
        let mut conn = lock(&self.writer);
        super::append::append(&mut conn, prepared, publisher)
    }

    fn get(&self, seq: u64) -> Result<Option<StoredAlert>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM alerts a WHERE a.seq = ?1");
        self.read(|conn| Ok(select(conn, &sql, params![to_sql_seq(seq)])?.pop()))
    }

    fn by_identifier(
        &self,
        sender: &str,
        identifier: &str,
    ) -> Result<Option<StoredAlert>, StoreError> {
        self.read(|conn| by_identity(conn, sender, identifier))
    }

    fn since(&self, after: u64, limit: usize) -> Result<Vec<StoredAlert>, StoreError> {
        check_limit(limit)?;
        let sql =
            format!("SELECT {COLUMNS} FROM alerts a WHERE a.seq > ?1 ORDER BY a.seq LIMIT ?2");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| select(conn, &sql, params![to_sql_seq(after), limit]))
    }

    fn last_stored_seq(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let last: i64 =
                conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM alerts", [], |r| r.get(0))?;
            Ok(u64::try_from(last).unwrap_or(0))
        })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let last: i64 = conn.query_row(super::schema::LAST_NUMBER, [], |r| r.get(0))?;
            Ok(u64::try_from(last).unwrap_or(0))
        })
    }

    fn query(&self, query: &ArchiveQuery) -> Result<Page, StoreError> {
        let plan = super::archive::plan(query, &self.config.tree)?;
        self.read(|conn| super::archive::run(conn, &plan))
    }
}

/// A page or batch size within `1..=MAX_PAGE`.
pub(super) fn check_limit(limit: usize) -> Result<(), StoreError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::BadLimit {
            limit,
            max: MAX_PAGE,
        })
    }
}

/// Sequence numbers are SQLite integers; one above `i64::MAX` cannot exist, so clamp (a
/// lookup then finds nothing, a `seq > after` finds nothing).
/// Makes the directory entry of `path` durable: fsyncs the directory that holds it (the
/// working directory for a bare file name).
pub fn sync_dir_of(path: &Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

pub(super) fn to_sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The columns `RawRow::read` expects, from table alias `a`.
pub(super) const COLUMNS: &str = "a.seq, a.sender, a.identifier, a.sent_unix, a.expires_unix, \
    a.kind, a.severity, a.msg_type, a.status, a.regions, a.inherited_regions, a.refs, \
    a.publisher, a.received_unix, a.xml, a.json, a.inherited_targets";

/// [`COLUMNS`] for an archive listing: the same row without the documents. `xml` is empty and
/// `json` keeps only what a listing shows (`sent` as written and the first info's
/// `headline`), so a page of up to 500 alerts never loads 500 whole documents (each up to
/// `max_document_bytes`).
pub(super) const LISTING_COLUMNS: &str = "a.seq, a.sender, a.identifier, a.sent_unix, \
    a.expires_unix, a.kind, a.severity, a.msg_type, a.status, a.regions, a.inherited_regions, \
    a.refs, a.publisher, a.received_unix, '' AS xml, \
    json_object('sent', json_extract(a.json, '$.sent'), 'info', \
    json_array(json_object('headline', json_extract(a.json, '$.info[0].headline')))) AS json, \
    a.inherited_targets";

/// Runs a `SELECT {COLUMNS} …` and converts every row.
pub(super) fn select(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, RawRow::read)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.convert()?);
    }
    Ok(out)
}

/// The alert stored under the CAP identity (`sender`, `identifier`).
pub(super) fn by_identity(
    conn: &Connection,
    sender: &str,
    identifier: &str,
) -> Result<Option<StoredAlert>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM alerts a WHERE a.sender = ?1 AND a.identifier = ?2");
    Ok(select(conn, &sql, params![sender, identifier])?.pop())
}

/// A row's columns as SQLite gave them; [`RawRow::convert`] checks and types them.
struct RawRow {
    seq: i64,
    sender: String,
    identifier: String,
    sent_unix: i64,
    expires_unix: Option<i64>,
    kind: String,
    severity: i64,
    msg_type: String,
    status: String,
    regions: String,
    inherited_regions: String,
    refs: String,
    publisher: String,
    received_unix: i64,
    xml: String,
    json: String,
    inherited_targets: String,
}

impl RawRow {
    fn read(row: &Row<'_>) -> rusqlite::Result<RawRow> {
        Ok(RawRow {
            seq: row.get(0)?,
            sender: row.get(1)?,
            identifier: row.get(2)?,
            sent_unix: row.get(3)?,
            expires_unix: row.get(4)?,
            kind: row.get(5)?,
            severity: row.get(6)?,
            msg_type: row.get(7)?,
            status: row.get(8)?,
            regions: row.get(9)?,
            inherited_regions: row.get(10)?,
            refs: row.get(11)?,
            publisher: row.get(12)?,
            received_unix: row.get(13)?,
            xml: row.get(14)?,
            json: row.get(15)?,
            inherited_targets: row.get(16)?,
        })
    }

    fn convert(self) -> Result<StoredAlert, StoreError> {
        let seq = u64::try_from(self.seq).unwrap_or(0);
        let corrupt = |reason: String| StoreError::Corrupt { seq, reason };
        let severity = severity_from_rank(self.severity)
            .ok_or_else(|| corrupt(format!("severity {}", self.severity)))?;
        Ok(StoredAlert {
            seq,
            id: public_id(seq),
            kind: self.kind.parse().map_err(|e| corrupt(format!("{e}")))?,
            severity,
            msg_type: parse_msg_type(&self.msg_type)
                .ok_or_else(|| corrupt(format!("msg_type {}", self.msg_type)))?,
            status: self.status.parse().map_err(|e| corrupt(format!("{e}")))?,
            regions: parse_list(&self.regions, RegionCode::parse).map_err(corrupt)?,
            inherited_regions: parse_list(&self.inherited_regions, RegionCode::parse)
                .map_err(corrupt)?,
            references: parse_list(&self.refs, str::parse::<u64>).map_err(corrupt)?,
            inherited_targets: parse_list(&self.inherited_targets, parse_inherited)
                .map_err(corrupt)?,
            sender: self.sender,
            identifier: self.identifier,
            sent_unix: self.sent_unix,
            expires_unix: self.expires_unix,
            publisher: self.publisher,
            received_unix: self.received_unix,
            xml: self.xml,
            json: self.json,
        })
    }
}

/// The severity stored as its rank (`Severity as u8`).
pub(super) fn severity_from_rank(rank: i64) -> Option<Severity> {
    Severity::ALL
        .into_iter()
        .find(|s| i64::from(*s as u8) == rank)
}

/// Reads a comma-separated list written by [`join_list`].
fn parse_list<T, E: std::fmt::Display>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|item| parse(item).map_err(|e| format!("list item `{item}`: {e}")))
        .collect()
}

/// One entry of the `inherited_targets` column: `region:kind:severity rank`
/// (`330100:food:3`).
pub(super) fn inherited_text(i: &Inherited) -> String {
    format!("{}:{}:{}", i.region, i.kind.as_str(), i.severity as u8)
}

/// Reads an entry written by [`inherited_text`].
fn parse_inherited(text: &str) -> Result<Inherited, String> {
    let mut parts = text.split(':');
    let (Some(region), Some(kind), Some(rank), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not region:kind:severity".to_owned());
    };
    let rank: i64 = rank.parse().map_err(|_| format!("severity {rank}"))?;
    Ok(Inherited {
        region: RegionCode::parse(region).map_err(|e| e.to_string())?,
        kind: kind
            .parse()
            .map_err(|e: crate::hub::UnknownName| e.to_string())?,
        severity: severity_from_rank(rank).ok_or_else(|| format!("severity {rank}"))?,
    })
}

/// Writes a list as the `regions`, `inherited_regions` and `refs` columns hold it.
pub(super) fn join_list<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
    parts.join(",")
}
