//! The `auth` section: bearer tokens, their roles, and where their values come from.
//!
//! Token values are resolved while loading (from the file, an environment variable or a
//! token file) so that `bosun config check` reports a missing variable or an unreadable
//! file before the server starts, and so that the server never reads secrets again.

use std::path::{Path, PathBuf};

use bosun_core::NodeId;
use bosun_core::validation::check_identifier;

use crate::ConfigError;
use crate::redact::Secret;
use crate::schema;

pub use bosun_core::Role;

/// Where a token's value was read from; shown by `bosun config check` instead of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Written in the configuration (possibly through `${VAR}`).
    Inline,
    /// `token_env`: the named environment variable.
    Env(String),
    /// `token_file`: the file's contents, surrounding whitespace removed.
    File(PathBuf),
}

/// One configured bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthToken {
    /// Who holds the token; recorded as the actor of what it does.
    pub name: String,
    pub role: Role,
    /// An agent token pinned to one node may act only for that node, even before it
    /// registers.
    pub node: Option<NodeId>,
    pub secret: Secret,
    pub source: TokenSource,
}

/// The `auth` section with token values resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub tokens: Vec<AuthToken>,
    /// Requests without a token are served (with full rights) when no token is
    /// configured. True by default, as in Navarch, so a bare `bosun server` works; always
    /// false once a token is configured.
    pub allow_unauthenticated: bool,
    /// The server-side key node tokens are minted with. Without it they derive from the
    /// shared agent token, so whoever holds that token can act for any node; with it, a
    /// registered node's token is known only to that node, and registering an existing
    /// node again needs it.
    pub node_token_key: Option<NodeTokenKey>,
}

/// `auth.node_token_key` with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTokenKey {
    pub secret: Secret,
    pub source: TokenSource,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { tokens: Vec::new(), allow_unauthenticated: true, node_token_key: None }
    }
}

impl AuthConfig {
    /// The configured token equal to `presented`. Every token is compared, each in
    /// constant time, so timing reveals neither which token matched nor how closely.
    pub fn find_token(&self, presented: &str) -> Option<&AuthToken> {
        let mut found = None;
        for token in &self.tokens {
            if token.secret.matches(presented) && found.is_none() {
                found = Some(token);
            }
        }
        found
    }

    pub(crate) fn resolve(
        raw: Option<&schema::Auth>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let Some(raw) = raw else { return Ok(Self::default()) };
        let mut tokens: Vec<AuthToken> = Vec::new();
        for (index, raw_token) in raw.tokens.iter().flatten().enumerate() {
            let key = format!("auth.tokens[{index}]");
            let token = resolve_token(&key, raw_token, env)?;
            if let Some(other) = tokens.iter().position(|t| t.name == token.name) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format_args!("{:?} is already the name of auth.tokens[{other}]", token.name),
                ));
            }
            if let Some(other) = tokens.iter().position(|t| t.secret == token.secret) {
                return Err(ConfigError::invalid(
                    key,
                    format_args!("has the same token value as auth.tokens[{other}]; give each holder its own token"),
                ));
            }
            tokens.push(token);
        }
        let allow_unauthenticated = match (raw.allow_unauthenticated, tokens.is_empty()) {
            (Some(true), false) => {
                return Err(ConfigError::invalid(
                    "auth.allow_unauthenticated",
                    "cannot be true when tokens are configured; every request then needs one of them",
                ));
            }
            (allow, true) => allow.unwrap_or(true),
            (_, false) => false,
        };
        let node_token_key = resolve_node_token_key(raw, env)?;
        Ok(Self { tokens, allow_unauthenticated, node_token_key })
    }

    pub(crate) fn to_schema(&self) -> schema::Auth {
        let tokens = self
            .tokens
            .iter()
            .map(|token| {
                let (inline, env, file) = match &token.source {
                    TokenSource::Inline => (Some(token.secret.clone()), None, None),
                    TokenSource::Env(name) => (None, Some(name.clone()), None),
                    TokenSource::File(path) => (None, None, Some(path.clone())),
                };
                schema::Token {
                    name: Some(token.name.clone()),
                    token: inline,
                    token_env: env,
                    token_file: file,
                    role: Some(token.role),
                    node: token.node.as_ref().map(ToString::to_string),
                }
            })
            .collect();
        let (node_token_key, node_token_key_env, node_token_key_file) = match &self.node_token_key {
            None => (None, None, None),
            Some(NodeTokenKey { secret, source: TokenSource::Inline }) => (Some(secret.clone()), None, None),
            Some(NodeTokenKey { source: TokenSource::Env(name), .. }) => (None, Some(name.clone()), None),
            Some(NodeTokenKey { source: TokenSource::File(path), .. }) => (None, None, Some(path.clone())),
        };
        schema::Auth {
            tokens: Some(tokens),
            allow_unauthenticated: Some(self.allow_unauthenticated),
            node_token_key,
            node_token_key_env,
            node_token_key_file,
        }
    }
}

