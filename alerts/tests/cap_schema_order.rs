//! Structural check of the writer's output against the CAP 1.2 schema, standing in for XSD
//! validation (the OASIS XSD cannot be fetched here). The schema's sequences and simple types are
//! transcribed below, independently of the crate's own tables, and the written XML is read with
//! quick-xml directly: every element known, in sequence order, within its occurrence bounds,
//! leaves with text of the right type.

use alerts::cap::{Alert, CAP_NAMESPACE, CapError, read_xml};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

const FOOD: &str = include_str!("data/food_warning_330100.xml");
const SAMPLES: [&str; 4] = [
    FOOD,
    include_str!("data/spotcheck_330106.xml"),
    include_str!("data/food_warning_update.xml"),
    include_str!("data/spotcheck_cancel.xml"),
];

/// Simple types of CAP 1.2 leaves.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    DateTime,
    Enum(&'static [&'static str]),
    Integer,
    Decimal,
    Language,
    Uri,
}

/// A schema type: a leaf or a sequence of (name, minOccurs, maxOccurs; 0 = unbounded).
#[derive(Clone, Copy, Debug)]
enum Def {
    Leaf(Ty),
    Seq(&'static [(&'static str, u32, u32)]),
}

const ALERT: &[(&str, u32, u32)] = &[
    ("identifier", 1, 1),
    ("sender", 1, 1),
    ("sent", 1, 1),
    ("status", 1, 1),
    ("msgType", 1, 1),
    ("source", 0, 1),
    ("scope", 1, 1),
    ("restriction", 0, 1),
    ("addresses", 0, 1),
    ("code", 0, 0),
    ("note", 0, 1),
    ("references", 0, 1),
    ("incidents", 0, 1),
    ("info", 0, 0),
];
const INFO: &[(&str, u32, u32)] = &[
    ("language", 0, 1),
    ("category", 1, 0),
    ("event", 1, 1),
    ("responseType", 0, 0),
    ("urgency", 1, 1),
    ("severity", 1, 1),
    ("certainty", 1, 1),
    ("audience", 0, 1),
    ("eventCode", 0, 0),
    ("effective", 0, 1),
    ("onset", 0, 1),
    ("expires", 0, 1),
    ("senderName", 0, 1),
    ("headline", 0, 1),
    ("description", 0, 1),
    ("instruction", 0, 1),
    ("web", 0, 1),
    ("contact", 0, 1),
    ("parameter", 0, 0),
    ("resource", 0, 0),
    ("area", 0, 0),
];
const RESOURCE: &[(&str, u32, u32)] = &[
    ("resourceDesc", 1, 1),
    ("mimeType", 1, 1),
    ("size", 0, 1),
    ("uri", 0, 1),
    ("derefUri", 0, 1),
    ("digest", 0, 1),
];
const AREA: &[(&str, u32, u32)] = &[
    ("areaDesc", 1, 1),
    ("polygon", 0, 0),
    ("circle", 0, 0),
    ("geocode", 0, 0),
    ("altitude", 0, 1),
    ("ceiling", 0, 1),
];
const PAIR: &[(&str, u32, u32)] = &[("valueName", 1, 1), ("value", 1, 1)];

