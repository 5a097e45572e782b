//! hubcast's meaning on top of CAP: the alert kind, regions, China's warning levels, references
//! between messages, liveness, and the hubcast rules [`validate`](super::validate()) adds.
//!
//! - Kind: every info carries `<eventCode><valueName>hubcast:kind</valueName><value>food</value>`
//!   with one of `food`, `spotcheck`, `consumer`, `market` ([`AlertKind`]).
//! - Regions: `<geocode><valueName>GB2260</valueName><value>330100</value></geocode>`; an
//!   `Alert` or `Update` needs at least one, and every GB2260 value must be a valid code.
//!   `Cancel`, `Ack` and `Error` may omit areas: they reach the audience of what they reference.
//! - A spot-check `Alert` or `Update` carries a [`SpotCheck`](super::SpotCheck) record in every
//!   info, and only spot-check alerts carry one.

use std::fmt;

use tiers::RegionCode;

use super::datetime::CapDateTime;
use super::enums::{MsgType, Severity, cap_enum};
use super::error::CapError;
use super::model::Alert;
use super::validate::id_problem;

/// `valueName` of the event code carrying the [`AlertKind`].
pub const KIND_CODE: &str = "hubcast:kind";
/// `valueName` of geocodes holding GB/T 2260 region codes.
pub const GB2260: &str = "GB2260";

cap_enum! {
    /// What an alert is about; the wire value goes in the `hubcast:kind` event code.
    AlertKind {
        /// 食品安全预警: food-safety warning.
        FoodSafety = "food",
        /// 抽检结果: spot-check result, one record per batch tested.
        SpotCheck = "spotcheck",
        /// 消费警示/消费提示: consumer warning.
        ConsumerWarning = "consumer",
        /// 市场检测结果: market-testing result.
        MarketTesting = "market",
    }
}

impl AlertKind {
    /// The Chinese name, suitable as the CAP `event`.
    pub fn name_zh(self) -> &'static str {
        match self {
            AlertKind::FoodSafety => "食品安全预警",
            AlertKind::SpotCheck => "抽检结果",
            AlertKind::ConsumerWarning => "消费警示",
            AlertKind::MarketTesting => "市场检测结果",
        }
    }
}

/// China's four warning levels (预警级别), Level I the gravest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarningLevel {
    /// Level I, 特别严重, red → `Extreme`.
    I,
    /// Level II, 严重, orange → `Severe`.
    II,
    /// Level III, 较重, yellow → `Moderate`.
    III,
    /// Level IV, 一般, blue → `Minor`.
    IV,
}

impl WarningLevel {
    /// The CAP severity of this level.
    pub fn severity(self) -> Severity {
        match self {
            WarningLevel::I => Severity::Extreme,
            WarningLevel::II => Severity::Severe,
            WarningLevel::III => Severity::Moderate,
            WarningLevel::IV => Severity::Minor,
        }
    }

    /// The level a CAP severity corresponds to; none for `Unknown`.
    pub fn from_severity(severity: Severity) -> Option<WarningLevel> {
        match severity {
            Severity::Extreme => Some(WarningLevel::I),
            Severity::Severe => Some(WarningLevel::II),
            Severity::Moderate => Some(WarningLevel::III),
            Severity::Minor => Some(WarningLevel::IV),
            Severity::Unknown => None,
        }
    }

    /// 特别严重, 严重, 较重, 一般.
    pub fn name_zh(self) -> &'static str {
        match self {
            WarningLevel::I => "特别严重",
            WarningLevel::II => "严重",
            WarningLevel::III => "较重",
            WarningLevel::IV => "一般",
        }
    }

    /// The signal colour: `red`, `orange`, `yellow`, `blue`.
    pub fn color(self) -> &'static str {
        match self {
            WarningLevel::I => "red",
            WarningLevel::II => "orange",
            WarningLevel::III => "yellow",
            WarningLevel::IV => "blue",
        }
    }
}

impl From<WarningLevel> for Severity {
    fn from(level: WarningLevel) -> Severity {
        level.severity()
    }
}

/// One `sender,identifier,sent` triple of `references`: an earlier message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The earlier message's sender.
    pub sender: String,
    /// The earlier message's identifier.
    pub identifier: String,
    /// The earlier message's sent time.
    pub sent: CapDateTime,
}

