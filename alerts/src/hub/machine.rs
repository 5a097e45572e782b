//! [`Hub`]: the fan-out state machine. Inputs: `publish`, `subscribe`, `unsubscribe`,
//! `handle_timeout`. Outputs: `pop` per subscriber, `poll_event` for the driver.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tiers::RegionTree;

use super::config::{BufferCapacities, HubConfig, HubStats};
use super::regions::{RegionIdx, RegionIndex};
use super::retain::{Compiled, Entry, LiveSet, Ring, Target};
use super::subs::{Mode, Sub, Subs};
use super::types::{
    Delivery, DisconnectReason, Filter, HubError, HubEvent, MsgType, PublishedAlert, SubId,
};

/// Places a subscriber's live queue keeps once emptied (more were needed only in a burst).
const QUEUE_KEPT: usize = 8;

/// The sans-IO alert fan-out hub. See the [module docs](super) for the driving loop and the
/// queue and replay design.
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    regions: RegionIndex,
    ring: Ring,
    live: LiveSet,
    subs: Subs,
    /// Slot indices of subscribers in [`Mode::Replay`].
    replaying: Vec<u32>,
    events: VecDeque<HubEvent>,
    last_seq: u64,
    /// Per region bucket, per kind: best severity + 1 of the alert being fanned out (0: none).
    best: Vec<[u8; 4]>,
    /// Buckets with a non-zero `best` entry, in the order first touched.
    touched: Vec<RegionIdx>,
    /// Subscribers found with a full queue during one fan-out.
    slow: Vec<u32>,
    stats: HubStats,
}

impl Hub {
    /// A hub over `tree` that has seen nothing.
    pub fn new(tree: &RegionTree, config: HubConfig) -> Hub {
        Hub::resuming_after(tree, config, 0)
    }

    /// A hub over `tree` whose store already holds alerts up to `seq` that this hub will not
    /// replay (typically the store's last sequence at start, or the one before the first
    /// alert the driver reloads into the hub). Publishes must be above it; `since < seq` gets a
    /// [`Delivery::Reset`].
    pub fn resuming_after(tree: &RegionTree, config: HubConfig, seq: u64) -> Hub {
        let config = config.sanitized();
        let regions = RegionIndex::new(tree);
        let n = regions.len();
        Hub {
            ring: Ring::new(config.retain_count, config.retain_age, seq),
            live: LiveSet::new(config.max_live),
            subs: Subs::new(n),
            replaying: Vec::new(),
            events: VecDeque::new(),
            last_seq: seq,
            best: vec![[0; 4]; n],
            touched: Vec::with_capacity(n),
            slow: Vec::new(),
            stats: HubStats::default(),
            regions,
            config,
        }
    }

    /// Fans out one stored alert: it joins the replay ring and the live set, and every live
    /// subscriber it reaches gets its frame queued (a refcount, no copy). Rejects a sequence
    /// number not above the last one, so a redelivered alert is never fanned out twice.
    ///
    /// An Update or Cancel reaches its own areas and the audience it carries
    /// ([`PublishedAlert::inherited`], resolved by the store); one that carries none reaches
    /// that of each referenced alert this hub still holds instead.
    pub fn publish(&mut self, mut alert: PublishedAlert, now: Instant) -> Result<(), HubError> {
        if alert.seq <= self.last_seq {
            self.stats.rejected += 1;
            return Err(HubError::SeqNotIncreasing {
                seq: alert.seq,
                last: self.last_seq,
            });
        }
        // Only an Update supersedes and only a Cancel cancels (CAP 1.2): the references of any
        // other message act on nothing here (records stored before the store stopped
        // resolving them may still carry some).
        if !matches!(alert.msg_type, MsgType::Update | MsgType::Cancel) {
            alert.references.clear();
        }
        // The store's record carries the inherited audience; only an alert without it (built
        // in code, or read from a record whose originals could not be read) takes it from
        // the referenced alerts this hub still holds.
        let held: Vec<Target> = if alert.inherited.is_empty() {
            (alert.references.iter())
                .filter_map(|&r| self.held(r))
                .flat_map(|e| e.targets.iter().copied())
                .collect()
        } else {
            Vec::new()
        };
        let entry = Arc::new(Entry::new(alert, &self.regions, held.into_iter(), now));
        let seq = entry.alert.seq;
        self.last_seq = seq;
        self.stats.published += 1;
        self.stats.published_by_kind[entry.alert.kind.index()] += 1;
        if entry.targets.is_empty() {
            self.stats.unrouted += 1;
        }
        self.ring.evict_aged(now);
        self.ring.push(Arc::clone(&entry));
        self.drop_overtaken_replays();
        self.live.apply(&entry);
        self.fan_out(&entry);
        Ok(())
    }

