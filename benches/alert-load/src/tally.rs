//! A worker's accounting: which broadcasts each of its subscribers received, when (the first
//! and last `CLOCK_MONOTONIC` stamp), and the moment every live subscriber has one, which is
//! when the worker tells the parent (`got`). A subscriber whose connection ends stops being
//! waited for (`closed`), so one lost connection cannot stall the run. Also the cheap reading
//! of an alert frame's `seq` (no JSON parse per delivery).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::procs::mono_ns;
use crate::proto::{Report, Tally};

/// Broadcasts remembered for `query` (older ones are forgotten).
const REMEMBERED: usize = 256;

/// The `seq` of an alert frame `{"type":"alert","seq":N,…}`; `None` for other frames.
pub fn alert_seq(text: &str) -> Option<u64> {
    let rest = match text.strip_prefix(r#"{"type":"alert","seq":"#) {
        Some(rest) => rest,
        // Tolerate another key order.
        None if text.contains(r#""type":"alert""#) => {
            let at = text.find(r#""seq":"#)?;
            text.get(at + 6..)?
        }
        None => return None,
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// What the worker knows; one lock, taken once per delivery.
#[derive(Debug)]
pub struct State {
    total: usize,
    connected: usize,
    failed: usize,
    alive: usize,
    ready: bool,
    closed: usize,
    /// Per broadcast: deliveries and whether `got` was sent.
    seqs: BTreeMap<u64, (Tally, bool)>,
    out: mpsc::UnboundedSender<Report>,
}

impl State {
    /// A worker about to open `total` subscribers, reporting on `out`.
    pub fn new(total: usize, out: mpsc::UnboundedSender<Report>) -> State {
        let mut state = State {
            total,
            connected: 0,
            failed: 0,
            alive: 0,
            ready: false,
            closed: 0,
            seqs: BTreeMap::new(),
            out,
        };
        state.settle();
        state
    }

    /// The lock, also when a holder panicked (the counts stay usable).
    pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A subscriber is connected (its deliveries are waited for from now on).
    pub fn connected(&mut self) {
        self.connected += 1;
        self.alive += 1;
        self.settle();
    }

    /// Sends `ready` once every subscriber connected or gave up.
    fn settle(&mut self) {
        if !self.ready && self.connected + self.failed >= self.total {
            self.ready = true;
            let _ = self.out.send(Report::Ready {
                connected: self.connected,
                failed: self.failed,
            });
        }
    }

    /// One delivery of broadcast `seq`, `bytes` long, stamped now.
    pub fn delivered(&mut self, seq: u64, bytes: usize) {
        let now = mono_ns();
        let entry = self.seqs.entry(seq).or_insert_with(|| {
            let tally = Tally {
                seq,
                ..Tally::default()
            };
            (tally, false)
        });
        entry.0.add(now, bytes);
        if self.seqs.len() > REMEMBERED {
            self.seqs.pop_first();
        }
        self.check();
    }

    /// A subscriber gave up connecting; the first failure's reason is reported (the count
    /// comes with `ready`).
    pub fn failed(&mut self, why: &str) {
        if self.failed == 0 {
            let _ = self.out.send(Report::Error(why.to_owned()));
        }
        self.failed += 1;
        self.settle();
    }

    /// Stops reporting (the worker is ending; the stdout writer is gone).
    pub fn detach(&mut self) {
        self.out = mpsc::unbounded_channel().0;
    }

    /// A connected subscriber's connection ended.
    pub fn ended(&mut self) {
        self.alive = self.alive.saturating_sub(1);
        if self.ready {
            self.closed += 1;
            let _ = self.out.send(Report::Closed(self.closed));
            self.check();
        }
    }

    /// Reports every broadcast that all live subscribers now have.
    fn check(&mut self) {
        if !self.ready {
            return;
        }
        for (tally, reported) in self.seqs.values_mut() {
            if !*reported && tally.count >= self.alive {
                *reported = true;
                let _ = self.out.send(Report::Got(*tally));
            }
        }
    }

    /// What arrived of broadcast `seq` so far (the answer to `query`).
    pub fn query(&self, seq: u64) -> Tally {
        self.seqs.get(&seq).map_or(
            Tally {
                seq,
                ..Tally::default()
            },
            |(t, _)| *t,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_is_read_from_alert_frames_only() {
        assert_eq!(
            alert_seq(r#"{"type":"alert","seq":42,"id":"42","alert":{}}"#),
            Some(42)
        );
        assert_eq!(alert_seq(r#"{"seq":7,"type":"alert"}"#), Some(7));
        assert_eq!(
            alert_seq(r#"{"type":"reset","oldest_available":3,"archive":"/"}"#),
            None
        );
        assert_eq!(alert_seq(r#"{"type":"alert","seq":"x"}"#), None);
    }

    #[test]
    fn a_broadcast_is_reported_once_every_live_subscriber_has_it() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let mut s = State::new(2, out);
        s.connected();
        s.connected();
        assert!(matches!(
            rx.try_recv(),
            Ok(Report::Ready { connected: 2, .. })
        ));
        s.delivered(1, 300);
        assert!(rx.try_recv().is_err());
        // The other subscriber's connection ends: the one that got it is all there is.
        s.ended();
        assert_eq!(rx.try_recv().ok(), Some(Report::Closed(1)));
        assert!(matches!(rx.try_recv(), Ok(Report::Got(t)) if t.seq == 1 && t.count == 1));
    }

    #[test]
    fn a_worker_without_subscribers_is_ready_at_once_and_failures_are_counted() {
        let (out, mut rx) = mpsc::unbounded_channel();
        let _empty = State::new(0, out.clone());
        assert_eq!(
            rx.try_recv().ok(),
            Some(Report::Ready {
                connected: 0,
                failed: 0
            })
        );
        let mut s = State::new(2, out);
        s.failed("refused");
        s.failed("refused again");
        assert!(matches!(rx.try_recv(), Ok(Report::Error(e)) if e == "refused"));
        assert_eq!(
            rx.try_recv().ok(),
            Some(Report::Ready {
                connected: 0,
                failed: 2
            })
        );
        assert_eq!(s.query(9).count, 0);
    }
}