impl Reference {
    /// The reference naming `alert` (for building its Update or Cancel).
    pub fn to(alert: &Alert) -> Reference {
        Reference {
            sender: alert.sender.clone(),
            identifier: alert.identifier.clone(),
            sent: alert.sent,
        }
    }

    /// Parses a whitespace-separated list of triples; the error says which one is wrong.
    pub fn parse_list(s: &str) -> Result<Vec<Reference>, String> {
        // XML's white space (space, tab, CR, LF) only: CAP consumers split on nothing else.
        s.split_ascii_whitespace()
            .enumerate()
            .map(|(i, triple)| {
                let bad = |why: String| format!("reference {i} `{}` {why}", super::clip(triple));
                let parts: Vec<&str> = triple.split(',').collect();
                let [sender, identifier, sent] = parts[..] else {
                    return Err(bad("is not a sender,identifier,sent triple".into()));
                };
                for (what, v) in [("sender", sender), ("identifier", identifier)] {
                    if let Some(problem) = id_problem(v) {
                        return Err(bad(format!("has a bad {what}: {problem}")));
                    }
                }
                let sent = sent
                    .parse()
                    .map_err(|e| bad(format!("has a bad sent: {e}")))?;
                Ok(Reference {
                    sender: sender.to_owned(),
                    identifier: identifier.to_owned(),
                    sent,
                })
            })
            .collect()
    }

    /// Formats references as CAP's whitespace-separated list.
    pub fn join(references: &[Reference]) -> String {
        let list: Vec<String> = references.iter().map(ToString::to_string).collect();
        list.join(" ")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.sender, self.identifier, self.sent)
    }
}

impl Alert {
    /// The alert's kind, from the first info's `hubcast:kind` event code.
    pub fn kind(&self) -> Result<AlertKind, CapError> {
        let first = self.info.first().ok_or_else(|| {
            CapError::missing("alert/info[0]", "a hubcast alert needs an info block")
        })?;
        let path = "alert/info[0]/eventCode";
        let (j, code) = (first.event_codes.iter().enumerate())
            .find(|(_, c)| c.value_name == KIND_CODE)
            .ok_or_else(|| CapError::missing(path, "needs a `hubcast:kind` event code"))?;
        let path = format!("{path}[{j}]/value");
        code.value.parse().map_err(|e| CapError::bad_enum(path, e))
    }

    /// Every GB2260 region code in the alert's areas, in order, without repeats.
    pub fn regions(&self) -> Result<Vec<RegionCode>, CapError> {
        let mut out: Vec<RegionCode> = Vec::new();
        for ((i, a, k), value) in self.gb2260_values() {
            let code = RegionCode::parse(value).map_err(|e| {
                let why = format!("bad GB2260 region code: {e}");
                CapError::invalid(geocode_path(i, a, k), why)
            })?;
            if !out.contains(&code) {
                out.push(code);
            }
        }
        Ok(out)
    }

    /// The first GB2260 geocode (well formed, see [`Alert::regions`]) that `known` does not
    /// know, as a 422-style error naming its place: a region code that is not (or no longer)
    /// in the deployment's region tree is a mistake in the alert, not a permission matter.
    pub fn unknown_region(&self, known: impl Fn(RegionCode) -> bool) -> Option<CapError> {
        self.gb2260_values().find_map(|((i, a, k), value)| {
            let code = RegionCode::parse(value).ok().filter(|&code| !known(code))?;
            let why = format!("region {code} is not in this hub's region tree");
            Some(CapError::invalid(geocode_path(i, a, k), why))
        })
    }

    /// The values of the `GB2260` geocodes, with their (info, area, geocode) places.
    fn gb2260_values(&self) -> impl Iterator<Item = ((usize, usize, usize), &str)> {
        self.info.iter().enumerate().flat_map(|(i, info)| {
            info.areas.iter().enumerate().flat_map(move |(a, area)| {
                (area.geocodes.iter().enumerate())
                    .filter(|(_, geo)| geo.value_name == GB2260)
                    .map(move |(k, geo)| ((i, a, k), geo.value.as_str()))
            })
        })
    }

    /// `references` as triples (empty when absent).
    pub fn parsed_references(&self) -> Result<Vec<Reference>, CapError> {
        match &self.references {
            Some(s) => {
                Reference::parse_list(s).map_err(|e| CapError::invalid("alert/references", e))
            }
            None => Ok(Vec::new()),
        }
    }

    /// The gravest severity over all infos.
    pub fn max_severity(&self) -> Option<Severity> {
        self.info.iter().map(|i| i.severity).max()
    }

