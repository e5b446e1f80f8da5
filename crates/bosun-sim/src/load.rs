//! `bosun sim load`: N simulated agents register, then heartbeat with metrics at a fixed
//! interval against a server, and the latency of every heartbeat is measured.
//!
//! Heartbeats are paced open-loop: heartbeat k of the run is due at `start + k / rate`,
//! whatever happened to the ones before, so a slow server shows up as latency and as a
//! rate below target rather than being politely waited for. Every simulated agent sends
//! one heartbeat per interval, spread evenly across it.
//!
//! The report is one JSON line (see [`LoadReport`]). With an in-process server the CPU and
//! RSS figures are the whole process's (server and load generator together; the
//! generator's share is small beside the server's); against `--server` they are absent.
//!
//! With several in-process replicas (`--replicas`, one store connection pool each, as
//! separate processes would have) the load is spread over them (each simulated node keeps
//! to one replica, as an agent keeps to its server), a fake-cloud pool gives the leader
//! work, and `--kill-leader-at` kills the leader as `kill -9` would: the nodes of a replica
//! that is gone move to the next one (as agents do), `failover_s` is the time from the kill
//! to the new leader's first pool pass, and `double_provisioned` counts the machines the
//! fake cloud made beyond the pool's size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bosun_api::v1;
use bosun_core::{PoolSpec, ReplicaId, SystemClock};
use bosun_provider::fake::{ControlPlaneFactory, FakeProvider, FakeSettings};
use bosun_provider::{Bootstrap, Provider};
use bosun_server::{ElectionSettings, PoolMachines, PoolsConfig, Server, ServerHandle, Settings};
use bosun_store::SharedStore;
use connectrpc::client::{CallOptions, ClientConfig, Http2Connection, SharedHttp2Connection};
use serde::Serialize;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub nodes: u32,
    pub heartbeat_interval: Duration,
    pub duration: Duration,
    /// Requests in flight at most (registration and heartbeats).
    pub concurrency: usize,
    /// HTTP/2 connections the load is spread over.
    pub connections: usize,
    pub token: Option<String>,
    /// TLS options for an `https://` server.
    pub tls: bosun_api::ClientTls,
    /// With several in-process replicas: when, into the measured phase, to kill the leader.
    pub kill_leader_at: Option<Duration>,
}

/// Where the load goes.
#[derive(Debug)]
pub enum Target {
    /// Start servers in this process, one per store (several: replicas electing a leader
    /// through the store they share).
    InProcess { stores: Vec<SharedStore>, settings: Box<Settings> },
    /// A running server.
    Remote { url: String },
}

/// The result line.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub backend: String,
    pub nodes: u32,
    pub heartbeat_interval_s: f64,
    pub duration_s: f64,
    pub heartbeats: u64,
    /// Heartbeats answered per second over the measured phase.
    pub rps: f64,
    pub target_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub register_per_s: f64,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_mb: Option<f64>,
    /// In-process servers (replicas electing a leader when more than one).
    pub replicas: usize,
    /// Seconds from killing the leader to the new leader's first pool pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_s: Option<f64>,
    /// Machines the fake cloud made beyond the pool's size (with several replicas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub double_provisioned: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start the server: {0}")]
    Start(String),
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("registration failed for {failed} of {nodes} nodes; first error: {first}")]
    Register { failed: u64, nodes: u32, first: String },
    #[error("invalid options: {0}")]
    Invalid(String),
}

type Client = v1::AgentServiceClient<SharedHttp2Connection>;

/// The fake-cloud pool several replicas reconcile: what a failover must not provision
/// twice. Its machines never boot (they stay provisioning, which the pool counts).
const POOL_SIZE: u32 = 8;

