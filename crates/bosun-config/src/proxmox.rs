//! How bosun reaches a Proxmox VE cluster's API: its address, the API token, and how the
//! cluster's certificate is checked. One shape for every entry that talks to a cluster (a
//! provider entry of `type: proxmox` today, an inventory source later), so the keys mean
//! the same everywhere:
//!
//! | key | meaning |
//! | --- | --- |
//! | `url` | `https://HOST[:PORT][/PATH]` (Proxmox listens on 8006); `http://` only on loopback (a mock) |
//! | `token_id` | the API token's id, `USER@REALM!TOKENID` |
//! | `token_secret_env` | the environment variable holding the token's secret, or |
//! | `token_secret_file` | a file holding it (surrounding whitespace ignored); exactly one of the two |
//! | `verify_tls` | `false` accepts any certificate (default `true`) |
//! | `ca_file` | PEM certificates trusted besides the system's roots (a cluster's own CA, `/etc/pve/pve-root-ca.pem`) |
//!
//! The secret itself is not part of the configuration: whoever connects reads it from
//! [`SecretSource`] when it starts, so the configuration never holds it.
//!
//! An entry's own schema holds these keys flat beside its other keys (serde cannot deny
//! unknown keys through a flattened struct); it copies them into a [`ProxmoxEndpointKeys`]
//! and calls [`ProxmoxEndpoint::resolve`], which names every bad key under the entry's
//! path. [`ENDPOINT_KEYS`] lists them for the entry's list of accepted keys.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use crate::ConfigError;

/// The keys of a [`ProxmoxEndpoint`], in the order they are documented.
pub const ENDPOINT_KEYS: [&str; 6] =
    ["url", "token_id", "token_secret_env", "token_secret_file", "verify_tls", "ca_file"];

/// Where the API token's secret is read from when a client starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `token_secret_env`: the named environment variable.
    Env(String),
    /// `token_secret_file`: the file's contents, surrounding whitespace removed.
    File(PathBuf),
}

impl fmt::Display for SecretSource {
    /// Where the secret is, never the secret: `the environment variable PVE_TOKEN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(variable) => write!(f, "the environment variable {variable}"),
            SecretSource::File(path) => write!(f, "the file {}", path.display()),
        }
    }
}

/// A Proxmox VE cluster's API endpoint, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxmoxEndpoint {
    /// `https://` (or `http://` on a loopback address), with a host, without credentials.
    pub url: Url,
    /// `USER@REALM!TOKENID`.
    pub token_id: String,
    pub token_secret: SecretSource,
    /// `false`: any certificate is accepted (anyone on the path can then read the token).
    pub verify_tls: bool,
    /// PEM certificates trusted in addition to the system's roots. Never set together
    /// with `verify_tls: false`.
    pub ca_file: Option<PathBuf>,
}

/// The endpoint keys as written in an entry, every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxmoxEndpointKeys {
    pub url: Option<String>,
    pub token_id: Option<String>,
    pub token_secret_env: Option<String>,
    pub token_secret_file: Option<PathBuf>,
    pub verify_tls: Option<bool>,
    pub ca_file: Option<PathBuf>,
}

