//! Host CPU and memory figures from `/proc`, facts about the machine for registration, and
//! what a GPU process is ([`ProcessTable`]: its name, cgroup owner and start time).
//!
//! Parsing is pure and tested on sample text; reading never fails the caller: a figure
//! that cannot be read is reported as 0 with one warning, because a heartbeat without a
//! CPU figure is far more useful than no heartbeat; a process that cannot be read (it
//! ended meanwhile) lacks the details it could not give.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use bosun_core::{NodeMetadata, Timestamp};
use tracing::warn;

use crate::cgroup::{self, CgroupOwner};

/// This agent's version, reported at registration.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Cumulative CPU time counters (in clock ticks) from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub total: u64,
    /// idle + iowait: time the CPUs had nothing to run.
    pub idle: u64,
}

/// Reads the aggregate `cpu` line of `/proc/stat`.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|line| line.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    // user nice system idle [iowait irq softirq steal [guest guest_nice]]; guest time is
    // already counted in user and nice, so only the first eight fields add up.
    if fields.len() < 4 {
        return None;
    }
    let total = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total, idle })
}

/// Busy share of CPU time between two readings, 0–100; 0 when no time passed.
pub fn cpu_percent(previous: CpuTimes, current: CpuTimes) -> f64 {
    let total = current.total.saturating_sub(previous.total);
    let idle = current.idle.saturating_sub(previous.idle);
    if total == 0 {
        return 0.0;
    }
    (100.0 * total.saturating_sub(idle) as f64 / total as f64).clamp(0.0, 100.0)
}

/// Memory in use, `(MemTotal - MemAvailable) / MemTotal`, as a percentage.
pub fn parse_memory_percent(meminfo: &str) -> Option<f64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|line| line.split(':').next() == Some(name))?;
        line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable")?;
    if total == 0 {
        return None;
    }
    Some((100.0 * total.saturating_sub(available) as f64 / total as f64).clamp(0.0, 100.0))
}

/// One reading of host load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    pub cpu_percent: f64,
    pub memory_percent: f64,
}

/// Where an agent's host CPU and memory figures come from.
#[derive(Debug)]
pub enum HostMetrics {
    /// The machine's own `/proc`.
    Proc(ProcReader),
    /// Constant figures: simulated agents must not read `/proc` a hundred thousand times
    /// per heartbeat interval.
    Fixed(HostSample),
}

impl HostMetrics {
    /// Reads `/proc`.
    pub fn proc() -> Self {
        Self::proc_at("/proc")
    }

    /// Reads a `/proc`-shaped tree at `root` (tests use a temporary directory).
    pub fn proc_at(root: impl Into<PathBuf>) -> Self {
        HostMetrics::Proc(ProcReader { root: root.into(), previous: None, failing: false })
    }

    pub fn fixed(cpu_percent: f64, memory_percent: f64) -> Self {
        HostMetrics::Fixed(HostSample { cpu_percent, memory_percent })
    }

    /// The current figures. The first CPU figure from `/proc` is 0: a percentage needs two
    /// readings.
    pub fn sample(&mut self) -> HostSample {
        match self {
            HostMetrics::Proc(reader) => reader.sample(),
            HostMetrics::Fixed(sample) => *sample,
        }
    }
}

/// Reads `/proc/stat` and `/proc/meminfo`, keeping the previous CPU counters.
#[derive(Debug)]
pub struct ProcReader {
    root: PathBuf,
    previous: Option<CpuTimes>,
    /// Whether the last reading failed, so a lasting failure warns once, not per heartbeat.
    failing: bool,
}

impl ProcReader {
    fn sample(&mut self) -> HostSample {
        let cpu = std::fs::read_to_string(self.root.join("stat")).ok().and_then(|text| parse_cpu_times(&text));
        let memory =
            std::fs::read_to_string(self.root.join("meminfo")).ok().and_then(|text| parse_memory_percent(&text));
        let failing = cpu.is_none() || memory.is_none();
        if failing && !self.failing {
            warn!(root = %self.root.display(), "cannot read host CPU or memory figures; reporting 0");
        }
        self.failing = failing;
        let cpu_percent = match (self.previous, cpu) {
            (Some(previous), Some(current)) => cpu_percent(previous, current),
            _ => 0.0,
        };
        if cpu.is_some() {
            self.previous = cpu;
        }
        HostSample { cpu_percent, memory_percent: memory.unwrap_or(0.0) }
    }
}

/// Clock ticks per second in `/proc/PID/stat` (Linux's `USER_HZ`, 100 on every
/// architecture the agent runs on, whatever the kernel's own tick rate).
const USER_HZ: u64 = 100;

/// The most of a `/proc` file read for a process: more than any real `comm`, `stat` or
/// `cgroup` holds, so a strange file cannot make the agent read without end.
const MAX_PROC_FILE: u64 = 64 * 1024;

