// SPDX-License-Identifier: AGPL-3.0-or-later
//! Capture time: microseconds since the Unix epoch, from the frame to the record.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::two_digits;

/// Length of `2026-11-26T06:22:52.123456Z`.
pub const RFC3339_LEN: usize = 27;

/// Proleptic Gregorian (year, month, day) of a day counted from 1970-01-01, after Howard
/// Hinnant's `civil_from_days` (public domain, chrono.html).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A capture time: microseconds since the Unix epoch (UTC); serialised as RFC 3339 with
/// microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Earlier than any capture: a clock that has not started.
    pub const MIN: Self = Self(i64::MIN);
    /// Later than any capture: a deadline never reached.
    pub const MAX: Self = Self(i64::MAX);

    /// From seconds and microseconds since the epoch, as capture headers give them.
    pub fn from_parts(secs: i64, micros: i64) -> Self {
        Self(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// The wall clock now: the time a live source's frames carry.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Self(since.map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// This time moved on (or back) by `micros`.
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    /// Microseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn micros_since(self, earlier: Self) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `2026-11-26T06:22:52.123456Z`.
    pub fn to_rfc3339(self) -> String {
        self.format_rfc3339(&mut [0; RFC3339_LEN]).to_owned()
    }

    /// The RFC 3339 text written into `buf`, without allocating: sinks format millions.
    /// Years outside 0000–9999, which RFC 3339 cannot write, come out as `@<µs>us`.
    pub fn format_rfc3339(self, buf: &mut [u8; RFC3339_LEN]) -> &str {
        std::str::from_utf8(self.rfc3339_bytes(buf)).unwrap_or_default()
    }

    /// [`Timestamp::format_rfc3339`] as bytes (always ASCII), for writers that need no
    /// `&str` and so no UTF-8 check.
    pub fn rfc3339_bytes(self, buf: &mut [u8; RFC3339_LEN]) -> &[u8] {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000) as u64;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let of_day = secs.rem_euclid(86_400) as u64;
        if !(0..=9999).contains(&year) {
            let text = format!("@{}us", self.0);
            let n = text.len().min(RFC3339_LEN);
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            return &buf[..n];
        }
        let (year, month, day) = (year as u64, month as u64, day as u64);
        for (at, n) in [
            (0, year / 100),
            (2, year),
            (5, month),
            (8, day),
            (11, of_day / 3600),
            (14, of_day / 60 % 60),
            (17, of_day % 60),
            (20, micros / 10_000),
            (22, micros / 100),
            (24, micros),
        ] {
            // `two_digits` keeps the last two digits of `n`.
            buf[at..at + 2].copy_from_slice(&two_digits(n));
        }
        for (at, sep) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            buf[at] = sep;
        }
        buf[26] = b'Z';
        &buf[..]
    }

    /// `2026-11-26 06:22:52.123` (UTC, milliseconds): for tables people read.
    pub fn to_clock(self) -> String {
        let text = self.to_rfc3339();
        match (text.get(..10), text.get(11..23)) {
            (Some(day), Some(time)) => format!("{day} {time}"),
            _ => text,
        }
    }

    /// The inverse of [`Timestamp::to_rfc3339`] (any offset accepted).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1000)
            .ok()
            .map(Self)
    }

    /// Milliseconds from `earlier` to `self`, never negative.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        u64::try_from((self.0 - earlier.0).max(0) / 1000).unwrap_or(0)
    }
}

/// A time moved on by microseconds (saturating at the ends of time).
impl std::ops::Add<i64> for Timestamp {
    type Output = Self;

    fn add(self, micros: i64) -> Self {
        self.plus_micros(micros)
    }
}

/// Microseconds between two times.
impl std::ops::Sub for Timestamp {
    type Output = i64;

    fn sub(self, earlier: Self) -> i64 {
        self.micros_since(earlier)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.format_rfc3339(&mut [0; RFC3339_LEN]))
    }
}

/// Records are read back from the PostgreSQL spool, which holds them as JSON lines.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_with_microseconds() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Timestamp(1_764_138_172_123_456).to_rfc3339(),
            "2025-11-26T06:22:52.123456Z"
        );
        for t in [0, 1_764_138_172_123_456, -1] {
            assert_eq!(
                Timestamp::parse_rfc3339(&Timestamp(t).to_rfc3339()),
                Some(Timestamp(t))
            );
        }
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        // The hand-written calendar agrees with the time crate across four centuries,
        // leap days and the day before the epoch included.
        let mut us = -2_208_988_800_000_000i64; // 1900-01-01
        while us < 7_258_118_400_000_000 {
            let t = time::OffsetDateTime::from_unix_timestamp(us.div_euclid(1_000_000))
                .expect("in range");
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                us.rem_euclid(1_000_000)
            );
            assert_eq!(Timestamp(us).to_rfc3339(), expected);
            us += 86_399_999_999 + 3_600_000_001;
        }
        for far in [i64::MAX, i64::MIN] {
            assert_eq!(Timestamp(far).to_rfc3339(), format!("@{far}us"));
        }
        assert_eq!(Timestamp(2_500).millis_since(Timestamp(500)), 2);
        assert_eq!(Timestamp(0).millis_since(Timestamp(5_000)), 0);
    }
}
