//! This machine's GPU workloads: which processes use which GPUs, under which container and
//! pod, as the inventory's agent source reports them.
//!
//! A scan lists the processes the GPU source sees ([`GpuSource::running_processes`]),
//! merges a process using several GPUs into one workload, and completes each from the
//! [`ProcessTable`] (name, container, pod, start). [`WorkloadReports`] decides when a scan
//! is sent: when it differs from the last one sent, and at least every inventory interval.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::NodeId;
use bosun_core::inventory::{PodRef, Workload};
use bosun_core::validation::MAX_NAME_LEN;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::gpu::{GpuError, GpuProcess, GpuSource};
use crate::procfs::ProcessTable;

/// How long an agent waits before offering its workloads again to a control plane that
/// does not know the method (an older server): an upgrade is noticed within this.
pub(crate) const UNSUPPORTED_RETRY: Duration = Duration::from_secs(3600);

/// One process and everything it uses, merged from its entries per GPU and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessOnGpus {
    pub pid: u32,
    /// Sorted, each GPU once.
    pub gpus: Vec<u32>,
    /// Summed over its GPUs; on one GPU, the larger of its compute and graphics figures
    /// (NVML lists a process with both contexts twice, with the same memory).
    pub memory_bytes: u64,
    /// The backend's name for it, if it has one.
    pub name: Option<String>,
}

/// Merges per-GPU entries into one entry per process, in pid order. Memory the driver
/// does not report counts as 0.
pub(crate) fn merge(processes: Vec<GpuProcess>) -> Vec<ProcessOnGpus> {
    let mut by_pid: BTreeMap<u32, (BTreeMap<u32, u64>, Option<String>)> = BTreeMap::new();
    for process in processes {
        let (gpus, name) = by_pid.entry(process.pid).or_default();
        let memory = gpus.entry(process.gpu).or_default();
        *memory = (*memory).max(process.used_memory_bytes.unwrap_or(0));
        if name.is_none() {
            *name = process.name;
        }
    }
    by_pid
        .into_iter()
        .map(|(pid, (gpus, name))| ProcessOnGpus {
            pid,
            memory_bytes: gpus.values().fold(0u64, |sum, bytes| sum.saturating_add(*bytes)),
            gpus: gpus.into_keys().collect(),
            name,
        })
        .collect()
}

/// The workloads running on `node`'s GPUs now, in pid order. Fails when the GPU source
/// cannot list every GPU's processes: a partial list would report the rest as ended.
pub(crate) async fn scan(
    gpus: &dyn GpuSource,
    table: &mut ProcessTable,
    node: &NodeId,
) -> Result<Vec<Workload>, GpuError> {
    let processes = merge(gpus.running_processes().await?);
    Ok(processes
        .into_iter()
        .map(|process| {
            let details = table.details(process.pid);
            let owner = details.owner.unwrap_or_default();
            Workload {
                node_id: node.clone(),
                gpu_indexes: process.gpus,
                pid: process.pid,
                process_name: printable(details.name.or(process.name).as_deref().unwrap_or_default()),
                container_id: owner.container_id,
                // Namespace and name are the API server's; a cgroup path carries the UID only.
                pod: owner.pod_uid.map(|uid| PodRef { namespace: None, name: None, uid }),
                gpu_memory_bytes: process.memory_bytes,
                started_at: details.started_at,
            }
        })
        .collect())
}

/// A process name fit for a report: a process may name itself anything (`prctl`), so
/// control characters become `?` and the name is cut to [`MAX_NAME_LEN`] bytes.
fn printable(name: &str) -> String {
    let mut clean = String::with_capacity(name.len().min(MAX_NAME_LEN));
    for c in name.chars().map(|c| if c.is_control() { '?' } else { c }) {
        if clean.len() + c.len_utf8() > MAX_NAME_LEN {
            break;
        }
        clean.push(c);
    }
    clean
}

/// When to send workloads, across the sessions of one agent.
#[derive(Debug, Default)]
pub(crate) struct WorkloadReports {
    /// The workloads last dealt with (sent, or refused and not worth sending again until
    /// they change), GPU memory aside, and when.
    settled: Option<(Vec<Workload>, Instant)>,
    /// Until when the control plane is taken not to know the method.
    unsupported_until: Option<Instant>,
    /// Whether the last scan failed, so a lasting failure warns once.
    scan_failing: bool,
}

