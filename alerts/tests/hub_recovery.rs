//! Recovery: `subscribe(filter, since)` replays every retained matching alert above `since`, in
//! order, then continues live with no gap and no duplicate, whatever the interleaving of
//! publishes, subscribes, partial drains, unsubscribes and slow-consumer disconnects; a
//! `Reset` comes first exactly when alerts above `since` are no longer retained.
//!
//! The property test drives the hub like a driver (a client pops only after a `Ready`, until
//! `None`), and checks each delivery against an independent model: the list of published
//! alerts, a matcher written with `RegionTree::contains`, and the retention window.
//! Edge cases of `since` (gaps, floor, age, clients ahead) are in `hub_recovery_edges.rs`.

mod hub_util;

use hub_util::{alert, code};

use std::time::Instant;

use alerts::hub::{
    AlertKind, Delivery, Filter, Hub, HubConfig, HubEvent, PublishedAlert, Severity, SubId,
};
use bytes::Bytes;
use proptest::prelude::*;
use tiers::RegionTree;

const REGIONS: [u32; 7] = [
    330_000, 330_100, 330_106, 330_102, 330_200, 330_203, 330_300,
];
const RETAIN: usize = 6;
const CAPACITY: usize = 3;
const CLIENTS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Publish {
        areas: Vec<usize>,
        kind: usize,
        sev: usize,
        gap: bool,
    },
    /// First time: subscribe with `since` chosen by `since` (None, or an offset from 0);
    /// later: reconnect with the client's last seen sequence number.
    Connect {
        client: usize,
        since: Option<u64>,
    },
    Drain {
        client: usize,
        max: usize,
    },
    Unsubscribe {
        client: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        4 => (prop::collection::vec(0..REGIONS.len(), 1..3), 0..4usize, 0..5usize, any::<bool>())
            .prop_map(|(areas, kind, sev, gap)| Op::Publish { areas, kind, sev, gap }),
        2 => (c.clone(), prop::option::of(0..40u64)).prop_map(|(client, since)| Op::Connect { client, since }),
        4 => (c.clone(), 1..6usize).prop_map(|(client, max)| Op::Drain { client, max }),
        1 => c.prop_map(|client| Op::Unsubscribe { client }),
    ]
}

fn filter_strategy() -> impl Strategy<Value = Filter> {
    (0..REGIONS.len(), 1..16u8, 0..5usize).prop_map(|(r, bits, sev)| Filter {
        region: code(REGIONS[r]),
        kinds: AlertKind::ALL
            .into_iter()
            .filter(|k| bits & (1 << k.index()) != 0)
            .collect(),
        min_severity: Severity::ALL[sev],
    })
}

/// The independent model of what a filter matches.
fn model_matches(tree: &RegionTree, f: &Filter, a: &PublishedAlert) -> bool {
    f.kinds.contains(a.kind)
        && a.severity >= f.min_severity
        && a.regions
            .iter()
            .any(|&r| tree.contains(r, f.region) || tree.contains(f.region, r))
}

#[derive(Debug, Default)]
struct Client {
    sub: Option<SubId>,
    /// Last sequence number seen (its resume point); `None` before its first subscription.
    pos: Option<u64>,
    woken: bool,
    /// The reset the current subscription must start with, if any.
    expect_reset: Option<u64>,
    delivered_on_this_sub: bool,
}

struct World {
    tree: RegionTree,
    hub: Hub,
    now: Instant,
    published: Vec<PublishedAlert>,
    filters: Vec<Filter>,
    clients: Vec<Client>,
}

impl World {
    fn last_seq(&self) -> u64 {
        self.published.last().map_or(0, |a| a.seq)
    }

    /// Model of retention: the highest evicted sequence and the oldest retained one.
    fn window(&self) -> (u64, u64) {
        let n = self.published.len();
        let evicted = if n > RETAIN {
            self.published[n - RETAIN - 1].seq
        } else {
            0
        };
        let oldest = self
            .published
            .get(n.saturating_sub(RETAIN))
            .map_or(evicted + 1, |a| a.seq);
        (evicted, oldest)
    }

    fn connect(&mut self, i: usize, first_since: Option<u64>) {
        if let Some(old) = self.clients[i].sub.take() {
            assert!(self.hub.unsubscribe(old));
        }
        let since = match self.clients[i].pos {
            Some(p) => Some(p),
            None => first_since,
        };
        let (evicted, oldest) = self.window();
        // `since` above everything published names nothing this hub had: reset.
        let last = self.hub.last_seq();
        let id = self
            .hub
            .subscribe(self.filters[i], since, self.now)
            .expect("subscribe");
        let c = &mut self.clients[i];
        c.sub = Some(id);
        c.woken = false;
        c.pos = Some(since.unwrap_or(self.published.last().map_or(0, |a| a.seq)));
        c.expect_reset = since.filter(|&s| s < evicted || s > last).map(|_| oldest);
        c.delivered_on_this_sub = false;
    }

    fn pump_events(&mut self) {
        while let Some(ev) = self.hub.poll_event() {
            let (HubEvent::Ready { sub } | HubEvent::Disconnect { sub, .. }) = ev;
            let Some(c) = self.clients.iter_mut().find(|c| c.sub == Some(sub)) else {
                continue;
            };
            match ev {
                HubEvent::Ready { .. } => c.woken = true,
                HubEvent::Disconnect { .. } => {
                    c.sub = None;
                    c.woken = false;
                }
            }
        }
    }

