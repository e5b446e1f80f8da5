//! What the configuration means when the file leaves things out.

use std::time::Duration;

use bosun_config::{ApiConfig, AuthConfig, Config, NotifierConfig, StoreConfig};
use bosun_core::pool::PoolHealthSpec;
use bosun_core::{Labels, PoolSpec};

use crate::{FAKE_PROVIDER, parse, pool, with_pool};

#[test]
fn no_file_means_the_defaults() {
    let config = Config::default();
    let server = &config.server;
    assert_eq!(server.address, ":50051");
    assert_eq!(server.external_address, "http://localhost:50051");
    assert_eq!(server.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(server.heartbeat_timeout, Duration::from_secs(90));
    assert_eq!(server.health_check_interval, Duration::from_secs(60));
    assert_eq!(server.inventory_interval, Duration::from_secs(60));
    assert_eq!(server.autoscale_interval, Duration::from_secs(30));
    assert_eq!(server.health_policy, None);
    assert_eq!(server.notifier, NotifierConfig::Noop);
    assert_eq!(server.terminated_retention, Duration::from_secs(24 * 3600));
    assert_eq!(server.instance_registration_timeout, Duration::from_secs(600));
    assert_eq!(server.startup_grace, server.heartbeat_timeout);
    assert_eq!(config.store, StoreConfig { url: None });
    assert_eq!(config.auth, AuthConfig { tokens: vec![], allow_unauthenticated: true, node_token_key: None });
    assert_eq!(
        config.api,
        ApiConfig {
            max_request_bytes: 4 * 1024 * 1024,
            command_poll_wait: Duration::from_secs(30),
            command_redelivery: Duration::from_secs(60),
            command_ttl: Duration::from_secs(3600),
            tls: None,
            max_connections: 16_384,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            request_body_timeout: Duration::from_secs(30),
            max_concurrent_streams: 256,
        }
    );
    assert!(config.providers.is_empty());
    assert!(config.pools.is_empty());
}

#[test]
fn empty_files_and_sections_mean_the_defaults() {
    for text in [
        "",
        "# nothing but a comment\n",
        "server:\nstore:\nauth:\napi:\nproviders:\npools:\ndefaults:\n",
        "server: {}\npools: {}\n",
    ] {
        assert_eq!(parse(text).expect("valid"), Config::default(), "{text:?}");
    }
}

#[test]
fn a_server_without_pools_is_valid() {
    let config = parse(&format!("{FAKE_PROVIDER}server:\n  address: 127.0.0.1:0\n")).expect("valid");
    assert!(config.pools.is_empty());
    assert_eq!(config.providers.len(), 1);
    assert_eq!(config.server.listen_address(), "127.0.0.1:0");
    assert_eq!(config.server.external_address, "http://127.0.0.1:0");
}

#[test]
fn derived_server_defaults_follow_what_is_set() {
    let config = parse("server:\n  heartbeat_interval: 10s\n").expect("valid");
    assert_eq!(config.server.heartbeat_timeout, Duration::from_secs(30));
    assert_eq!(config.server.startup_grace, Duration::from_secs(30));
    let config = parse("server:\n  heartbeat_interval: 10s\n  heartbeat_timeout: 1m\n").expect("valid");
    assert_eq!(config.server.startup_grace, Duration::from_secs(60));
    let config = parse("server:\n  address: \"[::1]:7000\"\n").expect("valid");
    assert_eq!(config.server.external_address, "http://[::1]:7000");
}

#[test]
fn a_minimal_pool_is_core_s_single_provider_pool() {
    let config = parse(&with_pool("provider: fake\ninstance_type: h100-8x\nmax_nodes: 3")).expect("valid");
    let mut expected = PoolSpec::single_provider("fake", "h100-8x", 0, 3);
    expected.labels = Labels::try_from([("pool", "p")]).expect("valid");
    assert_eq!(pool(&config, "p").spec, expected);
    // Pools without an autoscaling block still hold min_nodes (SPEC 3.6); the spec says so
    // by having none.
    assert_eq!(pool(&config, "p").spec.autoscaling, None);
    assert_eq!(pool(&config, "p").ssh.user, "ubuntu");
    assert!(pool(&config, "p").ssh.keys.is_empty());
}

#[test]
fn health_keys_fall_back_one_by_one() {
    let minute = Some(Duration::from_secs(60));
    // (pool's health block, defaults' health block) -> effective health
    let cases = [
        ("", "", (2, true, None)),
        // Navarch: `auto_replace` false here. bosun: a missing key never disables replacement.
        ("health: {unhealthy_after: 3}", "", (3, true, None)),
        ("health: {unhealthy_after: 4}", "health: {auto_replace: false}", (4, false, None)),
        ("", "health: {auto_replace: false, recover_after: 1m}", (2, false, minute)),
        ("health: {auto_replace: true}", "health: {auto_replace: false, unhealthy_after: 5}", (5, true, None)),
        ("health: {recover_after: 1m}", "", (2, true, minute)),
    ];
    for (pool_health, defaults_health, (unhealthy_after, auto_replace, recover_after)) in cases {
        let text = format!(
            "{}defaults:\n  {defaults_health}\n",
            with_pool(&format!("provider: fake\ninstance_type: t\nmax_nodes: 3\n{pool_health}"))
        );
        let config = parse(&text).expect("valid");
        assert_eq!(
            pool(&config, "p").spec.health,
            PoolHealthSpec { unhealthy_after, auto_replace, recover_after },
            "pool {pool_health:?}, defaults {defaults_health:?}"
        );
    }
}

#[test]
fn ssh_settings_fall_back_to_defaults() {
    let text = format!(
        "{}defaults:\n  ssh_keys: [ops]\n  ssh_user: admin\n  ssh_private_key_path: /keys/id\n",
        with_pool("provider: fake\ninstance_type: t\nmax_nodes: 3\nsetup_commands: [echo hi]")
    );
    let config = parse(&text).expect("valid");
    let ssh = &pool(&config, "p").ssh;
    assert_eq!(ssh.keys, ["ops"]);
    assert_eq!(ssh.user, "admin");
    assert_eq!(ssh.private_key_path.as_deref(), Some(std::path::Path::new("/keys/id")));

    let own = with_pool("provider: fake\ninstance_type: t\nmax_nodes: 3\nssh_keys: [mine]\nssh_user: me");
    let config = parse(&format!("{own}defaults:\n  ssh_keys: [ops]\n  ssh_user: admin\n")).expect("valid");
    assert_eq!(pool(&config, "p").ssh.keys, ["mine"]);
    assert_eq!(pool(&config, "p").ssh.user, "me");
}

#[test]
fn autoscaler_defaults() {
    use bosun_core::pool::{AutoscalingSpec, CompositeMode};
    let cases = [
        ("{type: reactive}", AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 }),
        ("{type: queue}", AutoscalingSpec::Queue { jobs_per_node: 10 }),
        ("{type: predictive}", AutoscalingSpec::Predictive { lookback_window: 10, growth_factor: 1.2, fallback: None }),
        (
            "{type: composite, autoscalers: [{type: queue}]}",
            AutoscalingSpec::Composite {
                mode: CompositeMode::Max,
                autoscalers: vec![AutoscalingSpec::Queue { jobs_per_node: 10 }],
            },
        ),
    ];
    for (autoscaling, expected) in cases {
        let text = with_pool(&format!("provider: fake\ninstance_type: t\nmax_nodes: 3\nautoscaling: {autoscaling}"));
        assert_eq!(pool(&parse(&text).expect("valid"), "p").spec.autoscaling, Some(expected), "{autoscaling}");
    }
}

