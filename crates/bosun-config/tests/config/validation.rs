//! Every semantic check, with the message an operator sees.

use std::time::Duration;

use bosun_config::{Config, ConfigErrorKind};
use bosun_core::RemediationAction;

use crate::{FAKE_PROVIDER, env_of, error, with_pool};

/// A valid pool `p` on the fake provider, plus `extra` keys.
fn pool(extra: &str) -> String {
    with_pool(&format!("provider: fake\ninstance_type: t\nmax_nodes: 3\n{extra}"))
}

fn autoscaling(yaml: &str) -> String {
    pool(&format!("autoscaling: {yaml}"))
}

fn check(cases: &[(String, &str)]) {
    for (text, message) in cases {
        let err = error(text);
        assert_eq!(err.kind(), ConfigErrorKind::Invalid, "{text}");
        assert_eq!(err.to_string(), *message, "{text}");
    }
}

#[test]
fn providers() {
    check(&[
        (
            "providers:\n  x: {gpu_count: 1}\n".into(),
            "providers.x.type: is required: one of fake, process, lambda, gcp, aws, proxmox",
        ),
        (
            "providers:\n  g: {type: gcp, project: p, gpu_count: 8}\n".into(),
            "providers.g.gpu_count: is not used by providers of type gcp (they take project, zone, endpoint, image, \
             network, subnetwork, service_account, disk_size_gb)",
        ),
        (
            "providers:\n  l: {type: lambda, region: us-east-1}\n".into(),
            "providers.l.region: is not used by providers of type lambda (they take api_key_env, endpoint, \
             ssh_key_names, file_system_names)",
        ),
        ("providers:\n  g: {type: gcp}\n".into(), "providers.g.project: is required for providers of type gcp"),
        ("providers:\n  g: {type: gcp, project: ''}\n".into(), "providers.g.project: is empty"),
        (
            "providers:\n  'my cloud': {type: fake}\n".into(),
            "providers.my cloud: \"my cloud\" contains ' '; use letters, digits, '.', '_', ':' or '-'",
        ),
    ]);
}

