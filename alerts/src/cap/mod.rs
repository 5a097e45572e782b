//! CAP 1.2 (`urn:oasis:names:tc:emergency:cap:1.2`): the message model, XML and JSON read and
//! write, validation, and hubcast's meaning on top (kinds, regions, spot-check records).
//!
//! # Layout
//! - [`model`]: [`Alert`], [`Info`], [`Resource`], [`Area`], [`ValuePair`].
//! - [`enums`]: the CAP value sets ([`Status`], [`MsgType`], [`Scope`], [`Category`],
//!   [`ResponseType`], [`Urgency`], [`Severity`] (ordered by gravity), [`Certainty`]).
//! - [`datetime`]: [`CapDateTime`] (`YYYY-MM-DDThh:mm:ss±hh:mm`, offset kept) and [`Date`].
//! - [`spotcheck`]: [`SpotCheck`] records and RASFF classification; their `<parameter>`
//!   encoding is documented there. `params` moves them between fields and parameters.
//! - `xml_read` (XML → element tree, with the XXE/DTD/entity/size defences), `json` (JSON →
//!   the same tree), `tree` (the tree and the schema tables), `decode` (tree → model, one
//!   decoder for both formats), `xml_write`.
//! - [`validate()`]: CAP rules beyond the schema plus hubcast's ([`semantics`]: [`AlertKind`],
//!   [`WarningLevel`], [`Reference`], `Alert::regions`, `Alert::kind`, liveness).
//! - [`error`]: [`CapError`], naming an element path (`alert/info[0]/severity`) or a position.
//!
//! # Reading
//! [`read_xml`] / [`read_json`] (or [`Alert::from_xml`] / [`Alert::from_json`] with the default
//! 256 KiB limit) check structure, order (XML), enumerations and dateTime syntax and return the
//! first problem. [`validate()`] then checks the remaining rules and returns all problems. A
//! publish path does both.
//!
//! # Example
//! ```
//! use alerts::cap::{Alert, AlertKind, Severity, WarningLevel};
//!
//! let xml = r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
//!   <identifier>HZ-1</identifier><sender>scjg.hangzhou.gov.cn</sender>
//!   <sent>2024-05-17T09:00:00+08:00</sent><status>Actual</status><msgType>Alert</msgType>
//!   <scope>Public</scope>
//!   <info><language>zh-CN</language><category>Health</category><event>食品安全预警</event>
//!     <urgency>Expected</urgency><severity>Severe</severity><certainty>Likely</certainty>
//!     <eventCode><valueName>hubcast:kind</valueName><value>food</value></eventCode>
//!     <area><areaDesc>杭州市</areaDesc>
//!       <geocode><valueName>GB2260</valueName><value>330100</value></geocode></area>
//!   </info>
//! </alert>"#;
//! let alert = Alert::from_xml(xml.as_bytes())?;
//! alert.validate().map_err(|errors| errors[0].clone())?;
//! assert_eq!(alert.kind()?, AlertKind::FoodSafety);
//! assert_eq!(alert.regions()?[0].to_string(), "330100");
//! assert_eq!(alert.max_severity(), Some(WarningLevel::II.severity()));
//! assert!(alert.max_severity() >= Some(Severity::Moderate)); // a `min_severity` filter
//! assert_eq!(Alert::from_json(alert.to_json().as_bytes())?, alert);
//! # Ok::<(), alerts::cap::CapError>(())
//! ```
//!
//! # Purity
//! No I/O, no clock: times are compared as unix seconds passed in by the caller.

pub mod datetime;
mod decode;
pub mod enums;
pub mod error;
mod json;
mod json_keys;
pub mod model;
mod params;
pub mod semantics;
pub mod spotcheck;
mod tree;
mod validate;
mod xml_read;
mod xml_write;

pub use datetime::{CapDateTime, Date, DateTimeError};
pub use enums::{
    Category, Certainty, MsgType, ResponseType, Scope, Severity, Status, UnknownValue, Urgency,
};
pub use error::{CapError, Position};
pub use json::{alert_from_value, read_json, write_json};
pub use model::{Alert, Area, Info, Resource, ValuePair};
pub use params::{RASFF_CLASSIFICATION, RASFF_RISK, SPOTCHECK_PREFIX};
pub use semantics::{AlertKind, GB2260, KIND_CODE, Reference, WarningLevel};
pub use spotcheck::{FailedItem, RasffClassification, RasffRisk, SpotCheck, SpotCheckResult};
pub use validate::{id_problem, validate};
pub use xml_read::CAP_NAMESPACE;
pub use xml_write::write_xml;

/// Default size limit for one CAP document, XML or JSON: 256 KiB. Real alerts are a few KiB;
/// the limit bounds the memory an untrusted body can make the parser use.
pub const DEFAULT_MAX_SIZE: usize = 256 * 1024;

/// Reads a CAP 1.2 XML document of at most `max_size` bytes: structure, schema order,
/// enumerations, dateTime syntax and hubcast's typed parameters. See [`validate()`] for the rest.
pub fn read_xml(input: &[u8], max_size: usize) -> Result<Alert, CapError> {
    let root = xml_read::read_tree(input, max_size)?;
    decode::decode_alert(&root, true)
}

impl Alert {
    /// [`read_xml`] with [`DEFAULT_MAX_SIZE`].
    pub fn from_xml(input: &[u8]) -> Result<Alert, CapError> {
        read_xml(input, DEFAULT_MAX_SIZE)
    }

    /// [`read_json`] with [`DEFAULT_MAX_SIZE`].
    pub fn from_json(input: &[u8]) -> Result<Alert, CapError> {
        read_json(input, DEFAULT_MAX_SIZE)
    }

    /// [`write_xml`].
    pub fn to_xml(&self) -> String {
        write_xml(self)
    }

    /// [`write_json`].
    pub fn to_json(&self) -> String {
        write_json(self)
    }

    /// [`validate()`].
    pub fn validate(&self) -> Result<(), Vec<CapError>> {
        validate(self)
    }
}

/// An input fragment short enough for an error message (at most 64 characters).
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}
