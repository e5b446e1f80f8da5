//! Where the store lives: parsing and redacting store URLs, and choosing one from flags
//! and environment (SPEC 4.1).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::store::Backend;

/// The default store: a SQLite file in the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://bosun.db";

/// A parsed store location.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Memory,
    Sqlite {
        path: PathBuf,
    },
    /// The full URL is kept for the driver; `Display` redacts the password.
    Postgres {
        url: url::Url,
    },
}

/// The store URL could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error(
        "unsupported store URL scheme {scheme:?} in {url}: use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or memory://"
    )]
    UnsupportedScheme { scheme: String, url: String },
    #[error("store URL {url} is malformed: {problem}")]
    Malformed { url: String, problem: String },
    #[error("STORE_TYPE={store_type} needs DATABASE_URL to say where the database is")]
    MissingDatabaseUrl { store_type: String },
    #[error("STORE_TYPE={0:?} is not one of memory, sqlite or postgres")]
    UnknownStoreType(String),
}

impl StoreLocation {
    /// Parses `sqlite://PATH` (relative, or absolute as `sqlite:///abs/path`),
    /// `postgres://...` / `postgresql://...`, or `memory://`.
    pub fn parse(text: &str) -> Result<Self, LocationError> {
        let text = text.trim();
        let redacted = redact_url(text);
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(LocationError::Malformed {
                url: redacted,
                problem: "expected SCHEME://..., e.g. sqlite://bosun.db".into(),
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" | "mem" => Ok(StoreLocation::Memory),
            "sqlite" => {
                // Drop query parameters: options are not taken from the URL.
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(LocationError::Malformed {
                        url: redacted,
                        problem: "no file path after sqlite://".into(),
                    });
                }
                Ok(StoreLocation::Sqlite { path: PathBuf::from(path) })
            }
            "postgres" | "postgresql" => {
                let url = url::Url::parse(text)
                    .map_err(|e| LocationError::Malformed { url: redacted.clone(), problem: e.to_string() })?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(LocationError::Malformed { url: redacted, problem: "no host".into() });
                }
                Ok(StoreLocation::Postgres { url })
            }
            other => Err(LocationError::UnsupportedScheme { scheme: other.to_owned(), url: redacted }),
        }
    }

    /// Picks the store from, in order: an explicit `--store` value, `BOSUN_STORE`,
    /// `STORE_TYPE` with `DATABASE_URL`, and finally the default SQLite file.
    pub fn select(explicit: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<Self, LocationError> {
        if let Some(url) = explicit.filter(|u| !u.trim().is_empty()) {
            return Self::parse(url);
        }
        if let Some(url) = env("BOSUN_STORE").filter(|u| !u.trim().is_empty()) {
            return Self::parse(&url);
        }
        if let Some(store_type) = env("STORE_TYPE").filter(|t| !t.trim().is_empty()) {
            let database_url = env("DATABASE_URL").filter(|u| !u.trim().is_empty());
            return match store_type.trim().to_ascii_lowercase().as_str() {
                "memory" => Ok(StoreLocation::Memory),
                "sqlite" => match database_url {
                    Some(url) if url.contains("://") => Self::parse(&url),
                    Some(path) => Ok(StoreLocation::Sqlite { path: PathBuf::from(path) }),
                    None => Self::parse(DEFAULT_STORE_URL),
                },
                "postgres" | "postgresql" => match database_url {
                    Some(url) => Self::parse(&url),
                    None => Err(LocationError::MissingDatabaseUrl { store_type }),
                },
                _ => Err(LocationError::UnknownStoreType(store_type)),
            };
        }
        Self::parse(DEFAULT_STORE_URL)
    }

    pub fn backend(&self) -> Backend {
        match self {
            StoreLocation::Memory => Backend::Memory,
            StoreLocation::Sqlite { .. } => Backend::Sqlite,
            StoreLocation::Postgres { .. } => Backend::Postgres,
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite { path } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for StoreLocation {
    /// The location with any password replaced by `***`: safe for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Memory => f.write_str("memory://"),
            StoreLocation::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            StoreLocation::Postgres { url } => f.write_str(&redact_url(url.as_str())),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Replaces the password of `user:password@host` URLs (and `password=` query parameters)
/// with `***`. Works on malformed URLs too, since those end up in error messages.
pub fn redact_url(text: &str) -> String {
    let mut out = match text.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
                    None => text.to_owned(),
                },
                None => text.to_owned(),
            }
        }
        None => text.to_owned(),
    };
    if let Some(start) = out.find("password=") {
        let value_start = start + "password=".len();
        let value_end = out[value_start..].find('&').map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn parses_each_scheme() {
        assert_eq!(StoreLocation::parse("memory://"), Ok(StoreLocation::Memory));
        assert_eq!(
            StoreLocation::parse("sqlite://bosun.db"),
            Ok(StoreLocation::Sqlite { path: PathBuf::from("bosun.db") })
        );
        assert_eq!(
            StoreLocation::parse("sqlite:///var/lib/bosun/state.db"),
            Ok(StoreLocation::Sqlite { path: PathBuf::from("/var/lib/bosun/state.db") })
        );
        let pg = StoreLocation::parse("postgres://bosun:s3cret@db:5432/bosun?sslmode=disable").expect("valid");
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.to_string(), "postgres://bosun:***@db:5432/bosun?sslmode=disable");
    }

    #[test]
    fn errors_name_the_url_without_its_password() {
        let err = StoreLocation::parse("mysql://root:hunter2@db/x").unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported store URL scheme \"mysql\" in mysql://root:***@db/x: use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or memory://"
        );
        assert!(!err.contains("hunter2"));
        assert!(StoreLocation::parse("bosun.db").is_err());
        assert!(StoreLocation::parse("sqlite://").is_err());
        let err = StoreLocation::parse("postgres://u:pw@:5432/db").unwrap_err().to_string();
        assert!(!err.contains("pw@"), "{err}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db?user=u&password=p&x=1"), "postgres://h/db?user=u&password=***&x=1");
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn selection_order() {
        let default = StoreLocation::select(None, env(&[])).expect("default");
        assert_eq!(default.to_string(), "sqlite://bosun.db");
        let from_flag = StoreLocation::select(Some("memory://"), env(&[("BOSUN_STORE", "sqlite://x.db")]));
        assert_eq!(from_flag, Ok(StoreLocation::Memory));
        let from_env = StoreLocation::select(None, env(&[("BOSUN_STORE", "sqlite://x.db"), ("STORE_TYPE", "memory")]));
        assert_eq!(from_env.expect("valid").to_string(), "sqlite://x.db");
        let legacy = StoreLocation::select(
            None,
            env(&[("STORE_TYPE", "postgres"), ("DATABASE_URL", "postgres://u:p@h:5432/d")]),
        );
        assert_eq!(legacy.expect("valid").backend(), Backend::Postgres);
        assert_eq!(
            StoreLocation::select(None, env(&[("STORE_TYPE", "postgres")])).unwrap_err().to_string(),
            "STORE_TYPE=postgres needs DATABASE_URL to say where the database is"
        );
        assert!(StoreLocation::select(None, env(&[("STORE_TYPE", "oracle")])).is_err());
        assert_eq!(StoreLocation::select(None, env(&[("STORE_TYPE", "memory")])), Ok(StoreLocation::Memory));
    }
}
