//! `bosun db check`, written once: the list of checks every backend runs and how each
//! judges. A backend implements [`IntegritySource`], which answers plain questions about
//! its rows (which references point nowhere, the change log in order, revisions, GPU
//! inventories, state fields); [`check`] asks them all and decides what is wrong.
//!
//! The checks:
//! - `orphans`: every [`Reference`] between rows (a SQL schema enforces them with foreign
//!   keys; rows written around them, or memory's maps, are checked here).
//! - `revisions`: each resource's revisions only grow along the change log (restarting
//!   after a delete), and every live record is at the revision its latest change says.
//! - `sequence`: every change sequence number above the retention mark is present.
//! - `states`: fields that contradict a state (a RUNNING instance without a node, a final
//!   command without `finished_at`), and GPU inventories that disagree with their node.

use std::collections::HashMap;

use bosun_core::{ChangeOp, CommandState, InstanceState, ResourceKind};

use crate::error::Result;
use crate::sql::{parse, unsigned};
use crate::store::IntegrityFinding;

/// Stop collecting after this many findings: a broken database would otherwise print
/// millions of lines.
pub(crate) const MAX_FINDINGS: usize = 1000;

/// Orphans reported per reference at most.
pub(crate) const ORPHANS_PER_REFERENCE: usize = 100;

/// A reference from one kind of row to its parent, verified by every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reference {
    CommandToNode,
    CommandEventToCommand,
    InstanceToNode,
    HealthReportToNode,
    MetricSampleToNode,
    GpuToNode,
    LivenessToNode,
    RunTargetToRun,
    RunEventToRun,
    ArtifactToRun,
    ApprovalToRun,
    ToolCallToRun,
    ToolCallToApproval,
    HostOfStorage,
    LlmRequestToRun,
    LlmResponseToRequest,
    TokenUsageToRequest,
    TokenUsageToRun,
}

impl Reference {
    pub const ALL: [Reference; 18] = [
        Reference::CommandToNode,
        Reference::CommandEventToCommand,
        Reference::InstanceToNode,
        Reference::HealthReportToNode,
        Reference::MetricSampleToNode,
        Reference::GpuToNode,
        Reference::LivenessToNode,
        Reference::RunTargetToRun,
        Reference::RunEventToRun,
        Reference::ArtifactToRun,
        Reference::ApprovalToRun,
        Reference::ToolCallToRun,
        Reference::ToolCallToApproval,
        Reference::HostOfStorage,
        Reference::LlmRequestToRun,
        Reference::LlmResponseToRequest,
        Reference::TokenUsageToRequest,
        Reference::TokenUsageToRun,
    ];

    /// The SQL tables of the child and the parent (every foreign key of the schemas is one
    /// of these; a test keeps the list complete).
    #[cfg(test)]
    pub fn tables(self) -> (&'static str, &'static str) {
        match self {
            Reference::CommandToNode => ("commands", "nodes"),
            Reference::CommandEventToCommand => ("command_events", "commands"),
            Reference::InstanceToNode => ("instances", "nodes"),
            Reference::HealthReportToNode => ("health_reports", "nodes"),
            Reference::MetricSampleToNode => ("metric_samples", "nodes"),
            Reference::GpuToNode => ("node_gpus", "nodes"),
            Reference::LivenessToNode => ("node_liveness", "nodes"),
            Reference::RunTargetToRun => ("task_run_targets", "task_runs"),
            Reference::RunEventToRun => ("task_events", "task_runs"),
            Reference::ArtifactToRun => ("artifacts", "task_runs"),
            Reference::ApprovalToRun => ("approvals", "task_runs"),
            Reference::ToolCallToRun => ("tool_call_records", "task_runs"),
            Reference::ToolCallToApproval => ("tool_call_records", "approvals"),
            Reference::HostOfStorage => ("host_storage", "storage"),
            Reference::LlmRequestToRun => ("llm_requests", "task_runs"),
            Reference::LlmResponseToRequest => ("llm_responses", "llm_requests"),
            Reference::TokenUsageToRequest => ("token_usage", "llm_requests"),
            Reference::TokenUsageToRun => ("token_usage", "task_runs"),
        }
    }

