//! CAP XML → [`Element`] tree, with the defences untrusted XML needs.
//!
//! - Size first: input over the limit is refused before any parsing.
//! - UTF-8 only (a leading BOM is skipped); an XML declaration naming another encoding is refused.
//! - Any `<!DOCTYPE …>` is refused ([`CapError::DtdForbidden`]): no DTD means no external
//!   entities (XXE) and no entity expansion (billion laughs). quick-xml never expands entities
//!   itself; it reports each `&name;`, and this reader resolves only the five predefined ones
//!   and character references; anything else is [`CapError::UndeclaredEntity`].
//! - Characters XML 1.0 forbids (raw or as character references) are refused.
//! - The root must be `alert` in the CAP 1.2 namespace. Elements in *other* namespaces are
//!   skipped with their content (the CAP 1.2 schema allows foreign elements such as an XML
//!   signature at the end of `alert`; hubcast neither verifies nor keeps them); an element with
//!   no namespace inside `alert` is kept under a name no slot matches, so the decoder reports it
//!   as unknown with its path. Comments and processing instructions are ignored.
//! - CAP elements have no attributes: an unprefixed attribute is an error naming the element;
//!   namespace declarations and prefixed attributes (`xsi:schemaLocation`, `xml:lang`) are
//!   ignored.
//!
//! - Kept elements may nest at most [`MAX_DEPTH`] deep (CAP needs five: alert > info > area >
//!   geocode > value): the tree is built iteratively, but dropping it recurses once per level,
//!   so a body of thousands of nested elements would overflow a worker thread's stack.
//!   Skipped foreign elements are only counted, at any depth.
//!
//! The tree's size is bounded by the input limit.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::error::{CapError, Position};
use super::tree::{Element, xml_char};

/// The CAP 1.2 namespace.
pub const CAP_NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// Deepest nesting of kept elements (CAP 1.2 needs 5; room for unknown ones, which the decoder
/// reports by path).
pub(crate) const MAX_DEPTH: usize = 16;

/// Suffix marking an element that has no namespace (it can never match a CAP slot).
const NO_NAMESPACE: &str = " (no namespace)";

