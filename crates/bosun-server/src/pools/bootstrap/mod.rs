//! SSH bootstrap: a pool's `setup_commands`, run over SSH on each of its machines that a
//! provider reports running while its agent has not registered.
//!
//! Every pool pass looks at the pool's PENDING_REGISTRATION instances. A machine whose
//! provider lists it running with an address gets an attempt: connect as the pool's
//! `ssh_user` with `ssh_private_key_path`, run each setup command in turn (`script`), stop
//! at the first that fails, and store what ran as the machine's bootstrap log (kept under
//! its instance id, the node id the agent is told to register as). A failed attempt is
//! retried after a backoff (10 s doubling to 2 min); a machine that cannot be reached is
//! retried the same way without a log per try. When the registration timeout has passed
//! (the janitor then fails the instance), bosun gives up and says so in a last log.
//!
//! Attempts run as tasks beside the pass, so a slow installer never holds the pool's
//! scaling, and at most [`MAX_CONCURRENT`] at a time. Which machine is where in this
//! (its attempts, the next one's time) is soft state: after a restart, a machine whose
//! newest log is a success is left alone, any other is tried again at once.
//!
//! Machines a provider lists without an address (the fake and process providers, whose
//! agents start by themselves) are never bootstrapped.

mod logs;
mod script;
mod ssh;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bosun_core::{
    Actor, BootstrapCommandLog, BootstrapLog, Clock, Instance, InstanceId, InstanceState, NodeId, Pool, PoolName,
    Timestamp,
};
use bosun_provider::{ProviderInstance, ProviderInstanceState};
use bosun_store::{SharedStore, WriteBatch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use logs::bootstrap_logs;
use script::Values;
use ssh::{Session, SshError};

use super::{PoolsConfig, instances_in};
use crate::app::App;
use crate::error::ApiResult;

/// Attempts running at once, across pools: a pool growing by hundreds of machines does
/// not open hundreds of SSH sessions together.
const MAX_CONCURRENT: usize = 16;
/// The first retry's delay; each failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(120);
/// How long one setup command may run (installers download; Navarch allows as long).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const ACTOR: &str = "ssh-bootstrap";

/// Where each machine's bootstrap stands (soft state; see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Bootstraps {
    machines: Mutex<BTreeMap<Machine, Progress>>,
    /// Attempts started and not yet awaited, for [`Bootstraps::settled`].
    running: Mutex<Vec<JoinHandle<()>>>,
}

/// A machine of a pool, by its instance id.
type Machine = (PoolName, InstanceId);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    /// The next attempt is due at `next_at`; `last_error` says why the previous failed.
    Waiting {
        attempts: u32,
        next_at: Timestamp,
        last_error: Option<String>,
    },
    Running {
        attempts: u32,
    },
    Succeeded,
    /// The provider lists the machine running without an address: nothing to connect to.
    Unreachable,
    GaveUp,
}

impl Bootstraps {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Machine, Progress>> {
        // A std Mutex: every critical section is a map lookup, never across an await.
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, pool: &PoolName, instance: &InstanceId) -> Option<Progress> {
        self.lock().get(&(pool.clone(), instance.clone())).cloned()
    }

    fn set(&self, pool: &PoolName, instance: &InstanceId, progress: Progress) {
        self.lock().insert((pool.clone(), instance.clone()), progress);
    }

    fn running(&self) -> usize {
        self.lock().values().filter(|p| matches!(p, Progress::Running { .. })).count()
    }

    /// Waits until every attempt started so far has finished (tests drive passes with a
    /// fake clock and then look at the logs).
    pub(crate) async fn settled(&self) {
        loop {
            let running: Vec<JoinHandle<()>> =
                std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
            if running.is_empty() {
                return;
            }
            for attempt in running {
                let _ = attempt.await;
            }
        }
    }
}

