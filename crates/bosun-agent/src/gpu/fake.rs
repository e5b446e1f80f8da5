//! Fake GPUs with injectable faults, for tests and the simulator.
//!
//! The simulator runs a hundred thousand agents in one process, so a [`FakeGpus`] is a few
//! hundred bytes: the inventory and the readings are computed from a seed and the clock
//! when asked for rather than stored, and the only mutable state is the list of active
//! faults (and of simulated processes, the `fake-process` command's) behind one
//! short-lived lock. Readings vary over time like a busy machine's
//! (the autoscaler reads them) and are deterministic for a given seed and clock.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bosun_core::fault::{
    CLEAR_PROCESSES_COMMAND, FAULT_COMMAND, FakeProcess, Fault, FaultError, FaultKind, PROCESS_COMMAND,
    RECOVER_COMMAND, pid_parameter,
};
use bosun_core::{Clock, Gpu, GpuSample, HealthEvent, SystemClock};

use super::events::{self, GpuRef};
use super::{DeviceError, DiagnosticReport, GpuError, GpuProcess, GpuSource, ProcessKind};
use crate::hooks::{Hook, HookContext};

/// What a fake GPU claims to be.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuModel {
    pub name: Cow<'static, str>,
    pub memory_bytes: u64,
    pub idle_power_w: f64,
    pub max_power_w: f64,
}

const MIB: u64 = 1 << 20;

impl GpuModel {
    pub const H100_80GB: GpuModel = GpuModel {
        name: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
        memory_bytes: 81_559 * MIB,
        idle_power_w: 70.0,
        max_power_w: 700.0,
    };
    pub const A100_80GB: GpuModel = GpuModel {
        name: Cow::Borrowed("NVIDIA A100-SXM4-80GB"),
        memory_bytes: 81_920 * MIB,
        idle_power_w: 55.0,
        max_power_w: 400.0,
    };
    pub const L4: GpuModel = GpuModel {
        name: Cow::Borrowed("NVIDIA L4"),
        memory_bytes: 23_034 * MIB,
        idle_power_w: 16.0,
        max_power_w: 72.0,
    };

    /// The model a scenario's `gpu_type` names: a known model when the name mentions one
    /// (`h100`, `NVIDIA A100-SXM4-80GB`, `l4`), else an H100-like GPU with that name.
    pub fn named(name: &str) -> GpuModel {
        let lower = name.to_ascii_lowercase();
        let known = [("h100", GpuModel::H100_80GB), ("a100", GpuModel::A100_80GB), ("l4", GpuModel::L4)];
        match known.into_iter().find(|(key, _)| lower.contains(key)) {
            Some((_, model)) => model,
            None => GpuModel { name: Cow::Owned(name.to_owned()), ..GpuModel::H100_80GB },
        }
    }
}

/// Hooks for [`FAULT_COMMAND`] and [`RECOVER_COMMAND`] on `gpus`; register them as custom
/// hooks of an agent running on fake GPUs.
pub fn fault_hooks(gpus: &Arc<FakeGpus>) -> [(String, Hook); 2] {
    let inject = Arc::clone(gpus);
    let recover = Arc::clone(gpus);
    [
        (
            FAULT_COMMAND.to_owned(),
            Hook::function(move |context: HookContext| {
                let result = Fault::from_parameters(&context.parameters).and_then(|fault| {
                    let described = fault.to_string();
                    inject.inject(fault).map(|()| format!("injected {described}"))
                });
                async move { result.map_err(|e| e.to_string()) }
            }),
        ),
        (
            RECOVER_COMMAND.to_owned(),
            Hook::function(move |_context: HookContext| {
                recover.recover_all();
                async { Ok("recovered every fault".to_owned()) }
            }),
        ),
    ]
}

