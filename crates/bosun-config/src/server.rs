//! The `server` section: how the control plane listens, judges liveness and keeps history.

use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;
use crate::duration::{self, ConfigDuration, given_or, require_positive};
use crate::notifier::NotifierConfig;
use crate::schema;

/// Navarch's listen address: every interface, port 50051.
const DEFAULT_ADDRESS: &str = ":50051";
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// Liveness allows this many missed heartbeats before a node is judged dead.
const HEARTBEAT_TIMEOUT_FACTOR: u32 = 3;
const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_INVENTORY_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_AUTOSCALE_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TERMINATED_RETENTION: Duration = Duration::from_secs(24 * 3_600);
const DEFAULT_INSTANCE_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3_600);

/// The `server` section with every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where the API listens, Go style as in Navarch: `:50051` (every interface),
    /// `127.0.0.1:50051`, `[::1]:0`. See [`ServerConfig::listen_address`].
    pub address: String,
    /// The URL agents and bootstrap commands use to reach this server. Defaults to
    /// `http://localhost:PORT` for `:PORT`, else `http://ADDRESS`.
    pub external_address: String,
    /// Sent to agents; also how often liveness is checked.
    pub heartbeat_interval: Duration,
    /// A node silent this long becomes UNHEALTHY (`heartbeat timeout`). Defaults to three
    /// heartbeat intervals.
    pub heartbeat_timeout: Duration,
    /// Sent to agents: how often they run their health checks. At least one second.
    pub health_check_interval: Duration,
    /// Sent to agents: how often, at least, they report their GPU workloads (they also
    /// report them when they change). At least one second.
    pub inventory_interval: Duration,
    /// How often each pool is reconciled.
    pub autoscale_interval: Duration,
    /// A CEL health policy file; `None` means the built-in policy.
    pub health_policy: Option<PathBuf>,
    pub notifier: NotifierConfig,
    /// How long TERMINATED nodes and TERMINATED or FAILED instances stay queryable.
    pub terminated_retention: Duration,
    /// An instance whose agent has not registered this long after provisioning FAILs.
    pub instance_registration_timeout: Duration,
    /// After a start, leader change or store outage the control plane was blind, not the
    /// fleet: liveness judges nothing for this long. Defaults to the heartbeat timeout.
    pub startup_grace: Duration,
    /// A machine its provider stops listing (preempted, deleted outside bosun, lost with
    /// its process) is declared lost after this long: its instance and node become
    /// TERMINATED and the pool replaces it. Listings lag after a provisioning call, so a
    /// machine is not judged before it is this old either.
    pub lost_machine_grace: Duration,
    /// A run waiting for an approval this long is rejected (the approval expires).
    pub approval_timeout: Duration,
}

/// The default [`ServerConfig::lost_machine_grace`]: cloud listings catch up within a
/// minute or two of a provisioning call.
const DEFAULT_LOST_MACHINE_GRACE: Duration = Duration::from_secs(120);

impl Default for ServerConfig {
    fn default() -> Self {
        let heartbeat_timeout = DEFAULT_HEARTBEAT_INTERVAL * HEARTBEAT_TIMEOUT_FACTOR;
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            external_address: default_external_address(DEFAULT_ADDRESS),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout,
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            inventory_interval: DEFAULT_INVENTORY_INTERVAL,
            autoscale_interval: DEFAULT_AUTOSCALE_INTERVAL,
            health_policy: None,
            notifier: NotifierConfig::Noop,
            terminated_retention: DEFAULT_TERMINATED_RETENTION,
            instance_registration_timeout: DEFAULT_INSTANCE_REGISTRATION_TIMEOUT,
            startup_grace: heartbeat_timeout,
            lost_machine_grace: DEFAULT_LOST_MACHINE_GRACE,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
        }
    }
}

/// Navarch's rule, so fake agents and bootstrap scripts find a server configured only with
/// a port.
fn default_external_address(address: &str) -> String {
    if address.starts_with(':') { format!("http://localhost{address}") } else { format!("http://{address}") }
}

impl ServerConfig {
    /// [`ServerConfig::address`] as a socket address to bind: an empty host (`:50051`)
    /// means every IPv4 interface, `0.0.0.0:50051`.
    pub fn listen_address(&self) -> String {
        if self.address.starts_with(':') { format!("0.0.0.0{}", self.address) } else { self.address.clone() }
    }

