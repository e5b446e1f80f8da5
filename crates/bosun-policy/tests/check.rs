//! `bosun policy check`: events files in, tables and JSON out.

use bosun_core::{EventType, HealthSystem, Timestamp};
use bosun_policy::check::{
    event_rows, parse_events, render_errors, render_json, render_xids_json, rule_rows, xid_rows,
};
use bosun_policy::{DocumentKind, Policy, PolicyError};

fn now() -> Timestamp {
    Timestamp::from_unix_micros(1_780_000_000_000_000)
}

const EVENTS_YAML: &str = r#"
- event_type: xid
  system: driver
  gpu_index: 2
  gpu_uuid: GPU-2
  message: fallen off the bus
  metrics: {xid_code: 79}
- event_type: THERMAL
  metrics:
    temperature: 88.0
- event_type: ecc_sbe
  system: DCGM_HEALTH_WATCH_MEM
  metrics: {ecc_sbe_count: "12", uncorrected: false}
  timestamp: 2026-11-23T13:26:00Z
- event_type: unknown
"#;

#[test]
fn yaml_events_file() {
    let events = parse_events(EVENTS_YAML, now()).unwrap();
    assert_eq!(events.len(), 4);
    let first = &events[0];
    assert_eq!((first.event_type, first.system), (EventType::Xid, HealthSystem::Driver));
    assert_eq!((first.gpu_index, first.gpu_uuid.as_str(), first.message.as_str()), (2, "GPU-2", "fallen off the bus"));
    assert_eq!(first.metrics["xid_code"], "79");
    assert_eq!(first.timestamp, now());
    assert_eq!(events[1].event_type, EventType::Thermal);
    assert_eq!(events[1].metrics["temperature"], "88.0", "a float keeps its fraction, so it stays a double");
    assert_eq!(events[2].system, HealthSystem::Mem);
    assert_eq!(events[2].metrics["ecc_sbe_count"], "12");
    assert_eq!(events[2].metrics["uncorrected"], "false");
    assert_eq!(events[2].timestamp, "2026-11-23T13:26:00Z".parse().unwrap());
    let defaults = &events[3];
    assert_eq!((defaults.system, defaults.gpu_index), (HealthSystem::Unknown, -1));
    assert!(defaults.gpu_uuid.is_empty() && defaults.message.is_empty() && defaults.metrics.is_empty());
}

#[test]
fn json_events_file_reads_the_same() {
    let json = r#"[
        {"event_type": "xid", "system": "DRIVER", "gpu_index": 2, "gpu_uuid": "GPU-2",
         "message": "fallen off the bus", "metrics": {"xid_code": 79}},
        {"event_type": "THERMAL", "metrics": {"temperature": 88.0}},
        {"event_type": "ecc_sbe", "system": "mem", "metrics": {"ecc_sbe_count": "12", "uncorrected": false},
         "timestamp": "2026-11-23T13:26:00Z"},
        {"event_type": "unknown"}
    ]"#;
    assert_eq!(parse_events(json, now()).unwrap(), parse_events(EVENTS_YAML, now()).unwrap());
    assert_eq!(parse_events("[]", now()).unwrap(), []);
}

#[test]
fn bad_events_files_name_the_field() {
    let cases = [
        ("- system: MEM\n", "invalid events file at events[0]: missing field `event_type`"),
        (
            "- event_type: xid\n- event_type: xdi\n",
            "invalid events file at events[1].event_type: \"xdi\" is not one of xid, thermal, power, memory, nvlink, \
             pcie, driver_error, ecc_sbe, ecc_dbe, unknown",
        ),
        (
            "- event_type: xid\n  system: MEMORY\n",
            "invalid events file at events[0].system: \"MEMORY\" is not a system; use one of PCIE, NVLINK, PMU, MCU, \
             MEM, SM, INFOROM, THERMAL, POWER, DRIVER, NVSWITCH, UNKNOWN (or DCGM_HEALTH_WATCH_...)",
        ),
        ("- event_type: xid\n  gpu: 3\n", "invalid events file at events[0].gpu: unknown field `gpu`"),
        (
            "- event_type: xid\n  metrics: {xid_code: [79]}\n",
            "invalid events file at events[0].metrics.xid_code: invalid type: sequence, expected a string, number or bool",
        ),
        (
            "- event_type: xid\n  gpu_index: -2\n",
            "invalid events file at events[0].gpu_index: must be -1 (node level) or a GPU index",
        ),
        (
            "- event_type: xid\n  timestamp: yesterday\n",
            "invalid events file at events[0].timestamp: not an RFC 3339 timestamp",
        ),
        ("event_type: xid\n", "invalid events file: invalid type: map, expected a sequence"),
        ("[{\"event_type\": \"xid\",}", "invalid events file: "),
    ];
    for (text, message) in cases {
        let error = parse_events(text, now()).expect_err(text);
        assert!(error.to_string().starts_with(message), "{text:?}: {error}");
        assert!(matches!(error, PolicyError::Document { document: DocumentKind::Events, .. }));
    }
}

