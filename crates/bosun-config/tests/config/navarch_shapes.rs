//! Configurations shaped like the ones Navarch's repository runs with: its local end-to-end
//! config (a fake fleet with SSH bootstrap placeholders), its Lambda test config and its
//! metrics test config. They are written here (not copied), loaded, and checked value by
//! value, with the pool keys those shapes rely on.

use std::time::Duration;

use bosun_config::{Config, Placeholder, ProviderConfig, SetupPart, parse_setup_command};
use bosun_core::pool::{AutoscalingSpec, CompositeMode, PoolHealthSpec, SelectionStrategy};

use crate::{env_of, no_env, parse, pool};

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// The placeholders of a setup command, in order.
fn placeholders(command: &str) -> Vec<Placeholder> {
    parse_setup_command(command)
        .expect("a valid setup command")
        .into_iter()
        .filter_map(|part| match part {
            SetupPart::Value(placeholder) => Some(placeholder),
            SetupPart::Text(_) => None,
        })
        .collect()
}

/// A fake fleet for a local end-to-end run: short intervals, replacement after one
/// UNHEALTHY report, and the setup commands a real provider's machines would run.
const LOCAL_E2E: &str = r#"
server:
  address: ":50051"
  heartbeat_interval: 5s
  heartbeat_timeout: 10s
  health_check_interval: 30s

providers:
  fake:
    type: fake

pools:
  e2e:
    provider: fake
    instance_type: fake-8xgpu
    region: us-fake-1
    min_nodes: 2
    max_nodes: 5
    cooldown: 10s
    health:
      unhealthy_after: 1
      auto_replace: true
    autoscaling:
      type: reactive
      scale_up_at: 80
      scale_down_at: 20
    ssh_private_key_path: /etc/bosun/e2e-key
    setup_commands:
      - curl -sfL https://downloads.example.com/agent -o /usr/local/bin/agent
      - chmod +x /usr/local/bin/agent
      - nohup /usr/local/bin/agent -server {{.ControlPlane}} -pool {{.Pool}} -node-id {{.NodeID}} -provider {{.Provider}} -region {{.Region}} &
"#;

#[test]
fn a_local_end_to_end_config_loads_with_its_intervals_health_and_placeholders() {
    let config = parse(LOCAL_E2E).expect("the local end-to-end shape loads");
    let server = &config.server;
    assert_eq!(server.listen_address(), "0.0.0.0:50051");
    assert_eq!(server.external_address, "http://localhost:50051", "what {{{{.ControlPlane}}}} is filled with");
    assert_eq!(
        (server.heartbeat_interval, server.heartbeat_timeout, server.health_check_interval),
        (secs(5), secs(10), secs(30))
    );
    assert_eq!(config.providers["fake"], ProviderConfig::Fake { gpu_count: 8 });

    let e2e = pool(&config, "e2e");
    let spec = &e2e.spec;
    assert_eq!((spec.instance_type.as_str(), spec.region.as_str()), ("fake-8xgpu", "us-fake-1"));
    assert_eq!((spec.min_nodes, spec.max_nodes, spec.cooldown), (2, 5, secs(10)));
    assert_eq!(spec.health, PoolHealthSpec { unhealthy_after: 1, auto_replace: true, recover_after: None });
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 }));
    assert_eq!(e2e.ssh.private_key_path.as_deref(), Some(std::path::Path::new("/etc/bosun/e2e-key")));
    assert_eq!(e2e.ssh.user, "ubuntu", "the default SSH user");

    assert_eq!(spec.setup_commands.len(), 3);
    assert!(placeholders(&spec.setup_commands[0]).is_empty());
    assert_eq!(
        placeholders(&spec.setup_commands[2]),
        [Placeholder::ControlPlane, Placeholder::Pool, Placeholder::NodeId, Placeholder::Provider, Placeholder::Region]
    );
    let parts = parse_setup_command(&spec.setup_commands[2]).expect("valid");
    assert_eq!(parts[0], SetupPart::Text("nohup /usr/local/bin/agent -server "));
    assert_eq!(parts.last(), Some(&SetupPart::Text(" &")));
}

/// Three machines on Lambda, bootstrapped over SSH with the user and key from `defaults`.
const LAMBDA_TEST: &str = r#"
server:
  address: ":50051"
  heartbeat_interval: 10s
  heartbeat_timeout: 15s
  health_check_interval: 30s

