//! Several replicas on one store: one leader through the lease, failover by observation on
//! each replica's own (fake) clock, fenced writes of a deposed leader, leader-only pool
//! work that never provisions twice, and liveness judged from every replica's heartbeats.
//!
//! Replicas run in-process with their loops off; the test drives elections and passes
//! through the handles while advancing the shared fake clock. On memory the replicas share
//! one store object; on PostgreSQL each opens its own connection pool to one database.

use std::sync::Arc;
use std::time::Duration;

use bosun_agent::ControlPlane as _;
use bosun_core::{Clock, FakeClock, LeaseName, MetricSample, PoolSpec, ReplicaId};
use bosun_provider::fake::{ControlPlaneFactory, FakeProvider, FakeSettings};
use bosun_provider::{Bootstrap, Provider};
use bosun_server::{ElectionSettings, PoolMachines, PoolsConfig, Server, ServerHandle, Transition};
use bosun_store::testing::{TestLocation, test_options};
use bosun_store::{Backend, InstanceFilter, PageRequest, SharedStore, StoreError, WriteBatch, open_store};
use tokio::net::TcpListener;

use crate::harness::{AGENTS, settings};

macro_rules! on_shared_backends {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(bosun_store::Backend::Memory).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(bosun_store::Backend::Postgres).await;
                }
            )+
        }
    };
}

on_shared_backends!(
    exactly_one_replica_leads_and_a_follower_takes_over_after_the_lease,
    a_deposed_leader_stops_leading_before_the_lease_ends_and_its_writes_are_fenced,
    twenty_failovers_provision_nothing_twice,
    nodes_heartbeating_only_to_followers_are_never_judged_silent,
    a_leader_shutting_down_hands_over_at_the_next_look,
    a_replica_that_loses_its_store_stops_leading_and_recovers,
    runbook_runs_move_on_the_leader_only_and_a_new_leader_resumes_them,
);

const RENEW: Duration = Duration::from_secs(2);
const LEASE: Duration = Duration::from_secs(10);

fn spec(min: u32) -> PoolSpec {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", min, 10);
    spec.region = "local".into();
    spec
}

struct Replicas {
    clock: Arc<FakeClock>,
    location: TestLocation,
    /// Memory: the one store every replica shares.
    shared: Option<SharedStore>,
    provider: Arc<FakeProvider>,
    pool: Option<PoolSpec>,
    servers: Vec<Option<ServerHandle>>,
    started: usize,
}

impl Replicas {
    async fn start(backend: Backend, count: usize, pool: Option<PoolSpec>) -> Option<Replicas> {
        let location = TestLocation::new(backend).await?;
        let clock = Arc::new(FakeClock::at_default_epoch());
        let shared = match backend {
            Backend::Memory => Some(open_store(&location.location, test_options(clock.clone())).await.expect("open")),
            _ => {
                let database = bosun_store::Database::connect(&location.location).await.expect("connect");
                database.migrate_up().await.expect("migrate");
                database.close().await;
                None
            }
        };
        // Machines never boot here: instances stay provisioning, which is what the pool
        // counts while machines boot.
        let factory: ControlPlaneFactory = Arc::new(|_| {
            let client = bosun_api::AgentClient::new("http://127.0.0.1:9", None).map_err(|e| e.to_string())?;
            Ok(Arc::new(client) as Arc<dyn bosun_agent::ControlPlane>)
        });
        let fake = FakeSettings { boot_delay: Duration::from_secs(86_400 * 365), ..FakeSettings::default() };
        let provider = Arc::new(FakeProvider::new("fake", fake, clock.clone(), factory));
        let mut replicas = Replicas { clock, location, shared, provider, pool, servers: Vec::new(), started: 0 };
        for _ in 0..count {
            let server = replicas.start_one().await;
            replicas.servers.push(Some(server));
        }
        Some(replicas)
    }

