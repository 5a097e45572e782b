//! CAP 1.2 dateTime ([`CapDateTime`]) and a calendar [`Date`], with the date arithmetic done here
//! (Howard Hinnant's `days_from_civil` / `civil_from_days`); nothing reads a clock.
//!
//! CAP restricts `xs:dateTime` to `YYYY-MM-DDThh:mm:ss±hh:mm`: no fractional seconds, and an
//! explicit numeric offset (`Z` is forbidden; UTC is written `-00:00`). The value keeps the offset
//! it was written with, so writing it back gives the same text; comparisons go through
//! [`CapDateTime::unix_seconds`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a dateTime or date string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` {reason}")]
pub struct DateTimeError {
    /// The rejected input (clipped).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A calendar date `YYYY-MM-DD` (proleptic Gregorian, years 1–9999), e.g. a 公告日期.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// A CAP dateTime: a local date and time plus the UTC offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapDateTime {
    date: Date,
    hour: u8,
    minute: u8,
    second: u8,
    /// Offset east of UTC in minutes, -14:00..=+14:00.
    offset_minutes: i16,
    /// `-00:00` rather than `+00:00` (CAP's spelling of UTC); only meaningful at offset zero.
    minus_zero: bool,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses exactly `n` ASCII digits at `s[at..at + n]`.
fn digits(s: &[u8], at: usize, n: usize) -> Option<u16> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0u16, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u16::from(b - b'0'))
    })
}

impl Date {
    /// A checked date; `None` if the year is outside 1–9999 or the day does not exist.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let ok = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        ok.then_some(Date { year, month, day })
    }

    /// Year, month (1–12) and day (1–31).
    pub fn ymd(self) -> (u16, u8, u8) {
        (self.year, self.month, self.day)
    }

    /// Days since 1970-01-01 (negative before).
    pub fn days_since_epoch(self) -> i64 {
        days_from_civil(self.year.into(), self.month.into(), self.day.into())
    }

    fn parse_bytes(b: &[u8]) -> Result<Self, &'static str> {
        let shape = b.len() >= 10 && b[4] == b'-' && b[7] == b'-';
        match (shape, digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2)) {
            (true, Some(y), Some(m), Some(d)) => {
                let (m, d) = (u8::try_from(m).unwrap_or(0), u8::try_from(d).unwrap_or(0));
                Date::new(y, m, d).ok_or("is not a real calendar date (years 0001-9999)")
            }
            _ => Err("is not a date of the form YYYY-MM-DD"),
        }
    }
}

impl FromStr for Date {
    type Err = DateTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DateTimeError {
            value: super::clip(s),
            reason,
        };
        if s.len() != 10 {
            return Err(err("is not a date of the form YYYY-MM-DD"));
        }
        Date::parse_bytes(s.as_bytes()).map_err(err)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl CapDateTime {
    /// The instant `unix_seconds` as seen at `offset_minutes` east of UTC (-840..=840). UTC
    /// (offset 0) is written `-00:00`, as CAP asks. `None` outside years 1–9999 or offsets.
    pub fn from_unix(unix_seconds: i64, offset_minutes: i16) -> Option<Self> {
        if !(-840..=840).contains(&offset_minutes) {
            return None;
        }
        let local = unix_seconds.checked_add(i64::from(offset_minutes) * 60)?;
        let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let date = Date::new(
            u16::try_from(y).ok()?,
            u8::try_from(m).ok()?,
            u8::try_from(d).ok()?,
        )?;
        Some(CapDateTime {
            date,
            hour: u8::try_from(secs / 3600).ok()?,
            minute: u8::try_from(secs % 3600 / 60).ok()?,
            second: u8::try_from(secs % 60).ok()?,
            offset_minutes,
            minus_zero: offset_minutes == 0,
        })
    }

    /// Seconds since 1970-01-01T00:00:00 UTC: the value to compare instants with.
    pub fn unix_seconds(&self) -> i64 {
        self.date.days_since_epoch() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - i64::from(self.offset_minutes) * 60
    }

    /// The offset east of UTC in minutes (`+08:00` is 480).
    pub fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }

    /// The local calendar date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// Local hour, minute and second.
    pub fn hms(&self) -> (u8, u8, u8) {
        (self.hour, self.minute, self.second)
    }
}

