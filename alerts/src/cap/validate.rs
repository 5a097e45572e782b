//! [`validate`]: the rules of CAP 1.2 beyond its schema, plus hubcast's (see
//! [`semantics`](super::semantics)), reporting every broken rule with its path.
//!
//! The readers already guarantee structure, enumerations and dateTime syntax; these rules hold
//! for alerts built in code as well as read ones:
//! - `identifier`, `sender` (and those inside `references`): non-empty, no whitespace, no `,`,
//!   `<` or `&`.
//! - `restriction` when `scope` is `Restricted`; `addresses` when `Private`.
//! - `references` present for `Update`, `Cancel`, `Ack`, `Error`; each a valid triple, none
//!   later than `sent`, none naming this message.
//! - each info: a category; non-empty `event`; a plausible language tag; `expires` after `sent`
//!   and after `effective`; non-empty `valueName`s; `web` an absolute URI.
//! - each resource: non-empty description, a `type/subtype` MIME type, digest of 40 hex digits.
//! - each area: non-empty description; polygons closed with ≥ 4 valid `lat,lon` points;
//!   circles `lat,lon radius`; altitude and ceiling decimal, ceiling only with altitude and ≥ it.
//! - every text: only characters XML 1.0 allows.

use super::enums::{MsgType, Scope};
use super::error::CapError;
use super::model::{Alert, Area, Info, Resource, ValuePair};
use super::semantics::{self, Reference};
use super::spotcheck::{SpotCheck, SpotCheckResult};
use super::tree::xml_char;

/// Checks every rule; `Err` lists each violation (in document order).
pub fn validate(alert: &Alert) -> Result<(), Vec<CapError>> {
    let mut v = Vec::new();
    let errs = &mut v;
    for (name, value) in [("identifier", &alert.identifier), ("sender", &alert.sender)] {
        let path = format!("alert/{name}");
        if let Some(problem) = id_problem(value) {
            errs.push(CapError::invalid(path, problem));
        }
    }
    for (name, value) in [
        ("source", &alert.source),
        ("restriction", &alert.restriction),
        ("addresses", &alert.addresses),
        ("note", &alert.note),
        ("incidents", &alert.incidents),
    ] {
        if let Some(value) = value {
            text(errs, &format!("alert/{name}"), value);
        }
    }
    for (i, code) in alert.codes.iter().enumerate() {
        text(errs, &format!("alert/code[{i}]"), code);
    }
    if alert.scope == Scope::Restricted && alert.restriction.is_none() {
        errs.push(CapError::missing(
            "alert/restriction",
            "required when scope is Restricted",
        ));
    }
    if alert.scope == Scope::Private && alert.addresses.is_none() {
        errs.push(CapError::missing(
            "alert/addresses",
            "required when scope is Private",
        ));
    }
    references(alert, errs);
    for (i, info) in alert.info.iter().enumerate() {
        check_info(alert, info, &format!("alert/info[{i}]"), errs);
    }
    semantics::check(alert, errs);
    if v.is_empty() { Ok(()) } else { Err(v) }
}

/// Why `s` cannot be a CAP identifier or sender, if it cannot (CAP 1.2 § 3.2.1: no spaces,
/// commas or restricted characters `<` and `&`).
pub fn id_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&'))
    {
        Some("must not contain whitespace, `,`, `<` or `&`")
    } else if s.chars().any(|c| !xml_char(c)) {
        Some("contains a character XML does not allow")
    } else {
        None
    }
}

/// Only XML-legal characters.
fn text(errs: &mut Vec<CapError>, path: &str, s: &str) {
    if let Some(c) = s.chars().find(|c| !xml_char(*c)) {
        let reason = format!(
            "character U+{:04X} is not allowed in XML text",
            u32::from(c)
        );
        errs.push(CapError::invalid(path, reason));
    }
}

/// Non-empty and XML-legal.
fn non_empty(errs: &mut Vec<CapError>, path: &str, s: &str) {
    if s.trim().is_empty() {
        errs.push(CapError::invalid(path, "must not be empty"));
    }
    text(errs, path, s);
}

