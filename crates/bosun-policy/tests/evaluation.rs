//! Custom policies: rule order, reported rule errors, metric typing, the event variable,
//! evaluation budgets, and load errors.

mod support;

use std::time::Duration;

use bosun_core::{EventType as T, Health, HealthSystem as S, RemediationAction, Verdict};
use bosun_policy::{Budget, Policy, PolicyError};
use support::event;

/// A policy of `(name, condition, result)` rules.
fn policy(rules: &[(&str, &str, &str)]) -> Policy {
    Policy::from_yaml(&yaml(rules)).expect("the policy compiles")
}

fn yaml(rules: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from("version: 1\nmetadata:\n  name: test\nrules:\n");
    for (name, condition, result) in rules {
        yaml.push_str(&format!("  - name: {name}\n    condition: {condition:?}\n    result: {result}\n"));
    }
    yaml
}

fn verdict(health: Health, rule: Option<&str>, errors: &[&str]) -> Verdict {
    // A rule without `action`: unhealthy means replace, anything milder asks nothing.
    let action = if health == Health::Unhealthy { RemediationAction::Replace } else { RemediationAction::None };
    Verdict {
        health,
        rule: rule.map(str::to_owned),
        action,
        errors: errors.iter().map(|error| (*error).to_owned()).collect(),
    }
}

#[test]
fn the_first_true_rule_decides_and_no_match_is_healthy() {
    let policy = policy(&[
        ("never", "false", "unhealthy"),
        ("gpu-three", "event.gpu_index == 3", "degraded"),
        ("also-gpu-three", "event.gpu_index == 3", "unhealthy"),
    ]);
    let mut on_three = event(T::Unknown, S::Unknown, &[]);
    on_three.gpu_index = 3;
    assert_eq!(policy.classify(&on_three), verdict(Health::Degraded, Some("gpu-three"), &[]));
    assert_eq!(policy.classify(&event(T::Unknown, S::Unknown, &[])), Verdict::healthy());
}

#[test]
fn a_rule_that_fails_is_reported_and_the_next_rule_still_decides() {
    let policy = policy(&[
        ("missing-metric", "event.metrics.nope > 1", "unhealthy"),
        ("not-a-bool", "event.gpu_index + 1", "unhealthy"),
        ("type-mismatch", "event.message > 3", "unhealthy"),
        ("xid", "event.event_type == 'xid'", "degraded"),
    ]);
    let classified = policy.classify(&event(T::Xid, S::Driver, &[]));
    assert_eq!(
        classified,
        verdict(
            Health::Degraded,
            Some("xid"),
            &[
                "rule \"missing-metric\": No such key: nope",
                "rule \"not-a-bool\": condition returned int, not bool",
                "rule \"type-mismatch\": found no matching overload for '_>_' applied to '(string, int)'",
            ]
        )
    );
    // With no later match the errors are still reported and the event is healthy.
    let classified = policy.classify(&event(T::Thermal, S::Thermal, &[("nope", "0")]));
    assert_eq!(classified.health, Health::Healthy);
    assert_eq!(classified.rule, None);
    assert_eq!(classified.errors.len(), 2, "{classified:?}");
}

#[test]
fn metrics_are_typed_int_then_double_then_bool_then_string() {
    let policy = policy(&[(
        "typed",
        "type(event.metrics.count) == int && event.metrics.count == 7 \
         && type(event.metrics.ratio) == double && event.metrics.ratio == 0.5 \
         && type(event.metrics.whole) == double && event.metrics.whole == 95.0 \
         && type(event.metrics.flag) == bool && event.metrics.flag \
         && type(event.metrics.bus) == string && event.metrics.bus == '0000:3b:00.0' \
         && type(event.metrics.empty) == string",
        "degraded",
    )]);
    let typed = event(
        T::Unknown,
        S::Unknown,
        &[
            ("count", "7"),
            ("ratio", "0.5"),
            ("whole", "95.000000"),
            ("flag", "true"),
            ("bus", "0000:3b:00.0"),
            ("empty", ""),
        ],
    );
    assert_eq!(policy.classify(&typed), verdict(Health::Degraded, Some("typed"), &[]));
}