    /// When the alert stops being live, in unix seconds: the latest `expires` of its infos.
    /// `None` (never expires) if it has no info or some info has no `expires`.
    pub fn expires_at(&self) -> Option<i64> {
        let all: Option<Vec<i64>> = self
            .info
            .iter()
            .map(|i| i.expires.map(|e| e.unix_seconds()))
            .collect();
        all?.into_iter().max()
    }

    /// Whether the alert is still current at `now` (unix seconds, passed in).
    pub fn is_live_at(&self, now: i64) -> bool {
        self.expires_at().is_none_or(|t| now < t)
    }
}

/// hubcast's rules (kind, regions, spot-check records), appended to `errors`.
pub(crate) fn check(alert: &Alert, errors: &mut Vec<CapError>) {
    let routed = matches!(alert.msg_type, MsgType::Alert | MsgType::Update);
    if routed && alert.info.is_empty() {
        let reason = "an Alert or Update needs an info block";
        errors.push(CapError::missing("alert/info[0]", reason));
    }
    let mut kind = None;
    for (i, info) in alert.info.iter().enumerate() {
        let codes: Vec<_> = (info.event_codes.iter().enumerate())
            .filter(|(_, c)| c.value_name == KIND_CODE)
            .collect();
        match codes[..] {
            [] => errors.push(CapError::missing(
                format!("alert/info[{i}]/eventCode"),
                "needs a `hubcast:kind` event code",
            )),
            [(j, code)] => match code.value.parse::<AlertKind>() {
                Ok(k) if kind.is_some_and(|first| first != k) => errors.push(CapError::invalid(
                    format!("alert/info[{i}]/eventCode[{j}]/value"),
                    "every info must have the same hubcast:kind",
                )),
                Ok(k) => kind = Some(k),
                Err(e) => errors.push(CapError::bad_enum(
                    format!("alert/info[{i}]/eventCode[{j}]/value"),
                    e,
                )),
            },
            [_, (j, _), ..] => errors.push(CapError::Repeated {
                path: format!("alert/info[{i}]/eventCode[{j}]"),
            }),
        }
    }
    // Publishing is authorized by these codes, so an area without one (a polygon or circle
    // only) would reach places the publisher may not speak for.
    for (i, info) in alert.info.iter().enumerate() {
        for (a, area) in info.areas.iter().enumerate() {
            let path = || format!("alert/info[{i}]/area[{a}]/geocode");
            let misspelt = (area.geocodes.iter().enumerate())
                .find(|(_, g)| g.value_name != GB2260 && g.value_name.eq_ignore_ascii_case(GB2260));
            if let Some((k, _)) = misspelt {
                errors.push(CapError::invalid(
                    format!("{}[{k}]/valueName", path()),
                    "write the valueName as GB2260",
                ));
            } else if !area.geocodes.iter().any(|g| g.value_name == GB2260) {
                errors.push(CapError::missing(
                    path(),
                    "every area names its region with a GB2260 geocode (hubcast authorizes \
                     and routes by it; a polygon or circle alone is not enough)",
                ));
            }
        }
    }
    match alert.regions() {
        Ok(regions) if regions.is_empty() && routed => errors.push(CapError::missing(
            "alert/info/area/geocode",
            "hubcast routes by region: an area needs a GB2260 geocode",
        )),
        Ok(_) => {}
        Err(e) => errors.push(e),
    }
    for (i, info) in alert.info.iter().enumerate() {
        match (&info.spot_check, kind) {
            (None, Some(AlertKind::SpotCheck)) if routed => errors.push(CapError::missing(
                format!("alert/info[{i}]/parameter(spotcheck:*)"),
                "a spot-check alert carries a spot-check record",
            )),
            (Some(_), Some(k)) if k != AlertKind::SpotCheck => errors.push(CapError::invalid(
                format!("alert/info[{i}]/parameter(spotcheck:*)"),
                "only a spot-check alert (hubcast:kind spotcheck) carries a spot-check record",
            )),
            (Some(sc), _) => super::validate::spot_check(sc, &format!("alert/info[{i}]"), errors),
            (None, _) => {}
        }
    }
}

/// The path of geocode `k` of area `a` of info `i`'s value.
fn geocode_path(i: usize, a: usize, k: usize) -> String {
    format!("alert/info[{i}]/area[{a}]/geocode[{k}]/value")
}
