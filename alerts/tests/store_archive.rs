//! The archive query on a real SQLite file: region subtree both ways (the hub's rule), kind and
//! severity filters, `sent` time range, Chinese full text (FTS5 trigram for terms of 3+
//! characters, `LIKE` for 1–2), keyset pagination over 1000 alerts with inserts between pages
//! (no duplicate, no skip), and bad cursors.

mod store_util;

use alerts::cap::{AlertKind as K, MsgType, Severity as S};
use alerts::hub::{AlertKind, KindSet, Severity};
use alerts::store::{ArchiveQuery, Cursor, SqliteStore, Store, StoreError};
use store_util::*;

/// One row of the fixture: identifier, kind, severity, regions, minutes after T0, headline,
/// description.
type Row = (
    &'static str,
    K,
    S,
    &'static [&'static str],
    i64,
    &'static str,
    &'static str,
);

const FIXTURE: &[Row] = &[
    (
        "PROV",
        K::FoodSafety,
        S::Severe,
        &["330000"],
        0,
        "全省夏季食品安全预警",
        "高温天气注意食品储存。",
    ),
    (
        "HZ",
        K::SpotCheck,
        S::Moderate,
        &["330100"],
        10,
        "杭州市黄花菜抽检不合格",
        "二氧化硫残留量超标。",
    ),
    (
        "XIHU",
        K::ConsumerWarning,
        S::Minor,
        &["330106"],
        20,
        "西湖区消费警示",
        "谨防预付卡消费陷阱。",
    ),
    (
        "YUHANG",
        K::MarketTesting,
        S::Extreme,
        &["330110"],
        30,
        "余杭区市场检测结果",
        "蔬菜农药残留检测。",
    ),
    (
        "NINGBO",
        K::FoodSafety,
        S::Moderate,
        &["330200"],
        40,
        "宁波市食品安全预警",
        "干制品二氧化硫超标，请停止食用。",
    ),
    (
        "HAISHU",
        K::SpotCheck,
        S::Unknown,
        &["330203", "330106"],
        50,
        "海曙区与西湖区抽检",
        "Benzoic ACID 苯甲酸超标。",
    ),
];

fn load(store: &SqliteStore) {
    for &(id, kind, severity, regions, minutes, headline, description) in FIXTURE {
        let spec = Spec {
            identifier: id.into(),
            kind,
            severity,
            regions,
            sent_unix: T0 + minutes * 60,
            headline,
            description,
        };
        append(store, &alert(&spec));
    }
}

/// Identifiers of one full result (at most one page of 500), newest first.
fn ids(store: &SqliteStore, query: ArchiveQuery) -> Vec<String> {
    let page = store
        .query(&ArchiveQuery {
            limit: 500,
            ..query
        })
        .expect("query");
    assert_eq!(page.next_cursor, None);
    page.items.into_iter().map(|a| a.identifier).collect()
}

fn region(code_str: &str) -> ArchiveQuery {
    ArchiveQuery {
        region: Some(code(code_str)),
        ..ArchiveQuery::default()
    }
}

fn text(q: &str) -> ArchiveQuery {
    ArchiveQuery {
        q: Some(q.into()),
        ..ArchiveQuery::default()
    }
}

#[test]
fn region_filter_is_subtree_aware_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    load(&store);
    // A county sees its own alerts, its city's and its province's; not its siblings'.
    assert_eq!(
        ids(&store, region("330106")),
        ["HAISHU", "XIHU", "HZ", "PROV"]
    );
    // A city sees its counties' alerts too.
    assert_eq!(
        ids(&store, region("330100")),
        ["HAISHU", "YUHANG", "XIHU", "HZ", "PROV"]
    );
    assert_eq!(ids(&store, region("330200")), ["HAISHU", "NINGBO", "PROV"]);
    assert_eq!(ids(&store, region("330000")).len(), FIXTURE.len());
    assert_eq!(ids(&store, region("330108")), ["HZ", "PROV"]);
    let beijing = region("110000");
    assert!(matches!(
        store.query(&beijing),
        Err(StoreError::UnknownRegion(_))
    ));

    // A bare Cancel has no area: it is found where the alert it cancels was.
    let xihu = store
        .by_identifier(SENDER, "XIHU")
        .expect("get")
        .expect("stored");
    let cancel = follow_up(&xihu.alert().expect("parses"), "XIHU-C", MsgType::Cancel);
    append(&store, &cancel);
    assert_eq!(ids(&store, region("330106"))[0], "XIHU-C");
    assert_eq!(ids(&store, region("330100"))[0], "XIHU-C");
    assert!(!ids(&store, region("330200")).contains(&"XIHU-C".to_owned()));
}

