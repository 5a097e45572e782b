//! The SQLite schema, its migrations, and the connection settings durability rests on.
//!
//! # Tables (version 6)
//! ```text
//! alerts            seq INTEGER PRIMARY KEY        -- gap-free, assigned in append's transaction
//!                                                  -- (above `numbering.floor` too: a restore)
//!                   sender, identifier             -- UNIQUE: CAP's identity, idempotency key
//!                   sent_unix, expires_unix        -- times; index on sent_unix (archive range)
//!                   kind TEXT, severity INTEGER    -- hub vocabulary: 'food', rank 0..=4
//!                   msg_type, status TEXT          -- CAP spellings
//!                   regions, inherited_regions     -- comma-separated GB2260 codes (read back)
//!                   refs TEXT                      -- comma-separated referenced seqs
//!                   publisher, received_unix       -- audit
//!                   xml, json, raw TEXT            -- normalized XML, compact JSON, as received
//!                   inherited_targets TEXT         -- (v3) region:kind:severity, comma-separated
//! alert_targets     (seq, region, kind, rank) PK   -- (version 5) the reach: own areas x own
//!                   index (region, kind, rank)     -- kind/severity + inherited targets, as
//!                                                  -- live delivery matches (archive filters)
//! alert_references  (ref_seq, seq) PK              -- "what updated or cancelled #ref_seq"
//! alerts_fts        fts5(body, tokenize=trigram)   -- rowid = seq; the searchable text
//! senders           sender PK, region, since_seq   -- (version 2) who owns a CAP sender
//! numbering         id = 1, floor                  -- (version 6) numbers given out before a
//!                                                  -- restore: the next is above them
//! reindex           seq PK                         -- (version 4) searchable text to rebuild
//! ```
//! `STRICT` tables: a wrong type is an error, not a silent conversion.
//!
//! # Migrations
//! `PRAGMA user_version` is the schema version. [`migrate`] applies, in one transaction each,
//! every migration above the file's version; a file newer than this build is refused
//! ([`StoreError::SchemaTooNew`]) rather than written with an older idea of the schema. A new
//! version appends a statement to `MIGRATIONS`; shipped ones are never edited.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each alert whose publisher label (`role@region subject`, as the HTTP layer writes it)
/// names a region: (sender, region code, seq), oldest first. The first row per sender is the
/// region a sender stored before bindings existed belongs to: schema 2 binds it so, and the
/// Redis store does the same from its local index (`SqliteStore::first_labelled_senders`).
macro_rules! labelled_senders {
    () => {
        "SELECT sender, CAST(substr(publisher, instr(publisher, '@') + 1, 6) AS INTEGER), seq
        FROM alerts
        WHERE instr(publisher, '@') > 0
          AND substr(publisher, instr(publisher, '@') + 1, 6) GLOB '[1-9][0-9][0-9][0-9][0-9][0-9]'
        ORDER BY seq"
    };
}

