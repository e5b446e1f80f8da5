//! The fuzz targets' bodies, as plain functions of the input bytes.
//!
//! `fuzz/fuzz_targets/*.rs` (cargo-fuzz, nightly) call them with generated inputs; the
//! `replay` test calls them with every file under `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` on stable, in `scripts/test`. A target fails by panicking:
//! a parser that panics, or an RPC answered with a 5xx.
//!
//! Targets: [`config`], [`policy`], [`scenario`], [`rpc_json`], [`rpc_proto`].

mod rpc;

pub use rpc::{RPCS, rpc_json, rpc_proto};

/// A fuzz target: panics on an input that shows a bug.
pub type Target = fn(&[u8]);

/// Every target by name (the directory names under `fuzz/corpus`).
pub const TARGETS: &[(&str, Target)] =
    &[("config", config), ("policy", policy), ("scenario", scenario), ("rpc_json", rpc_json), ("rpc_proto", rpc_proto)];

/// The configuration file parser, environment expansion included.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bosun_config::Config::from_yaml_str(text, |name| (name == "FUZZ").then(|| "value".to_owned()));
    }
}

/// The health policy parser and compiler; a policy that compiles classifies an event.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = bosun_policy::Policy::from_yaml(text) {
        let event = bosun_core::HealthEvent {
            timestamp: bosun_core::Timestamp::UNIX_EPOCH,
            gpu_index: 0,
            gpu_uuid: "GPU-0".to_owned(),
            system: bosun_core::HealthSystem::Thermal,
            event_type: bosun_core::EventType::Thermal,
            metrics: [("temperature".to_owned(), "97".to_owned())].into(),
            message: "fuzz".to_owned(),
        };
        let _ = policy.classify(&event);
    }
}

/// The simulator's scenario parser.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bosun_sim::Scenario::parse(text);
    }
}
