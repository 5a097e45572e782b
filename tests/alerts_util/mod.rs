//! Helpers shared by the alerts end-to-end tests: raw-HTTP publish and GET against a running
//! hub, a CAP 1.2 XML template for fixtures, and percent-encoding for query strings.
#![allow(dead_code)]

use crate::common::{Hub, Response, request_with_body};

/// The sample files under `tests/data/alerts/`.
pub const FOOD_XML: &str = include_str!("../data/alerts/food_warning_330100.xml");
pub const SPOT_XML: &str = include_str!("../data/alerts/spotcheck_330106.xml");

/// Path of a sample file, for the CLI.
pub fn data_path(name: &str) -> String {
    format!("{}/tests/data/alerts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `POST /api/v1/alerts` with an optional bearer token and content type.
pub async fn post(
    hub: &Hub,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let len = body.len().to_string();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Length", len.as_str())];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    let stream = tokio::net::TcpStream::connect(hub.addr)
        .await
        .expect("connect");
    request_with_body(stream, "POST", "/api/v1/alerts", &headers, body).await
}

/// `POST /api/v1/alerts` of CAP XML (`application/cap+xml`) with `token`.
pub async fn post_cap(hub: &Hub, token: &str, xml: &str) -> Response {
    post(
        hub,
        Some(token),
        Some("application/cap+xml"),
        xml.as_bytes(),
    )
    .await
}

/// `POST` of CAP XML that must be accepted; returns (status, id).
pub async fn publish_xml(hub: &Hub, token: &str, xml: &str) -> (u16, String) {
    let response = post_cap(hub, token, xml).await;
    assert!(
        matches!(response.status, 200 | 201),
        "publish refused: {} {}",
        response.status,
        response.body
    );
    let id = response.json()["id"].as_str().expect("id").to_owned();
    (response.status, id)
}

/// `GET path` (no token).
pub async fn get(hub: &Hub, path: &str) -> Response {
    crate::common::get(hub.addr, path, &[]).await
}

/// The archive page at `query` (`GET /api/v1/alerts?{query}`), which must be 200.
pub async fn archive(hub: &Hub, query: &str) -> serde_json::Value {
    let response = get(hub, &format!("/api/v1/alerts?{query}")).await;
    assert_eq!(response.status, 200, "{query}: {}", response.body);
    response.json()
}

/// Identifiers of an archive page's items, in order.
pub fn identifiers(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["identifier"].as_str().expect("identifier").to_owned())
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Chinese name of a region used in fixtures (the `areaDesc`).
fn area_name(code: &str) -> &'static str {
    match code {
        "330000" => "浙江省",
        "330100" => "杭州市",
        "330106" => "杭州市西湖区",
        "330110" => "杭州市余杭区",
        "330200" => "宁波市",
        "330203" => "宁波市海曙区",
        _ => "浙江省某地",
    }
}

/// A fixture alert.
#[derive(Debug, Clone, Copy)]
pub struct Fixture<'a> {
    pub identifier: &'a str,
    /// `hubcast:kind` value.
    pub kind: &'a str,
    /// CAP severity (`Severe`).
    pub severity: &'a str,
    pub regions: &'a [&'a str],
    /// CAP dateTime.
    pub sent: &'a str,
    pub headline: &'a str,
    pub description: &'a str,
}

/// Sender of every fixture.
pub const SENDER: &str = "scjg.zj.gov.cn";

/// A valid CAP 1.2 alert for `f` (a spot-check gets a passing record).
pub fn cap_xml(f: &Fixture<'_>) -> String {
    let spotcheck = match f.kind {
        "spotcheck" => concat!(
            "<parameter><valueName>spotcheck:sampledName</valueName>",
            "<value>某超市</value></parameter>",
            "<parameter><valueName>spotcheck:productName</valueName>",
            "<value>大米</value></parameter>",
            "<parameter><valueName>spotcheck:result</valueName>",
            "<value>pass</value></parameter>",
        ),
        _ => "",
    };
    let areas: String = f
        .regions
        .iter()
        .map(|code| {
            format!(
                "<area><areaDesc>{}</areaDesc><geocode><valueName>GB2260</valueName>\
                 <value>{code}</value></geocode></area>",
                area_name(code)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{id}</identifier><sender>{SENDER}</sender><sent>{sent}</sent>
<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><language>zh-CN</language><category>Health</category><event>市场监管信息</event>
<urgency>Expected</urgency><severity>{severity}</severity><certainty>Likely</certainty>
<eventCode><valueName>hubcast:kind</valueName><value>{kind}</value></eventCode>
<headline>{headline}</headline><description>{description}</description>{spotcheck}{areas}</info>
</alert>"#,
        id = f.identifier,
        sent = f.sent,
        severity = f.severity,
        kind = f.kind,
        headline = f.headline,
        description = f.description,
    )
}

/// A bare Cancel of the fixture alert (`identifier`, `sent`), no info block.
pub fn cancel_xml(identifier: &str, original: &str, original_sent: &str, sent: &str) -> String {
    format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{identifier}</identifier><sender>{SENDER}</sender><sent>{sent}</sent>
<status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>
<note>撤销：信息有误</note>
<references>{SENDER},{original},{original_sent}</references>
</alert>"#
    )
}
