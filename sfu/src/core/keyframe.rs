//! The keyframe request throttle of one (track, layer).
//!
//! Subscribers ask for keyframes (PLI/FIR, layer switches, retargets); each is worth one PLI to
//! the publisher but a hundred of them are worth one too. So requests are merged:
//! - the first request sends at once and opens a window of `interval`;
//! - requests inside the window only set a *pending* flag;
//! - a keyframe arriving clears the flag (it answered everyone);
//! - when the window ends with the flag still set, one request is sent and a new window opens.
//!
//! The throttle keeps no clock: callers pass `now`, and the room asks for [`deadline`] to arm its
//! timer.
//!
//! [`deadline`]: KeyframeThrottle::deadline

use std::time::{Duration, Instant};

/// What a call to [`KeyframeThrottle::request`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// Send a request to the publisher now.
    SendNow,
    /// Merged into the current window; sent at [`KeyframeThrottle::deadline`] unless a
    /// keyframe comes first.
    Deferred,
}

/// Throttle state of one (track, layer).
#[derive(Debug, Clone, Default)]
pub struct KeyframeThrottle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// A subscriber (or the room) wants a keyframe.
    pub fn request(&mut self, now: Instant, interval: Duration) -> Requested {
        match self.last_sent {
            Some(t) if now.saturating_duration_since(t) < interval => {
                self.pending = true;
                Requested::Deferred
            }
            _ => {
                self.last_sent = Some(now);
                self.pending = false;
                Requested::SendNow
            }
        }
    }

    /// A keyframe arrived: every request so far is answered.
    pub fn on_keyframe(&mut self) {
        self.pending = false;
    }

    /// When a deferred request is due, if any.
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        self.last_sent.map(|t| t + interval)
    }

    /// Whether a deferred request is due at `now`; if so it counts as sent.
    pub fn poll(&mut self, now: Instant, interval: Duration) -> bool {
        match self.deadline(interval) {
            Some(due) if due <= now => {
                self.pending = false;
                self.last_sent = Some(now);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(500);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_request_goes_at_once_then_merges() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        assert_eq!(k.request(t0, I), Requested::SendNow);
        for n in 1..50 {
            assert_eq!(k.request(t0 + ms(n), I), Requested::Deferred);
        }
        assert_eq!(k.deadline(I), Some(t0 + I));
        assert!(!k.poll(t0 + ms(499), I));
        assert!(k.poll(t0 + I, I));
        assert!(!k.poll(t0 + I, I), "sent once");
        assert_eq!(k.deadline(I), None);
    }

    #[test]
    fn keyframe_inside_window_cancels_deferred() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        k.request(t0, I);
        k.request(t0 + ms(100), I);
        assert!(k.deadline(I).is_some());
        k.on_keyframe();
        assert_eq!(k.deadline(I), None);
        assert!(!k.poll(t0 + ms(600), I));
    }

    #[test]
    fn after_window_a_new_request_sends_at_once() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        k.request(t0, I);
        assert_eq!(k.request(t0 + I, I), Requested::SendNow);
        assert_eq!(k.request(t0 + I + ms(1), I), Requested::Deferred);
    }

    #[test]
    fn deferred_send_opens_a_new_window() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        k.request(t0, I);
        k.request(t0 + ms(10), I);
        assert!(k.poll(t0 + ms(520), I));
        assert_eq!(k.request(t0 + ms(600), I), Requested::Deferred);
        assert_eq!(k.deadline(I), Some(t0 + ms(1020)));
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let t0 = Instant::now() + ms(1000);
        let mut k = KeyframeThrottle::default();
        k.request(t0, I);
        assert_eq!(k.request(t0 - ms(500), I), Requested::Deferred);
        assert!(!k.poll(t0 - ms(500), I));
    }

    #[test]
    fn steady_requests_go_out_once_per_window() {
        let t0 = Instant::now();
        let mut k = KeyframeThrottle::default();
        let mut sent = 0;
        // A request every 100 ms for 3 s, the timer polled at every step, no keyframe ever.
        for step in 0..=30u64 {
            let now = t0 + ms(100 * step);
            if k.poll(now, I) {
                sent += 1;
            }
            if k.request(now, I) == Requested::SendNow {
                sent += 1;
            }
        }
        assert_eq!(sent, 7, "t = 0, 0.5, 1.0, ... 3.0 s");
    }
}
