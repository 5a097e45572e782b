//! Where rooms live: the room → worker table. Every session of a room and all forwarding
//! between them run on one worker thread; this picks that worker for a new room (the least
//! loaded) and forgets the room when its worker reports it empty.

/// Most rooms on a node; a new room beyond it is refused (503).
const MAX_ROOMS: usize = 10_000;

/// Room → worker. A new room goes to the worker with the fewest rooms, so rooms spread evenly
/// over the cores instead of by the luck of a hash; once placed, a room stays on its worker
/// (all its sessions and all forwarding between them live there) until the worker reports it
/// empty ([`Placement::release`]).
#[derive(Debug)]
pub(crate) struct Placement {
    rooms: std::collections::HashMap<String, usize>,
    load: Vec<usize>,
}

impl Placement {
    pub(crate) fn new(workers: usize) -> Self {
        Placement {
            rooms: std::collections::HashMap::new(),
            load: vec![0; workers],
        }
    }

    /// The worker of `room`, placing it if new; `None` when the node is at [`MAX_ROOMS`].
    pub(crate) fn worker_for(&mut self, room: &str) -> Option<usize> {
        if let Some(&worker) = self.rooms.get(room) {
            return Some(worker);
        }
        if self.rooms.len() >= MAX_ROOMS {
            return None;
        }
        let worker = (0..self.load.len())
            .min_by_key(|&w| self.load[w])
            .unwrap_or(0);
        self.load[worker] += 1;
        self.rooms.insert(room.to_owned(), worker);
        Some(worker)
    }

    /// The worker `room` is placed on, if any.
    pub(crate) fn lookup(&self, room: &str) -> Option<usize> {
        self.rooms.get(room).copied()
    }

    /// Records that `worker` now hosts `room` (it just created it): false if another worker
    /// has it. Covers a create that raced the room's release.
    pub(crate) fn claim(&mut self, room: &str, worker: usize) -> bool {
        match self.rooms.get(room) {
            Some(&w) => w == worker,
            None => {
                self.load[worker] += 1;
                self.rooms.insert(room.to_owned(), worker);
                true
            }
        }
    }

    /// Forgets `room` if `worker` hosts it (the worker has no sessions left in it); a room
    /// placed on another worker meanwhile is left alone.
    pub(crate) fn release(&mut self, room: &str, worker: usize) {
        if self.rooms.get(room) == Some(&worker) {
            self.rooms.remove(room);
            self.load[worker] = self.load[worker].saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Placement;

    #[test]
    fn rooms_spread_over_workers_and_stay_put() {
        let mut p = Placement::new(2);
        let a = p.worker_for("a").expect("placed");
        let b = p.worker_for("b").expect("placed");
        assert_ne!(a, b, "two rooms, two workers");
        assert_eq!(p.worker_for("a"), Some(a), "a room stays on its worker");
        let placed: Vec<usize> = ["c", "d", "e", "f"]
            .iter()
            .filter_map(|r| p.worker_for(r))
            .collect();
        assert_eq!(placed.iter().filter(|&&w| w == 0).count(), 2, "{placed:?}");
        // An emptied room frees its slot; the next new room takes the lighter worker.
        p.release("a", a);
        assert_eq!(p.worker_for("g"), Some(a));
    }

    #[test]
    fn lookups_place_nothing_and_releases_only_touch_their_own_worker() {
        let mut p = Placement::new(2);
        assert_eq!(p.lookup("ghost"), None, "a lookup places nothing");
        let a = p.worker_for("a").expect("placed");
        let other = 1 - a;
        p.release("a", other);
        assert_eq!(p.lookup("a"), Some(a), "another worker's release leaves it");
        assert!(!p.claim("a", other), "a room is on one worker only");
        p.release("a", a);
        assert!(
            p.claim("a", other),
            "a create that raced the release re-places it"
        );
        assert_eq!(p.lookup("a"), Some(other));
    }
}