    /// How a finding names the child row.
    fn child(self) -> &'static str {
        match self {
            Reference::CommandToNode => "command",
            Reference::CommandEventToCommand => "command event of",
            Reference::InstanceToNode => "instance",
            Reference::HealthReportToNode => "health report",
            Reference::MetricSampleToNode => "metric sample of",
            Reference::GpuToNode => "GPU of",
            Reference::LivenessToNode => "liveness of",
            Reference::RunTargetToRun => "target of",
            Reference::RunEventToRun => "event of",
            Reference::ArtifactToRun => "artifact of",
            Reference::ApprovalToRun => "approval",
            Reference::ToolCallToRun | Reference::ToolCallToApproval => "tool call",
            Reference::HostOfStorage => "host link of",
            Reference::LlmRequestToRun => "LLM request",
            Reference::LlmResponseToRequest => "LLM response",
            Reference::TokenUsageToRequest | Reference::TokenUsageToRun => "token usage",
        }
    }
}

/// A row whose parent is missing: its key and the parent key it names.
#[derive(Debug, Clone)]
pub(crate) struct Orphan {
    pub child: String,
    pub parent: String,
}

/// A node's GPU summary and how many GPUs its inventory lists.
#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub node: String,
    pub gpu_count: u32,
    pub listed: u64,
}

/// The fields of an instance its state constrains.
#[derive(Debug, Clone)]
pub(crate) struct InstanceFacts {
    pub id: String,
    pub state: InstanceState,
    pub has_node: bool,
    pub has_terminated_at: bool,
}

/// The fields of a command its state constrains.
#[derive(Debug, Clone)]
pub(crate) struct CommandFacts {
    pub id: String,
    pub state: CommandState,
    pub has_delivered_at: bool,
    pub has_finished_at: bool,
}

impl Inventory {
    /// From SQL columns: node id, `gpu_count`, number of `node_gpus` rows.
    pub fn from_sql((node, gpu_count, listed): (String, i64, i64)) -> Result<Self> {
        Ok(Inventory { node, gpu_count: unsigned("nodes.gpu_count", gpu_count)?, listed: unsigned("count", listed)? })
    }
}

impl InstanceFacts {
    /// From SQL columns: id, state, `node_id IS NOT NULL`, `terminated_at IS NOT NULL`.
    pub fn from_sql((id, state, has_node, has_terminated_at): (String, String, bool, bool)) -> Result<Self> {
        Ok(InstanceFacts { id, state: parse("instances.state", &state)?, has_node, has_terminated_at })
    }
}

impl CommandFacts {
    /// From SQL columns: id, state, `delivered_at IS NOT NULL`, `finished_at IS NOT NULL`.
    pub fn from_sql((id, state, has_delivered_at, has_finished_at): (String, String, bool, bool)) -> Result<Self> {
        Ok(CommandFacts { id, state: parse("commands.state", &state)?, has_delivered_at, has_finished_at })
    }
}

/// What a backend answers for `db check`. Like `apply::Transaction`, its methods are
/// `async` for PostgreSQL; SQLite and memory answer synchronously.
#[allow(async_fn_in_trait)] // crate-private; each caller uses one concrete backend
pub(crate) trait IntegritySource {
    /// Up to `limit` rows of `reference`'s child whose parent is missing.
    async fn orphans(&mut self, reference: Reference, limit: usize) -> Result<Vec<Orphan>>;
    /// How far retention has compacted the change log.
    async fn compacted_through(&mut self) -> Result<u64>;
    /// Hands every change record's head to `checker`, in sequence order.
    async fn feed_changes(&mut self, checker: &mut ChangeLogChecker) -> Result<()>;
    /// Every live resource with revisions: kind, id, revision.
    async fn live_revisions(&mut self) -> Result<Vec<(ResourceKind, String, u64)>>;
    async fn inventories(&mut self) -> Result<Vec<Inventory>>;
    async fn instance_facts(&mut self) -> Result<Vec<InstanceFacts>>;
    async fn command_facts(&mut self) -> Result<Vec<CommandFacts>>;
    /// The audit log's entries: how many, the lowest and highest number, and the last number
    /// handed out.
    async fn audit_numbers(&mut self) -> Result<AuditNumbers>;
    /// Per run with events: its id, how many events, the lowest and the highest number.
    async fn run_event_numbers(&mut self) -> Result<Vec<(String, u64, u64, u64)>>;
}

