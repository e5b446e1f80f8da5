//! The built-in policy (SPEC 8), case by case.

mod support;

use std::sync::Arc;

use bosun_core::{CheckResult, EventType as T, Health, HealthSystem as S, NodeId, xid};
use bosun_policy::{BUILTIN_POLICY_YAML, Policy};
use support::event;

fn builtin() -> Policy {
    Policy::builtin().expect("the built-in policy compiles")
}

/// Asserts each case classifies as expected with no rule errors.
fn assert_cases(cases: &[(bosun_core::HealthEvent, Health, Option<&str>)]) {
    let policy = builtin();
    for (event, health, rule) in cases {
        let verdict = policy.classify(event);
        assert_eq!((verdict.health, verdict.rule.as_deref()), (*health, *rule), "{event:?}");
        assert_eq!(verdict.errors, Vec::<String>::new(), "{event:?}");
    }
}

#[test]
fn every_fatal_xid_is_unhealthy() {
    let cases: Vec<_> = xid::fatal_codes()
        .map(|code| {
            (event(T::Xid, S::Driver, &[("xid_code", &code.to_string())]), Health::Unhealthy, Some("fatal-xid"))
        })
        .collect();
    assert_eq!(cases.len(), 20);
    assert_cases(&cases);
}

#[test]
fn other_xids_are_degraded() {
    let recoverable =
        |metrics: &[(&str, &str)]| (event(T::Xid, S::Driver, metrics), Health::Degraded, Some("recoverable-xid"));
    let mut cases = vec![
        recoverable(&[("xid_code", "8")]),
        recoverable(&[("xid_code", "999")]),
        recoverable(&[("xid_code", "not-a-number")]),
        recoverable(&[]),
    ];
    cases.extend(
        xid::XIDS
            .iter()
            .filter(|x| !x.fatal)
            .map(|x| recoverable(&[("xid_code", &x.code.to_string())]))
            .collect::<Vec<_>>(),
    );
    assert_cases(&cases);
}

#[test]
fn thermal_thresholds() {
    let thermal = |temperature: &str| event(T::Thermal, S::Thermal, &[("temperature", temperature)]);
    assert_cases(&[
        (thermal("84"), Health::Healthy, Some("default")),
        (thermal("84.9"), Health::Healthy, Some("default")),
        (thermal("85"), Health::Degraded, Some("thermal-warning")),
        (thermal("94"), Health::Degraded, Some("thermal-warning")),
        (thermal("94.99"), Health::Degraded, Some("thermal-warning")),
        (thermal("95"), Health::Unhealthy, Some("thermal-critical")),
        (thermal("95.000000"), Health::Unhealthy, Some("thermal-critical")),
        (thermal("120"), Health::Unhealthy, Some("thermal-critical")),
        (event(T::Thermal, S::Thermal, &[]), Health::Healthy, Some("default")),
    ]);
}

#[test]
fn ecc_errors() {
    assert_cases(&[
        (event(T::EccSbe, S::Mem, &[("ecc_sbe_count", "100")]), Health::Healthy, Some("default")),
        (event(T::EccSbe, S::Mem, &[("ecc_sbe_count", "101")]), Health::Degraded, Some("ecc-sbe-high")),
        (event(T::EccSbe, S::Mem, &[]), Health::Healthy, Some("default")),
        (event(T::EccDbe, S::Mem, &[]), Health::Unhealthy, Some("ecc-dbe")),
        (event(T::EccDbe, S::Unknown, &[("ecc_dbe_count", "0")]), Health::Unhealthy, Some("ecc-dbe")),
        (event(T::Memory, S::Mem, &[("ecc_dbe_count", "1")]), Health::Unhealthy, Some("ecc-dbe")),
        (event(T::Unknown, S::Mem, &[("ecc_dbe_count", "3")]), Health::Unhealthy, Some("ecc-dbe")),
        (event(T::Memory, S::Mem, &[("ecc_dbe_count", "0")]), Health::Healthy, Some("default")),
        (event(T::Memory, S::Mem, &[]), Health::Healthy, Some("default")),
        (event(T::Memory, S::Pcie, &[("ecc_dbe_count", "1")]), Health::Degraded, Some("pcie-error")),
    ]);
}

