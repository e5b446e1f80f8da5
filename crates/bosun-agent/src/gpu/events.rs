//! Builders for the raw health events every GPU source emits, so fake and real GPUs
//! describe the same condition with the same event type, system and metric names: the
//! ones the health policy's rules read (`xid_code`, `temperature`, `ecc_sbe_count`...).

use std::collections::BTreeMap;

use bosun_core::{EventType, HealthEvent, HealthSystem, Timestamp, xid};

/// The GPU an event is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GpuRef<'a> {
    /// -1 when the GPU could not be identified (a kernel-log line for an unknown device).
    pub index: i32,
    pub uuid: &'a str,
}

fn event(
    at: Timestamp,
    gpu: GpuRef<'_>,
    (system, event_type): (HealthSystem, EventType),
    metrics: &[(&str, String)],
    message: String,
) -> HealthEvent {
    HealthEvent {
        timestamp: at,
        gpu_index: gpu.index,
        gpu_uuid: gpu.uuid.to_owned(),
        system,
        event_type,
        metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<BTreeMap<_, _>>(),
        message,
    }
}

/// An XID error. `code` is `None` when the driver could not say which XID it was; the
/// policy then treats it like any non-fatal XID. XIDs are reported by the driver, hence
/// the DRIVER system whatever the code's subject.
pub(crate) fn xid(at: Timestamp, gpu: GpuRef<'_>, code: Option<u32>, detail: &str) -> HealthEvent {
    let (metrics, mut message) = match code {
        Some(code) => (vec![("xid_code", code.to_string())], format!("XID {code}: {}", xid::name(code))),
        None => (Vec::new(), "XID of unknown code".to_owned()),
    };
    if !detail.is_empty() {
        message.push_str(" (");
        message.push_str(detail);
        message.push(')');
    }
    event(at, gpu, (HealthSystem::Driver, EventType::Xid), &metrics, message)
}

/// A GPU running at `celsius`. Temperatures are whole degrees (NVML reports integers), so
/// the policy sees an int it can compare with `>= 95`.
pub(crate) fn thermal(at: Timestamp, gpu: GpuRef<'_>, celsius: f64) -> HealthEvent {
    let degrees = celsius.round();
    event(
        at,
        gpu,
        (HealthSystem::Thermal, EventType::Thermal),
        &[("temperature", format!("{degrees:.0}"))],
        format!("GPU {} temperature {degrees:.0} C", gpu.index),
    )
}

/// Corrected (single-bit) ECC errors; `count` is the GPU's counter value.
pub(crate) fn ecc_single_bit(at: Timestamp, gpu: GpuRef<'_>, count: u64) -> HealthEvent {
    event(
        at,
        gpu,
        (HealthSystem::Mem, EventType::EccSbe),
        &[("ecc_sbe_count", count.to_string())],
        format!("GPU {} corrected ECC errors: {count}", gpu.index),
    )
}

/// Uncorrectable (double-bit) ECC errors; `count` is the GPU's counter value.
pub(crate) fn ecc_double_bit(at: Timestamp, gpu: GpuRef<'_>, count: u64) -> HealthEvent {
    event(
        at,
        gpu,
        (HealthSystem::Mem, EventType::EccDbe),
        &[("ecc_dbe_count", count.to_string())],
        format!("GPU {} uncorrectable ECC errors: {count}", gpu.index),
    )
}

/// NVLink errors on `link`; `errors` is the link's recovery counter.
pub(crate) fn nvlink(at: Timestamp, gpu: GpuRef<'_>, link: u32, errors: u64) -> HealthEvent {
    event(
        at,
        gpu,
        (HealthSystem::Nvlink, EventType::Nvlink),
        &[("link", link.to_string()), ("error_count", errors.to_string())],
        format!("GPU {} NVLink {link} errors: {errors}", gpu.index),
    )
}

/// PCIe link replays; `replays` is the GPU's replay counter.
pub(crate) fn pcie(at: Timestamp, gpu: GpuRef<'_>, replays: u64) -> HealthEvent {
    event(
        at,
        gpu,
        (HealthSystem::Pcie, EventType::Pcie),
        &[("replay_count", replays.to_string())],
        format!("GPU {} PCIe replays: {replays}", gpu.index),
    )
}

/// The GPU's clocks were cut by a hardware power brake.
pub(crate) fn power_brake(at: Timestamp, gpu: GpuRef<'_>) -> HealthEvent {
    event(
        at,
        gpu,
        (HealthSystem::Power, EventType::Power),
        &[("reason", "hw_power_brake".to_owned())],
        format!("GPU {} slowed down by a hardware power brake", gpu.index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_metric_names_the_policy_reads() {
        let at = Timestamp::UNIX_EPOCH;
        let gpu = GpuRef { index: 3, uuid: "GPU-1" };
        let e = xid(at, gpu, Some(79), "pid=1");
        assert_eq!((e.event_type, e.system), (EventType::Xid, HealthSystem::Driver));
        assert_eq!(e.metrics["xid_code"], "79");
        assert_eq!(e.message, "XID 79: GPU has fallen off the bus (pid=1)");
        assert!(xid(at, gpu, None, "").metrics.is_empty());
        assert_eq!(thermal(at, gpu, 94.6).metrics["temperature"], "95");
        assert_eq!(ecc_single_bit(at, gpu, 120).metrics["ecc_sbe_count"], "120");
        assert_eq!(ecc_double_bit(at, gpu, 1).event_type, EventType::EccDbe);
        assert!(e.validate().is_ok());
    }
}
