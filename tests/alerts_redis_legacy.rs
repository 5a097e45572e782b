//! A Redis log written before inherited targets were stored, against a real `redis-server`: a
//! record without its `targets` field gets them from what it references when the store reads
//! it (as SQLite's schema 3 backfill does), so an Update of such a record, or a Cancel of it,
//! still reaches the original's audience with the original's severity, whether read by
//! number, by `since` or from the live tail; one whose original is gone from the log is
//! routed, and found in the archive, by the regions it inherited. A log numbered far ahead by
//! hand appends exact integers past 10^14 and refuses to number past 2^53 − 1.

mod alerts_util;
mod common;

use std::process::Command;
use std::time::Duration;

use alerts::cap::Alert;
use alerts::hub::{AlertKind, Inherited, Severity};
use alerts::store::{Publisher, RedisStore, SenderRule, Store, StoreConfig};
use alerts_util::{Fixture, SENDER, cancel_xml, cap_xml};
use common::redis::Redis;
use tiers::RegionCode;

const SENT: &str = "2025-07-01T08:00:00+08:00";

fn alert(xml: &str) -> Alert {
    Alert::from_xml(xml.as_bytes()).expect("fixture parses")
}

fn fixture(identifier: &str, severity: &str) -> String {
    cap_xml(&Fixture {
        identifier,
        kind: "food",
        severity,
        regions: &["330100"],
        sent: SENT,
        headline: "杭州市食品预警",
        description: "旧记录",
    })
}

/// `redis-cli -p PORT ARGS…`, its output.
fn cli(redis: &Redis, args: &[&str]) -> String {
    let port = redis.port.to_string();
    let out = Command::new("redis-cli")
        .args(["-p", &port, "--raw"])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rewrites the log's last entry, `seq`, as an older hubcast wrote it: no `targets` field.
fn strip_targets_of_last(redis: &Redis, seq: u64) {
    let id = format!("{seq}-0");
    let listing = cli(redis, &["XRANGE", "{hubcast}:alerts:log", &id, &id]);
    // `--raw`: the id, then field and value lines; the record is one line of JSON.
    let json = (listing.lines())
        .skip_while(|l| *l != "rec")
        .nth(1)
        .expect("rec value");
    let mut rec: serde_json::Value = serde_json::from_str(json).expect("record");
    assert!(rec["targets"].is_array(), "{rec}");
    rec.as_object_mut().expect("object").remove("targets");
    assert!(cli(redis, &["XDEL", "{hubcast}:alerts:log", &id]).contains('1'));
    let before = format!("{}-0", seq - 1);
    assert!(cli(redis, &["XSETID", "{hubcast}:alerts:log", &before]).contains("OK"));
    let added = cli(
        redis,
        &[
            "XADD",
            "{hubcast}:alerts:log",
            &id,
            "rec",
            &rec.to_string(),
            "raw",
            "raw",
        ],
    );
    assert!(added.contains(&id), "{added}");
}

/// The store over `redis`, its index in `dir`.
fn open_store(redis: &Redis, dir: &std::path::Path) -> RedisStore {
    RedisStore::open(
        &redis.url(),
        "hubcast",
        &dir.join("index.sqlite3"),
        StoreConfig::default(),
    )
    .expect("store")
}

/// The province's publisher.
fn province() -> Publisher<'static> {
    Publisher {
        label: "province-admin@330000 zj",
        region: RegionCode::parse("330000").expect("code"),
        rule: SenderRule::FirstUse,
        may_reach: None,
    }
}

/// A Minor Update `identifier` of `original`, over the same area.
fn update_of(identifier: &str, original: &str) -> String {
    fixture(identifier, "Minor")
        .replacen("<msgType>Alert</msgType>", "<msgType>Update</msgType>", 1)
        .replacen(
            "<scope>Public</scope>",
            &format!("<scope>Public</scope><references>{SENDER},{original},{SENT}</references>"),
            1,
        )
}

#[test]
fn a_record_without_targets_gets_them_from_what_it_references() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tmp");
    let open = || open_store(&redis, dir.path());
    let store = open();
    let hz = RegionCode::parse("330100").expect("code");
    let publisher = province();
    // O: Extreme; U: an Update of O over the same area, Minor.
    let original = store
        .append(&alert(&fixture("O", "Extreme")), "raw", &publisher, 1)
        .expect("O");
    let update = store
        .append(&alert(&update_of("U", "O")), "raw", &publisher, 2)
        .expect("U");
    let extreme = Inherited {
        region: hz,
        kind: AlertKind::Food,
        severity: Severity::Extreme,
    };
    assert_eq!(update.alert.inherited_targets, [extreme]);
    assert_eq!(update.alert.references, [original.seq]);

    strip_targets_of_last(&redis, update.seq);
    drop(store);

    // Read back, U has O's audience again; a bare Cancel of U inherits it, Extreme included.
    let store = open();
    let legacy = store.get(update.seq).expect("get").expect("U");
    assert_eq!(legacy.inherited_targets, [extreme]);
    let since = store.since(0, 10).expect("since");
    assert_eq!(since[1].inherited_targets, [extreme]);
    // The tail that feeds live delivery completes it too (as it must for a record an older
    // instance appends during a rolling upgrade).
    let tailed = (store.tail(0))
        .next(Duration::from_millis(100), 10)
        .expect("tail");
    assert_eq!(tailed.len(), 2);
    assert_eq!(tailed[1].seq, update.seq);
    assert_eq!(tailed[1].inherited_targets, [extreme]);
    let cancel = cancel_xml("C", "U", SENT, "2025-07-01T09:00:00+08:00");
    let cancel = store
        .append(&alert(&cancel), "raw", &publisher, 3)
        .expect("C");
    assert_eq!(cancel.alert.inherited_targets, [extreme]);
    assert!(
        cancel.alert.to_published().inherited.contains(&extreme),
        "routed to the Extreme subscribers of O"
    );
}

