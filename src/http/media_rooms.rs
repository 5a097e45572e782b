//! Which region convened each media room: the HTTP side's only room state, read to authorize
//! every WHIP/WHEP call against the room's region.
//!
//! Bounded: at most [`MAX_ROOMS`] entries. An entry outlives its room (the SFU forgets a room
//! when its last session leaves, and a publish whose SDP the SFU refused leaves one behind),
//! so when the table is full, entries whose room the SFU no longer has are dropped before a
//! new room is refused. A stale entry is harmless meanwhile: a publish to a room the SFU does
//! not have convenes it afresh.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use tiers::RegionCode;

use super::ApiError;

/// Most rooms remembered at once (beyond, after the sweep: 503 `too_many_rooms`). The SFU
/// itself places at most as many.
pub const MAX_ROOMS: usize = 10_000;

/// Room name → convening region.
#[derive(Debug)]
pub struct RoomRegistry {
    rooms: Mutex<HashMap<String, RegionCode>>,
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
        self.rooms.lock().ok()?.get(room).copied()
    }

    /// Records that `region` convened `room`. When full, first forgets every room for which
    /// `alive` says the SFU no longer has it; 503 if that frees nothing.
    pub fn insert(
        &self,
        room: &str,
        region: RegionCode,
        alive: impl Fn(&str) -> bool,
    ) -> Result<(), ApiError> {
        let mut rooms = self
            .rooms
            .lock()
            .map_err(|_| ApiError::internal(&"room registry poisoned"))?;
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            rooms.retain(|name, _| alive(name));
            tracing::debug!(left = rooms.len(), "room registry full: forgot ended rooms");
        }
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                format!("at most {} rooms", self.capacity),
            ));
        }
        rooms.insert(room.to_owned(), region);
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
        registry.insert("a", region(330_000), all_alive).expect("a");
        registry.insert("b", region(330_100), all_alive).expect("b");
        // Re-convening a remembered room never needs room.
        registry
            .insert("a", region(330_100), all_alive)
            .expect("a again");
        assert_eq!(registry.get("a"), Some(region(330_100)));
        // Full, every room live: refused with 503 and nothing changes.
        let refused = registry
            .insert("c", region(330_000), all_alive)
            .expect_err("full");
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.code, "too_many_rooms");
        assert_eq!(registry.len(), 2);
        // Room "a" has ended in the SFU: it is forgotten and "c" fits.
        registry
            .insert("c", region(330_000), |r| r != "a")
            .expect("c after the sweep");
        assert_eq!(registry.get("a"), None);
        assert_eq!(registry.get("b"), Some(region(330_100)));
        assert_eq!(registry.get("c"), Some(region(330_000)));
    }
}