impl ProxmoxEndpoint {
    /// Validates the endpoint keys of the entry at `key` (`providers.pve`); errors name
    /// `key.url`, `key.token_id`... and never contain a secret.
    pub fn resolve(key: &str, keys: &ProxmoxEndpointKeys) -> Result<Self, ConfigError> {
        let invalid =
            |field: &str, problem: fmt::Arguments<'_>| ConfigError::invalid(format!("{key}.{field}"), problem);
        let text = keys.url.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(invalid("url", format_args!("is required: the cluster's API, e.g. https://pve.example:8006")));
        }
        let url = Url::parse(text).map_err(|e| invalid("url", format_args!("{text:?} is not a URL: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(invalid(
                    "url",
                    format_args!(
                        "{text:?} would send the API token in clear text; use https:// \
                         (http:// is only for a loopback address)"
                    ),
                ));
            }
            _ => return Err(invalid("url", format_args!("{text:?} must be an https://host[:port] URL"))),
        }
        if url.host().is_none() {
            return Err(invalid("url", format_args!("{text:?} has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                format_args!(
                    "carries credentials; give the API token in token_id and token_secret_env or token_secret_file"
                ),
            ));
        }
        let token_id = keys.token_id.as_deref().map(str::trim).unwrap_or_default();
        if token_id.is_empty() {
            return Err(invalid("token_id", format_args!("is required: the API token's id, USER@REALM!TOKENID")));
        }
        if !is_token_id(token_id) {
            return Err(invalid("token_id", format_args!("{token_id:?} is not USER@REALM!TOKENID")));
        }
        let token_secret = match (&keys.token_secret_env, &keys.token_secret_file) {
            (Some(variable), None) if !is_variable_name(variable) => {
                return Err(invalid(
                    "token_secret_env",
                    format_args!("{variable:?} is not an environment variable name (letters, digits and _)"),
                ));
            }
            (Some(variable), None) => SecretSource::Env(variable.clone()),
            (None, Some(path)) if path.as_os_str().is_empty() => {
                return Err(invalid("token_secret_file", format_args!("is empty")));
            }
            (None, Some(path)) => SecretSource::File(path.clone()),
            (None, None) => {
                return Err(ConfigError::invalid(
                    key,
                    "needs the API token's secret: set token_secret_env (a variable holding it) or \
                     token_secret_file (a file holding it)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(key, "set only one of token_secret_env and token_secret_file"));
            }
        };
        let verify_tls = keys.verify_tls.unwrap_or(true);
        let ca_file = match &keys.ca_file {
            None => None,
            Some(path) if path.as_os_str().is_empty() => return Err(invalid("ca_file", format_args!("is empty"))),
            Some(_) if !verify_tls => {
                return Err(invalid(
                    "ca_file",
                    format_args!("has no effect with verify_tls: false, which accepts any certificate; remove one"),
                ));
            }
            Some(_) if url.scheme() == "http" => {
                return Err(invalid("ca_file", format_args!("has no effect on an http:// url")));
            }
            Some(path) => Some(path.clone()),
        };
        Ok(Self { url, token_id: token_id.to_owned(), token_secret, verify_tls, ca_file })
    }

    /// The keys that give this endpoint, for rendering the effective configuration.
    pub fn to_keys(&self) -> ProxmoxEndpointKeys {
        let (token_secret_env, token_secret_file) = match &self.token_secret {
            SecretSource::Env(variable) => (Some(variable.clone()), None),
            SecretSource::File(path) => (None, Some(path.clone())),
        };
        ProxmoxEndpointKeys {
            url: Some(self.url.to_string()),
            token_id: Some(self.token_id.clone()),
            token_secret_env,
            token_secret_file,
            verify_tls: Some(self.verify_tls),
            ca_file: self.ca_file.clone(),
        }
    }
}

