//! The `inventory` section: the systems bosun reads its inventory from besides its agents.
//!
//! ```yaml
//! inventory:
//!   sources:
//!     - name: pve1
//!       type: proxmox
//!       url: https://pve.example:8006
//!       token_id: "bosun@pve!inventory"
//!       token_secret_env: PVE_TOKEN_SECRET   # or token_secret_file
//!       interval: 30s                        # default 30s
//!       verify_tls: true                     # ca_file: optional
//!   declaration: /etc/bosun/inventory.yaml   # optional: checked for drift after each sync
//!   services:
//!     - name: training
//!       selector: "team=ml,gpu"              # a label selector
//!       kinds: [vm, workload]                # default: vm, container, workload
//!       description: "the ML team's GPUs"    # optional
//! ```
//!
//! The endpoint keys mean what they mean for a `type: proxmox` provider
//! ([`crate::proxmox`]). `agents` is the name of the agents' own source and `services`
//! that of the configured services: neither can be taken. The declaration
//! ([`crate::declaration`]) is read when the configuration loads (a path relative to the
//! working directory, as every path here) and may only name configured sources.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use bosun_core::inventory::drift::Declaration;
use bosun_core::inventory::{MemberKind, Service};
use bosun_core::{LabelSelector, ServiceName, SourceName};

use crate::ConfigError;
use crate::duration::{ConfigDuration, given_or, require_positive};
use crate::proxmox::{ProxmoxEndpoint, ProxmoxEndpointKeys};
use crate::schema;

/// How often a source is read when its entry does not say.
pub const DEFAULT_SOURCE_INTERVAL: Duration = Duration::from_secs(30);
/// The name the agents' reports are synced under.
pub const AGENTS_SOURCE: &str = "agents";
/// The name the configured services are synced under (a source of type `config`).
pub const SERVICES_SOURCE: &str = "services";

/// The effective `inventory` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryConfig {
    pub sources: Vec<InventorySource>,
    /// The inventory as it should be (`inventory.declaration`).
    pub declaration: Option<DeclarationConfig>,
    /// The services, in the order configured.
    pub services: Vec<Service>,
}

/// A declaration file and what it declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclarationConfig {
    pub path: PathBuf,
    pub declaration: Declaration,
}

/// One configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventorySource {
    pub name: SourceName,
    pub interval: Duration,
    pub kind: InventorySourceKind,
}

/// What a source is, with how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventorySourceKind {
    Proxmox(ProxmoxEndpoint),
}

impl InventoryConfig {
    pub(crate) fn resolve(raw: Option<&schema::Inventory>) -> Result<Self, ConfigError> {
        let Some(raw) = raw else { return Ok(Self::default()) };
        let mut names = BTreeSet::new();
        let mut sources = Vec::new();
        for (index, entry) in raw.sources.iter().flatten().enumerate() {
            let key = format!("inventory.sources[{index}]");
            let name_text =
                entry.name.as_deref().ok_or_else(|| ConfigError::invalid(format!("{key}.name"), "is required"))?;
            let name: SourceName =
                name_text.parse().map_err(|e| ConfigError::from_validation(&format!("{key}.name"), e))?;
            if name.as_str() == AGENTS_SOURCE || name.as_str() == SERVICES_SOURCE {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format_args!(
                        "{name:?} is bosun's own source ({AGENTS_SOURCE}: the agents' reports, {SERVICES_SOURCE}: \
                         the configured services); choose another name"
                    ),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::invalid(format!("{key}.name"), format_args!("{name} is configured twice")));
            }
            let key = format!("inventory.sources.{name}");
            let kind = match entry.source_type.as_deref() {
                Some("proxmox") => {
                    let keys = ProxmoxEndpointKeys {
                        url: entry.url.clone(),
                        token_id: entry.token_id.clone(),
                        token_secret_env: entry.token_secret_env.clone(),
                        token_secret_file: entry.token_secret_file.clone(),
                        verify_tls: entry.verify_tls,
                        ca_file: entry.ca_file.clone(),
                    };
                    InventorySourceKind::Proxmox(ProxmoxEndpoint::resolve(&key, &keys)?)
                }
                Some(other) => {
                    return Err(ConfigError::invalid(
                        format!("{key}.type"),
                        format_args!("{other:?} is not a source type bosun reads; the one supported is proxmox"),
                    ));
                }
                None => return Err(ConfigError::invalid(format!("{key}.type"), "is required: proxmox")),
            };
            let interval = given_or(entry.interval, DEFAULT_SOURCE_INTERVAL);
            require_positive(&format!("{key}.interval"), interval)?;
            sources.push(InventorySource { name, interval, kind });
        }
        let declaration = raw.declaration.as_ref().map(|path| resolve_declaration(path, &names)).transpose()?;
        let services = resolve_services(raw.services.as_deref().unwrap_or_default())?;
        Ok(Self { sources, declaration, services })
    }

    pub(crate) fn to_schema(&self) -> Option<schema::Inventory> {
        if self.sources.is_empty() && self.declaration.is_none() && self.services.is_empty() {
            return None;
        }
        let sources = self
            .sources
            .iter()
            .map(|source| {
                let InventorySourceKind::Proxmox(endpoint) = &source.kind;
                let keys = endpoint.to_keys();
                schema::InventorySource {
                    name: Some(source.name.to_string()),
                    source_type: Some("proxmox".to_owned()),
                    interval: Some(ConfigDuration(source.interval)),
                    url: keys.url,
                    token_id: keys.token_id,
                    token_secret_env: keys.token_secret_env,
                    token_secret_file: keys.token_secret_file,
                    verify_tls: keys.verify_tls,
                    ca_file: keys.ca_file,
                }
            })
            .collect::<Vec<_>>();
        let services = self
            .services
            .iter()
            .map(|service| schema::InventoryService {
                name: Some(service.name.to_string()),
                selector: Some(service.selector.to_string()),
                kinds: Some(service.kinds.iter().map(|k| k.as_str().to_owned()).collect()),
                description: service.description.clone(),
            })
            .collect::<Vec<_>>();
        Some(schema::Inventory {
            sources: (!sources.is_empty()).then_some(sources),
            declaration: self.declaration.as_ref().map(|d| d.path.clone()),
            services: (!services.is_empty()).then_some(services),
        })
    }
}

