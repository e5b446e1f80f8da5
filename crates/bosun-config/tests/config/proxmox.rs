//! `type: proxmox` providers: a Proxmox VE cluster's endpoint and what its VMs are cloned
//! from, what is refused and why, and how `config check` shows them.

use std::time::Duration;

use bosun_config::{
    Config, ConfigErrorKind, DEFAULT_PROXMOX_TASK_TIMEOUT, ProviderConfig, ProxmoxConfig, ProxmoxEndpoint, SecretSource,
};

use crate::{error, parse};

const CLUSTER: &str = "\
providers:
  pve:
    type: proxmox
    url: https://pve.example:8006
    token_id: bosun@pve!pools
    token_secret_file: /run/secrets/pve-token
    ca_file: /etc/bosun/pve-root-ca.pem
    template_vmid: 9000
    storage: ceph
    hosts: [pve1, pve2]
    full_clone: true
    task_timeout: 20m
  lab:
    type: proxmox
    url: http://127.0.0.1:8006
    token_id: root@pam!lab
    token_secret_env: LAB_TOKEN
    verify_tls: false
    template_vmid: 100
pools:
  gpus:
    provider: pve
    instance_type: pve-a100
    max_nodes: 4
";

#[test]
fn every_option_is_read_with_its_default() {
    let config = parse(CLUSTER).expect("valid");
    assert_eq!(
        config.providers["pve"],
        ProviderConfig::Proxmox(ProxmoxConfig {
            endpoint: ProxmoxEndpoint {
                url: "https://pve.example:8006".parse().expect("url"),
                token_id: "bosun@pve!pools".into(),
                token_secret: SecretSource::File("/run/secrets/pve-token".into()),
                verify_tls: true,
                ca_file: Some("/etc/bosun/pve-root-ca.pem".into()),
            },
            template_vmid: 9000,
            storage: Some("ceph".into()),
            hosts: vec!["pve1".into(), "pve2".into()],
            full_clone: Some(true),
            task_timeout: Duration::from_secs(1200),
        })
    );
    let ProviderConfig::Proxmox(lab) = &config.providers["lab"] else { panic!("a proxmox provider") };
    assert_eq!(lab.endpoint.token_secret, SecretSource::Env("LAB_TOKEN".into()));
    assert!(!lab.endpoint.verify_tls);
    assert_eq!((lab.storage.as_deref(), lab.hosts.len(), lab.full_clone), (None, 0, None));
    assert_eq!(lab.task_timeout, DEFAULT_PROXMOX_TASK_TIMEOUT);
}

#[test]
fn config_check_shows_where_the_secret_is_and_reloads_as_the_same_configuration() {
    let config = parse(CLUSTER).expect("valid");
    let rendered = config.to_redacted_yaml();
    for shown in [
        "url: https://pve.example:8006/",
        "token_secret_file: /run/secrets/pve-token",
        "token_secret_env: LAB_TOKEN",
        "verify_tls: false",
        "template_vmid: 9000",
        "task_timeout: 10m",
        "hosts:\n    - pve1",
    ] {
        assert!(rendered.contains(shown), "{shown:?} missing from:\n{rendered}");
    }
    // The token id is named like a secret, so it shows as *** (it is not one, but the
    // rendering errs on the safe side); with it put back, the rendering loads again.
    assert_eq!(rendered.matches("token_id: '***'").count(), 2, "{rendered}");
    let restored = rendered.replacen("'***'", "root@pam!lab", 1).replacen("'***'", "bosun@pve!pools", 1);
    let reloaded = Config::from_yaml_str(&restored, |_| None).expect("the rendering loads");
    assert_eq!(reloaded.providers, config.providers);
}

