//! What the hub serves at `/alerts/{id}.xml` is valid against the OASIS CAP 1.2 schema
//! (`tests/data/cap/CAP-v1.2.xsd`, checked with libxml2's `xmllint --schema`): the sample
//! files, each published from XML and from JSON, an Update, a bare Cancel (no info), and an
//! alert using every optional element the model carries (resources, parameters, geocodes,
//! several infos and areas). The samples themselves are checked too, so a failure points at
//! the writer, not the fixture.

mod alerts_util;
mod common;

use std::path::Path;
use std::process::Command;

use alerts_util::{FOOD_XML, SPOT_XML, cancel_xml, data_path, get, post};
use common::Hub;

fn schema() -> String {
    format!("{}/tests/data/cap/CAP-v1.2.xsd", env!("CARGO_MANIFEST_DIR"))
}

/// Validates `file` against the CAP 1.2 schema; panics with xmllint's report if invalid.
fn assert_valid(file: &Path, what: &str) {
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema", &schema()])
        .arg(file)
        .output()
        .expect("xmllint (apt-get install libxml2-utils)");
    assert!(
        out.status.success(),
        "{what} is not valid CAP 1.2:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_valid_text(xml: &str, what: &str) {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tmp.path(), xml).expect("write");
    assert_valid(tmp.path(), what);
}

/// Publishes `body`; returns the id.
async fn publish(hub: &Hub, token: &str, content_type: &str, body: &str) -> String {
    let response = post(hub, Some(token), Some(content_type), body.as_bytes()).await;
    assert!(
        matches!(response.status, 200 | 201),
        "{}: {}",
        response.status,
        response.body
    );
    response.json()["id"].as_str().expect("id").to_owned()
}

/// Every optional element of the model in one alert (spot-check parameters, a resource,
/// two infos, two areas with geocodes, circle and polygon).
const FULL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>schema-full-1</identifier><sender>scjg.zj.gov.cn</sender>
<sent>2025-07-01T08:00:00+08:00</sent><status>Actual</status><msgType>Alert</msgType>
<source>浙江省市场监督管理局</source><scope>Public</scope><code>GB2260</code>
<note>全量字段</note>
<info><language>zh-CN</language><category>Health</category><category>Safety</category>
<event>食品安全预警</event><responseType>Avoid</responseType><urgency>Immediate</urgency>
<severity>Severe</severity><certainty>Observed</certainty><audience>公众</audience>
<eventCode><valueName>hubcast:kind</valueName><value>food</value></eventCode>
<effective>2025-07-01T08:00:00+08:00</effective><onset>2025-07-01T08:00:00+08:00</onset>
<expires>2025-07-08T08:00:00+08:00</expires><senderName>浙江省市场监督管理局</senderName>
<headline>某品牌冷冻饺子检出致病菌</headline><description>请勿食用。</description>
<instruction>已购买者请退货。</instruction><web>https://scjg.zj.gov.cn/alerts/1</web>
<contact>12315</contact>
<parameter><valueName>warningLevel</valueName><value>orange</value></parameter>
<resource><resourceDesc>检验报告</resourceDesc><mimeType>application/pdf</mimeType>
<size>12345</size><uri>https://scjg.zj.gov.cn/r/1.pdf</uri></resource>
<area><areaDesc>杭州市</areaDesc><polygon>30.1,120.0 30.4,120.0 30.4,120.4 30.1,120.0</polygon>
<circle>30.25,120.17 10</circle><geocode><valueName>GB2260</valueName><value>330100</value></geocode></area>
<area><areaDesc>宁波市</areaDesc><geocode><valueName>GB2260</valueName><value>330200</value></geocode>
<altitude>0</altitude><ceiling>100</ceiling></area>
</info>
<info><language>en-US</language><category>Health</category><event>Food safety warning</event>
<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
<eventCode><valueName>hubcast:kind</valueName><value>food</value></eventCode>
<headline>Pathogen found in frozen dumplings</headline>
<area><areaDesc>Hangzhou</areaDesc><geocode><valueName>GB2260</valueName><value>330100</value></geocode></area>
</info>
</alert>"#;

#[tokio::test]
async fn everything_served_validates_against_the_oasis_schema() {
    for name in ["food_warning_330100.xml", "spotcheck_330106.xml"] {
        assert_valid(Path::new(&data_path(name)), name);
    }
    assert_valid_text(FULL, "the full fixture");

    let hub = Hub::start(&[], &[]);
    let token = hub.token("province-admin", "330000", &[]);
    let mut ids = Vec::new();
    for (what, xml) in [("food", FOOD_XML), ("spot check", SPOT_XML), ("full", FULL)] {
        let id = publish(&hub, &token, "application/cap+xml", xml).await;
        // The same alert as JSON (its /alerts/{id}.json form) under a new identifier.
        let json = get(&hub, &format!("/alerts/{id}.json")).await.body;
        let json = json.replacen(r#""identifier":""#, r#""identifier":"json-"#, 1);
        let json_id = publish(&hub, &token, "application/json", &json).await;
        ids.push((format!("{what} (XML)"), id));
        ids.push((format!("{what} (JSON)"), json_id));
    }
    let original = read_identifier_and_sent(FULL);
    let update = FULL
        .replace(
            "<identifier>schema-full-1</identifier>",
            "<identifier>schema-full-2</identifier>",
        )
        .replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>")
        .replace(
            "<note>全量字段</note>",
            &format!(
                "<note>更新</note><references>scjg.zj.gov.cn,{},{}</references>",
                original.0, original.1
            ),
        );
    ids.push((
        "update".into(),
        publish(&hub, &token, "application/cap+xml", &update).await,
    ));
    let cancel = cancel_xml(
        "schema-cancel",
        &original.0,
        &original.1,
        "2025-07-02T08:00:00+08:00",
    );
    ids.push((
        "bare cancel".into(),
        publish(&hub, &token, "application/cap+xml", &cancel).await,
    ));

    for (what, id) in &ids {
        let served = get(&hub, &format!("/alerts/{id}.xml")).await;
        assert_eq!(served.status, 200, "{what}");
        assert_valid_text(&served.body, &format!("/alerts/{id}.xml ({what})"));
    }
}

/// (identifier, sent) of a fixture.
fn read_identifier_and_sent(xml: &str) -> (String, String) {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open).expect(name) + open.len();
        let end = start + xml[start..].find('<').expect(name);
        xml[start..end].to_owned()
    };
    (field("identifier"), field("sent"))
}

