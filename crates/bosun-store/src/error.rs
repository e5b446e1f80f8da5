//! The store's typed errors. Every backend maps its failures onto these, so the API can map
//! them to RPC codes in one place and callers can retry exactly what is retryable.

use bosun_core::{Fence, LeaseName, ResourceKind, Revision, TransitionError, ValidationError};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: ResourceKind, id: String },

    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: ResourceKind, id: String },

    /// Compare-and-set failed: someone else changed the record since it was read.
    #[error(
        "{kind} {id} was changed concurrently (expected revision {expected}, found {actual}); read it again and retry"
    )]
    Conflict { kind: ResourceKind, id: String, expected: Revision, actual: Revision },

    /// The write asks for a status change its lifecycle does not allow.
    #[error("{id}: {transition}")]
    InvalidTransition { id: String, transition: TransitionError },

    /// The request itself is wrong (a field value, a cursor, an immutable field changed).
    #[error(transparent)]
    Invalid(#[from] ValidationError),

    /// A write made for a lease's holder in an epoch that is over: the writer is no longer
    /// the leader. Nothing was written; never retried as is.
    #[error("fenced: {fence} is no longer current ({current}); this replica is not the leader")]
    Fenced { fence: Fence, current: String },

    /// A candidate tried to take a lease that is held and has changed since it observed it
    /// (renewed, or taken by another replica).
    #[error("lease {lease} is held by {holder} (epoch {epoch}) and changed since it was observed")]
    LeaseHeld { lease: LeaseName, holder: String, epoch: u64 },

    /// The write is well formed but the record is not in a state that allows it (an
    /// approval already decided). Not retried as is.
    #[error("{message}")]
    FailedPrecondition { message: String },

    /// A value is larger than the store accepts (an artifact over the configured limit).
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge { what: String, size: u64, limit: u64 },

    /// The store cannot be reached or is overloaded; the operation may be retried.
    #[error("store unavailable: {message}")]
    Unavailable { message: String },

    /// The store can no longer write where it was opened (its SQLite file was deleted or
    /// replaced). Not retryable: the process must stop and be restarted on a sound store.
    #[error("store lost: {message}")]
    Lost { message: String },

    /// Stored data cannot be decoded: it was written by something other than bosun, or
    /// by an incompatible version. Never retried.
    #[error("stored {what} is corrupt: {problem}")]
    Corrupt { what: String, problem: String },
}

impl StoreError {
    pub fn not_found(kind: ResourceKind, id: impl ToString) -> Self {
        StoreError::NotFound { kind, id: id.to_string() }
    }

    pub fn already_exists(kind: ResourceKind, id: impl ToString) -> Self {
        StoreError::AlreadyExists { kind, id: id.to_string() }
    }

    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        StoreError::Invalid(ValidationError::new(field, problem))
    }

    pub fn corrupt(what: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        StoreError::Corrupt { what: what.into(), problem: problem.to_string() }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable { message: message.into() }
    }

    /// True for errors a caller may retry as is (the store was unreachable or busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// A short, stable label for metrics (`not_found`, `conflict`...).
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::AlreadyExists { .. } => "already_exists",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Fenced { .. } => "fenced",
            StoreError::LeaseHeld { .. } => "lease_held",
            StoreError::InvalidTransition { .. } => "invalid_transition",
            StoreError::Invalid(_) => "invalid",
            StoreError::FailedPrecondition { .. } => "failed_precondition",
            StoreError::TooLarge { .. } => "too_large",
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Lost { .. } => "lost",
            StoreError::Corrupt { .. } => "corrupt",
        }
    }
}
