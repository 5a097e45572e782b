//! Update and Cancel semantics and the live set: an Update or Cancel reaches everyone who
//! received the original (even when it narrows the area or lowers the severity) plus its own
//! audience; superseded, cancelled and expired alerts leave the live set (the Atom feed).

use std::time::{Duration, Instant};

use alerts::hub::{
    AlertKind, Delivery, Filter, Hub, HubConfig, Inherited, KindSet, MsgType, PublishedAlert,
    Severity, SubId,
};
use bytes::Bytes;
use tiers::{RegionCode, RegionTree};

const P: u32 = 330_000;
const HZ: u32 = 330_100;
const XIHU: u32 = 330_106;
const SHANGCHENG: u32 = 330_102;
const NINGBO: u32 = 330_200;

fn code(c: u32) -> RegionCode {
    RegionCode::from_u32(c).expect("valid code")
}

fn msg(
    seq: u64,
    msg_type: MsgType,
    regions: &[u32],
    severity: Severity,
    refs: &[u64],
) -> PublishedAlert {
    PublishedAlert {
        seq,
        id: format!("alert-{seq}"),
        kind: AlertKind::Food,
        severity,
        regions: regions.iter().map(|&c| code(c)).collect(),
        msg_type,
        references: refs.to_vec(),
        inherited: Vec::new(),
        expires: None,
        frame: Bytes::from(format!("frame {seq}")),
    }
}

fn drain(hub: &mut Hub, sub: SubId) -> Vec<u64> {
    std::iter::from_fn(|| hub.pop(sub))
        .map(|d| match d {
            Delivery::Alert { seq, .. } => seq,
            Delivery::Reset { .. } => panic!("no reset expected"),
        })
        .collect()
}

fn sub(hub: &mut Hub, region: u32, kinds: KindSet, min: Severity, now: Instant) -> SubId {
    let filter = Filter {
        region: code(region),
        kinds,
        min_severity: min,
    };
    hub.subscribe(filter, None, now).expect("subscribe")
}

fn live_ids(hub: &Hub, filter: Filter) -> Vec<u64> {
    hub.live_alerts(filter).map(|a| a.seq).collect()
}

#[test]
fn update_and_cancel_reach_the_original_audience() {
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let food = KindSet::only(AlertKind::Food);
    // Wants only severe food alerts in Xihu.
    let xihu_severe = sub(&mut hub, XIHU, food, Severity::Severe, now);
    // Everything in Shangcheng (a sibling county of Xihu).
    let shangcheng = sub(&mut hub, SHANGCHENG, KindSet::ALL, Severity::Unknown, now);
    // Ningbo: never involved.
    let ningbo = sub(&mut hub, NINGBO, KindSet::ALL, Severity::Unknown, now);
    // Spot-checks only in Hangzhou: the kind never matches.
    let hz_spot = sub(
        &mut hub,
        HZ,
        KindSet::only(AlertKind::SpotCheck),
        Severity::Unknown,
        now,
    );

    // 1: a severe food alert for Xihu.
    hub.publish(msg(1, MsgType::Alert, &[XIHU], Severity::Severe, &[]), now)
        .expect("publish");
    // 2: update: downgraded to Minor and moved to Shangcheng. Xihu-severe received 1, so it
    //    gets 2 although 2 alone would not match it; Shangcheng matches 2 itself.
    hub.publish(
        msg(2, MsgType::Update, &[SHANGCHENG], Severity::Minor, &[1]),
        now,
    )
    .expect("publish");
    // 3: update of the update (chain): still reaches Xihu-severe.
    hub.publish(
        msg(3, MsgType::Update, &[SHANGCHENG], Severity::Minor, &[2]),
        now,
    )
    .expect("publish");
    // 4: cancel of 3 with an area in Ningbo: everyone who had 1, 2 or 3, plus Ningbo.
    hub.publish(
        msg(4, MsgType::Cancel, &[NINGBO], Severity::Minor, &[3]),
        now,
    )
    .expect("publish");
    // 5: unrelated minor alert in Xihu: not for Xihu-severe.
    hub.publish(msg(5, MsgType::Alert, &[XIHU], Severity::Minor, &[]), now)
        .expect("publish");

    assert_eq!(drain(&mut hub, xihu_severe), vec![1, 2, 3, 4]);
    assert_eq!(drain(&mut hub, shangcheng), vec![2, 3, 4]);
    assert_eq!(drain(&mut hub, ningbo), vec![4]);
    assert!(drain(&mut hub, hz_spot).is_empty());

    // The same through recovery: a late Xihu-severe subscriber replaying from 0.
    let filter = Filter {
        region: code(XIHU),
        kinds: food,
        min_severity: Severity::Severe,
    };
    let late = hub.subscribe(filter, Some(0), now).expect("subscribe");
    assert_eq!(drain(&mut hub, late), vec![1, 2, 3, 4]);

    // Live set: 1 superseded by 2, 2 by 3, 3 cancelled by 4; 4 is a cancel; 5 is live.
    assert_eq!(live_ids(&hub, Filter::all(code(P))), vec![5]);
}

