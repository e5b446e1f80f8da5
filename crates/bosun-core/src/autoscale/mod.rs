//! The autoscaler math (SPEC 3.6): how many machines a pool should have, and why.
//!
//! Everything here is a pure function of its arguments: no clock, no store, no IO. The
//! pool reconciler builds a [`ScaleInput`] from what it has stored (instance counts, node
//! statuses, the latest metrics, the last demand report, the pool's utilization history)
//! and calls [`plan`]; the [`Decision`] it gets back is what it acts on and stores.
//!
//! Two layers:
//! - [`Autoscaler::decide`] is one policy's wish, unbounded by the pool's limits (a
//!   scheduled window's own bounds excepted: applying those is that policy's job).
//! - [`plan`] applies what every pool shares: `min_nodes` always, even without an
//!   autoscaler; the clamp to `[min_nodes, max_nodes]`; the cooldown.
//!
//! Navarch's autoscalers had bugs bosun must not repeat (reference/navarch.md 11.1):
//! - Current size counts booting instances, and "fewer healthy than min" does not add a
//!   node for a deficit that booting nodes will fill, so a pool does not over-provision
//!   while its machines boot (item 4).
//! - A pool without an autoscaler still gets its `min_nodes` (item 5).
//! - Missing data (no utilization, no demand report, too little history) keeps the current
//!   size; it never reads as "zero load" and shrinks the pool to min (item 7).
//! - Predictive history is sorted by time here, whatever order it arrives in (item 7).
//! - Cooldown is judged from `ScaleInput::now` and the stored last scale time, never from
//!   a wall clock (item 7).
//!
//! Utilization is a percentage of GPU busy time (0 to 100). A utilization that is not a
//! finite number (NaN, infinite) is treated as no data: it never scales and never panics.

mod predict;
mod schedule;
mod spec;
#[cfg(test)]
mod tests;

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::FixedOffset;

pub use self::schedule::{ScheduleEntry, Weekdays};
pub use crate::pool::CompositeMode;
use crate::{Timestamp, ValidationError};

/// SPEC 3.6 defaults, shared with configuration.
pub const DEFAULT_SCALE_UP_AT: f64 = 80.0;
pub const DEFAULT_SCALE_DOWN_AT: f64 = 20.0;
pub const DEFAULT_JOBS_PER_NODE: NonZeroU32 = NonZeroU32::new(10).expect("10 is not zero");
pub const DEFAULT_LOOKBACK_WINDOW: usize = 10;
pub const DEFAULT_GROWTH_FACTOR: f64 = 1.2;

/// A pool's size limits, `min <= max` by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeBounds {
    min: u32,
    max: u32,
}

impl NodeBounds {
    pub fn new(min_nodes: u32, max_nodes: u32) -> Result<Self, ValidationError> {
        if min_nodes > max_nodes {
            return Err(ValidationError::new("min_nodes", format_args!("{min_nodes} is above max_nodes {max_nodes}")));
        }
        Ok(Self { min: min_nodes, max: max_nodes })
    }

    pub fn min(self) -> u32 {
        self.min
    }

    pub fn max(self) -> u32 {
        self.max
    }

    pub fn clamp(self, nodes: u32) -> u32 {
        // Not `u32::clamp`: that asserts min <= max, which holds, but this cannot panic at all.
        nodes.max(self.min).min(self.max)
    }
}

impl fmt::Display for NodeBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.min, self.max)
    }
}

/// Work an external scheduler reported for the pool (AdminService ReportPoolDemand).
///
/// The reconciler passes the latest stored report; whether an old report is still
/// trusted is its call (it passes `None` to distrust one, which holds the pool's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    pub pending_jobs: u32,
    pub queue_depth: u32,
    pub reported_at: Timestamp,
}

/// The pool's mean GPU utilization at one evaluation: one sample per reconcile, so the
/// history is a time series of the pool, not of its nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSample {
    pub at: Timestamp,
    /// Percent, 0 to 100.
    pub utilization: f64,
}

