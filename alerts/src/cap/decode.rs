//! [`Element`] tree → typed [`Alert`]: schema structure (which elements, how many, in which
//! order), enumeration values, dateTime syntax, numbers, and hubcast's typed parameters.
//!
//! This is everything the CAP 1.2 XSD checks, applied identically to XML and JSON input. Rules
//! beyond the schema (identifier characters, `expires` after `sent`, references, regions) are
//! [`validate`](super::validate())'s job, so that alerts built in code are held to them too.

use super::error::CapError;
use super::model::{Alert, Area, Info, Resource, ValuePair};
use super::params;
use super::tree::{ALERT, AREA, Element, Groups, INFO, PAIR, RESOURCE};

/// Decodes a tree whose root is `alert`. `ordered`: children must follow the schema sequence
/// (XML); JSON objects have no order.
pub(crate) fn decode_alert(root: &Element, ordered: bool) -> Result<Alert, CapError> {
    let g = Groups::new(root, "alert".to_owned(), ALERT, ordered)?;
    Ok(Alert {
        identifier: g.text("identifier")?,
        sender: g.text("sender")?,
        sent: required(g.opt_time("sent")?, &g, "sent")?,
        status: g.enum_one("status")?,
        msg_type: g.enum_one("msgType")?,
        source: g.opt_text("source")?,
        scope: g.enum_one("scope")?,
        restriction: g.opt_text("restriction")?,
        addresses: g.opt_text("addresses")?,
        codes: g.texts("code")?,
        note: g.opt_text("note")?,
        references: g.opt_text("references")?,
        incidents: g.opt_text("incidents")?,
        info: g
            .all("info")
            .into_iter()
            .map(|(el, path)| decode_info(el, path, ordered))
            .collect::<Result<_, _>>()?,
    })
}

fn required<T>(v: Option<T>, g: &Groups<'_>, name: &str) -> Result<T, CapError> {
    v.ok_or_else(|| CapError::missing(format!("{}/{name}", g.path), "required element"))
}

fn decode_info(el: &Element, path: String, ordered: bool) -> Result<Info, CapError> {
    let g = Groups::new(el, path, INFO, ordered)?;
    let pairs = |name| -> Result<Vec<(ValuePair, String)>, CapError> {
        g.all(name)
            .into_iter()
            .map(|(el, p)| Ok((decode_pair(el, &p, ordered)?, p)))
            .collect()
    };
    let event_codes = pairs("eventCode")?.into_iter().map(|(v, _)| v).collect();
    let parameters = pairs("parameter")?;
    let as_parameters =
        (parameters.iter()).any(|(p, _)| p.value_name.starts_with(params::SPOTCHECK_PREFIX));
    if as_parameters && g.get("spotCheck").is_some() {
        let reason = "spot-check record given both as `spotCheck` and as spotcheck:* parameters";
        return Err(CapError::invalid(format!("{}/spotCheck", g.path), reason));
    }
    let lifted = params::lift(parameters, &g.path)?;
    let json_record = g
        .get("spotCheck")
        .map(|(el, p)| params::spot_check_from_json(el, &p))
        .transpose()?;
    let spot_check = lifted.spot_check.or(json_record);
    let rasff_classification = one_of(
        lifted.classification,
        g.opt_enum("rasffClassification")?,
        &g,
        "rasffClassification",
    )?;
    let rasff_risk = one_of(lifted.risk, g.opt_enum("rasffRisk")?, &g, "rasffRisk")?;
    let resources = g
        .all("resource")
        .into_iter()
        .map(|(el, p)| decode_resource(el, p, ordered))
        .collect::<Result<_, _>>()?;
    let areas = g
        .all("area")
        .into_iter()
        .map(|(el, p)| decode_area(el, p, ordered))
        .collect::<Result<_, _>>()?;
    Ok(Info {
        language: g.opt_text("language")?,
        categories: g.enums("category")?,
        event: g.text("event")?,
        response_types: g.enums("responseType")?,
        urgency: g.enum_one("urgency")?,
        severity: g.enum_one("severity")?,
        certainty: g.enum_one("certainty")?,
        audience: g.opt_text("audience")?,
        event_codes,
        effective: g.opt_time("effective")?,
        onset: g.opt_time("onset")?,
        expires: g.opt_time("expires")?,
        sender_name: g.opt_text("senderName")?,
        headline: g.opt_text("headline")?,
        description: g.opt_text("description")?,
        instruction: g.opt_text("instruction")?,
        web: g.opt_text("web")?,
        contact: g.opt_text("contact")?,
        parameters: lifted.others,
        spot_check,
        rasff_classification,
        rasff_risk,
        resources,
        areas,
    })
}

/// A typed extension given as a parameter (XML or JSON) or as a JSON field, not both.
fn one_of<T>(
    from_param: Option<T>,
    from_field: Option<T>,
    g: &Groups<'_>,
    field: &str,
) -> Result<Option<T>, CapError> {
    match (from_param, from_field) {
        (Some(_), Some(_)) => {
            let reason = "given both as a field and as a parameter";
            Err(CapError::invalid(format!("{}/{field}", g.path), reason))
        }
        (a, b) => Ok(a.or(b)),
    }
}

fn decode_pair(el: &Element, path: &str, ordered: bool) -> Result<ValuePair, CapError> {
    let g = Groups::new(el, path.to_owned(), PAIR, ordered)?;
    Ok(ValuePair {
        value_name: g.text("valueName")?,
        value: g.text("value")?,
    })
}

fn decode_resource(el: &Element, path: String, ordered: bool) -> Result<Resource, CapError> {
    let g = Groups::new(el, path, RESOURCE, ordered)?;
    let size = match g.get("size") {
        Some((el, p)) => {
            let text = super::tree::leaf_text(el, &p)?;
            let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            let n = text.parse::<u64>().ok().filter(|_| ok);
            let reason = "size must be a non-negative integer number of bytes";
            Some(n.ok_or_else(|| CapError::invalid(p, reason))?)
        }
        None => None,
    };
    Ok(Resource {
        resource_desc: g.text("resourceDesc")?,
        mime_type: g.text("mimeType")?,
        size,
        uri: g.opt_text("uri")?,
        deref_uri: g.opt_text("derefUri")?,
        digest: g.opt_text("digest")?,
    })
}

fn decode_area(el: &Element, path: String, ordered: bool) -> Result<Area, CapError> {
    let g = Groups::new(el, path, AREA, ordered)?;
    let geocodes = g
        .all("geocode")
        .into_iter()
        .map(|(el, p)| decode_pair(el, &p, ordered))
        .collect::<Result<_, _>>()?;
    Ok(Area {
        area_desc: g.text("areaDesc")?,
        polygons: g.texts("polygon")?,
        circles: g.texts("circle")?,
        geocodes,
        altitude: g.opt_text("altitude")?,
        ceiling: g.opt_text("ceiling")?,
    })
}
