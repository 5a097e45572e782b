//! Subscribes whose `since` is above the hub's last sequence number, held by the hub task
//! until its log catches up.
//!
//! With Redis several instances share one log, and the instance a client reconnects to may
//! trail the one it came from by a few entries (its tail has not read them yet). Such a
//! `since` is held until the hub's last number reaches it, then subscribed normally: no
//! spurious reset. One still ahead after [`AHEAD_WAIT`] names alerts this log does not have
//! (a store restored from a backup, a log that lost its newest entries, a bogus value), and
//! is subscribed anyway: the hub answers it with a reset and every retained alert
//! (`Hub::subscribe`).
//!
//! A single log can be behind too, for a moment: the hand-offs of concurrent publishes may
//! reach the hub task out of order, and a later number waits for the earlier one while its
//! publisher has already answered with it. A `since` up to the newest number waiting so is
//! held the same way.
//!
//! Bounded: at most [`MAX_PARKED`] wait; beyond, a subscribe is not held (it gets the reset
//! at once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use alerts::hub::Filter;

/// Longest a subscribe waits for the log to reach its `since` (the hub task's 1 s timer may
/// add up to a second). Longer than this instance's tail can trail the log while Redis is
/// healthy: after a Redis outage its reads resume within the tail's longest backoff (5 s)
/// plus one blocking read (0.5 s), while a client of an instance that published at once
/// may already have moved here. Waiting less, such a client would get a reset and the
/// retained alerts again, though the log has what it asked for. Only a `since` the log
/// never reaches (a restored store, a bogus value) waits this long.
pub(super) const AHEAD_WAIT: Duration = Duration::from_secs(8);
/// Most subscribes held at once.
pub(super) const MAX_PARKED: usize = 4096;

/// The reply channel of a subscribe.
pub(super) type Reply = tokio::sync::oneshot::Sender<
    Result<(alerts::hub::SubId, std::sync::Arc<super::Mailbox>), alerts::hub::HubError>,
>;

/// One held subscribe.
#[derive(Debug)]
pub(super) struct Parked {
    pub filter: Filter,
    pub since: u64,
    pub reply: Reply,
    until: Instant,
}

/// The held subscribes, oldest first.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    parked: VecDeque<Parked>,
}

/// A subscribe handed back: not to be held.
pub(super) type NotHeld = (Filter, Option<u64>, Reply);

impl Ahead {
    /// Holds a subscribe whose `since` is above `last_seq`, if `may_hold` (a log that has it,
    /// and a valid filter) and there is room; otherwise hands it back.
    pub(super) fn park(
        &mut self,
        filter: Filter,
        since: Option<u64>,
        reply: Reply,
        last_seq: u64,
        may_hold: bool,
        now: Instant,
    ) -> Result<(), NotHeld> {
        match since {
            Some(since) if may_hold && since > last_seq && self.parked.len() < MAX_PARKED => {
                self.parked.push_back(Parked {
                    filter,
                    since,
                    reply,
                    until: now + AHEAD_WAIT,
                });
                Ok(())
            }
            _ => Err((filter, since, reply)),
        }
    }

    /// Takes the subscribes that are due: the log reached their `since`, their wait is over,
    /// or their client gave up (its reply channel is closed). Held in arrival order, so those
    /// whose wait is over are at the front.
    pub(super) fn due(&mut self, last_seq: u64, now: Instant) -> Vec<Parked> {
        let mut due = Vec::new();
        while self.parked.front().is_some_and(|p| p.until <= now) {
            due.extend(self.parked.pop_front());
        }
        if self
            .parked
            .iter()
            .any(|p| p.since <= last_seq || p.reply.is_closed())
        {
            let (ready, wait): (VecDeque<Parked>, VecDeque<Parked>) =
                (self.parked.drain(..)).partition(|p| p.since <= last_seq || p.reply.is_closed());
            due.extend(ready);
            self.parked = wait;
        }
        due
    }

    /// Subscribes held now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiers::RegionCode;

    fn filter() -> Filter {
        Filter::all(RegionCode::from_u32(330_100).expect("code"))
    }

    #[test]
    fn held_until_the_log_reaches_since_or_the_wait_ends() {
        let mut ahead = Ahead::default();
        let t0 = Instant::now();
        let (tx, _rx1) = tokio::sync::oneshot::channel();
        assert!(
            ahead.park(filter(), Some(5), tx, 10, true, t0).is_err(),
            "not ahead"
        );
        let (tx, _rx2) = tokio::sync::oneshot::channel();
        assert!(
            ahead.park(filter(), None, tx, 10, true, t0).is_err(),
            "no since"
        );
        let (tx, _rx3) = tokio::sync::oneshot::channel();
        assert!(ahead.park(filter(), Some(12), tx, 10, true, t0).is_ok());
        let (tx, _rx4) = tokio::sync::oneshot::channel();
        assert!(ahead.park(filter(), Some(50), tx, 10, true, t0).is_ok());
        assert_eq!(ahead.len(), 2);
        assert!(ahead.due(11, t0).is_empty());
        let caught_up = ahead.due(12, t0);
        assert_eq!(caught_up.iter().map(|p| p.since).collect::<Vec<_>>(), [12]);
        assert!(ahead.due(12, t0 + AHEAD_WAIT / 2).is_empty());
        let expired = ahead.due(12, t0 + AHEAD_WAIT);
        assert_eq!(expired.iter().map(|p| p.since).collect::<Vec<_>>(), [50]);
        assert_eq!(ahead.len(), 0);
    }

    #[test]
    fn a_client_that_left_is_not_held_and_the_queue_is_bounded() {
        let mut ahead = Ahead::default();
        let t0 = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        assert!(ahead.park(filter(), Some(50), tx, 10, true, t0).is_ok());
        drop(rx);
        assert_eq!(ahead.due(10, t0).len(), 1, "its reply channel closed");
        let mut receivers = Vec::new();
        for _ in 0..MAX_PARKED {
            let (tx, rx) = tokio::sync::oneshot::channel();
            receivers.push(rx);
            assert!(ahead.park(filter(), Some(50), tx, 10, true, t0).is_ok());
        }
        let (tx, _rx) = tokio::sync::oneshot::channel();
        assert!(
            ahead.park(filter(), Some(50), tx, 10, true, t0).is_err(),
            "a full queue does not hold more"
        );
    }
}