    /// The hot path: mark, per bucket, the best severity per kind the entry brings there, then
    /// visit only those buckets' subscribers. Each subscriber sits in exactly one bucket and
    /// each bucket is visited once, so an alert with several areas is delivered once.
    fn fan_out(&mut self, entry: &Entry) {
        for t in entry.targets.iter() {
            let rank = t.severity as u8 + 1;
            for &r in self.regions.related(t.region) {
                let Some(best) = self.best.get_mut(r as usize) else {
                    continue;
                };
                if *best == [0; 4] {
                    self.touched.push(r);
                }
                let slot = &mut best[t.kind.index()];
                *slot = (*slot).max(rank);
            }
        }
        let (seq, frame) = (entry.alert.seq, &entry.alert.frame);
        let capacity = self.config.queue_capacity;
        for &r in &self.touched {
            let Some(best) = self.best.get_mut(r as usize) else {
                continue;
            };
            // accept[s]: kinds whose best severity is at least severity `s`.
            let mut accept = [0u8; 5];
            for (s, bits) in accept.iter_mut().enumerate() {
                for (k, &rank) in best.iter().enumerate() {
                    if usize::from(rank) > s {
                        *bits |= 1 << k;
                    }
                }
            }
            *best = [0; 4];
            let out = self.subs.fan_out(
                r,
                &accept,
                seq,
                frame,
                capacity,
                &mut self.events,
                &mut self.slow,
            );
            self.stats.enqueued += out.enqueued;
        }
        self.touched.clear();
        let mut slow = std::mem::take(&mut self.slow);
        for &index in &slow {
            if let Some(id) = self.subs.id_at(index) {
                self.disconnect(id, DisconnectReason::SlowConsumer);
            }
        }
        slow.clear();
        self.slow = slow;
    }

    /// Registers a subscriber. With `since`, it first receives every retained alert with a
    /// higher sequence number that its filter matches (after a [`Delivery::Reset`] if alerts
    /// after `since` are no longer retained), then live ones, with no gap and no duplicate.
    /// Without `since` it receives alerts published from now on.
    ///
    /// A `since` above [`last_seq`](Self::last_seq) names an alert this hub never had (a
    /// store restored from a backup, a shared log that lost its newest entries, a bogus
    /// value): the subscriber gets a [`Delivery::Reset`] and every retained alert, not a
    /// silent subscription that skips the numbers up to `since`. (A driver whose log may lag
    /// another instance's waits for it to catch up before calling this.)
    pub fn subscribe(
        &mut self,
        filter: Filter,
        since: Option<u64>,
        now: Instant,
    ) -> Result<SubId, HubError> {
        let region = self.check_filter(&filter)?;
        let compiled = Compiled {
            region,
            kinds: filter.kinds,
            min_severity: filter.min_severity,
        };
        self.ring.evict_aged(now);
        self.drop_overtaken_replays();
        let Some(since) = since else {
            return Ok(self
                .subs
                .insert(Sub::new(compiled, self.last_seq, Mode::Live)));
        };
        let (cursor, reset) = if since < self.ring.evicted_upto() || since > self.last_seq {
            (self.ring.base(), Some(self.ring.oldest_available()))
        } else {
            (self.ring.position_after(since), None)
        };
        if reset.is_none() && cursor >= self.ring.end() {
            return Ok(self.subs.insert(Sub::new(compiled, since, Mode::Live)));
        }
        // After a reset the replay starts at the oldest retained alert whatever `since` said
        // (an ahead `since` must not hide the retained alerts numbered below it).
        let last = match reset {
            Some(_) => since.min(self.ring.evicted_upto()),
            None => since,
        };
        let mut sub = Sub::new(compiled, last, Mode::Replay { cursor, reset });
        sub.notified = true;
        let id = self.subs.insert(sub);
        self.replaying.push(id.index);
        self.events.push_back(HubEvent::Ready { sub: id });
        self.stats.replays += 1;
        Ok(id)
    }