/// Everything an autoscaler may look at, captured once per evaluation.
///
/// The counts come from separate records and may disagree for a moment (a node registered
/// after its instance was counted); every rule uses saturating arithmetic, so an
/// inconsistent snapshot gives a cautious answer, never a panic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleInput<'a> {
    /// The reconciler's clock reading; the only "now" any rule uses.
    pub now: Timestamp,
    /// Instances in PROVISIONING, PENDING_REGISTRATION or RUNNING.
    pub current: u32,
    /// The part of `current` still booting (PROVISIONING or PENDING_REGISTRATION): capacity
    /// already paid for that will arrive without another scale-up.
    pub booting: u32,
    /// ACTIVE nodes of the pool.
    pub healthy: u32,
    /// The pool's `min_nodes` and `max_nodes`.
    pub bounds: NodeBounds,
    /// Mean GPU utilization (percent) over the pool's ACTIVE nodes; `None` when none reported.
    pub mean_gpu_utilization: Option<f64>,
    /// The last demand report, if any.
    pub demand: Option<Demand>,
    /// Pool utilization samples, oldest first by contract; the predictive autoscaler sorts
    /// them anyway, so arrival order can never fake a trend.
    pub history: &'a [PoolSample],
}

/// A target size and the human-readable reason stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub target: u32,
    pub reason: String,
}

impl Decision {
    fn new(target: u32, reason: impl Into<String>) -> Self {
        Self { target, reason: reason.into() }
    }

    fn hold(current: u32, why: impl fmt::Display) -> Self {
        Self::new(current, format!("{why}: keeping {current}"))
    }
}

/// A pool's autoscaling policy (config `autoscaling.type`).
///
/// Build one with the constructors (SPEC defaults) or a literal, then [`validate`] it;
/// [`decide`] never panics on an unvalidated value either, it just makes less sense.
///
/// [`validate`]: Autoscaler::validate
/// [`decide`]: Autoscaler::decide
#[derive(Debug, Clone, PartialEq)]
pub enum Autoscaler {
    /// Mean GPU utilization above `scale_up_at` adds a node, below `scale_down_at` removes
    /// one (both strict); fewer healthy nodes than min (not counting booting ones) adds one.
    Reactive { scale_up_at: f64, scale_down_at: f64 },
    /// `ceil(max(queue_depth, pending_jobs) / jobs_per_node)`.
    Queue { jobs_per_node: NonZeroU32 },
    /// The first schedule entry active at `now` replaces the pool's bounds for `fallback`
    /// and clamps its answer; no fallback means "the current size, within the window".
    ///
    /// `utc_offset` is fixed: bosun-core does not depend on a time zone database, so a zone
    /// with daylight saving time is resolved to its offset by whoever builds the autoscaler.
    Scheduled { utc_offset: FixedOffset, schedule: Vec<ScheduleEntry>, fallback: Option<Box<Autoscaler>> },
    /// Least-squares trend over the last `lookback_window` samples, its growth multiplied
    /// by `growth_factor`; scales so the predicted utilization falls back to `scale_up_at`.
    /// Otherwise, or without enough history, `fallback` decides (none: keep current).
    Predictive { lookback_window: usize, growth_factor: f64, scale_up_at: f64, fallback: Option<Box<Autoscaler>> },
    /// Combines its members' targets; `Avg` rounds up.
    Composite { mode: CompositeMode, autoscalers: Vec<Autoscaler> },
}

impl Autoscaler {
    /// Reactive at 80 % / 20 %.
    pub fn reactive() -> Self {
        Self::Reactive { scale_up_at: DEFAULT_SCALE_UP_AT, scale_down_at: DEFAULT_SCALE_DOWN_AT }
    }

    /// Queue at 10 jobs per node.
    pub fn queue() -> Self {
        Self::Queue { jobs_per_node: DEFAULT_JOBS_PER_NODE }
    }

