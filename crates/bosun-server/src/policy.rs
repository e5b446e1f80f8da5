//! The active health policy: where it comes from and how it is replaced.
//!
//! Precedence: the file named by `server.health_policy` (edit it and restart), else the
//! policy stored through SetPolicy, else the built-in one. A replacement is compiled
//! before it is stored and swapped in; a policy that does not compile is refused and the
//! active one stays. Other replicas pick up a stored replacement as their change follower
//! reads it (and on every janitor pass, should a signal have been lost).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bosun_core::{Actor, CheckResult, HealthEvent, HealthReport, NodeId, Revision, StoredPolicy, Timestamp};
use bosun_policy::{Policy, PolicyError};
use bosun_store::{SharedStore, WriteBatch};

use crate::error::{ApiError, ApiResult};

/// Where the active policy came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicySource {
    BuiltIn,
    File(PathBuf),
    /// Stored through SetPolicy, at this revision.
    Api(Revision),
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::BuiltIn => f.write_str("built-in"),
            PolicySource::File(path) => write!(f, "file:{}", path.display()),
            PolicySource::Api(revision) => write!(f, "api (revision {revision})"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct ActivePolicy {
    pub policy: Policy,
    pub source: PolicySource,
}

/// Why the server cannot start with the configured policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("cannot read the health policy {}: {cause}", path.display())]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("the health policy {} is invalid: {cause}", path.display())]
    Invalid { path: PathBuf, cause: PolicyError },
    #[error("the built-in health policy does not compile (a bug in bosun): {0}")]
    BuiltIn(PolicyError),
    #[error("cannot read the stored health policy: {0}")]
    Store(bosun_store::StoreError),
}

#[derive(Debug)]
pub(crate) struct Policies {
    active: ArcSwap<ActivePolicy>,
    /// Set when the configuration names a policy file: then the API cannot replace it.
    file: Option<PathBuf>,
    /// Policy work callers ask for (SetPolicy, TestPolicy) runs one at a time off the
    /// async workers.
    work: PolicyWork,
    /// Large agent reports are classified off the async workers, a few at a time.
    classification: Arc<tokio::sync::Semaphore>,
    /// Held while the active policy is replaced from the store or by SetPolicy, so a
    /// refresh that read an older stored policy (the janitor's, the change follower's)
    /// never replaces a newer one.
    replacing: tokio::sync::Mutex<()>,
}

/// Reports with at most this many events are classified on the async worker itself: a few
/// events take microseconds, while a full report (up to 1,000) takes tens of milliseconds
/// of CEL, which would stall the worker's other requests.
const INLINE_CLASSIFICATION: usize = 32;

/// Runs callers' policy work (compiling a document, classifying sample events) on the
/// blocking pool, one job at a time, within a time limit.
///
/// A policy document is bounded (`bosun_policy::POLICY_LIMITS`, conditions by size and
/// depth), but compiling a large one still costs CPU: done on an async worker it stalls
/// every request that worker serves (two nested documents once made `/healthz` take 42 s).
/// One permit leaves the other core to the async workers however many callers send
/// documents; a caller that cannot get its turn within the time limit is told to retry.
#[derive(Debug)]
pub(crate) struct PolicyWork {
    permits: Arc<tokio::sync::Semaphore>,
    time_limit: Duration,
}

impl PolicyWork {
    /// Jobs running at once.
    const PARALLEL: usize = 1;
    /// The longest a caller waits for its turn and its result.
    const TIME_LIMIT: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self { permits: Arc::new(tokio::sync::Semaphore::new(Self::PARALLEL)), time_limit: Self::TIME_LIMIT }
    }

    /// Runs `job` on the blocking pool when a permit is free.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        let permits = Arc::clone(&self.permits);
        let work = async move {
            let permit = permits.acquire_owned().await.map_err(|_| ApiError::Internal("policy work stopped".into()))?;
            // The permit moves into the job: a caller that gives up does not free it while
            // the job still runs, so abandoned jobs cannot pile up.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job()
            })
            .await
            .map_err(|error| ApiError::Internal(format!("policy work failed: {error}")))
        };
        tokio::time::timeout(self.time_limit, work).await.map_err(|_| {
            ApiError::ResourceExhausted(format!(
                "the server is busy with other policy documents and could not take this one within {} s; try again",
                self.time_limit.as_secs()
            ))
        })?
    }
}

