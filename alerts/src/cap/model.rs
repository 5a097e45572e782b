//! The CAP 1.2 message model: [`Alert`] ⊃ [`Info`] ⊃ [`Resource`], [`Area`], with
//! [`ValuePair`] for `eventCode`, `parameter` and `geocode`.
//!
//! Fields appear in CAP 1.2 schema order. Optional elements are `Option`, repeatable ones `Vec`
//! (Rust names are plural, wire names are CAP's: `codes` is `code`, `areas` is `area`). Free
//! text is kept exactly as received (no trimming), so writing gives the same text back.
//!
//! Two hubcast extensions live on [`Info`] as typed fields but travel as CAP `<parameter>`s
//! (see [`spotcheck`](super::spotcheck)): the spot-check record and the RASFF-style
//! classification. [`Info::parameters`] holds the remaining, untyped parameters.
//!
//! JSON is `serde` with CAP's element names as camelCase keys; absent optionals and empty lists
//! are omitted. Deserializing goes through the same decoder as XML (see
//! [`read_json`](super::read_json)).

use serde::Serialize;

use super::datetime::CapDateTime;
use super::enums::{Category, Certainty, MsgType, ResponseType, Scope, Severity, Status, Urgency};
use super::spotcheck::{RasffClassification, RasffRisk, SpotCheck};

/// A CAP 1.2 `alert`: the message envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Unique (per sender) message id; no spaces, commas, `<` or `&`.
    pub identifier: String,
    /// Originator id, e.g. `330100.amr.zj.gov.cn`; same character rules as `identifier`.
    pub sender: String,
    /// Origination time.
    pub sent: CapDateTime,
    /// Handling code.
    pub status: Status,
    /// Nature of the message.
    pub msg_type: MsgType,
    /// Source of the message (operator, device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Intended distribution.
    pub scope: Scope,
    /// Rule for restricted distribution; required when `scope` is `Restricted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restriction: Option<String>,
    /// Space-separated recipients; required when `scope` is `Private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<String>,
    /// Special handling codes (`code`).
    #[serde(rename = "code", skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    /// Purpose or significance of the message; explanation for `Error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Whitespace-separated `sender,identifier,sent` triples of earlier messages (see
    /// [`Alert::parsed_references`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// Whitespace-separated incident ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incidents: Option<String>,
    /// Information blocks, typically one per language.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Info>,
}

/// A CAP 1.2 `info` block: the event in one language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// RFC 3066 language tag; absent means CAP's default `en-US` (see [`Info::language`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// One or more categories (`category`).
    #[serde(rename = "category")]
    pub categories: Vec<Category>,
    /// The type of event, e.g. `食品安全预警`.
    pub event: String,
    /// Recommended actions (`responseType`).
    #[serde(rename = "responseType", skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<ResponseType>,
    /// How soon to act.
    pub urgency: Urgency,
    /// How grave.
    pub severity: Severity,
    /// How certain.
    pub certainty: Certainty,
    /// Intended audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// System-specific event codes (`eventCode`); hubcast's kind is `hubcast:kind`.
    #[serde(rename = "eventCode", skip_serializing_if = "Vec::is_empty")]
    pub event_codes: Vec<ValuePair>,
    /// When the information becomes effective.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<CapDateTime>,
    /// Expected onset of the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<CapDateTime>,
    /// When the information stops being current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<CapDateTime>,
    /// Human-readable name of the issuing agency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Short headline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// Extended description of the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Recommended action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Absolute URI of further information.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<String>,
    /// Follow-up contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// Parameters other than hubcast's typed ones (`spotcheck:*`, `rasff:*`).
    #[serde(rename = "parameter", skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ValuePair>,
    /// The spot-check record (抽检结果), carried as `spotcheck:*` parameters in XML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_check: Option<SpotCheck>,
    /// RASFF-style notification class, parameter `rasff:classification`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rasff_classification: Option<RasffClassification>,
    /// RASFF-style risk decision, parameter `rasff:risk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rasff_risk: Option<RasffRisk>,
    /// Supplementary files (`resource`).
    #[serde(rename = "resource", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Affected areas (`area`).
    #[serde(rename = "area", skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<Area>,
}

