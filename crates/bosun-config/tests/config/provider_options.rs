//! The cloud providers' options (`endpoint`, images, networks, keys, tags) and a pool's
//! `image`: what each means, what is refused and why, and how `config check` shows them.

use std::collections::BTreeMap;

use bosun_config::{AwsConfig, Config, ConfigErrorKind, GcpConfig, LambdaConfig, ProviderConfig};

use crate::{error, parse, pool};

const CLOUDS: &str = "\
providers:
  aws:
    type: aws
    region: us-east-1
    endpoint: https://vpce-0abc.ec2.us-east-1.vpce.amazonaws.com
    image_id: ami-0123456789abcdef0
    subnet_id: subnet-0bb1c79de3EXAMPLE
    security_group_ids: [sg-0123abcd, sg-4567ef01]
    key_name: ops
    instance_profile: bosun-node
    tags: {team: ml, cost-center: '1234'}
  lambda:
    type: lambda
    endpoint: http://127.0.0.1:9000/api/v1
    ssh_key_names: [ops]
    file_system_names: [datasets]
  gcp:
    type: gcp
    project: proj-1
    endpoint: https://compute.example.internal/compute/v1
    image: projects/my-images/global/images/family/gpu-base
    network: research
    subnetwork: research-us-central1
    service_account: nodes@proj-1.iam.gserviceaccount.com
    disk_size_gb: 500
pools:
  ec2:
    provider: aws
    instance_type: p5.48xlarge
    image: resolve:ssm:/team/gpu-ami
    ssh_keys: [team-key]
    max_nodes: 2
  gce:
    provider: gcp
    instance_type: a3-highgpu-8g
    image: projects/p/global/images/gpu-2026-01
    max_nodes: 2
";

#[test]
fn every_option_is_read() {
    let config = parse(CLOUDS).expect("valid");
    assert_eq!(
        config.providers["aws"],
        ProviderConfig::Aws(AwsConfig {
            region: Some("us-east-1".into()),
            endpoint: Some("https://vpce-0abc.ec2.us-east-1.vpce.amazonaws.com".into()),
            image_id: "ami-0123456789abcdef0".into(),
            subnet_id: Some("subnet-0bb1c79de3EXAMPLE".into()),
            security_group_ids: vec!["sg-0123abcd".into(), "sg-4567ef01".into()],
            key_name: Some("ops".into()),
            instance_profile: Some("bosun-node".into()),
            tags: BTreeMap::from([("team".into(), "ml".into()), ("cost-center".into(), "1234".into())]),
        })
    );
    assert_eq!(
        config.providers["lambda"],
        ProviderConfig::Lambda(LambdaConfig {
            api_key_env: "LAMBDA_API_KEY".into(),
            endpoint: Some("http://127.0.0.1:9000/api/v1".into()),
            ssh_key_names: vec!["ops".into()],
            file_system_names: vec!["datasets".into()],
        })
    );
    assert_eq!(
        config.providers["gcp"],
        ProviderConfig::Gcp(GcpConfig {
            project: "proj-1".into(),
            zone: "us-central1-a".into(),
            endpoint: Some("https://compute.example.internal/compute/v1".into()),
            image: "projects/my-images/global/images/family/gpu-base".into(),
            network: "research".into(),
            subnetwork: Some("research-us-central1".into()),
            service_account: Some("nodes@proj-1.iam.gserviceaccount.com".into()),
            disk_size_gb: 500,
        })
    );
    assert_eq!(pool(&config, "ec2").image.as_deref(), Some("resolve:ssm:/team/gpu-ami"));
    assert_eq!(pool(&config, "gce").image.as_deref(), Some("projects/p/global/images/gpu-2026-01"));
}

#[test]
fn config_check_shows_every_option_and_reloads_as_the_same_configuration() {
    let config = parse(CLOUDS).expect("valid");
    let rendered = config.to_redacted_yaml();
    for shown in [
        "endpoint: https://vpce-0abc.ec2.us-east-1.vpce.amazonaws.com",
        "image_id: ami-0123456789abcdef0",
        "security_group_ids:\n    - sg-0123abcd",
        "instance_profile: bosun-node",
        "cost-center: '1234'",
        "file_system_names:\n    - datasets",
        "service_account: nodes@proj-1.iam.gserviceaccount.com",
        "disk_size_gb: 500",
        "image: resolve:ssm:/team/gpu-ami",
    ] {
        assert!(rendered.contains(shown), "{shown:?} missing from:\n{rendered}");
    }
    let reloaded = Config::from_yaml_str(&rendered, |_| None).expect("the rendering loads");
    assert_eq!(reloaded.providers, config.providers);
    assert_eq!(reloaded.pools, config.pools);
}

