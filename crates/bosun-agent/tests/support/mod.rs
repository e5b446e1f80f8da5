//! A scripted, recording control plane and a harness that runs one agent against it on
//! tokio's paused clock: tests wait for calls, never for wall-clock time.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bosun_agent::{
    Agent, AgentConfig, AgentError, AgentOptions, AgentOutcome, CommandAck, ControlPlane, DeliveredCommand, FakeGpus,
    HostMetrics, NodeFlags, ProcessTable, RpcError, fault_hooks, process_hooks,
};
use bosun_core::inventory::Workload;
use bosun_core::{CheckResult, HealthEvent, MetricSample, NodeId, NodeRegistration};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const HEARTBEAT: Duration = Duration::from_secs(10);
pub const HEALTH: Duration = Duration::from_secs(30);
pub const POLL_WAIT: Duration = Duration::from_secs(30);
pub const INVENTORY: Duration = Duration::from_secs(60);

/// One call the agent made, as the control plane saw it.
#[derive(Debug, Clone)]
pub enum Call {
    Register { registration: Box<NodeRegistration>, instance_id: Option<String> },
    Heartbeat(MetricSample),
    Health { results: Vec<CheckResult>, events: Vec<HealthEvent> },
    Poll,
    Ack(CommandAck),
    Workloads(Vec<Workload>),
}

#[derive(Default)]
struct State {
    calls: Vec<(Instant, Call)>,
    register: VecDeque<Result<AgentConfig, RpcError>>,
    heartbeat: VecDeque<Result<(), RpcError>>,
    health: VecDeque<Result<(), RpcError>>,
    workloads: VecDeque<Result<(), RpcError>>,
    commands: VecDeque<DeliveredCommand>,
}

/// Answers every call with success unless a failure was queued for that call.
pub struct FakeControlPlane {
    config: AgentConfig,
    state: Mutex<State>,
    version: watch::Sender<usize>,
    new_command: Notify,
}

impl FakeControlPlane {
    /// Hands out heartbeat every [`HEARTBEAT`], health every [`HEALTH`], polls of
    /// [`POLL_WAIT`], workloads at least every [`INVENTORY`].
    pub fn new() -> Arc<Self> {
        Self::with_config(AgentConfig {
            heartbeat_interval: HEARTBEAT,
            health_check_interval: HEALTH,
            command_poll_wait: POLL_WAIT,
            enabled_checks: Vec::new(),
            inventory_interval: INVENTORY,
        })
    }

    pub fn with_config(config: AgentConfig) -> Arc<Self> {
        Arc::new(FakeControlPlane {
            config,
            state: Mutex::default(),
            version: watch::Sender::new(0),
            new_command: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("no test panicked holding the lock")
    }

    fn record(&self, call: Call) {
        let mut state = self.state();
        state.calls.push((Instant::now(), call));
        let len = state.calls.len();
        drop(state);
        self.version.send_replace(len);
    }

    pub fn fail_register(&self, errors: impl IntoIterator<Item = RpcError>) {
        self.state().register.extend(errors.into_iter().map(Err));
    }

    pub fn fail_heartbeat(&self, errors: impl IntoIterator<Item = RpcError>) {
        self.state().heartbeat.extend(errors.into_iter().map(Err));
    }

    pub fn fail_health(&self, errors: impl IntoIterator<Item = RpcError>) {
        self.state().health.extend(errors.into_iter().map(Err));
    }

    pub fn fail_workloads(&self, errors: impl IntoIterator<Item = RpcError>) {
        self.state().workloads.extend(errors.into_iter().map(Err));
    }

    /// Queues a command for the next poll, waking a poll in progress.
    pub fn deliver(&self, command: DeliveredCommand) {
        self.state().commands.push_back(command);
        self.new_command.notify_waiters();
    }

    pub fn calls(&self) -> Vec<(Instant, Call)> {
        self.state().calls.clone()
    }

    pub fn registrations(&self) -> Vec<Instant> {
        self.calls().into_iter().filter(|(_, c)| matches!(c, Call::Register { .. })).map(|(at, _)| at).collect()
    }

    pub fn heartbeats(&self) -> Vec<(Instant, MetricSample)> {
        self.calls()
            .into_iter()
            .filter_map(|(at, c)| match c {
                Call::Heartbeat(sample) => Some((at, sample)),
                _ => None,
            })
            .collect()
    }

    pub fn health_reports(&self) -> Vec<(Vec<CheckResult>, Vec<HealthEvent>)> {
        self.calls()
            .into_iter()
            .filter_map(|(_, c)| match c {
                Call::Health { results, events } => Some((results, events)),
                _ => None,
            })
            .collect()
    }

    /// Every workload report, answered or not, with when it arrived.
    pub fn workload_reports(&self) -> Vec<(Instant, Vec<Workload>)> {
        self.calls()
            .into_iter()
            .filter_map(|(at, c)| match c {
                Call::Workloads(workloads) => Some((at, workloads)),
                _ => None,
            })
            .collect()
    }

    pub fn acks(&self) -> Vec<CommandAck> {
        self.calls()
            .into_iter()
            .filter_map(|(_, c)| match c {
                Call::Ack(ack) => Some(ack),
                _ => None,
            })
            .collect()
    }

    /// Waits (in virtual time, at most a virtual day) until `condition` holds.
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&FakeControlPlane) -> bool) {
        let mut version = self.version.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(86_400), async {
            while !condition(self) {
                version.changed().await.expect("the fake outlives the wait");
            }
        })
        .await;
        if waited.is_err() {
            panic!("timed out waiting for {what}; calls: {:#?}", self.calls());
        }
    }

    pub async fn wait_for_heartbeats(&self, n: usize) {
        self.wait_for(&format!("{n} heartbeats"), |cp| cp.heartbeats().len() >= n).await;
    }

    pub async fn wait_for_health_reports(&self, n: usize) {
        self.wait_for(&format!("{n} health reports"), |cp| cp.health_reports().len() >= n).await;
    }

    pub async fn wait_for_workload_reports(&self, n: usize) {
        self.wait_for(&format!("{n} workload reports"), |cp| cp.workload_reports().len() >= n).await;
    }

    pub async fn wait_for_acks(&self, n: usize) {
        self.wait_for(&format!("{n} acks"), |cp| cp.acks().len() >= n).await;
    }
}