fn references(alert: &Alert, errs: &mut Vec<CapError>) {
    let path = "alert/references";
    let needs = !matches!(alert.msg_type, MsgType::Alert);
    let list = match alert.parsed_references() {
        Ok(list) => list,
        Err(e) => return errs.push(e),
    };
    if needs && list.is_empty() {
        let reason = "an Update, Cancel, Ack or Error names the messages it refers to";
        return errs.push(CapError::missing(path, reason));
    }
    let own = Reference::to(alert);
    for (i, r) in list.iter().enumerate() {
        if r.sent.unix_seconds() > alert.sent.unix_seconds() {
            let reason = format!("reference {i} was sent after this message");
            errs.push(CapError::invalid(path, reason));
        }
        if r.sender == own.sender && r.identifier == own.identifier {
            errs.push(CapError::invalid(
                path,
                format!("reference {i} names this message"),
            ));
        }
    }
}

fn check_info(alert: &Alert, info: &Info, path: &str, errs: &mut Vec<CapError>) {
    if let Some(lang) = &info.language {
        let ok = lang.split('-').all(|part| {
            (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !ok {
            let reason = "must be an RFC 3066 language tag such as zh-CN";
            errs.push(CapError::invalid(format!("{path}/language"), reason));
        }
    }
    if info.categories.is_empty() {
        errs.push(CapError::missing(
            format!("{path}/category[0]"),
            "required element",
        ));
    }
    non_empty(errs, &format!("{path}/event"), &info.event);
    pairs(errs, path, "eventCode", &info.event_codes);
    let sent = alert.sent.unix_seconds();
    if let Some(expires) = info.expires {
        if expires.unix_seconds() <= sent {
            let reason = "must be after alert/sent";
            errs.push(CapError::invalid(format!("{path}/expires"), reason));
        }
        if info
            .effective
            .is_some_and(|e| expires.unix_seconds() <= e.unix_seconds())
        {
            let reason = "must be after effective";
            errs.push(CapError::invalid(format!("{path}/expires"), reason));
        }
    }
    for (name, value) in [
        ("audience", &info.audience),
        ("senderName", &info.sender_name),
        ("headline", &info.headline),
        ("description", &info.description),
        ("instruction", &info.instruction),
        ("contact", &info.contact),
    ] {
        if let Some(value) = value {
            text(errs, &format!("{path}/{name}"), value);
        }
    }
    if let Some(web) = &info.web
        && !absolute_uri(web)
    {
        let reason = "must be an absolute URI such as https://…";
        errs.push(CapError::invalid(format!("{path}/web"), reason));
    }
    pairs(errs, path, "parameter", &info.parameters);
    for (r, resource) in info.resources.iter().enumerate() {
        check_resource(resource, &format!("{path}/resource[{r}]"), errs);
    }
    for (a, area) in info.areas.iter().enumerate() {
        check_area(area, &format!("{path}/area[{a}]"), errs);
    }
}

fn pairs(errs: &mut Vec<CapError>, path: &str, name: &str, list: &[ValuePair]) {
    for (i, p) in list.iter().enumerate() {
        non_empty(
            errs,
            &format!("{path}/{name}[{i}]/valueName"),
            &p.value_name,
        );
        text(errs, &format!("{path}/{name}[{i}]/value"), &p.value);
    }
}

fn absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(char::is_whitespace)
}

fn check_resource(r: &Resource, path: &str, errs: &mut Vec<CapError>) {
    non_empty(errs, &format!("{path}/resourceDesc"), &r.resource_desc);
    let mime_ok = r
        .mime_type
        .split_once('/')
        .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !r.mime_type.contains(' '));
    if !mime_ok {
        let reason = "must be a MIME type such as application/pdf";
        errs.push(CapError::invalid(format!("{path}/mimeType"), reason));
    }
    for (name, value) in [("uri", &r.uri), ("derefUri", &r.deref_uri)] {
        if let Some(value) = value {
            text(errs, &format!("{path}/{name}"), value);
        }
    }
    if let Some(d) = &r.digest
        && !(d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        let reason = "must be a SHA-1 digest: 40 hexadecimal digits";
        errs.push(CapError::invalid(format!("{path}/digest"), reason));
    }
}

/// Parses `lat,lon` with latitude in ±90 and longitude in ±180.
fn point(s: &str) -> Option<(f64, f64)> {
    let (lat, lon) = s.split_once(',')?;
    let (lat, lon): (f64, f64) = (lat.parse().ok()?, lon.parse().ok()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

fn decimal(s: &str) -> Option<f64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then(|| s.parse().ok()).flatten()
}

fn check_area(area: &Area, path: &str, errs: &mut Vec<CapError>) {
    non_empty(errs, &format!("{path}/areaDesc"), &area.area_desc);
    for (i, p) in area.polygons.iter().enumerate() {
        let points: Option<Vec<_>> = p.split_whitespace().map(point).collect();
        let ok = points.is_some_and(|pts| pts.len() >= 4 && pts.first() == pts.last());
        if !ok {
            let reason = "must be ≥ 4 `lat,lon` points separated by spaces, first = last";
            errs.push(CapError::invalid(format!("{path}/polygon[{i}]"), reason));
        }
    }
    for (i, c) in area.circles.iter().enumerate() {
        let ok = match c.split_whitespace().collect::<Vec<_>>()[..] {
            [centre, radius] => {
                point(centre).is_some() && decimal(radius).is_some_and(|r| r >= 0.0)
            }
            _ => false,
        };
        if !ok {
            let reason = "must be `lat,lon radius` with the radius in km";
            errs.push(CapError::invalid(format!("{path}/circle[{i}]"), reason));
        }
    }
    pairs(errs, path, "geocode", &area.geocodes);
    let altitude = area.altitude.as_deref().map(|a| (a, decimal(a)));
    let ceiling = area.ceiling.as_deref().map(|c| (c, decimal(c)));
    for (name, v) in [("altitude", altitude), ("ceiling", ceiling)] {
        if let Some((_, None)) = v {
            let reason = "must be a decimal number of feet";
            errs.push(CapError::invalid(format!("{path}/{name}"), reason));
        }
    }
    match (altitude, ceiling) {
        (None, Some(_)) => {
            let reason = "required when ceiling is given";
            errs.push(CapError::missing(format!("{path}/altitude"), reason));
        }
        (Some((_, Some(a))), Some((_, Some(c)))) if c < a => {
            let reason = "must not be below altitude";
            errs.push(CapError::invalid(format!("{path}/ceiling"), reason));
        }
        _ => {}
    }
}

/// A spot-check record's own rules, for the info at `info`.
pub(crate) fn spot_check(sc: &SpotCheck, info: &str, errs: &mut Vec<CapError>) {
    let path = |field: &str| format!("{info}/parameter(spotcheck:{field})");
    non_empty(errs, &path("sampledName"), &sc.sampled_name);
    non_empty(errs, &path("productName"), &sc.product_name);
    for (field, value) in [
        ("producerName", &sc.producer_name),
        ("producerAddress", &sc.producer_address),
        ("sampledAddress", &sc.sampled_address),
        ("specification", &sc.specification),
        ("brand", &sc.brand),
        ("batch", &sc.batch),
        ("category", &sc.category),
        ("noticeNumber", &sc.notice_number),
        ("taskSource", &sc.task_source),
        ("institute", &sc.institute),
    ] {
        if let Some(value) = value {
            text(errs, &path(field), value);
        }
    }
    match (sc.result, sc.failed_items.is_empty()) {
        (SpotCheckResult::Fail, true) => {
            let reason = "a failed spot check lists its failed items";
            errs.push(CapError::missing(path("failedItem"), reason));
        }
        (SpotCheckResult::Pass, false) => {
            let reason = "a passed spot check has no failed items";
            errs.push(CapError::invalid(path("failedItem"), reason));
        }
        _ => {}
    }
    for (i, item) in sc.failed_items.iter().enumerate() {
        let p = format!("{}[{i}]", path("failedItem"));
        non_empty(errs, &p, &item.name);
        non_empty(errs, &p, &item.measured);
        non_empty(errs, &p, &item.limit);
        if let Some(unit) = &item.unit {
            non_empty(errs, &p, unit);
        }
    }
}
