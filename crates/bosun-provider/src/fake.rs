//! The `fake` provider: each machine is an in-process agent on fake GPUs.
//!
//! For demos, tests and the simulator. Machines "boot" for a configurable delay, then their
//! agent registers with the server named in the bootstrap; faults can be injected into a
//! machine's GPUs; provisioning can be scripted to fail, and capacity limited, to exercise
//! the reconciler's backoff and provider selection.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bosun_agent::{
    Agent, AgentOptions, AgentOutcome, ControlPlane, FakeGpus, HostMetrics, ProcessTable, fault_hooks, process_hooks,
};
use bosun_config::ProviderType;
use bosun_core::{Clock, InstanceId, NodeId};
use tokio_util::sync::CancellationToken;

use crate::provider::{
    Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest, Provisioned,
};

/// How the fake cloud behaves.
#[derive(Debug, Clone)]
pub struct FakeSettings {
    pub gpu_count: u32,
    /// How long a machine takes between provisioning and its agent starting.
    pub boot_delay: Duration,
    /// Machines that may exist at once (not counting terminated ones); `None`: unlimited.
    pub capacity: Option<u32>,
    /// Where machines run when the request names no region (or zone): a fake cloud serves
    /// whatever region a pool asks for, so its nodes and instances agree.
    pub region: String,
    pub zone: String,
    pub names: MachineNames,
    /// The SSH address every machine reports (a test's SSH server); `None`: machines have
    /// none, so bosun never bootstraps them over SSH (their agents start by themselves).
    pub ssh_address: Option<SocketAddr>,
}

/// How the fake cloud names its machines (and so their nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineNames {
    /// `<provider>-<last 8 characters of bosun's instance id>`: unique across processes,
    /// as a real cloud's ids are, so a restarted server never hands a new machine the node
    /// id of one its store remembers.
    FromInstanceId,
    /// `<provider>-<n>` counting from `first`: readable and reproducible, for the
    /// simulator, which knows every machine it ever made.
    Sequential { first: u64 },
}

impl Default for FakeSettings {
    fn default() -> Self {
        Self {
            gpu_count: 8,
            boot_delay: Duration::ZERO,
            capacity: None,
            region: "local".into(),
            zone: "local-a".into(),
            names: MachineNames::FromInstanceId,
            ssh_address: None,
        }
    }
}

/// Builds the control-plane client an agent of a new machine uses (the network client in
/// production; tests may hand agents a client of their choosing).
pub type ControlPlaneFactory = Arc<dyn Fn(&ProvisionRequest) -> Result<Arc<dyn ControlPlane>, String> + Send + Sync>;

struct Machine {
    instance_id: InstanceId,
    node_id: NodeId,
    state: ProviderInstanceState,
    instance_type: String,
    region: String,
    zone: String,
    gpus: Arc<FakeGpus>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct State {
    machines: BTreeMap<String, Machine>,
    /// Errors the next provision calls return, in order.
    scripted_failures: VecDeque<ProviderError>,
    /// Machines whose agent will never start (the simulator's `boot_failure`).
    boot_failures: u32,
    /// While set, every provision call fails with this (a provider outage).
    outage: Option<ProviderError>,
}

/// An in-process cloud of agents on fake GPUs.
pub struct FakeProvider {
    name: String,
    settings: FakeSettings,
    clock: Arc<dyn Clock>,
    control: ControlPlaneFactory,
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider").field("name", &self.name).field("settings", &self.settings).finish()
    }
}

