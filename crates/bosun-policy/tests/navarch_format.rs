//! A policy written in the format of Navarch's default policy (reference/navarch.md 5.2 and
//! 5.4): `version`/`metadata`, rules whose conditions test `xid_code in [...]` lists with
//! `//` comments, `has(...)` guards and `event.system` strings, and a final catch-all rule.
//! Written here from Navarch's documented rules, then checked verdict by verdict for every
//! event type. Navarch's `priority` key, which its tests wrote and its parser ignored, is
//! refused: rule order alone decides.

mod support;

use bosun_core::{EventType as T, Health, HealthSystem as S, RemediationAction};
use bosun_policy::Policy;
use support::event;

const NAVARCH_STYLE: &str = r#"
version: v1

metadata:
  name: navarch-style
  description: Navarch's default classification, in Navarch's policy format

rules:
  - name: fatal-xid
    description: XIDs after which a GPU is not trusted again
    condition: |
      event.event_type == "xid" && event.metrics.xid_code in [
        13, 31, 32, 43, 45, 48,   // engine, memory and ECC faults
        61, 62, 63, 64, 68, 69,   // micro-controller, retirement, video
        74, 79, 92, 94, 95,       // NVLink, off the bus, ECC rates
        100, 119, 120             // semaphores and GSP
      ]
    result: unhealthy

  - name: recoverable-xid
    description: any other XID
    condition: event.event_type == "xid"
    result: degraded

  - name: ecc-dbe
    condition: |
      event.event_type == "ecc_dbe" ||
      (event.system == "DCGM_HEALTH_WATCH_MEM" &&
       has(event.metrics.ecc_dbe_count) &&
       event.metrics.ecc_dbe_count > 0)
    result: unhealthy

  - name: ecc-sbe-high
    condition: |
      event.event_type == "ecc_sbe" &&
      has(event.metrics.ecc_sbe_count) &&
      event.metrics.ecc_sbe_count > 100
    result: degraded

  - name: thermal-critical
    condition: |
      event.event_type == "thermal" &&
      has(event.metrics.temperature) &&
      event.metrics.temperature >= 95
    result: unhealthy

  - name: thermal-warning
    condition: |
      event.event_type == "thermal" &&
      has(event.metrics.temperature) &&
      event.metrics.temperature >= 85
    result: degraded

  - name: nvlink-error
    condition: event.event_type == "nvlink" || event.system == "DCGM_HEALTH_WATCH_NVLINK"
    result: degraded

  - name: pcie-error
    condition: event.event_type == "pcie" || event.system == "DCGM_HEALTH_WATCH_PCIE"
    result: degraded

  - name: power-warning
    condition: event.event_type == "power" || event.system == "DCGM_HEALTH_WATCH_POWER"
    result: degraded

  - name: default
    description: nothing above matched
    condition: "true"
    result: healthy
"#;

fn navarch_style() -> Policy {
    Policy::from_yaml(NAVARCH_STYLE).expect("a policy in Navarch's format compiles")
}

#[test]
fn the_document_reads_as_written() {
    let policy = navarch_style();
    assert_eq!((policy.version(), policy.name()), ("v1", "navarch-style"));
    assert_eq!(policy.description(), "Navarch's default classification, in Navarch's policy format");
    let names: Vec<&str> = policy.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "fatal-xid",
            "recoverable-xid",
            "ecc-dbe",
            "ecc-sbe-high",
            "thermal-critical",
            "thermal-warning",
            "nvlink-error",
            "pcie-error",
            "power-warning",
            "default"
        ],
        "file order is evaluation order"
    );
    // Without `action`, unhealthy asks for a replacement and anything milder for nothing.
    assert_eq!(policy.rules()[0].action(), RemediationAction::Replace);
    assert_eq!(policy.rules()[1].action(), RemediationAction::None);
}