/// Hooks for [`PROCESS_COMMAND`] (start a simulated process: `pid`, `gpu`, `name`,
/// `memory`) and [`CLEAR_PROCESSES_COMMAND`] (end process `pid`, or every process without
/// it) on `gpus`; register them as custom hooks of an agent running on fake GPUs.
pub fn process_hooks(gpus: &Arc<FakeGpus>) -> [(String, Hook); 2] {
    let start = Arc::clone(gpus);
    let clear = Arc::clone(gpus);
    [
        (
            PROCESS_COMMAND.to_owned(),
            Hook::function(move |context: HookContext| {
                let result = FakeProcess::from_parameters(&context.parameters).and_then(|process| {
                    let described = process.to_string();
                    start.start_process(process).map(|()| format!("started {described}"))
                });
                async move { result.map_err(|e| e.to_string()) }
            }),
        ),
        (
            CLEAR_PROCESSES_COMMAND.to_owned(),
            Hook::function(move |context: HookContext| {
                let result = pid_parameter(&context.parameters).map(|pid| match pid {
                    Some(pid) => match clear.end_process(pid) {
                        0 => format!("no process {pid} was running"),
                        _ => format!("ended process {pid}"),
                    },
                    None => {
                        clear.end_all_processes();
                        "ended every process".to_owned()
                    }
                });
                async move { result.map_err(|e| e.to_string()) }
            }),
        ),
    ]
}

/// Most processes (per GPU) one machine of fake GPUs simulates at once.
pub const MAX_FAKE_PROCESSES: usize = 1024;

/// A machine's worth of fake GPUs. Share it (`Arc<FakeGpus>`) between the agent and
/// whatever injects faults; every method takes `&self`.
#[derive(Debug)]
pub struct FakeGpus {
    count: u32,
    model: GpuModel,
    seed: u64,
    clock: Arc<dyn Clock>,
    // A std Mutex is right here: every critical section is a few vector operations and
    // none spans an await point.
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    faults: Vec<Fault>,
    /// One-shot events not collected yet, with the kind that produced them so that
    /// recovering a fault before the next collection also withdraws its event.
    pending: Vec<(FaultKind, HealthEvent)>,
    /// Utilization pinned by [`FakeGpus::set_utilization`].
    utilization: Option<f64>,
    /// Simulated processes, one entry per process and GPU, in start order.
    processes: Vec<FakeProcess>,
}

/// PCI buses of the eight GPUs on an HGX H100 board, in NVML's index order.
const HGX_BUSES: [u32; 8] = [0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb];

impl FakeGpus {
    /// `count` healthy H100s, seed 0, on the system clock.
    pub fn new(count: u32) -> Self {
        Self {
            count,
            model: GpuModel::H100_80GB,
            seed: 0,
            clock: Arc::new(SystemClock),
            state: Mutex::new(FakeState::default()),
        }
    }

    pub fn with_model(mut self, model: GpuModel) -> Self {
        self.model = model;
        self
    }

    /// Seeds UUIDs and readings; give each simulated machine its own.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The clock that stamps events and drives how readings vary over time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Starts a fault. One-shot faults queue their event for the next collection.
    pub fn inject(&self, fault: Fault) -> Result<(), FaultError> {
        if let Some(gpu) = fault.gpu().filter(|gpu| *gpu >= self.count) {
            return Err(FaultError::UnknownGpu { gpu, count: self.count });
        }
        if let Fault::Thermal { celsius, .. } = fault
            && !celsius.is_finite()
        {
            return Err(FaultError::InvalidTemperature(celsius));
        }
        let now = self.clock.now();
        let event = match fault {
            Fault::Xid { gpu, code } => Some(events::xid(now, self.gpu_ref(gpu).as_ref(), Some(code), "")),
            Fault::EccSingleBit { gpu, count } => Some(events::ecc_single_bit(now, self.gpu_ref(gpu).as_ref(), count)),
            Fault::EccDoubleBit { gpu } => Some(events::ecc_double_bit(now, self.gpu_ref(gpu).as_ref(), 1)),
            Fault::Nvlink { gpu, link } => Some(events::nvlink(now, self.gpu_ref(gpu).as_ref(), link, 1)),
            Fault::Pcie { gpu } => Some(events::pcie(now, self.gpu_ref(gpu).as_ref(), 1)),
            Fault::PowerBrake { gpu } => Some(events::power_brake(now, self.gpu_ref(gpu).as_ref())),
            Fault::Thermal { .. } | Fault::DeviceError { .. } | Fault::BackendFailure | Fault::BootFailure => None,
        };
        let mut state = self.lock();
        if let Some(event) = event {
            state.pending.push((fault.kind(), event));
        }
        state.faults.push(fault);
        Ok(())
    }

