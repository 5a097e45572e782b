//! Slow consumers: a subscriber that stops draining is disconnected (4008 "slow consumer") as
//! soon as its queue would exceed its capacity, nobody else misses anything, and it recovers
//! every alert by resubscribing with its last sequence number. A replay longer than the queue
//! capacity is not a slow consumer; a replay overtaken by retention is, and recovers with a
//! `Reset`.

use std::collections::BTreeMap;
use std::time::Instant;

use alerts::hub::{
    AlertKind, Delivery, DisconnectReason, Filter, Hub, HubConfig, HubEvent, MsgType,
    PublishedAlert, Severity, SubId,
};
use bytes::Bytes;
use tiers::{RegionCode, RegionTree};

fn code(c: u32) -> RegionCode {
    RegionCode::from_u32(c).expect("valid code")
}

fn alert(seq: u64, region: u32) -> PublishedAlert {
    PublishedAlert {
        seq,
        id: format!("alert-{seq}"),
        kind: AlertKind::Consumer,
        severity: Severity::Moderate,
        regions: vec![code(region)],
        msg_type: MsgType::Alert,
        references: Vec::new(),
        inherited: Vec::new(),
        expires: None,
        frame: Bytes::from(format!("frame {seq}")),
    }
}

fn pop_all(hub: &mut Hub, sub: SubId, out: &mut Vec<Delivery>) {
    while let Some(d) = hub.pop(sub) {
        out.push(d);
    }
}

fn seqs(ds: &[Delivery]) -> Vec<u64> {
    ds.iter()
        .filter_map(|d| match d {
            Delivery::Alert { seq, .. } => Some(*seq),
            Delivery::Reset { .. } => None,
        })
        .collect()
}

/// Drives the hub like a driver: every `Ready` wakes its subscriber, which pops until `None`,
/// except `stalled`, which never reads. Returns the disconnects seen.
fn pump(
    hub: &mut Hub,
    got: &mut BTreeMap<SubId, Vec<Delivery>>,
    stalled: Option<SubId>,
) -> Vec<(SubId, DisconnectReason)> {
    let mut gone = Vec::new();
    while let Some(ev) = hub.poll_event() {
        match ev {
            HubEvent::Ready { sub } if Some(sub) != stalled => {
                pop_all(hub, sub, got.entry(sub).or_default());
            }
            HubEvent::Ready { .. } => {}
            HubEvent::Disconnect { sub, reason } => gone.push((sub, reason)),
        }
    }
    gone
}

#[test]
fn stalled_subscriber_is_cut_off_and_recovers() {
    let now = Instant::now();
    let config = HubConfig {
        queue_capacity: 8,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(&RegionTree::zhejiang(), config);
    let fast: Vec<SubId> = [330_000, 330_100, 330_106]
        .into_iter()
        .map(|r| hub.subscribe(Filter::all(code(r)), None, now).expect("sub"))
        .collect();
    let slow = hub
        .subscribe(Filter::all(code(330_106)), None, now)
        .expect("sub");
    let mut got = BTreeMap::new();

    for seq in 1..=8 {
        hub.publish(alert(seq, 330_106), now).expect("publish");
        assert!(
            pump(&mut hub, &mut got, Some(slow)).is_empty(),
            "queue not yet over capacity"
        );
    }
    hub.publish(alert(9, 330_106), now).expect("publish");
    let gone = pump(&mut hub, &mut got, Some(slow));
    assert_eq!(gone, vec![(slow, DisconnectReason::SlowConsumer)]);
    assert_eq!(gone[0].1.close_code(), 4008);
    assert_eq!(gone[0].1.as_str(), "slow consumer");
    assert_eq!(hub.pop(slow), None, "its queue was dropped");
    assert!(!hub.unsubscribe(slow), "already gone");

    for seq in 10..=100 {
        hub.publish(alert(seq, 330_106), now).expect("publish");
        assert!(pump(&mut hub, &mut got, None).is_empty());
    }
    let all: Vec<u64> = (1..=100).collect();
    for f in &fast {
        assert_eq!(seqs(&got[f]), all, "fast subscribers are never delayed");
    }
    let stats = hub.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1);
    assert_eq!(stats.subscribers, 3);

    // The stalled client never read anything: it reconnects with since = 0 and gets all 100,
    // far more than its queue capacity, without being cut off, while alerts keep coming.
    let back = hub
        .subscribe(Filter::all(code(330_106)), Some(0), now)
        .expect("resubscribe");
    let mut replayed = Vec::new();
    for seq in 101..=130 {
        for _ in 0..5 {
            if let Some(d) = hub.pop(back) {
                replayed.push(d);
            }
        }
        hub.publish(alert(seq, 330_106), now).expect("publish");
        assert!(pump(&mut hub, &mut got, Some(back)).is_empty());
    }
    pop_all(&mut hub, back, &mut replayed);
    assert_eq!(seqs(&replayed), (1..=130).collect::<Vec<_>>());
    assert_eq!(replayed.len(), 130, "no reset: everything was retained");
    // Caught up: now live, and the queue bound applies again.
    hub.publish(alert(131, 330_106), now).expect("publish");
    pump(&mut hub, &mut got, Some(back));
    pop_all(&mut hub, back, &mut replayed);
    assert_eq!(seqs(&replayed).last(), Some(&131));
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);
}

#[test]
fn replay_overtaken_by_retention_is_slow_and_recovers_with_reset() {
    let now = Instant::now();
    let config = HubConfig {
        queue_capacity: 4,
        retain_count: 10,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(&RegionTree::zhejiang(), config);
    for seq in 1..=10 {
        hub.publish(alert(seq, 330_100), now).expect("publish");
    }
    let sub = hub
        .subscribe(Filter::all(code(330_100)), Some(0), now)
        .expect("sub");
    let mut got = Vec::new();
    got.extend(hub.pop(sub));
    got.extend(hub.pop(sub));
    assert_eq!(seqs(&got), vec![1, 2]);
    // Eight more alerts evict 1..=8: the cursor (at 3) is overtaken.
    for seq in 11..=18 {
        hub.publish(alert(seq, 330_100), now).expect("publish");
    }
    let mut ignore = BTreeMap::new();
    let gone = pump(&mut hub, &mut ignore, Some(sub));
    assert_eq!(gone, vec![(sub, DisconnectReason::SlowConsumer)]);

    let back = hub
        .subscribe(Filter::all(code(330_100)), Some(2), now)
        .expect("resubscribe");
    let mut after = Vec::new();
    pop_all(&mut hub, back, &mut after);
    assert_eq!(
        after[0],
        Delivery::Reset {
            oldest_available: 9
        }
    );
    assert_eq!(seqs(&after), (9..=18).collect::<Vec<_>>());
    assert_eq!(hub.stats().resets, 1);
}
