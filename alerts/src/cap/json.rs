//! The CAP model as JSON: CAP element names as keys (`msgType`, `areaDesc`, `geocode`),
//! repeatable elements as arrays (a single value is accepted for a one-element array), leaves
//! as strings (numbers accepted where the text is numeric, e.g. `size`), absent optionals
//! omitted or `null`. hubcast's extensions appear as `spotCheck`, `rasffClassification` and
//! `rasffRisk` on an info (see [`spotcheck`](super::spotcheck)).
//!
//! Reading converts the JSON value into the same element tree the XML reader builds and runs the
//! same decoder, so JSON input meets the same rules with the same error paths; only key order
//! is free. Writing is `serde` on the model's `Serialize`; [`Alert`]'s `Deserialize` is this
//! reader, so `serde_json::from_str::<Alert>` validates too.

use serde::de::DeserializeSeed as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::decode::decode_alert;
use super::error::{CapError, Position};
use super::json_keys::{MAX_DEPTH, MAX_KEY, Parse, Problem};
use super::model::Alert;
use super::tree::Element;

/// Reads a JSON CAP alert of at most `max_size` bytes.
pub fn read_json(input: &[u8], max_size: usize) -> Result<Alert, CapError> {
    if input.len() > max_size {
        return Err(CapError::TooLarge {
            size: input.len(),
            limit: max_size,
        });
    }
    // One pass builds the value and refuses what the plain parse would take silently (the
    // last of two equal keys kept) or pay for (huge keys, deep nesting), as XML refuses a
    // repeated element.
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let parsed = Parse {
        root: "alert",
        found: &mut found,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    let malformed = |e: serde_json::Error| CapError::Malformed {
        format: "JSON",
        at: position_of(input, e.line(), e.column()),
        message: e.to_string(),
    };
    let value = match (parsed, found) {
        (_, Some(problem)) => return Err(shape_error(problem)),
        (Err(e), None) => return Err(malformed(e)),
        (Ok(value), None) => value,
    };
    alert_from_value(&value)
}

/// Writes `alert` as pretty-printed JSON.
pub fn write_json(alert: &Alert) -> String {
    // The model has only string keys and plain values: serializing it cannot fail.
    serde_json::to_string_pretty(alert).unwrap_or_default()
}

/// Decodes a parsed JSON value (an object with the alert's fields).
pub fn alert_from_value(value: &Value) -> Result<Alert, CapError> {
    if !value.is_object() {
        let reason = "a JSON alert must be an object";
        return Err(CapError::invalid("alert", reason));
    }
    let root = to_element("alert", value, "alert")?;
    decode_alert(&root, false)
}

impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut found = None;
        let parsed = Parse {
            root: "alert",
            found: &mut found,
        }
        .deserialize(deserializer);
        let value = match (parsed, found) {
            (_, Some(problem)) => return Err(serde::de::Error::custom(shape_error(problem))),
            (parsed, None) => parsed?,
        };
        alert_from_value(&value).map_err(serde::de::Error::custom)
    }
}

/// The error of a document whose shape no CAP alert has.
fn shape_error(problem: Problem) -> CapError {
    match problem {
        Problem::Repeated(path) => CapError::Repeated { path },
        Problem::LongKey(path) => {
            let reason = format!("a key longer than {MAX_KEY} bytes: no CAP element is named so");
            CapError::invalid(path, reason)
        }
        Problem::TooDeep(path) => {
            let reason = format!("nested deeper than {MAX_DEPTH}: no CAP alert is");
            CapError::invalid(path, reason)
        }
    }
}

