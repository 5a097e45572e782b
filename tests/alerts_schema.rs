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
