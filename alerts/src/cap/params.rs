//! Moving hubcast's typed extensions between [`Info`]'s fields and CAP `<parameter>`s, and
//! decoding the JSON `spotCheck` object. The encoding is documented in
//! [`spotcheck`](super::spotcheck).

use super::error::CapError;
use super::model::{Info, ValuePair};
use super::spotcheck::{FailedItem, RasffClassification, RasffRisk, SpotCheck, SpotCheckResult};
use super::tree::{Element, Groups, Slot, leaf_text};

/// Prefix of spot-check parameter names.
pub const SPOTCHECK_PREFIX: &str = "spotcheck:";
/// Parameter name of the RASFF classification.
pub const RASFF_CLASSIFICATION: &str = "rasff:classification";
/// Parameter name of the RASFF risk decision.
pub const RASFF_RISK: &str = "rasff:risk";

/// Single-valued spot-check fields, in writing order (also the JSON keys).
const FIELDS: [&str; 14] = [
    "producerName",
    "producerAddress",
    "sampledName",
    "sampledAddress",
    "productName",
    "specification",
    "brand",
    "batch",
    "category",
    "noticeNumber",
    "noticeDate",
    "taskSource",
    "institute",
    "result",
];
const FAILED_ITEM: &str = "failedItem";

/// `spotCheck` in JSON: the fields above plus `failedItems`.
const SPOT_CHECK_JSON: &[Slot] = &[
    Slot::opt("producerName"),
    Slot::opt("producerAddress"),
    Slot::one("sampledName"),
    Slot::opt("sampledAddress"),
    Slot::one("productName"),
    Slot::opt("specification"),
    Slot::opt("brand"),
    Slot::opt("batch"),
    Slot::opt("category"),
    Slot::opt("noticeNumber"),
    Slot::opt("noticeDate"),
    Slot::opt("taskSource"),
    Slot::opt("institute"),
    Slot::one("result"),
    Slot::many("failedItems"),
];
const FAILED_ITEM_JSON: &[Slot] = &[
    Slot::one("name"),
    Slot::one("measured"),
    Slot::one("limit"),
    Slot::opt("unit"),
];

/// Field values with the path each came from, indexed like [`FIELDS`].
type Found = [Option<(String, String)>; 14];

/// The typed extensions lifted out of an `info`'s parameters.
#[derive(Debug, Default)]
pub(crate) struct Lifted {
    pub others: Vec<ValuePair>,
    pub spot_check: Option<SpotCheck>,
    pub classification: Option<RasffClassification>,
    pub risk: Option<RasffRisk>,
}

/// Splits decoded parameters (each with its path) into untyped ones and typed extensions.
pub(crate) fn lift(params: Vec<(ValuePair, String)>, info: &str) -> Result<Lifted, CapError> {
    let mut out = Lifted::default();
    let mut found: Found = Default::default();
    let mut failed = Vec::new();
    let mut any = false;
    for (pair, path) in params {
        let value_path = format!("{path}/value");
        if let Some(field) = pair.value_name.strip_prefix(SPOTCHECK_PREFIX) {
            any = true;
            if field == FAILED_ITEM {
                let item = FailedItem::decode(&pair.value)
                    .map_err(|e| CapError::invalid(&value_path, format!("failed item {e}")))?;
                failed.push(item);
                continue;
            }
            let Some(i) = FIELDS.iter().position(|f| *f == field) else {
                let reason = format!(
                    "unknown spot-check parameter `{}`; known: {}, {FAILED_ITEM}",
                    super::clip(&pair.value_name),
                    FIELDS.join(", ")
                );
                return Err(CapError::invalid(path, reason));
            };
            if found[i].is_some() {
                return Err(CapError::Repeated { path });
            }
            found[i] = Some((pair.value, value_path));
        } else if pair.value_name == RASFF_CLASSIFICATION {
            if out.classification.is_some() {
                return Err(CapError::Repeated { path });
            }
            let v = pair.value.parse();
            out.classification = Some(v.map_err(|e| CapError::bad_enum(value_path, e))?);
        } else if pair.value_name == RASFF_RISK {
            if out.risk.is_some() {
                return Err(CapError::Repeated { path });
            }
            let v = pair.value.parse();
            out.risk = Some(v.map_err(|e| CapError::bad_enum(value_path, e))?);
        } else if pair.value_name.starts_with("rasff:") {
            let reason =
                format!("unknown RASFF parameter; known: {RASFF_CLASSIFICATION}, {RASFF_RISK}");
            return Err(CapError::invalid(path, reason));
        } else {
            out.others.push(pair);
        }
    }
    if any {
        let missing = |field: &str| format!("{info}/parameter({SPOTCHECK_PREFIX}{field})");
        out.spot_check = Some(build(found, failed, missing)?);
    }
    Ok(out)
}

