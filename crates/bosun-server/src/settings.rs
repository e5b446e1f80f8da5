//! The control plane's runtime settings, resolved from the configuration file.

use std::path::PathBuf;
use std::time::Duration;

use bosun_config::{AuthConfig, Config};

/// Everything the services and loops need to know, with every default applied.
///
/// Built from a [`Config`] by [`Settings::from_config`]; tests start from
/// [`Settings::default`] (the defaults of an empty configuration file) and adjust fields.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sent to agents at registration.
    pub heartbeat_interval: Duration,
    /// A node silent this long becomes UNHEALTHY (`heartbeat timeout`).
    pub heartbeat_timeout: Duration,
    /// Sent to agents: how often they run their health checks.
    pub health_check_interval: Duration,
    /// Sent to agents: how often, at least, they report their GPU workloads.
    pub inventory_interval: Duration,
    /// Liveness judges nothing this long after a start or a store outage.
    pub startup_grace: Duration,
    /// How long TERMINATED nodes, and TERMINATED or FAILED instances, stay queryable.
    pub terminated_retention: Duration,
    /// An instance whose agent has not registered this long after provisioning FAILs.
    pub instance_registration_timeout: Duration,
    /// A machine its provider has not listed for this long (and at least this old) is lost.
    pub lost_machine_grace: Duration,
    /// Change records older than this are compacted (the latest state of every live
    /// resource is always kept).
    pub change_retention: Duration,
    /// Run history (events, artifacts) of runs finished longer ago is deleted.
    pub run_retention: Duration,
    /// Audit entries older than this are deleted.
    pub audit_retention: Duration,
    /// How long records of inventory syncs are kept.
    pub inventory_sync_retention: Duration,
    /// An approval undecided this long expires, and its run is rejected.
    pub approval_timeout: Duration,
    /// How often the leader moves runbook runs on (a started or approved run is also
    /// picked up at once).
    pub run_interval: Duration,
    /// The systems the leader reads the inventory from (`inventory.sources`).
    pub inventory_sources: Vec<bosun_config::InventorySource>,
    /// The inventory as it should be (`inventory.declaration`): its drift is checked after
    /// each sync of a source it names.
    pub inventory_declaration: Option<std::sync::Arc<bosun_core::inventory::drift::Declaration>>,
    /// The services the leader syncs into the inventory (`inventory.services`).
    pub inventory_services: Vec<bosun_core::inventory::Service>,
    /// Request bodies larger than this are refused.
    pub max_request_bytes: usize,
    /// TLS on the API port (`api.tls`); plain HTTP without.
    pub tls: Option<bosun_config::TlsFiles>,
    /// Connections served at once (`api.max_connections`), further bounded by the file limit.
    pub max_connections: usize,
    /// A connection must send a request's headers (or finish its TLS handshake) within this.
    pub header_read_timeout: Duration,
    /// A connection without a request in flight this long is closed.
    pub idle_timeout: Duration,
    /// A request's body must arrive within this after its headers.
    pub request_body_timeout: Duration,
    /// Concurrent requests per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// The longest a PollCommands call waits for a command.
    pub command_poll_wait: Duration,
    /// A delivered command not acknowledged within this is handed out again.
    pub command_redelivery: Duration,
    /// How long a command may wait for delivery and acknowledgement unless its issuer says.
    pub command_ttl: Duration,
    /// A CEL health policy file that overrides the stored and built-in policies.
    pub health_policy: Option<PathBuf>,
    pub auth: AuthConfig,
    /// Leader election between replicas on one store; `None` runs this server as the sole
    /// leader without a lease (tests, the simulator).
    pub election: Option<crate::election::ElectionSettings>,
    /// How often buffered heartbeats and metric samples are written.
    pub flush_interval: Duration,
    /// How often liveness is judged.
    pub liveness_interval: Duration,
    /// How often commands expire, instances time out and the stored policy is re-read.
    pub janitor_interval: Duration,
    /// How often retention runs and the fleet cache is re-read from the store.
    pub retention_interval: Duration,
    /// How often the change follower reads the change log when the store signalled
    /// nothing (other servers' commits are signalled at once; this bounds how late one is
    /// seen when a signal was lost).
    pub change_poll_interval: Duration,
    /// How often pools are reconciled (`server.autoscale_interval`).
    pub autoscale_interval: Duration,
    /// How long shutdown waits for in-flight requests before it stops serving anyway.
    pub shutdown_timeout: Duration,
    /// Who hears about cordons, uncordons and drains (`server.notifier`).
    pub notifier: bosun_config::NotifierConfig,
    /// The MCP server at `/mcp` (`mcp`): whether it serves, its per-token rate limit.
    pub mcp: bosun_config::McpConfig,
    /// How notifier deliveries are retried.
    pub notifier_retry: crate::notifier::RetryPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

impl Settings {
    pub fn from_config(config: &Config) -> Self {
        let server = &config.server;
        Self {
            election: None,
            heartbeat_interval: server.heartbeat_interval,
            heartbeat_timeout: server.heartbeat_timeout,
            health_check_interval: server.health_check_interval,
            inventory_interval: server.inventory_interval,
            startup_grace: server.startup_grace,
            terminated_retention: server.terminated_retention,
            instance_registration_timeout: server.instance_registration_timeout,
            lost_machine_grace: server.lost_machine_grace,
            change_retention: Duration::from_secs(7 * 24 * 3600),
            run_retention: config.retention.runs,
            audit_retention: config.retention.audit,
            inventory_sync_retention: config.retention.inventory_syncs,
            approval_timeout: server.approval_timeout,
            run_interval: Duration::from_secs(1),
            inventory_sources: config.inventory.sources.clone(),
            inventory_declaration: config
                .inventory
                .declaration
                .as_ref()
                .map(|d| std::sync::Arc::new(d.declaration.clone())),
            inventory_services: config.inventory.services.clone(),
            max_request_bytes: config.api.max_request_bytes,
            tls: config.api.tls.clone(),
            max_connections: config.api.max_connections,
            header_read_timeout: config.api.header_read_timeout,
            idle_timeout: config.api.idle_timeout,
            request_body_timeout: config.api.request_body_timeout,
            max_concurrent_streams: config.api.max_concurrent_streams,
            command_poll_wait: config.api.command_poll_wait,
            command_redelivery: config.api.command_redelivery,
            command_ttl: config.api.command_ttl,
            health_policy: server.health_policy.clone(),
            auth: config.auth.clone(),
            flush_interval: Duration::from_secs(1),
            // Detection within heartbeat_timeout plus one check interval (SPEC 10): check
            // often enough that the extra interval is small beside the timeout.
            liveness_interval: (server.heartbeat_interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(10)),
            janitor_interval: Duration::from_secs(5),
            retention_interval: Duration::from_secs(300),
            change_poll_interval: Duration::from_secs(1),
            autoscale_interval: server.autoscale_interval,
            mcp: config.mcp,
            shutdown_timeout: Duration::from_secs(10),
            notifier: server.notifier.clone(),
            notifier_retry: crate::notifier::RetryPolicy::default(),
        }
    }
}
