//! Per-IP limits for the public long-lived endpoints (`/ws/alerts`, `/sse/alerts`,
//! `/ws/health`): a token bucket per source address, consulted once per connection attempt
//! (never per delivery), and a count of the connections it holds open ([`Admitted`], given
//! back when dropped), so one address cannot take every subscriber slot by opening slowly.
//!
//! Government networks put many people behind one NAT address, so the defaults are generous;
//! the limit is against one client reconnecting in a tight loop, not against a busy office.
//! The table is bounded: past `max_tracked` addresses, buckets that are full again (idle long
//! enough to be forgotten without changing any decision) are dropped; if all are still
//! active (refilling, or holding connections open), new addresses are let through untracked
//! rather than refused (the global `alerts.max_subscribers` cap still holds), and the table
//! is not scanned again for a second. An IPv6 address is limited by its /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Token buckets and open-connection counts per source address.
#[derive(Debug)]
pub struct ConnectLimiter {
    per_sec: f64,
    burst: f64,
    max_open: u32,
    max_tracked: usize,
    table: Mutex<Table>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address opened connections too fast: a token is back after this many seconds.
    Rate(u64),
    /// The address holds this many connections open already (the limit).
    Open(u32),
}

/// One admitted connection, counted open for its address until dropped.
#[derive(Debug)]
pub struct Admitted {
    /// `None` when the address was let through untracked (a full table).
    counted: Option<(Arc<ConnectLimiter>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Some((limiter, key)) = self.counted.take() else {
            return;
        };
        if let Ok(mut table) = limiter.table.lock()
            && let Some(bucket) = table.buckets.get_mut(&key)
        {
            bucket.open = bucket.open.saturating_sub(1);
        }
    }
}

#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    /// When the full table was last swept: the next sweep waits [`SWEEP_PAUSE`], so a
    /// stream of new addresses costs one scan per pause, not one each.
    last_sweep: Option<Instant>,
}

/// Least time between two sweeps of a full table.
const SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Connections admitted and not yet dropped.
    open: u32,
}

/// The key an address is limited by: an IPv4 address (also when IPv4-mapped), or an IPv6
/// address's /64, the prefix one subscriber line or host gets (RFC 6177): anyone holding a
/// /64 holds 2^64 addresses, which must not be 2^64 buckets.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