    /// Scheduled in UTC.
    pub fn scheduled(schedule: Vec<ScheduleEntry>, fallback: Option<Autoscaler>) -> Self {
        Self::Scheduled { utc_offset: UTC, schedule, fallback: fallback.map(Box::new) }
    }

    /// Predictive over 10 samples, growth 1.2, scaling above 80 %.
    pub fn predictive(fallback: Option<Autoscaler>) -> Self {
        Self::Predictive {
            lookback_window: DEFAULT_LOOKBACK_WINDOW,
            growth_factor: DEFAULT_GROWTH_FACTOR,
            scale_up_at: DEFAULT_SCALE_UP_AT,
            fallback: fallback.map(Box::new),
        }
    }

    pub fn composite(mode: CompositeMode, autoscalers: Vec<Autoscaler>) -> Self {
        Self::Composite { mode, autoscalers }
    }

    /// The `autoscaling.type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Reactive { .. } => "reactive",
            Self::Queue { .. } => "queue",
            Self::Scheduled { .. } => "scheduled",
            Self::Predictive { .. } => "predictive",
            Self::Composite { .. } => "composite",
        }
    }

    /// Checks every setting; the error names the field by its path (`fallback.scale_up_at`,
    /// `autoscalers[1].lookback_window`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Reactive { scale_up_at, scale_down_at } => {
                check_percentage("scale_up_at", *scale_up_at)?;
                check_percentage("scale_down_at", *scale_down_at)?;
                if scale_down_at >= scale_up_at {
                    return Err(ValidationError::new(
                        "scale_down_at",
                        format_args!("{scale_down_at} must be below scale_up_at {scale_up_at}, or the pool would flap"),
                    ));
                }
                Ok(())
            }
            // NonZeroU32 already rules out the only bad value.
            Self::Queue { .. } => Ok(()),
            // Each ScheduleEntry was checked when it was built.
            Self::Scheduled { schedule, fallback, .. } => {
                if schedule.is_empty() {
                    return Err(ValidationError::new(
                        "schedule",
                        "needs at least one entry (without one, use the fallback autoscaler itself)",
                    ));
                }
                validate_fallback(fallback.as_deref())
            }
            Self::Predictive { lookback_window, growth_factor, scale_up_at, fallback } => {
                if *lookback_window < 2 {
                    return Err(ValidationError::new(
                        "lookback_window",
                        format_args!("{lookback_window} is too small: a trend needs at least 2 samples"),
                    ));
                }
                if !(growth_factor.is_finite() && *growth_factor > 0.0) {
                    return Err(ValidationError::new(
                        "growth_factor",
                        format_args!("{growth_factor} must be a number above 0"),
                    ));
                }
                check_percentage("scale_up_at", *scale_up_at)?;
                if *scale_up_at == 0.0 {
                    return Err(ValidationError::new("scale_up_at", "must be above 0: the target divides by it"));
                }
                validate_fallback(fallback.as_deref())
            }
            Self::Composite { autoscalers, .. } => {
                if autoscalers.is_empty() {
                    return Err(ValidationError::new("autoscalers", "needs at least one autoscaler"));
                }
                for (index, member) in autoscalers.iter().enumerate() {
                    member.validate().map_err(|e| e.within(&format!("autoscalers[{index}]")))?;
                }
                Ok(())
            }
        }
    }

    /// This policy's target for the pool, not yet clamped to the pool's bounds nor held by
    /// cooldown (that is [`plan`]'s job). The reason starts with the policy's kind.
    pub fn decide(&self, input: &ScaleInput<'_>) -> Decision {
        let decision = match self {
            Self::Reactive { scale_up_at, scale_down_at } => reactive(*scale_up_at, *scale_down_at, input),
            Self::Queue { jobs_per_node } => queue(*jobs_per_node, input),
            Self::Scheduled { utc_offset, schedule, fallback } => {
                schedule::decide(*utc_offset, schedule, fallback.as_deref(), input)
            }
            Self::Predictive { lookback_window, growth_factor, scale_up_at, fallback } => predict::decide(
                predict::Settings {
                    lookback_window: *lookback_window,
                    growth_factor: *growth_factor,
                    scale_up_at: *scale_up_at,
                },
                fallback.as_deref(),
                input,
            ),
            Self::Composite { mode, autoscalers } => composite(*mode, autoscalers, input),
        };
        Decision { target: decision.target, reason: format!("{}: {}", self.kind(), decision.reason) }
    }
}