impl FromStr for CapDateTime {
    type Err = DateTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DateTimeError {
            value: super::clip(s),
            reason,
        };
        let b = s.as_bytes();
        if b.len() == 20 && b[19] == b'Z' {
            return Err(err(
                "uses `Z`; CAP requires a numeric offset (`-00:00` for UTC)",
            ));
        }
        if b.len() > 19 && b[19] == b'.' {
            return Err(err("has fractional seconds, which CAP does not allow"));
        }
        let shape = b.len() == 25
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && matches!(b[19], b'+' | b'-')
            && b[22] == b':';
        let fields = (
            digits(b, 11, 2),
            digits(b, 14, 2),
            digits(b, 17, 2),
            digits(b, 20, 2),
            digits(b, 23, 2),
        );
        let (Some(hh), Some(mi), Some(ss), Some(oh), Some(om)) = fields else {
            return Err(err("is not of the form YYYY-MM-DDThh:mm:ss+hh:mm"));
        };
        if !shape {
            return Err(err("is not of the form YYYY-MM-DDThh:mm:ss+hh:mm"));
        }
        let date = Date::parse_bytes(b).map_err(err)?;
        if hh > 23 || mi > 59 || ss > 59 {
            return Err(err("has a time of day outside 00:00:00-23:59:59"));
        }
        if oh > 14 || om > 59 || (oh == 14 && om > 0) {
            return Err(err("has a UTC offset outside -14:00..+14:00"));
        }
        let magnitude = i16::try_from(oh * 60 + om).unwrap_or(0);
        let negative = b[19] == b'-';
        Ok(CapDateTime {
            date,
            hour: u8::try_from(hh).unwrap_or(0),
            minute: u8::try_from(mi).unwrap_or(0),
            second: u8::try_from(ss).unwrap_or(0),
            offset_minutes: if negative { -magnitude } else { magnitude },
            minus_zero: negative && magnitude == 0,
        })
    }
}

impl fmt::Display for CapDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.offset_minutes < 0 || (self.offset_minutes == 0 && self.minus_zero) {
            '-'
        } else {
            '+'
        };
        let off = self.offset_minutes.unsigned_abs();
        write!(
            f,
            "{}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
            self.date,
            self.hour,
            self.minute,
            self.second,
            off / 60,
            off % 60
        )
    }
}

/// Serde as the display string, for both types.
macro_rules! serde_as_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_string!(Date);
serde_as_string!(CapDateTime);

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> CapDateTime {
        s.parse().expect("valid dateTime")
    }

    #[test]
    fn parses_keeps_offset_and_compares_in_unix_seconds() {
        let a = dt("2024-05-10T09:30:00+08:00");
        assert_eq!(a.unix_seconds(), 1_715_304_600);
        assert_eq!(a.to_string(), "2024-05-10T09:30:00+08:00");
        let b = dt("2024-05-10T01:30:00-00:00");
        assert_eq!(b.unix_seconds(), a.unix_seconds());
        assert_eq!(b.to_string(), "2024-05-10T01:30:00-00:00");
        assert_eq!(
            dt("2024-05-10T01:30:00+00:00").to_string(),
            "2024-05-10T01:30:00+00:00"
        );
        assert_eq!(dt("1969-12-31T23:59:59-00:00").unix_seconds(), -1);
        assert_eq!(dt("2000-02-29T00:00:00-05:30").unix_seconds(), 951_802_200);
    }

    #[test]
    fn rejects_everything_cap_forbids() {
        for bad in [
            "2024-05-10T01:30:00Z",
            "2024-05-10T01:30:00.5+08:00",
            "2024-05-10 01:30:00+08:00",
            "2024-05-10T01:30+08:00",
            "2024-02-30T01:30:00+08:00",
            "2023-02-29T01:30:00+08:00",
            "0000-01-01T00:00:00+00:00",
            "2024-05-10T24:00:00+08:00",
            "2024-05-10T01:30:60+08:00",
            "2024-05-10T01:30:00+14:30",
            "2024-05-10T01:30:00+0800",
            "2024-05-10T01:30:00+08:00 ",
            "２０２４-05-10T01:30:00+08:00",
            "",
        ] {
            assert!(bad.parse::<CapDateTime>().is_err(), "{bad}");
        }
    }

    #[test]
    fn from_unix_inverts_unix_seconds() {
        for secs in [0i64, -1, 951_802_200, 1_715_304_600, 253_402_200_000] {
            for off in [0i16, 480, -330, 840] {
                let v = CapDateTime::from_unix(secs, off).expect("in range");
                assert_eq!(v.unix_seconds(), secs);
                assert_eq!(dt(&v.to_string()), v);
            }
        }
        assert!(CapDateTime::from_unix(253_402_300_800, 0).is_none());
        assert_eq!(
            CapDateTime::from_unix(0, 0)
                .map(|v| v.to_string())
                .as_deref(),
            Some("1970-01-01T00:00:00-00:00")
        );
    }
}
