//! A real server on 127.0.0.1:0 over a real store, a fake clock, real clients.
//!
//! Time-driven behaviour (liveness, expiry, redelivery) is tested by advancing the fake
//! clock and running the server's passes through its handle; the background loops are
//! off. Event-driven behaviour (registration, long polls) runs at network speed.

use std::sync::Arc;
use std::time::Duration;

use bosun_agent::{Agent, AgentOptions, AgentOutcome, ControlPlane, FakeGpus, HostMetrics, fault_hooks};
use bosun_api::{AgentClient, v1};
use bosun_api::{ClientTls, Transport};
use bosun_config::Config;
use bosun_core::PoolSpec;
use bosun_core::{Clock, FakeClock, NodeId, NodeRegistration};
use bosun_provider::fake::{ControlPlaneFactory, FakeProvider, FakeSettings};
use bosun_provider::{Bootstrap, Provider, ProvisionRequest};
use bosun_server::{PoolMachines, PoolsConfig, Server, ServerHandle, Settings};
use bosun_store::testing::{TestLocation, test_options};
use bosun_store::{Backend, SharedStore, open_store};
use connectrpc::client::ClientConfig;
use connectrpc::{ConnectError, ErrorCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Runs `$name(backend)` as one test per SQL backend.
macro_rules! on_sql_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(bosun_store::Backend::Sqlite).await;
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
pub(crate) use on_sql_backends;

/// Runs `$name(backend)` as one test per backend, the memory store included.
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(bosun_store::Backend::Memory).await;
                }
            )+
        }
        crate::harness::on_sql_backends!($($name),+);
    };
}
pub(crate) use on_every_backend;

pub const ADMIN: &str = "admin-secret";
pub const OPERATOR: &str = "operator-secret";
pub const AGENTS: &str = "agents-secret";
pub const PINNED_N9: &str = "n9-secret";

/// A server-side key for node tokens (at least 32 characters).
pub const NODE_TOKEN_KEY: &str = "node-token-key-0123456789abcdef0123456789";

/// The auth section every harness server runs with.
fn auth_config() -> bosun_config::AuthConfig {
    auth_config_with("")
}

/// [`settings`] with node tokens minted under [`NODE_TOKEN_KEY`].
pub fn settings_with_node_token_key() -> Settings {
    Settings { auth: auth_config_with(&format!("  node_token_key: {NODE_TOKEN_KEY}\n")), ..settings() }
}

fn auth_config_with(extra: &str) -> bosun_config::AuthConfig {
    let text = format!(
        "auth:
  tokens:
    - {{name: root, token: {ADMIN}, role: admin}}
    - {{name: oncall, token: {OPERATOR}, role: operator}}
    - {{name: fleet, token: {AGENTS}, role: agent}}
    - {{name: n9, token: {PINNED_N9}, role: agent, node: n9}}
{extra}"
    );
    Config::from_yaml_str(&text, |_| None).expect("valid auth config").auth
}

