//! Integrity rules for `bosun db check`, shared by every backend so all judge the same way.
//! Backends feed rows in (streamed from SQL, or straight from memory); the checkers here
//! decide what is wrong.

use std::collections::HashMap;

use bosun_core::{ChangeOp, ChangeRecord, Command, CommandState, Instance, InstanceState, ResourceKind, Revision};

use crate::store::IntegrityFinding;

/// Stop collecting after this many findings: a broken database would otherwise print
/// millions of lines.
pub(crate) const MAX_FINDINGS: usize = 1000;

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
    findings: Vec<IntegrityFinding>,
}

impl ChangeLogChecker {
    pub fn observe(&mut self, kind: ResourceKind, resource_id: &str, seq: u64, revision: u64, op: ChangeOp) {
        if seq <= self.previous_seq {
            self.report(
                "revisions",
                format!("change {seq}"),
                format!("sequence numbers are not increasing (after {})", self.previous_seq),
            );
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
            .filter(|(key, last)| last.op != ChangeOp::Deleted && !seen.contains(*key))
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
pub(crate) fn instance_state_problem(
    state: InstanceState,
    has_node: bool,
    has_terminated_at: bool,
) -> Option<&'static str> {
    match state {
        InstanceState::Running if !has_node => Some("is RUNNING but linked to no node"),
        InstanceState::Terminated if !has_terminated_at => Some("is TERMINATED but has no terminated_at"),
        _ => None,
    }
}

/// A node whose GPU inventory disagrees with its summary.
pub(crate) fn inventory_problem(gpu_count: u32, inventory: usize) -> Option<String> {
    (u32::try_from(inventory).ok() != Some(gpu_count))
        .then(|| format!("says it has {gpu_count} GPUs but its inventory lists {inventory}"))
}

/// A command whose bookkeeping contradicts its state.
pub(crate) fn command_state_problem(
    state: CommandState,
    has_delivered_at: bool,
    has_finished_at: bool,
) -> Option<&'static str> {
    if state.is_final() && !has_finished_at {
        return Some("is final but has no finished_at");
    }
    if matches!(state, CommandState::Delivered | CommandState::Acked) && !has_delivered_at {
        return Some("was delivered but has no delivered_at");
    }
    None
}

/// Convenience for the memory backend: runs both checkers over in-memory records.
pub(crate) fn check_change_log<'a>(
    changes: impl Iterator<Item = &'a ChangeRecord>,
    live: &HashMap<(ResourceKind, String), Revision>,
) -> Vec<IntegrityFinding> {
    let mut checker = ChangeLogChecker::default();
    for c in changes {
        checker.observe(c.kind, &c.resource_id, c.seq, c.revision.get(), c.op);
    }
    checker.finish(live.iter().map(|((kind, id), rev)| (*kind, id.clone(), rev.get())))
}

pub(crate) fn check_states<'a>(
    instances: impl Iterator<Item = &'a Instance>,
    commands: impl Iterator<Item = &'a Command>,
) -> Vec<IntegrityFinding> {
    let mut findings = Vec::new();
    for i in instances {
        if let Some(problem) = instance_state_problem(i.state, i.node_id.is_some(), i.terminated_at.is_some()) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("instance {}", i.id),
                problem: problem.into(),
            });
        }
    }
    for c in commands {
        if let Some(problem) = command_state_problem(c.state, c.delivered_at.is_some(), c.finished_at.is_some()) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("command {}", c.id),
                problem: problem.into(),
            });
        }
    }
    findings.truncate(MAX_FINDINGS);
    findings
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
    fn state_contradictions() {
        assert!(instance_state_problem(InstanceState::Running, false, false).is_some());
        assert!(instance_state_problem(InstanceState::Running, true, false).is_none());
        assert!(command_state_problem(CommandState::Succeeded, true, false).is_some());
        assert!(command_state_problem(CommandState::Pending, false, false).is_none());
    }
}
