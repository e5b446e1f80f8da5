//! The scheduled autoscaler: weekly windows that change a pool's bounds.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Weekday};

use super::{Autoscaler, Decision, NodeBounds, ScaleInput, fallback_or_hold};
use crate::ValidationError;

/// A set of days of the week.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Weekdays(u8);

impl Weekdays {
    pub const EVERY_DAY: Weekdays = Weekdays(0b111_1111);
    pub const MONDAY_TO_FRIDAY: Weekdays = Weekdays(0b001_1111);
    pub const NONE: Weekdays = Weekdays(0);

    pub fn contains(self, day: Weekday) -> bool {
        self.0 & Self::bit(day) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, day: Weekday) -> Self {
        Self(self.0 | Self::bit(day))
    }

    fn bit(day: Weekday) -> u8 {
        1 << day.num_days_from_monday()
    }
}

impl FromIterator<Weekday> for Weekdays {
    fn from_iter<I: IntoIterator<Item = Weekday>>(days: I) -> Self {
        days.into_iter().fold(Self::NONE, Self::with)
    }
}

impl fmt::Display for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EVERY_DAY => f.write_str("every day"),
            Self::MONDAY_TO_FRIDAY => f.write_str("Mon-Fri"),
            days => {
                let mut day = Weekday::Mon;
                let mut names = Vec::new();
                for _ in 0..7 {
                    if days.contains(day) {
                        names.push(day.to_string());
                    }
                    day = day.succ();
                }
                f.write_str(&names.join(","))
            }
        }
    }
}

impl fmt::Debug for Weekdays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Weekdays({self})")
    }
}

/// One window of a schedule: on `days`, from `start_hour` up to (not including)
/// `end_hour`, local time, the pool's bounds are `bounds`.
///
/// A window with `start_hour > end_hour` wraps midnight (22 to 6), and its hours after
/// midnight belong to the day it started: Friday 22 to 6 covers Saturday 02:00, not
/// Friday 02:00. Built only through [`ScheduleEntry::new`], so every entry is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleEntry {
    days: Weekdays,
    start_hour: u32,
    end_hour: u32,
    bounds: NodeBounds,
}

impl ScheduleEntry {
    /// `start_hour` is 0 to 23, `end_hour` 1 to 24 (24 is midnight at the end of the day)
    /// and differs from `start_hour`.
    pub fn new(
        days: Weekdays,
        start_hour: u32,
        end_hour: u32,
        min_nodes: u32,
        max_nodes: u32,
    ) -> Result<Self, ValidationError> {
        if days.is_empty() {
            return Err(ValidationError::new("days", "needs at least one day"));
        }
        if start_hour > 23 {
            return Err(ValidationError::new("start_hour", format_args!("{start_hour} is not an hour (0 to 23)")));
        }
        if !(1..=24).contains(&end_hour) {
            return Err(ValidationError::new("end_hour", format_args!("{end_hour} is not an end hour (1 to 24)")));
        }
        if start_hour == end_hour {
            // Empty or all day? Either reading surprises someone; ask for 0 to 24.
            return Err(ValidationError::new(
                "end_hour",
                format_args!("{end_hour} equals start_hour; for a whole day use 0 to 24"),
            ));
        }
        let bounds = NodeBounds::new(min_nodes, max_nodes)?;
        Ok(Self { days, start_hour, end_hour, bounds })
    }

    pub fn days(&self) -> Weekdays {
        self.days
    }

    pub fn start_hour(&self) -> u32 {
        self.start_hour
    }

    pub fn end_hour(&self) -> u32 {
        self.end_hour
    }

    pub fn bounds(&self) -> NodeBounds {
        self.bounds
    }

    /// Whether the window covers `local` (a time in the schedule's offset).
    pub fn is_active(&self, local: DateTime<FixedOffset>) -> bool {
        let hour = local.hour();
        let today = local.weekday();
        if self.start_hour < self.end_hour {
            self.days.contains(today) && (self.start_hour..self.end_hour).contains(&hour)
        } else {
            (hour >= self.start_hour && self.days.contains(today))
                || (hour < self.end_hour && self.days.contains(today.pred()))
        }
    }
}

impl fmt::Display for ScheduleEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:02}:00-{:02}:00, bounds {}", self.days, self.start_hour, self.end_hour, self.bounds)
    }
}

pub(super) fn decide(
    utc_offset: FixedOffset,
    schedule: &[ScheduleEntry],
    fallback: Option<&Autoscaler>,
    input: &ScaleInput<'_>,
) -> Decision {
    let local = input.now.as_datetime().with_timezone(&utc_offset);
    let shown = local.format("%a %H:%M %:z");
    // The first matching entry wins, as in Navarch; overlapping entries are the operator's
    // choice of priority.
    let Some((index, entry)) = schedule.iter().enumerate().find(|(_, e)| e.is_active(local)) else {
        return fallback_or_hold(fallback, input, format_args!("no schedule entry active at {shown}"));
    };
    let scoped = ScaleInput { bounds: entry.bounds, ..*input };
    let why = format!("entry {index} ({entry}) active at {shown}");
    let Decision { target, mut reason } = fallback_or_hold(fallback, &scoped, why);
    let bounded = entry.bounds.clamp(target);
    if bounded != target {
        reason.push_str(&format!("; within the window's bounds: {} -> {bounded}", input.current));
    }
    Decision::new(bounded, reason)
}
