//! Round trips of the sample CAP files in `tests/data/`: XML → model → XML (content-equivalent
//! to the file, compared by an independent leaf walk), model → XML → model (equal), XML ↔ JSON,
//! and hubcast's reading of each sample (kind, regions, severity level, references, record).

use alerts::cap::{
    Alert, AlertKind, Area, CapDateTime, Category, Certainty, FailedItem, MsgType,
    RasffClassification, RasffRisk, Reference, Scope, Severity, SpotCheck, SpotCheckResult, Status,
    Urgency, ValuePair, WarningLevel, read_xml, validate,
};
use proptest::prelude::*;
use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use tiers::RegionCode;

const FOOD: &[u8] = include_bytes!("data/food_warning_330100.xml");
const SPOT: &[u8] = include_bytes!("data/spotcheck_330106.xml");
const SPOT_JSON: &[u8] = include_bytes!("data/spotcheck_330106.json");
const UPDATE: &[u8] = include_bytes!("data/food_warning_update.xml");
const CANCEL: &[u8] = include_bytes!("data/spotcheck_cancel.xml");
const SAMPLES: [(&str, &[u8]); 4] = [
    ("food", FOOD),
    ("spot", SPOT),
    ("update", UPDATE),
    ("cancel", CANCEL),
];

fn parse(xml: &[u8]) -> Alert {
    Alert::from_xml(xml).expect("sample parses")
}

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("region code")
}

