//! Time as bosun sees it: microsecond timestamps and an injectable [`Clock`].
//!
//! Every backend stores time with microsecond precision (PostgreSQL's `timestamptz`
//! resolution), so [`Timestamp`] truncates to microseconds at construction. A value read
//! back from any store is then equal to the value written, which the conformance suite
//! relies on.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The Unix epoch; handy as a "never" sentinel in arithmetic, never stored as one.
    pub const UNIX_EPOCH: Timestamp = Timestamp(DateTime::UNIX_EPOCH);

    /// Truncates `instant` to whole microseconds.
    pub fn from_datetime(instant: DateTime<Utc>) -> Self {
        Self::from_unix_micros(instant.timestamp_micros())
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    ///
    /// Out-of-range values (beyond year ±262,000) saturate to the Unix epoch rather than
    /// panic; no caller can produce them from a real clock.
    pub fn from_unix_micros(micros: i64) -> Self {
        Self(DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::UNIX_EPOCH))
    }

    /// The span of time bosun accepts from callers: the range of protobuf's
    /// `google.protobuf.Timestamp` (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z),
    /// which every store backend holds exactly and RFC 3339 can write.
    pub const ACCEPTED_MICROS: std::ops::RangeInclusive<i64> = -62_135_596_800_000_000..=253_402_300_799_999_999;

    /// A timestamp from microseconds since the Unix epoch, or `None` outside
    /// [`Timestamp::ACCEPTED_MICROS`]. Use this for times a caller sent: out-of-range
    /// values are refused, never clamped.
    pub fn checked_from_unix_micros(micros: i64) -> Option<Self> {
        Self::ACCEPTED_MICROS.contains(&micros).then(|| Self::from_unix_micros(micros))
    }

    /// Whether this timestamp lies within [`Timestamp::ACCEPTED_MICROS`].
    pub fn is_accepted(self) -> bool {
        Self::ACCEPTED_MICROS.contains(&self.unix_micros())
    }

    /// Microseconds since the Unix epoch: the representation SQLite stores.
    pub fn unix_micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// RFC 3339 with exactly six fractional digits, e.g. `2026-11-23T13:26:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Time elapsed from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        (self.0 - earlier.0).to_std().unwrap_or(Duration::ZERO)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        let micros = i64::try_from(rhs.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_unix_micros(self.unix_micros().saturating_add(micros))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        let micros = i64::try_from(rhs.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_unix_micros(self.unix_micros().saturating_sub(micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(instant: DateTime<Utc>) -> Self {
        Self::from_datetime(instant)
    }
}

/// The text was not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct ParseTimestampError(String);

impl FromStr for Timestamp {
    type Err = ParseTimestampError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
            .map_err(|_| ParseTimestampError(text.to_owned()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The source of "now" for everything that records or judges time.
///
/// Production uses [`SystemClock`]; tests and the simulator use [`FakeClock`] and move time
/// explicitly, so no test has to sleep for time to pass.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct FakeClock {
    // A std Mutex is right here: the critical section is a copy of 12 bytes and never
    // spans an await point.
    now: Mutex<Timestamp>,
}

impl FakeClock {
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// A fixed, memorable start time so test output is stable.
    pub fn at_default_epoch() -> Self {
        Self::new(Timestamp::from_unix_micros(1_767_225_600_000_000)) // 2026-01-01T00:00:00Z
    }

    pub fn advance(&self, by: Duration) -> Timestamp {
        let mut now = self.lock();
        *now = *now + by;
        *now
    }

    pub fn set(&self, to: Timestamp) {
        *self.lock() = to;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A poisoned lock only means another test thread panicked mid-assignment of a
        // Copy value; the timestamp inside is still whole.
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_microseconds_and_round_trips_through_text() {
        let instant = DateTime::from_timestamp(1_767_225_600, 123_456_789).expect("valid");
        let ts = Timestamp::from_datetime(instant);
        assert_eq!(ts.to_rfc3339(), "2026-01-01T00:00:00.123456Z");
        assert_eq!(ts.to_rfc3339().parse::<Timestamp>(), Ok(ts));
        assert_eq!(Timestamp::from_unix_micros(ts.unix_micros()), ts);
    }

    #[test]
    fn rfc3339_text_sorts_like_time() {
        let a = Timestamp::from_unix_micros(1_000_000);
        let b = a + Duration::from_micros(1);
        assert!(a.to_rfc3339() < b.to_rfc3339());
    }

    #[test]
    fn fake_clock_moves_only_when_told() {
        let clock = FakeClock::at_default_epoch();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().saturating_since(start), Duration::from_secs(90));
        assert_eq!(start.saturating_since(clock.now()), Duration::ZERO);
    }

    #[test]
    fn accepted_range_is_protobufs() {
        let earliest = Timestamp::checked_from_unix_micros(*Timestamp::ACCEPTED_MICROS.start()).expect("in range");
        let latest = Timestamp::checked_from_unix_micros(*Timestamp::ACCEPTED_MICROS.end()).expect("in range");
        assert_eq!(earliest.to_rfc3339(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(latest.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(Timestamp::checked_from_unix_micros(*Timestamp::ACCEPTED_MICROS.end() + 1), None);
        assert_eq!(Timestamp::checked_from_unix_micros(i64::MIN), None);
        assert!(latest.is_accepted() && !Timestamp::from_unix_micros(i64::MAX / 4).is_accepted());
    }

    #[test]
    fn rejects_non_rfc3339_text() {
        assert!("yesterday".parse::<Timestamp>().is_err());
    }
}
