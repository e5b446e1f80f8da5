//! The fault vocabulary: what can be injected into a machine's (fake) GPUs, as scenarios,
//! the `fake-fault` command and `bosun nodes inject-fault` name it. It lives in core so
//! that the server (which validates injections), the simulator and the agent (which runs
//! them) share one definition.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A fault to inject into fake GPUs.
///
/// One-shot faults (XID, ECC, NVLink, PCIe, power) produce their event once, at the next
/// collection; conditions (thermal, device, backend and boot failures) show on every call
/// until recovered. Either kind stays active, failing diagnostics, until recovered.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Xid {
        gpu: u32,
        code: u32,
    },
    /// One GPU, or every GPU when `gpu` is `None`, runs at `celsius`.
    Thermal {
        gpu: Option<u32>,
        celsius: f64,
    },
    /// Corrected ECC errors; `count` is the counter value to report.
    EccSingleBit {
        gpu: u32,
        count: u64,
    },
    /// An uncorrectable ECC error (the simulator's `memory_error`).
    EccDoubleBit {
        gpu: u32,
    },
    Nvlink {
        gpu: u32,
        link: u32,
    },
    Pcie {
        gpu: u32,
    },
    PowerBrake {
        gpu: u32,
    },
    /// Every call about this GPU fails.
    DeviceError {
        gpu: u32,
    },
    /// Every GPU call fails, as when NVML stops answering.
    BackendFailure,
    /// GPU initialisation fails: the agent cannot register while this lasts.
    BootFailure,
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Xid { .. } => FaultKind::Xid,
            Fault::Thermal { .. } => FaultKind::Thermal,
            Fault::EccSingleBit { .. } => FaultKind::EccSingleBit,
            Fault::EccDoubleBit { .. } => FaultKind::EccDoubleBit,
            Fault::Nvlink { .. } => FaultKind::Nvlink,
            Fault::Pcie { .. } => FaultKind::Pcie,
            Fault::PowerBrake { .. } => FaultKind::Power,
            Fault::DeviceError { .. } => FaultKind::DeviceError,
            Fault::BackendFailure => FaultKind::BackendFailure,
            Fault::BootFailure => FaultKind::BootFailure,
        }
    }

    /// The GPU the fault is on; `None` for faults of the whole machine.
    pub fn gpu(&self) -> Option<u32> {
        match *self {
            Fault::Xid { gpu, .. }
            | Fault::EccSingleBit { gpu, .. }
            | Fault::EccDoubleBit { gpu }
            | Fault::Nvlink { gpu, .. }
            | Fault::Pcie { gpu }
            | Fault::PowerBrake { gpu }
            | Fault::DeviceError { gpu } => Some(gpu),
            Fault::Thermal { gpu, .. } => gpu,
            Fault::BackendFailure | Fault::BootFailure => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Xid { gpu, code } => write!(f, "XID {code} on GPU {gpu}"),
            Fault::Thermal { gpu: Some(gpu), celsius } => write!(f, "GPU {gpu} at {celsius:.0} C"),
            Fault::Thermal { gpu: None, celsius } => write!(f, "all GPUs at {celsius:.0} C"),
            Fault::EccSingleBit { gpu, count } => write!(f, "{count} corrected ECC errors on GPU {gpu}"),
            Fault::EccDoubleBit { gpu } => write!(f, "uncorrectable ECC error on GPU {gpu}"),
            Fault::Nvlink { gpu, link } => write!(f, "NVLink {link} errors on GPU {gpu}"),
            Fault::Pcie { gpu } => write!(f, "PCIe replays on GPU {gpu}"),
            Fault::PowerBrake { gpu } => write!(f, "power brake on GPU {gpu}"),
            Fault::DeviceError { gpu } => write!(f, "device error on GPU {gpu}"),
            Fault::BackendFailure => f.write_str("NVML failure"),
            Fault::BootFailure => f.write_str("boot failure"),
        }
    }
}