/// Every leaf element as (slash-joined local names, text), read with quick-xml directly, so the
/// comparison does not trust the reader under test. Whitespace between elements is ignored.
fn leaves(xml: &str) -> Vec<(String, String)> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<(String, String, bool)> = Vec::new();
    let mut out = Vec::new();
    loop {
        let event = reader.read_event().expect("well-formed");
        match event {
            Event::Start(e) => {
                if let Some(top) = stack.last_mut() {
                    top.2 = true;
                }
                stack.push((e.local_name().as_ref().to_owned(), String::new(), false));
            }
            Event::Empty(e) => {
                if let Some(top) = stack.last_mut() {
                    top.2 = true;
                }
                let path: Vec<_> = stack.iter().map(|s| s.0.as_str()).collect();
                let name = e.local_name().as_ref().to_owned();
                out.push((format!("{}/{name}", path.join("/")), String::new()));
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.1.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let c = match &*r {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "apos" => '\'',
                    "quot" => '"',
                    _ => r.resolve_char_ref().expect("char ref").expect("char"),
                };
                if let Some(top) = stack.last_mut() {
                    top.1.push(c);
                }
            }
            Event::End(_) => {
                let (name, text, has_children) = stack.pop().expect("balanced");
                if !has_children {
                    let path: Vec<_> = stack.iter().map(|s| s.0.as_str()).collect();
                    out.push((format!("{}/{name}", path.join("/")), text));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

#[test]
fn samples_are_valid_and_round_trip_through_xml() {
    for (name, xml) in SAMPLES {
        let alert = parse(xml);
        assert_eq!(validate(&alert), Ok(()), "{name}");
        let written = alert.to_xml();
        assert_eq!(
            parse(written.as_bytes()),
            alert,
            "{name}: parse(write(a)) == a"
        );
        let input = std::str::from_utf8(xml).expect("utf-8");
        assert_eq!(
            leaves(input),
            leaves(&written),
            "{name}: write(parse(file)) ≡ file"
        );
    }
}

#[test]
fn samples_round_trip_through_json_and_the_json_sample_equals_the_xml_one() {
    for (name, xml) in SAMPLES {
        let alert = parse(xml);
        let json = alert.to_json();
        assert_eq!(
            Alert::from_json(json.as_bytes()),
            Ok(alert.clone()),
            "{name}"
        );
        let via_serde: Alert = serde_json::from_str(&json).expect("Deserialize");
        assert_eq!(via_serde, alert, "{name}");
    }
    let from_json = Alert::from_json(SPOT_JSON).expect("json sample");
    assert_eq!(from_json, parse(SPOT));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&from_json.to_json()).expect("json"),
        serde_json::from_slice::<serde_json::Value>(SPOT_JSON).expect("json"),
        "written JSON equals the hand-written sample"
    );
}

#[test]
fn food_warning_reads_as_hubcast_means_it() {
    let a = parse(FOOD);
    assert_eq!(a.kind(), Ok(AlertKind::FoodSafety));
    assert_eq!(a.regions(), Ok(vec![code("330100")]));
    assert_eq!(a.max_severity(), Some(WarningLevel::II.severity()));
    assert_eq!(
        WarningLevel::from_severity(Severity::Severe),
        Some(WarningLevel::II)
    );
    assert!(a.max_severity() >= Some(Severity::Moderate));
    let info = &a.info[0];
    assert_eq!(info.language(), "zh-CN");
    assert_eq!(info.categories, [Category::Health]);
    assert_eq!(info.rasff_classification, Some(RasffClassification::Alert));
    assert_eq!(info.rasff_risk, Some(RasffRisk::Serious));
    assert_eq!(
        info.parameters,
        [ValuePair::new("预警级别", "II级（严重）")]
    );
    assert!(
        info.instruction
            .as_deref()
            .is_some_and(|t| t.contains("腹痛 & 腹泻"))
    );
    assert!(
        info.description
            .as_deref()
            .is_some_and(|t| t.contains("5 人住院治疗。\n野生菌"))
    );
    assert_eq!(info.resources[0].size, Some(183_452));
    let sent = a.sent.unix_seconds();
    assert!(a.is_live_at(sent));
    assert!(!a.is_live_at(a.expires_at().expect("expires")));
}

#[test]
fn spot_check_record_has_every_field() {
    let a = parse(SPOT);
    assert_eq!(a.kind(), Ok(AlertKind::SpotCheck));
    assert_eq!(a.regions(), Ok(vec![code("330106")]));
    assert_eq!(a.max_severity(), Some(WarningLevel::III.severity()));
    let sc = a.info[0].spot_check.as_ref().expect("record");
    assert!(
        a.info[0].parameters.is_empty(),
        "spotcheck:* parameters are lifted"
    );
    assert_eq!(sc.producer_name.as_deref(), Some("浙江青山食品有限公司"));
    assert_eq!(sc.sampled_name, "杭州市西湖区文新农贸市场王记干货店");
    assert_eq!(sc.product_name, "金针菜（黄花菜）干制品");
    assert_eq!(sc.specification.as_deref(), Some("250g/袋"));
    assert_eq!(sc.brand.as_deref(), Some("青山"));
    assert_eq!(sc.batch.as_deref(), Some("2024-03-12/QS20240312"));
    assert_eq!(sc.category.as_deref(), Some("蔬菜制品"));
    assert_eq!(sc.notice_number.as_deref(), Some("杭市监食检〔2024〕18号"));
    assert_eq!(
        sc.notice_date.map(|d| d.to_string()).as_deref(),
        Some("2024-05-18")
    );
    assert!(sc.task_source.is_some() && sc.institute.is_some() && sc.sampled_address.is_some());
    assert_eq!(sc.result, SpotCheckResult::Fail);
    assert_eq!(
        sc.failed_items[0],
        FailedItem {
            name: "二氧化硫残留量".into(),
            measured: "0.79".into(),
            limit: "≤0.2".into(),
            unit: Some("g/kg".into()),
        }
    );
    assert_eq!(sc.failed_items[1].limit, "不得使用");
}

#[test]
fn update_and_cancel_reference_the_originals() {
    let (food, spot) = (parse(FOOD), parse(SPOT));
    let update = parse(UPDATE);
    assert_eq!(update.msg_type, MsgType::Update);
    assert_eq!(update.parsed_references(), Ok(vec![Reference::to(&food)]));
    assert_eq!(update.regions(), Ok(vec![code("330106"), code("330110")]));
    assert_eq!(update.max_severity(), Some(WarningLevel::I.severity()));
    let cancel = parse(CANCEL);
    assert_eq!(cancel.msg_type, MsgType::Cancel);
    assert!(cancel.info.is_empty());
    assert_eq!(cancel.parsed_references(), Ok(vec![Reference::to(&spot)]));
    assert_eq!(
        Reference::join(&[Reference::to(&food)]),
        "scjg.hangzhou.gov.cn,HZ-FS-2024-0517-001,2024-05-17T09:00:00+08:00"
    );
}

/// An alert built in code around the given texts, with a spot-check record.
fn built(text: &str, item: &str) -> Alert {
    let sent = CapDateTime::from_unix(1_715_304_600, 480).expect("time");
    let mut a = Alert::new(
        "ID-1",
        "sender.example",
        sent,
        Status::Test,
        MsgType::Alert,
        Scope::Public,
    );
    a.note = Some(text.to_owned());
    a.codes = vec![String::new(), text.to_owned()];
    let mut info = alerts::cap::Info::new(
        Category::Health,
        text,
        Urgency::Unknown,
        Severity::Unknown,
        Certainty::Unknown,
    );
    info.description = Some(text.to_owned());
    info.parameters = vec![ValuePair::new(text, text)];
    info.spot_check = Some(SpotCheck {
        producer_name: Some(text.to_owned()),
        producer_address: None,
        sampled_name: text.to_owned(),
        sampled_address: Some(String::new()),
        product_name: item.to_owned(),
        specification: None,
        brand: None,
        batch: None,
        category: None,
        notice_number: None,
        notice_date: None,
        task_source: None,
        institute: None,
        result: SpotCheckResult::Fail,
        failed_items: vec![FailedItem {
            name: format!("x{item}"),
            measured: format!("{item}y"),
            limit: format!("|{item}\\"),
            unit: Some(format!("u{item}")),
        }],
    });
    let mut area = Area::new(text);
    area.geocodes.push(ValuePair::new("GB2260", "330100"));
    info.areas.push(area);
    a.info.push(info);
    a
}

#[test]
fn awkward_text_survives_both_formats() {
    let text = "  <b>&amp;</b> ]]> \"q\" 'a' \r\n\ttab\r end  ";
    let a = built(text, r"a|b\c\|");
    assert_eq!(read_xml(a.to_xml().as_bytes(), 1 << 20), Ok(a.clone()));
    assert_eq!(Alert::from_json(a.to_json().as_bytes()), Ok(a));
}

/// Text XML can carry: anything but the C0 controls other than tab, LF, CR, and U+FFFE/U+FFFF.
fn xml_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..40).prop_map(|cs| {
        cs.into_iter()
            .filter(|c| {
                matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
                    || *c >= '\u{10000}'
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn any_xml_text_round_trips(text in xml_text(), item in xml_text()) {
        let item = if item.is_empty() { "0".to_owned() } else { item };
        let a = built(&text, &item);
        prop_assert_eq!(read_xml(a.to_xml().as_bytes(), 1 << 20), Ok(a.clone()));
        prop_assert_eq!(Alert::from_json(a.to_json().as_bytes()), Ok(a));
    }
}