    /// A new replica process (a fresh replica id) on the store.
    async fn start_one(&mut self) -> ServerHandle {
        self.started += 1;
        let store = match &self.shared {
            Some(store) => store.clone(),
            None => open_store(&self.location.location, test_options(self.clock.clone())).await.expect("open store"),
        };
        let mut election = ElectionSettings::new(ReplicaId::new(format!("r{}", self.started)).expect("valid"));
        election.lease = LEASE;
        election.renew_every = RENEW;
        let mut settings = settings();
        settings.election = Some(election);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let pools = self.pool.clone().map(|spec| PoolsConfig {
            pools: vec![("training".parse().expect("valid"), spec)],
            providers: [("fake".to_owned(), self.provider.clone() as Arc<dyn Provider>)].into_iter().collect(),
            bootstrap: Bootstrap { server_url: format!("http://{address}"), token: Some(AGENTS.to_owned()) },
            machines: [("training".parse().expect("valid"), PoolMachines::default())].into_iter().collect(),
        });
        let clock: Arc<dyn Clock> = self.clock.clone();
        Server::start_with_pools(listener, store, clock, settings, false, pools).await.expect("replica starts")
    }

    fn alive(&self) -> impl Iterator<Item = (usize, &ServerHandle)> {
        self.servers.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// One election step on every live replica except `skip`.
    async fn tick(&self, skip: Option<usize>) -> Vec<(usize, Transition)> {
        let mut transitions = Vec::new();
        for (i, server) in self.alive() {
            if Some(i) == skip {
                continue;
            }
            let transition = server.elect().await.expect("an elected replica");
            if transition != Transition::None {
                transitions.push((i, transition));
            }
        }
        transitions
    }

    fn leaders(&self) -> Vec<usize> {
        self.alive().filter(|(_, s)| s.is_leader()).map(|(i, _)| i).collect()
    }

    /// Advances the clock by one renew interval and ticks every live replica but `skip`.
    async fn step(&self, skip: Option<usize>) -> Vec<(usize, Transition)> {
        self.clock.advance(RENEW);
        self.tick(skip).await
    }

    /// A crash: the replica stops ticking and serving (no release).
    fn kill(&mut self, index: usize) -> ServerHandle {
        self.servers[index].take().expect("alive")
    }

    async fn store(&self) -> SharedStore {
        self.alive().next().expect("a live replica").1.store()
    }

    async fn stop(mut self) {
        for server in self.servers.iter_mut().filter_map(Option::take) {
            server.shutdown().await;
        }
    }
}

fn leader_lease() -> LeaseName {
    "leader".parse().expect("valid")
}

async fn exactly_one_replica_leads_and_a_follower_takes_over_after_the_lease(backend: Backend) {
    let Some(mut replicas) = Replicas::start(backend, 3, None).await else { return };
    let elected = replicas.tick(None).await;
    assert_eq!(elected, [(0, Transition::Elected { epoch: 1 })], "the first to look takes the free lease");
    for _ in 0..5 {
        replicas.step(None).await;
        assert_eq!(replicas.leaders(), [0], "followers never take a lease that is renewed");
    }
    // The leader crashes. Followers see the lease unchanged; after a whole lease duration
    // on their clocks one takes over, at the next epoch.
    let crashed = replicas.kill(0);
    let mut waited = Duration::ZERO;
    let takeover = loop {
        let transitions = replicas.step(None).await;
        waited += RENEW;
        if let Some(t) = transitions.first() {
            break t.clone();
        }
        // Each follower's election loop looks again exactly when its wait ends.
        for follower in [1, 2] {
            let due = replicas.servers[follower].as_ref().expect("alive").takeover_due_in();
            assert_eq!(due, Some(LEASE.saturating_sub(waited)), "replica {follower} after {waited:?}");
        }
        assert!(waited <= LEASE + 2 * RENEW, "no take-over after {waited:?}");
    };
    assert_eq!(takeover.1, Transition::Elected { epoch: 2 });
    assert!(waited >= LEASE, "a follower waited out the lease ({waited:?})");
    assert_eq!(replicas.leaders().len(), 1, "exactly one leader");
    let leader = replicas.leaders()[0];
    assert_eq!(replicas.servers[leader].as_ref().expect("alive").takeover_due_in(), None, "a leader waits for nobody");
    let store = replicas.store().await;
    let lease = store.lease(&leader_lease()).await.expect("read").expect("held");
    assert_eq!(lease.epoch, 2);
    println!("failover: crash to new leader in {waited:?} of fake time (lease {LEASE:?}, renew every {RENEW:?})");
    drop(crashed);
    replicas.stop().await;
}

async fn a_deposed_leader_stops_leading_before_the_lease_ends_and_its_writes_are_fenced(backend: Backend) {
    let Some(mut replicas) = Replicas::start(backend, 2, None).await else { return };
    replicas.tick(None).await;
    let store = replicas.store().await;
    let old_fence = store.lease(&leader_lease()).await.expect("read").expect("held").fence().expect("held");
    // The leader stops renewing (a stalled process): it stops leading before anyone may
    // take over.
    let mut stalled_for = Duration::ZERO;
    while replicas.servers[0].as_ref().expect("alive").is_leader() {
        replicas.step(Some(0)).await;
        stalled_for += RENEW;
        assert!(stalled_for < LEASE, "the stalled leader still leads after {stalled_for:?}");
    }
    assert!(replicas.leaders().is_empty(), "nobody leads in the safety margin");
    while replicas.leaders().is_empty() {
        replicas.step(Some(0)).await;
    }
    assert_eq!(replicas.leaders(), [1]);
    // The stalled leader wakes with a pass it had started: its writes are refused.
    let late = store
        .commit(
            WriteBatch::new(bosun_core::Actor::system("pool-reconciler"), "late pass")
                .fenced(old_fence)
                .create_pool(bosun_core::Pool::new("late".parse().expect("valid"), spec(1))),
        )
        .await;
    assert!(matches!(late, Err(StoreError::Fenced { .. })), "{late:?}");
    assert!(matches!(store.pool(&"late".parse().expect("valid")).await, Err(StoreError::NotFound { .. })));
    // Its next election step finds the lease moved on and makes it a follower for good.
    let transition = replicas.servers[0].as_ref().expect("alive").elect().await.expect("elected replica");
    assert_eq!(transition, Transition::Deposed { reason: "the lease moved on: epoch 2 is held by r2".into() });
    assert!(!replicas.servers[0].as_ref().expect("alive").is_leader());
    let _ = replicas.kill(0);
    replicas.stop().await;
}

async fn twenty_failovers_provision_nothing_twice(backend: Backend) {
    let target = 3;
    let Some(mut replicas) = Replicas::start(backend, 3, Some(spec(target))).await else { return };
    for cycle in 0..20 {
        // Whoever leads reconciles; followers' passes do nothing.
        while replicas.leaders().is_empty() {
            replicas.step(None).await;
        }
        for (_, server) in replicas.alive() {
            server.reconcile_pools().await.expect("reconcile");
        }
        assert_eq!(replicas.provider.live_count(), target as usize, "cycle {cycle}: the pool is at its target");
        // The leader crashes and a new process replaces it.
        let leader = replicas.leaders()[0];
        let _crashed = replicas.kill(leader);
        let fresh = replicas.start_one().await;
        replicas.servers[leader] = Some(fresh);
    }
    let store = replicas.store().await;
    let instances = bosun_store::all_pages(|page: PageRequest| {
        let store = store.clone();
        async move { store.list_instances(&InstanceFilter::default(), &page).await }
    })
    .await
    .expect("instances");
    assert_eq!(instances.len(), target as usize, "no instance provisioned twice over 20 failovers");
    assert_eq!(replicas.provider.live_count(), target as usize);
    let lease = store.lease(&leader_lease()).await.expect("read").expect("held");
    assert_eq!(lease.epoch, 20, "one epoch per leader: twenty leaders, the last one crashed");
    println!(
        "20 failovers: {} instances, {} machines, epoch {}",
        instances.len(),
        replicas.provider.live_count(),
        lease.epoch
    );
    replicas.stop().await;
}

async fn nodes_heartbeating_only_to_followers_are_never_judged_silent(backend: Backend) {
    let Some(replicas) = Replicas::start(backend, 2, None).await else { return };
    replicas.tick(None).await;
    let (leader, follower) =
        (replicas.servers[0].as_ref().expect("alive"), replicas.servers[1].as_ref().expect("alive"));
    assert!(leader.is_leader() && !follower.is_leader());
    let agent = bosun_api::AgentClient::new(&follower.url(), Some(AGENTS.to_owned())).expect("client");
    for node in ["heard", "silent"] {
        agent.register(&crate::harness::registration(node), None).await.expect("register through the follower");
    }
    let settings = crate::harness::settings();
    let mut elapsed = Duration::ZERO;
    // Past the start-up grace and a new leader's wait, and two timeouts more.
    while elapsed < settings.startup_grace + 3 * settings.heartbeat_timeout {
        replicas.step(None).await;
        elapsed += RENEW;
        let sample = MetricSample {
            node_id: "heard".parse().expect("valid"),
            at: replicas.clock.now(),
            cpu_percent: 1.0,
            memory_percent: 1.0,
            gpus: vec![],
        };
        agent.heartbeat(&sample).await.expect("heartbeat to the follower");
        follower.flush().await.expect("the follower writes its heartbeats");
        let marked = leader.judge_liveness().await.expect("judge");
        assert!(
            !marked.contains(&"heard".parse().expect("valid")),
            "after {elapsed:?}: the leader judged a node the follower hears"
        );
    }
    let store = replicas.store().await;
    let heard = store.node(&"heard".parse().expect("valid")).await.expect("node");
    let silent = store.node(&"silent".parse().expect("valid")).await.expect("node");
    assert_eq!(heard.status, bosun_core::NodeStatus::Active);
    assert_eq!(silent.status, bosun_core::NodeStatus::Unhealthy, "the leader does judge: a silent node is marked");
    replicas.stop().await;
}

async fn a_leader_shutting_down_hands_over_at_the_next_look(backend: Backend) {
    // Shutting a server down closes its store, which memory's replicas share: memory is one
    // process by nature.
    if backend == Backend::Memory {
        return;
    }
    let Some(mut replicas) = Replicas::start(backend, 2, None).await else { return };
    replicas.tick(None).await;
    assert_eq!(replicas.leaders(), [0]);
    // SIGTERM: the leader finishes, writes, and releases the lease.
    replicas.kill(0).shutdown().await;
    let transitions = replicas.step(None).await;
    assert_eq!(transitions, [(1, Transition::Elected { epoch: 2 })], "taken at the first look, within one renew");
    replicas.stop().await;
}

/// `GET /readyz` of `server`: status and body.
async fn readyz(server: &ServerHandle) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = server.local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let request = format!("GET /readyz HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// Takes the test database away from every client (`cut`) or gives it back.
async fn store_reachable(location: &bosun_store::StoreLocation, reachable: bool) {
    use sqlx::Connection as _;
    let bosun_store::StoreLocation::Postgres { url } = location else { unreachable!("PostgreSQL") };
    let name = url.path().trim_start_matches('/').to_owned();
    let admin = bosun_store::testing::postgres_admin_url().expect("admin URL");
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect as admin");
    let allow = if reachable { "true" } else { "false" };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}")))
        .execute(&mut conn)
        .await
        .expect("alter database");
    if !reachable {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut conn)
            .await
            .expect("terminate connections");
    }
}