impl Policies {
    /// Loads the active policy by precedence. A stored policy that no longer compiles
    /// (written by another bosun version) is logged and the built-in one used instead.
    pub(crate) async fn load(file: Option<PathBuf>, store: &SharedStore) -> Result<Self, PolicyLoadError> {
        let active = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|cause| PolicyLoadError::Read { path: path.clone(), cause })?;
                let policy =
                    Policy::from_yaml(&text).map_err(|cause| PolicyLoadError::Invalid { path: path.clone(), cause })?;
                ActivePolicy { policy, source: PolicySource::File(path.clone()) }
            }
            None => match store.policy().await.map_err(PolicyLoadError::Store)? {
                Some(stored) => match Policy::from_yaml(&stored.document) {
                    Ok(policy) => ActivePolicy { policy, source: PolicySource::Api(stored.revision) },
                    Err(error) => {
                        tracing::error!(%error, revision = %stored.revision,
                            "the stored health policy does not compile; using the built-in policy until a valid one is set");
                        builtin()?
                    }
                },
                None => builtin()?,
            },
        };
        tracing::info!(name = active.policy.name(), source = %active.source, rules = active.policy.rules().len(),
            "health policy loaded");
        // One core stays with the async workers when a fleet-wide event makes every node
        // send a full report at once; the rest wait for a permit (backpressure).
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let classification = Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)));
        Ok(Self {
            active: ArcSwap::from_pointee(active),
            file,
            work: PolicyWork::new(),
            classification,
            replacing: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn current(&self) -> Arc<ActivePolicy> {
        self.active.load_full()
    }

    /// Classifies an agent's report with `active` (the caller's [`Policies::current`]):
    /// small reports inline, large ones on the blocking pool with at most `cores - 1` at
    /// once.
    pub(crate) async fn classify(
        &self,
        active: Arc<ActivePolicy>,
        node: NodeId,
        now: Timestamp,
        results: Vec<CheckResult>,
        events: Vec<HealthEvent>,
    ) -> ApiResult<HealthReport> {
        if events.len() <= INLINE_CLASSIFICATION {
            return Ok(active.policy.report(node, now, results, events));
        }
        let permit = Arc::clone(&self.classification)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("report classification stopped".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            active.policy.report(node, now, results, events)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("classifying the report failed: {e}")))
    }

    /// Compiles a caller's policy off the async workers, or explains what is wrong with it.
    pub(crate) async fn compile(&self, yaml: &str) -> ApiResult<Policy> {
        check_size(yaml)?;
        let yaml = yaml.to_owned();
        self.work.run(move || compile(&yaml)).await?
    }

    /// Runs other policy work (such as classifying a caller's sample events) the same way.
    pub(crate) async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
        self.work.run(job).await
    }

    /// Validates `yaml`, stores it and makes it active.
    pub(crate) async fn set(
        &self,
        store: &SharedStore,
        yaml: &str,
        actor: Actor,
        now: Timestamp,
    ) -> ApiResult<Arc<ActivePolicy>> {
        if let Some(path) = &self.file {
            return Err(ApiError::FailedPrecondition(format!(
                "the health policy comes from {} (server.health_policy); edit that file and restart the server, \
                 or remove the setting to manage the policy through the API",
                path.display()
            )));
        }
        let policy = self.compile(yaml).await?;
        let stored = StoredPolicy {
            name: policy.name().to_owned(),
            document: yaml.to_owned(),
            updated_at: now,
            revision: Revision::FIRST,
        };
        let reason = format!("policy {:?} set", policy.name());
        let _replacing = self.replacing.lock().await;
        let committed = store.commit(WriteBatch::new(actor, reason).put_policy(stored)).await?;
        let active = Arc::new(ActivePolicy { policy, source: PolicySource::Api(committed.revision(0)) });
        self.active.store(Arc::clone(&active));
        Ok(active)
    }

    /// Picks up a policy another replica stored. Keeps the active policy on any error.
    pub(crate) async fn refresh(&self, store: &SharedStore) -> Result<(), bosun_store::StoreError> {
        if self.file.is_some() {
            return Ok(());
        }
        let _replacing = self.replacing.lock().await;
        let stored = store.policy().await?;
        let current = self.current();
        match (stored, &current.source) {
            (Some(stored), PolicySource::Api(revision)) if stored.revision == *revision => {}
            (Some(stored), _) => match compile_stored(stored.document.clone()).await {
                Ok(policy) => {
                    tracing::info!(name = policy.name(), revision = %stored.revision, "health policy replaced");
                    self.active.store(Arc::new(ActivePolicy { policy, source: PolicySource::Api(stored.revision) }));
                }
                Err(error) => tracing::error!(%error, revision = %stored.revision,
                    "the stored health policy does not compile; keeping the active one"),
            },
            (None, PolicySource::Api(_)) => {
                if let Ok(active) = builtin() {
                    self.active.store(Arc::new(active));
                }
            }
            (None, _) => {}
        }
        Ok(())
    }
}

/// Compiles a stored policy on the blocking pool (the janitor runs on an async worker).
async fn compile_stored(document: String) -> Result<Policy, PolicyError> {
    tokio::task::spawn_blocking(move || Policy::from_yaml(&document))
        .await
        .unwrap_or_else(|error| Err(PolicyError::Engine(format!("policy compilation failed: {error}"))))
}

fn check_size(yaml: &str) -> ApiResult<()> {
    if yaml.len() > StoredPolicy::MAX_DOCUMENT_BYTES {
        return Err(ApiError::invalid(
            "yaml",
            format_args!("is {} bytes; a policy may have at most {}", yaml.len(), StoredPolicy::MAX_DOCUMENT_BYTES),
        ));
    }
    Ok(())
}

/// Compiles an operator's policy, or explains what is wrong with it. CPU-bound: call it
/// through [`Policies::compile`] from async code.
fn compile(yaml: &str) -> ApiResult<Policy> {
    check_size(yaml)?;
    Policy::from_yaml(yaml).map_err(|error| match error.as_validation_error() {
        Some(invalid) => ApiError::Invalid(invalid),
        None => ApiError::Internal(error.to_string()),
    })
}

fn builtin() -> Result<ActivePolicy, PolicyLoadError> {
    Ok(ActivePolicy { policy: Policy::builtin().map_err(PolicyLoadError::BuiltIn)?, source: PolicySource::BuiltIn })
}
