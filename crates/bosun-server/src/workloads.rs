//! GPU workloads agents report, as the inventory's records: each under a key stable on its
//! node, with a digest of its state.
//!
//! The key is the pid and the process's start time (`4242@2026-03-01T10:15:42.370000Z`),
//! so a pid the kernel hands to a new process names a new record; a process whose start
//! the agent could not read is keyed by its pid alone. The digest covers the whole state,
//! GPU memory included (agents send a change of memory alone at most once per inventory
//! interval).

use std::fmt::Write as _;

use bosun_core::inventory::{Reported, Usage, Workload};
use sha2::{Digest as _, Sha256};

/// `workloads` as records to sync, in the order given.
pub(crate) fn reported(workloads: Vec<Workload>) -> Vec<Reported<Workload>> {
    workloads
        .into_iter()
        .map(|state| Reported { key: key(&state), digest: digest(&state), state, usage: Usage::default() })
        .collect()
}

/// `NODE/PID@START`: unique in the agents' source, whose records of every node share one
/// key space (a pid alone is unique on one node only).
fn key(workload: &Workload) -> String {
    match workload.started_at {
        Some(started_at) => format!("{}/{}@{}", workload.node_id, workload.pid, started_at.to_rfc3339()),
        None => format!("{}/{}", workload.node_id, workload.pid),
    }
}

/// The SHA-256 of the state as JSON, in hexadecimal.
fn digest(workload: &Workload) -> String {
    // Serializing plain fields (strings, numbers, options, vectors) cannot fail.
    let json = serde_json::to_vec(workload).unwrap_or_default();
    Sha256::digest(&json).iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use bosun_core::inventory::PodRef;
    use bosun_core::{NodeId, Timestamp};

    use super::*;

    fn workload() -> Workload {
        Workload {
            node_id: NodeId::new("n1").expect("valid"),
            gpu_indexes: vec![0, 1],
            pid: 4242,
            process_name: "python3".into(),
            container_id: Some("ab".repeat(32)),
            pod: Some(PodRef { namespace: None, name: None, uid: "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10".into() }),
            gpu_memory_bytes: 8 << 30,
            started_at: Some("2026-03-01T10:15:42.37Z".parse().expect("valid")),
        }
    }

    #[test]
    fn records_are_keyed_by_pid_and_start_and_digest_their_state() {
        let records = reported(vec![workload(), Workload { pid: 7, started_at: None, ..workload() }]);
        assert_eq!(records[0].key, "n1/4242@2026-03-01T10:15:42.370000Z");
        assert_eq!(records[1].key, "n1/7", "without a start time, the node and pid alone");
        assert_eq!(records[0].digest.len(), 64);
        assert!(records[0].digest.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(records[0].state, workload());
        assert_eq!(records[0].usage, Usage::default());

        let again = reported(vec![workload()]);
        assert_eq!(again[0].digest, records[0].digest, "the same state, the same digest");
        for changed in [
            Workload { gpu_indexes: vec![0], ..workload() },
            Workload { process_name: "other".into(), ..workload() },
            Workload { container_id: None, ..workload() },
            Workload { pod: None, ..workload() },
            Workload { gpu_memory_bytes: 1, ..workload() },
        ] {
            let record = &reported(vec![changed])[0];
            assert_eq!(record.key, records[0].key);
            assert_ne!(record.digest, records[0].digest, "{:?}", record.state);
        }
        let reused = Workload { started_at: Some(Timestamp::UNIX_EPOCH), ..workload() };
        assert_ne!(reported(vec![reused])[0].key, records[0].key, "a reused pid is another process");
    }
}