async fn a_replica_that_loses_its_store_stops_leading_and_recovers(backend: Backend) {
    // An outage of a database server; memory cannot lose its store.
    if backend != Backend::Postgres {
        return;
    }
    let Some(replicas) = Replicas::start(backend, 1, None).await else { return };
    replicas.tick(None).await;
    let server = replicas.servers[0].as_ref().expect("alive");
    assert_eq!(readyz(server).await, (200, "ready: leader\n".to_owned()));
    let agent = bosun_api::AgentClient::new(&server.url(), Some(AGENTS.to_owned())).expect("client");
    agent.register(&crate::harness::registration("n1"), None).await.expect("register");
    let beat = |at| MetricSample {
        node_id: "n1".parse().expect("valid"),
        at,
        cpu_percent: 1.0,
        memory_percent: 1.0,
        gpus: vec![],
    };

    store_reachable(&replicas.location.location, false).await;
    let (status, body) = readyz(server).await;
    assert_eq!(status, 503, "{body}");
    // It cannot renew: it stops leading before anyone could take over, and judges nobody;
    // heartbeats are still taken and kept for the store's return.
    let mut deposed = None;
    for _ in 0..8 {
        replicas.clock.advance(RENEW);
        agent.heartbeat(&beat(replicas.clock.now())).await.expect("heartbeats are buffered");
        assert!(server.flush().await.is_err(), "nothing can be written");
        if let Some(Transition::Deposed { reason }) = server.elect().await {
            deposed = Some(reason);
        }
    }
    assert!(deposed.is_some(), "a leader without its store stops leading");
    assert!(!server.is_leader());
    assert_eq!(server.judge_liveness().await.expect("a follower judges nothing"), []);

    store_reachable(&replicas.location.location, true).await;
    // Back: the lease is still this replica's, so it takes it again at the next epoch.
    let mut elected = None;
    for _ in 0..5 {
        if let Some(Transition::Elected { epoch }) = server.elect().await {
            elected = Some(epoch);
            break;
        }
        replicas.clock.advance(RENEW);
    }
    assert_eq!(elected, Some(2), "leads again without a restart");
    assert_eq!(readyz(server).await, (200, "ready: leader\n".to_owned()));
    assert!(server.flush().await.expect("the buffered heartbeats are written") >= 1);
    // No node is judged silent because the store was away.
    agent.heartbeat(&beat(replicas.clock.now())).await.expect("heartbeat");
    server.flush().await.expect("flush");
    assert_eq!(server.judge_liveness().await.expect("judge"), []);
    let node = replicas.store().await.node(&"n1".parse().expect("valid")).await.expect("node");
    assert_eq!(node.status, bosun_core::NodeStatus::Active);
    replicas.stop().await;
}

