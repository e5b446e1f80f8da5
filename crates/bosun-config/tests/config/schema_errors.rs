//! Strict parsing: unknown keys, wrong types and bad durations are errors naming the key
//! path (and the line).

use bosun_config::{Config, ConfigErrorKind};

use crate::{error, no_env, parse, with_pool};

const POOL_KEYS: &str = "provider, providers, strategy, instance_type, image, region, zones, ssh_keys, min_nodes, \
     max_nodes, cooldown, autoscaling, health, labels, setup_commands, ssh_user, ssh_private_key_path, \
     drain_timeout, max_unhealthy_replacement_fraction, replacement_window, mass_failure_fraction, remediation, \
     timezone";

const AUTOSCALING_KEYS: &str = "type, scale_up_at, scale_down_at, jobs_per_node, schedule, fallback, \
     lookback_window, growth_factor, mode, autoscalers";

#[test]
fn unknown_keys_name_their_full_path_at_every_depth() {
    let pool = |keys: &str| with_pool(&format!("provider: fake\ninstance_type: t\nmax_nodes: 3\n{keys}"));
    let cases = [
        ("sever: {}\n".to_owned(), "sever", "server, store, auth, api, retention, inventory, mcp, providers, pools, defaults".to_owned()),
        (
            "server:\n  adress: x\n".to_owned(),
            "server.adress",
            "address, external_address, heartbeat_interval, heartbeat_timeout, health_check_interval, \
             inventory_interval, autoscale_interval, health_policy, notifier, terminated_retention, instance_registration_timeout, \
             startup_grace, lost_machine_grace, approval_timeout"
                .to_owned(),
        ),
        (
            "server:\n  notifier:\n    type: webhook\n    webhook: {cordon: x}\n".to_owned(),
            "server.notifier.webhook.cordon",
            "cordon_url, uncordon_url, drain_url, drain_status_url, timeout, headers".to_owned(),
        ),
        (
            "providers:\n  l: {type: lambda, apikey: X}\n".to_owned(),
            "providers.l.apikey",
            "type, api_key_env, project, zone, region, gpu_count, endpoint, image_id, subnet_id, security_group_ids, \
             key_name, instance_profile, tags, ssh_key_names, file_system_names, image, network, subnetwork, \
             service_account, disk_size_gb, url, token_id, token_secret_env, token_secret_file, verify_tls, ca_file, \
             template_vmid, storage, hosts, full_clone, task_timeout"
                .to_owned(),
        ),
        (pool("autoscalng: {type: queue}"), "pools.p.autoscalng", POOL_KEYS.to_owned()),
        (
            pool("autoscaling: {type: reactive, scale_up: 90}"),
            "pools.p.autoscaling.scale_up",
            AUTOSCALING_KEYS.to_owned(),
        ),
        (
            pool(
                "autoscaling:\n  type: scheduled\n  schedule: [{start: 1, end: 2, max_nodes: 1}]\n  fallback: {type: reactive, scale_upat: 1}",
            ),
            "pools.p.autoscaling.fallback.scale_upat",
            AUTOSCALING_KEYS.to_owned(),
        ),
        (
            pool("autoscaling:\n  type: composite\n  autoscalers: [{type: queue}, {typ: queue}]"),
            "pools.p.autoscaling.autoscalers[1].typ",
            AUTOSCALING_KEYS.to_owned(),
        ),
        (
            pool("autoscaling:\n  type: scheduled\n  schedule: [{begin: 9}]"),
            "pools.p.autoscaling.schedule[0].begin",
            "days, start, end, min_nodes, max_nodes".to_owned(),
        ),
        (
            with_pool("providers:\n  - name: fake\n    prio: 1\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers[0].prio",
            "name, priority, weight, regions, instance_type".to_owned(),
        ),
        (
            // The documented-but-wrong key of Navarch's health docs.
            pool("health: {unhealthy_threshold: 2}"),
            "pools.p.health.unhealthy_threshold",
            "unhealthy_after, auto_replace, recover_after".to_owned(),
        ),
        (
            "defaults:\n  cooldown: 5m\n".to_owned(),
            "defaults.cooldown",
            "ssh_keys, health, remediation, ssh_user, ssh_private_key_path".to_owned(),
        ),
        (
            "auth:\n  tokens:\n    - name: a\n      secret: x\n".to_owned(),
            "auth.tokens[0].secret",
            "name, token, token_env, token_file, role, node".to_owned(),
        ),
        (
            "api: {max_body: 1}\n".to_owned(),
            "api.max_body",
            "max_request_bytes, command_poll_wait, command_redelivery, command_ttl, tls, max_connections, header_read_timeout, idle_timeout, request_body_timeout, max_concurrent_streams".to_owned(),
        ),
        ("store: {uri: x}\n".to_owned(), "store.uri", "url".to_owned()),
    ];
    for (text, key, expected) in cases {
        let err = error(&text);
        assert_eq!(err.kind(), ConfigErrorKind::Schema, "{text}");
        assert_eq!(err.key(), Some(key), "{text}");
        let expected = if expected.contains(',') { format!("one of {expected}") } else { expected };
        assert_eq!(err.problem(), format!("unknown key; expected {expected}"), "{text}");
    }
}

#[test]
fn the_message_is_one_line_naming_file_key_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bosun.yaml");
    let text = with_pool("provider: fake\ninstance_type: t\nmax_nodes: 3\nautoscalng: {type: queue}");
    std::fs::write(&path, text).expect("write");
    let err = Config::load_with_env(&path, no_env).unwrap_err();
    assert_eq!(err.file(), Some(path.as_path()));
    assert_eq!(err.line(), Some(9));
    assert_eq!(
        err.to_string(),
        format!("{}: pools.p.autoscalng: unknown key; expected one of {POOL_KEYS} (line 9)", path.display())
    );
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn unreadable_files_are_named() {
    let err = Config::load_with_env("/nonexistent/bosun.yaml", no_env).unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::Read);
    assert_eq!(
        err.to_string(),
        "/nonexistent/bosun.yaml: cannot read the file: No such file or directory (os error 2)"
    );
}

