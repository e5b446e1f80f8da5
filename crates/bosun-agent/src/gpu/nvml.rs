//! Real GPUs through NVML, loaded at run time so the agent builds and starts on machines
//! without NVIDIA drivers (and says clearly why it cannot see GPUs there).
//!
//! NVML calls block, sometimes for seconds on a failing GPU, so one dedicated thread owns
//! the library and serves requests from the async side over a channel: no NVML call ever
//! runs on a runtime worker, and NVML is only ever used from one thread. (This is one OS
//! thread per real machine; simulated agents use [`FakeGpus`](super::fake::FakeGpus).)
//!
//! The processes on each GPU come from NVML's lists of running compute and graphics
//! processes.
//!
//! Besides readings, each collection reports: XIDs (NVML critical-XID events, or the
//! kernel log where a GPU cannot deliver them), GPUs at or above
//! [`THERMAL_EVENT_CELSIUS`], and increases of the ECC, PCIe-replay and NVLink-recovery
//! counters and hardware power-brake slowdowns since the previous collection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use bosun_core::{Clock, Gpu, GpuSample, HealthEvent};
use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, EventSet};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::events::{self, GpuRef};
use super::kmsg::{KernelLog, PciMap};
use super::{DeviceError, DiagnosticReport, GpuError, GpuProcess, GpuSource, ProcessKind};

/// The library the NVIDIA driver installs (the unversioned `.so` comes only with
/// development packages).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// GPUs at or above this temperature produce a thermal event on every collection; the
/// server's policy decides how bad that is.
pub const THERMAL_EVENT_CELSIUS: u32 = 85;

/// NVML_NVLINK_MAX_LINKS: the most NVLinks one GPU has.
const MAX_NVLINKS: u32 = 18;

type Reply<T> = oneshot::Sender<T>;
type Readings = Vec<Result<GpuSample, DeviceError>>;

enum Request {
    Discover(Reply<Result<Vec<Gpu>, GpuError>>),
    Count(Reply<Result<u32, GpuError>>),
    Read(Reply<Result<Readings, GpuError>>),
    Processes(Reply<Result<Vec<GpuProcess>, GpuError>>),
    Events(Reply<Result<Vec<HealthEvent>, GpuError>>),
    Diagnose(String, Reply<DiagnosticReport>),
}

/// The machine's real GPUs. Dropping it stops the NVML thread and shuts NVML down.
#[derive(Debug)]
pub struct Nvml {
    requests: mpsc::Sender<Request>,
}

impl Nvml {
    /// Loads [`DEFAULT_LIBRARY`] and initialises NVML.
    pub async fn open(clock: Arc<dyn Clock>) -> Result<Nvml, GpuError> {
        Self::open_library(DEFAULT_LIBRARY, clock).await
    }

