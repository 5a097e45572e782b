//! `GET /api/v1/alerts`: the public archive (no token; `ReadArchive` is allowed anywhere).
//!
//! Parameters, all optional, each at most once (an empty value counts as absent):
//! - `region`: six-digit GB/T 2260 code in the hub's tree; alerts whose area is that region, an
//!   ancestor or a descendant (the live filter's both-ways rule);
//! - `kind`: comma list of `food`, `spotcheck`, `consumer`, `market`;
//! - `min_severity`: `unknown`, `minor`, `moderate`, `severe` or `extreme`: that and graver;
//! - `severity`: comma list of those: exactly these (with `min_severity`, both must hold);
//!   region, kind and severity hold together for one of the alert's targets, its own areas
//!   or what an Update or Cancel inherits from the alerts it references: exactly what live
//!   delivery sent to the same filter;
//! - `from` (inclusive), `to` (exclusive): on `sent`; RFC 3339 (`2024-05-17T09:00:00+08:00`,
//!   `…Z`, fractional seconds ignored; a `+` that form-decoding turned into a space is read
//!   back as `+`) or unix seconds;
//! - `q`: Chinese full text, whitespace-separated terms, all required (store rules: ≤ 200
//!   characters, ≤ 8 terms);
//! - `after`: only alerts numbered above this sequence number (with `cursor`, a range: what a
//!   live subscriber's `reset` points it to);
//! - `cursor`: the `next_cursor` of the previous page, unchanged; `limit`: 1..=500 (default 50).
//!
//! Answer: `{"items":[{id, seq, sender, identifier, sent, kind, severity, msgType, regions,
//! headline, xml_url}], "next_cursor": string|null}`, newest first. `regions` are the alert's
//! own, or for an alert without areas (a bare Cancel) those of what it references. Any bad
//! or unknown parameter: 400 `bad_parameter` with `"parameter": name`.

use alerts::cap::CapDateTime;
use alerts::hub::{AlertKind, KindSet, Severity};
use alerts::store::{ArchiveQuery, Cursor, MAX_PAGE, StoredAlert};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use tiers::{RegionCode, RegionTree};

use super::AppState;
use super::alerts_error::{AlertError, alerts_state, read_store};

const KNOWN: &str = "region, kind, min_severity, severity, from, to, q, after, cursor, limit";

