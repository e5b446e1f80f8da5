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
//! - [`process`]: each machine a local `bosun agent --fake-gpus N` process.
//! - [`lambda`], [`gcp`], [`aws`]: REST clients (EC2's signed with SigV4 in `aws/sigv4.rs`),
//!   built from configuration by [`cloud::from_config`]. Credentials come from each
//!   cloud's chain (`aws/credentials.rs`: environment, shared profile, IMDSv2 instance
//!   role; `gcp/credentials.rs`: token variables, service-account or gcloud user
//!   credentials, the GCE metadata server), which [`cloud::credential_source`] names for
//!   `bosun config check`. `http.rs` is their shared client (rustls on ring, timeouts,
//!   bounded bodies); `startup.rs` the boot script that installs and starts `bosun agent`.
//! - `mock.rs` (tests): a local HTTP mock that records requests and replays answers.
//! - [`proxmox`]: a client of a Proxmox VE cluster's API (resources, guest configurations
//!   and tasks for the inventory; clone, tags, start, stop, destroy and task status for
//!   provisioning), the `proxmox` provider ([`proxmox::ProxmoxProvider`]: VMs cloned from a
//!   template, also built by [`cloud::from_config`]), and [`proxmox::mock`], a generated
//!   cluster serving the same endpoints (tests, `bosun dev proxmox-mock`).

pub mod aws;
pub mod catalog;
pub mod cloud;
pub mod fake;
pub mod gcp;
mod http;
pub mod lambda;
#[cfg(test)]
mod mock;
#[cfg(unix)]
pub mod process;
mod provider;
pub mod proxmox;
mod startup;

pub use catalog::{InstanceTypeSpec, resolve_instance_type};
pub use http::{https_client_builder, transport_message};
pub use provider::{
    Bootstrap, InstanceTypeOffer, Provider, ProviderError, ProviderInstance, ProviderInstanceState, ProvisionRequest,
    Provisioned, SSH_PORT, SshAccess,
};