#[test]
fn the_event_variable_has_every_field() {
    let policy = policy(&[(
        "fields",
        "event.event_type == 'ecc_dbe' && event.system == 'DCGM_HEALTH_WATCH_MEM' && event.gpu_index == -1 \
         && event.gpu_uuid == 'GPU-0' && event.message == 'boom' && event.timestamp == '2026-11-23T13:26:00.000000Z' \
         && size(event.metrics) == 1 && size(event) == 7",
        "unhealthy",
    )]);
    let mut dbe = event(T::EccDbe, S::Mem, &[("ecc_dbe_count", "2")]);
    dbe.gpu_index = -1;
    dbe.message = "boom".to_owned();
    assert_eq!(policy.classify(&dbe), verdict(Health::Unhealthy, Some("fields"), &[]));
}

/// Conditions compare `event.system` with the DCGM names and `event.event_type` with the
/// lower-case type names, as Navarch's policies write them; every value of each is
/// distinguished, including the types the default policy leaves healthy.
#[test]
fn system_and_event_type_strings_are_compared_as_navarch_writes_them() {
    let systems: Vec<(String, String, String)> = S::ALL
        .iter()
        .map(|s| (format!("system-{}", s.as_str()), format!("event.system == '{}'", s.as_str()), "degraded".to_owned()))
        .collect();
    let rules: Vec<(&str, &str, &str)> = systems.iter().map(|(n, c, r)| (n.as_str(), c.as_str(), r.as_str())).collect();
    let by_system = policy(&rules);
    for system in S::ALL {
        let classified = by_system.classify(&event(T::Unknown, *system, &[]));
        assert_eq!(classified.rule, Some(format!("system-{}", system.as_str())), "{system:?}");
    }
    assert_eq!(S::Unknown.as_str(), "DCGM_HEALTH_WATCH_UNKNOWN");
    assert_eq!(S::Nvswitch.as_str(), "DCGM_HEALTH_WATCH_NVSWITCH");

    let by_type = policy(&[
        ("memory", "event.event_type == 'memory'", "degraded"),
        ("driver", "event.event_type == 'driver_error'", "unhealthy"),
        ("unknown", "event.event_type == 'unknown'", "degraded"),
        (
            "the-rest",
            "event.event_type in ['xid', 'thermal', 'power', 'nvlink', 'pcie', 'ecc_sbe', 'ecc_dbe']",
            "healthy",
        ),
    ]);
    let expected = |t: T| match t {
        T::Memory => (Health::Degraded, "memory"),
        T::DriverError => (Health::Unhealthy, "driver"),
        T::Unknown => (Health::Degraded, "unknown"),
        _ => (Health::Healthy, "the-rest"),
    };
    for event_type in T::ALL {
        let classified = by_type.classify(&event(*event_type, S::Unknown, &[]));
        let (health, rule) = expected(*event_type);
        assert_eq!((classified.health, classified.rule.as_deref()), (health, Some(rule)), "{event_type:?}");
    }
}

#[test]
fn conditions_see_only_the_event() {
    let policy = policy(&[("typo", "evnt.event_type == 'xid'", "unhealthy")]);
    assert_eq!(
        policy.classify(&event(T::Xid, S::Driver, &[])).errors,
        ["rule \"typo\": Undeclared reference to 'evnt'"]
    );
}

#[test]
fn loops_work_within_the_budget() {
    let policy = policy(&[
        ("any-high", "event.metrics.exists(k, k.startsWith('temp') && event.metrics[k] > 90)", "degraded"),
        ("nested", "[1, 2, 3].all(x, [1, 2, 3].exists(y, y == x))", "healthy"),
    ]);
    let hot = event(T::Thermal, S::Thermal, &[("temp_core", "93"), ("temp_mem", "80")]);
    assert_eq!(policy.classify(&hot), verdict(Health::Degraded, Some("any-high"), &[]));
    let cool = event(T::Thermal, S::Thermal, &[("temp_core", "60")]);
    assert_eq!(policy.classify(&cool), verdict(Health::Healthy, Some("nested"), &[]));
    assert_eq!(
        policy.classify(&cool).rule.as_deref(),
        Some("nested"),
        "loops keep their results when metered, map and filter included"
    );
    let mapped = self::policy(&[("mapped", "[1, 2, 3].map(x, x * 2).filter(x, x > 2) == [4, 6]", "degraded")]);
    assert_eq!(mapped.classify(&cool).rule.as_deref(), Some("mapped"));
}