#[async_trait]
impl ControlPlane for FakeControlPlane {
    async fn register(
        &self,
        registration: &NodeRegistration,
        instance_id: Option<&str>,
    ) -> Result<AgentConfig, RpcError> {
        self.record(Call::Register {
            registration: Box::new(registration.clone()),
            instance_id: instance_id.map(str::to_owned),
        });
        let scripted = self.state().register.pop_front();
        scripted.unwrap_or_else(|| Ok(self.config.clone()))
    }

    async fn heartbeat(&self, sample: &MetricSample) -> Result<(), RpcError> {
        self.record(Call::Heartbeat(sample.clone()));
        let scripted = self.state().heartbeat.pop_front();
        scripted.unwrap_or(Ok(()))
    }

    async fn report_health(
        &self,
        _node: &NodeId,
        results: &[CheckResult],
        events: &[HealthEvent],
    ) -> Result<(), RpcError> {
        self.record(Call::Health { results: results.to_vec(), events: events.to_vec() });
        let scripted = self.state().health.pop_front();
        scripted.unwrap_or(Ok(()))
    }

    /// A long poll: answers at once when commands are queued, else when one is delivered
    /// or `wait` passes.
    async fn poll_commands(&self, _node: &NodeId, wait: Duration) -> Result<Vec<DeliveredCommand>, RpcError> {
        self.record(Call::Poll);
        let deadline = Instant::now() + wait;
        loop {
            let woken = self.new_command.notified();
            let queued: Vec<DeliveredCommand> = self.state().commands.drain(..).collect();
            if !queued.is_empty() {
                return Ok(queued);
            }
            tokio::select! {
                () = woken => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
            }
        }
    }

    async fn ack_command(&self, _node: &NodeId, ack: &CommandAck) -> Result<(), RpcError> {
        self.record(Call::Ack(ack.clone()));
        Ok(())
    }

    async fn report_workloads(&self, _node: &NodeId, workloads: &[Workload]) -> Result<(), RpcError> {
        self.record(Call::Workloads(workloads.to_vec()));
        let scripted = self.state().workloads.pop_front();
        scripted.unwrap_or(Ok(()))
    }
}

/// One agent running against a [`FakeControlPlane`].
pub struct Harness {
    pub control: Arc<FakeControlPlane>,
    pub gpus: Arc<FakeGpus>,
    pub flags: NodeFlags,
    pub shutdown: CancellationToken,
    pub run: JoinHandle<Result<AgentOutcome, AgentError>>,
}

pub fn node_id() -> NodeId {
    NodeId::new("node-1").expect("valid")
}

/// Options for `node-1` with fixed host figures (CPU 12.5 %, memory 40 %), its GPUs'
/// processes simulated.
pub fn options() -> AgentOptions {
    let mut options = AgentOptions::new(node_id());
    options.provider = "gcp".into();
    options.region = "us-central1".into();
    options.zone = "us-central1-a".into();
    options.instance_type = "a3-highgpu-8g".into();
    options.host_metrics = HostMetrics::fixed(12.5, 40.0);
    options.processes = ProcessTable::Simulated;
    options
}

/// [`options`] with the fake GPUs' fault and process commands.
pub fn options_with_fake_commands(gpus: &Arc<FakeGpus>) -> AgentOptions {
    let mut options = options();
    options.hooks.custom.extend(fault_hooks(gpus));
    options.hooks.custom.extend(process_hooks(gpus));
    options
}

impl Harness {
    pub fn start(control: Arc<FakeControlPlane>, gpus: Arc<FakeGpus>, options: AgentOptions) -> Harness {
        Self::start_with(control.clone(), control, gpus, options)
    }

    /// Runs the agent against `transport` (a wrapper around `control`, say) while the test
    /// observes `control`.
    pub fn start_with(
        control: Arc<FakeControlPlane>,
        transport: Arc<dyn ControlPlane>,
        gpus: Arc<FakeGpus>,
        options: AgentOptions,
    ) -> Harness {
        let shutdown = CancellationToken::new();
        let agent = Agent::new(options, gpus.clone(), transport);
        let flags = agent.flags();
        let run = tokio::spawn(agent.run(shutdown.clone()));
        Harness { control, gpus, flags, shutdown, run }
    }

    pub fn running() -> Harness {
        Self::start(FakeControlPlane::new(), Arc::new(FakeGpus::new(8).with_seed(1)), options())
    }

    /// Cancels the agent and returns how its run ended; it must end within a virtual second.
    pub async fn stop(self) -> Result<AgentOutcome, AgentError> {
        self.shutdown.cancel();
        Self::finish(self.run).await
    }

    pub async fn finish(run: JoinHandle<Result<AgentOutcome, AgentError>>) -> Result<AgentOutcome, AgentError> {
        tokio::time::timeout(Duration::from_secs(1), run)
            .await
            .expect("the agent stops promptly")
            .expect("the agent task does not panic")
    }
}
