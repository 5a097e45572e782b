//! The public archive `GET /api/v1/alerts` against the real binary: region subtree both ways,
//! kind, min_severity, time range (RFC 3339 and unix seconds), Chinese full text, cursor
//! pagination with a publish between pages, a bare Cancel found under its original's region,
//! the item shape, and 400 naming the parameter for every bad one.

mod alerts_util;
mod common;

use alerts_util::*;
use common::Hub;

/// Seven alerts, one hour apart from 2025-07-01T08:00:00+08:00 (oldest first).
const FIXTURES: &[Fixture<'static>] = &[
    Fixture {
        identifier: "PROV",
        kind: "food",
        severity: "Severe",
        regions: &["330000"],
        sent: "2025-07-01T08:00:00+08:00",
        headline: "全省夏季食品安全预警",
        description: "高温天气注意食品储存。",
    },
    Fixture {
        identifier: "HZ",
        kind: "spotcheck",
        severity: "Moderate",
        regions: &["330100"],
        sent: "2025-07-01T09:00:00+08:00",
        headline: "杭州市黄花菜抽检不合格",
        description: "二氧化硫残留量超标。",
    },
    Fixture {
        identifier: "XIHU",
        kind: "consumer",
        severity: "Minor",
        regions: &["330106"],
        sent: "2025-07-01T10:00:00+08:00",
        headline: "消费警示",
        description: "谨防预付卡消费陷阱。",
    },
    Fixture {
        identifier: "YUHANG",
        kind: "market",
        severity: "Extreme",
        regions: &["330110"],
        sent: "2025-07-01T11:00:00+08:00",
        headline: "市场检测结果",
        description: "蔬菜农药残留检测。",
    },
    Fixture {
        identifier: "NINGBO",
        kind: "food",
        severity: "Moderate",
        regions: &["330200"],
        sent: "2025-07-01T12:00:00+08:00",
        headline: "海鲜食品安全提示",
        description: "生食海鲜存在寄生虫风险。",
    },
    Fixture {
        identifier: "HAISHU",
        kind: "spotcheck",
        severity: "Severe",
        regions: &["330203"],
        sent: "2025-07-01T13:00:00+08:00",
        headline: "海曙区大米抽检结果",
        description: "镉含量检测。",
    },
    Fixture {
        identifier: "XIHU-2",
        kind: "food",
        severity: "Unknown",
        regions: &["330106"],
        sent: "2025-07-01T14:00:00+08:00",
        headline: "食品安全提示",
        description: "节日期间注意饮食卫生。",
    },
];

/// 2025-07-01T08:00:00+08:00.
const T0: i64 = 1_751_328_000;

/// Identifiers, newest first (the archive's order).
fn newest_first(ids: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    out.sort_by_key(|id| {
        std::cmp::Reverse(FIXTURES.iter().position(|f| f.identifier == id.as_str()))
    });
    out
}