#[test]
fn a_loop_over_the_iteration_budget_is_an_error_and_the_next_rule_decides() {
    let budget = Budget { max_iterations: 100, max_duration: Duration::from_secs(60) };
    let ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let policy = policy(&[
        ("small", &format!("{ten}.all(x, x < 10) && false"), "unhealthy"),
        ("nested", &format!("{ten}.all(a, {ten}.all(b, {ten}.all(c, a + b + c >= 0)))"), "unhealthy"),
        // `exists` forgives an error in one element when another is true; the budget is
        // still reported, since the work was abandoned.
        ("swallowed", &format!("[1, 2].exists(x, x == 2 || {ten}.all(a, {ten}.all(b, true)))"), "unhealthy"),
        ("fallback", "true", "degraded"),
    ])
    .with_budget(budget);
    assert_eq!(
        policy.classify(&event(T::Unknown, S::Unknown, &[])),
        verdict(
            Health::Degraded,
            Some("fallback"),
            &[
                "rule \"nested\": exceeded the evaluation budget of 100 loop iterations",
                "rule \"swallowed\": exceeded the evaluation budget of 100 loop iterations",
            ]
        )
    );
}

#[test]
fn a_loop_over_the_time_budget_is_an_error() {
    let budget = Budget { max_iterations: u64::MAX, max_duration: Duration::ZERO };
    let policy =
        policy(&[("loop", "[1].all(x, true)", "unhealthy"), ("plain", "true", "degraded")]).with_budget(budget);
    assert_eq!(
        policy.classify(&event(T::Unknown, S::Unknown, &[])),
        verdict(Health::Degraded, Some("plain"), &["rule \"loop\": exceeded the evaluation time budget of 0ns"]),
        "conditions without loops are not metered"
    );
}

#[test]
fn the_meter_cannot_be_reached_from_a_condition() {
    let policy = policy(&[("sneaky", "__bosun_meter([1], 2) == [1]", "unhealthy")]);
    let classified = policy.classify(&event(T::Unknown, S::Unknown, &[]));
    assert_eq!(classified.health, Health::Healthy);
    assert_eq!(classified.errors.len(), 1, "{classified:?}");
}

#[test]
fn load_errors_name_the_rule_and_the_problem() {
    let cases: [(String, &str); 4] = [
        (
            yaml(&[("ok", "true", "healthy"), ("broken", "event.metrics.x > 1 &&", "degraded")]),
            "invalid policy: rule \"broken\" (rules[1]): condition does not compile: line 1, column 23: Syntax error: \
             mismatched input '<EOF>' expecting",
        ),
        (
            yaml(&[("has-number", "has(1)", "degraded")]),
            "invalid policy: rule \"has-number\" (rules[0]): condition does not compile: line 1, column 5: invalid \
             argument to has() macro",
        ),
        (
            yaml(&[("a", "true", "healthy"), ("a", "false", "healthy")]),
            "invalid policy: rule \"a\" (rules[1]): name is already used by rules[0]",
        ),
        (
            "rules:\n  - name: a\n    condition: 'true'\n    result: healthy\n    priority: 1\n".to_owned(),
            "invalid policy at rules[0].priority: unknown field `priority`",
        ),
    ];
    for (yaml, message) in cases {
        let error = Policy::from_yaml(&yaml).expect_err(&yaml);
        assert!(error.to_string().starts_with(message), "{error}");
        assert!(matches!(error, PolicyError::Rule { .. } | PolicyError::Document { .. }));
        assert!(error.is_invalid_input());
    }
    assert_eq!(Policy::from_yaml("rules: []").unwrap_err(), PolicyError::NoRules);
}