/// The delay after `failures` failed attempts.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(10);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// One pass over `pool`'s machines waiting for their agent (see the module docs). Provider
/// and SSH failures are the attempts' business, never the pass's.
pub(crate) async fn bootstrap_machines(app: &App, config: &PoolsConfig, pool: &Pool) -> ApiResult<()> {
    let commands = &pool.spec.setup_commands;
    if commands.is_empty() {
        return Ok(());
    }
    let machines = config.machines.get(&pool.name).cloned().unwrap_or_default();
    let Some(key_path) = machines.ssh.private_key_path.clone() else {
        // The configuration refuses setup commands without a key; a pool built in code may not.
        tracing::warn!(pool = %pool.name, "setup commands without ssh_private_key_path: machines are not bootstrapped");
        return Ok(());
    };
    let waiting = instances_in(app, &pool.name, vec![InstanceState::PendingRegistration]).await?;
    let bootstraps = &app.bootstraps;
    // Machines that registered, failed or left are forgotten (a running attempt ends first).
    bootstraps.lock().retain(|(of, id), progress| {
        of != &pool.name || matches!(progress, Progress::Running { .. }) || waiting.iter().any(|i| &i.id == id)
    });
    let now = app.now();
    let mut due = Vec::new();
    for instance in waiting {
        let deadline = instance.state_changed_at + app.settings.instance_registration_timeout;
        let progress = match bootstraps.get(&pool.name, &instance.id) {
            Some(progress) => progress,
            None if newest_log_succeeded(app, &instance).await? => {
                bootstraps.set(&pool.name, &instance.id, Progress::Succeeded);
                continue;
            }
            None => Progress::Waiting { attempts: 0, next_at: now, last_error: None },
        };
        match progress {
            Progress::Waiting { attempts, last_error, .. } if now >= deadline => {
                bootstraps.set(&pool.name, &instance.id, Progress::GaveUp);
                if let Some(last_error) = last_error {
                    give_up(app, &instance, attempts, &last_error, now).await;
                }
            }
            Progress::Waiting { attempts, next_at, last_error } if next_at <= now => {
                due.push((instance, attempts, last_error));
            }
            _ => {}
        }
    }
    if due.is_empty() {
        return Ok(());
    }
    let listed = list_providers(config, &due).await;
    for (instance, attempts, last_error) in due {
        if bootstraps.running() >= MAX_CONCURRENT {
            break;
        }
        let machine = instance
            .provider_instance_id
            .as_ref()
            .and_then(|id| listed.get(&instance.provider)?.iter().find(|m| &m.provider_instance_id == id));
        let Some(machine) = machine.filter(|m| m.state == ProviderInstanceState::Running) else {
            // Not running yet (or not listed): the next pass looks again.
            bootstraps.set(&pool.name, &instance.id, Progress::Waiting { attempts, next_at: now, last_error });
            continue;
        };
        let Some(address) = machine.ssh_address else {
            bootstraps.set(&pool.name, &instance.id, Progress::Unreachable);
            continue;
        };
        let Ok(log_key) = NodeId::new(instance.id.as_str()) else { continue };
        let attempt = Attempt {
            pool: pool.name.clone(),
            log_key,
            address,
            user: machines.ssh.user.clone(),
            key_path: key_path.clone(),
            commands: commands.clone(),
            values: Values {
                control_plane: config.bootstrap.server_url.clone(),
                token: config.bootstrap.token.clone(),
                instance_id: instance.id.to_string(),
                pool: pool.name.to_string(),
                provider: instance.provider.clone(),
                region: instance.region.clone(),
                zone: instance.zone.clone(),
                instance_type: instance.instance_type.clone(),
            },
            failures: attempts,
            instance: instance.id,
        };
        bootstraps.set(&pool.name, &attempt.instance, Progress::Running { attempts });
        let context = AttemptContext {
            store: Arc::clone(&app.store),
            clock: Arc::clone(&app.clock),
            bootstraps: Arc::clone(&app.bootstraps),
            shutdown: app.shutdown.clone(),
        };
        // Spawned tasks do not inherit the pass's fence: hand it over.
        let task = tokio::spawn(crate::election::with_fence(crate::election::current_fence(), attempt.run(context)));
        bootstraps.running.lock().unwrap_or_else(|p| p.into_inner()).push(task);
    }
    Ok(())
}

/// Each provider of the due machines, listed once. A provider that cannot be listed now
/// leaves its machines for the next pass.
async fn list_providers(
    config: &PoolsConfig,
    due: &[(Instance, u32, Option<String>)],
) -> BTreeMap<String, Vec<ProviderInstance>> {
    let mut listed = BTreeMap::new();
    for (instance, _, _) in due {
        if listed.contains_key(&instance.provider) {
            continue;
        }
        let Some(provider) = config.providers.get(&instance.provider) else { continue };
        match provider.list().await {
            Ok(machines) => {
                listed.insert(instance.provider.clone(), machines);
            }
            Err(error) => {
                tracing::warn!(provider = %instance.provider, %error, "cannot list machines to bootstrap; next pass");
            }
        }
    }
    listed
}

async fn newest_log_succeeded(app: &App, instance: &Instance) -> ApiResult<bool> {
    let Ok(key) = NodeId::new(instance.id.as_str()) else { return Ok(false) };
    Ok(app.store.bootstrap_logs(&key, 1).await?.first().is_some_and(|log| log.success))
}

/// The last word on a machine bosun could not bootstrap in time.
async fn give_up(app: &App, instance: &Instance, attempts: u32, last_error: &str, now: Timestamp) {
    let Ok(log_key) = NodeId::new(instance.id.as_str()) else { return };
    let timeout = bosun_config::duration::format(app.settings.instance_registration_timeout);
    let error = format!(
        "gave up after {attempts} attempt(s): the agent did not register within the registration timeout \
         ({timeout}); last error: {last_error}"
    );
    tracing::warn!(instance = %instance.id, %error, "SSH bootstrap given up");
    let log = BootstrapLog {
        id: 0,
        node_id: log_key,
        instance_id: Some(instance.id.clone()),
        pool: instance.pool.clone(),
        started_at: now,
        duration_ms: 0,
        success: false,
        error,
        commands: Vec::new(),
    };
    let batch = WriteBatch::new(Actor::system(ACTOR), "bootstrap given up").append_bootstrap_log(log);
    if let Err(error) = app.store.commit(batch).await {
        tracing::warn!(instance = %instance.id, %error, "cannot store the bootstrap log");
    }
}

