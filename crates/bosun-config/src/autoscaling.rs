//! A pool's `autoscaling` block, converted into bosun-core's [`AutoscalingSpec`].
//!
//! As in Navarch, one flat block holds every autoscaler's keys and `type` says which
//! apply. A key the chosen type does not use is an error rather than ignored: `type:
//! queue` with `scale_up_at: 90` means the operator expected something that will not
//! happen. Unknown day names are errors too (Navarch drops them, and an entry whose days
//! are all misspelled then matches every day). Defaults are Navarch's.

use bosun_core::pool::{AutoscalingSpec, CompositeMode, ScheduleWindow};

use crate::ConfigError;
use crate::schema::{self, AutoscalerType};

const DEFAULT_SCALE_UP_AT: f64 = 80.0;
const DEFAULT_SCALE_DOWN_AT: f64 = 20.0;
const DEFAULT_JOBS_PER_NODE: u32 = 10;
const DEFAULT_LOOKBACK_WINDOW: u32 = 10;
const DEFAULT_GROWTH_FACTOR: f64 = 1.2;

/// The keys each autoscaler type takes besides `type`.
fn autoscaler_keys(kind: AutoscalerType) -> (&'static str, &'static [&'static str]) {
    match kind {
        AutoscalerType::Reactive => ("reactive", &["scale_up_at", "scale_down_at"]),
        AutoscalerType::Queue => ("queue", &["jobs_per_node"]),
        AutoscalerType::Scheduled => ("scheduled", &["schedule", "fallback"]),
        AutoscalerType::Predictive => ("predictive", &["lookback_window", "growth_factor", "fallback"]),
        AutoscalerType::Composite => ("composite", &["mode", "autoscalers"]),
    }
}

pub(crate) fn resolve_autoscaling(key: &str, raw: &schema::Autoscaling) -> Result<AutoscalingSpec, ConfigError> {
    let kind = raw.kind.ok_or_else(|| {
        ConfigError::invalid(
            format!("{key}.type"),
            "is required: one of reactive, queue, scheduled, predictive, composite",
        )
    })?;
    let (type_name, accepted) = autoscaler_keys(kind);
    let given = [
        ("scale_up_at", raw.scale_up_at.is_some()),
        ("scale_down_at", raw.scale_down_at.is_some()),
        ("jobs_per_node", raw.jobs_per_node.is_some()),
        ("schedule", raw.schedule.is_some()),
        ("fallback", raw.fallback.is_some()),
        ("lookback_window", raw.lookback_window.is_some()),
        ("growth_factor", raw.growth_factor.is_some()),
        ("mode", raw.mode.is_some()),
        ("autoscalers", raw.autoscalers.is_some()),
    ];
    if let Some((unused, _)) = given.iter().find(|(name, set)| *set && !accepted.contains(name)) {
        return Err(ConfigError::invalid(
            format!("{key}.{unused}"),
            format_args!("is not used by {type_name} autoscaling (it takes {})", accepted.join(", ")),
        ));
    }
    let fallback = raw
        .fallback
        .as_deref()
        .map(|fallback| resolve_autoscaling(&format!("{key}.fallback"), fallback).map(Box::new))
        .transpose()?;
    match kind {
        AutoscalerType::Reactive => {
            let scale_up_at = raw.scale_up_at.unwrap_or(DEFAULT_SCALE_UP_AT);
            let scale_down_at = raw.scale_down_at.unwrap_or(DEFAULT_SCALE_DOWN_AT);
            check_percentage(&format!("{key}.scale_up_at"), scale_up_at)?;
            check_percentage(&format!("{key}.scale_down_at"), scale_down_at)?;
            if scale_down_at >= scale_up_at {
                return Err(ConfigError::invalid(
                    format!("{key}.scale_down_at"),
                    format_args!("{scale_down_at} must be below scale_up_at {scale_up_at}, or the pool would flap"),
                ));
            }
            Ok(AutoscalingSpec::Reactive { scale_up_at, scale_down_at })
        }
        AutoscalerType::Queue => {
            let jobs_per_node = raw.jobs_per_node.unwrap_or(DEFAULT_JOBS_PER_NODE);
            if jobs_per_node == 0 {
                return Err(ConfigError::invalid(format!("{key}.jobs_per_node"), "must be at least 1"));
            }
            Ok(AutoscalingSpec::Queue { jobs_per_node })
        }
        AutoscalerType::Scheduled => {
            let entries = raw.schedule.as_deref().unwrap_or_default();
            if entries.is_empty() {
                return Err(ConfigError::invalid(format!("{key}.schedule"), "needs at least one entry"));
            }
            let schedule = entries
                .iter()
                .enumerate()
                .map(|(index, entry)| resolve_window(&format!("{key}.schedule[{index}]"), entry))
                .collect::<Result<_, _>>()?;
            Ok(AutoscalingSpec::Scheduled { schedule, fallback })
        }
        AutoscalerType::Predictive => {
            let lookback_window = raw.lookback_window.unwrap_or(DEFAULT_LOOKBACK_WINDOW);
            if lookback_window < 2 {
                return Err(ConfigError::invalid(
                    format!("{key}.lookback_window"),
                    "must be at least 2: a trend needs two samples",
                ));
            }
            let growth_factor = raw.growth_factor.unwrap_or(DEFAULT_GROWTH_FACTOR);
            if !(growth_factor.is_finite() && growth_factor > 0.0) {
                return Err(ConfigError::invalid(
                    format!("{key}.growth_factor"),
                    format_args!("{growth_factor} must be a number above 0"),
                ));
            }
            Ok(AutoscalingSpec::Predictive { lookback_window, growth_factor, fallback })
        }
        AutoscalerType::Composite => {
            let members = raw.autoscalers.as_deref().unwrap_or_default();
            if members.is_empty() {
                return Err(ConfigError::invalid(format!("{key}.autoscalers"), "needs at least one autoscaler"));
            }
            let autoscalers = members
                .iter()
                .enumerate()
                .map(|(index, member)| resolve_autoscaling(&format!("{key}.autoscalers[{index}]"), member))
                .collect::<Result<_, _>>()?;
            Ok(AutoscalingSpec::Composite { mode: raw.mode.unwrap_or(CompositeMode::Max), autoscalers })
        }
    }
}

fn check_percentage(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::invalid(key, format_args!("{value} is not a utilization percentage (0 to 100)")))
    }
}

