//! Retention, integrity checks and counts for SQLite (synchronous; run on the writer or a
//! reader connection).

use bosun_core::{CommandState, InstanceState};
use rusqlite::{Connection, params};

use crate::error::Result;
use crate::integrity::{
    ChangeLogChecker, MAX_FINDINGS, command_state_problem, instance_state_problem, inventory_problem,
};
use crate::sql::parse;
use crate::store::{IntegrityFinding, StoreCounts};

/// Rows deleted per transaction, so retention never holds the writer for long.
pub(super) const RETENTION_BATCH: i64 = 5_000;

/// Deletes up to one batch of compactable change records: old records superseded by a
/// newer record of the same resource, or deletes. The latest state of a live resource
/// always stays.
pub(super) fn compact_changes(conn: &mut Connection, cutoff: i64) -> Result<u64> {
    let tx = conn.transaction()?;
    let deleted = tx.execute(
        "DELETE FROM changes WHERE seq IN (SELECT c.seq FROM changes c WHERE c.at < ?1 AND \
         (c.op = 'deleted' OR EXISTS (SELECT 1 FROM changes newer WHERE newer.kind = c.kind \
         AND newer.resource_id = c.resource_id AND newer.seq > c.seq)) LIMIT ?2)",
        params![cutoff, RETENTION_BATCH],
    )?;
    tx.commit()?;
    Ok(deleted as u64)
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

/// References `check_integrity` verifies, as `(what, query returning the orphan's key and
/// the missing parent)`. They catch rows written with foreign keys switched off.
const ORPHAN_QUERIES: &[(&str, &str)] = &[
    (
        "command",
        "SELECT c.command_id, c.node_id FROM commands c WHERE NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = c.node_id) LIMIT 100",
    ),
    (
        "command event of",
        "SELECT e.command_id || '#' || e.seq, e.command_id FROM command_events e WHERE NOT EXISTS \
         (SELECT 1 FROM commands c WHERE c.command_id = e.command_id) LIMIT 100",
    ),
    (
        "instance",
        "SELECT i.instance_id, i.node_id FROM instances i WHERE i.node_id IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM nodes n WHERE n.node_id = i.node_id) LIMIT 100",
    ),
    (
        "health report",
        "SELECT CAST(h.id AS TEXT), h.node_id FROM health_reports h WHERE NOT EXISTS \
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

/// Rows of a query as string tuples (every integrity query selects text).
fn rows<T>(conn: &Connection, sql: &str, decode: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
    let mut statement = conn.prepare(sql)?;
    let decoded = statement.query_map([], decode)?.collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(decoded)
}

pub(super) fn check_integrity(conn: &Connection) -> Result<Vec<IntegrityFinding>> {
    let mut findings = Vec::new();

    // SQLite's own view of every foreign key (catches rows written with keys disabled).
    let violations = rows(conn, "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check", |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?, row.get::<_, String>(2)?))
    })?;
    for (table, rowid, parent) in violations.into_iter().take(100) {
        let row = rowid.map_or_else(|| "a row".to_owned(), |r| format!("row {r}"));
        findings.push(IntegrityFinding {
            check: "foreign_keys",
            subject: format!("{table} {row}"),
            problem: format!("refers to a missing {parent} record"),
        });
    }

    for (what, sql) in ORPHAN_QUERIES {
        for (child, parent) in rows(conn, sql, |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))? {
            findings.push(IntegrityFinding {
                check: "orphans",
                subject: format!("{what} {child}"),
                problem: format!("refers to missing {parent}"),
            });
        }
    }

    let mut checker = ChangeLogChecker::default();
    {
        let mut statement = conn.prepare("SELECT kind, resource_id, seq, revision, op FROM changes ORDER BY seq")?;
        let mut changes = statement.query([])?;
        while let Some(row) = changes.next()? {
            checker.observe(
                parse("changes.kind", row.get_ref(0)?.as_str().unwrap_or_default())?,
                row.get_ref(1)?.as_str().unwrap_or_default(),
                u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                parse("changes.op", row.get_ref(4)?.as_str().unwrap_or_default())?,
            );
        }
    }
    let live = rows(
        conn,
        "SELECT 'node', node_id, revision FROM nodes UNION ALL \
         SELECT 'instance', instance_id, revision FROM instances UNION ALL \
         SELECT 'command', command_id, revision FROM commands UNION ALL \
         SELECT 'pool', name, revision FROM pools UNION ALL \
         SELECT 'policy', id, revision FROM policies",
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)),
    )?
    .into_iter()
    .map(|(kind, id, revision)| Ok((parse("changes.kind", &kind)?, id, u64::try_from(revision).unwrap_or(0))))
    .collect::<Result<Vec<_>>>()?;
    findings.extend(checker.finish(live));

    let inventories = rows(
        conn,
        "SELECT n.node_id, n.gpu_count, (SELECT COUNT(*) FROM node_gpus g WHERE g.node_id = n.node_id) FROM nodes n",
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)),
    )?;
    for (id, count, inventory) in inventories {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if let Some(problem) = inventory_problem(count, usize::try_from(inventory).unwrap_or(0)) {
            findings.push(IntegrityFinding { check: "states", subject: format!("node {id}"), problem });
        }
    }
    let instances = rows(
        conn,
        "SELECT instance_id, state, node_id IS NOT NULL, terminated_at IS NOT NULL FROM instances",
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, bool>(2)?, row.get::<_, bool>(3)?)),
    )?;
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
    let commands = rows(
        conn,
        "SELECT command_id, state, delivered_at IS NOT NULL, finished_at IS NOT NULL FROM commands",
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, bool>(2)?, row.get::<_, bool>(3)?)),
    )?;
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
