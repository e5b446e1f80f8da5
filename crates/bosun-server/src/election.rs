//! Leader election between control-plane replicas, through the store's `leader` lease.
//!
//! Every replica runs an [`Elector`] and calls [`Elector::tick`] every renew interval. A
//! leader renews; a follower reads the lease and takes it when it is free (never taken,
//! released, or its own from before a restart) or when it has seen the very same lease
//! record — holder, epoch, renewal count — for a whole lease duration on its own clock, as
//! Kubernetes' client-go does, so skew between replicas' clocks cannot make two leaders.
//! A leader that has not renewed for the lease minus a safety margin stops its leader work
//! before anyone may take over.
//!
//! Leader-only work runs inside [`with_fence`]: every commit it makes carries the lease's
//! epoch (attached by the observed store), and the store refuses it once the epoch is over.

use std::sync::Mutex;
use std::time::Duration;

use bosun_core::{Actor, Clock, Fence, Lease, LeaseName, LeaseObservation, ReplicaId, ReplicaPresence, Timestamp};
use bosun_store::{SharedStore, StoreError, WriteBatch};

use crate::metrics::Metrics;

tokio::task_local! {
    /// The fence of the leader-only work running in this task.
    static FENCE: Fence;
}

/// Runs `work` as leader-only work of `fence`: every commit it makes is fenced.
pub(crate) async fn with_fence<F: Future>(fence: Option<Fence>, work: F) -> F::Output {
    match fence {
        Some(fence) => FENCE.scope(fence, work).await,
        None => work.await,
    }
}

/// The fence of the leader-only work running in this task, if any.
pub(crate) fn current_fence() -> Option<Fence> {
    FENCE.try_with(Clone::clone).ok()
}

/// The lease replicas compete for.
pub(crate) fn leader_lease() -> LeaseName {
    LeaseName::new("leader").unwrap_or_else(|_| unreachable!("a valid lease name"))
}

/// How replicas elect their leader (`bosun server --replica-id`; the timings are fixed
/// defaults, as the issue that introduced them asked).
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    pub replica_id: ReplicaId,
    /// A follower takes over after seeing the lease unchanged this long.
    pub lease: Duration,
    /// How often the leader renews and followers look.
    pub renew_every: Duration,
    /// The leader stops its leader work when it has not renewed for `lease - safety_margin`.
    pub safety_margin: Duration,
    /// Whether this replica is the only server the store can have (a SQLite file is locked
    /// by one server; memory is one process): it takes the lease at once instead of waiting
    /// out a previous process's lease.
    pub exclusive: bool,
    /// Where clients reach this replica's API (`bosun replicas list`); the server fills in
    /// its listen address when unset.
    pub advertise: Option<String>,
}

impl ElectionSettings {
    /// The lease's default duration.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
    /// How often a leader renews and followers look, by default.
    pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(2);

    pub fn new(replica_id: ReplicaId) -> Self {
        Self {
            replica_id,
            lease: Self::DEFAULT_LEASE,
            renew_every: Self::DEFAULT_RENEW_EVERY,
            safety_margin: Duration::from_secs(4),
            exclusive: false,
            advertise: None,
        }
    }

    /// The host name plus a random suffix: unique per process, recognisable per machine.
    pub fn default_replica_id() -> ReplicaId {
        let host = hostname().unwrap_or_else(|| "bosun".to_owned());
        let host: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
            .collect();
        // The random tail of a UUIDv7 (its head is the time).
        let uuid = uuid::Uuid::now_v7().simple().to_string();
        let suffix = &uuid[uuid.len() - 8..];
        ReplicaId::new(format!("{}-{suffix}", host.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())))
            .or_else(|_| ReplicaId::new(format!("bosun-{suffix}")))
            .unwrap_or_else(|_| unreachable!("a valid replica id"))
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().take(100).collect::<String>())
        .filter(|h| !h.is_empty())
}

