//! The format-neutral element tree both readers produce, and the schema tables the decoder
//! checks it against.
//!
//! XML ([`xml_read`](super::xml_read)) and JSON ([`json`](super::json)) are first turned into
//! [`Element`]s; [`decode`](super::decode) then checks each element's children against its
//! schema sequence ([`Slot`] tables, transcribed from the CAP 1.2 XSD) and builds the typed
//! model. One decoder means XML and JSON input are held to the same rules and produce the same
//! errors. The only difference: XML children must follow the schema order, JSON object keys
//! have no order.

use std::str::FromStr;

use super::datetime::DateTimeError;
use super::enums::UnknownValue;
use super::error::CapError;

/// One element: a name, its text (for leaves) and its children (for containers).
#[derive(Debug, Default)]
pub(crate) struct Element {
    /// Local name in the CAP namespace; elements without a namespace carry a marker so they
    /// never match a schema slot.
    pub name: String,
    /// Concatenated character data (leaves), or the whitespace between children.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The first attribute found on the element, if any: CAP elements have none.
    pub attribute: Option<String>,
    /// An element of another namespace was skipped inside it: text beside it is refused, or
    /// `<identifier>HZ-<x:a>OLD</x:a>1</identifier>` would read as `HZ-1`.
    pub foreign: bool,
}

/// One entry of a schema sequence.
#[derive(Debug)]
pub(crate) struct Slot {
    pub name: &'static str,
    pub min: u8,
    pub many: bool,
    /// Only accepted from JSON (hubcast's typed extensions on `info`).
    pub json_only: bool,
}

impl Slot {
    /// Exactly once.
    pub(crate) const fn one(name: &'static str) -> Slot {
        one(name)
    }
    /// At most once.
    pub(crate) const fn opt(name: &'static str) -> Slot {
        opt(name)
    }
    /// Any number of times.
    pub(crate) const fn many(name: &'static str) -> Slot {
        many(name)
    }
}

const fn slot(name: &'static str, min: u8, many: bool) -> Slot {
    Slot {
        name,
        min,
        many,
        json_only: false,
    }
}
const fn one(name: &'static str) -> Slot {
    slot(name, 1, false)
}
const fn opt(name: &'static str) -> Slot {
    slot(name, 0, false)
}
const fn many(name: &'static str) -> Slot {
    slot(name, 0, true)
}
const fn json(name: &'static str, many: bool) -> Slot {
    Slot {
        name,
        min: 0,
        many,
        json_only: true,
    }
}

/// `alert` (CAP 1.2 XSD, in order).
pub(crate) const ALERT: &[Slot] = &[
    one("identifier"),
    one("sender"),
    one("sent"),
    one("status"),
    one("msgType"),
    opt("source"),
    one("scope"),
    opt("restriction"),
    opt("addresses"),
    many("code"),
    opt("note"),
    opt("references"),
    opt("incidents"),
    many("info"),
];

/// `info` (CAP 1.2 XSD, in order), plus hubcast's JSON-only typed fields.
pub(crate) const INFO: &[Slot] = &[
    opt("language"),
    slot("category", 1, true),
    one("event"),
    many("responseType"),
    one("urgency"),
    one("severity"),
    one("certainty"),
    opt("audience"),
    many("eventCode"),
    opt("effective"),
    opt("onset"),
    opt("expires"),
    opt("senderName"),
    opt("headline"),
    opt("description"),
    opt("instruction"),
    opt("web"),
    opt("contact"),
    many("parameter"),
    json("spotCheck", false),
    json("rasffClassification", false),
    json("rasffRisk", false),
    many("resource"),
    many("area"),
];

/// `resource` (CAP 1.2 XSD, in order).
pub(crate) const RESOURCE: &[Slot] = &[
    one("resourceDesc"),
    one("mimeType"),
    opt("size"),
    opt("uri"),
    opt("derefUri"),
    opt("digest"),
];

/// `area` (CAP 1.2 XSD, in order).
pub(crate) const AREA: &[Slot] = &[
    one("areaDesc"),
    many("polygon"),
    many("circle"),
    many("geocode"),
    opt("altitude"),
    opt("ceiling"),
];

/// `eventCode`, `parameter`, `geocode`.
pub(crate) const PAIR: &[Slot] = &[one("valueName"), one("value")];

/// Is `c` a character XML 1.0 allows in a document?
pub(crate) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// An element's children sorted into its schema slots, checked for unknown names, order,
/// repetition and presence.
#[derive(Debug)]
pub(crate) struct Groups<'a> {
    pub path: String,
    slots: &'static [Slot],
    items: Vec<Vec<&'a Element>>,
}

