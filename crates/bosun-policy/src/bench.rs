//! `bosun bench policy`: single-threaded classification throughput (SPEC 10: at least
//! 100,000 events/s against the built-in policy on one core).
//!
//! A benchmark, never a test: the number depends on the machine and is compared against
//! the target by a person.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bosun_core::{EventType, HealthEvent, HealthSystem, Timestamp};
use serde::Serialize;

use crate::policy::Policy;

/// How long to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchLength {
    /// Classify exactly this many events.
    Events(u64),
    /// Classify events until this much time has passed.
    Duration(Duration),
}

/// The result, printed by the CLI as one JSON line:
/// `{"op":"policy_eval","events":N,"seconds":S,"events_per_s":R}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BenchReport {
    op: &'static str,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

impl BenchReport {
    fn new(events: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        let events_per_s = if seconds > 0.0 { events as f64 / seconds } else { 0.0 };
        Self { op: "policy_eval", events, seconds, events_per_s }
    }

    /// The report as one line of JSON.
    pub fn to_json_line(&self) -> String {
        // A struct of numbers and a static string always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Classifies a realistic mix of events with `policy` on the calling thread.
pub fn run(policy: &Policy, length: BenchLength) -> BenchReport {
    /// How many events pass between two looks at the clock in a timed run.
    const CLOCK_EVERY: u64 = 1024;
    let mix = event_mix();
    let started = Instant::now();
    let mut events = 0;
    for event in mix.iter().cycle() {
        let done = match length {
            BenchLength::Events(limit) => events >= limit,
            BenchLength::Duration(limit) => events % CLOCK_EVERY == 0 && started.elapsed() >= limit,
        };
        if done {
            break;
        }
        black_box(policy.classify(black_box(event)));
        events += 1;
    }
    BenchReport::new(events, started.elapsed())
}

/// One kind of event in the mix: type, system, metrics.
type Sample = (EventType, HealthSystem, &'static [(&'static str, &'static str)]);

/// What a fleet reports: XIDs fatal and recoverable (with and without a code), thermal
/// readings on both sides of each threshold, ECC counts, NVLink, PCIe and power events,
/// and events no rule cares about (which run through every rule, the slowest case).
const MIX: [Sample; 20] = [
    (EventType::Xid, HealthSystem::Driver, &[("xid_code", "79")]),
    (EventType::Xid, HealthSystem::Mem, &[("xid_code", "48")]),
    (EventType::Xid, HealthSystem::Sm, &[("xid_code", "13")]),
    (EventType::Xid, HealthSystem::Driver, &[("xid_code", "8")]),
    (EventType::Xid, HealthSystem::Driver, &[("xid_code", "999")]),
    (EventType::Xid, HealthSystem::Driver, &[]),
    (EventType::Thermal, HealthSystem::Thermal, &[("temperature", "71")]),
    (EventType::Thermal, HealthSystem::Thermal, &[("temperature", "84.5")]),
    (EventType::Thermal, HealthSystem::Thermal, &[("temperature", "88")]),
    (EventType::Thermal, HealthSystem::Thermal, &[("temperature", "97")]),
    (EventType::EccSbe, HealthSystem::Mem, &[("ecc_sbe_count", "3")]),
    (EventType::EccSbe, HealthSystem::Mem, &[("ecc_sbe_count", "250")]),
    (EventType::EccDbe, HealthSystem::Mem, &[("ecc_dbe_count", "1")]),
    (EventType::Memory, HealthSystem::Mem, &[("ecc_dbe_count", "0"), ("retired_pages", "2")]),
    (EventType::Nvlink, HealthSystem::Nvlink, &[("link", "3"), ("crc_errors", "12")]),
    (EventType::Pcie, HealthSystem::Pcie, &[("replay_count", "40")]),
    (EventType::Power, HealthSystem::Power, &[("power_watts", "712.5"), ("limit_watts", "700")]),
    (EventType::DriverError, HealthSystem::Driver, &[]),
    (EventType::Unknown, HealthSystem::Unknown, &[]),
    (EventType::Unknown, HealthSystem::Inforom, &[("checksum_ok", "true")]),
];

/// [`MIX`] as events, spread over eight GPUs.
fn event_mix() -> Vec<HealthEvent> {
    let timestamp = Timestamp::from_unix_micros(1_780_000_000_000_000);
    MIX.into_iter()
        .enumerate()
        .map(|(index, (event_type, system, metrics))| HealthEvent {
            timestamp,
            gpu_index: i32::try_from(index % 8).unwrap_or(0),
            gpu_uuid: format!("GPU-6f1c2a3b-0000-4000-8000-00000000000{}", index % 8),
            system,
            event_type,
            metrics: metrics
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            message: format!("{event_type} event on GPU {}", index % 8),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bosun_core::Health;

    use super::*;

    #[test]
    fn runs_the_requested_number_of_events_and_reports_one_json_line() {
        let policy = Policy::builtin().unwrap();
        let report = run(&policy, BenchLength::Events(50));
        assert_eq!(report.events, 50);
        let line: serde_json::Value = serde_json::from_str(&report.to_json_line()).unwrap();
        assert_eq!(line["op"], "policy_eval");
        assert_eq!(line["events"], 50);
        assert!(line["seconds"].is_f64() && line["events_per_s"].is_f64());
        assert!(!report.to_json_line().contains('\n'));
    }

    #[test]
    fn a_timed_run_stops() {
        let policy = Policy::builtin().unwrap();
        let report = run(&policy, BenchLength::Duration(Duration::from_millis(20)));
        assert!(report.events > 0 && report.seconds >= 0.02);
    }

    #[test]
    fn the_mix_exercises_every_outcome_without_rule_errors() {
        let policy = Policy::builtin().unwrap();
        let verdicts: Vec<_> = event_mix().iter().map(|event| policy.classify(event)).collect();
        for health in [Health::Healthy, Health::Degraded, Health::Unhealthy] {
            assert!(verdicts.iter().any(|verdict| verdict.health == health), "{health}");
        }
        assert!(verdicts.iter().all(|verdict| verdict.errors.is_empty()), "{verdicts:?}");
    }
}
