//! Every validation error, table-driven: each case mutates a valid sample (a text replacement
//! that must apply exactly once) and names the error kind and element path it must produce,
//! either from the reader (schema level, first error) or from `validate` (rules, all errors).

use alerts::cap::{Alert, CapError, Severity, read_json, read_xml, validate};

const FOOD: &str = include_str!("data/food_warning_330100.xml");
const SPOT: &str = include_str!("data/spotcheck_330106.xml");
const SPOT_JSON: &str = include_str!("data/spotcheck_330106.json");
const UPDATE: &str = include_str!("data/food_warning_update.xml");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    /// The reader (XML) rejects the document with this first error.
    Xml,
    /// The JSON reader rejects it.
    Json,
    /// The document reads, and `validate` reports this error among others.
    Rule,
}
use Stage::{Json, Rule, Xml};

/// (stage, sample, replace this, with this, error kind, error path)
type Case = (
    Stage,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Schema structure: required elements.
    (Xml, FOOD, "<identifier>HZ-FS-2024-0517-001</identifier>", "", "missing", "alert/identifier"),
    (Xml, FOOD, "<sent>2024-05-17T09:00:00+08:00</sent>", "", "missing", "alert/sent"),
    (Xml, FOOD, "<scope>Public</scope>", "", "missing", "alert/scope"),
    (Xml, FOOD, "<event>食品安全预警</event>", "", "missing", "alert/info[0]/event"),
    (Xml, FOOD, "<category>Health</category>", "", "missing", "alert/info[0]/category[0]"),
    (Xml, FOOD, "<severity>Severe</severity>", "", "missing", "alert/info[0]/severity"),
    (Xml, FOOD, "<areaDesc>杭州市</areaDesc>", "", "missing", "alert/info[0]/area[0]/areaDesc"),
    (Xml, FOOD, "<valueName>GB2260</valueName>", "", "missing", "alert/info[0]/area[0]/geocode[0]/valueName"),
    (Xml, FOOD, "<mimeType>application/pdf</mimeType>", "", "missing", "alert/info[0]/resource[0]/mimeType"),
    // Enumerations.
    (Xml, FOOD, "<status>Actual</status>", "<status>Real</status>", "bad_enum", "alert/status"),
    (Xml, FOOD, "<msgType>Alert</msgType>", "<msgType>alert</msgType>", "bad_enum", "alert/msgType"),
    (Xml, FOOD, "<scope>Public</scope>", "<scope>Everyone</scope>", "bad_enum", "alert/scope"),
    (Xml, FOOD, "<category>Health</category>", "<category>Food</category>", "bad_enum", "alert/info[0]/category[0]"),
    (Xml, FOOD, "<responseType>Monitor</responseType>", "<responseType>Watch</responseType>", "bad_enum", "alert/info[0]/responseType[1]"),
    (Xml, FOOD, "<urgency>Expected</urgency>", "<urgency>Soon</urgency>", "bad_enum", "alert/info[0]/urgency"),
    (Xml, FOOD, "<severity>Severe</severity>", "<severity>Serious</severity>", "bad_enum", "alert/info[0]/severity"),
    (Xml, FOOD, "<certainty>Likely</certainty>", "<certainty>Very Likely</certainty>", "bad_enum", "alert/info[0]/certainty"),
    (Xml, FOOD, "<value>serious</value>", "<value>grave</value>", "bad_enum", "alert/info[0]/parameter[2]/value"),
    (Xml, FOOD, "<value>alert</value>", "<value>warning</value>", "bad_enum", "alert/info[0]/parameter[1]/value"),
    // dateTime.
    (Xml, FOOD, "<sent>2024-05-17T09:00:00+08:00</sent>", "<sent>2024-05-17T01:00:00Z</sent>", "bad_datetime", "alert/sent"),
    (Xml, FOOD, "<sent>2024-05-17T09:00:00+08:00</sent>", "<sent>2024-05-17T09:00:00</sent>", "bad_datetime", "alert/sent"),
    (Xml, FOOD, "<sent>2024-05-17T09:00:00+08:00</sent>", "<sent>2024-05-17T09:00:00.000+08:00</sent>", "bad_datetime", "alert/sent"),
    (Xml, FOOD, "<expires>2024-08-31T23:59:59+08:00</expires>", "<expires>2024-02-30T23:59:59+08:00</expires>", "bad_datetime", "alert/info[0]/expires"),
    (Xml, FOOD, "<effective>2024-05-17T09:00:00+08:00</effective>", "<effective>17/05/2024</effective>", "bad_datetime", "alert/info[0]/effective"),
    // Schema order, repetition, unknown elements, content kinds.
    (Xml, FOOD, "<source>杭州市市场监督管理局食品安全协调处</source>\n  <scope>Public</scope>", "<scope>Public</scope>\n  <source>x</source>", "out_of_order", "alert/source"),
    (Xml, FOOD, "<severity>Severe</severity>", "<severity>Severe</severity><severity>Minor</severity>", "repeated", "alert/info[0]/severity"),
    (Xml, FOOD, "<incidents>", "<foo>x</foo><incidents>", "unknown_element", "alert"),
    (Xml, FOOD, "<senderName>", "<spotCheck/><senderName>", "unknown_element", "alert/info[0]"),
    (Xml, FOOD, "<incidents>", "<foo xmlns=\"\">x</foo><incidents>", "unknown_element", "alert"),
    (Xml, FOOD, "<identifier>", "<identifier lang=\"zh\">", "invalid", "alert/identifier"),
    (Xml, FOOD, "<info>", "<info>stray text", "invalid", "alert/info[0]"),
    (Xml, FOOD, "<incidents>HZ-INC-2024-0042</incidents>", "<incidents>a<code>b</code></incidents>", "invalid", "alert/incidents"),
    (Xml, FOOD, "<size>183452</size>", "<size>180 KB</size>", "invalid", "alert/info[0]/resource[0]/size"),
    (Xml, FOOD, "cap:1.2\">", "cap:1.1\">", "not_cap", ""),
    // Spot-check parameters.
    (Xml, SPOT, "<cap:value>fail</cap:value>", "<cap:value>failed</cap:value>", "bad_enum", "alert/info[0]/parameter[13]/value"),
    (Xml, SPOT, "二氧化硫残留量|0.79|≤0.2|g/kg", "二氧化硫残留量|0.79", "invalid", "alert/info[0]/parameter[14]/value"),
    (Xml, SPOT, "二氧化硫残留量|0.79|≤0.2|g/kg", "二氧化硫残留量\\n|0.79|≤0.2|g/kg", "invalid", "alert/info[0]/parameter[14]/value"),
    (Xml, SPOT, "spotcheck:producerName", "spotcheck:maker", "invalid", "alert/info[0]/parameter[0]"),
    (Xml, SPOT, "spotcheck:productName", "other:productName", "missing", "alert/info[0]/parameter(spotcheck:productName)"),
    (Xml, SPOT, "<cap:value>2024-05-18</cap:value>", "<cap:value>2024年5月18日</cap:value>", "bad_datetime", "alert/info[0]/parameter[10]/value"),
    (Xml, SPOT, "spotcheck:specification", "spotcheck:brand", "repeated", "alert/info[0]/parameter[6]"),
    // JSON: the same rules through the same decoder.
    (Json, SPOT_JSON, "\"severity\": \"Moderate\"", "\"severity\": \"moderate\"", "bad_enum", "alert/info[0]/severity"),
    (Json, SPOT_JSON, "\"sent\": \"2024-05-18T10:30:00+08:00\",", "", "missing", "alert/sent"),
    (Json, SPOT_JSON, "\"sent\": \"2024-05-18T10:30:00+08:00\"", "\"sent\": \"2024-05-18T02:30:00Z\"", "bad_datetime", "alert/sent"),
    (Json, SPOT_JSON, "\"scope\": \"Public\",", "\"scope\": \"Public\", \"foo\": 1,", "unknown_element", "alert"),
    (Json, SPOT_JSON, "\"category\": [\"Health\"]", "\"category\": []", "missing", "alert/info[0]/category[0]"),
    (Json, SPOT_JSON, "\"event\": \"抽检结果\"", "\"event\": [\"抽检结果\", \"x\"]", "repeated", "alert/info[0]/event"),
    (Json, SPOT_JSON, "\"result\": \"fail\"", "\"result\": \"bad\"", "bad_enum", "alert/info[0]/spotCheck/result"),
    (Json, SPOT_JSON, "\"limit\": \"≤0.2\", ", "", "missing", "alert/info[0]/spotCheck/failedItems[0]/limit"),
    (Json, SPOT_JSON, "\"unit\": \"g/kg\" }\n", "\"unit\": \"\" }\n", "invalid", "alert/info[0]/spotCheck/failedItems[1]/unit"),
    (Json, SPOT_JSON, "\"productName\": \"金针菜（黄花菜）干制品\",", "", "missing", "alert/info[0]/spotCheck/productName"),
    (Json, SPOT_JSON, "\"noticeDate\": \"2024-05-18\"", "\"noticeDate\": \"2024-5-18\"", "bad_datetime", "alert/info[0]/spotCheck/noticeDate"),
    (Json, SPOT_JSON, "\"spotCheck\": {", "\"parameter\": [{\"valueName\": \"spotcheck:brand\", \"value\": \"x\"}], \"spotCheck\": {", "invalid", "alert/info[0]/spotCheck"),
    (Json, SPOT_JSON, "\"urgency\": \"Future\"", "\"urgency\": true", "invalid", "alert/info[0]/urgency"),
    // Rules beyond the schema.
    (Rule, FOOD, "<identifier>HZ-FS-2024-0517-001</identifier>", "<identifier>HZ FS 001</identifier>", "invalid", "alert/identifier"),
    (Rule, FOOD, "<identifier>HZ-FS-2024-0517-001</identifier>", "<identifier></identifier>", "invalid", "alert/identifier"),
    (Rule, FOOD, "<sender>scjg.hangzhou.gov.cn</sender>", "<sender>scjg,hangzhou</sender>", "invalid", "alert/sender"),
    (Rule, FOOD, "<scope>Public</scope>", "<scope>Restricted</scope>", "missing", "alert/restriction"),
    (Rule, FOOD, "<scope>Public</scope>", "<scope>Private</scope>", "missing", "alert/addresses"),
    (Rule, FOOD, "<msgType>Alert</msgType>", "<msgType>Cancel</msgType>", "missing", "alert/references"),
    (Rule, UPDATE, "<references>scjg.hangzhou.gov.cn,HZ-FS-2024-0517-001,2024-05-17T09:00:00+08:00</references>", "", "missing", "alert/references"),
    (Rule, UPDATE, ",HZ-FS-2024-0517-001,2024-05-17T09:00:00+08:00", ",HZ-FS-2024-0517-001", "invalid", "alert/references"),
    (Rule, UPDATE, ",HZ-FS-2024-0517-001,2024-05-17T09:00:00+08:00", ",HZ-FS-2024-0517-001,2024-05-17", "invalid", "alert/references"),
    (Rule, UPDATE, ",HZ-FS-2024-0517-001,2024-05-17T09:00:00+08:00", ",HZ-FS-2024-0517-001,2024-07-17T09:00:00+08:00", "invalid", "alert/references"),
    (Rule, UPDATE, ",HZ-FS-2024-0517-001,", ",HZ-FS-2024-0601-002,", "invalid", "alert/references"),
    (Rule, FOOD, "<expires>2024-08-31T23:59:59+08:00</expires>", "<expires>2024-05-17T08:59:59+08:00</expires>", "invalid", "alert/info[0]/expires"),
    (Rule, FOOD, "<expires>2024-08-31T23:59:59+08:00</expires>", "<expires>2024-05-17T01:00:00-00:00</expires>", "invalid", "alert/info[0]/expires"),
    (Rule, FOOD, "<effective>2024-05-17T09:00:00+08:00</effective>", "<effective>2024-09-01T00:00:00+08:00</effective>", "invalid", "alert/info[0]/expires"),
    (Rule, FOOD, "<event>食品安全预警</event>", "<event> </event>", "invalid", "alert/info[0]/event"),
    (Rule, FOOD, "<language>zh-CN</language>", "<language>zh_CN</language>", "invalid", "alert/info[0]/language"),
    (Rule, FOOD, "<web>https://", "<web>//", "invalid", "alert/info[0]/web"),
    (Rule, FOOD, "<digest>3f786850e387550fdab836ed7e6dc881de23001b</digest>", "<digest>3f7868</digest>", "invalid", "alert/info[0]/resource[0]/digest"),
    (Rule, FOOD, "<mimeType>application/pdf</mimeType>", "<mimeType>pdf</mimeType>", "invalid", "alert/info[0]/resource[0]/mimeType"),
    (Rule, FOOD, "29.95,119.80 30.57,119.80</polygon>", "29.95,119.80</polygon>", "invalid", "alert/info[0]/area[0]/polygon[0]"),
    (Rule, FOOD, "30.57,119.80 30.57,120.60", "95.0,119.80 30.57,120.60", "invalid", "alert/info[0]/area[0]/polygon[0]"),
    (Rule, UPDATE, "<circle>30.42,120.30 25</circle>", "<circle>30.42 120.30 25</circle>", "invalid", "alert/info[0]/area[1]/circle[0]"),
    (Rule, FOOD, "</geocode>", "</geocode><ceiling>1000</ceiling>", "missing", "alert/info[0]/area[0]/altitude"),
    (Rule, FOOD, "</geocode>", "</geocode><altitude>1000</altitude><ceiling>10</ceiling>", "invalid", "alert/info[0]/area[0]/ceiling"),
    (Rule, FOOD, "</geocode>", "</geocode><altitude>1e3</altitude>", "invalid", "alert/info[0]/area[0]/altitude"),
    (Rule, FOOD, "<value>330100</value>", "<value>33010</value>", "invalid", "alert/info[0]/area[0]/geocode[0]/value"),
    (Rule, FOOD, "<valueName>GB2260</valueName>", "<valueName>ISO3166</valueName>", "missing", "alert/info/area/geocode"),
    (Rule, FOOD, "<valueName>GB2260</valueName>", "<valueName>gb2260</valueName>", "invalid", "alert/info[0]/area[0]/geocode[0]/valueName"),
    // A second area drawn only as a circle: nothing to authorize it by, though the first
    // area's code is the publisher's own.
    (Rule, UPDATE, "25</circle>\n      <geocode>\n        <valueName>GB2260</valueName>\n        <value>330110</value>\n      </geocode>", "25</circle>", "missing", "alert/info[0]/area[1]/geocode"),
    (Rule, FOOD, "<valueName>hubcast:kind</valueName>", "<valueName>kind</valueName>", "missing", "alert/info[0]/eventCode"),
    (Rule, FOOD, "<value>food</value>", "<value>foods</value>", "bad_enum", "alert/info[0]/eventCode[0]/value"),
    (Rule, FOOD, "<value>food</value>", "<value>spotcheck</value>", "missing", "alert/info[0]/parameter(spotcheck:*)"),
    (Rule, FOOD, "<valueName>预警级别</valueName>", "<valueName></valueName>", "invalid", "alert/info[0]/parameter[0]/valueName"),
    (Rule, SPOT, "<cap:value>spotcheck</cap:value>", "<cap:value>market</cap:value>", "invalid", "alert/info[0]/parameter(spotcheck:*)"),
    (Rule, SPOT, "<cap:value>fail</cap:value>", "<cap:value>pass</cap:value>", "invalid", "alert/info[0]/parameter(spotcheck:failedItem)"),
];