/// What a condition did with an event.
#[derive(Debug, PartialEq)]
enum Outcome {
    Matched,
    NoMatch,
    /// Reported in the verdict, on one line.
    Failed,
}

/// Bad input must never panic (SPEC 11): odd, ill-typed and failing conditions each end in
/// a verdict, their errors reported on one line.
#[test]
fn odd_conditions_give_verdicts_not_panics() {
    use Outcome::*;
    let cases = [
        ("1 / 0 == 1", Failed),
        ("9223372036854775807 + 1 > 0", Failed),
        ("-(-9223372036854775807 - 1) > 0", Failed),
        ("[1][5] == 1", Failed),
        ("int('x') == 1", Failed),
        ("timestamp('yesterday') > timestamp('2020-01-01T00:00:00Z')", Failed),
        ("duration('1000000000000000h') > duration('1s')", Failed),
        ("event.message.matches('(')", Failed),
        ("event.?metrics.?temperature.orValue(0) > 90", NoMatch),
        ("optional.none().value() == 1", Failed),
        ("{'a': 1}.?b.hasValue()", NoMatch),
        ("dyn(1) == 'a'", NoMatch),
        ("type(type) == type", Matched),
        ("event.metrics.exists_one(k, true)", Matched),
        ("[[1], [2]].all(x, x.all(y, y > 0))", Matched),
        ("[].exists(x, x)", NoMatch),
        ("google.protobuf.Duration{seconds: 1} == duration('1s')", Failed),
        ("Unknown{a: 1} == 1", Failed),
        ("has(event.metrics)", Matched),
        ("has(event.nope.deeper)", Failed),
        ("event['metrics']['a'] == 1", Matched),
        ("1 in event", NoMatch),
        ("{1: 2, 1: 3}[1] == 2", Failed),
        ("size(event.message) < 0 || event.gpu_index.startsWith('a')", Failed),
        ("b'abc' + b'd' == b'abcd'", Matched),
        ("timestamp(event.timestamp) < timestamp('2030-01-01T00:00:00Z')", Matched),
        ("event.metrics.a.nope.nope", Failed),
        ("null", Failed),
        ("[1, 2].map(x, x / 0).size() > 0", Failed),
    ];
    for (condition, expected) in cases {
        let verdict = policy(&[("odd", condition, "degraded")]).classify(&event(T::Memory, S::Mem, &[("a", "1")]));
        let outcome = match (&verdict.rule, verdict.errors.as_slice()) {
            (Some(_), []) => Matched,
            (None, []) => NoMatch,
            (None, [error]) if !error.contains('\n') => Failed,
            _ => panic!("{condition}: unexpected verdict {verdict:?}"),
        };
        assert_eq!(outcome, expected, "{condition}: {verdict:?}");
    }
}

#[test]
fn a_condition_nesting_too_deeply_is_refused_instead_of_overflowing_the_stack() {
    // Before the limit, 4,000 additions overflowed the compiler's stack and 100 the
    // evaluator's: either aborted the whole server.
    let chain = format!("{}1 > 0", "1 + ".repeat(4000));
    let error = Policy::from_yaml(&yaml(&[("deep", &chain, "unhealthy")])).unwrap_err();
    assert!(error.is_invalid_input(), "{error}");
    assert!(error.to_string().contains(&format!("the limit is {}", bosun_policy::MAX_EXPRESSION_DEPTH)), "{error}");
}

#[test]
fn conditions_at_the_depth_limit_evaluate_on_a_small_stack() {
    // Deepest accepted chain: each `+` adds one level under the `>` and the comparison.
    let terms = bosun_policy::MAX_EXPRESSION_DEPTH - 2;
    let chain = format!("{}1 > 0", "1 + ".repeat(terms));
    let policy = policy(&[("deep", &chain, "unhealthy")]);
    // Half a tokio worker's stack, with room to spare in a debug build.
    let verdict = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || policy.classify(&event(T::Xid, S::Unknown, &[])))
        .expect("thread starts")
        .join()
        .expect("no stack overflow");
    assert_eq!(verdict.health, Health::Unhealthy);
}
