//! Keeping secrets out of output: types that cannot print what they hold, and a last
//! pass over rendered configuration.
//!
//! Secrets are typed ([`Secret`], [`SensitiveUrl`]) so that `Debug`, `Display` and
//! serialization redact them whatever prints them: a `{:?}` of the whole configuration in a
//! log line is safe. [`redact_by_name`] then catches anything a future key forgets to type,
//! by name (`*token*`, `*secret*`, `*password*`...) and by URL credentials.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_yaml::Value;

/// What every redacted value is shown as.
pub(crate) const REDACTED: &str = "***";

/// A secret string: a bearer token, a header value. Shown as `***` everywhere; read it
/// with [`Secret::expose`] at the one place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with a presented credential in time that depends only on the lengths, so
    /// response timing does not reveal how much of a guess was right.
    pub fn matches(&self, candidate: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A URL that may carry credentials (`postgres://user:password@host/db`,
/// `https://hooks.example/x?token=...`). Shown with them replaced by `***`; the full URL
/// is [`SensitiveUrl::expose`]d to the code that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SensitiveUrl(String);

impl SensitiveUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its credentials. Never log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with credentials replaced by `***`, safe for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SensitiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for SensitiveUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for SensitiveUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SensitiveUrl)
    }
}

/// Replaces the password of `scheme://user:password@host` and the values of query
/// parameters with secret-looking names (`password=`, `token=`, `api_key=`...) with `***`.
/// Works on text that is not a valid URL too, since such text ends up in error messages.
pub(crate) fn redact_url(text: &str) -> String {
    let (head, query) = match text.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (text, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@').and_then(|(userinfo, host)| Some((userinfo.split_once(':')?.0, host))) {
                Some((user, host)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_name(name) => format!("{name}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// True for names that suggest a secret value. Names ending in `_env`, `_file` or `_path`
/// say where a secret is kept, not what it is, and stay visible.
pub(crate) fn is_secret_name(name: &str) -> bool {
    const MARKERS: &[&str] =
        &["password", "passwd", "secret", "token", "apikey", "api_key", "api-key", "credential", "private_key"];
    let name = name.to_ascii_lowercase();
    let names_a_location = ["_env", "_file", "_path"].iter().any(|suffix| name.ends_with(suffix));
    !names_a_location && MARKERS.iter().any(|marker| name.contains(marker))
}

/// Redacts, in a rendered document, every string under a secret-looking key and the
/// credentials of every URL-looking string.
pub(crate) fn redact_by_name(value: &mut Value) {
    redact_within(value, false);
}

/// `secret_key`: the value (or list of values) belongs to a secret-looking key. A nested
/// mapping starts over, since its own keys say what its values are.
fn redact_within(value: &mut Value, secret_key: bool) {
    match value {
        Value::Mapping(mapping) => {
            for (key, item) in mapping.iter_mut() {
                redact_within(item, key.as_str().is_some_and(is_secret_name));
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|item| redact_within(item, secret_key)),
        Value::String(text) if secret_key => REDACTED.clone_into(text),
        Value::String(text) if text.contains("://") => *text = redact_url(text),
        Value::Tagged(tagged) => redact_within(&mut tagged.value, secret_key),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(serde_yaml::to_string(&secret).expect("serializes"), "'***'\n");
        assert_eq!(secret.expose(), "hunter2");
        assert!(secret.matches("hunter2"));
        assert!(!secret.matches("hunter3"));
        assert!(!secret.matches("hunter"));
        assert!(!secret.matches("hunter22"));
    }

    #[test]
    fn urls_lose_their_credentials() {
        let cases = [
            (
                "postgres://bosun:s3cret@db:5432/bosun?sslmode=require",
                "postgres://bosun:***@db:5432/bosun?sslmode=require",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db?user=u&password=p&x=1", "postgres://h/db?user=u&password=***&x=1"),
            ("https://hooks.example/x?token=abc&node=1", "https://hooks.example/x?token=***&node=1"),
            ("sqlite://bosun.db", "sqlite://bosun.db"),
            ("not a url: user:pw@host", "not a url: user:pw@host"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_url(input), expected);
        }
        let url = SensitiveUrl::new("postgres://u:pw@h/db");
        assert_eq!(format!("{url} {url:?}"), "postgres://u:***@h/db \"postgres://u:***@h/db\"");
    }

    #[test]
    fn secret_names() {
        for name in ["token", "api_key", "X-Api-Key", "client_secret", "password", "GITHUB_TOKEN", "credentials"] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["token_env", "token_file", "ssh_private_key_path", "api_key_env", "name", "ssh_keys", "region"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn redacts_rendered_documents_by_name() {
        let mut doc: Value = serde_yaml::from_str(
            "a:\n  client_secret: x\n  tokens: [a, {name: n, token: t}]\n  token_env: T\n  url: https://u:p@h/\n  n: 1\n",
        )
        .expect("parses");
        redact_by_name(&mut doc);
        assert_eq!(
            serde_yaml::to_string(&doc).expect("renders"),
            "a:\n  client_secret: '***'\n  tokens:\n  - '***'\n  - name: n\n    token: '***'\n  token_env: T\n  url: https://u:***@h/\n  n: 1\n"
        );
    }
}
