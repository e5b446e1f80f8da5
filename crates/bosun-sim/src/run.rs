//! `bosun sim run`: a scenario against the whole control plane.
//!
//! The real server (every pass of its loops, the chosen store, fake-provider pools) serves
//! on loopback; simulated agents speak the real API to it. Time is simulated (see
//! [`crate::time`]): the run is one loop that moves time a step, lets the agents' calls
//! finish, then runs whatever is due at the new time, in this order: the server's passes
//! (flush, liveness, janitor, retention, pools, each at its configured interval and each
//! to completion), stress-mode start-ups, chaos, and the sampler that reads the fleet's
//! state back from the control plane for the report. Events run between steps, in `at`
//! order; assertions run at the end. Everything the report says about the fleet is read
//! from the control plane, never inferred from what was injected.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bosun_agent::{Fault, FaultKind};
use bosun_api::{convert, v1};
use bosun_config::{Config, ProviderConfig, Role};
use bosun_core::{Clock, Health, NodeId, NodeStatus, Timestamp};
use bosun_provider::Provider;
use bosun_provider::fake::{FakeProvider, FakeSettings, MachineNames};
use bosun_provider::{Bootstrap, ProviderError};
use bosun_server::{AlwaysLeader, PoolMachines, PoolsConfig, Server, ServerHandle, Settings};
use bosun_store::{Database, StoreLocation, StoreOptions};
use connectrpc::client::{ClientConfig, HttpClient};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::agents::{ClientPool, NodeSpec, RpcStats, SimNode};
use crate::chaos::{ChaosAction, ChaosEngine};
use crate::remediation::RemediationTracker;
use crate::report::{
    AssertionResult, Decision, EventResult, FailureTally, Report, Sample, parse_remediation_steps, parse_rule_hits,
    rpc_summary, scrape_metrics,
};
use crate::scenario::{
    Action, AssertionKind, CountExpectation, Event, ExpectedStatus, FailureType, RemediationExpectation, Scenario,
    scalar_text,
};
use crate::stress;
use crate::time::{InFlight, Pace, SimClock, TimeDriver};

/// 2026-01-01T00:00:00Z (a Thursday): simulated time starts here, so runs are
/// reproducible and scheduled-scaling windows can be written against a known date.
pub fn sim_epoch() -> Timestamp {
    Timestamp::from_unix_micros(1_767_225_600_000_000)
}

/// How often `wait_for_status` reads the node (Navarch's 500 ms).
const WAIT_POLL: Duration = Duration::from_millis(500);
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_STRESS_DURATION: Duration = Duration::from_secs(600);
/// The Navarch simulator's agent intervals, used when the scenario's `config` sets none.
const SIM_HEARTBEAT_INTERVAL: &str = "3s";
const SIM_HEALTH_CHECK_INTERVAL: &str = "5s";
/// How long `restart_server` waits in real time for the old control plane to stop before
/// it lets simulated time move (for a shutdown that waits on its timeout).
const RESTART_REAL_WAIT: Duration = Duration::from_secs(5);
/// Thermal failures run GPUs at Navarch's fixed 95 °C.
const FAILURE_CELSIUS: f64 = 95.0;

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub pace: Pace,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Simulated time per step.
    pub step: Duration,
    /// Print a line on stderr each simulated minute.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { pace: Pace::Virtual, seed: None, step: Duration::from_millis(100), progress: false }
    }
}