#[test]
fn provider_defaults() {
    use bosun_config::{
        AwsConfig, DEFAULT_AWS_IMAGE, DEFAULT_GCP_IMAGE, DEFAULT_GCP_NETWORK, GcpConfig, LambdaConfig, ProviderConfig,
    };
    let config = parse(
        "providers:\n  l: {type: lambda}\n  g: {type: gcp, project: p}\n  f: {type: fake}\n  x: {type: process}\n  a: {type: aws}\n",
    )
    .expect("valid");
    assert_eq!(
        config.providers["l"],
        ProviderConfig::Lambda(LambdaConfig {
            api_key_env: "LAMBDA_API_KEY".into(),
            endpoint: None,
            ssh_key_names: vec![],
            file_system_names: vec![],
        })
    );
    assert_eq!(
        config.providers["g"],
        ProviderConfig::Gcp(GcpConfig {
            project: "p".into(),
            zone: "us-central1-a".into(),
            endpoint: None,
            image: DEFAULT_GCP_IMAGE.into(),
            network: DEFAULT_GCP_NETWORK.into(),
            subnetwork: None,
            service_account: None,
            disk_size_gb: 200,
        })
    );
    assert_eq!(config.providers["f"], ProviderConfig::Fake { gpu_count: 8 });
    assert_eq!(config.providers["x"], ProviderConfig::Process { gpu_count: 8 });
    assert_eq!(
        config.providers["a"],
        ProviderConfig::Aws(AwsConfig {
            region: None,
            endpoint: None,
            image_id: DEFAULT_AWS_IMAGE.into(),
            subnet_id: None,
            security_group_ids: vec![],
            key_name: None,
            instance_profile: None,
            tags: Default::default(),
        })
    );
}