    /// Removes a subscriber and drops what it had queued. False if the id is stale (already
    /// unsubscribed or disconnected).
    pub fn unsubscribe(&mut self, sub: SubId) -> bool {
        let Some(old) = self.subs.remove(sub) else {
            return false;
        };
        if matches!(old.mode, Mode::Replay { .. }) {
            self.replaying.retain(|&i| i != sub.index);
        }
        true
    }

    fn disconnect(&mut self, sub: SubId, reason: DisconnectReason) {
        if self.unsubscribe(sub) {
            self.stats.slow_consumer_disconnects += 1;
            self.events.push_back(HubEvent::Disconnect { sub, reason });
        }
    }

    /// Replays whose cursor fell behind the ring (the retention window moved past a
    /// subscriber that was not draining) cannot continue without a gap: disconnect them as
    /// slow consumers; they resubscribe with `since` and get a `Reset`.
    fn drop_overtaken_replays(&mut self) {
        let base = self.ring.base();
        let mut i = 0;
        while let Some(&index) = self.replaying.get(i) {
            let id = self.subs.id_at(index);
            let overtaken = id
                .and_then(|id| self.subs.get_mut(id))
                .is_some_and(|s| matches!(s.mode, Mode::Replay { cursor, .. } if cursor < base));
            match id {
                Some(id) if overtaken => self.disconnect(id, DisconnectReason::SlowConsumer),
                Some(_) => i += 1,
                None => {
                    self.replaying.swap_remove(i);
                }
            }
        }
    }

    /// The subscriber's next delivery, in sequence order; `None` when it has nothing more (or
    /// the id is stale). The driver calls it when the connection can write, until `None`.
    pub fn pop(&mut self, sub: SubId) -> Option<Delivery> {
        let s = self.subs.get_mut(sub)?;
        let Mode::Replay { cursor, reset } = &mut s.mode else {
            let q = s.queue.pop_front()?;
            // A burst that queued many (an incident's flood) leaves no large queue behind for
            // the rest of a connection that may last weeks; a steady subscriber's small
            // queue is kept, so this does not allocate per delivery.
            if s.queue.is_empty() && s.queue.capacity() > QUEUE_KEPT {
                s.queue.shrink_to(QUEUE_KEPT);
            }
            self.stats.deliveries += 1;
            return Some(Delivery::Alert {
                seq: q.seq,
                frame: q.frame,
            });
        };
        if let Some(oldest_available) = reset.take() {
            self.stats.resets += 1;
            return Some(Delivery::Reset { oldest_available });
        }
        while let Some(entry) = self.ring.get(*cursor) {
            *cursor += 1;
            if entry.alert.seq > s.last && entry.reaches(&s.filter, &self.regions) {
                s.last = entry.alert.seq;
                self.stats.deliveries += 1;
                self.stats.replayed += 1;
                return Some(Delivery::Alert {
                    seq: entry.alert.seq,
                    frame: entry.alert.frame.clone(),
                });
            }
        }
        // Caught up: from here on fan-out feeds the queue (it is empty: fan-out skipped it).
        s.mode = Mode::Live;
        self.replaying.retain(|&i| i != sub.index);
        None
    }