#[test]
fn pool_providers() {
    check(&[
        (
            with_pool("provider: lamda\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.provider: \"lamda\" is not defined under providers (defined: fake)",
        ),
        (
            "pools:\n  p: {provider: fake, instance_type: t, max_nodes: 3}\n".into(),
            "pools.p.provider: \"fake\" is not defined under providers (no providers are defined)",
        ),
        (
            with_pool("provider: fake\nproviders: [{name: fake}]\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers: set either provider or providers, not both",
        ),
        (
            with_pool("instance_type: t\nmax_nodes: 3"),
            "pools.p.provider: is required (or list several under providers)",
        ),
        (with_pool("providers: []\ninstance_type: t\nmax_nodes: 3"), "pools.p.providers: needs at least one entry"),
        (
            with_pool("providers: [{priority: 1}]\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers[0].name: is required",
        ),
        (
            with_pool("providers: [{name: fake}, {name: gcp}]\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers[1].name: \"gcp\" is not defined under providers (defined: fake)",
        ),
        (
            with_pool("providers: [{name: fake}, {name: fake}]\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers[1].name: \"fake\" is listed twice",
        ),
        (
            with_pool("providers: [{name: fake, weight: 0}]\ninstance_type: t\nmax_nodes: 3"),
            "pools.p.providers[0].weight: must be at least 1; remove the entry to stop using the provider",
        ),
    ]);
}

#[test]
fn pool_shape() {
    check(&[
        (with_pool("provider: fake\nmax_nodes: 3"), "pools.p.instance_type: is required"),
        (with_pool("provider: fake\ninstance_type: t"), "pools.p.max_nodes: must be at least 1"),
        (with_pool("provider: fake\ninstance_type: t\nmax_nodes: 0"), "pools.p.max_nodes: must be at least 1"),
        (
            with_pool("provider: fake\ninstance_type: t\nmin_nodes: 4\nmax_nodes: 3"),
            "pools.p.min_nodes: 4 is above max_nodes 3",
        ),
        (
            pool("max_unhealthy_replacement_fraction: 1.5"),
            "pools.p.max_unhealthy_replacement_fraction: 1.5 is outside 0..1",
        ),
        (
            pool("max_unhealthy_replacement_fraction: -0.1"),
            "pools.p.max_unhealthy_replacement_fraction: -0.1 is outside 0..1",
        ),
        (pool("replacement_window: 0s"), "pools.p.replacement_window: must be longer than 0s"),
        (pool("health: {unhealthy_after: 0}"), "pools.p.health.unhealthy_after: must be at least 1"),
        (pool("health: {recover_after: 0s}"), "pools.p.health.recover_after: must be longer than 0s"),
        (
            format!("{}defaults:\n  health: {{unhealthy_after: 0}}\n", pool("")),
            "defaults.health.unhealthy_after: must be at least 1",
        ),
        (format!("{}defaults:\n  ssh_user: ''\n", pool("")), "defaults.ssh_user: is empty"),
        (pool("ssh_user: ''"), "pools.p.ssh_user: is empty"),
        (
            pool("setup_commands: [echo hi]"),
            "pools.p.setup_commands: need an SSH key to run: set ssh_private_key_path on the pool or under defaults",
        ),
        (
            pool("setup_commands: ['echo {{.ControlPlane}}', 'curl {{.Tokn}}']\nssh_private_key_path: /k"),
            "pools.p.setup_commands[1]: {{.Tokn}} is not a placeholder bosun fills in (only these are: \
             {{.ControlPlane}}, {{.Token}}, {{.NodeID}}, {{.InstanceID}}, {{.Pool}}, {{.Provider}}, {{.Region}}, \
             {{.Zone}}, {{.InstanceType}})",
        ),
        (pool("setup_commands: ['  ']\nssh_private_key_path: /k"), "pools.p.setup_commands[0]: is empty"),
        (
            pool("labels: {pool: other}"),
            "pools.p.labels.pool: is \"other\", but bosun sets it to the pool's name \"p\"; remove it",
        ),
        (
            pool("labels: {'bad key': x}"),
            "pools.p.labels: label key \"bad key\" must start with a letter or digit and use only letters, digits, '.', '_', '/' or '-'",
        ),
        (
            pool("timezone: Europe/Berlin Time"),
            "pools.p.timezone: \"Europe/Berlin Time\" is not an IANA time zone name such as UTC or Europe/Berlin",
        ),
        (
            // Well formed, but no such zone: the server could not evaluate the schedule.
            pool("timezone: Mars/Olympus_Mons"),
            "pools.p.timezone: \"Mars/Olympus_Mons\" is not an IANA time zone name such as UTC or Europe/Berlin",
        ),
        (
            format!("{FAKE_PROVIDER}pools:\n  'gpu pool': {{provider: fake, instance_type: t, max_nodes: 1}}\n"),
            "pools.gpu pool: \"gpu pool\" contains ' '; use letters, digits, '.', '_', ':' or '-'",
        ),
    ]);
}

#[test]
fn autoscalers() {
    check(&[
        (
            autoscaling("{scale_up_at: 90}"),
            "pools.p.autoscaling.type: is required: one of reactive, queue, scheduled, predictive, composite",
        ),
        (
            autoscaling("{type: queue, scale_up_at: 90}"),
            "pools.p.autoscaling.scale_up_at: is not used by queue autoscaling (it takes jobs_per_node)",
        ),
        (
            autoscaling("{type: reactive, fallback: {type: queue}}"),
            "pools.p.autoscaling.fallback: is not used by reactive autoscaling (it takes scale_up_at, scale_down_at)",
        ),
        (
            autoscaling("{type: reactive, scale_up_at: 50, scale_down_at: 50}"),
            "pools.p.autoscaling.scale_down_at: 50 must be below scale_up_at 50, or the pool would flap",
        ),
        (
            autoscaling("{type: reactive, scale_up_at: 10}"),
            "pools.p.autoscaling.scale_down_at: 20 must be below scale_up_at 10, or the pool would flap",
        ),
        (
            autoscaling("{type: reactive, scale_up_at: 120}"),
            "pools.p.autoscaling.scale_up_at: 120 is not a utilization percentage (0 to 100)",
        ),
        (
            autoscaling("{type: reactive, scale_down_at: -5}"),
            "pools.p.autoscaling.scale_down_at: -5 is not a utilization percentage (0 to 100)",
        ),
        (autoscaling("{type: queue, jobs_per_node: 0}"), "pools.p.autoscaling.jobs_per_node: must be at least 1"),
        (autoscaling("{type: scheduled}"), "pools.p.autoscaling.schedule: needs at least one entry"),
        (
            autoscaling("{type: predictive, lookback_window: 1}"),
            "pools.p.autoscaling.lookback_window: must be at least 2: a trend needs two samples",
        ),
        (
            autoscaling("{type: predictive, growth_factor: 0}"),
            "pools.p.autoscaling.growth_factor: 0 must be a number above 0",
        ),
        (autoscaling("{type: composite}"), "pools.p.autoscaling.autoscalers: needs at least one autoscaler"),
        (
            autoscaling("{type: composite, autoscalers: [{type: queue}, {type: queue, jobs_per_node: 0}]}"),
            "pools.p.autoscaling.autoscalers[1].jobs_per_node: must be at least 1",
        ),
        (
            autoscaling("{type: predictive, fallback: {type: reactive, scale_up_at: 101}}"),
            "pools.p.autoscaling.fallback.scale_up_at: 101 is not a utilization percentage (0 to 100)",
        ),
    ]);
}

#[test]
fn schedules() {
    let schedule = |entry: &str| autoscaling(&format!("{{type: scheduled, schedule: [{entry}]}}"));
    check(&[
        (
            schedule("{days: [monday, mnoday], start: 9, end: 17, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].days[1]: \"mnoday\" is not a day; use monday to sunday, or mon to sun",
        ),
        (
            schedule("{days: [weekdays], start: 9, end: 17, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].days[0]: \"weekdays\" is not a day; use monday to sunday, or mon to sun",
        ),
        (schedule("{end: 17, max_nodes: 4}"), "pools.p.autoscaling.schedule[0].start: is required"),
        (schedule("{start: 9, max_nodes: 4}"), "pools.p.autoscaling.schedule[0].end: is required"),
        (schedule("{start: 9, end: 17}"), "pools.p.autoscaling.schedule[0].max_nodes: is required"),
        (
            schedule("{start: 24, end: 24, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].start: 24 is not an hour (0 to 23)",
        ),
        (
            schedule("{start: 0, end: 25, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].end: 25 is not an hour (1 to 24)",
        ),
        (
            schedule("{start: 22, end: 6, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].end: 6 must be after start 22; a window past midnight is two entries",
        ),
        (
            schedule("{start: 9, end: 9, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].end: 9 must be after start 9; a window past midnight is two entries",
        ),
        (
            schedule("{start: 9, end: 17, min_nodes: 5, max_nodes: 4}"),
            "pools.p.autoscaling.schedule[0].min_nodes: 5 is above max_nodes 4",
        ),
    ]);
}

#[test]
fn server() {
    check(&[
        (
            "server: {heartbeat_interval: 30s, heartbeat_timeout: 30s}\n".into(),
            "server.heartbeat_timeout: 30s must be longer than heartbeat_interval 30s, or every node would time out between heartbeats",
        ),
        ("server: {heartbeat_interval: 0s}\n".into(), "server.heartbeat_interval: must be longer than 0s"),
        (
            "server: {health_check_interval: 500ms}\n".into(),
            "server.health_check_interval: 500ms is too short; agents take it in whole seconds, so use at least 1s",
        ),
        (
            "server: {inventory_interval: 0s}\n".into(),
            "server.inventory_interval: 0s is too short; agents take it in whole seconds, so use at least 1s",
        ),
        ("server: {autoscale_interval: 0s}\n".into(), "server.autoscale_interval: must be longer than 0s"),
        (
            "server: {instance_registration_timeout: 0s}\n".into(),
            "server.instance_registration_timeout: must be longer than 0s",
        ),
        ("server: {health_policy: ''}\n".into(), "server.health_policy: is empty; omit it to use the built-in policy"),
        (
            "server: {address: '50051'}\n".into(),
            "server.address: \"50051\" is not HOST:PORT; write e.g. :50051 or 127.0.0.1:50051",
        ),
        (
            "server: {address: ':http'}\n".into(),
            "server.address: \":http\" is not HOST:PORT; write e.g. :50051 or 127.0.0.1:50051",
        ),
        (
            "server: {external_address: 'bosun.example.com'}\n".into(),
            "server.external_address: \"bosun.example.com\" is not a URL: relative URL without a base",
        ),
        (
            "server: {external_address: 'ftp://bosun.example.com'}\n".into(),
            "server.external_address: \"ftp://bosun.example.com\" is not an http:// or https:// URL with a host",
        ),
    ]);
}

#[test]
fn notifier() {
    check(&[
        ("server:\n  notifier: {type: webhook}\n".into(), "server.notifier.webhook: is required when type is webhook"),
        (
            "server:\n  notifier: {type: noop, webhook: {drain_url: 'http://x'}}\n".into(),
            "server.notifier.type: is noop, so the webhook block would be ignored; write type: webhook",
        ),
        (
            "server:\n  notifier: {webhook: {drain_url: 'http://x'}}\n".into(),
            "server.notifier.type: is not set, so the webhook block would be ignored; write type: webhook",
        ),
        (
            "server:\n  notifier: {type: webhook, webhook: {timeout: 5s}}\n".into(),
            "server.notifier.webhook: names no URL; set at least one of cordon_url, uncordon_url, drain_url, drain_status_url",
        ),
        (
            "server:\n  notifier: {type: webhook, webhook: {drain_url: 'https://u:hunter2@'}}\n".into(),
            "server.notifier.webhook.drain_url: \"https://u:***@\" is not a URL: empty host",
        ),
        (
            "server:\n  notifier: {type: webhook, webhook: {drain_url: 'http://x', timeout: 0s}}\n".into(),
            "server.notifier.webhook.timeout: must be longer than 0s",
        ),
        (
            "server:\n  notifier: {type: webhook, webhook: {drain_url: 'http://x', headers: {'X Token': a}}}\n".into(),
            "server.notifier.webhook.headers.X Token: is not a valid HTTP header name",
        ),
    ]);
}

#[test]
fn store_and_api() {
    check(&[
        (
            "store: {url: 'mysql://root:hunter2@db/x'}\n".into(),
            "store.url: mysql://root:***@db/x is not a store URL; use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or memory://",
        ),
        ("api: {max_request_bytes: 100}\n".into(), "api.max_request_bytes: 100 is too small; at least 1024 bytes"),
        ("api: {command_poll_wait: 0s}\n".into(), "api.command_poll_wait: must be longer than 0s"),
        ("api: {command_redelivery: 0s}\n".into(), "api.command_redelivery: must be longer than 0s"),
        (
            "api: {command_redelivery: 1h}\n".into(),
            "api.command_ttl: 1h must be longer than command_redelivery 1h, or an unacknowledged command expires before it is redelivered",
        ),
    ]);
    for url in ["sqlite://bosun.db", "sqlite:///var/lib/bosun.db", "memory://", "postgres://u:p@db/bosun"] {
        assert!(crate::parse(&format!("store: {{url: '{url}'}}\n")).is_ok(), "{url}");
    }
}

#[test]
fn auth() {
    check(&[
        ("auth:\n  tokens: [{token: t, role: admin}]\n".into(), "auth.tokens[0].name: is required"),
        (
            "auth:\n  tokens: [{name: 'a b', token: t, role: admin}]\n".into(),
            "auth.tokens[0].name: \"a b\" contains ' '; use letters, digits, '.', '_', ':' or '-'",
        ),
        ("auth:\n  tokens: [{name: a, token: t}]\n".into(), "auth.tokens[0].role: is required: one of agent, operator, admin"),
        (
            "auth:\n  tokens: [{name: a, role: admin}]\n".into(),
            "auth.tokens[0]: needs its value in one of token, token_env or token_file",
        ),
        (
            "auth:\n  tokens: [{name: a, token: t, token_env: T, role: admin}]\n".into(),
            "auth.tokens[0]: set only one of token, token_env and token_file",
        ),
        (
            "auth:\n  tokens: [{name: a, token_env: NOT_SET_ANYWHERE, role: admin}]\n".into(),
            "auth.tokens[0].token_env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            "auth:\n  tokens: [{name: a, token_file: /nonexistent/token, role: admin}]\n".into(),
            "auth.tokens[0].token_file: cannot read /nonexistent/token: No such file or directory (os error 2)",
        ),
        ("auth:\n  tokens: [{name: a, token: '  ', role: admin}]\n".into(), "auth.tokens[0].token: the token is empty"),
        (
            "auth:\n  tokens: [{name: a, token: 'two words', role: admin}]\n".into(),
            "auth.tokens[0].token: the token contains spaces or characters outside visible ASCII, which an Authorization header cannot carry",
        ),
        (
            "auth:\n  tokens: [{name: a, token: t, role: operator, node: n1}]\n".into(),
            "auth.tokens[0].node: only agent tokens can be pinned to a node; this one is operator",
        ),
        (
            "auth:\n  tokens: [{name: a, token: t, role: agent, node: 'node/1'}]\n".into(),
            "auth.tokens[0].node: \"node/1\" contains '/'; use letters, digits, '.', '_', ':' or '-'",
        ),
        (
            "auth:\n  tokens: [{name: a, token: t1, role: agent}, {name: a, token: t2, role: admin}]\n".into(),
            "auth.tokens[1].name: \"a\" is already the name of auth.tokens[0]",
        ),
        (
            "auth:\n  tokens: [{name: a, token: same-secret, role: agent}, {name: b, token: same-secret, role: admin}]\n"
                .into(),
            "auth.tokens[1]: has the same token value as auth.tokens[0]; give each holder its own token",
        ),
        (
            "auth:\n  allow_unauthenticated: true\n  tokens: [{name: a, token: t, role: admin}]\n".into(),
            "auth.allow_unauthenticated: cannot be true when tokens are configured; every request then needs one of them",
        ),
    ]);
}

#[test]
fn an_empty_token_from_the_environment_is_refused() {
    let text = "auth:\n  tokens: [{name: a, token_env: T, role: admin}]\n";
    let err = Config::from_yaml_str(text, env_of(&[("T", "")])).unwrap_err();
    assert_eq!(err.to_string(), "auth.tokens[0].token_env: the token is empty");
}

#[test]
fn remediation_ladders_layer_over_defaults_and_are_checked() {
    let base = "providers: {fake: {type: fake}}\n";
    let config = crate::parse(&format!(
        "{base}defaults:\n  remediation: {{steps: [reboot, replace], window: 30m}}\npools:\n  a: {{provider: fake, instance_type: t, max_nodes: 2, remediation: {{step_timeout: 2m}}}}\n  b: {{provider: fake, instance_type: t, max_nodes: 2, remediation: {{steps: [replace]}}, mass_failure_fraction: 0.3}}\n"
    ))
    .expect("valid");
    let spec = |name: &str| crate::pool(&config, name).spec.clone();
    let a = spec("a");
    assert_eq!(a.remediation.steps, [RemediationAction::Reboot, RemediationAction::Replace]);
    assert_eq!(
        (a.remediation.window, a.remediation.step_timeout),
        (Duration::from_secs(1800), Duration::from_secs(120))
    );
    assert_eq!(a.mass_failure_fraction, 0.5);
    let b = spec("b");
    assert_eq!(b.remediation.steps, [RemediationAction::Replace]);
    assert_eq!(b.mass_failure_fraction, 0.3);

    let cases = [
        (
            "pools:\n  a: {provider: fake, instance_type: t, max_nodes: 2, remediation: {steps: [reset_gpu, reboot]}}\n",
            "pools.a.remediation.steps: must end with replace (to keep broken machines instead, set health.auto_replace: false)",
        ),
        (
            "pools:\n  a: {provider: fake, instance_type: t, max_nodes: 2, remediation: {steps: [restart_app, replace]}}\n",
            "pools.a.remediation.steps[0]: restart_app is not a ladder step (reset_gpu, reboot or replace)",
        ),
        ("defaults:\n  remediation: {repeat_limit: 0}\n", "defaults.remediation.repeat_limit: must be at least 1"),
        (
            "pools:\n  a: {provider: fake, instance_type: t, max_nodes: 2, mass_failure_fraction: 0}\n",
            "pools.a.mass_failure_fraction: 0 is outside (0, 1]",
        ),
        (
            "pools:\n  a: {provider: fake, instance_type: t, max_nodes: 2, remediation: {steps: [reboot, fix]}}\n",
            "pools.a.remediation.steps[1]: unknown value \"fix\"; expected one of none, restart_app, reset_gpu, reboot, replace",
        ),
    ];
    for (yaml, message) in cases {
        let error = crate::error(&format!("{base}{yaml}")).to_string();
        assert!(error.contains(message), "{yaml}: {error}");
    }
}

#[test]
fn tls_needs_a_certificate_and_its_key() {
    let config =
        crate::parse("api:\n  tls: {cert_file: /etc/bosun/tls.crt, key_file: /etc/bosun/tls.key}\n").expect("valid");
    let tls = config.api.tls.expect("tls");
    assert_eq!(tls.cert_file, std::path::PathBuf::from("/etc/bosun/tls.crt"));
    assert_eq!(tls.client_ca_file, None);
    for (text, key) in [
        ("api:\n  tls: {cert_file: /a}\n", "api.tls.key_file"),
        ("api:\n  tls: {key_file: /a}\n", "api.tls.cert_file"),
        ("api: {max_connections: 0}\n", "api.max_connections"),
        ("api: {idle_timeout: 0s}\n", "api.idle_timeout"),
    ] {
        let error = crate::error(text);
        assert_eq!(error.key(), Some(key), "{text}: {error}");
    }
}
