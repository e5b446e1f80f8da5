//! Retention, integrity checks and counts for PostgreSQL.

use bosun_core::ResourceKind;
use futures::TryStreamExt as _;
use sqlx::PgPool;

use super::time;
use crate::error::Result;
use crate::integrity::{
    self, AuditNumbers, ChangeLogChecker, CommandFacts, InstanceFacts, IntegritySource, Inventory, Orphan, Reference,
};
use crate::sql::{SlowLog, map_err, parse, unsigned};
use crate::store::{IntegrityFinding, RetentionPolicy, RetentionReport, StoreCounts, StoreOptions};

/// Rows deleted per transaction, so retention never holds locks for long.
const RETENTION_BATCH: i64 = 5_000;

pub(super) async fn apply_retention(
    pool: &PgPool,
    options: &StoreOptions,
    slow: SlowLog,
    policy: &RetentionPolicy,
) -> Result<RetentionReport> {
    let now = options.clock.now();
    let change_cutoff = time(now - policy.changes_older_than);
    let sample_cutoff = time(now - options.samples.window);
    let mut report = RetentionReport::default();
    loop {
        // A record goes when it is old and either superseded by a newer record of the same
        // resource or a delete: the latest state of a live resource always stays.
        // One statement, so the mark moves with the records it accounts for.
        let deleted: i64 = slow
            .run(
                "changes.compact",
                sqlx::query_scalar(
                    "WITH doomed AS (DELETE FROM changes WHERE seq IN (SELECT c.seq FROM changes c \
                     WHERE c.at < $1 AND (c.op = 'deleted' OR EXISTS (SELECT 1 FROM changes newer \
                     WHERE newer.kind = c.kind AND newer.resource_id = c.resource_id AND newer.seq > c.seq)) \
                     LIMIT $2) RETURNING seq), \
                     marked AS (UPDATE change_log SET compacted_through = \
                     GREATEST(compacted_through, (SELECT MAX(seq) FROM doomed)) \
                     WHERE id = 1 AND EXISTS (SELECT 1 FROM doomed)) \
                     SELECT COUNT(*) FROM doomed",
                )
                .bind(change_cutoff)
                .bind(RETENTION_BATCH)
                .fetch_one(pool),
            )
            .await
            .map_err(|e| map_err(e, None))?;
        let deleted = u64::try_from(deleted).unwrap_or(0);
        report.changes_deleted += deleted;
        if deleted < RETENTION_BATCH as u64 {
            break;
        }
    }
    loop {
        let deleted = slow
            .run(
                "metric_samples.expire",
                sqlx::query(
                    "DELETE FROM metric_samples WHERE (node_id, slot) IN \
                     (SELECT node_id, slot FROM metric_samples WHERE at < $1 LIMIT $2)",
                )
                .bind(sample_cutoff)
                .bind(RETENTION_BATCH)
                .execute(pool),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
        report.samples_deleted += deleted;
        if deleted < RETENTION_BATCH as u64 {
            break;
        }
    }
    let runs_cutoff = time(now - policy.runs_older_than);
    loop {
        // Every event of a run at once, so no run is left with a gap; through the
        // append-only trigger's retention path, in the same transaction.
        let deleted = expire(
            pool,
            slow,
            "task_events.expire",
            "task_events",
            runs_cutoff,
            "DELETE FROM task_events WHERE run_id IN (SELECT r.run_id FROM task_runs r WHERE r.finished_at < $1 \
             AND EXISTS (SELECT 1 FROM task_events e WHERE e.run_id = r.run_id) LIMIT $2)",
            RUNS_PER_BATCH,
        )
        .await?;
        report.run_events_deleted += deleted;
        if deleted == 0 {
            break;
        }
    }
    loop {
        let deleted = expire(
            pool,
            slow,
            "artifacts.expire",
            "artifacts",
            runs_cutoff,
            "DELETE FROM artifacts WHERE (run_id, name) IN (SELECT a.run_id, a.name FROM artifacts a \
             JOIN task_runs r ON r.run_id = a.run_id WHERE r.finished_at < $1 LIMIT $2)",
            RUNS_PER_BATCH,
        )
        .await?;
        report.artifacts_deleted += deleted;
        if deleted < RUNS_PER_BATCH as u64 {
            break;
        }
    }
    let audit_cutoff = time(now - policy.audit_older_than);
    loop {
        let deleted = expire(
            pool,
            slow,
            "audit_entries.expire",
            "audit_entries",
            audit_cutoff,
            "DELETE FROM audit_entries WHERE seq IN (SELECT seq FROM audit_entries WHERE at < $1 ORDER BY seq LIMIT $2)",
            RETENTION_BATCH,
        )
        .await?;
        report.audit_deleted += deleted;
        if deleted < RETENTION_BATCH as u64 {
            break;
        }
    }
    let syncs_cutoff = time(now - policy.inventory_syncs_older_than);
    loop {
        let deleted = slow
            .run(
                "inventory_syncs.expire",
                sqlx::query(
                    "DELETE FROM inventory_syncs WHERE id IN \
                     (SELECT id FROM inventory_syncs WHERE finished_at < $1 ORDER BY id LIMIT $2)",
                )
                .bind(syncs_cutoff)
                .bind(RETENTION_BATCH)
                .execute(pool),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
        report.inventory_syncs_deleted += deleted;
        if deleted < RETENTION_BATCH as u64 {
            break;
        }
    }
    Ok(report)
}

/// Runs whose history one retention transaction deletes.
const RUNS_PER_BATCH: i64 = 100;

/// One retention transaction over a ledger table: `ledger_expiry` names `table` and the
/// cutoff (the append-only triggers let exactly that through), `delete` runs with the
/// cutoff and `limit`, and the expiry row goes again before the commit.
async fn expire(
    pool: &PgPool,
    slow: SlowLog,
    statement: &'static str,
    table: &'static str,
    cutoff: chrono::DateTime<chrono::Utc>,
    delete: &'static str,
    limit: i64,
) -> Result<u64> {
    let db = |e| map_err(e, None);
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query(
        "INSERT INTO ledger_expiry (what, before) VALUES ($1, $2) ON CONFLICT (what) DO UPDATE SET before = EXCLUDED.before",
    )
    .bind(table)
    .bind(cutoff)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let deleted =
        slow.run(statement, sqlx::query(delete).bind(cutoff).bind(limit).execute(&mut *tx)).await.map_err(db)?;
    sqlx::query("DELETE FROM ledger_expiry WHERE what = $1").bind(table).execute(&mut *tx).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(deleted.rows_affected())
}

/// The query finding orphans of `reference`: the orphan's key and the missing parent.
/// PostgreSQL enforces these foreign keys itself; the queries catch rows loaded around
/// them (a restore with triggers disabled).
fn orphan_query(reference: Reference) -> &'static str {
    match reference {
        Reference::CommandToNode => {
            "SELECT c.command_id::text, c.node_id FROM commands c WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = c.node_id) LIMIT $1"
        }
        Reference::CommandEventToCommand => {
            "SELECT e.command_id::text || '#' || e.seq, e.command_id::text FROM command_events e WHERE NOT EXISTS \
             (SELECT 1 FROM commands c WHERE c.command_id = e.command_id) LIMIT $1"
        }
        Reference::InstanceToNode => {
            "SELECT i.instance_id, i.node_id FROM instances i WHERE i.node_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = i.node_id) LIMIT $1"
        }
        Reference::HealthReportToNode => {
            "SELECT h.id::text, h.node_id FROM health_reports h WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = h.node_id) LIMIT $1"
        }
        Reference::MetricSampleToNode => {
            "SELECT s.node_id || '#' || s.slot, s.node_id FROM metric_samples s WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = s.node_id) LIMIT $1"
        }
        Reference::GpuToNode => {
            "SELECT g.node_id || '#' || g.gpu_index, g.node_id FROM node_gpus g WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = g.node_id) LIMIT $1"
        }
        Reference::LivenessToNode => {
            "SELECT l.node_id, l.node_id FROM node_liveness l WHERE NOT EXISTS \
             (SELECT 1 FROM nodes n WHERE n.node_id = l.node_id) LIMIT $1"
        }
        Reference::RunTargetToRun => {
            "SELECT (t.run_id || '#' || t.position)::text, (t.run_id)::text FROM task_run_targets t WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = t.run_id) LIMIT $1"
        }
        Reference::RunEventToRun => {
            "SELECT (e.run_id || '#' || e.seq)::text, (e.run_id)::text FROM task_events e WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = e.run_id) LIMIT $1"
        }
        Reference::ArtifactToRun => {
            "SELECT (a.run_id || '#' || a.name)::text, (a.run_id)::text FROM artifacts a WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = a.run_id) LIMIT $1"
        }
        Reference::ApprovalToRun => {
            "SELECT (a.approval_id)::text, (a.run_id)::text FROM approvals a WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = a.run_id) LIMIT $1"
        }
        Reference::ToolCallToRun => {
            "SELECT (c.id)::text, (c.run_id)::text FROM tool_call_records c WHERE NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = c.run_id) LIMIT $1"
        }
        Reference::ToolCallToApproval => {
            "SELECT (c.id)::text, (c.approval_id)::text FROM tool_call_records c WHERE c.approval_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM approvals a WHERE a.approval_id = c.approval_id) LIMIT $1"
        }
        Reference::HostOfStorage => {
            "SELECT h.source || '/' || h.storage_key || '@' || h.host_key, h.source || '/' || h.storage_key \
             FROM host_storage h WHERE NOT EXISTS \
             (SELECT 1 FROM storage s WHERE s.source = h.source AND s.key = h.storage_key) LIMIT $1"
        }
        Reference::LlmRequestToRun => {
            "SELECT (q.id)::text, (q.run_id)::text FROM llm_requests q WHERE q.run_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = q.run_id) LIMIT $1"
        }
        Reference::LlmResponseToRequest => {
            "SELECT (a.request)::text, (a.request)::text FROM llm_responses a WHERE NOT EXISTS \
             (SELECT 1 FROM llm_requests q WHERE q.id = a.request) LIMIT $1"
        }
        Reference::TokenUsageToRequest => {
            "SELECT (u.request)::text, (u.request)::text FROM token_usage u WHERE NOT EXISTS \
             (SELECT 1 FROM llm_requests q WHERE q.id = u.request) LIMIT $1"
        }
        Reference::TokenUsageToRun => {
            "SELECT (u.request)::text, (u.run_id)::text FROM token_usage u WHERE u.run_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM task_runs r WHERE r.run_id = u.run_id) LIMIT $1"
        }
    }
}

/// Runs `bosun db check`'s checks (`crate::integrity`).
pub(super) async fn check_integrity(pool: &PgPool) -> Result<Vec<IntegrityFinding>> {
    integrity::check(&mut Check { pool }).await
}

/// PostgreSQL's answers to the integrity checks.
struct Check<'p> {
    pool: &'p PgPool,
}