#[test]
fn the_schema_rejects_what_it_must() {
    // A check that the validator is really applying the schema: element order and enums.
    let swapped = FULL.replacen(
        "<status>Actual</status><msgType>Alert</msgType>",
        "<msgType>Alert</msgType><status>Actual</status>",
        1,
    );
    let bad_enum = FULL.replacen("<severity>Severe</severity>", "<severity>Bad</severity>", 1);
    for (what, xml) in [("swapped order", swapped), ("bad enum", bad_enum)] {
        let tmp = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(tmp.path(), xml).expect("write");
        let status = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema", &schema()])
            .arg(tmp.path())
            .output()
            .expect("xmllint")
            .status;
        assert!(!status.success(), "{what} passed the schema");
    }
}

/// RFC 4287's grammar in RELAX NG XML syntax (`tests/data/atom/README.md`).
fn atom_grammar() -> String {
    format!("{}/tests/data/atom/atom.rng", env!("CARGO_MANIFEST_DIR"))
}

/// `Ok` when `feed` is valid Atom 1.0: RFC 4287's grammar, its two Schematron rules and its
/// RFC 3339 dates; `Err` names what is wrong.
fn check_atom(feed: &str) -> Result<(), String> {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tmp.path(), feed).expect("write");
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--relaxng", &atom_grammar()])
        .arg(tmp.path())
        .output()
        .expect("xmllint (apt-get install libxml2-utils)");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    // The Appendix's Schematron rules, as XPath (xmllint has no namespace prefixes on the
    // command line, hence local-name()).
    let el = |name: &str| format!("*[local-name()='{name}']");
    let rules = [
        (
            format!(
                "boolean(/{feed}/{author} or not(/{feed}/{entry}[not({author})]))",
                feed = el("feed"),
                entry = el("entry"),
                author = el("author"),
            ),
            "a feed needs an author unless every entry has one",
        ),
        (
            format!(
                "not(//{entry}[not({link}[@rel='alternate' or not(@rel)]) and not({content})])",
                entry = el("entry"),
                link = el("link"),
                content = el("content"),
            ),
            "an entry needs an alternate link or content",
        ),
    ];
    for (xpath, rule) in rules {
        let out = Command::new("xmllint")
            .args(["--nonet", "--xpath", &xpath])
            .arg(tmp.path())
            .output()
            .expect("xmllint");
        if String::from_utf8_lossy(&out.stdout).trim() != "true" {
            return Err(format!("{rule} ({xpath})"));
        }
    }
    // RFC 4287 §3.3: RFC 3339 date-times, which (unlike xsd:dateTime) need an offset.
    for tag in ["updated", "published"] {
        let open = format!("<{tag}>");
        for part in feed.split(&open).skip(1) {
            let value = part.split('<').next().unwrap_or_default();
            if !is_rfc3339(value) {
                return Err(format!(
                    "<{tag}>{value}</{tag}> is not an RFC 3339 date-time"
                ));
            }
        }
    }
    Ok(())
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let fixed = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    if !fixed {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6)
        }
        _ => false,
    }
}

