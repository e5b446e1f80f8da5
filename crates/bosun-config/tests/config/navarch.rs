//! Navarch's example configuration loads unchanged, with Navarch's meaning (and without
//! its bugs).

use std::time::Duration;

use bosun_config::{Config, NotifierConfig, ProviderConfig};
use bosun_core::Labels;
use bosun_core::pool::{AutoscalingSpec, PoolHealthSpec, PoolProvider, ScheduleWindow, SelectionStrategy};

use crate::{DATA, no_env, pool};

fn load() -> Config {
    Config::load_with_env(format!("{DATA}/navarch-example.yaml"), no_env).expect("Navarch's example loads")
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

#[test]
fn server_settings() {
    let server = load().server;
    assert_eq!(server.address, ":50051");
    assert_eq!(server.listen_address(), "0.0.0.0:50051");
    assert_eq!(server.external_address, "http://localhost:50051");
    assert_eq!(server.heartbeat_interval, secs(30));
    assert_eq!(server.heartbeat_timeout, secs(90));
    assert_eq!(server.health_check_interval, secs(60));
    assert_eq!(server.autoscale_interval, secs(30));
    assert_eq!(server.startup_grace, secs(90));
    assert_eq!(server.notifier, NotifierConfig::Noop);
    assert_eq!(server.health_policy, None);
}

#[test]
fn providers() {
    let providers = load().providers;
    let ProviderConfig::Lambda(lambda) = &providers["lambda"] else { panic!("lambda") };
    assert_eq!(lambda.api_key_env, "LAMBDA_API_KEY");
    let ProviderConfig::Gcp(gcp) = &providers["gcp"] else { panic!("gcp") };
    assert_eq!((gcp.project.as_str(), gcp.zone.as_str()), ("my-gcp-project", "us-central1-a"));
    assert_eq!(providers["fake"], ProviderConfig::Fake { gpu_count: 8 });
}

#[test]
fn every_pool_converts_to_a_core_spec() {
    let config = load();
    let specs = config.pool_specs();
    let names: Vec<&str> = specs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["batch", "dev", "fungible", "inference", "training"]);
    for (name, spec) in &specs {
        assert_eq!(spec.labels.get("pool"), Some(name.as_str()), "pool label of {name}");
        assert!(spec.validate().is_ok());
    }
}

#[test]
fn training_single_provider_reactive() {
    let config = load();
    let training = pool(&config, "training");
    let spec = &training.spec;
    assert_eq!(
        spec.providers,
        [PoolProvider { name: "lambda".into(), priority: 0, weight: 1, regions: vec![], instance_type: None }]
    );
    assert_eq!(spec.strategy, SelectionStrategy::Priority);
    assert_eq!(spec.instance_type, "gpu_8x_h100_sxm5");
    assert_eq!(spec.region, "us-west-2");
    assert_eq!((spec.min_nodes, spec.max_nodes), (2, 20));
    assert_eq!(spec.cooldown, secs(300));
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 }));
    assert_eq!(spec.health, PoolHealthSpec { unhealthy_after: 2, auto_replace: true, recover_after: None });
    assert_eq!(spec.labels, Labels::try_from([("pool", "training"), ("workload", "training")]).expect("valid"));
    // bosun's own keys take their defaults.
    assert_eq!(spec.drain_timeout, secs(600));
    assert_eq!(spec.max_unhealthy_replacement_fraction, 0.2);
    assert_eq!(spec.replacement_window, secs(600));
    assert_eq!(spec.timezone, "UTC");
    // `defaults` fill what the pool leaves out.
    assert_eq!(training.ssh.keys, ["ops-team", "ml-team"]);
    assert_eq!(training.ssh.user, "ubuntu");
    assert_eq!(training.ssh.private_key_path, None);
}

#[test]
fn fungible_multi_provider_with_abstract_type() {
    let config = load();
    let spec = &pool(&config, "fungible").spec;
    assert_eq!(
        spec.providers,
        [
            PoolProvider {
                name: "lambda".into(),
                priority: 1,
                weight: 1,
                regions: vec!["us-west-2".into(), "us-east-1".into()],
                instance_type: None,
            },
            PoolProvider {
                name: "gcp".into(),
                priority: 2,
                weight: 1,
                regions: vec!["us-central1".into()],
                instance_type: Some("a3-highgpu-8g".into()),
            },
        ]
    );
    assert_eq!(spec.instance_type, "h100-8x");
    assert_eq!((spec.min_nodes, spec.max_nodes), (4, 32));
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Reactive { scale_up_at: 75.0, scale_down_at: 25.0 }));
    // No `health` block: the pool takes `defaults.health`.
    assert_eq!(spec.health, PoolHealthSpec { unhealthy_after: 2, auto_replace: true, recover_after: None });
}

#[test]
fn inference_queue_keeps_replacement_on() {
    let config = load();
    let spec = &pool(&config, "inference").spec;
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Queue { jobs_per_node: 100 }));
    assert_eq!(spec.cooldown, secs(120));
    // Navarch turns replacement off for a `health` block without `auto_replace`; bosun
    // takes the missing key from `defaults.health`, then the built-in `true`.
    assert_eq!(spec.health, PoolHealthSpec { unhealthy_after: 3, auto_replace: true, recover_after: None });
}

#[test]
fn batch_scheduled_with_reactive_fallback() {
    let config = load();
    let spec = &pool(&config, "batch").spec;
    let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday"].map(String::from).to_vec();
    assert_eq!(
        spec.autoscaling,
        Some(AutoscalingSpec::Scheduled {
            schedule: vec![
                ScheduleWindow { days: weekdays, start_hour: 9, end_hour: 18, min_nodes: 10, max_nodes: 100 },
                ScheduleWindow {
                    // Written `[Sat, sun]`: day names are normalized.
                    days: vec!["saturday".into(), "sunday".into()],
                    start_hour: 0,
                    end_hour: 24,
                    min_nodes: 0,
                    max_nodes: 10,
                },
            ],
            fallback: Some(Box::new(AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 })),
        })
    );
    assert_eq!((spec.min_nodes, spec.max_nodes), (0, 100));
}

#[test]
fn dev_fake_pool_with_autoscaler_defaults() {
    let config = load();
    let spec = &pool(&config, "dev").spec;
    assert_eq!(spec.providers[0].name, "fake");
    assert_eq!(spec.region, "local");
    assert_eq!(spec.cooldown, secs(10));
    assert_eq!(spec.autoscaling, Some(AutoscalingSpec::Reactive { scale_up_at: 80.0, scale_down_at: 20.0 }));
}
