//! Table-driven tests of every autoscaler rule and its boundaries. Time is always an
//! explicit Timestamp: nothing here sleeps or reads a clock.

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{Datelike, FixedOffset, Weekday};

use super::*;
use crate::pool::{AutoscalingSpec, ScheduleWindow};

/// Monday 2026-01-05 00:00:00 UTC, in seconds.
const MONDAY: i64 = 1_767_571_200;

/// `day` days after MONDAY (0 = Monday), at `hour`:`minute` UTC.
fn at(day: i64, hour: i64, minute: i64) -> Timestamp {
    Timestamp::from_unix_micros((MONDAY + day * 86_400 + hour * 3_600 + minute * 60) * 1_000_000)
}

fn now() -> Timestamp {
    at(0, 12, 0)
}

fn bounds(min: u32, max: u32) -> NodeBounds {
    NodeBounds::new(min, max).expect("valid bounds")
}

/// `current` nodes, all healthy, none booting, bounds [0, 100], no data at all.
fn pool(current: u32) -> ScaleInput<'static> {
    ScaleInput {
        now: now(),
        current,
        booting: 0,
        healthy: current,
        bounds: bounds(0, 100),
        mean_gpu_utilization: None,
        demand: None,
        history: &[],
    }
}

fn demand(queue_depth: u32, pending_jobs: u32) -> Option<Demand> {
    Some(Demand { pending_jobs, queue_depth, reported_at: at(0, 11, 59) })
}

fn util(current: u32, utilization: f64) -> ScaleInput<'static> {
    ScaleInput { mean_gpu_utilization: Some(utilization), ..pool(current) }
}

/// Samples at `(seconds after now - 1 h, utilization)`.
fn series(points: &[(u64, f64)]) -> Vec<PoolSample> {
    points
        .iter()
        .map(|&(seconds, utilization)| PoolSample {
            at: now() - Duration::from_secs(3_600) + Duration::from_secs(seconds),
            utilization,
        })
        .collect()
}

/// Evenly spaced (30 s) samples in time order.
fn evenly(values: &[f64]) -> Vec<PoolSample> {
    let points: Vec<(u64, f64)> = values.iter().enumerate().map(|(i, &v)| (i as u64 * 30, v)).collect();
    series(&points)
}

fn check(name: &str, decision: &Decision, target: u32, reason: &str) {
    assert_eq!(decision.target, target, "{name}: {}", decision.reason);
    assert!(decision.reason.contains(reason), "{name}: {:?} does not contain {reason:?}", decision.reason);
}

