//! Proxmox VE's JSON, read leniently where Proxmox is loose (numbers as strings, booleans
//! as 0/1, fields missing on stopped guests) and strictly where bosun depends on a field
//! (a guest's node and vmid, a task's UPID).

use serde::Deserialize;
use serde_json::Value;

/// Every answer: `{"data": ...}` (`data` is `null` for some errors).
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
    pub data: Option<T>,
}

/// A QEMU virtual machine or an LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestKind {
    Qemu,
    Lxc,
}

impl GuestKind {
    /// The name Proxmox uses in types and paths.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

/// A hypervisor of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct PveNode {
    pub name: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// CPU utilization, 0 to 1.
    pub cpu: f64,
    pub max_cpu: u32,
    pub memory_used: u64,
    pub memory_total: u64,
    pub uptime_s: u64,
}

/// A VM or container as the cluster lists it, with its configuration once read.
#[derive(Debug, Clone, PartialEq)]
pub struct PveGuest {
    pub kind: GuestKind,
    pub node: String,
    pub vmid: u32,
    pub name: String,
    /// `running`, `stopped`, `paused`...
    pub status: String,
    pub template: bool,
    pub cpus: u32,
    /// CPU utilization, 0 to 1.
    pub cpu: f64,
    pub memory_used: u64,
    pub memory_total: u64,
    pub disk_used: u64,
    pub disk_total: u64,
    pub net_in: u64,
    pub net_out: u64,
    pub uptime_s: u64,
    /// Under HA management (`hastate` set).
    pub ha_managed: bool,
    /// A lock held on the guest (`backup`, `migrate`...).
    pub lock: Option<String>,
    pub pool: Option<String>,
    /// Its tags (`tags: "bosun;gpu"`), at most [`MAX_TAGS`].
    pub tags: Vec<String>,
    pub config: Option<GuestConfig>,
}

/// What a guest's configuration adds to its listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestConfig {
    /// Changes whenever the configuration does.
    pub digest: String,
    /// PCI devices passed through (`hostpciN`, VMs), e.g. `0000:41:00,pcie=1`, by N.
    pub passthrough: Vec<String>,
    /// A container's host name.
    pub hostname: Option<String>,
    /// A container's OS type (`ubuntu`, `debian`...).
    pub os_type: Option<String>,
    /// The guest's tags as its configuration holds them, at most [`MAX_TAGS`].
    pub tags: Vec<String>,
}

/// A storage as one node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PveStorage {
    pub storage: String,
    pub node: String,
    /// `dir`, `lvmthin`, `zfspool`, `nfs`, `rbd`...
    pub plugin_type: String,
    pub content: Vec<String>,
    pub shared: bool,
    /// `available` or `unknown`.
    pub status: String,
    pub used: u64,
    pub total: u64,
}

/// A task a node ran or runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PveTask {
    pub upid: String,
    pub node: String,
    /// `qmstart`, `vzdump`, `qmclone`...
    pub kind: String,
    /// The guest or object it acted on (`id`), if any.
    pub target: Option<String>,
    pub user: String,
    pub started: i64,
    pub ended: Option<i64>,
    /// `OK`, or the error it ended with; `None` while it runs.
    pub exit_status: Option<String>,
}

/// Where a task stands (`/nodes/{node}/tasks/{upid}/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// `status: running`; `stopped` once it ended.
    pub running: bool,
    /// `OK`, `WARNINGS: N` or the error it ended with; `None` while it runs.
    pub exit_status: Option<String>,
}

/// One row of `/cluster/resources`.
pub(super) enum Resource {
    Node(PveNode),
    Guest(PveGuest),
    Storage(PveStorage),
    /// SDN zones, pools and whatever later versions add.
    Other,
}

fn text(row: &Value, key: &str) -> Option<String> {
    match row.get(key)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn required(row: &Value, key: &str) -> Result<String, String> {
    text(row, key).ok_or_else(|| format!("{key} is missing"))
}

/// A non-negative count Proxmox may send as a number, a string or not at all (0).
fn count(row: &Value, key: &str) -> Result<u64, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| format!("{key} is {n}, not a count")),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("{key} is {s:?}, not a count")),
        Some(other) => Err(format!("{key} is {other}, not a count")),
    }
}

fn fraction(row: &Value, key: &str) -> Result<f64, String> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(0.0),
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| format!("{key} is not a number")),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("{key} is {s:?}, not a number")),
        Some(other) => Err(format!("{key} is {other}, not a number")),
    }
}

fn flag(row: &Value, key: &str) -> bool {
    match row.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64().is_some_and(|n| n != 0),
        Some(Value::String(s)) => matches!(s.as_str(), "1" | "true"),
        _ => false,
    }
}

/// The most tags read of one guest: as many as a record's labels may be. Proxmox sets no
/// limit; the rest are not read.
pub const MAX_TAGS: usize = bosun_core::labels::MAX_LABELS;

/// A guest's tags: Proxmox writes them separated by `;`, and older versions and people
/// by `,` or spaces.
fn tags(row: &Value) -> Vec<String> {
    text(row, "tags")
        .map(|tags| {
            tags.split([';', ',', ' ']).filter(|tag| !tag.is_empty()).take(MAX_TAGS).map(str::to_owned).collect()
        })
        .unwrap_or_default()
}

fn small(row: &Value, key: &str) -> Result<u32, String> {
    u32::try_from(count(row, key)?).map_err(|_| format!("{key} is too large"))
}

