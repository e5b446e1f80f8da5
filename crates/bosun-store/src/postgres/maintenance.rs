//! Retention, integrity checks and counts for PostgreSQL.

use bosun_core::{CommandState, InstanceState};
use futures::TryStreamExt as _;
use sqlx::PgPool;

use super::time;
use crate::error::Result;
use crate::integrity::{ChangeLogChecker, MAX_FINDINGS, command_state_problem, instance_state_problem};
use crate::sql::{SlowLog, map_err, parse};
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
        let deleted = slow
            .run(
                "changes.compact",
                sqlx::query(
                    "DELETE FROM changes WHERE seq IN (SELECT c.seq FROM changes c WHERE c.at < $1 AND \
                     (c.op = 'deleted' OR EXISTS (SELECT 1 FROM changes newer WHERE newer.kind = c.kind \
                     AND newer.resource_id = c.resource_id AND newer.seq > c.seq)) LIMIT $2)",
                )
                .bind(change_cutoff)
                .bind(RETENTION_BATCH)
                .execute(pool),
            )
            .await
            .map_err(|e| map_err(e, None))?
            .rows_affected();
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
    Ok(report)
}

/// References `check_integrity` verifies, as `(what, query returning the orphan's key and
/// the missing parent)`. PostgreSQL enforces these foreign keys itself; the queries catch
/// data loaded around them (e.g. a restore with triggers disabled).
const ORPHAN_QUERIES: &[(&str, &str)] = &[
    (
        "command",
        "SELECT c.command_id::text, c.node_id FROM commands c WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = c.node_id) LIMIT 100",
    ),
    (
        "command event of",
        "SELECT e.command_id::text || '#' || e.seq, e.command_id::text FROM command_events e WHERE NOT EXISTS \
         (SELECT 1 FROM commands c WHERE c.command_id = e.command_id) LIMIT 100",
    ),
    (
        "instance",
        "SELECT i.instance_id, i.node_id FROM instances i WHERE i.node_id IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = i.node_id) LIMIT 100",
    ),
    (
        "health report",
        "SELECT h.id::text, h.node_id FROM health_reports h WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = h.node_id) LIMIT 100",
    ),
    (
        "metric sample of",
        "SELECT s.node_id || '#' || s.slot, s.node_id FROM metric_samples s WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = s.node_id) LIMIT 100",
    ),
    (
        "GPU of",
        "SELECT g.node_id || '#' || g.gpu_index, g.node_id FROM node_gpus g WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = g.node_id) LIMIT 100",
    ),
    (
        "liveness of",
        "SELECT l.node_id, l.node_id FROM node_liveness l WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = l.node_id) LIMIT 100",
    ),
];

pub(super) async fn check_integrity(pool: &PgPool) -> Result<Vec<IntegrityFinding>> {
    let mut findings = Vec::new();
    for (what, sql) in ORPHAN_QUERIES {
        let rows: Vec<(String, String)> = sqlx::query_as(*sql).fetch_all(pool).await.map_err(|e| map_err(e, None))?;
        for (child, parent) in rows {
            findings.push(IntegrityFinding {
                check: "orphans",
                subject: format!("{what} {child}"),
                problem: format!("refers to missing {parent}"),
            });
        }
    }

    let mut checker = ChangeLogChecker::default();
    let mut changes = sqlx::query_as::<_, (String, String, i64, i64, String)>(
        "SELECT kind, resource_id, seq, revision, op FROM changes ORDER BY seq",
    )
    .fetch(pool);
    while let Some((kind, id, seq, revision, op)) = changes.try_next().await.map_err(|e| map_err(e, None))? {
        checker.observe(
            parse("changes.kind", &kind)?,
            &id,
            u64::try_from(seq).unwrap_or(0),
            u64::try_from(revision).unwrap_or(0),
            parse("changes.op", &op)?,
        );
    }
    drop(changes);
    let live: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT 'node', node_id, revision FROM nodes UNION ALL \
         SELECT 'instance', instance_id, revision FROM instances UNION ALL \
         SELECT 'command', command_id::text, revision FROM commands UNION ALL \
         SELECT 'pool', name, revision FROM pools UNION ALL \
         SELECT 'policy', id, revision FROM policies",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| map_err(e, None))?;
    let live = live
        .into_iter()
        .map(|(kind, id, revision)| Ok((parse("changes.kind", &kind)?, id, u64::try_from(revision).unwrap_or(0))))
        .collect::<Result<Vec<_>>>()?;
    findings.extend(checker.finish(live));

    let instances: Vec<(String, String, bool, bool)> =
        sqlx::query_as("SELECT instance_id, state, node_id IS NOT NULL, terminated_at IS NOT NULL FROM instances")
            .fetch_all(pool)
            .await
            .map_err(|e| map_err(e, None))?;
    for (id, state, has_node, has_terminated_at) in instances {
        let state: InstanceState = parse("instances.state", &state)?;
        if let Some(problem) = instance_state_problem(state, has_node, has_terminated_at) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("instance {id}"),
                problem: problem.into(),
            });
        }
    }
    let commands: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT command_id::text, state, delivered_at IS NOT NULL, finished_at IS NOT NULL FROM commands",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| map_err(e, None))?;
    for (id, state, delivered, finished) in commands {
        let state: CommandState = parse("commands.state", &state)?;
        if let Some(problem) = command_state_problem(state, delivered, finished) {
            findings.push(IntegrityFinding {
                check: "states",
                subject: format!("command {id}"),
                problem: problem.into(),
            });
        }
    }
    findings.truncate(MAX_FINDINGS);
    Ok(findings)
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
