//! The built-in default policy (SPEC 8), embedded in the binary.

use crate::error::PolicyError;
use crate::policy::Policy;

/// The built-in policy's YAML, e.g. for `bosun policy show --default` or as a starting
/// point for a custom policy.
pub const BUILTIN_POLICY_YAML: &str = include_str!("default_policy.yaml");

impl Policy {
    /// Compiles the built-in policy (a few milliseconds: compile once and share it).
    ///
    /// Fails only if the embedded YAML were broken, which this crate's tests rule out; the
    /// `Result` keeps a panic out of the server even so.
    pub fn builtin() -> Result<Policy, PolicyError> {
        Policy::from_yaml(BUILTIN_POLICY_YAML)
    }
}