/// When a process started, in clock ticks since boot: field 22 of `/proc/PID/stat`. The
/// name (field 2) is in parentheses and may hold spaces and parentheses itself, so fields
/// are counted after its last `)`.
pub fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field 22 is 19 further.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The boot time, in seconds since the Unix epoch, from the `btime` line of `/proc/stat`.
pub fn parse_boot_time(stat: &str) -> Option<i64> {
    stat.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|value| value.trim().parse().ok())
}

/// What `/proc` says about one process. A field it could not read (the process ended,
/// or the agent may not see it) is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessDetails {
    /// Its name (`/proc/PID/comm`).
    pub name: Option<String>,
    /// The container and pod it runs in (`/proc/PID/cgroup`).
    pub owner: Option<CgroupOwner>,
    pub started_at: Option<Timestamp>,
}

/// Where the details of the processes using GPUs come from.
///
/// NVML names processes by their pid in the host's PID namespace, so an agent in a
/// container must share the host's (`hostPID`) to find them here.
#[derive(Debug)]
pub enum ProcessTable {
    /// A `/proc`-shaped tree (the machine's own, or a test's directory).
    Proc(ProcessReader),
    /// None: the machine is simulated, and its GPUs' pids name no process here.
    Simulated,
}

impl ProcessTable {
    /// Reads `/proc`.
    pub fn proc() -> Self {
        Self::proc_at("/proc")
    }

    /// Reads a `/proc`-shaped tree at `root`.
    pub fn proc_at(root: impl Into<PathBuf>) -> Self {
        ProcessTable::Proc(ProcessReader { root: root.into(), boot_time: None })
    }

    /// The details of process `pid`; all `None` on a simulated machine.
    pub fn details(&mut self, pid: u32) -> ProcessDetails {
        match self {
            ProcessTable::Proc(reader) => reader.details(pid),
            ProcessTable::Simulated => ProcessDetails::default(),
        }
    }
}

/// Reads processes from a `/proc` tree, keeping the boot time once read.
#[derive(Debug)]
pub struct ProcessReader {
    root: PathBuf,
    /// Seconds since the epoch. Read once: the kernel derives `btime` from the wall clock
    /// and its uptime, so it can move by a second between reads, which would move every
    /// process's start time (and the key it is reported under) with it.
    boot_time: Option<i64>,
}

impl ProcessReader {
    fn details(&mut self, pid: u32) -> ProcessDetails {
        let dir = self.root.join(pid.to_string());
        let name = read_bounded(&dir.join("comm")).map(|comm| comm.trim_end_matches('\n').to_owned());
        let owner = read_bounded(&dir.join("cgroup")).and_then(|text| cgroup::owner_of(&text));
        let started_at = read_bounded(&dir.join("stat"))
            .and_then(|stat| parse_start_ticks(&stat))
            .and_then(|ticks| self.start_time(ticks));
        ProcessDetails { name, owner, started_at }
    }

    /// Boot time plus `ticks`, to the clock tick.
    fn start_time(&mut self, ticks: u64) -> Option<Timestamp> {
        if self.boot_time.is_none() {
            self.boot_time = read_bounded(&self.root.join("stat")).and_then(|stat| parse_boot_time(&stat));
        }
        let since_boot = i64::try_from(ticks.checked_mul(1_000_000 / USER_HZ)?).ok()?;
        let micros = self.boot_time?.checked_mul(1_000_000)?.checked_add(since_boot)?;
        Timestamp::checked_from_unix_micros(micros)
    }
}