/// Whether `token_id` has the shape of a Proxmox API token id, `USER@REALM!TOKENID`,
/// with nothing that could break the `Authorization` header it travels in.
pub fn is_token_id(token_id: &str) -> bool {
    let Some((user, token)) = token_id.split_once('!') else { return false };
    let Some((name, realm)) = user.split_once('@') else { return false };
    !name.is_empty()
        && !realm.is_empty()
        && !token.is_empty()
        && token_id.chars().all(|c| c.is_ascii_graphic() && c != '=')
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ProxmoxEndpointKeys {
        ProxmoxEndpointKeys {
            url: Some("https://pve.example:8006".into()),
            token_id: Some("bosun@pve!pools".into()),
            token_secret_env: Some("PVE_TOKEN".into()),
            ..ProxmoxEndpointKeys::default()
        }
    }

    /// One change to valid keys.
    type Change = fn(&mut ProxmoxEndpointKeys);

    fn refused(change: Change) -> String {
        let mut keys = keys();
        change(&mut keys);
        match ProxmoxEndpoint::resolve("sources[0]", &keys) {
            Ok(endpoint) => panic!("expected an error, got {endpoint:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_endpoint_reads_its_keys_and_renders_them_back() {
        let endpoint = ProxmoxEndpoint::resolve("sources[0]", &keys()).expect("valid");
        assert_eq!(endpoint.url.as_str(), "https://pve.example:8006/");
        assert_eq!(endpoint.token_secret, SecretSource::Env("PVE_TOKEN".into()));
        assert!(endpoint.verify_tls && endpoint.ca_file.is_none());
        assert_eq!(ProxmoxEndpoint::resolve("x", &endpoint.to_keys()).expect("round trip"), endpoint);
        assert_eq!(endpoint.token_secret.to_string(), "the environment variable PVE_TOKEN");

        let file = ProxmoxEndpointKeys {
            url: Some("http://127.0.0.1:8006".into()),
            token_secret_env: None,
            token_secret_file: Some("/run/secrets/pve".into()),
            verify_tls: Some(false),
            ..keys()
        };
        let endpoint = ProxmoxEndpoint::resolve("x", &file).expect("a loopback http URL and a secret file");
        assert_eq!(endpoint.token_secret.to_string(), "the file /run/secrets/pve");
        assert!(!endpoint.verify_tls);
        let ca = ProxmoxEndpointKeys { ca_file: Some("/etc/pve/pve-root-ca.pem".into()), ..keys() };
        assert_eq!(ProxmoxEndpoint::resolve("x", &ca).expect("a CA").ca_file, ca.ca_file);
    }

    #[test]
    fn bad_keys_are_named_with_the_entry_path() {
        let cases: [(&str, Change); 13] = [
            ("sources[0].url: is required", |k| k.url = None),
            ("sources[0].url: \"pve:8006\" must be an https://host[:port] URL", |k| k.url = Some("pve:8006".into())),
            ("sources[0].url: \"ftp://pve\" must be an https://host[:port] URL", |k| k.url = Some("ftp://pve".into())),
            ("sources[0].url: \"http://pve.example:8006\" would send the API token in clear text", |k| {
                k.url = Some("http://pve.example:8006".into());
            }),
            ("sources[0].url: \"not a url\" is not a URL", |k| k.url = Some("not a url".into())),
            ("sources[0].url: carries credentials", |k| k.url = Some("https://root:pw@pve".into())),
            ("sources[0].token_id: is required", |k| k.token_id = Some(" ".into())),
            ("sources[0].token_id: \"bosun@pve\" is not USER@REALM!TOKENID", |k| k.token_id = Some("bosun@pve".into())),
            ("sources[0]: needs the API token's secret", |k| k.token_secret_env = None),
            ("sources[0]: set only one of token_secret_env and token_secret_file", |k| {
                k.token_secret_file = Some("/s".into());
            }),
            ("sources[0].token_secret_env: \"PVE TOKEN\" is not an environment variable name", |k| {
                k.token_secret_env = Some("PVE TOKEN".into());
            }),
            ("sources[0].ca_file: has no effect with verify_tls: false", |k| {
                k.verify_tls = Some(false);
                k.ca_file = Some("/ca.pem".into());
            }),
            ("sources[0].ca_file: has no effect on an http:// url", |k| {
                k.url = Some("http://localhost:8006".into());
                k.ca_file = Some("/ca.pem".into());
            }),
        ];
        for (message, change) in cases {
            let error = refused(change);
            assert!(error.starts_with(message), "expected {message:?}, got {error:?}");
        }
    }

    #[test]
    fn token_ids_have_a_user_a_realm_and_a_token() {
        for ok in ["root@pam!bosun", "bosun@pve!inventory", "svc@ldap-corp!t_1"] {
            assert!(is_token_id(ok), "{ok}");
        }
        for bad in ["", "root@pam", "root!t", "@pam!t", "root@!t", "root@pam!", "root@pam!a b", "root@pam!a=b"] {
            assert!(!is_token_id(bad), "{bad}");
        }
    }
}