pub async fn run(options: &LoadOptions, target: Target) -> Result<LoadReport, LoadError> {
    if options.nodes == 0 || options.heartbeat_interval.is_zero() || options.duration.is_zero() {
        return Err(LoadError::Invalid("nodes, heartbeat interval and duration must be above zero".into()));
    }
    let (urls, fleet, backend) = match target {
        Target::Remote { url } => (vec![url], None, "remote".to_owned()),
        Target::InProcess { stores, settings } => {
            let backend = stores.first().map(|s| s.backend().to_string()).unwrap_or_default();
            let fleet = Replicas::start(stores, *settings, options).await?;
            (fleet.urls(), Some(fleet), backend)
        }
    };
    let replicas = fleet.as_ref().map_or(1, |f| f.urls.len());
    if options.kill_leader_at.is_some() && replicas < 2 {
        return Err(LoadError::Invalid("killing the leader needs two replicas or more".into()));
    }
    let routes = Routes::new(connect(&urls, options).await?, replicas);
    let register_per_s = register_all(&routes, options).await?;
    let cpu_before = process_cpu();
    let (measured, failover_s) = match (&fleet, options.kill_leader_at) {
        (Some(fleet), Some(at)) => {
            tokio::join!(heartbeat_phase(&routes, options), fleet.kill_leader_after(at))
        }
        _ => (heartbeat_phase(&routes, options).await, None),
    };
    let cpu_after = process_cpu();
    let wall = measured.elapsed.as_secs_f64();
    let server_cpu_pct = match (fleet.is_some(), cpu_before, cpu_after) {
        (true, Some(before), Some(after)) => Some(100.0 * (after - before) / wall),
        _ => None,
    };
    let server_rss_mb = fleet.as_ref().and_then(|_| process_rss_mb());
    let double_provisioned = fleet.as_ref().and_then(Replicas::double_provisioned);
    if let Some(fleet) = fleet {
        fleet.shutdown().await;
    }
    let mut latencies = measured.latencies_us;
    latencies.sort_unstable();
    let percentile = |p: f64| crate::report::percentile_ms(&latencies, p);
    Ok(LoadReport {
        backend,
        nodes: options.nodes,
        heartbeat_interval_s: options.heartbeat_interval.as_secs_f64(),
        duration_s: wall,
        heartbeats: latencies.len() as u64,
        rps: latencies.len() as f64 / wall,
        target_rps: f64::from(options.nodes) / options.heartbeat_interval.as_secs_f64(),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        max_ms: percentile(1.0),
        errors: measured.errors,
        register_per_s,
        server_cpu_pct,
        server_rss_mb,
        replicas,
        failover_s,
        double_provisioned,
    })
}

/// The in-process servers: one, or replicas electing a leader.
struct Replicas {
    servers: tokio::sync::Mutex<Vec<Option<ServerHandle>>>,
    urls: Vec<String>,
    /// The fake cloud of the replicas' pool, and how many machines it had made at start.
    cloud: Option<(Arc<FakeProvider>, u64)>,
}