#[test]
fn kind_severity_and_time_filters_combine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    load(&store);
    let kinds = |ks: &[AlertKind]| ArchiveQuery {
        kinds: ks.iter().copied().collect::<KindSet>(),
        ..ArchiveQuery::default()
    };
    assert_eq!(ids(&store, kinds(&[AlertKind::Food])), ["NINGBO", "PROV"]);
    assert_eq!(
        ids(&store, kinds(&[AlertKind::SpotCheck, AlertKind::Market])),
        ["HAISHU", "YUHANG", "HZ"]
    );
    let min = |s: Severity| ArchiveQuery {
        min_severity: s,
        ..ArchiveQuery::default()
    };
    assert_eq!(ids(&store, min(Severity::Severe)), ["YUHANG", "PROV"]);
    assert_eq!(
        ids(&store, min(Severity::Minor)).len(),
        FIXTURE.len() - 1,
        "not Unknown"
    );
    assert_eq!(ids(&store, min(Severity::Unknown)).len(), FIXTURE.len());

    // `from` inclusive, `to` exclusive, on `sent`.
    let range = ArchiveQuery {
        from: Some(T0 + 10 * 60),
        to: Some(T0 + 40 * 60),
        ..ArchiveQuery::default()
    };
    assert_eq!(ids(&store, range.clone()), ["YUHANG", "XIHU", "HZ"]);
    let combined = ArchiveQuery {
        region: Some(code("330100")),
        kinds: KindSet::only(AlertKind::Market).with(AlertKind::Consumer),
        min_severity: Severity::Moderate,
        ..range
    };
    assert_eq!(ids(&store, combined), ["YUHANG"]);
    let backwards = ArchiveQuery {
        from: Some(T0 + 1),
        to: Some(T0),
        ..ArchiveQuery::default()
    };
    assert!(matches!(
        store.query(&backwards),
        Err(StoreError::BadQuery(_))
    ));
}

/// Kinds and severities match an Update or Cancel by what it inherits too, as live delivery
/// routes it: a subscriber to severe alerts who recovers through the archive finds the
/// downgrade and the Cancel of the Extreme alert it saw. `after` bounds a range from below.
#[test]
fn follow_ups_match_by_what_they_inherit_and_after_bounds_a_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let original = alert(&Spec {
        identifier: "EXTREME".into(),
        kind: K::FoodSafety,
        severity: S::Extreme,
        regions: &["330100"],
        ..Spec::default()
    });
    let o = append(&store, &original).alert;
    let mut downgrade = follow_up(&original, "DOWNGRADE", MsgType::Update);
    downgrade.info[0].severity = S::Minor;
    let u = append(&store, &downgrade).alert;
    let c = append(&store, &follow_up(&downgrade, "CANCEL", MsgType::Cancel)).alert;
    let other = alert(&Spec {
        identifier: "MINOR".into(),
        severity: S::Minor,
        ..Spec::default()
    });
    append(&store, &other);
    let severe = ArchiveQuery {
        min_severity: Severity::Severe,
        ..ArchiveQuery::default()
    };
    assert_eq!(
        ids(&store, severe.clone()),
        ["CANCEL", "DOWNGRADE", "EXTREME"]
    );
    let exactly_extreme = ArchiveQuery {
        severities: vec![Severity::Extreme],
        ..ArchiveQuery::default()
    };
    assert_eq!(
        ids(&store, exactly_extreme),
        ["CANCEL", "DOWNGRADE", "EXTREME"]
    );
    let food_only = ArchiveQuery {
        kinds: KindSet::only(AlertKind::Food),
        min_severity: Severity::Minor,
        ..ArchiveQuery::default()
    };
    assert_eq!(
        ids(&store, food_only),
        ["MINOR", "CANCEL", "DOWNGRADE", "EXTREME"]
    );
    let spot_only = ArchiveQuery {
        kinds: KindSet::only(AlertKind::SpotCheck),
        ..ArchiveQuery::default()
    };
    assert!(
        ids(&store, spot_only).is_empty(),
        "nothing inherits spotcheck"
    );
    // The gap a live subscriber missed: above what it saw (the original), below the oldest
    // still replayable (say the Cancel).
    let gap = ArchiveQuery {
        after: Some(o.seq),
        cursor: Some(Cursor::below(c.seq)),
        ..severe
    };
    assert_eq!(ids(&store, gap), ["DOWNGRADE"]);
    assert_eq!(u.seq, o.seq + 1);
}