/// The definition of element `name` whose parent is `parent`.
fn def(parent: &str, name: &str) -> Def {
    use Ty::*;
    match (parent, name) {
        ("", "alert") => Def::Seq(ALERT),
        ("alert", "info") => Def::Seq(INFO),
        ("info", "resource") => Def::Seq(RESOURCE),
        ("info", "area") => Def::Seq(AREA),
        ("info", "eventCode" | "parameter") | ("area", "geocode") => Def::Seq(PAIR),
        (_, "sent" | "effective" | "onset" | "expires") => Def::Leaf(DateTime),
        (_, "status") => Def::Leaf(Enum(&["Actual", "Exercise", "System", "Test", "Draft"])),
        (_, "msgType") => Def::Leaf(Enum(&["Alert", "Update", "Cancel", "Ack", "Error"])),
        (_, "scope") => Def::Leaf(Enum(&["Public", "Restricted", "Private"])),
        (_, "category") => Def::Leaf(Enum(&[
            "Geo",
            "Met",
            "Safety",
            "Security",
            "Rescue",
            "Fire",
            "Health",
            "Env",
            "Transport",
            "Infra",
            "CBRNE",
            "Other",
        ])),
        (_, "responseType") => Def::Leaf(Enum(&[
            "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear",
            "None",
        ])),
        (_, "urgency") => Def::Leaf(Enum(&[
            "Immediate",
            "Expected",
            "Future",
            "Past",
            "Unknown",
        ])),
        (_, "severity") => Def::Leaf(Enum(&["Extreme", "Severe", "Moderate", "Minor", "Unknown"])),
        (_, "certainty") => Def::Leaf(Enum(&[
            "Observed", "Likely", "Possible", "Unlikely", "Unknown",
        ])),
        (_, "size") => Def::Leaf(Integer),
        (_, "altitude" | "ceiling") => Def::Leaf(Decimal),
        (_, "language") => Def::Leaf(Language),
        (_, "web" | "uri") => Def::Leaf(Uri),
        _ => Def::Leaf(Str),
    }
}

fn type_ok(ty: Ty, text: &str) -> bool {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    match ty {
        Ty::Str => true,
        // CAP 1.2 XSD: pattern \d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d
        Ty::DateTime => {
            b.len() == 25
                && [
                    0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24,
                ]
                .into_iter()
                .all(digit)
                && b[4] == b'-'
                && b[7] == b'-'
                && b[10] == b'T'
                && b[13] == b':'
                && b[16] == b':'
                && matches!(b[19], b'-' | b'+')
                && b[22] == b':'
        }
        Ty::Enum(values) => values.contains(&text),
        Ty::Integer => !text.is_empty() && b.iter().all(u8::is_ascii_digit),
        Ty::Decimal => text.trim_start_matches('-').parse::<f64>().is_ok(),
        Ty::Language => text
            .split('-')
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_alphanumeric())),
        Ty::Uri => !text.contains(char::is_whitespace),
    }
}

