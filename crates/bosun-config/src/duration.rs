//! Durations as operators write them: `30s`, `5m`, `1h30m`, `500ms`, `1.5h`.
//!
//! The syntax is Go's `time.ParseDuration`, which Navarch configuration files use, plus `d`
//! for days (retention periods read better as `7d` than `168h`). A bare number is rejected:
//! `timeout: 30` could mean seconds or milliseconds, and guessing wrong by a factor of a
//! thousand is worse than asking for a unit. `0` alone is accepted, as in Go, because it
//! means the same in every unit.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ConfigError;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Unit suffixes and their length in nanoseconds.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("h", 3_600 * NANOS_PER_SECOND),
    ("d", 86_400 * NANOS_PER_SECOND),
];

const UNIT_HINT: &str = "units: ns, us, ms, s, m, h, d";

/// Fraction digits beyond this many are below a nanosecond for every unit, so they are
/// ignored rather than allowed to overflow the arithmetic.
const MAX_FRACTION_DIGITS: usize = 18;

const TOO_LONG: &str = "it is too long";

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    text: String,
    problem: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration {:?}: {}", self.text, self.problem)
    }
}

impl std::error::Error for DurationError {}

/// Parses `30s`, `1h30m`, `500ms`, `1.5h`, `7d` or `0`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |problem: String| DurationError { text: text.to_owned(), problem };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("it is empty; write e.g. 30s".to_owned()));
    }
    if trimmed.starts_with('-') {
        return Err(fail("it must not be negative".to_owned()));
    }
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let is_number_char = |c: char| c.is_ascii_digit() || c == '.';
    let mut nanos: u128 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_len = rest.find(|c| !is_number_char(c)).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(fail(format!("expected a number before {after:?}")));
        }
        let unit_len = after.find(is_number_char).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(fail(format!("{number} has no unit; write e.g. {number}s ({UNIT_HINT})")));
        }
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(fail(format!("unknown unit {unit:?} ({UNIT_HINT})")));
        };
        let part = match scale(number, unit_nanos) {
            Ok(part) => part,
            Err(ScaleError::Malformed) => return Err(fail(format!("{number:?} is not a number"))),
            Err(ScaleError::Overflow) => return Err(fail(TOO_LONG.to_owned())),
        };
        nanos = nanos.checked_add(part).ok_or_else(|| fail(TOO_LONG.to_owned()))?;
        rest = next;
    }
    let seconds = u64::try_from(nanos / NANOS_PER_SECOND).map_err(|_| fail(TOO_LONG.to_owned()))?;
    // The remainder of a division by 10^9 always fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SECOND).unwrap_or(0);
    Ok(Duration::new(seconds, subsec))
}

enum ScaleError {
    Malformed,
    Overflow,
}

/// `number` (digits with an optional fraction) times `unit_nanos`, truncated to whole
/// nanoseconds.
fn scale(number: &str, unit_nanos: u128) -> Result<u128, ScaleError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(ScaleError::Malformed);
    }
    // Only digits are left, so a failed parse means too many of them.
    let whole_value: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| ScaleError::Overflow)? };
    let mut total = whole_value.checked_mul(unit_nanos).ok_or(ScaleError::Overflow)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().map_err(|_| ScaleError::Overflow)?;
        // At most 18 digits: 10^18 * unit_nanos stays far below u128::MAX.
        let denominator = 10u128.pow(fraction.len() as u32);
        total = total.checked_add(digits * unit_nanos / denominator).ok_or(ScaleError::Overflow)?;
    }
    Ok(total)
}

/// Renders a duration so that [`parse()`] reads it back exactly: `1h30m`, `500ms`, `0s`.
pub fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    let parts = [
        (secs / 3_600, "h"),
        (secs % 3_600 / 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    parts.iter().filter(|(value, _)| *value > 0).map(|(value, unit)| format!("{value}{unit}")).collect()
}

/// A duration field of the configuration file: read with [`parse()`], written with
/// [`format()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConfigDuration(pub Duration);

/// The duration the file gives, else `default`.
pub(crate) fn given_or(value: Option<ConfigDuration>, default: Duration) -> Duration {
    value.map_or(default, |ConfigDuration(duration)| duration)
}

/// Rejects a zero duration where zero would stop something from ever happening.
pub(crate) fn require_positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() { Err(ConfigError::invalid(key, "must be longer than 0s")) } else { Ok(()) }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

struct DurationVisitor;

impl DurationVisitor {
    fn unitless<E: de::Error>(number: impl fmt::Display) -> E {
        E::custom(format_args!("invalid duration {number}: {number} has no unit; write e.g. {number}s ({UNIT_HINT})"))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 30s, 5m or 1h30m")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse(text).map(ConfigDuration).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        if number == 0 { Ok(ConfigDuration(Duration::ZERO)) } else { Err(Self::unitless(number)) }
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Err(Self::unitless(number))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
        Err(Self::unitless(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations_and_days() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3_600)),
            ("1h30m", Duration::from_secs(5_400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5_400)),
            (".5s", Duration::from_millis(500)),
            ("2m3.25s", Duration::from_millis(123_250)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("10ns", Duration::from_nanos(10)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            (" 30s ", Duration::from_secs(30)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        let cases = [
            ("30", "invalid duration \"30\": 30 has no unit; write e.g. 30s (units: ns, us, ms, s, m, h, d)"),
            ("1h30", "invalid duration \"1h30\": 30 has no unit; write e.g. 30s (units: ns, us, ms, s, m, h, d)"),
            ("5x", "invalid duration \"5x\": unknown unit \"x\" (units: ns, us, ms, s, m, h, d)"),
            ("5 s", "invalid duration \"5 s\": unknown unit \" s\" (units: ns, us, ms, s, m, h, d)"),
            ("-5s", "invalid duration \"-5s\": it must not be negative"),
            ("", "invalid duration \"\": it is empty; write e.g. 30s"),
            ("s", "invalid duration \"s\": expected a number before \"s\""),
            ("1.2.3s", "invalid duration \"1.2.3s\": \"1.2.3\" is not a number"),
            (".s", "invalid duration \".s\": \".\" is not a number"),
            ("99999999999999999999999h", "invalid duration \"99999999999999999999999h\": it is too long"),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), message, "{text}");
        }
    }

    #[test]
    fn format_round_trips() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(5_400), "1h30m"),
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_millis(1_500), "1s500ms"),
            (Duration::new(3_661, 1_001_001), "1h1m1s1ms1us1ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration));
        }
    }
}