/// `GET /api/v1/alerts`.
pub async fn archive(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, AlertError> {
    let Query(pairs) = query.map_err(|e| AlertError::bad_parameter("query", e.body_text()))?;
    let query = parse_query(&pairs, state.regions())?;
    let page = read_store(alerts_state(&state)?, move |store| store.query(&query)).await?;
    let items: Vec<Value> = page.items.iter().map(item).collect();
    Ok(Json(json!({
        "items": items,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// One archive entry.
fn item(a: &StoredAlert) -> Value {
    // `sent` as written (offset kept) and the headline come from the stored CAP JSON.
    let cap: Value = serde_json::from_str(&a.json).unwrap_or(Value::Null);
    let regions = match a.regions.is_empty() {
        true => &a.inherited_regions,
        false => &a.regions,
    };
    json!({
        "id": a.id,
        "seq": a.seq,
        "sender": a.sender,
        "identifier": a.identifier,
        "sent": cap["sent"],
        "kind": a.kind.as_str(),
        "severity": a.severity.as_str(),
        "msgType": alerts::convert::msg_type_str(a.msg_type),
        "regions": regions,
        "headline": cap["info"][0]["headline"],
        "xml_url": format!("/alerts/{}.xml", a.id),
    })
}

/// A `min_severity` value, or 400 naming `name` and listing the allowed ones.
pub(super) fn parse_min_severity(name: &str, value: &str) -> Result<Severity, AlertError> {
    value.parse::<Severity>().map_err(|_| {
        let allowed = Severity::ALL.map(Severity::as_str).join(", ");
        AlertError::bad_parameter(name, format!("{value:?} is not one of {allowed}"))
    })
}

/// The query string as an [`ArchiveQuery`], or 400 naming the first bad parameter.
fn parse_query(pairs: &[(String, String)], tree: &RegionTree) -> Result<ArchiveQuery, AlertError> {
    let mut query = ArchiveQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        let name = name.as_str();
        if seen.contains(&name) {
            return Err(AlertError::bad_parameter(name, "given more than once"));
        }
        seen.push(name);
        let value = value.trim();
        if value.is_empty() && KNOWN.split(", ").any(|known| known == name) {
            continue;
        }
        match name {
            "region" => query.region = Some(parse_region(value, tree)?),
            "kind" => query.kinds = parse_kinds(value)?,
            "min_severity" => query.min_severity = parse_min_severity(name, value)?,
            "severity" => {
                for item in value.split(',') {
                    let severity = parse_min_severity(name, item.trim())?;
                    if !query.severities.contains(&severity) {
                        query.severities.push(severity);
                    }
                }
            }
            "from" => query.from = Some(parse_time(name, value)?),
            "to" => query.to = Some(parse_time(name, value)?),
            "q" => query.q = Some(value.to_owned()),
            "after" => query.after = Some(super::alerts_live::parse_seq(name, value)?),
            "cursor" => {
                query.cursor = Some(value.parse::<Cursor>().map_err(|_| {
                    let why = "not a cursor of this hub; pass `next_cursor` unchanged";
                    AlertError::bad_parameter(name, why)
                })?);
            }
            "limit" => {
                query.limit = (value.parse::<usize>().ok())
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        let why = format!("{value:?} is not a number from 1 to {MAX_PAGE}");
                        AlertError::bad_parameter(name, why)
                    })?;
            }
            _ => {
                let why = format!("unknown parameter; known: {KNOWN}");
                return Err(AlertError::bad_parameter(name, why));
            }
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(AlertError::bad_parameter("from", "is after `to`"));
    }
    Ok(query)
}

pub(super) fn parse_region(value: &str, tree: &RegionTree) -> Result<RegionCode, AlertError> {
    known_region(value, tree).map_err(|why| AlertError::bad_parameter("region", why))
}

/// A region code in `value` that this hub's tree has, or why not (not a GB/T 2260 code, or
/// not in the tree): a code the hub does not know is a bad parameter, not a permission the
/// caller lacks (the alert endpoints and WHIP's `?region=` alike).
pub(super) fn known_region(value: &str, tree: &RegionTree) -> Result<RegionCode, String> {
    let code = RegionCode::parse(value).map_err(|e| e.to_string())?;
    match tree.get(code) {
        Some(_) => Ok(code),
        None => Err(format!("{code} is not in this hub's region tree")),
    }
}

pub(super) fn parse_kinds(value: &str) -> Result<KindSet, AlertError> {
    value
        .split(',')
        .map(|item| {
            item.trim().parse::<AlertKind>().map_err(|_| {
                let allowed = AlertKind::ALL.map(AlertKind::as_str).join(", ");
                let why = format!("{:?} is not one of {allowed}", item.trim());
                AlertError::bad_parameter("kind", why)
            })
        })
        .collect()
}

/// Unix seconds, or RFC 3339.
fn parse_time(name: &str, value: &str) -> Result<i64, AlertError> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let parsed = match !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        true => value.parse::<i64>().ok(),
        false => rfc3339(value),
    };
    parsed.ok_or_else(|| {
        let shown: String = value.chars().take(40).collect();
        let why = format!(
            "{shown:?} is neither RFC 3339 (2024-05-17T09:00:00+08:00) nor unix seconds \
             (write `+` as %2B in a query string)"
        );
        AlertError::bad_parameter(name, why)
    })
}

/// RFC 3339 `date T time [.fraction] (Z | ±hh:mm)` as unix seconds, a non-zero fraction
/// rounded up: alerts are stored to the second, and both bounds compare so (`from`
/// inclusive: sent ≥ 09:00:00.5 means sent ≥ 09:00:01; `to` exclusive: sent < 09:00:00.5
/// means sent < 09:00:01).
fn rfc3339(value: &str) -> Option<i64> {
    if !value.is_ascii() || value.len() < 20 {
        return None;
    }
    let (date, rest) = value.split_at(10);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, mut zone) = rest.split_at_checked(8)?;
    let mut part = 0;
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        part = i64::from(fraction.bytes().take(digits).any(|b| b != b'0'));
        zone = &fraction[digits..];
    }
    let zone = match zone {
        "Z" | "z" => "+00:00".to_owned(),
        _ => match zone.strip_prefix(' ') {
            Some(offset) => format!("+{offset}"),
            None => zone.to_owned(),
        },
    };
    let text = format!("{date}T{time}{zone}");
    text.parse::<CapDateTime>()
        .ok()
        .and_then(|t| t.unix_seconds().checked_add(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_rfc3339_forms_and_unix_seconds() {
        let t = 1_715_907_600; // 2024-05-17T09:00:00+08:00
        for text in [
            "2024-05-17T09:00:00+08:00",
            "2024-05-17T09:00:00 08:00",
            "2024-05-17t01:00:00Z",
            "2024-05-17 01:00:00.000z",
            "2024-05-17T01:00:00-00:00",
            "1715907600",
        ] {
            assert_eq!(parse_time("from", text).ok(), Some(t), "{text}");
        }
        // A fraction rounds up: both bounds compare whole seconds.
        assert_eq!(
            parse_time("to", "2024-05-17T09:00:00.5+08:00").ok(),
            Some(t + 1)
        );
        assert_eq!(
            parse_time("from", "2024-05-17 01:00:00.250z").ok(),
            Some(t + 1)
        );
        assert_eq!(
            parse_time("from", "2024-05-17T08:59:59.999+08:00").ok(),
            Some(t)
        );
        for bad in [
            "",
            "2024-05-17",
            "2024-05-17T09:00:00",
            "2024-13-01T00:00:00Z",
            "1e9",
        ] {
            assert!(parse_time("from", bad).is_err(), "{bad}");
        }
        assert!(rfc3339("2024-05-17T09:00:00.+08:00").is_none());
        assert!(rfc3339("２０２４-05-17T09:00:00+08:00").is_none());
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let tree = RegionTree::zhejiang();
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let q = parse_query(
            &pairs(&[("region", "330106"), ("kind", "food, spotcheck"), ("q", "")]),
            &tree,
        )
        .expect("valid");
        assert_eq!(q.kinds.iter().count(), 2);
        assert_eq!(q.q, None);
        let after = parse_query(&pairs(&[("after", "41")]), &tree).expect("after");
        assert_eq!(after.after, Some(41));
        let exact = parse_query(&pairs(&[("severity", "severe, minor,severe")]), &tree);
        let exact = exact.expect("a list of levels").severities;
        assert_eq!(
            exact,
            [Severity::Severe, Severity::Minor],
            "each once, in order"
        );
        for (name, value) in [
            ("region", "3301"),
            ("region", "110000"),
            ("kind", "food,,market"),
            ("min_severity", "Severe"),
            ("limit", "0"),
            ("limit", "501"),
            ("cursor", "abc"),
            ("after", "-1"),
            ("after", "12x"),
            ("severity", "high"),
            ("severity", "Severe"),
            ("severity", "minor,,severe"),
            ("unknown", "1"),
        ] {
            let err = parse_query(&pairs(&[(name, value)]), &tree).expect_err(name);
            assert_eq!(err.parameter(), Some(name), "{name}={value}");
        }
        let twice = parse_query(&pairs(&[("kind", "food"), ("kind", "market")]), &tree);
        assert_eq!(twice.expect_err("twice").parameter(), Some("kind"));
        let reversed = parse_query(&pairs(&[("from", "200"), ("to", "100")]), &tree);
        assert_eq!(reversed.expect_err("reversed").parameter(), Some("from"));
    }
}