    /// Ends every fault of `kind`, withdrawing events not collected yet.
    pub fn recover(&self, kind: FaultKind) {
        let mut state = self.lock();
        state.faults.retain(|f| f.kind() != kind);
        state.pending.retain(|(k, _)| *k != kind);
    }

    /// Resets GPU `index`: its faults end, as a GPU reset clears what the GPU carried,
    /// and so do the processes on it. Events already queued are still reported.
    pub fn reset_gpu(&self, index: u32) -> Result<(), FaultError> {
        if index >= self.count {
            return Err(FaultError::UnknownGpu { gpu: index, count: self.count });
        }
        let mut state = self.lock();
        state.faults.retain(|f| f.gpu() != Some(index));
        state.processes.retain(|p| p.gpu != index);
        Ok(())
    }

    /// Starts a simulated process on its GPU, or changes its name and memory when that
    /// pid already runs there. Processes are not faults: recovering leaves them running.
    pub fn start_process(&self, process: FakeProcess) -> Result<(), FaultError> {
        if process.gpu >= self.count {
            return Err(FaultError::UnknownGpu { gpu: process.gpu, count: self.count });
        }
        let mut state = self.lock();
        if let Some(running) = state.processes.iter_mut().find(|p| p.pid == process.pid && p.gpu == process.gpu) {
            *running = process;
            return Ok(());
        }
        if state.processes.len() >= MAX_FAKE_PROCESSES {
            return Err(FaultError::TooManyProcesses { max: MAX_FAKE_PROCESSES });
        }
        state.processes.push(process);
        Ok(())
    }

    /// Ends process `pid` on every GPU; returns on how many GPUs it ran.
    pub fn end_process(&self, pid: u32) -> usize {
        let mut state = self.lock();
        let before = state.processes.len();
        state.processes.retain(|p| p.pid != pid);
        before - state.processes.len()
    }

    pub fn end_all_processes(&self) {
        self.lock().processes.clear();
    }

    /// The simulated processes, one entry per process and GPU.
    pub fn processes(&self) -> Vec<FakeProcess> {
        self.lock().processes.clone()
    }

    /// Ends every fault.
    pub fn recover_all(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.pending.clear();
    }

    pub fn active_faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    /// Pins mean GPU utilization near `percent` (readings still vary by a few points), or
    /// with `None` returns to the machine's own pattern.
    pub fn set_utilization(&self, percent: Option<f64>) {
        self.lock().utilization = percent.filter(|p| p.is_finite()).map(|p| p.clamp(0.0, 100.0));
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // Poisoning only means an injecting thread panicked between two vector operations;
        // the fault list is still a valid list.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The failure every call reports while the backend or initialisation is broken.
    fn backend_error(faults: &[Fault]) -> Option<GpuError> {
        faults.iter().find_map(|f| match f {
            Fault::BackendFailure => Some(GpuError::Backend("NVML call failed: Unknown Error (injected)".into())),
            Fault::BootFailure => Some(GpuError::Init("no GPU initialised at boot (injected)".into())),
            _ => None,
        })
    }

    fn uuid(&self, index: u32) -> String {
        let a = mix(self.seed, u64::from(index), 1);
        let b = mix(self.seed, u64::from(index), 2);
        format!(
            "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn gpu_ref(&self, index: u32) -> OwnedGpuRef {
        OwnedGpuRef { index: i32::try_from(index).unwrap_or(i32::MAX), uuid: self.uuid(index) }
    }

    fn gpu(&self, index: u32) -> Gpu {
        let slot = usize::try_from(index).unwrap_or(0) % HGX_BUSES.len();
        Gpu {
            index,
            uuid: self.uuid(index),
            name: self.model.name.clone().into_owned(),
            pci_bus_id: format!("{:08X}:{:02X}:00.0", index / 8, HGX_BUSES[slot]),
            memory_bytes: self.model.memory_bytes,
            driver_version: "550.54.15".into(),
            cuda_version: "12.4".into(),
        }
    }

    /// Readings for `index` at `seconds` since the epoch: utilization drifts on a
    /// ten-minute cycle plus noise that changes every ten seconds; temperature, power and
    /// memory follow utilization.
    fn reading(&self, index: u32, seconds: f64, pinned: Option<f64>, hot: Option<f64>) -> GpuSample {
        let gpu = u64::from(index);
        let (center, amplitude, noise) = match pinned {
            Some(level) => (level, 3.0, 4.0),
            None => (25.0 + unit(mix(self.seed, u64::MAX, 0)) * 50.0, 10.0, 8.0),
        };
        let phase = unit(mix(self.seed, gpu, 3)) * TAU;
        let bucket = (seconds / 10.0).floor() as u64;
        let utilization = (center
            + amplitude * (TAU * seconds / 600.0 + phase).sin()
            + noise * (unit(mix(self.seed, gpu, bucket.wrapping_add(4))) - 0.5))
            .clamp(0.0, 100.0);
        let load = utilization / 100.0;
        let model = &self.model;
        GpuSample {
            index,
            temperature_c: hot.unwrap_or_else(|| (32.0 + 48.0 * load).round()),
            power_w: (model.idle_power_w + (model.max_power_w - model.idle_power_w) * load).round(),
            utilization_percent: utilization.round(),
            memory_used_bytes: (model.memory_bytes as f64 * (0.02 + 0.9 * load)) as u64,
        }
    }
}

struct OwnedGpuRef {
    index: i32,
    uuid: String,
}

impl OwnedGpuRef {
    fn as_ref(&self) -> GpuRef<'_> {
        GpuRef { index: self.index, uuid: &self.uuid }
    }
}

/// The temperature a thermal fault forces on `index`, if any (the latest injection wins).
fn forced_temperature(faults: &[Fault], index: u32) -> Option<f64> {
    faults.iter().rev().find_map(|f| match *f {
        Fault::Thermal { gpu, celsius } if gpu.is_none_or(|g| g == index) => Some(celsius),
        _ => None,
    })
}

#[async_trait]
impl GpuSource for FakeGpus {
    async fn discover(&self) -> Result<Vec<Gpu>, GpuError> {
        if let Some(error) = Self::backend_error(&self.lock().faults) {
            return Err(error);
        }
        Ok((0..self.count).map(|i| self.gpu(i)).collect())
    }

