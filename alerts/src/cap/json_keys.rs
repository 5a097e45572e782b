//! A JSON alert's shape checks before it is read: each object's keys at most once, keys no
//! longer than any CAP name, nesting no deeper than CAP's.
//!
//! `serde_json::Value` keeps the last of two equal keys and drops the first without a word,
//! so `{"identifier":"A","identifier":"B"}` would be stored as B and a second `"info"` would
//! replace the first. The XML reader refuses a repeated element (`repeated`); [`check`]
//! lets the JSON reader do the same, naming the place in the same path style
//! (`alert/info[0]/headline`). The walk keeps no path strings (a place is rendered only for
//! an error), and the bounds on key length and depth keep the paths the reader builds
//! afterwards short, whatever the body holds.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

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

/// The first problem in `input` (parsed as `root`); `None` when there is none, or when
/// `input` is not JSON at all (the caller's own parse says why).
pub fn check(input: &[u8], root: &str) -> Option<Problem> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let walk = Walk {
        at: Place::Root(root),
        depth: 0,
        found: &mut found,
    };
    let _ = walk.deserialize(&mut de);
    found
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
    fn fail<E: serde::de::Error>(self, problem: Problem) -> Result<(), E> {
        *self.found = Some(problem);
        Err(E::custom("alert shape"))
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            let place = self.at.to_string();
            return self.fail(Problem::TooDeep(place));
        }
        let mut i = 0usize;
        loop {
            let walk = Walk {
                at: Place::Index(&self.at, i),
                depth: self.depth + 1,
                found: &mut *self.found,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            let place = self.at.to_string();
            return self.fail(Problem::TooDeep(place));
        }
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.len() > MAX_KEY {
                let place = self.at.to_string();
                return self.fail(Problem::LongKey(place));
            }
            if keys.contains(&key) {
                let place = Place::Key(&self.at, &key).to_string();
                return self.fail(Problem::Repeated(place));
            }
            map.next_value_seed(Walk {
                at: Place::Key(&self.at, &key),
                depth: self.depth + 1,
                found: &mut *self.found,
            })?;
            keys.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, Problem, check};

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