#[test]
fn bad_entries_name_the_key_and_the_rule() {
    const VALID: &str = "type: proxmox, url: 'https://pve:8006', token_id: 'b@pve!t', token_secret_env: T, \
                         template_vmid: 9000";
    let cases = [
        ("type: proxmox, template_vmid: 9000", "providers.c.url: is required"),
        (
            "type: proxmox, url: 'ftp://pve', token_id: 'b@pve!t', token_secret_env: T, template_vmid: 9000",
            "providers.c.url: \"ftp://pve\" must be an https://host[:port] URL",
        ),
        (
            "type: proxmox, url: 'http://pve:8006', token_id: 'b@pve!t', token_secret_env: T, template_vmid: 9000",
            "providers.c.url: \"http://pve:8006\" would send the API token in clear text; use https://",
        ),
        (
            "type: proxmox, url: 'https://pve', token_id: 'b@pve', token_secret_env: T, template_vmid: 9000",
            "providers.c.token_id: \"b@pve\" is not USER@REALM!TOKENID",
        ),
        (
            "type: proxmox, url: 'https://pve', token_id: 'b@pve!t', template_vmid: 9000",
            "providers.c: needs the API token's secret: set token_secret_env",
        ),
        (
            &format!("{VALID}, token_secret_file: /run/secrets/t"),
            "providers.c: set only one of token_secret_env and token_secret_file",
        ),
        (
            &format!("{VALID}, verify_tls: false, ca_file: /ca.pem"),
            "providers.c.ca_file: has no effect with verify_tls: false",
        ),
        (
            "type: proxmox, url: 'https://pve', token_id: 'b@pve!t', token_secret_env: T",
            "providers.c.template_vmid: is required for providers of type proxmox",
        ),
        (
            "type: proxmox, url: 'https://pve', token_id: 'b@pve!t', token_secret_env: T, template_vmid: 99",
            "providers.c.template_vmid: is 99; vmids are 100 to 999999999",
        ),
        (&format!("{VALID}, storage: 'local lvm'"), "providers.c.storage: \"local lvm\" is not a storage id"),
        (&format!("{VALID}, hosts: [pve1, pve1]"), "providers.c.hosts[1]: \"pve1\" is already hosts[0]"),
        (&format!("{VALID}, hosts: ['pve/1']"), "providers.c.hosts[0]: \"pve/1\" is not a node name"),
        (&format!("{VALID}, task_timeout: 0s"), "providers.c.task_timeout: must be longer than 0s"),
        (
            &format!("{VALID}, region: us-east-1"),
            "providers.c.region: is not used by providers of type proxmox (they take url, token_id, \
             token_secret_env, token_secret_file, verify_tls, ca_file, template_vmid, storage, hosts, full_clone, \
             task_timeout)",
        ),
        ("type: aws, template_vmid: 9000", "providers.c.template_vmid: is not used by providers of type aws"),
        ("type: lambda, url: 'https://pve'", "providers.c.url: is not used by providers of type lambda"),
    ];
    for (entry, message) in cases {
        let text = format!("providers:\n  c: {{{entry}}}\n");
        let err = error(&text);
        assert_eq!(err.kind(), ConfigErrorKind::Invalid, "{text}");
        assert!(err.to_string().starts_with(message), "{text}: {err}");
    }
}

#[test]
fn an_unknown_key_is_refused_with_the_keys_there_are() {
    let err = error("providers:\n  c: {type: proxmox, template_vmdi: 9000}\n");
    assert_eq!((err.kind(), err.key()), (ConfigErrorKind::Schema, Some("providers.c.template_vmdi")));
    assert!(err.problem().starts_with("unknown key; expected one of type, api_key_env,"), "{err}");
    assert!(err.problem().contains("template_vmid"), "{err}");
}

#[test]
fn a_proxmox_pool_boots_no_image_bosun_chooses() {
    let text = CLUSTER.replace("    instance_type: pve-a100\n", "    instance_type: pve-a100\n    image: ubuntu\n");
    let err = error(&text);
    assert!(err.to_string().starts_with("pools.gpus.image: providers of type proxmox boot no image"), "{err}");
}