    async fn device_count(&self) -> Result<u32, GpuError> {
        match Self::backend_error(&self.lock().faults) {
            Some(error) => Err(error),
            None => Ok(self.count),
        }
    }

    async fn read_devices(&self) -> Result<Vec<Result<GpuSample, DeviceError>>, GpuError> {
        let seconds = self.clock.now().unix_micros() as f64 / 1e6;
        let state = self.lock();
        if let Some(error) = Self::backend_error(&state.faults) {
            return Err(error);
        }
        Ok((0..self.count)
            .map(|index| {
                if state.faults.contains(&Fault::DeviceError { gpu: index }) {
                    return Err(DeviceError { index, message: "NVML call failed: GPU is lost (injected)".into() });
                }
                let hot = forced_temperature(&state.faults, index);
                Ok(self.reading(index, seconds, state.utilization, hot))
            })
            .collect())
    }

    /// The simulated processes, as compute processes. A device error on any GPU fails the
    /// call, as NVML's listing of that GPU would.
    async fn running_processes(&self) -> Result<Vec<GpuProcess>, GpuError> {
        let state = self.lock();
        if let Some(error) = Self::backend_error(&state.faults) {
            return Err(error);
        }
        let lost = state.faults.iter().find_map(|f| match f {
            Fault::DeviceError { gpu } => Some(*gpu),
            _ => None,
        });
        if let Some(gpu) = lost {
            return Err(GpuError::Backend(format!("GPU {gpu}: NVML call failed: GPU is lost (injected)")));
        }
        Ok(state
            .processes
            .iter()
            .map(|p| GpuProcess {
                gpu: p.gpu,
                pid: p.pid,
                kind: ProcessKind::Compute,
                used_memory_bytes: Some(p.memory_bytes),
                name: Some(p.name.clone()),
            })
            .collect())
    }

    async fn collect_events(&self) -> Result<Vec<HealthEvent>, GpuError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(error) = Self::backend_error(&state.faults) {
            return Err(error);
        }
        let mut collected: Vec<HealthEvent> = state.pending.drain(..).map(|(_, event)| event).collect();
        for index in 0..self.count {
            if let Some(celsius) = forced_temperature(&state.faults, index) {
                collected.push(events::thermal(now, self.gpu_ref(index).as_ref(), celsius));
            }
        }
        Ok(collected)
    }

