//! Publishing alerts against the real binary: two Chinese CAP files published with
//! `hubcast alert publish` come back from `/alerts/{id}.xml` exactly as `write_xml` normalizes
//! them; re-posts are idempotent (200, same id), conflicting re-posts 409; Update permissions;
//! a CAP sender speaks for one region (configured, or its first publisher's: 403 otherwise);
//! and a table of bad input (malformed XML, XXE, billion laughs, oversize, wrong content type,
//! invalid CAP, area outside the publisher's subtree, unknown reference, forged or missing
//! token), each with its exact status and code, none stored, the hub still healthy.

mod alerts_util;
mod common;

use alerts::cap::{read_xml, write_xml};
use alerts_util::*;
use common::{Hub, Response, run};

/// `hubcast alert publish FILE --server URL EXTRA…`.
fn cli_publish(
    hub: &Hub,
    file: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let mut args = vec!["alert", "publish", file, "--server", &hub.url];
    args.extend_from_slice(extra);
    run(&args, &[])
}

fn assert_error(response: &Response, status: u16, code: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.body);
    let body = response.json();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn cli_round_trip_is_byte_exact_and_idempotent() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &["--sub", "西湖区市场监管局"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{county}\n")).expect("write token");
    let token_file = token_file.display().to_string();

    let samples = [
        (
            "food_warning_330100.xml",
            FOOD_XML,
            vec!["--token", city.as_str()],
        ),
        (
            "spotcheck_330106.xml",
            SPOT_XML,
            vec!["--token-file", token_file.as_str()],
        ),
    ];
    let mut ids = Vec::new();
    for (name, text, auth) in &samples {
        let (status, out, err) = cli_publish(&hub, &data_path(name), auth);
        assert!(status.success(), "{name}: {err}");
        let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON answer");
        assert_eq!(answer["created"], true, "{answer}");
        let id = answer["id"].as_str().expect("id").to_owned();
        assert_eq!(
            answer["seq"].as_u64().map(|s| s.to_string()),
            Some(id.clone())
        );

        let expected = write_xml(&read_xml(text.as_bytes(), 256 * 1024).expect("sample reads"));
        let xml = get(&hub, &format!("/alerts/{id}.xml")).await;
        assert_eq!(xml.status, 200, "{}", xml.body);
        assert_eq!(
            xml.header("content-type"),
            Some("application/cap+xml; charset=utf-8")
        );
        assert_eq!(
            xml.body, expected,
            "{name}: stored XML differs from write_xml"
        );
        let json = get(&hub, &format!("/alerts/{id}.json")).await;
        assert_eq!(json.status, 200);
        let back = alerts::cap::read_json(json.body.as_bytes(), 1 << 20).expect("JSON form reads");
        assert_eq!(write_xml(&back), expected);

        // The same file again: 200, the same record.
        let (status, out, err) = cli_publish(&hub, &data_path(name), auth);
        assert!(status.success(), "{name} re-post: {err}");
        let again: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON answer");
        assert_eq!(
            (again["id"].as_str(), again["created"].as_bool()),
            (Some(id.as_str()), Some(false))
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);

    // Raw HTTP: the JSON form of the food alert is the same alert (200); Location names it.
    let food = read_xml(FOOD_XML.as_bytes(), 1 << 20).expect("reads");
    let response = post(
        &hub,
        Some(&city),
        Some("application/json"),
        food.to_json().as_bytes(),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["id"].as_str(), Some(ids[0].as_str()));
    let location = format!("/alerts/{}.xml", ids[0]);
    assert_eq!(response.header("location"), Some(location.as_str()));

    // Same (sender, identifier), different content: 409, and the CLI exits 1 with the message.
    let changed = FOOD_XML.replace("II级·橙色", "III级·黄色");
    let response = post(
        &hub,
        Some(&city),
        Some("application/xml"),
        changed.as_bytes(),
    )
    .await;
    assert_error(&response, 409, "conflict", "conflicting re-post");
    let changed_file = tmp.path().join("changed.xml");
    std::fs::write(&changed_file, &changed).expect("write");
    let (status, _, err) = cli_publish(
        &hub,
        &changed_file.display().to_string(),
        &["--token", &city],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("409 conflict"), "{err}");

    // An Update of the city's alert: the county may not (403), the city may (201).
    let update = FOOD_XML
        .replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>")
        .replace("HZ-FS-2025-0708-003", "HZ-FS-2025-0710-004")
        .replace(
            "<sent>2025-07-08T08:30:00+08:00</sent>",
            "<sent>2025-07-10T08:30:00+08:00</sent>",
        )
        .replace(
            INCIDENTS,
            &references("HZ-FS-2025-0708-003", "2025-07-08T08:30:00+08:00"),
        )
        .replace("<value>330100</value>", "<value>330106</value>");
    let response = post(
        &hub,
        Some(&county),
        Some("application/cap+xml"),
        update.as_bytes(),
    )
    .await;
    assert_error(
        &response,
        403,
        "sender_not_yours",
        "county updates the city's alert under the city's sender",
    );
    // Under its own sender the county still may not: the update would reach the city.
    let own = update.replace(
        "<sender>scjg.hangzhou.gov.cn</sender>",
        "<sender>scjg.xihu.hangzhou.gov.cn</sender>",
    );
    let response = post(
        &hub,
        Some(&county),
        Some("application/cap+xml"),
        own.as_bytes(),
    )
    .await;
    assert_error(
        &response,
        403,
        "forbidden",
        "county updates the city's alert",
    );
    assert!(
        response.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("reaches region 330100")),
        "{}",
        response.body
    );
    let (status, _) = publish_xml(&hub, &city, &update).await;
    assert_eq!(status, 201);

    // CLI usage errors exit 2 with a clear line.
    let (status, _, err) = run(
        &[
            "alert",
            "publish",
            &data_path("food_warning_330100.xml"),
            "--server",
            "ftp://127.0.0.1:1",
            "--token",
            "x",
        ],
        &[],
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("expected http://HOST[:PORT] or https://"),
        "{err}"
    );
    let (status, _, err) = run(
        &["alert", "publish", &data_path("food_warning_330100.xml")],
        &[],
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--token"), "{err}");
}

/// The food sample with its XML declaration replaced by `prolog`.
fn with_prolog(prolog: &str) -> String {
    FOOD_XML.replacen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", prolog, 1)
}

/// The food sample with each `(from, to)` replaced once.
fn food_with(edits: &[(&str, &str)]) -> Vec<u8> {
    let mut text = FOOD_XML.to_owned();
    for (from, to) in edits {
        assert!(text.contains(from), "sample lacks {from}");
        text = text.replacen(from, to, 1);
    }
    text.into_bytes()
}

const CONTACT: &str = "<contact>杭州市市场监督管理局 12315</contact>";
const INCIDENTS: &str = "<incidents>";

/// `<references>` for `identifier` of the Hangzhou sender, inserted before `<incidents>`.
fn references(identifier: &str, sent: &str) -> String {
    format!("<references>scjg.hangzhou.gov.cn,{identifier},{sent}</references><incidents>")
}

fn xxe() -> Vec<u8> {
    let dtd = "<?xml version=\"1.0\"?>\n\
               <!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>";
    with_prolog(dtd)
        .replacen(CONTACT, "<contact>&e;</contact>", 1)
        .into_bytes()
}

fn billion_laughs() -> Vec<u8> {
    let mut dtd =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = match i {
            1 => "lol".to_owned(),
            _ => format!("lol{}", i - 1),
        };
        let refs = format!("&{prev};").repeat(10);
        dtd.push_str(&format!(" <!ENTITY lol{i} \"{refs}\">\n"));
    }
    dtd.push_str("]>");
    with_prolog(&dtd)
        .replacen(CONTACT, "<contact>&lol9;</contact>", 1)
        .into_bytes()
}