/// What the audit gap check reads.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuditNumbers {
    pub count: u64,
    pub lowest: u64,
    pub highest: u64,
    pub handed_out: u64,
}

/// Runs every check against `source`.
pub(crate) async fn check<S: IntegritySource>(source: &mut S) -> Result<Vec<IntegrityFinding>> {
    let mut findings = Vec::new();
    for reference in Reference::ALL {
        for orphan in source.orphans(reference, ORPHANS_PER_REFERENCE).await? {
            findings.push(IntegrityFinding {
                check: "orphans",
                subject: format!("{} {}", reference.child(), orphan.child),
                problem: format!("refers to missing {}", orphan.parent),
            });
        }
    }
    let mut checker = ChangeLogChecker::new(source.compacted_through().await?);
    source.feed_changes(&mut checker).await?;
    findings.extend(checker.finish(source.live_revisions().await?));
    for inventory in source.inventories().await? {
        if let Some(problem) = inventory_problem(inventory.gpu_count, inventory.listed) {
            findings.push(IntegrityFinding { check: "states", subject: format!("node {}", inventory.node), problem });
        }
    }
    for i in source.instance_facts().await? {
        if let Some(problem) = instance_state_problem(i.state, i.has_node, i.has_terminated_at) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("instance {}", i.id),
                problem: problem.into(),
            });
        }
    }
    for c in source.command_facts().await? {
        if let Some(problem) = command_state_problem(c.state, c.has_delivered_at, c.has_finished_at) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("command {}", c.id),
                problem: problem.into(),
            });
        }
    }
    let audit = source.audit_numbers().await?;
    if let Some(problem) = audit_problem(audit) {
        findings.push(IntegrityFinding { check: "sequence", subject: "audit log".into(), problem });
    }
    for (run, count, lowest, highest) in source.run_event_numbers().await? {
        if lowest != 1 || highest != count {
            findings.push(IntegrityFinding {
                check: "sequence",
                subject: format!("run {run}"),
                problem: format!("has {count} events numbered {lowest} to {highest}: events are missing"),
            });
        }
    }
    findings.truncate(MAX_FINDINGS);
    Ok(findings)
}

/// Audit entries are numbered without gaps; retention removes only the oldest, so what
/// remains runs from some number up to the last handed out.
fn audit_problem(a: AuditNumbers) -> Option<String> {
    if a.count == 0 {
        return None;
    }
    if a.highest - a.lowest + 1 != a.count {
        return Some(format!(
            "holds {} entries numbered {} to {}: {} missing",
            a.count,
            a.lowest,
            a.highest,
            a.highest - a.lowest + 1 - a.count
        ));
    }
    (a.highest != a.handed_out).then(|| {
        format!("ends at entry {} but {} were handed out: the newest entries are missing", a.highest, a.handed_out)
    })
}

#[derive(Debug, Clone, Copy)]
struct LastChange {
    seq: u64,
    revision: u64,
    op: ChangeOp,
}

/// Walks the change log in sequence order and checks that each resource's revisions only
/// grow (restarting after a delete), then compares the log's view with the live records.
#[derive(Debug, Default)]
pub(crate) struct ChangeLogChecker {
    last: HashMap<(ResourceKind, String), LastChange>,
    previous_seq: u64,
    /// Below this, missing numbers are records retention removed on purpose.
    compacted_through: u64,
    findings: Vec<IntegrityFinding>,
}

impl ChangeLogChecker {
    pub fn new(compacted_through: u64) -> Self {
        Self { compacted_through, ..Self::default() }
    }

