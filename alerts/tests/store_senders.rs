//! Who may publish what, in the SQLite store: a reference reaching a region the publisher may
//! not publish to fails the append itself; the first region to publish under
//! a sender owns it and another region's append (new or a re-post) is refused with nothing
//! written; a configured owner rebinds it; a file of schema version 1 binds every stored
//! sender to the region of its first publisher label when it is migrated.

mod store_util;

use alerts::store::{Publisher, SenderRule, SqliteStore, Store, StoreError};
use store_util::*;

fn as_region<'a>(label: &'a str, region: &str, rule: SenderRule) -> Publisher<'a> {
    Publisher {
        label,
        region: code(region),
        rule,
        may_reach: None,
    }
}

/// `alert` under another sender (and so another CAP identity).
fn under(sender: &str, alert: &alerts::cap::Alert) -> alerts::cap::Alert {
    let mut alert = alert.clone();
    alert.sender = sender.to_owned();
    alert
}

fn refused_for(err: StoreError, owner: &str) {
    match err {
        StoreError::SenderTaken { owner: o, .. } => assert_eq!(o, code(owner)),
        other => panic!("expected SenderTaken, got {other}"),
    }
}

#[test]
fn the_first_region_to_publish_under_a_sender_owns_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let city = as_region("city-admin@330100 hz", "330100", SenderRule::FirstUse);
    let county = as_region("county-operator@330106 xh", "330106", SenderRule::FirstUse);
    let food = parse(FOOD);
    let spot = parse(SPOT);
    assert_eq!(food.sender, spot.sender, "the samples share one sender");

    let first = store.append(&food, "raw", &city, 1).expect("first use");
    assert!(first.created);

    // Another region: a new alert under the sender is refused and nothing is written.
    let err = store.append(&spot, "raw", &county, 2).expect_err("taken");
    let message = err.to_string();
    refused_for(err, "330100");
    assert!(message.contains("330100"), "{message}");
    assert_eq!(store.last_seq().expect("last"), 1, "nothing stored");
    // Nor may it have the city's alert confirmed by re-posting it.
    let err = store.append(&food, "raw", &county, 3).expect_err("re-post");
    refused_for(err, "330100");
    // The owner re-posts (200-style) and publishes more; the county uses its own sender.
    let again = store.append(&food, "raw", &city, 4).expect("owner re-post");
    assert!(!again.created);
    assert!(store.append(&spot, "raw", &city, 5).expect("owner").created);
    let own = under("scjg.xihu.hz.gov.cn", &spot);
    assert!(
        store
            .append(&own, "raw", &county, 6)
            .expect("own sender")
            .created
    );
    assert_eq!(store.last_seq().expect("last"), 3);
    // A refused append did not take the sender: the county's own sender is its own now.
    let err = (store.append(&under("scjg.xihu.hz.gov.cn", &food), "raw", &city, 7))
        .expect_err("the city may not use the county's sender either");
    refused_for(err, "330106");
}

#[test]
fn a_configured_owner_takes_the_sender_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let food = parse(FOOD);
    let spot = parse(SPOT);
    let county = as_region("county-operator@330106 xh", "330106", SenderRule::FirstUse);
    assert!(
        store
            .append(&food, "raw", &county, 1)
            .expect("first")
            .created
    );
    // Config names the province as the owner (the HTTP layer refused everyone else).
    let province = as_region("province-admin@330000 zj", "330000", SenderRule::Configured);
    assert!(
        store
            .append(&spot, "raw", &province, 2)
            .expect("configured")
            .created
    );
    // From then on the binding is the province's, even for first-use appends.
    let err = (store.append(&under(&spot.sender, &parse(UPDATE)), "raw", &county, 3))
        .expect_err("the county lost it");
    refused_for(err, "330000");
    let province_first = as_region("province-admin@330000 zj", "330000", SenderRule::FirstUse);
    let update = store.append(&parse(UPDATE), "raw", &province_first, 4);
    assert!(update.expect("owner").created);
}

#[test]
fn migrating_a_version_1_file_binds_stored_senders_to_their_first_publisher() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        let city = as_region("city-admin@330100 hz", "330100", SenderRule::FirstUse);
        store.append(&parse(FOOD), "raw", &city, 1).expect("food");
        // A label without a region (not written by the HTTP layer) binds nothing.
        let hand = as_region("import", "330106", SenderRule::FirstUse);
        let other = under("scjg.other.gov.cn", &parse(SPOT));
        store.append(&other, "raw", &hand, 2).expect("other");
    }
    {
        // Back to version 1: no senders table (nor version 3's column, version 4's queue).
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(BACK_TO_VERSION_4)
            .expect("back to version 4");
        conn.execute_batch(
            "DROP TABLE senders; ALTER TABLE alerts DROP COLUMN inherited_targets;
             DROP TABLE reindex; PRAGMA user_version = 1;",
        )
        .expect("downgrade");
    }
    let store = SqliteStore::open(&path).expect("reopen migrates");
    let county = as_region("county-operator@330106 xh", "330106", SenderRule::FirstUse);
    let err = store
        .append(&parse(SPOT), "raw", &county, 3)
        .expect_err("bound");
    refused_for(err, "330100");
    let city = as_region("city-admin@330100 hz", "330100", SenderRule::FirstUse);
    assert!(
        store
            .append(&parse(UPDATE), "raw", &city, 4)
            .expect("owner")
            .created
    );
    // The unbound sender is free: the first region to use it now owns it.
    let free = under("scjg.other.gov.cn", &parse(FOOD));
    assert!(
        store
            .append(&free, "raw", &county, 5)
            .expect("free")
            .created
    );
    let err = (store.append(&under("scjg.other.gov.cn", &parse(FOOD)), "raw", &city, 6))
        .expect_err("now the county's");
    refused_for(err, "330106");
}

#[test]
fn a_reference_reaching_beyond_the_publisher_is_refused_inside_the_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let city = as_region("city-admin@330100 hz", "330100", SenderRule::FirstUse);
    let food = store.append(&parse(FOOD), "raw", &city, 1).expect("food");
    assert_eq!(food.alert.regions, vec![code("330100")]);
    // A county (its own sender) updates the city's alert: the update would reach 330100.
    let county_only = |r: tiers::RegionCode| r == code("330106");
    let county = Publisher {
        may_reach: Some(&county_only),
        ..as_region("county-operator@330106 xh", "330106", SenderRule::FirstUse)
    };
    let update = under("scjg.xihu.hz.gov.cn", &parse(UPDATE));
    match store.append(&update, "raw", &county, 2) {
        Err(StoreError::ReferenceOutOfReach { region, reference }) => {
            assert_eq!(region, code("330100"));
            assert!(reference.contains("scjg.hangzhou.gov.cn"), "{reference}");
        }
        other => panic!("expected ReferenceOutOfReach, got {other:?}"),
    }
    assert_eq!(store.last_seq().expect("last"), 1, "nothing stored");
    // Whoever may reach the city may update it, and the update inherits what was checked.
    let zhejiang = |r: tiers::RegionCode| r.as_u32() / 10_000 == 33;
    let province = Publisher {
        may_reach: Some(&zhejiang),
        ..as_region("province-admin@330000 zj", "330000", SenderRule::FirstUse)
    };
    let update = under("scjg.zj.gov.cn", &parse(UPDATE));
    let stored = store
        .append(&update, "raw", &province, 3)
        .expect("in reach");
    assert_eq!(stored.alert.references, vec![food.seq]);
}