/// Reads the declaration at `path`; its errors name its own file and line under the
/// configuration's key, and every source it names must be configured.
fn resolve_declaration(
    path: &std::path::Path,
    configured: &BTreeSet<SourceName>,
) -> Result<DeclarationConfig, ConfigError> {
    const KEY: &str = "inventory.declaration";
    let declaration = crate::declaration::load(path).map_err(|e| ConfigError::invalid(KEY, e))?;
    if let Some(unknown) = declaration.sources().into_iter().find(|s| !configured.contains(s)) {
        let names: Vec<String> = configured.iter().map(ToString::to_string).collect();
        return Err(ConfigError::invalid(
            KEY,
            format_args!(
                "{}: names source {unknown}, which is not configured under inventory.sources (configured: {})",
                path.display(),
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
        ));
    }
    Ok(DeclarationConfig { path: path.to_owned(), declaration })
}

/// The `services` entries: each named once, with a selector that parses, known kinds.
fn resolve_services(entries: &[schema::InventoryService]) -> Result<Vec<Service>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut services = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let key = format!("inventory.services[{index}]");
        let name_text =
            entry.name.as_deref().ok_or_else(|| ConfigError::invalid(format!("{key}.name"), "is required"))?;
        let name: ServiceName = name_text
            .parse()
            .map_err(|e: bosun_core::ValidationError| ConfigError::invalid(format!("{key}.name"), e.problem))?;
        if !names.insert(name.clone()) {
            return Err(ConfigError::invalid(format!("{key}.name"), format_args!("{name} is configured twice")));
        }
        let key = format!("inventory.services.{name}");
        let selector_text = entry.selector.as_deref().ok_or_else(|| {
            ConfigError::invalid(format!("{key}.selector"), "is required: a label selector such as team=ml,gpu")
        })?;
        let selector: LabelSelector = selector_text
            .parse()
            .map_err(|e: bosun_core::ValidationError| ConfigError::invalid(format!("{key}.selector"), e.problem))?;
        let kinds = match &entry.kinds {
            None => MemberKind::ALL.iter().copied().collect(),
            Some(kinds) => kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| {
                    kind.parse::<MemberKind>().map_err(|e| ConfigError::invalid(format!("{key}.kinds[{i}]"), e.problem))
                })
                .collect::<Result<BTreeSet<_>, _>>()?,
        };
        let service = Service::new(name, selector, kinds, entry.description.clone())
            .map_err(|e| ConfigError::from_validation(&key, e))?;
        services.push(service);
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn load(text: &str) -> Result<Config, String> {
        Config::from_yaml_str(text, |_| None).map_err(|e| e.to_string())
    }

    const SOURCE: &str = "inventory:\n  sources:\n    - name: pve1\n      type: proxmox\n      url: https://pve.example:8006\n      token_id: \"bosun@pve!inventory\"\n      token_secret_env: PVE_TOKEN_SECRET\n";

    #[test]
    fn a_proxmox_source_is_read_with_its_defaults() {
        let config = load(SOURCE).expect("valid");
        let source = &config.inventory.sources[0];
        assert_eq!((source.name.as_str(), source.interval.as_secs()), ("pve1", 30));
        let super::InventorySourceKind::Proxmox(endpoint) = &source.kind;
        assert!(endpoint.verify_tls);
        let rendered = config.to_redacted_yaml();
        assert!(rendered.contains("name: pve1") && rendered.contains("interval: 30s"), "{rendered}");
    }

    #[test]
    fn bad_sources_name_their_key() {
        for (text, expected) in [
            (SOURCE.replace("type: proxmox", "type: vmware"), "inventory.sources.pve1.type"),
            (SOURCE.replace("name: pve1", "name: agents"), "inventory.sources[0].name"),
            (SOURCE.replace("name: pve1", "name: \"has space\""), "inventory.sources[0].name"),
            (SOURCE.replace("https://pve.example:8006", "ftp://x"), "inventory.sources.pve1.url"),
            (format!("{SOURCE}      interval: 0s\n"), "inventory.sources.pve1.interval"),
            (format!("{SOURCE}      colour: blue\n"), "colour"),
            (format!("{SOURCE}{}", &SOURCE[SOURCE.find("    - name").expect("entry")..]), "configured twice"),
            (SOURCE.replace("name: pve1", "name: services"), "inventory.sources[0].name"),
        ] {
            let error = load(&text).expect_err(&text);
            assert!(error.contains(expected), "{text}\n=> {error}");
        }
    }

    const SERVICES: &str = "inventory:\n  services:\n    - name: training\n      selector: \"team=ml,gpu\"\n      kinds: [vm, workload]\n      description: the ML team's GPUs\n    - name: dns\n      selector: infra\n";

    #[test]
    fn services_are_read_with_their_default_kinds_and_render_back() {
        let config = load(SERVICES).expect("valid");
        let services = &config.inventory.services;
        assert_eq!(services.len(), 2);
        assert_eq!(
            (services[0].name.as_str(), services[0].selector.to_string()),
            ("training", "team=ml,gpu".to_owned())
        );
        let kinds = |i: usize| services[i].kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>();
        assert_eq!(kinds(0), ["vm", "workload"]);
        assert_eq!(kinds(1), ["vm", "container", "workload"], "every kind by default");
        assert_eq!(services[0].description.as_deref(), Some("the ML team's GPUs"));
        let rendered = config.to_redacted_yaml();
        assert!(rendered.contains("services:") && rendered.contains("selector: team=ml,gpu"), "{rendered}");
        assert_eq!(load(&rendered).expect("the rendering reads back").inventory, config.inventory);
    }

    #[test]
    fn bad_services_name_their_key_and_line() {
        for (text, expected) in [
            (format!("{SERVICES}      colour: blue\n"), "inventory.services[1].colour: unknown key"),
            (format!("{SERVICES}      colour: blue\n"), "(line 9)"),
            (
                SERVICES.replace("name: dns", "name: training"),
                "inventory.services[1].name: training is configured twice",
            ),
            (SERVICES.replace("name: dns", "name: \"has space\""), "inventory.services[1].name"),
            (
                SERVICES.replace("selector: infra", "selector: \"=x\""),
                "inventory.services.dns.selector: \"=x\" has no key",
            ),
            (SERVICES.replace("selector: infra", "selector: \"bad key\""), "inventory.services.dns.selector"),
            (SERVICES.replace("selector: infra", "selector: \"\""), "inventory.services.dns.selector: is empty"),
            (
                SERVICES.replace("    - name: dns\n      selector: infra\n", "    - name: dns\n"),
                "inventory.services.dns.selector: is required",
            ),
            (
                SERVICES.replace("kinds: [vm, workload]", "kinds: [vm, host]"),
                "inventory.services.training.kinds[1]: \"host\" is not one of vm, container, workload",
            ),
            (SERVICES.replace("kinds: [vm, workload]", "kinds: []"), "inventory.services.training.kinds: is empty"),
        ] {
            let error = load(&text).expect_err(&text);
            assert!(error.contains(expected), "{text}\n=> {error}");
        }
    }

    #[test]
    fn a_declaration_is_read_with_the_configuration_and_its_errors_name_its_file_and_line() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("declared.yaml");
        let config_text = format!("{SOURCE}  declaration: {}\n", path.display());

        std::fs::write(&path, "source: pve1\nvms:\n  - vmid: 104\n    cpus: 16\n").expect("write");
        let config = load(&config_text).expect("valid");
        let declared = config.inventory.declaration.as_ref().expect("declaration");
        assert_eq!(
            (declared.path.as_path(), declared.declaration.vms.as_ref().map(Vec::len)),
            (path.as_path(), Some(1))
        );
        let rendered = config.to_redacted_yaml();
        assert!(rendered.contains(&format!("declaration: {}", path.display())), "{rendered}");

        std::fs::write(&path, "source: pve1\nvms:\n  - vmid: 104\n    cpu: 16\n").expect("write");
        let error = load(&config_text).expect_err("unknown key");
        assert!(
            error.starts_with(&format!("inventory.declaration: {}: vms[0].cpu: unknown key", path.display()))
                && error.ends_with("(line 4)"),
            "{error}"
        );
        std::fs::write(&path, "source: pve2\nvms: []\n").expect("write");
        let error = load(&config_text).expect_err("unconfigured source");
        assert!(error.contains("names source pve2, which is not configured") && error.contains("pve1"), "{error}");
        std::fs::remove_file(&path).expect("remove");
        let error = load(&config_text).expect_err("absent");
        assert!(error.contains("inventory.declaration") && error.contains("cannot read"), "{error}");
    }
}
