//! The `store` section: where bosun keeps its state.

use crate::ConfigError;
use crate::redact::SensitiveUrl;
use crate::schema;

/// The `store` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://USER:PASSWORD@HOST:PORT/DB` or `memory://`. `None`
    /// leaves the choice to `--store`, `BOSUN_STORE`, `STORE_TYPE`/`DATABASE_URL` and the
    /// default `sqlite://bosun.db`; when set, it ranks below `--store` and `BOSUN_STORE`.
    pub url: Option<SensitiveUrl>,
}

/// The store URL schemes bosun-store opens. The store parses the URL fully when it opens
/// it; this early check lets `bosun config check` catch a wrong scheme.
const STORE_SCHEMES: &[&str] = &["sqlite", "postgres", "postgresql", "memory"];

impl StoreConfig {
    pub(crate) fn resolve(raw: Option<&schema::Store>) -> Result<Self, ConfigError> {
        let url = raw.and_then(|store| store.url.clone());
        if let Some(url) = &url {
            let scheme = url.expose().split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
            if !scheme.is_some_and(|scheme| STORE_SCHEMES.contains(&scheme.as_str())) {
                return Err(ConfigError::invalid(
                    "store.url",
                    format_args!(
                        "{url} is not a store URL; use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DB or memory://"
                    ),
                ));
            }
        }
        Ok(Self { url })
    }

    pub(crate) fn to_schema(&self) -> schema::Store {
        schema::Store { url: self.url.clone() }
    }
}
