//! Zero growth: once warmed up, fan-out allocates nothing per subscriber. 10 000 subscribers
//! spread over every region of Zhejiang with assorted filters, a driver that drains on every
//! `Ready`, and 10 000 more alerts (county, city and province-wide) leave every buffer's
//! capacity exactly where warm-up left it.

use std::time::{Duration, Instant};

use alerts::hub::{
    AlertKind, Delivery, Filter, Hub, HubConfig, HubEvent, KindSet, MsgType, PublishedAlert,
    Severity,
};
use bytes::Bytes;
use tiers::{RegionCode, RegionTree};

const SUBSCRIBERS: usize = 10_000;

/// A small deterministic generator (no RNG dependency; the same run every time).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn alert(
    seq: u64,
    region: RegionCode,
    kind: AlertKind,
    severity: Severity,
    frame: &Bytes,
) -> PublishedAlert {
    PublishedAlert {
        seq,
        id: format!("alert-{seq}"),
        kind,
        severity,
        regions: vec![region],
        msg_type: MsgType::Alert,
        references: Vec::new(),
        inherited: Vec::new(),
        expires: None,
        frame: frame.clone(),
    }
}

/// The driver: wake every ready subscriber and drain it. Returns deliveries.
fn pump(hub: &mut Hub) -> u64 {
    let mut n = 0;
    while let Some(ev) = hub.poll_event() {
        match ev {
            HubEvent::Ready { sub } => {
                while let Some(d) = hub.pop(sub) {
                    assert!(matches!(d, Delivery::Alert { .. }));
                    n += 1;
                }
            }
            HubEvent::Disconnect { .. } => panic!("nobody is slow here"),
        }
    }
    n
}

#[test]
fn buffers_do_not_grow_after_warmup() {
    let tree = RegionTree::zhejiang();
    let codes: Vec<RegionCode> = tree.iter().map(|r| r.code).collect();
    let config = HubConfig {
        retain_count: 1_000,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(&tree, config);
    let mut now = Instant::now();
    for i in 0..SUBSCRIBERS {
        let bits = (i / codes.len()) % 15 + 1;
        let filter = Filter {
            region: codes[i % codes.len()],
            kinds: AlertKind::ALL
                .into_iter()
                .filter(|k| bits & (1 << k.index()) != 0)
                .collect::<KindSet>(),
            min_severity: Severity::ALL[(i * 7) % 5],
        };
        hub.subscribe(filter, None, now).expect("subscribe");
    }
    let frame = Bytes::from(vec![b'x'; 300]);
    let mut rng = Lcg(7);
    let mut seq = 0;
    let mut publish_batch = |hub: &mut Hub, count: usize, now: &mut Instant| -> u64 {
        let mut delivered = 0;
        for _ in 0..count {
            seq += 1;
            *now += Duration::from_millis(10);
            let a = if seq % 50 == 0 {
                // Province-wide, every kind in turn, Extreme: reaches 8 of 15 kind sets.
                let kind = AlertKind::ALL[(seq as usize / 50) % 4];
                alert(seq, tree.root(), kind, Severity::Extreme, &frame)
            } else {
                let region = codes[rng.next(codes.len())];
                let kind = AlertKind::ALL[rng.next(4)];
                alert(seq, region, kind, Severity::ALL[rng.next(5)], &frame)
            };
            hub.publish(a, *now).expect("publish");
            delivered += pump(hub);
        }
        delivered
    };

    let warm = publish_batch(&mut hub, 2_000, &mut now);
    let before = hub.capacities();
    assert!(before.queues_max > 0 && before.events >= SUBSCRIBERS / 4);
    let delivered = publish_batch(&mut hub, 10_000, &mut now);
    let after = hub.capacities();
    assert_eq!(before, after, "no buffer grew");
    assert_eq!(after.ring, before.ring);

    let stats = hub.stats();
    assert_eq!(stats.deliveries, warm + delivered);
    assert_eq!(stats.enqueued, stats.deliveries);
    assert_eq!(stats.retained, 1_000);
    assert_eq!(stats.slow_consumer_disconnects, 0);
    // 200 province-wide alerts alone reach over 5 000 subscribers each.
    assert!(delivered > 500_000, "{delivered} deliveries");
}

/// A burst queued for a subscriber that read nothing meanwhile (an incident's flood) does not
/// leave its queue that large once it is drained: a connection that lasts weeks keeps a few
/// places, not the burst's.
#[test]
fn a_drained_burst_leaves_no_large_queue_behind() {
    let tree = RegionTree::zhejiang();
    let mut hub = Hub::new(&tree, HubConfig::default());
    let now = Instant::now();
    let sub = hub
        .subscribe(Filter::all(tree.root()), None, now)
        .expect("subscribe");
    let frame = Bytes::from(vec![b'x'; 300]);
    for seq in 1..=200 {
        let a = alert(seq, tree.root(), AlertKind::Food, Severity::Severe, &frame);
        hub.publish(a, now).expect("publish");
    }
    assert!(hub.capacities().queues_max >= 200, "the burst queued");
    let mut delivered = 0;
    while hub.pop(sub).is_some() {
        delivered += 1;
    }
    assert_eq!(delivered, 200);
    let left = hub.capacities().queues_max;
    assert!(left <= 8, "{left} places kept after the burst");
}