#[tokio::test]
async fn archive_filters_pages_and_refuses_bad_parameters() {
    let hub = Hub::start(&[], &[]);
    let province = hub.token("province-admin", "330000", &[]);
    for f in FIXTURES {
        let (status, _) = publish_xml(&hub, &province, &cap_xml(f)).await;
        assert_eq!(status, 201, "{}", f.identifier);
    }

    // Everything, newest first; the item shape.
    let all = archive(&hub, "").await;
    let every: Vec<&str> = FIXTURES.iter().map(|f| f.identifier).collect();
    assert_eq!(identifiers(&all), newest_first(&every));
    assert_eq!(all["next_cursor"], serde_json::Value::Null);
    let first = &all["items"][0];
    assert_eq!(first["identifier"], "XIHU-2");
    assert_eq!(first["sender"], SENDER);
    assert_eq!(first["sent"], "2025-07-01T14:00:00+08:00");
    assert_eq!(first["kind"], "food");
    assert_eq!(first["severity"], "unknown");
    assert_eq!(first["msgType"], "Alert");
    assert_eq!(first["regions"], serde_json::json!(["330106"]));
    assert_eq!(first["headline"], "食品安全提示");
    let id = first["id"].as_str().expect("id");
    assert_eq!(
        first["seq"].as_u64().map(|s| s.to_string()).as_deref(),
        Some(id)
    );
    let xml_url = first["xml_url"].as_str().expect("xml_url");
    assert_eq!(xml_url, format!("/alerts/{id}.xml"));
    let xml = get(&hub, xml_url).await;
    assert_eq!(xml.status, 200);
    assert!(
        xml.body.contains("<identifier>XIHU-2</identifier>"),
        "{}",
        xml.body
    );

    let t = |hours: i64| T0 + hours * 3600;
    let cases: Vec<(String, Vec<&str>)> = vec![
        // A county sees its own alerts, its city's and its province's.
        ("region=330106".into(), vec!["PROV", "HZ", "XIHU", "XIHU-2"]),
        // A city sees its counties' too.
        (
            "region=330100".into(),
            vec!["PROV", "HZ", "XIHU", "YUHANG", "XIHU-2"],
        ),
        ("region=330200".into(), vec!["PROV", "NINGBO", "HAISHU"]),
        ("region=330000".into(), every.clone()),
        (
            "kind=food,spotcheck".into(),
            vec!["PROV", "HZ", "NINGBO", "HAISHU", "XIHU-2"],
        ),
        ("kind=consumer".into(), vec!["XIHU"]),
        (
            "min_severity=severe".into(),
            vec!["PROV", "YUHANG", "HAISHU"],
        ),
        (
            "min_severity=moderate&kind=food".into(),
            vec!["PROV", "NINGBO"],
        ),
        // Exact levels (the issue's `severity=`), alone and with a floor.
        ("severity=moderate".into(), vec!["HZ", "NINGBO"]),
        ("severity=extreme,minor".into(), vec!["XIHU", "YUHANG"]),
        (
            "severity=minor,severe&min_severity=moderate".into(),
            vec!["PROV", "HAISHU"],
        ),
        ("region=330100&kind=food".into(), vec!["PROV", "XIHU-2"]),
        // `from` inclusive, `to` exclusive; RFC 3339 (`+` encoded) or unix seconds.
        (
            format!(
                "from={}&to={}",
                enc("2025-07-01T09:00:00+08:00"),
                enc("2025-07-01T03:00:00Z")
            ),
            vec!["HZ", "XIHU"],
        ),
        (format!("from={}&to={}", t(1), t(3)), vec!["HZ", "XIHU"]),
        (format!("from={}", t(5)), vec!["HAISHU", "XIHU-2"]),
        // A `+` left unencoded arrives as a space and is read back as `+`.
        ("to=2025-07-01T09:00:00+08:00".into(), vec!["PROV"]),
        // Full text: a trigram phrase, a 2-character term (LIKE), two terms, an areaDesc.
        (format!("q={}", enc("二氧化硫")), vec!["HZ"]),
        (format!("q={}", enc("西湖")), vec!["XIHU", "XIHU-2"]),
        (format!("q={}", enc("预付卡 消费")), vec!["XIHU"]),
        (format!("q={}", enc("海曙区")), vec!["HAISHU"]),
        (
            format!("q={}&region=330100", enc("食品安全")),
            vec!["PROV", "XIHU-2"],
        ),
        (format!("q={}", enc("不存在的词")), vec![]),
        // Empty values count as absent.
        ("region=&kind=&min_severity=&q=".into(), every.clone()),
    ];
    for (query, want) in &cases {
        let page = archive(&hub, query).await;
        assert_eq!(identifiers(&page), newest_first(want), "{query}");
    }

    // Pages of 2, with an alert published between pages: no duplicate, no skip, and the new
    // one (numbered higher) does not shift later pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_owned(),
        };
        let page = archive(&hub, &query).await;
        seen.extend(identifiers(&page));
        pages += 1;
        if pages == 1 {
            let late = Fixture {
                identifier: "LATE",
                sent: "2025-07-02T08:00:00+08:00",
                ..FIXTURES[0]
            };
            publish_xml(&hub, &province, &cap_xml(&late)).await;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, newest_first(&every));
    assert_eq!(identifiers(&archive(&hub, "limit=1").await), ["LATE"]);

    // A bare Cancel (no areas) is found under its original's region, with those regions.
    let cancel = cancel_xml(
        "XIHU-CANCEL",
        "XIHU",
        FIXTURES[2].sent,
        "2025-07-02T09:00:00+08:00",
    );
    publish_xml(&hub, &province, &cancel).await;
    let page = archive(&hub, "region=330106&limit=1").await;
    let item = &page["items"][0];
    assert_eq!(item["identifier"], "XIHU-CANCEL");
    assert_eq!(item["msgType"], "Cancel");
    assert_eq!(item["kind"], "consumer");
    assert_eq!(item["regions"], serde_json::json!(["330106"]));
    assert_eq!(item["headline"], serde_json::Value::Null);
    let page = archive(&hub, "region=330200&limit=1").await;
    assert_eq!(identifiers(&page), ["LATE"]);
}

#[tokio::test]
async fn bad_archive_parameters_are_400_naming_the_parameter() {
    let hub = Hub::start(&[], &[]);
    let long_q = enc(&"食".repeat(201));
    let cases: Vec<(String, &str)> = vec![
        ("region=3301".into(), "region"),
        ("region=33010x".into(), "region"),
        ("region=110000".into(), "region"),
        ("kind=food,weather".into(), "kind"),
        ("kind=food,,market".into(), "kind"),
        ("min_severity=Severe".into(), "min_severity"),
        ("min_severity=high".into(), "min_severity"),
        ("from=yesterday".into(), "from"),
        ("to=2025-07-01".into(), "to"),
        ("from=2025-02-30T00:00:00Z".into(), "from"),
        ("from=200&to=100".into(), "from"),
        ("limit=0".into(), "limit"),
        ("limit=501".into(), "limit"),
        ("limit=ten".into(), "limit"),
        ("cursor=not-a-cursor".into(), "cursor"),
        (format!("q={long_q}"), "q"),
        (format!("q={}", enc("a b c d e f g h i")), "q"),
        ("severity=high".into(), "severity"),
        ("severity=severe,,minor".into(), "severity"),
        ("severity=minor&severity=severe".into(), "severity"),
        ("region=330100&region=330106".into(), "region"),
    ];
    for (query, parameter) in &cases {
        let response = get(&hub, &format!("/api/v1/alerts?{query}")).await;
        assert_eq!(response.status, 400, "{query}: {}", response.body);
        let body = response.json();
        assert_eq!(body["error"], "bad_parameter", "{query}: {body}");
        assert_eq!(body["parameter"], *parameter, "{query}: {body}");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.contains(&format!("`{parameter}`")),
            "{query}: {message}"
        );
    }
    assert_eq!(get(&hub, "/healthz").await.status, 200);
}