/// Offset zero; checked at compile time.
pub const UTC: FixedOffset = FixedOffset::east_opt(0).expect("0 is a valid offset");

fn validate_fallback(fallback: Option<&Autoscaler>) -> Result<(), ValidationError> {
    fallback.map_or(Ok(()), |f| f.validate().map_err(|e| e.within("fallback")))
}

fn check_percentage(field: &str, value: f64) -> Result<(), ValidationError> {
    if (0.0..=100.0).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::new(field, format_args!("{value} is not a utilization percentage (0 to 100)")))
    }
}

/// Lets `fallback` decide with `why` prefixed to its reason, or holds the current size.
fn fallback_or_hold(fallback: Option<&Autoscaler>, input: &ScaleInput<'_>, why: impl fmt::Display) -> Decision {
    match fallback {
        Some(fallback) => {
            let decision = fallback.decide(input);
            Decision::new(decision.target, format!("{why}; {}", decision.reason))
        }
        None => Decision::hold(input.current, why),
    }
}

/// A percentage for a reason: at most two decimals, no trailing zeros (`91%`, `80.01%`).
fn percent(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    format!("{text}%")
}

fn reactive(scale_up_at: f64, scale_down_at: f64, input: &ScaleInput<'_>) -> Decision {
    let ScaleInput { current, booting, healthy, bounds, .. } = *input;
    let min = bounds.min();
    // Booting nodes will fill part of the deficit; adding one on every evaluation while
    // they boot is Navarch's over-provisioning (11.1 item 4). Unlike Navarch this also
    // fires when no node at all is healthy.
    if healthy < min && healthy.saturating_add(booting) < min {
        let target = current.saturating_add(1);
        return Decision::new(
            target,
            format!(
                "{healthy} healthy and {booting} booting nodes are fewer than min_nodes {min}: {current} -> {target}"
            ),
        );
    }
    let utilization = match input.mean_gpu_utilization {
        None => return Decision::hold(current, "no GPU utilization reported by ACTIVE nodes"),
        Some(u) if !u.is_finite() => {
            return Decision::hold(current, format_args!("GPU utilization is {u}, not a number"));
        }
        Some(u) => u,
    };
    let shown = percent(utilization);
    if utilization > scale_up_at {
        let target = current.saturating_add(1);
        Decision::new(
            target,
            format!("mean GPU utilization {shown} > scale_up_at {}: {current} -> {target}", percent(scale_up_at)),
        )
    } else if utilization < scale_down_at {
        let target = current.saturating_sub(1);
        Decision::new(
            target,
            format!("mean GPU utilization {shown} < scale_down_at {}: {current} -> {target}", percent(scale_down_at)),
        )
    } else {
        Decision::hold(
            current,
            format_args!(
                "mean GPU utilization {shown} is within [{}, {}]",
                percent(scale_down_at),
                percent(scale_up_at)
            ),
        )
    }
}

fn queue(jobs_per_node: NonZeroU32, input: &ScaleInput<'_>) -> Decision {
    let current = input.current;
    // No report is not an empty queue: Navarch read it as zero and shrank every queue pool
    // to min (11.1 item 7).
    let Some(demand) = input.demand else {
        return Decision::hold(current, "no demand reported");
    };
    // SPEC's formula is over queue_depth. A scheduler that fills only pending_jobs would
    // otherwise look idle and shrink the pool; each count is a floor on the waiting work.
    let jobs = demand.queue_depth.max(demand.pending_jobs);
    let target = jobs.div_ceil(jobs_per_node.get());
    let Demand { pending_jobs, queue_depth, reported_at } = demand;
    let jobs_seen =
        format!("{jobs} jobs waiting (queue depth {queue_depth}, pending {pending_jobs}, reported at {reported_at})");
    Decision::new(target, format!("{jobs_seen} at {jobs_per_node} per node: {current} -> {target}"))
}