#[derive(Debug, Clone)]
enum Role {
    Follower {
        /// The lease as last seen, and since when (on this replica's clock) it has not changed.
        watching: Option<(LeaseObservation, Timestamp)>,
    },
    Leader {
        fence: Fence,
        /// The last successful renewal (or the take-over), on this replica's clock.
        renewed: Timestamp,
        /// When this replica took the lease.
        since: Timestamp,
    },
}

/// What one [`Elector::tick`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    None,
    Elected { epoch: u64 },
    Deposed { reason: String },
}

/// One replica's view of the election.
#[derive(Debug)]
pub struct Elector {
    settings: ElectionSettings,
    lease: LeaseName,
    role: Mutex<Role>,
    started_at: Timestamp,
}

/// Replicas not seen this long are dropped from `bosun replicas list`.
const FORGET_REPLICAS_AFTER: Duration = Duration::from_secs(7 * 86_400);

impl Elector {
    pub fn new(settings: ElectionSettings, started_at: Timestamp) -> Self {
        Self { settings, lease: leader_lease(), role: Mutex::new(Role::Follower { watching: None }), started_at }
    }

    /// Whether this replica is the only server its store can have.
    pub fn exclusive(&self) -> bool {
        self.settings.exclusive
    }

    fn role(&self) -> Role {
        self.role.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_role(&self, role: Role) {
        *self.role.lock().unwrap_or_else(|p| p.into_inner()) = role;
    }

    /// The fence of this replica's leadership, if it leads and has renewed recently
    /// enough that nobody can have taken over.
    pub fn fence(&self, now: Timestamp) -> Option<Fence> {
        match self.role() {
            Role::Leader { fence, renewed, .. }
                if now.saturating_since(renewed) < self.settings.lease.saturating_sub(self.settings.safety_margin) =>
            {
                Some(fence)
            }
            _ => None,
        }
    }

    /// Since when this replica leads, if it does.
    pub fn leading_since(&self, now: Timestamp) -> Option<Timestamp> {
        self.fence(now).and(match self.role() {
            Role::Leader { since, .. } => Some(since),
            Role::Follower { .. } => None,
        })
    }

    /// How long until this follower may take over the lease it watches (zero: at its next
    /// look), or `None` when it watches none (it leads, or has not looked yet).
    pub fn takeover_due_in(&self, now: Timestamp) -> Option<std::time::Duration> {
        match self.role() {
            Role::Follower { watching: Some((_, since)) } => {
                Some(self.settings.lease.saturating_sub(now.saturating_since(since)))
            }
            Role::Follower { watching: None } | Role::Leader { .. } => None,
        }
    }

    /// One election step: a leader renews, a follower looks and takes over when it may.
    pub async fn tick(&self, store: &SharedStore, clock: &dyn Clock, metrics: &Metrics) -> Transition {
        let now = clock.now();
        self.announce(store, now).await;
        let transition = match self.role() {
            Role::Leader { fence, renewed, since } => self.renew(store, now, fence, renewed, since, metrics).await,
            Role::Follower { watching } => self.look(store, now, watching).await,
        };
        let leading = self.fence(clock.now());
        metrics.leadership(leading.as_ref().map(|f| f.epoch));
        match &transition {
            Transition::Elected { epoch } => {
                tracing::info!(replica = %self.settings.replica_id, epoch, "this replica now leads");
            }
            Transition::Deposed { reason } => {
                tracing::warn!(replica = %self.settings.replica_id, %reason, "this replica no longer leads");
            }
            Transition::None => {}
        }
        transition
    }

    async fn renew(
        &self,
        store: &SharedStore,
        now: Timestamp,
        fence: Fence,
        renewed: Timestamp,
        since: Timestamp,
        metrics: &Metrics,
    ) -> Transition {
        let batch = WriteBatch::new(self.actor(), "lease renewed").renew_lease(fence.clone());
        match store.commit(batch).await {
            Ok(_) => {
                self.set_role(Role::Leader { fence, renewed: now, since });
                Transition::None
            }
            Err(StoreError::Fenced { current, .. }) => {
                self.set_role(Role::Follower { watching: None });
                Transition::Deposed { reason: format!("the lease moved on: {current}") }
            }
            Err(error) => {
                metrics.lease_renew_failed();
                if self.fence(now).is_none() {
                    // Out of time: stop leading before anyone may take over. The next
                    // look finds the lease still ours (or taken) and acts on it.
                    self.set_role(Role::Follower { watching: None });
                    Transition::Deposed {
                        reason: format!("could not renew for {:?} ({error})", now.saturating_since(renewed)),
                    }
                } else {
                    tracing::warn!(%error, "renewing the leader lease failed; retrying");
                    Transition::None
                }
            }
        }
    }

    async fn look(
        &self,
        store: &SharedStore,
        now: Timestamp,
        watching: Option<(LeaseObservation, Timestamp)>,
    ) -> Transition {
        let lease = match store.lease(&self.lease).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::debug!(%error, "reading the leader lease failed");
                return Transition::None;
            }
        };
        let me = &self.settings.replica_id;
        let observed = match &lease {
            // Free, or ours from before a restart: no need to wait.
            None => None,
            Some(Lease { holder: None, .. }) => None,
            Some(l) if l.holder.as_ref() == Some(me) => None,
            Some(l) if self.settings.exclusive => Some(l.observation()),
            Some(l) => {
                let seen = l.observation();
                match watching {
                    Some((previous, since)) if previous == seen => {
                        if now.saturating_since(since) < self.settings.lease {
                            self.set_role(Role::Follower { watching: Some((previous, since)) });
                            return Transition::None;
                        }
                        Some(seen)
                    }
                    _ => {
                        self.set_role(Role::Follower { watching: Some((seen, now)) });
                        return Transition::None;
                    }
                }
            }
        };
        let reason = match &lease {
            Some(Lease { holder: Some(holder), epoch, .. }) if holder != me => {
                format!("{me} takes over from {holder} (epoch {epoch} stopped renewing)")
            }
            _ => format!("{me} takes the free lease"),
        };
        let batch = WriteBatch::new(self.actor(), reason).acquire_lease(self.lease.clone(), me.clone(), observed);
        match store.commit(batch).await {
            Ok(_) => match store.lease(&self.lease).await {
                Ok(Some(lease)) if lease.holder.as_ref() == Some(me) => {
                    let epoch = lease.epoch;
                    let fence = lease.fence().unwrap_or_else(|| unreachable!("held by this replica"));
                    self.set_role(Role::Leader { fence, renewed: now, since: now });
                    Transition::Elected { epoch }
                }
                _ => {
                    self.set_role(Role::Follower { watching: None });
                    Transition::None
                }
            },
            Err(error) => {
                tracing::debug!(%error, "taking the leader lease failed");
                self.set_role(Role::Follower { watching: None });
                Transition::None
            }
        }
    }

    /// Tells the store this replica is alive (`bosun replicas list`); best effort.
    async fn announce(&self, store: &SharedStore, now: Timestamp) {
        let presence = ReplicaPresence {
            replica_id: self.settings.replica_id.clone(),
            address: self.settings.advertise.clone().unwrap_or_default(),
            started_at: self.started_at,
            last_seen: now,
        };
        if let Err(error) = store.record_replica(&presence, now - FORGET_REPLICAS_AFTER).await {
            tracing::debug!(%error, "announcing this replica failed");
        }
    }

    /// Gives the lease up (a clean shutdown), so a follower takes over at its next look
    /// instead of after a lease duration.
    pub async fn release(&self, store: &SharedStore) {
        let Role::Leader { fence, .. } = self.role() else { return };
        self.set_role(Role::Follower { watching: None });
        match store.commit(WriteBatch::new(self.actor(), "leader shutting down").release_lease(fence)).await {
            Ok(_) => tracing::info!(replica = %self.settings.replica_id, "leader lease released"),
            Err(error) => {
                tracing::warn!(%error, "releasing the leader lease failed; a follower takes over when it expires")
            }
        }
    }

    fn actor(&self) -> Actor {
        Actor::system(&format!("election:{}", self.settings.replica_id))
    }
}