fn resolve_window(key: &str, raw: &schema::ScheduleEntry) -> Result<ScheduleWindow, ConfigError> {
    let days = raw
        .days
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, day)| {
            day_name(day).map(str::to_owned).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{key}.days[{index}]"),
                    format_args!("{day:?} is not a day; use monday to sunday, or mon to sun"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let required = |field: &str, value: Option<u32>| {
        value.ok_or_else(|| ConfigError::invalid(format!("{key}.{field}"), "is required"))
    };
    let start_hour = required("start", raw.start)?;
    let end_hour = required("end", raw.end)?;
    let max_nodes = required("max_nodes", raw.max_nodes)?;
    let min_nodes = raw.min_nodes.unwrap_or(0);
    if start_hour > 23 {
        return Err(ConfigError::invalid(
            format!("{key}.start"),
            format_args!("{start_hour} is not an hour (0 to 23)"),
        ));
    }
    if end_hour > 24 {
        return Err(ConfigError::invalid(format!("{key}.end"), format_args!("{end_hour} is not an hour (1 to 24)")));
    }
    if start_hour >= end_hour {
        return Err(ConfigError::invalid(
            format!("{key}.end"),
            format_args!("{end_hour} must be after start {start_hour}; a window past midnight is two entries"),
        ));
    }
    if min_nodes > max_nodes {
        return Err(ConfigError::invalid(
            format!("{key}.min_nodes"),
            format_args!("{min_nodes} is above max_nodes {max_nodes}"),
        ));
    }
    Ok(ScheduleWindow { days, start_hour, end_hour, min_nodes, max_nodes })
}

/// The full lower-case name of a day written in full or as three letters, in any case.
fn day_name(text: &str) -> Option<&'static str> {
    const DAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let text = text.trim().to_ascii_lowercase();
    DAYS.into_iter().find(|day| *day == text || day[..3] == text)
}

pub(crate) fn autoscaling_to_schema(spec: &AutoscalingSpec) -> schema::Autoscaling {
    let fallback_to_schema =
        |fallback: &Option<Box<AutoscalingSpec>>| fallback.as_deref().map(|f| Box::new(autoscaling_to_schema(f)));
    match spec {
        AutoscalingSpec::Reactive { scale_up_at, scale_down_at } => schema::Autoscaling {
            kind: Some(AutoscalerType::Reactive),
            scale_up_at: Some(*scale_up_at),
            scale_down_at: Some(*scale_down_at),
            ..Default::default()
        },
        AutoscalingSpec::Queue { jobs_per_node } => schema::Autoscaling {
            kind: Some(AutoscalerType::Queue),
            jobs_per_node: Some(*jobs_per_node),
            ..Default::default()
        },
        AutoscalingSpec::Scheduled { schedule, fallback } => schema::Autoscaling {
            kind: Some(AutoscalerType::Scheduled),
            schedule: Some(
                schedule
                    .iter()
                    .map(|window| schema::ScheduleEntry {
                        days: Some(window.days.clone()),
                        start: Some(window.start_hour),
                        end: Some(window.end_hour),
                        min_nodes: Some(window.min_nodes),
                        max_nodes: Some(window.max_nodes),
                    })
                    .collect(),
            ),
            fallback: fallback_to_schema(fallback),
            ..Default::default()
        },
        AutoscalingSpec::Predictive { lookback_window, growth_factor, fallback } => schema::Autoscaling {
            kind: Some(AutoscalerType::Predictive),
            lookback_window: Some(*lookback_window),
            growth_factor: Some(*growth_factor),
            fallback: fallback_to_schema(fallback),
            ..Default::default()
        },
        AutoscalingSpec::Composite { mode, autoscalers } => schema::Autoscaling {
            kind: Some(AutoscalerType::Composite),
            mode: Some(*mode),
            autoscalers: Some(autoscalers.iter().map(autoscaling_to_schema).collect()),
            ..Default::default()
        },
    }
}
