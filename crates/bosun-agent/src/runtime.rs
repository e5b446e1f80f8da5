//! The agent: registration, then heartbeat, health, command and workload loops until
//! shutdown or TERMINATE.
//!
//! Shape of a running agent (one tokio task when awaited; no threads, no busy loops):
//!
//! ```text
//! Agent::run ─┬─ sessions: register (retry) ─> { heartbeat | health | command poll | workloads } ─┐
//!             │            ^──────────────────── re-register when a call answers not_found ──────┘
//!             └─ command executor (outlives sessions; TERMINATE ends the agent)
//! ```
//!
//! A session is one registration. Any loop that hears `not_found` ends the session and the
//! agent registers again, because the server lost or deleted the node (Navarch's agents
//! never did, and stayed orphaned after every control-plane restart). Transient errors
//! are retried with backoff and never end the agent; only a refused registration does.

use std::sync::Arc;
use std::time::Duration;

use bosun_core::workloads::MAX_REPORT_WORKLOADS;
use bosun_core::{
    CheckResult, Clock, Labels, MetricSample, NodeId, NodeMetadata, NodeRegistration, PoolName, SystemClock,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::backoff::{Backoff, BackoffPolicy, seed_from};
use crate::checks::{self, CheckSet};
use crate::commands::{CommandExecutor, Flow, NodeFlags};
use crate::control_plane::{AgentConfig, ControlPlane, DeliveredCommand, RpcError};
use crate::error::AgentError;
use crate::gpu::GpuSource;
use crate::hooks::Hooks;
use crate::pending::PendingEvents;
use crate::procfs::{AGENT_VERSION, HostMetrics, ProcessTable};
use crate::workloads::{self, WorkloadReports};

/// Empty polls are spaced at least this far apart, so a server that answers a long poll
/// at once cannot turn every agent into a busy loop.
const MIN_POLL_SPACING: Duration = Duration::from_secs(1);

/// Commands polled but not yet started.
const COMMAND_QUEUE: usize = 32;

/// Who this node is and how the agent behaves.
#[derive(Debug)]
pub struct AgentOptions {
    pub node_id: NodeId,
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_type: String,
    pub pool: Option<PoolName>,
    pub labels: Labels,
    /// bosun's instance id, when the provider passed one to the machine.
    pub instance_id: Option<String>,
    /// Hostname, IPs, kernel; `agent_version` defaults to this crate's version.
    pub metadata: NodeMetadata,
    pub hooks: Hooks,
    pub host_metrics: HostMetrics,
    /// Where the names, containers, pods and start times of GPU processes are read:
    /// `/proc`, or nowhere for a simulated machine ([`ProcessTable::Simulated`]).
    pub processes: ProcessTable,
    /// Stamps metric samples and judges command deadlines.
    pub clock: Arc<dyn Clock>,
}

impl AgentOptions {
    /// Options for `node_id` with nothing else known: empty placement, no hooks, host
    /// figures and processes from `/proc`, the system clock.
    pub fn new(node_id: NodeId) -> Self {
        AgentOptions {
            node_id,
            provider: String::new(),
            region: String::new(),
            zone: String::new(),
            instance_type: String::new(),
            pool: None,
            labels: Labels::new(),
            instance_id: None,
            metadata: NodeMetadata { agent_version: AGENT_VERSION.to_owned(), ..NodeMetadata::default() },
            hooks: Hooks::default(),
            host_metrics: HostMetrics::proc(),
            processes: ProcessTable::proc(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOutcome {
    /// The shutdown token was cancelled (SIGTERM, or the simulator stopped the node).
    Cancelled,
    /// A TERMINATE command completed: the machine is going away. The caller decides what
    /// that means for the process; the agent never exits it.
    Terminated,
}

/// A node agent, ready to run.
pub struct Agent {
    options: AgentOptions,
    gpus: Arc<dyn GpuSource>,
    control: Arc<dyn ControlPlane>,
    flags: NodeFlags,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("node_id", &self.options.node_id).field("gpus", &self.gpus).finish()
    }
}

impl Agent {
    pub fn new(options: AgentOptions, gpus: Arc<dyn GpuSource>, control: Arc<dyn ControlPlane>) -> Self {
        Agent { options, gpus, control, flags: NodeFlags::default() }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.options.node_id
    }

    /// The node's local cordon and drain flags, as commands set them.
    pub fn flags(&self) -> NodeFlags {
        self.flags.clone()
    }

    /// Runs until `shutdown` is cancelled, a TERMINATE command completes, or the control
    /// plane refuses the registration. Cancellation stops every loop at its next await
    /// point, abandoning (and killing) a running hook.
    pub fn run(self, shutdown: CancellationToken) -> impl Future<Output = Result<AgentOutcome, AgentError>> + Send {
        let span = info_span!("agent", node_id = %self.options.node_id);
        let Agent { options, gpus, control, flags } = self;
        let seed = seed_from(options.node_id.as_str());
        let stop = shutdown.child_token();
        let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
        let executor = CommandExecutor::new(
            options.node_id.clone(),
            options.hooks.clone(),
            gpus.clone(),
            control.clone(),
            options.clock.clone(),
            flags,
            seed,
        );
        let sessions = Sessions {
            ctx: Ctx { gpus, control },
            options,
            pending_events: PendingEvents::default(),
            workload_reports: WorkloadReports::default(),
            seed,
        };
        // The two halves are built here and boxed once each, rather than inside an async
        // fn: its state would keep its arguments beside the futures they were moved into,
        // doubling an agent's footprint (about 4.5 KiB this way), and the simulator runs a
        // hundred thousand agents.
        let executor = Box::pin(executor.run(inbox, stop.clone()));
        let sessions = Box::pin(sessions.run(commands, stop));
        async move {
            let (flow, sessions_result) = tokio::join!(executor, sessions);
            if flow == Flow::Terminate {
                info!("terminated by command; agent stopped");
                return Ok(AgentOutcome::Terminated);
            }
            sessions_result?;
            info!("shutdown requested; agent stopped");
            Ok(AgentOutcome::Cancelled)
        }
        .instrument(span)
    }
}

/// What every loop of a session talks to.
struct Ctx {
    gpus: Arc<dyn GpuSource>,
    control: Arc<dyn ControlPlane>,
}

/// Registrations and the loops that run under each, with the state that must survive a
/// re-registration (unsent health events, the previous CPU reading, what is known of the
/// server's workload reports).
struct Sessions {
    ctx: Ctx,
    options: AgentOptions,
    pending_events: PendingEvents,
    workload_reports: WorkloadReports,
    seed: u64,
}

impl Sessions {
    /// Registers and runs sessions until `stop` is cancelled or registration is refused;
    /// either way it cancels `stop` as it ends, so the command executor stops too.
    async fn run(
        mut self,
        commands: mpsc::Sender<DeliveredCommand>,
        stop: CancellationToken,
    ) -> Result<(), AgentError> {
        let _stop_executor = stop.clone().drop_guard();
        loop {
            let Some(config) = self.register(&stop).await? else { return Ok(()) };
            let session = stop.child_token();
            let node_id = &self.options.node_id;
            let ctx = &self.ctx;
            let clock = &*self.options.clock;
            let checks = CheckSet::from_names(&config.enabled_checks);
            let workloads = Workloads { table: &mut self.options.processes, reports: &mut self.workload_reports };
            tokio::join!(
                heartbeat_loop(ctx, node_id, clock, &mut self.options.host_metrics, &config, &session, self.seed),
                health_loop(ctx, node_id, &mut self.pending_events, checks, &config, &session, self.seed),
                poll_loop(ctx, node_id, &commands, &config, &session, self.seed),
                workload_loop(ctx, node_id, workloads, &config, &session, self.seed),
            );
            if stop.is_cancelled() {
                return Ok(());
            }
            info!("registering again");
        }
    }

    /// Registers, retrying GPU discovery failures and retryable errors with backoff for
    /// as long as it takes. `None` when stopped first.
    async fn register(&self, stop: &CancellationToken) -> Result<Option<AgentConfig>, AgentError> {
        let node_id = &self.options.node_id;
        let mut backoff = Backoff::new(BackoffPolicy::REGISTRATION, self.seed);
        loop {
            let attempt = async {
                let gpus = match self.ctx.gpus.discover().await {
                    Ok(gpus) => gpus,
                    Err(error) => {
                        warn!(%error, attempt = backoff.failures() + 1, "cannot discover GPUs; not registering yet");
                        return Ok(None);
                    }
                };
                let registration = self.registration(gpus);
                registration
                    .validate()
                    .map_err(|error| AgentError::InvalidRegistration { node_id: node_id.clone(), error })?;
                match self.ctx.control.register(&registration, self.options.instance_id.as_deref()).await {
                    Ok(config) => Ok(Some(config)),
                    Err(error) if error.is_retryable() => {
                        warn!(%error, attempt = backoff.failures() + 1, "registration failed; retrying");
                        Ok(None)
                    }
                    Err(error) => Err(AgentError::RegistrationRefused { node_id: node_id.clone(), error }),
                }
            };
            match stop.run_until_cancelled(attempt).await {
                None => return Ok(None),
                Some(Ok(Some(config))) => {
                    let config = config.with_floors();
                    info!(
                        heartbeat_interval = ?config.heartbeat_interval,
                        health_check_interval = ?config.health_check_interval,
                        inventory_interval = ?config.inventory_interval,
                        "registered"
                    );
                    return Ok(Some(config));
                }
                Some(Ok(None)) => {}
                Some(Err(error)) => {
                    error!(%error, "giving up");
                    return Err(error);
                }
            }
            if stop.run_until_cancelled(sleep(backoff.next_delay())).await.is_none() {
                return Ok(None);
            }
        }
    }

    fn registration(&self, gpus: Vec<bosun_core::Gpu>) -> NodeRegistration {
        let o = &self.options;
        NodeRegistration {
            node_id: o.node_id.clone(),
            provider: o.provider.clone(),
            region: o.region.clone(),
            zone: o.zone.clone(),
            instance_type: o.instance_type.clone(),
            pool: o.pool.clone(),
            labels: o.labels.clone(),
            gpus,
            metadata: o.metadata.clone(),
        }
    }
}

/// When a loop tries again after `error`: `None` when the node must register again (the
/// session is ended), else the delay. Retryable errors back off up to `cadence`; others
/// are logged and retried at `cadence`, since a misconfigured server is fixed by an
/// operator and should find its agents still running.
fn after_failure(
    call: &str,
    error: RpcError,
    backoff: &mut Backoff,
    cadence: Duration,
    session: &CancellationToken,
) -> Option<Duration> {
    match error {
        RpcError::NotFound(_) => {
            warn!(call, %error, "the control plane does not know this node");
            session.cancel();
            None
        }
        error if error.is_retryable() => {
            let delay = backoff.next_delay().min(cadence);
            warn!(call, %error, retry_in = ?delay, "call failed");
            Some(delay)
        }
        error => {
            error!(call, %error, retry_in = ?cadence, "call rejected");
            Some(cadence)
        }
    }
}

/// Sends a heartbeat with fresh metrics at once, then every heartbeat interval.
async fn heartbeat_loop(
    ctx: &Ctx,
    node_id: &NodeId,
    clock: &dyn Clock,
    host: &mut HostMetrics,
    config: &AgentConfig,
    session: &CancellationToken,
    seed: u64,
) {
    let interval = config.heartbeat_interval;
    let mut backoff = Backoff::new(BackoffPolicy::CALLS, seed ^ 1);
    loop {
        let started = Instant::now();
        let beat = async {
            let sample = metric_sample(ctx, node_id, clock, host).await;
            ctx.control.heartbeat(&sample).await
        };
        let Some(result) = session.run_until_cancelled(beat).await else { return };
        let wake = match result {
            Ok(()) => {
                backoff.reset();
                started + interval
            }
            Err(error) => match after_failure("heartbeat", error, &mut backoff, interval, session) {
                Some(delay) => Instant::now() + delay,
                None => return,
            },
        };
        if session.run_until_cancelled(sleep_until(wake)).await.is_none() {
            return;
        }
    }
}

async fn metric_sample(ctx: &Ctx, node_id: &NodeId, clock: &dyn Clock, host: &mut HostMetrics) -> MetricSample {
    let gpus = match ctx.gpus.read_devices().await {
        Ok(readings) => readings.into_iter().filter_map(Result::ok).collect(),
        // The health report says so; heartbeats still carry the host figures.
        Err(error) => {
            debug!(%error, "no GPU readings for this heartbeat");
            Vec::new()
        }
    };
    let host = host.sample();
    MetricSample {
        node_id: node_id.clone(),
        at: clock.now(),
        cpu_percent: host.cpu_percent,
        memory_percent: host.memory_percent,
        gpus,
    }
}

/// Runs the checks and reports them with the events collected since the last accepted
/// report, at once and then every health interval. Events the server has not accepted
/// are sent again with the next report, so a network blip cannot swallow an XID; more
/// events than one report may carry go as several reports; events the server refused as
/// invalid are dropped (and counted), never sent again.
async fn health_loop(
    ctx: &Ctx,
    node_id: &NodeId,
    pending: &mut PendingEvents,
    checks: CheckSet,
    config: &AgentConfig,
    session: &CancellationToken,
    seed: u64,
) {
    let interval = config.health_check_interval;
    let mut backoff = Backoff::new(BackoffPolicy::CALLS, seed ^ 2);
    loop {
        let started = Instant::now();
        let report = async {
            let results = checks::run(&*ctx.gpus, checks).await;
            match ctx.gpus.collect_events().await {
                Ok(events) => pending.push(events),
                // The nvml check reports the backend failure; events wait for recovery.
                Err(error) => debug!(%error, "no health events collected"),
            }
            send_reports(ctx, node_id, results, pending).await
        };
        let Some(result) = session.run_until_cancelled(report).await else { return };
        let wake = match result {
            Ok(()) => {
                backoff.reset();
                started + interval
            }
            Err(error) => match after_failure("report_health", error, &mut backoff, interval, session) {
                Some(delay) => Instant::now() + delay,
                None => return,
            },
        };
        if session.run_until_cancelled(sleep_until(wake)).await.is_none() {
            return;
        }
    }
}

/// Sends this round's check results with the pending events, in as many reports as the
/// events need. A report refused as invalid drops its events and the round goes on.
async fn send_reports(
    ctx: &Ctx,
    node_id: &NodeId,
    mut results: Vec<CheckResult>,
    pending: &mut PendingEvents,
) -> Result<(), RpcError> {
    results.extend(pending.dropped_check());
    loop {
        let batch = pending.next_report();
        let count = batch.len();
        match ctx.control.report_health(node_id, &results, batch).await {
            Ok(()) => pending.accepted(count),
            Err(error @ RpcError::InvalidArgument(_)) if count > 0 => {
                error!(%error, events = count, "the control plane refused these health events; they are dropped, not sent again");
                pending.refused(count);
                // The next report says how many were dropped, this refusal included.
                results.retain(|r| r.name != crate::pending::DROPPED_CHECK);
                results.extend(pending.dropped_check());
                continue;
            }
            Err(error) => return Err(error),
        }
        if pending.is_empty() {
            return Ok(());
        }
        // The check results went with the first report.
        results.clear();
    }
}

/// Long-polls for commands and hands them to the executor.
async fn poll_loop(
    ctx: &Ctx,
    node_id: &NodeId,
    commands: &mpsc::Sender<DeliveredCommand>,
    config: &AgentConfig,
    session: &CancellationToken,
    seed: u64,
) {
    let mut backoff = Backoff::new(BackoffPolicy::CALLS, seed ^ 3);
    loop {
        let started = Instant::now();
        let polled = ctx.control.poll_commands(node_id, config.command_poll_wait);
        let Some(result) = session.run_until_cancelled(polled).await else { return };
        let wake = match result {
            Ok(delivered) => {
                backoff.reset();
                let empty = delivered.is_empty();
                for command in delivered {
                    // Dropped if the session ends first: unacknowledged, it comes back.
                    match session.run_until_cancelled(commands.send(command)).await {
                        Some(Ok(())) => {}
                        Some(Err(_)) | None => return,
                    }
                }
                if empty { started + MIN_POLL_SPACING } else { Instant::now() }
            }
            Err(error) => match after_failure("poll_commands", error, &mut backoff, config.heartbeat_interval, session)
            {
                Some(delay) => Instant::now() + delay,
                None => return,
            },
        };
        if session.run_until_cancelled(sleep_until(wake)).await.is_none() {
            return;
        }
    }
}

/// What the workload loop keeps across sessions.
struct Workloads<'s> {
    table: &'s mut ProcessTable,
    reports: &'s mut WorkloadReports,
}

/// Looks at the GPU workloads at once and then every heartbeat interval (or inventory
/// interval, when shorter), and reports them when they changed or the inventory interval
/// passed since the last report. A scan that fails sends nothing (a partial list would
/// report the rest as ended); a failed report is tried again at the next look; a report
/// the server refused as invalid, or one too large to send, waits for a change or the
/// interval; a server without the method is asked again hourly.
async fn workload_loop(
    ctx: &Ctx,
    node_id: &NodeId,
    workloads: Workloads<'_>,
    config: &AgentConfig,
    session: &CancellationToken,
    seed: u64,
) {
    let Workloads { table, reports } = workloads;
    let interval = config.inventory_interval;
    let cadence = config.heartbeat_interval.min(interval);
    let mut backoff = Backoff::new(BackoffPolicy::CALLS, seed ^ 4);
    reports.new_session();
    loop {
        let started = Instant::now();
        let round = async {
            let scanned = workloads::scan(&*ctx.gpus, table, node_id).await;
            reports.scanned(scanned.as_ref().map(|_| ()));
            let Ok(current) = scanned else { return Ok(()) };
            if !reports.due(&current, started, interval) {
                return Ok(());
            }
            if current.len() > MAX_REPORT_WORKLOADS {
                warn!(
                    workloads = current.len(),
                    limit = MAX_REPORT_WORKLOADS,
                    "more GPU workloads than one report may carry; not reporting them"
                );
                reports.settled(&current, started);
                return Ok(());
            }
            let answer = ctx.control.report_workloads(node_id, &current).await;
            match &answer {
                Err(error) if error.is_unimplemented() => {
                    reports.unsupported(started);
                    return Ok(());
                }
                _ => reports.supported(),
            }
            match answer {
                Ok(()) => reports.settled(&current, started),
                Err(error @ RpcError::InvalidArgument(_)) => {
                    error!(%error, "the control plane refused the GPU workloads; reporting them again when they change");
                    reports.settled(&current, started);
                }
                Err(error) => return Err(error),
            }
            Ok(())
        };
        let Some(result) = session.run_until_cancelled(round).await else { return };
        let wake = match result {
            Ok(()) => {
                backoff.reset();
                started + cadence
            }
            Err(error) => match after_failure("report_workloads", error, &mut backoff, cadence, session) {
                Some(delay) => Instant::now() + delay,
                None => return,
            },
        };
        if session.run_until_cancelled(sleep_until(wake)).await.is_none() {
            return;
        }
    }
}