/// The shortest node token key: it is an HMAC key, and a short one can be guessed.
const MIN_NODE_TOKEN_KEY_LEN: usize = 32;

fn resolve_node_token_key(
    raw: &schema::Auth,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<NodeTokenKey>, ConfigError> {
    let key = "auth.node_token_key";
    let (field, secret, source) = match (&raw.node_token_key, &raw.node_token_key_env, &raw.node_token_key_file) {
        (None, None, None) => return Ok(None),
        (Some(secret), None, None) => (key.to_owned(), secret.expose().trim().to_owned(), TokenSource::Inline),
        (None, Some(variable), None) => {
            let field = format!("{key}_env");
            let value = env(variable).ok_or_else(|| {
                ConfigError::invalid(&field, format_args!("environment variable {variable} is not set"))
            })?;
            (field, value.trim().to_owned(), TokenSource::Env(variable.clone()))
        }
        (None, None, Some(path)) => {
            let field = format!("{key}_file");
            (field.clone(), read_token_file(&field, path)?, TokenSource::File(path.clone()))
        }
        _ => {
            return Err(ConfigError::invalid(
                key,
                "set only one of node_token_key, node_token_key_env and node_token_key_file",
            ));
        }
    };
    if secret.len() < MIN_NODE_TOKEN_KEY_LEN {
        return Err(ConfigError::invalid(
            field,
            format_args!("is {} characters; use at least {MIN_NODE_TOKEN_KEY_LEN} random ones", secret.len()),
        ));
    }
    Ok(Some(NodeTokenKey { secret: Secret::new(secret), source }))
}

/// Longest token name; names end up in audit records as the actor.
const MAX_TOKEN_NAME_LEN: usize = 64;

fn resolve_token(
    key: &str,
    raw: &schema::Token,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthToken, ConfigError> {
    let name = raw.name.as_deref().ok_or_else(|| ConfigError::invalid(format!("{key}.name"), "is required"))?;
    check_identifier("name", name, MAX_TOKEN_NAME_LEN).map_err(|e| ConfigError::from_validation(key, e))?;
    let (source_key, secret, source) = match (&raw.token, &raw.token_env, &raw.token_file) {
        (Some(secret), None, None) => ("token", secret.expose().trim().to_owned(), TokenSource::Inline),
        (None, Some(variable), None) => {
            let key = format!("{key}.token_env");
            let value = env(variable).ok_or_else(|| {
                ConfigError::invalid(&key, format_args!("environment variable {variable} is not set"))
            })?;
            ("token_env", value.trim().to_owned(), TokenSource::Env(variable.clone()))
        }
        (None, None, Some(path)) => {
            ("token_file", read_token_file(&format!("{key}.token_file"), path)?, TokenSource::File(path.clone()))
        }
        (None, None, None) => {
            return Err(ConfigError::invalid(key, "needs its value in one of token, token_env or token_file"));
        }
        _ => return Err(ConfigError::invalid(key, "set only one of token, token_env and token_file")),
    };
    check_token_value(&format!("{key}.{source_key}"), &secret)?;
    let role = raw
        .role
        .ok_or_else(|| ConfigError::invalid(format!("{key}.role"), "is required: one of agent, operator, admin"))?;
    let node = match &raw.node {
        None => None,
        Some(_) if role != Role::Agent => {
            return Err(ConfigError::invalid(
                format!("{key}.node"),
                format_args!("only agent tokens can be pinned to a node; this one is {role}"),
            ));
        }
        Some(node) => {
            Some(NodeId::new(node.as_str()).map_err(|e| ConfigError::invalid(format!("{key}.node"), e.problem))?)
        }
    };
    Ok(AuthToken { name: name.to_owned(), role, node, secret: Secret::new(secret), source })
}

fn read_token_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|contents| contents.trim().to_owned())
        .map_err(|e| ConfigError::invalid(key, format_args!("cannot read {}: {e}", path.display())))
}

/// A bearer token travels in an HTTP header: visible ASCII only. The message never
/// includes the value.
fn check_token_value(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "the token is empty"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::invalid(
            key,
            "the token contains spaces or characters outside visible ASCII, which an Authorization header cannot carry",
        ));
    }
    Ok(())
}