#[test]
fn type_errors_name_the_key() {
    let pool = |keys: &str| with_pool(&format!("provider: fake\ninstance_type: t\n{keys}"));
    let cases = [
        (
            pool("max_nodes: many"),
            "pools.p.max_nodes",
            "invalid type: string \"many\", expected a whole number (0 or more)",
        ),
        (pool("max_nodes: -1"), "pools.p.max_nodes", "invalid type: integer `-1`, expected a whole number (0 or more)"),
        (
            pool("max_nodes: 3\nzones: us-east-1a"),
            "pools.p.zones",
            "invalid type: string \"us-east-1a\", expected a list",
        ),
        (
            pool("max_nodes: 3\nautoscaling: {type: reactive, scale_up_at: high}"),
            "pools.p.autoscaling.scale_up_at",
            "invalid type: string \"high\", expected a number",
        ),
        (
            pool("max_nodes: 3\nhealth: {auto_replace: yes}"),
            "pools.p.health.auto_replace",
            "invalid type: string \"yes\", expected a boolean",
        ),
        ("pools:\n  p: 5\n".to_owned(), "pools.p", "invalid type: integer `5`, expected a mapping"),
        (
            pool("max_nodes: 3\nstrategy: cheapest"),
            "pools.p.strategy",
            "unknown value \"cheapest\"; expected one of priority, round-robin, availability, cost",
        ),
        (
            pool("max_nodes: 3\nautoscaling: {type: magic}"),
            "pools.p.autoscaling.type",
            "unknown value \"magic\"; expected one of reactive, queue, scheduled, predictive, composite",
        ),
        (
            pool("max_nodes: 3\nautoscaling: {type: composite, mode: median, autoscalers: [{type: queue}]}"),
            "pools.p.autoscaling.mode",
            "unknown value \"median\"; expected one of max, min, avg",
        ),
        (
            "providers:\n  k: {type: kubernetes}\n".to_owned(),
            "providers.k.type",
            "unknown value \"kubernetes\"; expected one of fake, process, lambda, gcp, aws, proxmox",
        ),
        (
            "auth:\n  tokens: [{name: a, token: t, role: root}]\n".to_owned(),
            "auth.tokens[0].role",
            "unknown value \"root\"; expected one of agent, operator, admin",
        ),
        (
            "server:\n  notifier: {type: slack}\n".to_owned(),
            "server.notifier.type",
            "unknown value \"slack\"; expected one of noop, webhook",
        ),
    ];
    for (text, key, problem) in cases {
        let err = error(&text);
        assert_eq!((err.kind(), err.key(), err.problem()), (ConfigErrorKind::Schema, Some(key), problem), "{text}");
    }
}