fn apply(sample: &str, from: &str, to: &str) -> String {
    assert_eq!(
        sample.matches(from).count(),
        1,
        "`{from}` must occur exactly once"
    );
    sample.replacen(from, to, 1)
}

#[test]
fn every_case_produces_its_error_with_its_path() {
    for (i, &(stage, sample, from, to, kind, path)) in CASES.iter().enumerate() {
        let doc = apply(sample, from, to);
        let errors: Vec<CapError> = match stage {
            Xml => vec![
                read_xml(doc.as_bytes(), 1 << 20)
                    .map(|_| i)
                    .expect_err("reader rejects"),
            ],
            Json => vec![
                read_json(doc.as_bytes(), 1 << 20)
                    .map(|_| i)
                    .expect_err("reader rejects"),
            ],
            Rule => {
                let alert = read_xml(doc.as_bytes(), 1 << 20)
                    .unwrap_or_else(|e| panic!("case {i}: reads, but {e}"));
                validate(&alert).expect_err("rule broken")
            }
        };
        let found = errors
            .iter()
            .any(|e| e.kind() == kind && e.path().unwrap_or("") == path);
        assert!(
            found,
            "case {i} ({stage:?} `{to}`): want {kind} at {path}, got {errors:#?}"
        );
        for e in &errors {
            assert!(e.to_string().contains(e.path().unwrap_or("")), "{e}");
        }
    }
}