fn composite(mode: CompositeMode, members: &[Autoscaler], input: &ScaleInput<'_>) -> Decision {
    if members.is_empty() {
        return Decision::hold(input.current, "no member autoscalers");
    }
    let decisions: Vec<Decision> = members.iter().map(|m| m.decide(input)).collect();
    let targets = decisions.iter().map(|d| d.target);
    let target = match mode {
        CompositeMode::Max => targets.max().unwrap_or(input.current),
        CompositeMode::Min => targets.min().unwrap_or(input.current),
        CompositeMode::Avg => {
            let sum: u64 = targets.map(u64::from).sum();
            // Rounds up: half a node short of demand is still short. `members` is not
            // empty, so the divisor is not zero.
            let avg = sum.div_ceil(decisions.len() as u64);
            u32::try_from(avg).unwrap_or(u32::MAX)
        }
    };
    let reasons: Vec<&str> = decisions.iter().map(|d| d.reason.as_str()).collect();
    Decision::new(target, format!("{mode} of [{}]: {} -> {target}", reasons.join("; "), input.current))
}

/// What the reconciler calls: the autoscaler's target (none: just `min_nodes`), clamped to
/// the pool's bounds, held during cooldown.
///
/// - Without an autoscaler the target is `max(current, min_nodes)`: min is enforced (a pool
///   without an `autoscaling` block did nothing in Navarch), and max is not, because such a
///   pool is sized by hand and bosun does not terminate machines nobody asked it to.
/// - Cooldown lasts while `input.now < last_scale + cooldown`; `last_scale` comes from the
///   pool's stored status, so it survives restarts, and no wall clock is read. During it
///   the size is kept, except that a pool below `min_nodes` is still raised to it: min is a
///   promise, cooldown only damps the autoscaler. A `last_scale` later than `now` (the
///   clock went back) therefore holds until `now` passes `last_scale + cooldown`.
pub fn plan(
    autoscaler: Option<&Autoscaler>,
    input: &ScaleInput<'_>,
    cooldown: Duration,
    last_scale: Option<Timestamp>,
) -> Decision {
    let current = input.current;
    let min = input.bounds.min();
    let (wanted, mut reason) = match autoscaler {
        None => {
            let target = current.max(min);
            let reason = if target > current {
                format!("no autoscaling: raising to min_nodes {min}: {current} -> {target}")
            } else {
                format!("no autoscaling: {current} is at least min_nodes {min}: keeping {current}")
            };
            (target, reason)
        }
        Some(autoscaler) => {
            let Decision { target, mut reason } = autoscaler.decide(input);
            let bounded = input.bounds.clamp(target);
            if bounded < target {
                reason.push_str(&format!("; capped at max_nodes {}", input.bounds.max()));
            } else if bounded > target {
                reason.push_str(&format!("; raised to min_nodes {min}"));
            }
            (bounded, reason)
        }
    };
    if wanted == current {
        return Decision::new(wanted, reason);
    }
    if let Some(last) = last_scale {
        let until = last + cooldown;
        if input.now < until {
            let target = current.max(min);
            if target == wanted {
                // Cooldown changes nothing (the wish was just min_nodes): say nothing of it.
                return Decision::new(target, reason);
            }
            let held = if target > current {
                format!("raising only to min_nodes {min}: {current} -> {target}")
            } else {
                format!("keeping {current}")
            };
            reason.push_str(&format!("; in cooldown until {until} (last scale at {last}): {held}"));
            return Decision::new(target, reason);
        }
    }
    Decision::new(wanted, reason)
}