pub fn settings() -> Settings {
    Settings {
        auth: auth_config(),
        heartbeat_interval: Duration::from_secs(1),
        health_check_interval: Duration::from_secs(1),
        command_poll_wait: Duration::from_secs(5),
        shutdown_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

pub struct Harness {
    pub clock: Arc<FakeClock>,
    pub settings: Settings,
    /// How this harness's clients verify (and present certificates to) a TLS server.
    pub client_tls: ClientTls,
    /// Shared with the harness's replicas; the database goes when the last one does.
    location: Arc<TestLocation>,
    server: Option<ServerHandle>,
    address: std::net::SocketAddr,
    pools: Option<PoolsConfig>,
}

impl Harness {
    /// A server on a fresh database of `backend`, or `None` when the backend may be
    /// skipped here.
    pub async fn start(backend: Backend) -> Option<Harness> {
        Self::start_with(backend, settings()).await
    }

    pub async fn start_with(backend: Backend, settings: Settings) -> Option<Harness> {
        let location = TestLocation::new(backend).await?;
        let clock = Arc::new(FakeClock::at_default_epoch());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Some(Self::serve_on(listener, Arc::new(location), clock, settings, ClientTls::default(), None).await)
    }

    /// A server managing one pool `pool` (its spec from `spec`) on a fake provider named
    /// `fake`, whose machines are in-process agents that register with this server.
    pub async fn start_with_fake_pool(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        fake: FakeSettings,
    ) -> Option<(Harness, Arc<FakeProvider>)> {
        Self::start_with_fake_pool_and_settings(backend, pool, spec, fake, settings()).await
    }

    /// [`Harness::start_with_fake_pool`] with the server's `settings`.
    pub async fn start_with_fake_pool_and_settings(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        fake: FakeSettings,
        settings: Settings,
    ) -> Option<(Harness, Arc<FakeProvider>)> {
        Self::start_fake_pool(backend, pool, spec, fake, settings, PoolMachines::default()).await
    }

    /// [`Harness::start_with_fake_pool`] with the pool's machine settings (image, SSH).
    pub async fn start_with_fake_pool_machines(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        fake: FakeSettings,
        machines: PoolMachines,
    ) -> Option<(Harness, Arc<FakeProvider>)> {
        Self::start_fake_pool(backend, pool, spec, fake, settings(), machines).await
    }

    async fn start_fake_pool(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        fake: FakeSettings,
        settings: Settings,
        machines: PoolMachines,
    ) -> Option<(Harness, Arc<FakeProvider>)> {
        let location = TestLocation::new(backend).await?;
        let clock = Arc::new(FakeClock::at_default_epoch());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let provider = fake_provider(fake, &clock);
        let providers = vec![("fake".to_owned(), provider.clone() as Arc<dyn Provider>)];
        let harness = Self::serve_pool(location, clock, listener, pool, spec, providers, settings, machines).await;
        Some((harness, provider))
    }

    /// A server managing one pool `pool` on the given `providers` (by name).
    pub async fn start_with_pool_providers(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        providers: Vec<(String, Arc<dyn Provider>)>,
    ) -> Option<Harness> {
        Self::start_with_pool_providers_and_settings(backend, pool, spec, providers, settings()).await
    }

    /// [`Harness::start_with_pool_providers`] with the server's `settings`.
    pub async fn start_with_pool_providers_and_settings(
        backend: Backend,
        pool: &str,
        spec: PoolSpec,
        providers: Vec<(String, Arc<dyn Provider>)>,
        settings: Settings,
    ) -> Option<Harness> {
        let location = TestLocation::new(backend).await?;
        let clock = Arc::new(FakeClock::at_default_epoch());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Some(
            Self::serve_pool(location, clock, listener, pool, spec, providers, settings, PoolMachines::default()).await,
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_pool(
        location: TestLocation,
        clock: Arc<FakeClock>,
        listener: TcpListener,
        pool: &str,
        spec: PoolSpec,
        providers: Vec<(String, Arc<dyn Provider>)>,
        settings: Settings,
        machines: PoolMachines,
    ) -> Harness {
        let address = listener.local_addr().expect("address");
        let pool: bosun_core::PoolName = pool.parse().expect("pool name");
        let pools = PoolsConfig {
            pools: vec![(pool.clone(), spec)],
            providers: providers.into_iter().collect(),
            bootstrap: Bootstrap { server_url: format!("http://{address}"), token: Some(AGENTS.to_owned()) },
            machines: [(pool, machines)].into_iter().collect(),
        };
        Self::serve_on(listener, Arc::new(location), clock, settings, ClientTls::default(), Some(pools)).await
    }

    /// Another server on this harness's database (a replica), with the same clock and
    /// settings and a port of its own. Replicas share PostgreSQL; on the memory backend
    /// this is a server with an empty store of its own.
    pub async fn replica(&self) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (location, clock) = (Arc::clone(&self.location), self.clock.clone());
        Self::serve_on(listener, location, clock, self.settings.clone(), self.client_tls.clone(), None).await
    }

    /// A harness serving on `listener`.
    async fn serve_on(
        listener: TcpListener,
        location: Arc<TestLocation>,
        clock: Arc<FakeClock>,
        settings: Settings,
        client_tls: ClientTls,
        pools: Option<PoolsConfig>,
    ) -> Harness {
        let address = listener.local_addr().expect("address");
        let mut harness = Harness { clock, settings, client_tls, location, server: None, address, pools };
        harness.serve(listener).await;
        harness
    }

    async fn open_store(&self) -> SharedStore {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let location = &self.location.location;
        if *location != bosun_store::StoreLocation::Memory {
            let database = bosun_store::Database::connect(location).await.expect("connect");
            database.migrate_up().await.expect("migrate");
            database.close().await;
        }
        open_store(location, test_options(clock)).await.expect("open store")
    }

    async fn serve(&mut self, listener: TcpListener) {
        let store = self.open_store().await;
        let clock: Arc<dyn Clock> = self.clock.clone();
        let server = Server::start_with_pools(listener, store, clock, self.settings.clone(), false, self.pools.clone())
            .await
            .expect("server starts");
        self.server = Some(server);
    }

    /// Where the harness's database is.
    pub fn location(&self) -> &bosun_store::StoreLocation {
        &self.location.location
    }

    /// The SQLite database file, for a SQLite harness.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.location.location {
            bosun_store::StoreLocation::Sqlite { path } => Some(path.clone()),
            _ => None,
        }
    }

    pub fn server(&self) -> &ServerHandle {
        self.server.as_ref().expect("server running")
    }

    /// The body of a plain `GET path` (for `/metrics` and the like).
    pub async fn get_text(&self, path: &str) -> String {
        let (status, body) = http(self, "GET", path, &[], "").await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn url(&self) -> String {
        let scheme = if self.settings.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Shuts the server down (flushing soft state) and starts a new one on the same
    /// database and address, as an operator restarting it would.
    pub async fn restart(&mut self) {
        self.restart_after(Duration::ZERO).await;
    }

    /// Restarts the server as a new process would start it: its fake provider is new and
    /// knows nothing of the old one's machines, which vanish (their agents stop). Returns
    /// the new provider.
    pub async fn restart_with_fresh_provider(
        &mut self,
        old: &FakeProvider,
        settings: FakeSettings,
    ) -> Arc<FakeProvider> {
        let server = self.server.take().expect("server running");
        server.shutdown().await;
        old.vanish_all();
        let provider = fake_provider(settings, &self.clock);
        let pools = self.pools.as_mut().expect("a pool harness");
        pools.providers.insert("fake".to_owned(), provider.clone() as Arc<dyn Provider>);
        let listener = TcpListener::bind(self.address).await.expect("rebind the same address");
        self.serve(listener).await;
        provider
    }

    /// [`Harness::restart`], with the server down for `downtime` of fake time.
    pub async fn restart_after(&mut self, downtime: Duration) {
        let server = self.server.take().expect("server running");
        let report = server.shutdown().await;
        assert!(!report.timed_out, "shutdown finished in time");
        self.clock.advance(downtime);
        let listener = TcpListener::bind(self.address).await.expect("rebind the same address");
        self.serve(listener).await;
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// A client transport to this server: TLS with [`Harness::client_tls`] when the
    /// server serves TLS.
    pub fn transport(&self) -> Transport {
        Transport::new(&self.url().parse().expect("uri"), &self.client_tls, false).expect("transport")
    }

    pub fn admin(&self, token: Option<&str>) -> v1::AdminServiceClient<Transport> {
        let mut config = ClientConfig::new(self.url().parse().expect("uri"));
        if let Some(token) = token {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        v1::AdminServiceClient::new(self.transport(), config)
    }

    /// An OpsService client presenting `token`.
    pub fn ops(&self, token: Option<&str>) -> v1::OpsServiceClient<Transport> {
        let mut config = ClientConfig::new(self.url().parse().expect("uri"));
        if let Some(token) = token {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        v1::OpsServiceClient::new(self.transport(), config)
    }

    /// The admin client with the admin token.
    pub fn root(&self) -> v1::AdminServiceClient<Transport> {
        self.admin(Some(ADMIN))
    }

    /// A raw AgentService client presenting `token`.
    pub fn raw_agent(&self, token: Option<&str>) -> v1::AgentServiceClient<Transport> {
        let mut config = ClientConfig::new(self.url().parse().expect("uri"));
        if let Some(token) = token {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        v1::AgentServiceClient::new(self.transport(), config)
    }

    /// The agent-side client, bootstrapping with the shared agent token.
    pub fn agent_client(&self) -> Arc<AgentClient> {
        Arc::new(AgentClient::with_tls(&self.url(), Some(AGENTS.to_owned()), &self.client_tls).expect("client"))
    }

    /// Runs a real agent for `node` on `gpus` fake GPUs, with the fault-injection hooks.
    pub fn spawn_agent(&self, node: &str, gpus: u32) -> RunningAgent {
        let gpus = Arc::new(FakeGpus::new(gpus).with_seed(node.len() as u64).with_clock(self.clock.clone()));
        let mut options = AgentOptions::new(node.parse().expect("node id"));
        options.provider = "fake".to_owned();
        options.region = "local".to_owned();
        options.host_metrics = HostMetrics::fixed(20.0, 30.0);
        // Command deadlines are stamped by the server's (fake) clock.
        options.clock = self.clock.clone();
        options.hooks.custom.extend(fault_hooks(&gpus));
        let control: Arc<dyn ControlPlane> = self.agent_client();
        let shutdown = CancellationToken::new();
        let agent = Agent::new(options, gpus.clone(), control);
        let flags = agent.flags();
        let task = tokio::spawn(agent.run(shutdown.clone()));
        RunningAgent { flags, shutdown, task }
    }

    pub async fn node(&self, id: &str) -> v1::Node {
        let request = v1::GetNodeRequest { node_id: id.to_owned(), ..Default::default() };
        self.root().get_node(request).await.expect("get node").into_owned().node.as_option().cloned().expect("node")
    }

    /// Waits (at network speed, bounded) until `node` satisfies `condition`.
    pub async fn wait_for_node(&self, id: &str, what: &str, condition: impl Fn(&v1::Node) -> bool) -> v1::Node {
        for _ in 0..400 {
            let request = v1::GetNodeRequest { node_id: id.to_owned(), ..Default::default() };
            if let Ok(response) = self.root().get_node(request).await
                && let Some(node) = response.into_owned().node.as_option()
                && condition(node)
            {
                return node.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("node {id} never became {what}: {:?}", self.node(id).await);
    }

    pub async fn change_count(&self) -> u64 {
        let request = v1::ListEventsRequest { limit: 1, ..Default::default() };
        self.root().list_events(request).await.expect("events").into_owned().last_seq
    }
}

pub struct RunningAgent {
    /// The node's local cordon and drain flags, as the agent set them.
    pub flags: bosun_agent::NodeFlags,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<AgentOutcome, bosun_agent::AgentError>>,
}

impl RunningAgent {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A fake cloud named `fake` whose machines' agents register over the network with the
/// server named in their bootstrap.
fn fake_provider(settings: FakeSettings, clock: &Arc<FakeClock>) -> Arc<FakeProvider> {
    let factory: ControlPlaneFactory = Arc::new(|request: &ProvisionRequest| {
        let client = AgentClient::new(&request.bootstrap.server_url, request.bootstrap.token.clone())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(client) as Arc<dyn ControlPlane>)
    });
    Arc::new(FakeProvider::new("fake", settings, clock.clone(), factory))
}

/// Waits until exactly `count` instances are RUNNING with their nodes registered.
pub async fn wait_running(h: &Harness, count: usize) -> Vec<v1::Instance> {
    let mut running = Vec::new();
    for _ in 0..400 {
        let request = v1::ListInstancesRequest {
            states: vec![v1::InstanceState::INSTANCE_STATE_RUNNING.into()],
            ..Default::default()
        };
        running = h.root().list_instances(request).await.expect("list").into_owned().instances;
        if running.len() == count && running.iter().all(|i| !i.node_id.is_empty()) {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{count} RUNNING instances expected, got {running:?}");
}

pub fn registration(node: &str) -> NodeRegistration {
    let gpus = (0..8)
        .map(|i| bosun_core::Gpu {
            index: i,
            uuid: format!("GPU-{node}-{i}"),
            name: "NVIDIA H100 80GB HBM3".to_owned(),
            pci_bus_id: format!("00000000:{:02x}:00.0", 0x18 + i),
            memory_bytes: 80 << 30,
            driver_version: "550.54.15".to_owned(),
            cuda_version: "12.4".to_owned(),
        })
        .collect();
    NodeRegistration {
        node_id: node.parse().expect("node id"),
        provider: "fake".to_owned(),
        region: "local".to_owned(),
        zone: "local-a".to_owned(),
        instance_type: "h100-8x".to_owned(),
        pool: None,
        labels: Default::default(),
        gpus,
        metadata: Default::default(),
    }
}

pub fn node_id(id: &str) -> NodeId {
    id.parse().expect("node id")
}

/// The code and message of a failed call.
pub fn refused<T: std::fmt::Debug>(result: Result<T, ConnectError>) -> (ErrorCode, String) {
    let error = result.expect_err("the call is refused");
    (error.code, error.message.unwrap_or_default())
}

pub fn status_of(node: &v1::Node) -> v1::NodeStatus {
    node.status.as_known().expect("known status")
}

pub fn health_of(node: &v1::Node) -> v1::HealthStatus {
    node.health.as_known().expect("known health")
}

/// One HTTP/1.0 request (no chunked answers to decode) over a fresh connection; returns the status code and body.
pub async fn http(h: &Harness, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    try_http(h, method, path, headers, body).await.expect("an HTTP answer")
}

/// [`http`], or `None` when the server closes the connection without an answer.
pub async fn try_http(
    h: &Harness,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let address = h.server().local_addr().to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nhost: {address}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.ok()?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}
