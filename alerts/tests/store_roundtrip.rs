//! The SQLite store's publish path on real files: round trip of the stored XML and JSON,
//! gap-free sequence numbers across reopen and concurrent writers, idempotent re-posts and
//! conflicts, references (unknown → nothing stored; Update/Cancel resolved), input bounds, and
//! the hub's `PublishedAlert` built from a stored alert.

mod store_util;

use std::sync::Arc;

use alerts::cap::{self, Alert, MsgType, write_xml};
use alerts::hub;
use alerts::store::{SqliteStore, Store, StoreConfig, StoreError};
use store_util::*;

#[test]
fn append_then_get_returns_the_normalized_xml_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let food = parse(FOOD);
    let raw = std::str::from_utf8(FOOD).expect("utf-8");
    let a = store
        .append(&food, raw, &by("330100-amr"), 1_000)
        .expect("append");
    assert!(a.created);
    assert_eq!((a.seq, a.id.as_str()), (1, "1"));

    let got = store.get(a.seq).expect("get").expect("stored");
    assert_eq!(got, a.alert, "the append result is what a read returns");
    assert_eq!(got.xml, write_xml(&food), "byte-for-byte");
    assert_eq!(got.alert().expect("stored XML parses"), food);
    assert_eq!(Alert::from_json(got.json.as_bytes()).expect("JSON"), food);
    assert_eq!(store.received_body(1).expect("raw").as_deref(), Some(raw));
    assert_eq!(store.get_by_id("1").expect("by id"), Some(got.clone()));
    assert_eq!(store.get_by_id("01").expect("non-canonical id"), None);
    assert_eq!(store.get(2).expect("absent"), None);
    let by_ident = store.by_identifier(&food.sender, &food.identifier);
    assert_eq!(by_ident.expect("by identifier"), Some(got.clone()));

    assert_eq!(got.kind, hub::AlertKind::Food);
    assert_eq!(got.severity, hub::Severity::Severe);
    assert_eq!(got.msg_type, hub::MsgType::Alert);
    assert_eq!(got.status, cap::Status::Actual);
    assert_eq!(got.regions, food.regions().expect("regions"));
    assert_eq!(got.sent_unix, food.sent.unix_seconds());
    assert_eq!(got.expires_unix, food.expires_at());
    assert_eq!(
        (got.publisher.as_str(), got.received_unix),
        ("330100-amr", 1_000)
    );

    let published = got.to_published();
    assert_eq!(published.seq, 1);
    assert_eq!(published.regions, got.regions);
    assert_eq!(published.expires, food.expires_at().map(|t| t as u64));
    let frame: serde_json::Value = serde_json::from_slice(&published.frame).expect("frame");
    assert_eq!(frame["type"], "alert");
    assert_eq!(frame["seq"], 1);
    assert_eq!(frame["id"], "1");
    assert_eq!(frame["alert"]["identifier"], food.identifier.as_str());
    let alert = cap::alert_from_value(&frame["alert"]).expect("frame carries the CAP JSON");
    assert_eq!(alert, food);
}

#[test]
fn sequence_numbers_are_gap_free_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..3u64 {
        let store = open(&dir);
        assert_eq!(store.last_seq().expect("last"), round * 4);
        for i in 0..4 {
            let spec = Spec {
                identifier: format!("R{round}-{i}"),
                ..Spec::default()
            };
            assert_eq!(append(&store, &alert(&spec)).seq, round * 4 + i + 1);
        }
    }
    let store = open(&dir);
    let all = store.since(0, 500).expect("since");
    assert_eq!(seqs(&all), (1..=12).collect::<Vec<_>>());
    assert_eq!(seqs(&store.since(7, 2).expect("since")), [8, 9]);
    assert!(store.since(12, 10).expect("since").is_empty());
    for bad in [0, 501] {
        assert!(matches!(
            store.since(0, bad),
            Err(StoreError::BadLimit { max: 500, .. })
        ));
    }
}

