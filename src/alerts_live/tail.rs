//! The Redis backend's follower: one thread tails the shared alert log and hands every alert
//! (whichever instance acknowledged it) to this instance's [`LiveHub`](super::LiveHub).
//!
//! # Order and completeness
//! The log is read strictly in sequence order from the number the live hub was rebuilt at,
//! so nothing published by any instance is skipped. Alerts this instance published itself
//! arrive twice (the HTTP hand-off and the tail); the hub task keeps the first (it drops
//! numbers it already has). After a Redis failure the thread reconnects with a backoff
//! (100 ms doubling to 5 s) and resumes from the last number it handed over; the live hub's
//! gap filler (`GAP_WAIT`) covers the time in between for local publishes. An entry no
//! instance can decode is skipped (logged as an error) and the tail moves past its number;
//! the hub task's gap filler then learns the number is unreadable and stops waiting for it.
//!
//! # Stopping
//! The thread ends when the live hub is gone (its channel closed) or `stop` is set; it checks
//! between reads, which block for at most [`BLOCK`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use alerts::store::{MAX_PAGE, RedisStore};

use super::LiveHub;

/// Longest wait of one `XREAD BLOCK`: bounds how long a stop takes to be seen.
const BLOCK: Duration = Duration::from_millis(500);
/// Backoff after a failed read, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running follower.
#[derive(Debug)]
pub struct Tail {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tail {
    /// Starts following `store`'s log after sequence number `after`, feeding `live`.
    pub fn start(store: &RedisStore, after: u64, live: LiveHub) -> std::io::Result<Tail> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tail = store.tail(after);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("alerts-tail".to_owned())
            .spawn(move || {
                let mut backoff = FIRST_BACKOFF;
                let mut failing = false;
                while !flag.load(Ordering::Relaxed) {
                    match tail.next(BLOCK, MAX_PAGE) {
                        Ok(alerts) => {
                            if failing {
                                tracing::info!(after = tail.position(), "alert log tail resumed");
                                failing = false;
                            }
                            backoff = FIRST_BACKOFF;
                            for stored in alerts {
                                if !live.hand_off_blocking(stored.to_published()) {
                                    return;
                                }
                            }
                        }
                        Err(err) => {
                            if !failing {
                                tracing::warn!(%err, after = tail.position(),
                                    "alert log tail failed; retrying");
                                failing = true;
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            })?;
        Ok(Tail {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Not joined: a read in progress may block for up to `BLOCK`; the thread sees the
        // flag (or the closed hub) right after.
        drop(self.thread.take());
    }
}
