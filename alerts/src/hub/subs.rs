//! The subscriber table: a slab of subscribers behind generation-checked [`SubId`]s, each
//! registered in the bucket of its filter's region, each with its own bounded live queue, and
//! the per-bucket fan-out loop (the hot path).

use std::collections::VecDeque;

use bytes::Bytes;

use super::regions::RegionIdx;
use super::retain::Compiled;
use super::types::{HubEvent, SubId};

/// One live delivery waiting in a subscriber's queue: 40 bytes, the frame a refcount.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub(crate) seq: u64,
    pub(crate) frame: Bytes,
}

/// Where a subscriber's next delivery comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// From its queue, filled by fan-out.
    Live,
    /// From the retained ring at absolute position `cursor`, after a pending `Reset` if any.
    /// Fan-out skips the subscriber: everything it publishes is in the ring, ahead of the cursor.
    Replay { cursor: u64, reset: Option<u64> },
}

/// One subscriber.
#[derive(Debug)]
pub(crate) struct Sub {
    pub(crate) filter: Compiled,
    /// Highest sequence number delivered, queued or covered (its `since`); nothing at or below
    /// it is ever queued again.
    pub(crate) last: u64,
    pub(crate) mode: Mode,
    /// Live deliveries; never longer than the configured capacity.
    pub(crate) queue: VecDeque<Queued>,
    /// A `Ready` for it sits unpolled in the event queue.
    pub(crate) notified: bool,
    /// Its index in its bucket (for O(1) removal).
    bucket_pos: usize,
}

impl Sub {
    pub(crate) fn new(filter: Compiled, last: u64, mode: Mode) -> Sub {
        Sub {
            filter,
            last,
            mode,
            queue: VecDeque::new(),
            notified: false,
            bucket_pos: 0,
        }
    }
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    sub: Option<Sub>,
}

/// What one bucket's fan-out did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FanOut {
    pub(crate) enqueued: u64,
}

/// The slab and the per-region buckets.
#[derive(Debug)]
pub(crate) struct Subs {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// `buckets[r]`: slot indices of the subscribers whose filter region is `r`.
    buckets: Vec<Vec<u32>>,
    len: usize,
}

impl Subs {
    pub(crate) fn new(regions: usize) -> Subs {
        Subs {
            slots: Vec::new(),
            free: Vec::new(),
            buckets: vec![Vec::new(); regions],
            len: 0,
        }
    }

    pub(crate) fn insert(&mut self, mut sub: Sub) -> SubId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    sub: None,
                });
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if let Some(bucket) = self.buckets.get_mut(sub.filter.region as usize) {
            sub.bucket_pos = bucket.len();
            bucket.push(index);
        }
        let slot = &mut self.slots[index as usize];
        slot.sub = Some(sub);
        self.len += 1;
        SubId {
            index,
            generation: slot.generation,
        }
    }

    /// Removes the subscriber; `None` if the id is stale.
    pub(crate) fn remove(&mut self, id: SubId) -> Option<Sub> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let sub = slot.sub.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        if let Some(bucket) = self.buckets.get_mut(sub.filter.region as usize) {
            bucket.swap_remove(sub.bucket_pos);
            if let Some(&moved) = bucket.get(sub.bucket_pos)
                && let Some(m) = self
                    .slots
                    .get_mut(moved as usize)
                    .and_then(|s| s.sub.as_mut())
            {
                m.bucket_pos = sub.bucket_pos;
            }
        }
        Some(sub)
    }

    pub(crate) fn get_mut(&mut self, id: SubId) -> Option<&mut Sub> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.sub.as_mut()
    }

    /// The current id of the subscriber in slot `index`.
    pub(crate) fn id_at(&self, index: u32) -> Option<SubId> {
        let slot = self.slots.get(index as usize)?;
        slot.sub.as_ref().map(|_| SubId {
            index,
            generation: slot.generation,
        })
    }

    /// Enqueues `(seq, frame)` to every live subscriber in bucket `region` whose kinds and
    /// minimum severity pass: `accept[s]` is the set of kinds (bits) that reach a subscriber
    /// whose `min_severity` has discriminant `s`. Emits `Ready` on an empty→non-empty
    /// transition; puts subscribers whose queue is already at `capacity` in `slow`.
    /// No allocation once queues, `events` and `slow` have grown to their working sizes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fan_out(
        &mut self,
        region: RegionIdx,
        accept: &[u8; 5],
        seq: u64,
        frame: &Bytes,
        capacity: usize,
        events: &mut VecDeque<HubEvent>,
        slow: &mut Vec<u32>,
    ) -> FanOut {
        let mut out = FanOut::default();
        let Some(bucket) = self.buckets.get(region as usize) else {
            return out;
        };
        for &index in bucket {
            let Some(slot) = self.slots.get_mut(index as usize) else {
                continue;
            };
            let Some(sub) = slot.sub.as_mut() else {
                continue;
            };
            let kinds = accept[sub.filter.min_severity as usize];
            if kinds & sub.filter.kinds.bits() == 0 || sub.last >= seq || sub.mode != Mode::Live {
                continue;
            }
            if sub.queue.len() >= capacity {
                slow.push(index);
                continue;
            }
            if sub.queue.is_empty() && !sub.notified {
                sub.notified = true;
                let generation = slot.generation;
                events.push_back(HubEvent::Ready {
                    sub: SubId { index, generation },
                });
            }
            sub.queue.push_back(Queued {
                seq,
                frame: frame.clone(),
            });
            sub.last = seq;
            out.enqueued += 1;
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `(sum of queue capacities, largest queue capacity, sum of bucket capacities, slots)`.
    pub(crate) fn capacities(&self) -> (usize, usize, usize, usize) {
        let queues = self
            .slots
            .iter()
            .filter_map(|s| s.sub.as_ref())
            .map(|s| s.queue.capacity());
        let (sum, max) = queues.fold((0, 0), |(sum, max), c| (sum + c, usize::max(max, c)));
        let buckets = self.buckets.iter().map(Vec::capacity).sum();
        (sum, max, buckets, self.slots.capacity())
    }
}
