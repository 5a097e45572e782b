//! Recovery edge cases, each spelled out: `since` inside a gap in the sequence, at the floor a
//! restarted hub resumes after, ahead of this hub (a client that saw more on another node),
//! older than retention by count or by age; replays honour kind filters; unsubscribing during a
//! replay; the `Ready` that starts a replay.

mod hub_util;

use hub_util::{alert, code};

use std::time::{Duration, Instant};

use alerts::hub::{AlertKind, Delivery, Filter, Hub, HubConfig, HubEvent, KindSet, Severity};
use bytes::Bytes;
use tiers::RegionTree;

#[test]
fn since_edges_gaps_floor_and_age() {
    let tree = RegionTree::zhejiang();
    let t0 = Instant::now();
    let config = HubConfig {
        retain_age: Duration::from_secs(60),
        ..HubConfig::default()
    };
    // The store already held 1..=100 when this hub started.
    let mut hub = Hub::resuming_after(&tree, config, 100);
    let all = Filter::all(code(330_000));
    for (i, seq) in [110, 120, 130].into_iter().enumerate() {
        let at = t0 + Duration::from_secs(10 * i as u64);
        hub.publish(alert(seq, &[330_100], AlertKind::Food, Severity::Minor), at)
            .expect("publish");
    }
    let drain = |hub: &mut Hub, since: Option<u64>, now: Instant| -> Vec<Delivery> {
        let id = hub.subscribe(all, since, now).expect("subscribe");
        std::iter::from_fn(|| hub.pop(id)).collect()
    };
    let a = |seq: u64| Delivery::Alert {
        seq,
        frame: Bytes::from(format!("frame {seq}")),
    };
    let reset = |oldest_available| Delivery::Reset { oldest_available };
    assert_eq!(
        drain(&mut hub, Some(50), t0),
        vec![reset(110), a(110), a(120), a(130)]
    );
    assert_eq!(
        drain(&mut hub, Some(100), t0),
        vec![a(110), a(120), a(130)],
        "floor: nothing missed"
    );
    assert_eq!(
        drain(&mut hub, Some(115), t0),
        vec![a(120), a(130)],
        "since inside a gap"
    );
    assert_eq!(drain(&mut hub, Some(130), t0), vec![]);
    // A client ahead of this hub (140: a restored store, a log that lost its newest
    // entries, a bogus value; a driver first waits for a lagging log to catch up) gets a
    // reset and everything retained, then live alerts: never a silent skip up to 140.
    let ahead = hub.subscribe(all, Some(140), t0).expect("subscribe");
    assert_eq!(
        std::iter::from_fn(|| hub.pop(ahead)).collect::<Vec<_>>(),
        vec![reset(110), a(110), a(120), a(130)]
    );
    let t20 = t0 + Duration::from_secs(20);
    hub.publish(
        alert(135, &[330_100], AlertKind::Food, Severity::Minor),
        t20,
    )
    .expect("publish");
    hub.publish(
        alert(145, &[330_100], AlertKind::Food, Severity::Minor),
        t20,
    )
    .expect("publish");
    assert_eq!(
        std::iter::from_fn(|| hub.pop(ahead)).collect::<Vec<_>>(),
        vec![a(135), a(145)]
    );
    // 60 s after it arrived, 110 leaves the replay window.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(
        drain(&mut hub, Some(100), later),
        vec![reset(120), a(120), a(130), a(135), a(145)]
    );
    assert_eq!(
        drain(&mut hub, Some(110), later),
        vec![a(120), a(130), a(135), a(145)]
    );
    hub.handle_timeout(t0 + Duration::from_secs(1000), 0);
    assert_eq!(
        drain(&mut hub, Some(145), t0),
        vec![],
        "all evicted, nothing missed"
    );
    assert_eq!(drain(&mut hub, Some(144), t0), vec![reset(146)]);
}

#[test]
fn kinds_of_the_filter_apply_to_replay() {
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let now = Instant::now();
    for (seq, kind) in [
        (1, AlertKind::Food),
        (2, AlertKind::Market),
        (3, AlertKind::Food),
    ] {
        hub.publish(alert(seq, &[330_102], kind, Severity::Severe), now)
            .expect("publish");
    }
    let f = Filter {
        kinds: KindSet::only(AlertKind::Market),
        ..Filter::all(code(330_100))
    };
    let id = hub.subscribe(f, Some(0), now).expect("subscribe");
    let got: Vec<Delivery> = std::iter::from_fn(|| hub.pop(id)).collect();
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], Delivery::Alert { seq: 2, .. }));
}

#[test]
fn replay_starts_with_ready_and_can_be_abandoned() {
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let now = Instant::now();
    for seq in 1..=5 {
        hub.publish(
            alert(seq, &[330_106], AlertKind::Food, Severity::Minor),
            now,
        )
        .expect("publish");
    }
    let live = hub
        .subscribe(Filter::all(code(330_100)), Some(5), now)
        .expect("subscribe");
    assert_eq!(hub.poll_event(), None, "nothing to replay: no Ready");
    let replaying = hub
        .subscribe(Filter::all(code(330_100)), Some(2), now)
        .expect("subscribe");
    assert_eq!(hub.poll_event(), Some(HubEvent::Ready { sub: replaying }));
    assert!(matches!(
        hub.pop(replaying),
        Some(Delivery::Alert { seq: 3, .. })
    ));
    assert_eq!(hub.stats().replaying, 1);
    assert!(hub.unsubscribe(replaying));
    assert_eq!(hub.stats().replaying, 0);
    assert_eq!(hub.pop(replaying), None);
    hub.publish(alert(6, &[330_106], AlertKind::Food, Severity::Minor), now)
        .expect("publish");
    assert_eq!(hub.poll_event(), Some(HubEvent::Ready { sub: live }));
    assert!(matches!(
        hub.pop(live),
        Some(Delivery::Alert { seq: 6, .. })
    ));
    assert_eq!(hub.pop(live), None);
    assert_eq!(hub.stats().subscribers, 1);
}

/// After a restore the store numbers on above what it gave out before (`skip_to`): a client
/// holding one of those numbers is not ahead (no reset, no replay of what it saw), and the
/// next alert reaches it and a client from before the skipped numbers alike.
#[test]
fn numbers_skipped_by_a_restore_are_not_ahead() {
    let tree = RegionTree::zhejiang();
    let t0 = Instant::now();
    let mut hub = Hub::new(&tree, HubConfig::default());
    for seq in 1..=3 {
        hub.publish(alert(seq, &[330_100], AlertKind::Food, Severity::Minor), t0)
            .expect("publish");
    }
    // The restored store had given out 4 and 5 before the restore.
    hub.skip_to(5);
    hub.skip_to(4);
    assert_eq!(hub.last_seq(), 5, "never moves back");
    let all = Filter::all(code(330_000));
    let saw_five = hub.subscribe(all, Some(5), t0).expect("subscribe");
    let saw_three = hub.subscribe(all, Some(3), t0).expect("subscribe");
    assert_eq!(hub.pop(saw_five), None, "not ahead: no reset");
    assert_eq!(hub.pop(saw_three), None, "nothing between 3 and 5 exists");
    hub.publish(alert(6, &[330_100], AlertKind::Food, Severity::Minor), t0)
        .expect("6 follows the skipped numbers");
    let six = Delivery::Alert {
        seq: 6,
        frame: Bytes::from("frame 6"),
    };
    assert_eq!(hub.pop(saw_five), Some(six.clone()));
    assert_eq!(hub.pop(saw_three), Some(six));
}
