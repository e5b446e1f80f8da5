//! `bosun config check` output: the effective configuration, secrets redacted.

use std::time::Duration;

use bosun_config::{Config, NotifierConfig, ProviderConfig, Role};
use bosun_core::pool::{AutoscalingSpec, CompositeMode, SelectionStrategy};

use crate::{DATA, env_of, no_env, pool};

const SECRETS: [(&str, &str); 6] = [
    ("ADMIN_TOKEN", "admin-0b6f2c9e"),
    ("OPERATOR_TOKEN", "operator-5d1e7a3b"),
    ("AGENT_TOKEN", "agent-9c4f8e2d"),
    ("NODE_01_TOKEN", "node01-7e3a1f6c"),
    ("DB_PASSWORD", "pg-pass-4b8d2e1f"),
    ("SCHEDULER_TOKEN", "sched-2f9a6c3e"),
];

fn full_env() -> Vec<(&'static str, &'static str)> {
    let mut env = SECRETS.to_vec();
    env.push(("HOOK_QUERY_TOKEN", "hook-8a2d5f1b"));
    env
}

fn load_full() -> Config {
    let env = full_env();
    Config::load_with_env(format!("{DATA}/bosun-full.yaml"), env_of(&env)).expect("the full example loads")
}

#[test]
fn the_full_example_means_what_it_says() {
    let config = load_full();
    assert_eq!(config.server.listen_address(), "127.0.0.1:50051");
    assert_eq!(config.server.heartbeat_timeout, Duration::from_secs(45));
    assert_eq!(config.server.terminated_retention, Duration::from_secs(7 * 86_400));
    assert_eq!(config.server.startup_grace, Duration::from_secs(60));
    assert_eq!(config.server.inventory_interval, Duration::from_secs(120));
    let NotifierConfig::Webhook(webhook) = &config.server.notifier else { panic!("a webhook notifier") };
    assert_eq!(webhook.headers["Authorization"].expose(), "Bearer sched-2f9a6c3e");
    assert_eq!(
        webhook.drain_status_url.as_ref().map(|url| url.expose()),
        Some("https://scheduler.example.com/nodes/drain-status?token=hook-8a2d5f1b")
    );
    assert_eq!(
        config.store.url.as_ref().map(|url| url.expose()),
        Some("postgres://bosun:pg-pass-4b8d2e1f@db.internal:5432/bosun?sslmode=require")
    );
    let roles: Vec<Role> = config.auth.tokens.iter().map(|t| t.role).collect();
    assert_eq!(roles, [Role::Admin, Role::Operator, Role::Agent, Role::Agent]);
    assert_eq!(config.api.max_request_bytes, 8 * 1024 * 1024);
    assert_eq!(config.api.command_ttl, Duration::from_secs(7200));
    assert_eq!(
        config.mcp,
        bosun_config::McpConfig { enabled: false, rate_limit_per_second: 20, destructive_calls_per_session: 3 }
    );
    assert_eq!(config.providers["local"], ProviderConfig::Process { gpu_count: 4 });

    let research = pool(&config, "research");
    let spec = &research.spec;
    assert_eq!(spec.strategy, SelectionStrategy::RoundRobin);
    assert_eq!(spec.providers.iter().map(|p| p.weight).collect::<Vec<_>>(), [3, 1]);
    assert_eq!(spec.drain_timeout, Duration::from_secs(1200));
    assert_eq!(spec.max_unhealthy_replacement_fraction, 0.1);
    assert_eq!(spec.replacement_window, Duration::from_secs(1800));
    assert_eq!(spec.timezone, "Europe/Berlin");
    assert_eq!(spec.health.recover_after, Some(Duration::from_secs(900)));
    assert_eq!(
        spec.autoscaling,
        Some(AutoscalingSpec::Composite {
            mode: CompositeMode::Avg,
            autoscalers: vec![
                AutoscalingSpec::Predictive {
                    lookback_window: 20,
                    growth_factor: 1.5,
                    fallback: Some(Box::new(AutoscalingSpec::Queue { jobs_per_node: 10 })),
                },
                AutoscalingSpec::Reactive { scale_up_at: 90.0, scale_down_at: 20.0 },
            ],
        })
    );
    assert_eq!(research.ssh.user, "admin");
}

