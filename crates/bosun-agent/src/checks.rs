//! The node-side health checks run every health interval (SPEC 3.2): `boot` (GPUs are
//! present), `nvml` (the GPU backend answers) and `gpu` (every device answers and runs
//! cool enough). Raw events travel beside them unjudged: classifying events is the
//! server's policy's job, so the agent never decides that an XID is fatal.

use std::collections::BTreeMap;

use bosun_core::{CheckResult, GpuSample, Health};
use tracing::warn;

use crate::gpu::{DeviceError, GpuError, GpuSource};

const BOOT: &str = "boot";
const NVML: &str = "nvml";
const GPU: &str = "gpu";

/// A GPU hotter than this makes the `gpu` check DEGRADED.
const DEGRADED_ABOVE_CELSIUS: f64 = 85.0;

type Readings = Result<Vec<Result<GpuSample, DeviceError>>, GpuError>;

/// Which checks the control plane asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckSet {
    boot: bool,
    nvml: bool,
    gpu: bool,
}

impl CheckSet {
    /// The checks named in `AgentConfig::enabled_checks`; an empty list means all of them.
    /// Unknown names are reported and ignored, so a newer server cannot stop an older
    /// agent from checking anything.
    pub(crate) fn from_names(names: &[String]) -> Self {
        if names.is_empty() {
            return CheckSet { boot: true, nvml: true, gpu: true };
        }
        let mut set = CheckSet { boot: false, nvml: false, gpu: false };
        for name in names {
            match name.as_str() {
                BOOT => set.boot = true,
                NVML => set.nvml = true,
                GPU => set.gpu = true,
                other => warn!(check = other, "the control plane enabled a check this agent does not have"),
            }
        }
        set
    }
}

/// Runs the enabled checks against `gpus`.
pub(crate) async fn run(gpus: &dyn GpuSource, enabled: CheckSet) -> Vec<CheckResult> {
    let mut results = Vec::with_capacity(3);
    if enabled.boot {
        results.push(boot(&gpus.device_count().await));
    }
    if enabled.nvml || enabled.gpu {
        let readings = gpus.read_devices().await;
        if enabled.nvml {
            results.push(nvml(&readings));
        }
        if enabled.gpu {
            results.push(gpu(&readings));
        }
    }
    results
}

fn result(name: &str, status: Health, message: String, details: BTreeMap<String, String>) -> CheckResult {
    CheckResult { name: name.to_owned(), status, message, details }
}

fn boot(count: &Result<u32, GpuError>) -> CheckResult {
    match count {
        Ok(0) => result(BOOT, Health::Unhealthy, "no GPUs detected".into(), BTreeMap::new()),
        Ok(n) => result(
            BOOT,
            Health::Healthy,
            format!("{n} GPUs detected and accessible"),
            BTreeMap::from([("gpu_count".to_owned(), n.to_string())]),
        ),
        Err(error) => result(BOOT, Health::Unhealthy, format!("cannot count GPUs: {error}"), BTreeMap::new()),
    }
}

fn nvml(readings: &Readings) -> CheckResult {
    match readings {
        Ok(_) => result(NVML, Health::Healthy, "GPU backend responding".into(), BTreeMap::new()),
        Err(error) => result(NVML, Health::Unhealthy, error.to_string(), BTreeMap::new()),
    }
}

fn gpu(readings: &Readings) -> CheckResult {
    let readings = match readings {
        Ok(readings) => readings,
        Err(error) => return result(GPU, Health::Unhealthy, format!("cannot read GPUs: {error}"), BTreeMap::new()),
    };
    let failed: Vec<&DeviceError> = readings.iter().filter_map(|r| r.as_ref().err()).collect();
    if !failed.is_empty() {
        let message = failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let indexes = failed.iter().map(|e| e.index.to_string()).collect::<Vec<_>>().join(",");
        return result(GPU, Health::Unhealthy, message, BTreeMap::from([("failed_gpus".to_owned(), indexes)]));
    }
    let samples: Vec<&GpuSample> = readings.iter().filter_map(|r| r.as_ref().ok()).collect();
    let hottest = samples.iter().map(|s| s.temperature_c).fold(f64::NEG_INFINITY, f64::max);
    let mut details = BTreeMap::new();
    if hottest.is_finite() {
        details.insert("max_temperature_c".to_owned(), format!("{hottest:.0}"));
    }
    let hot: Vec<String> = samples
        .iter()
        .filter(|s| s.temperature_c > DEGRADED_ABOVE_CELSIUS)
        .map(|s| format!("GPU {} at {:.0} C", s.index, s.temperature_c))
        .collect();
    if hot.is_empty() {
        return result(GPU, Health::Healthy, format!("{} GPUs healthy", samples.len()), details);
    }
    let message = format!("{} (above {DEGRADED_ABOVE_CELSIUS:.0} C)", hot.join(", "));
    result(GPU, Health::Degraded, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: u32, temperature_c: f64) -> Result<GpuSample, DeviceError> {
        Ok(GpuSample { index, temperature_c, power_w: 300.0, utilization_percent: 50.0, memory_used_bytes: 0 })
    }

    #[test]
    fn boot_needs_gpus() {
        assert_eq!(boot(&Ok(8)).status, Health::Healthy);
        assert_eq!(boot(&Ok(0)).message, "no GPUs detected");
        let failed = boot(&Err(GpuError::Init("no GPU initialised".into())));
        assert_eq!(
            (failed.status, failed.message.as_str()),
            (Health::Unhealthy, "cannot count GPUs: GPU initialization failed: no GPU initialised")
        );
    }

    #[test]
    fn gpu_check_table() {
        let lost = Err(DeviceError { index: 2, message: "GPU is lost".into() });
        let cases: Vec<(Readings, Health, &str)> = vec![
            (Ok(vec![sample(0, 40.0), sample(1, 85.0)]), Health::Healthy, "2 GPUs healthy"),
            (Ok(vec![sample(0, 40.0), sample(1, 95.0)]), Health::Degraded, "GPU 1 at 95 C (above 85 C)"),
            (Ok(vec![sample(0, 95.0), lost]), Health::Unhealthy, "GPU 2: GPU is lost"),
            (
                Err(GpuError::Backend("NVML down".into())),
                Health::Unhealthy,
                "cannot read GPUs: GPU backend failed: NVML down",
            ),
        ];
        for (readings, status, message) in cases {
            let check = gpu(&readings);
            assert_eq!((check.status, check.message.as_str()), (status, message));
            assert_eq!(nvml(&readings).status == Health::Healthy, readings.is_ok());
            assert!(check.validate().is_ok());
        }
    }

    #[test]
    fn enabled_checks_default_to_all() {
        assert_eq!(CheckSet::from_names(&[]), CheckSet { boot: true, nvml: true, gpu: true });
        let only_gpu = CheckSet::from_names(&["gpu".to_owned(), "dcgm".to_owned()]);
        assert_eq!(only_gpu, CheckSet { boot: false, nvml: false, gpu: true });
    }
}