/// A server with its loops leads from its first pass: the pool pass runs at once at start,
/// and must not wait an interval for the first election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_server_leads_before_its_first_pass() {
    let clock = Arc::new(FakeClock::at_default_epoch());
    let store = open_store(&bosun_store::StoreLocation::Memory, test_options(clock.clone())).await.expect("open");
    let mut election = ElectionSettings::new(ReplicaId::new("sole").expect("valid"));
    election.exclusive = true;
    let mut settings = settings();
    settings.election = Some(election);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let clock: Arc<dyn Clock> = clock;
    let server = Server::start(listener, store, clock, settings, true).await.expect("start");
    assert!(server.is_leader(), "elected during start, before the loops' first passes");
    server.shutdown().await;
}

/// A follower that wins the election reconciles its pools at once. The loops run (paused
/// tokio time, the fake clock for the lease) with an autoscale interval of an hour, so the
/// new leader's first pool pass can only come from its election.
#[tokio::test(start_paused = true)]
async fn a_new_leader_reconciles_its_pools_at_once() {
    let clock = Arc::new(FakeClock::at_default_epoch());
    let location = TestLocation::new(Backend::Memory).await.expect("memory is always there");
    let store = open_store(&location.location, test_options(clock.clone())).await.expect("open");
    let factory: ControlPlaneFactory = Arc::new(|_| {
        let client = bosun_api::AgentClient::new("http://127.0.0.1:9", None).map_err(|e| e.to_string())?;
        Ok(Arc::new(client) as Arc<dyn bosun_agent::ControlPlane>)
    });
    let fake = FakeSettings { boot_delay: Duration::from_secs(86_400 * 365), ..FakeSettings::default() };
    let provider = Arc::new(FakeProvider::new("fake", fake, clock.clone(), factory));
    let start = async |id: &str| {
        let mut settings = settings();
        settings.election = Some(ElectionSettings::new(ReplicaId::new(id).expect("valid")));
        settings.autoscale_interval = Duration::from_secs(3600);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let pools = PoolsConfig {
            pools: vec![("training".parse().expect("valid"), spec(1))],
            providers: [("fake".to_owned(), provider.clone() as Arc<dyn Provider>)].into_iter().collect(),
            bootstrap: Bootstrap { server_url: "http://127.0.0.1:9".into(), token: Some(AGENTS.to_owned()) },
            machines: [("training".parse().expect("valid"), PoolMachines::default())].into_iter().collect(),
        };
        let clock: Arc<dyn Clock> = clock.clone();
        Server::start_with_pools(listener, store.clone(), clock, settings, true, Some(pools)).await.expect("starts")
    };
    let first = start("first").await;
    assert!(first.is_leader(), "the first replica leads from its start");
    let second = start("second").await;
    assert!(!second.is_leader());
    tokio::time::sleep(RENEW * 2).await;
    assert_eq!(first.pool_passes(), 1, "one pass at start: its election at start does not ask for a second");
    assert_eq!(second.pool_passes(), 0, "a follower reconciles nothing");

    first.kill().await;
    clock.advance(LEASE + RENEW);
    for _ in 0..5 {
        if second.pool_passes() > 0 {
            break;
        }
        tokio::time::sleep(RENEW).await;
    }
    assert!(second.is_leader(), "the follower took the lease over");
    assert_eq!(second.pool_passes(), 1, "its first pool pass came with the election, not an hour later");
    second.shutdown().await;
}