/// At most [`MAX_PROC_FILE`] bytes of `path`, as text; `None` when it cannot be read.
fn read_bounded(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_PROC_FILE).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Hostname, kernel release and agent version of this machine, read from `/proc/sys`.
/// IP addresses are left for the caller, which knows which interface faces the fleet.
pub fn detect_metadata() -> NodeMetadata {
    let read = |path: &str| std::fs::read_to_string(path).map(|text| text.trim().to_owned()).unwrap_or_default();
    NodeMetadata {
        hostname: read("/proc/sys/kernel/hostname"),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        agent_version: AGENT_VERSION.to_owned(),
        ..NodeMetadata::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n\
                        cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n\
                        intr 1462898 0 0\nctxt 115315133\nbtime 1262347015\n";

    const MEMINFO: &str = "MemTotal:       32768000 kB\nMemFree:         1024000 kB\n\
                           MemAvailable:   24576000 kB\nBuffers:          512000 kB\n";

    #[test]
    fn parses_cpu_counters() {
        let times = parse_cpu_times(STAT).expect("parses");
        assert_eq!(times.idle, 46828483 + 16683);
        assert_eq!(times.total, 10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195);
        assert_eq!(parse_cpu_times("cpu  1 2 3 4\n"), Some(CpuTimes { total: 10, idle: 4 }));
        assert_eq!(parse_cpu_times("cpu0 1 2 3 4\n"), None, "only the aggregate line counts");
        assert_eq!(parse_cpu_times("cpu  1 2\n"), None);
        assert_eq!(parse_cpu_times(""), None);
    }

    #[test]
    fn cpu_percent_comes_from_deltas() {
        let a = CpuTimes { total: 1000, idle: 800 };
        assert_eq!(cpu_percent(a, CpuTimes { total: 1100, idle: 825 }), 75.0);
        assert_eq!(cpu_percent(a, a), 0.0, "no time passed");
        assert_eq!(cpu_percent(a, CpuTimes { total: 900, idle: 700 }), 0.0, "counters reset");
    }

    #[test]
    fn parses_memory_use() {
        assert_eq!(parse_memory_percent(MEMINFO), Some(25.0));
        assert_eq!(parse_memory_percent("MemTotal: 100 kB\n"), None, "kernels without MemAvailable");
        assert_eq!(parse_memory_percent("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
    }

    #[test]
    fn reads_a_proc_tree_and_degrades_to_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stat"), "cpu  100 0 100 800 0 0 0 0 0 0\n").expect("write");
        std::fs::write(dir.path().join("meminfo"), MEMINFO).expect("write");
        let mut host = HostMetrics::proc_at(dir.path());
        assert_eq!(host.sample(), HostSample { cpu_percent: 0.0, memory_percent: 25.0 }, "first CPU reading is 0");
        std::fs::write(dir.path().join("stat"), "cpu  150 0 150 900 0 0 0 0 0 0\n").expect("write");
        assert_eq!(host.sample().cpu_percent, 50.0);

        let mut missing = HostMetrics::proc_at(dir.path().join("absent"));
        assert_eq!(missing.sample(), HostSample { cpu_percent: 0.0, memory_percent: 0.0 });
        assert_eq!(HostMetrics::fixed(12.0, 34.0).sample(), HostSample { cpu_percent: 12.0, memory_percent: 34.0 });
    }

    /// A `/proc/PID/stat` line of a process named `name` started `ticks` after boot.
    fn stat_line(pid: u32, name: &str, ticks: u64) -> String {
        format!(
            "{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 12 0 {ticks} 1000000 500 18446744073709551615\n"
        )
    }

    #[test]
    fn start_ticks_are_field_22_whatever_the_name() {
        assert_eq!(parse_start_ticks(&stat_line(42, "python", 12345)), Some(12345));
        assert_eq!(parse_start_ticks(&stat_line(42, "a) b (c", 77)), Some(77), "a name with parentheses and spaces");
        assert_eq!(parse_start_ticks("42 (python) S 1"), None);
        assert_eq!(parse_start_ticks("no parentheses"), None);
        assert_eq!(parse_boot_time(STAT), Some(1262347015));
        assert_eq!(parse_boot_time("cpu  1 2 3 4\n"), None);
    }

    const CONTAINER: &str = "3f4a2b1c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const POD: &str = "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10";

    fn process(root: &Path, pid: u32, name: &str, cgroup: &str, ticks: u64) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("comm"), format!("{name}\n")).expect("write");
        std::fs::write(dir.join("cgroup"), cgroup).expect("write");
        std::fs::write(dir.join("stat"), stat_line(pid, name, ticks)).expect("write");
    }

    #[test]
    fn processes_are_read_with_their_container_pod_and_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stat"), STAT).expect("write");
        process(dir.path(), 100, "python", &format!("0::/system.slice/docker-{CONTAINER}.scope\n"), 250);
        let kubepods = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope\n",
            POD.replace('-', "_")
        );
        process(dir.path(), 200, "trainer", &kubepods, 1);
        process(dir.path(), 300, "Xorg", "0::/user.slice/user-1000.slice/session-2.scope\n", 0);
        let mut table = ProcessTable::proc_at(dir.path());
        let boot = 1_262_347_015 * 1_000_000;

        let docker = table.details(100);
        assert_eq!(docker.name.as_deref(), Some("python"));
        assert_eq!(docker.owner, Some(CgroupOwner { container_id: Some(CONTAINER.into()), pod_uid: None }));
        assert_eq!(docker.started_at, Some(Timestamp::from_unix_micros(boot + 2_500_000)));

        let pod = table.details(200);
        assert_eq!(pod.owner, Some(CgroupOwner { container_id: Some(CONTAINER.into()), pod_uid: Some(POD.into()) }));
        assert_eq!(pod.started_at, Some(Timestamp::from_unix_micros(boot + 10_000)));

        let host = table.details(300);
        assert_eq!((host.name.as_deref(), host.owner), (Some("Xorg"), None));

        // The boot time is read once: a later btime does not move start times.
        std::fs::write(dir.path().join("stat"), STAT.replace("1262347015", "1262347016")).expect("write");
        assert_eq!(table.details(100).started_at, docker.started_at);

        assert_eq!(table.details(999), ProcessDetails::default(), "a vanished process has no details");
        assert_eq!(ProcessTable::Simulated.details(100), ProcessDetails::default());
    }

    #[test]
    fn a_process_without_a_boot_time_has_no_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        process(dir.path(), 7, "python", "", 100);
        let details = ProcessTable::proc_at(dir.path()).details(7);
        assert_eq!((details.name.as_deref(), details.owner, details.started_at), (Some("python"), None, None));
    }

    #[test]
    fn metadata_names_this_agent() {
        assert_eq!(detect_metadata().agent_version, AGENT_VERSION);
    }
}
