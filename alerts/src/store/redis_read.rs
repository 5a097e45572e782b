//! Reading the shared Redis log: one entry by number, the completion of records written
//! before inherited targets were stored, and [`LogTail`], which follows the log on its own
//! connection (`XREAD BLOCK` holds it).
//!
//! Every reader completes such a record the same way (the store's `get` and `since`, the
//! archive index's catch-up, and the tail that feeds live delivery), so an alert reaches the
//! same audience whichever way it was read, also while an older instance still writes
//! records without targets during a rolling upgrade.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::{Client, Connection, Value};

use super::redis::IO_TIMEOUT;
use super::redis_log::{self, Entry, Slot, entry_id};
use super::{StoreError, StoredAlert};
use crate::hub::Inherited;

/// Entry `seq` of `log` as stored; an unreadable entry is an error here (someone asked for
/// that number), not a skip.
pub(super) fn read_entry(
    conn: &mut Connection,
    log: &str,
    seq: u64,
) -> Result<Option<Entry>, StoreError> {
    if seq == 0 {
        return Ok(None);
    }
    let id = entry_id(seq);
    let reply: Value = redis::cmd("XRANGE")
        .arg(log)
        .arg(&id)
        .arg(&id)
        .query(conn)?;
    redis_log::entries(reply)?
        .pop()
        .map(|slot| slot.entry)
        .transpose()
}

/// Fills in the inherited targets of a record written before they were stored: each
/// referenced alert's reach (`StoredAlert::reach`), or for a referenced alert written
/// before them too, its regions (own and inherited) with its kind and severity, as SQLite's
/// schema 3 backfill does. `read` reads an entry by number as stored; one read per
/// reference, only for such records.
pub(super) fn complete_targets(
    entry: &mut Entry,
    mut read: impl FnMut(u64) -> Result<Option<Entry>, StoreError>,
) -> Result<(), StoreError> {
    if !entry.targets_missing {
        return Ok(());
    }
    let mut targets = Vec::new();
    for &seq in &entry.alert.references {
        // An unreadable original contributes nothing (logged): like a reader skipping an
        // unreadable entry, it must not make every read of this record fail. The record is
        // then routed by its inherited regions (`to_published_with`).
        let original = match read(seq) {
            Ok(Some(original)) => original,
            Ok(None) => continue,
            Err(err @ StoreError::Corrupt { .. }) => {
                tracing::warn!(%err, seq = entry.alert.seq, "an original of a record is unreadable");
                continue;
            }
            Err(err) => return Err(err),
        };
        let o = original.alert;
        if original.targets_missing {
            // An old original too: its own and inherited regions, with its kind and severity
            // (what SQLite's backfill assumes for a chain of updates).
            let regions = o.regions.iter().chain(&o.inherited_regions);
            targets.extend(regions.map(|&region| Inherited {
                region,
                kind: o.kind,
                severity: o.severity,
            }));
        } else {
            // Its reach as a new record states it, grandparents' kinds and severities kept.
            targets.extend(o.reach());
        }
    }
    entry.alert.inherited_targets = Inherited::reduce(targets);
    entry.targets_missing = false;
    Ok(())
}

/// Follows the shared log: [`LogTail::next`] blocks until entries after the last one seen
/// arrive (or the block time passes). Reconnects on the next call after a failure.
pub struct LogTail {
    client: Client,
    log: String,
    conn: Option<Connection>,
    after: u64,
    /// The store's highest number seen (`RedisStore::seen`), raised by what this tail reads.
    seen: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTail")
            .field("log", &self.log)
            .field("after", &self.after)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl LogTail {
    /// A tail of `log` from after `after`; it connects on the first [`LogTail::next`].
    pub(super) fn new(client: Client, log: String, after: u64, seen: Arc<AtomicU64>) -> Self {
        LogTail {
            client,
            log,
            conn: None,
            after,
            seen,
        }
    }

    /// Up to `count` alerts after the last one returned, waiting up to `block` for one. A
    /// failure (the read, or completing a record's targets) drops the connection and leaves
    /// the position where it was, so the next call reads the same entries again.
    pub fn next(&mut self, block: Duration, count: usize) -> Result<Vec<StoredAlert>, StoreError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
                conn.set_read_timeout(Some(block + IO_TIMEOUT))?;
                conn.set_write_timeout(Some(IO_TIMEOUT))?;
                self.conn.insert(conn)
            }
        };
        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
        let result: Result<Value, redis::RedisError> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.log)
            .arg(entry_id(self.after))
            .query(conn);
        let read = result.map_err(StoreError::from).and_then(|reply| {
            let mut slots = redis_log::read_reply(reply)?;
            for slot in &mut slots {
                if let Ok(entry) = &mut slot.entry {
                    complete_targets(entry, |seq| read_entry(conn, &self.log, seq))?;
                }
            }
            Ok(slots)
        });
        let slots = match read {
            Ok(slots) => slots,
            Err(err) => {
                self.conn = None;
                return Err(err);
            }
        };
        let last = slots.last().map(|slot| slot.seq);
        let alerts: Vec<StoredAlert> = slots
            .into_iter()
            .filter(|slot| slot.seq > self.after)
            .filter_map(Slot::readable)
            .map(|e| e.alert)
            .collect();
        // Past unreadable entries too, or the next read would return them again at once.
        if let Some(last) = last {
            self.after = self.after.max(last);
            self.seen.fetch_max(last, Ordering::AcqRel);
        }
        Ok(alerts)
    }

    /// The last sequence number returned (or the start point).
    pub fn position(&self) -> u64 {
        self.after
    }
}