/// An OpsService client of `server` with the operator's token.
fn ops(server: &ServerHandle) -> bosun_api::v1::OpsServiceClient<bosun_api::Transport> {
    let url = server.url();
    let transport =
        bosun_api::Transport::new(&url.parse().expect("uri"), &Default::default(), false).expect("transport");
    let config = connectrpc::client::ClientConfig::new(url.parse().expect("uri"))
        .with_default_header("authorization", format!("Bearer {}", crate::harness::OPERATOR));
    bosun_api::v1::OpsServiceClient::new(transport, config)
}

async fn runbook_runs_move_on_the_leader_only_and_a_new_leader_resumes_them(backend: Backend) {
    use bosun_api::v1;
    let Some(mut replicas) = Replicas::start(backend, 2, None).await else { return };
    replicas.tick(None).await;
    assert_eq!(replicas.leaders(), [0]);
    let follower = replicas.servers[1].as_ref().expect("alive");
    let agent = bosun_api::AgentClient::new(&follower.url(), Some(AGENTS.to_owned())).expect("client");
    for node in ["n1", "n2"] {
        agent.register(&crate::harness::registration(node), None).await.expect("register");
    }
    // Started through the follower; it is stored, and only the leader moves it on.
    let runbook =
        "name: hold\nmax_parallel: 1\nsteps:\n  - cordon: {reason: hold}\n  - wait_for_status: {status: active}\n";
    let follower_ops = ops(follower);
    follower_ops
        .apply_runbook(v1::ApplyRunbookRequest { yaml: runbook.into(), ..Default::default() })
        .await
        .expect("apply");
    let request =
        v1::StartRunRequest { runbook: "hold".into(), nodes: vec!["n1".into(), "n2".into()], ..Default::default() };
    let id = follower_ops.start_run(request).await.expect("start").into_owned().run.expect("run").id;
    let events = |ops: bosun_api::v1::OpsServiceClient<bosun_api::Transport>, id: String| async move {
        let request = v1::GetRunRequest { run_id: id, ..Default::default() };
        ops.get_run(request).await.expect("get").into_owned().run.expect("run").events
    };
    assert_eq!(follower.advance_runs().await.expect("pass"), 0, "a follower runs nothing");
    assert_eq!(events(ops(follower), id.clone()).await.len(), 1, "only the run's queueing");
    let leader = replicas.servers[0].as_ref().expect("alive");
    assert_eq!(leader.advance_runs().await.expect("pass"), 1);
    let started = events(ops(leader), id.clone()).await;
    let begun: Vec<(Option<u32>, String)> =
        started.iter().filter(|e| e.r#type == "step_started").map(|e| (e.step, e.target.clone())).collect();
    assert_eq!(begun, [(Some(0), "node:n1".to_owned()), (Some(1), "node:n1".to_owned())], "n1 waits to be active");

    // The leader dies mid-run; the follower takes over and resumes where the events say.
    let crashed = replicas.kill(0);
    let mut steps = 0;
    while replicas.leaders().is_empty() {
        replicas.step(None).await;
        steps += 1;
        assert!(steps < 20, "no new leader");
    }
    let new_leader = replicas.servers[1].as_ref().expect("alive");
    new_leader.advance_runs().await.expect("pass");
    assert_eq!(events(ops(new_leader), id.clone()).await.len(), started.len(), "nothing is done twice");
    let admin = {
        let url = new_leader.url();
        let transport =
            bosun_api::Transport::new(&url.parse().expect("uri"), &Default::default(), false).expect("transport");
        let config = connectrpc::client::ClientConfig::new(url.parse().expect("uri"))
            .with_default_header("authorization", format!("Bearer {}", crate::harness::OPERATOR));
        v1::AdminServiceClient::new(transport, config)
    };
    admin
        .issue_command(v1::IssueCommandRequest {
            node_id: "n1".into(),
            r#type: v1::CommandType::COMMAND_TYPE_UNCORDON.into(),
            ..Default::default()
        })
        .await
        .expect("uncordon");
    new_leader.advance_runs().await.expect("pass");
    let after = events(ops(new_leader), id.clone()).await;
    let begun: Vec<(Option<u32>, String)> =
        after.iter().filter(|e| e.r#type == "step_started").map(|e| (e.step, e.target.clone())).collect();
    assert_eq!(
        begun,
        [
            (Some(0), "node:n1".to_owned()),
            (Some(1), "node:n1".to_owned()),
            (Some(0), "node:n2".to_owned()),
            (Some(1), "node:n2".to_owned())
        ],
        "the new leader finished n1 and went on to n2"
    );
    drop(crashed);
    replicas.stop().await;
}
