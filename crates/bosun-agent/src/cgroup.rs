//! Which container, and which Kubernetes pod, a process belongs to, read from its
//! `/proc/PID/cgroup`: the inventory's GPU workloads name the container and pod holding a
//! GPU, not just a PID.
//!
//! Container runtimes put a process in a cgroup whose path carries the container's id, and
//! the kubelet nests a pod's containers under a cgroup carrying the pod's UID. The shapes
//! read, on cgroup v1 (one line per hierarchy) and v2 (`0::/path`):
//! - Docker: `/docker/<id>`, `/system.slice/docker-<id>.scope`;
//! - containerd and CRI-O: `cri-containerd-<id>.scope`, `crio-<id>.scope`, or the bare id
//!   under a pod's cgroup;
//! - kubelet with the cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`; with the systemd
//!   driver: `kubepods-<qos>-pod<uid_with_underscores>.slice`.
//!
//! Parsing is pure; text that matches none of these (a process on the host) is no owner.

/// The container (and pod) a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupOwner {
    /// The container runtime's id: 64 lower-case hex characters.
    pub container_id: Option<String>,
    /// The Kubernetes pod's UID, with dashes (`5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10`).
    pub pod_uid: Option<String>,
}

/// The owner named by a `/proc/PID/cgroup` text, if any. The first line that names one
/// wins (every hierarchy names the same container).
pub fn owner_of(cgroup: &str) -> Option<CgroupOwner> {
    cgroup.lines().filter_map(|line| line.splitn(3, ':').nth(2)).find_map(owner_of_path)
}

fn owner_of_path(path: &str) -> Option<CgroupOwner> {
    let mut owner = CgroupOwner::default();
    for segment in path.split('/') {
        if let Some(uid) = pod_uid(segment) {
            owner.pod_uid = Some(uid);
        } else if let Some(id) = container_id(segment) {
            owner.container_id = Some(id);
        }
    }
    (owner != CgroupOwner::default()).then_some(owner)
}

/// `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let start = segment.rfind("pod")?;
    let uid = segment[start + 3..].replace('_', "-");
    is_uid(&uid).then_some(uid)
}

fn is_uid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| {
            group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        })
}

/// A runtime's container id in a segment: bare, or with a runtime prefix and `.scope`.
fn container_id(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = ["docker-", "cri-containerd-", "crio-", "containerd-", "libpod-"]
        .iter()
        .find_map(|prefix| segment.strip_prefix(prefix))
        .unwrap_or(segment);
    (id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4a2b1c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
    const UID: &str = "5f0c1f52-6a5d-4c7e-9d3e-6f1e3c2b9a10";

    fn owner(container: Option<&str>, pod: Option<&str>) -> Option<CgroupOwner> {
        Some(CgroupOwner { container_id: container.map(str::to_owned), pod_uid: pod.map(str::to_owned) })
    }

    #[test]
    fn runtimes_and_kubelet_drivers_are_read() {
        let systemd_pod = format!("kubepods-burstable-pod{}.slice", UID.replace('-', "_"));
        let cases = [
            // Docker, v2 and v1.
            (format!("0::/system.slice/docker-{ID}.scope\n"), owner(Some(ID), None)),
            (format!("12:memory:/docker/{ID}\n11:cpu:/docker/{ID}\n"), owner(Some(ID), None)),
            // Kubernetes with the cgroupfs driver (containerd's bare id under the pod).
            (format!("0::/kubepods/besteffort/pod{UID}/{ID}\n"), owner(Some(ID), Some(UID))),
            // Kubernetes with the systemd driver.
            (
                format!("0::/kubepods.slice/kubepods-burstable.slice/{systemd_pod}/cri-containerd-{ID}.scope\n"),
                owner(Some(ID), Some(UID)),
            ),
            (format!("0::/kubepods.slice/{systemd_pod}/crio-{ID}.scope\n"), owner(Some(ID), Some(UID))),
        ];
        for (text, expected) in cases {
            assert_eq!(owner_of(&text), expected, "{text}");
        }
    }

    #[test]
    fn host_processes_and_look_alikes_have_no_owner() {
        for text in [
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/system.slice/nvidia-persistenced.service\n",
            "0::/\n",
            "",
            "garbage without colons",
            // Not 64 lower-case hex characters, not a UUID.
            "0::/docker/ABCDEF\n",
            "0::/kubepods/pod1234/abc\n",
        ] {
            assert_eq!(owner_of(text), None, "{text:?}");
        }
    }
}
