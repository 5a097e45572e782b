//! Where rooms live: the room → worker table. Every session of a room and all forwarding
//! between them run on one worker thread; this picks that worker for a new room (the least
//! loaded) and forgets the room when its worker reports it empty.

/// Most rooms on a node; a new room beyond it is refused (503).
const MAX_ROOMS: usize = 10_000;

/// Room → worker. A new room goes to the worker with the fewest rooms, so rooms spread evenly
/// over the cores instead of by the luck of a hash; once placed, a room stays on its worker
/// (all its sessions and all forwarding between them live there) for as long as the worker
/// hosts sessions in it or a create for it is on its way there.
///
/// Why creates in flight count: two creates for a new room are routed to its worker one
/// after the other; if the first failed and the room were forgotten then, the second would
/// re-place it while the first's caller, seeing no room, forgot the room's convening region
/// (`RoomRegistry`): a live meeting with no owner. A room is forgotten only when neither
/// holds it.
#[derive(Debug)]
pub(crate) struct Placement {
    rooms: std::collections::HashMap<String, Place>,
    load: Vec<usize>,
}

/// One placed room.
#[derive(Debug, Clone, Copy)]
struct Place {
    worker: usize,
    /// Creates routed to the worker and not yet handled by it.
    creating: usize,
    /// The worker has sessions in the room.
    hosted: bool,
}

impl Placement {
    pub(crate) fn new(workers: usize) -> Self {
        Placement {
            rooms: std::collections::HashMap::new(),
            load: vec![0; workers],
        }
    }

    /// The worker a create for `room` goes to, placing the room if new, and counts the
    /// create in flight until [`created`](Self::created) or [`abandoned`](Self::abandoned);
    /// `None` when the node is at [`MAX_ROOMS`].
    pub(crate) fn worker_for(&mut self, room: &str) -> Option<usize> {
        if let Some(place) = self.rooms.get_mut(room) {
            place.creating += 1;
            return Some(place.worker);
        }
        if self.rooms.len() >= MAX_ROOMS {
            return None;
        }
        let worker = (0..self.load.len())
            .min_by_key(|&w| self.load[w])
            .unwrap_or(0);
        self.load[worker] += 1;
        let place = Place {
            worker,
            creating: 1,
            hosted: false,
        };
        self.rooms.insert(room.to_owned(), place);
        Some(worker)
    }

    /// The worker `room` is placed on, if any.
    pub(crate) fn lookup(&self, room: &str) -> Option<usize> {
        self.rooms.get(room).map(|p| p.worker)
    }

