//! What the hub keeps of published alerts: the recent [`Ring`] that recovery replays from, and
//! the [`LiveSet`] of current alerts that the Atom feed lists.
//!
//! Both hold the same [`Entry`] (an `Arc`, so an alert is stored once). An entry carries its
//! *targets*: the (region, kind, severity) triples that decide who it reaches, its own areas plus
//! every target of the alerts it updates or cancels, so an Update or Cancel reaches everyone the
//! original reached even if the update narrowed its area or lowered its severity.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::regions::{RegionIdx, RegionIndex};
use super::types::{AlertKind, KindSet, MsgType, PublishedAlert, Severity};

/// One (region, kind, severity) an entry is about; a subscriber matching any target gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Target {
    pub(crate) region: RegionIdx,
    pub(crate) kind: AlertKind,
    pub(crate) severity: Severity,
}

/// A filter with its region resolved to a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compiled {
    pub(crate) region: RegionIdx,
    pub(crate) kinds: KindSet,
    pub(crate) min_severity: Severity,
}

/// A published alert as the hub keeps it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) alert: PublishedAlert,
    /// Own areas × own kind and severity, plus inherited targets; sorted, no duplicates.
    pub(crate) targets: Box<[Target]>,
    /// When the hub received it (retention by age).
    pub(crate) stored_at: Instant,
}

/// `alert`'s own areas (those in the tree) × its kind and severity.
pub(crate) fn own_targets<'a>(
    alert: &'a PublishedAlert,
    regions: &'a RegionIndex,
) -> impl Iterator<Item = Target> + 'a {
    let (kind, severity) = (alert.kind, alert.severity);
    (alert.regions.iter())
        .filter_map(|&code| regions.index(code))
        .map(move |region| Target {
            region,
            kind,
            severity,
        })
}

impl Entry {
    /// Builds an entry: its own areas, the audience it carries (`alert.inherited`) and
    /// `held`, the targets of referenced alerts taken from the hub. One target per (region,
    /// kind), the gravest severity: a filter takes everything from its lowest severity up,
    /// so that reaches the same subscribers with fewer targets to scan.
    pub(crate) fn new(
        alert: PublishedAlert,
        regions: &RegionIndex,
        held: impl Iterator<Item = Target>,
        stored_at: Instant,
    ) -> Entry {
        let carried = (alert.inherited.iter()).filter_map(|i| {
            Some(Target {
                region: regions.index(i.region)?,
                kind: i.kind,
                severity: i.severity,
            })
        });
        let mut targets: Vec<Target> = own_targets(&alert, regions)
            .chain(carried)
            .chain(held)
            .collect();
        targets.sort_unstable_by_key(|t| (t.region, t.kind, std::cmp::Reverse(t.severity)));
        targets.dedup_by_key(|t| (t.region, t.kind));
        Entry {
            alert,
            targets: targets.into_boxed_slice(),
            stored_at,
        }
    }

    /// True if a subscriber with `filter` receives this entry (replay path; fan-out computes
    /// the same answer per bucket).
    pub(crate) fn reaches(&self, filter: &Compiled, regions: &RegionIndex) -> bool {
        self.targets.iter().any(|t| {
            filter.kinds.contains(t.kind)
                && t.severity >= filter.min_severity
                && regions.is_related(t.region, filter.region)
        })
    }
}

/// The recent alerts, oldest first, bounded by count and age. Positions are absolute (they
/// keep counting across evictions), so a replay cursor is a plain `u64` that is valid while
/// `cursor >= base()`.
#[derive(Debug)]
pub(crate) struct Ring {
    entries: VecDeque<Arc<Entry>>,
    /// Absolute position of `entries[0]`.
    base: u64,
    /// Highest sequence number no longer retained (evicted, or never seen: the floor).
    evicted_upto: u64,
    max_count: usize,
    max_age: Duration,
}

impl Ring {
    /// An empty ring; alerts up to `floor` exist elsewhere (the store) but not here.
    pub(crate) fn new(max_count: usize, max_age: Duration, floor: u64) -> Ring {
        Ring {
            entries: VecDeque::with_capacity(max_count.min(1 << 16)),
            base: 0,
            evicted_upto: floor,
            max_count,
            max_age,
        }
    }

    /// Appends `entry`, evicting the oldest first if the ring is full.
    pub(crate) fn push(&mut self, entry: Arc<Entry>) {
        while self.entries.len() >= self.max_count && self.evict_front() {}
        self.entries.push_back(entry);
    }