    pub(crate) fn resolve(raw: &schema::Server) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let address = raw.address.clone().unwrap_or(defaults.address);
        check_listen_address(&address)?;
        let external_address = match &raw.external_address {
            Some(url) => {
                check_http_url("server.external_address", url)?;
                url.clone()
            }
            None => default_external_address(&address),
        };
        let heartbeat_interval = given_or(raw.heartbeat_interval, defaults.heartbeat_interval);
        let heartbeat_timeout = given_or(raw.heartbeat_timeout, heartbeat_interval * HEARTBEAT_TIMEOUT_FACTOR);
        let server = Self {
            address,
            external_address,
            heartbeat_interval,
            heartbeat_timeout,
            health_check_interval: given_or(raw.health_check_interval, defaults.health_check_interval),
            inventory_interval: given_or(raw.inventory_interval, defaults.inventory_interval),
            autoscale_interval: given_or(raw.autoscale_interval, defaults.autoscale_interval),
            health_policy: raw.health_policy.clone(),
            notifier: NotifierConfig::resolve(raw.notifier.as_ref())?,
            terminated_retention: given_or(raw.terminated_retention, defaults.terminated_retention),
            instance_registration_timeout: given_or(
                raw.instance_registration_timeout,
                defaults.instance_registration_timeout,
            ),
            startup_grace: given_or(raw.startup_grace, heartbeat_timeout),
            lost_machine_grace: given_or(raw.lost_machine_grace, defaults.lost_machine_grace),
            approval_timeout: given_or(raw.approval_timeout, defaults.approval_timeout),
        };
        server.validate()?;
        Ok(server)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        require_positive("server.heartbeat_interval", self.heartbeat_interval)?;
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::invalid(
                "server.heartbeat_timeout",
                format_args!(
                    "{} must be longer than heartbeat_interval {}, or every node would time out between heartbeats",
                    duration::format(self.heartbeat_timeout),
                    duration::format(self.heartbeat_interval)
                ),
            ));
        }
        for (key, interval) in [
            ("server.health_check_interval", self.health_check_interval),
            ("server.inventory_interval", self.inventory_interval),
        ] {
            if interval < Duration::from_secs(1) {
                return Err(ConfigError::invalid(
                    key,
                    format_args!(
                        "{} is too short; agents take it in whole seconds, so use at least 1s",
                        duration::format(interval)
                    ),
                ));
            }
        }
        require_positive("server.autoscale_interval", self.autoscale_interval)?;
        require_positive("server.instance_registration_timeout", self.instance_registration_timeout)?;
        require_positive("server.lost_machine_grace", self.lost_machine_grace)?;
        require_positive("server.approval_timeout", self.approval_timeout)?;
        if self.health_policy.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
            return Err(ConfigError::invalid("server.health_policy", "is empty; omit it to use the built-in policy"));
        }
        Ok(())
    }

    pub(crate) fn to_schema(&self) -> schema::Server {
        schema::Server {
            address: Some(self.address.clone()),
            external_address: Some(self.external_address.clone()),
            heartbeat_interval: Some(ConfigDuration(self.heartbeat_interval)),
            heartbeat_timeout: Some(ConfigDuration(self.heartbeat_timeout)),
            health_check_interval: Some(ConfigDuration(self.health_check_interval)),
            inventory_interval: Some(ConfigDuration(self.inventory_interval)),
            autoscale_interval: Some(ConfigDuration(self.autoscale_interval)),
            health_policy: self.health_policy.clone(),
            notifier: Some(self.notifier.to_schema()),
            terminated_retention: Some(ConfigDuration(self.terminated_retention)),
            instance_registration_timeout: Some(ConfigDuration(self.instance_registration_timeout)),
            startup_grace: Some(ConfigDuration(self.startup_grace)),
            lost_machine_grace: Some(ConfigDuration(self.lost_machine_grace)),
            approval_timeout: Some(ConfigDuration(self.approval_timeout)),
        }
    }
}

/// `HOST:PORT` with an optional host (`:50051`), an IPv6 host in brackets, and a numeric
/// port (0 asks the OS for a free one, as tests do).
fn check_listen_address(address: &str) -> Result<(), ConfigError> {
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
        let host_ok = if let Some(inner) = host.strip_prefix('[') {
            inner.strip_suffix(']').is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        } else {
            host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        host_ok && port.parse::<u16>().is_ok()
    });
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "server.address",
            format_args!("{address:?} is not HOST:PORT; write e.g. :50051 or 127.0.0.1:50051"),
        ))
    }
}

pub(crate) fn check_http_url(key: &str, text: &str) -> Result<(), ConfigError> {
    let shown = crate::redact::redact_url(text);
    let url =
        url::Url::parse(text).map_err(|e| ConfigError::invalid(key, format_args!("{shown:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, format_args!("{shown:?} is not an http:// or https:// URL with a host")));
    }
    Ok(())
}