/// A bare Cancel of two originals, a severe food warning for Hangzhou and a minor spot-check
/// result for Ningbo, reaches (Hangzhou, food, Extreme) and (Ningbo, spot check, Minor): live
/// delivery sends it to a filter one of those two targets passes as a whole, and so must the
/// archive, whether the file was written by this build or migrated from version 4 (when the
/// archive checked region, kind and severity separately and also returned it to, say, a
/// severe-only Ningbo filter: region from one original, severity from the other).
#[test]
fn region_kind_and_severity_hold_for_one_target_as_in_live_delivery() {
    use alerts::cap::Reference;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        let hz = alert(&Spec {
            identifier: "HZ-FOOD".into(),
            kind: K::FoodSafety,
            severity: S::Extreme,
            regions: &["330100"],
            ..Spec::default()
        });
        let nb = alert(&Spec {
            identifier: "NB-SPOT".into(),
            kind: K::SpotCheck,
            severity: S::Minor,
            regions: &["330200"],
            ..Spec::default()
        });
        append(&store, &hz);
        append(&store, &nb);
        let mut both = follow_up(&hz, "CANCEL-BOTH", MsgType::Cancel);
        both.references = Some(format!("{} {}", Reference::to(&hz), Reference::to(&nb)));
        let stored = append(&store, &both).alert;
        assert_eq!(stored.references.len(), 2);
        assert_eq!(stored.inherited_targets.len(), 2, "{stored:?}");
    }
    let cases: [(&str, ArchiveQuery, &[&str]); 7] = [
        (
            "Ningbo, severe and up: its target there is minor",
            ArchiveQuery {
                min_severity: Severity::Severe,
                ..region("330200")
            },
            &[],
        ),
        (
            "Ningbo, food: its target there is a spot check",
            ArchiveQuery {
                kinds: KindSet::only(AlertKind::Food),
                ..region("330200")
            },
            &[],
        ),
        (
            "Ningbo, spot checks",
            ArchiveQuery {
                kinds: KindSet::only(AlertKind::SpotCheck),
                ..region("330200")
            },
            &["CANCEL-BOTH", "NB-SPOT"],
        ),
        (
            "Hangzhou's Xihu district, severe and up (an ancestor's target)",
            ArchiveQuery {
                min_severity: Severity::Severe,
                ..region("330106")
            },
            &["CANCEL-BOTH", "HZ-FOOD"],
        ),
        (
            "anywhere, spot checks severe and up",
            ArchiveQuery {
                kinds: KindSet::only(AlertKind::SpotCheck),
                min_severity: Severity::Severe,
                ..ArchiveQuery::default()
            },
            &[],
        ),
        (
            "anywhere, exactly minor",
            ArchiveQuery {
                severities: vec![Severity::Minor],
                ..ArchiveQuery::default()
            },
            &["CANCEL-BOTH", "NB-SPOT"],
        ),
        (
            "the province, everything",
            region("330000"),
            &["CANCEL-BOTH", "NB-SPOT", "HZ-FOOD"],
        ),
    ];
    let check = |store: &SqliteStore, file: &str| {
        for (name, query, expected) in &cases {
            assert_eq!(ids(store, query.clone()), *expected, "{file}: {name}");
        }
    };
    check(&SqliteStore::open(&path).expect("reopen"), "this build");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(BACK_TO_VERSION_4)
            .expect("back to version 4");
        conn.execute_batch("PRAGMA user_version = 4;")
            .expect("version 4");
    }
    check(
        &SqliteStore::open(&path).expect("reopen migrates"),
        "migrated from version 4",
    );
}

/// A file of version 4 may hold a bare Cancel whose inherited targets are empty although it
/// inherited regions (its record came from a Redis log whose original could not be read).
/// Live delivery routes it by those regions with its own kind and severity; migration 5
/// gives it the same target rows, so the archive finds it there.
#[test]
fn a_migrated_follow_up_without_inherited_targets_is_found_by_its_inherited_regions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        let original = alert(&Spec {
            identifier: "O".into(),
            severity: S::Extreme,
            regions: &["330100"],
            ..Spec::default()
        });
        append(&store, &original);
        append(&store, &follow_up(&original, "C", MsgType::Cancel));
    }
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(BACK_TO_VERSION_4)
            .expect("back to version 4");
        conn.execute_batch(
            "UPDATE alerts SET inherited_targets = '' WHERE identifier = 'C';
             PRAGMA user_version = 4;",
        )
        .expect("a record without inherited targets");
    }
    let store = SqliteStore::open(&path).expect("reopen migrates");
    let xihu_severe = ArchiveQuery {
        min_severity: Severity::Severe,
        ..region("330106")
    };
    assert_eq!(ids(&store, xihu_severe), ["C", "O"]);
    let ningbo = region("330200");
    assert!(ids(&store, ningbo).is_empty());
}

