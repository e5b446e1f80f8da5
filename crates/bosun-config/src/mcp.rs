//! The `mcp` section: the MCP tool server at `/mcp` on the API port, through which an AI
//! agent reads and operates the fleet with an operator's or admin's token.
//!
//! ```yaml
//! mcp:
//!   enabled: true              # false: every MCP call is refused at once (HTTP 503)
//!   rate_limit_per_second: 10  # MCP requests per token name, with a burst of as many
//!   destructive_calls_per_session: 5  # destructive calls one MCP session may make
//!                                     # (terminate_node, a shrinking scale_pool, a
//!                                     # start_runbook of a destructive runbook)
//! ```

use crate::ConfigError;
use crate::schema;

/// Most requests per second a token may be allowed: beyond, `enabled: false` is what is meant.
const MAX_RATE: u32 = 100_000;

/// The effective MCP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpConfig {
    /// Whether `/mcp` serves at all; when false every request to it is answered 503 with a
    /// JSON-RPC error saying so.
    pub enabled: bool,
    /// MCP requests each token (by name; an open server's anonymous callers share one
    /// allowance) may make per second, in a burst of as many; beyond, 429 with `Retry-After`.
    pub rate_limit_per_second: u32,
    /// Calls of destructive tools one MCP session may make, whatever the approval policy
    /// decides of each; beyond, the call is refused and the agent must open a new session.
    pub destructive_calls_per_session: u32,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self { enabled: true, rate_limit_per_second: 10, destructive_calls_per_session: 5 }
    }
}

/// Most destructive calls a session may be allowed.
const MAX_DESTRUCTIVE_CALLS: u32 = 10_000;

impl McpConfig {
    pub(crate) fn resolve(raw: Option<&schema::Mcp>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let Some(raw) = raw else { return Ok(defaults) };
        let resolved = Self {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            rate_limit_per_second: raw.rate_limit_per_second.unwrap_or(defaults.rate_limit_per_second),
            destructive_calls_per_session: raw
                .destructive_calls_per_session
                .unwrap_or(defaults.destructive_calls_per_session),
        };
        if resolved.destructive_calls_per_session > MAX_DESTRUCTIVE_CALLS {
            return Err(ConfigError::invalid(
                "mcp.destructive_calls_per_session",
                format!("must be at most {MAX_DESTRUCTIVE_CALLS}; 0 refuses every destructive call"),
            ));
        }
        if !(1..=MAX_RATE).contains(&resolved.rate_limit_per_second) {
            return Err(ConfigError::invalid(
                "mcp.rate_limit_per_second",
                format!("must be between 1 and {MAX_RATE}; to refuse every MCP call set mcp.enabled: false"),
            ));
        }
        Ok(resolved)
    }

    pub(crate) fn to_schema(self) -> schema::Mcp {
        schema::Mcp {
            enabled: Some(self.enabled),
            rate_limit_per_second: Some(self.rate_limit_per_second),
            destructive_calls_per_session: Some(self.destructive_calls_per_session),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn defaults_values_and_bounds() {
        let config = Config::from_yaml_str("", |_| None).expect("valid");
        assert!(config.mcp.enabled);
        assert_eq!(config.mcp.rate_limit_per_second, 10);
        assert_eq!(config.mcp.destructive_calls_per_session, 5);
        let config = Config::from_yaml_str("mcp: {destructive_calls_per_session: 0}\n", |_| None).expect("valid");
        assert_eq!(config.mcp.destructive_calls_per_session, 0);
        let error =
            Config::from_yaml_str("mcp: {destructive_calls_per_session: 10001}\n", |_| None).expect_err("bound");
        assert!(error.to_string().contains("mcp.destructive_calls_per_session"), "{error}");
        let config = Config::from_yaml_str("mcp: {enabled: false}\n", |_| None).expect("valid");
        assert!(!config.mcp.enabled);
        assert_eq!(config.mcp.rate_limit_per_second, 10);
        let config = Config::from_yaml_str("mcp: {rate_limit_per_second: 3}\n", |_| None).expect("valid");
        assert_eq!(config.mcp.rate_limit_per_second, 3);
        for bad in ["0", "100001"] {
            let error =
                Config::from_yaml_str(&format!("mcp: {{rate_limit_per_second: {bad}}}\n"), |_| None).expect_err(bad);
            assert!(error.to_string().contains("mcp.rate_limit_per_second"), "{error}");
        }
        let error = Config::from_yaml_str("mcp: {rate_limit_per_second: -1}\n", |_| None).expect_err("negative");
        assert!(error.to_string().contains("mcp.rate_limit_per_second"), "{error}");
        let error = Config::from_yaml_str("mcp: {enabled: yes please}\n", |_| None).expect_err("not a bool");
        assert!(error.to_string().contains("mcp.enabled"), "{error}");
        let error = Config::from_yaml_str("mcp: {allowed_hosts: []}\n", |_| None).expect_err("unknown");
        assert!(error.to_string().contains("mcp.allowed_hosts"), "{error}");
    }
}
