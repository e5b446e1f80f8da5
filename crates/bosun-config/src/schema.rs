//! The configuration file exactly as written: every key optional, nothing defaulted.
//!
//! These types are the schema. Each struct denies unknown fields, so a misspelled key is an
//! error naming its path instead of a setting silently ignored (Navarch's worst config
//! trait). Variants of a choice (autoscaler and provider types) share one flat struct, as
//! in Navarch's file format; serde's tagged enums would buffer their content and lose the
//! key path of errors inside them. The resolving modules check which keys a variant
//! accepts.
//!
//! The same types render the effective configuration (`bosun config check`), so what is
//! printed is, key for key, a file bosun accepts. Secrets are [`Secret`] or
//! [`SensitiveUrl`] here, so rendering cannot print them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bosun_core::RemediationAction;
use bosun_core::pool::{CompositeMode, SelectionStrategy};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::duration::ConfigDuration;
use crate::provider::ProviderType;
use crate::redact::{Secret, SensitiveUrl};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of server, store, auth, api, retention, inventory, mcp, providers, pools and defaults"
)]
pub(crate) struct Document {
    pub server: Option<Server>,
    pub store: Option<Store>,
    pub auth: Option<Auth>,
    pub api: Option<Api>,
    pub retention: Option<Retention>,
    pub inventory: Option<Inventory>,
    pub mcp: Option<Mcp>,
    pub providers: Option<BTreeMap<String, Provider>>,
    pub pools: Option<BTreeMap<String, Pool>>,
    pub defaults: Option<Defaults>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retention {
    pub runs: Option<ConfigDuration>,
    pub audit: Option<ConfigDuration>,
    pub inventory_syncs: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Mcp {
    pub enabled: Option<bool>,
    pub rate_limit_per_second: Option<u32>,
    pub destructive_calls_per_session: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Inventory {
    pub sources: Option<Vec<InventorySource>>,
    pub declaration: Option<PathBuf>,
    pub services: Option<Vec<InventoryService>>,
}

/// One service: a named label selector over some kinds of inventory record.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InventoryService {
    pub name: Option<String>,
    pub selector: Option<String>,
    pub kinds: Option<Vec<String>>,
    pub description: Option<String>,
}

/// One source; the endpoint keys are those of [`crate::proxmox::ProxmoxEndpointKeys`].
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InventorySource {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub source_type: Option<String>,
    pub interval: Option<ConfigDuration>,
    pub url: Option<String>,
    pub token_id: Option<String>,
    pub token_secret_env: Option<String>,
    pub token_secret_file: Option<PathBuf>,
    pub verify_tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Server {
    pub address: Option<String>,
    pub external_address: Option<String>,
    pub heartbeat_interval: Option<ConfigDuration>,
    pub heartbeat_timeout: Option<ConfigDuration>,
    pub health_check_interval: Option<ConfigDuration>,
    pub inventory_interval: Option<ConfigDuration>,
    pub autoscale_interval: Option<ConfigDuration>,
    pub health_policy: Option<PathBuf>,
    pub notifier: Option<Notifier>,
    pub terminated_retention: Option<ConfigDuration>,
    pub instance_registration_timeout: Option<ConfigDuration>,
    pub startup_grace: Option<ConfigDuration>,
    pub lost_machine_grace: Option<ConfigDuration>,
    pub approval_timeout: Option<ConfigDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NotifierType {
    Noop,
    Webhook,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Notifier {
    #[serde(rename = "type")]
    pub kind: Option<NotifierType>,
    pub webhook: Option<Webhook>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Webhook {
    pub cordon_url: Option<SensitiveUrl>,
    pub uncordon_url: Option<SensitiveUrl>,
    pub drain_url: Option<SensitiveUrl>,
    pub drain_status_url: Option<SensitiveUrl>,
    pub timeout: Option<ConfigDuration>,
    pub headers: Option<BTreeMap<String, Secret>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Store {
    pub url: Option<SensitiveUrl>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Auth {
    pub tokens: Option<Vec<Token>>,
    pub allow_unauthenticated: Option<bool>,
    pub node_token_key: Option<Secret>,
    pub node_token_key_env: Option<String>,
    pub node_token_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Token {
    pub name: Option<String>,
    pub token: Option<Secret>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    pub role: Option<Role>,
    pub node: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Api {
    pub max_request_bytes: Option<usize>,
    pub command_poll_wait: Option<ConfigDuration>,
    pub command_redelivery: Option<ConfigDuration>,
    pub command_ttl: Option<ConfigDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<ConfigDuration>,
    pub idle_timeout: Option<ConfigDuration>,
    pub request_body_timeout: Option<ConfigDuration>,
    pub max_concurrent_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Provider {
    #[serde(rename = "type")]
    pub kind: Option<ProviderType>,
    pub api_key_env: Option<String>,
    pub project: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub gpu_count: Option<u32>,
    pub endpoint: Option<String>,
    pub image_id: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Option<Vec<String>>,
    pub key_name: Option<String>,
    pub instance_profile: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub ssh_key_names: Option<Vec<String>>,
    pub file_system_names: Option<Vec<String>>,
    pub image: Option<String>,
    pub network: Option<String>,
    pub subnetwork: Option<String>,
    pub service_account: Option<String>,
    pub disk_size_gb: Option<u32>,
    pub url: Option<String>,
    pub token_id: Option<String>,
    pub token_secret_env: Option<String>,
    pub token_secret_file: Option<PathBuf>,
    pub verify_tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub template_vmid: Option<u32>,
    pub storage: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub full_clone: Option<bool>,
    pub task_timeout: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pool {
    pub provider: Option<String>,
    pub providers: Option<Vec<PoolProvider>>,
    pub strategy: Option<SelectionStrategy>,
    pub instance_type: Option<String>,
    pub image: Option<String>,
    pub region: Option<String>,
    pub zones: Option<Vec<String>>,
    pub ssh_keys: Option<Vec<String>>,
    pub min_nodes: Option<u32>,
    pub max_nodes: Option<u32>,
    pub cooldown: Option<ConfigDuration>,
    pub autoscaling: Option<Autoscaling>,
    pub health: Option<Health>,
    pub labels: Option<BTreeMap<String, String>>,
    pub setup_commands: Option<Vec<String>>,
    pub ssh_user: Option<String>,
    pub ssh_private_key_path: Option<PathBuf>,
    pub drain_timeout: Option<ConfigDuration>,
    pub max_unhealthy_replacement_fraction: Option<f64>,
    pub replacement_window: Option<ConfigDuration>,
    pub mass_failure_fraction: Option<f64>,
    pub remediation: Option<Remediation>,
    pub timezone: Option<String>,
}

/// A pool's remediation ladder (`remediation:`), each key falling back to `defaults`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Remediation {
    pub steps: Option<Vec<RemediationAction>>,
    pub window: Option<ConfigDuration>,
    pub step_timeout: Option<ConfigDuration>,
    pub repeat_limit: Option<u32>,
    pub repeat_window: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PoolProvider {
    pub name: Option<String>,
    pub priority: Option<u32>,
    pub weight: Option<u32>,
    pub regions: Option<Vec<String>>,
    pub instance_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AutoscalerType {
    Reactive,
    Queue,
    Scheduled,
    Predictive,
    Composite,
}

/// Every autoscaler's keys in one struct, as in Navarch; which apply depends on `type`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Autoscaling {
    #[serde(rename = "type")]
    pub kind: Option<AutoscalerType>,
    pub scale_up_at: Option<f64>,
    pub scale_down_at: Option<f64>,
    pub jobs_per_node: Option<u32>,
    pub schedule: Option<Vec<ScheduleEntry>>,
    pub fallback: Option<Box<Autoscaling>>,
    pub lookback_window: Option<u32>,
    pub growth_factor: Option<f64>,
    pub mode: Option<CompositeMode>,
    pub autoscalers: Option<Vec<Autoscaling>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleEntry {
    pub days: Option<Vec<String>>,
    pub start: Option<u32>,
    pub end: Option<u32>,
    pub min_nodes: Option<u32>,
    pub max_nodes: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Health {
    pub unhealthy_after: Option<u32>,
    pub auto_replace: Option<bool>,
    pub recover_after: Option<ConfigDuration>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub ssh_keys: Option<Vec<String>>,
    pub health: Option<Health>,
    pub remediation: Option<Remediation>,
    pub ssh_user: Option<String>,
    pub ssh_private_key_path: Option<PathBuf>,
}
