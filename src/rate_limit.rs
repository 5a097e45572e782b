//! Per-IP connection rate limit for the public live endpoints (`/ws/alerts`, `/sse/alerts`):
//! a token bucket per source address, consulted once per connection attempt (never per
//! delivery).
//!
//! Government networks put many people behind one NAT address, so the defaults are generous;
//! the limit is against one client reconnecting in a tight loop, not against a busy office.
//! The table is bounded: past `max_tracked` addresses, buckets that are full again (idle long
//! enough to be forgotten without changing any decision) are dropped; if all are still
//! active, new addresses are let through untracked rather than refused (the global
//! `alerts.max_subscribers` cap still holds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets per source address.
#[derive(Debug)]
pub struct ConnectLimiter {
    per_sec: f64,
    burst: f64,
    max_tracked: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl ConnectLimiter {
    /// `per_sec` connections per second sustained, `burst` at once, per address.
    pub fn new(per_sec: u32, burst: u32, max_tracked: usize) -> Self {
        ConnectLimiter {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            max_tracked: max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip` at `now`; `Err(seconds)` (until the next token) when empty.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_tracked {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| b.refilled(now, per_sec, burst) < burst);
            if buckets.len() >= self.max_tracked {
                return Ok(());
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        bucket.tokens = bucket.refilled(now, self.per_sec, self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_sec: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * per_sec).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn burst_then_rate() {
        let limiter = ConnectLimiter::new(2, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check(ip(1), t0).is_ok());
        }
        assert_eq!(limiter.check(ip(1), t0), Err(1), "burst spent");
        assert!(
            limiter.check(ip(2), t0).is_ok(),
            "other addresses are separate"
        );
        let later = t0 + Duration::from_millis(500);
        assert!(
            limiter.check(ip(1), later).is_ok(),
            "one token back after 1/rate"
        );
        assert!(limiter.check(ip(1), later).is_err());
    }

    #[test]
    fn bounded_table_forgets_idle_addresses_and_never_refuses_untracked() {
        let limiter = ConnectLimiter::new(10, 1, 2);
        let t0 = Instant::now();
        assert!(limiter.check(ip(1), t0).is_ok());
        assert!(limiter.check(ip(2), t0).is_ok());
        // Table full of active buckets: a third address passes untracked.
        assert!(limiter.check(ip(3), t0).is_ok());
        assert!(limiter.check(ip(3), t0).is_ok());
        // Once the others refilled, they are forgotten and the newcomer is tracked.
        let later = t0 + Duration::from_secs(1);
        assert!(limiter.check(ip(3), later).is_ok());
        assert!(limiter.check(ip(3), later).is_err());
    }
}