#[test]
fn every_event_type_gets_navarchs_verdict() {
    let policy = navarch_style();
    let xid = |code: &str| event(T::Xid, S::Driver, &[("xid_code", code)]);
    let cases = [
        // Every code of the list, and ones outside it.
        (xid("79"), Health::Unhealthy, "fatal-xid"),
        (xid("13"), Health::Unhealthy, "fatal-xid"),
        (xid("120"), Health::Unhealthy, "fatal-xid"),
        (xid("8"), Health::Degraded, "recoverable-xid"),
        (xid("999"), Health::Degraded, "recoverable-xid"),
        (event(T::EccDbe, S::Mem, &[]), Health::Unhealthy, "ecc-dbe"),
        (event(T::Memory, S::Mem, &[("ecc_dbe_count", "2")]), Health::Unhealthy, "ecc-dbe"),
        (event(T::Memory, S::Mem, &[("ecc_dbe_count", "0")]), Health::Healthy, "default"),
        (event(T::EccSbe, S::Mem, &[("ecc_sbe_count", "101")]), Health::Degraded, "ecc-sbe-high"),
        (event(T::EccSbe, S::Mem, &[("ecc_sbe_count", "100")]), Health::Healthy, "default"),
        (event(T::EccSbe, S::Mem, &[]), Health::Healthy, "default"),
        (event(T::Thermal, S::Thermal, &[("temperature", "95")]), Health::Unhealthy, "thermal-critical"),
        (event(T::Thermal, S::Thermal, &[("temperature", "95.000000")]), Health::Unhealthy, "thermal-critical"),
        (event(T::Thermal, S::Thermal, &[("temperature", "90")]), Health::Degraded, "thermal-warning"),
        (event(T::Thermal, S::Thermal, &[("temperature", "84")]), Health::Healthy, "default"),
        (event(T::Thermal, S::Thermal, &[]), Health::Healthy, "default"),
        (event(T::Nvlink, S::Nvlink, &[]), Health::Degraded, "nvlink-error"),
        (event(T::Unknown, S::Nvlink, &[]), Health::Degraded, "nvlink-error"),
        (event(T::Pcie, S::Pcie, &[]), Health::Degraded, "pcie-error"),
        (event(T::Unknown, S::Pcie, &[]), Health::Degraded, "pcie-error"),
        (event(T::Power, S::Power, &[]), Health::Degraded, "power-warning"),
        (event(T::Unknown, S::Power, &[]), Health::Degraded, "power-warning"),
        // What the default policy leaves healthy.
        (event(T::Memory, S::Mem, &[]), Health::Healthy, "default"),
        (event(T::DriverError, S::Driver, &[]), Health::Healthy, "default"),
        (event(T::Unknown, S::Unknown, &[]), Health::Healthy, "default"),
    ];
    for (event, health, rule) in &cases {
        let verdict = policy.classify(event);
        assert_eq!((verdict.health, verdict.rule.as_deref()), (*health, Some(*rule)), "{event:?}");
        assert!(verdict.errors.is_empty(), "{event:?}: {:?}", verdict.errors);
    }
}

#[test]
fn an_xid_without_its_code_is_recoverable_and_the_failed_list_test_is_reported() {
    // Navarch skipped the failing rule silently; bosun reports it in the verdict.
    let verdict = navarch_style().classify(&event(T::Xid, S::Driver, &[]));
    assert_eq!((verdict.health, verdict.rule.as_deref()), (Health::Degraded, Some("recoverable-xid")));
    assert_eq!(verdict.errors, ["rule \"fatal-xid\": No such key: xid_code"]);
}

#[test]
fn a_report_takes_the_worst_event() {
    let policy = navarch_style();
    let events = vec![
        event(T::Nvlink, S::Nvlink, &[]),
        event(T::Xid, S::Driver, &[("xid_code", "79")]),
        event(T::Thermal, S::Thermal, &[("temperature", "90")]),
    ];
    let classified = policy.classify_all(events);
    let healths: Vec<Health> = classified.iter().map(|c| c.verdict.health).collect();
    assert_eq!(healths, [Health::Degraded, Health::Unhealthy, Health::Degraded]);
    let worst = healths.iter().fold(Health::Healthy, |worst, h| worst.worst(*h));
    assert_eq!(worst, Health::Unhealthy);
}

#[test]
fn navarchs_rule_priorities_are_refused() {
    let with_priority = NAVARCH_STYLE.replace(
        "    result: degraded\n\n  - name: ecc-dbe",
        "    result: degraded\n    priority: 20\n\n  - name: ecc-dbe",
    );
    let error = Policy::from_yaml(&with_priority).expect_err("priority is not a rule key");
    let message = error.to_string();
    assert!(message.starts_with("invalid policy at rules[1].priority: unknown field `priority`"), "{message}");
}
