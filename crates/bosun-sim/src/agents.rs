//! Simulated machines: real agents on fake GPUs, talking to the server over loopback.
//!
//! Every agent call goes through [`Observed`], which times it for the report and counts it
//! in flight so simulated time waits for the answer, and through a
//! [`NetworkSwitch`] so a `network` failure can cut the agent off. The fleet's own nodes
//! (`fleet:` and stress mode) are started and stopped here; machines of fake-provider
//! pools are started by their provider through [`ClientPool::factory`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bosun_agent::{
    Agent, AgentConfig, AgentOptions, CommandAck, ControlPlane, DeliveredCommand, FakeGpus, GpuModel, HostMetrics,
    NetworkSwitch, ProcessTable, RpcError, fault_hooks, process_hooks,
};
use bosun_api::agent_client::AgentClient;
use bosun_core::inventory::Workload;
use bosun_core::{CheckResult, Clock, HealthEvent, Labels, MetricSample, NodeId, NodeRegistration};
use bosun_provider::fake::ControlPlaneFactory;
use tokio_util::sync::CancellationToken;

use crate::time::InFlight;

/// Agents sharing one HTTP/2 connection: well under hyper's 200 concurrent streams with
/// one long poll and a call or two in flight per agent.
const AGENTS_PER_CONNECTION: usize = 48;

/// Latency and outcome of every agent call, by method.
#[derive(Debug, Default)]
pub struct RpcStats {
    methods: Mutex<BTreeMap<&'static str, MethodStats>>,
}

#[derive(Debug, Default, Clone)]
pub struct MethodStats {
    pub calls: u64,
    pub errors: u64,
    /// Wall-clock microseconds of each answered call (long polls are not timed: they
    /// wait on purpose).
    pub latencies_us: Vec<u32>,
    pub first_error: Option<String>,
}