/// What an attempt needs of the server, owned (it outlives the pass).
struct AttemptContext {
    store: SharedStore,
    clock: Arc<dyn Clock>,
    bootstraps: Arc<Bootstraps>,
    shutdown: CancellationToken,
}

/// One attempt on one machine.
struct Attempt {
    instance: InstanceId,
    pool: PoolName,
    log_key: NodeId,
    address: SocketAddr,
    user: String,
    key_path: PathBuf,
    commands: Vec<String>,
    values: Values,
    /// Attempts that failed before this one.
    failures: u32,
}

/// How an attempt went.
enum Outcome {
    /// Nothing to log: the machine did not answer.
    Unreachable(String),
    /// The attempt reached the machine (or failed for a reason an operator must see).
    Logged { success: bool, error: String, commands: Vec<BootstrapCommandLog> },
}

impl Attempt {
    async fn run(self, context: AttemptContext) {
        let started_at = context.clock.now();
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = self.connect_and_run() => outcome,
            () = context.shutdown.cancelled() => return,
        };
        let failures = self.failures + 1;
        let progress = match outcome {
            Outcome::Unreachable(error) => {
                tracing::debug!(instance = %self.instance, %error, "machine not reachable over SSH yet");
                Progress::Waiting {
                    attempts: failures,
                    next_at: context.clock.now() + backoff(failures),
                    last_error: Some(error),
                }
            }
            Outcome::Logged { success, error, commands } => {
                if success {
                    tracing::info!(instance = %self.instance, address = %self.address, "machine bootstrapped over SSH");
                } else {
                    tracing::warn!(instance = %self.instance, address = %self.address, %error,
                        "SSH bootstrap failed; retrying after a backoff");
                }
                let log = BootstrapLog {
                    id: 0,
                    node_id: self.log_key.clone(),
                    instance_id: Some(self.instance.clone()),
                    pool: Some(self.pool.clone()),
                    started_at,
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    success,
                    error: error.clone(),
                    commands,
                };
                let reason = if success { "bootstrapped" } else { "bootstrap failed" };
                let batch = WriteBatch::new(Actor::system(ACTOR), reason).append_bootstrap_log(log);
                if let Err(store_error) = context.store.commit(batch).await {
                    tracing::warn!(instance = %self.instance, error = %store_error, "cannot store the bootstrap log");
                }
                if success {
                    Progress::Succeeded
                } else {
                    Progress::Waiting {
                        attempts: failures,
                        next_at: context.clock.now() + backoff(failures),
                        last_error: Some(error),
                    }
                }
            }
        };
        context.bootstraps.set(&self.pool, &self.instance, progress);
    }

    async fn connect_and_run(&self) -> Outcome {
        let failed = |error: String| Outcome::Logged { success: false, error, commands: Vec::new() };
        let key = match ssh::load_key(&self.key_path) {
            Ok(key) => key,
            Err(error) => return failed(error),
        };
        let session = match Session::open(self.address, &self.user, key).await {
            Ok(session) => session,
            Err(error @ SshError::Unreachable { .. }) => return Outcome::Unreachable(error.to_string()),
            Err(error) => return failed(error.to_string()),
        };
        let mut logs = Vec::new();
        let mut error = String::new();
        let total = self.commands.len();
        for (index, command) in self.commands.iter().enumerate() {
            let which = format!("setup command {} of {total}", index + 1);
            let script = match self.values.script(command) {
                Ok(script) => script,
                Err(problem) => {
                    error = format!("{which} is not valid: {problem}");
                    break;
                }
            };
            let ran = match session.run(&script, COMMAND_TIMEOUT).await {
                Ok(ran) => ran,
                Err(session_error) => {
                    error = format!("{which}: {session_error}");
                    break;
                }
            };
            let exit_code = ran.exit_code.map_or(-1, |code| i32::try_from(code).unwrap_or(i32::MAX));
            logs.push(BootstrapCommandLog {
                // As configured: placeholders unfilled, so no secret is stored (and a token
                // written into the command itself through ${VAR} is blanked).
                command: self.values.scrub(command),
                stdout: self.values.scrub(&ran.stdout),
                stderr: self.values.scrub(&ran.stderr),
                exit_code,
                duration_ms: u64::try_from(ran.duration.as_millis()).unwrap_or(u64::MAX),
            });
            match ran.exit_code {
                Some(0) => {}
                Some(code) => {
                    error = format!("{which} exited with status {code}");
                    break;
                }
                None => {
                    error = format!("{which} did not finish within {}s", COMMAND_TIMEOUT.as_secs());
                    break;
                }
            }
        }
        session.close().await;
        Outcome::Logged { success: error.is_empty(), error, commands: logs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_ten_seconds_to_two_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 5, 40].into_iter().map(|f| backoff(f).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 120, 120]);
    }
}