impl IntegritySource for Check<'_> {
    async fn orphans(&mut self, reference: Reference, limit: usize) -> Result<Vec<Orphan>> {
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(orphan_query(reference)))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool)
            .await
            .map_err(|e| map_err(e, None))?;
        Ok(rows.into_iter().map(|(child, parent)| Orphan { child, parent }).collect())
    }

    async fn compacted_through(&mut self) -> Result<u64> {
        let value: i64 = sqlx::query_scalar("SELECT compacted_through FROM change_log WHERE id = 1")
            .fetch_one(self.pool)
            .await
            .map_err(|e| map_err(e, None))?;
        unsigned("change_log.compacted_through", value)
    }

    async fn feed_changes(&mut self, checker: &mut ChangeLogChecker) -> Result<()> {
        let mut changes = sqlx::query_as::<_, (String, String, i64, i64, String)>(
            "SELECT kind, resource_id, seq, revision, op FROM changes ORDER BY seq",
        )
        .fetch(self.pool);
        while let Some((kind, id, seq, revision, op)) = changes.try_next().await.map_err(|e| map_err(e, None))? {
            checker.observe(
                parse("changes.kind", &kind)?,
                &id,
                unsigned("changes.seq", seq)?,
                unsigned("changes.revision", revision)?,
                parse("changes.op", &op)?,
            );
        }
        Ok(())
    }

    async fn live_revisions(&mut self) -> Result<Vec<(ResourceKind, String, u64)>> {
        let sql = format!(
            "{} UNION ALL {}",
            super::inventory::LIVE_REVISIONS,
            "SELECT 'node', node_id, revision FROM nodes UNION ALL \
             SELECT 'instance', instance_id, revision FROM instances UNION ALL \
             SELECT 'command', command_id::text, revision FROM commands UNION ALL \
             SELECT 'pool', name, revision FROM pools UNION ALL \
             SELECT 'policy', id, revision FROM policies UNION ALL \
             SELECT 'lease', name, revision FROM leases UNION ALL \
             SELECT 'runbook', name, revision FROM tasks UNION ALL \
             SELECT 'run', run_id::text, revision FROM task_runs UNION ALL \
             SELECT 'tool', name, revision FROM tool_definitions UNION ALL \
             SELECT 'approval_policy', name, revision FROM approval_policies UNION ALL \
             SELECT 'approval', approval_id::text, revision FROM approvals"
        );
        let live: Vec<(String, String, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool).await.map_err(|e| map_err(e, None))?;
        live.into_iter()
            .map(|(kind, id, revision)| Ok((parse("changes.kind", &kind)?, id, unsigned("revision", revision)?)))
            .collect()
    }

    async fn inventories(&mut self) -> Result<Vec<Inventory>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT n.node_id, n.gpu_count, (SELECT COUNT(*) FROM node_gpus g WHERE g.node_id = n.node_id) \
             FROM nodes n",
        )
        .fetch_all(self.pool)
        .await
        .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(Inventory::from_sql).collect()
    }

    async fn instance_facts(&mut self) -> Result<Vec<InstanceFacts>> {
        let rows: Vec<(String, String, bool, bool)> =
            sqlx::query_as("SELECT instance_id, state, node_id IS NOT NULL, terminated_at IS NOT NULL FROM instances")
                .fetch_all(self.pool)
                .await
                .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(InstanceFacts::from_sql).collect()
    }

    async fn command_facts(&mut self) -> Result<Vec<CommandFacts>> {
        let rows: Vec<(String, String, bool, bool)> = sqlx::query_as(
            "SELECT command_id::text, state, delivered_at IS NOT NULL, finished_at IS NOT NULL FROM commands",
        )
        .fetch_all(self.pool)
        .await
        .map_err(|e| map_err(e, None))?;
        rows.into_iter().map(CommandFacts::from_sql).collect()
    }

    async fn audit_numbers(&mut self) -> Result<AuditNumbers> {
        let (count, lowest, highest, handed_out): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0), (SELECT last FROM ledger_sequences WHERE name = 'audit') FROM audit_entries",
        )
        .fetch_one(self.pool)
        .await
        .map_err(|e| map_err(e, None))?;
        Ok(AuditNumbers {
            count: unsigned("count", count)?,
            lowest: unsigned("audit_entries.seq", lowest)?,
            highest: unsigned("audit_entries.seq", highest)?,
            handed_out: unsigned("ledger_sequences.last", handed_out)?,
        })
    }

    async fn run_event_numbers(&mut self) -> Result<Vec<(String, u64, u64, u64)>> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT run_id::text, COUNT(*), MIN(seq), MAX(seq) FROM task_events GROUP BY run_id HAVING MIN(seq) <> 1 OR MAX(seq) <> COUNT(*)",
        )
        .fetch_all(self.pool)
        .await
        .map_err(|e| map_err(e, None))?;
        rows.into_iter()
            .map(|(run, count, lowest, highest)| {
                Ok((
                    run,
                    unsigned("count", count)?,
                    unsigned("task_events.seq", lowest)?,
                    unsigned("task_events.seq", highest)?,
                ))
            })
            .collect()
    }
}

pub(super) async fn counts(pool: &PgPool) -> Result<StoreCounts> {
    let (nodes, instances, commands, pools, changes): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM nodes), (SELECT COUNT(*) FROM instances), (SELECT COUNT(*) FROM commands), \
         (SELECT COUNT(*) FROM pools), (SELECT COUNT(*) FROM changes)",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| map_err(e, None))?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(StoreCounts {
        nodes: n(nodes),
        instances: n(instances),
        commands: n(commands),
        pools: n(pools),
        changes: n(changes),
    })
}
