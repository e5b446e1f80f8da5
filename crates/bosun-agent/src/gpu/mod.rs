//! Where GPU facts come from: real devices through NVML, or fake GPUs with injectable
//! faults for tests and the simulator. The agent sees only [`GpuSource`].
//!
//! **Architecture Invariant:** a missing NVML library is an error the operator sees, never
//! a silent switch to fake GPUs: a fleet of "healthy" fake H100s on a broken machine is
//! worse than an agent that refuses to start.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use bosun_core::{Gpu, GpuSample, HealthEvent};

mod events;
pub mod fake;
mod kmsg;
pub mod nvml;

/// A machine's GPUs, as the agent observes them.
///
/// Calls may block on hardware (NVML can stall for seconds on a failing GPU); sources keep
/// such work off the async runtime's threads.
#[async_trait]
pub trait GpuSource: Send + Sync + fmt::Debug {
    /// The GPU inventory, for registration. Fails while the GPUs cannot be initialised.
    async fn discover(&self) -> Result<Vec<Gpu>, GpuError>;

    /// How many GPUs are present and accessible: the `boot` check, cheaper than
    /// [`GpuSource::discover`].
    async fn device_count(&self) -> Result<u32, GpuError>;

    /// Current readings of every GPU. The outer error means the backend itself failed; an
    /// inner one means that one device did.
    async fn read_devices(&self) -> Result<Vec<Result<GpuSample, DeviceError>>, GpuError>;

    /// Every process running on the GPUs: one entry per process and GPU (and per kind, so
    /// a process with compute and graphics contexts on a GPU appears twice). All or
    /// nothing: when one GPU cannot say, the call fails rather than leave its processes
    /// out, since a report missing them would say they ended.
    async fn running_processes(&self) -> Result<Vec<GpuProcess>, GpuError>;

    /// Raw health events observed since the previous call. Each event is returned once;
    /// ongoing conditions (a GPU running hot) produce a fresh event on every call.
    async fn collect_events(&self) -> Result<Vec<HealthEvent>, GpuError>;

    /// Runs the diagnostic named by a RUN_DIAGNOSTIC command's `test` parameter.
    async fn run_diagnostic(&self, test: &str) -> DiagnosticReport;

    /// Resets GPU `index` (a RESET_GPU remediation step, when no `reset_gpu` hook is
    /// configured): `Ok` with what was done, `Err` with why not.
    async fn reset_gpu(&self, index: u32) -> Result<String, String>;

    /// What a REBOOT does when no reboot hook is configured. A real machine cannot reboot
    /// itself through its GPU library, so by default this fails; fake machines simulate
    /// the reboot.
    async fn reboot_without_hook(&self) -> Result<String, String> {
        Err("no reboot hook configured".into())
    }
}

/// One process running on one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuProcess {
    pub gpu: u32,
    pub pid: u32,
    pub kind: ProcessKind,
    /// GPU memory it uses on this GPU; `None` when the driver does not say (NVML under
    /// Windows' WDDM, or without the permission to see other users' processes).
    pub used_memory_bytes: Option<u64>,
    /// Its name when the backend knows it (fake GPUs do); NVML leaves it to `/proc`.
    pub name: Option<String>,
}

/// What a process does on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    /// A compute context (CUDA).
    Compute,
    /// A graphics context (OpenGL, Vulkan).
    Graphics,
}

/// The GPU backend as a whole failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// NVML could not be loaded or initialised; the agent cannot see real GPUs.
    #[error("NVML is not available ({reason}); install the NVIDIA driver or run with --fake-gpus N")]
    NvmlUnavailable { reason: String },
    /// The GPUs could not be initialised (the machine did not boot cleanly).
    #[error("GPU initialization failed: {0}")]
    Init(String),
    /// The backend stopped answering (NVML errors on every call).
    #[error("GPU backend failed: {0}")]
    Backend(String),
}

/// One GPU failed to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GPU {index}: {message}")]
pub struct DeviceError {
    pub index: u32,
    pub message: String,
}

/// The result of a diagnostic run, reported in a command acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticReport {
    pub passed: bool,
    pub message: String,
    pub details: BTreeMap<String, String>,
}
