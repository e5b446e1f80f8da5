//! XIDs from the kernel log, for GPUs whose driver cannot deliver NVML XID events.
//!
//! The NVIDIA driver logs every XID as `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has
//! fallen off the bus.`; this module parses such lines and maps the PCI bus id to the GPU
//! it names. Only lines logged after the agent started are reported: XIDs from before
//! were the previous agent's to report.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use bosun_core::{Gpu, HealthEvent, Timestamp};
use tracing::{debug, warn};

use super::events::{self, GpuRef};

/// Kernel logs to read, most direct first.
const DEFAULT_SOURCES: [&str; 4] = ["/dev/kmsg", "/var/log/kern.log", "/var/log/messages", "/var/log/syslog"];

/// The most unread log text one read takes in; older text beyond it is skipped rather
/// than letting a log flood grow the agent.
const MAX_READ_BYTES: u64 = 4 << 20;

/// The most XID lines kept between two collections.
const MAX_QUEUED_LINES: usize = 1024;

/// One XID line from the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelXid {
    /// Normalised with [`normalize_pci_bus_id`].
    pub pci_bus_id: String,
    pub code: u32,
    /// The driver's description, without the `pid=` and `name=` fields.
    pub detail: String,
}

/// Parses one kernel-log line (syslog, dmesg or `/dev/kmsg` record) if it reports an XID.
pub(crate) fn parse_xid_line(line: &str) -> Option<KernelXid> {
    const MARKER: &str = "NVRM: Xid (";
    let line = line.lines().next()?;
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (device, rest) = rest.split_once("):")?;
    let pci_bus_id = normalize_pci_bus_id(device.strip_prefix("PCI:").unwrap_or(device))?;
    let rest = rest.trim_start();
    let (code, detail) = rest.split_once(',').unwrap_or((rest, ""));
    let code = code.trim().parse().ok()?;
    let mut detail = detail.trim();
    for field in ["pid=", "name="] {
        if let Some(after) = detail.strip_prefix(field) {
            detail = after.split_once(',').map_or("", |(_, tail)| tail.trim_start());
        }
    }
    Some(KernelXid { pci_bus_id, code, detail: detail.to_owned() })
}

/// Brings the spellings of one PCI address to one form, `dddd:bb:dd` in lower case: the
/// kernel writes `0000:3b:00`, NVML `00000000:3B:00.0`, and `3b:00` means domain 0.
pub(crate) fn normalize_pci_bus_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.split_once('.').map_or(id, |(address, _function)| address);
    let parts: Vec<&str> = id.split(':').collect();
    let (domain, bus, device) = match parts.as_slice() {
        [domain, bus, device] => (u32::from_str_radix(domain, 16).ok()?, *bus, *device),
        [bus, device] => (0, *bus, *device),
        _ => return None,
    };
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let device = u8::from_str_radix(device, 16).ok()?;
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}"))
}

/// Finds the GPU a kernel-log PCI address names.
#[derive(Debug, Default)]
pub(crate) struct PciMap {
    /// (normalised PCI bus id, index, uuid) per GPU.
    gpus: Vec<(String, u32, String)>,
}

impl PciMap {
    pub(crate) fn new(gpus: &[Gpu]) -> Self {
        let gpus =
            gpus.iter().filter_map(|g| Some((normalize_pci_bus_id(&g.pci_bus_id)?, g.index, g.uuid.clone()))).collect();
        Self { gpus }
    }

    /// The health event for `xid`; a GPU the map does not know gets index -1 and the PCI
    /// address in the message, so the XID is still reported.
    pub(crate) fn event(&self, xid: &KernelXid, at: Timestamp) -> HealthEvent {
        match self.gpus.iter().find(|(pci, _, _)| *pci == xid.pci_bus_id) {
            Some((_, index, uuid)) => {
                let gpu = GpuRef { index: i32::try_from(*index).unwrap_or(-1), uuid };
                events::xid(at, gpu, Some(xid.code), &xid.detail)
            }
            None => {
                let detail = format!("unknown GPU at PCI {}; {}", xid.pci_bus_id, xid.detail);
                events::xid(at, GpuRef { index: -1, uuid: "" }, Some(xid.code), &detail)
            }
        }
    }
}

/// Follows a kernel log from the point it was opened.
#[derive(Debug)]
pub(crate) struct KernelLog {
    path: PathBuf,
    reader: Reader,
}

#[derive(Debug)]
enum Reader {
    /// `/dev/kmsg` hands out one record per blocking read, so a thread reads it and queues
    /// XID lines; the thread ends at the first record after this queue is dropped.
    Device(Arc<Mutex<VecDeque<String>>>),
    /// A regular log file, read from the last offset on each collection.
    File { file: File, offset: u64, partial: String },
}

