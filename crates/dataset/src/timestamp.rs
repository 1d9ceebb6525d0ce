//! Timestamp parsing: ISO 8601-like text (fast path, no allocation), a
//! `strftime` format given by the user, and epoch numbers in s, ms, us or ns.
//! Every result is milliseconds since the Unix epoch, UTC; text without an
//! offset is taken as UTC.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// The earliest timestamp an input may hold: 0001-01-01 00:00:00 UTC, in ms.
pub const MIN_MS: i64 = -62_135_596_800_000;
/// The latest: 9999-12-31 23:59:59.999 UTC. Inside these bounds any difference
/// or sum of two timestamps fits in an `i64` many times over.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Unit of epoch-number timestamps.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampUnit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "ns")]
    Nanos,
}

impl FromStr for TimestampUnit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "s" => Ok(TimestampUnit::Seconds),
            "ms" => Ok(TimestampUnit::Millis),
            "us" => Ok(TimestampUnit::Micros),
            "ns" => Ok(TimestampUnit::Nanos),
            other => Err(format!("unknown timestamp unit `{other}` (expected s, ms, us or ns)")),
        }
    }
}

impl TimestampUnit {
    /// Guess the unit from one value: seconds until the year 5138, then ms,
    /// us and ns by magnitude (epoch numbers of 1973 or later).
    pub fn detect(sample: f64) -> TimestampUnit {
        match sample.abs() {
            v if v < 1e11 => TimestampUnit::Seconds,
            v if v < 1e14 => TimestampUnit::Millis,
            v if v < 1e17 => TimestampUnit::Micros,
            _ => TimestampUnit::Nanos,
        }
    }

    /// An epoch number in this unit as milliseconds (rounded), or `None` when
    /// it is not finite or out of range.
    pub fn to_ms(self, v: f64) -> Option<i64> {
        let ms = self.scale_to_ms(v);
        (ms.is_finite() && (MIN_MS as f64..=MAX_MS as f64).contains(&ms)).then_some(ms as i64)
    }

    /// An epoch number in this unit as (rounded) milliseconds, unchecked.
    pub fn scale_to_ms(self, v: f64) -> f64 {
        match self {
            TimestampUnit::Seconds => v * 1e3,
            TimestampUnit::Millis => v,
            TimestampUnit::Micros => v / 1e3,
            TimestampUnit::Nanos => v / 1e6,
        }
        .round()
    }

    /// Integer epoch in this unit as milliseconds (exact for ms and coarser).
    pub fn int_to_ms(self, v: i64) -> i64 {
        match self {
            TimestampUnit::Seconds => v.saturating_mul(1000),
            TimestampUnit::Millis => v,
            TimestampUnit::Micros => v.div_euclid(1000),
            TimestampUnit::Nanos => v.div_euclid(1_000_000),
        }
    }
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// A fixed number of ASCII digits at `b[at..at+n]`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64))
}

/// `YYYY-MM-DD` (or `YYYY/MM/DD`), optionally followed by `T` or a space,
/// `HH:MM`, `:SS`, a fraction, and `Z` or an offset `±HH[:MM]`.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let year = digits(b, 0, 4)?;
    let sep = *b.get(4)?;
    if (sep != b'-' && sep != b'/') || b.get(7) != Some(&sep) {
        return None;
    }
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut i = 10;
    let mut ms_of_day = 0i64;
    if matches!(b.get(i), Some(b'T' | b't' | b' ')) {
        let (h, m) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
        if b.get(i + 3) != Some(&b':') || h > 23 || m > 59 {
            return None;
        }
        i += 6;
        let mut sec = 0;
        if b.get(i) == Some(&b':') {
            sec = digits(b, i + 1, 2)?;
            if sec > 59 {
                return None;
            }
            i += 3;
            if matches!(b.get(i), Some(b'.' | b',')) {
                i += 1;
                let start = i;
                let mut frac_ms = 0i64;
                while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                    if i - start < 3 {
                        frac_ms = frac_ms * 10 + (c - b'0') as i64;
                    }
                    i += 1;
                }
                if i == start {
                    return None;
                }
                for _ in (i - start)..3 {
                    frac_ms *= 10;
                }
                ms_of_day += frac_ms;
            }
        }
        ms_of_day += ((h * 60 + m) * 60 + sec) * 1000;
    }
    let mut offset_ms = 0i64;
    match b.get(i) {
        None => {}
        Some(b'Z' | b'z') => i += 1,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)?;
            i += 3;
            let mut om = 0;
            if b.get(i) == Some(&b':') {
                i += 1;
            }
            if let Some(m) = digits(b, i, 2) {
                om = m;
                i += 2;
            }
            if oh > 23 || om > 59 {
                return None;
            }
            offset_ms = (oh * 60 + om) * 60_000 * if sign == b'+' { 1 } else { -1 };
        }
        Some(_) => return None,
    }
    if i != b.len() {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400_000 + ms_of_day - offset_ms)
}

