//! What a pool's machines get besides the pool's spec: the boot image and SSH access.
//!
//! These come from the configuration file alone and are not pool state: the stored spec
//! says how big a pool is and how it heals; this says how its machines are built and
//! reached, and may hold a path to a private key the store has no business keeping.

use std::collections::BTreeMap;

use bosun_config::{Config, SshConfig};
use bosun_core::PoolName;
use bosun_provider::SshAccess;

/// How one pool's machines are built and reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolMachines {
    /// The pool's `image`, replacing its providers' (aws and gcp).
    pub image: Option<String>,
    /// `ssh_user`, `ssh_keys` (installed at provisioning) and `ssh_private_key_path`
    /// (used to run `setup_commands`).
    pub ssh: SshConfig,
}

impl PoolMachines {
    /// Every configured pool's machine settings.
    pub fn from_config(config: &Config) -> BTreeMap<PoolName, PoolMachines> {
        config
            .pools
            .iter()
            .map(|(name, pool)| (name.clone(), PoolMachines { image: pool.image.clone(), ssh: pool.ssh.clone() }))
            .collect()
    }

    /// What the provider is asked to install for SSH.
    pub(crate) fn ssh_access(&self) -> SshAccess {
        SshAccess { user: self.ssh.user.clone(), keys: self.ssh.keys.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pool_gets_its_image_and_ssh_access() {
        let config = Config::from_yaml_str(
            "providers:\n  g: {type: gcp, project: p}\npools:\n  train:\n    provider: g\n    instance_type: t\n    \
             max_nodes: 1\n    image: projects/p/global/images/i\n    ssh_user: ops\n    ssh_keys: ['ssh-ed25519 AAAA k']\n",
            |_| None,
        )
        .expect("valid");
        let machines = PoolMachines::from_config(&config);
        let train = &machines[&"train".parse::<PoolName>().expect("name")];
        assert_eq!(train.image.as_deref(), Some("projects/p/global/images/i"));
        assert_eq!(train.ssh_access(), SshAccess { user: "ops".into(), keys: vec!["ssh-ed25519 AAAA k".into()] });
        assert_eq!(PoolMachines::default().ssh_access(), SshAccess::default(), "the same defaults on both sides");
    }
}