    /// Pops up to `max` deliveries (only if woken), checking each against the model.
    fn drain(&mut self, i: usize, max: usize) {
        let Some(sub) = self.clients[i].sub else {
            return;
        };
        for _ in 0..max {
            if !self.clients[i].woken {
                return;
            }
            let Some(d) = self.hub.pop(sub) else {
                self.clients[i].woken = false;
                return;
            };
            let c = &mut self.clients[i];
            let first = !c.delivered_on_this_sub;
            c.delivered_on_this_sub = true;
            match d {
                Delivery::Reset { oldest_available } => {
                    assert!(first, "a reset comes first");
                    assert_eq!(
                        c.expect_reset.take(),
                        Some(oldest_available),
                        "unexpected reset"
                    );
                    c.pos = Some(oldest_available - 1);
                }
                Delivery::Alert { seq, frame } => {
                    assert_eq!(c.expect_reset, None, "missing reset before {seq}");
                    assert_eq!(frame, Bytes::from(format!("frame {seq}")));
                    let pos = c.pos.unwrap_or(0);
                    let want = self
                        .published
                        .iter()
                        .find(|a| a.seq > pos && model_matches(&self.tree, &self.filters[i], a))
                        .map(|a| a.seq);
                    assert_eq!(
                        Some(seq),
                        want,
                        "client {i} after {pos}: gap, duplicate or order"
                    );
                    self.clients[i].pos = Some(seq);
                }
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Publish {
                areas,
                kind,
                sev,
                gap,
            } => {
                let seq = self.last_seq() + if *gap { 2 } else { 1 };
                let regions: Vec<u32> = areas.iter().map(|&a| REGIONS[a]).collect();
                let a = alert(seq, &regions, AlertKind::ALL[*kind], Severity::ALL[*sev]);
                self.hub.publish(a.clone(), self.now).expect("publish");
                self.published.push(a);
            }
            Op::Connect { client, since } => self.connect(*client, *since),
            Op::Drain { client, max } => self.drain(*client, *max),
            Op::Unsubscribe { client } => {
                if let Some(sub) = self.clients[*client].sub.take() {
                    assert!(self.hub.unsubscribe(sub));
                }
            }
        }
        self.pump_events();
    }

    /// Reconnects everyone who ever subscribed and drains to the end.
    fn finish(&mut self) {
        for i in 0..CLIENTS {
            if self.clients[i].pos.is_none() {
                continue;
            }
            if self.clients[i].sub.is_none() {
                self.connect(i, None);
            }
            self.pump_events();
            self.drain(i, usize::MAX);
            assert!(
                self.clients[i].sub.is_some(),
                "no disconnect without publishes"
            );
            let pos = self.clients[i].pos.unwrap_or(0);
            let missing = self
                .published
                .iter()
                .find(|a| a.seq > pos && model_matches(&self.tree, &self.filters[i], a));
            assert_eq!(missing.map(|a| a.seq), None, "client {i} stuck at {pos}");
        }
    }
}

fn world(filters: Vec<Filter>) -> World {
    let tree = RegionTree::zhejiang();
    let config = HubConfig {
        queue_capacity: CAPACITY,
        retain_count: RETAIN,
        ..HubConfig::default()
    };
    World {
        hub: Hub::new(&tree, config),
        tree,
        now: Instant::now(),
        published: Vec::new(),
        filters,
        clients: (0..CLIENTS).map(|_| Client::default()).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn every_interleaving_delivers_exactly_once_in_order(
        filters in prop::collection::vec(filter_strategy(), CLIENTS),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut w = world(filters);
        for op in &ops {
            w.apply(op);
        }
        w.finish();
    }
}

#[test]
fn replay_then_live_around_publishes() {
    let mut w = world(vec![Filter::all(code(330_106)); CLIENTS]);
    for seq in 1..=4 {
        w.apply(&Op::Publish {
            areas: vec![2],
            kind: 0,
            sev: 1,
            gap: false,
        });
        assert_eq!(w.last_seq(), seq);
    }
    w.apply(&Op::Connect {
        client: 0,
        since: Some(1),
    });
    w.apply(&Op::Drain { client: 0, max: 1 }); // 2
    w.apply(&Op::Publish {
        areas: vec![0],
        kind: 1,
        sev: 2,
        gap: false,
    }); // 5, during replay
    w.apply(&Op::Drain { client: 0, max: 3 }); // 3 4 5
    w.apply(&Op::Publish {
        areas: vec![1],
        kind: 2,
        sev: 3,
        gap: true,
    }); // 7
    w.apply(&Op::Drain { client: 0, max: 10 }); // 7, then None: live
    assert_eq!(w.clients[0].pos, Some(7));
    w.apply(&Op::Publish {
        areas: vec![4],
        kind: 2,
        sev: 3,
        gap: false,
    }); // 8: Ningbo
    w.apply(&Op::Publish {
        areas: vec![2],
        kind: 3,
        sev: 4,
        gap: false,
    }); // 9
    w.apply(&Op::Drain { client: 0, max: 10 });
    assert_eq!(w.clients[0].pos, Some(9));
    assert_eq!(w.hub.stats().replays, 1);
    w.finish();
}
