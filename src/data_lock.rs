//! One `hubcast serve` per data directory. Two on one directory (a manual start beside the
//! systemd unit on another port, a copied unit file) would both append to the one alert
//! store, but each would fan out only what it published itself: subscribers of one would
//! silently miss the other's alerts. So `serve` holds an exclusive lock on
//! `<data_dir>/hubcast.lock` (`flock`, released by the kernel when the process ends, however
//! it ends) and a second one does not start; the file names the holder's pid for the message.
//! Commands that only read the directory (`token`, `backup`) take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "hubcast.lock";

/// The held lock (released on drop, or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{dir} is in use by another hubcast (a serve, or a restore){holder}; one hub per data directory"
    )]
    InUse {
        /// The data directory.
        dir: String,
        /// ` (pid N)` when the file names it.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

impl DataDirLock {
    /// Takes the lock of `dir` (which exists), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        let created = !path.exists();
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let mut file = match opened {
            Ok(file) => file,
            // Made by another user (a restore run as root): a lock needs no write access.
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                File::open(&path).map_err(io)?
            }
            Err(err) => return Err(io(err)),
        };
        if created {
            give_to_dir_owner(&path, dir);
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text
                    .trim()
                    .parse::<u32>()
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                return Err(LockError::InUse {
                    dir: dir.display().to_string(),
                    holder,
                });
            }
            Err(TryLockError::Error(err)) => return Err(io(err)),
        }
        // Ours now: name the holder (best effort; the lock is what counts).
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DataDirLock { _file: file })
    }
}

/// Gives `path` to the owner of `dir` when they differ (a command run as root in the data
/// directory of a hub that runs as its own user: the hub must still write what it made). A
/// failure (not root) is left as is: the file then belongs to whoever made it.
pub fn give_to_dir_owner(path: &Path, dir: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(file), Ok(owner)) = (std::fs::metadata(path), std::fs::metadata(dir)) else {
        return;
    };
    if (file.uid(), file.gid()) != (owner.uid(), owner.gid())
        && let Err(err) = std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid()))
    {
        tracing::debug!(error = %err, path = %path.display(), "cannot give to the data dir's owner");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = DataDirLock::acquire(dir.path()).expect("first");
        let second = DataDirLock::acquire(dir.path()).expect_err("second");
        let said = second.to_string();
        assert!(said.contains("in use by another hubcast"), "{said}");
        assert!(
            said.contains(&format!("(pid {})", std::process::id())),
            "names the holder: {said}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again");
    }
}
