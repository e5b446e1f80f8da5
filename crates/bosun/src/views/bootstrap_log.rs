//! `bosun nodes bootstrap-log`: what the SSH bootstrap ran on a machine and what it said.

use bosun_api::v1;
use serde::Serialize;

use super::{dash, non_empty, time};

#[derive(Debug, Serialize)]
pub struct BootstrapLogRow {
    pub id: u64,
    pub node_id: String,
    pub instance_id: Option<String>,
    pub pool: Option<String>,
    pub started_at: Option<String>,
    pub duration_ms: u64,
    pub success: bool,
    pub error: Option<String>,
    pub commands: Vec<BootstrapCommandRow>,
}

#[derive(Debug, Serialize)]
pub struct BootstrapCommandRow {
    pub command: String,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub stdout: String,
    pub stderr: String,
}

impl BootstrapLogRow {
    pub fn from_wire(log: &v1::BootstrapLog) -> Self {
        BootstrapLogRow {
            id: log.id,
            node_id: log.node_id.clone(),
            instance_id: non_empty(&log.instance_id),
            pool: non_empty(&log.pool),
            started_at: time(&log.started_at),
            duration_ms: log.duration_ms,
            success: log.success,
            error: non_empty(&log.error),
            commands: log
                .commands
                .iter()
                .map(|c| BootstrapCommandRow {
                    command: c.command.clone(),
                    exit_code: c.exit_code,
                    duration_ms: c.duration_ms,
                    stdout: c.stdout.clone(),
                    stderr: c.stderr.clone(),
                })
                .collect(),
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// Each attempt, newest first: a header line, then each command with its exit status
/// and its output indented beneath it.
pub fn bootstrap_logs(node: &str, logs: &[BootstrapLogRow]) -> String {
    if logs.is_empty() {
        return format!(
            "No bootstrap logs for {node}: bosun ran no setup commands on its machine (the pool has none, the \
             provider gave no address, or the agent registered first).\n"
        );
    }
    let mut out = String::new();
    for log in logs {
        let outcome =
            if log.success { "succeeded".to_owned() } else { format!("FAILED: {}", dash(log.error.as_deref())) };
        out.push_str(&format!(
            "attempt {} at {} on {} (pool {}, instance {}), {}: {outcome}\n",
            log.id,
            dash(log.started_at.as_deref()),
            log.node_id,
            dash(log.pool.as_deref()),
            dash(log.instance_id.as_deref()),
            seconds(log.duration_ms),
        ));
        for command in &log.commands {
            let status =
                if command.exit_code < 0 { "did not finish".to_owned() } else { format!("exit {}", command.exit_code) };
            out.push_str(&format!("  $ {}   ({status}, {})\n", command.command, seconds(command.duration_ms)));
            for (stream, text) in [("", &command.stdout), ("stderr: ", &command.stderr)] {
                for line in text.lines() {
                    out.push_str(&format!("    {stream}{line}\n"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_read_top_down_with_their_output() {
        let log = v1::BootstrapLog {
            id: 7,
            node_id: "i-0193".into(),
            instance_id: "i-0193".into(),
            pool: "training".into(),
            started_at: buffa::MessageField::some(bosun_api::convert::timestamp(
                "2026-11-23T10:00:00Z".parse::<bosun_core::Timestamp>().expect("time"),
            )),
            duration_ms: 4200,
            success: false,
            error: "setup command 2 of 2 exited with status 1".into(),
            commands: vec![
                v1::BootstrapCommandLog {
                    command: "curl -fsSL https://get.example/bosun | sh".into(),
                    stdout: "installed bosun 0.1.0\n".into(),
                    exit_code: 0,
                    duration_ms: 1100,
                    ..Default::default()
                },
                v1::BootstrapCommandLog {
                    command: "systemctl start bosun-agent".into(),
                    stderr: "Unit bosun-agent.service not found.\n".into(),
                    exit_code: 1,
                    duration_ms: 3100,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let rows = [BootstrapLogRow::from_wire(&log)];
        insta::assert_snapshot!(bootstrap_logs("i-0193", &rows));
        assert!(bootstrap_logs("n1", &[]).starts_with("No bootstrap logs for n1"));
    }
}