impl FakeProvider {
    pub fn new(name: &str, settings: FakeSettings, clock: Arc<dyn Clock>, control: ControlPlaneFactory) -> Self {
        let first = match settings.names {
            MachineNames::Sequential { first } => first,
            MachineNames::FromInstanceId => 1,
        };
        Self {
            name: name.to_owned(),
            settings,
            clock,
            control,
            state: Arc::new(Mutex::new(State::default())),
            next_id: AtomicU64::new(first),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `count` provision calls fail with `error` (before any capacity check).
    pub fn fail_next(&self, count: usize, error: ProviderError) {
        let mut state = self.lock();
        state.scripted_failures.extend(std::iter::repeat_n(error, count));
    }

    /// The next `count` machines provision fine but never start their agent.
    pub fn fail_boot_next(&self, count: u32) {
        self.lock().boot_failures += count;
    }

    /// Every provision call fails with `error` until [`FakeProvider::end_outage`]; machines
    /// already running carry on (the simulator's provider outage).
    pub fn begin_outage(&self, error: ProviderError) {
        self.lock().outage = Some(error);
    }

    pub fn end_outage(&self) {
        self.lock().outage = None;
    }

    /// The fake GPUs of the machine that runs `node`, to inject faults into.
    pub fn gpus_of(&self, node: &NodeId) -> Option<Arc<FakeGpus>> {
        self.lock()
            .machines
            .values()
            .find(|m| &m.node_id == node && m.state != ProviderInstanceState::Terminated)
            .map(|m| Arc::clone(&m.gpus))
    }

    /// bosun's instance id of the machine that runs `node`.
    pub fn instance_of(&self, node: &NodeId) -> Option<InstanceId> {
        self.lock()
            .machines
            .values()
            .find(|m| &m.node_id == node && m.state != ProviderInstanceState::Terminated)
            .map(|m| m.instance_id.clone())
    }

    /// Every machine vanishes without a trace, as when the process that hosted them dies:
    /// their agents stop and the provider no longer lists them.
    pub fn vanish_all(&self) {
        let mut state = self.lock();
        for machine in state.machines.values() {
            machine.shutdown.cancel();
        }
        state.machines.clear();
    }

    /// The number the next sequentially named machine gets (to carry numbering over to
    /// the provider of a restarted server).
    pub fn next_number(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Machines not terminated.
    pub fn live_count(&self) -> usize {
        self.lock().machines.values().filter(|m| m.state != ProviderInstanceState::Terminated).count()
    }

    fn error(&self, make: impl FnOnce(String) -> ProviderError) -> ProviderError {
        make(self.name.clone())
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderType {
        ProviderType::Fake
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Provisioned, ProviderError> {
        let or_default = |asked: &str, default: &str| if asked.is_empty() { default } else { asked }.to_owned();
        let region = or_default(&request.region, &self.settings.region);
        let zone = or_default(&request.zone, &self.settings.zone);
        let (id, node_id, gpus, shutdown, boots) = {
            let mut state = self.lock();
            if let Some(error) = state.scripted_failures.pop_front().or_else(|| state.outage.clone()) {
                return Err(error);
            }
            let live = state.machines.values().filter(|m| m.state != ProviderInstanceState::Terminated).count();
            if let Some(capacity) = self.settings.capacity
                && live >= capacity as usize
            {
                return Err(self.error(|provider| ProviderError::Capacity {
                    provider,
                    message: format!("all {capacity} machines are in use"),
                }));
            }
            let number = self.next_id.fetch_add(1, Ordering::Relaxed);
            let mut id = match self.settings.names {
                MachineNames::FromInstanceId => format!("{}-{}", self.name, machine_suffix(&request.instance_id)),
                MachineNames::Sequential { .. } => format!("{}-{number}", self.name),
            };
            if state.machines.contains_key(&id) {
                id = format!("{id}-{number}");
            }
            let node_id: NodeId = id.parse().map_err(|e: bosun_core::ValidationError| {
                self.error(|provider| ProviderError::Invalid { provider, message: e.to_string() })
            })?;
            let gpus =
                Arc::new(FakeGpus::new(self.settings.gpu_count).with_seed(number).with_clock(Arc::clone(&self.clock)));
            let boots = if state.boot_failures > 0 {
                state.boot_failures -= 1;
                false
            } else {
                true
            };
            let shutdown = CancellationToken::new();
            state.machines.insert(
                id.clone(),
                Machine {
                    instance_id: request.instance_id.clone(),
                    node_id: node_id.clone(),
                    region: region.clone(),
                    zone: zone.clone(),
                    state: ProviderInstanceState::Pending,
                    instance_type: request.instance_type.clone(),
                    gpus: Arc::clone(&gpus),
                    shutdown: shutdown.clone(),
                },
            );
            (id, node_id, gpus, shutdown, boots)
        };
        if boots {
            let control = (self.control)(request)
                .map_err(|message| self.error(|provider| ProviderError::Invalid { provider, message }))?;
            let mut options = AgentOptions::new(node_id);
            options.provider = self.name.clone();
            options.region = region.clone();
            options.zone = zone.clone();
            options.instance_type = request.instance_type.clone();
            options.pool = request.pool.clone();
            options.labels = request.labels.clone();
            options.instance_id = Some(request.instance_id.to_string());
            options.host_metrics = HostMetrics::fixed(20.0, 30.0);
            options.processes = ProcessTable::Simulated;
            options.clock = Arc::clone(&self.clock);
            options.hooks.custom.extend(fault_hooks(&gpus));
            options.hooks.custom.extend(process_hooks(&gpus));
            let agent = Agent::new(options, gpus, control);
            let state = Arc::clone(&self.state);
            let machine = id.clone();
            let delay = self.settings.boot_delay;
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
                set_state(&state, &machine, ProviderInstanceState::Running);
                // A TERMINATE the agent carried out powers the machine off.
                if let Ok(AgentOutcome::Terminated) = agent.run(shutdown).await {
                    set_state(&state, &machine, ProviderInstanceState::Terminated);
                }
            });
        } else {
            set_state(&self.state, &id, ProviderInstanceState::Running);
        }
        Ok(Provisioned { provider_instance_id: id, region, zone })
    }

    async fn terminate(&self, provider_instance_id: &str) -> Result<(), ProviderError> {
        let mut state = self.lock();
        match state.machines.get_mut(provider_instance_id) {
            Some(machine) => {
                machine.shutdown.cancel();
                machine.state = ProviderInstanceState::Terminated;
                Ok(())
            }
            // Already gone: terminating it is done.
            None => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<ProviderInstance>, ProviderError> {
        Ok(self
            .lock()
            .machines
            .iter()
            .map(|(id, m)| ProviderInstance {
                provider_instance_id: id.clone(),
                instance_id: Some(m.instance_id.clone()),
                state: m.state,
                instance_type: m.instance_type.clone(),
                region: m.region.clone(),
                zone: m.zone.clone(),
                ssh_address: self.settings.ssh_address,
            })
            .collect())
    }
}

/// The last eight characters of bosun's instance id (`i-` and a UUIDv7 whose tail is
/// random): short, and unique enough for a fleet.
fn machine_suffix(instance: &InstanceId) -> String {
    let text = instance.as_str();
    let start = text.len().saturating_sub(8);
    text.get(start..).unwrap_or(text).to_ascii_lowercase()
}

fn set_state(state: &Mutex<State>, machine: &str, to: ProviderInstanceState) {
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = state.machines.get_mut(machine)
        && m.state != ProviderInstanceState::Terminated
    {
        m.state = to;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use bosun_agent::{AgentConfig, CommandAck, DeliveredCommand, RpcError};
    use bosun_core::inventory::Workload;
    use bosun_core::{CheckResult, FakeClock, HealthEvent, MetricSample, NodeRegistration};

    use super::*;
    use crate::provider::Bootstrap;

    /// Records registrations; answers everything else with nothing to do.
    #[derive(Default)]
    struct Recorder {
        registered: StdMutex<Vec<(NodeId, Option<String>)>>,
        /// Each registration's region and zone.
        places: StdMutex<Vec<(String, String)>>,
        registrations: tokio::sync::Notify,
    }

    #[async_trait]
    impl ControlPlane for Recorder {
        async fn register(&self, r: &NodeRegistration, instance: Option<&str>) -> Result<AgentConfig, RpcError> {
            self.registered.lock().expect("lock").push((r.node_id.clone(), instance.map(str::to_owned)));
            self.places.lock().expect("lock").push((r.region.clone(), r.zone.clone()));
            self.registrations.notify_waiters();
            Ok(AgentConfig::default())
        }
        async fn heartbeat(&self, _: &MetricSample) -> Result<(), RpcError> {
            Ok(())
        }
        async fn report_health(&self, _: &NodeId, _: &[CheckResult], _: &[HealthEvent]) -> Result<(), RpcError> {
            Ok(())
        }
        async fn poll_commands(&self, _: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
            tokio::time::sleep(wait).await;
            Ok(Vec::new())
        }
        async fn ack_command(&self, _: &NodeId, _: &CommandAck) -> Result<(), RpcError> {
            Ok(())
        }
        async fn report_workloads(&self, _: &NodeId, _: &[Workload]) -> Result<(), RpcError> {
            Ok(())
        }
    }

    fn cloud(settings: FakeSettings) -> (FakeProvider, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let control = Arc::clone(&recorder);
        let factory: ControlPlaneFactory = Arc::new(move |_| Ok(Arc::clone(&control) as Arc<dyn ControlPlane>));
        let clock = Arc::new(FakeClock::at_default_epoch());
        (FakeProvider::new("fake", settings, clock, factory), recorder)
    }

    fn request(id: &str) -> ProvisionRequest {
        ProvisionRequest {
            instance_id: id.parse().expect("instance id"),
            pool: None,
            instance_type: "h100-8x".into(),
            region: "local".into(),
            zone: String::new(),
            labels: Default::default(),
            bootstrap: Bootstrap { server_url: "http://127.0.0.1:1".into(), token: None },
            image: None,
            ssh: Default::default(),
        }
    }

    #[tokio::test]
    async fn machines_boot_register_with_their_instance_and_terminate() {
        let (cloud, recorder) = cloud(FakeSettings::default());
        let registered = recorder.registrations.notified();
        let provisioned = cloud.provision(&request("i-1")).await.expect("provision");
        registered.await;
        let (node, instance) = recorder.registered.lock().expect("lock")[0].clone();
        assert_eq!(node.as_str(), provisioned.provider_instance_id);
        assert_eq!(instance.as_deref(), Some("i-1"), "the agent names its instance");
        let listed = cloud.list().await.expect("list");
        assert_eq!(listed[0].instance_id.as_ref().map(InstanceId::as_str), Some("i-1"));
        assert_eq!(listed[0].ssh_address, None, "fake machines are reached by no SSH unless a test says so");
        assert!(cloud.gpus_of(&node).is_some());
        cloud.terminate(&provisioned.provider_instance_id).await.expect("terminate");
        cloud.terminate(&provisioned.provider_instance_id).await.expect("terminating twice is fine");
        cloud.terminate("never-existed").await.expect("terminating an unknown machine is fine");
        assert_eq!(cloud.list().await.expect("list")[0].state, ProviderInstanceState::Terminated);
        assert_eq!(cloud.live_count(), 0);
    }

    #[tokio::test]
    async fn a_machine_runs_where_it_was_asked_and_its_node_says_so() {
        let (cloud, recorder) = cloud(FakeSettings::default());
        let registered = recorder.registrations.notified();
        let mut asked = request("i-2");
        asked.region = "us-east-1".into();
        asked.zone = "us-east-1b".into();
        let provisioned = cloud.provision(&asked).await.expect("provision");
        registered.await;
        assert_eq!((provisioned.region.as_str(), provisioned.zone.as_str()), ("us-east-1", "us-east-1b"));
        let listed = cloud.list().await.expect("list");
        assert_eq!((listed[0].region.as_str(), listed[0].zone.as_str()), ("us-east-1", "us-east-1b"));
        let places = recorder.places.lock().expect("lock").clone();
        assert_eq!(places, [("us-east-1".to_owned(), "us-east-1b".to_owned())], "the agent registers there too");
        // A request naming no place gets the provider's.
        let mut unplaced = request("i-3");
        unplaced.region = String::new();
        let provisioned = cloud.provision(&unplaced).await.expect("provision");
        assert_eq!((provisioned.region.as_str(), provisioned.zone.as_str()), ("local", "local-a"));
    }

    #[tokio::test]
    async fn scripted_failures_then_capacity_limits() {
        let (cloud, _) = cloud(FakeSettings { capacity: Some(1), ..FakeSettings::default() });
        cloud.fail_next(2, ProviderError::Unavailable { provider: "fake".into(), message: "503".into() });
        for _ in 0..2 {
            assert!(matches!(cloud.provision(&request("i-1")).await, Err(ProviderError::Unavailable { .. })));
        }
        let first = cloud.provision(&request("i-1")).await.expect("third attempt succeeds");
        assert!(matches!(cloud.provision(&request("i-2")).await, Err(ProviderError::Capacity { .. })));
        cloud.terminate(&first.provider_instance_id).await.expect("terminate");
        cloud.provision(&request("i-2")).await.expect("capacity freed");
    }

    #[tokio::test]
    async fn an_outage_fails_every_provision_until_it_ends() {
        let (cloud, _) = cloud(FakeSettings::default());
        cloud.begin_outage(ProviderError::Unavailable { provider: "fake".into(), message: "region down".into() });
        for _ in 0..3 {
            assert!(matches!(cloud.provision(&request("i-1")).await, Err(ProviderError::Unavailable { .. })));
        }
        cloud.end_outage();
        cloud.provision(&request("i-1")).await.expect("the outage is over");
    }

    #[tokio::test]
    async fn a_boot_failure_never_registers() {
        let (cloud, recorder) = cloud(FakeSettings::default());
        cloud.fail_boot_next(1);
        cloud.provision(&request("i-1")).await.expect("provision");
        tokio::task::yield_now().await;
        assert!(recorder.registered.lock().expect("lock").is_empty());
        assert_eq!(
            cloud.list().await.expect("list")[0].state,
            ProviderInstanceState::Running,
            "the VM runs; its agent does not"
        );
    }
}