#[test]
fn concurrent_writers_get_distinct_gap_free_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let a = Arc::new(SqliteStore::open(&path).expect("open"));
    // A second handle on the same file stands for a second process.
    let b = Arc::new(SqliteStore::open(&path).expect("open again"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(if t % 2 == 0 { &a } else { &b });
            std::thread::spawn(move || {
                (0..15)
                    .map(|i| {
                        let spec = Spec {
                            identifier: format!("T{t}-{i}"),
                            ..Spec::default()
                        };
                        append(store.as_ref(), &alert(&spec)).seq
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for t in threads {
        let mine = t.join().expect("thread");
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "monotonic per writer");
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=60).collect::<Vec<_>>());
    assert_eq!(b.last_seq().expect("last"), 60);
}

#[test]
fn reposting_is_idempotent_and_changed_content_is_a_conflict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let spot = parse(SPOT);
    let first = append(&store, &spot);
    let raw_json = std::str::from_utf8(SPOT_JSON).expect("utf-8");
    let from_json = Alert::from_json(SPOT_JSON).expect("JSON sample");
    let again = store
        .append(&from_json, raw_json, &by("other"), 5)
        .expect("re-post");
    assert!(!again.created, "same (sender, identifier), same content");
    assert_eq!((again.seq, &again.alert), (first.seq, &first.alert));
    assert_eq!(store.last_seq().expect("last"), 1);

    let mut changed = spot.clone();
    changed.info[0].headline = Some("改过的标题".into());
    match store.append(&changed, &changed.to_xml(), &by("p"), 6) {
        Err(StoreError::Conflict {
            sender,
            identifier,
            seq,
        }) => {
            assert_eq!(
                (sender, identifier, seq),
                (spot.sender.clone(), spot.identifier.clone(), 1)
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.last_seq().expect("last"), 1);
    assert_eq!(store.get(1).expect("get").expect("kept").xml, spot.to_xml());
}

#[test]
fn an_unknown_reference_fails_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let food = parse(FOOD);
    for sample in [UPDATE, CANCEL] {
        let err = store
            .append(&parse(sample), "x", &by("p"), 1)
            .expect_err("references an alert the store does not have");
        match err {
            StoreError::UnknownReference { reference } => {
                assert!(reference.contains("HZ-"), "{reference}");
            }
            other => panic!("expected UnknownReference, got {other:?}"),
        }
    }
    append(&store, &food);
    // Same sender and identifier, different `sent`: not the same message.
    let mut update = parse(UPDATE);
    let wrong = update
        .references
        .as_deref()
        .expect("refs")
        .replace("09:00:00", "09:00:01");
    update.references = Some(wrong);
    let err = store
        .append(&update, "x", &by("p"), 1)
        .expect_err("wrong sent");
    assert!(matches!(err, StoreError::UnknownReference { .. }), "{err}");
    assert_eq!(store.last_seq().expect("last"), 1, "nothing stored");
    let update = parse(UPDATE);
    let found = store.by_identifier(&update.sender, &update.identifier);
    assert_eq!(found.expect("lookup"), None);
    let page = store.query(&Default::default()).expect("query");
    assert_eq!(seqs(&page.items), [1], "no half-written row is visible");
}

#[test]
fn update_and_cancel_resolve_their_references_and_inherit_what_they_lack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let food = append(&store, &parse(FOOD)).alert;
    let spot = append(&store, &parse(SPOT)).alert;
    let update = append(&store, &parse(UPDATE)).alert;
    assert_eq!(update.msg_type, hub::MsgType::Update);
    assert_eq!(update.references, [food.seq]);
    assert_eq!(update.severity, hub::Severity::Extreme, "its own info");
    assert_eq!(update.regions, [code("330106"), code("330110")]);
    assert_eq!(update.inherited_regions, [code("330100")]);
    assert_eq!(update.to_published().regions, update.regions);
    // The audience it inherits: the original's area with the original's kind and severity.
    let reach = |a: &alerts::store::StoredAlert| {
        (a.regions.iter().map(|&region| hub::Inherited {
            region,
            kind: a.kind,
            severity: a.severity,
        }))
        .collect::<Vec<_>>()
    };
    assert_eq!(update.inherited_targets, reach(&food));
    assert_eq!(update.to_published().inherited, update.inherited_targets);

    let cancel = append(&store, &parse(CANCEL)).alert;
    assert_eq!(cancel.msg_type, hub::MsgType::Cancel);
    assert_eq!(cancel.references, [spot.seq]);
    assert_eq!(cancel.kind, hub::AlertKind::SpotCheck, "inherited");
    assert_eq!(cancel.severity, spot.severity, "inherited");
    assert!(cancel.regions.is_empty());
    assert_eq!(cancel.inherited_regions, spot.regions);
    let published = cancel.to_published();
    assert_eq!(published.references, [spot.seq]);
    assert_eq!(
        published.inherited,
        reach(&spot),
        "routed where the original was"
    );
    assert_eq!(store.get(cancel.seq).expect("get"), Some(cancel));

    // A bare Cancel of a generated alert, and an Update of an Update.
    let original = alert(&Spec::default());
    append(&store, &original);
    let up = follow_up(&original, "GEN-1-U", MsgType::Update);
    let up_stored = append(&store, &up).alert;
    let cancel2 = follow_up(&up, "GEN-1-C", MsgType::Cancel);
    let c = append(&store, &cancel2).alert;
    assert_eq!(c.references, [up_stored.seq]);
    assert_eq!(c.severity, hub::Severity::Extreme);
    // The Cancel of the chain carries the update's audience and, through it, the original's.
    let mut chain = reach(&up_stored);
    chain.extend(up_stored.inherited_targets.iter().copied());
    assert_eq!(c.inherited_targets, hub::Inherited::reduce(chain));
    assert!(!up_stored.inherited_targets.is_empty());
    assert_eq!(store.get(c.seq).expect("get"), Some(c));
}

#[test]
fn a_version_2_file_gets_inherited_targets_from_its_references() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let (food, update) = {
        let store = SqliteStore::open(&path).expect("open");
        let food = append(&store, &parse(FOOD)).alert;
        (food, append(&store, &parse(UPDATE)).alert)
    };
    assert!(!update.inherited_targets.is_empty());
    {
        // Back to version 2: no inherited_targets column (3), no reindex queue (4).
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(BACK_TO_VERSION_4)
            .expect("back to version 4");
        conn.execute_batch(
            "DROP TABLE reindex;
             ALTER TABLE alerts DROP COLUMN inherited_targets;
             PRAGMA user_version = 2;",
        )
        .expect("downgrade");
    }
    let store = SqliteStore::open(&path).expect("reopen migrates");
    let migrated = store.get(update.seq).expect("get").expect("stored");
    assert_eq!(migrated.inherited_targets, update.inherited_targets);
    let original = store.get(food.seq).expect("get").expect("stored");
    assert!(
        original.inherited_targets.is_empty(),
        "no references, nothing inherited"
    );
}

/// Spot-check results are found by what people look them up by: a failed item, the notice
/// number, the testing institute. A version 3 file (whose text held only the product and the
/// companies) gets its stored alerts' text rebuilt when it is opened.
#[test]
fn spot_check_fields_are_searchable_also_in_alerts_stored_before() {
    use alerts::store::ArchiveQuery;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let spot = {
        let store = SqliteStore::open(&path).expect("open");
        append(&store, &parse(SPOT)).alert
    };
    // Back to version 3, with the text version 3 indexed for it.
    back_to_version_3(&path, "脱水蔬菜 杭州某食品有限公司");
    let store = SqliteStore::open(&path).expect("reopen reindexes");
    for q in [
        "二氧化硫残留量",
        "苯甲酸",
        "杭市监食检〔2024〕18号",
        "食品药品检验研究院",
        "蔬菜制品",
    ] {
        let page = store
            .query(&ArchiveQuery {
                q: Some(q.to_owned()),
                ..ArchiveQuery::default()
            })
            .expect("search");
        let found: Vec<u64> = page.items.iter().map(|a| a.seq).collect();
        assert_eq!(found, [spot.seq], "{q}");
    }
    let tables: i64 = rusqlite::Connection::open(&path)
        .expect("raw open")
        .query_row("SELECT count(*) FROM reindex", [], |r| r.get(0))
        .expect("queue");
    assert_eq!(tables, 0, "the queue is empty once rebuilt");
}

/// Turns the store file at `path` back into a version 3 file whose full-text rows all hold
/// `indexed` (what version 3 indexed), so opening it queues every alert for a reindex.
fn back_to_version_3(path: &std::path::Path, indexed: &str) {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.execute_batch(BACK_TO_VERSION_4)
        .expect("back to version 4");
    conn.execute("UPDATE alerts_fts SET body = ?1", [indexed])
        .expect("version 3 text");
    conn.execute_batch("DROP TABLE reindex; PRAGMA user_version = 3;")
        .expect("downgrade");
}

/// An alert whose stored XML is larger than the publish limit (normalizing grew it, or
/// `alerts.max_body_bytes` was raised) is reindexed too: the rebuild reads stored XML whole,
/// not with the limit meant for untrusted bodies.
#[test]
fn a_large_stored_alert_is_reindexed_too() {
    use alerts::store::ArchiveQuery;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    let mut big = parse(SPOT);
    big.identifier = "HZ-SPOT-LARGE".to_owned();
    if let Some(info) = big.info.first_mut() {
        info.description = Some("抽检结果说明。".repeat(20_000));
    }
    let spot = {
        let store = SqliteStore::open(&path).expect("open");
        append(&store, &big).alert
    };
    assert!(
        spot.xml.len() > cap::DEFAULT_MAX_SIZE,
        "{} bytes",
        spot.xml.len()
    );
    back_to_version_3(&path, "脱水蔬菜");
    let store = SqliteStore::open(&path).expect("reopen reindexes");
    let page = store
        .query(&ArchiveQuery {
            q: Some("二氧化硫残留量".to_owned()),
            ..ArchiveQuery::default()
        })
        .expect("search");
    let found: Vec<u64> = page.items.iter().map(|a| a.seq).collect();
    assert_eq!(found, [spot.seq]);
}

#[test]
fn inputs_are_bounded_and_only_public_messages_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig {
        max_document_bytes: 4096,
        ..StoreConfig::default()
    };
    let store = SqliteStore::open_with(dir.path().join("a.db"), config).expect("open");
    let food = parse(FOOD);
    let err = store
        .append(&food, &"x".repeat(5000), &by("p"), 1)
        .expect_err("raw");
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                what: "received body",
                ..
            }
        ),
        "{err}"
    );
    let mut big = food.clone();
    big.info[0].description = Some("长".repeat(2000));
    let err = store.append(&big, "x", &by("p"), 1).expect_err("xml");
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    let err = store
        .append(&food, "x", &by(&"p".repeat(300)), 1)
        .expect_err("publisher");
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                what: "publisher",
                ..
            }
        ),
        "{err}"
    );

    let mut ack = food.clone();
    ack.msg_type = MsgType::Ack;
    let err = store
        .append(&ack, "x", &by("p"), 1)
        .expect_err("Ack is not public");
    assert!(matches!(err, StoreError::NotPublic(_)), "{err}");
    let mut kindless = food;
    kindless.info[0].event_codes.clear();
    let err = store
        .append(&kindless, "x", &by("p"), 1)
        .expect_err("no kind");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(store.last_seq().expect("last"), 0);
}

