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
    remove_if_there(&partial)?;
    let snapshot = match alerts::store::copy_to(&db, &partial) {
        Ok(snapshot) => snapshot,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err).with_context(|| format!("backing up {}", db.display()));
        }
    };
    // A link, not a rename: it fails rather than replace a file that appeared meanwhile. A
    // file system without hard links (vfat, some network and USB mounts: common backup
    // targets) is renamed into place, after the check above that `to` does not exist.
    let placed = match std::fs::hard_link(&partial, to) {
        Ok(()) => {
            // The whole backup is in place: a copy left aside is litter, not a failure.
            if let Err(err) = std::fs::remove_file(&partial) {
                eprintln!(
                    "hubcast backup: warning: {} stays: {err}",
                    partial.display()
                );
            }
            Ok(())
        }
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::Unsupported
            ) =>
        {
            std::fs::rename(&partial, to)
        }
        Err(err) => Err(err),
    };
    if let Err(err) = placed {
        let _ = std::fs::remove_file(&partial);
        return Err(err)
            .with_context(|| format!("placing {} as {}", partial.display(), to.display()));
    }
    alerts::store::sync_dir_of(to)
        .with_context(|| format!("syncing the folder of {}", to.display()))?;
    Ok(format!(
        "backed up {} to {} ({})",
        db.display(),
        to.display(),
        holds(&snapshot)
    ))
}

/// Puts the backup `from` in place of the store; `floor`: the last number the replaced store
/// gave out when it is lost or unreadable (else read from it). Returns the line to print.
///
/// Order, so that a failure or a crash at any step leaves a whole store in place (the old
/// one until the last step, then the new one with its floor): the old store is checkpointed
/// (its file alone is then all of it) and its last number read; the new store is built
/// beside it (`.partial`: copied through SQLite, so a backup's own write-ahead log counts,
/// migrated, its floor raised, closed, fsynced); the old store's files are kept by hard links
/// under a new name; its log files are removed; the new store is renamed over the old one.
pub fn restore(settings: &Settings, from: &Path, floor: Option<u64>) -> anyhow::Result<String> {
    let db = store_path(settings)?;
    if db.exists() && from.canonicalize().ok() == db.canonicalize().ok() {
        anyhow::bail!(
            "{} is the store itself; restore from a backup",
            from.display()
        );
    }
    let snapshot =
        alerts::store::verify(from).with_context(|| format!("checking {}", from.display()))?;
    // A new host has no data directory yet.
    settings.prepare_data_dir()?;
    let _lock = crate::data_lock::DataDirLock::acquire(&settings.data_dir)
        .context("stop the hub before restoring its store")?;
    let (wal, shm, journal) = (
        sidecar(&db, "-wal"),
        sidecar(&db, "-shm"),
        sidecar(&db, "-journal"),
    );
    let dir_sync = || {
        alerts::store::sync_dir_of(&db)
            .with_context(|| format!("syncing {}", settings.data_dir.display()))
    };

    // What the replaced store gave out (read through its log). Readable, it is then
    // checkpointed so that its file alone is all of it; a checkpoint another process keeps
    // busy (a backup running, an `sqlite3` shell) is an error to retry, never a reason to
    // take --floor over the number read.
    let old_last = if db.exists() {
        match alerts::store::last_number(&db) {
            Ok(last) => {
                alerts::store::checkpoint(&db).with_context(|| {
                    format!(
                        "moving the log of {} into it (another process may be reading it: \
                         retry when it is done)",
                        db.display()
                    )
                })?;
                Some(last)
            }
            Err(err) if floor.is_some() => {
                eprintln!(
                    "hubcast: warning: {} is unreadable ({err}); it is kept as it is, and the \
                     next number follows --floor",
                    db.display()
                );
                None
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "reading the last number {} gave out (if it is damaged, give --floor: \
                         the last number it gave out, e.g. a subscriber's last id)",
                        db.display()
                    )
                });
            }
        }
    } else {
        None
    };
    // The backup's own last number: its highest alert, or the floor of a store restored
    // before it was taken.
    let backup_last = alerts::store::last_number(from)?;
    let given_out = floor.unwrap_or(0).max(old_last.unwrap_or(0));

    // The new store, whole, beside the old one.
    let partial = sidecar(&db, ".partial");
    alerts::store::remove_store_files(&partial)?;
    alerts::store::copy_to(from, &partial)
        .with_context(|| format!("copying {}", from.display()))?;
    {
        // Opening migrates an older backup's schema.
        let store = alerts::store::SqliteStore::open(&partial)
            .with_context(|| format!("opening {}", partial.display()))?;
        if given_out > backup_last {
            store.raise_numbering_floor(given_out)?;
        }
    }
    // Everything into the file itself, checked: nothing of it may stay in a `-wal` that the
    // rename below would leave behind.
    alerts::store::checkpoint(&partial)
        .with_context(|| format!("moving the log of {} into it", partial.display()))?;
    if std::fs::metadata(sidecar(&partial, "-wal")).is_ok_and(|m| m.len() > 0) {
        anyhow::bail!(
            "{} still has a write-ahead log; nothing was replaced",
            partial.display()
        );
    }
    crate::data_lock::give_to_dir_owner(&partial, &settings.data_dir);
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;

    // Keep the old store's files under a new name, then clear its log files away: none may
    // be beside the new store (SQLite would apply them to it).
    let kept = if db.exists() || wal.exists() || journal.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let kept = sidecar(&db, &format!(".replaced-{stamp}-{}", std::process::id()));
        for (file, suffix) in [(&db, ""), (&wal, "-wal"), (&journal, "-journal")] {
            if file.exists() {
                let to = sidecar(&kept, suffix);
                std::fs::hard_link(file, &to)
                    .with_context(|| format!("keeping {} as {}", file.display(), to.display()))?;
            }
        }
        Some(kept)
    } else {
        None
    };
    for stale in [&wal, &shm, &journal] {
        remove_if_there(stale)?;
    }
    dir_sync()?;

    std::fs::rename(&partial, &db).with_context(|| format!("renaming into {}", db.display()))?;
    dir_sync()?;

    let next = given_out.max(backup_last) + 1;
    let mut line = format!(
        "restored {} from {} ({}); the next alert is numbered {next}",
        db.display(),
        from.display(),
        holds(&snapshot)
    );
    if let Some(kept) = kept {
        line.push_str(&format!(
            "; the store it replaced is kept as {}",
            kept.display()
        ));
    }
    if old_last.is_none() && floor.is_none() {
        eprintln!(
            "hubcast: warning: no store was there to read its last number from: numbers above \
             {backup_last} may be given out again to different alerts; give --floor N (the last \
             number the lost store gave out) if it numbered more"
        );
    }
    Ok(line)
}

/// `path` with `suffix` appended to its file name.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes `path` if it is there.
fn remove_if_there(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
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
