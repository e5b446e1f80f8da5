//! Where bosun gets machines from.
//!
//! A [`Provider`] provisions, terminates and lists instances on one cloud account (or
//! locally, for demos and tests). The pool reconciler in bosun-server decides *when*; a
//! provider only does what it is told and reports errors in a vocabulary the reconciler
//! can act on ([`ProviderError`]: retry later, try another provider, or give up).
//!
//! **Architecture Invariant:** providers hold no state bosun depends on. Every instance a
//! provider creates carries bosun's instance id as a tag/label/name, so
//! [`Provider::list`] lets the reconciler match the cloud's view against the store after a
//! restart; nothing here is the only record of a machine.
//!
//! Layout:
//! - [`catalog`]: abstract instance types (`h100-8x`) and what each provider calls them.
//! - `provider.rs`: the trait and the types it carries.
//! - [`fake`]: in-process agents on fake GPUs (demos, tests, the simulator).

pub mod catalog;
pub mod fake;
mod provider;

pub use catalog::{InstanceTypeSpec, resolve_instance_type};
pub use provider::{
    Bootstrap, InstanceTypeOffer, Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest,
    Provisioned,
};