#[test]
fn live_set_filters_and_expiry() {
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let mut a = msg(1, MsgType::Alert, &[XIHU], Severity::Moderate, &[]);
    a.expires = Some(1_000);
    let mut b = msg(2, MsgType::Alert, &[HZ], Severity::Extreme, &[]);
    b.kind = AlertKind::Market;
    b.expires = Some(2_000);
    let c = msg(3, MsgType::Alert, &[NINGBO], Severity::Minor, &[]);
    for m in [a, b, c] {
        hub.publish(m, now).expect("publish");
    }
    assert_eq!(live_ids(&hub, Filter::all(code(P))), vec![1, 2, 3]);
    assert_eq!(
        live_ids(&hub, Filter::all(code(XIHU))),
        vec![1, 2],
        "county sees its city"
    );
    assert_eq!(
        live_ids(&hub, Filter::all(code(HZ))),
        vec![1, 2],
        "city sees its county"
    );
    assert_eq!(live_ids(&hub, Filter::all(code(SHANGCHENG))), vec![2]);
    assert_eq!(
        live_ids(&hub, Filter::all(code(320_000))),
        Vec::<u64>::new()
    );
    let market = Filter {
        kinds: KindSet::only(AlertKind::Market),
        ..Filter::all(code(P))
    };
    assert_eq!(live_ids(&hub, market), vec![2]);
    let severe = Filter {
        min_severity: Severity::Severe,
        ..Filter::all(code(P))
    };
    assert_eq!(live_ids(&hub, severe), vec![2]);

    assert_eq!(hub.poll_timeout(), Some(1_000));
    hub.handle_timeout(now, 999);
    assert_eq!(live_ids(&hub, Filter::all(code(P))), vec![1, 2, 3]);
    hub.handle_timeout(now + Duration::from_secs(1), 1_000);
    assert_eq!(
        live_ids(&hub, Filter::all(code(P))),
        vec![2, 3],
        "expires is exclusive"
    );
    assert_eq!(hub.poll_timeout(), Some(2_000));
    hub.handle_timeout(now + Duration::from_secs(5), 10_000);
    assert_eq!(live_ids(&hub, Filter::all(code(P))), vec![3]);
    assert_eq!(hub.poll_timeout(), None);
    assert_eq!(hub.stats().expired, 2);

    // Expired alerts leave the live set, not the replay window.
    let replay = hub
        .subscribe(Filter::all(code(P)), Some(0), now)
        .expect("subscribe");
    assert_eq!(drain(&mut hub, replay), vec![1, 2, 3]);
}

#[test]
fn updating_an_expiring_alert_moves_the_expiry() {
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let mut a = msg(1, MsgType::Alert, &[XIHU], Severity::Moderate, &[]);
    a.expires = Some(100);
    let mut u = msg(2, MsgType::Update, &[XIHU], Severity::Severe, &[1]);
    u.expires = Some(500);
    hub.publish(a, now).expect("publish");
    hub.publish(u, now).expect("publish");
    assert_eq!(
        hub.poll_timeout(),
        Some(500),
        "the superseded alert's expiry is gone"
    );
    hub.handle_timeout(now, 200);
    assert_eq!(live_ids(&hub, Filter::all(code(XIHU))), vec![2]);
}

#[test]
fn live_set_is_bounded() {
    let now = Instant::now();
    let config = HubConfig {
        max_live: 3,
        ..HubConfig::default()
    };
    let mut hub = Hub::new(&RegionTree::zhejiang(), config);
    for seq in 1..=5 {
        hub.publish(msg(seq, MsgType::Alert, &[HZ], Severity::Minor, &[]), now)
            .expect("publish");
    }
    assert_eq!(live_ids(&hub, Filter::all(code(P))), vec![3, 4, 5]);
    assert_eq!(hub.stats().live_overflow, 2);
}

