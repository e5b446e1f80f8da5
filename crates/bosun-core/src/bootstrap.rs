//! Bootstrap logs: what happened when bosun ran a pool's setup commands on a new machine.

use serde::{Deserialize, Serialize};

use crate::{InstanceId, NodeId, PoolName, Timestamp};

/// Stdout and stderr are truncated to this many bytes each before storing.
pub const MAX_BOOTSTRAP_OUTPUT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapCommandLog {
    /// The command as written in the pool's configuration (template, not rendered, so
    /// secrets substituted at run time are not stored).
    pub command: String,
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapLog {
    /// Assigned by the store.
    pub id: u64,
    pub node_id: NodeId,
    pub instance_id: Option<InstanceId>,
    pub pool: Option<PoolName>,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    pub success: bool,
    pub error: String,
    pub commands: Vec<BootstrapCommandLog>,
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub fn truncate_output(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_character_boundaries() {
        let mut text = "héllo".to_owned();
        truncate_output(&mut text, 2);
        assert_eq!(text, "h");
        let mut short = "ok".to_owned();
        truncate_output(&mut short, 10);
        assert_eq!(short, "ok");
    }
}