#[test]
fn chinese_full_text_uses_trigrams_and_falls_back_to_like_for_short_terms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    load(&store);
    let spot = append(&store, &parse(SPOT)).alert; // product and producer names are indexed
    let spot_id = spot.identifier.as_str();

    assert_eq!(ids(&store, text("二氧化硫")), [spot_id, "NINGBO", "HZ"]);
    assert_eq!(
        ids(&store, text("氧化硫")),
        [spot_id, "NINGBO", "HZ"],
        "any substring"
    );
    assert_eq!(
        ids(&store, text("浙江青山食品有限公司")),
        [spot_id],
        "producer name"
    );
    assert_eq!(ids(&store, text("金针菜")), [spot_id], "product name");
    assert_eq!(
        ids(&store, text("西湖区")),
        [spot_id, "HAISHU", "XIHU"],
        "areaDesc"
    );
    assert_eq!(
        ids(&store, text("benzoic acid")),
        ["HAISHU"],
        "ASCII case-folded"
    );
    // 1–2 characters: no trigram, LIKE over the same text.
    assert_eq!(ids(&store, text("杭州")), [spot_id, "HZ"]);
    assert_eq!(ids(&store, text("硫")), [spot_id, "NINGBO", "HZ"]);
    assert_eq!(ids(&store, text("宁波")), ["NINGBO"]);
    // Every term must match; long and short terms mix; filters still apply.
    assert_eq!(ids(&store, text("二氧化硫 杭州")), [spot_id, "HZ"]);
    assert_eq!(ids(&store, text("二氧化硫 宁波 干制品")), ["NINGBO"]);
    let filtered = ArchiveQuery {
        region: Some(code("330200")),
        ..text("二氧化硫")
    };
    assert_eq!(ids(&store, filtered), ["NINGBO"]);
    assert!(ids(&store, text("不存在的词语")).is_empty());
    assert!(
        ids(&store, text("%")).is_empty(),
        "LIKE wildcards are literal"
    );
    assert!(ids(&store, text("\"")).is_empty(), "quotes are literal");
    assert_eq!(
        ids(&store, text("   ")).len(),
        FIXTURE.len() + 1,
        "blank: no text condition"
    );
    let long = text(&"字".repeat(201));
    assert!(matches!(store.query(&long), Err(StoreError::BadQuery(_))));
}