/// A family of faults, as scenarios name them in `failure_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Xid,
    Thermal,
    EccSingleBit,
    EccDoubleBit,
    Nvlink,
    Pcie,
    Power,
    DeviceError,
    BackendFailure,
    BootFailure,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::Xid,
        FaultKind::Thermal,
        FaultKind::EccSingleBit,
        FaultKind::EccDoubleBit,
        FaultKind::Nvlink,
        FaultKind::Pcie,
        FaultKind::Power,
        FaultKind::DeviceError,
        FaultKind::BackendFailure,
        FaultKind::BootFailure,
    ];

    /// The scenario name first (Navarch's, where it has one), then accepted aliases.
    fn names(self) -> &'static [&'static str] {
        match self {
            FaultKind::Xid => &["xid_error", "xid"],
            FaultKind::Thermal => &["temperature", "thermal"],
            FaultKind::EccSingleBit => &["ecc_sbe", "ecc_sbe_error"],
            FaultKind::EccDoubleBit => &["memory_error", "ecc_dbe"],
            FaultKind::Nvlink => &["nvlink_error", "nvlink"],
            FaultKind::Pcie => &["pcie_error", "pcie"],
            FaultKind::Power => &["power_error", "power"],
            FaultKind::DeviceError => &["device_error"],
            FaultKind::BackendFailure => &["nvml_failure", "backend_error"],
            FaultKind::BootFailure => &["boot_failure"],
        }
    }

    /// The scenario name (`xid_error`, `temperature`, `memory_error`...).
    pub fn as_str(self) -> &'static str {
        self.names()[0]
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = FaultError;
    /// Parses a scenario `failure_type` in any case. The `network` failure is not a GPU
    /// fault: the simulator cuts the agent's connection with a
    /// `NetworkSwitch` (bosun-agent) instead.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|kind| kind.names().iter().any(|name| name.eq_ignore_ascii_case(wanted)))
            .ok_or_else(|| FaultError::UnknownKind(text.to_owned()))
    }
}

/// A fault could not be injected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("GPU {gpu} does not exist: this machine has {count} GPUs")]
    UnknownGpu { gpu: u32, count: u32 },
    #[error("temperature {0} is not a number of degrees")]
    InvalidTemperature(f64),
    #[error(
        "unknown failure type {0:?}: expected xid_error, temperature, ecc_sbe, memory_error, nvlink_error, \
         pcie_error, power_error, device_error, nvml_failure (backend_error) or boot_failure"
    )]
    UnknownKind(String),
    #[error("parameter {name}: {problem}")]
    BadParameter { name: &'static str, problem: String },
}

impl Fault {
    /// A fault described by command parameters, as the `fake-fault` command carries it:
    /// `fault` (a [`FaultKind`] name, default `xid_error`), `gpu` (default 0), and per kind
    /// `code` (XID, default 79), `celsius` (thermal, default 95; without `gpu` every GPU),
    /// `count` (corrected ECC, default 101) or `link` (NVLink, default 0).
    pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Result<Fault, FaultError> {
        fn number<T: FromStr>(
            parameters: &BTreeMap<String, String>,
            name: &'static str,
            default: T,
        ) -> Result<T, FaultError> {
            match parameters.get(name) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse()
                    .map_err(|_| FaultError::BadParameter { name, problem: format!("{text:?} is not a valid number") }),
            }
        }
        let kind: FaultKind = parameters.get("fault").map_or(Ok(FaultKind::Xid), |k| k.parse())?;
        let gpu = number(parameters, "gpu", 0u32)?;
        Ok(match kind {
            FaultKind::Xid => Fault::Xid { gpu, code: number(parameters, "code", 79)? },
            FaultKind::Thermal => Fault::Thermal {
                gpu: parameters.contains_key("gpu").then_some(gpu),
                celsius: number(parameters, "celsius", 95.0)?,
            },
            FaultKind::EccSingleBit => Fault::EccSingleBit { gpu, count: number(parameters, "count", 101)? },
            FaultKind::EccDoubleBit => Fault::EccDoubleBit { gpu },
            FaultKind::Nvlink => Fault::Nvlink { gpu, link: number(parameters, "link", 0)? },
            FaultKind::Pcie => Fault::Pcie { gpu },
            FaultKind::Power => Fault::PowerBrake { gpu },
            FaultKind::DeviceError => Fault::DeviceError { gpu },
            FaultKind::BackendFailure => Fault::BackendFailure,
            FaultKind::BootFailure => Fault::BootFailure,
        })
    }
}

/// The custom command that injects a fault into an agent's fake GPUs (demos and tests).
pub const FAULT_COMMAND: &str = "fake-fault";
/// The custom command that recovers every injected fault.
pub const RECOVER_COMMAND: &str = "fake-recover";
