//! [`RegionCode`], a checked GB/T 2260 six-digit code, and [`Level`], the tier it names.
//!
//! Codes are `PPCCDD`: a province ends in `0000` (330000 Zhejiang), a city in `00` (330100
//! Hangzhou), anything else is county-level (330106 Xihu District). The parent of a county is
//! `PPCC00`, of a city `PP0000`. Both facts are read off the digits; whether a code exists is a
//! question for a [`RegionTree`](super::RegionTree).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{RegionError, clip};

/// A GB/T 2260 administrative division code such as 330100. Serialized as the 6-digit string
/// `"330100"` (a string, so leading digits are never mangled and JSON stays unambiguous).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(u32);

/// The tier of a region. Ordered from the top: `Province < City < County`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A province (`PP0000`).
    Province,
    /// A prefecture-level city (`PPCC00`).
    City,
    /// A county-level division: district, county or county-level city (`PPCCDD`).
    County,
}

impl RegionCode {
    /// Parses exactly six ASCII digits. Rejects a zero province part (`00xxxx`) and a
    /// county-level code with a zero city part (`PP00DD`), which has no structural parent.
    pub fn parse(s: &str) -> Result<Self, RegionError> {
        let invalid = |reason| RegionError::InvalidCode {
            input: clip(s),
            reason,
        };
        let bytes = s.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(invalid("must be exactly six ASCII digits"));
        }
        let value = bytes
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        Self::from_u32(value).map_err(|_| {
            if value / 10_000 == 0 {
                invalid("the province part (digits 1-2) cannot be 00")
            } else {
                invalid("a county-level code needs a non-zero city part (digits 3-4)")
            }
        })
    }

    /// Checks a numeric code with the same rules as [`RegionCode::parse`].
    pub fn from_u32(value: u32) -> Result<Self, RegionError> {
        let invalid = |reason| RegionError::InvalidCode {
            input: value.to_string(),
            reason,
        };
        if !(10_000..1_000_000).contains(&value) {
            return Err(invalid(
                "must be a six-digit number with a non-zero province part",
            ));
        }
        if (value / 100).is_multiple_of(100) && !value.is_multiple_of(100) {
            return Err(invalid(
                "a county-level code needs a non-zero city part (digits 3-4)",
            ));
        }
        Ok(RegionCode(value))
    }

    /// The code as a number (330100).
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// The level the digits say: ends in `0000` province, in `00` city, else county.
    pub fn level(self) -> Level {
        if self.0.is_multiple_of(10_000) {
            Level::Province
        } else if self.0.is_multiple_of(100) {
            Level::City
        } else {
            Level::County
        }
    }

    /// The parent the digits name: `PPCC00` for a county, `PP0000` for a city, none for a
    /// province. Whether that parent exists is for a tree to say.
    pub fn structural_parent(self) -> Option<RegionCode> {
        match self.level() {
            Level::Province => None,
            Level::City => Some(RegionCode(self.0 / 10_000 * 10_000)),
            Level::County => Some(RegionCode(self.0 / 100 * 100)),
        }
    }
}

impl Level {
    /// Every level, top first.
    pub const ALL: [Level; 3] = [Level::Province, Level::City, Level::County];

    /// The level a parent of this level has (`County → City → Province`).
    pub fn above(self) -> Option<Level> {
        match self {
            Level::Province => None,
            Level::City => Some(Level::Province),
            Level::County => Some(Level::City),
        }
    }

    /// The lowercase name used on the wire: `province`, `city`, `county`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Province => "province",
            Level::City => "city",
            Level::County => "county",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({:06})", self.0)
    }
}

impl FromStr for RegionCode {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

impl TryFrom<u32> for RegionCode {
    type Error = RegionError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        RegionCode::from_u32(value)
    }
}

impl From<RegionCode> for u32 {
    fn from(code: RegionCode) -> u32 {
        code.0
    }
}

impl Serialize for RegionCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        RegionCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("valid code")
    }

    #[test]
    fn levels_and_structural_parents() {
        assert_eq!(code("330000").level(), Level::Province);
        assert_eq!(code("330100").level(), Level::City);
        assert_eq!(code("330106").level(), Level::County);
        assert_eq!(code("330106").structural_parent(), Some(code("330100")));
        assert_eq!(code("330100").structural_parent(), Some(code("330000")));
        assert_eq!(code("330000").structural_parent(), None);
        assert_eq!(code("331127").structural_parent(), Some(code("331100")));
    }

    #[test]
    fn rejects_malformed_codes() {
        for bad in [
            "",
            "33010",
            "3301000",
            "33a100",
            " 330100",
            "330100 ",
            "+33010",
            "-33010",
            "000000",
            "001100",
            "330006",
            "３３０１００",
            "33010\0",
        ] {
            assert!(
                RegionCode::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(RegionCode::from_u32(9_999).is_err());
        assert!(RegionCode::from_u32(1_000_000).is_err());
        assert_eq!(
            RegionCode::from_u32(330_106).map(RegionCode::as_u32),
            Ok(330_106)
        );
    }

    #[test]
    fn display_pads_and_serde_uses_strings() {
        let c = code("110101");
        assert_eq!(c.to_string(), "110101");
        assert_eq!(format!("{c:?}"), "RegionCode(110101)");
        assert_eq!(
            serde_json::to_string(&c).ok(),
            Some("\"110101\"".to_owned())
        );
        let back: Result<RegionCode, _> = serde_json::from_str("\"330100\"");
        assert_eq!(back.ok(), Some(code("330100")));
        assert!(
            serde_json::from_str::<RegionCode>("330100").is_err(),
            "numbers are not codes"
        );
        assert!(serde_json::from_str::<RegionCode>("\"33010x\"").is_err());
        assert_eq!("330100".parse::<RegionCode>().ok(), Some(code("330100")));
    }

    #[test]
    fn level_names() {
        assert_eq!(
            serde_json::to_string(&Level::County).ok(),
            Some("\"county\"".to_owned())
        );
        assert_eq!(Level::City.to_string(), "city");
        assert_eq!(Level::County.above(), Some(Level::City));
        assert_eq!(Level::Province.above(), None);
        assert!(Level::Province < Level::City && Level::City < Level::County);
    }

    #[test]
    fn long_input_is_clipped_in_errors() {
        let long = "9".repeat(10_000);
        let err = RegionCode::parse(&long)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.len() < 200, "{err}");
    }
}