impl RpcStats {
    fn record(&self, method: &'static str, started: Option<Instant>, error: Option<&RpcError>) {
        let mut methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        let stats = methods.entry(method).or_default();
        stats.calls += 1;
        if let Some(error) = error {
            stats.errors += 1;
            tracing::debug!(method, %error, "agent call failed");
            stats.first_error.get_or_insert_with(|| error.to_string());
        } else if let Some(started) = started {
            stats.latencies_us.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, MethodStats> {
        self.methods.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A [`ControlPlane`] that times its calls and counts them in flight.
struct Observed {
    inner: Arc<dyn ControlPlane>,
    stats: Arc<RpcStats>,
    in_flight: InFlight,
}

impl Observed {
    async fn timed<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, RpcError>>,
    ) -> Result<T, RpcError> {
        let _guard = self.in_flight.enter();
        let started = Instant::now();
        let result = call.await;
        self.stats.record(method, Some(started), result.as_ref().err());
        result
    }
}

#[async_trait]
impl ControlPlane for Observed {
    async fn register(&self, registration: &NodeRegistration, instance: Option<&str>) -> Result<AgentConfig, RpcError> {
        self.timed("RegisterNode", self.inner.register(registration, instance)).await
    }

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError> {
        self.timed("Heartbeat", self.inner.heartbeat(sample)).await
    }

    async fn report_health(
        &self,
        node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError> {
        self.timed("ReportHealth", self.inner.report_health(node, results, events)).await
    }

    async fn poll_commands(&self, node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
        // Not in flight: a long poll waits on simulated time, which must move for it.
        let result = self.inner.poll_commands(node, wait).await;
        self.stats.record("PollCommands", None, result.as_ref().err());
        result
    }

    async fn ack_command(&self, node: &NodeId, ack: &CommandAck) -> Result<(), RpcError> {
        self.timed("AckCommand", self.inner.ack_command(node, ack)).await
    }

    async fn report_workloads(&self, node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError> {
        self.timed("ReportWorkloads", self.inner.report_workloads(node, workloads)).await
    }
}

/// Hands agents their control-plane clients, a few dozen per HTTP/2 connection. With
/// several replicas, each client is given every replica's URL, starting at a different
/// one per connection: agents spread over the replicas and move on when theirs fails.
#[derive(Clone)]
pub struct ClientPool {
    inner: Arc<Mutex<PoolState>>,
    urls: Vec<String>,
    token: Option<String>,
    stats: Arc<RpcStats>,
    in_flight: InFlight,
    /// Network switches of provider machines, by bosun instance id.
    machine_switches: Arc<Mutex<HashMap<String, NetworkSwitch>>>,
}

#[derive(Default)]
struct PoolState {
    current: Option<Arc<AgentClient>>,
    handed_out: usize,
    connections: usize,
}

impl ClientPool {
    /// Clients of the control plane at `urls` (one per replica).
    pub fn new(urls: Vec<String>, token: Option<String>, stats: Arc<RpcStats>, in_flight: InFlight) -> Self {
        Self { inner: Arc::default(), urls, token, stats, in_flight, machine_switches: Arc::default() }
    }

    /// Every replica's URL, comma-separated, starting with replica `first` (modulo).
    fn servers_from(&self, first: usize) -> String {
        let start = first % self.urls.len().max(1);
        let (tail, head) = self.urls.split_at(start);
        head.iter().chain(tail).map(String::as_str).collect::<Vec<_>>().join(",")
    }

    /// A control plane for one agent, and the switch that cuts it off.
    pub fn control_plane(&self) -> Result<(Arc<dyn ControlPlane>, NetworkSwitch), String> {
        let client = {
            let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if state.handed_out.is_multiple_of(AGENTS_PER_CONNECTION) || state.current.is_none() {
                let servers = self.servers_from(state.connections);
                let client =
                    AgentClient::new_http2_only(&servers, self.token.clone(), &bosun_api::ClientTls::default())
                        .map_err(|e| e.to_string())?
                        .without_deadlines();
                state.current = Some(Arc::new(client));
                state.connections += 1;
            }
            state.handed_out += 1;
            Arc::clone(state.current.as_ref().expect("set above"))
        };
        let observed = Observed { inner: client, stats: Arc::clone(&self.stats), in_flight: self.in_flight.clone() };
        Ok(NetworkSwitch::wrap(Arc::new(observed)))
    }

    /// The factory fake providers build their machines' clients with.
    pub fn factory(&self) -> ControlPlaneFactory {
        let pool = self.clone();
        Arc::new(move |request| {
            let (control, switch) = pool.control_plane()?;
            pool.machine_switches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(request.instance_id.to_string(), switch);
            Ok(control)
        })
    }

    /// The network switch of the provider machine running `instance`.
    pub fn machine_switch(&self, instance: &str) -> Option<NetworkSwitch> {
        self.machine_switches.lock().unwrap_or_else(|p| p.into_inner()).get(instance).cloned()
    }
}

/// A machine of the simulator's own fleet.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: NodeId,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub gpu_count: u32,
    pub gpu_type: String,
    pub labels: Labels,
    /// US dollars per hour the machine costs while it runs, when known.
    pub price_per_hour: Option<f64>,
}

/// One simulated machine and its agent, when running.
pub struct SimNode {
    pub spec: NodeSpec,
    pub gpus: Arc<FakeGpus>,
    pub switch: Option<NetworkSwitch>,
    running: Option<CancellationToken>,
    /// Times the machine was powered on.
    pub boots: u32,
    clock: Arc<dyn Clock>,
    /// Since when it runs, and how long it ran before: what it cost.
    up_since: Option<bosun_core::Timestamp>,
    up_before: std::time::Duration,
}

impl SimNode {
    pub fn new(spec: NodeSpec, seed: u64, clock: Arc<dyn Clock>) -> Self {
        let mut gpus = FakeGpus::new(spec.gpu_count).with_seed(seed).with_clock(Arc::clone(&clock));
        if !spec.gpu_type.is_empty() {
            gpus = gpus.with_model(GpuModel::named(&spec.gpu_type));
        }
        Self {
            spec,
            gpus: Arc::new(gpus),
            switch: None,
            running: None,
            boots: 0,
            clock,
            up_since: None,
            up_before: std::time::Duration::ZERO,
        }
    }

    /// How long the machine has been powered on in all (a machine a TERMINATE command
    /// powered off counts until it is stopped or the run ends).
    pub fn uptime(&self) -> std::time::Duration {
        let current = self.up_since.map_or(std::time::Duration::ZERO, |since| self.clock.now().saturating_since(since));
        self.up_before + current
    }

    pub fn is_running(&self) -> bool {
        self.running.as_ref().is_some_and(|t| !t.is_cancelled())
    }

    /// Boots the machine: its agent registers and runs until [`SimNode::stop`] or a
    /// TERMINATE command. A machine already running is left alone.
    pub fn start(&mut self, clients: &ClientPool, clock: Arc<dyn Clock>) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        let (control, switch) = clients.control_plane()?;
        // A partition outlives a reboot.
        if let Some(previous) = &self.switch
            && !previous.is_connected()
        {
            switch.disconnect();
        }
        let mut options = AgentOptions::new(self.spec.id.clone());
        options.provider = self.spec.provider.clone();
        options.region = self.spec.region.clone();
        options.zone = self.spec.zone.clone();
        options.instance_type = self.spec.instance_type.clone();
        options.labels = self.spec.labels.clone();
        options.host_metrics = HostMetrics::fixed(20.0, 30.0);
        options.processes = ProcessTable::Simulated;
        options.clock = clock;
        options.metadata.hostname = self.spec.id.to_string();
        options.hooks.custom.extend(fault_hooks(&self.gpus));
        options.hooks.custom.extend(process_hooks(&self.gpus));
        let agent = Agent::new(options, Arc::clone(&self.gpus) as _, control);
        let shutdown = CancellationToken::new();
        let running = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = agent.run(running.clone()).await {
                tracing::debug!(%error, "simulated agent stopped");
            }
            // TERMINATE powers the machine off.
            running.cancel();
        });
        self.running = Some(shutdown);
        self.switch = Some(switch);
        self.boots += 1;
        self.up_since = Some(self.clock.now());
        Ok(())
    }

    /// Marks the machine running without an agent, for tests of the chaos engine.
    #[cfg(test)]
    pub(crate) fn pretend_running(&mut self) {
        self.running = Some(CancellationToken::new());
    }

    /// Powers the machine off (its agent stops at once).
    pub fn stop(&mut self) {
        if let Some(token) = self.running.take() {
            token.cancel();
        }
        if let Some(since) = self.up_since.take() {
            self.up_before += self.clock.now().saturating_since(since);
        }
    }
}