/// Assembles a record, checking required fields and typed values.
fn build(
    mut found: Found,
    failed_items: Vec<FailedItem>,
    missing_path: impl Fn(&str) -> String,
) -> Result<SpotCheck, CapError> {
    let mut take = |field: &str| {
        let i = FIELDS.iter().position(|f| *f == field).unwrap_or(0);
        found[i].take()
    };
    let mut required = |field: &'static str| {
        take(field).map(|(v, _)| v).ok_or_else(|| {
            CapError::missing(missing_path(field), "required in a spot-check record")
        })
    };
    let sampled_name = required("sampledName")?;
    let product_name = required("productName")?;
    let (result, result_path) = take("result").ok_or_else(|| {
        CapError::missing(missing_path("result"), "required in a spot-check record")
    })?;
    let result: SpotCheckResult = result
        .parse()
        .map_err(|e| CapError::bad_enum(result_path, e))?;
    let notice_date = match take("noticeDate") {
        Some((v, path)) => Some(v.parse().map_err(|e| CapError::bad_datetime(path, e))?),
        None => None,
    };
    let mut text = |field: &str| take(field).map(|(v, _)| v);
    Ok(SpotCheck {
        producer_name: text("producerName"),
        producer_address: text("producerAddress"),
        sampled_name,
        sampled_address: text("sampledAddress"),
        product_name,
        specification: text("specification"),
        brand: text("brand"),
        batch: text("batch"),
        category: text("category"),
        notice_number: text("noticeNumber"),
        notice_date,
        task_source: text("taskSource"),
        institute: text("institute"),
        result,
        failed_items,
    })
}

/// Decodes the JSON `spotCheck` object of an `info`.
pub(crate) fn spot_check_from_json(el: &Element, path: &str) -> Result<SpotCheck, CapError> {
    let g = Groups::new(el, path.to_owned(), SPOT_CHECK_JSON, false)?;
    let mut found: Found = Default::default();
    for (i, field) in FIELDS.iter().enumerate() {
        if let Some((el, p)) = g.get(field) {
            found[i] = Some((leaf_text(el, &p)?, p));
        }
    }
    let mut failed = Vec::new();
    for (el, p) in g.all("failedItems") {
        let f = Groups::new(el, p.clone(), FAILED_ITEM_JSON, false)?;
        let unit = f.opt_text("unit")?;
        if unit.as_deref() == Some("") {
            let reason = "empty unit: omit `unit` when there is none";
            return Err(CapError::invalid(format!("{p}/unit"), reason));
        }
        failed.push(FailedItem {
            name: f.text("name")?,
            measured: f.text("measured")?,
            limit: f.text("limit")?,
            unit,
        });
    }
    build(found, failed, |field| format!("{path}/{field}"))
}

/// The parameters to write for `info`: its untyped ones, then the spot-check record, then RASFF.
pub(crate) fn lower(info: &Info) -> Vec<ValuePair> {
    let mut out = info.parameters.clone();
    if let Some(sc) = &info.spot_check {
        let date = sc.notice_date.map(|d| d.to_string());
        let values: [Option<&str>; 14] = [
            sc.producer_name.as_deref(),
            sc.producer_address.as_deref(),
            Some(&sc.sampled_name),
            sc.sampled_address.as_deref(),
            Some(&sc.product_name),
            sc.specification.as_deref(),
            sc.brand.as_deref(),
            sc.batch.as_deref(),
            sc.category.as_deref(),
            sc.notice_number.as_deref(),
            date.as_deref(),
            sc.task_source.as_deref(),
            sc.institute.as_deref(),
            Some(sc.result.as_str()),
        ];
        for (field, value) in FIELDS.iter().zip(values) {
            if let Some(v) = value {
                out.push(ValuePair::new(format!("{SPOTCHECK_PREFIX}{field}"), v));
            }
        }
        for item in &sc.failed_items {
            out.push(ValuePair::new(
                format!("{SPOTCHECK_PREFIX}{FAILED_ITEM}"),
                item.encode(),
            ));
        }
    }
    if let Some(c) = info.rasff_classification {
        out.push(ValuePair::new(RASFF_CLASSIFICATION, c.as_str()));
    }
    if let Some(r) = info.rasff_risk {
        out.push(ValuePair::new(RASFF_RISK, r.as_str()));
    }
    out
}
