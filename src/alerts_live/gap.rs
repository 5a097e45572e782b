//! Filling a gap in the hand-offs from the store, beside the hub task.
//!
//! Alerts reach the hub task in sequence order only if their hand-offs do; one that comes
//! early waits (`task::Pending`) for the numbers before it. After `task::GAP_WAIT` the
//! missing ones are read from the store ([`start`]) on a blocking thread, and the answer
//! comes back to the hub task as a message ([`apply`]): a store that hangs (Redis
//! unreachable, its 5 s timeouts) delays only the alerts behind the gap, never the hub
//! task's subscribes, refills, feeds and other hand-offs.

use std::collections::BTreeMap;
use std::sync::Arc;

use alerts::store::{MAX_PAGE, Store, StoredAlert};
use tokio::sync::mpsc;

use super::task::Pending;

/// A gap read's answer.
#[derive(Debug)]
pub(super) struct Read {
    /// What the read started after (the hub's last number, or the skipped mark, then).
    after: u64,
    /// The alerts found and the last number examined, or why the read failed.
    result: Result<(Vec<StoredAlert>, u64), String>,
}

/// Starts reading the alerts missing between `after` and the first pending one; the answer
/// is sent on `done`. False if nothing is pending.
pub(super) fn start(
    after: u64,
    store: &Arc<dyn Store>,
    pending: &BTreeMap<u64, Pending>,
    done: &mpsc::Sender<Read>,
) -> bool {
    let Some(&first) = pending.keys().next() else {
        return false;
    };
    let limit = usize::try_from(first.saturating_sub(after))
        .unwrap_or(MAX_PAGE)
        .clamp(1, MAX_PAGE);
    let (reader, done) = (store.clone(), done.clone());
    tokio::spawn(async move {
        let read = tokio::task::spawn_blocking(move || reader.since_examined(after, limit));
        let result = match read.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        // The hub task is gone (shutting down): nothing to fill.
        let _ = done.send(Read { after, result }).await;
    });
    true
}

/// Takes a read's answer: the missing alerts above the hub's `last` number join `pending`;
/// returns the new `skipped` mark. Numbers the store could not return although a later one
/// is committed are unreadable there (the store numbers without gaps and commits in order;
/// its readers skip an entry they cannot decode, logging it): they are skipped rather than
/// waited for forever.
pub(super) fn apply(
    read: Read,
    last: u64,
    pending: &mut BTreeMap<u64, Pending>,
    skipped: u64,
) -> u64 {
    let (found, examined) = match read.result {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(%err, "cannot fill a live hand-off gap");
            return skipped;
        }
    };
    // Hand-offs that arrived while the read ran may have moved the hub on.
    let after = read.after.max(last).max(skipped);
    tracing::warn!(
        after = read.after,
        count = found.len(),
        "live hand-off gap filled from the store"
    );
    for stored in found.into_iter().filter(|stored| stored.seq > after) {
        pending.entry(stored.seq).or_insert_with(|| {
            let alert = super::frame::for_live(stored.to_published());
            (alert, std::time::Instant::now())
        });
    }
    // Still missing and looked at: unreadable. Beyond what the read examined (a page full
    // of unreadable entries), the next fill looks on.
    match pending.keys().next() {
        Some(&next) if next > after.saturating_add(1) && examined > after => {
            let to = (next - 1).min(examined);
            tracing::error!(
                from = after + 1,
                to,
                "alerts unreadable in the store are skipped by live delivery"
            );
            to
        }
        _ => skipped,
    }
}