providers:
  lambda:
    type: lambda
    api_key_env: LAMBDA_API_KEY

defaults:
  ssh_user: ubuntu
  ssh_private_key_path: ~/.ssh/bosun-test

pools:
  test:
    provider: lambda
    instance_type: gpu_1x_gh200
    region: us-east-3
    ssh_keys: [bosun-test]
    min_nodes: 3
    max_nodes: 3
    cooldown: 30s
    health:
      unhealthy_after: 1
      auto_replace: true
    autoscaling:
      type: reactive
      scale_up_at: 80
      scale_down_at: 20
    setup_commands:
      - curl -sL https://downloads.example.com/agent -o /usr/local/bin/agent
      - chmod +x /usr/local/bin/agent
      - nohup /usr/local/bin/agent -server {{.ControlPlane}} -pool {{.Pool}} -node-id {{.NodeID}} -provider {{.Provider}} -region {{.Region}} > /var/log/agent.log 2>&1 &
"#;

#[test]
fn a_lambda_test_config_loads_with_bootstrap_from_defaults() {
    // The API key is read when the provider is built, not when the file is loaded.
    let config = parse(LAMBDA_TEST).expect("the Lambda test shape loads");
    assert_eq!((config.server.heartbeat_interval, config.server.heartbeat_timeout), (secs(10), secs(15)));
    let ProviderConfig::Lambda(lambda) = &config.providers["lambda"] else { panic!("a lambda provider") };
    assert_eq!(lambda.api_key_env, "LAMBDA_API_KEY");
    assert!(lambda.ssh_key_names.is_empty() && lambda.endpoint.is_none());

    let test = pool(&config, "test");
    let spec = &test.spec;
    assert_eq!(spec.providers[0].name, "lambda");
    assert_eq!((spec.instance_type.as_str(), spec.region.as_str()), ("gpu_1x_gh200", "us-east-3"));
    assert_eq!((spec.min_nodes, spec.max_nodes, spec.cooldown), (3, 3, secs(30)));
    assert_eq!(spec.health, PoolHealthSpec { unhealthy_after: 1, auto_replace: true, recover_after: None });
    assert_eq!(test.ssh.keys, ["bosun-test"]);
    assert_eq!(test.ssh.user, "ubuntu");
    assert_eq!(
        test.ssh.private_key_path.as_deref(),
        Some(std::path::Path::new("~/.ssh/bosun-test")),
        "from defaults, `~/` left for the bootstrapper to expand"
    );
    assert_eq!(
        placeholders(&spec.setup_commands[2]),
        [Placeholder::ControlPlane, Placeholder::Pool, Placeholder::NodeId, Placeholder::Provider, Placeholder::Region]
    );

    // Without the key path the setup commands cannot run: refused, naming the key.
    let error = crate::error(&LAMBDA_TEST.replace("  ssh_private_key_path: ~/.ssh/bosun-test\n", ""));
    assert_eq!(error.key(), Some("pools.test.setup_commands"), "{error}");
    // `${VAR}` works in such a file too (Navarch sent it literally).
    let config = bosun_config::Config::from_yaml_str(
        &LAMBDA_TEST.replace("region: us-east-3", "region: ${LAMBDA_REGION}"),
        env_of(&[("LAMBDA_REGION", "us-west-1")]),
    )
    .expect("loads");
    assert_eq!(pool(&config, "test").spec.region, "us-west-1");
}

/// A small fake pool with short intervals for watching `/metrics`; it repeats the pool
/// label bosun sets anyway.
const METRICS_TEST: &str = r#"
server:
  address: ":50051"
  heartbeat_interval: 5s
  health_check_interval: 10s
  autoscale_interval: 10s

providers:
  fake:
    type: fake
    gpu_count: 4

pools:
  metrics-pool:
    provider: fake
    instance_type: fake-4xgpu
    min_nodes: 1
    max_nodes: 5
    cooldown: 30s
    autoscaling:
      type: reactive
      scale_up_at: 75
      scale_down_at: 25
    labels:
      pool: metrics-pool
      team: observability
"#;

