//! `hubcast backup`: a consistent copy of the alert store taken while the hub runs, and the
//! check of a copy (`--check`). The copy is written beside its destination under a temporary
//! name and renamed into place once it is complete, fsynced and checked, so a backup file that
//! exists is a whole one; an existing file is never overwritten. With the Redis backend the
//! shared log in Redis is the record (the local SQLite file is an index rebuilt from it), so
//! Redis is what to back up.
//!
//! `hubcast restore`: puts a checked backup in place of the store of a stopped hub (it takes
//! the data directory's lock, so not while one runs). The replaced store is kept beside it,
//! not deleted. Alerts the replaced store numbered after the backup are gone with the
//! restore, but their numbers stay given out: the restored store numbers the next alert
//! above them (its numbering floor), so a subscriber that saw one of them is not handed a
//! different alert under the same number, nor skips the new ones.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{AlertsBackend, Settings};

/// One line saying what `snapshot` holds.
fn holds(snapshot: &alerts::store::Snapshot) -> String {
    match snapshot.alerts {
        0 => "no alerts".to_owned(),
        n => format!("{n} alerts, numbered up to {}", snapshot.last_seq),
    }
}

/// The store file of `settings` (the SQLite backend's).
fn store_path(settings: &Settings) -> anyhow::Result<PathBuf> {
    if settings.alerts.backend == AlertsBackend::Redis {
        anyhow::bail!(
            "alerts.backend is redis: the shared log in Redis is the record (the local \
             alerts-redis-index.sqlite3 is rebuilt from it); back up Redis itself (its AOF, \
             or BGSAVE and its RDB file)"
        );
    }
    Ok(settings.data_dir.join("alerts.sqlite3"))
}

/// Copies the store to `to` (a new file); returns the line to print.
pub fn backup(settings: &Settings, to: &Path) -> anyhow::Result<String> {
    let db = store_path(settings)?;
    if to.exists() {
        anyhow::bail!("{} exists; a backup goes to a new file", to.display());
    }
    let name = to
        .file_name()
        .with_context(|| format!("{} names no file", to.display()))?;
    let mut partial = name.to_owned();
    partial.push(".partial");
    let partial = to.with_file_name(partial);
    // What a backup interrupted before left behind.
    match std::fs::remove_file(&partial) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing {}", partial.display()));
        }
        _ => {}
    }
    let snapshot = match alerts::store::copy_to(&db, &partial) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err).with_context(|| format!("backing up {}", db.display()));
        }
    };
    std::fs::rename(&partial, to)
        .with_context(|| format!("renaming {} to {}", partial.display(), to.display()))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(format!(
        "backed up {} to {} ({})",
        db.display(),
        to.display(),
        holds(&snapshot)
    ))
}

/// Puts the backup `from` in place of the store; `floor`: the last number the replaced store
/// gave out when it is lost or unreadable (else read from it). Returns the line to print.
pub fn restore(settings: &Settings, from: &Path, floor: Option<u64>) -> anyhow::Result<String> {
    let db = store_path(settings)?;
    if from.canonicalize().ok() == db.canonicalize().ok() && db.exists() {
        anyhow::bail!(
            "{} is the store itself; restore from a backup",
            from.display()
        );
    }
    let snapshot =
        alerts::store::verify(from).with_context(|| format!("checking {}", from.display()))?;
    let _lock = crate::data_lock::DataDirLock::acquire(&settings.data_dir)
        .context("stop the hub before restoring its store")?;
    let replaced = if db.exists() {
        let last = match alerts::store::last_number(&db) {
            Ok(last) => last,
            Err(err) if floor.is_some() => {
                tracing::debug!(%err, "the replaced store is unreadable; --floor is used");
                0
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "reading the last number of {} (unreadable: give --floor, the last                          number it gave out, e.g. a subscriber's last id)",
                        db.display()
                    )
                });
            }
        };
        Some((keep_aside(&db)?, last))
    } else {
        None
    };
    let given_out = floor
        .unwrap_or(0)
        .max(replaced.as_ref().map_or(0, |(_, last)| *last));
    let mut partial = db.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::copy(from, &partial).with_context(|| format!("copying {}", from.display()))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, &db).with_context(|| format!("renaming into {}", db.display()))?;
    std::fs::File::open(&settings.data_dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", settings.data_dir.display()))?;
    // Opening migrates an older backup's schema; the floor is then set in the restored store.
    let store = alerts::store::SqliteStore::open(&db)
        .with_context(|| format!("opening the restored {}", db.display()))?;
    if given_out > snapshot.last_seq {
        store.raise_numbering_floor(given_out)?;
    }
    drop(store);
    let next = given_out.max(snapshot.last_seq) + 1;
    let kept = match &replaced {
        Some((kept, _)) => format!("; the store it replaced is kept as {}", kept.display()),
        None => String::new(),
    };
    Ok(format!(
        "restored {} from {} ({}); the next alert is numbered {next}{kept}",
        db.display(),
        from.display(),
        holds(&snapshot)
    ))
}

/// Renames the store `db` and its write-ahead log aside (together they stay a whole
/// database); returns the new name of the store.
fn keep_aside(db: &Path) -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut kept = db.as_os_str().to_owned();
    kept.push(format!(".replaced-{stamp}"));
    let kept = PathBuf::from(kept);
    let with = |path: &Path, suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    for suffix in ["-wal", ""] {
        let from = with(db, suffix);
        if from.exists() {
            let to = with(&kept, suffix);
            std::fs::rename(&from, &to)
                .with_context(|| format!("keeping {} as {}", from.display(), to.display()))?;
        }
    }
    // The shared-memory index is rebuilt from the log by whoever opens it next.
    let _ = std::fs::remove_file(with(db, "-shm"));
    Ok(kept)
}

/// Checks a backup (or any store file); returns the line to print.
pub fn check(file: &Path) -> anyhow::Result<String> {
    let snapshot = alerts::store::verify(file)?;
    Ok(format!(
        "{}: a whole alert store, schema {} ({})",
        file.display(),
        snapshot.schema,
        holds(&snapshot)
    ))
}
