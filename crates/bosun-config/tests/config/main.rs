//! Integration tests of bosun-config through its public API only.

mod auth;
mod defaults;
mod env;
mod navarch;
mod navarch_shapes;
mod provider_options;
mod proxmox;
mod refused;
mod render;
mod schema_errors;
mod validation;

use bosun_config::{Config, ConfigError, PoolConfig};
use bosun_core::PoolName;

/// Test data files.
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// A pool that passes validation, to vary one key at a time.
pub const FAKE_PROVIDER: &str = "providers:\n  fake:\n    type: fake\n";

pub fn no_env(_: &str) -> Option<String> {
    None
}

/// An environment holding exactly `vars`.
pub fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
}

pub fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(text, no_env)
}

/// The error `text` must produce.
pub fn error(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}\nfor:\n{text}"),
        Err(error) => error,
    }
}

/// `FAKE_PROVIDER` plus one pool `p` made of `keys` (indented four spaces).
pub fn with_pool(keys: &str) -> String {
    let keys: String = keys.lines().map(|line| format!("    {line}\n")).collect();
    format!("{FAKE_PROVIDER}pools:\n  p:\n{keys}")
}

pub fn pool<'a>(config: &'a Config, name: &str) -> &'a PoolConfig {
    &config.pools[&PoolName::new(name).expect("valid pool name")]
}
