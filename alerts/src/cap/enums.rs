//! The closed value sets of CAP 1.2: `status`, `msgType`, `scope`, `category`, `responseType`,
//! `urgency`, `severity` and `certainty`, each a Rust enum spelled on the wire exactly as the
//! schema spells it (case-sensitive, as `xs:string` enumerations are).
//!
//! [`Severity`] is ordered by gravity (`Unknown < Minor < Moderate < Severe < Extreme`) so a
//! `min_severity` filter is `alert_severity >= min`; the CAP spelling order is [`Severity::ALL`].

/// A string that is not one of an enumeration's allowed values. Callers turn it into a
/// [`CapError::BadEnum`](super::CapError::BadEnum) with the element path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not one of: {}", allowed.join(", "))]
pub struct UnknownValue {
    /// The rejected input.
    pub value: String,
    /// The values the element allows, in schema order.
    pub allowed: &'static [&'static str],
}

/// Declares a CAP enumeration: variants with their wire names, `ALL`, `NAMES`, `as_str`,
/// `FromStr`, `Display` and serde as the wire string.
macro_rules! cap_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the CAP 1.2 schema lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The wire names, in the order the CAP 1.2 schema lists them.
            pub const NAMES: &'static [&'static str] = &[$($wire,)+];

            /// The wire name, exactly as CAP 1.2 spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::cap::enums::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::cap::enums::UnknownValue { value: $crate::cap::clip(s), allowed: Self::NAMES }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use cap_enum;

cap_enum! {
    /// `alert/status`: the handling code of the message.
    Status {
        /// Actionable by all targeted recipients.
        Actual = "Actual",
        /// Actionable only by designated exercise participants.
        Exercise = "Exercise",
        /// For messages that support alert network internal functions.
        System = "System",
        /// Technical testing only; all recipients disregard.
        Test = "Test",
        /// A preliminary template or draft, not actionable in its current form.
        Draft = "Draft",
    }
}

cap_enum! {
    /// `alert/msgType`: the nature of the message. Update, Cancel, Ack and Error name earlier
    /// messages in `references`.
    MsgType {
        /// Initial information requiring attention by targeted recipients.
        Alert = "Alert",
        /// Updates and supersedes the earlier message(s) in `references`.
        Update = "Update",
        /// Cancels the earlier message(s) in `references`.
        Cancel = "Cancel",
        /// Acknowledges receipt and acceptance of the message(s) in `references`.
        Ack = "Ack",
        /// Rejects the message(s) in `references`; explanation in `note`.
        Error = "Error",
    }
}

cap_enum! {
    /// `alert/scope`: the intended distribution.
    Scope {
        /// For general dissemination to unrestricted audiences.
        Public = "Public",
        /// For users with a known operational requirement (see `restriction`).
        Restricted = "Restricted",
        /// For specified addresses only (see `addresses`).
        Private = "Private",
    }
}

cap_enum! {
    /// `info/category`: the category of the subject event. Food safety is `Health` (and
    /// `Safety` where the hazard is physical).
    Category {
        /// Geophysical (including landslide).
        Geo = "Geo",
        /// Meteorological (including flood).
        Met = "Met",
        /// General emergency and public safety.
        Safety = "Safety",
        /// Law enforcement, military, homeland and local/private security.
        Security = "Security",
        /// Rescue and recovery.
        Rescue = "Rescue",
        /// Fire suppression and rescue.
        Fire = "Fire",
        /// Medical and public health.
        Health = "Health",
        /// Pollution and other environmental.
        Env = "Env",
        /// Public and private transportation.
        Transport = "Transport",
        /// Utility, telecommunication, other non-transport infrastructure.
        Infra = "Infra",
        /// Chemical, biological, radiological, nuclear or high-yield explosive threat or attack.
        Cbrne = "CBRNE",
        /// Other events.
        Other = "Other",
    }
}

cap_enum! {
    /// `info/responseType`: the recommended type of action.
    ResponseType {
        /// Take shelter in place.
        Shelter = "Shelter",
        /// Relocate as instructed.
        Evacuate = "Evacuate",
        /// Make preparations.
        Prepare = "Prepare",
        /// Execute a pre-planned activity.
        Execute = "Execute",
        /// Avoid the subject event.
        Avoid = "Avoid",
        /// Attend to information sources.
        Monitor = "Monitor",
        /// Evaluate the information in this message.
        Assess = "Assess",
        /// The subject event no longer poses a threat.
        AllClear = "AllClear",
        /// No action recommended.
        None = "None",
    }
}

cap_enum! {
    /// `info/urgency`: how soon responsive action should be taken.
    Urgency {
        /// Responsive action should be taken immediately.
        Immediate = "Immediate",
        /// Responsive action should be taken soon (within the next hour).
        Expected = "Expected",
        /// Responsive action should be taken in the near future.
        Future = "Future",
        /// Responsive action is no longer required.
        Past = "Past",
        /// Urgency not known.
        Unknown = "Unknown",
    }
}

cap_enum! {
    /// `info/severity`: the gravity of the threat. Ordered by gravity, see the module docs;
    /// China's four warning levels map onto it through [`WarningLevel`](super::WarningLevel).
    Severity {
        /// Extraordinary threat to life or property.
        Extreme = "Extreme",
        /// Significant threat to life or property.
        Severe = "Severe",
        /// Possible threat to life or property.
        Moderate = "Moderate",
        /// Minimal to no known threat to life or property.
        Minor = "Minor",
        /// Severity unknown.
        Unknown = "Unknown",
    }
}

cap_enum! {
    /// `info/certainty`: the certainty of the subject event.
    Certainty {
        /// Determined to have occurred or to be ongoing.
        Observed = "Observed",
        /// Likely (p > ~50%).
        Likely = "Likely",
        /// Possible but not likely (p <= ~50%).
        Possible = "Possible",
        /// Not expected to occur (p ~ 0).
        Unlikely = "Unlikely",
        /// Certainty unknown.
        Unknown = "Unknown",
    }
}

impl Severity {
    /// Gravity rank: `Unknown` 0, `Minor` 1, `Moderate` 2, `Severe` 3, `Extreme` 4.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Unknown => 0,
            Severity::Minor => 1,
            Severity::Moderate => 2,
            Severity::Severe => 3,
            Severity::Extreme => 4,
        }
    }

    /// Parses a filter value case-insensitively (`moderate`, `Moderate`, `MODERATE`), as query
    /// strings such as `min_severity=moderate` spell it. CAP documents use
    /// [`FromStr`](std::str::FromStr).
    pub fn from_name_ignore_case(s: &str) -> Result<Self, UnknownValue> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownValue {
                value: super::clip(s),
                allowed: Self::NAMES,
            })
    }
}

impl PartialOrd for Severity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Severity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_reject_case_variants() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(*c));
        }
        assert_eq!("CBRNE".parse::<Category>(), Ok(Category::Cbrne));
        let err = "alert".parse::<MsgType>().expect_err("case matters");
        assert_eq!(err.allowed, MsgType::NAMES);
        assert!(
            err.to_string()
                .contains("Alert, Update, Cancel, Ack, Error")
        );
    }

    #[test]
    fn severity_orders_by_gravity() {
        assert!(Severity::Extreme > Severity::Severe);
        assert!(Severity::Severe > Severity::Moderate);
        assert!(Severity::Moderate > Severity::Minor);
        assert!(Severity::Minor > Severity::Unknown);
        let min = Severity::from_name_ignore_case("moderate").expect("known");
        let passing: Vec<_> = Severity::ALL.iter().filter(|s| **s >= min).collect();
        assert_eq!(passing.len(), 3);
    }
}