impl KernelLog {
    /// The first kernel log this process may read, positioned at its end.
    pub(crate) fn open_default() -> Option<KernelLog> {
        DEFAULT_SOURCES.iter().find_map(|path| match KernelLog::open(Path::new(path)) {
            Ok(log) => Some(log),
            Err(error) => {
                debug!(path, %error, "kernel log not readable");
                None
            }
        })
    }

    pub(crate) fn open(path: &Path) -> io::Result<KernelLog> {
        let mut file = File::open(path)?;
        let offset = file.seek(SeekFrom::End(0))?;
        let reader = if file.metadata()?.file_type().is_char_device() {
            let queue = Arc::new(Mutex::new(VecDeque::new()));
            spawn_device_reader(file, Arc::downgrade(&queue))?;
            Reader::Device(queue)
        } else {
            Reader::File { file, offset, partial: String::new() }
        };
        Ok(KernelLog { path: path.to_owned(), reader })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// XIDs logged since the previous call.
    pub(crate) fn new_xids(&mut self) -> Vec<KernelXid> {
        let lines = match &mut self.reader {
            Reader::Device(queue) => queue.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default(),
            Reader::File { file, offset, partial } => match read_appended(&self.path, file, offset, partial) {
                Ok(lines) => lines,
                Err(error) => {
                    warn!(path = %self.path.display(), %error, "cannot read the kernel log");
                    Vec::new()
                }
            },
        };
        lines.iter().filter_map(|line| parse_xid_line(line)).collect()
    }
}

/// Complete lines appended to `path` since `offset`, following rotation (a new file at the
/// path) and truncation (the file shrank) from the new file's start.
fn read_appended(path: &Path, file: &mut File, offset: &mut u64, partial: &mut String) -> io::Result<Vec<String>> {
    if let Ok(current) = std::fs::metadata(path)
        && current.ino() != file.metadata()?.ino()
    {
        *file = File::open(path)?;
        *offset = 0;
        partial.clear();
    }
    let len = file.metadata()?.len();
    if len < *offset {
        *offset = 0;
        partial.clear();
    }
    if len - *offset > MAX_READ_BYTES {
        warn!(path = %path.display(), skipped = len - *offset - MAX_READ_BYTES, "kernel log grew too fast; skipping bytes");
        *offset = len - MAX_READ_BYTES;
        partial.clear();
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut bytes = Vec::new();
    file.by_ref().take(len - *offset).read_to_end(&mut bytes)?;
    *offset += bytes.len() as u64;
    partial.push_str(&String::from_utf8_lossy(&bytes));
    let complete = partial.rfind('\n').map_or(0, |i| i + 1);
    let lines = partial[..complete].lines().map(str::to_owned).collect();
    partial.drain(..complete);
    Ok(lines)
}

fn spawn_device_reader(mut file: File, queue: Weak<Mutex<VecDeque<String>>>) -> io::Result<()> {
    std::thread::Builder::new().name("bosun-kmsg".into()).spawn(move || {
        // A kmsg record is at most 8 KiB (the kernel's CONSOLE_EXT_LOG_MAX).
        let mut buffer = vec![0u8; 8192];
        loop {
            let record = match file.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => String::from_utf8_lossy(&buffer[..n]).into_owned(),
                // Records were overwritten before we read them; the next read resumes.
                Err(error) if matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::Interrupted) => {
                    continue;
                }
                Err(error) => {
                    warn!(%error, "stopped reading /dev/kmsg");
                    return;
                }
            };
            let Some(queue) = queue.upgrade() else { return };
            if record.contains("NVRM: Xid")
                && let Ok(mut queue) = queue.lock()
            {
                if queue.len() == MAX_QUEUED_LINES {
                    queue.pop_front();
                }
                queue.push_back(record);
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use bosun_core::EventType;

    use super::*;

    #[test]
    fn parses_realistic_xid_lines() {
        let cases = [
            (
                "[ 4215.324580] NVRM: Xid (PCI:0000:3b:00): 79, pid=1432, name=python3, GPU has fallen off the bus.",
                ("0000:3b:00", 79, "GPU has fallen off the bus."),
            ),
            (
                "Mar  3 10:15:42 gpu-node-7 kernel: [1234567.890123] NVRM: Xid (PCI:0000:B7:00): 48, pid='<unknown>', \
                 name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer.",
                (
                    "0000:b7:00",
                    48,
                    "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer.",
                ),
            ),
            (
                "4,1873,60873212,-;NVRM: Xid (PCI:0000:18:00): 13, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0)\n \
                 SUBSYSTEM=pci\n DEVICE=+pci:0000:18:00.0\n",
                ("0000:18:00", 13, "Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0)"),
            ),
            (
                "2024-05-01T08:00:00.123456+00:00 node kernel: NVRM: Xid (PCI:0001:9a:00): 119, pid=2, name=nvidia-smi, \
                 Timeout after 6s of waiting for RPC response from GPU1 GSP!",
                ("0001:9a:00", 119, "Timeout after 6s of waiting for RPC response from GPU1 GSP!"),
            ),
            ("NVRM: Xid (0000:5d:00): 31", ("0000:5d:00", 31, "")),
        ];
        for (line, (pci, code, detail)) in cases {
            let xid = parse_xid_line(line).unwrap_or_else(|| panic!("should parse: {line}"));
            assert_eq!((xid.pci_bus_id.as_str(), xid.code, xid.detail.as_str()), (pci, code, detail), "{line}");
        }
        for line in [
            "NVRM: GPU at PCI:0000:3b:00: GPU-3b2e6b1a-0b8d-4c36-9ec1-0a1e8a3e6b3c",
            "NVRM: Xid (PCI:0000:3b:00): seventy-nine, bad",
            "NVRM: Xid (PCI:zz:00): 79, bad bus",
            "kernel: eth0: link up",
        ] {
            assert_eq!(parse_xid_line(line), None, "{line}");
        }
    }

    #[test]
    fn pci_ids_from_nvml_and_the_kernel_agree() {
        for spelling in ["00000000:3B:00.0", "0000:3b:00", "3b:00", " 0000:3B:00.0 "] {
            assert_eq!(normalize_pci_bus_id(spelling).as_deref(), Some("0000:3b:00"), "{spelling}");
        }
        assert_eq!(normalize_pci_bus_id("3b"), None);
    }

    fn gpu(index: u32, pci: &str) -> Gpu {
        Gpu {
            index,
            uuid: format!("GPU-{index}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            pci_bus_id: pci.into(),
            memory_bytes: 1,
            driver_version: "550.54.15".into(),
            cuda_version: "12.4".into(),
        }
    }

    #[test]
    fn xids_map_to_gpus_by_pci_address() {
        let map = PciMap::new(&[gpu(0, "00000000:18:00.0"), gpu(1, "00000000:3B:00.0")]);
        let at = Timestamp::UNIX_EPOCH;
        let xid = parse_xid_line("NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has fallen off the bus.");
        let event = map.event(&xid.expect("parses"), at);
        assert_eq!((event.gpu_index, event.gpu_uuid.as_str(), event.event_type), (1, "GPU-1", EventType::Xid));
        assert_eq!(event.metrics["xid_code"], "79");
        let stranger = parse_xid_line("NVRM: Xid (PCI:0000:db:00): 13, oops").expect("parses");
        let event = map.event(&stranger, at);
        assert_eq!(event.gpu_index, -1);
        assert!(event.message.contains("unknown GPU at PCI 0000:db:00"), "{}", event.message);
    }

    #[test]
    fn follows_a_log_file_from_where_it_was_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kern.log");
        std::fs::write(&path, "NVRM: Xid (PCI:0000:18:00): 79, before the agent started\n").expect("write");
        let mut log = KernelLog::open(&path).expect("opens");
        assert_eq!(log.path(), path);
        assert!(log.new_xids().is_empty(), "history is not reported");

        let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("append");
        write!(file, "kernel: unrelated\nNVRM: Xid (PCI:0000:18:00): 48, first\nNVRM: Xid (PCI:0000:18:00): 6")
            .expect("write");
        let codes: Vec<u32> = log.new_xids().iter().map(|x| x.code).collect();
        assert_eq!(codes, [48], "the unfinished line waits for its end");
        writeln!(file, "3, second").expect("write");
        let codes: Vec<u32> = log.new_xids().iter().map(|x| x.code).collect();
        assert_eq!(codes, [63]);

        std::fs::write(&path, "NVRM: Xid (PCI:0000:18:00): 31, after truncation\n").expect("truncate");
        let codes: Vec<u32> = log.new_xids().iter().map(|x| x.code).collect();
        assert_eq!(codes, [31], "a shrunken file is read from its start");

        let rotated = dir.path().join("kern.log.1");
        std::fs::rename(&path, &rotated).expect("rotate");
        std::fs::write(&path, "NVRM: Xid (PCI:0000:18:00): 94, in the new file\n").expect("write");
        let codes: Vec<u32> = log.new_xids().iter().map(|x| x.code).collect();
        assert_eq!(codes, [94], "a rotated log is followed into the new file");
    }
}