    /// Evicts entries received `max_age` or longer before `now`.
    pub(crate) fn evict_aged(&mut self, now: Instant) {
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.stored_at) >= self.max_age)
        {
            self.evict_front();
        }
    }

    fn evict_front(&mut self) -> bool {
        let Some(old) = self.entries.pop_front() else {
            return false;
        };
        self.base += 1;
        self.evicted_upto = self.evicted_upto.max(old.alert.seq);
        true
    }

    /// Absolute position of the oldest entry.
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Absolute position one past the newest entry.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// The entry at absolute position `pos`, if still retained.
    pub(crate) fn get(&self, pos: u64) -> Option<&Arc<Entry>> {
        let offset = usize::try_from(pos.checked_sub(self.base)?).ok()?;
        self.entries.get(offset)
    }

    /// Absolute position of the first entry with a sequence number above `seq`.
    pub(crate) fn position_after(&self, seq: u64) -> u64 {
        self.base + self.entries.partition_point(|e| e.alert.seq <= seq) as u64
    }

    /// The retained entry with this sequence number.
    pub(crate) fn find(&self, seq: u64) -> Option<&Arc<Entry>> {
        let i = self
            .entries
            .binary_search_by_key(&seq, |e| e.alert.seq)
            .ok()?;
        self.entries.get(i)
    }

    /// Highest sequence number that is no longer retained: a `since` below it missed alerts
    /// the hub cannot replay.
    pub(crate) fn evicted_upto(&self) -> u64 {
        self.evicted_upto
    }

    /// The oldest sequence number a replay can start from.
    pub(crate) fn oldest_available(&self) -> u64 {
        self.entries
            .front()
            .map_or(self.evicted_upto.saturating_add(1), |e| e.alert.seq)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }
}

/// Current alerts: published Alerts and Updates that are not expired, cancelled or superseded.
/// Bounded: past `max` entries the oldest is dropped (and counted), so alerts without `expires`
/// that are never cancelled cannot grow it without limit.
#[derive(Debug)]
pub(crate) struct LiveSet {
    by_seq: BTreeMap<u64, Arc<Entry>>,
    /// `(expires, seq)` of entries that expire.
    by_expiry: BTreeSet<(u64, u64)>,
    max: usize,
    overflow: u64,
}

impl LiveSet {
    pub(crate) fn new(max: usize) -> LiveSet {
        LiveSet {
            by_seq: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            max,
            overflow: 0,
        }
    }

    /// Applies a newly published entry: what it references leaves the set (only an Update
    /// or Cancel references anything by then: `Hub::publish`); Alerts and Updates join it,
    /// Cancels do not.
    pub(crate) fn apply(&mut self, entry: &Arc<Entry>) {
        for &seq in &entry.alert.references {
            self.remove(seq);
        }
        if entry.alert.msg_type == MsgType::Cancel {
            return;
        }
        let seq = entry.alert.seq;
        if let Some(expires) = entry.alert.expires {
            self.by_expiry.insert((expires, seq));
        }
        self.by_seq.insert(seq, Arc::clone(entry));
        while self.by_seq.len() > self.max {
            if let Some((&oldest, _)) = self.by_seq.first_key_value() {
                self.remove(oldest);
                self.overflow += 1;
            }
        }
    }

    fn remove(&mut self, seq: u64) {
        if let Some(old) = self.by_seq.remove(&seq)
            && let Some(expires) = old.alert.expires
        {
            self.by_expiry.remove(&(expires, seq));
        }
    }

    /// Removes every entry whose `expires` is at or before `now_unix`; returns how many.
    pub(crate) fn expire(&mut self, now_unix: u64) -> usize {
        let mut n = 0;
        while let Some(&(expires, seq)) = self.by_expiry.first() {
            if expires > now_unix {
                break;
            }
            self.by_expiry.pop_first();
            self.by_seq.remove(&seq);
            n += 1;
        }
        n
    }

    /// The earliest `expires` among live entries.
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.by_expiry.first().map(|&(expires, _)| expires)
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&Arc<Entry>> {
        self.by_seq.get(&seq)
    }

    /// Live entries in sequence order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<Entry>> {
        self.by_seq.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// How many entries were dropped because the set was full.
    pub(crate) fn overflow(&self) -> u64 {
        self.overflow
    }
}