#[test]
fn reactive_rules_and_boundaries() {
    let with_min = |current, healthy, booting, min| ScaleInput {
        healthy,
        booting,
        bounds: bounds(min, 100),
        mean_gpu_utilization: Some(50.0),
        ..pool(current)
    };
    let cases: &[(&str, ScaleInput<'static>, u32, &str)] = &[
        ("exactly scale_up_at holds", util(5, 80.0), 5, "mean GPU utilization 80% is within [20%, 80%]: keeping 5"),
        ("just above scale_up_at adds one", util(5, 80.01), 6, "mean GPU utilization 80.01% > scale_up_at 80%: 5 -> 6"),
        ("well above", util(5, 91.0), 6, "91% > scale_up_at 80%: 5 -> 6"),
        ("exactly scale_down_at holds", util(5, 20.0), 5, "keeping 5"),
        ("just below scale_down_at removes one", util(5, 19.99), 4, "19.99% < scale_down_at 20%: 5 -> 4"),
        ("in between holds", util(5, 50.0), 5, "keeping 5"),
        ("no utilization holds", pool(5), 5, "no GPU utilization reported by ACTIVE nodes: keeping 5"),
        ("NaN holds", util(5, f64::NAN), 5, "GPU utilization is NaN, not a number: keeping 5"),
        ("infinity holds", util(5, f64::INFINITY), 5, "not a number: keeping 5"),
        ("scale down from zero saturates", util(0, 5.0), 0, "0 -> 0"),
        ("scale up at u32::MAX saturates", util(u32::MAX, 95.0), u32::MAX, "-> 4294967295"),
        (
            "fewer healthy than min adds one",
            with_min(3, 2, 0, 3),
            4,
            "2 healthy and 0 booting nodes are fewer than min_nodes 3: 3 -> 4",
        ),
        ("no healthy node at all still adds one", with_min(3, 0, 0, 3), 4, "0 healthy"),
        ("booting nodes cover the deficit", with_min(3, 1, 2, 3), 3, "within"),
        ("booting nodes cover part of it", with_min(3, 1, 1, 3), 4, "1 healthy and 1 booting"),
        ("healthy nodes at min do not add", with_min(3, 3, 0, 3), 3, "within"),
        (
            "inconsistent counts do not panic",
            ScaleInput { healthy: 10, booting: u32::MAX, ..util(2, 50.0) },
            2,
            "within",
        ),
    ];
    for (name, input, target, reason) in cases {
        let decision = Autoscaler::reactive().decide(input);
        assert!(decision.reason.starts_with("reactive: "), "{name}: {}", decision.reason);
        check(name, &decision, *target, reason);
    }
}

#[test]
fn queue_rounds_up_and_never_reads_silence_as_zero() {
    let cases: &[(&str, u32, Option<Demand>, u32, &str)] = &[
        ("no demand reported holds", 10, None, 5, "no demand reported: keeping 5"),
        ("0 jobs", 10, demand(0, 0), 0, "0 jobs waiting"),
        ("1 job", 10, demand(1, 0), 1, "5 -> 1"),
        ("10 jobs", 10, demand(10, 0), 1, "5 -> 1"),
        (
            "11 jobs",
            10,
            demand(11, 0),
            2,
            "11 jobs waiting (queue depth 11, pending 0, reported at 2026-01-05T11:59:00.000000Z) \
             at 10 per node: 5 -> 2",
        ),
        ("pending larger than queue depth", 10, demand(0, 11), 2, "11 jobs waiting (queue depth 0, pending 11"),
        ("queue depth larger than pending", 10, demand(25, 3), 3, "25 jobs waiting"),
        ("one job per node", 1, demand(7, 0), 7, "5 -> 7"),
        ("u32::MAX jobs, one per node", 1, demand(u32::MAX, u32::MAX), u32::MAX, "-> 4294967295"),
        ("u32::MAX jobs, ten per node", 10, demand(u32::MAX, 0), 429_496_730, "-> 429496730"),
    ];
    for (name, per_node, demand, target, reason) in cases {
        let autoscaler = Autoscaler::Queue { jobs_per_node: NonZeroU32::new(*per_node).expect("not zero") };
        let decision = autoscaler.decide(&ScaleInput { demand: *demand, ..pool(5) });
        assert!(decision.reason.starts_with("queue: "), "{name}: {}", decision.reason);
        check(name, &decision, *target, reason);
    }
}

#[test]
fn schedule_windows_by_hour_day_wrap_and_offset() {
    assert_eq!(at(0, 0, 0).as_datetime().weekday(), Weekday::Mon, "the tests' day 0 is a Monday");
    let schedule = vec![
        ScheduleEntry::new(Weekdays::MONDAY_TO_FRIDAY, 9, 17, 5, 20).expect("valid"),
        ScheduleEntry::new([Weekday::Fri].into_iter().collect(), 22, 6, 8, 8).expect("valid"),
    ];
    let scheduled = |offset_minutes: i32, fallback: bool| Autoscaler::Scheduled {
        utc_offset: FixedOffset::east_opt(offset_minutes * 60).expect("valid offset"),
        schedule: schedule.clone(),
        fallback: fallback.then(|| Box::new(Autoscaler::reactive())),
    };
    // (name, offset in minutes, fallback?, input, target, reason). The fallback is reactive
    // and the pool sits at 50 % unless a row says otherwise, so it holds.
    let cases: &[(&str, i32, bool, ScaleInput<'static>, u32, &str)] = &[
        (
            "before the window",
            0,
            true,
            ScaleInput { now: at(0, 8, 59), ..util(4, 50.0) },
            4,
            "no schedule entry active at Mon 08:59 +00:00; reactive: mean GPU utilization 50% is within",
        ),
        (
            "window start is inclusive",
            0,
            true,
            ScaleInput { now: at(0, 9, 0), ..util(4, 50.0) },
            5,
            "entry 0 (Mon-Fri 09:00-17:00, bounds [5, 20]) active at Mon 09:00 +00:00; reactive:",
        ),
        ("last minute of the window", 0, true, ScaleInput { now: at(0, 16, 59), ..util(4, 50.0) }, 5, "entry 0"),
        (
            "window end is exclusive",
            0,
            true,
            ScaleInput { now: at(0, 17, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active",
        ),
        (
            "weekday window skips Saturday",
            0,
            true,
            ScaleInput { now: at(5, 10, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active at Sat 10:00",
        ),
        (
            "wrapping window before midnight",
            0,
            true,
            ScaleInput { now: at(4, 22, 0), ..util(4, 50.0) },
            8,
            "entry 1 (Fri 22:00-06:00, bounds [8, 8]) active at Fri 22:00",
        ),
        (
            "wrapping window after midnight belongs to Friday",
            0,
            true,
            ScaleInput { now: at(5, 2, 0), ..util(4, 50.0) },
            8,
            "entry 1",
        ),
        ("wrapping window last minute", 0, true, ScaleInput { now: at(5, 5, 59), ..util(4, 50.0) }, 8, "entry 1"),
        (
            "wrapping window end is exclusive",
            0,
            true,
            ScaleInput { now: at(5, 6, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active",
        ),
        (
            "Friday early morning follows Thursday",
            0,
            true,
            ScaleInput { now: at(4, 2, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active at Fri 02:00",
        ),
        (
            "Saturday night starts no window",
            0,
            true,
            ScaleInput { now: at(5, 23, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active",
        ),
        (
            "positive offset moves the window earlier in UTC",
            120,
            true,
            ScaleInput { now: at(0, 7, 0), ..util(4, 50.0) },
            5,
            "active at Mon 09:00 +02:00",
        ),
        (
            "negative offset crosses the date line back",
            -300,
            true,
            ScaleInput { now: at(1, 1, 0), ..util(4, 50.0) },
            4,
            "no schedule entry active at Mon 20:00 -05:00",
        ),
        (
            "negative offset inside the window",
            -300,
            true,
            ScaleInput { now: at(1, 14, 0), ..util(4, 50.0) },
            5,
            "active at Tue 09:00 -05:00",
        ),
        (
            "fallback judges health against the window's min",
            0,
            true,
            ScaleInput { now: at(0, 10, 0), healthy: 4, ..util(6, 50.0) },
            7,
            "4 healthy and 0 booting nodes are fewer than min_nodes 5: 6 -> 7",
        ),
        (
            "fallback answer clamped to the window",
            0,
            true,
            ScaleInput { now: at(4, 23, 0), ..util(10, 90.0) },
            8,
            "10 -> 11; within the window's bounds: 10 -> 8",
        ),
        (
            "no fallback: current raised into the window",
            0,
            false,
            ScaleInput { now: at(0, 10, 0), ..pool(4) },
            5,
            "active at Mon 10:00 +00:00: keeping 4; within the window's bounds: 4 -> 5",
        ),
        (
            "no fallback, no window: keeps current",
            0,
            false,
            ScaleInput { now: at(0, 20, 0), ..pool(4) },
            4,
            "no schedule entry active at Mon 20:00 +00:00: keeping 4",
        ),
    ];
    for (name, offset, fallback, input, target, reason) in cases {
        let decision = scheduled(*offset, *fallback).decide(input);
        assert!(decision.reason.starts_with("scheduled: "), "{name}: {}", decision.reason);
        check(name, &decision, *target, reason);
    }
}

#[test]
fn predictive_trends_in_time_order() {
    let rising = evenly(&[50.0, 60.0, 70.0, 80.0]);
    let mut reversed = rising.clone();
    reversed.reverse();
    let shuffled = vec![rising[2], rising[0], rising[3], rising[1]];
    let with_nan = {
        let mut samples = rising.clone();
        samples.insert(2, PoolSample { at: rising[1].at + Duration::from_secs(15), utilization: f64::NAN });
        samples
    };
    let reactive = || Some(Box::new(Autoscaler::reactive()));
    // (name, lookback, fallback, history, input, target, reason)
    type Row = (&'static str, usize, Option<Box<Autoscaler>>, Vec<PoolSample>, ScaleInput<'static>, u32, &'static str);
    let cases: Vec<Row> = vec![
        (
            "rising trend scales ahead",
            10,
            None,
            rising.clone(),
            pool(4),
            5,
            "trend +10.00 points per sample over 4 samples, predicted 92% > scale_up_at 80%: 4 -> 5",
        ),
        ("reverse arrival order is the same trend", 10, None, reversed, pool(4), 5, "predicted 92%"),
        ("shuffled arrival order is the same trend", 10, None, shuffled, pool(4), 5, "predicted 92%"),
        ("NaN samples are skipped", 10, None, with_nan, pool(4), 5, "over 4 samples"),
        (
            "steep rise adds several",
            10,
            None,
            evenly(&[40.0, 60.0, 80.0, 100.0]),
            pool(4),
            7,
            "predicted 124% > scale_up_at 80%: 4 -> 7",
        ),
        (
            "flat above the threshold scales to bring it under",
            10,
            None,
            evenly(&[85.0, 85.0, 85.0]),
            pool(4),
            5,
            "trend +0.00 points per sample over 3 samples, predicted 85%",
        ),
        (
            "flat below the threshold holds",
            10,
            None,
            evenly(&[70.0, 70.0, 70.0]),
            pool(4),
            4,
            "predicted 70% is not above scale_up_at 80%: keeping 4",
        ),
        (
            "falling trend holds",
            10,
            None,
            evenly(&[90.0, 80.0, 70.0, 60.0]),
            pool(4),
            4,
            "trend -10.00 points per sample over 4 samples, predicted 48% is not above",
        ),
        (
            "only the lookback window counts",
            4,
            None,
            evenly(&[10.0, 10.0, 10.0, 50.0, 60.0, 70.0, 80.0]),
            pool(4),
            5,
            "over 4 samples, predicted 92%",
        ),
        (
            "one sample is no trend",
            10,
            None,
            evenly(&[95.0]),
            pool(4),
            4,
            "1 usable samples in the lookback window, a trend needs 2: keeping 4",
        ),
        ("no history is no trend", 10, None, Vec::new(), pool(4), 4, "0 usable samples"),
        (
            "one instant is no trend",
            10,
            None,
            series(&[(0, 50.0), (0, 90.0)]),
            pool(4),
            4,
            "all samples share one timestamp, no trend: keeping 4",
        ),
        (
            "falling trend defers to the fallback",
            10,
            reactive(),
            evenly(&[30.0, 20.0, 10.0]),
            util(4, 10.0),
            3,
            "is not above scale_up_at 80%; reactive: mean GPU utilization 10% < scale_down_at 20%: 4 -> 3",
        ),
        (
            "no history defers to the fallback",
            10,
            reactive(),
            Vec::new(),
            util(4, 90.0),
            5,
            "a trend needs 2; reactive:",
        ),
        ("empty pool stays empty", 10, None, rising.clone(), pool(0), 0, "0 -> 0"),
    ];
    for (name, lookback_window, fallback, history, input, target, reason) in cases {
        let autoscaler = Autoscaler::Predictive { lookback_window, growth_factor: 1.2, scale_up_at: 80.0, fallback };
        let decision = autoscaler.decide(&ScaleInput { history: &history, ..input });
        assert!(decision.reason.starts_with("predictive: "), "{name}: {}", decision.reason);
        check(name, &decision, target, reason);
    }
}

#[test]
fn composite_modes() {
    // queue wants 3 (25 jobs), reactive wants 6 (90 % on 5), a second queue at 5 per node wants 5.
    let input = ScaleInput { demand: demand(25, 0), ..util(5, 90.0) };
    let queue_of = |n| Autoscaler::Queue { jobs_per_node: NonZeroU32::new(n).expect("not zero") };
    let pair = || vec![queue_of(10), Autoscaler::reactive()];
    let cases: &[(&str, Autoscaler, u32, &str)] = &[
        ("max", Autoscaler::composite(CompositeMode::Max, pair()), 6, "composite: max of [queue: 25 jobs waiting"),
        (
            "min",
            Autoscaler::composite(CompositeMode::Min, pair()),
            3,
            "at 10 per node: 5 -> 3; reactive: mean GPU utilization 90% > scale_up_at 80%: 5 -> 6]: 5 -> 3",
        ),
        ("avg rounds 4.5 up", Autoscaler::composite(CompositeMode::Avg, pair()), 5, "avg of ["),
        ("avg exact", Autoscaler::composite(CompositeMode::Avg, vec![queue_of(10), queue_of(5)]), 4, "]: 5 -> 4"),
        ("single member", Autoscaler::composite(CompositeMode::Min, vec![queue_of(5)]), 5, "min of [queue:"),
        (
            "nested",
            Autoscaler::composite(
                CompositeMode::Max,
                vec![Autoscaler::composite(CompositeMode::Min, pair()), queue_of(5)],
            ),
            5,
            "max of [composite: min of [",
        ),
        (
            "no members holds",
            Autoscaler::composite(CompositeMode::Avg, Vec::new()),
            5,
            "composite: no member autoscalers: keeping 5",
        ),
    ];
    for (name, autoscaler, target, reason) in cases {
        check(name, &autoscaler.decide(&input), *target, reason);
    }
}

#[test]
fn plan_enforces_bounds_min_and_cooldown() {
    let cooldown = Duration::from_secs(300);
    let busy = util(5, 90.0);
    let in_bounds = |input: ScaleInput<'static>, min, max| ScaleInput { bounds: bounds(min, max), ..input };
    let reactive = Some(Autoscaler::reactive());
    let queue = Some(Autoscaler::queue());
    // (name, autoscaler, input, last scale, target, reason)
    type Row = (&'static str, Option<Autoscaler>, ScaleInput<'static>, Option<Timestamp>, u32, &'static str);
    let cases: Vec<Row> = vec![
        (
            "no autoscaler raises to min",
            None,
            in_bounds(pool(1), 3, 10),
            None,
            3,
            "no autoscaling: raising to min_nodes 3: 1 -> 3",
        ),
        (
            "no autoscaler at min keeps",
            None,
            in_bounds(pool(3), 3, 10),
            None,
            3,
            "no autoscaling: 3 is at least min_nodes 3: keeping 3",
        ),
        ("no autoscaler leaves a pool above max alone", None, in_bounds(pool(12), 3, 10), None, 12, "keeping 12"),
        (
            "no autoscaler raises to min in cooldown",
            None,
            in_bounds(pool(1), 3, 10),
            Some(now() - Duration::from_secs(10)),
            3,
            "no autoscaling: raising to min_nodes 3: 1 -> 3",
        ),
        ("scale up", reactive.clone(), busy, None, 6, "reactive: mean GPU utilization 90% > scale_up_at 80%: 5 -> 6"),
        (
            "capped at max",
            reactive.clone(),
            in_bounds(util(10, 90.0), 0, 10),
            None,
            10,
            "10 -> 11; capped at max_nodes 10",
        ),
        (
            "above max comes down to max",
            reactive.clone(),
            in_bounds(util(12, 50.0), 0, 10),
            None,
            10,
            "keeping 12; capped at max_nodes 10",
        ),
        (
            "raised to min",
            reactive.clone(),
            in_bounds(util(1, 50.0), 3, 10),
            None,
            3,
            "1 healthy and 0 booting nodes are fewer than min_nodes 3: 1 -> 2; raised to min_nodes 3",
        ),
        (
            "scale down stops at min",
            reactive.clone(),
            in_bounds(util(3, 5.0), 3, 10),
            None,
            3,
            "3 -> 2; raised to min_nodes 3",
        ),
        ("no data keeps size", reactive.clone(), in_bounds(pool(5), 1, 10), None, 5, "no GPU utilization"),
        (
            "queue without demand keeps size, not min",
            queue.clone(),
            in_bounds(pool(5), 1, 10),
            None,
            5,
            "no demand reported: keeping 5",
        ),
        (
            "empty queue shrinks to min",
            queue.clone(),
            ScaleInput { demand: demand(0, 0), ..in_bounds(pool(5), 1, 10) },
            None,
            1,
            "5 -> 0; raised to min_nodes 1",
        ),
        (
            "cooldown 1 µs before expiry holds",
            reactive.clone(),
            busy,
            Some(now() - cooldown + Duration::from_micros(1)),
            5,
            "in cooldown until 2026-01-05T12:00:00.000001Z (last scale at 2026-01-05T11:55:00.000001Z): keeping 5",
        ),
        ("cooldown expired exactly scales", reactive.clone(), busy, Some(now() - cooldown), 6, "5 -> 6"),
        ("cooldown long past scales", reactive.clone(), busy, Some(now() - Duration::from_secs(3_600)), 6, "5 -> 6"),
        (
            "cooldown holds a scale down",
            reactive.clone(),
            util(5, 5.0),
            Some(now() - Duration::from_secs(10)),
            5,
            "5 -> 4; in cooldown until",
        ),
        (
            "cooldown still raises to min",
            queue.clone(),
            ScaleInput { demand: demand(50, 0), ..in_bounds(pool(1), 3, 10) },
            Some(now() - Duration::from_secs(10)),
            3,
            "1 -> 5; in cooldown until 2026-01-05T12:04:50.000000Z (last scale at 2026-01-05T11:59:50.000000Z): \
             raising only to min_nodes 3: 1 -> 3",
        ),
        (
            "cooldown does not lower a pool above max",
            reactive.clone(),
            in_bounds(util(12, 50.0), 0, 10),
            Some(now() - Duration::from_secs(10)),
            12,
            "keeping 12",
        ),
        (
            "last scale in the future holds",
            reactive.clone(),
            busy,
            Some(now() + Duration::from_secs(3_600)),
            5,
            "in cooldown",
        ),
        ("zero cooldown scales at once", reactive.clone(), busy, Some(now()), 6, "5 -> 6"),
    ];
    for (name, autoscaler, input, last_scale, target, reason) in cases {
        let zero = name.starts_with("zero");
        let decision = plan(autoscaler.as_ref(), &input, if zero { Duration::ZERO } else { cooldown }, last_scale);
        check(name, &decision, target, reason);
    }
    // Nothing to change: cooldown is not even mentioned.
    let steady = plan(Some(&Autoscaler::reactive()), &util(5, 50.0), cooldown, Some(now()));
    assert_eq!(steady, Decision::new(5, "reactive: mean GPU utilization 50% is within [20%, 80%]: keeping 5"));
}

#[test]
fn validation_names_the_field() {
    let bad_reactive = || Autoscaler::Reactive { scale_up_at: 80.0, scale_down_at: 80.0 };
    let predictive = |lookback_window, growth_factor, scale_up_at| Autoscaler::Predictive {
        lookback_window,
        growth_factor,
        scale_up_at,
        fallback: None,
    };
    let entry = ScheduleEntry::new(Weekdays::EVERY_DAY, 0, 24, 1, 2).expect("valid");
    let cases: &[(&str, Autoscaler, &str)] = &[
        (
            "thresholds equal",
            bad_reactive(),
            "invalid scale_down_at: 80 must be below scale_up_at 80, or the pool would flap",
        ),
        (
            "scale_down_at above scale_up_at",
            Autoscaler::Reactive { scale_up_at: 30.0, scale_down_at: 60.0 },
            "invalid scale_down_at",
        ),
        (
            "scale_up_at above 100",
            Autoscaler::Reactive { scale_up_at: 120.0, scale_down_at: 20.0 },
            "invalid scale_up_at: 120 is not a utilization percentage (0 to 100)",
        ),
        ("NaN scale_up_at", Autoscaler::Reactive { scale_up_at: f64::NAN, scale_down_at: 20.0 }, "invalid scale_up_at"),
        (
            "negative scale_down_at",
            Autoscaler::Reactive { scale_up_at: 80.0, scale_down_at: -1.0 },
            "invalid scale_down_at",
        ),
        (
            "lookback of one",
            predictive(1, 1.2, 80.0),
            "invalid lookback_window: 1 is too small: a trend needs at least 2 samples",
        ),
        ("zero growth", predictive(10, 0.0, 80.0), "invalid growth_factor: 0 must be a number above 0"),
        ("NaN growth", predictive(10, f64::NAN, 80.0), "invalid growth_factor"),
        ("infinite growth", predictive(10, f64::INFINITY, 80.0), "invalid growth_factor"),
        ("zero predictive threshold", predictive(10, 1.2, 0.0), "invalid scale_up_at: must be above 0"),
        ("predictive fallback", Autoscaler::predictive(Some(bad_reactive())), "invalid fallback.scale_down_at"),
        ("empty schedule", Autoscaler::scheduled(Vec::new(), None), "invalid schedule: needs at least one entry"),
        (
            "scheduled fallback",
            Autoscaler::scheduled(vec![entry], Some(bad_reactive())),
            "invalid fallback.scale_down_at",
        ),
        (
            "empty composite",
            Autoscaler::composite(CompositeMode::Max, Vec::new()),
            "invalid autoscalers: needs at least one autoscaler",
        ),
        (
            "nested member",
            Autoscaler::composite(
                CompositeMode::Max,
                vec![Autoscaler::queue(), Autoscaler::composite(CompositeMode::Min, vec![predictive(0, 1.2, 80.0)])],
            ),
            "invalid autoscalers[1].autoscalers[0].lookback_window",
        ),
    ];
    for (name, autoscaler, message) in cases {
        let error = autoscaler.validate().expect_err(name).to_string();
        assert!(error.starts_with(message), "{name}: {error:?} does not start with {message:?}");
    }
    let defaults = [
        Autoscaler::reactive(),
        Autoscaler::queue(),
        Autoscaler::predictive(Some(Autoscaler::reactive())),
        Autoscaler::scheduled(vec![entry], Some(Autoscaler::queue())),
        Autoscaler::composite(CompositeMode::Avg, vec![Autoscaler::reactive(), Autoscaler::queue()]),
    ];
    for autoscaler in defaults {
        assert_eq!(autoscaler.validate(), Ok(()), "{autoscaler:?}");
    }
}

#[test]
fn schedule_entries_and_bounds_are_valid_by_construction() {
    let every = Weekdays::EVERY_DAY;
    let cases: &[(&str, Weekdays, u32, u32, u32, u32, &str)] = &[
        ("no day", Weekdays::NONE, 9, 17, 1, 2, "invalid days: needs at least one day"),
        ("start past 23", every, 24, 2, 1, 2, "invalid start_hour: 24 is not an hour (0 to 23)"),
        ("end of 0", every, 22, 0, 1, 2, "invalid end_hour: 0 is not an end hour (1 to 24)"),
        ("end past 24", every, 9, 25, 1, 2, "invalid end_hour: 25 is not an end hour (1 to 24)"),
        ("empty window", every, 9, 9, 1, 2, "invalid end_hour: 9 equals start_hour; for a whole day use 0 to 24"),
        ("min above max", every, 9, 17, 3, 2, "invalid min_nodes: 3 is above max_nodes 2"),
    ];
    for (name, days, start, end, min, max, message) in cases {
        let error = ScheduleEntry::new(*days, *start, *end, *min, *max).expect_err(name);
        assert_eq!(error.to_string(), *message, "{name}");
    }
    for (start, end) in [(0, 24), (9, 17), (23, 1), (23, 24), (0, 1)] {
        assert!(ScheduleEntry::new(every, start, end, 0, 0).is_ok(), "{start} to {end}");
    }
    let days: Weekdays = [Weekday::Sun, Weekday::Wed].into_iter().collect();
    assert_eq!(days.to_string(), "Wed,Sun");
    assert!(days.contains(Weekday::Sun) && !days.contains(Weekday::Mon));
    assert_eq!(NodeBounds::new(5, 3).expect_err("min above max").field, "min_nodes");
    assert_eq!(bounds(2, 7).clamp(0), 2);
    assert_eq!(bounds(2, 7).clamp(9), 7);
    assert_eq!(bounds(2, 7).clamp(4), 4);
}

#[test]
fn from_spec_converts_and_names_spec_fields() {
    let window = |days: &[&str], start_hour, end_hour, min_nodes, max_nodes| ScheduleWindow {
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        start_hour,
        end_hour,
        min_nodes,
        max_nodes,
    };
    let reactive = AutoscalingSpec::Reactive { scale_up_at: 70.0, scale_down_at: 30.0 };
    let scheduled = |schedule| AutoscalingSpec::Scheduled { schedule, fallback: Some(Box::new(reactive.clone())) };
    let cases: &[(&str, AutoscalingSpec, &str)] = &[
        (
            "zero jobs per node",
            AutoscalingSpec::Queue { jobs_per_node: 0 },
            "invalid jobs_per_node: must be at least 1",
        ),
        (
            "unknown day",
            scheduled(vec![window(&["monday", "Funday"], 9, 17, 1, 2)]),
            "invalid schedule[0].days[1]: \"Funday\" is not a day",
        ),
        (
            "bad hours",
            scheduled(vec![window(&[], 9, 17, 1, 2), window(&[], 25, 2, 1, 2)]),
            "invalid schedule[1].start_hour",
        ),
        ("window min above max", scheduled(vec![window(&["sat"], 9, 17, 3, 2)]), "invalid schedule[0].min_nodes"),
        ("empty schedule", scheduled(Vec::new()), "invalid schedule: needs at least one entry"),
        (
            "fallback",
            AutoscalingSpec::Predictive {
                lookback_window: 10,
                growth_factor: 1.2,
                fallback: Some(Box::new(AutoscalingSpec::Queue { jobs_per_node: 0 })),
            },
            "invalid fallback.jobs_per_node",
        ),
        (
            "composite member",
            AutoscalingSpec::Composite {
                mode: CompositeMode::Max,
                autoscalers: vec![
                    reactive.clone(),
                    AutoscalingSpec::Reactive { scale_up_at: 50.0, scale_down_at: 50.0 },
                ],
            },
            "invalid autoscalers[1].scale_down_at",
        ),
    ];
    for (name, spec, message) in cases {
        let error = Autoscaler::from_spec(spec, UTC).expect_err(name).to_string();
        assert!(error.starts_with(message), "{name}: {error:?} does not start with {message:?}");
    }

    let plus_one = FixedOffset::east_opt(3_600).expect("valid offset");
    let spec = AutoscalingSpec::Composite {
        mode: CompositeMode::Avg,
        autoscalers: vec![
            AutoscalingSpec::Queue { jobs_per_node: 4 },
            AutoscalingSpec::Scheduled {
                schedule: vec![window(&["Mon", "tuesday"], 22, 6, 2, 9), window(&[], 0, 24, 0, 3)],
                fallback: None,
            },
            AutoscalingSpec::Predictive { lookback_window: 6, growth_factor: 1.5, fallback: Some(Box::new(reactive)) },
        ],
    };
    let expected = Autoscaler::composite(
        CompositeMode::Avg,
        vec![
            Autoscaler::Queue { jobs_per_node: NonZeroU32::new(4).expect("not zero") },
            Autoscaler::Scheduled {
                utc_offset: plus_one,
                schedule: vec![
                    ScheduleEntry::new([Weekday::Mon, Weekday::Tue].into_iter().collect(), 22, 6, 2, 9).expect("valid"),
                    ScheduleEntry::new(Weekdays::EVERY_DAY, 0, 24, 0, 3).expect("valid"),
                ],
                fallback: None,
            },
            Autoscaler::Predictive {
                lookback_window: 6,
                growth_factor: 1.5,
                scale_up_at: DEFAULT_SCALE_UP_AT,
                fallback: Some(Box::new(Autoscaler::Reactive { scale_up_at: 70.0, scale_down_at: 30.0 })),
            },
        ],
    );
    assert_eq!(Autoscaler::from_spec(&spec, plus_one), Ok(expected));
}

/// Whatever the input and however odd an unvalidated autoscaler, `plan` answers within the
/// pool's bounds and never panics.
#[test]
fn plan_never_panics_and_stays_in_bounds() {
    let autoscalers = [
        Autoscaler::reactive(),
        Autoscaler::Reactive { scale_up_at: f64::NAN, scale_down_at: f64::INFINITY },
        Autoscaler::queue(),
        Autoscaler::predictive(None),
        Autoscaler::Predictive { lookback_window: 0, growth_factor: f64::NAN, scale_up_at: 0.0, fallback: None },
        Autoscaler::Predictive { lookback_window: usize::MAX, growth_factor: 1e308, scale_up_at: -1.0, fallback: None },
        Autoscaler::Predictive { lookback_window: 2, growth_factor: 1e308, scale_up_at: 1e-308, fallback: None },
        Autoscaler::scheduled(
            vec![ScheduleEntry::new(Weekdays::EVERY_DAY, 23, 1, u32::MAX, u32::MAX).expect("valid")],
            Some(Autoscaler::reactive()),
        ),
        Autoscaler::composite(CompositeMode::Avg, Vec::new()),
        Autoscaler::composite(CompositeMode::Avg, vec![Autoscaler::queue(), Autoscaler::predictive(None)]),
    ];
    let histories = [
        Vec::new(),
        evenly(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
        evenly(&[1e308, -1e308, 1e308]),
        evenly(&[0.0, 100.0, 1e300]),
        series(&[(0, 50.0), (0, 60.0)]),
    ];
    let utilizations = [None, Some(f64::NAN), Some(f64::NEG_INFINITY), Some(-5.0), Some(0.0), Some(100.0), Some(1e308)];
    let counts = [0, 1, 5, u32::MAX];
    let demands = [None, demand(0, 0), demand(u32::MAX, u32::MAX)];
    let pool_bounds = bounds(2, 7);
    for autoscaler in &autoscalers {
        for history in &histories {
            for &mean_gpu_utilization in &utilizations {
                for &current in &counts {
                    for &healthy in &counts {
                        for &demand in &demands {
                            let input = ScaleInput {
                                now: at(0, 23, 30),
                                current,
                                booting: current / 2,
                                healthy,
                                bounds: pool_bounds,
                                mean_gpu_utilization,
                                demand,
                                history,
                            };
                            let decision = plan(Some(autoscaler), &input, Duration::MAX, None);
                            assert!(
                                (2..=7).contains(&decision.target),
                                "{autoscaler:?} on {input:?} gave {decision:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
