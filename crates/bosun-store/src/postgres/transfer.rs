//! Dump and bulk load for PostgreSQL (see `crate::transfer`).
//!
//! A dump reads in one `REPEATABLE READ, READ ONLY` transaction (one snapshot), each table
//! in keyset pages. A load writes each batch with `COPY ... FROM STDIN` (text format), one
//! COPY per table per batch, in one transaction committed on `Commit`; COPY writes the
//! identity columns (change sequence, history ids) as given.

use bosun_core::node::Gpu;
use bosun_core::{CommandEvent, Timestamp};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, FromRow as _, PgConnection, Row as _};
use tokio::sync::mpsc;

use super::node_from_row;
use crate::error::{Result, StoreError};
use crate::sql::rows::{
    BootstrapLogRow, ChangeRow, CommandEventRow, CommandRow, GpuRow, HealthReportRow, InstanceRow, LeaseRow, PolicyRow,
    PoolRow,
};
use crate::sql::{map_err, unsigned};
use crate::transfer::{
    Batcher, CommandRecord, DumpMessage, LoadMessage, NodeRecord, Record, RecordKind, Sequences, Snapshot, Target,
    load_abandoned, target_not_empty,
};

/// Rows per keyset page of a dump.
const PAGE: i64 = 2_000;

fn db(e: sqlx::Error) -> StoreError {
    map_err(e, None)
}

/// One keyset page: rows of `select` with `key` at or after `start` (first page) or after
/// `after`, in key order. `select` and `key` are constants of this module.
async fn page<K>(conn: &mut PgConnection, select: &str, key: &str, start: K, after: Option<K>) -> Result<Vec<PgRow>>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let (op, bound) = match after {
        Some(after) => (">", after),
        None => (">=", start),
    };
    let sql = format!("{select} WHERE {key} {op} $1 ORDER BY {key} LIMIT $2");
    sqlx::query(AssertSqlSafe(sql)).bind(bound).bind(PAGE).fetch_all(&mut *conn).await.map_err(db)
}

