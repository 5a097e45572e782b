//! Typed [`Alert`] → CAP 1.2 XML, elements in schema order, two-space indentation, UTF-8.
//!
//! Text is escaped so that reading it back gives the same string: `&`, `<`, `>` become
//! entities and `\r` becomes `&#13;` (a raw CR would be normalised to LF by any XML reader).
//! Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) are written as
//! U+FFFD; [`validate`](super::validate()) rejects alerts containing them, and neither reader
//! ever produces one. Hubcast's typed extensions are written as parameters after the untyped
//! ones (see [`spotcheck`](super::spotcheck)).

use std::fmt::Write as _;

use super::model::{Alert, Area, Info, Resource, ValuePair};
use super::params;
use super::tree::xml_char;
use super::xml_read::CAP_NAMESPACE;

/// Writes `alert` as a CAP 1.2 XML document.
pub fn write_xml(alert: &Alert) -> String {
    let mut w = Writer {
        out: String::with_capacity(2048),
        depth: 0,
    };
    w.out
        .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(w.out, "<alert xmlns=\"{CAP_NAMESPACE}\">");
    w.depth = 1;
    w.leaf("identifier", &alert.identifier);
    w.leaf("sender", &alert.sender);
    w.leaf("sent", &alert.sent.to_string());
    w.leaf("status", alert.status.as_str());
    w.leaf("msgType", alert.msg_type.as_str());
    w.opt("source", alert.source.as_deref());
    w.leaf("scope", alert.scope.as_str());
    w.opt("restriction", alert.restriction.as_deref());
    w.opt("addresses", alert.addresses.as_deref());
    for code in &alert.codes {
        w.leaf("code", code);
    }
    w.opt("note", alert.note.as_deref());
    w.opt("references", alert.references.as_deref());
    w.opt("incidents", alert.incidents.as_deref());
    for info in &alert.info {
        w.info(info);
    }
    w.out.push_str("</alert>\n");
    w.out
}

struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        let _ = write!(self.out, "<{name}>");
        escape_into(&mut self.out, text);
        let _ = writeln!(self.out, "</{name}>");
    }

    fn opt(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.leaf(name, text);
        }
    }

    fn pair(&mut self, name: &str, pair: &ValuePair) {
        self.open(name);
        self.leaf("valueName", &pair.value_name);
        self.leaf("value", &pair.value);
        self.close(name);
    }

    fn info(&mut self, info: &Info) {
        self.open("info");
        self.opt("language", info.language.as_deref());
        for c in &info.categories {
            self.leaf("category", c.as_str());
        }
        self.leaf("event", &info.event);
        for r in &info.response_types {
            self.leaf("responseType", r.as_str());
        }
        self.leaf("urgency", info.urgency.as_str());
        self.leaf("severity", info.severity.as_str());
        self.leaf("certainty", info.certainty.as_str());
        self.opt("audience", info.audience.as_deref());
        for code in &info.event_codes {
            self.pair("eventCode", code);
        }
        for (name, t) in [
            ("effective", &info.effective),
            ("onset", &info.onset),
            ("expires", &info.expires),
        ] {
            if let Some(t) = t {
                self.leaf(name, &t.to_string());
            }
        }
        self.opt("senderName", info.sender_name.as_deref());
        self.opt("headline", info.headline.as_deref());
        self.opt("description", info.description.as_deref());
        self.opt("instruction", info.instruction.as_deref());
        self.opt("web", info.web.as_deref());
        self.opt("contact", info.contact.as_deref());
        for p in &params::lower(info) {
            self.pair("parameter", p);
        }
        for r in &info.resources {
            self.resource(r);
        }
        for a in &info.areas {
            self.area(a);
        }
        self.close("info");
    }

    fn resource(&mut self, r: &Resource) {
        self.open("resource");
        self.leaf("resourceDesc", &r.resource_desc);
        self.leaf("mimeType", &r.mime_type);
        if let Some(size) = r.size {
            self.leaf("size", &size.to_string());
        }
        self.opt("uri", r.uri.as_deref());
        self.opt("derefUri", r.deref_uri.as_deref());
        self.opt("digest", r.digest.as_deref());
        self.close("resource");
    }

    fn area(&mut self, a: &Area) {
        self.open("area");
        self.leaf("areaDesc", &a.area_desc);
        for p in &a.polygons {
            self.leaf("polygon", p);
        }
        for c in &a.circles {
            self.leaf("circle", c);
        }
        for g in &a.geocodes {
            self.pair("geocode", g);
        }
        self.opt("altitude", a.altitude.as_deref());
        self.opt("ceiling", a.ceiling.as_deref());
        self.close("area");
    }
}

/// Escapes character data so that an XML reader returns exactly `text`.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_carriage_returns() {
        let mut out = String::new();
        escape_into(&mut out, "a<b>&c\r\n]]>\u{1}");
        assert_eq!(out, "a&lt;b&gt;&amp;c&#13;\n]]&gt;\u{FFFD}");
    }
}