#[test]
fn the_last_case_is_an_unknown_spotcheck_name_turned_plain() {
    // `x:failedItem` is a plain parameter, so the record then lacks one failed item; still valid.
    let doc = apply(
        SPOT,
        "spotcheck:failedItem</cap:valueName>\n      <cap:value>二氧化硫",
        "x:failedItem</cap:valueName>\n      <cap:value>二氧化硫",
    );
    let alert = read_xml(doc.as_bytes(), 1 << 20).expect("reads");
    assert_eq!(alert.info[0].parameters.len(), 1);
}

#[test]
fn enum_errors_list_the_allowed_values() {
    let doc = apply(
        FOOD,
        "<severity>Severe</severity>",
        "<severity>Serious</severity>",
    );
    let err = read_xml(doc.as_bytes(), 1 << 20).expect_err("bad");
    assert_eq!(
        err.to_string(),
        "alert/info[0]/severity: `Serious` is not one of: Extreme, Severe, Moderate, Minor, Unknown"
    );
    assert!(matches!(err, CapError::BadEnum { allowed, .. } if allowed == Severity::NAMES));
}

#[test]
fn validate_reports_every_problem_not_just_the_first() {
    let doc = apply(
        FOOD,
        "<identifier>HZ-FS-2024-0517-001</identifier>",
        "<identifier>a b</identifier>",
    );
    let doc = apply(&doc, "<language>zh-CN</language>", "<language>?</language>");
    let doc = apply(&doc, "<value>330100</value>", "<value>990000x</value>");
    let alert = read_xml(doc.as_bytes(), 1 << 20).expect("reads");
    let paths: Vec<_> = validate(&alert)
        .expect_err("three problems")
        .iter()
        .map(|e| e.path().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "alert/identifier",
            "alert/info[0]/language",
            "alert/info[0]/area[0]/geocode[0]/value"
        ]
    );
}

#[test]
fn rules_hold_for_alerts_built_in_code() {
    let mut a = Alert::from_xml(FOOD.as_bytes()).expect("sample");
    a.note = Some("bell \u{7}".into());
    a.info[0].spot_check = None;
    let errors = validate(&a).expect_err("control character");
    assert_eq!(errors[0].path(), Some("alert/note"));
    a.note = None;
    a.info.clear();
    let errors = validate(&a).expect_err("an Alert needs info");
    assert!(errors.iter().any(|e| e.path() == Some("alert/info[0]")));
    assert!(
        errors
            .iter()
            .any(|e| e.path() == Some("alert/info/area/geocode"))
    );
}