/// The simulation could not run (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario config: {0}")]
    Config(String),
    #[error("store: {0}")]
    Store(String),
    #[error("cannot start the control plane: {0}")]
    Start(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs `scenario` on a fresh runtime with simulated time, against a fresh store at
/// `location`. Call from a thread that is not running a tokio runtime.
pub fn run_scenario(scenario: &Scenario, location: &StoreLocation, options: &RunOptions) -> Result<Report, SimError> {
    let runtime = crate::time::runtime()?;
    runtime.block_on(async {
        let sim = Sim::start(scenario, location, options).await?;
        Ok(sim.run().await)
    })
}

/// A periodic job on simulated time.
#[derive(Debug, Clone, Copy)]
struct Every {
    period: Duration,
    next: Duration,
}

impl Every {
    fn new(period: Duration, first: Duration) -> Self {
        Self { period: period.max(Duration::from_millis(1)), next: first }
    }

    fn due(&mut self, now: Duration) -> bool {
        if now < self.next {
            return false;
        }
        while self.next <= now {
            self.next += self.period;
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Flush,
    Liveness,
    Janitor,
    Retention,
    Pools,
}

/// Everything a control-plane start needs beyond the providers.
struct RestartPlan {
    location: StoreLocation,
    config: Config,
    settings: Settings,
    address: std::net::SocketAddr,
    agent_token: Option<String>,
}

impl RestartPlan {
    /// Opens the store and starts the server on `listener` with `providers`' pools.
    async fn start(
        &self,
        listener: tokio::net::TcpListener,
        clock: &Arc<SimClock>,
        providers: &BTreeMap<String, Arc<FakeProvider>>,
    ) -> Result<ServerHandle, SimError> {
        let database = Database::connect(&self.location).await.map_err(|e| SimError::Store(e.to_string()))?;
        database.migrate_up().await.map_err(|e| SimError::Store(e.to_string()))?;
        let store = database
            .into_store(StoreOptions::new(Arc::clone(clock) as Arc<dyn Clock>))
            .await
            .map_err(|e| SimError::Store(e.to_string()))?;
        let built: BTreeMap<String, Arc<dyn Provider>> =
            providers.iter().map(|(name, p)| (name.clone(), Arc::clone(p) as Arc<dyn Provider>)).collect();
        let pools = (!self.config.pools.is_empty()).then(|| PoolsConfig {
            pools: self.config.pool_specs(),
            providers: built,
            bootstrap: Bootstrap { server_url: format!("http://{}", self.address), token: self.agent_token.clone() },
            machines: PoolMachines::from_config(&self.config),
            leadership: Arc::new(AlwaysLeader),
        });
        Server::start_with_pools(
            listener,
            store,
            Arc::clone(clock) as Arc<dyn Clock>,
            self.settings.clone(),
            false,
            pools,
        )
        .await
        .map_err(|e| SimError::Start(e.to_string()))
    }

    /// A fake provider per configured provider, numbering machines after `previous`'s.
    fn providers(
        &self,
        clock: &Arc<SimClock>,
        clients: &ClientPool,
        previous: &BTreeMap<String, Arc<FakeProvider>>,
    ) -> Result<BTreeMap<String, Arc<FakeProvider>>, SimError> {
        let mut providers = BTreeMap::new();
        for (name, provider) in &self.config.providers {
            let ProviderConfig::Fake { gpu_count } = provider else {
                return Err(SimError::Config(format!(
                    "providers.{name} is a {} provider; the simulator runs fake providers only",
                    provider.provider_type()
                )));
            };
            let first = previous.get(name).map_or(1, |p| p.next_number());
            let fake = Arc::new(FakeProvider::new(
                name,
                FakeSettings {
                    gpu_count: *gpu_count,
                    region: "sim".into(),
                    zone: "sim-a".into(),
                    names: MachineNames::Sequential { first },
                    ..FakeSettings::default()
                },
                Arc::clone(clock) as Arc<dyn Clock>,
                clients.factory(),
            ));
            providers.insert(name.clone(), fake);
        }
        Ok(providers)
    }
}

struct Sim {
    scenario: Scenario,
    seed: u64,
    rng: SmallRng,
    options: RunOptions,
    backend: String,
    driver: TimeDriver,
    clock: Arc<SimClock>,
    /// The control plane; `None` only while `restart_server` swaps it.
    server: Option<ServerHandle>,
    /// What it takes to start the control plane again (`restart_server`).
    restart: RestartPlan,
    admin: v1::AdminServiceClient<HttpClient>,
    admin_token: Option<String>,
    clients: ClientPool,
    stats: Arc<RpcStats>,
    nodes: BTreeMap<NodeId, SimNode>,
    providers: BTreeMap<String, Arc<FakeProvider>>,
    passes: Vec<(Pass, Every)>,
    sampler: Every,
    startups: VecDeque<(Duration, NodeId)>,
    chaos: Option<ChaosEngine>,
    events: Vec<EventResult>,
    timeline: Vec<Sample>,
    tally: FailureTally,
    decisions: BTreeMap<String, Vec<Decision>>,
    remediation: RemediationTracker,
    wall_start: std::time::Instant,
}

impl Sim {
    async fn start(scenario: &Scenario, location: &StoreLocation, options: &RunOptions) -> Result<Sim, SimError> {
        let wall_start = std::time::Instant::now();
        let seed = options
            .seed
            .or_else(|| scenario.stress.as_ref().map(|s| s.seed).filter(|s| *s != 0))
            .unwrap_or_else(time_seed);
        let clock = Arc::new(SimClock::starting_at(sim_epoch()));
        let in_flight = InFlight::default();
        // First of all: from here on simulated time moves only when the driver moves it
        // (connecting to the store must not see its timeouts fire in simulated time).
        let driver = TimeDriver::new(options.pace, options.step, in_flight.clone(), (*clock).clone());
        let config = control_plane_config(scenario)?;
        let mut settings = Settings::from_config(&config);
        settings.health_policy = config.server.health_policy.clone();
        // The API port's timeouts guard a real server against stalled peers on the wall
        // clock. Here tokio's clock is simulated and jumps a whole step at a time, so they
        // would close the simulated agents' connections (and expire HTTP/2 pings before
        // they are answered) at simulated speed.
        settings.header_read_timeout = CONNECTION_TIMEOUTS_OFF;
        settings.idle_timeout = CONNECTION_TIMEOUTS_OFF;
        settings.request_body_timeout = CONNECTION_TIMEOUTS_OFF;

        // The simulator needs an empty store: what it reports was caused in this run.
        {
            let database = Database::connect(location).await.map_err(|e| SimError::Store(e.to_string()))?;
            database.migrate_up().await.map_err(|e| SimError::Store(e.to_string()))?;
            let store = database
                .into_store(StoreOptions::new(Arc::clone(&clock) as Arc<dyn Clock>))
                .await
                .map_err(|e| SimError::Store(e.to_string()))?;
            let counts = store.counts().await.map_err(|e| SimError::Store(e.to_string()))?;
            store.close().await;
            if counts.nodes > 0 || counts.instances > 0 {
                return Err(SimError::Store(format!(
                    "{location} already holds {} nodes and {} instances; the simulator needs an empty store",
                    counts.nodes, counts.instances
                )));
            }
        }
        let backend = location.backend().to_string();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let url = format!("http://{address}");
        let token_of = |role: Role| {
            config.auth.tokens.iter().find(|t| t.role == role && t.node.is_none()).map(|t| t.secret.expose().to_owned())
        };
        let agent_token = token_of(Role::Agent);
        let admin_token = token_of(Role::Admin);
        if !config.auth.tokens.is_empty() && (agent_token.is_none() || admin_token.is_none()) {
            return Err(SimError::Config(
                "auth.tokens needs an agent token and an admin token (without node) for the simulator".into(),
            ));
        }
        let stats = Arc::new(RpcStats::default());
        let clients = ClientPool::new(&url, agent_token.clone(), Arc::clone(&stats), in_flight.clone());
        let restart = RestartPlan {
            location: location.clone(),
            config: config.clone(),
            settings: settings.clone(),
            address,
            agent_token,
        };
        let providers = restart.providers(&clock, &clients, &BTreeMap::new())?;
        let server = restart.start(listener, &clock, &providers).await?;

        let mut admin_config = ClientConfig::new(url.parse().map_err(|e| SimError::Start(format!("{e}")))?);
        if let Some(token) = &admin_token {
            admin_config = admin_config.with_default_header("authorization", format!("Bearer {token}"));
        }
        let admin = v1::AdminServiceClient::new(HttpClient::plaintext(), admin_config);

        let mut passes = vec![
            (Pass::Flush, Every::new(settings.flush_interval, settings.flush_interval)),
            (Pass::Liveness, Every::new(settings.liveness_interval, settings.liveness_interval)),
            (Pass::Janitor, Every::new(settings.janitor_interval, settings.janitor_interval)),
            (Pass::Retention, Every::new(settings.retention_interval, settings.retention_interval)),
        ];
        if !config.pools.is_empty() {
            // Like the server's own loop: the first pass at start.
            passes.push((Pass::Pools, Every::new(settings.autoscale_interval, Duration::ZERO)));
        }
        let metrics_interval =
            scenario.stress.as_ref().and_then(|s| s.metrics_interval).map_or(DEFAULT_METRICS_INTERVAL, |d| d.0);

        let mut rng = SmallRng::seed_from_u64(seed);
        let mut nodes = BTreeMap::new();
        let mut startups = VecDeque::new();
        for node in &scenario.fleet {
            let spec = NodeSpec {
                id: node.id.parse().map_err(|e| SimError::Config(format!("fleet: {e}")))?,
                provider: node.provider.clone(),
                region: node.region.clone(),
                zone: node.zone.clone(),
                instance_type: node.instance_type.clone(),
                gpu_count: node.gpu_count.unwrap_or(8),
                gpu_type: node.gpu_type.clone(),
                labels: bosun_core::Labels::try_from(node.labels.clone())
                    .map_err(|e| SimError::Config(format!("fleet node {}: {e}", node.id)))?,
                price_per_hour: None,
            };
            nodes.insert(spec.id.clone(), SimNode::new(spec, rng.random(), Arc::clone(&clock) as Arc<dyn Clock>));
        }
        let mut chaos = None;
        if let Some(stress) = &scenario.stress
            && let Some(fleet) = &stress.fleet_gen
        {
            for planned in stress::generate(fleet, &mut rng) {
                let id = planned.spec.id.clone();
                startups.push_back((planned.start_at, id.clone()));
                nodes.insert(id, SimNode::new(planned.spec, rng.random(), Arc::clone(&clock) as Arc<dyn Clock>));
            }
            startups.make_contiguous().sort_by_key(|(at, _)| *at);
            if let Some(c) = stress.chaos.as_ref().filter(|c| c.enabled) {
                chaos = Some(ChaosEngine::new(c.clone(), fleet.startup.clone().unwrap_or_default(), rng.random()));
            }
        }
        Ok(Sim {
            scenario: scenario.clone(),
            seed,
            rng,
            options: options.clone(),
            backend,
            driver,
            clock,
            server: Some(server),
            restart,
            admin,
            admin_token,
            clients,
            stats,
            nodes,
            providers,
            passes,
            sampler: Every::new(metrics_interval, Duration::ZERO),
            startups,
            chaos,
            events: Vec::new(),
            timeline: Vec::new(),
            tally: FailureTally::default(),
            decisions: BTreeMap::new(),
            remediation: RemediationTracker::default(),
            wall_start,
        })
    }

    async fn run(mut self) -> Report {
        // Whatever is due at time zero (the pools' first pass, instant start-ups).
        self.tick().await;
        let mut failure = None;
        let scenario = self.scenario.clone();
        for event in scenario.timeline() {
            self.run_until(event.at.0).await;
            let at = self.driver.now();
            let outcome = self.execute(event).await;
            let ok = outcome.is_ok();
            let detail = match &outcome {
                Ok(detail) => detail.clone(),
                Err(problem) => problem.clone(),
            };
            tracing::info!(at = ?at, action = ?event.action, target = %event.target, ok, "{detail}");
            self.events.push(EventResult {
                at_s: at.as_secs_f64(),
                action: event.action,
                target: event.target.clone(),
                ok,
                detail: detail.clone(),
            });
            if let Err(problem) = outcome {
                failure = Some(format!(
                    "event {:?} {} at {} failed: {problem}",
                    event.action,
                    event.target,
                    bosun_config::duration::format(event.at.0)
                ));
                break;
            }
        }
        if failure.is_none()
            && let Some(stress) = &scenario.stress
        {
            let end = stress.duration.map_or(DEFAULT_STRESS_DURATION, |d| d.0);
            self.run_until(end).await;
        }
        let mut assertions = Vec::new();
        if failure.is_none() {
            // Let the last step's reports land before judging.
            self.flush().await;
            for assertion in &scenario.assertions {
                let result = self.check(assertion.kind, &assertion.target, &assertion.expected.0).await;
                if !result.passed && failure.is_none() {
                    failure = Some(format!(
                        "assertion {} {} expected {} but was {}",
                        assertion.kind, assertion.target, assertion.expected.0, result.actual
                    ));
                }
                assertions.push(result);
            }
        }
        self.sample().await;
        let metrics = scrape_metrics(&self.server().url(), self.admin_token.as_deref()).await;
        let rule_hits = parse_rule_hits(&metrics);
        let simulated = self.driver.now();
        let stuck_settles = self.driver.stuck_settles;
        for node in self.nodes.values_mut() {
            node.stop();
        }
        let rpc = rpc_summary(&self.stats.snapshot());
        let nodes_started = self.nodes.values().filter(|n| n.boots > 0).count() as u64;
        // Machines whose template has a price: what they cost while powered on.
        let priced: Vec<f64> = self
            .nodes
            .values()
            .filter_map(|n| n.spec.price_per_hour.map(|price| price * n.uptime().as_secs_f64() / 3600.0))
            .collect();
        let estimated_cost_usd = (!priced.is_empty()).then(|| priced.iter().sum::<f64>());
        let Sim {
            scenario,
            seed,
            options,
            backend,
            server,
            events,
            timeline,
            tally,
            decisions,
            wall_start,
            driver,
            remediation,
            ..
        } = self;
        let remediation = remediation.finish(simulated.as_secs_f64(), parse_remediation_steps(&metrics));
        // Shutting down waits on timers (in-flight requests, the shutdown timeout): let
        // tokio move the paused clock by itself again.
        drop(driver);
        if let Some(server) = server {
            server.shutdown().await;
        }
        Report::build(crate::report::ReportInput {
            scenario: &scenario,
            seed,
            pace: options.pace,
            backend,
            simulated,
            wall: wall_start.elapsed(),
            failure,
            events,
            assertions,
            timeline,
            tally,
            rule_hits,
            decisions,
            remediation,
            rpc,
            nodes_started,
            stuck_settles,
            estimated_cost_usd,
        })
    }

    /// Moves time to `until`, running whatever falls due on the way.
    async fn run_until(&mut self, until: Duration) {
        while self.driver.now() < until {
            self.driver.step_towards(until).await;
            self.tick().await;
        }
    }

    async fn tick(&mut self) {
        let now = self.driver.now();
        let due: Vec<Pass> =
            self.passes.iter_mut().filter_map(|(pass, every)| every.due(now).then_some(*pass)).collect();
        for pass in due {
            let result = match pass {
                Pass::Flush => self.server().flush().await.map(drop),
                Pass::Liveness => self.server().judge_liveness().await.map(drop),
                Pass::Janitor => self.server().janitor().await,
                Pass::Retention => self.server().retention().await,
                Pass::Pools => self.server().reconcile_pools().await,
            };
            if let Err(error) = result {
                tracing::warn!(%error, ?pass, "server pass failed");
            }
        }
        while self.startups.front().is_some_and(|(at, _)| *at <= now) {
            let (_, id) = self.startups.pop_front().expect("checked");
            self.start_node(&id);
        }
        // The live list is only built when chaos has something due (once a second, or a
        // scheduled cascade, recovery or outage), not on every step.
        if self.chaos.as_ref().is_some_and(|c| c.is_due(now))
            && let Some(mut chaos) = self.chaos.take()
        {
            let live: Vec<&SimNode> = self.nodes.values().filter(|n| n.is_running()).collect();
            let actions = chaos.tick(now, &live, &self.nodes);
            self.chaos = Some(chaos);
            for action in actions {
                self.apply_chaos(action).await;
            }
        }
        if self.sampler.due(now) {
            self.sample().await;
        }
    }

    fn start_node(&mut self, id: &NodeId) {
        let clock = Arc::clone(&self.clock) as Arc<dyn Clock>;
        if let Some(node) = self.nodes.get_mut(id) {
            if node.is_running() {
                return;
            }
            if let Err(error) = node.start(&self.clients, clock) {
                tracing::warn!(%error, node = %id, "cannot start the simulated node");
            }
        }
    }

    async fn flush(&mut self) {
        self.driver.settle().await;
        if let Err(error) = self.server().flush().await {
            tracing::warn!(%error, "flush failed");
        }
    }

    // ---- events ---------------------------------------------------------------------

    async fn execute(&mut self, event: &Event) -> Result<String, String> {
        let p = &event.params;
        let target = event.target.trim();
        match event.action {
            Action::StartFleet => {
                let ids: Vec<NodeId> = self.fleet_targets(target)?;
                for id in &ids {
                    self.start_node(id);
                }
                Ok(format!("started {} nodes", ids.len()))
            }
            Action::StopFleet => {
                let ids = self.fleet_targets(target)?;
                for id in &ids {
                    if let Some(node) = self.nodes.get_mut(id) {
                        node.stop();
                    }
                }
                Ok(format!("stopped {} nodes", ids.len()))
            }
            Action::InjectFailure => {
                let failure: FailureType = p.failure_type.as_deref().unwrap_or_default().parse::<FailureType>()?;
                self.inject(target, failure, p.gpu_index, p.xid_code, p.count, false).await
            }
            Action::RecoverFailure => {
                let failure = match p.failure_type.as_deref() {
                    Some(text) => Some(text.parse::<FailureType>()?),
                    None => None,
                };
                self.recover(target, failure).await
            }
            Action::IssueCommand => self.issue_command(target, event).await,
            Action::WaitForStatus => {
                let expected: ExpectedStatus =
                    p.expected_status.as_deref().unwrap_or_default().parse::<ExpectedStatus>()?;
                let timeout = p.timeout.map_or(DEFAULT_WAIT_TIMEOUT, |t| t.0);
                let deadline = self.driver.now() + timeout;
                loop {
                    let (status, health) = self.node_state(target).await?;
                    if status.is_some_and(|s| matches_expected(expected, s, health)) {
                        return Ok(format!("{target} is {}", describe(status, health)));
                    }
                    if self.driver.now() >= deadline {
                        return Err(format!(
                            "{target} did not become {} within {}; it is {}",
                            p.expected_status.as_deref().unwrap_or_default(),
                            bosun_config::duration::format(timeout),
                            describe(status, health)
                        ));
                    }
                    let next = (self.driver.now() + WAIT_POLL).min(deadline);
                    self.run_until(next).await;
                }
            }
            Action::Wait => Ok("waited".into()),
            Action::Log => {
                let message = p.log_message.as_deref().or(p.message.as_deref()).unwrap_or_default();
                println!("[{:>8.1}s] {message}", self.driver.now().as_secs_f64());
                Ok(message.to_owned())
            }
            Action::Assert => {
                let kind = match p.failure_type.as_deref().map(str::trim) {
                    None | Some("") => AssertionKind::NodeStatus,
                    Some(text) => serde_yaml::from_str(text).map_err(|_| format!("unknown assertion {text:?}"))?,
                };
                self.flush().await;
                let result = self.check(kind, target, p.expected_status.as_deref().unwrap_or_default()).await;
                if result.passed {
                    Ok(format!("{kind} {target}: {}", result.actual))
                } else {
                    Err(format!("{kind} {target} expected {} but was {}", result.expected, result.actual))
                }
            }
            Action::RestartServer => self.restart_server().await,
            Action::ScalePool => {
                let count = p.count.unwrap_or_default();
                let request = v1::ScalePoolRequest { name: target.to_owned(), target: count, ..Default::default() };
                self.admin.scale_pool(request).await.map_err(|e| format!("ScalePool {target}: {e}"))?;
                Ok(format!("pool {target} set to {count}"))
            }
        }
    }

    /// Stops the control plane (it flushes what it buffered) and starts a new one on the
    /// same store and address with new fake providers: their machines lived in the old
    /// process and vanish with it, as in the quick start.
    async fn restart_server(&mut self) -> Result<String, String> {
        if self.restart.location.backend() == bosun_store::Backend::Memory {
            return Err("restart_server needs a store that outlives the server: run with --store sqlite://... or \
                        postgres://..."
                .into());
        }
        let providers = self
            .restart
            .providers(&self.clock, &self.clients, &self.providers)
            .map_err(|e| format!("restart_server: {e}"))?;
        let old = std::mem::replace(&mut self.providers, providers);
        let lost: usize = old.values().map(|p| p.live_count()).sum();
        let Some(server) = self.server.take() else { return Err("restart_server: no control plane runs".into()) };
        // The fake machines live in the server's process: they go down with it.
        for provider in old.values() {
            provider.vanish_all();
        }
        // Shutting down closes connections and the store, which takes real time, not
        // simulated time: wait for it in real time. Only if it hangs on a timer (the
        // shutdown timeout) does simulated time move on.
        let shutting_down = tokio::spawn(server.shutdown());
        let waited = std::time::Instant::now();
        while !shutting_down.is_finished() {
            if waited.elapsed() < RESTART_REAL_WAIT {
                crate::time::real_pause(Duration::from_millis(1)).await;
            } else {
                let next = self.driver.now() + self.driver.step();
                self.driver.step_towards(next).await;
            }
        }
        if let Err(error) = shutting_down.await {
            return Err(format!("restart_server: the old control plane did not stop cleanly: {error}"));
        }
        let listener = tokio::net::TcpListener::bind(self.restart.address)
            .await
            .map_err(|e| format!("restart_server: cannot listen on {} again: {e}", self.restart.address))?;
        let server = self
            .restart
            .start(listener, &self.clock, &self.providers)
            .await
            .map_err(|e| format!("restart_server: {e}"))?;
        self.server = Some(server);
        Ok(format!("control plane restarted; {lost} fake-provider machines were lost with the old process"))
    }

    fn server(&self) -> &ServerHandle {
        self.server.as_ref().expect("the control plane runs except inside restart_server")
    }

    /// `start_fleet`/`stop_fleet` act on one node when given a target, else on the fleet.
    fn fleet_targets(&self, target: &str) -> Result<Vec<NodeId>, String> {
        if target.is_empty() {
            // Stress fleets start on their schedule, not all at once.
            if self.scenario.stress.is_some() && self.scenario.fleet.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(self.nodes.keys().cloned().collect());
        }
        let id: NodeId = target.parse().map_err(|e| format!("{e}"))?;
        if self.nodes.contains_key(&id) { Ok(vec![id]) } else { Err(format!("no fleet node {target:?}")) }
    }

    /// The GPUs and network switch of `target`: a fleet node or a fake-provider machine.
    async fn machine(
        &self,
        target: &str,
    ) -> Result<(Arc<bosun_agent::FakeGpus>, Option<bosun_agent::NetworkSwitch>), String> {
        let id: NodeId = target.parse().map_err(|e| format!("target {target:?}: {e}"))?;
        if let Some(node) = self.nodes.get(&id) {
            return Ok((Arc::clone(&node.gpus), node.switch.clone()));
        }
        for provider in self.providers.values() {
            if let Some(gpus) = provider.gpus_of(&id) {
                let switch =
                    provider.instance_of(&id).and_then(|instance| self.clients.machine_switch(instance.as_str()));
                return Ok((gpus, switch));
            }
        }
        Err(format!("{target:?} is neither a fleet node, a running fake-provider machine nor a fake provider"))
    }

    async fn inject(
        &mut self,
        target: &str,
        failure: FailureType,
        gpu_index: Option<i64>,
        xid: Option<u32>,
        count: Option<u32>,
        cascading: bool,
    ) -> Result<String, String> {
        if let Some(provider) = self.providers.get(target) {
            return match failure {
                FailureType::ProviderOutage => {
                    provider.begin_outage(ProviderError::Unavailable {
                        provider: target.to_owned(),
                        message: "simulated outage".into(),
                    });
                    self.tally.outages += 1;
                    Ok(format!("provider {target} is down"))
                }
                FailureType::Gpu(FaultKind::BootFailure) => {
                    let count = count.unwrap_or(1);
                    provider.fail_boot_next(count);
                    self.tally.record("boot_failure", None, false);
                    Ok(format!("the next {count} machines of {target} will not boot"))
                }
                other => Err(format!("{other} cannot be injected into provider {target}; use a node")),
            };
        }
        if failure == FailureType::ProviderOutage {
            return Err(format!("provider_outage needs a fake provider as its target; {target:?} is not one"));
        }
        let (gpus, switch) = self.machine(target).await?;
        let gpu_count = gpus.count();
        let gpu = match gpu_index {
            Some(i) if i >= 0 => u32::try_from(i).map_err(|_| format!("gpu_index {i} is too large"))?,
            _ => self.rng.random_range(0..gpu_count.max(1)),
        };
        let fault = match failure {
            FailureType::Network => {
                let switch = switch.ok_or_else(|| format!("{target} is not running; its network cannot fail"))?;
                switch.disconnect();
                None
            }
            FailureType::ProviderOutage => unreachable!("handled above"),
            FailureType::Gpu(kind) => Some(match kind {
                FaultKind::Xid => Fault::Xid { gpu, code: xid.unwrap_or(79) },
                FaultKind::Thermal => {
                    Fault::Thermal { gpu: gpu_index.filter(|i| *i >= 0).map(|_| gpu), celsius: FAILURE_CELSIUS }
                }
                FaultKind::EccSingleBit => Fault::EccSingleBit { gpu, count: 1_000 },
                FaultKind::EccDoubleBit => Fault::EccDoubleBit { gpu },
                FaultKind::Nvlink => Fault::Nvlink { gpu, link: 0 },
                FaultKind::Pcie => Fault::Pcie { gpu },
                FaultKind::Power => Fault::PowerBrake { gpu },
                FaultKind::DeviceError => Fault::DeviceError { gpu },
                FaultKind::BackendFailure => Fault::BackendFailure,
                FaultKind::BootFailure => Fault::BootFailure,
            }),
        };
        if let Some(fault) = &fault {
            gpus.inject(fault.clone()).map_err(|e| format!("{target}: {e}"))?;
        }
        // A boot failure shows when the machine next boots: reboot it into the failure.
        if failure == FailureType::Gpu(FaultKind::BootFailure)
            && let Ok(id) = target.parse::<NodeId>()
            && let Some(node) = self.nodes.get_mut(&id)
            && node.is_running()
        {
            node.stop();
            self.start_node(&id);
        }
        let xid_code = matches!(fault, Some(Fault::Xid { .. })).then(|| xid.unwrap_or(79));
        self.tally.record(&failure.to_string(), xid_code, cascading);
        let pool_machine = target.parse::<NodeId>().is_ok_and(|id| !self.nodes.contains_key(&id));
        self.remediation.injected(target, xid_code, self.clock.now(), pool_machine);
        Ok(match fault {
            Some(fault) => format!("{target}: {fault}"),
            None => format!("{target}: network down"),
        })
    }

    async fn recover(&mut self, target: &str, failure: Option<FailureType>) -> Result<String, String> {
        if let Some(provider) = self.providers.get(target) {
            provider.end_outage();
            return Ok(format!("provider {target} is back"));
        }
        let (gpus, switch) = self.machine(target).await?;
        match failure {
            Some(FailureType::Network) => {
                if let Some(switch) = switch {
                    switch.reconnect();
                }
            }
            Some(FailureType::Gpu(kind)) => gpus.recover(kind),
            Some(FailureType::ProviderOutage) => {
                return Err(format!("{target:?} is not a fake provider; provider_outage has nothing to recover"));
            }
            None => {
                gpus.recover_all();
                if let Some(switch) = switch {
                    switch.reconnect();
                }
            }
        }
        self.tally.recoveries += 1;
        Ok(format!("{target}: recovered {}", failure.map_or("everything".to_owned(), |f| f.to_string())))
    }

    async fn issue_command(&mut self, target: &str, event: &Event) -> Result<String, String> {
        let p = &event.params;
        let text = p.command_type.as_deref().unwrap_or_default().trim();
        let kind: Result<bosun_core::CommandKind, _> = match text.to_ascii_lowercase().as_str() {
            "diagnose" | "diagnostic" => "RUN_DIAGNOSTIC".parse(),
            _ => text.parse(),
        };
        let kind = kind.map_err(|e| e.to_string())?;
        let (wire, custom_name) = convert::command_type(&kind);
        let parameters = p.command_args.iter().filter_map(|(k, v)| scalar_text(v).map(|v| (k.clone(), v))).collect();
        let request = v1::IssueCommandRequest {
            node_id: target.to_owned(),
            r#type: wire.into(),
            custom_name,
            parameters,
            reason: format!("scenario {}", self.scenario.name),
            ..Default::default()
        };
        let response =
            self.admin.issue_command(request).await.map_err(|e| format!("IssueCommand {kind} {target}: {e}"))?;
        let id = response.into_owned().command.as_option().map(|c| c.command_id.clone()).unwrap_or_default();
        Ok(format!("{kind} issued to {target} (command {id})"))
    }

    // ---- reading the control plane ----------------------------------------------------

    async fn get_node(&self, target: &str) -> Result<Option<v1::Node>, String> {
        let request = v1::GetNodeRequest { node_id: target.to_owned(), ..Default::default() };
        match self.admin.get_node(request).await {
            Ok(response) => Ok(response.into_owned().node.into_option()),
            Err(error) if error.code == connectrpc::ErrorCode::NotFound => Ok(None),
            Err(error) => Err(format!("GetNode {target}: {error}")),
        }
    }

    async fn node_state(&self, target: &str) -> Result<(Option<NodeStatus>, Option<Health>), String> {
        Ok(match self.get_node(target).await? {
            Some(node) => (
                convert::node_status_filter("status", node.status).ok().flatten(),
                convert::health_from("health", node.health).ok(),
            ),
            None => (None, None),
        })
    }

    /// The pools' instances that count toward their size (every page).
    async fn live_instances(&self) -> Vec<v1::Instance> {
        let states = [
            v1::InstanceState::INSTANCE_STATE_PROVISIONING,
            v1::InstanceState::INSTANCE_STATE_PENDING_REGISTRATION,
            v1::InstanceState::INSTANCE_STATE_RUNNING,
        ];
        let mut instances = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = v1::ListInstancesRequest {
                states: states.iter().map(|s| (*s).into()).collect(),
                page_token,
                ..Default::default()
            };
            match self.admin.list_instances(request).await {
                Ok(page) => {
                    let page = page.into_owned();
                    instances.extend(page.instances);
                    if page.next_page_token.is_empty() {
                        return instances;
                    }
                    page_token = page.next_page_token;
                }
                Err(error) => {
                    tracing::warn!(%error, "listing the instances failed");
                    return instances;
                }
            }
        }
    }

    async fn list_nodes(&self) -> Result<Vec<v1::Node>, String> {
        let mut nodes = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = v1::ListNodesRequest { page_size: 5_000, page_token, ..Default::default() };
            let response = self.admin.list_nodes(request).await.map_err(|e| format!("ListNodes: {e}"))?.into_owned();
            nodes.extend(response.nodes);
            if response.next_page_token.is_empty() {
                return Ok(nodes);
            }
            page_token = response.next_page_token;
        }
    }

    async fn check(&self, kind: AssertionKind, target: &str, expected: &str) -> AssertionResult {
        let result = |passed: bool, actual: String| AssertionResult {
            kind,
            target: target.to_owned(),
            expected: expected.to_owned(),
            actual,
            passed,
        };
        match kind {
            AssertionKind::NodeStatus | AssertionKind::HealthStatus => {
                let wanted = match expected.parse::<ExpectedStatus>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.node_state(target).await {
                    Ok((Some(status), health)) => {
                        let passed = match (kind, wanted) {
                            (AssertionKind::HealthStatus, ExpectedStatus::Health(h)) => health == Some(h),
                            _ => matches_expected(wanted, status, health),
                        };
                        // The property asserted: a health for health_status (or an
                        // expected health), else the status.
                        let actual = match (kind, wanted) {
                            (AssertionKind::HealthStatus, _) | (_, ExpectedStatus::Health(_)) => {
                                health.map_or("unknown", |h| h.as_str()).to_ascii_lowercase()
                            }
                            _ => status.as_str().to_ascii_lowercase(),
                        };
                        result(passed, actual)
                    }
                    Ok((None, _)) => result(false, "not registered".into()),
                    Err(e) => result(false, e),
                }
            }
            AssertionKind::Remediation => {
                let wanted = match expected.parse::<RemediationExpectation>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.get_node(target).await {
                    Ok(Some(node)) => {
                        let step = node.remediation.as_option().map(|r| {
                            let action = convert::remediation_action_from("step", r.step)
                                .unwrap_or(bosun_core::RemediationAction::None);
                            (action, r.state.clone())
                        });
                        let passed = match (wanted, &step) {
                            (RemediationExpectation::None, None) => true,
                            (RemediationExpectation::Step(want, state), Some((action, actual))) => {
                                want == *action && state.is_none_or(|s| s.as_str() == actual)
                            }
                            _ => false,
                        };
                        let actual = step.map_or_else(|| "none".to_owned(), |(a, s)| format!("{a} {s}"));
                        result(passed, actual)
                    }
                    Ok(None) => result(false, "not registered".into()),
                    Err(e) => result(false, e),
                }
            }
            AssertionKind::NodeCount => {
                let wanted = match expected.parse::<CountExpectation>() {
                    Ok(w) => w,
                    Err(e) => return result(false, e),
                };
                match self.list_nodes().await {
                    Ok(nodes) => match count_matching(&nodes, target) {
                        Ok(count) => result(wanted.holds(count), count.to_string()),
                        Err(e) => result(false, e),
                    },
                    Err(e) => result(false, e),
                }
            }
        }
    }

    async fn sample(&mut self) {
        let nodes = match self.list_nodes().await {
            Ok(nodes) => nodes,
            Err(error) => {
                tracing::warn!(%error, "sampling the fleet failed");
                return;
            }
        };
        let mut sample = Sample { t_s: self.driver.now().as_secs_f64(), ..Sample::default() };
        let mut unhealthy = Vec::new();
        for node in &nodes {
            let status = convert::node_status_filter("status", node.status).ok().flatten();
            let health = convert::health_from("health", node.health).unwrap_or(Health::Unknown);
            if status == Some(NodeStatus::Terminated) {
                continue;
            }
            sample.nodes += 1;
            if let Some(status) = status {
                *sample.by_status.entry(status.as_str().to_owned()).or_default() += 1;
                if status == NodeStatus::Unhealthy {
                    unhealthy.push(node.node_id.clone());
                }
            }
            *sample.by_health.entry(health.as_str().to_owned()).or_default() += 1;
        }
        sample.failures_injected = self.tally.total;
        sample.recoveries = self.tally.recoveries;
        if self.options.progress
            && self.timeline.last().is_none_or(|last| sample.t_s.div_euclid(60.0) > last.t_s.div_euclid(60.0))
        {
            let count = |name: &str| sample.by_status.get(name).copied().unwrap_or(0);
            eprintln!(
                "[{:>7.0}s] {} nodes: {} active, {} unhealthy; {} failures injected ({:.0} s wall)",
                sample.t_s,
                sample.nodes,
                count("ACTIVE"),
                count("UNHEALTHY"),
                sample.failures_injected,
                self.wall_start.elapsed().as_secs_f64()
            );
        }
        self.timeline.push(sample);
        let pools = match self.admin.list_pools(v1::ListPoolsRequest::default()).await {
            Ok(response) => response.into_owned().pools,
            Err(error) => {
                tracing::warn!(%error, "listing the pools failed");
                Vec::new()
            }
        };
        for pool in &pools {
            if let Some(d) = pool.last_decision.as_option() {
                let at = d.at.as_option().and_then(|at| convert::from_timestamp("at", at).ok()).unwrap_or(sim_epoch());
                let t_s = at.saturating_since(sim_epoch()).as_secs_f64();
                let list = self.decisions.entry(pool.name.clone()).or_default();
                if list.last().is_none_or(|last: &Decision| last.t_s != t_s) {
                    list.push(Decision { t_s, current: d.current, target: d.target, reason: d.reason.clone() });
                }
            }
        }
        let instances = if pools.is_empty() { Vec::new() } else { self.live_instances().await };
        self.remediation.observe(self.driver.now().as_secs_f64(), &nodes, &instances, &pools);
        // replace_fatal: an UNHEALTHY node (as the control plane judged it) is powered off
        // and a successor boots after a cold start.
        if let Some(chaos) = self.chaos.as_mut() {
            let now = self.driver.now();
            for id in unhealthy {
                if let Ok(id) = id.parse::<NodeId>()
                    && let Some(node) = self.nodes.get(&id)
                    && node.is_running()
                {
                    chaos.replace_later(&id, now);
                }
            }
        }
    }

    async fn apply_chaos(&mut self, action: ChaosAction) {
        match action {
            ChaosAction::Inject { node, failure, xid, cascading } => {
                let target = node.to_string();
                if let Err(error) = self.inject(&target, failure, None, xid, None, cascading).await {
                    tracing::debug!(%error, "chaos injection skipped");
                }
            }
            ChaosAction::Recover { node, failure } => {
                let _ = self.recover(node.as_str(), failure).await;
            }
            ChaosAction::OutageStarted { name } => {
                self.tally.outages += 1;
                tracing::info!(outage = %name, "scheduled outage begins");
            }
            ChaosAction::Replace { old, new } => {
                if let Some(node) = self.nodes.get_mut(&old) {
                    node.stop();
                    let mut spec = node.spec.clone();
                    spec.id = new.clone();
                    let seed = self.rng.random();
                    self.nodes.insert(new.clone(), SimNode::new(spec, seed, Arc::clone(&self.clock) as Arc<dyn Clock>));
                    self.start_node(&new);
                    self.tally.replacements += 1;
                }
            }
        }
    }
}

fn matches_expected(expected: ExpectedStatus, status: NodeStatus, health: Option<Health>) -> bool {
    match expected {
        ExpectedStatus::Status(s) => s == status,
        ExpectedStatus::Health(h) => health == Some(h),
    }
}

fn describe(status: Option<NodeStatus>, health: Option<Health>) -> String {
    match (status, health) {
        (Some(s), Some(h)) => format!("{} ({})", s.as_str().to_ascii_lowercase(), h.as_str().to_ascii_lowercase()),
        (Some(s), None) => s.as_str().to_ascii_lowercase(),
        (None, _) => "not registered".into(),
    }
}

/// Nodes `target` selects for `node_count`: empty = every node not TERMINATED;
/// `pool:NAME`; a status (`unhealthy`); a health (`healthy`).
fn count_matching(nodes: &[v1::Node], target: &str) -> Result<u64, String> {
    let target = target.trim();
    let status_of = |n: &v1::Node| convert::node_status_filter("status", n.status).ok().flatten();
    let live = |n: &&v1::Node| status_of(n) != Some(NodeStatus::Terminated);
    let count = if target.is_empty() || target.eq_ignore_ascii_case("all") {
        nodes.iter().filter(live).count()
    } else if let Some(pool) = target.strip_prefix("pool:") {
        nodes.iter().filter(live).filter(|n| n.pool == pool).count()
    } else {
        match target
            .parse::<ExpectedStatus>()
            .map_err(|_| format!("node_count target {target:?} is not empty, pool:NAME, a status or a health"))?
        {
            ExpectedStatus::Status(s) => nodes.iter().filter(|n| status_of(n) == Some(s)).count(),
            ExpectedStatus::Health(h) => {
                nodes.iter().filter(live).filter(|n| convert::health_from("health", n.health).ok() == Some(h)).count()
            }
        }
    };
    Ok(count as u64)
}

/// Longer than any scenario: connection timeouts that never fire.
const CONNECTION_TIMEOUTS_OFF: Duration = Duration::from_secs(365 * 24 * 3600);

/// The control plane's configuration: the scenario's `config` document, with the
/// Navarch simulator's agent intervals where it sets none.
fn control_plane_config(scenario: &Scenario) -> Result<Config, SimError> {
    let mut document = scenario.config.clone().unwrap_or(serde_yaml::Value::Mapping(Default::default()));
    let serde_yaml::Value::Mapping(root) = &mut document else {
        return Err(SimError::Config("config must be a mapping (a bosun configuration document)".into()));
    };
    let server = root
        .entry(serde_yaml::Value::String("server".into()))
        .or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    let serde_yaml::Value::Mapping(server) = server else {
        return Err(SimError::Config("config.server must be a mapping".into()));
    };
    for (key, value) in
        [("heartbeat_interval", SIM_HEARTBEAT_INTERVAL), ("health_check_interval", SIM_HEALTH_CHECK_INTERVAL)]
    {
        server.entry(serde_yaml::Value::String(key.into())).or_insert_with(|| serde_yaml::Value::String(value.into()));
    }
    let text = serde_yaml::to_string(&document).map_err(|e| SimError::Config(e.to_string()))?;
    Config::from_yaml_str(&text, |name| std::env::var(name).ok()).map_err(|e| SimError::Config(e.to_string()))
}

/// A seed from the time of day, for scenarios that ask for none (reported, so the run
/// can be repeated).
fn time_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}