/// Walks `xml` and checks it against the table; returns the number of elements seen.
fn check_against_schema(xml: &str) -> usize {
    let mut reader = NsReader::from_str(xml);
    // Open elements: (name, definition, next sequence index, count at that index, text).
    let mut stack: Vec<(String, Def, usize, u32, String)> = Vec::new();
    let mut seen = 0;
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .expect("writer output is well-formed");
        let in_cap = matches!(ns, ResolveResult::Bound(n) if n.0 == CAP_NAMESPACE);
        match event {
            Event::Start(e) => {
                assert!(in_cap, "element outside the CAP namespace");
                seen += 1;
                let name = e.local_name().as_ref().to_owned();
                let parent = stack.last().map_or(String::new(), |s| s.0.clone());
                if let Some((pname, Def::Seq(seq), at, count, _)) = stack.last_mut() {
                    let rest = &seq[*at..];
                    let offset =
                        rest.iter()
                            .position(|(n, _, _)| *n == name)
                            .unwrap_or_else(|| {
                                panic!("<{name}> not allowed in <{pname}> after position {at}")
                            });
                    if offset == 0 {
                        *count += 1;
                    } else {
                        for (skipped, min, _) in &rest[..offset] {
                            let got = if skipped == &rest[0].0 { *count } else { 0 };
                            assert!(got >= *min, "<{pname}> lacks required <{skipped}>");
                        }
                        *at += offset;
                        *count = 1;
                    }
                    let max = seq[*at].2;
                    assert!(max == 0 || *count <= max, "<{name}> repeated in <{pname}>");
                } else {
                    assert!(stack.is_empty(), "<{parent}> is a leaf but has <{name}>");
                }
                stack.push((name.clone(), def(&parent, &name), 0, 0, String::new()));
            }
            Event::Empty(e) => panic!("writer never writes empty <{:?}/>", e.local_name()),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.4.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    top.4
                        .push(r.resolve_char_ref().ok().flatten().unwrap_or('&'));
                }
            }
            Event::End(_) => {
                let (name, d, at, count, text) = stack.pop().expect("balanced");
                match d {
                    Def::Leaf(ty) => assert!(type_ok(ty, &text), "<{name}> `{text}` is not {ty:?}"),
                    Def::Seq(seq) => {
                        for (i, (req, min, _)) in seq.iter().enumerate().skip(at) {
                            let got = if i == at { count } else { 0 };
                            assert!(got >= *min, "<{name}> lacks required <{req}>");
                        }
                        assert!(text.trim().is_empty(), "<{name}> has text");
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    seen
}

/// The food sample with every optional element filled in and a second info.
fn maximal() -> Alert {
    let mut a = Alert::from_xml(FOOD.as_bytes()).expect("sample");
    a.restriction = Some("仅限监管系统内部".into());
    a.addresses = Some("330100 \"杭州 指挥中心\"".into());
    a.codes.push("IPAWSv1.0".into());
    a.note = Some("演练".into());
    a.references = Some("other.example,X-1,2024-05-01T00:00:00-00:00".into());
    let info = &mut a.info[0];
    info.onset = info.effective;
    let r = &mut info.resources[0];
    r.deref_uri = Some("SGVsbG8=".into());
    let area = &mut info.areas[0];
    area.circles.push("30.27,120.15 10".into());
    area.altitude = Some("0".into());
    area.ceiling = Some("1000.5".into());
    let mut en = a.info[0].clone();
    en.language = Some("en-US".into());
    en.event = "Food safety warning".into();
    a.info.push(en);
    a
}

#[test]
fn written_samples_follow_the_cap_1_2_schema() {
    for sample in SAMPLES {
        let alert = Alert::from_xml(sample.as_bytes()).expect("sample");
        assert!(check_against_schema(&alert.to_xml()) > 5);
    }
    let max = maximal().to_xml();
    assert!(max.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<alert xmlns=\""));
    assert!(check_against_schema(&max) > 90);
    for element in [
        "restriction",
        "addresses",
        "onset",
        "derefUri",
        "circle",
        "ceiling",
    ] {
        assert!(max.contains(&format!("<{element}>")), "{element}");
    }
}

#[test]
fn the_reader_rejects_each_adjacent_swap_of_alert_children() {
    let xml = maximal().to_xml();
    let lines: Vec<&str> = xml.lines().collect();
    // Top-level leaves of <alert> are the lines indented by exactly two spaces.
    let top: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            lines[i].starts_with("  <") && !lines[i].starts_with("   ") && lines[i].ends_with('>')
        })
        .filter(|&i| !lines[i].starts_with("  <info") && !lines[i].starts_with("  </"))
        .collect();
    let mut swaps = 0;
    for pair in top.windows(2) {
        let (i, j) = (pair[0], pair[1]);
        let name = |l: &str| l.trim_start().split(['<', '>']).nth(1).map(str::to_owned);
        if j != i + 1 || name(lines[i]) == name(lines[j]) {
            continue;
        }
        let mut swapped = lines.clone();
        swapped.swap(i, j);
        let doc = swapped.join("\n");
        match read_xml(doc.as_bytes(), 1 << 20) {
            Err(CapError::OutOfOrder { .. }) => swaps += 1,
            other => panic!("swapping lines {i} and {j}: want OutOfOrder, got {other:?}"),
        }
    }
    assert!(swaps >= 10, "{swaps}");
}

#[test]
#[should_panic(expected = "not allowed in <alert>")]
fn the_checker_itself_catches_misordered_elements() {
    let source = "<source>杭州市市场监督管理局食品安全协调处</source>";
    let doc = FOOD.replacen(source, "", 1).replacen(
        "<scope>Public</scope>",
        &format!("<scope>Public</scope>{source}"),
        1,
    );
    check_against_schema(&doc);
}

#[test]
#[should_panic(expected = "is not DateTime")]
fn the_checker_itself_catches_bad_leaf_types() {
    let doc = FOOD.replacen("+08:00</sent>", "Z</sent>", 1);
    check_against_schema(&doc);
}