/// What `/feeds/alerts.atom` serves is valid Atom 1.0, empty or not, whatever the alerts'
/// text holds (markup characters, Chinese, several offsets), after an Update and a Cancel.
#[tokio::test]
async fn the_atom_feed_is_valid_atom() {
    let hub = Hub::start(&[], &[]);
    let feed = |region: &'static str| {
        let hub = &hub;
        async move {
            let served = get(hub, &format!("/feeds/alerts.atom?region={region}")).await;
            assert_eq!(served.status, 200, "{}", served.body);
            served.body
        }
    };
    let empty = feed("330106").await;
    assert!(!empty.contains("<entry>"), "{empty}");
    if let Err(e) = check_atom(&empty) {
        panic!("the empty feed is not valid Atom: {e}\n{empty}");
    }

    let token = hub.token("province-admin", "330000", &[]);
    // Live alerts (no expiry): markup characters in the headline and description, a second
    // one for a county at another offset.
    let live = FULL.replace("<expires>2025-07-08T08:00:00+08:00</expires>", "");
    let tricky = live
        .replacen(
            "<headline>某品牌冷冻饺子检出致病菌</headline>",
            "<headline>A&amp;B &lt;冷冻饺子&gt; \"致病菌\" 'x' ]]&gt;</headline>",
            1,
        )
        .replacen(
            "<description>请勿食用。</description>",
            "<description>&lt;b&gt;请勿食用&lt;/b&gt; &amp;amp;</description>",
            1,
        );
    publish(&hub, &token, "application/cap+xml", &tricky).await;
    let county = live
        .replace("schema-full-1", "schema-atom-county")
        .replace("2025-07-01T08:00:00+08:00", "2025-07-01T01:00:00-00:00")
        .replace("<value>330100</value>", "<value>330106</value>")
        .replace("<value>330200</value>", "<value>330106</value>");
    publish(&hub, &token, "application/cap+xml", &county).await;
    let with_entries = feed("330106").await;
    assert_eq!(with_entries.matches("<entry>").count(), 2, "{with_entries}");
    assert!(
        with_entries.contains("A&amp;B &lt;冷冻饺子&gt;"),
        "the headline, escaped: {with_entries}"
    );
    if let Err(e) = check_atom(&with_entries) {
        panic!("the feed is not valid Atom: {e}\n{with_entries}");
    }

    // An Update of the first, then a Cancel of the county's: still valid.
    let (identifier, sent) = read_identifier_and_sent(&tricky);
    let update = live
        .replace("schema-full-1", "schema-atom-update")
        .replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>")
        .replace(
            "<note>全量字段</note>",
            &format!(
                "<note>更新</note><references>scjg.zj.gov.cn,{identifier},{sent}</references>"
            ),
        );
    publish(&hub, &token, "application/cap+xml", &update).await;
    let cancel = cancel_xml(
        "schema-atom-cancel",
        "schema-atom-county",
        "2025-07-01T01:00:00-00:00",
        "2025-07-02T08:00:00+08:00",
    );
    publish(&hub, &token, "application/cap+xml", &cancel).await;
    let after = feed("330106").await;
    if let Err(e) = check_atom(&after) {
        panic!("the feed after an Update and a Cancel is not valid Atom: {e}\n{after}");
    }
}

#[test]
fn the_atom_checks_reject_what_they_must() {
    let good = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>urn:hubcast:feed:alerts:330106</id>
  <title>t</title>
  <updated>2025-07-01T02:00:00-00:00</updated>
  <author><name>hubcast</name></author>
  <entry>
    <id>urn:hubcast:alert:1</id>
    <title>标题</title>
    <updated>2025-07-01T09:00:00.5+08:00</updated>
    <category term="food"/>
    <link rel="alternate" type="application/cap+xml" href="/alerts/1.xml"/>
  </entry>
</feed>"#;
    assert_eq!(check_atom(good), Ok(()));
    let bad = [
        (
            "no feed id",
            good.replacen("<id>urn:hubcast:feed:alerts:330106</id>", "", 1),
        ),
        (
            "an element Atom does not have",
            good.replacen("<title>t</title>", "<title>t</title><headline/>", 1),
        ),
        (
            "not a date",
            good.replacen("2025-07-01T09:00:00.5+08:00", "yesterday", 1),
        ),
        (
            "no offset",
            good.replacen("2025-07-01T09:00:00.5+08:00", "2025-07-01T09:00:00", 1),
        ),
        (
            "no author anywhere",
            good.replacen("<author><name>hubcast</name></author>", "", 1),
        ),
        (
            "an entry without a link or content",
            good.replacen(
                r#"<link rel="alternate" type="application/cap+xml" href="/alerts/1.xml"/>"#,
                r#"<link rel="related" href="/alerts/1.xml"/>"#,
                1,
            ),
        ),
        (
            "a media type without a slash",
            good.replacen("application/cap+xml", "cap", 1),
        ),
    ];
    for (what, feed) in bad {
        assert!(check_atom(&feed).is_err(), "{what} passed:\n{feed}");
    }
}
