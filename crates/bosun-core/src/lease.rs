//! Leases: how several control-plane replicas agree on one leader, through the store.
//!
//! A lease is held by at most one replica. Each take-over raises its `epoch`; the holder
//! proves it is still alive by renewing (`renewals` grows), and gives the lease up on a
//! clean shutdown (`holder` becomes empty). Expiry is never judged from the stored times
//! (replicas' clocks differ): a candidate takes over only after it has observed the same
//! [`LeaseObservation`] for a whole lease duration on its own monotonic clock, as
//! Kubernetes' client-go leader election does. The store only compares and sets.
//!
//! Every write made by leader-only work carries a [`Fence`]; the store checks it against
//! the lease in the same transaction, so a deposed leader can never commit.

use serde::{Deserialize, Serialize};

use crate::{LeaseName, ReplicaId, Revision, Timestamp};

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: LeaseName,
    /// Who holds it; `None` once released.
    pub holder: Option<ReplicaId>,
    /// Raised by every take-over, starting at 1.
    pub epoch: u64,
    /// Raised with every change record: take-overs and releases (not renewals).
    pub revision: Revision,
    /// Raised by every renewal of the current holder.
    pub renewals: u64,
    /// When the current epoch began, on the taker's clock (for people; never judged).
    pub acquired_at: Timestamp,
    /// When the holder last renewed, on its clock (for people; never judged).
    pub renewed_at: Timestamp,
}

impl Lease {
    /// What a candidate compares over time to decide that the holder stopped renewing.
    pub fn observation(&self) -> LeaseObservation {
        LeaseObservation { holder: self.holder.clone(), epoch: self.epoch, renewals: self.renewals }
    }

    /// The fence of the current holder, if any.
    pub fn fence(&self) -> Option<Fence> {
        self.holder.clone().map(|holder| Fence { lease: self.name.clone(), holder, epoch: self.epoch })
    }
}

/// A lease as a candidate saw it: unchanged for a whole lease duration means its holder is
/// gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseObservation {
    pub holder: Option<ReplicaId>,
    pub epoch: u64,
    pub renewals: u64,
}

/// Proof that a write comes from the holder of a lease in a given epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub lease: LeaseName,
    pub holder: ReplicaId,
    pub epoch: u64,
}

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lease {} epoch {} held by {}", self.lease, self.epoch, self.holder)
    }
}

/// A replica as it last announced itself (soft state: written by every replica at every
/// election step, never a change record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPresence {
    pub replica_id: ReplicaId,
    /// Where its API listens, as clients should reach it.
    pub address: String,
    pub started_at: Timestamp,
    pub last_seen: Timestamp,
}