    pub fn observe(&mut self, kind: ResourceKind, resource_id: &str, seq: u64, revision: u64, op: ChangeOp) {
        if seq <= self.previous_seq {
            self.report(
                "sequence",
                format!("change {seq}"),
                format!("sequence numbers are not increasing (after {})", self.previous_seq),
            );
        } else {
            let first_missing = (self.previous_seq + 1).max(self.compacted_through + 1);
            if first_missing < seq {
                let missing = if first_missing + 1 == seq {
                    format!("change {first_missing} is missing")
                } else {
                    format!("changes {first_missing} to {} are missing", seq - 1)
                };
                self.report(
                    "sequence",
                    format!("change {seq}"),
                    format!(
                        "{missing} (retention only removes records up to {}): a write's record was lost or \
                         deleted by hand",
                        self.compacted_through
                    ),
                );
            }
        }
        self.previous_seq = seq;
        let key = (kind, resource_id.to_owned());
        if let Some(previous) = self.last.get(&key).copied()
            && previous.op != ChangeOp::Deleted
        {
            // A delete records the revision it removed; everything else must move on.
            let grew =
                if op == ChangeOp::Deleted { revision >= previous.revision } else { revision > previous.revision };
            if !grew {
                self.report(
                    "revisions",
                    format!("{kind} {resource_id}"),
                    format!(
                        "revision went from {} (change {}) to {revision} (change {seq}); revisions must only grow",
                        previous.revision, previous.seq
                    ),
                );
            }
            if op == ChangeOp::Created {
                self.report(
                    "revisions",
                    format!("{kind} {resource_id}"),
                    format!("created again by change {seq} without being deleted"),
                );
            }
        }
        self.last.insert(key, LastChange { seq, revision, op });
    }

    /// Checks live records (`kind`, `id`, `revision`) against the log and returns every
    /// finding.
    pub fn finish(mut self, live: impl IntoIterator<Item = (ResourceKind, String, u64)>) -> Vec<IntegrityFinding> {
        let mut seen = std::collections::HashSet::new();
        for (kind, id, revision) in live {
            match self.last.get(&(kind, id.clone())).copied() {
                None => self.report(
                    "revisions",
                    format!("{kind} {id}"),
                    "has no change record; every mutation must write one".to_owned(),
                ),
                Some(last) if last.op == ChangeOp::Deleted => self.report(
                    "revisions",
                    format!("{kind} {id}"),
                    format!("still exists although change {} deleted it", last.seq),
                ),
                Some(last) if last.revision != revision => self.report(
                    "revisions",
                    format!("{kind} {id}"),
                    format!("is at revision {revision} but its latest change {} says {}", last.seq, last.revision),
                ),
                Some(_) => {}
            }
            seen.insert((kind, id));
        }
        let missing: Vec<_> = self
            .last
            .iter()
            // A log-only resource (a drift report) has no row to be found.
            .filter(|(key, last)| last.op != ChangeOp::Deleted && !key.0.is_log_only() && !seen.contains(*key))
            .map(|((kind, id), last)| (*kind, id.clone(), *last))
            .collect();
        for (kind, id, last) in missing {
            self.report(
                "revisions",
                format!("{kind} {id}"),
                format!(
                    "is gone but was never deleted (latest change {} left it at revision {})",
                    last.seq, last.revision
                ),
            );
        }
        self.findings
    }

    fn report(&mut self, check: &'static str, subject: String, problem: String) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(IntegrityFinding { check, subject, problem });
        }
    }
}

/// An instance whose fields contradict its state.
fn instance_state_problem(state: InstanceState, has_node: bool, has_terminated_at: bool) -> Option<&'static str> {
    match state {
        InstanceState::Running if !has_node => Some("is RUNNING but linked to no node"),
        InstanceState::Terminated if !has_terminated_at => Some("is TERMINATED but has no terminated_at"),
        _ => None,
    }
}

/// A node whose GPU inventory disagrees with its summary.
fn inventory_problem(gpu_count: u32, inventory: u64) -> Option<String> {
    (inventory != u64::from(gpu_count))
        .then(|| format!("says it has {gpu_count} GPUs but its inventory lists {inventory}"))
}

