//! The `retention` section: how long the operations ledger keeps run history and the audit
//! log, and the inventory its sync records.
//!
//! ```yaml
//! retention:
//!   runs: 30d             # events and artifacts of runs finished longer ago are deleted
//!   audit: 365d           # audit entries older than this are deleted
//!   inventory_syncs: 30d  # records of inventory syncs older than this are deleted
//! ```

use std::time::Duration;

use crate::ConfigError;
use crate::duration::{ConfigDuration, given_or, require_positive};
use crate::schema;

const DAY: u64 = 24 * 3600;

/// The effective retention windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Events and artifacts of runs that finished longer ago than this are deleted (the
    /// runs themselves stay).
    pub runs: Duration,
    /// Audit entries older than this are deleted.
    pub audit: Duration,
    /// Records of inventory syncs that finished longer ago than this are deleted.
    pub inventory_syncs: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            runs: Duration::from_secs(30 * DAY),
            audit: Duration::from_secs(365 * DAY),
            inventory_syncs: Duration::from_secs(30 * DAY),
        }
    }
}

impl RetentionConfig {
    pub(crate) fn resolve(raw: Option<&schema::Retention>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let Some(raw) = raw else { return Ok(defaults) };
        let resolved = Self {
            runs: given_or(raw.runs, defaults.runs),
            audit: given_or(raw.audit, defaults.audit),
            inventory_syncs: given_or(raw.inventory_syncs, defaults.inventory_syncs),
        };
        require_positive("retention.runs", resolved.runs)?;
        require_positive("retention.audit", resolved.audit)?;
        require_positive("retention.inventory_syncs", resolved.inventory_syncs)?;
        Ok(resolved)
    }

    pub(crate) fn to_schema(self) -> schema::Retention {
        schema::Retention {
            runs: Some(ConfigDuration(self.runs)),
            audit: Some(ConfigDuration(self.audit)),
            inventory_syncs: Some(ConfigDuration(self.inventory_syncs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn windows_default_and_are_read() {
        let config = Config::from_yaml_str("retention: {runs: 7d}\n", |_| None).expect("valid");
        assert_eq!(config.retention.runs, std::time::Duration::from_secs(7 * 86_400));
        assert_eq!(config.retention.audit, std::time::Duration::from_secs(365 * 86_400));
        assert_eq!(config.retention.inventory_syncs, std::time::Duration::from_secs(30 * 86_400));
        let config = Config::from_yaml_str("retention: {inventory_syncs: 2d}\n", |_| None).expect("valid");
        assert_eq!(config.retention.inventory_syncs, std::time::Duration::from_secs(2 * 86_400));
        let error = Config::from_yaml_str("retention: {audit: 0s}\n", |_| None).expect_err("zero");
        assert!(error.to_string().contains("retention.audit"), "{error}");
        let error = Config::from_yaml_str("retention: {changes: 1d}\n", |_| None).expect_err("unknown");
        assert!(error.to_string().contains("retention.changes"), "{error}");
    }
}
