//! The built-in policy (SPEC 8), case by case.

mod support;

use std::sync::Arc;

use bosun_core::{CheckResult, EventType as T, Health, HealthSystem as S, NodeId, RemediationAction as A, xid};
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

/// Each XID class of the catalog -> result, rule and action.
#[test]
fn xids_are_classified_by_the_catalog() {
    let catalog = xid::XidCatalog::builtin();
    let policy = builtin();
    let mut classes = std::collections::BTreeMap::new();
    for entry in catalog.entries() {
        let verdict = policy.classify(&event(T::Xid, S::Driver, &[("xid_code", &entry.code.to_string())]));
        let expected = match entry.action {
            A::Replace => (Health::Unhealthy, "fatal-xid"),
            A::Reboot => (Health::Degraded, "xid-reboot"),
            A::ResetGpu => (Health::Degraded, "xid-reset-gpu"),
            A::RestartApp => (Health::Degraded, "application-xid"),
            A::None => (Health::Degraded, "recoverable-xid"),
        };
        assert_eq!((verdict.health, verdict.rule.as_deref().unwrap_or("-")), expected, "XID {}", entry.code);
        assert_eq!(verdict.action, entry.action, "XID {}", entry.code);
        assert!(verdict.errors.is_empty(), "XID {}: {:?}", entry.code, verdict.errors);
        *classes.entry(entry.action).or_insert(0) += 1;
    }
    assert_eq!(classes.len(), 5, "every class has an XID: {classes:?}");
}

/// SPEC 3.2: application faults never cost a machine; hardware faults are replaced.
#[test]
fn application_xids_are_degraded_and_hardware_xids_replace() {
    let policy = builtin();
    let verdict = |code: &str| policy.classify(&event(T::Xid, S::Driver, &[("xid_code", code)]));
    for code in ["13", "31", "43", "45"] {
        let v = verdict(code);
        assert_eq!((v.health, v.action), (Health::Degraded, A::RestartApp), "XID {code}");
    }
    for code in ["48", "63", "64", "74", "79", "95"] {
        let v = verdict(code);
        assert_eq!((v.health, v.action), (Health::Unhealthy, A::Replace), "XID {code}");
    }
}

#[test]
fn unknown_and_unreadable_xids_are_degraded_without_action() {
    let recoverable =
        |metrics: &[(&str, &str)]| (event(T::Xid, S::Driver, metrics), Health::Degraded, Some("recoverable-xid"));
    let cases = vec![
        recoverable(&[("xid_code", "999")]),
        recoverable(&[("xid_code", "not-a-number")]),
        recoverable(&[("xid_code", "-5")]),
        recoverable(&[]),
    ];
    assert_cases(&cases);
    for (event, _, _) in &cases {
        assert_eq!(builtin().classify(event).action, A::None);
    }
}

/// A policy may override catalog entries; the built-in rules then follow the override.
#[test]
fn a_policy_overrides_the_catalog() {
    let yaml = BUILTIN_POLICY_YAML.replace(
        "rules:\n",
        "xids:\n  - {code: 13, name: site says reboot, action: reboot}\n  - {code: 999, name: vendor XID, action: replace, hardware: true}\nrules:\n",
    );
    let policy = Policy::from_yaml(&yaml).expect("compiles");
    let verdict = |code: &str| policy.classify(&event(T::Xid, S::Driver, &[("xid_code", code)]));
    assert_eq!((verdict("13").action, verdict("13").rule.as_deref()), (A::Reboot, Some("xid-reboot")));
    assert_eq!((verdict("999").health, verdict("999").action), (Health::Unhealthy, A::Replace));
    assert_eq!(policy.xid_catalog().version(), "2026.12+policy");
    assert_eq!(policy.xid_catalog().get(999).map(|x| x.source.as_str()), Some("policy"));
    let twice = BUILTIN_POLICY_YAML
        .replace("rules:\n", "xids: [{code: 5, name: a, action: none}, {code: 5, name: b, action: none}]\nrules:\n");
    assert_eq!(
        Policy::from_yaml(&twice).unwrap_err().to_string(),
        "invalid policy: invalid xids[1].code: XID 5 is listed twice"
    );
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

#[test]
fn rules_come_in_the_specified_order() {
    let policy = builtin();
    let rules: Vec<(&str, Health, A)> =
        policy.rules().iter().map(|rule| (rule.name(), rule.result(), rule.action())).collect();
    assert_eq!(
        rules,
        [
            ("fatal-xid", Health::Unhealthy, A::Replace),
            ("xid-reboot", Health::Degraded, A::Reboot),
            ("xid-reset-gpu", Health::Degraded, A::ResetGpu),
            ("application-xid", Health::Degraded, A::RestartApp),
            ("recoverable-xid", Health::Degraded, A::None),
            ("ecc-dbe", Health::Unhealthy, A::Replace),
            ("ecc-sbe-high", Health::Degraded, A::None),
            ("thermal-critical", Health::Unhealthy, A::Replace),
            ("thermal-warning", Health::Degraded, A::None),
            ("nvlink-error", Health::Degraded, A::None),
            ("pcie-error", Health::Degraded, A::None),
            ("power-warning", Health::Degraded, A::None),
            ("default", Health::Healthy, A::None),
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