fn classified() -> Vec<bosun_core::ClassifiedEvent> {
    let policy = Policy::from_yaml(
        "rules:\n\
         - {name: fatal, condition: 'event.event_type == \"xid\" && event.metrics.xid_code == 79', result: unhealthy}\n\
         - {name: hot, condition: 'event.metrics.temperature >= 85', result: degraded}\n",
    )
    .unwrap();
    policy.classify_all(parse_events(EVENTS_YAML, now()).unwrap())
}

#[test]
fn json_output_is_each_event_with_its_result_action_and_rule() {
    let json: serde_json::Value = serde_json::from_str(&render_json(&classified())).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["action", "event", "result", "rule"], "exactly these keys");
    }
    assert_eq!(
        (rows[0]["result"].as_str(), rows[0]["action"].as_str(), rows[0]["rule"].as_str()),
        (Some("unhealthy"), Some("replace"), Some("fatal"))
    );
    assert_eq!(rows[0]["event"]["event_type"], "xid");
    assert_eq!(rows[0]["event"]["gpu_index"], 2);
    assert_eq!(rows[0]["event"]["metrics"]["xid_code"], "79");
    assert_eq!(rows[1]["event"]["gpu_index"], serde_json::Value::Null, "node-level");
    assert_eq!((rows[2]["result"].as_str(), rows[2]["rule"].as_str()), (Some("healthy"), None));
    assert_eq!(render_json(&[]), "[]");
}

#[test]
fn rule_errors_go_to_their_own_text() {
    let events = classified();
    assert_eq!(
        render_errors(&events),
        "event 3: rule \"hot\": No such key: temperature\nevent 4: rule \"hot\": No such key: temperature\n"
    );
    assert!(!render_json(&events).contains("No such key"), "errors stay out of the JSON");
    assert_eq!(render_errors(&events[..2]), "");
}

#[test]
fn event_rows_give_type_gpu_result_action_rule_and_errors() {
    let rows = event_rows(&classified());
    assert_eq!(rows.header, ["#", "TYPE", "GPU", "RESULT", "ACTION", "RULE", "ERRORS"]);
    assert_eq!(rows.rows[0], ["1", "xid", "2", "unhealthy", "replace", "fatal", "-"].map(String::from));
    assert_eq!(rows.rows[1], ["2", "thermal", "node", "degraded", "none", "hot", "-"].map(String::from));
    assert_eq!(rows.rows[2][6], "rule \"hot\": No such key: temperature");
}

#[test]
fn rules_listing() {
    let rows = rule_rows(&Policy::builtin().unwrap());
    assert_eq!(rows.header, ["#", "RULE", "RESULT", "ACTION", "CONDITION"]);
    assert_eq!(rows.rows.len(), 13);
    assert_eq!(&rows.rows[0][..4], ["1", "fatal-xid", "unhealthy", "replace"].map(String::from));
    assert!(rows.rows[0][4].starts_with("event.event_type == \"xid\" && has(event.xid)"), "{:?}", rows.rows[0]);
    assert_eq!(rows.rows[12], ["13", "default", "healthy", "none", "true"].map(String::from));
}

#[test]
fn xid_listing() {
    let catalog = bosun_core::xid::XidCatalog::builtin();
    let rows = xid_rows(catalog);
    assert_eq!(rows.header, ["XID", "ACTION", "HARDWARE", "NAME", "SOURCE"]);
    assert_eq!(rows.rows.len(), catalog.entries().count());
    let fallen_off = rows.rows.iter().find(|row| row[0] == "79").expect("XID 79");
    assert_eq!(&fallen_off[..4], ["79", "replace", "yes", "GPU has fallen off the bus"].map(String::from));
    let json: serde_json::Value = serde_json::from_str(&render_xids_json(catalog)).unwrap();
    assert_eq!(json["version"], "2026.12");
    assert_eq!(
        json["xids"][2],
        serde_json::json!({"code": 13, "name": "Graphics engine exception",
        "action": "restart_app", "hardware": false, "source": "nvidia-xid-catalog"})
    );
}
