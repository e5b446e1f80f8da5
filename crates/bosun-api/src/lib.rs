//! bosun's wire contract.
//!
//! **API Boundary.** **Architecture Invariant:** this is the only crate that knows wire
//! types. Everything else speaks `bosun_core`; [`convert`] translates in both directions
//! and validates what comes in, naming the offending field. [`agent_client`] is the
//! agent's `ControlPlane` over the network.

/// Generated from `proto/bosun/v1/*.proto` and `proto/navarch/*.proto` by build.rs.
#[allow(clippy::all, missing_debug_implementations)]
pub mod proto {
    connectrpc::include_generated!();
}

pub mod agent_client;
pub mod convert;
pub mod navarch_wire;
pub mod servers;
pub mod transport;

pub use agent_client::AgentClient;
pub use transport::{ClientTls, Transport};

pub use proto::bosun::v1;
/// Navarch's control-plane API (`navarch.ControlPlaneService`), served for agents and CLIs
/// that still speak it.
pub use proto::navarch;
