//! bosun's configuration file.
//!
//! The schema is Navarch's (`server`, `providers`, `pools`, `defaults`), so a Navarch
//! configuration loads unchanged with the same meaning, extended with `store`, `auth`,
//! `api`, `retention`, `inventory`, `mcp` and bosun's pool keys. Loading is strict: an
//! unknown key anywhere is an error naming its path, `${VAR}` is expanded from the
//! environment first, and durations carry units (`30s`, `5m`, `1h30m`).
//!
//! **Architecture Invariant:** this crate turns text into typed settings and back; it
//! starts nothing and connects to nothing. Pools come out as bosun-core [`PoolSpec`]s.
//!
//! Layout:
//! - `config`: [`Config`], the entry point: `load`, `from_yaml_str`, `to_redacted_yaml`.
//! - `expand`: `${VAR}` expansion of the raw text (`$${` for a literal `${`).
//! - `parse`, `schema`: the file's shape (every key optional, unknown keys denied) and
//!   errors that name key paths.
//! - `server`, `notifier`, `store`, `auth`, `api`, `provider`, `pool`, `autoscaling`: each
//!   section resolved into effective settings with defaults, validated, and rendered back
//!   into the schema.
//! - [`approval`]: approval policy documents (the rules, in order).
//! - [`proxmox`]: a Proxmox VE cluster's API endpoint ([`ProxmoxEndpoint`]: URL, API token
//!   id, where its secret is, TLS checks), shared by every entry that talks to a cluster.
//! - [`pricing`]: model price lists (`bosun pricing set`), in US dollars per million tokens.
//! - [`runbook`]: runbooks ([`runbook::RunbookSpec`]), parsed as strictly as the file.
//! - `retention`: how long the operations ledger keeps run history and the audit log.
//! - `inventory`: the systems (Proxmox VE clusters) bosun reads its inventory from, the
//!   declaration of what it should hold, and the services (named label selectors over
//!   VMs, containers and workloads).
//! - `mcp`: the MCP tool server (`/mcp`): whether it serves and its per-token rate limit.
//! - [`declaration`]: inventory declarations (the VMs and containers that should be
//!   there), parsed as strictly as the file into `bosun_core::inventory::drift` terms.
//! - `setup`: the placeholders of `setup_commands` and their syntax, shared with the SSH
//!   bootstrap that fills them in.
//! - [`duration`]: Go-style duration strings (`parse`, `format`), also for command-line flags.
//! - `redact`: [`Secret`] and [`SensitiveUrl`], which never print what they hold, and the
//!   name-based redaction of rendered output.
//! - `error`: [`ConfigError`], one line naming file, key and problem.
//!
//! [`PoolSpec`]: bosun_core::PoolSpec

mod api;
pub mod approval;
mod auth;
mod autoscaling;
mod config;
pub mod declaration;
pub mod duration;
mod error;
mod expand;
pub mod inventory;
mod mcp;
mod notifier;
mod parse;
mod pool;
pub mod pricing;
mod provider;
pub mod proxmox;
mod redact;
mod retention;
pub mod runbook;
mod schema;
mod server;
mod setup;
mod store;

pub use api::{ApiConfig, TlsFiles};
pub use auth::{AuthConfig, AuthToken, NodeTokenKey, Role, TokenSource};
pub use config::Config;
pub use error::{ConfigError, ConfigErrorKind};
pub use inventory::{DeclarationConfig, InventoryConfig, InventorySource, InventorySourceKind};
pub use mcp::McpConfig;
pub use notifier::{NotifierConfig, WebhookConfig};
pub use pool::{PoolConfig, SshConfig};
pub use provider::{
    AWS_RESERVED_TAGS, AwsConfig, DEFAULT_AWS_IMAGE, DEFAULT_GCP_DISK_SIZE_GB, DEFAULT_GCP_IMAGE, DEFAULT_GCP_NETWORK,
    DEFAULT_PROXMOX_TASK_TIMEOUT, GcpConfig, LambdaConfig, ProviderConfig, ProviderType, ProxmoxConfig,
};
pub use proxmox::{ProxmoxEndpoint, ProxmoxEndpointKeys, SecretSource};
pub use redact::{Secret, SensitiveUrl};
pub use retention::RetentionConfig;
pub use server::ServerConfig;
pub use setup::{Placeholder, SETUP_PLACEHOLDERS, SetupPart, parse_setup_command};
pub use store::StoreConfig;