/// [`labelled_senders!`] as a statement.
pub(super) const LABELLED_SENDERS: &str = labelled_senders!();

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the alert log, its indexes and the full-text table.
    "CREATE TABLE alerts (
        seq               INTEGER PRIMARY KEY,
        sender            TEXT NOT NULL,
        identifier        TEXT NOT NULL,
        sent_unix         INTEGER NOT NULL,
        expires_unix      INTEGER,
        kind              TEXT NOT NULL,
        severity          INTEGER NOT NULL,
        msg_type          TEXT NOT NULL,
        status            TEXT NOT NULL,
        regions           TEXT NOT NULL,
        inherited_regions TEXT NOT NULL,
        refs              TEXT NOT NULL,
        publisher         TEXT NOT NULL,
        received_unix     INTEGER NOT NULL,
        xml               TEXT NOT NULL,
        json              TEXT NOT NULL,
        raw               TEXT NOT NULL,
        UNIQUE (sender, identifier)
    ) STRICT;
    CREATE INDEX alerts_sent ON alerts (sent_unix);
    CREATE TABLE alert_regions (
        region INTEGER NOT NULL,
        seq    INTEGER NOT NULL REFERENCES alerts (seq),
        own    INTEGER NOT NULL,
        PRIMARY KEY (region, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE alert_references (
        ref_seq INTEGER NOT NULL REFERENCES alerts (seq),
        seq     INTEGER NOT NULL REFERENCES alerts (seq),
        PRIMARY KEY (ref_seq, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE VIRTUAL TABLE alerts_fts USING fts5 (body, tokenize = 'trigram');",
    // 2: each CAP sender's owning region (`senders.rs`). Senders already stored are bound to
    // the region of their first alert's publisher label, `role@region subject`; a label
    // without a region (written by hand, not by the HTTP layer) binds nothing.
    concat!(
        "CREATE TABLE senders (
        sender    TEXT PRIMARY KEY,
        region    INTEGER NOT NULL,
        since_seq INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT OR IGNORE INTO senders (sender, region, since_seq)
        ",
        labelled_senders!(),
        ";"
    ),
    // 3: the audience an alert inherits from its references (`region:kind:severity`, one per
    // region and kind, gravest severity), so live delivery routes an Update or Cancel without
    // reading its originals back. Stored alerts get it from their references' regions (own
    // and inherited) with each reference's kind and severity: exact for one level; for a
    // chain of updates it assumes each update kept its original's kind and severity (what
    // the hub assumed before). The two indexes by `seq` make the backfill linear (without
    // them it scans `alert_regions` per alert: minutes at 30k alerts) and go with it.
    "ALTER TABLE alerts ADD COLUMN inherited_targets TEXT NOT NULL DEFAULT '';
    CREATE INDEX migrate3_regions_seq ON alert_regions (seq);
    CREATE INDEX migrate3_references_seq ON alert_references (seq);
    UPDATE alerts SET inherited_targets = COALESCE((
        SELECT group_concat(region || ':' || kind || ':' || severity, ',') FROM (
            SELECT rg.region AS region, o.kind AS kind, MAX(o.severity) AS severity
            FROM alert_references ar
            JOIN alerts o ON o.seq = ar.ref_seq
            JOIN alert_regions rg ON rg.seq = o.seq
            WHERE ar.seq = alerts.seq
            GROUP BY rg.region, o.kind
            ORDER BY rg.region, o.kind)
    ), '')
    WHERE refs != '';
    DROP INDEX migrate3_regions_seq;
    DROP INDEX migrate3_references_seq;",
    // 4: the searchable text covers every spot-check field people look results up by (failed
    // items, notice number, institute, …: `append::search_text`). Stored alerts are queued
    // for [`reindex`], which rebuilds their text from their XML when the store opens.
    "CREATE TABLE reindex (seq INTEGER PRIMARY KEY) STRICT;
    INSERT INTO reindex (seq) SELECT seq FROM alerts;",
    // 5: each alert's reach as rows, (region, kind, rank) per target, exactly what live
    // delivery matches a subscriber against (own areas x own kind and severity, plus the
    // inherited targets), so the archive's region, kind and severity filters hold for one
    // and the same target. Filled from the own rows of `alert_regions` (the inherited ones
    // too for an alert routed by them: no areas, no inherited targets, as
    // `StoredAlert::routing_regions`) and the text of `inherited_targets`
    // (`region:kind:rank,...`, split by a recursive CTE); `alert_regions` is then gone (its
    // region search is the targets' now).
    "CREATE TABLE alert_targets (
        seq    INTEGER NOT NULL REFERENCES alerts (seq),
        region INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        rank   INTEGER NOT NULL,
        PRIMARY KEY (seq, region, kind, rank)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX alert_targets_region ON alert_targets (region, kind, rank);
    INSERT OR IGNORE INTO alert_targets (seq, region, kind, rank)
        SELECT a.seq, rg.region, a.kind, a.severity
        FROM alert_regions rg JOIN alerts a ON a.seq = rg.seq
        WHERE rg.own = 1 OR (a.regions = '' AND a.inherited_targets = '');
    WITH RECURSIVE split (seq, item, rest) AS (
        SELECT seq, '', inherited_targets || ',' FROM alerts WHERE inherited_targets != ''
        UNION ALL
        SELECT seq, substr(rest, 1, instr(rest, ',') - 1), substr(rest, instr(rest, ',') + 1)
        FROM split WHERE rest != ''
    ), parts (seq, region, tail) AS (
        SELECT seq, substr(item, 1, instr(item, ':') - 1), substr(item, instr(item, ':') + 1)
        FROM split WHERE item != ''
    )
    INSERT OR IGNORE INTO alert_targets (seq, region, kind, rank)
        SELECT seq, CAST(region AS INTEGER), substr(tail, 1, instr(tail, ':') - 1),
            CAST(substr(tail, instr(tail, ':') + 1) AS INTEGER)
        FROM parts;
    DROP TABLE alert_regions;",
    // 6: a numbering floor. A store restored from a backup has given out numbers above the
    // backup's last (to alerts the restore lost, which subscribers may hold as their `since`);
    // the restore records the replaced store's last number here, and the next alert is
    // numbered above it as well as above every stored alert, so no number is given out twice.
    "CREATE TABLE numbering (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        floor INTEGER NOT NULL
    ) STRICT;",
];

/// Alerts whose searchable text is rebuilt per transaction by [`reindex`].
const REINDEX_BATCH: usize = 500;

/// Rebuilds the searchable text of the alerts a migration queued in `reindex`, from their
/// stored XML, a batch per transaction (so a large archive does not hold one long write, and
/// an interrupted reindex resumes where it stopped). An alert whose XML no longer parses
/// keeps its text (logged). Returns how many were rebuilt.
pub(super) fn reindex(conn: &mut Connection) -> Result<usize, StoreError> {
    let mut rebuilt = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let batch: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT r.seq, a.xml FROM reindex r JOIN alerts a ON a.seq = r.seq
                 ORDER BY r.seq LIMIT ?1",
            )?;
            let rows = stmt.query_map([REINDEX_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        if batch.is_empty() {
            // Queued numbers without an alert (none are expected) are dropped too.
            tx.execute("DELETE FROM reindex", [])?;
            tx.commit()?;
            return Ok(rebuilt);
        }
        for (seq, xml) in &batch {
            // Stored XML was bounded when written (`StoredAlert::alert`): read it whole.
            let limit = xml.len().max(crate::cap::DEFAULT_MAX_SIZE);
            match crate::cap::read_xml(xml.as_bytes(), limit) {
                Ok(alert) => {
                    let body = super::append::search_text(&alert);
                    tx.execute("DELETE FROM alerts_fts WHERE rowid = ?1", [seq])?;
                    tx.execute(
                        "INSERT INTO alerts_fts (rowid, body) VALUES (?1, ?2)",
                        rusqlite::params![seq, body],
                    )?;
                    rebuilt += 1;
                }
                Err(err) => tracing::warn!(seq, %err, "stored alert not reindexed"),
            }
            tx.execute("DELETE FROM reindex WHERE seq = ?1", [seq])?;
        }
        tx.commit()?;
    }
}

/// The last number given out: the highest stored alert's, or the numbering floor a restore
/// set above it.
pub(super) const LAST_NUMBER: &str = "SELECT MAX(
        COALESCE((SELECT MAX(seq) FROM alerts), 0),
        COALESCE((SELECT floor FROM numbering WHERE id = 1), 0))";

/// Settings of every connection: wait up to `busy_timeout` for another writer's lock instead
/// of failing at once; check foreign keys.
pub(super) fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), StoreError> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Settings of the writer connection, on which acknowledged means durable:
/// - `journal_mode=WAL`: readers never block the writer nor see a half-written transaction;
///   persistent in the file.
/// - `synchronous=FULL`: the WAL is fsynced at every commit, so a commit that returned survives
///   power loss (WAL's default, `NORMAL`, may lose the last commits on power loss).
pub(super) fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NotWal(mode));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let level: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    if level < 2 {
        return Err(StoreError::NotWal(format!("wal with synchronous={level}")));
    }
    Ok(())
}

/// The file's schema version.
pub(super) fn version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Brings the schema up to [`SCHEMA_VERSION`]; each step is one transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read under the write lock: two processes opening a new file migrate it once.
        let found = version(&tx)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(step) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
            return Ok(()); // up to date (the transaction rolls back: nothing written)
        };
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_reach_the_current_version_once_and_refuse_newer_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.db");
        let mut conn = Connection::open(&path).expect("open");
        configure(&conn, Duration::from_secs(1)).expect("configure");
        configure_writer(&conn).expect("wal");
        assert_eq!(version(&conn).expect("version"), 0);
        migrate(&mut conn).expect("migrate");
        migrate(&mut conn).expect("idempotent");
        assert_eq!(version(&conn).expect("version"), SCHEMA_VERSION);
        let tokenized: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_list WHERE name = 'alerts_fts'",
                [],
                |r| r.get(0),
            )
            .expect("fts table");
        assert_eq!(tokenized, 1);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn an_in_memory_database_is_refused_for_lack_of_wal() {
        let conn = Connection::open_in_memory().expect("memory");
        assert!(matches!(
            configure_writer(&conn),
            Err(StoreError::NotWal(mode)) if mode == "memory"
        ));
    }
}