/// Parse with a chrono `strftime` format: with an offset (`%z`), as a naive
/// date-time (UTC), or as a date (midnight UTC).
pub fn parse_with_format(s: &str, format: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_str(s, format) {
        return Some(dt.timestamp_millis());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, format) {
        return Some(dt.and_utc().timestamp_millis());
    }
    NaiveDate::parse_from_str(s, format)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrono_ms(s: &str) -> i64 {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap().and_utc().timestamp_millis()
    }

    #[test]
    fn iso_variants_agree_with_chrono() {
        let want = chrono_ms("2018-03-28 15:56:00");
        for s in [
            "2018-03-28 15:56:00",
            "2018-03-28T15:56:00",
            "2018-03-28T15:56:00Z",
            "2018/03/28 15:56:00",
            "2018-03-28 15:56",
            " 2018-03-28 15:56:00.000 ",
            "2018-03-28T17:56:00+02:00",
            "2018-03-28T14:56:00-0100",
            "2018-03-28 16:56:00+01",
        ] {
            assert_eq!(parse_iso(s), Some(want), "{s}");
        }
        assert_eq!(parse_iso("2018-03-28 15:56:00.25"), Some(want + 250));
        assert_eq!(parse_iso("2018-03-28 15:56:00.123456789"), Some(want + 123));
        assert_eq!(parse_iso("2018-03-28"), Some(chrono_ms("2018-03-28 00:00:00")));
        assert_eq!(parse_iso("1969-12-31 23:59:59"), Some(-1000));
        assert_eq!(parse_iso("2024-02-29 00:00:00"), Some(chrono_ms("2024-02-29 00:00:00")));
        for day in [0, 1000, 20_000, 40_000] {
            let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(day);
            assert_eq!(parse_iso(&d.to_string()), Some(day as i64 * 86_400_000), "{d}");
        }
    }

    #[test]
    fn iso_rejects_what_is_not_a_date() {
        for s in [
            "",
            "abc",
            "2018-13-01",
            "2023-02-29",
            "2018-03-28 25:00",
            "2018-03-28 15:56:00 extra",
            "28/03/2018 15:56",
            "2018-03-28 15:56:00.",
            "1522252560",
        ] {
            assert_eq!(parse_iso(s), None, "{s}");
        }
    }

    #[test]
    fn formats_and_units() {
        let want = chrono_ms("2018-03-28 15:56:00");
        assert_eq!(parse_with_format("28/03/2018 15:56", "%d/%m/%Y %H:%M"), Some(want));
        assert_eq!(parse_with_format("28.03.2018 17:56 +0200", "%d.%m.%Y %H:%M %z"), Some(want));
        assert_eq!(parse_with_format("2018-03-28", "%Y-%m-%d"), Some(chrono_ms("2018-03-28 00:00:00")));
        assert_eq!(parse_with_format("x", "%Y"), None);
        let secs = (want / 1000) as f64;
        assert_eq!(TimestampUnit::detect(secs), TimestampUnit::Seconds);
        assert_eq!(TimestampUnit::detect(want as f64), TimestampUnit::Millis);
        assert_eq!(TimestampUnit::detect(want as f64 * 1e3), TimestampUnit::Micros);
        assert_eq!(TimestampUnit::detect(want as f64 * 1e6), TimestampUnit::Nanos);
        assert_eq!(TimestampUnit::Seconds.to_ms(secs), Some(want));
        assert_eq!(TimestampUnit::Nanos.int_to_ms(want * 1_000_000 + 7), want);
        assert_eq!(TimestampUnit::Seconds.to_ms(f64::NAN), None);
        assert_eq!("us".parse::<TimestampUnit>(), Ok(TimestampUnit::Micros));
        assert!("days".parse::<TimestampUnit>().is_err());
    }
}