/// Parses `input` into an element tree rooted at a CAP 1.2 `alert`.
pub(crate) fn read_tree(input: &[u8], max_size: usize) -> Result<Element, CapError> {
    if input.len() > max_size {
        return Err(CapError::TooLarge {
            size: input.len(),
            limit: max_size,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| CapError::Malformed {
        format: "XML",
        at: Position::at(input, e.valid_up_to() as u64),
        message: "input is not valid UTF-8 (CAP input must be UTF-8)".into(),
    })?;
    let (text, base) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, 3u64),
        None => (text, 0u64),
    };
    let at = |offset: u64| Position::at(input, base + offset);
    let malformed = |offset: u64, message: String| CapError::Malformed {
        format: "XML",
        at: at(offset),
        message,
    };

    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_comments = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Depth inside a skipped foreign-namespace element; 0 when not skipping.
    let mut skip = 0usize;
    loop {
        let start = reader.buffer_position();
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (resolve(&ns), event),
            // Namespace errors leave `error_position` unset: fall back to the event start.
            Err(e) => return Err(malformed(reader.error_position().max(start), e.to_string())),
        };
        let (event, empty) = match event {
            Event::Empty(e) => (Event::Start(e), true),
            other => (other, false),
        };
        match event {
            Event::Decl(decl) => {
                if let Some(Ok(enc)) = decl.encoding()
                    && !enc.eq_ignore_ascii_case("utf-8")
                {
                    let message = format!("declared encoding `{enc}`: only UTF-8 is accepted");
                    return Err(malformed(start, message));
                }
            }
            Event::DocType(_) => return Err(CapError::DtdForbidden { at: at(start) }),
            Event::Start(e) => {
                if skip > 0 {
                    skip += usize::from(!empty);
                    continue;
                }
                if root.is_some() {
                    let message = "a second root element".to_owned();
                    return Err(malformed(start, message));
                }
                let local = e.local_name().as_ref().to_owned();
                let name = match ns {
                    Ns::Cap => local,
                    Ns::Other(uri) if stack.is_empty() => {
                        let found = format!("`{local}` in namespace `{uri}`");
                        return Err(CapError::NotCap { found });
                    }
                    Ns::Other(_) => {
                        if let Some(top) = stack.last_mut() {
                            if has_text(&top.text) {
                                return Err(malformed(start, BESIDE_FOREIGN.to_owned()));
                            }
                            top.foreign = true;
                        }
                        skip = usize::from(!empty);
                        continue;
                    }
                    Ns::None if stack.is_empty() => {
                        let found = format!("`{local}` without a namespace");
                        return Err(CapError::NotCap { found });
                    }
                    Ns::None => format!("{local}{NO_NAMESPACE}"),
                    Ns::UnknownPrefix(p) => {
                        return Err(malformed(start, format!("unbound namespace prefix `{p}`")));
                    }
                };
                if stack.is_empty() && name != "alert" {
                    let found = format!("`{name}` in namespace `{CAP_NAMESPACE}`");
                    return Err(CapError::NotCap { found });
                }
                let mut attribute = None;
                for attr in e.attributes() {
                    let attr = attr.map_err(|err| malformed(start, err.to_string()))?;
                    // Namespace declarations and prefixed (namespaced) attributes such as
                    // `xsi:schemaLocation` or `xml:lang` are fine; CAP itself defines none.
                    let namespaced =
                        attr.key.as_namespace_binding().is_some() || attr.key.0.contains(':');
                    if !namespaced && attribute.is_none() {
                        attribute = Some(super::clip(attr.key.0));
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    let message = format!(
                        "`<{}>` is nested deeper than {MAX_DEPTH} elements (CAP needs 5)",
                        super::clip(&name)
                    );
                    return Err(malformed(start, message));
                }
                stack.push(Element {
                    name,
                    attribute,
                    ..Element::default()
                });
                if empty {
                    close(&mut stack, &mut root);
                }
            }
            Event::End(_) => {
                if skip > 0 {
                    skip -= 1;
                } else {
                    close(&mut stack, &mut root);
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if let Some(i) = content.find(|c| !xml_char(c)) {
                    let message = "character not allowed in XML".to_owned();
                    return Err(malformed(start + i as u64, message));
                }
                let lead = t.len() - t.trim_start_matches([' ', '\t', '\r', '\n']).len();
                push_text(&mut stack, skip, &content)
                    .map_err(|m| malformed(start + lead as u64, m.to_owned()))?;
            }
            Event::CData(t) => {
                let content = t.xml10_content();
                if content.contains(|c| !xml_char(c)) {
                    let message = "character not allowed in XML".to_owned();
                    return Err(malformed(start, message));
                }
                push_text(&mut stack, skip, &content)
                    .map_err(|m| malformed(start, m.to_owned()))?;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) if xml_char(c) => c,
                    Ok(Some(_)) | Err(_) => {
                        let message = format!("character reference `&{};` not allowed", &*r);
                        return Err(malformed(start, message));
                    }
                    Ok(None) => match &*r {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        name => {
                            return Err(CapError::UndeclaredEntity {
                                name: super::clip(name),
                                at: at(start),
                            });
                        }
                    },
                };
                push_text(&mut stack, skip, c.encode_utf8(&mut [0; 4]))
                    .map_err(|m| malformed(start, m.to_owned()))?;
            }
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        let message = format!("document ends inside `<{}>`", open.name);
        return Err(malformed(text.len() as u64, message));
    }
    root.ok_or_else(|| malformed(text.len() as u64, "no root element".to_owned()))
}

/// Where an element name resolved to.
enum Ns {
    Cap,
    Other(String),
    None,
    UnknownPrefix(String),
}

fn resolve(ns: &ResolveResult<'_>) -> Ns {
    match ns {
        ResolveResult::Bound(n) if n.0 == CAP_NAMESPACE => Ns::Cap,
        ResolveResult::Bound(n) => Ns::Other(super::clip(n.0)),
        ResolveResult::Unbound => Ns::None,
        ResolveResult::Unknown(p) => Ns::UnknownPrefix(super::clip(p)),
    }
}

/// Refused: character data and an element of another namespace side by side in one element.
const BESIDE_FOREIGN: &str =
    "text beside an element of another namespace (a CAP element holds text or elements, not both)";

/// Whether `s` holds more than XML white space.
pub(super) fn has_text(s: &str) -> bool {
    !s.trim_matches([' ', '\t', '\r', '\n']).is_empty()
}

/// Appends character data to the open element (dropped inside skipped foreign elements).
fn push_text(stack: &mut [Element], skip: usize, s: &str) -> Result<(), &'static str> {
    match stack.last_mut() {
        _ if skip > 0 => Ok(()),
        Some(top) if top.foreign && has_text(s) => Err(BESIDE_FOREIGN),
        Some(top) => {
            top.text.push_str(s);
            Ok(())
        }
        None if !has_text(s) => Ok(()),
        None => Err("text outside the root element"),
    }
}

/// Closes the innermost open element: attach it to its parent, or make it the root.
fn close(stack: &mut Vec<Element>, root: &mut Option<Element>) {
    if let Some(done) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.children.push(done),
            None => *root = Some(done),
        }
    }
}
