//! [`Config`]: loading, resolving and rendering the whole configuration.

use std::collections::BTreeMap;
use std::path::Path;

use bosun_core::{PoolName, PoolSpec};
use serde_yaml::Value;

use crate::api::ApiConfig;
use crate::auth::AuthConfig;
use crate::error::ConfigError;
use crate::expand::expand;
use crate::inventory::InventoryConfig;
use crate::mcp::McpConfig;
use crate::pool::{PoolConfig, check_defaults};
use crate::provider::ProviderConfig;
use crate::redact::redact_by_name;
use crate::retention::RetentionConfig;
use crate::server::ServerConfig;
use crate::store::StoreConfig;
use crate::{parse, schema};

/// bosun's effective configuration: the file with `${VAR}`s expanded, validated, and
/// every default applied. [`Config::default`] is the configuration without a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub api: ApiConfig,
    pub retention: RetentionConfig,
    pub inventory: InventoryConfig,
    pub mcp: McpConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `defaults` are already folded into each pool. No pools is valid: the server then
    /// provisions nothing and serves the agents that register on their own.
    pub pools: BTreeMap<PoolName, PoolConfig>,
}

impl Config {
    /// Reads a configuration file, expanding `${VAR}` from the process environment.
    /// Errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment supplied by `env`.
    pub fn load_with_env(path: impl AsRef<Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, &e))?;
        Self::from_yaml_str(&text, env).map_err(|e| e.in_file(path))
    }

    /// Parses configuration text. `env` answers `${VAR}` references and `token_env`
    /// lookups; `token_file`s are read relative to the working directory, as Navarch
    /// reads every path.
    pub fn from_yaml_str(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let expanded = expand(text, &env).map_err(|e| ConfigError::expand(e.line, e.problem))?;
        let document = parse::parse(&expanded)?;
        Self::resolve(document, &env)
    }

    /// Each pool as bosun-core's `(name, spec)`, in name order.
    pub fn pool_specs(&self) -> Vec<(PoolName, PoolSpec)> {
        self.pools.iter().map(|(name, pool)| (name.clone(), pool.spec.clone())).collect()
    }

    /// The effective configuration as YAML in the file's own schema, every default filled
    /// in, for `bosun config check`. Secrets appear as `***`: tokens, webhook header values,
    /// URL passwords and anything under a key named like a secret. `defaults` are shown
    /// applied to each pool. Apart from the redacted values, the output loads back as the
    /// same configuration.
    pub fn to_redacted_yaml(&self) -> String {
        self.render().unwrap_or_else(|e| format!("# the effective configuration cannot be rendered: {e}\n"))
    }

    fn render(&self) -> Result<String, serde_yaml::Error> {
        let mut document = serde_yaml::to_value(self.to_schema())?;
        drop_nulls(&mut document);
        redact_by_name(&mut document);
        serde_yaml::to_string(&document)
    }

    fn resolve(document: schema::Document, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let server = ServerConfig::resolve(&document.server.unwrap_or_default())?;
        let store = StoreConfig::resolve(document.store.as_ref())?;
        let auth = AuthConfig::resolve(document.auth.as_ref(), env)?;
        let api = ApiConfig::resolve(document.api.as_ref())?;
        let retention = RetentionConfig::resolve(document.retention.as_ref())?;
        let inventory = InventoryConfig::resolve(document.inventory.as_ref())?;
        let mcp = McpConfig::resolve(document.mcp.as_ref())?;
        let providers = document
            .providers
            .unwrap_or_default()
            .iter()
            .map(|(name, raw)| Ok((name.clone(), ProviderConfig::resolve(name, raw)?)))
            .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
        let defaults = document.defaults.unwrap_or_default();
        check_defaults(&defaults)?;
        let pools = document
            .pools
            .unwrap_or_default()
            .iter()
            .map(|(name, raw)| PoolConfig::resolve(name, raw, &defaults, &providers))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Self { server, store, auth, api, retention, inventory, mcp, providers, pools })
    }

    fn to_schema(&self) -> schema::Document {
        schema::Document {
            server: Some(self.server.to_schema()),
            store: Some(self.store.to_schema()),
            auth: Some(self.auth.to_schema()),
            api: Some(self.api.to_schema()),
            retention: Some(self.retention.to_schema()),
            inventory: self.inventory.to_schema(),
            mcp: Some(self.mcp.to_schema()),
            providers: Some(self.providers.iter().map(|(name, p)| (name.clone(), p.to_schema())).collect()),
            pools: Some(self.pools.iter().map(|(name, p)| (name.to_string(), p.to_schema())).collect()),
            defaults: None,
        }
    }
}

/// Unset optional keys render as nothing rather than `key: null`.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Mapping(mapping) => {
            mapping.retain(|_, item| !item.is_null());
            mapping.iter_mut().for_each(|(_, item)| drop_nulls(item));
        }
        Value::Sequence(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
