//! Several control-plane replicas (`replicas: N`): elections on simulated time, the
//! leader killed as `kill -9` kills it, a replica restarted as SIGTERM and a new start
//! would. Every replica serves agents and the API; leader-only passes run only on the
//! replica holding the lease (the others' passes return at once, as in the server).

use bosun_server::Transition;

use super::*;
use crate::report::{FailoverReport, LeaderChange, ReplicasReport};
use crate::scenario::replica_name;

/// One control-plane replica.
pub(super) struct Replica {
    /// `replica-K`, also its replica id in the lease.
    pub(super) name: String,
    pub(super) address: std::net::SocketAddr,
    /// `None` while it is down (killed, or inside a restart).
    pub(super) server: Option<ServerHandle>,
    pub(super) admin: v1::AdminServiceClient<HttpClient>,
    pub(super) ops: v1::OpsServiceClient<HttpClient>,
}

impl Replica {
    pub(super) fn new(index: u32, address: std::net::SocketAddr, admin_token: Option<&str>) -> Result<Self, SimError> {
        let url = format!("http://{address}");
        let mut config = ClientConfig::new(url.parse().map_err(|e| SimError::Start(format!("{e}")))?);
        if let Some(token) = admin_token {
            config = config.with_default_header("authorization", format!("Bearer {token}"));
        }
        Ok(Self {
            name: replica_name(index),
            address,
            server: None,
            admin: v1::AdminServiceClient::new(HttpClient::plaintext(), config.clone()),
            ops: v1::OpsServiceClient::new(HttpClient::plaintext(), config),
        })
    }
}

/// Leadership as the run saw it: who led when, and how long each killed leader's
/// replicas went without one.
#[derive(Debug, Default)]
pub(super) struct LeadershipLog {
    leaders: Vec<LeaderChange>,
    failovers: Vec<FailoverReport>,
}

impl LeadershipLog {
    fn elected(&mut self, at: Duration, replica: &str, epoch: u64) {
        let t_s = at.as_secs_f64();
        self.leaders.push(LeaderChange { t_s, replica: replica.to_owned(), epoch });
        for failover in self.failovers.iter_mut().filter(|f| f.new_leader.is_none()) {
            failover.new_leader = Some(replica.to_owned());
            failover.failover_s = Some(t_s - failover.killed_at_s);
        }
    }

    pub(super) fn report(self, replicas: u32) -> Option<ReplicasReport> {
        (replicas > 1).then_some(ReplicasReport { count: replicas, leaders: self.leaders, failovers: self.failovers })
    }
}

impl Sim {
    /// The replicas that run.
    pub(super) fn live(&self) -> impl Iterator<Item = &ServerHandle> {
        self.replicas.iter().filter_map(|r| r.server.as_ref())
    }

    /// The API of the leading replica, or of the first that runs while nobody leads (every
    /// replica answers the whole API).
    pub(super) fn admin(&self) -> &v1::AdminServiceClient<HttpClient> {
        &self.serving().admin
    }

    pub(super) fn ops(&self) -> &v1::OpsServiceClient<HttpClient> {
        &self.serving().ops
    }

    /// The leader, else any running replica.
    fn serving(&self) -> &Replica {
        let running = || self.replicas.iter().filter(|r| r.server.is_some());
        running()
            .find(|r| r.server.as_ref().is_some_and(ServerHandle::is_leader))
            .or_else(|| running().next())
            .unwrap_or(&self.replicas[0])
    }

    /// One election step on every running replica; a replica that has just become the
    /// leader reconciles its pools at once, as the server's own loop does.
    pub(super) async fn elect(&mut self) {
        let mut elected = Vec::new();
        for (index, replica) in self.replicas.iter().enumerate() {
            let Some(server) = &replica.server else { continue };
            if let Some(Transition::Elected { epoch }) = server.elect().await {
                elected.push((index, epoch));
            }
        }
        for (index, epoch) in elected {
            let now = self.driver.now();
            let name = self.replicas[index].name.clone();
            tracing::info!(replica = %name, epoch, at = ?now, "a new leader");
            self.leadership.elected(now, &name, epoch);
            if let Some(server) = &self.replicas[index].server
                && !self.restart.config.pools.is_empty()
                && let Err(error) = server.reconcile_pools().await
            {
                tracing::warn!(%error, replica = %name, "the new leader's first pool pass failed");
            }
        }
    }

    /// `kill_leader`: the leading replica dies without a word; the lease runs out before
    /// a follower may take over.
    pub(super) async fn kill_leader(&mut self) -> Result<String, String> {
        let Some(index) = self.replicas.iter().position(|r| r.server.as_ref().is_some_and(ServerHandle::is_leader))
        else {
            return Err("no replica leads at the moment (an election is under way)".into());
        };
        if self.live().count() < 2 {
            return Err(format!(
                "{} is the last replica running: killing it leaves no control plane (restart_replica one first)",
                self.replicas[index].name
            ));
        }
        let server = self.replicas[index].server.take().expect("found running above");
        server.kill().await;
        let name = self.replicas[index].name.clone();
        let killed_at_s = self.driver.now().as_secs_f64();
        self.leadership.failovers.push(FailoverReport {
            killed: name.clone(),
            killed_at_s,
            new_leader: None,
            failover_s: None,
        });
        Ok(format!(
            "killed {name}, the leader: a follower takes over once it has seen the lease unchanged for its duration"
        ))
    }

    /// `restart_replica`: a running replica stops as SIGTERM stops it (a leader hands the
    /// lease over) and starts again on its address; a killed one just starts again.
    pub(super) async fn restart_replica(&mut self, target: &str) -> Result<String, String> {
        let Some(index) = self.replicas.iter().position(|r| r.name == target) else {
            return Err(format!("there is no replica {target:?}"));
        };
        let (stopped, led) = match self.replicas[index].server.take() {
            Some(server) => {
                let led = server.is_leader();
                self.stop_server(server).await?;
                (true, led)
            }
            None => (false, false),
        };
        let address = self.replicas[index].address;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("cannot listen on {address} again: {e}"))?;
        let server = self
            .restart
            .start(listener, &self.clock, &self.providers, Some(target))
            .await
            .map_err(|e| e.to_string())?;
        self.replicas[index].server = Some(server);
        Ok(match (stopped, led) {
            (true, true) => format!("{target} (the leader) stopped, handing the lease over, and started again"),
            (true, false) => format!("{target} stopped and started again"),
            (false, _) => format!("{target} started again"),
        })
    }
}
