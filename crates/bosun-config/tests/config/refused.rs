//! Keys Navarch's documentation shows but Navarch never read (reference/navarch.md section
//! 12): bosun refuses each on purpose, with an error naming the key, so a file written from
//! those docs fails loudly instead of running without what it asks for.

use bosun_config::ConfigErrorKind;

use crate::{FAKE_PROVIDER, error, with_pool};

/// A valid pool `p` plus `keys`.
fn pool(keys: &str) -> String {
    with_pool(&format!("provider: fake\ninstance_type: t\nmax_nodes: 3\n{keys}"))
}

#[test]
fn keys_navarch_documented_but_never_read_are_refused_naming_the_key() {
    let cases = [
        // concepts/lifecycle.md: the instance manager's timeouts were never configurable.
        ("instance_manager:\n  registration_timeout: 10m\n  stale_check_interval: 1m\n".to_owned(), "instance_manager"),
        // troubleshooting.md: one port serves everything.
        ("server:\n  grpc_port: 50051\n".to_owned(), "server.grpc_port"),
        // concepts/autoscaling.md: a composite's members are `autoscalers`.
        (
            pool("autoscaling:\n  type: composite\n  mode: max\n  strategies: [{type: queue}]"),
            "pools.p.autoscaling.strategies",
        ),
        // concepts/pools.md and pool-management.md: credentials come from each cloud's chain.
        (
            "providers:\n  gcp:\n    type: gcp\n    project: p\n    credentials_file: /etc/gcp.json\n".to_owned(),
            "providers.gcp.credentials_file",
        ),
        (
            "providers:\n  lambda:\n    type: lambda\n    api_key_secret: x\n".to_owned(),
            "providers.lambda.api_key_secret",
        ),
        // bootstrap.md: the SSH bootstrap's timeouts are bosun's own, not per pool.
        (pool("ip_wait_timeout: 15m"), "pools.p.ip_wait_timeout"),
        (pool("ssh_timeout: 10m"), "pools.p.ssh_timeout"),
        (pool("ssh_connect_timeout: 30s"), "pools.p.ssh_connect_timeout"),
        (pool("command_timeout: 5m"), "pools.p.command_timeout"),
        // pool-management.md and pkg/config/README.md: an older schema.
        (pool("scaling:\n  min_nodes: 2\n  cooldown_period: 5m"), "pools.p.scaling"),
        (pool("autoscaler:\n  type: reactive"), "pools.p.autoscaler"),
        (pool("autoscaling:\n  type: reactive\n  scale_up_threshold: 80"), "pools.p.autoscaling.scale_up_threshold"),
        (
            pool(
                "autoscaling:\n  type: scheduled\n  schedule:\n    - {days: [monday], start_hour: 9, end: 18, max_nodes: 3}",
            ),
            "pools.p.autoscaling.schedule[0].start_hour",
        ),
        ("global:\n  ssh_key_names: [ops]\n".to_owned(), "global"),
        ("defaults:\n  cooldown_period: 5m\n".to_owned(), "defaults.cooldown_period"),
    ];
    for (text, key) in cases {
        let error = error(&text);
        assert_eq!(error.kind(), ConfigErrorKind::Schema, "{text}");
        assert_eq!(error.key(), Some(key), "{text}: {error}");
        assert!(error.problem().starts_with("unknown key; expected"), "{text}: {error}");
        assert!(error.to_string().starts_with(&format!("{key}: unknown key")), "{error}");
    }
}

#[test]
fn pools_written_as_a_list_are_refused_at_pools() {
    // pool-management.md writes pools as a list of named entries; the schema is a map.
    let error = error(&format!("{FAKE_PROVIDER}pools:\n  - name: training\n    provider: fake\n"));
    assert_eq!(error.key(), Some("pools"), "{error}");
    assert!(error.problem().contains("expected a mapping"), "{error}");
}