    /// Creates for `room` on their way to its worker.
    #[cfg(test)]
    pub(crate) fn creating(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |p| p.creating)
    }

    /// Records that `worker` now hosts `room` (it is creating its first session): false if
    /// another worker has it.
    pub(crate) fn claim(&mut self, room: &str, worker: usize) -> bool {
        match self.rooms.get_mut(room) {
            Some(place) => {
                place.hosted |= place.worker == worker;
                place.worker == worker
            }
            None => {
                // Not reached while creates are counted; kept so a create never lands in a
                // room the table does not know.
                self.load[worker] += 1;
                let place = Place {
                    worker,
                    creating: 0,
                    hosted: true,
                };
                self.rooms.insert(room.to_owned(), place);
                true
            }
        }
    }

    /// `worker` handled a create for `room`; `hosted` says whether it has sessions there now.
    pub(crate) fn created(&mut self, room: &str, worker: usize, hosted: bool) {
        self.update(room, worker, |place| {
            place.creating = place.creating.saturating_sub(1);
            place.hosted = hosted;
        });
    }

    /// A create counted by [`worker_for`](Self::worker_for) never reached `worker` (its inbox
    /// was full).
    pub(crate) fn abandoned(&mut self, room: &str, worker: usize) {
        self.update(room, worker, |place| {
            place.creating = place.creating.saturating_sub(1);
        });
    }

    /// `worker` has no sessions left in `room`; the room is forgotten unless a create for it
    /// is still on its way.
    pub(crate) fn release(&mut self, room: &str, worker: usize) {
        self.update(room, worker, |place| place.hosted = false);
    }

    /// Applies `change` to `room`'s place if `worker` has it, then forgets the room if
    /// nothing holds it any more.
    fn update(&mut self, room: &str, worker: usize, change: impl FnOnce(&mut Place)) {
        let Some(place) = self.rooms.get_mut(room) else {
            return;
        };
        if place.worker != worker {
            return;
        }
        change(place);
        if place.creating == 0 && !place.hosted {
            self.rooms.remove(room);
            self.load[worker] = self.load[worker].saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Placement;

    /// A create routed to its worker and handled there, hosting the room.
    fn host(p: &mut Placement, room: &str) -> usize {
        let w = p.worker_for(room).expect("placed");
        assert!(p.claim(room, w));
        p.created(room, w, true);
        w
    }

    #[test]
    fn rooms_spread_over_workers_and_stay_put() {
        let mut p = Placement::new(2);
        let a = host(&mut p, "a");
        let b = host(&mut p, "b");
        assert_ne!(a, b, "two rooms, two workers");
        assert_eq!(host(&mut p, "a"), a, "a room stays on its worker");
        let placed: Vec<usize> = ["c", "d", "e", "f"]
            .iter()
            .map(|r| host(&mut p, r))
            .collect();
        assert_eq!(placed.iter().filter(|&&w| w == 0).count(), 2, "{placed:?}");
        // An emptied room frees its slot; the next new room takes the lighter worker.
        p.release("a", a);
        assert_eq!(p.lookup("a"), None);
        assert_eq!(p.worker_for("g"), Some(a));
    }

    #[test]
    fn lookups_place_nothing_and_releases_only_touch_their_own_worker() {
        let mut p = Placement::new(2);
        assert_eq!(p.lookup("ghost"), None, "a lookup places nothing");
        let a = host(&mut p, "a");
        let other = 1 - a;
        p.release("a", other);
        assert_eq!(p.lookup("a"), Some(a), "another worker's release leaves it");
        assert!(!p.claim("a", other), "a room is on one worker only");
        p.release("a", a);
        assert_eq!(p.lookup("a"), None);
    }

    /// The race a review found: the first create of a new room fails while a second one is
    /// queued behind it. The room must stay placed (its convening region remembered) until
    /// the second is handled, and end placed on the same worker, hosted.
    #[test]
    fn a_failed_create_keeps_the_room_for_the_create_queued_behind_it() {
        let mut p = Placement::new(2);
        let w = p.worker_for("r").expect("first create");
        assert_eq!(p.worker_for("r"), Some(w), "second create, same worker");
        p.created("r", w, false);
        assert_eq!(
            p.lookup("r"),
            Some(w),
            "still placed: a create is on its way"
        );
        assert!(p.claim("r", w));
        p.created("r", w, true);
        assert_eq!(p.lookup("r"), Some(w));
        // Both fail: forgotten once the last one is handled.
        let mut p = Placement::new(2);
        let w = p.worker_for("r").expect("placed");
        p.worker_for("r");
        p.created("r", w, false);
        p.created("r", w, false);
        assert_eq!(p.lookup("r"), None);
        assert_eq!(p.worker_for("s"), Some(w), "its load given back");
    }

    #[test]
    fn an_emptied_room_with_a_create_on_its_way_stays_placed() {
        let mut p = Placement::new(2);
        let w = host(&mut p, "r");
        assert_eq!(p.worker_for("r"), Some(w), "a join on its way");
        p.release("r", w);
        assert_eq!(p.lookup("r"), Some(w), "the join finds its room's worker");
        p.created("r", w, false);
        assert_eq!(p.lookup("r"), None, "the join failed: forgotten");
        // A create that never reached the worker (a full inbox).
        let w = p.worker_for("t").expect("placed");
        p.abandoned("t", w);
        assert_eq!(p.lookup("t"), None);
        let w = host(&mut p, "u");
        p.worker_for("u");
        p.abandoned("u", w);
        assert_eq!(
            p.lookup("u"),
            Some(w),
            "hosted: an abandoned join changes nothing"
        );
    }
}
