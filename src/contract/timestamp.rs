//! RFC 3339 UTC timestamps with microsecond precision (`2026-11-28T14:03:07.123456Z`).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::UtcDateTime;

/// A point in time, kept as microseconds since the Unix epoch and always written as
/// RFC 3339 in UTC with six fractional digits and a `Z` suffix, as SPEC §1 requires.
/// An instant RFC 3339 cannot write (before year 0000 or after 9999) is written as the
/// nearest one it can.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`], truncating to microseconds.
    pub fn from_system_time(t: SystemTime) -> Self {
        // Seconds and sub-second micros apart: `as_micros` goes through a 128-bit product,
        // and this runs on the caller's thread for every event.
        let micros = |d: Duration| {
            (d.as_secs() as i64).saturating_mul(1_000_000) + i64::from(d.subsec_micros())
        };
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(micros(d)),
            Err(e) => Timestamp(-micros(e.duration())),
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// The time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_micros(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_micros(self.0.unsigned_abs())
        }
    }

    /// Parses the exact format this crate writes (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
    /// Other RFC 3339 forms (offsets, other precisions) are rejected on purpose: the wire
    /// contract allows only this one. A leap second (`:60`) reads as the first second of
    /// the next minute.
    pub fn parse(s: &str) -> Option<Self> {
        // The form is exactly 27 bytes; the length check also keeps out a signed year, which
        // `[year]` alone would take (`+2026`).
        if s.len() != TEXT_LEN {
            return None;
        }
        // `time` takes second 60 only in its own RFC 3339 parser, where it means 59.999999999:
        // read `:60` as `:59` and add the second.
        let mut leap_text = [0u8; TEXT_LEN];
        let (text, leap_micros) = if &s.as_bytes()[17..19] == b"60" {
            leap_text.copy_from_slice(s.as_bytes());
            leap_text[17..19].copy_from_slice(b"59");
            (std::str::from_utf8(&leap_text).ok()?, 1_000_000)
        } else {
            (s, 0)
        };
        let t = UtcDateTime::parse(text, FORMAT).ok()?;
        Some(Timestamp(
            t.unix_timestamp() * 1_000_000 + i64::from(t.microsecond()) + leap_micros,
        ))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the only form the wire contract allows.
const FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// The length of [`FORMAT`]'s text.
const TEXT_LEN: usize = 27;

/// The instants RFC 3339 can write, `0000-01-01T00:00:00.000000Z ..= 9999-12-31T23:59:59.999999Z`
/// (its four-digit years); others are written as the nearest end.
const RFC3339_MICROS: RangeInclusive<i64> = -62_167_219_200_000_000..=253_402_300_799_999_999;

impl Timestamp {
    /// The RFC 3339 text of this instant (clamped to the range RFC 3339 can write), in a
    /// buffer with its length; `None` only if `time` refused an in-range instant.
    fn text(&self) -> Option<([u8; TEXT_LEN], usize)> {
        let micros = self.0.clamp(*RFC3339_MICROS.start(), *RFC3339_MICROS.end());
        // Within that range neither step fails.
        let t = UtcDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
            .and_then(|t| t.replace_microsecond(micros.rem_euclid(1_000_000) as u32))
            .ok()?;
        let mut text = [0u8; TEXT_LEN];
        let len = t.format_into(&mut text.as_mut_slice(), FORMAT).ok()?;
        Some((text, len))
    }

    /// Appends the text of [`Timestamp`]'s `Display` to `out`, without going through
    /// `fmt` (the worker writes one per envelope).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        if let Some((text, len)) = self.text() {
            out.extend_from_slice(&text[..len]);
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, len) = self.text().ok_or(fmt::Error)?;
        f.write_str(std::str::from_utf8(&text[..len]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{s}` is not an RFC 3339 UTC timestamp with microseconds (YYYY-MM-DDTHH:MM:SS.ffffffZ)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_795_874_587_123_456, "2026-11-28T14:03:07.123456Z"),
            (951_782_400_000_001, "2000-02-29T00:00:00.000001Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
        ];
        for (micros, text) in cases {
            assert_eq!(Timestamp(micros).to_string(), text);
            assert_eq!(Timestamp::parse(text), Some(Timestamp(micros)), "{text}");
        }
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "2026-11-28T14:03:07Z",
            "2026-11-28T14:03:07.123Z",
            "2026-11-28T14:03:07.123456+00:00",
            "2026-02-30T14:03:07.123456Z",
            "2026-13-01T14:03:07.123456Z",
            "2026-11-28 14:03:07.123456Z",
            "not a time at all, no sir",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn now_round_trips() {
        let t = Timestamp::now();
        assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
    }

    #[test]
    fn formats_exactly_as_before() {
        // Written by the hand-rolled civil-date code this module used before `time`.
        let cases = [
            (-62_167_219_200_000_000, "0000-01-01T00:00:00.000000Z"),
            (-62_135_596_800_000_000, "0001-01-01T00:00:00.000000Z"),
            (-11_670_976_371_909_193, "1600-02-29T06:07:08.090807Z"),
            (-2_208_988_800_000_001, "1899-12-31T23:59:59.999999Z"),
            (-2_203_891_200_000_001, "1900-02-28T23:59:59.999999Z"),
            (-2_203_891_200_000_000, "1900-03-01T00:00:00.000000Z"),
            (-14_182_940_000_000, "1969-07-20T20:17:40.000000Z"),
            (68_212_800_500_000, "1972-02-29T12:00:00.500000Z"),
            (1_709_251_199_999_999, "2024-02-29T23:59:59.999999Z"),
            (2_147_483_648_000_000, "2038-01-19T03:14:08.000000Z"),
            (4_107_542_400_000_001, "2100-03-01T00:00:00.000001Z"),
            (253_402_300_799_999_999, "9999-12-31T23:59:59.999999Z"),
        ];
        for (micros, text) in cases {
            assert_eq!(Timestamp(micros).to_string(), text);
            assert_eq!(Timestamp::parse(text), Some(Timestamp(micros)), "{text}");
        }
    }

    #[test]
    fn leap_second_reads_as_the_next_minutes_first() {
        for (leap, next) in [
            ("2016-12-31T23:59:60.000000Z", "2017-01-01T00:00:00.000000Z"),
            ("2026-11-28T14:03:60.123456Z", "2026-11-28T14:04:00.123456Z"),
        ] {
            assert_eq!(Timestamp::parse(leap), Timestamp::parse(next), "{leap}");
            assert!(Timestamp::parse(next).is_some());
        }
    }

    #[test]
    fn rejects_signed_years_bad_fields_and_other_letters() {
        for bad in [
            "+2026-11-28T14:03:07.123456Z",
            "-0001-12-31T23:59:59.999999Z",
            "2026-11-28T24:00:00.000000Z",
            "1900-02-29T00:00:00.000000Z",
            "2026-11-28T14:03:61.000000Z",
            "2026-11-28t14:03:07.123456Z",
            "2026-11-28T14:03:07.123456z",
            "2026-11-28T14:03:07.1234\u{e9}Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn instants_rfc3339_cannot_write_are_written_as_the_nearest_end() {
        let (first, last) = ("0000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z");
        for (micros, text) in [
            (i64::MIN, first),
            (RFC3339_MICROS.start() - 1, first),
            (RFC3339_MICROS.end() + 1, last),
            (i64::MAX, last),
        ] {
            assert_eq!(Timestamp(micros).to_string(), text);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2048,
            failure_persistence: None,
            ..Default::default()
        })]

        /// A system time truncates to microseconds toward the epoch, as `as_micros` does,
        /// on both sides of it.
        #[test]
        fn system_times_truncate_like_as_micros(nanos in -(1i64 << 62)..(1i64 << 62)) {
            let d = Duration::from_nanos(nanos.unsigned_abs());
            let (t, expected) = if nanos >= 0 {
                (UNIX_EPOCH + d, d.as_micros() as i64)
            } else {
                (UNIX_EPOCH - d, -(d.as_micros() as i64))
            };
            proptest::prop_assert_eq!(Timestamp::from_system_time(t).as_micros(), expected);
        }

        #[test]
        fn format_then_parse_round_trips(micros in RFC3339_MICROS) {
            let text = Timestamp(micros).to_string();
            let b = text.as_bytes();
            proptest::prop_assert_eq!(b.len(), 27, "{}", text);
            for (i, c) in b.iter().enumerate() {
                let expected = match i {
                    4 | 7 => b'-',
                    10 => b'T',
                    13 | 16 => b':',
                    19 => b'.',
                    26 => b'Z',
                    _ => b'0',
                };
                if expected == b'0' {
                    proptest::prop_assert!(c.is_ascii_digit(), "{}", text);
                } else {
                    proptest::prop_assert_eq!(*c, expected, "{}", text);
                }
            }
            proptest::prop_assert_eq!(Timestamp::parse(&text), Some(Timestamp(micros)));
        }

        #[test]
        fn any_instant_writes_a_parseable_text(micros: i64) {
            let text = Timestamp(micros).to_string();
            let clamped = micros.clamp(*RFC3339_MICROS.start(), *RFC3339_MICROS.end());
            proptest::prop_assert_eq!(Timestamp::parse(&text), Some(Timestamp(clamped)));
        }
    }
}
