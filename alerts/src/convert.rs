//! The two vocabularies of an alert's kind, severity and message type, and the mapping between
//! them.
//!
//! [`cap`] speaks the wire model: CAP 1.2 spellings (`Severe`, `Update`) and
//! hubcast's `hubcast:kind` event-code values, with descriptive variant names
//! ([`cap::AlertKind::FoodSafety`]). [`hub`] speaks the delivery vocabulary: the
//! short lowercase names of query strings (`kind=food`, `min_severity=severe`) and compact
//! `repr(u8)` enums for per-kind arrays. Both name the same four kinds and five severities, so
//! those maps are total and invertible; the hub has no `Ack` or `Error` (they are not public
//! messages), so the message-type map is a [`TryFrom`] that names what it refused.
//!
//! The store indexes and the HTTP layer filters in the hub's vocabulary; XML and JSON go out
//! in CAP's.

use crate::{cap, hub};

impl From<cap::AlertKind> for hub::AlertKind {
    fn from(kind: cap::AlertKind) -> hub::AlertKind {
        match kind {
            cap::AlertKind::FoodSafety => hub::AlertKind::Food,
            cap::AlertKind::SpotCheck => hub::AlertKind::SpotCheck,
            cap::AlertKind::ConsumerWarning => hub::AlertKind::Consumer,
            cap::AlertKind::MarketTesting => hub::AlertKind::Market,
        }
    }
}

impl From<hub::AlertKind> for cap::AlertKind {
    fn from(kind: hub::AlertKind) -> cap::AlertKind {
        match kind {
            hub::AlertKind::Food => cap::AlertKind::FoodSafety,
            hub::AlertKind::SpotCheck => cap::AlertKind::SpotCheck,
            hub::AlertKind::Consumer => cap::AlertKind::ConsumerWarning,
            hub::AlertKind::Market => cap::AlertKind::MarketTesting,
        }
    }
}

impl From<cap::Severity> for hub::Severity {
    fn from(severity: cap::Severity) -> hub::Severity {
        match severity {
            cap::Severity::Unknown => hub::Severity::Unknown,
            cap::Severity::Minor => hub::Severity::Minor,
            cap::Severity::Moderate => hub::Severity::Moderate,
            cap::Severity::Severe => hub::Severity::Severe,
            cap::Severity::Extreme => hub::Severity::Extreme,
        }
    }
}

impl From<hub::Severity> for cap::Severity {
    fn from(severity: hub::Severity) -> cap::Severity {
        match severity {
            hub::Severity::Unknown => cap::Severity::Unknown,
            hub::Severity::Minor => cap::Severity::Minor,
            hub::Severity::Moderate => cap::Severity::Moderate,
            hub::Severity::Severe => cap::Severity::Severe,
            hub::Severity::Extreme => cap::Severity::Extreme,
        }
    }
}

/// A CAP `msgType` the hub does not fan out (`Ack`, `Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("msgType {0} is not a public message: only Alert, Update and Cancel are published")]
pub struct NotPublic(pub cap::MsgType);

impl TryFrom<cap::MsgType> for hub::MsgType {
    type Error = NotPublic;
    fn try_from(msg_type: cap::MsgType) -> Result<hub::MsgType, NotPublic> {
        match msg_type {
            cap::MsgType::Alert => Ok(hub::MsgType::Alert),
            cap::MsgType::Update => Ok(hub::MsgType::Update),
            cap::MsgType::Cancel => Ok(hub::MsgType::Cancel),
            other @ (cap::MsgType::Ack | cap::MsgType::Error) => Err(NotPublic(other)),
        }
    }
}

impl From<hub::MsgType> for cap::MsgType {
    fn from(msg_type: hub::MsgType) -> cap::MsgType {
        match msg_type {
            hub::MsgType::Alert => cap::MsgType::Alert,
            hub::MsgType::Update => cap::MsgType::Update,
            hub::MsgType::Cancel => cap::MsgType::Cancel,
        }
    }
}

/// The CAP spelling of a hub message type (`Alert`, `Update`, `Cancel`), as the store keeps it.
pub fn msg_type_str(msg_type: hub::MsgType) -> &'static str {
    cap::MsgType::from(msg_type).as_str()
}

/// Parses the CAP spelling of a message type the hub fans out; `None` for anything else.
pub fn parse_msg_type(s: &str) -> Option<hub::MsgType> {
    s.parse::<cap::MsgType>()
        .ok()
        .and_then(|m| hub::MsgType::try_from(m).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_one_to_one_and_keep_their_wire_names() {
        for &k in cap::AlertKind::ALL {
            let h = hub::AlertKind::from(k);
            assert_eq!(
                h.as_str(),
                k.as_str(),
                "one `hubcast:kind` value, one query name"
            );
            assert_eq!(cap::AlertKind::from(h), k);
        }
        let all: hub::KindSet = cap::AlertKind::ALL.iter().map(|&k| k.into()).collect();
        assert_eq!(all, hub::KindSet::ALL);
    }

    #[test]
    fn severities_map_one_to_one_and_keep_their_order() {
        for &a in cap::Severity::ALL {
            let h = hub::Severity::from(a);
            assert_eq!(h.as_str(), a.as_str().to_ascii_lowercase());
            assert_eq!(h as u8, a.rank());
            assert_eq!(cap::Severity::from(h), a);
            for &b in cap::Severity::ALL {
                assert_eq!(a.cmp(&b), h.cmp(&hub::Severity::from(b)));
            }
        }
    }

    #[test]
    fn only_public_message_types_reach_the_hub() {
        for &m in cap::MsgType::ALL {
            match hub::MsgType::try_from(m) {
                Ok(h) => {
                    assert_eq!(cap::MsgType::from(h), m);
                    assert_eq!(parse_msg_type(msg_type_str(h)), Some(h));
                }
                Err(NotPublic(refused)) => {
                    assert!(matches!(refused, cap::MsgType::Ack | cap::MsgType::Error));
                    assert_eq!(parse_msg_type(m.as_str()), None);
                }
            }
        }
        let err = hub::MsgType::try_from(cap::MsgType::Ack).expect_err("not public");
        assert!(err.to_string().contains("Ack"), "{err}");
    }
}
