//! The `pools` and `defaults` sections, converted into bosun-core's [`PoolSpec`].
//!
//! Defaults come from bosun-core ([`PoolSpec::single_provider`], [`PoolHealthSpec`]), so a
//! pool configured here and one built in code agree; `autoscaling` blocks are resolved in
//! their own module. Navarch's meaning is kept except where it was a bug: a `health` block
//! without `auto_replace` keeps replacement on, because each health key falls back to
//! `defaults.health`, then to the built-in value, one by one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bosun_core::pool::{PoolHealthSpec, PoolProvider};
use bosun_core::{Labels, PoolName, PoolSpec, RemediationSpec};

use crate::ConfigError;
use crate::autoscaling::{autoscaling_to_schema, resolve_autoscaling};
use crate::duration::{ConfigDuration, given_or, require_positive};
use crate::provider::{ProviderConfig, ProviderType, check_aws_image};
use crate::schema;
use crate::setup::parse_setup_command;

const DEFAULT_SSH_USER: &str = "ubuntu";
/// The label every pool's instances carry; pool membership is decided by it.
const POOL_LABEL: &str = "pool";

/// How bosun reaches a pool's machines over SSH: for `setup_commands`, and for providers
/// (such as Lambda) that install named SSH keys at provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfig {
    /// Key names (Lambda) or public keys (GCP) to install on new machines.
    pub keys: Vec<String>,
    pub user: String,
    /// Needed to run `setup_commands`; a leading `~/` is the bootstrapper's to expand.
    pub private_key_path: Option<PathBuf>,
}

impl Default for SshConfig {
    /// No keys, Navarch's default user, no private key (so no setup commands).
    fn default() -> Self {
        Self { keys: Vec::new(), user: DEFAULT_SSH_USER.to_owned(), private_key_path: None }
    }
}

/// One pool with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub spec: PoolSpec,
    pub ssh: SshConfig,
    /// The boot image for this pool's machines, replacing its providers' `image` or
    /// `image_id` (only for pools whose providers are all aws, or all gcp).
    pub image: Option<String>,
}

impl PoolConfig {
    pub(crate) fn resolve(
        name: &str,
        raw: &schema::Pool,
        defaults: &schema::Defaults,
        providers: &BTreeMap<String, ProviderConfig>,
    ) -> Result<(PoolName, Self), ConfigError> {
        let key = format!("pools.{name}");
        let pool_name = PoolName::new(name).map_err(|e| ConfigError::invalid(&key, e.problem))?;
        // bosun-core's defaults for everything the file leaves out.
        let base = PoolSpec::single_provider("", "", 0, 0);

        let pool_providers = resolve_providers(&key, raw, providers)?;
        let autoscaling =
            raw.autoscaling.as_ref().map(|a| resolve_autoscaling(&format!("{key}.autoscaling"), a)).transpose()?;
        let health = resolve_health(&key, raw.health.as_ref(), defaults.health.as_ref())?;
        let remediation = resolve_remediation(raw.remediation.as_ref(), defaults.remediation.as_ref());
        let ssh = SshConfig {
            // As in Navarch, an empty list takes the defaults too.
            keys: raw
                .ssh_keys
                .clone()
                .filter(|keys| !keys.is_empty())
                .or_else(|| defaults.ssh_keys.clone())
                .unwrap_or_default(),
            user: raw
                .ssh_user
                .clone()
                .or_else(|| defaults.ssh_user.clone())
                .unwrap_or_else(|| DEFAULT_SSH_USER.to_owned()),
            private_key_path: raw.ssh_private_key_path.clone().or_else(|| defaults.ssh_private_key_path.clone()),
        };
        if ssh.user.is_empty() {
            return Err(ConfigError::invalid(format!("{key}.ssh_user"), "is empty"));
        }
        check_ssh_keys(&key, &ssh, &pool_providers, providers)?;
        let image = resolve_image(&key, raw.image.as_deref(), &pool_providers, providers)?;
        let setup_commands = raw.setup_commands.clone().unwrap_or_default();
        for (i, command) in setup_commands.iter().enumerate() {
            let index_key = format!("{key}.setup_commands[{i}]");
            if command.trim().is_empty() {
                return Err(ConfigError::invalid(index_key, "is empty"));
            }
            parse_setup_command(command).map_err(|problem| ConfigError::invalid(index_key, problem))?;
        }
        if !setup_commands.is_empty() && ssh.private_key_path.is_none() {
            return Err(ConfigError::invalid(
                format!("{key}.setup_commands"),
                "need an SSH key to run: set ssh_private_key_path on the pool or under defaults",
            ));
        }
        let timezone = raw.timezone.clone().unwrap_or(base.timezone);
        check_timezone(&format!("{key}.timezone"), &timezone)?;
        let replacement_window = given_or(raw.replacement_window, base.replacement_window);
        require_positive(&format!("{key}.replacement_window"), replacement_window)?;

        let spec = PoolSpec {
            providers: pool_providers,
            strategy: raw.strategy.unwrap_or(base.strategy),
            instance_type: raw.instance_type.clone().unwrap_or_default(),
            region: raw.region.clone().unwrap_or_default(),
            zones: raw.zones.clone().unwrap_or_default(),
            min_nodes: raw.min_nodes.unwrap_or(0),
            max_nodes: raw.max_nodes.unwrap_or(0),
            cooldown: given_or(raw.cooldown, base.cooldown),
            autoscaling,
            health,
            drain_timeout: given_or(raw.drain_timeout, base.drain_timeout),
            max_unhealthy_replacement_fraction: raw
                .max_unhealthy_replacement_fraction
                .unwrap_or(base.max_unhealthy_replacement_fraction),
            replacement_window,
            mass_failure_fraction: raw.mass_failure_fraction.unwrap_or(base.mass_failure_fraction),
            remediation,
            timezone,
            labels: resolve_labels(&key, name, raw.labels.as_ref())?,
            setup_commands,
        };
        spec.validate().map_err(|e| ConfigError::from_validation(&key, e))?;
        Ok((pool_name, Self { spec, ssh, image }))
    }