    async fn run_diagnostic(&self, test: &str) -> DiagnosticReport {
        let faults = self.active_faults();
        let mut details = BTreeMap::from([("test".to_owned(), test.to_owned())]);
        if let Some(error) = Self::backend_error(&faults) {
            return DiagnosticReport { passed: false, message: error.to_string(), details };
        }
        details.insert("gpus_checked".into(), self.count.to_string());
        if faults.is_empty() {
            let message = format!("{test}: all {} GPUs passed", self.count);
            return DiagnosticReport { passed: true, message, details };
        }
        let mut failed_gpus: Vec<u32> = faults.iter().filter_map(Fault::gpu).collect();
        failed_gpus.sort_unstable();
        failed_gpus.dedup();
        let failed_gpus: Vec<String> = failed_gpus.iter().map(u32::to_string).collect();
        let described: Vec<String> = faults.iter().map(Fault::to_string).collect();
        details.insert("faults".into(), described.join("; "));
        details.insert("failed_gpus".into(), failed_gpus.join(","));
        DiagnosticReport { passed: false, message: format!("{test}: {} active fault(s)", faults.len()), details }
    }

    async fn reset_gpu(&self, index: u32) -> Result<String, String> {
        if let Some(error) = Self::backend_error(&self.lock().faults) {
            return Err(format!("cannot reset GPU {index}: {error}"));
        }
        FakeGpus::reset_gpu(self, index).map_err(|error| error.to_string())?;
        Ok(format!("GPU {index} reset"))
    }

    /// A simulated reboot: every process and every fault ends but a boot failure, which a
    /// reboot does not fix.
    async fn reboot_without_hook(&self) -> Result<String, String> {
        let mut state = self.lock();
        state.processes.clear();
        state.faults.retain(|f| *f == Fault::BootFailure);
        if state.faults.is_empty() {
            Ok("rebooted (simulated): every fault cleared".into())
        } else {
            Err("rebooted (simulated), but the GPUs still fail to initialise".into())
        }
    }
}

