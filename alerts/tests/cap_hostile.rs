//! Hostile and broken input: XXE, billion laughs, undeclared entities, oversize documents,
//! truncation at many byte positions, bad encodings, foreign namespaces, and arbitrary bytes
//! (proptest). The reader must answer with an error, never panic and never expand anything.

use alerts::cap::{Alert, CapError, DEFAULT_MAX_SIZE, read_json, read_xml};
use proptest::prelude::*;

const FOOD: &str = include_str!("data/food_warning_330100.xml");
const SPOT: &str = include_str!("data/spotcheck_330106.xml");
const SPOT_JSON: &str = include_str!("data/spotcheck_330106.json");

fn xml(doc: &str) -> Result<Alert, CapError> {
    read_xml(doc.as_bytes(), DEFAULT_MAX_SIZE)
}

/// The food sample with its XML declaration replaced by `prolog`.
fn with_prolog(prolog: &str) -> String {
    FOOD.replacen("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", prolog, 1)
}

#[test]
fn xxe_is_refused_at_the_doctype() {
    let doc = with_prolog(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>",
    )
    .replacen("<note>", "<note>&e;", 1)
    .replacen(
        "<contact>投诉举报电话 12315</contact>",
        "<contact>&e;</contact>",
        1,
    );
    match xml(&doc) {
        Err(CapError::DtdForbidden { at }) => assert_eq!((at.line, at.column), (2, 1)),
        other => panic!("want DtdForbidden, got {other:?}"),
    }
}

#[test]
fn billion_laughs_is_refused_without_expansion() {
    let mut dtd = String::from("<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n");
    for i in 1..=9 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        let refs = format!("&{prev};").repeat(10);
        dtd.push_str(&format!(" <!ENTITY lol{i} \"{refs}\">\n"));
    }
    dtd.push_str("]>");
    let doc = with_prolog(&format!("<?xml version=\"1.0\"?>\n{dtd}")).replacen(
        "<contact>投诉举报电话 12315</contact>",
        "<contact>&lol9;</contact>",
        1,
    );
    assert!(matches!(xml(&doc), Err(CapError::DtdForbidden { .. })));
}

#[test]
fn entity_references_without_a_dtd_are_undeclared() {
    let doc = FOOD.replacen(
        "<contact>投诉举报电话 12315</contact>",
        "<contact>&lol9;</contact>",
        1,
    );
    match xml(&doc) {
        Err(CapError::UndeclaredEntity { name, at }) => {
            assert_eq!(name, "lol9");
            assert!(at.line > 30, "{at}");
        }
        other => panic!("want UndeclaredEntity, got {other:?}"),
    }
    // Also inside an element of another namespace, which is otherwise skipped.
    let doc = FOOD.replacen(
        "<incidents>",
        "<x:y xmlns:x=\"urn:x\">&e;</x:y><incidents>",
        1,
    );
    assert!(matches!(xml(&doc), Err(CapError::UndeclaredEntity { .. })));
    // The five predefined entities and character references are fine.
    let doc = FOOD.replacen(
        "投诉举报电话 12315",
        "&lt;&gt;&amp;&apos;&quot;&#x4E2D;&#25991;",
        1,
    );
    let contact = xml(&doc).expect("predefined").info[0].contact.clone();
    assert_eq!(contact.as_deref(), Some("<>&'\"中文"));
    let doc = FOOD.replacen("投诉举报电话 12315", "&#1;", 1);
    assert!(matches!(xml(&doc), Err(CapError::Malformed { .. })));
}

#[test]
fn oversize_input_is_refused_before_parsing() {
    let padding = " ".repeat(DEFAULT_MAX_SIZE);
    let doc = FOOD.replacen("</alert>", &format!("{padding}</alert>"), 1);
    assert!(matches!(
        xml(&doc),
        Err(CapError::TooLarge {
            limit: DEFAULT_MAX_SIZE,
            ..
        })
    ));
    assert!(matches!(
        read_xml(FOOD.as_bytes(), 1000),
        Err(CapError::TooLarge { limit: 1000, .. })
    ));
    assert!(
        read_xml(FOOD.as_bytes(), FOOD.len()).is_ok(),
        "the limit is inclusive"
    );
    assert!(matches!(
        read_json(SPOT_JSON.as_bytes(), 100),
        Err(CapError::TooLarge { .. })
    ));
}

#[test]
fn every_37th_byte_truncation_is_an_error_not_a_panic() {
    for sample in [FOOD, SPOT, SPOT_JSON] {
        let bytes = sample.as_bytes();
        for cut in (0..bytes.len()).step_by(37) {
            let part = &bytes[..cut];
            let result = if sample.starts_with('{') {
                read_json(part, DEFAULT_MAX_SIZE)
            } else {
                read_xml(part, DEFAULT_MAX_SIZE)
            };
            let err = result.expect_err("a truncated document is never an alert");
            if let CapError::Malformed { at, .. } = &err {
                assert!(at.offset <= cut as u64, "{err} past the cut {cut}");
            }
        }
    }
}

#[test]
fn malformed_xml_names_the_position() {
    let cases = [
        (
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>x</sender>",
            1,
        ),
        (
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n<a:b>",
            2,
        ),
        (
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>\n<alert/>",
            2,
        ),
        (
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>\ntrailing",
            2,
        ),
        ("<?xml version=\"1.0\" encoding=\"GB2312\"?>\n<alert/>", 1),
        ("", 1),
    ];
    for (doc, line) in cases {
        match xml(doc) {
            Err(CapError::Malformed {
                format: "XML",
                at,
                message,
            }) => {
                assert_eq!(at.line, line, "{doc}: {message}");
            }
            other => panic!("{doc}: want Malformed, got {other:?}"),
        }
    }
    let mut gbk = FOOD.as_bytes().to_vec();
    gbk.extend_from_slice(&[0xB2, 0xE2]);
    assert!(matches!(
        read_xml(&gbk, DEFAULT_MAX_SIZE),
        Err(CapError::Malformed { .. })
    ));
}