#[test]
fn options_of_other_types_are_refused_with_the_keys_that_apply() {
    let cases = [
        (
            "providers:\n  a: {type: aws, image: x}\n",
            "providers.a.image: is not used by providers of type aws (they take region, endpoint, image_id, \
             subnet_id, security_group_ids, key_name, instance_profile, tags)",
        ),
        ("providers:\n  g: {type: gcp, project: p, image_id: ami-1}\n", "providers.g.image_id: is not used"),
        ("providers:\n  l: {type: lambda, tags: {a: b}}\n", "providers.l.tags: is not used"),
        ("providers:\n  f: {type: fake, endpoint: 'http://x'}\n", "providers.f.endpoint: is not used"),
        ("providers:\n  p: {type: process, ssh_key_names: [k]}\n", "providers.p.ssh_key_names: is not used"),
    ];
    for (text, message) in cases {
        let err = error(text);
        assert_eq!(err.kind(), ConfigErrorKind::Invalid, "{text}");
        assert!(err.to_string().starts_with(message), "{text}: {err}");
    }
}

#[test]
fn bad_values_name_the_key_and_the_rule() {
    let cases = [
        ("{type: aws, endpoint: 'ec2.internal'}", "providers.c.endpoint: \"ec2.internal\" is not a URL"),
        ("{type: aws, endpoint: 'ftp://h/'}", "providers.c.endpoint: \"ftp://h/\" must be an http(s)"),
        ("{type: aws, image_id: ubuntu}", "providers.c.image_id: \"ubuntu\" is neither an AMI id"),
        ("{type: aws, image_id: 'resolve:ssm:'}", "providers.c.image_id: \"resolve:ssm:\" is neither"),
        ("{type: aws, subnet_id: vpc-1}", "providers.c.subnet_id: \"vpc-1\" is not an id of the form subnet-"),
        ("{type: aws, security_group_ids: [sg-1, default]}", "providers.c.security_group_ids[1]: \"default\""),
        ("{type: aws, key_name: ''}", "providers.c.key_name: is empty"),
        ("{type: aws, tags: {'aws:x': y}}", "providers.c.tags.aws:x: the aws: prefix is reserved"),
        ("{type: aws, tags: {bosun-pool: y}}", "providers.c.tags.bosun-pool: is set by bosun"),
        ("{type: lambda, ssh_key_names: ['']}", "providers.c.ssh_key_names[0]: is empty"),
        ("{type: gcp, project: p, disk_size_gb: 5}", "providers.c.disk_size_gb: is 5; Compute Engine boot disks"),
        ("{type: gcp, project: p, service_account: nodes}", "providers.c.service_account: \"nodes\" is neither"),
        ("{type: gcp, project: p, network: ' '}", "providers.c.network: is empty"),
    ];
    for (entry, message) in cases {
        let text = format!("providers:\n  c: {entry}\n");
        let err = error(&text);
        assert_eq!(err.kind(), ConfigErrorKind::Invalid, "{text}");
        assert!(err.to_string().starts_with(message), "{text}: {err}");
    }
}

#[test]
fn a_pool_image_must_fit_every_provider_of_the_pool() {
    let providers = "providers:\n  a: {type: aws}\n  g: {type: gcp, project: p}\n  l: {type: lambda}\n";
    let cases = [
        ("provider: l\nimage: x", "pools.p.image: providers of type lambda boot no image bosun chooses"),
        (
            "providers: [{name: a}, {name: g}]\nimage: x",
            "pools.p.image: one image cannot serve providers of types aws, gcp",
        ),
        ("provider: a\nimage: debian", "pools.p.image: \"debian\" is neither an AMI id"),
        ("provider: g\nimage: ''", "pools.p.image: is empty"),
    ];
    for (keys, message) in cases {
        let keys: String =
            format!("{keys}\ninstance_type: t\nmax_nodes: 3").lines().map(|l| format!("    {l}\n")).collect();
        let text = format!("{providers}pools:\n  p:\n{keys}");
        let err = error(&text);
        assert!(err.to_string().starts_with(message), "{text}: {err}");
    }
}

#[test]
fn ec2_takes_one_key_pair_per_machine() {
    let text = "providers:\n  a: {type: aws}\ndefaults:\n  ssh_keys: [one, two]\npools:\n  p:\n    provider: a\n    \
                instance_type: t\n    max_nodes: 3\n";
    let err = error(text);
    assert!(err.to_string().starts_with("pools.p.ssh_keys: lists 2 keys (or inherits them from defaults)"), "{err}");
}

/// The README's provider and SSH bootstrap examples are configurations bosun accepts.
#[test]
fn the_readme_examples_load() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).expect("README");
    let block_after = |heading: &str| -> String {
        let section = readme.split(heading).nth(1).unwrap_or_else(|| panic!("{heading} in the README"));
        section.split("```yaml\n").nth(1).and_then(|b| b.split("```").next()).expect("a yaml block").to_owned()
    };
    let providers = block_after("## Providers");
    let config = parse(&providers).unwrap_or_else(|e| panic!("{e}\n{providers}"));
    assert_eq!(config.providers.len(), 4);
    let bootstrap = format!("providers:\n  lambda: {{type: lambda}}\n{}", block_after("### SSH bootstrap"));
    let config = parse(&bootstrap).unwrap_or_else(|e| panic!("{e}\n{bootstrap}"));
    assert_eq!(pool(&config, "lambda-h100").spec.setup_commands.len(), 2);
}