#[test]
fn secrets_appear_neither_in_the_rendered_yaml_nor_in_debug_output() {
    let config = load_full();
    let yaml = config.to_redacted_yaml();
    let debug = format!("{config:?} {config:#?}");
    for (_, secret) in full_env() {
        assert!(!yaml.contains(secret), "{secret} leaked into:\n{yaml}");
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    for shown in [
        "url: postgres://bosun:***@db.internal:5432/bosun?sslmode=require",
        "drain_status_url: https://scheduler.example.com/nodes/drain-status?token=***",
        "Authorization: '***'",
        "token: '***'",
        "token_env: OPERATOR_TOKEN",
        "node: gpu-node-01",
    ] {
        assert!(yaml.contains(shown), "{shown:?} missing from:\n{yaml}");
    }
}

#[test]
fn rendering_is_stable_and_loads_back() {
    // Apart from redacted values, the output is a configuration meaning the same thing.
    let navarch = Config::load_with_env(format!("{DATA}/navarch-example.yaml"), no_env).expect("valid");
    let reloaded = Config::from_yaml_str(&navarch.to_redacted_yaml(), no_env).expect("rendered output loads");
    assert_eq!(reloaded, navarch);
    assert_eq!(Config::from_yaml_str(&Config::default().to_redacted_yaml(), no_env).expect("loads"), Config::default());

    // With secrets, reloading the output with the same environment renders it identically.
    let env = full_env();
    let full = load_full();
    let rendered = full.to_redacted_yaml();
    let reloaded = Config::from_yaml_str(&rendered, env_of(&env)).expect("rendered output loads");
    assert_eq!(reloaded.to_redacted_yaml(), rendered);
}

#[test]
fn the_default_configuration_in_full() {
    assert_eq!(
        Config::default().to_redacted_yaml(),
        "\
server:
  address: :50051
  external_address: http://localhost:50051
  heartbeat_interval: 30s
  heartbeat_timeout: 1m30s
  health_check_interval: 1m
  inventory_interval: 1m
  autoscale_interval: 30s
  notifier:
    type: noop
  terminated_retention: 24h
  instance_registration_timeout: 10m
  startup_grace: 1m30s
  lost_machine_grace: 2m
  approval_timeout: 24h
store: {}
auth:
  tokens: []
  allow_unauthenticated: true
api:
  max_request_bytes: 4194304
  command_poll_wait: 30s
  command_redelivery: 1m
  command_ttl: 1h
  max_connections: 16384
  header_read_timeout: 10s
  idle_timeout: 2m
  request_body_timeout: 30s
  max_concurrent_streams: 256
retention:
  runs: 720h
  audit: 8760h
  inventory_syncs: 720h
mcp:
  enabled: true
  rate_limit_per_second: 10
  destructive_calls_per_session: 5
providers: {}
pools: {}
"
    );
}

#[test]
fn a_pool_in_full() {
    let text = "providers:\n  fake: {type: fake}\npools:\n  dev: {provider: fake, instance_type: t, max_nodes: 2, autoscaling: {type: reactive}}\n";
    let yaml = crate::parse(text).expect("valid").to_redacted_yaml();
    let pools = &yaml[yaml.find("pools:").expect("has pools")..];
    assert_eq!(
        pools,
        "\
pools:
  dev:
    provider: fake
    strategy: priority
    instance_type: t
    zones: []
    ssh_keys: []
    min_nodes: 0
    max_nodes: 2
    cooldown: 5m
    autoscaling:
      type: reactive
      scale_up_at: 80.0
      scale_down_at: 20.0
    health:
      unhealthy_after: 2
      auto_replace: true
    labels:
      pool: dev
    setup_commands: []
    ssh_user: ubuntu
    drain_timeout: 10m
    max_unhealthy_replacement_fraction: 0.2
    replacement_window: 10m
    mass_failure_fraction: 0.5
    remediation:
      steps:
      - reset_gpu
      - reboot
      - replace
      window: 1h
      step_timeout: 10m
      repeat_limit: 3
      repeat_window: 1h
    timezone: UTC
"
    );
}