impl ConnectLimiter {
    /// `per_sec` connections per second sustained, `burst` at once, at most `max_open` open,
    /// per address; at most `max_tracked` addresses tracked.
    pub fn new(per_sec: u32, burst: u32, max_open: u32, max_tracked: usize) -> Self {
        ConnectLimiter {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            max_open: max_open.max(1),
            max_tracked: max_tracked.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Admits a connection from `ip` (an IPv6 address counts by its /64) at `now`: takes one
    /// token and counts it open until the returned [`Admitted`] is dropped; refused when the
    /// bucket is empty or the address holds `max_open` connections.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refused> {
        let untracked = Admitted { counted: None };
        let Ok(mut table) = self.table.lock() else {
            return Ok(untracked);
        };
        let table = &mut *table;
        let ip = key(ip);
        if !table.buckets.contains_key(&ip) && table.buckets.len() >= self.max_tracked {
            let paused = (table.last_sweep)
                .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_PAUSE);
            if !paused {
                let (per_sec, burst) = (self.per_sec, self.burst);
                (table.buckets)
                    .retain(|_, b| b.open > 0 || b.refilled(now, per_sec, burst) < burst);
                table.last_sweep = Some(now);
            }
            if table.buckets.len() >= self.max_tracked {
                return Ok(untracked);
            }
        }
        let bucket = table.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
            open: 0,
        });
        bucket.tokens = bucket.refilled(now, self.per_sec, self.burst);
        bucket.last = now;
        if bucket.open >= self.max_open {
            return Err(Refused::Open(self.max_open));
        }
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) / self.per_sec).ceil().max(1.0) as u64;
            return Err(Refused::Rate(wait));
        }
        bucket.tokens -= 1.0;
        bucket.open += 1;
        Ok(Admitted {
            counted: Some((self.clone(), ip)),
        })
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

    /// The rate alone: admits and closes at once (`Err(seconds)` when refused).
    fn check(limiter: &Arc<ConnectLimiter>, ip: IpAddr, now: Instant) -> Result<(), u64> {
        match limiter.admit(ip, now) {
            Ok(_closed) => Ok(()),
            Err(Refused::Rate(wait)) => Err(wait),
            Err(Refused::Open(max)) => panic!("{max} open"),
        }
    }

    #[test]
    fn burst_then_rate() {
        let limiter = Arc::new(ConnectLimiter::new(2, 3, u32::MAX, 100));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(check(&limiter, ip(1), t0).is_ok());
        }
        assert_eq!(check(&limiter, ip(1), t0), Err(1), "burst spent");
        assert!(
            check(&limiter, ip(2), t0).is_ok(),
            "other addresses are separate"
        );
        let later = t0 + Duration::from_millis(500);
        assert!(
            check(&limiter, ip(1), later).is_ok(),
            "one token back after 1/rate"
        );
        assert!(check(&limiter, ip(1), later).is_err());
    }

    #[test]
    fn bounded_table_forgets_idle_addresses_and_never_refuses_untracked() {
        let limiter = Arc::new(ConnectLimiter::new(10, 1, u32::MAX, 2));
        let t0 = Instant::now();
        assert!(check(&limiter, ip(1), t0).is_ok());
        assert!(check(&limiter, ip(2), t0).is_ok());
        // Table full of active buckets: a third address passes untracked.
        assert!(check(&limiter, ip(3), t0).is_ok());
        assert!(check(&limiter, ip(3), t0).is_ok());
        // Once the others refilled, they are forgotten and the newcomer is tracked.
        let later = t0 + Duration::from_secs(1);
        assert!(check(&limiter, ip(3), later).is_ok());
        assert!(check(&limiter, ip(3), later).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let limiter = Arc::new(ConnectLimiter::new(1, 2, u32::MAX, 100));
        let t0 = Instant::now();
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        assert!(check(&limiter, v6(1), t0).is_ok());
        assert!(check(&limiter, v6(2), t0).is_ok());
        assert!(
            check(&limiter, v6(3), t0).is_err(),
            "one bucket for the whole /64"
        );
        let other_64 = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(check(&limiter, other_64, t0).is_ok());
        let mapped: IpAddr = "::ffff:127.0.0.9".parse().expect("mapped");
        assert!(check(&limiter, ip(9), t0).is_ok());
        assert!(check(&limiter, mapped, t0).is_ok());
        assert!(check(&limiter, ip(9), t0).is_err(), "the same IPv4 address");
    }

    #[test]
    fn a_full_table_of_active_addresses_is_swept_at_most_once_a_second() {
        let limiter = Arc::new(ConnectLimiter::new(10, 5, u32::MAX, 2));
        let t0 = Instant::now();
        assert!(check(&limiter, ip(1), t0).is_ok());
        assert!(check(&limiter, ip(2), t0).is_ok());
        // Full of active buckets: the sweep frees nothing and newcomers pass untracked,
        // without another sweep within the pause, though both buckets are full again after
        // 0.1 s (a tracked newcomer would be refused after its burst of 5).
        assert!(check(&limiter, ip(3), t0).is_ok());
        let refilled = t0 + Duration::from_millis(500);
        for _ in 0..10 {
            assert!(check(&limiter, ip(4), refilled).is_ok(), "untracked");
        }
        // After the pause a sweep runs again and the newcomer gets a bucket.
        let later = t0 + SWEEP_PAUSE;
        for _ in 0..5 {
            assert!(check(&limiter, ip(4), later).is_ok());
        }
        assert!(check(&limiter, ip(4), later).is_err(), "tracked now");
    }

    #[test]
    fn an_address_holds_at_most_max_open_connections_until_one_closes() {
        let limiter = Arc::new(ConnectLimiter::new(1000, 1000, 2, 100));
        let t0 = Instant::now();
        let first = limiter.admit(ip(1), t0).expect("first");
        let second = limiter.admit(ip(1), t0).expect("second");
        assert_eq!(limiter.admit(ip(1), t0).err(), Some(Refused::Open(2)));
        assert!(limiter.admit(ip(2), t0).is_ok(), "another address");
        drop(first);
        let third = limiter.admit(ip(1), t0).expect("a place again");
        drop((second, third));
        // A bucket holding connections is never swept, full as it may be.
        let limiter = Arc::new(ConnectLimiter::new(1000, 1, 1, 1));
        let held = limiter.admit(ip(1), t0).expect("held");
        let later = t0 + Duration::from_secs(5);
        let untracked = limiter.admit(ip(2), later).expect("untracked: table full");
        assert_eq!(
            limiter.admit(ip(1), later).err(),
            Some(Refused::Open(1)),
            "still counted"
        );
        drop((held, untracked));
    }
}