/// A CAP 1.2 `resource`: a file that supplements an `info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// What the file is, e.g. `检验报告`.
    pub resource_desc: String,
    /// MIME type (RFC 2046).
    pub mime_type: String,
    /// Size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where to get it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Base64 of the file itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deref_uri: Option<String>,
    /// SHA-1 of the file, 40 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// A CAP 1.2 `area`. hubcast routes on its GB2260 geocodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Area {
    /// Text description, e.g. `杭州市`.
    pub area_desc: String,
    /// Closed polygons, `lat,lon lat,lon …` (first pair = last pair, ≥ 4 pairs).
    #[serde(rename = "polygon", skip_serializing_if = "Vec::is_empty")]
    pub polygons: Vec<String>,
    /// Circles, `lat,lon radius_km`.
    #[serde(rename = "circle", skip_serializing_if = "Vec::is_empty")]
    pub circles: Vec<String>,
    /// Geographic codes; hubcast's are `GB2260` six-digit region codes.
    #[serde(rename = "geocode", skip_serializing_if = "Vec::is_empty")]
    pub geocodes: Vec<ValuePair>,
    /// Altitude in feet (decimal, as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altitude: Option<String>,
    /// Ceiling in feet (decimal, as written); needs `altitude`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<String>,
}

/// A `valueName`/`value` pair (`eventCode`, `parameter`, `geocode`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValuePair {
    /// The code system or parameter name, e.g. `GB2260`.
    pub value_name: String,
    /// The value, e.g. `330100`.
    pub value: String,
}

impl Alert {
    /// An alert with the required elements and nothing else.
    pub fn new(
        identifier: impl Into<String>,
        sender: impl Into<String>,
        sent: CapDateTime,
        status: Status,
        msg_type: MsgType,
        scope: Scope,
    ) -> Alert {
        Alert {
            identifier: identifier.into(),
            sender: sender.into(),
            sent,
            status,
            msg_type,
            source: None,
            scope,
            restriction: None,
            addresses: None,
            codes: Vec::new(),
            note: None,
            references: None,
            incidents: None,
            info: Vec::new(),
        }
    }
}

impl Info {
    /// An info block with the required elements (one category) and nothing else.
    pub fn new(
        category: Category,
        event: impl Into<String>,
        urgency: Urgency,
        severity: Severity,
        certainty: Certainty,
    ) -> Info {
        Info {
            language: None,
            categories: vec![category],
            event: event.into(),
            response_types: Vec::new(),
            urgency,
            severity,
            certainty,
            audience: None,
            event_codes: Vec::new(),
            effective: None,
            onset: None,
            expires: None,
            sender_name: None,
            headline: None,
            description: None,
            instruction: None,
            web: None,
            contact: None,
            parameters: Vec::new(),
            spot_check: None,
            rasff_classification: None,
            rasff_risk: None,
            resources: Vec::new(),
            areas: Vec::new(),
        }
    }

    /// The language tag, CAP's default `en-US` when absent.
    pub fn language(&self) -> &str {
        self.language.as_deref().unwrap_or("en-US")
    }
}

impl Area {
    /// An area with only a description.
    pub fn new(area_desc: impl Into<String>) -> Area {
        Area {
            area_desc: area_desc.into(),
            polygons: Vec::new(),
            circles: Vec::new(),
            geocodes: Vec::new(),
            altitude: None,
            ceiling: None,
        }
    }
}

impl ValuePair {
    /// A pair from its two parts.
    pub fn new(value_name: impl Into<String>, value: impl Into<String>) -> ValuePair {
        ValuePair {
            value_name: value_name.into(),
            value: value.into(),
        }
    }
}