#[test]
fn roots_outside_cap_1_2_are_not_cap() {
    for doc in [
        "<alert/>",
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.1\"/>",
        "<feed xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"/>",
    ] {
        assert!(matches!(xml(doc), Err(CapError::NotCap { .. })), "{doc}");
    }
}

#[test]
fn foreign_namespace_elements_are_skipped_and_a_bom_is_accepted() {
    let signed = FOOD.replacen(
        "</alert>",
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><alert/></ds:SignedInfo></ds:Signature></alert>",
        1,
    );
    let plain = xml(FOOD).expect("sample");
    assert_eq!(xml(&signed), Ok(plain.clone()));
    let xsi = FOOD.replacen(
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">",
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"urn:oasis:names:tc:emergency:cap:1.2 CAP-v1.2.xsd\" xml:lang=\"zh\">",
        1,
    );
    assert_eq!(
        xml(&xsi),
        Ok(plain.clone()),
        "namespaced attributes are ignored"
    );
    let bom = format!("\u{feff}{FOOD}");
    assert_eq!(xml(&bom), Ok(plain));
    let nested = "<x:a>".repeat(10_000) + &"</x:a>".repeat(10_000);
    let nested = format!("<x:a xmlns:x=\"urn:x\">{nested}</x:a>");
    let deep = FOOD.replacen("<incidents>", &format!("{nested}<incidents>"), 1);
    let r = xml(&deep);
    assert!(
        r.is_ok(),
        "deep foreign nesting is skipped iteratively: {r:?}"
    );
    // Inside a leaf, a foreign element beside text would be cut out of it silently
    // (`HZ-<x:a>OLD</x:a>1` read as `HZ-1`): refused, on either side of the text.
    let identifier = "<identifier>HZ-FS-2024-0517-001</identifier>";
    assert!(FOOD.contains(identifier));
    for spliced in [
        "<identifier>HZ-<x:a xmlns:x=\"urn:x\">OLD</x:a>1</identifier>",
        "<identifier><x:a xmlns:x=\"urn:x\"/>HZ-1</identifier>",
        "<identifier>HZ-1<x:a xmlns:x=\"urn:x\"/></identifier>",
    ] {
        let doc = FOOD.replacen(identifier, spliced, 1);
        assert!(
            matches!(xml(&doc), Err(CapError::Malformed { .. })),
            "{spliced}: {:?}",
            xml(&doc)
        );
    }
    // quick-xml caps namespace bindings in scope (128): many nested declarations are an error.
    let bindings = "<x:a xmlns:x=\"urn:x\">".repeat(200) + &"</x:a>".repeat(200);
    let doc = FOOD.replacen("<incidents>", &format!("{bindings}<incidents>"), 1);
    match xml(&doc) {
        Err(CapError::Malformed { at, .. }) => assert!(at.line > 5, "{at}"),
        other => panic!("want Malformed, got {other:?}"),
    }
}

/// CAP elements nest five deep (alert > info > area > geocode > value); a body of thousands
/// of nested CAP or unnamespaced elements is refused while it is read, before a tree that deep
/// exists (dropping one recursed per level and overflowed a 2 MiB tokio worker stack).
#[test]
fn deep_nesting_of_kept_elements_is_refused_on_a_worker_sized_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let mut results = Vec::new();
            for open in ["<a>", "<info>"] {
                let close = open.replacen('<', "</", 1);
                let body = open.repeat(18_000) + &close.repeat(18_000);
                let doc = FOOD.replacen("<incidents>", &format!("{body}<incidents>"), 1);
                results.push(xml(&doc));
            }
            results
        })
        .expect("spawn");
    for result in worker
        .join()
        .expect("the reader must not overflow its stack")
    {
        match result {
            Err(CapError::Malformed { message, at, .. }) => {
                assert!(message.contains("nested deeper than"), "{message}");
                assert!(at.line >= 1, "{at}");
            }
            other => panic!("want Malformed, got {other:?}"),
        }
    }
    // Real documents are far from the limit.
    assert!(xml(FOOD).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = read_xml(&bytes, DEFAULT_MAX_SIZE);
        let _ = read_json(&bytes, DEFAULT_MAX_SIZE);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*") {
        let _ = read_xml(s.as_bytes(), DEFAULT_MAX_SIZE);
        let _ = read_json(s.as_bytes(), DEFAULT_MAX_SIZE);
    }

    #[test]
    fn mutated_samples_never_panic(
        at in 0usize..4096,
        junk in "[<>&;/\"'a-z:!\\[\\]#0-9 =?-]{0,12}",
        keep in 0usize..64,
    ) {
        for sample in [FOOD, SPOT, SPOT_JSON] {
            let bytes = sample.as_bytes();
            let cut = at % bytes.len();
            let mut doc = bytes[..cut].to_vec();
            doc.extend_from_slice(junk.as_bytes());
            doc.extend_from_slice(&bytes[(cut + keep).min(bytes.len())..]);
            if let Ok(alert) = read_xml(&doc, DEFAULT_MAX_SIZE) {
                let again = read_xml(alert.to_xml().as_bytes(), DEFAULT_MAX_SIZE);
                prop_assert_eq!(again, Ok(alert.clone()));
                let _ = alert.validate();
            }
            if let Ok(alert) = read_json(&doc, DEFAULT_MAX_SIZE) {
                prop_assert_eq!(read_json(alert.to_json().as_bytes(), DEFAULT_MAX_SIZE), Ok(alert));
            }
        }
    }
}
