//! `hubcast backup`: a consistent copy of the alert store taken while the hub runs, and the
//! check of a copy (`--check`). The copy is written beside its destination under a temporary
//! name and renamed into place once it is complete, fsynced and checked, so a backup file that
//! exists is a whole one; an existing file is never overwritten. With the Redis backend the
//! shared log in Redis is the record (the local SQLite file is an index rebuilt from it), so
//! Redis is what to back up.

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