/// A command whose bookkeeping contradicts its state.
fn command_state_problem(state: CommandState, has_delivered_at: bool, has_finished_at: bool) -> Option<&'static str> {
    if state.is_final() && !has_finished_at {
        return Some("is final but has no finished_at");
    }
    if matches!(state, CommandState::Delivered | CommandState::Acked) && !has_delivered_at {
        return Some("was delivered but has no delivered_at");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_must_grow_until_a_delete() {
        let mut checker = ChangeLogChecker::default();
        checker.observe(ResourceKind::Node, "n1", 1, 1, ChangeOp::Created);
        checker.observe(ResourceKind::Node, "n1", 2, 2, ChangeOp::Updated);
        checker.observe(ResourceKind::Node, "n1", 3, 2, ChangeOp::Deleted);
        checker.observe(ResourceKind::Node, "n1", 4, 1, ChangeOp::Created);
        assert!(checker.finish([(ResourceKind::Node, "n1".to_owned(), 1)]).is_empty());

        let mut checker = ChangeLogChecker::default();
        checker.observe(ResourceKind::Node, "n1", 1, 2, ChangeOp::Created);
        checker.observe(ResourceKind::Node, "n1", 2, 2, ChangeOp::Updated);
        let findings = checker.finish([(ResourceKind::Node, "n1".to_owned(), 3)]);
        let problems: Vec<_> = findings.iter().map(|f| f.problem.as_str()).collect();
        assert_eq!(
            problems,
            [
                "revision went from 2 (change 1) to 2 (change 2); revisions must only grow",
                "is at revision 3 but its latest change 2 says 2",
            ]
        );
    }

    #[test]
    fn live_records_and_log_must_agree() {
        let mut checker = ChangeLogChecker::default();
        checker.observe(ResourceKind::Pool, "gone", 1, 1, ChangeOp::Created);
        checker.observe(ResourceKind::Pool, "deleted", 2, 1, ChangeOp::Created);
        checker.observe(ResourceKind::Pool, "deleted", 3, 1, ChangeOp::Deleted);
        let findings = checker
            .finish([(ResourceKind::Pool, "deleted".to_owned(), 1), (ResourceKind::Pool, "unlogged".to_owned(), 1)]);
        let mut lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "[revisions] pool deleted: still exists although change 3 deleted it",
                "[revisions] pool gone: is gone but was never deleted (latest change 1 left it at revision 1)",
                "[revisions] pool unlogged: has no change record; every mutation must write one",
            ]
        );
    }

    #[test]
    fn a_missing_sequence_number_above_the_retention_mark_is_a_gap() {
        let observe_all = |checker: &mut ChangeLogChecker, seqs: &[u64]| {
            for (i, seq) in seqs.iter().enumerate() {
                checker.observe(ResourceKind::Pool, &format!("p{i}"), *seq, 1, ChangeOp::Created);
            }
        };
        let mut checker = ChangeLogChecker::new(0);
        observe_all(&mut checker, &[1, 2, 4, 8]);
        let problems: Vec<String> = checker.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                "[sequence] change 4: change 3 is missing (retention only removes records up to 0): a write's \
                 record was lost or deleted by hand",
                "[sequence] change 8: changes 5 to 7 are missing (retention only removes records up to 0): a \
                 write's record was lost or deleted by hand",
            ]
        );
        // Retention removed everything up to 6: only 7 is unexplained.
        let mut checker = ChangeLogChecker::new(6);
        observe_all(&mut checker, &[3, 5, 8, 9]);
        let problems: Vec<&str> = checker.findings.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(problems, ["change 8"]);
        assert!(checker.findings[0].problem.starts_with("change 7 is missing"));
    }

    #[test]
    fn state_contradictions() {
        assert!(instance_state_problem(InstanceState::Running, false, false).is_some());
        assert!(instance_state_problem(InstanceState::Running, true, false).is_none());
        assert!(command_state_problem(CommandState::Succeeded, true, false).is_some());
        assert!(command_state_problem(CommandState::Pending, false, false).is_none());
    }
}