#[test]
fn a_metrics_test_config_loads_and_its_own_pool_label_is_accepted() {
    let config = parse(METRICS_TEST).expect("the metrics test shape loads");
    let server = &config.server;
    assert_eq!((server.heartbeat_interval, server.health_check_interval), (secs(5), secs(10)));
    assert_eq!(server.autoscale_interval, secs(10));
    assert_eq!(server.heartbeat_timeout, secs(15), "three heartbeat intervals when not given");
    assert_eq!(config.providers["fake"], ProviderConfig::Fake { gpu_count: 4 });

    let spec = &pool(&config, "metrics-pool").spec;
    assert_eq!((spec.min_nodes, spec.max_nodes, spec.cooldown), (1, 5, secs(30)));
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Reactive { scale_up_at: 75.0, scale_down_at: 25.0 }));
    assert_eq!(spec.labels.get("pool"), Some("metrics-pool"), "the pool's own name, as written");
    assert_eq!(spec.labels.get("team"), Some("observability"));
    assert_eq!(spec.labels.len(), 2, "no second pool label: {:?}", spec.labels);
    assert_eq!(spec.health, PoolHealthSpec::default(), "no health block: replace after 2 reports");
    assert_eq!(spec.region, "", "no region: the provider chooses");
}

/// A health block that turns replacement off, and one that replaces after one report.
#[test]
fn health_keys_set_the_replacement_threshold_and_switch() {
    let config = parse(&format!(
        "{}pools:\n  keep:\n    provider: fake\n    instance_type: t\n    max_nodes: 2\n    health: {{auto_replace: false}}\n  \
         eager:\n    provider: fake\n    instance_type: t\n    max_nodes: 2\n    health: {{unhealthy_after: 1}}\n",
        crate::FAKE_PROVIDER
    ))
    .expect("valid");
    assert_eq!(
        pool(&config, "keep").spec.health,
        PoolHealthSpec { unhealthy_after: 2, auto_replace: false, recover_after: None }
    );
    assert_eq!(
        pool(&config, "eager").spec.health,
        PoolHealthSpec { unhealthy_after: 1, auto_replace: true, recover_after: None }
    );
    let error =
        crate::error(&crate::with_pool("provider: fake\ninstance_type: t\nmax_nodes: 2\nhealth: {unhealthy_after: 0}"));
    assert_eq!(error.key(), Some("pools.p.health.unhealthy_after"), "{error}");
}

/// `strategy`, `zones`, per-provider `regions`/`instance_type` and composite `mode`, as
/// a multi-provider pool writes them.
#[test]
fn selection_strategies_zones_and_composite_modes_are_read_from_yaml() {
    let text = |strategy: &str, mode: &str| {
        format!(
            "providers:\n  a: {{type: fake}}\n  b: {{type: fake, gpu_count: 2}}\npools:\n  p:\n    providers:\n      \
             - {{name: a, priority: 1, regions: [eu-1, eu-2]}}\n      - {{name: b, priority: 2, instance_type: small-2x}}\n    \
             strategy: {strategy}\n    instance_type: big-8x\n    region: us-1\n    zones: [us-1b, us-1c]\n    max_nodes: 4\n    \
             autoscaling:\n      type: composite\n      mode: {mode}\n      autoscalers: [{{type: queue, jobs_per_node: 5}}, {{type: reactive}}]\n"
        )
    };
    for (strategy, expected) in [
        ("cost", SelectionStrategy::Cost),
        ("availability", SelectionStrategy::Availability),
        ("round-robin", SelectionStrategy::RoundRobin),
        ("priority", SelectionStrategy::Priority),
    ] {
        let config = Config::from_yaml_str(&text(strategy, "max"), no_env).expect(strategy);
        assert_eq!(pool(&config, "p").spec.strategy, expected, "{strategy}");
    }
    for (mode, expected) in [("min", CompositeMode::Min), ("max", CompositeMode::Max), ("avg", CompositeMode::Avg)] {
        let config = Config::from_yaml_str(&text("cost", mode), no_env).expect(mode);
        let spec = &pool(&config, "p").spec;
        assert_eq!(
            spec.autoscaling,
            Some(AutoscalingSpec::Composite {
                mode: expected,
                autoscalers: vec![
                    AutoscalingSpec::Queue { jobs_per_node: 5 },
                    AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 },
                ],
            }),
            "{mode}"
        );
        assert_eq!(spec.zones, ["us-1b", "us-1c"]);
        assert_eq!(spec.providers[0].regions, ["eu-1", "eu-2"]);
        assert_eq!(spec.providers[1].instance_type.as_deref(), Some("small-2x"));
    }
}
