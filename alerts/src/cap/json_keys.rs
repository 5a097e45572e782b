//! A JSON alert's object keys, each at most once. `serde_json::Value` keeps the last of two
//! equal keys and drops the first without a word, so `{"identifier":"A","identifier":"B"}`
//! would be stored as B and a second `"info"` would replace the first. The XML reader refuses
//! a repeated element (`repeated`); [`first_repeated_key`] lets the JSON reader do the same,
//! naming the place in the same path style (`alert/info[0]/headline`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

/// The path of the first key an object of `input` (parsed as `root`) repeats; `None` when
/// every object's keys differ, or when `input` is not JSON at all (the caller's own parse
/// says why).
pub fn first_repeated_key(input: &[u8], root: &str) -> Option<String> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(input);
    let walk = Walk {
        path: root.to_owned(),
        found: &found,
    };
    let _ = walk.deserialize(&mut de);
    found.into_inner()
}

/// Visits one value at `path`, recording the first repeated key in `found`.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
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
        let mut i = 0usize;
        loop {
            let walk = Walk {
                path: format!("{}[{i}]", self.path),
                found: self.found,
            };
            if seq.next_element_seed(walk)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}/{key}", self.path);
            if !keys.insert(key) {
                *self.found.borrow_mut() = Some(path);
                return Err(A::Error::custom("repeated key"));
            }
            map.next_value_seed(Walk {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::first_repeated_key;

    #[test]
    fn the_first_repeated_key_is_named_by_its_path() {
        let found = |json: &str| first_repeated_key(json.as_bytes(), "alert");
        assert_eq!(
            found(r#"{"identifier":"A","identifier":"B"}"#).as_deref(),
            Some("alert/identifier")
        );
        assert_eq!(
            found(r#"{"info":[{"headline":"a"},{"area":[{"areaDesc":"x","areaDesc":"y"}]}]}"#)
                .as_deref(),
            Some("alert/info[1]/area[0]/areaDesc")
        );
        assert_eq!(
            found(r#"{"info":{"a":1},"info":{"b":2}}"#).as_deref(),
            Some("alert/info")
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
}