#[test]
fn links_and_power_are_degraded_by_type_or_by_system() {
    assert_cases(&[
        (event(T::Nvlink, S::Unknown, &[]), Health::Degraded, Some("nvlink-error")),
        (event(T::Unknown, S::Nvlink, &[]), Health::Degraded, Some("nvlink-error")),
        (event(T::Pcie, S::Unknown, &[]), Health::Degraded, Some("pcie-error")),
        (event(T::Unknown, S::Pcie, &[]), Health::Degraded, Some("pcie-error")),
        (event(T::Power, S::Unknown, &[]), Health::Degraded, Some("power-warning")),
        (event(T::Unknown, S::Power, &[]), Health::Degraded, Some("power-warning")),
    ]);
}

#[test]
fn everything_else_is_healthy() {
    assert_cases(&[
        (event(T::Unknown, S::Unknown, &[]), Health::Healthy, Some("default")),
        (event(T::DriverError, S::Driver, &[]), Health::Healthy, Some("default")),
        (event(T::Memory, S::Sm, &[]), Health::Healthy, Some("default")),
    ]);
}

/// One XID table for everything: the policy's fatal list is the core table's.
#[test]
fn the_fatal_xid_list_is_the_core_table() {
    let policy = builtin();
    let fatal = policy.rules().iter().find(|rule| rule.name() == "fatal-xid").expect("a fatal-xid rule");
    let condition = fatal.condition();
    let list = condition
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("the condition holds one list literal");
    let codes: Vec<u32> = list.split(',').map(|code| code.trim().parse().expect("a code")).collect();
    assert_eq!(codes, xid::fatal_codes().collect::<Vec<_>>());
}

#[test]
fn rules_come_in_the_specified_order() {
    let policy = builtin();
    let rules: Vec<(&str, Health)> = policy.rules().iter().map(|rule| (rule.name(), rule.result())).collect();
    assert_eq!(
        rules,
        [
            ("fatal-xid", Health::Unhealthy),
            ("recoverable-xid", Health::Degraded),
            ("ecc-dbe", Health::Unhealthy),
            ("ecc-sbe-high", Health::Degraded),
            ("thermal-critical", Health::Unhealthy),
            ("thermal-warning", Health::Degraded),
            ("nvlink-error", Health::Degraded),
            ("pcie-error", Health::Degraded),
            ("power-warning", Health::Degraded),
            ("default", Health::Healthy),
        ]
    );
    assert_eq!(policy.name(), "default");
    assert_eq!(policy.version(), "1");
    assert_eq!(policy.source(), BUILTIN_POLICY_YAML);
    assert!(policy.description().contains("XID"));
}

#[test]
fn a_report_is_the_worst_of_its_checks_and_events() {
    let policy = builtin();
    let node = NodeId::new("gpu-node-1").expect("valid id");
    let at = bosun_core::Timestamp::from_unix_micros(1_780_000_000_000_000);
    let check =
        |status| CheckResult { name: "gpu".into(), status, message: String::new(), details: Default::default() };
    let thermal = |temperature| event(T::Thermal, S::Thermal, &[("temperature", temperature)]);
    let fatal = event(T::Xid, S::Driver, &[("xid_code", "79")]);
    let cases = [
        (vec![], vec![], Health::Healthy),
        (vec![check(Health::Healthy)], vec![thermal("70")], Health::Healthy),
        (vec![check(Health::Healthy)], vec![thermal("70"), thermal("90")], Health::Degraded),
        (vec![], vec![thermal("90"), fatal.clone(), thermal("70")], Health::Unhealthy),
        (vec![check(Health::Unhealthy)], vec![thermal("70")], Health::Unhealthy),
        (vec![check(Health::Degraded)], vec![event(T::Nvlink, S::Nvlink, &[])], Health::Degraded),
    ];
    for (results, events, expected) in cases {
        let report = policy.report(node.clone(), at, results, events.clone());
        assert_eq!(report.health, expected, "{events:?}");
        assert_eq!(report.events.len(), events.len());
        let kept: Vec<_> = report.events.iter().map(|classified| classified.event.clone()).collect();
        assert_eq!(kept, events, "events keep their order");
    }
}

#[test]
fn a_policy_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    let policy = Arc::new(builtin());
    let handles: Vec<_> = (0..4)
        .map(|gpu| {
            let policy = Arc::clone(&policy);
            std::thread::spawn(move || {
                let mut fatal = event(T::Xid, S::Driver, &[("xid_code", "79")]);
                fatal.gpu_index = gpu;
                (0..100).map(|_| policy.classify(&fatal).health).all(|health| health == Health::Unhealthy)
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().expect("no panic"));
    }
}