#[test]
fn a_writer_lock_held_past_the_busy_timeout_is_transient_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.sqlite3");
    let config = StoreConfig {
        busy_timeout: std::time::Duration::from_millis(100),
        ..StoreConfig::default()
    };
    let store = SqliteStore::open_with(&path, config).expect("open");
    // Another process (here: connection) holds the write lock.
    let other = rusqlite::Connection::open(&path).expect("second connection");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let food = parse(FOOD);
    let err = store
        .append(&food, "raw", &by("330100-amr"), 1_000)
        .expect_err("the lock is held");
    assert!(err.is_transient(), "busy must be transient (503): {err}");
    other.execute_batch("ROLLBACK").expect("release");
    assert_eq!(store.last_seq().expect("last"), 0, "nothing stored");
    let a = store
        .append(&food, "raw", &by("330100-amr"), 1_000)
        .expect("append after release");
    assert_eq!(a.seq, 1, "the failed attempt consumed no number");
    assert!(!StoreError::BadCursor.is_transient());
}

#[test]
fn numbered_records_copy_into_an_index_in_one_batch_and_search_there() {
    use alerts::store::ArchiveQuery;
    let dir = tempfile::tempdir().expect("tempdir");
    let source = open(&dir);
    let mut stored = Vec::new();
    for (i, headline) in ["冷冻水饺检出致病菌", "儿童玩具抽检不合格", "消费提示"]
        .iter()
        .enumerate()
    {
        let a = alert(&Spec {
            identifier: format!("copy-{i}"),
            headline,
            ..Spec::default()
        });
        stored.push(append(&source, &a).alert);
    }
    let index_dir = tempfile::tempdir().expect("tempdir");
    let index = SqliteStore::open(index_dir.path().join("index.sqlite3")).expect("index");
    let records: Vec<(&alerts::store::StoredAlert, &str)> =
        stored.iter().map(|a| (a, "raw body")).collect();
    index
        .insert_numbered(records.iter().copied())
        .expect("copy");
    // A repeated batch (a catch-up racing another) changes nothing.
    index
        .insert_numbered(records.iter().copied())
        .expect("copy again");
    assert_eq!(index.last_seq().expect("last"), 3);
    for a in &stored {
        assert_eq!(
            index.get(a.seq).expect("get").as_ref(),
            Some(a),
            "same record"
        );
    }
    let page = index
        .query(&ArchiveQuery {
            q: Some("玩具".to_owned()),
            ..ArchiveQuery::default()
        })
        .expect("search");
    let found: Vec<&str> = page.items.iter().map(|a| a.identifier.as_str()).collect();
    assert_eq!(found, ["copy-1"], "full text indexed in the copy");
    assert_eq!(
        index.received_body(2).expect("raw").as_deref(),
        Some("raw body")
    );
}

