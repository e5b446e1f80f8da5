//! The provider trait and what it carries.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use bosun_config::ProviderType;
use bosun_core::{InstanceId, Labels, PoolName};

/// What an agent on a new machine needs to find and join the control plane.
#[derive(Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The server URL agents use (`server.external_address`).
    pub server_url: String,
    /// The agent token the machine registers with, if auth is on.
    pub token: Option<String>,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("server_url", &self.server_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The SSH access a pool asks for on its machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAccess {
    /// The login user (`ssh_user`): GCE creates it for the keys in the metadata.
    pub user: String,
    /// `ssh_keys`: key names (Lambda, EC2 key pairs) or public keys (GCE). Empty: the
    /// provider's own setting applies.
    pub keys: Vec<String>,
}

impl Default for SshAccess {
    fn default() -> Self {
        Self { user: "ubuntu".to_owned(), keys: Vec::new() }
    }
}

/// One machine to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionRequest {
    /// bosun's id for the instance; the provider tags the machine with it.
    pub instance_id: InstanceId,
    pub pool: Option<PoolName>,
    /// The provider's own instance type name (already resolved from the catalog).
    pub instance_type: String,
    pub region: String,
    /// Empty: the provider chooses.
    pub zone: String,
    pub labels: Labels,
    pub bootstrap: Bootstrap,
    /// The pool's boot image, replacing the provider's (aws and gcp only).
    pub image: Option<String>,
    pub ssh: SshAccess,
}

/// What the provider says about a machine it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The cloud's id for the machine (used to terminate it).
    pub provider_instance_id: String,
    pub region: String,
    pub zone: String,
}

/// A machine's state as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderInstanceState {
    /// Being created or booting.
    Pending,
    Running,
    Terminating,
    /// Gone (some clouds list terminated machines for a while).
    Terminated,
}

/// One machine in a provider's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInstance {
    pub provider_instance_id: String,
    /// bosun's instance id, read back from the tag set at provisioning; `None` for
    /// machines bosun did not create (they are never touched).
    pub instance_id: Option<InstanceId>,
    pub state: ProviderInstanceState,
    pub instance_type: String,
    pub region: String,
    pub zone: String,
    /// Where the machine's SSH server listens, when the provider knows: a cloud's public
    /// IP (else its private one) on port 22. `None` (local providers, machines without an
    /// address yet): the machine cannot be bootstrapped over SSH.
    pub ssh_address: Option<SocketAddr>,
}

/// An instance type a provider offers, for the cost and availability strategies.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTypeOffer {
    /// The provider's name for it.
    pub name: String,
    pub gpu_count: u32,
    pub gpu_model: String,
    /// US dollars per hour, when the provider publishes prices.
    pub price_per_hour: Option<f64>,
    /// Regions with capacity now (empty when unknown).
    pub regions_with_capacity: Vec<String>,
}

/// The port SSH servers listen on.
pub const SSH_PORT: u16 = 22;

/// The SSH address of a cloud machine: its public IP when it has one (bosun may run
/// outside the machine's network), else its private one.
pub(crate) fn ssh_address(public: Option<&str>, private: Option<&str>) -> Option<SocketAddr> {
    let parse = |ip: Option<&str>| ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok());
    parse(public).or_else(|| parse(private)).map(|ip| SocketAddr::new(ip, SSH_PORT))
}

/// Why a provider call failed, in terms the reconciler acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No capacity for this type/region now: back off and try another provider.
    #[error("{provider}: no capacity: {message}")]
    Capacity { provider: String, message: String },
    /// Throttled, timed out, 5xx, network: retry later.
    #[error("{provider}: temporarily unavailable: {message}")]
    Unavailable { provider: String, message: String },
    /// Credentials missing or refused: an operator must fix the configuration.
    #[error("{provider}: credentials refused: {message}")]
    Unauthorized { provider: String, message: String },
    /// The request itself is wrong (unknown instance type, bad region): retrying the same
    /// request cannot succeed.
    #[error("{provider}: invalid request: {message}")]
    Invalid { provider: String, message: String },
    /// The machine does not exist (terminating it is then already done).
    #[error("{provider}: instance {id} not found")]
    NotFound { provider: String, id: String },
}

impl ProviderError {
    /// The message without the provider's name and the kind of failure, for wrapping
    /// into another error about the same provider.
    pub(crate) fn detail(&self) -> String {
        match self {
            ProviderError::Capacity { message, .. }
            | ProviderError::Unavailable { message, .. }
            | ProviderError::Unauthorized { message, .. }
            | ProviderError::Invalid { message, .. } => message.clone(),
            ProviderError::NotFound { id, .. } => format!("instance {id} not found"),
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Capacity { .. } | ProviderError::Unavailable { .. })
    }
}

/// One cloud account (or local stand-in) bosun provisions from.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The name in the configuration's `providers` map.
    fn name(&self) -> &str;

    fn kind(&self) -> ProviderType;

    /// Starts creating a machine. Returns once the provider accepted it; the machine
    /// boots and its agent registers later.
    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError>;

    /// Terminates a machine. Terminating one that is already gone succeeds.
    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError>;

    /// Every machine of this account that bosun created (tagged with an instance id), and
    /// any others it can see.
    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError>;

    /// Instance types with prices and capacity, when the provider publishes them.
    async fn instance_types(&self) -> Result<Vec<InstanceTypeOffer>, ProviderError> {
        Ok(Vec::new())
    }
}
