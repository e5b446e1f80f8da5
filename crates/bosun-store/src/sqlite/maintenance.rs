//! Retention, integrity checks and counts for SQLite (synchronous; run on the writer or a
//! reader connection).

use bosun_core::ResourceKind;
use rusqlite::{Connection, params};

use crate::apply::run_ready;
use crate::error::Result;
use crate::integrity::{
    self, AuditNumbers, ChangeLogChecker, CommandFacts, InstanceFacts, IntegritySource, Inventory, Orphan, Reference,
};
use crate::sql::{parse, unsigned};
use crate::store::{IntegrityFinding, StoreCounts};

/// Rows deleted per transaction, so retention never holds the writer for long.
pub(super) const RETENTION_BATCH: i64 = 5_000;

/// Runs whose history one retention transaction deletes.
pub(super) const RUNS_PER_BATCH: i64 = 100;

/// Deletes up to one batch of compactable change records: old records superseded by a
/// newer record of the same resource, or deletes. The latest state of a live resource
/// always stays.
pub(super) fn compact_changes(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    let deleted: Vec<i64> = tx
        .prepare(
            "DELETE FROM changes WHERE seq IN (SELECT c.seq FROM changes c WHERE c.at < ?1 AND \
             (c.op = 'deleted' OR EXISTS (SELECT 1 FROM changes newer WHERE newer.kind = c.kind \
             AND newer.resource_id = c.resource_id AND newer.seq > c.seq)) LIMIT ?2) RETURNING seq",
        )?
        .query_map(params![cutoff, RETENTION_BATCH], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(highest) = deleted.iter().max() {
        tx.execute("UPDATE change_log SET compacted_through = MAX(compacted_through, ?1) WHERE id = 1", [highest])?;
    }
    tx.commit()?;
    Ok(deleted.len() as u64)
}

/// How far retention has compacted the change log (see `crate::integrity`).
pub(super) fn compacted_through(conn: &Connection) -> Result<u64> {
    let value: i64 = conn.query_row("SELECT compacted_through FROM change_log WHERE id = 1", [], |row| row.get(0))?;
    unsigned("change_log.compacted_through", value)
}

/// Deletes up to one batch of metric samples older than `cutoff`.
pub(super) fn expire_samples(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    let deleted = tx.execute(
        "DELETE FROM metric_samples WHERE id IN (SELECT id FROM metric_samples WHERE at < ?1 LIMIT ?2)",
        params![cutoff, RETENTION_BATCH],
    )?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// Deletes the events of up to one batch of runs that finished before `cutoff`, every
/// event of a run at once (so no run is left with a gap), through the append-only
/// trigger's retention path.
pub(super) fn expire_run_events(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    tx.execute("INSERT OR REPLACE INTO ledger_expiry (what, before) VALUES ('task_events', ?1)", [cutoff])?;
    let deleted = tx.execute(
        "DELETE FROM task_events WHERE run_id IN (SELECT r.run_id FROM task_runs r WHERE r.finished_at < ?1 \
         AND EXISTS (SELECT 1 FROM task_events e WHERE e.run_id = r.run_id) LIMIT ?2)",
        params![cutoff, RUNS_PER_BATCH],
    )?;
    tx.execute("DELETE FROM ledger_expiry WHERE what = 'task_events'", [])?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// Deletes up to one batch of artifacts of runs that finished before `cutoff`.
pub(super) fn expire_artifacts(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    let deleted = tx.execute(
        "DELETE FROM artifacts WHERE rowid IN (SELECT a.rowid FROM artifacts a JOIN task_runs r ON r.run_id = a.run_id \
         WHERE r.finished_at < ?1 LIMIT ?2)",
        params![cutoff, RUNS_PER_BATCH],
    )?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// Deletes up to one batch of audit entries older than `cutoff`, through the append-only
/// trigger's retention path.
pub(super) fn expire_audit(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    tx.execute("INSERT OR REPLACE INTO ledger_expiry (what, before) VALUES ('audit_entries', ?1)", [cutoff])?;
    let deleted = tx.execute(
        "DELETE FROM audit_entries WHERE seq IN (SELECT seq FROM audit_entries WHERE at < ?1 ORDER BY seq LIMIT ?2)",
        params![cutoff, RETENTION_BATCH],
    )?;
    tx.execute("DELETE FROM ledger_expiry WHERE what = 'audit_entries'", [])?;
    tx.commit()?;
    Ok(deleted as u64)
}

/// Deletes one batch of inventory sync records that finished before `cutoff`.
pub(super) fn expire_inventory_syncs(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let deleted = conn.execute(
        "DELETE FROM inventory_syncs WHERE id IN \
         (SELECT id FROM inventory_syncs WHERE finished_at < ?1 ORDER BY id LIMIT ?2)",
        params![cutoff, RETENTION_BATCH],
    )?;
    Ok(deleted as u64)
}

/// The query finding orphans of `reference`: the orphan's key and the missing parent.
fn orphan_query(reference: Reference) -> &'static str {
    match reference {
        Reference::CommandToNode => {
            "SELECT c.command_id, c.node_id FROM commands c WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = c.node_id) LIMIT ?1"
        }
        Reference::CommandEventToCommand => {
            "SELECT e.command_id || '#' || e.seq, e.command_id FROM command_events e WHERE NOT EXISTS \
             (SELECT 1 FROM commands c WHERE c.command_id = e.command_id) LIMIT ?1"
        }
        Reference::InstanceToNode => {
            "SELECT i.instance_id, i.node_id FROM instances i WHERE i.node_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = i.node_id) LIMIT ?1"
        }
        Reference::HealthReportToNode => {
            "SELECT CAST(h.id AS TEXT), h.node_id FROM health_reports h WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = h.node_id) LIMIT ?1"
        }
        Reference::MetricSampleToNode => {
            "SELECT s.node_id || '#' || s.slot, s.node_id FROM metric_samples s WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = s.node_id) LIMIT ?1"
        }
        Reference::GpuToNode => {
            "SELECT g.node_id || '#' || g.gpu_index, g.node_id FROM node_gpus g WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = g.node_id) LIMIT ?1"
        }
        Reference::LivenessToNode => {
            "SELECT l.node_id, l.node_id FROM node_liveness l WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = l.node_id) LIMIT ?1"
        }
        Reference::RunTargetToRun => {
            "SELECT CAST(t.run_id || '#' || t.position AS TEXT), CAST(t.run_id AS TEXT) FROM task_run_targets t WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = t.run_id) LIMIT ?1"
        }
        Reference::RunEventToRun => {
            "SELECT CAST(e.run_id || '#' || e.seq AS TEXT), CAST(e.run_id AS TEXT) FROM task_events e WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = e.run_id) LIMIT ?1"
        }
        Reference::ArtifactToRun => {
            "SELECT CAST(a.run_id || '#' || a.name AS TEXT), CAST(a.run_id AS TEXT) FROM artifacts a WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = a.run_id) LIMIT ?1"
        }
        Reference::ApprovalToRun => {
            "SELECT CAST(a.approval_id AS TEXT), CAST(a.run_id AS TEXT) FROM approvals a WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = a.run_id) LIMIT ?1"
        }
        Reference::ToolCallToRun => {
            "SELECT CAST(c.id AS TEXT), CAST(c.run_id AS TEXT) FROM tool_call_records c WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = c.run_id) LIMIT ?1"
        }
        Reference::ToolCallToApproval => {
            "SELECT CAST(c.id AS TEXT), CAST(c.approval_id AS TEXT) FROM tool_call_records c WHERE c.approval_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM approvals a WHERE a.approval_id = c.approval_id) LIMIT ?1"
        }
        Reference::HostOfStorage => {
            "SELECT h.source || '/' || h.storage_key || '@' || h.host_key, h.source || '/' || h.storage_key \
             FROM host_storage h WHERE NOT EXISTS \
             (SELECT 1 FROM storage s WHERE s.source = h.source AND s.key = h.storage_key) LIMIT ?1"
        }
        Reference::LlmRequestToRun => {
            "SELECT CAST(q.id AS TEXT), CAST(q.run_id AS TEXT) FROM llm_requests q WHERE q.run_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = q.run_id) LIMIT ?1"
        }
        Reference::LlmResponseToRequest => {
            "SELECT CAST(a.request AS TEXT), CAST(a.request AS TEXT) FROM llm_responses a WHERE NOT EXISTS \
             (SELECT 1 FROM llm_requests q WHERE q.id = a.request) LIMIT ?1"
        }
        Reference::TokenUsageToRequest => {
            "SELECT CAST(u.request AS TEXT), CAST(u.request AS TEXT) FROM token_usage u WHERE NOT EXISTS \
             (SELECT 1 FROM llm_requests q WHERE q.id = u.request) LIMIT ?1"
        }
        Reference::TokenUsageToRun => {
            "SELECT CAST(u.request AS TEXT), CAST(u.run_id AS TEXT) FROM token_usage u WHERE u.run_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = u.run_id) LIMIT ?1"
        }
    }
}

/// Every row of a parameterless query, decoded.
fn rows<T>(conn: &Connection, sql: &str, decode: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
    let mut statement = conn.prepare(sql)?;
    let decoded = statement.query_map([], decode)?.collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(decoded)
}

/// Runs `bosun db check`'s checks (`crate::integrity`) on a reader connection.
pub(super) fn check_integrity(conn: &Connection) -> Result<Vec<IntegrityFinding>> {
    run_ready(integrity::check(&mut Check { conn }))
}

/// SQLite's answers to the integrity checks. Synchronous.
struct Check<'c> {
    conn: &'c Connection,
}

impl IntegritySource for Check<'_> {
    async fn orphans(&mut self, reference: Reference, limit: usize) -> Result<Vec<Orphan>> {
        let mut statement = self.conn.prepare(orphan_query(reference))?;
        let orphans = statement
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(Orphan { child: row.get(0)?, parent: row.get(1)? })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(orphans)
    }

    async fn compacted_through(&mut self) -> Result<u64> {
        compacted_through(self.conn)
    }

    async fn feed_changes(&mut self, checker: &mut ChangeLogChecker) -> Result<()> {
        let mut statement =
            self.conn.prepare("SELECT kind, resource_id, seq, revision, op FROM changes ORDER BY seq")?;
        let mut changes = statement.query([])?;
        while let Some(row) = changes.next()? {
            checker.observe(
                parse("changes.kind", row.get_ref(0)?.as_str().unwrap_or_default())?,
                row.get_ref(1)?.as_str().unwrap_or_default(),
                unsigned("changes.seq", row.get::<_, i64>(2)?)?,
                unsigned("changes.revision", row.get::<_, i64>(3)?)?,
                parse("changes.op", row.get_ref(4)?.as_str().unwrap_or_default())?,
            );
        }
        Ok(())
    }

    async fn live_revisions(&mut self) -> Result<Vec<(ResourceKind, String, u64)>> {
        rows(
            self.conn,
            &format!(
                "{} UNION ALL {}",
                super::inventory::LIVE_REVISIONS,
                "SELECT 'node', node_id, revision FROM nodes UNION ALL \
             SELECT 'instance', instance_id, revision FROM instances UNION ALL \
             SELECT 'command', command_id, revision FROM commands UNION ALL \
             SELECT 'pool', name, revision FROM pools UNION ALL \
             SELECT 'policy', id, revision FROM policies UNION ALL \
             SELECT 'lease', name, revision FROM leases UNION ALL \
             SELECT 'runbook', name, revision FROM tasks UNION ALL \
             SELECT 'run', run_id, revision FROM task_runs UNION ALL \
             SELECT 'tool', name, revision FROM tool_definitions UNION ALL \
             SELECT 'approval_policy', name, revision FROM approval_policies UNION ALL \
             SELECT 'approval', approval_id, revision FROM approvals"
            ),
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
        )?
        .into_iter()
        .map(|(kind, id, revision)| Ok((parse("changes.kind", &kind)?, id, unsigned("revision", revision)?)))
        .collect()
    }

    async fn inventories(&mut self) -> Result<Vec<Inventory>> {
        rows(
            self.conn,
            "SELECT n.node_id, n.gpu_count, (SELECT COUNT(*) FROM node_gpus g WHERE g.node_id = n.node_id) \
             FROM nodes n",
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)),
        )?
        .into_iter()
        .map(Inventory::from_sql)
        .collect()
    }

    async fn instance_facts(&mut self) -> Result<Vec<InstanceFacts>> {
        rows(
            self.conn,
            "SELECT instance_id, state, node_id IS NOT NULL, terminated_at IS NOT NULL FROM instances",
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get(2)?, row.get(3)?)),
        )?
        .into_iter()
        .map(InstanceFacts::from_sql)
        .collect()
    }

    async fn command_facts(&mut self) -> Result<Vec<CommandFacts>> {
        rows(
            self.conn,
            "SELECT command_id, state, delivered_at IS NOT NULL, finished_at IS NOT NULL FROM commands",
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get(2)?, row.get(3)?)),
        )?
        .into_iter()
        .map(CommandFacts::from_sql)
        .collect()
    }

    async fn audit_numbers(&mut self) -> Result<AuditNumbers> {
        let (count, lowest, highest, handed_out): (i64, i64, i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0), (SELECT last FROM ledger_sequences WHERE name = 'audit') FROM audit_entries",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?;
        Ok(AuditNumbers {
            count: unsigned("count", count)?,
            lowest: unsigned("audit_entries.seq", lowest)?,
            highest: unsigned("audit_entries.seq", highest)?,
            handed_out: unsigned("ledger_sequences.last", handed_out)?,
        })
    }

    async fn run_event_numbers(&mut self) -> Result<Vec<(String, u64, u64, u64)>> {
        rows(
            self.conn,
            "SELECT run_id, COUNT(*), MIN(seq), MAX(seq) FROM task_events GROUP BY run_id HAVING MIN(seq) <> 1 OR MAX(seq) <> COUNT(*)",
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?)),
        )?
        .into_iter()
        .map(|(run, count, lowest, highest)| {
            Ok((run, unsigned("count", count)?, unsigned("task_events.seq", lowest)?, unsigned("task_events.seq", highest)?))
        })
        .collect()
    }
}

pub(super) fn counts(conn: &Connection) -> Result<StoreCounts> {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let counts = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM nodes), (SELECT COUNT(*) FROM instances), (SELECT COUNT(*) FROM commands), \
         (SELECT COUNT(*) FROM pools), (SELECT COUNT(*) FROM changes)",
        [],
        |row| {
            Ok(StoreCounts {
                nodes: n(row.get(0)?),
                instances: n(row.get(1)?),
                commands: n(row.get(2)?),
                pools: n(row.get(3)?),
                changes: n(row.get(4)?),
            })
        },
    )?;
    Ok(counts)
}