    pub(crate) fn to_schema(&self) -> schema::Pool {
        let spec = &self.spec;
        let (provider, providers) = match spec.providers.as_slice() {
            [only]
                if only.priority == 0
                    && only.weight == 1
                    && only.regions.is_empty()
                    && only.instance_type.is_none() =>
            {
                (Some(only.name.clone()), None)
            }
            several => (None, Some(several.iter().map(provider_to_schema).collect())),
        };
        schema::Pool {
            provider,
            providers,
            strategy: Some(spec.strategy),
            instance_type: Some(spec.instance_type.clone()),
            image: self.image.clone(),
            region: Some(spec.region.clone()).filter(|region| !region.is_empty()),
            zones: Some(spec.zones.clone()),
            ssh_keys: Some(self.ssh.keys.clone()),
            min_nodes: Some(spec.min_nodes),
            max_nodes: Some(spec.max_nodes),
            cooldown: Some(ConfigDuration(spec.cooldown)),
            autoscaling: spec.autoscaling.as_ref().map(autoscaling_to_schema),
            health: Some(schema::Health {
                unhealthy_after: Some(spec.health.unhealthy_after),
                auto_replace: Some(spec.health.auto_replace),
                recover_after: spec.health.recover_after.map(ConfigDuration),
            }),
            labels: Some(spec.labels.as_map().clone()),
            setup_commands: Some(spec.setup_commands.clone()),
            ssh_user: Some(self.ssh.user.clone()),
            ssh_private_key_path: self.ssh.private_key_path.clone(),
            drain_timeout: Some(ConfigDuration(spec.drain_timeout)),
            max_unhealthy_replacement_fraction: Some(spec.max_unhealthy_replacement_fraction),
            replacement_window: Some(ConfigDuration(spec.replacement_window)),
            mass_failure_fraction: Some(spec.mass_failure_fraction),
            remediation: Some(schema::Remediation {
                steps: Some(spec.remediation.steps.clone()),
                window: Some(ConfigDuration(spec.remediation.window)),
                step_timeout: Some(ConfigDuration(spec.remediation.step_timeout)),
                repeat_limit: Some(spec.remediation.repeat_limit),
                repeat_window: Some(ConfigDuration(spec.remediation.repeat_window)),
            }),
            timezone: Some(spec.timezone.clone()),
        }
    }
}

/// Checks `defaults` on their own, so a bad default is reported under `defaults` rather
/// than under the first pool that inherits it.
pub(crate) fn check_defaults(defaults: &schema::Defaults) -> Result<(), ConfigError> {
    if defaults.remediation.is_some() {
        resolve_remediation(None, defaults.remediation.as_ref())
            .validate()
            .map_err(|e| ConfigError::from_validation("defaults.remediation", e))?;
    }
    if let Some(health) = &defaults.health {
        if health.unhealthy_after == Some(0) {
            return Err(ConfigError::invalid("defaults.health.unhealthy_after", "must be at least 1"));
        }
        if let Some(ConfigDuration(recover_after)) = health.recover_after {
            require_positive("defaults.health.recover_after", recover_after)?;
        }
    }
    if defaults.ssh_user.as_deref() == Some("") {
        return Err(ConfigError::invalid("defaults.ssh_user", "is empty"));
    }
    Ok(())
}