impl Resource {
    pub(super) fn read(row: &Value) -> Result<Resource, String> {
        if !row.is_object() {
            return Err("is not an object".to_owned());
        }
        Ok(match required(row, "type")?.as_str() {
            "node" => Resource::Node(PveNode {
                name: required(row, "node")?,
                status: text(row, "status").unwrap_or_else(|| "unknown".to_owned()),
                cpu: fraction(row, "cpu")?,
                max_cpu: small(row, "maxcpu")?,
                memory_used: count(row, "mem")?,
                memory_total: count(row, "maxmem")?,
                uptime_s: count(row, "uptime")?,
            }),
            kind @ ("qemu" | "lxc") => {
                let vmid = small(row, "vmid")?;
                if vmid == 0 {
                    return Err("vmid is missing".to_owned());
                }
                Resource::Guest(PveGuest {
                    kind: if kind == "qemu" { GuestKind::Qemu } else { GuestKind::Lxc },
                    node: required(row, "node")?,
                    vmid,
                    name: text(row, "name").unwrap_or_default(),
                    status: text(row, "status").unwrap_or_else(|| "unknown".to_owned()),
                    template: flag(row, "template"),
                    cpus: small(row, "maxcpu")?,
                    cpu: fraction(row, "cpu")?,
                    memory_used: count(row, "mem")?,
                    memory_total: count(row, "maxmem")?,
                    disk_used: count(row, "disk")?,
                    disk_total: count(row, "maxdisk")?,
                    net_in: count(row, "netin")?,
                    net_out: count(row, "netout")?,
                    uptime_s: count(row, "uptime")?,
                    ha_managed: text(row, "hastate").is_some(),
                    lock: text(row, "lock"),
                    pool: text(row, "pool"),
                    tags: tags(row),
                    config: None,
                })
            }
            "storage" => Resource::Storage(PveStorage {
                storage: required(row, "storage")?,
                node: required(row, "node")?,
                plugin_type: text(row, "plugintype").unwrap_or_default(),
                content: text(row, "content")
                    .map(|c| c.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect())
                    .unwrap_or_default(),
                shared: flag(row, "shared"),
                status: text(row, "status").unwrap_or_else(|| "unknown".to_owned()),
                used: count(row, "disk")?,
                total: count(row, "maxdisk")?,
            }),
            _ => Resource::Other,
        })
    }
}

impl GuestConfig {
    pub(super) fn read(config: &Value) -> Result<GuestConfig, String> {
        let Some(entries) = config.as_object() else { return Err("is not an object".to_owned()) };
        let digest = required(config, "digest")?;
        let mut passthrough: Vec<(u32, String)> = entries
            .iter()
            .filter_map(|(key, value)| {
                let index = key.strip_prefix("hostpci")?.parse::<u32>().ok()?;
                Some((index, value.as_str()?.to_owned()))
            })
            .collect();
        passthrough.sort();
        Ok(GuestConfig {
            digest,
            passthrough: passthrough.into_iter().map(|(_, device)| device).collect(),
            hostname: text(config, "hostname"),
            os_type: text(config, "ostype"),
            tags: tags(config),
        })
    }
}

impl PveTask {
    pub(super) fn read(row: &Value) -> Result<PveTask, String> {
        if !row.is_object() {
            return Err("is not an object".to_owned());
        }
        let started = count(row, "starttime")?;
        let ended = count(row, "endtime")?;
        Ok(PveTask {
            upid: required(row, "upid")?,
            node: required(row, "node")?,
            kind: text(row, "type").unwrap_or_default(),
            target: text(row, "id"),
            user: text(row, "user").unwrap_or_default(),
            started: i64::try_from(started).map_err(|_| "starttime is too large".to_owned())?,
            ended: (ended > 0).then(|| i64::try_from(ended).unwrap_or(i64::MAX)),
            exit_status: text(row, "status"),
        })
    }
}

impl TaskStatus {
    pub(super) fn read(status: &Value) -> Result<TaskStatus, String> {
        if !status.is_object() {
            return Err("is not an object".to_owned());
        }
        let running = match required(status, "status")?.as_str() {
            "running" => true,
            "stopped" => false,
            other => return Err(format!("status is {other:?}, neither running nor stopped")),
        };
        Ok(TaskStatus { running, exit_status: text(status, "exitstatus") })
    }
}

/// A vmid Proxmox sends as a number or a string (`/cluster/nextid` sends `"105"`).
pub(super) fn vmid(value: &Value) -> Result<u32, String> {
    let id = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    id.and_then(|id| u32::try_from(id).ok()).filter(|id| *id > 0).ok_or_else(|| format!("{value} is not a vmid"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tags_are_split_on_semicolons_commas_and_spaces_and_bounded() {
        let read = |value: Value| tags(&json!({ "tags": value }));
        assert_eq!(read(json!("gpu;training")), ["gpu", "training"]);
        assert_eq!(read(json!("gpu, training  ml;;")), ["gpu", "training", "ml"]);
        assert!(read(json!("")).is_empty());
        assert!(tags(&json!({})).is_empty(), "no tags");
        let many: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
        assert_eq!(read(json!(many.join(";"))).len(), MAX_TAGS);
        let config = GuestConfig::read(&json!({ "digest": "d", "tags": "a;b" })).expect("config");
        assert_eq!(config.tags, ["a", "b"]);
    }
}
