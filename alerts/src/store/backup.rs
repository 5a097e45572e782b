//! Backups of the SQLite store. A copy is taken while the hub runs and writes: `VACUUM INTO`
//! reads the store in one read transaction, so the copy holds every alert committed before it
//! began and nothing half-written, whatever the writer does meanwhile (copying the file with
//! `cp` would miss what is still in the write-ahead log, or catch a page mid-write). The copy
//! is fsynced and then checked as a restore would check it: SQLite's integrity check, a
//! schema this build reads, and what it holds.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::schema::SCHEMA_VERSION;

/// What a store file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Alerts stored.
    pub alerts: u64,
    /// The highest sequence number (0 when empty).
    pub last_seq: u64,
    /// `PRAGMA user_version`.
    pub schema: i64,
}

/// How long the copy waits for a lock the writer holds (a checkpoint, a migration).
const BUSY: std::time::Duration = std::time::Duration::from_secs(10);

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY)?;
    Ok(conn)
}

/// Writes a consistent, compacted copy of the store at `db` to `to`, which must not exist
/// (SQLite refuses to write over a non-empty file), fsyncs it, and checks it ([`verify`]).
pub fn copy_to(db: &Path, to: &Path) -> Result<Snapshot, StoreError> {
    if !db.is_file() {
        return Err(StoreError::NotAStore(format!(
            "{} does not exist",
            db.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::NotAStore(format!("{} is not UTF-8", to.display())))?;
    let conn = open_read_only(db)?;
    // A store from a newer build would be copied fine, but this build could not check it.
    check_schema(&conn, db)?;
    conn.execute("VACUUM INTO ?1", [target])?;
    drop(conn);
    std::fs::File::open(to)?.sync_all()?;
    super::sync_dir_of(to)?;
    verify(to)
}

/// Moves everything in the write-ahead log of the store at `db` into the database file and
/// empties the log (`wal_checkpoint(TRUNCATE)`), so the file alone is the whole store. Fails
/// if another connection keeps the log busy.
pub fn checkpoint(db: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY)?;
    check_schema(&conn, db)?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    if busy != 0 {
        return Err(StoreError::NotAStore(format!(
            "{}: another connection keeps its write-ahead log busy",
            db.display()
        )));
    }
    Ok(())
}

/// The last number the store at `db` gave out (its highest alert's, or the numbering floor
/// of a store restored before), read without changing it.
pub fn last_number(db: &Path) -> Result<u64, StoreError> {
    let conn = open_read_only(db)?;
    let schema = check_schema(&conn, db)?;
    let sql = if schema >= 6 {
        super::schema::LAST_NUMBER
    } else {
        "SELECT COALESCE(MAX(seq), 0) FROM alerts"
    };
    let last: i64 = conn.query_row(sql, [], |r| r.get(0))?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// Checks a store file without changing it: SQLite's integrity check passes, its schema is
/// one this build reads, and it has the alerts table; returns what it holds.
pub fn verify(path: &Path) -> Result<Snapshot, StoreError> {
    if !path.is_file() {
        return Err(StoreError::NotAStore(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let conn = open_read_only(path)?;
    let schema = check_schema(&conn, path)?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(8)")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return Err(StoreError::NotAStore(format!(
            "{} fails SQLite's integrity check: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    let (alerts, last): (i64, Option<i64>) =
        conn.query_row("SELECT COUNT(*), MAX(seq) FROM alerts", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(Snapshot {
        alerts: u64::try_from(alerts).unwrap_or(0),
        last_seq: last.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        schema,
    })
}

/// The file's schema version, if it is an alert store this build reads.
fn check_schema(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let not_ours = |why: String| StoreError::NotAStore(format!("{}: {why}", path.display()));
    // "file is not a database" comes from the first read.
    let schema: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|err| not_ours(err.to_string()))?;
    if schema > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: schema,
            supported: SCHEMA_VERSION,
        });
    }
    let has_alerts: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alerts')",
        [],
        |row| row.get(0),
    )?;
    if schema == 0 || !has_alerts {
        return Err(not_ours("not a hubcast alert store".to_owned()));
    }
    Ok(schema)
}
