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
