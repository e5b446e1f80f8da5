//! The `api` section: bounds on what clients may ask of the server.

use std::path::PathBuf;
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
/// Enough for a large fleet's agents plus operators; the server also keeps it below its
/// file limit (raised to the hard limit at start).
const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// A client that has not sent a request's headers (or finished its TLS handshake) this
/// long after connecting or after its previous request is disconnected.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight this long is closed. Agents send something at
/// least every heartbeat interval, and long polls count as in flight.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A request body must arrive in full this long after its headers.
const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent requests on one HTTP/2 connection.
const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;

/// `api.tls`: serve the API port over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first. Reloaded on SIGHUP and when the file changes.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM certificates of the CA that signs agents' client certificates: when set,
    /// AgentService calls must come with a client certificate it signed.
    pub client_ca_file: Option<PathBuf>,
}

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
    /// TLS on the API port; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Connections served at once; more are closed as they arrive (and counted).
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_body_timeout: Duration,
    /// Concurrent requests (streams) per HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            command_poll_wait: DEFAULT_COMMAND_POLL_WAIT,
            command_redelivery: DEFAULT_COMMAND_REDELIVERY,
            command_ttl: DEFAULT_COMMAND_TTL,
            tls: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
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
            tls: raw.tls.as_ref().map(resolve_tls).transpose()?,
            max_connections: raw.max_connections.unwrap_or(defaults.max_connections),
            header_read_timeout: given_or(raw.header_read_timeout, defaults.header_read_timeout),
            idle_timeout: given_or(raw.idle_timeout, defaults.idle_timeout),
            request_body_timeout: given_or(raw.request_body_timeout, defaults.request_body_timeout),
            max_concurrent_streams: raw.max_concurrent_streams.unwrap_or(defaults.max_concurrent_streams),
        };
        if api.max_connections == 0 {
            return Err(ConfigError::invalid("api.max_connections", "must be at least 1"));
        }
        if api.max_concurrent_streams == 0 {
            return Err(ConfigError::invalid("api.max_concurrent_streams", "must be at least 1"));
        }
        require_positive("api.header_read_timeout", api.header_read_timeout)?;
        require_positive("api.idle_timeout", api.idle_timeout)?;
        require_positive("api.request_body_timeout", api.request_body_timeout)?;
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
            tls: self.tls.as_ref().map(|tls| schema::Tls {
                cert_file: Some(tls.cert_file.clone()),
                key_file: Some(tls.key_file.clone()),
                client_ca_file: tls.client_ca_file.clone(),
            }),
            max_connections: Some(self.max_connections),
            header_read_timeout: Some(ConfigDuration(self.header_read_timeout)),
            idle_timeout: Some(ConfigDuration(self.idle_timeout)),
            request_body_timeout: Some(ConfigDuration(self.request_body_timeout)),
            max_concurrent_streams: Some(self.max_concurrent_streams),
        }
    }
}

fn resolve_tls(raw: &schema::Tls) -> Result<TlsFiles, ConfigError> {
    match (&raw.cert_file, &raw.key_file) {
        (Some(cert_file), Some(key_file)) => Ok(TlsFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            client_ca_file: raw.client_ca_file.clone(),
        }),
        (None, _) => {
            Err(ConfigError::invalid("api.tls.cert_file", "is required with api.tls (the PEM certificate chain)"))
        }
        (_, None) => Err(ConfigError::invalid("api.tls.key_file", "is required with api.tls (the PEM private key)")),
    }
}