impl Replicas {
    async fn start(stores: Vec<SharedStore>, settings: Settings, options: &LoadOptions) -> Result<Self, LoadError> {
        let count = stores.len();
        let mut listeners = Vec::new();
        for _ in 0..count {
            listeners
                .push(tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| LoadError::Start(e.to_string()))?);
        }
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| format!("http://{a}")))
            .collect::<Result<_, _>>()
            .map_err(|e| LoadError::Start(e.to_string()))?;
        let cloud = (count > 1).then(|| {
            // Machines never boot: nothing connects back.
            let factory: ControlPlaneFactory = Arc::new(|_| Err("load machines never boot".to_owned()));
            let fake = FakeSettings { boot_delay: Duration::from_secs(365 * 86_400), ..FakeSettings::default() };
            let provider = Arc::new(FakeProvider::new("cloud", fake, Arc::new(SystemClock), factory));
            let made = provider.next_number();
            (provider, made)
        });
        let mut servers = Vec::new();
        for (index, (listener, store)) in listeners.into_iter().zip(stores).enumerate() {
            let mut settings = settings.clone();
            let mut pools = None;
            if let Some((provider, _)) = &cloud {
                let id = ReplicaId::new(format!("load-{}", index + 1)).map_err(|e| LoadError::Start(e.to_string()))?;
                settings.election = Some(ElectionSettings::new(id));
                // The machines stay provisioning for the whole run: never written off.
                settings.instance_registration_timeout =
                    settings.instance_registration_timeout.max(options.duration * 4 + Duration::from_secs(3600));
                let mut spec = PoolSpec::single_provider("cloud", "h100-8x", POOL_SIZE, POOL_SIZE);
                spec.region = "local".into();
                pools = Some(PoolsConfig {
                    pools: vec![(pool_name(), spec)],
                    providers: [("cloud".to_owned(), Arc::clone(provider) as Arc<dyn Provider>)].into_iter().collect(),
                    bootstrap: Bootstrap { server_url: urls.join(","), token: options.token.clone() },
                    machines: BTreeMap::from([(pool_name(), PoolMachines::default())]),
                });
            }
            let server = Server::start_with_pools(listener, store, Arc::new(SystemClock), settings, true, pools)
                .await
                .map_err(|e| LoadError::Start(e.to_string()))?;
            servers.push(Some(server));
        }
        Ok(Self { servers: tokio::sync::Mutex::new(servers), urls, cloud })
    }

    fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// Waits `after`, kills the leader, and returns the seconds until another replica has
    /// completed a pool pass as the new leader (`None` if none did within a minute).
    async fn kill_leader_after(&self, after: Duration) -> Option<f64> {
        tokio::time::sleep(after).await;
        let mut servers = self.servers.lock().await;
        let leader = servers.iter().position(|s| s.as_ref().is_some_and(ServerHandle::is_leader))?;
        let passes: Vec<u64> = servers.iter().map(|s| s.as_ref().map_or(0, ServerHandle::pool_passes)).collect();
        let killed = Instant::now();
        if let Some(server) = servers[leader].take() {
            server.kill().await;
        }
        while killed.elapsed() < Duration::from_secs(60) {
            let acting = servers
                .iter()
                .zip(&passes)
                .any(|(server, before)| server.as_ref().is_some_and(|s| s.is_leader() && s.pool_passes() > *before));
            if acting {
                return Some(killed.elapsed().as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Machines the fake cloud made beyond the pool's size.
    fn double_provisioned(&self) -> Option<u64> {
        let (provider, made_before) = self.cloud.as_ref()?;
        let made = provider.next_number() - made_before;
        Some(made.saturating_sub(u64::from(POOL_SIZE)))
    }

    async fn shutdown(self) {
        for server in self.servers.into_inner().into_iter().flatten() {
            server.shutdown().await;
        }
    }
}

fn pool_name() -> bosun_core::PoolName {
    "load".parse().unwrap_or_else(|_| unreachable!("a valid pool name"))
}

/// HTTP/2 connections, spread over the servers at `urls` in turn.
async fn connect(urls: &[String], options: &LoadOptions) -> Result<Vec<Client>, LoadError> {
    let mut clients = Vec::new();
    for index in 0..options.connections.max(urls.len()).max(1) {
        let url = &urls[index % urls.len()];
        let uri = bosun_api::agent_client::server_uri(url)
            .map_err(|e| LoadError::Connect { url: url.clone(), message: e.to_string() })?;
        let connection = if uri.scheme_str() == Some("https") {
            let connector = bosun_api::transport::https_connector(&options.tls, true)
                .map_err(|e| LoadError::Connect { url: url.clone(), message: e.to_string() })?;
            Http2Connection::connect_with_connector(connector, uri.clone()).await
        } else {
            Http2Connection::connect_plaintext(uri.clone()).await
        }
        .map_err(|e| LoadError::Connect { url: url.clone(), message: e.to_string() })?
        .shared(1024);
        let mut config = ClientConfig::new(uri.clone());
        if let Some(token) = &options.token {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        clients.push(v1::AgentServiceClient::new(connection, config));
    }
    Ok(clients)
}

fn node_name(i: u32) -> String {
    format!("load-{i:06}")
}

/// Registers every node with 8 GPUs, `concurrency` at a time. Returns registrations/s.
async fn register_all(routes: &Routes, options: &LoadOptions) -> Result<f64, LoadError> {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let routes = routes.clone();
        let (next, failed, first_error) = (Arc::clone(&next), Arc::clone(&failed), Arc::clone(&first_error));
        let nodes = u64::from(options.nodes);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= nodes {
                    return;
                }
                let call = |client: Client| async move { client.register_node(registration(i as u32)).await.map(drop) };
                if let Err(error) = routes.call(i as u32, call).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| error.to_string());
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = first_error.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
        return Err(LoadError::Register { failed, nodes: options.nodes, first });
    }
    Ok(f64::from(options.nodes) / started.elapsed().as_secs_f64())
}

fn registration(i: u32) -> v1::RegisterRequest {
    let node = node_name(i);
    v1::RegisterRequest {
        node_id: node.clone(),
        provider: "sim".into(),
        region: "sim-1".into(),
        zone: "sim-1a".into(),
        instance_type: "h100-8x".into(),
        gpus: (0..8)
            .map(|g| v1::GpuInfo {
                index: g,
                uuid: format!("GPU-{node}-{g}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_bytes: 80 << 30,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn heartbeat(i: u32, k: u64) -> v1::HeartbeatRequest {
    // Readings vary a little so the server does real work on them.
    let wobble = ((u64::from(i) * 31 + k * 17) % 40) as f64;
    v1::HeartbeatRequest {
        node_id: node_name(i),
        metrics: buffa::MessageField::some(v1::NodeMetrics {
            cpu_usage_percent: 20.0 + wobble,
            memory_usage_percent: 40.0,
            gpu_metrics: (0..8)
                .map(|g| v1::GpuMetrics {
                    gpu_index: g,
                    temperature: 55.0 + wobble / 4.0,
                    power_usage: 450.0,
                    utilization_percent: 50.0 + wobble,
                    memory_used: 40 << 30,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Measured {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

/// Heartbeats at the target rate, each node's over its route.
async fn heartbeat_phase(routes: &Routes, options: &LoadOptions) -> Measured {
    let nodes = u64::from(options.nodes);
    let interval = options.heartbeat_interval.as_secs_f64();
    let total = ((options.duration.as_secs_f64() / interval) * nodes as f64).round().max(1.0) as u64;
    let spacing = interval / nodes as f64;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency.max(1) {
        let routes = routes.clone();
        let (next, errors) = (Arc::clone(&next), Arc::clone(&errors));
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    return latencies;
                }
                tokio::time::sleep_until(start + Duration::from_secs_f64(k as f64 * spacing)).await;
                let node = (k % nodes) as u32;
                let sent = Instant::now();
                let call = |client: Client| async move {
                    let options = CallOptions::default().with_timeout(Duration::from_secs(10));
                    client.heartbeat_with_options(heartbeat(node, k / nodes), options).await.map(drop)
                };
                match routes.call(node, call).await {
                    Ok(_) => latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut latencies_us = Vec::with_capacity(total as usize);
    while let Some(done) = tasks.join_next().await {
        latencies_us.extend(done.unwrap_or_default());
    }
    Measured { latencies_us, errors: errors.load(Ordering::Relaxed), elapsed: start.elapsed() }
}

/// Which connection each simulated node talks to. A node keeps to one connection (and so
/// one server), as an agent keeps to its server: node `i` to connection `i` modulo their
/// number. With several servers (connections go to them in turn), a call that fails moves
/// that connection's nodes on to the next connection, for good, up to one try per server:
/// an agent whose replica died moves to the next one.
#[derive(Clone)]
struct Routes {
    clients: Arc<[Client]>,
    servers: usize,
    /// Connection `c`'s nodes now use connection `redirect[c]`.
    redirect: Arc<[AtomicU64]>,
}

impl Routes {
    fn new(clients: Vec<Client>, servers: usize) -> Self {
        let redirect = (0..clients.len() as u64).map(AtomicU64::new).collect();
        Self { clients: clients.into(), servers: servers.max(1), redirect }
    }

    async fn call<F, Fut>(&self, node: u32, call: F) -> Result<(), connectrpc::ConnectError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<(), connectrpc::ConnectError>>,
    {
        let home = node as usize % self.clients.len();
        let mut current = self.redirect[home].load(Ordering::Relaxed) as usize;
        let mut result = call(self.clients[current].clone()).await;
        for _ in 1..self.servers {
            if result.is_ok() {
                break;
            }
            current = (current + 1) % self.clients.len();
            result = call(self.clients[current].clone()).await;
            if result.is_ok() {
                self.redirect[home].store(current as u64, Ordering::Relaxed);
            }
        }
        result
    }
}

/// CPU seconds this process has used (user + system), from /proc.
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks; USER_HZ is 100 on every platform Rust targets here.
    Some((utime + stime) / 100.0)
}

/// Resident memory of this process in MiB, from /proc.
fn process_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_load_against_an_in_process_server_reports_every_heartbeat() {
        let Some(test) = bosun_store::testing::TestStore::open(bosun_store::Backend::Sqlite).await else { return };
        let options = LoadOptions {
            nodes: 50,
            heartbeat_interval: Duration::from_millis(50),
            duration: Duration::from_millis(100),
            concurrency: 8,
            connections: 1,
            token: None,
            tls: bosun_api::ClientTls::default(),
            kill_leader_at: None,
        };
        let target = Target::InProcess { stores: vec![test.store.clone()], settings: Box::default() };
        let report = run(&options, target).await.expect("load runs");
        assert_eq!(report.errors, 0);
        assert_eq!(report.heartbeats, 100, "two rounds of 50 nodes");
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
        assert!(report.server_rss_mb.is_some());
        let line = serde_json::to_string(&report).expect("json");
        for key in [
            "\"nodes\"",
            "\"rps\"",
            "\"p50_ms\"",
            "\"p99_ms\"",
            "\"max_ms\"",
            "\"errors\"",
            "\"server_cpu_pct\"",
            "\"server_rss_mb\"",
        ] {
            assert!(line.contains(key), "{key} in {line}");
        }
        assert!(!line.contains("failover_s") && !line.contains("double_provisioned"), "one server: {line}");
    }

    /// Two replicas on PostgreSQL: the leader is killed mid-load; heartbeats move to the
    /// other replica without an error, the other replica leads and reconciles its pool,
    /// and the pool is not provisioned twice. (The failover waits out a real lease.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_killed_under_load_fails_over_without_errors_or_double_provisioning() {
        let Some(location) = bosun_store::testing::TestLocation::new(bosun_store::Backend::Postgres).await else {
            return;
        };
        let mut stores = Vec::new();
        for _ in 0..2 {
            let options = bosun_store::StoreOptions::new(Arc::new(SystemClock));
            stores.push(bosun_store::open_store(&location.location, options).await.expect("open"));
        }
        let options = LoadOptions {
            nodes: 40,
            heartbeat_interval: Duration::from_millis(200),
            duration: Duration::from_secs(2),
            concurrency: 8,
            connections: 2,
            token: None,
            tls: bosun_api::ClientTls::default(),
            kill_leader_at: Some(Duration::from_millis(500)),
        };
        let report = run(&options, Target::InProcess { stores, settings: Box::default() }).await.expect("runs");
        assert_eq!(report.replicas, 2);
        assert_eq!(report.errors, 0, "heartbeats moved to the surviving replica: {report:?}");
        assert_eq!(report.heartbeats, 400, "every heartbeat answered: {report:?}");
        let failover = report.failover_s.expect("the other replica took over and reconciled");
        println!("failover after killing the leader: {failover:.1} s (lease 10 s)");
        assert_eq!(report.double_provisioned, Some(0), "{report:?}");
    }
}