/// An accepted alert whose normalized XML is over the 256 KiB parse limit for untrusted
/// bodies (normalizing escapes `&` as `&amp;`) reads back from the store: the Redis archive
/// index and the SQLite reindex parse stored XML, and used to leave such alerts out.
#[test]
fn a_stored_alert_larger_than_the_body_parse_limit_reads_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let description = "&".repeat(100_000);
    let big = alert(&Spec {
        description: &description,
        ..Spec::default()
    });
    let stored = append(&store, &big);
    assert!(
        stored.alert.xml.len() > cap::DEFAULT_MAX_SIZE,
        "{} bytes",
        stored.alert.xml.len()
    );
    assert_eq!(stored.alert.alert().expect("reads back"), big);
}

/// A restore's numbering floor: the next alert is numbered above it (numbers the replaced
/// store gave out are not given out again), `last_seq` reports it, a lower floor changes
/// nothing, and it survives reopening.
#[test]
fn the_numbering_floor_puts_the_next_number_above_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    for i in 1..=3 {
        let spec = Spec {
            identifier: format!("FLOOR-{i}"),
            ..Spec::default()
        };
        assert_eq!(append(&store, &alert(&spec)).seq, i);
    }
    store.raise_numbering_floor(7).expect("floor");
    store.raise_numbering_floor(5).expect("a lower floor");
    assert_eq!(store.last_seq().expect("last"), 7);
    let path = store.path().to_path_buf();
    drop(store);
    assert_eq!(alerts::store::last_number(&path).expect("read aside"), 7);
    let store = open(&dir);
    let next = Spec {
        identifier: "FLOOR-4".into(),
        ..Spec::default()
    };
    assert_eq!(append(&store, &alert(&next)).seq, 8, "above the floor");
    assert_eq!(store.last_seq().expect("last"), 8);
    let after = store.since(3, 10).expect("since");
    assert_eq!(
        seqs(&after),
        vec![8],
        "nothing stored under the skipped numbers"
    );
}