#[test]
fn cancel_without_areas_reaches_the_original_audience() {
    // CAP lets a Cancel omit areas: it reaches whoever the referenced alert reached.
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let xihu = sub(&mut hub, XIHU, KindSet::ALL, Severity::Unknown, now);
    let ningbo = sub(&mut hub, NINGBO, KindSet::ALL, Severity::Unknown, now);
    hub.publish(msg(1, MsgType::Alert, &[HZ], Severity::Moderate, &[]), now)
        .expect("publish");
    hub.publish(msg(2, MsgType::Cancel, &[], Severity::Moderate, &[1]), now)
        .expect("publish");
    assert_eq!(drain(&mut hub, xihu), vec![1, 2]);
    assert!(drain(&mut hub, ningbo).is_empty());
    assert_eq!(hub.stats().unrouted, 0, "routed by what it cancels");
    assert!(live_ids(&hub, Filter::all(code(P))).is_empty());
    // A cancel of something the hub no longer knows reaches only its own areas (none here).
    hub.publish(msg(3, MsgType::Cancel, &[], Severity::Moderate, &[99]), now)
        .expect("publish");
    assert!(drain(&mut hub, xihu).is_empty());
    assert_eq!(hub.stats().unrouted, 1);
}

/// An Update of an alert the hub no longer holds (from before a restart, or out of the ring
/// and the live set) reaches the original's audience through the targets it carries (the
/// store resolved them at publish time); without them only its own audience would get it.
/// A held original adds its own targets, and a Cancel of a chain carries the whole chain.
#[test]
fn an_update_of_an_alert_no_longer_held_reaches_the_audience_it_carries() {
    let now = Instant::now();
    let original = msg(1, MsgType::Alert, &[XIHU], Severity::Severe, &[]);
    let carried = Inherited {
        region: code(XIHU),
        kind: AlertKind::Food,
        severity: Severity::Severe,
    };
    let food = KindSet::only(AlertKind::Food);
    for carries in [false, true] {
        let mut update = msg(2, MsgType::Update, &[SHANGCHENG], Severity::Minor, &[1]);
        if carries {
            update.inherited = vec![carried];
        }
        // A hub started after the original: it holds nothing numbered 1.
        let mut hub = Hub::resuming_after(&RegionTree::zhejiang(), HubConfig::default(), 1);
        let xihu_severe = sub(&mut hub, XIHU, food, Severity::Severe, now);
        let xihu_spot = sub(
            &mut hub,
            XIHU,
            KindSet::only(AlertKind::SpotCheck),
            Severity::Unknown,
            now,
        );
        let shangcheng = sub(&mut hub, SHANGCHENG, KindSet::ALL, Severity::Unknown, now);
        let ningbo = sub(&mut hub, NINGBO, KindSet::ALL, Severity::Unknown, now);
        hub.publish(update, now).expect("publish");
        let want: Vec<u64> = if carries { vec![2] } else { vec![] };
        assert_eq!(drain(&mut hub, xihu_severe), want, "carries: {carries}");
        assert!(
            drain(&mut hub, xihu_spot).is_empty(),
            "the original's kind only"
        );
        assert_eq!(drain(&mut hub, shangcheng), vec![2]);
        assert!(drain(&mut hub, ningbo).is_empty());
        // A bare Cancel of that update carries the chain: the original's audience and the
        // update's, each with its own kind and severity.
        let mut cancel = msg(3, MsgType::Cancel, &[], Severity::Minor, &[2]);
        cancel.inherited = vec![
            carried,
            Inherited {
                region: code(SHANGCHENG),
                kind: AlertKind::Food,
                severity: Severity::Minor,
            },
        ];
        hub.publish(cancel, now).expect("publish");
        assert_eq!(drain(&mut hub, xihu_severe), vec![3]);
        assert_eq!(drain(&mut hub, shangcheng), vec![3]);
        assert!(drain(&mut hub, ningbo).is_empty());
        assert_eq!(hub.stats().unrouted, 0);
    }
    // Held, the original's targets join even when the update carries none.
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let xihu_severe = sub(&mut hub, XIHU, food, Severity::Severe, now);
    hub.publish(original, now).expect("publish");
    let update = msg(2, MsgType::Update, &[SHANGCHENG], Severity::Minor, &[1]);
    hub.publish(update, now).expect("publish");
    assert_eq!(drain(&mut hub, xihu_severe), vec![1, 2]);
}

#[test]
fn inherited_targets_reduce_to_the_gravest_per_region_and_kind() {
    let t = |region: u32, kind, severity| Inherited {
        region: code(region),
        kind,
        severity,
    };
    let reduced = Inherited::reduce(vec![
        t(XIHU, AlertKind::Food, Severity::Minor),
        t(HZ, AlertKind::Food, Severity::Moderate),
        t(XIHU, AlertKind::Food, Severity::Extreme),
        t(XIHU, AlertKind::SpotCheck, Severity::Minor),
        t(XIHU, AlertKind::Food, Severity::Severe),
    ]);
    assert_eq!(
        reduced,
        vec![
            t(HZ, AlertKind::Food, Severity::Moderate),
            t(XIHU, AlertKind::Food, Severity::Extreme),
            t(XIHU, AlertKind::SpotCheck, Severity::Minor),
        ]
    );
}