impl WorkloadReports {
    /// A new registration: the next scan is sent whatever was sent before, since the
    /// control plane may have lost it.
    pub(crate) fn new_session(&mut self) {
        self.settled = None;
    }

    /// Whether `workloads`, scanned at `now`, should be sent: they differ from the last
    /// ones settled in anything but GPU memory (which moves as a job runs, and waits for
    /// the interval), or `interval` has passed since. Never while the control plane is
    /// taken not to know the method.
    pub(crate) fn due(&self, workloads: &[Workload], now: Instant, interval: Duration) -> bool {
        if self.unsupported_until.is_some_and(|until| now < until) {
            return false;
        }
        match &self.settled {
            None => true,
            Some((last, at)) => now.duration_since(*at) >= interval || !same_but_memory(last, workloads),
        }
    }

    /// `workloads` were sent (or refused for good) at `now`.
    pub(crate) fn settled(&mut self, workloads: &[Workload], now: Instant) {
        self.settled = Some((workloads.to_vec(), now));
    }

    /// The control plane answered a report with anything but `unimplemented`: it knows the
    /// method.
    pub(crate) fn supported(&mut self) {
        if self.unsupported_until.take().is_some() {
            info!("the control plane accepts workload reports now");
        }
    }

    /// The control plane does not know the method: said once, then offered again every
    /// [`UNSUPPORTED_RETRY`] without a word.
    pub(crate) fn unsupported(&mut self, now: Instant) {
        if self.unsupported_until.is_none() {
            warn!(retry_in = ?UNSUPPORTED_RETRY, "the control plane does not accept workload reports (an older server); not sending them");
        }
        self.unsupported_until = Some(now + UNSUPPORTED_RETRY);
    }

    /// How a scan went, logged when that changes.
    pub(crate) fn scanned(&mut self, result: Result<(), &GpuError>) {
        match result {
            Err(error) if !self.scan_failing => {
                warn!(%error, "cannot list the GPUs' processes; workloads are not reported until it works again");
                self.scan_failing = true;
            }
            Ok(()) if self.scan_failing => {
                info!("the GPUs' processes can be listed again");
                self.scan_failing = false;
            }
            _ => {}
        }
    }
}

