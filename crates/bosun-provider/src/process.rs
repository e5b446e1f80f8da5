//! The `process` provider: each machine is a `bosun agent --fake-gpus N` process on this
//! host — a real multi-process fleet for demos and tests.
//!
//! Processes are children of the server: terminating a machine stops its process
//! (SIGTERM, then SIGKILL after a grace), and they are killed when the provider is dropped
//! (the server exits), so a local demo leaves nothing running behind.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bosun_config::ProviderType;
use bosun_core::InstanceId;
use tokio::process::{Child, Command};

use crate::provider::{
    Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest, Provisioned,
};

/// How long a stopped agent gets to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

struct Machine {
    instance_id: InstanceId,
    instance_type: String,
    child: Option<Child>,
    state: ProviderInstanceState,
}

/// Local `bosun agent` processes.
pub struct ProcessProvider {
    name: String,
    binary: PathBuf,
    gpu_count: u32,
    /// Where local agents reach the server; the bootstrap's URL when unset.
    server_url: Option<String>,
    machines: Arc<Mutex<BTreeMap<String, Machine>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ProcessProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessProvider").field("name", &self.name).field("binary", &self.binary).finish()
    }
}

impl ProcessProvider {
    /// Machines run `binary agent ...` (the `bosun` binary itself, normally).
    pub fn new(name: &str, binary: PathBuf, gpu_count: u32) -> Self {
        Self {
            name: name.to_owned(),
            binary,
            gpu_count,
            server_url: None,
            machines: Arc::new(Mutex::new(BTreeMap::new())),
            next_id: AtomicU64::new(1),
        }
    }

    /// Local agents use `url` (e.g. the loopback address the server listens on) instead of
    /// the bootstrap's external address.
    pub fn with_server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = Some(url.into());
        self
    }

    /// Machines whose process is running.
    pub fn live_count(&self) -> usize {
        self.lock().values().filter(|m| m.state != ProviderInstanceState::Terminated).count()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Machine>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, message: String) -> ProviderError {
        ProviderError::Unavailable { provider: self.name.clone(), message }
    }
}

#[async_trait]
impl Provider for ProcessProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Process
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let number = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{}-{number}", self.name, std::process::id());
        let mut command = Command::new(&self.binary);
        command
            .arg("agent")
            .args(["--server", self.server_url.as_deref().unwrap_or(&request.bootstrap.server_url)])
            .args(["--node-id", &id])
            .args(["--fake-gpus", &self.gpu_count.to_string()])
            .args(["--provider", &self.name])
            .args(["--region", &request.region])
            .args(["--instance-type", &request.instance_type])
            .args(["--instance-id", request.instance_id.as_str()])
            .env_remove("BOSUN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(pool) = &request.pool {
            command.args(["--pool", pool.as_str()]);
        }
        for (key, value) in request.labels.iter() {
            command.arg("--label").arg(format!("{key}={value}"));
        }
        if let Some(token) = &request.bootstrap.token {
            command.env("BOSUN_TOKEN", token);
        }
        // Each machine keeps its node token in a directory of its own.
        let state = std::env::temp_dir().join("bosun-process-provider").join(&id);
        command.env("BOSUN_AGENT_STATE_DIR", state);
        let child =
            command.spawn().map_err(|e| self.error(format!("cannot start {} agent: {e}", self.binary.display())))?;
        self.lock().insert(
            id.clone(),
            Machine {
                instance_id: request.instance_id.clone(),
                instance_type: request.instance_type.clone(),
                child: Some(child),
                state: ProviderInstanceState::Running,
            },
        );
        Ok(Provisioned { provider_instance_id: id, region: request.region.clone(), zone: request.zone.clone() })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let child = {
            let mut machines = self.lock();
            let Some(machine) = machines.get_mut(provider_instance_id) else { return Ok(()) };
            machine.state = ProviderInstanceState::Terminated;
            machine.child.take()
        };
        if let Some(mut child) = child {
            if let Some(pid) = child.id() {
                // SIGTERM first: the agent stops cleanly.
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        let mut machines = self.lock();
        Ok(machines
            .iter_mut()
            .map(|(id, m)| {
                // A process that exited on its own (a TERMINATE it carried out) is gone.
                if let Some(child) = &mut m.child
                    && matches!(child.try_wait(), Ok(Some(_)))
                {
                    m.state = ProviderInstanceState::Terminated;
                    m.child = None;
                }
                ProviderInstance {
                    provider_instance_id: id.clone(),
                    instance_id: Some(m.instance_id.clone()),
                    state: m.state,
                    instance_type: m.instance_type.clone(),
                    region: String::new(),
                    zone: String::new(),
                    ssh_address: None,
                }
            })
            .collect())
    }
}