    /// The next event for the driver. A `Ready` is emitted when a subscriber's deliveries go
    /// from none to some, at most one unpolled per subscriber; events for ids that have since
    /// gone stale may be ignored.
    pub fn poll_event(&mut self) -> Option<HubEvent> {
        let event = self.events.pop_front()?;
        if let HubEvent::Ready { sub } = event
            && let Some(s) = self.subs.get_mut(sub)
        {
            s.notified = false;
        }
        Some(event)
    }

    /// Expires live alerts (`expires <= now_unix`) and drops retained alerts older than the
    /// retention age. Call it at [`Hub::poll_timeout`] or periodically.
    pub fn handle_timeout(&mut self, now: Instant, now_unix: u64) {
        self.stats.expired += self.live.expire(now_unix) as u64;
        self.ring.evict_aged(now);
        self.drop_overtaken_replays();
    }

    /// The next live-set expiry (unix seconds) at which to call [`Hub::handle_timeout`].
    /// Retention by age needs no precise timer: it is also applied on publish and subscribe.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.live.next_expiry()
    }

    /// Current alerts (not expired, cancelled or superseded) about `filter`'s region subtree
    /// (both ways, by their own areas), kinds and severity, in sequence order: the Atom feed.
    pub fn live_alerts(
        &self,
        filter: Filter,
    ) -> impl DoubleEndedIterator<Item = &PublishedAlert> + '_ {
        let region = self.regions.index(filter.region);
        self.live
            .iter()
            .map(|e| &e.alert)
            .filter(move |a| filter.accepts(a.kind, a.severity))
            .filter(move |a| {
                region.is_some_and(|sub| {
                    a.regions
                        .iter()
                        .filter_map(|&c| self.regions.index(c))
                        .any(|r| self.regions.is_related(r, sub))
                })
            })
    }

    /// Whether [`subscribe`](Self::subscribe) would accept `filter` (a region of this hub's
    /// tree, at least one kind): the region's index if so.
    pub fn check_filter(&self, filter: &Filter) -> Result<RegionIdx, HubError> {
        let region =
            (self.regions.index(filter.region)).ok_or(HubError::UnknownRegion(filter.region))?;
        if filter.kinds.is_empty() {
            return Err(HubError::NoKinds);
        }
        Ok(region)
    }

    /// The entry numbered `seq` if the hub holds it: in the replay ring or the live set.
    fn held(&self, seq: u64) -> Option<&Arc<Entry>> {
        self.ring.find(seq).or_else(|| self.live.get(seq))
    }

    /// The retained alert numbered `seq`, if it is still in the replay window.
    pub fn retained(&self, seq: u64) -> Option<&PublishedAlert> {
        self.ring.find(seq).map(|entry| &entry.alert)
    }

    /// The highest sequence number published (or the resume point given at construction).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Moves the last sequence number up to `seq` with no alert: the store numbered up to it
    /// before it was restored from a backup, and those numbers will never come. A subscriber
    /// holding one is then not ahead of this hub, and the next alert follows with no gap to
    /// wait for.
    pub fn skip_to(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }

    /// The config in effect (sanitized).
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Counters and gauges.
    pub fn stats(&self) -> HubStats {
        HubStats {
            subscribers: self.subs.len(),
            replaying: self.replaying.len(),
            retained: self.ring.len(),
            live: self.live.len(),
            live_overflow: self.live.overflow(),
            ..self.stats
        }
    }

    /// Capacities of every growable buffer (see [`BufferCapacities`]).
    pub fn capacities(&self) -> BufferCapacities {
        let (queues_total, queues_max, buckets, slots) = self.subs.capacities();
        BufferCapacities {
            queues_total,
            queues_max,
            buckets,
            slots,
            events: self.events.capacity(),
            ring: self.ring.capacity(),
            scratch: self.touched.capacity() + self.slow.capacity() + self.replaying.capacity(),
        }
    }
}
