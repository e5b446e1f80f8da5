//! What an agent's report of its GPU workloads ([`Workload`]) may carry: the limits and
//! the checks every entry point applies (the API's conversion, the agent before it sends).
//!
//! A report is a node's complete snapshot: every process using one of its GPUs, once.

use crate::inventory::Workload;
use crate::validation::{self, ValidationError};

/// Most workloads one report may carry. A machine has at most a few hundred GPU processes
/// (eight GPUs with 48 MPS clients each); a larger report is refused whole
/// (`resource_exhausted`), never cut short, because a cut snapshot would mark the rest gone.
pub const MAX_REPORT_WORKLOADS: usize = 4096;

/// Most GPUs one workload may name.
pub const MAX_WORKLOAD_GPUS: usize = 64;

/// The largest GPU index a workload may name.
pub const MAX_GPU_INDEX: u32 = 1023;

/// Longest container id (runtimes use 64 hexadecimal characters).
pub const MAX_CONTAINER_ID_LEN: usize = 128;

/// Longest pod UID, namespace or name (Kubernetes allows 253 characters in a name).
pub const MAX_POD_FIELD_LEN: usize = 253;

/// Checks one workload, naming the field at fault (`gpu_indexes`, `pod.uid`...).
pub fn validate(workload: &Workload) -> Result<(), ValidationError> {
    if workload.pid == 0 {
        return Err(ValidationError::new("pid", "is required"));
    }
    let gpus = &workload.gpu_indexes;
    if gpus.is_empty() || gpus.len() > MAX_WORKLOAD_GPUS {
        return Err(ValidationError::new(
            "gpu_indexes",
            format_args!("names {} GPUs; a workload uses 1 to {MAX_WORKLOAD_GPUS}", gpus.len()),
        ));
    }
    if let Some(index) = gpus.iter().find(|index| **index > MAX_GPU_INDEX) {
        return Err(ValidationError::new("gpu_indexes", format_args!("{index} is above {MAX_GPU_INDEX}")));
    }
    if gpus.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(ValidationError::new("gpu_indexes", "must be sorted, each GPU once"));
    }
    validation::check_name("process_name", &workload.process_name)?;
    if let Some(id) = &workload.container_id {
        validation::check_identifier("container_id", id, MAX_CONTAINER_ID_LEN)?;
    }
    if let Some(pod) = &workload.pod {
        validation::check_identifier("pod.uid", &pod.uid, MAX_POD_FIELD_LEN)?;
        if let Some(namespace) = &pod.namespace {
            validation::check_identifier("pod.namespace", namespace, MAX_POD_FIELD_LEN)?;
        }
        if let Some(name) = &pod.name {
            validation::check_identifier("pod.name", name, MAX_POD_FIELD_LEN)?;
        }
    }
    validation::check_stored_int("gpu_memory_bytes", workload.gpu_memory_bytes)?;
    if let Some(started_at) = workload.started_at {
        validation::check_timestamp("started_at", started_at)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::PodRef;
    use crate::{NodeId, Timestamp};

    fn workload() -> Workload {
        Workload {
            node_id: NodeId::new("n1").expect("valid"),
            gpu_indexes: vec![0, 3],
            pid: 4242,
            process_name: "python".into(),
            container_id: Some("3f4a2b1c".repeat(8)),
            pod: Some(PodRef { namespace: None, name: None, uid: "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10".into() }),
            gpu_memory_bytes: 8 << 30,
            started_at: Some(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_workload_as_agents_report_it_is_valid() {
        assert_eq!(validate(&workload()), Ok(()));
        let bare =
            Workload { container_id: None, pod: None, started_at: None, process_name: String::new(), ..workload() };
        assert_eq!(validate(&bare), Ok(()), "a vanished process has no name, container or start");
    }

    #[test]
    fn bad_fields_are_named() {
        let pod = |uid: &str| Some(PodRef { namespace: Some("ml".into()), name: None, uid: uid.into() });
        let cases: Vec<(Workload, &str)> = vec![
            (Workload { pid: 0, ..workload() }, "pid"),
            (Workload { gpu_indexes: vec![], ..workload() }, "gpu_indexes"),
            (Workload { gpu_indexes: (0..65).collect(), ..workload() }, "gpu_indexes"),
            (Workload { gpu_indexes: vec![1024], ..workload() }, "gpu_indexes"),
            (Workload { gpu_indexes: vec![3, 0], ..workload() }, "gpu_indexes"),
            (Workload { gpu_indexes: vec![1, 1], ..workload() }, "gpu_indexes"),
            (Workload { process_name: "a\u{1}".into(), ..workload() }, "process_name"),
            (Workload { process_name: "p".repeat(257), ..workload() }, "process_name"),
            (Workload { container_id: Some(String::new()), ..workload() }, "container_id"),
            (Workload { container_id: Some("x".repeat(129)), ..workload() }, "container_id"),
            (Workload { pod: pod(""), ..workload() }, "pod.uid"),
            (Workload { pod: pod("has space"), ..workload() }, "pod.uid"),
            (
                Workload {
                    pod: Some(PodRef { namespace: Some("bad/ns".into()), name: None, uid: "u".into() }),
                    ..workload()
                },
                "pod.namespace",
            ),
            (
                Workload {
                    pod: Some(PodRef { namespace: None, name: Some("n".repeat(254)), uid: "u".into() }),
                    ..workload()
                },
                "pod.name",
            ),
            (Workload { gpu_memory_bytes: u64::MAX, ..workload() }, "gpu_memory_bytes"),
            (Workload { started_at: Some(Timestamp::from_unix_micros(i64::MAX / 2)), ..workload() }, "started_at"),
        ];
        for (workload, field) in cases {
            assert_eq!(validate(&workload).map_err(|e| e.field), Err(field.to_owned()), "{workload:?}");
        }
    }
}