impl<'a> Groups<'a> {
    /// Sorts `el`'s children into `slots`. With `ordered`, children must follow the sequence.
    pub fn new(
        el: &'a Element,
        path: String,
        slots: &'static [Slot],
        ordered: bool,
    ) -> Result<Groups<'a>, CapError> {
        if let Some(attr) = &el.attribute {
            return Err(CapError::invalid(
                path,
                format!("attribute `{attr}` not allowed: CAP elements have no attributes"),
            ));
        }
        if super::xml_read::has_text(&el.text) {
            return Err(CapError::invalid(
                path,
                "text content not allowed here: expected child elements",
            ));
        }
        let mut items: Vec<Vec<&Element>> = slots.iter().map(|_| Vec::new()).collect();
        let mut last = 0;
        for child in &el.children {
            let found = slots
                .iter()
                .position(|s| s.name == child.name && (!ordered || !s.json_only));
            let Some(i) = found else {
                return Err(CapError::UnknownElement {
                    path,
                    name: super::clip(&child.name),
                });
            };
            let (slot, count) = (&slots[i], items[i].len());
            let child_path = Self::child_path(&path, slot, count);
            if ordered && i < last {
                return Err(CapError::OutOfOrder {
                    path: child_path,
                    after: slots[last].name.to_owned(),
                });
            }
            if !slot.many && count == 1 {
                return Err(CapError::Repeated { path: child_path });
            }
            last = i;
            items[i].push(child);
        }
        for (slot, got) in slots.iter().zip(&items) {
            if got.len() < usize::from(slot.min) {
                let reason = "required element";
                return Err(CapError::missing(Self::child_path(&path, slot, 0), reason));
            }
        }
        Ok(Groups { path, slots, items })
    }

    fn child_path(path: &str, slot: &Slot, index: usize) -> String {
        if slot.many {
            format!("{path}/{}[{index}]", slot.name)
        } else {
            format!("{path}/{}", slot.name)
        }
    }

    /// The elements in slot `name`, each with its path.
    pub fn all(&self, name: &str) -> Vec<(&'a Element, String)> {
        let Some(i) = self.slots.iter().position(|s| s.name == name) else {
            return Vec::new();
        };
        let slot = &self.slots[i];
        self.items[i]
            .iter()
            .enumerate()
            .map(|(n, el)| (*el, Self::child_path(&self.path, slot, n)))
            .collect()
    }

    /// The element in single slot `name`, if present.
    pub fn get(&self, name: &str) -> Option<(&'a Element, String)> {
        self.all(name).into_iter().next()
    }

    /// Text of the optional leaf `name`.
    pub fn opt_text(&self, name: &str) -> Result<Option<String>, CapError> {
        self.get(name).map(|(el, p)| leaf_text(el, &p)).transpose()
    }

    /// Text of the required leaf `name` (presence was checked by [`Groups::new`]).
    pub fn text(&self, name: &str) -> Result<String, CapError> {
        self.opt_text(name)?
            .ok_or_else(|| CapError::missing(format!("{}/{name}", self.path), "required element"))
    }

    /// Texts of the repeatable leaf `name`.
    pub fn texts(&self, name: &str) -> Result<Vec<String>, CapError> {
        self.all(name)
            .into_iter()
            .map(|(el, p)| leaf_text(el, &p))
            .collect()
    }

    /// The optional leaf `name` parsed as an enumeration value.
    pub fn opt_enum<T: FromStr<Err = UnknownValue>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, CapError> {
        let Some((el, p)) = self.get(name) else {
            return Ok(None);
        };
        let text = leaf_text(el, &p)?;
        text.parse().map(Some).map_err(|e| CapError::bad_enum(p, e))
    }

    /// The required leaf `name` parsed as an enumeration value.
    pub fn enum_one<T: FromStr<Err = UnknownValue>>(&self, name: &str) -> Result<T, CapError> {
        self.opt_enum(name)?
            .ok_or_else(|| CapError::missing(format!("{}/{name}", self.path), "required element"))
    }

    /// The repeatable leaf `name`, each parsed as an enumeration value.
    pub fn enums<T: FromStr<Err = UnknownValue>>(&self, name: &str) -> Result<Vec<T>, CapError> {
        self.all(name)
            .into_iter()
            .map(|(el, p)| {
                let text = leaf_text(el, &p)?;
                text.parse().map_err(|e| CapError::bad_enum(p, e))
            })
            .collect()
    }

    /// The optional leaf `name` parsed as a dateTime or date.
    pub fn opt_time<T: FromStr<Err = DateTimeError>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, CapError> {
        let Some((el, p)) = self.get(name) else {
            return Ok(None);
        };
        let text = leaf_text(el, &p)?;
        text.parse()
            .map(Some)
            .map_err(|e| CapError::bad_datetime(p, e))
    }
}

/// The text of a leaf element: no children, only characters XML allows.
pub(crate) fn leaf_text(el: &Element, path: &str) -> Result<String, CapError> {
    if let Some(attr) = &el.attribute {
        let reason = format!("attribute `{attr}` not allowed: CAP elements have no attributes");
        return Err(CapError::invalid(path, reason));
    }
    if !el.children.is_empty() {
        return Err(CapError::invalid(
            path,
            "child elements not allowed here: expected text",
        ));
    }
    if let Some(c) = el.text.chars().find(|c| !xml_char(*c)) {
        let reason = format!(
            "character U+{:04X} is not allowed in XML text",
            u32::from(c)
        );
        return Err(CapError::invalid(path, reason));
    }
    Ok(el.text.clone())
}
