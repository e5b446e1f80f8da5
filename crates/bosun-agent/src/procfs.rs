//! Host CPU and memory figures from `/proc`, and facts about the machine for registration.
//!
//! Parsing is pure and tested on sample text; reading never fails the caller: a figure
//! that cannot be read is reported as 0 with one warning, because a heartbeat without a
//! CPU figure is far more useful than no heartbeat.

use std::path::PathBuf;

use bosun_core::NodeMetadata;
use tracing::warn;

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

    #[test]
    fn metadata_names_this_agent() {
        assert_eq!(detect_metadata().agent_version, AGENT_VERSION);
    }
}
