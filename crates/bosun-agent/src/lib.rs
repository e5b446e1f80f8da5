//! bosun's node agent, as a library: the `bosun agent` command runs one per GPU machine,
//! and the simulator runs a hundred thousand in one process against fake GPUs.
//!
//! **Architecture Invariant:** the agent knows neither the wire protocol nor the server.
//! It talks to a [`ControlPlane`] trait (the RPC client implements it elsewhere) and reads
//! GPUs through a [`GpuSource`] trait. It judges nothing the server's policy judges: raw
//! events go up unclassified.
//!
//! Module map:
//! - `runtime`: [`Agent`] — register with retry, then heartbeat, health, command-poll and
//!   workload loops; re-register on `not_found`; stop on cancellation or TERMINATE.
//! - `control_plane`: the [`ControlPlane`] trait and the types it carries; `network`: a
//!   [`NetworkSwitch`] that cuts an agent off for the simulator's `network` fault.
//! - [`gpu`]: the [`GpuSource`] trait; [`gpu::fake`] ([`FakeGpus`], injectable faults and
//!   simulated processes),
//!   [`gpu::nvml`] ([`Nvml`], real GPUs), and the kernel-log XID parser.
//! - `checks`: the `boot`, `nvml` and `gpu` health checks.
//! - `commands` and `hooks`: running delivered commands once each, with site [`Hooks`].
//! - [`procfs`]: host CPU and memory from `/proc`, and the [`ProcessTable`] of GPU
//!   processes (name, cgroup, start time).
//! - [`cgroup`]: the container and Kubernetes pod a process runs in, from its cgroup path.
//! - `workloads`: the GPU workloads (a process on several GPUs is one), and when they are
//!   reported (on change, and at least every inventory interval).
//! - `backoff`: exponential backoff with jitter, seeded per node.
//!
//! Running an agent against fake GPUs:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use bosun_agent::*;
//! # async fn example(control: Arc<dyn ControlPlane>) -> Result<(), AgentError> {
//! let gpus = Arc::new(FakeGpus::new(8).with_seed(7));
//! let options = AgentOptions::new("node-7".parse().expect("valid node id"));
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let agent = Agent::new(options, gpus.clone(), control);
//! let running = tokio::spawn(agent.run(shutdown.clone()));
//! gpus.inject(Fault::Xid { gpu: 3, code: 79 }).expect("GPU 3 exists");
//! shutdown.cancel();
//! # let _ = running.await;
//! # Ok(())
//! # }
//! ```

mod backoff;
pub mod cgroup;
mod checks;
mod commands;
mod control_plane;
mod error;
pub mod gpu;
mod hooks;
mod network;
mod pending;
pub mod procfs;
mod runtime;
mod workloads;

pub use bosun_core::fault::{
    CLEAR_PROCESSES_COMMAND, FAULT_COMMAND, FakeProcess, Fault, FaultError, FaultKind, PROCESS_COMMAND, RECOVER_COMMAND,
};
pub use commands::NodeFlags;
pub use control_plane::{AckOutcome, AgentConfig, CommandAck, ControlPlane, DeliveredCommand, RpcError};
pub use error::AgentError;
pub use gpu::fake::{FakeGpus, GpuModel, fault_hooks, process_hooks};
pub use gpu::nvml::Nvml;
pub use gpu::{DeviceError, DiagnosticReport, GpuError, GpuProcess, GpuSource, ProcessKind};
pub use hooks::{Hook, HookContext, HookFuture, Hooks};
pub use network::NetworkSwitch;
pub use procfs::{HostMetrics, HostSample, ProcessTable};
pub use runtime::{Agent, AgentOptions, AgentOutcome};