/// One JSON value as an element named `name`; `path` is only for errors.
fn to_element(name: &str, value: &Value, path: &str) -> Result<Element, CapError> {
    let mut el = Element {
        name: name.to_owned(),
        ..Element::default()
    };
    match value {
        Value::String(s) => el.text.clone_from(s),
        Value::Number(n) => el.text = n.to_string(),
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::Null => {}
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let p = format!("{path}/{key}[{i}]");
                            if matches!(item, Value::Array(_) | Value::Null) {
                                let reason =
                                    "expected a value or an object, found an array or null";
                                return Err(CapError::invalid(p, reason));
                            }
                            el.children.push(to_element(key, item, &p)?);
                        }
                    }
                    v => el
                        .children
                        .push(to_element(key, v, &format!("{path}/{key}"))?),
                }
            }
        }
        Value::Bool(_) | Value::Null | Value::Array(_) => {
            let reason = "expected a string, number or object";
            return Err(CapError::invalid(path, reason));
        }
    }
    Ok(el)
}

/// serde_json reports 1-based line and column (bytes); turn that into a [`Position`].
fn position_of(input: &[u8], line: usize, column: usize) -> Position {
    let mut offset = 0usize;
    for _ in 1..line {
        match input[offset..].iter().position(|b| *b == b'\n') {
            Some(i) => offset += i + 1,
            None => break,
        }
    }
    Position::at(input, (offset + column.saturating_sub(1)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serde_json::from_str::<Alert>` refuses what `read_json` refuses: it is the same
    /// parse, not the plain one that keeps the last of two equal keys.
    #[test]
    fn deserializing_an_alert_refuses_a_repeated_key() {
        let twice = r#"{"identifier":"A","identifier":"B"}"#;
        let err = serde_json::from_str::<Alert>(twice).expect_err("repeated");
        assert!(err.to_string().contains("alert/identifier"), "{err}");
        assert!(
            matches!(
                read_json(b"{\"identifier\":\"A\"} x", 1024),
                Err(CapError::Malformed { .. })
            ),
            "trailing characters"
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = read_json(b"{\n  \"identifier\": ,\n}", 1024).expect_err("bad JSON");
        match err {
            CapError::Malformed { format, at, .. } => {
                assert_eq!(format, "JSON");
                assert_eq!(at.line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            read_json(b"[]", 1024),
            Err(CapError::Invalid { .. })
        ));
        assert!(matches!(
            read_json(b"{}", 1),
            Err(CapError::TooLarge { size: 2, limit: 1 })
        ));
    }

    const MINIMAL: &str = r#"{
        "identifier": "ID-1", "sender": "s.example", "sent": "2024-05-17T09:00:00+08:00",
        "status": "Test", "msgType": "Alert", "scope": "Public", "note": null,
        "code": "single",
        "info": {"category": "Health", "event": "e", "urgency": "Past",
                 "severity": "Minor", "certainty": "Unknown",
                 "resource": {"resourceDesc": "r", "mimeType": "text/plain", "size": 12}}
    }"#;

    #[test]
    fn single_values_stand_for_one_element_arrays_and_null_for_absent() {
        let a = read_json(MINIMAL.as_bytes(), 4096).expect("reads");
        assert_eq!(a.codes, ["single"]);
        assert_eq!(a.note, None);
        assert_eq!(a.info.len(), 1);
        assert_eq!(a.info[0].resources[0].size, Some(12));
        let written = write_json(&a);
        assert!(
            written.contains("\"code\": [\n    \"single\"\n  ]"),
            "{written}"
        );
        assert!(!written.contains("note"), "absent optionals are omitted");
        let via_serde: Alert = serde_json::from_str(MINIMAL).expect("Deserialize");
        assert_eq!(via_serde, a);
        let err = serde_json::from_str::<Alert>(r#"{"identifier": "x"}"#).expect_err("missing");
        assert!(err.to_string().contains("alert/sender"), "{err}");
    }

    #[test]
    fn type_errors_name_the_path() {
        let err = read_json(br#"{"identifier": true}"#, 1024).expect_err("bool");
        assert_eq!(err.path(), Some("alert/identifier"));
        let err = read_json(br#"{"info": [[]]}"#, 1024).expect_err("nested");
        assert_eq!(err.path(), Some("alert/info[0]"));
    }
}
