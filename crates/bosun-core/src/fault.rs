//! The fault vocabulary: what can be injected into a machine's (fake) GPUs, as scenarios,
//! the `fake-fault` command and `bosun nodes inject-fault` name it. It lives in core so
//! that the server (which validates injections), the simulator and the agent (which runs
//! them) share one definition. Beside faults, fake GPUs run simulated processes
//! ([`FakeProcess`], the `fake-process` command), which the agent reports as GPU workloads.

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
    #[error("this machine already runs {max} fake processes; end some with {CLEAR_PROCESSES_COMMAND}")]
    TooManyProcesses { max: usize },
}

/// A number parameter, `default` when absent.
fn number<T: FromStr>(parameters: &BTreeMap<String, String>, name: &'static str, default: T) -> Result<T, FaultError> {
    match parameters.get(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| FaultError::BadParameter { name, problem: format!("{text:?} is not a valid number") }),
    }
}

impl Fault {
    /// A fault described by command parameters, as the `fake-fault` command carries it:
    /// `fault` (a [`FaultKind`] name, default `xid_error`), `gpu` (default 0), and per kind
    /// `code` (XID, default 79), `celsius` (thermal, default 95; without `gpu` every GPU),
    /// `count` (corrected ECC, default 101) or `link` (NVLink, default 0).
    pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Result<Fault, FaultError> {
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
/// The custom command that starts a simulated process on a fake GPU.
pub const PROCESS_COMMAND: &str = "fake-process";
/// The custom command that ends one simulated process (`pid`) or all of them.
pub const CLEAR_PROCESSES_COMMAND: &str = "fake-process-clear";

/// A process simulated on one fake GPU, as the `fake-process` command describes it. The
/// same pid on several GPUs is one process using each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProcess {
    pub gpu: u32,
    pub pid: u32,
    pub name: String,
    /// GPU memory it uses on this GPU.
    pub memory_bytes: u64,
}

/// The largest pid Linux hands out (`PID_MAX_LIMIT` on 64-bit machines).
pub const MAX_PID: u32 = 4_194_304;

/// The longest name a fake process may have (Linux keeps 15 bytes of a process's name;
/// the longer bound leaves room for names other systems report).
pub const MAX_FAKE_PROCESS_NAME: usize = 64;

impl FakeProcess {
    /// A process described by command parameters: `pid` (required, 1 to [`MAX_PID`]),
    /// `gpu` (default 0), `name` (default `python`, printable, at most
    /// [`MAX_FAKE_PROCESS_NAME`] bytes) and `memory` (bytes, or with a unit: `512MiB`,
    /// `8GiB`; default 1 GiB).
    pub fn from_parameters(parameters: &BTreeMap<String, String>) -> Result<FakeProcess, FaultError> {
        let pid = pid_parameter(parameters)?
            .ok_or(FaultError::BadParameter { name: "pid", problem: "is required".to_owned() })?;
        let name = parameters.get("name").map_or("python", |n| n.trim());
        if name.is_empty() || name.len() > MAX_FAKE_PROCESS_NAME || name.chars().any(char::is_control) {
            return Err(FaultError::BadParameter {
                name: "name",
                problem: format!("{name:?} must be 1 to {MAX_FAKE_PROCESS_NAME} printable bytes"),
            });
        }
        let memory_bytes = match parameters.get("memory") {
            None => 1 << 30,
            Some(text) => crate::size::parse_bytes(text).ok_or_else(|| FaultError::BadParameter {
                name: "memory",
                problem: format!("{text:?} is not a size such as 1073741824, 512MiB or 8GiB"),
            })?,
        };
        Ok(FakeProcess { gpu: number(parameters, "gpu", 0u32)?, pid, name: name.to_owned(), memory_bytes })
    }
}

impl fmt::Display for FakeProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FakeProcess { gpu, pid, name, memory_bytes } = self;
        write!(f, "process {pid} ({name}) using {} MiB of GPU {gpu}", memory_bytes >> 20)
    }
}

/// The `pid` parameter of [`PROCESS_COMMAND`] and [`CLEAR_PROCESSES_COMMAND`], if given.
pub fn pid_parameter(parameters: &BTreeMap<String, String>) -> Result<Option<u32>, FaultError> {
    let Some(text) = parameters.get("pid") else { return Ok(None) };
    match text.trim().parse::<u32>() {
        Ok(pid) if (1..=MAX_PID).contains(&pid) => Ok(Some(pid)),
        _ => {
            Err(FaultError::BadParameter { name: "pid", problem: format!("{text:?} is not a pid from 1 to {MAX_PID}") })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn fake_processes_are_described_by_command_parameters() {
        assert_eq!(
            FakeProcess::from_parameters(&params(&[("pid", "4242")])),
            Ok(FakeProcess { gpu: 0, pid: 4242, name: "python".into(), memory_bytes: 1 << 30 })
        );
        let process = FakeProcess::from_parameters(&params(&[
            ("pid", "7"),
            ("gpu", "3"),
            ("name", "trainer"),
            ("memory", "512MiB"),
        ]))
        .expect("valid");
        assert_eq!(process, FakeProcess { gpu: 3, pid: 7, name: "trainer".into(), memory_bytes: 512 << 20 });
        assert_eq!(process.to_string(), "process 7 (trainer) using 512 MiB of GPU 3");
        assert_eq!(
            FakeProcess::from_parameters(&params(&[("pid", "1"), ("memory", "2048")])).expect("valid").memory_bytes,
            2048
        );
    }

    #[test]
    fn bad_fake_process_parameters_are_named() {
        let long = "x".repeat(MAX_FAKE_PROCESS_NAME + 1);
        let cases = [
            (params(&[]), "parameter pid: is required"),
            (params(&[("pid", "0")]), "parameter pid: \"0\" is not a pid from 1 to 4194304"),
            (params(&[("pid", "4194305")]), "parameter pid: \"4194305\" is not a pid from 1 to 4194304"),
            (params(&[("pid", "x")]), "parameter pid: \"x\" is not a pid from 1 to 4194304"),
            (params(&[("pid", "1"), ("gpu", "-1")]), "parameter gpu: \"-1\" is not a valid number"),
            (params(&[("pid", "1"), ("name", "")]), "parameter name: \"\" must be 1 to 64 printable bytes"),
            (params(&[("pid", "1"), ("name", "a\nb")]), "parameter name: \"a\\nb\" must be 1 to 64 printable bytes"),
            (
                params(&[("pid", "1"), ("memory", "8GB")]),
                "parameter memory: \"8GB\" is not a size such as 1073741824, 512MiB or 8GiB",
            ),
            (
                params(&[("pid", "1"), ("memory", "9000000TiB")]),
                "parameter memory: \"9000000TiB\" is not a size such as 1073741824, 512MiB or 8GiB",
            ),
        ];
        for (parameters, expected) in cases {
            assert_eq!(FakeProcess::from_parameters(&parameters).unwrap_err().to_string(), expected, "{parameters:?}");
        }
        let error = FakeProcess::from_parameters(&params(&[("pid", "1"), ("name", &long)])).unwrap_err();
        assert!(matches!(error, FaultError::BadParameter { name: "name", .. }), "{error}");
        assert_eq!(pid_parameter(&params(&[])), Ok(None));
        assert_eq!(pid_parameter(&params(&[("pid", " 12 ")])), Ok(Some(12)));
    }
}