#[test]
fn a_document_that_is_not_a_mapping() {
    let err = error("- server\n");
    assert_eq!(err.key(), None);
    assert_eq!(
        err.problem(),
        "invalid type: sequence, expected a mapping of server, store, auth, api, retention, inventory, mcp, providers, pools and defaults"
    );
}

#[test]
fn syntax_errors_come_first() {
    for text in ["server: [\n", "pools:\n  p:\n    provider: a\n    provider: b\n", "a: b\n---\nc: d\n"] {
        assert_eq!(error(text).kind(), ConfigErrorKind::Syntax, "{text}");
    }
    assert_eq!(
        error("sever: [\n").to_string(),
        "did not find expected node content at line 2 column 1, while parsing a flow node"
    );
}

#[test]
fn numbers_are_read_as_text_where_text_is_expected() {
    // Navarch's YAML library does this too, so `tier: 1` labels keep working.
    let config = parse(&with_pool("provider: fake\ninstance_type: 8\nmax_nodes: 3\nlabels: {tier: 1}")).expect("valid");
    let spec = &crate::pool(&config, "p").spec;
    assert_eq!(spec.instance_type, "8");
    assert_eq!(spec.labels.get("tier"), Some("1"));
}

#[test]
fn durations() {
    use std::time::Duration;
    let good = [
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1h30m", Duration::from_secs(5400)),
        ("500ms", Duration::from_millis(500)),
        ("1.5h", Duration::from_secs(5400)),
        ("2d", Duration::from_secs(2 * 86_400)),
        ("0s", Duration::ZERO),
    ];
    for (text, expected) in good {
        let config = parse(&format!("server:\n  terminated_retention: {text}\n")).expect("valid");
        assert_eq!(config.server.terminated_retention, expected, "{text}");
    }
    let units = "(units: ns, us, ms, s, m, h, d)";
    let bad = [
        ("30", format!("invalid duration \"30\": 30 has no unit; write e.g. 30s {units}")),
        ("1.5", format!("invalid duration \"1.5\": 1.5 has no unit; write e.g. 1.5s {units}")),
        ("5 minutes", format!("invalid duration \"5 minutes\": unknown unit \" minutes\" {units}")),
        ("5min", format!("invalid duration \"5min\": unknown unit \"min\" {units}")),
        ("-5s", "invalid duration \"-5s\": it must not be negative".to_owned()),
        ("[5s]", "invalid type: sequence, expected a duration such as 30s, 5m or 1h30m".to_owned()),
    ];
    for (text, problem) in bad {
        let err = error(&format!("server:\n  terminated_retention: {text}\n"));
        assert_eq!(err.key(), Some("server.terminated_retention"), "{text}");
        assert_eq!(err.problem(), problem, "{text}");
        assert_eq!(err.line(), Some(2), "{text}");
    }
}

#[test]
fn deeply_nested_documents_are_refused_before_parsing() {
    let text = format!("server: {}{}\n", "{a: ".repeat(50_000), "}".repeat(50_000));
    let error = Config::from_yaml_str(&text, |_| None).unwrap_err().to_string();
    assert!(error.contains("the document nests more than 64 levels deep at line 1"), "{error}");
}
