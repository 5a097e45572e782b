//! Filter matrix: alert areas × subscriber regions × kinds × severities on the real Zhejiang
//! tree. Expected results are written out as tables below, not computed by the hub's logic.
//! Every subscriber is checked twice: live (subscribed before the publishes) and through a
//! replay (subscribed after, `since = 0`), which take different code paths in the hub.

mod hub_util;

use hub_util::{alert, code};

use std::time::Instant;

use alerts::hub::{AlertKind, Delivery, Filter, Hub, HubConfig, KindSet, Severity, SubId};
use bytes::Bytes;
use tiers::RegionTree;

use AlertKind::{Consumer, Food, Market, SpotCheck};
use Severity::{Extreme, Minor, Moderate, Severe, Unknown};

/// Subscriber regions (table columns).
const SUB_REGIONS: [u32; 6] = [
    330_000, // P: the province
    330_100, // HZ: Hangzhou
    330_106, // XH: Xihu District, a Hangzhou county
    330_102, // SC: Shangcheng District, Xihu's sibling county
    330_200, // NB: Ningbo, Hangzhou's sibling city
    330_203, // HS: Haishu District, a county in Ningbo (another subtree)
];

/// Alert areas (rows) and who gets them: `x` = delivered (once), `.` = not delivered.
/// Columns: P HZ XH SC NB HS.
const REGION_TABLE: [(&[u32], &str); 8] = [
    (&[330_106], "xxx..."),          // county: own, parent city, province
    (&[330_100], "xxxx.."),          // city: itself, province, its child counties
    (&[330_000], "xxxxxx"),          // province: everyone
    (&[330_203], "x...xx"),          // other subtree: province, Ningbo, Haishu
    (&[330_106, 330_102], "xxxx.."), // two sibling counties: once each
    (&[330_106, 330_100], "xxxx.."), // county and its own city: deduplicated
    (&[330_106, 330_203], "xxx.xx"), // areas in two subtrees
    (&[320_000], "......"),          // Jiangsu: outside the tree, nobody
];

/// Subscriber kind/severity filters (rows of `KIND_TABLE`).
fn filters() -> [(KindSet, Severity); 4] {
    [
        (KindSet::ALL, Unknown),
        (KindSet::only(Food), Moderate),
        (KindSet::only(SpotCheck).with(Consumer), Severe),
        (KindSet::only(Market), Extreme),
    ]
}

/// Alert kind and severity (columns of `KIND_TABLE`).
const KIND_SEV: [(AlertKind, Severity); 8] = [
    (Food, Minor),
    (Food, Moderate),
    (Food, Extreme),
    (SpotCheck, Severe),
    (Consumer, Moderate),
    (Market, Extreme),
    (Market, Severe),
    (SpotCheck, Unknown),
];

/// Rows: the filters above; columns: `KIND_SEV`.
const KIND_TABLE: [&str; 4] = [
    "xxxxxxxx", // all kinds, any severity
    ".xx.....", // food, moderate and up
    "...x....", // spot-check or consumer, severe and up
    ".....x..", // market, extreme only
];

fn drain(hub: &mut Hub, sub: SubId) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(d) = hub.pop(sub) {
        match d {
            Delivery::Alert { seq, frame } => {
                assert_eq!(frame, Bytes::from(format!("frame {seq}")));
                seqs.push(seq);
            }
            Delivery::Reset { .. } => panic!("no reset expected"),
        }
    }
    seqs
}

/// Sequence number of the alert in region row `r`, kind/severity column `k`.
fn seq_of(r: usize, k: usize) -> u64 {
    (r * KIND_SEV.len() + k + 1) as u64
}

fn expected(col: usize, f: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for (r, (_, row)) in REGION_TABLE.iter().enumerate() {
        for k in 0..KIND_SEV.len() {
            if row.as_bytes()[col] == b'x' && KIND_TABLE[f].as_bytes()[k] == b'x' {
                out.push(seq_of(r, k));
            }
        }
    }
    out
}

fn subscribe_all(hub: &mut Hub, since: Option<u64>, now: Instant) -> Vec<(usize, usize, SubId)> {
    let mut subs = Vec::new();
    for (col, &region) in SUB_REGIONS.iter().enumerate() {
        for (f, (kinds, min_severity)) in filters().into_iter().enumerate() {
            let filter = Filter {
                region: code(region),
                kinds,
                min_severity,
            };
            let id = hub.subscribe(filter, since, now).expect("subscribe");
            subs.push((col, f, id));
        }
    }
    subs
}

#[test]
fn regions_kinds_severities_matrix() {
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let live = subscribe_all(&mut hub, None, now);
    for (r, (regions, _)) in REGION_TABLE.iter().enumerate() {
        for (k, &(kind, severity)) in KIND_SEV.iter().enumerate() {
            hub.publish(alert(seq_of(r, k), regions, kind, severity), now)
                .expect("publish");
        }
    }
    let replay = subscribe_all(&mut hub, Some(0), now);
    let mut total = 0;
    for (col, f, id) in live.into_iter().chain(replay) {
        let got = drain(&mut hub, id);
        let want = expected(col, f);
        assert_eq!(got, want, "subscriber at {} filter #{f}", SUB_REGIONS[col]);
        total += want.len();
    }
    let stats = hub.stats();
    assert_eq!(stats.deliveries, total as u64);
    assert_eq!(stats.replayed * 2, stats.deliveries, "replay = live");
    assert_eq!(stats.published, 64);
    assert_eq!(stats.unrouted, 8, "the Jiangsu row");
    assert_eq!(stats.published_by_kind, [24, 16, 8, 16]);
}

#[test]
fn spot_checks() {
    // A few cells of the tables, spelled out in full.
    assert_eq!(expected(2, 0), {
        // Xihu, everything: rows 0,1,2,4,5,6 (not Haishu-only, not Jiangsu), all 8 columns.
        let rows = [0, 1, 2, 4, 5, 6];
        rows.iter()
            .flat_map(|&r| (0..8).map(move |k| seq_of(r, k)))
            .collect::<Vec<_>>()
    });
    assert_eq!(
        expected(4, 3),
        vec![seq_of(2, 5), seq_of(3, 5), seq_of(6, 5)]
    );
    assert!(expected(3, 3).contains(&seq_of(1, 5)) && !expected(3, 3).contains(&seq_of(0, 5)));
}

#[test]
fn bad_filters_are_rejected() {
    let now = Instant::now();
    let mut hub = Hub::new(&RegionTree::zhejiang(), HubConfig::default());
    let outside = Filter::all(code(320_000));
    assert!(hub.subscribe(outside, None, now).is_err());
    let none = Filter {
        kinds: KindSet::EMPTY,
        ..Filter::all(code(330_100))
    };
    assert!(hub.subscribe(none, None, now).is_err());
    hub.publish(alert(5, &[330_100], Food, Minor), now)
        .expect("first");
    assert!(hub.publish(alert(5, &[330_100], Food, Minor), now).is_err());
    assert!(hub.publish(alert(4, &[330_100], Food, Minor), now).is_err());
    assert_eq!(hub.stats().rejected, 2);
}