/// SplitMix64 over three words: cheap, stateless, well-mixed pseudo-randomness.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `bits` mapped to `[0, 1)`.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bosun_core::{EventType, FakeClock};

    use super::*;

    fn fake() -> (Arc<FakeClock>, FakeGpus) {
        let clock = Arc::new(FakeClock::at_default_epoch());
        (clock.clone(), FakeGpus::new(8).with_seed(42).with_clock(clock))
    }

    #[tokio::test]
    async fn inventory_looks_like_an_hgx_h100_board() {
        let (_, gpus) = fake();
        let inventory = gpus.discover().await.expect("healthy");
        assert_eq!(inventory.len(), 8);
        assert_eq!(inventory[0].pci_bus_id, "00000000:18:00.0");
        assert_eq!(inventory[0].name, "NVIDIA H100 80GB HBM3");
        let uuid = &inventory[3].uuid;
        assert!(uuid.starts_with("GPU-") && uuid.len() == 40, "{uuid}");
        let unique: std::collections::BTreeSet<_> = inventory.iter().map(|g| &g.uuid).collect();
        assert_eq!(unique.len(), 8);
        assert_eq!(inventory, FakeGpus::new(8).with_seed(42).discover().await.expect("healthy"), "seeded");
        assert_eq!(GpuModel::named("a100").name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(GpuModel::named("B200").name, "B200");
    }

    #[tokio::test]
    async fn readings_vary_over_time_deterministically_and_follow_a_pinned_level() {
        let (clock, gpus) = fake();
        let mut series = Vec::new();
        for _ in 0..30 {
            let readings = gpus.read_devices().await.expect("healthy");
            let sample = readings[0].clone().expect("healthy");
            assert!((0.0..=100.0).contains(&sample.utilization_percent));
            assert!(sample.temperature_c < 85.0 && sample.power_w >= 70.0);
            series.push(sample.utilization_percent);
            clock.advance(Duration::from_secs(30));
        }
        assert!(series.iter().any(|u| *u != series[0]), "utilization should vary: {series:?}");

        gpus.set_utilization(Some(90.0));
        let readings = gpus.read_devices().await.expect("healthy");
        let mean = readings.iter().map(|r| r.as_ref().expect("healthy").utilization_percent).sum::<f64>() / 8.0;
        assert!((84.0..=96.0).contains(&mean), "{mean}");
    }

    #[tokio::test]
    async fn one_shot_faults_report_once_and_conditions_until_recovered() {
        let (_, gpus) = fake();
        gpus.inject(Fault::Xid { gpu: 3, code: 79 }).expect("valid");
        gpus.inject(Fault::Thermal { gpu: Some(1), celsius: 95.0 }).expect("valid");
        let first = gpus.collect_events().await.expect("healthy");
        let kinds: Vec<_> = first.iter().map(|e| (e.event_type, e.gpu_index)).collect();
        assert_eq!(kinds, [(EventType::Xid, 3), (EventType::Thermal, 1)]);
        let second = gpus.collect_events().await.expect("healthy");
        assert_eq!(second.len(), 1, "only the thermal condition repeats");
        let readings = gpus.read_devices().await.expect("healthy");
        assert_eq!(readings[1].as_ref().expect("healthy").temperature_c, 95.0);

        gpus.recover(FaultKind::Thermal);
        assert!(gpus.collect_events().await.expect("healthy").is_empty());
        assert_eq!(gpus.active_faults(), [Fault::Xid { gpu: 3, code: 79 }]);
        gpus.recover_all();
        assert!(gpus.run_diagnostic("quick").await.passed);
    }

    #[tokio::test]
    async fn recovering_before_collection_withdraws_the_event() {
        let (_, gpus) = fake();
        gpus.inject(Fault::EccDoubleBit { gpu: 0 }).expect("valid");
        gpus.recover(FaultKind::EccDoubleBit);
        assert!(gpus.collect_events().await.expect("healthy").is_empty());
    }

    #[tokio::test]
    async fn device_backend_and_boot_failures() {
        let (_, gpus) = fake();
        gpus.inject(Fault::DeviceError { gpu: 2 }).expect("valid");
        let readings = gpus.read_devices().await.expect("backend fine");
        assert_eq!(readings.iter().filter(|r| r.is_err()).count(), 1);
        assert_eq!(readings[2].as_ref().unwrap_err().index, 2);
        let report = gpus.run_diagnostic("all").await;
        assert!(!report.passed);
        assert_eq!(report.details["failed_gpus"], "2");

        gpus.inject(Fault::BackendFailure).expect("valid");
        assert!(matches!(gpus.read_devices().await, Err(GpuError::Backend(_))));
        assert!(gpus.device_count().await.is_err() && gpus.collect_events().await.is_err());
        gpus.recover_all();
        gpus.inject(Fault::BootFailure).expect("valid");
        assert!(matches!(gpus.discover().await, Err(GpuError::Init(_))));
    }

    fn process(gpu: u32, pid: u32, name: &str, memory_bytes: u64) -> FakeProcess {
        FakeProcess { gpu, pid, name: name.into(), memory_bytes }
    }

    #[tokio::test]
    async fn simulated_processes_run_until_ended_reset_or_rebooted() {
        let (_, gpus) = fake();
        assert_eq!(gpus.running_processes().await, Ok(vec![]));
        gpus.start_process(process(0, 100, "train", 4 << 30)).expect("GPU 0 exists");
        gpus.start_process(process(1, 100, "train", 2 << 30)).expect("GPU 1 exists");
        gpus.start_process(process(5, 200, "infer", 1 << 30)).expect("GPU 5 exists");
        // The same pid on the same GPU again changes it rather than adding one.
        gpus.start_process(process(5, 200, "infer", 3 << 30)).expect("GPU 5 exists");
        let listed = gpus.running_processes().await.expect("healthy");
        let seen: Vec<_> = listed.iter().map(|p| (p.gpu, p.pid, p.used_memory_bytes, p.name.as_deref())).collect();
        assert_eq!(
            seen,
            [
                (0, 100, Some(4 << 30), Some("train")),
                (1, 100, Some(2 << 30), Some("train")),
                (5, 200, Some(3 << 30), Some("infer"))
            ]
        );
        assert!(listed.iter().all(|p| p.kind == ProcessKind::Compute));

        gpus.recover_all();
        assert_eq!(gpus.processes().len(), 3, "processes are not faults");
        FakeGpus::reset_gpu(&gpus, 1).expect("GPU 1 exists");
        assert_eq!(gpus.processes(), [process(0, 100, "train", 4 << 30), process(5, 200, "infer", 3 << 30)]);
        assert_eq!(gpus.end_process(200), 1);
        assert_eq!(gpus.end_process(200), 0);
        gpus.start_process(process(2, 300, "x", 1)).expect("GPU 2 exists");
        gpus.reboot_without_hook().await.expect("rebooted");
        assert!(gpus.processes().is_empty(), "a reboot ends every process");
    }

    #[tokio::test]
    async fn process_listing_fails_whole_when_a_gpu_cannot_answer() {
        let (_, gpus) = fake();
        gpus.start_process(process(0, 100, "train", 1)).expect("valid");
        gpus.inject(Fault::DeviceError { gpu: 6 }).expect("valid");
        assert_eq!(
            gpus.running_processes().await,
            Err(GpuError::Backend("GPU 6: NVML call failed: GPU is lost (injected)".into()))
        );
        gpus.recover_all();
        gpus.inject(Fault::BackendFailure).expect("valid");
        assert!(matches!(gpus.running_processes().await, Err(GpuError::Backend(_))));
    }

    #[test]
    fn simulated_processes_are_bounded_and_on_existing_gpus() {
        let gpus = FakeGpus::new(2);
        assert_eq!(
            gpus.start_process(process(2, 1, "x", 1)).unwrap_err().to_string(),
            "GPU 2 does not exist: this machine has 2 GPUs"
        );
        for pid in 1..=u32::try_from(MAX_FAKE_PROCESSES).expect("small") {
            gpus.start_process(process(0, pid, "x", 1)).expect("below the bound");
        }
        assert_eq!(
            gpus.start_process(process(1, 1, "x", 1)).unwrap_err(),
            FaultError::TooManyProcesses { max: MAX_FAKE_PROCESSES }
        );
        gpus.start_process(process(0, 1, "renamed", 1)).expect("changing a running process is not a new one");
        gpus.end_all_processes();
        assert!(gpus.processes().is_empty());
    }

    #[test]
    fn rejects_faults_on_missing_gpus_and_parses_scenario_names() {
        let gpus = FakeGpus::new(4);
        assert_eq!(
            gpus.inject(Fault::Xid { gpu: 7, code: 79 }).unwrap_err().to_string(),
            "GPU 7 does not exist: this machine has 4 GPUs"
        );
        assert!(gpus.inject(Fault::Thermal { gpu: None, celsius: f64::NAN }).is_err());
        for (name, kind) in [
            ("xid_error", FaultKind::Xid),
            ("temperature", FaultKind::Thermal),
            ("nvml_failure", FaultKind::BackendFailure),
            ("BACKEND_ERROR", FaultKind::BackendFailure),
            ("boot_failure", FaultKind::BootFailure),
            ("device_error", FaultKind::DeviceError),
            ("memory_error", FaultKind::EccDoubleBit),
            ("nvlink_error", FaultKind::Nvlink),
        ] {
            assert_eq!(name.parse::<FaultKind>(), Ok(kind));
        }
        assert_eq!(FaultKind::EccDoubleBit.to_string(), "memory_error");
        for kind in FaultKind::ALL {
            assert_eq!(kind.as_str().parse::<FaultKind>(), Ok(kind), "names round-trip");
        }
        assert!("network".parse::<FaultKind>().is_err());
    }

    #[test]
    fn faults_are_described_by_command_parameters() {
        let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        assert_eq!(Fault::from_parameters(&params(&[])), Ok(Fault::Xid { gpu: 0, code: 79 }));
        assert_eq!(
            Fault::from_parameters(&params(&[("fault", "xid"), ("gpu", "3"), ("code", "48")])),
            Ok(Fault::Xid { gpu: 3, code: 48 })
        );
        assert_eq!(
            Fault::from_parameters(&params(&[("fault", "temperature")])),
            Ok(Fault::Thermal { gpu: None, celsius: 95.0 })
        );
        assert_eq!(
            Fault::from_parameters(&params(&[("fault", "ecc_sbe"), ("gpu", "1")])),
            Ok(Fault::EccSingleBit { gpu: 1, count: 101 })
        );
        assert_eq!(
            Fault::from_parameters(&params(&[("gpu", "x")])).unwrap_err().to_string(),
            "parameter gpu: \"x\" is not a valid number"
        );
        assert!(matches!(Fault::from_parameters(&params(&[("fault", "meteor")])), Err(FaultError::UnknownKind(_))));
    }
}