/// Streams a table without child rows: every row of `select` in keyset pages by `key`
/// (from `start`); `decode` gives each row's key, for the next page, and its record.
async fn each_row<K>(
    conn: &mut PgConnection,
    out: &mut Batcher<'_>,
    select: &str,
    key: &str,
    start: K,
    decode: impl Fn(&PgRow) -> Result<(K, Record)>,
) -> Result<()>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Clone,
{
    let mut after = None;
    loop {
        let rows = page(conn, select, key, start.clone(), after.take()).await?;
        for row in &rows {
            let (row_key, record) = decode(row)?;
            after = Some(row_key);
            out.push(record).await?;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

/// The last value a table's identity sequence handed out (0 if none).
async fn sequence(conn: &mut PgConnection, name: &str) -> Result<u64> {
    let value: Option<i64> = sqlx::query_scalar(
        "SELECT last_value FROM pg_sequences WHERE schemaname = current_schema() AND sequencename = $1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?
    .flatten();
    Ok(value.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
}

/// Groups child rows (key, child) under the parents of one page, in parent order.
fn group<T>(children: Vec<(String, T)>) -> std::collections::HashMap<String, Vec<T>> {
    let mut grouped: std::collections::HashMap<String, Vec<T>> = std::collections::HashMap::new();
    for (key, child) in children {
        grouped.entry(key).or_default().push(child);
    }
    grouped
}

pub(super) async fn dump(pool: &PgPool, sink: &mpsc::Sender<DumpMessage>) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await.map_err(db)?;
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM policies), (SELECT COUNT(*) FROM leases), (SELECT COUNT(*) FROM pools), \
         (SELECT COUNT(*) FROM nodes), (SELECT COUNT(*) FROM instances), (SELECT COUNT(*) FROM commands), (SELECT COUNT(*) FROM health_reports), \
         (SELECT COUNT(*) FROM bootstrap_logs), (SELECT COUNT(*) FROM changes)",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let mut counts = crate::transfer::KindCounts::new();
    for (index, kind) in RecordKind::ALL.into_iter().enumerate() {
        counts.insert(kind, unsigned("count", row.try_get::<i64, _>(index).map_err(db)?)?);
    }
    let (last_seq, compacted_through): (i64, i64) =
        sqlx::query_as("SELECT last_seq, compacted_through FROM change_log WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
    let sequences = Sequences {
        change_seq: unsigned("change_log.last_seq", last_seq)?,
        health_report_id: sequence(&mut tx, "health_reports_id_seq").await?,
        bootstrap_log_id: sequence(&mut tx, "bootstrap_logs_id_seq").await?,
        changes_compacted_through: unsigned("change_log.compacted_through", compacted_through)?,
    };
    let mut out = Batcher::new(sink);
    out.start(Snapshot { counts, sequences }).await?;

    let policy: Option<PolicyRow<DateTime<Utc>>> =
        sqlx::query_as("SELECT name, document, updated_at, revision FROM policies WHERE id = 'active'")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    if let Some(policy) = policy {
        out.push(Record::Policy(policy.into_policy()?)).await?;
    }

    let leases = "SELECT name, holder, epoch, revision, renewals, acquired_at, renewed_at FROM leases";
    each_row(&mut tx, &mut out, leases, "name", String::new(), |row| {
        let lease = LeaseRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_lease()?;
        Ok((lease.name.to_string(), Record::Lease(Box::new(lease))))
    })
    .await?;

    let pools = "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools";
    each_row(&mut tx, &mut out, pools, "name", String::new(), |row| {
        let pool = PoolRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_pool()?;
        Ok((pool.name.to_string(), Record::Pool(Box::new(pool))))
    })
    .await?;

    let mut after: Option<String> = None;
    loop {
        let rows = page(&mut tx, super::select_node!(), "n.node_id", String::new(), after.take()).await?;
        let nodes = rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?;
        if let (Some(first), Some(last)) = (nodes.first(), nodes.last()) {
            let gpus: Vec<PgRow> = sqlx::query(
                "SELECT node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version \
                 FROM node_gpus WHERE node_id >= $1 AND node_id <= $2 ORDER BY node_id, gpu_index",
            )
            .bind(first.id.as_str())
            .bind(last.id.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let mut gpus = group(
                gpus.iter()
                    .map(|row| {
                        let node: String = row.try_get(0).map_err(db)?;
                        Ok((node, GpuRow::from_row(row).map_err(db)?.into_gpu()?))
                    })
                    .collect::<Result<Vec<(String, Gpu)>>>()?,
            );
            after = Some(last.id.to_string());
            for mut node in nodes {
                let gpus = gpus.remove(node.id.as_str()).unwrap_or_default();
                let last_heartbeat = node.last_heartbeat.take();
                out.push(Record::Node(Box::new(NodeRecord { node, gpus, last_heartbeat }))).await?;
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }

    each_row(&mut tx, &mut out, super::select_instance!(), "instance_id", String::new(), |row| {
        let instance = InstanceRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_instance()?;
        Ok((instance.id.to_string(), Record::Instance(Box::new(instance))))
    })
    .await?;

    let mut after: Option<uuid::Uuid> = None;
    loop {
        let rows = page(&mut tx, super::select_command!(), "command_id", uuid::Uuid::nil(), after.take()).await?;
        let commands = rows
            .iter()
            .map(|row| CommandRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_command())
            .collect::<Result<Vec<_>>>()?;
        if let (Some(first), Some(last)) = (commands.first(), commands.last()) {
            let events: Vec<CommandEventRow<DateTime<Utc>>> = sqlx::query_as(
                "SELECT command_id::text AS command_id, seq, at, state, actor, message FROM command_events \
                 WHERE command_id >= $1 AND command_id <= $2 ORDER BY command_id, seq",
            )
            .bind(first.id.as_uuid())
            .bind(last.id.as_uuid())
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let mut events = group(
                events
                    .into_iter()
                    .map(|row| Ok((row.command_id.clone(), row.into_event()?)))
                    .collect::<Result<Vec<(String, CommandEvent)>>>()?,
            );
            after = Some(last.id.as_uuid());
            for command in commands {
                let events = events.remove(&command.id.to_string()).unwrap_or_default();
                out.push(Record::Command(Box::new(CommandRecord { command, events }))).await?;
            }
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }

    let reports = "SELECT id, node_id, received_at, health, results, events FROM health_reports";
    each_row(&mut tx, &mut out, reports, "id", 0, |row| {
        let report = HealthReportRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
        Ok((report.id, Record::HealthReport(Box::new(report.into_report()?))))
    })
    .await?;

    let logs = "SELECT id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands \
                FROM bootstrap_logs";
    each_row(&mut tx, &mut out, logs, "id", 0, |row| {
        let log = BootstrapLogRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
        Ok((log.id, Record::BootstrapLog(Box::new(log.into_log()?))))
    })
    .await?;

    let changes = "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes";
    each_row(&mut tx, &mut out, changes, "seq", 0, |row| {
        let change = ChangeRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
        Ok((change.seq, Record::Change(Box::new(change.into_change()?))))
    })
    .await?;
    out.flush().await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Rows in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
#[derive(Default)]
struct CopyText {
    buf: Vec<u8>,
    in_row: bool,
}

impl CopyText {
    fn separate(&mut self) {
        if self.in_row {
            self.buf.push(b'\t');
        }
        self.in_row = true;
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        for &b in value.as_bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                _ => self.buf.push(b),
            }
        }
        self
    }

    fn null(&mut self) -> &mut Self {
        self.separate();
        self.buf.extend_from_slice(b"\\N");
        self
    }

    fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.separate();
        self.buf.extend_from_slice(value.to_string().as_bytes());
        self
    }

    fn unsigned(&mut self, value: u64) -> &mut Self {
        self.int(i64::try_from(value).unwrap_or(i64::MAX))
    }

    fn time(&mut self, value: Timestamp) -> &mut Self {
        self.text(&value.as_datetime().to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    fn opt_time(&mut self, value: Option<Timestamp>) -> &mut Self {
        match value {
            Some(v) => self.time(v),
            None => self.null(),
        }
    }

    fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> &mut Self {
        self.text(&crate::sql::to_json(value))
    }

    fn opt_json<T: Serialize>(&mut self, value: Option<&T>) -> &mut Self {
        match value {
            Some(v) => self.json(v),
            None => self.null(),
        }
    }

    fn end(&mut self) {
        self.buf.push(b'\n');
        self.in_row = false;
    }
}

/// One COPY buffer per table a load writes, filled from a batch of records.
#[derive(Default)]
struct Tables {
    policies: CopyText,
    pools: CopyText,
    nodes: CopyText,
    node_gpus: CopyText,
    node_liveness: CopyText,
    instances: CopyText,
    commands: CopyText,
    command_events: CopyText,
    health_reports: CopyText,
    bootstrap_logs: CopyText,
    changes: CopyText,
}

impl Tables {
    fn add(&mut self, record: &Record) {
        match record {
            // Not copied: `copy_batch` inserts the few leases there are one by one.
            Record::Lease(_) => {}
            Record::Policy(p) => {
                self.policies
                    .text("active")
                    .text(&p.name)
                    .text(&p.document)
                    .time(p.updated_at)
                    .unsigned(p.revision.get());
                self.policies.end();
            }
            Record::Pool(p) => {
                self.pools
                    .text(p.name.as_str())
                    .json(&p.spec)
                    .opt_time(p.status.last_scale_at)
                    .json(&p.status.provider_backoff)
                    .opt_json(p.status.last_decision.as_ref())
                    .unsigned(p.revision.get());
                self.pools.end();
            }
            Record::Node(r) => {
                let n = &r.node;
                self.nodes
                    .text(n.id.as_str())
                    .text(&n.provider)
                    .text(&n.region)
                    .text(&n.zone)
                    .text(&n.instance_type)
                    .opt_text(n.pool.as_ref().map(|p| p.as_str()))
                    .text(n.status.as_str())
                    .text(&n.status_reason)
                    .time(n.status_changed_at)
                    .text(n.health.as_str())
                    .int(i64::from(n.unhealthy_streak))
                    .json(&n.labels)
                    .int(i64::from(n.gpu_count))
                    .text(&n.gpu_model)
                    .json(&n.metadata)
                    .time(n.registered_at)
                    .opt_time(n.last_health_report)
                    .unsigned(n.revision.get())
                    .opt_json(n.remediation.as_ref());
                self.nodes.end();
                for g in &r.gpus {
                    self.node_gpus
                        .text(n.id.as_str())
                        .int(i64::from(g.index))
                        .text(&g.uuid)
                        .text(&g.name)
                        .text(&g.pci_bus_id)
                        .unsigned(g.memory_bytes)
                        .text(&g.driver_version)
                        .text(&g.cuda_version);
                    self.node_gpus.end();
                }
                if let Some(at) = r.last_heartbeat {
                    self.node_liveness.text(n.id.as_str()).time(at);
                    self.node_liveness.end();
                }
            }
            Record::Instance(i) => {
                self.instances
                    .text(i.id.as_str())
                    .text(&i.provider)
                    .opt_text(i.provider_instance_id.as_deref())
                    .text(&i.region)
                    .text(&i.zone)
                    .text(&i.instance_type)
                    .opt_text(i.pool.as_ref().map(|p| p.as_str()))
                    .text(i.state.as_str())
                    .text(&i.status_message)
                    .opt_text(i.node_id.as_ref().map(|n| n.as_str()))
                    .json(&i.labels)
                    .time(i.created_at)
                    .time(i.state_changed_at)
                    .opt_time(i.ready_at)
                    .opt_time(i.terminated_at)
                    .unsigned(i.revision.get());
                self.instances.end();
            }
            Record::Command(r) => {
                let c = &r.command;
                self.commands
                    .text(&c.id.to_string())
                    .text(c.node_id.as_str())
                    .text(c.kind.kind_name())
                    .opt_text(c.kind.custom_name())
                    .json(&c.parameters)
                    .text(c.state.as_str())
                    .text(&c.issued_by.to_string())
                    .text(&c.reason)
                    .time(c.issued_at)
                    .time(c.deadline)
                    .opt_time(c.delivered_at)
                    .int(i64::from(c.delivery_count))
                    .opt_time(c.acked_at)
                    .opt_time(c.finished_at)
                    .text(&c.outcome_message)
                    .json(&c.result)
                    .unsigned(c.revision.get());
                self.commands.end();
                for e in &r.events {
                    self.command_events
                        .text(&e.command_id.to_string())
                        .int(i64::from(e.seq))
                        .time(e.at)
                        .text(e.state.as_str())
                        .text(&e.actor.to_string())
                        .text(&e.message);
                    self.command_events.end();
                }
            }
            Record::HealthReport(r) => {
                self.health_reports
                    .unsigned(r.id)
                    .text(r.report.node_id.as_str())
                    .time(r.report.received_at)
                    .text(r.report.health.as_str())
                    .json(&r.report.results)
                    .json(&r.report.events);
                self.health_reports.end();
            }
            Record::BootstrapLog(l) => {
                self.bootstrap_logs
                    .unsigned(l.id)
                    .text(l.node_id.as_str())
                    .opt_text(l.instance_id.as_ref().map(|i| i.as_str()))
                    .opt_text(l.pool.as_ref().map(|p| p.as_str()))
                    .time(l.started_at)
                    .unsigned(l.duration_ms)
                    .text(if l.success { "t" } else { "f" })
                    .text(&l.error)
                    .json(&l.commands);
                self.bootstrap_logs.end();
            }
            Record::Change(c) => {
                self.changes
                    .unsigned(c.seq)
                    .time(c.at)
                    .text(c.kind.as_str())
                    .text(&c.resource_id)
                    .text(c.op.as_str())
                    .unsigned(c.revision.get())
                    .text(&c.actor.to_string())
                    .text(&c.reason)
                    .json(&c.resource);
                self.changes.end();
            }
        }
    }

    /// Each table's COPY, parents before children.
    fn statements(&self) -> [(&'static str, &CopyText); 11] {
        [
            ("COPY policies (id, name, document, updated_at, revision) FROM STDIN", &self.policies),
            (
                "COPY pools (name, spec, last_scale_at, provider_backoff, last_decision, revision) FROM STDIN",
                &self.pools,
            ),
            (
                "COPY nodes (node_id, provider, region, zone, instance_type, pool, status, status_reason, \
                 status_changed_at, health, unhealthy_streak, labels, gpu_count, gpu_model, metadata, registered_at, \
                 last_health_report, revision, remediation) FROM STDIN",
                &self.nodes,
            ),
            (
                "COPY node_gpus (node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, \
                 cuda_version) FROM STDIN",
                &self.node_gpus,
            ),
            ("COPY node_liveness (node_id, last_heartbeat) FROM STDIN", &self.node_liveness),
            (
                "COPY instances (instance_id, provider, provider_instance_id, region, zone, instance_type, pool, \
                 state, status_message, node_id, labels, created_at, state_changed_at, ready_at, terminated_at, \
                 revision) FROM STDIN",
                &self.instances,
            ),
            (
                "COPY commands (command_id, node_id, kind, custom_name, parameters, state, issued_by, reason, \
                 issued_at, deadline, delivered_at, delivery_count, acked_at, finished_at, outcome_message, result, \
                 revision) FROM STDIN",
                &self.commands,
            ),
            ("COPY command_events (command_id, seq, at, state, actor, message) FROM STDIN", &self.command_events),
            (
                "COPY health_reports (id, node_id, received_at, health, results, events) FROM STDIN",
                &self.health_reports,
            ),
            (
                "COPY bootstrap_logs (id, node_id, instance_id, pool, started_at, duration_ms, success, error, \
                 commands) FROM STDIN",
                &self.bootstrap_logs,
            ),
            (
                "COPY changes (seq, at, kind, resource_id, op, revision, actor, reason, resource) FROM STDIN",
                &self.changes,
            ),
        ]
    }
}

async fn copy_batch(conn: &mut PgConnection, records: &[Record]) -> Result<()> {
    let mut tables = Tables::default();
    for record in records {
        match record {
            // A handful at most: one statement each.
            Record::Lease(lease) => insert_lease(conn, lease).await?,
            record => tables.add(record),
        }
    }
    for (statement, rows) in tables.statements() {
        if rows.buf.is_empty() {
            continue;
        }
        let mut copy = conn.copy_in_raw(statement).await.map_err(db)?;
        copy.send(rows.buf.as_slice()).await.map_err(db)?;
        copy.finish().await.map_err(db)?;
    }
    Ok(())
}

async fn insert_lease(conn: &mut PgConnection, l: &bosun_core::Lease) -> Result<()> {
    sqlx::query(
        "INSERT INTO leases (name, holder, epoch, revision, renewals, acquired_at, renewed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(l.name.as_str())
    .bind(l.holder.as_ref().map(|h| h.as_str()))
    .bind(i64::try_from(l.epoch).unwrap_or(i64::MAX))
    .bind(i64::try_from(l.revision.get()).unwrap_or(i64::MAX))
    .bind(i64::try_from(l.renewals).unwrap_or(i64::MAX))
    .bind(super::time(l.acquired_at))
    .bind(super::time(l.renewed_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn load(pool: &PgPool, mut source: mpsc::Receiver<LoadMessage>, target: Target) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    match target {
        Target::MustBeEmpty => {
            let holds: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM nodes) OR EXISTS (SELECT 1 FROM instances) \
                 OR EXISTS (SELECT 1 FROM pools) OR EXISTS (SELECT 1 FROM policies) \
                 OR EXISTS (SELECT 1 FROM changes) OR EXISTS (SELECT 1 FROM bootstrap_logs)",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if holds {
                return Err(target_not_empty());
            }
        }
        Target::Replace => {
            sqlx::query(
                "TRUNCATE nodes, node_gpus, node_liveness, instances, commands, command_events, pools, policies, leases, \
                 health_reports, bootstrap_logs, metric_samples, changes",
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
    }
    loop {
        match source.recv().await {
            // Dropping the transaction rolls it back.
            None => return Err(load_abandoned()),
            Some(LoadMessage::Records(records)) => copy_batch(&mut tx, &records).await?,
            Some(LoadMessage::Commit(sequences)) => {
                sqlx::query(
                    "UPDATE change_log SET last_seq = GREATEST(last_seq, $1), \
                     compacted_through = GREATEST(compacted_through, $2) WHERE id = 1",
                )
                .bind(i64::try_from(sequences.change_seq).unwrap_or(i64::MAX))
                .bind(i64::try_from(sequences.changes_compacted_through).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                for (table, column, sequence_name, value) in [
                    ("health_reports", "id", "health_reports_id_seq", sequences.health_report_id),
                    ("bootstrap_logs", "id", "bootstrap_logs_id_seq", sequences.bootstrap_log_id),
                ] {
                    let value = value.max(sequence(&mut tx, sequence_name).await?);
                    if value > 0 {
                        sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, true)")
                            .bind(table)
                            .bind(column)
                            .bind(i64::try_from(value).unwrap_or(i64::MAX))
                            .execute(&mut *tx)
                            .await
                            .map_err(db)?;
                    }
                }
                tx.commit().await.map_err(db)?;
                return Ok(());
            }
        }
    }
}
