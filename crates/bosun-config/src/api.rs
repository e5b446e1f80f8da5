//! The `api` section: bounds on what clients may ask of the server.

use std::time::Duration;

use crate::ConfigError;
use crate::duration::{self, ConfigDuration, given_or, require_positive};
use crate::schema;

/// Large enough for a health report with hundreds of events, small enough that a flood of
/// oversized requests cannot exhaust memory. The same default as gRPC's.
const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// A smaller limit would refuse ordinary registrations and health reports; it is more likely
/// a unit mistake than an intent.
const MIN_REQUEST_BYTES: usize = 1024;
const DEFAULT_COMMAND_POLL_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_COMMAND_REDELIVERY: Duration = Duration::from_secs(60);
const DEFAULT_COMMAND_TTL: Duration = Duration::from_secs(3_600);

/// The `api` section: bounds on what clients may ask of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest request body accepted; larger ones are refused before they are read.
    pub max_request_bytes: usize,
    /// Longest a PollCommands call waits for a command before answering empty.
    pub command_poll_wait: Duration,
    /// A DELIVERED command not acked this long after delivery is handed out again.
    pub command_redelivery: Duration,
    /// A command still PENDING or DELIVERED this long after it was issued EXPIREs.
    pub command_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            command_poll_wait: DEFAULT_COMMAND_POLL_WAIT,
            command_redelivery: DEFAULT_COMMAND_REDELIVERY,
            command_ttl: DEFAULT_COMMAND_TTL,
        }
    }
}

impl ApiConfig {
    pub(crate) fn resolve(raw: Option<&schema::Api>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let Some(raw) = raw else { return Ok(defaults) };
        let api = Self {
            max_request_bytes: raw.max_request_bytes.unwrap_or(defaults.max_request_bytes),
            command_poll_wait: given_or(raw.command_poll_wait, defaults.command_poll_wait),
            command_redelivery: given_or(raw.command_redelivery, defaults.command_redelivery),
            command_ttl: given_or(raw.command_ttl, defaults.command_ttl),
        };
        if api.max_request_bytes < MIN_REQUEST_BYTES {
            return Err(ConfigError::invalid(
                "api.max_request_bytes",
                format_args!("{} is too small; at least {MIN_REQUEST_BYTES} bytes", api.max_request_bytes),
            ));
        }
        require_positive("api.command_poll_wait", api.command_poll_wait)?;
        require_positive("api.command_redelivery", api.command_redelivery)?;
        if api.command_ttl <= api.command_redelivery {
            return Err(ConfigError::invalid(
                "api.command_ttl",
                format_args!(
                    "{} must be longer than command_redelivery {}, or an unacknowledged command expires before it is redelivered",
                    duration::format(api.command_ttl),
                    duration::format(api.command_redelivery)
                ),
            ));
        }
        Ok(api)
    }

    pub(crate) fn to_schema(&self) -> schema::Api {
        schema::Api {
            max_request_bytes: Some(self.max_request_bytes),
            command_poll_wait: Some(ConfigDuration(self.command_poll_wait)),
            command_redelivery: Some(ConfigDuration(self.command_redelivery)),
            command_ttl: Some(ConfigDuration(self.command_ttl)),
        }
    }
}