/// A record without targets that references a newer record (an older instance's Update of an
/// Update, in a rolling upgrade) inherits that record's whole reach, the grandparent's
/// severity included, not only the referenced record's own severity.
#[test]
fn a_record_without_targets_inherits_the_whole_reach_of_a_newer_original() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tmp");
    let open = || open_store(&redis, dir.path());
    let store = open();
    let publisher = province();
    // O Extreme; U a Minor update of O (inherits O's Extreme); V a Minor update of U.
    store
        .append(&alert(&fixture("O", "Extreme")), "raw", &publisher, 1)
        .expect("O");
    store
        .append(&alert(&update_of("U", "O")), "raw", &publisher, 2)
        .expect("U");
    let v = store
        .append(&alert(&update_of("V", "U")), "raw", &publisher, 3)
        .expect("V");
    let extreme = Inherited {
        region: RegionCode::parse("330100").expect("code"),
        kind: AlertKind::Food,
        severity: Severity::Extreme,
    };
    assert_eq!(v.alert.inherited_targets, [extreme]);
    strip_targets_of_last(&redis, v.seq);
    drop(store);
    let store = open();
    let legacy = store.get(v.seq).expect("get").expect("V");
    assert_eq!(
        legacy.inherited_targets,
        [extreme],
        "O's Extreme, through U"
    );
}

/// A bare Cancel without targets whose original is gone from the log (nothing left to take
/// its audience from) is routed by the regions it inherited, with its own kind and
/// severity; the archive of a new instance, indexing the log afresh, finds it by the same.
#[test]
fn a_record_without_targets_or_a_readable_original_is_found_by_its_inherited_regions() {
    use alerts::store::ArchiveQuery;
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tmp");
    let store = open_store(&redis, dir.path());
    let publisher = province();
    let original = store
        .append(&alert(&fixture("O", "Extreme")), "raw", &publisher, 1)
        .expect("O");
    let cancel = cancel_xml("C", "O", SENT, "2025-07-01T09:00:00+08:00");
    let cancel = store
        .append(&alert(&cancel), "raw", &publisher, 2)
        .expect("C");
    assert!(
        cancel.alert.regions.is_empty(),
        "a bare Cancel has no areas"
    );
    strip_targets_of_last(&redis, cancel.seq);
    let id = format!("{}-0", original.seq);
    assert!(cli(&redis, &["XDEL", "{hubcast}:alerts:log", &id]).contains('1'));
    drop(store);

    let fresh = tempfile::tempdir().expect("tmp");
    let store = open_store(&redis, fresh.path());
    let legacy = store.get(cancel.seq).expect("get").expect("C");
    let hz = RegionCode::parse("330100").expect("code");
    assert!(legacy.inherited_targets.is_empty(), "{legacy:?}");
    assert_eq!(legacy.inherited_regions, [hz]);
    assert_eq!(
        legacy.to_published().regions,
        [hz],
        "routed by what it inherited"
    );
    let ids = |region: &str, min_severity: Severity| -> Vec<String> {
        let page = store
            .query(&ArchiveQuery {
                region: Some(RegionCode::parse(region).expect("code")),
                min_severity,
                ..ArchiveQuery::default()
            })
            .expect("archive");
        page.items.into_iter().map(|a| a.identifier).collect()
    };
    assert_eq!(
        ids("330106", Severity::Severe),
        ["C"],
        "Xihu, under Hangzhou"
    );
    assert!(ids("330200", Severity::Unknown).is_empty(), "Ningbo");
}

/// A log numbered far ahead by something else (an entry added by hand): the next number is
/// written as an integer past 10^14 (Lua's default `%.14g` made `1e+14-0`, which `XADD`
/// refuses), and numbering past 2^53 − 1, where Lua's doubles stop being exact, is a clear
/// error, not a wrong number.
#[test]
fn a_log_numbered_far_ahead_appends_exactly_and_refuses_past_2_pow_53() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("tmp");
    let added = cli(
        &redis,
        &[
            "XADD",
            "{hubcast}:alerts:log",
            "99999999999999-0",
            "rec",
            "{by hand",
            "raw",
            "x",
        ],
    );
    assert!(added.contains("99999999999999-0"), "{added}");
    let store = open_store(&redis, dir.path());
    let publisher = province();
    let next = store
        .append(&alert(&fixture("FAR", "Minor")), "raw", &publisher, 1)
        .expect("appended after the hand-written entry");
    assert_eq!(next.seq, 100_000_000_000_000);
    let listing = cli(
        &redis,
        &["XRANGE", "{hubcast}:alerts:log", "100000000000000-0", "+"],
    );
    assert!(listing.starts_with("100000000000000-0"), "{listing}");
    let known = cli(
        &redis,
        &["HGET", "{hubcast}:alerts:ids", &format!("{SENDER}\nFAR")],
    );
    assert_eq!(known.trim(), "100000000000000");
    assert_eq!(
        store.get(next.seq).expect("get").map(|a| a.identifier),
        Some("FAR".into())
    );

    let top = cli(
        &redis,
        &[
            "XADD",
            "{hubcast}:alerts:log",
            "9007199254740991-0",
            "rec",
            "{by hand",
            "raw",
            "x",
        ],
    );
    assert!(top.contains("9007199254740991-0"), "{top}");
    let refused = store.append(&alert(&fixture("PAST", "Minor")), "raw", &publisher, 2);
    let err = refused.expect_err("no number past 2^53 - 1").to_string();
    assert!(err.contains("2^53-1"), "{err}");
}