/// `provider: NAME` or `providers: [...]`, exactly one, naming defined providers.
fn resolve_providers(
    key: &str,
    raw: &schema::Pool,
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<Vec<PoolProvider>, ConfigError> {
    match (&raw.provider, &raw.providers) {
        (Some(_), Some(_)) => {
            Err(ConfigError::invalid(format!("{key}.providers"), "set either provider or providers, not both"))
        }
        (None, None) => {
            Err(ConfigError::invalid(format!("{key}.provider"), "is required (or list several under providers)"))
        }
        (Some(name), None) => {
            check_defined(&format!("{key}.provider"), name, providers)?;
            Ok(vec![PoolProvider {
                name: name.clone(),
                priority: 0,
                weight: 1,
                regions: Vec::new(),
                instance_type: None,
            }])
        }
        (None, Some(entries)) => {
            if entries.is_empty() {
                return Err(ConfigError::invalid(format!("{key}.providers"), "needs at least one entry"));
            }
            let mut resolved: Vec<PoolProvider> = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let entry_key = format!("{key}.providers[{index}]");
                let name = entry
                    .name
                    .clone()
                    .ok_or_else(|| ConfigError::invalid(format!("{entry_key}.name"), "is required"))?;
                check_defined(&format!("{entry_key}.name"), &name, providers)?;
                if resolved.iter().any(|p| p.name == name) {
                    return Err(ConfigError::invalid(
                        format!("{entry_key}.name"),
                        format_args!("{name:?} is listed twice"),
                    ));
                }
                let weight = entry.weight.unwrap_or(1);
                if weight == 0 {
                    return Err(ConfigError::invalid(
                        format!("{entry_key}.weight"),
                        "must be at least 1; remove the entry to stop using the provider",
                    ));
                }
                if entry.instance_type.as_deref() == Some("") {
                    return Err(ConfigError::invalid(format!("{entry_key}.instance_type"), "is empty"));
                }
                resolved.push(PoolProvider {
                    name,
                    priority: entry.priority.unwrap_or(0),
                    weight,
                    regions: entry.regions.clone().unwrap_or_default(),
                    instance_type: entry.instance_type.clone(),
                });
            }
            Ok(resolved)
        }
    }
}

