//! What the inventory knows of one node, for `nodes get`, `nodes drain` and `nodes
//! terminate`: the hypervisor host it is, the VM it runs in, and its GPU workloads. Each
//! record is kept as the JSON document the server sent (`bosun hosts|vms|workloads get
//! -o json` print the same), so `-o json` adds no second spelling of their fields.

use bosun_api::v1;
use serde::Serialize;
use serde_json::Value;

use crate::output::Table;

/// One inventory record as the server sent it.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct InventoryDoc {
    #[serde(skip)]
    id: String,
    doc: Value,
}

impl InventoryDoc {
    /// The record's document; an unreadable one names the record.
    pub fn from_wire(record: &v1::InventoryRecord) -> anyhow::Result<Self> {
        let doc = serde_json::from_str(&record.json)
            .map_err(|e| anyhow::anyhow!("the server sent {} as malformed JSON: {e}", record.id))?;
        Ok(Self { id: record.id.clone(), doc })
    }

    fn text(&self, field: &str) -> String {
        match &self.doc[field] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The node's host, VM and GPU workloads (records of their sources that are not gone).
#[derive(Debug, Default, Serialize)]
pub struct NodeInventory {
    pub host: Option<InventoryDoc>,
    pub vm: Option<InventoryDoc>,
    pub workloads: Vec<InventoryDoc>,
}

impl NodeInventory {
    /// The `host:` and `vm:` lines of `nodes get`, when linked.
    pub fn link_rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if let Some(host) = &self.host {
            rows.push(("host", format!("{} ({}, {})", host.id, host.text("name"), host.text("status"))));
        }
        if let Some(vm) = &self.vm {
            rows.push(("vm", format!("{} ({}, {} on {})", vm.id, vm.text("name"), vm.text("status"), vm.text("host"))));
        }
        rows
    }

    /// `nodes get`'s table of GPU workloads, or a line saying there are none.
    pub fn workload_table(&self) -> String {
        if self.workloads.is_empty() {
            return "No GPU workloads reported.\n".to_owned();
        }
        let mut table = Table::new(["PID", "PROCESS", "GPUS", "GPU MEMORY", "CONTAINER", "POD"]);
        for w in &self.workloads {
            table.row([w.text("pid"), w.text("process_name"), gpus(w), memory(w), dash(container(w)), dash(pod(w))]);
        }
        table.render()
    }
}

/// What `nodes drain` and `nodes terminate` print about the GPU workloads they affect.
pub fn affected_workloads(node: &str, workloads: &[InventoryDoc]) -> String {
    if workloads.is_empty() {
        return format!("no GPU workloads reported on {node}\n");
    }
    let mut text = format!("GPU workloads on {node} ({}):\n", workloads.len());
    for w in workloads {
        text.push_str(&format!("  pid {} {} on GPU {}, {}", w.text("pid"), w.text("process_name"), gpus(w), memory(w)));
        if let Some(container) = container(w) {
            text.push_str(&format!(", container {container}"));
        }
        if let Some(pod) = pod(w) {
            text.push_str(&format!(", pod {pod}"));
        }
        text.push('\n');
    }
    text
}

fn dash(text: Option<String>) -> String {
    text.unwrap_or_else(|| "-".to_owned())
}

/// `0,1`.
fn gpus(w: &InventoryDoc) -> String {
    let indexes = w.doc["gpu_indexes"].as_array().map(Vec::as_slice).unwrap_or_default();
    indexes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// GPU memory in MiB below a GiB, else in GiB.
fn memory(w: &InventoryDoc) -> String {
    let bytes = w.doc["gpu_memory_bytes"].as_u64().unwrap_or_default();
    if bytes >= 1 << 30 {
        // Exact to a tenth of a GiB up to 2^53 bytes, far beyond any GPU's memory.
        format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// A container id as `docker ps` shortens it.
fn container(w: &InventoryDoc) -> Option<String> {
    w.doc["container_id"].as_str().map(|id| id.chars().take(12).collect())
}

/// `namespace/name` when the cgroup path said so, else the pod's UID.
fn pod(w: &InventoryDoc) -> Option<String> {
    let pod = w.doc.get("pod").filter(|p| !p.is_null())?;
    match (pod["namespace"].as_str(), pod["name"].as_str()) {
        (Some(namespace), Some(name)) => Some(format!("{namespace}/{name}")),
        _ => pod["uid"].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(kind: &str, id: &str, json: Value) -> InventoryDoc {
        let record = v1::InventoryRecord {
            kind: kind.to_owned(),
            id: id.to_owned(),
            json: json.to_string(),
            ..Default::default()
        };
        InventoryDoc::from_wire(&record).expect("valid")
    }

    fn sample() -> NodeInventory {
        NodeInventory {
            host: None,
            vm: Some(doc(
                "vm",
                "pve1/103",
                serde_json::json!({"kind": "vm", "source": "pve1", "key": "103", "vmid": 103, "name": "i-0abc",
                    "status": "running", "host": "pve2", "node_id": "gpu-a"}),
            )),
            workloads: vec![
                doc(
                    "workload",
                    "agents/gpu-a/4242@1767225600000000",
                    serde_json::json!({"kind": "workload", "pid": 4242, "process_name": "python3",
                        "gpu_indexes": [0, 1], "gpu_memory_bytes": 42_949_672_960u64,
                        "container_id": "0123456789abcdef0123456789abcdef", "pod": {"namespace": "ml",
                        "name": "trainer-0", "uid": "7d3c2b1a-0000-4000-8000-000000000001"}}),
                ),
                doc(
                    "workload",
                    "agents/gpu-a/77",
                    serde_json::json!({"kind": "workload", "pid": 77, "process_name": "nvidia-smi",
                        "gpu_indexes": [3], "gpu_memory_bytes": 8_388_608u64, "container_id": null, "pod": null}),
                ),
            ],
        }
    }

    #[test]
    fn links_and_workloads_read_as_lines_and_a_table() {
        let inventory = sample();
        assert_eq!(inventory.link_rows(), [("vm", "pve1/103 (i-0abc, running on pve2)".to_owned())]);
        insta::assert_snapshot!(inventory.workload_table(), @r"
        PID   PROCESS     GPUS  GPU MEMORY  CONTAINER     POD
        4242  python3     0,1   40.0 GiB    0123456789ab  ml/trainer-0
        77    nvidia-smi  3     8 MiB       -             -
        ");
        assert_eq!(
            affected_workloads("gpu-a", &inventory.workloads),
            "GPU workloads on gpu-a (2):\n  pid 4242 python3 on GPU 0,1, 40.0 GiB, container 0123456789ab, pod \
             ml/trainer-0\n  pid 77 nvidia-smi on GPU 3, 8 MiB\n"
        );
        let none = NodeInventory::default();
        assert_eq!(none.workload_table(), "No GPU workloads reported.\n");
        assert_eq!(affected_workloads("gpu-a", &[]), "no GPU workloads reported on gpu-a\n");
        assert!(none.link_rows().is_empty());
    }

    #[test]
    fn nodes_get_shows_the_vm_and_the_workloads_after_the_gpus() {
        let node = v1::Node {
            node_id: "gpu-a".into(),
            status: v1::NodeStatus::NODE_STATUS_ACTIVE.into(),
            health: v1::HealthStatus::HEALTH_STATUS_HEALTHY.into(),
            gpu_count: 1,
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            gpus: vec![v1::GpuInfo {
                index: 0,
                uuid: "GPU-0".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: "00000000:18:00.0".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let row = crate::views::NodeRow::from_wire(&node);
        insta::assert_snapshot!(crate::views::node_detail(&row, Some(&sample())));
        let without = crate::views::node_detail(&row, None);
        assert!(!without.contains("vm:") && !without.contains("PROCESS"), "{without}");
    }

    #[test]
    fn as_json_each_record_is_its_document() {
        let json = serde_json::to_value(sample()).expect("json");
        assert!(json["host"].is_null());
        assert_eq!(json["vm"]["vmid"], 103);
        assert_eq!(json["workloads"][0]["pod"]["name"], "trainer-0");
        assert_eq!(json["workloads"].as_array().map(Vec::len), Some(2));
    }
}
