//! Which region convened each media room: the HTTP side's only room state, read to authorize
//! every WHIP/WHEP call against the room's region.
//!
//! Bounded: at most [`MAX_ROOMS`] entries. An entry outlives its room (the SFU forgets a room
//! when its last session leaves; a convening publish whose session the SFU refused removes
//! its entry again), so when the table is full, entries whose room the SFU no longer has are dropped before a
//! new room is refused. Entries younger than [`SWEEP_GRACE`] are kept: their room may still
//! be on its way into the SFU (the entry is written before the session is created). A stale
//! entry is harmless meanwhile: a publish to a room the SFU does not have convenes it afresh,
//! unless the entry's own convene is still creating its session (marked pending until that
//! ends: a second convener joins that room rather than re-labelling it).

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

/// What is remembered of one room.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The region that convened it.
    region: RegionCode,
    /// When that was recorded.
    at: Instant,
    /// Its convening publish is still creating its session (the SFU may not place it yet).
    /// While it is, nothing replaces the entry ([`RoomRegistry::convene`] answers with it,
    /// the sweep keeps it), so its [`Pending`] guard always ends its own mark.
    pending: bool,
}

/// Room name → what is remembered of it.
type Rooms = HashMap<String, Entry>;

/// Room name → convening region (and when that was recorded).
#[derive(Debug)]
pub struct RoomRegistry {
    rooms: Mutex<Rooms>,
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
        self.rooms.lock().ok()?.get(room).map(|e| e.region)
    }

    /// The region of `room` if it is remembered and the SFU still has it (`alive`) or its
    /// convening publish is still creating the session; else, after `may_convene(region)`
    /// allows it, records that `region` convenes it now (pending until the returned guard is
    /// dropped, when the create has ended either way) and gives `None`. One lock for both,
    /// and the pending mark: two publishers convening the same room at once cannot both pass,
    /// the second would re-label the first's room.
    pub fn convene(
        &self,
        room: &str,
        region: RegionCode,
        now: Instant,
        alive: impl Fn(&str) -> bool,
        may_convene: impl FnOnce(RegionCode) -> Result<(), ApiError>,
    ) -> Result<Convened<'_>, ApiError> {
        let mut rooms = self.lock()?;
        if let Some(entry) = rooms.get(room)
            && (entry.pending || alive(room))
        {
            return Ok(Convened::Existing(entry.region));
        }
        may_convene(region)?;
        self.record(&mut rooms, room, region, now, true, alive)?;
        Ok(Convened::New(Pending {
            registry: self,
            room: room.to_owned(),
            ended: false,
        }))
    }

    /// Forgets `room` unless the SFU has it: a convening publish whose session was refused
    /// leaves no entry behind (else bad offers could fill the table).
    pub fn forget_unless(&self, room: &str, alive: impl Fn(&str) -> bool) {
        if let Ok(mut rooms) = self.lock()
            && !alive(room)
        {
            rooms.remove(room);
        }
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
        let mut rooms = self.lock()?;
        self.record(&mut rooms, room, region, now, false, alive)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Rooms>, ApiError> {
        self.rooms
            .lock()
            .map_err(|_| ApiError::internal(&"room registry poisoned"))
    }

    /// [`insert`](Self::insert) under the caller's lock (`pending` for a convene).
    fn record(
        &self,
        rooms: &mut Rooms,
        room: &str,
        region: RegionCode,
        now: Instant,
        pending: bool,
        alive: impl Fn(&str) -> bool,
    ) -> Result<(), ApiError> {
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            rooms.retain(|name, e| {
                e.pending || now.saturating_duration_since(e.at) < SWEEP_GRACE || alive(name)
            });
            tracing::debug!(left = rooms.len(), "room registry full: forgot ended rooms");
        }
        if rooms.len() >= self.capacity && !rooms.contains_key(room) {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_rooms",
                format!("at most {} rooms", self.capacity),
            ));
        }
        let entry = Entry {
            region,
            at: now,
            pending,
        };
        rooms.insert(room.to_owned(), entry);
        Ok(())
    }

    /// Ends the pending mark of `room` (its convening create returned or was dropped); with
    /// `failed`, the create failed and the entry goes too unless the SFU has the room after
    /// all (another publisher's session created it meanwhile).
    fn settle(&self, room: &str, failed: Option<&dyn Fn(&str) -> bool>) {
        let Ok(mut rooms) = self.lock() else {
            return;
        };
        if failed.is_some_and(|alive| !alive(room)) {
            rooms.remove(room);
        } else if let Some(entry) = rooms.get_mut(room) {
            entry.pending = false;
        }
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

/// What [`RoomRegistry::convene`] found.
#[derive(Debug)]
pub enum Convened<'a> {
    /// The room is live or being convened, by this region: join it under that region.
    Existing(RegionCode),
    /// The caller convenes it; the room stays marked pending while this lives.
    New(Pending<'a>),
}

/// A convene in progress: dropped when the session create has ended (answered, failed, or
/// the request went away), which ends the pending mark. Until then another convener of
/// the room joins it instead of re-labelling it.
#[derive(Debug)]
pub struct Pending<'a> {
    registry: &'a RoomRegistry,
    room: String,
    /// [`Pending::failed`] already ended the mark (with the entry).
    ended: bool,
}