    /// Loads NVML from `library` (a file name searched like any shared library, or a path).
    ///
    /// Fails with [`GpuError::NvmlUnavailable`] when the library or the driver is missing;
    /// it never falls back to fake GPUs.
    pub async fn open_library(library: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Result<Nvml, GpuError> {
        let library = library.into();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (requests, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name("bosun-nvml".into())
            .spawn(move || match init(&library) {
                Ok(nvml) => {
                    if ready_tx.send(Ok(())).is_ok() {
                        Worker::new(&nvml, clock).serve(inbox);
                    }
                }
                Err(error) => {
                    // The caller may have given up waiting; nothing else to tell.
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(|e| GpuError::NvmlUnavailable { reason: format!("cannot start the NVML thread: {e}") })?;
        ready_rx.await.map_err(|_| GpuError::NvmlUnavailable {
            reason: "the NVML thread stopped during initialisation".into(),
        })??;
        Ok(Nvml { requests })
    }

    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, GpuError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || GpuError::Backend("the NVML thread stopped".into());
        self.requests.send(request(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

fn init(library: &Path) -> Result<nvml_wrapper::Nvml, GpuError> {
    let name = library.display();
    nvml_wrapper::Nvml::builder().lib_path(library.as_os_str()).init().map_err(|error| {
        let reason = match error {
            NvmlError::LibloadingError(e) if e.to_string().contains("No such file") => format!("{name} not found"),
            NvmlError::LibloadingError(e) => format!("cannot load {name}: {e}"),
            NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".to_owned(),
            NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_owned(),
            other => format!("initialising {name} failed: {other}"),
        };
        GpuError::NvmlUnavailable { reason }
    })
}

#[async_trait]
impl GpuSource for Nvml {
    async fn discover(&self) -> Result<Vec<Gpu>, GpuError> {
        self.call(Request::Discover).await?
    }

    async fn device_count(&self) -> Result<u32, GpuError> {
        self.call(Request::Count).await?
    }

    async fn read_devices(&self) -> Result<Readings, GpuError> {
        self.call(Request::Read).await?
    }

    async fn running_processes(&self) -> Result<Vec<GpuProcess>, GpuError> {
        self.call(Request::Processes).await?
    }

    async fn collect_events(&self) -> Result<Vec<HealthEvent>, GpuError> {
        self.call(Request::Events).await?
    }

    async fn run_diagnostic(&self, test: &str) -> DiagnosticReport {
        let test = test.to_owned();
        self.call(|reply| Request::Diagnose(test.clone(), reply)).await.unwrap_or_else(|error| DiagnosticReport {
            passed: false,
            message: error.to_string(),
            details: BTreeMap::from([("test".to_owned(), test)]),
        })
    }

    /// NVML has no reset call; `nvidia-smi --gpu-reset` resets through the driver. It
    /// refuses while processes use the GPU, which is the answer an operator needs to see.
    async fn reset_gpu(&self, index: u32) -> Result<String, String> {
        let mut command = tokio::process::Command::new("nvidia-smi");
        command.args(["--gpu-reset", "-i", &index.to_string()]).kill_on_drop(true);
        let output = match tokio::time::timeout(GPU_RESET_TIMEOUT, command.output()).await {
            Err(_) => return Err(format!("nvidia-smi --gpu-reset -i {index} took longer than {GPU_RESET_TIMEOUT:?}")),
            Ok(Err(error)) => return Err(format!("cannot run nvidia-smi to reset GPU {index}: {error}")),
            Ok(Ok(output)) => output,
        };
        let text = String::from_utf8_lossy(if output.status.success() { &output.stdout } else { &output.stderr });
        let text = text.trim();
        if output.status.success() {
            Ok(if text.is_empty() { format!("GPU {index} reset") } else { text.to_owned() })
        } else {
            Err(format!("nvidia-smi could not reset GPU {index} ({}): {text}", output.status))
        }
    }
}

/// How long a GPU reset may take before the agent gives up on it.
const GPU_RESET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Where XIDs come from on this machine.
enum XidSource<'n> {
    Events(EventSet<'n>),
    KernelLog(KernelLog),
    Unavailable,
}

/// Counter values at the previous collection, to report increases once.
#[derive(Debug, Default)]
struct Counters {
    ecc_corrected: u64,
    ecc_uncorrected: u64,
    pcie_replays: u64,
    nvlink_recoveries: BTreeMap<u32, u64>,
    power_brake: bool,
}

/// The NVML thread's state; `'n` is the library, owned by the thread's stack.
struct Worker<'n> {
    nvml: &'n nvml_wrapper::Nvml,
    clock: Arc<dyn Clock>,
    xids: XidSource<'n>,
    pci: PciMap,
    counters: BTreeMap<u32, Counters>,
}

impl<'n> Worker<'n> {
    fn new(nvml: &'n nvml_wrapper::Nvml, clock: Arc<dyn Clock>) -> Self {
        let mut worker =
            Worker { nvml, clock, xids: XidSource::Unavailable, pci: PciMap::default(), counters: BTreeMap::new() };
        if let Ok(gpus) = worker.discover() {
            worker.pci = PciMap::new(&gpus);
        }
        worker.xids = match worker.register_xid_events() {
            Ok(set) => XidSource::Events(set),
            Err(reason) => match KernelLog::open_default() {
                Some(log) => {
                    info!(%reason, path = %log.path().display(), "NVML XID events unavailable; reading the kernel log");
                    XidSource::KernelLog(log)
                }
                None => {
                    warn!(%reason, "NVML XID events unavailable and no kernel log is readable: XIDs will not be reported");
                    XidSource::Unavailable
                }
            },
        };
        worker
    }

    fn serve(mut self, inbox: mpsc::Receiver<Request>) {
        // Replies are dropped silently when the asking task was cancelled meanwhile.
        for request in inbox {
            match request {
                Request::Discover(reply) => {
                    let gpus = self.discover();
                    if let Ok(gpus) = &gpus {
                        self.pci = PciMap::new(gpus);
                    }
                    let _ = reply.send(gpus);
                }
                Request::Count(reply) => {
                    let _ = reply.send(self.nvml.device_count().map_err(backend));
                }
                Request::Read(reply) => {
                    let _ = reply.send(self.read());
                }
                Request::Processes(reply) => {
                    let _ = reply.send(self.processes());
                }
                Request::Events(reply) => {
                    let _ = reply.send(self.collect_events());
                }
                Request::Diagnose(test, reply) => {
                    let _ = reply.send(self.diagnose(&test));
                }
            }
        }
    }

    fn devices(&self) -> Result<impl Iterator<Item = (u32, Result<Device<'n>, NvmlError>)> + use<'n>, GpuError> {
        let nvml = self.nvml;
        let count = nvml.device_count().map_err(backend)?;
        Ok((0..count).map(move |index| (index, nvml.device_by_index(index))))
    }

    fn discover(&self) -> Result<Vec<Gpu>, GpuError> {
        let driver_version = self.nvml.sys_driver_version().map_err(backend)?;
        let cuda = self.nvml.sys_cuda_driver_version().map_err(backend)?;
        let cuda_version = format!("{}.{}", cuda / 1000, (cuda % 1000) / 10);
        self.devices()?
            .map(|(index, device)| {
                let describe = |device: Device<'_>| -> Result<Gpu, NvmlError> {
                    Ok(Gpu {
                        index,
                        uuid: device.uuid()?,
                        name: device.name()?,
                        pci_bus_id: device.pci_info()?.bus_id,
                        memory_bytes: device.memory_info()?.total,
                        driver_version: driver_version.clone(),
                        cuda_version: cuda_version.clone(),
                    })
                };
                device.and_then(describe).map_err(|e| GpuError::Init(format!("GPU {index}: {e}")))
            })
            .collect()
    }

    fn read(&self) -> Result<Readings, GpuError> {
        Ok(self.devices()?.map(|(index, device)| read_device(index, device)).collect())
    }

    /// Every GPU's compute and graphics processes, or an error naming the first GPU that
    /// could not list them. A GPU that keeps no list of one kind (`NotSupported`) runs
    /// none of it.
    fn processes(&self) -> Result<Vec<GpuProcess>, GpuError> {
        let mut processes = Vec::new();
        for (index, device) in self.devices()? {
            let failed = |e: NvmlError| GpuError::Backend(format!("GPU {index}: listing processes failed: {e}"));
            let device = device.map_err(failed)?;
            let lists = [
                (ProcessKind::Compute, device.running_compute_processes()),
                (ProcessKind::Graphics, device.running_graphics_processes()),
            ];
            for (kind, list) in lists {
                let list = match list {
                    Ok(list) => list,
                    Err(NvmlError::NotSupported) => Vec::new(),
                    Err(error) => return Err(failed(error)),
                };
                processes.extend(list.into_iter().map(|info| GpuProcess {
                    gpu: index,
                    pid: info.pid,
                    kind,
                    used_memory_bytes: match info.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    },
                    name: None,
                }));
            }
        }
        Ok(processes)
    }

    fn collect_events(&mut self) -> Result<Vec<HealthEvent>, GpuError> {
        let now = self.clock.now();
        let mut collected = Vec::new();
        match &mut self.xids {
            XidSource::Events(set) => drain_xid_events(set, now, &mut collected),
            XidSource::KernelLog(log) => collected.extend(log.new_xids().iter().map(|xid| self.pci.event(xid, now))),
            XidSource::Unavailable => {}
        }
        for (index, device) in self.devices()? {
            // A device that cannot be opened shows in the gpu check; its counters wait.
            if let Ok(device) = device {
                let counters = self.counters.entry(index).or_default();
                device_events(index, &device, counters, now, &mut collected);
            }
        }
        Ok(collected)
    }

    fn diagnose(&self, test: &str) -> DiagnosticReport {
        let mut details = BTreeMap::from([("test".to_owned(), test.to_owned())]);
        let devices = match self.devices() {
            Ok(devices) => devices,
            Err(error) => return DiagnosticReport { passed: false, message: error.to_string(), details },
        };
        let mut checked = 0;
        let mut failures = Vec::new();
        for (index, device) in devices {
            checked += 1;
            let outcome = device.and_then(|device| {
                device.name()?;
                device.memory_info()?;
                device.temperature(TemperatureSensor::Gpu)?;
                device.power_usage()?;
                match device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile) {
                    Ok(0) | Err(NvmlError::NotSupported) => Ok(None),
                    Ok(count) => Ok(Some(format!("{count} uncorrectable ECC errors"))),
                    Err(error) => Err(error),
                }
            });
            match outcome {
                Ok(None) => {}
                Ok(Some(problem)) => failures.push((index, problem)),
                Err(error) => failures.push((index, error.to_string())),
            }
        }
        details.insert("gpus_checked".into(), checked.to_string());
        if failures.is_empty() {
            return DiagnosticReport { passed: true, message: format!("{test}: all {checked} GPUs answered"), details };
        }
        let failed: Vec<String> = failures.iter().map(|(index, _)| index.to_string()).collect();
        let problems: Vec<String> = failures.iter().map(|(index, problem)| format!("GPU {index}: {problem}")).collect();
        details.insert("failed_gpus".into(), failed.join(","));
        details.insert("problems".into(), problems.join("; "));
        DiagnosticReport { passed: false, message: format!("{test}: {} GPU(s) failed", failures.len()), details }
    }

    /// An event set delivering critical XIDs from every GPU, or why there is none.
    fn register_xid_events(&self) -> Result<EventSet<'n>, String> {
        let mut set = self.nvml.create_event_set().map_err(|e| e.to_string())?;
        for (index, device) in self.devices().map_err(|e| e.to_string())? {
            let device = device.map_err(|e| format!("GPU {index}: {e}"))?;
            let supported = device.supported_event_types().map_err(|e| format!("GPU {index}: {e}"))?;
            if !supported.contains(EventTypes::CRITICAL_XID_ERROR) {
                return Err(format!("GPU {index} does not deliver XID events"));
            }
            set =
                device.register_events(EventTypes::CRITICAL_XID_ERROR, set).map_err(|e| format!("GPU {index}: {e}"))?;
        }
        Ok(set)
    }
}

fn backend(error: NvmlError) -> GpuError {
    GpuError::Backend(error.to_string())
}

fn read_device(index: u32, device: Result<Device<'_>, NvmlError>) -> Result<GpuSample, DeviceError> {
    let read = |device: Device<'_>| -> Result<GpuSample, NvmlError> {
        Ok(GpuSample {
            index,
            temperature_c: f64::from(device.temperature(TemperatureSensor::Gpu)?),
            power_w: f64::from(device.power_usage()?) / 1000.0,
            utilization_percent: f64::from(device.utilization_rates()?.gpu),
            memory_used_bytes: device.memory_info()?.used,
        })
    };
    device.and_then(read).map_err(|error| DeviceError { index, message: error.to_string() })
}

/// Takes every XID event NVML has queued, without waiting for more.
fn drain_xid_events(set: &EventSet<'_>, now: bosun_core::Timestamp, out: &mut Vec<HealthEvent>) {
    loop {
        match set.wait(0) {
            Ok(data) => {
                let index = data.device.index().ok().and_then(|i| i32::try_from(i).ok()).unwrap_or(-1);
                let uuid = data.device.uuid().unwrap_or_default();
                let code = match data.event_data {
                    Some(XidError::Value(code)) => u32::try_from(code).ok(),
                    Some(XidError::Unknown) | None => None,
                };
                out.push(events::xid(now, GpuRef { index, uuid: &uuid }, code, ""));
            }
            Err(NvmlError::Timeout) => return,
            Err(error) => {
                warn!(%error, "reading NVML XID events failed");
                return;
            }
        }
    }
}

/// Events from one device's sensors and error counters. Counters that the GPU does not
/// support are skipped; counters that went down (driver reload) are adopted silently.
fn device_events(
    index: u32,
    device: &Device<'_>,
    last: &mut Counters,
    now: bosun_core::Timestamp,
    out: &mut Vec<HealthEvent>,
) {
    let uuid = device.uuid().unwrap_or_default();
    let gpu = GpuRef { index: i32::try_from(index).unwrap_or(-1), uuid: &uuid };
    if let Ok(celsius) = device.temperature(TemperatureSensor::Gpu)
        && celsius >= THERMAL_EVENT_CELSIUS
    {
        out.push(events::thermal(now, gpu, f64::from(celsius)));
    }
    if let Ok(count) = device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile) {
        if count > last.ecc_corrected {
            out.push(events::ecc_single_bit(now, gpu, count));
        }
        last.ecc_corrected = count;
    }
    if let Ok(count) = device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile) {
        if count > last.ecc_uncorrected {
            out.push(events::ecc_double_bit(now, gpu, count));
        }
        last.ecc_uncorrected = count;
    }
    if let Ok(replays) = device.pcie_replay_counter().map(u64::from) {
        if replays > last.pcie_replays {
            out.push(events::pcie(now, gpu, replays));
        }
        last.pcie_replays = replays;
    }
    for link in 0..MAX_NVLINKS {
        let wrapper = device.link_wrapper_for(link);
        match wrapper.is_active() {
            Ok(true) => {}
            Ok(false) => continue,
            // No (more) NVLinks on this GPU.
            Err(_) => break,
        }
        if let Ok(count) = wrapper.error_counter(ErrorCounter::DlRecovery) {
            let previous = last.nvlink_recoveries.insert(link, count).unwrap_or(0);
            if count > previous {
                out.push(events::nvlink(now, gpu, link, count));
            }
        }
    }
    if let Ok(reasons) = device.current_throttle_reasons() {
        let braking = reasons.contains(ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN);
        if braking && !last.power_brake {
            out.push(events::power_brake(now, gpu));
        }
        last.power_brake = braking;
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::SystemClock;

    use super::*;

    #[tokio::test]
    async fn a_missing_library_is_a_clear_error_not_fake_gpus() {
        let error = Nvml::open_library("/nonexistent/libnvidia-ml.so.1", Arc::new(SystemClock))
            .await
            .expect_err("no NVML at that path");
        assert_eq!(
            error.to_string(),
            "NVML is not available (/nonexistent/libnvidia-ml.so.1 not found); install the NVIDIA driver or run \
             with --fake-gpus N"
        );
    }
}
