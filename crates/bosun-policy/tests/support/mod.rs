//! Event builders shared by the integration tests.

use bosun_core::{EventType, HealthEvent, HealthSystem};

/// An event on GPU 0 with `metrics`.
pub fn event(event_type: EventType, system: HealthSystem, metrics: &[(&str, &str)]) -> HealthEvent {
    HealthEvent {
        timestamp: "2026-11-23T13:26:00Z".parse().expect("valid timestamp"),
        gpu_index: 0,
        gpu_uuid: "GPU-0".to_owned(),
        system,
        event_type,
        metrics: metrics.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect(),
        message: String::new(),
    }
}