#[test]
fn pages_over_1000_alerts_with_inserts_between_pages_have_no_duplicate_and_no_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let regions: [&[&str]; 3] = [&["330106"], &["330203"], &["330100"]];
    let make = |i: usize| {
        let spec = Spec {
            identifier: format!("P-{i}"),
            regions: regions[i % 3],
            sent_unix: T0 + i as i64,
            description: if i.is_multiple_of(2) {
                "二氧化硫超标"
            } else {
                "苯甲酸超标"
            },
            ..Spec::default()
        };
        alert(&spec)
    };
    // Inserted between pages; outside what the later queries select, so each query's expected
    // result is exactly the 1000 loaded alerts it matches.
    let newcomer = |i: usize| {
        let spec = Spec {
            identifier: format!("NEW-{i}"),
            regions: &["330200"],
            description: "无关内容",
            ..Spec::default()
        };
        alert(&spec)
    };
    for i in 0..1000 {
        append(&store, &make(i));
    }
    let expected: Vec<u64> = (1..=1000).rev().collect();
    let expected_fts: Vec<u64> = (1..=1000u64)
        .rev()
        .filter(|s| (s - 1).is_multiple_of(2))
        .collect();
    let expected_region: Vec<u64> = (1..=1000u64).rev().filter(|s| (s - 1) % 3 != 1).collect();
    let mut extra = 0;
    for (query, expected) in [
        (ArchiveQuery::default(), expected),
        (text("二氧化硫"), expected_fts),
        (region("330100"), expected_region),
    ] {
        let mut seen: Vec<u64> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0;
        loop {
            let q = ArchiveQuery {
                cursor,
                limit: 37,
                ..query.clone()
            };
            let page = store.query(&q).expect("page");
            assert!(page.items.len() <= 37);
            seen.extend(seqs(&page.items));
            pages += 1;
            // New alerts arrive between pages: they are newer than the first page, so they
            // never appear later and never shift what comes next.
            for _ in 0..3 {
                append(&store, &newcomer(extra));
                extra += 1;
            }
            match page.next_cursor {
                Some(next) => {
                    // Cursors travel as text (a query string) and come back.
                    cursor = Some(next.to_string().parse().expect("own cursor"));
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "newest first, each once");
        assert_eq!(pages, expected.len().div_ceil(37));
    }
}

#[test]
fn bad_cursors_and_limits_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    load(&store);
    for bad in ["", "not base64!", "Zm9v", "YzE6MA", "YzE6LTE"] {
        assert!(
            matches!(bad.parse::<Cursor>(), Err(StoreError::BadCursor)),
            "{bad:?} is not a cursor"
        );
    }
    let page = store
        .query(&ArchiveQuery {
            limit: 2,
            ..ArchiveQuery::default()
        })
        .expect("first page");
    assert_eq!(seqs(&page.items), [6, 5]);
    let next = page.next_cursor.expect("more pages");
    assert_eq!(next.seq(), 5);
    let rest = store
        .query(&ArchiveQuery {
            cursor: Some(next),
            limit: 500,
            ..ArchiveQuery::default()
        })
        .expect("rest");
    assert_eq!(seqs(&rest.items), [4, 3, 2, 1]);
    assert_eq!(rest.next_cursor, None);
    for limit in [0, 501, usize::MAX] {
        let q = ArchiveQuery {
            limit,
            ..ArchiveQuery::default()
        };
        assert!(matches!(
            store.query(&q),
            Err(StoreError::BadLimit { max: 500, .. })
        ));
    }
    let none = ArchiveQuery {
        kinds: KindSet::EMPTY,
        ..ArchiveQuery::default()
    };
    assert!(matches!(store.query(&none), Err(StoreError::BadQuery(_))));
}

/// A read that runs past `query_timeout` is interrupted by SQLite and reported as
/// `QueryTimeout` (HTTP 503), and the reader stays usable. With a zero timeout every read
/// long enough to reach SQLite's progress check (1,000 VM instructions) stops there: a point
/// lookup never gets that far, a text scan over 300 documents does.
#[test]
fn a_read_past_the_query_timeout_is_stopped_and_the_reader_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = alerts::store::StoreConfig {
        query_timeout: std::time::Duration::ZERO,
        ..alerts::store::StoreConfig::default()
    };
    let store = SqliteStore::open_with(dir.path().join("a.db"), config).expect("open");
    let long = "请消费者注意饮食安全，谨慎购买散装食品。".repeat(20);
    for i in 0..300 {
        let spec = Spec {
            identifier: format!("SCAN-{i}"),
            description: &long,
            ..Spec::default()
        };
        append(&store, &alert(&spec));
    }
    assert!(store.get(1).expect("a point read").is_some());
    let err = store
        .query(&text("不在"))
        .expect_err("a two-character term scans every document");
    assert!(matches!(err, StoreError::QueryTimeout(_)), "{err}");
    assert!(
        !err.is_transient(),
        "the query's own fault, not the store's"
    );
    for _ in 0..4 {
        assert_eq!(store.last_seq().expect("readers still work"), 300);
    }
}

/// A listing carries what a listing shows, not the documents: `xml` empty, `json` with only
/// `sent` (as written) and the first headline; the whole alert stays one `get` away.
#[test]
fn a_listing_loads_no_whole_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    load(&store);
    let page = store
        .query(&ArchiveQuery {
            limit: 500,
            ..ArchiveQuery::default()
        })
        .expect("query");
    assert_eq!(page.items.len(), FIXTURE.len());
    for item in &page.items {
        assert!(item.xml.is_empty(), "{}", item.xml);
        let json: serde_json::Value = serde_json::from_str(&item.json).expect("json");
        let whole = store.get(item.seq).expect("get").expect("stored");
        let full: serde_json::Value = serde_json::from_str(&whole.json).expect("json");
        assert_eq!(json["sent"], full["sent"]);
        assert_eq!(json["info"][0]["headline"], full["info"][0]["headline"]);
        assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{json}");
        assert_eq!(item.identifier, whole.identifier);
    }
}
