//! Building an [`Autoscaler`] from a pool's stored [`AutoscalingSpec`].

use std::num::NonZeroU32;

use chrono::{FixedOffset, Weekday};

use super::{Autoscaler, DEFAULT_SCALE_UP_AT, ScheduleEntry, Weekdays};
use crate::ValidationError;
use crate::pool::{AutoscalingSpec, ScheduleWindow};

impl Autoscaler {
    /// The autoscaler a pool's spec describes, validated.
    ///
    /// `utc_offset` is the offset of the pool's `timezone` (an IANA name in the spec):
    /// resolving a zone needs a time zone database, which bosun-core does not carry, so
    /// the caller resolves it (and rebuilds the autoscaler when daylight saving time moves
    /// the offset). The spec's predictive autoscaler has no threshold of its own and scales
    /// above the SPEC default of 80 %.
    pub fn from_spec(spec: &AutoscalingSpec, utc_offset: FixedOffset) -> Result<Self, ValidationError> {
        let fallback = |fallback: &Option<Box<AutoscalingSpec>>| {
            fallback
                .as_deref()
                .map(|f| Self::from_spec(f, utc_offset).map(Box::new).map_err(|e| e.within("fallback")))
                .transpose()
        };
        let autoscaler = match spec {
            AutoscalingSpec::Reactive { scale_up_at, scale_down_at } => {
                Self::Reactive { scale_up_at: *scale_up_at, scale_down_at: *scale_down_at }
            }
            AutoscalingSpec::Queue { jobs_per_node } => Self::Queue {
                jobs_per_node: NonZeroU32::new(*jobs_per_node)
                    .ok_or_else(|| ValidationError::new("jobs_per_node", "must be at least 1"))?,
            },
            AutoscalingSpec::Scheduled { schedule, fallback: spec_fallback } => Self::Scheduled {
                utc_offset,
                schedule: schedule
                    .iter()
                    .enumerate()
                    .map(|(index, window)| entry(window).map_err(|e| e.within(&format!("schedule[{index}]"))))
                    .collect::<Result<_, _>>()?,
                fallback: fallback(spec_fallback)?,
            },
            AutoscalingSpec::Predictive { lookback_window, growth_factor, fallback: spec_fallback } => {
                Self::Predictive {
                    lookback_window: usize::try_from(*lookback_window).unwrap_or(usize::MAX),
                    growth_factor: *growth_factor,
                    scale_up_at: DEFAULT_SCALE_UP_AT,
                    fallback: fallback(spec_fallback)?,
                }
            }
            AutoscalingSpec::Composite { mode, autoscalers } => Self::Composite {
                mode: *mode,
                autoscalers: autoscalers
                    .iter()
                    .enumerate()
                    .map(|(index, member)| {
                        Self::from_spec(member, utc_offset).map_err(|e| e.within(&format!("autoscalers[{index}]")))
                    })
                    .collect::<Result<_, _>>()?,
            },
        };
        autoscaler.validate()?;
        Ok(autoscaler)
    }
}

/// A spec window: an empty day list means every day; day names are full or three letters,
/// in any case, and an unknown one is an error (Navarch dropped it, so a window whose days
/// were all misspelled matched every day).
fn entry(window: &ScheduleWindow) -> Result<ScheduleEntry, ValidationError> {
    let days = if window.days.is_empty() {
        Weekdays::EVERY_DAY
    } else {
        window
            .days
            .iter()
            .enumerate()
            .map(|(index, name)| {
                name.trim().parse::<Weekday>().map_err(|_| {
                    ValidationError::new(
                        format!("days[{index}]"),
                        format_args!("{name:?} is not a day; use monday to sunday, or mon to sun"),
                    )
                })
            })
            .collect::<Result<Weekdays, _>>()?
    };
    ScheduleEntry::new(days, window.start_hour, window.end_hour, window.min_nodes, window.max_nodes)
}
