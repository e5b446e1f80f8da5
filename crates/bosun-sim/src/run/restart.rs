//! `restart_server`: stopping the control plane and starting a new one on the same store,
//! with new fake providers whose machines vanished with the old process.

use super::*;

/// Everything a control-plane start needs beyond the providers.
pub(super) struct RestartPlan {
    pub(super) location: StoreLocation,
    pub(super) config: Config,
    pub(super) settings: Settings,
    /// Every replica's URL, comma-separated: where provisioned machines' agents connect.
    pub(super) server_urls: String,
    pub(super) agent_token: Option<String>,
}

impl RestartPlan {
    /// Opens the store and starts the server on `listener` with `providers`' pools; as
    /// replica `replica` (electing a leader with the others) when there are several.
    pub(super) async fn start(
        &self,
        listener: tokio::net::TcpListener,
        clock: &Arc<SimClock>,
        providers: &BTreeMap<String, Arc<FakeProvider>>,
        replica: Option<&str>,
    ) -> Result<ServerHandle, SimError> {
        // Each replica opens its own connections, as a process of its own would.
        let database = Database::connect(&self.location).await.map_err(|e| SimError::Store(e.to_string()))?;
        database.migrate_up().await.map_err(|e| SimError::Store(e.to_string()))?;
        let store = database
            .into_store(StoreOptions::new(Arc::clone(clock) as Arc<dyn Clock>))
            .await
            .map_err(|e| SimError::Store(e.to_string()))?;
        let mut settings = self.settings.clone();
        if let Some(replica) = replica {
            let id = bosun_core::ReplicaId::new(replica).map_err(|e| SimError::Config(e.to_string()))?;
            settings.election = Some(bosun_server::ElectionSettings::new(id));
        }
        let built: BTreeMap<String, Arc<dyn Provider>> =
            providers.iter().map(|(name, p)| (name.clone(), Arc::clone(p) as Arc<dyn Provider>)).collect();
        let pools = (!self.config.pools.is_empty()).then(|| PoolsConfig {
            pools: self.config.pool_specs(),
            providers: built,
            bootstrap: Bootstrap { server_url: self.server_urls.clone(), token: self.agent_token.clone() },
            machines: PoolMachines::from_config(&self.config),
        });
        Server::start_with_pools(listener, store, Arc::clone(clock) as Arc<dyn Clock>, settings, false, pools)
            .await
            .map_err(|e| SimError::Start(e.to_string()))
    }

    /// A fake provider per configured provider, numbering machines after `previous`'s.
    pub(super) fn providers(
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

impl Sim {
    /// Stops the control plane (it flushes what it buffered) and starts a new one on the
    /// same store and address with new fake providers: their machines lived in the old
    /// process and vanish with it, as in the quick start.
    pub(super) async fn restart_server(&mut self) -> Result<String, String> {
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
        let replica = &mut self.replicas[0];
        let Some(server) = replica.server.take() else { return Err("restart_server: no control plane runs".into()) };
        let address = replica.address;
        // The fake machines live in the server's process: they go down with it.
        for provider in old.values() {
            provider.vanish_all();
        }
        self.stop_server(server).await.map_err(|e| format!("restart_server: {e}"))?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("restart_server: cannot listen on {address} again: {e}"))?;
        let server = self
            .restart
            .start(listener, &self.clock, &self.providers, None)
            .await
            .map_err(|e| format!("restart_server: {e}"))?;
        self.replicas[0].server = Some(server);
        Ok(format!("control plane restarted; {lost} fake-provider machines were lost with the old process"))
    }

    /// Stops `server` as SIGTERM does (it flushes, and hands the lease over when it leads).
    /// Shutting down closes connections and the store, which takes real time, not
    /// simulated time: wait for it in real time. Only if it hangs on a timer (the shutdown
    /// timeout) does simulated time move on.
    pub(super) async fn stop_server(&mut self, server: ServerHandle) -> Result<(), String> {
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
        match shutting_down.await {
            Ok(_) => Ok(()),
            Err(error) => Err(format!("the old control plane did not stop cleanly: {error}")),
        }
    }
}
