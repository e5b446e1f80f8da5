//! bosun's durable state store.
//!
//! **Architecture Invariant:** this crate knows nothing of the API or the server. It stores
//! `bosun_core` types and nothing else; backends never call each other.
//!
//! Layout:
//! - [`store`]: the [`Store`] trait, the contract every backend implements.
//! - [`write`]: atomic [`WriteBatch`]es, the only way hard state changes.
//! - [`ledger`]: the operations ledger's stored forms, filters and write rules.
//! - [`query`]: filters and keyset pagination.
//! - [`error`]: typed [`StoreError`]s.
//! - [`location`]: store URLs (`sqlite://`, `postgres://`, `memory://`) and their selection.
//! - [`open`]: opening a store and managing its schema ([`Database`], migrations).
//! - [`transfer`]: export, import and copy between stores (the file format, checksums).
//! - `signals`: [`ChangeSignals`], how a process hears that the change log grew.
//! - `apply`: the rules of every write, once; backends implement its `Transaction` (reads and
//!   row operations in their dialect) and decide nothing.
//! - `rules`, `integrity`: checks every backend applies the same way.
//! - `memory`, `sqlite`, `postgres`: the backends.
//! - `conformance` (tests only): the behavioural suite every backend passes.

mod apply;
pub mod error;
mod integrity;
pub mod inventory;
pub mod ledger;
pub mod location;
mod memory;
pub mod open;
pub mod query;
mod rules;
pub mod server_lock;
mod signals;
mod soft_state;
mod sql;
pub mod store;
pub mod transfer;
pub mod usage;
pub mod write;

mod postgres;
mod sqlite;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod slow_log_tests;

pub use error::{Result, StoreError};
pub use ledger::{ArtifactInfo, AuditFilter, RunFilter, StoredAuditEntry, StoredRunEvent, StoredToolCall};
pub use location::{DEFAULT_STORE_URL, LocationError, StoreLocation, redact_url};
pub use memory::MemoryStore;
pub use open::{
    ConnectSettings, Database, MigrationInfo, MigrationSource, MigrationStatus, OpenError, embedded_schema_version,
    open_store,
};
pub use query::{
    ChangeFilter, CommandFilter, Cursor, InstanceFilter, NodeAfter, NodeFilter, NodeOrder, Page, PageRequest,
    all_pages, each_page,
};
pub use signals::{ChangeSignal, ChangeSignals};
pub use sqlite::SqliteDurability;
pub use store::{
    ApprovalFilter, Backend, IntegrityFinding, PoolStats, RetentionPolicy, RetentionReport, SampleRetention,
    SharedStore, Store, StoreCounts, StoreOptions,
};
pub use write::{Committed, StoredHealthReport, Write, WriteBatch, WriteOutcome};