/// A pool's `image`: one image id means something to one kind of cloud only, so every
/// provider of the pool must be of one type that boots from images.
fn resolve_image(
    key: &str,
    image: Option<&str>,
    pool_providers: &[PoolProvider],
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<Option<String>, ConfigError> {
    let Some(image) = image else { return Ok(None) };
    let key = format!("{key}.image");
    if image.trim().is_empty() {
        return Err(ConfigError::invalid(key, "is empty"));
    }
    let mut types: Vec<ProviderType> =
        pool_providers.iter().filter_map(|p| providers.get(&p.name)).map(ProviderConfig::provider_type).collect();
    types.dedup();
    match types.as_slice() {
        [ProviderType::Aws] => check_aws_image(&key, image.to_owned()).map(Some),
        [only] if only.takes_image() => Ok(Some(image.to_owned())),
        [only] => Err(ConfigError::invalid(
            key,
            format_args!("providers of type {only} boot no image bosun chooses; remove the key"),
        )),
        several => {
            let names: Vec<&str> = several.iter().map(|t| t.as_str()).collect();
            Err(ConfigError::invalid(
                key,
                format_args!(
                    "one image cannot serve providers of types {}; set image/image_id on each provider instead",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// EC2 installs one key pair per machine, so a pool with an aws provider names at most
/// one in `ssh_keys` (it replaces the provider's `key_name`).
fn check_ssh_keys(
    key: &str,
    ssh: &SshConfig,
    pool_providers: &[PoolProvider],
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<(), ConfigError> {
    let has_aws =
        pool_providers.iter().filter_map(|p| providers.get(&p.name)).any(|p| p.provider_type() == ProviderType::Aws);
    if has_aws && ssh.keys.len() > 1 {
        return Err(ConfigError::invalid(
            format!("{key}.ssh_keys"),
            format_args!(
                "lists {} keys (or inherits them from defaults), but EC2 installs one key pair per machine; \
                 name one key pair",
                ssh.keys.len()
            ),
        ));
    }
    Ok(())
}

fn check_defined(key: &str, name: &str, providers: &BTreeMap<String, ProviderConfig>) -> Result<(), ConfigError> {
    if providers.contains_key(name) {
        return Ok(());
    }
    let defined: Vec<&str> = providers.keys().map(String::as_str).collect();
    let hint = if defined.is_empty() {
        "no providers are defined".to_owned()
    } else {
        format!("defined: {}", defined.join(", "))
    };
    Err(ConfigError::invalid(key, format_args!("{name:?} is not defined under providers ({hint})")))
}

fn provider_to_schema(provider: &PoolProvider) -> schema::PoolProvider {
    schema::PoolProvider {
        name: Some(provider.name.clone()),
        priority: Some(provider.priority),
        weight: Some(provider.weight),
        regions: Some(provider.regions.clone()),
        instance_type: provider.instance_type.clone(),
    }
}

/// Each key from the pool's `health`, else from `defaults.health`, else built in.
fn resolve_health(
    key: &str,
    pool: Option<&schema::Health>,
    defaults: Option<&schema::Health>,
) -> Result<PoolHealthSpec, ConfigError> {
    let layers = [pool, defaults];
    let layered = || layers.iter().flatten();
    let built_in = PoolHealthSpec::default();
    let health = PoolHealthSpec {
        unhealthy_after: layered().find_map(|h| h.unhealthy_after).unwrap_or(built_in.unhealthy_after),
        auto_replace: layered().find_map(|h| h.auto_replace).unwrap_or(built_in.auto_replace),
        recover_after: layered().find_map(|h| h.recover_after).map(|ConfigDuration(d)| d).or(built_in.recover_after),
    };
    if let Some(recover_after) = health.recover_after {
        require_positive(&format!("{key}.health.recover_after"), recover_after)?;
    }
    Ok(health)
}

/// Each key from the pool's `remediation`, else from `defaults.remediation`, else built
/// in. The result is validated with the pool's spec (its errors name
/// `pools.NAME.remediation.KEY`).
fn resolve_remediation(pool: Option<&schema::Remediation>, defaults: Option<&schema::Remediation>) -> RemediationSpec {
    let layers = [pool, defaults];
    let layered = || layers.iter().flatten();
    let built_in = RemediationSpec::default();
    RemediationSpec {
        steps: layered().find_map(|r| r.steps.clone()).unwrap_or(built_in.steps),
        window: layered().find_map(|r| r.window).map_or(built_in.window, |ConfigDuration(d)| d),
        step_timeout: layered().find_map(|r| r.step_timeout).map_or(built_in.step_timeout, |ConfigDuration(d)| d),
        repeat_limit: layered().find_map(|r| r.repeat_limit).unwrap_or(built_in.repeat_limit),
        repeat_window: layered().find_map(|r| r.repeat_window).map_or(built_in.repeat_window, |ConfigDuration(d)| d),
    }
}

/// The pool's labels plus `pool=<name>`, which bosun relies on to tell which pool an
/// instance belongs to; a file may repeat it but not contradict it.
fn resolve_labels(key: &str, name: &str, raw: Option<&BTreeMap<String, String>>) -> Result<Labels, ConfigError> {
    let mut labels =
        Labels::try_from(raw.cloned().unwrap_or_default()).map_err(|e| ConfigError::from_validation(key, e))?;
    if let Some(other) = labels.get(POOL_LABEL).filter(|value| *value != name) {
        return Err(ConfigError::invalid(
            format!("{key}.labels.{POOL_LABEL}"),
            format_args!("is {other:?}, but bosun sets it to the pool's name {name:?}; remove it"),
        ));
    }
    labels.insert(POOL_LABEL, name).map_err(|e| ConfigError::from_validation(key, e))?;
    Ok(labels)
}

/// A time zone from the IANA database bosun is built with (`UTC`, `Europe/Berlin`,
/// `Etc/GMT+5`): the one the server evaluates schedules in, so a name it would refuse at
/// every reconcile pass is refused here.
fn check_timezone(key: &str, timezone: &str) -> Result<(), ConfigError> {
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::invalid(
            key,
            format_args!("{timezone:?} is not an IANA time zone name such as UTC or Europe/Berlin"),
        )),
    }
}