/// One row of the bad-input table: what, token, content type, body, status, code, and the
/// `problems[0].path` expected of CAP errors that name an element.
type Case<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Vec<u8>,
    u16,
    &'a str,
    Option<&'a str>,
);

#[tokio::test]
async fn bad_input_is_refused_precisely_and_nothing_is_stored() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let public = hub.token("public", "330100", &[]);
    let other = tempfile::tempdir().expect("tmp");
    let other_dir = other.path().display().to_string();
    let args = [
        "token",
        "--role",
        "city-admin",
        "--region",
        "330100",
        "--data-dir",
    ];
    let (status, out, err) = run(&[&args[..], &[other_dir.as_str()]].concat(), &[]);
    assert!(status.success(), "{err}");
    let foreign = out.trim().to_owned();
    // The city's token with its payload swapped for a province admin's, signature kept.
    let province = hub.token("province-admin", "330000", &[]);
    let parts: Vec<&str> = city.split('.').collect();
    let payload = province.split('.').nth(1).expect("payload");
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);

    let xml = Some("application/cap+xml");
    let json = Some("application/json");
    let food = FOOD_XML.as_bytes().to_vec();
    let sent = "<sent>2025-07-08T08:30:00+08:00</sent>";
    let unknown = references("HZ-NOPE-1", "2025-07-01T08:00:00+08:00");
    let ack_refs = "<references>a.gov.cn,X-1,2025-07-01T00:00:00+08:00</references><incidents>";
    let padding = format!("<!--{}-->\n<alert", "x".repeat(300 * 1024));
    let bare_cancel = cancel_xml(
        "C-1",
        "HZ-NOPE-2",
        "2025-07-01T08:00:00+08:00",
        "2025-07-09T08:00:00+08:00",
    );
    let (c, k, p) = (
        Some(city.as_str()),
        Some(county.as_str()),
        Some(public.as_str()),
    );
    let food_json = read_xml(FOOD_XML.as_bytes(), 1 << 20)
        .expect("reads")
        .to_json();
    let json_twice = format!(
        "{{\"identifier\": \"HZ-OTHER-1\",{}",
        food_json.trim_start().strip_prefix('{').expect("an object")
    );
    let long_key = format!(
        "{{\"{}\":[{}0]}}",
        "k".repeat(100 * 1024),
        "0,".repeat(60_000)
    );
    let ideographic = format!(
        "<references>scjg.hangzhou.gov.cn,A-1,2025-07-01T08:00:00+08:00\u{3000}\
         scjg.hangzhou.gov.cn,A-2,2025-07-01T08:00:00+08:00</references>{INCIDENTS}"
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed XML",
            c,
            xml,
            food[..food.len() / 2].to_vec(),
            400,
            "bad_cap",
            None,
        ),
        ("XXE", c, xml, xxe(), 400, "bad_cap", None),
        (
            "billion laughs",
            c,
            xml,
            billion_laughs(),
            400,
            "bad_cap",
            None,
        ),
        (
            "undeclared entity",
            c,
            xml,
            food_with(&[("12315</contact>", "&lol9;</contact>")]),
            400,
            "bad_cap",
            None,
        ),
        (
            "not CAP",
            c,
            xml,
            b"<rss version=\"2.0\"/>".to_vec(),
            400,
            "bad_cap",
            None,
        ),
        (
            "bad JSON",
            c,
            json,
            b"{\"identifier\": ".to_vec(),
            400,
            "bad_cap",
            None,
        ),
        (
            "oversize body",
            c,
            xml,
            food_with(&[("<alert", &padding)]),
            413,
            "too_large",
            None,
        ),
        (
            "wrong content type",
            c,
            Some("text/plain"),
            food.clone(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "no content type",
            c,
            None,
            food.clone(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "latin-1 charset",
            c,
            Some("application/xml; charset=ISO-8859-1"),
            food.clone(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            "bad severity",
            c,
            xml,
            food_with(&[("<severity>Severe<", "<severity>Serious<")]),
            422,
            "invalid_cap",
            Some("alert/info[0]/severity"),
        ),
        (
            "missing urgency",
            c,
            xml,
            food_with(&[("<urgency>Expected</urgency>", "")]),
            422,
            "invalid_cap",
            Some("alert/info[0]/urgency"),
        ),
        (
            "bad dateTime",
            c,
            xml,
            food_with(&[(sent, "<sent>2025-07-08 08:30</sent>")]),
            422,
            "invalid_cap",
            Some("alert/sent"),
        ),
        (
            "Ack is not published",
            c,
            xml,
            food_with(&[("<msgType>Alert<", "<msgType>Ack<"), (INCIDENTS, ack_refs)]),
            422,
            "invalid_cap",
            Some("alert/msgType"),
        ),
        (
            "a restricted alert on a public hub",
            c,
            xml,
            food_with(&[(
                "<scope>Public</scope>",
                "<scope>Restricted</scope><restriction>内部通报</restriction>",
            )]),
            422,
            "invalid_cap",
            Some("alert/scope"),
        ),
        (
            "a private alert on a public hub",
            c,
            xml,
            food_with(&[(
                "<scope>Public</scope>",
                "<scope>Private</scope><addresses>scjg-a scjg-b</addresses>",
            )]),
            422,
            "invalid_cap",
            Some("alert/scope"),
        ),
        (
            "a draft is not disseminated",
            c,
            xml,
            food_with(&[("<status>Actual</status>", "<status>Draft</status>")]),
            422,
            "invalid_cap",
            Some("alert/status"),
        ),
        (
            "county publishes for its city",
            k,
            xml,
            food.clone(),
            403,
            "forbidden",
            None,
        ),
        (
            "city publishes for another city",
            c,
            xml,
            food_with(&[("<value>330100<", "<value>330200<")]),
            403,
            "forbidden",
            None,
        ),
        (
            "city adds an area drawn over another city, without a region code",
            c,
            xml,
            food_with(&[(
                "</area>",
                "</area><area><areaDesc>宁波市</areaDesc>\
                 <circle>29.87,121.55 30</circle></area>",
            )]),
            422,
            "invalid_cap",
            Some("alert/info[0]/area[1]/geocode"),
        ),
        (
            "a JSON key given twice (the parse would keep the last)",
            c,
            json,
            json_twice.into_bytes(),
            422,
            "invalid_cap",
            Some("alert/identifier"),
        ),
        (
            "a JSON key longer than any CAP name, over a long list",
            c,
            json,
            long_key.into_bytes(),
            422,
            "invalid_cap",
            Some("alert"),
        ),
        (
            "a region code this hub's tree does not have (下城区, merged in 2021)",
            c,
            xml,
            food_with(&[("<value>330100<", "<value>330103<")]),
            422,
            "invalid_cap",
            Some("alert/info[0]/area[0]/geocode[0]/value"),
        ),
        (
            "references split by an ideographic space",
            c,
            xml,
            food_with(&[
                ("<msgType>Alert<", "<msgType>Update<"),
                (INCIDENTS, &ideographic),
            ]),
            422,
            "invalid_cap",
            Some("alert/references"),
        ),
        (
            "public role publishes",
            p,
            xml,
            food.clone(),
            403,
            "forbidden",
            None,
        ),
        (
            "Update of an unknown alert",
            c,
            xml,
            food_with(&[
                ("<msgType>Alert<", "<msgType>Update<"),
                (INCIDENTS, &unknown),
            ]),
            422,
            "unknown_reference",
            None,
        ),
        (
            "bare Cancel of an unknown alert",
            c,
            xml,
            bare_cancel.into_bytes(),
            422,
            "unknown_reference",
            None,
        ),
        (
            "token of another hub",
            Some(&foreign),
            xml,
            food.clone(),
            401,
            "bad_signature",
            None,
        ),
        (
            "tampered token",
            Some(&tampered),
            xml,
            food.clone(),
            401,
            "bad_signature",
            None,
        ),
        (
            "no token",
            None,
            xml,
            food.clone(),
            401,
            "missing_token",
            None,
        ),
    ];
    for (what, token, content_type, body, status, code, path) in &cases {
        let response = post(&hub, *token, *content_type, body).await;
        assert_error(&response, *status, code, what);
        let body = response.json();
        if matches!(*code, "bad_cap" | "invalid_cap") {
            let problems = body["problems"].as_array();
            assert!(problems.is_some_and(|p| !p.is_empty()), "{what}: {body}");
        }
        if let Some(path) = path {
            assert_eq!(body["problems"][0]["path"], *path, "{what}: {body}");
        }
    }

    // Every validation problem is listed, not just the first.
    let several = food_with(&[
        ("<identifier>HZ-FS-2025-0708-003<", "<identifier>HZ FS 1<"),
        (
            "<web>https://scjg.hangzhou.gov.cn/alerts/HZ-FS-2025-0708-003<",
            "<web>not a uri<",
        ),
        (
            "<expires>2025-09-30T23:59:59+08:00<",
            "<expires>2025-01-01T00:00:00+08:00<",
        ),
    ]);
    let response = post(&hub, Some(&city), xml, &several).await;
    assert_error(&response, 422, "invalid_cap", "several problems");
    let body = response.json();
    let problems = body["problems"].as_array().expect("problems");
    let paths: Vec<&str> = problems.iter().filter_map(|p| p["path"].as_str()).collect();
    for want in [
        "alert/identifier",
        "alert/info[0]/web",
        "alert/info[0]/expires",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }

    // Oversize without Content-Length (chunked), and a huge declared length.
    let auth = format!("Bearer {city}");
    let mut chunked = Vec::new();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        chunked.extend_from_slice(&[b' '; 64 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for (what, length_header, body) in [
        (
            "chunked oversize",
            ("Transfer-Encoding", "chunked"),
            &chunked[..],
        ),
        (
            "declared 100 MB",
            ("Content-Length", "104857600"),
            b"<alert",
        ),
    ] {
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/xml"),
            length_header,
        ];
        let stream = tokio::net::TcpStream::connect(hub.addr)
            .await
            .expect("connect");
        let response =
            common::request_with_body(stream, "POST", "/api/v1/alerts", &headers, body).await;
        assert_error(&response, 413, "too_large", what);
    }

    // Nothing was stored, and the hub is fine.
    let page = archive(&hub, "").await;
    assert_eq!(page["items"], serde_json::json!([]), "{page}");
    assert_eq!(get(&hub, "/alerts/1.xml").await.status, 404);
    assert_eq!(get(&hub, "/healthz").await.status, 200);
    // And a good alert still goes through, numbered 1.
    let (status, id) = publish_xml(&hub, &city, FOOD_XML).await;
    assert_eq!((status, id.as_str()), (201, "1"));
}

/// A JSON body within `alerts.max_body_bytes` is stored however much normalizing grows it
/// (every `&` becomes `&amp;` in the stored XML: 5×; a one-digit code an indented
/// `<code>0</code>` line: 8.5×), not refused as too large.
#[tokio::test]
async fn a_json_body_within_the_limit_is_stored_however_normalizing_grows_it() {
    let hub = Hub::start(&[], &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let food = read_xml(FOOD_XML.as_bytes(), 1 << 20).expect("reads");
    let mut value: serde_json::Value = serde_json::from_str(&food.to_json()).expect("json");
    let mut ampersands = value.clone();
    ampersands["identifier"] = "HZ-AMP-1".into();
    ampersands["info"][0]["description"] = "&".repeat(230_000).into();
    value["identifier"] = "HZ-CODES-1".into();
    value["code"] = vec![0; 125_000].into();
    for (what, grown) in [("ampersands", ampersands), ("codes", value)] {
        let body = grown.to_string();
        assert!(body.len() < 256 * 1024, "{what}: {} bytes", body.len());
        let response = post(&hub, Some(&city), Some("application/json"), body.as_bytes()).await;
        assert_eq!(response.status, 201, "{what}: {}", response.body);
        let id = response.json()["id"].as_str().expect("id").to_owned();
        let xml = get(&hub, &format!("/alerts/{id}.xml")).await;
        assert_eq!(xml.status, 200);
        assert!(
            xml.body.len() > 5 * body.len() / 2,
            "{what}: {} bytes",
            xml.body.len()
        );
    }
}

#[tokio::test]
async fn alert_urls_answer_404_in_json() {
    let hub = Hub::start(&[], &[]);
    for path in [
        "/alerts/1.xml",
        "/alerts/0.xml",
        "/alerts/01.xml",
        "/alerts/1.txt",
        "/alerts/abc",
        "/alerts/99999999999999999999999.json",
    ] {
        let response = get(&hub, path).await;
        assert_error(&response, 404, "not_found", path);
    }
    // A well-formed number the hub has not given out is named as such.
    let response = get(&hub, "/alerts/7.json").await;
    assert_eq!(
        response.json()["message"],
        "no alert numbered 7",
        "{}",
        response.body
    );
}

/// The fixture alert `identifier` for `region`, under `sender`.
fn under_sender(sender: &str, identifier: &str, region: &str) -> Vec<u8> {
    let xml = cap_xml(&Fixture {
        identifier,
        kind: "food",
        severity: "Moderate",
        regions: &[region],
        sent: "2025-07-01T08:00:00+08:00",
        headline: "发件人归属",
        description: "一个发件人只代表一个地区",
    });
    xml.replacen(
        &format!("<sender>{SENDER}</sender>"),
        &format!("<sender>{sender}</sender>"),
        1,
    )
    .into_bytes()
}

#[tokio::test]
async fn a_sender_speaks_for_one_region() {
    // The province's sender is configured; a city's is bound by its first alert.
    let tmp = tempfile::tempdir().expect("tmp");
    let config = tmp.path().join("hubcast.toml");
    std::fs::write(
        &config,
        "[alerts.senders]\n\"scjg.zj.gov.cn\" = \"330000\"\n",
    )
    .expect("config");
    let hub = Hub::start(&["--config", config.to_str().expect("path")], &[]);
    let province = hub.token("province-admin", "330000", &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let xml = Some("application/cap+xml");
    let send = |token: &str, body: Vec<u8>| {
        let token = token.to_owned();
        let hub = &hub;
        async move { post(hub, Some(&token), xml, &body).await }
    };

    // Configured: nobody but the province publishes under it, even before the province did.
    let r = send(&city, under_sender(SENDER, "c-1", "330100")).await;
    assert_error(
        &r,
        403,
        "sender_not_yours",
        "city under the province's sender",
    );
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("330000"))
    );
    let r = send(&province, under_sender(SENDER, "p-1", "330100")).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // First use: the city's sender is the city's from its first alert on.
    let hz = "scjg.hangzhou.gov.cn";
    let r = send(&city, under_sender(hz, "hz-1", "330106")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    for (who, token, identifier) in [
        ("its county", &county, "hz-2"),
        ("the province above it", &province, "hz-3"),
        ("its county re-posting the city's alert", &county, "hz-1"),
    ] {
        let r = send(token, under_sender(hz, identifier, "330106")).await;
        assert_error(&r, 403, "sender_not_yours", who);
        assert!(
            r.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("330100"))
        );
    }
    // Nothing was stored for the refused ones; the county has a sender of its own.
    let r = send(&county, under_sender("scjg.xihu.gov.cn", "xh-1", "330106")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page = archive(&hub, "limit=50").await;
    assert_eq!(identifiers(&page).len(), 3, "{page}");
    let r = send(&city, under_sender(hz, "hz-1", "330106")).await;
    assert_eq!(r.status, 200, "the owner's re-post: {}", r.body);
}

/// The alert [`under_sender`] gives for `sender`, `identifier` and `region`, turned into a
/// `msg_type` referencing `target` (a sender and an identifier sent on the first, or the
/// second with a `'` after the identifier), sent on the second of July.
fn referencing(
    (sender, identifier, region): (&str, &str, &str),
    msg_type: &str,
    (target_sender, target): (&str, &str),
) -> Vec<u8> {
    let body = under_sender(sender, identifier, region);
    let (target, day) = match target.strip_suffix('\'') {
        Some(updated) => (updated, "02"),
        None => (target, "01"),
    };
    let mut text = String::from_utf8(body).expect("utf-8");
    let scope = "<scope>Public</scope>";
    let edits = [
        (
            "<msgType>Alert</msgType>".to_owned(),
            format!("<msgType>{msg_type}</msgType>"),
        ),
        (
            "<sent>2025-07-01T08:00:00+08:00</sent>".to_owned(),
            "<sent>2025-07-02T08:00:00+08:00</sent>".to_owned(),
        ),
        (
            scope.to_owned(),
            format!(
                "{scope}<references>{target_sender},{target},2025-07-{day}T08:00:00+08:00</references>"
            ),
        ),
    ];
    for (from, to) in edits {
        assert!(text.contains(&from), "sample lacks {from}");
        text = text.replacen(&from, &to, 1);
    }
    text.into_bytes()
}

/// Only the region an alert was issued for, or a tier above it, may update or cancel it,
/// even where the alert is about a county alone; and an Alert that names earlier alerts in
/// `references` supersedes none of them (CAP 1.2: only Update and Cancel act on references).
#[tokio::test]
async fn only_the_issuer_or_a_tier_above_supersedes_an_alert() {
    let hub = Hub::start(&[], &[]);
    let province = hub.token("province-admin", "330000", &[]);
    let city = hub.token("city-admin", "330100", &[]);
    let county = hub.token("county-operator", "330106", &[]);
    let other_county = hub.token("county-operator", "330105", &[]);
    let xml = Some("application/cap+xml");
    let send = |token: &str, body: Vec<u8>| {
        let token = token.to_owned();
        let hub = &hub;
        async move { post(hub, Some(&token), xml, &body).await }
    };
    let (hz, xihu) = ("scjg.hangzhou.gov.cn", "scjg.xihu.gov.cn");

    // Numbers of the stored alerts by identifier (the feed names alerts by number).
    let mut seqs = std::collections::HashMap::new();
    let mut stored = |identifier: &str, r: &Response| {
        assert_eq!(r.status, 201, "{identifier}: {}", r.body);
        seqs.insert(
            identifier.to_owned(),
            r.json()["seq"].as_u64().expect("seq"),
        );
    };

    // The city's alert about the Xihu district alone.
    stored(
        "hz-1",
        &send(&city, under_sender(hz, "hz-1", "330106")).await,
    );
    for (what, msg_type) in [("update", "Update"), ("cancel", "Cancel")] {
        let body = referencing((xihu, "xh-9", "330106"), msg_type, (hz, "hz-1"));
        let r = send(&county, body).await;
        assert_error(
            &r,
            403,
            "not_the_issuer",
            &format!("the county would {what} its city's alert"),
        );
        assert!(
            r.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("330100")),
            "{}",
            r.body
        );
    }
    // A county's own alert: a peer county may not touch it; the county, its city and the
    // province may.
    stored(
        "xh-1",
        &send(&county, under_sender(xihu, "xh-1", "330106")).await,
    );
    let peer = referencing(
        ("scjg.gongshu.gov.cn", "gs-1", "330105"),
        "Update",
        (xihu, "xh-1"),
    );
    let r = send(&other_county, peer).await;
    assert_eq!(r.status, 403, "a peer county: {}", r.body);
    let update = referencing((xihu, "xh-2", "330106"), "Update", (xihu, "xh-1"));
    stored("xh-2", &send(&county, update).await);
    let cancel = referencing((hz, "hz-2", "330106"), "Cancel", (xihu, "xh-2'"));
    stored("hz-2", &send(&city, cancel).await);
    let cancel = referencing((SENDER, "zj-1", "330106"), "Cancel", (hz, "hz-1"));
    stored("zj-1", &send(&province, cancel).await);

    // An Alert naming an earlier alert leaves it live, and naming one the hub does not have
    // is no error for an Alert.
    stored(
        "xh-3",
        &send(&county, under_sender(xihu, "xh-3", "330106")).await,
    );
    let naming = referencing((xihu, "xh-4", "330106"), "Alert", (xihu, "xh-3"));
    stored("xh-4", &send(&county, naming).await);
    let naming = referencing((xihu, "xh-5", "330106"), "Alert", (xihu, "xh-404"));
    stored("xh-5", &send(&county, naming).await);

    let feed = get(&hub, "/feeds/alerts.atom?region=330106").await;
    assert_eq!(feed.status, 200);
    let listed = |identifier: &str| {
        feed.body
            .contains(&format!("urn:hubcast:alert:{}<", seqs[identifier]))
    };
    for live in ["xh-3", "xh-4", "xh-5"] {
        assert!(listed(live), "{live} is live: {}", feed.body);
    }
    for gone in ["hz-1", "xh-1", "xh-2", "hz-2", "zj-1"] {
        assert!(
            !listed(gone),
            "{gone} was superseded or is a Cancel: {}",
            feed.body
        );
    }
}

/// Something else answering 2xx at the hub's address (a proxy's login page, a captive
/// portal) is not taken for a stored alert: the CLI says so and exits 1; a `100 Continue`
/// before the hub's answer is skipped.
#[test]
fn the_cli_believes_only_a_hubs_answer() {
    use std::io::{Read as _, Write as _};
    let answers = [
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 26\r\n\r\nPlease log in to the proxy",
            1,
            "not as a hubcast hub does",
        ),
        (
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 36\r\n\r\n{\"id\":\"7\",\"seq\":7,\"created\":true}\n\n\n",
            0,
            "\"seq\":7",
        ),
    ];
    for (answer, code, said) in answers {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            // The whole request first (closing on unread bytes would reset the connection).
            let (mut request, mut chunk) = (Vec::new(), [0u8; 4096]);
            while !request.ends_with(b"</alert>\n") && !request.ends_with(b"</alert>") {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            stream.write_all(answer.as_bytes()).expect("answer");
        });
        let file = data_path("food_warning_330100.xml");
        let (status, out, err) = run(
            &[
                "alert", "publish", &file, "--server", &url, "--token", "a.b.c",
            ],
            &[],
        );
        server.join().expect("server");
        assert_eq!(status.code(), Some(code), "{out}{err}");
        assert!(format!("{out}{err}").contains(said), "{out}{err}");
    }
}