fn same_but_memory(a: &[Workload], b: &[Workload]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| Workload { gpu_memory_bytes: b.gpu_memory_bytes, ..a.clone() } == *b)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bosun_core::fault::FakeProcess;
    use bosun_core::{FakeClock, Timestamp};

    use super::*;
    use crate::gpu::ProcessKind;
    use crate::gpu::fake::FakeGpus;

    fn entry(gpu: u32, pid: u32, kind: ProcessKind, memory: Option<u64>) -> GpuProcess {
        GpuProcess { gpu, pid, kind, used_memory_bytes: memory, name: None }
    }

    #[test]
    fn a_process_on_several_gpus_is_one_entry() {
        use ProcessKind::{Compute, Graphics};
        let merged = merge(vec![
            entry(3, 200, Compute, Some(300)),
            entry(0, 100, Compute, Some(1000)),
            entry(1, 100, Compute, Some(500)),
            // Both kinds on one GPU: the same memory, counted once.
            entry(0, 100, Graphics, Some(1000)),
            entry(0, 300, Graphics, None),
            entry(2, 200, Compute, None),
        ]);
        let summary: Vec<_> = merged.iter().map(|p| (p.pid, p.gpus.clone(), p.memory_bytes)).collect();
        assert_eq!(summary, [(100, vec![0, 1], 1500), (200, vec![2, 3], 300), (300, vec![0], 0)]);
        assert_eq!(merge(Vec::new()), []);
    }

    #[test]
    fn names_are_made_printable_and_bounded() {
        assert_eq!(printable("py\u{1b}thon\n"), "py?thon?");
        let long = "é".repeat(MAX_NAME_LEN);
        let cut = printable(&long);
        assert!(cut.len() <= MAX_NAME_LEN && cut.chars().all(|c| c == 'é'), "cut on a character boundary");
    }

    fn node() -> NodeId {
        NodeId::new("n1").expect("valid")
    }

    #[tokio::test]
    async fn a_scan_merges_and_completes_from_the_process_table() {
        let clock = Arc::new(FakeClock::at_default_epoch());
        let gpus = FakeGpus::new(4).with_clock(clock);
        for (gpu, pid, name) in [(0, 100, "train"), (1, 100, "train"), (2, 200, "infer")] {
            let memory_bytes = 1 << 30;
            gpus.start_process(FakeProcess { gpu, pid, name: name.into(), memory_bytes }).expect("valid");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stat"), "btime 1700000000\n").expect("write");
        let proc100 = dir.path().join("100");
        std::fs::create_dir(&proc100).expect("mkdir");
        std::fs::write(proc100.join("comm"), "python3\n").expect("write");
        let container = "ab".repeat(32);
        std::fs::write(proc100.join("cgroup"), format!("0::/docker/{container}\n")).expect("write");
        let stat = format!("100 (python3) S{}", " 0".repeat(18) + " 500 0 0");
        std::fs::write(proc100.join("stat"), stat).expect("write");

        let mut table = ProcessTable::proc_at(dir.path());
        let workloads = scan(&gpus, &mut table, &node()).await.expect("healthy");
        assert_eq!(
            workloads,
            [
                Workload {
                    node_id: node(),
                    gpu_indexes: vec![0, 1],
                    pid: 100,
                    process_name: "python3".into(),
                    container_id: Some(container),
                    pod: None,
                    gpu_memory_bytes: 2 << 30,
                    started_at: Some(Timestamp::from_unix_micros(1_700_000_005_000_000)),
                },
                // Vanished from /proc (or never there): the backend's name, nothing else.
                Workload {
                    node_id: node(),
                    gpu_indexes: vec![2],
                    pid: 200,
                    process_name: "infer".into(),
                    container_id: None,
                    pod: None,
                    gpu_memory_bytes: 1 << 30,
                    started_at: None,
                },
            ]
        );
        for workload in &workloads {
            assert_eq!(bosun_core::workloads::validate(workload), Ok(()));
        }
        gpus.inject(bosun_core::fault::Fault::BackendFailure).expect("valid");
        assert!(scan(&gpus, &mut table, &node()).await.is_err());
    }

    fn workload(pid: u32, memory: u64) -> Workload {
        Workload {
            node_id: node(),
            gpu_indexes: vec![0],
            pid,
            process_name: "python".into(),
            container_id: None,
            pod: None,
            gpu_memory_bytes: memory,
            started_at: None,
        }
    }

    #[test]
    fn reports_are_due_on_change_and_every_interval() {
        let interval = Duration::from_secs(60);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut reports = WorkloadReports::default();
        let one = [workload(100, 10)];
        assert!(reports.due(&[], start, interval), "the first scan is sent, even empty");
        reports.settled(&one, start);
        assert!(!reports.due(&one, at(10), interval));
        assert!(!reports.due(&[workload(100, 99)], at(10), interval), "memory alone waits for the interval");
        assert!(reports.due(&[workload(100, 10), workload(200, 10)], at(10), interval), "a new process");
        assert!(reports.due(&[], at(10), interval), "a process ended");
        assert!(reports.due(&[workload(101, 10)], at(10), interval), "another pid");
        assert!(reports.due(&one, at(60), interval), "the interval passed");
        reports.settled(&one, at(60));
        assert!(!reports.due(&one, at(119), interval));
        reports.new_session();
        assert!(reports.due(&one, at(119), interval), "a new registration is told at once");
    }

    #[test]
    fn a_server_without_the_method_is_asked_again_only_after_an_hour() {
        let interval = Duration::from_secs(60);
        let start = Instant::now();
        let mut reports = WorkloadReports::default();
        reports.unsupported(start);
        assert!(!reports.due(&[workload(1, 1)], start + interval, interval));
        assert!(!reports.due(&[], start + UNSUPPORTED_RETRY - Duration::from_secs(1), interval));
        assert!(reports.due(&[], start + UNSUPPORTED_RETRY, interval));
        reports.unsupported(start + UNSUPPORTED_RETRY);
        assert!(!reports.due(&[], start + UNSUPPORTED_RETRY + interval, interval), "still unsupported");
        // A snapshot settled without an answer (too large to send) says nothing of the server.
        reports.settled(&[], start + UNSUPPORTED_RETRY);
        assert!(!reports.due(&[workload(1, 1)], start + UNSUPPORTED_RETRY + interval, interval), "still unsupported");
        reports.supported();
        reports.settled(&[], start + 2 * UNSUPPORTED_RETRY);
        assert!(reports.due(&[workload(1, 1)], start + 2 * UNSUPPORTED_RETRY, interval), "supported again");
    }
}