impl Pending<'_> {
    /// The create failed: the entry goes unless the SFU has the room after all (a bad offer
    /// must not leave a room behind, nor fill the table), and with it the mark.
    pub fn failed(mut self, alive: impl Fn(&str) -> bool) {
        self.registry.settle(&self.room, Some(&alive));
        self.ended = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.registry.settle(&self.room, None);
        }
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

    /// The region a convene found, or `None` for a new one (whose pending mark ends now).
    fn found(convened: Result<Convened<'_>, ApiError>) -> Option<RegionCode> {
        match convened.expect("convene") {
            Convened::Existing(region) => Some(region),
            Convened::New(_) => None,
        }
    }

    #[test]
    fn convening_is_one_step_and_a_refused_create_leaves_nothing() {
        let registry = RoomRegistry::with_capacity(4);
        let t0 = Instant::now();
        let allow = |_| Ok(());
        let none_alive = |_: &str| false;
        assert_eq!(
            found(registry.convene("a", region(330_100), t0, none_alive, allow)),
            None
        );
        // Live in the SFU: the second convener gets the first's region, and is not asked.
        let refuse = |_| Err(ApiError::forbidden("not asked"));
        let got = registry.convene("a", region(330_200), t0, |_: &str| true, refuse);
        assert_eq!(found(got), Some(region(330_100)));
        // Not allowed to convene: nothing recorded.
        assert!(
            registry
                .convene("b", region(330_200), t0, none_alive, refuse)
                .is_err()
        );
        assert_eq!(registry.get("b"), None);
        // The create failed and the SFU has no room "a": forgotten; a live room stays.
        registry.forget_unless("a", |_: &str| true);
        assert_eq!(registry.get("a"), Some(region(330_100)));
        registry.forget_unless("a", none_alive);
        assert_eq!(registry.get("a"), None);
    }

    #[test]
    fn a_convene_in_progress_is_joined_not_relabelled() {
        let registry = RoomRegistry::with_capacity(4);
        let t0 = Instant::now();
        let none_alive = |_: &str| false;
        let allow = |_| Ok(());
        let refuse = |_| Err(ApiError::forbidden("not asked"));
        let first = registry
            .convene("a", region(330_100), t0, none_alive, allow)
            .expect("convened");
        assert!(matches!(first, Convened::New(_)));
        // Its session is still being created (the SFU does not place "a" yet): a second
        // convener from another region gets Hangzhou's room, and is not asked to convene.
        let second = registry.convene("a", region(330_200), t0, none_alive, refuse);
        assert_eq!(found(second), Some(region(330_100)));
        // The create has ended (the guard is dropped): a room the SFU does not have, e.g.
        // because its publisher already left, is convened afresh at once.
        drop(first);
        let again = registry.convene("a", region(330_200), t0, none_alive, allow);
        assert_eq!(found(again), None);
        assert_eq!(registry.get("a"), Some(region(330_200)));
    }

    /// Hangzhou convenes room "a" and its create fails; `alive` says whether the SFU has the
    /// room by then.
    fn convene_and_fail(registry: &RoomRegistry, t0: Instant, alive: impl Fn(&str) -> bool) {
        match registry.convene("a", region(330_100), t0, |_| false, |_| Ok(())) {
            Ok(Convened::New(pending)) => pending.failed(alive),
            other => panic!("a new room: {other:?}"),
        }
    }

    #[test]
    fn an_old_guard_does_not_end_a_later_convenes_mark() {
        let registry = RoomRegistry::with_capacity(4);
        let t0 = Instant::now();
        let none_alive = |_: &str| false;
        let allow = |_| Ok(());
        // Its create failed: forgotten with its mark; another region convenes the name.
        convene_and_fail(&registry, t0, none_alive);
        let second = registry
            .convene("a", region(330_200), t0, none_alive, allow)
            .expect("convened again");
        let third = registry.convene("a", region(330_300), t0, none_alive, allow);
        assert_eq!(found(third), Some(region(330_200)), "still pending");
        drop(second);
    }

    #[test]
    fn a_failed_convene_of_a_room_the_sfu_has_after_all_ends_its_mark() {
        let registry = RoomRegistry::with_capacity(4);
        let t0 = Instant::now();
        let none_alive = |_: &str| false;
        let allow = |_| Ok(());
        // Its create failed, but another publisher's session created the room meanwhile:
        // the entry stays, no longer pending.
        convene_and_fail(&registry, t0, |_: &str| true);
        assert_eq!(registry.get("a"), Some(region(330_100)));
        // Once the SFU no longer has it, the name is convened afresh (a pending mark left
        // behind would hand out the old region for ever).
        let again = registry.convene("a", region(330_200), t0, none_alive, allow);
        assert_eq!(found(again), None);
        assert_eq!(registry.get("a"), Some(region(330_200)));
    }
}
