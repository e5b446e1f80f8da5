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
//!
//! `events` runs events and chaos's actions, `observe` reads the fleet back (assertions,
//! the sampler), `restart` stops and starts the control plane, `replicas` runs several
//! (`replicas: N`: elections, `kill_leader`, `restart_replica`).

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
use bosun_server::{PoolMachines, PoolsConfig, Server, ServerHandle, Settings};
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

mod events;
mod observe;
mod replicas;
mod restart;
mod runs;

use observe::{describe, matches_expected};
use replicas::{LeadershipLog, Replica};
use restart::RestartPlan;

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
    /// Replicas' election steps (only with several).
    Elect,
    Flush,
    Liveness,
    Janitor,
    Retention,
    Pools,
    /// Runbook runs moved on.
    Runs,
}

struct Sim {
    scenario: Scenario,
    seed: u64,
    rng: SmallRng,
    options: RunOptions,
    backend: String,
    driver: TimeDriver,
    clock: Arc<SimClock>,
    /// The control plane: one replica, or `replicas: N` of them.
    replicas: Vec<Replica>,
    /// Who led when, and failovers after `kill_leader`.
    leadership: LeadershipLog,
    /// What it takes to start the control plane again (`restart_server`, `restart_replica`).
    restart: RestartPlan,
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
        let config = scenario.control_plane_config().map_err(|e| SimError::Config(e.to_string()))?;
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

        let replica_count = scenario.replicas.max(1);
        check_replicas_store(replica_count, location)?;
        let mut listeners = Vec::new();
        for _ in 0..replica_count {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
        }
        let addresses = listeners.iter().map(tokio::net::TcpListener::local_addr).collect::<Result<Vec<_>, _>>()?;
        let urls: Vec<String> = addresses.iter().map(|address| format!("http://{address}")).collect();
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
        let clients = ClientPool::new(urls.clone(), agent_token.clone(), Arc::clone(&stats), in_flight.clone());
        let restart = RestartPlan {
            location: location.clone(),
            config: config.clone(),
            settings: settings.clone(),
            server_urls: urls.join(","),
            agent_token,
        };
        // The providers (a cloud) outlive any replica: every replica manages the same ones.
        let providers = restart.providers(&clock, &clients, &BTreeMap::new())?;
        let mut replicas = Vec::new();
        for (index, (listener, address)) in (1..).zip(listeners.into_iter().zip(addresses)) {
            let mut replica = Replica::new(index, address, admin_token.as_deref())?;
            let elected = (replica_count > 1).then_some(replica.name.as_str());
            replica.server = Some(restart.start(listener, &clock, &providers, elected).await?);
            replicas.push(replica);
        }

        let mut passes = Vec::new();
        if replica_count > 1 {
            let renew_every = bosun_server::ElectionSettings::DEFAULT_RENEW_EVERY;
            passes.push((Pass::Elect, Every::new(renew_every, Duration::ZERO)));
        }
        passes.extend([
            (Pass::Flush, Every::new(settings.flush_interval, settings.flush_interval)),
            (Pass::Liveness, Every::new(settings.liveness_interval, settings.liveness_interval)),
            (Pass::Janitor, Every::new(settings.janitor_interval, settings.janitor_interval)),
            (Pass::Retention, Every::new(settings.retention_interval, settings.retention_interval)),
            (Pass::Runs, Every::new(settings.run_interval, settings.run_interval)),
        ]);
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
            replicas,
            leadership: LeadershipLog::default(),
            restart,
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
                    "event {} {} at {} failed: {problem}",
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
        let mut metrics = Vec::new();
        for server in self.live() {
            metrics.push(scrape_metrics(&server.url(), self.admin_token.as_deref()).await);
        }
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
            replicas,
            leadership,
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
        for server in replicas.into_iter().filter_map(|r| r.server) {
            server.shutdown().await;
        }
        let replicas = leadership.report(scenario.replicas);
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
            replicas,
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
            if pass == Pass::Elect {
                self.elect().await;
                continue;
            }
            // On every replica: followers' leader-only passes return at once.
            for server in self.live() {
                let result = match pass {
                    Pass::Elect => Ok(()),
                    Pass::Flush => server.flush().await.map(drop),
                    Pass::Liveness => server.judge_liveness().await.map(drop),
                    Pass::Janitor => server.janitor().await,
                    Pass::Retention => server.retention().await,
                    Pass::Pools => server.reconcile_pools().await,
                    Pass::Runs => server.advance_runs().await.map(drop),
                };
                if let Err(error) = result {
                    tracing::warn!(%error, ?pass, "server pass failed");
                }
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
        for server in self.live() {
            if let Err(error) = server.flush().await {
                tracing::warn!(%error, "flush failed");
            }
        }
    }

    // ---- events ---------------------------------------------------------------------

    // ---- reading the control plane ----------------------------------------------------
}

/// Several replicas share a store only on PostgreSQL (as several `bosun server` processes
/// would); a SQLite file serves one server.
fn check_replicas_store(replicas: u32, location: &StoreLocation) -> Result<(), SimError> {
    if replicas > 1 && location.backend() != bosun_store::Backend::Postgres {
        return Err(SimError::Config(format!(
            "replicas: {replicas} needs a store several servers share: run with --store postgres://... ({} serves \
             one server)",
            location.backend()
        )));
    }
    Ok(())
}

/// Longer than any scenario: connection timeouts that never fire.
const CONNECTION_TIMEOUTS_OFF: Duration = Duration::from_secs(365 * 24 * 3600);

/// A seed from the time of day, for scenarios that ask for none (reported, so the run
/// can be repeated).
fn time_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}
