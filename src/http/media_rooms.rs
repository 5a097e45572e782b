//! Which region convened each media room: the HTTP side's only room state, read to authorize
//! every WHIP/WHEP call against the room's region.
//!
//! Bounded: at most [`MAX_ROOMS`] entries. An entry outlives its room (the SFU forgets a room
//! when its last session leaves, and a publish whose SDP the SFU refused leaves one behind),
//! so when the table is full, entries whose room the SFU no longer has are dropped before a
//! new room is refused. Entries younger than [`SWEEP_GRACE`] are kept: their room may still
//! be on its way into the SFU (the entry is written before the session is created). A stale
//! entry is harmless meanwhile: a publish to a room the SFU does not have convenes it afresh.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use tiers::RegionCode;

use super::ApiError;

/// Most rooms remembered at once (beyond, after the sweep: 503 `too_many_rooms`). The SFU
/// itself places at most as many.
pub const MAX_ROOMS: usize = 10_000;

/// How young an entry the sweep leaves alone: longer than creating a session can take (the
/// SFU answers within 5 s or the request fails).
pub const SWEEP_GRACE: Duration = Duration::from_secs(60);

/// Room name → convening region (and when that was recorded).
#[derive(Debug)]
pub struct RoomRegistry {
    rooms: Mutex<HashMap<String, (RegionCode, Instant)>>,
    capacity: usize,
}

impl Default for RoomRegistry {
    fn default() -> Self {
        RoomRegistry::with_capacity(MAX_ROOMS)
    }
}

impl RoomRegistry {
    /// A registry of at most `capacity` rooms.
    pub fn with_capacity(capacity: usize) -> Self {
        RoomRegistry {
            rooms: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The region that convened `room`, if it is remembered.
    pub fn get(&self, room: &str) -> Option<RegionCode> {
        self.rooms.lock().ok()?.get(room).map(|(region, _)| *region)
    }

    /// Records that `region` convened `room` at `now`. When full, first forgets every room
    /// older than `SWEEP_GRACE` (60 s) for which `alive` says the SFU no longer has it; 503 if that
    /// frees nothing.
    pub fn insert(
        &self,
        room: &str,
        region: RegionCode,
        now: Instant,
        alive: impl Fn(&str) -> bool,
    ) -> Result<(), ApiError> {
        let mut rooms = self
            .rooms
            .lock()
            .map_err(|_| ApiError::internal(&"room registry poisoned"))?;
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            rooms.retain(|name, (_, at)| now.duration_since(*at) < SWEEP_GRACE || alive(name));
            tracing::debug!(left = rooms.len(), "room registry full: forgot ended rooms");
        }
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                format!("at most {} rooms", self.capacity),
            ));
        }
        rooms.insert(room.to_owned(), (region, now));
        Ok(())
    }

    /// Rooms remembered now.
    pub fn len(&self) -> usize {
        self.rooms.lock().map_or(0, |rooms| rooms.len())
    }

    /// True when no room is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: u32) -> RegionCode {
        RegionCode::from_u32(code).expect("region")
    }

    #[test]
    fn a_full_registry_forgets_ended_rooms_before_refusing() {
        let registry = RoomRegistry::with_capacity(2);
        let all_alive = |_: &str| true;
        let t0 = Instant::now();
        registry
            .insert("a", region(330_000), t0, all_alive)
            .expect("a");
        registry
            .insert("b", region(330_100), t0, all_alive)
            .expect("b");
        // Re-convening a remembered room never needs room.
        registry
            .insert("a", region(330_100), t0, all_alive)
            .expect("a again");
        assert_eq!(registry.get("a"), Some(region(330_100)));
        // Full, every room live: refused with 503 and nothing changes.
        let later = t0 + SWEEP_GRACE;
        let refused = registry
            .insert("c", region(330_000), later, all_alive)
            .expect_err("full");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code, "too_many_rooms");
        assert_eq!(registry.len(), 2);
        // Room "a" has ended in the SFU, but was recorded just now: it may still be on its
        // way in, so it stays and "c" is refused.
        let ended_a = |r: &str| r != "a";
        assert!(registry.insert("c", region(330_000), t0, ended_a).is_err());
        assert_eq!(registry.get("a"), Some(region(330_100)));
        // Past the grace it is forgotten and "c" fits.
        registry
            .insert("c", region(330_000), later, ended_a)
            .expect("c after the sweep");
        assert_eq!(registry.get("a"), None);
        assert_eq!(registry.get("b"), Some(region(330_100)));
        assert_eq!(registry.get("c"), Some(region(330_000)));
    }
}
