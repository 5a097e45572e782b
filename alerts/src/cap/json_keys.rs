//! Parsing a JSON alert in one pass with its shape checks: each object's keys at most once,
//! keys no longer than any CAP name, nesting no deeper than CAP's.
//!
//! `serde_json::Value` keeps the last of two equal keys and drops the first without a word,
//! so `{"identifier":"A","identifier":"B"}` would be stored as B and a second `"info"` would
//! replace the first. The XML reader refuses a repeated element (`repeated`); [`Parse`]
//! builds the same `Value` while refusing that, naming the place in the same path style
//! (`alert/info[0]/headline`). It keeps no path strings (a place is rendered only for an
//! error), and the bounds on key length and depth keep the paths the reader builds
//! afterwards short, whatever the body holds.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Longest object key: CAP's and hubcast's names are at most 20 bytes
/// (`rasffClassification`).
pub const MAX_KEY: usize = 64;
/// Deepest nesting of objects and arrays: an alert's is at most 8 (alert, info list, info,
/// area list, area, geocode list, geocode; a spot-check's failed items as deep).
pub const MAX_DEPTH: usize = 16;

/// What [`check`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A key given twice in one object, at this path.
    Repeated(String),
    /// A key longer than [`MAX_KEY`], in the object at this path.
    LongKey(String),
    /// Nesting deeper than [`MAX_DEPTH`], at this path.
    TooDeep(String),
}

/// A parse of a JSON document named `root` (`alert`) that records the first [`Problem`]
/// in `found` (the parse then fails with a placeholder error: the caller reports `found`).
pub struct Parse<'a> {
    pub root: &'a str,
    pub found: &'a mut Option<Problem>,
}

impl<'de> DeserializeSeed<'de> for Parse<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let walk = Walk {
            at: Place::Root(self.root),
            depth: 0,
            found: self.found,
        };
        walk.deserialize(deserializer)
    }
}

/// Where a value sits: rendered only when something is wrong there.
#[derive(Clone, Copy)]
enum Place<'a> {
    Root(&'a str),
    Key(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Root(name) => f.write_str(name),
            Place::Key(parent, key) => write!(f, "{parent}/{key}"),
            Place::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Visits one value at `at`, recording the first problem in `found`.
struct Walk<'a, 'p> {
    at: Place<'p>,
    depth: usize,
    found: &'a mut Option<Problem>,
}

impl Walk<'_, '_> {
    fn fail<E: serde::de::Error>(self, problem: Problem) -> Result<Value, E> {
        *self.found = Some(problem);
        Err(E::custom("alert shape"))
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            let place = self.at.to_string();
            return self.fail(Problem::TooDeep(place));
        }
        let mut items = Vec::new();
        loop {
            let walk = Walk {
                at: Place::Index(&self.at, items.len()),
                depth: self.depth + 1,
                found: &mut *self.found,
            };
            match seq.next_element_seed(walk)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            let place = self.at.to_string();
            return self.fail(Problem::TooDeep(place));
        }
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.len() > MAX_KEY {
                let place = self.at.to_string();
                return self.fail(Problem::LongKey(place));
            }
            if object.contains_key(&key) {
                let place = Place::Key(&self.at, &key).to_string();
                return self.fail(Problem::Repeated(place));
            }
            let value = map.next_value_seed(Walk {
                at: Place::Key(&self.at, &key),
                depth: self.depth + 1,
                found: &mut *self.found,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeSeed as _;

    use super::{MAX_DEPTH, Parse, Problem};

    /// The first problem in `input`; `None` when there is none, or when it is not JSON.
    fn check(input: &[u8], root: &str) -> Option<Problem> {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_slice(input);
        let _ = Parse {
            root,
            found: &mut found,
        }
        .deserialize(&mut de);
        found
    }

    #[test]
    fn the_parse_is_the_plain_parse_when_nothing_is_wrong() {
        let text = r#"{"identifier":"A","code":[0,1.5,-2,"x",true,null],"info":[{"area":{}}]}"#;
        let mut found = None;
        let mut de = serde_json::Deserializer::from_slice(text.as_bytes());
        let parsed = Parse {
            root: "alert",
            found: &mut found,
        }
        .deserialize(&mut de)
        .expect("parses");
        let plain: serde_json::Value = serde_json::from_str(text).expect("plain");
        assert_eq!(parsed, plain);
        assert_eq!(found, None);
    }

    #[test]
    fn the_first_repeated_key_is_named_by_its_path() {
        let found = |json: &str| check(json.as_bytes(), "alert");
        let repeated = |path: &str| Some(Problem::Repeated(path.to_owned()));
        assert_eq!(
            found(r#"{"identifier":"A","identifier":"B"}"#),
            repeated("alert/identifier")
        );
        assert_eq!(
            found(r#"{"info":[{"headline":"a"},{"area":[{"areaDesc":"x","areaDesc":"y"}]}]}"#),
            repeated("alert/info[1]/area[0]/areaDesc")
        );
        assert_eq!(
            found(r#"{"info":{"a":1},"info":{"b":2}}"#),
            repeated("alert/info")
        );
        for fine in [
            r#"{"identifier":"A","info":[{"headline":"a"},{"headline":"b"}]}"#,
            r#"{"a":{"x":1},"b":{"x":1}}"#,
            "not json",
            "",
        ] {
            assert_eq!(found(fine), None, "{fine}");
        }
    }

    #[test]
    fn keys_and_nesting_are_bounded() {
        let long = format!(r#"{{"info":[{{"{}":[0,0,0]}}]}}"#, "k".repeat(100));
        assert_eq!(
            check(long.as_bytes(), "alert"),
            Some(Problem::LongKey("alert/info[0]".to_owned()))
        );
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let deep = format!(r#"{{"code":{deep}}}"#);
        assert!(
            matches!(check(deep.as_bytes(), "alert"), Some(Problem::TooDeep(_))),
            "{deep}"
        );
        let cap_deep =
            r#"{"info":[{"area":[{"geocode":[{"valueName":"GB2260","value":"330100"}]}]}]}"#;
        assert_eq!(check(cap_deep.as_bytes(), "alert"), None);
    }
}
