//! Dump and bulk load for PostgreSQL (see `crate::transfer`).
//!
//! A dump reads in one `REPEATABLE READ, READ ONLY` transaction (one snapshot), each table
//! in keyset pages; a thread of its own decodes each page into records while the
//! connection fetches the next. A load runs in one transaction committed on `Commit`: it
//! locks and empties the tables, sets their keys, indexes and foreign keys aside
//! ([`SetAside`]), writes the rows frozen with `COPY ... FROM STDIN (FORMAT binary,
//! FREEZE)` (`copy_rows.rs`; a few megabytes per COPY, encoded on a thread of its own while
//! the previous COPY is sent), then builds the indexes and checks the foreign keys once
//! each. COPY writes the identity columns (change sequence, history ids) as given. Asked to
//! read back before it commits, a load puts everything back, then reads every table as a
//! dump does, on its own connection and in its own transaction.

use bosun_core::CommandEvent;
use bosun_core::inventory::{InventoryKind, RecordState, record_id};
use bosun_core::node::Gpu;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, FromRow as _, PgConnection, Row as _};
use tokio::sync::mpsc;

use super::copy_rows::{CopyRows, Tables};
use super::{inventory, node_from_row, usage};
use crate::error::{Result, StoreError};
use crate::inventory::row::table;
use crate::ledger::StoredRunEvent;
use crate::sql::ledger_rows::{
    ApprovalPolicyRow, ApprovalRow, ArtifactInfoRow, AuditRow, RunEventRow, RunRow, RunbookRow, ToolCallRow, ToolRow,
};
use crate::sql::rows::{
    BootstrapLogRow, ChangeRow, CommandEventRow, CommandRow, GpuRow, HealthReportRow, InstanceRow, LeaseRow, PolicyRow,
    PoolRow,
};
use crate::sql::{map_err, unsigned};
use crate::transfer::{
    ArtifactRecord, Batcher, CommandRecord, DumpMessage, LoadMessage, NodeRecord, Record, RecordKind, RunRecord,
    Sequences, Snapshot, Target, filled_tables, load_abandoned, reader_gone, target_not_empty,
};
use crate::usage::{PriceRow, UsageRecordRow};

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

/// A page of rows as the connection fetched them; the decoder turns them into records.
/// Pages come in load order.
enum Fetched {
    Policy(PgRow),
    Leases(Vec<PgRow>),
    Pools(Vec<PgRow>),
    /// Nodes and the GPUs of exactly those nodes, both in node order.
    Nodes {
        nodes: Vec<PgRow>,
        gpus: Vec<PgRow>,
    },
    Instances(Vec<PgRow>),
    /// Commands and the events of exactly those commands, both in command order.
    Commands {
        commands: Vec<PgRow>,
        events: Vec<PgRow>,
    },
    HealthReports(Vec<PgRow>),
    BootstrapLogs(Vec<PgRow>),
    Runbooks(Vec<PgRow>),
    Tools(Vec<PgRow>),
    ApprovalPolicies(Vec<PgRow>),
    /// Runs and the events of exactly those runs, both in run order.
    Runs {
        runs: Vec<PgRow>,
        events: Vec<PgRow>,
    },
    Approvals(Vec<PgRow>),
    Artifacts(Vec<PgRow>),
    ToolCalls(Vec<PgRow>),
    Audit(Vec<PgRow>),
    Prices(Vec<PgRow>),
    Usage(Vec<PgRow>),
    Settings(Vec<PgRow>),
    /// Records of one inventory kind and, for storage, the hosts of exactly those records,
    /// both in record order.
    Inventory {
        kind: InventoryKind,
        rows: Vec<PgRow>,
        hosts: Vec<PgRow>,
    },
    InventorySources(Vec<PgRow>),
    InventorySyncs(Vec<PgRow>),
    Changes(Vec<PgRow>),
}

/// Hands a page to the decoder; fails only if the decoder stopped (its own error says why).
async fn send(pages: &mpsc::Sender<Fetched>, page: Fetched) -> Result<()> {
    pages.send(page).await.map_err(|_| reader_gone())
}

/// A table to fetch in keyset pages: its rows (`select`, ordered and paged by `key` from
/// `start`) and, for a table with child rows, the statement selecting the children of the
/// parents from $1 to $2 in parent order.
struct Paged<K> {
    select: &'static str,
    key: &'static str,
    start: K,
    children: Option<&'static str>,
}

/// Fetches every page of a table, with its children: `key_of` reads a row's key (for the
/// next page and the children's bounds), `wrap` makes a page of rows and children.
async fn fetch_table<K>(
    conn: &mut PgConnection,
    pages: &mpsc::Sender<Fetched>,
    table: Paged<K>,
    key_of: fn(&PgRow) -> Result<K>,
    wrap: fn(Vec<PgRow>, Vec<PgRow>) -> Fetched,
) -> Result<()>
where
    K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Clone,
{
    let mut after = None;
    loop {
        let rows = page(conn, table.select, table.key, table.start.clone(), after.take()).await?;
        let last_page = (rows.len() as i64) < PAGE;
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let (first, last) = (key_of(first)?, key_of(last)?);
            let children = match table.children {
                Some(children) => {
                    sqlx::query(children).bind(first).bind(last.clone()).fetch_all(&mut *conn).await.map_err(db)?
                }
                None => Vec::new(),
            };
            after = Some(last);
            send(pages, wrap(rows, children)).await?;
        }
        if last_page {
            return Ok(());
        }
    }
}

/// A table without child rows.
fn flat<K>(select: &'static str, key: &'static str, start: K) -> Paged<K> {
    Paged { select, key, start, children: None }
}

fn text_key(row: &PgRow) -> Result<String> {
    row.try_get(0).map_err(db)
}

fn id_key(row: &PgRow) -> Result<i64> {
    row.try_get(0).map_err(db)
}

fn command_key(row: &PgRow) -> Result<uuid::Uuid> {
    let id: &str = row.try_get(0).map_err(db)?;
    uuid::Uuid::parse_str(id).map_err(|e| StoreError::corrupt("commands.command_id", e))
}

/// Nodes with their last heartbeat, for [`page`]. The join repeats the page's lower bound
/// for `node_liveness`: without it, each page's merge join reads that table from its
/// start, and a dump reads it once per page.
const NODE_PAGE: &str = concat!(
    super::node_columns!(),
    "FROM nodes n LEFT JOIN node_liveness l ON l.node_id = n.node_id AND l.node_id >= $1 "
);

/// Fetches every table in load order, page by page, for the decoder.
async fn fetch(conn: &mut PgConnection, pages: &mpsc::Sender<Fetched>) -> Result<()> {
    let policy = sqlx::query("SELECT name, document, updated_at, revision FROM policies WHERE id = 'active'")
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    if let Some(policy) = policy {
        send(pages, Fetched::Policy(policy)).await?;
    }
    let leases = "SELECT name, holder, epoch, revision, renewals, acquired_at, renewed_at FROM leases";
    fetch_table(conn, pages, flat(leases, "name", String::new()), text_key, |rows, _| Fetched::Leases(rows)).await?;
    let pools = "SELECT name, spec, last_scale_at, provider_backoff, last_decision, revision FROM pools";
    fetch_table(conn, pages, flat(pools, "name", String::new()), text_key, |rows, _| Fetched::Pools(rows)).await?;
    let nodes = Paged {
        select: NODE_PAGE,
        key: "n.node_id",
        start: String::new(),
        children: Some(
            "SELECT node_id, gpu_index, uuid, name, pci_bus_id, memory_bytes, driver_version, cuda_version \
             FROM node_gpus WHERE node_id >= $1 AND node_id <= $2 ORDER BY node_id, gpu_index",
        ),
    };
    fetch_table(conn, pages, nodes, text_key, |nodes, gpus| Fetched::Nodes { nodes, gpus }).await?;
    let instances = flat(super::select_instance!(), "instance_id", String::new());
    fetch_table(conn, pages, instances, text_key, |rows, _| Fetched::Instances(rows)).await?;
    let commands = Paged {
        select: super::select_command!(),
        key: "command_id",
        start: uuid::Uuid::nil(),
        children: Some(
            "SELECT command_id::text AS command_id, seq, at, state, actor, message FROM command_events \
             WHERE command_id >= $1 AND command_id <= $2 ORDER BY command_id, seq",
        ),
    };
    fetch_table(conn, pages, commands, command_key, |commands, events| Fetched::Commands { commands, events }).await?;
    let reports = "SELECT id, node_id, received_at, health, results, events FROM health_reports";
    fetch_table(conn, pages, flat(reports, "id", 0), id_key, |rows, _| Fetched::HealthReports(rows)).await?;
    let logs = "SELECT id, node_id, instance_id, pool, started_at, duration_ms, success, error, commands \
                FROM bootstrap_logs";
    fetch_table(conn, pages, flat(logs, "id", 0), id_key, |rows, _| Fetched::BootstrapLogs(rows)).await?;
    fetch_ledger(conn, pages).await?;
    fetch_usage(conn, pages).await?;
    fetch_inventory(conn, pages).await?;
    let changes = "SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes";
    fetch_table(conn, pages, flat(changes, "seq", 0), id_key, |rows, _| Fetched::Changes(rows)).await
}

/// A run with its targets (as `ledger_rows::parse_targets` reads them), for [`page`].
const RUN_PAGE: &str = "SELECT r.run_id::text AS run_id, r.kind, r.task, r.task_version::int8 AS task_version, r.status, \
     r.requested_by, r.approved_by, r.input, r.result, r.error, r.created_at, r.started_at, r.finished_at, r.revision, \
     (SELECT string_agg(t.target_kind || ':' || t.target_id, ',' ORDER BY t.position) FROM task_run_targets t \
      WHERE t.run_id = r.run_id) AS targets FROM task_runs r";

fn uuid_key(row: &PgRow) -> Result<uuid::Uuid> {
    let id: &str = row.try_get(0).map_err(db)?;
    uuid::Uuid::parse_str(id).map_err(|e| StoreError::corrupt("uuid key", e))
}

/// Artifacts fetched per page: each may be a megabyte.
const ARTIFACT_PAGE: i64 = 64;

/// Fetches the operations ledger in load order.
async fn fetch_ledger(conn: &mut PgConnection, pages: &mpsc::Sender<Fetched>) -> Result<()> {
    let runbooks = "SELECT name, description, spec, version::int8 AS version, created_by, created_at, updated_at, \
                    revision FROM tasks";
    fetch_table(conn, pages, flat(runbooks, "name", String::new()), text_key, |rows, _| Fetched::Runbooks(rows))
        .await?;
    let tools = "SELECT name, description, input_schema, risk, enabled, updated_at, revision FROM tool_definitions";
    fetch_table(conn, pages, flat(tools, "name", String::new()), text_key, |rows, _| Fetched::Tools(rows)).await?;
    let policies = "SELECT name, position::int8 AS position, description, condition, decision, required_role, \
                    updated_at, revision FROM approval_policies";
    fetch_table(conn, pages, flat(policies, "name", String::new()), text_key, |rows, _| {
        Fetched::ApprovalPolicies(rows)
    })
    .await?;
    let runs = Paged {
        select: RUN_PAGE,
        key: "r.run_id",
        start: uuid::Uuid::nil(),
        children: Some(
            "SELECT run_id::text AS run_id, seq, at, type, step::int8 AS step, target, message, data FROM task_events \
             WHERE run_id >= $1 AND run_id <= $2 ORDER BY run_id, seq",
        ),
    };
    fetch_table(conn, pages, runs, uuid_key, |runs, events| Fetched::Runs { runs, events }).await?;
    let approvals = "SELECT approval_id::text AS approval_id, run_id::text AS run_id, step::int8 AS step, what, \
                     policy, required_role, requested_by, requested_at, expires_at, decision, decided_by, reason, \
                     decided_at, revision FROM approvals";
    fetch_table(conn, pages, flat(approvals, "approval_id", uuid::Uuid::nil()), uuid_key, |rows, _| {
        Fetched::Approvals(rows)
    })
    .await?;
    let mut after: Option<(uuid::Uuid, String)> = None;
    loop {
        let (run, name) = after.clone().unwrap_or((uuid::Uuid::nil(), String::new()));
        let rows = sqlx::query(
            "SELECT run_id::text AS run_id, name, media_type, size, sha256, created_at, content FROM artifacts \
             WHERE (run_id, name) > ($1, $2) OR ($3 AND (run_id, name) = ($1, $2)) ORDER BY run_id, name LIMIT $4",
        )
        .bind(run)
        .bind(name)
        .bind(after.is_none())
        .bind(ARTIFACT_PAGE)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let last_page = (rows.len() as i64) < ARTIFACT_PAGE;
        if let Some(last) = rows.last() {
            after = Some((uuid_key(last)?, last.try_get::<String, _>(1).map_err(db)?));
            send(pages, Fetched::Artifacts(rows)).await?;
        }
        if last_page {
            break;
        }
    }
    let calls = "SELECT id, run_id::text AS run_id, tool, at, input, output, status, error, duration_ms, \
                 approval_id::text AS approval_id FROM tool_call_records";
    fetch_table(conn, pages, flat(calls, "id", 0), id_key, |rows, _| Fetched::ToolCalls(rows)).await?;
    let audit = "SELECT seq, at, actor, role, method, resource, outcome, code, message, request_id, peer \
                 FROM audit_entries";
    fetch_table(conn, pages, flat(audit, "seq", 0), id_key, |rows, _| Fetched::Audit(rows)).await
}

/// Fetches prices (in one page: a price list is short), LLM usage and settings, in load
/// order.
async fn fetch_usage(conn: &mut PgConnection, pages: &mpsc::Sender<Fetched>) -> Result<()> {
    let prices = sqlx::query(AssertSqlSafe(format!(
        "SELECT {} FROM provider_pricing ORDER BY provider, model, effective_from",
        PriceRow::COLUMNS
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    if !prices.is_empty() {
        send(pages, Fetched::Prices(prices)).await?;
    }
    let usage = flat(usage::usage_select!(), "q.id", uuid::Uuid::nil());
    fetch_table(conn, pages, usage, uuid_key, |rows, _| Fetched::Usage(rows)).await?;
    let settings = "SELECT name, value, updated_by, updated_at, revision FROM control_settings";
    fetch_table(conn, pages, flat(settings, "name", String::new()), text_key, |rows, _| Fetched::Settings(rows)).await
}

/// A row's key of two text columns, its first two.
fn pair_key(row: &PgRow) -> Result<(String, String)> {
    Ok((row.try_get(0).map_err(db)?, row.try_get(1).map_err(db)?))
}

/// Fetches every page of a table keyed by two text columns (`key`, the first two that
/// `select` selects), with, if `children` is given, the child rows of each page's rows
/// (`children` selects those of the parents from ($1, $2) to ($3, $4), in parent order).
async fn fetch_by_pair(
    conn: &mut PgConnection,
    pages: &mpsc::Sender<Fetched>,
    select: &str,
    key: &str,
    children: Option<&str>,
    wrap: impl Fn(Vec<PgRow>, Vec<PgRow>) -> Fetched,
) -> Result<()> {
    let first_page = format!("{select} ORDER BY {key} LIMIT $1");
    let next_page = format!("{select} WHERE ({key}) > ($2, $3) ORDER BY {key} LIMIT $1");
    let mut after: Option<(String, String)> = None;
    loop {
        let query = match &after {
            None => sqlx::query(AssertSqlSafe(first_page.as_str())).bind(PAGE),
            Some((a, b)) => sqlx::query(AssertSqlSafe(next_page.as_str())).bind(PAGE).bind(a.as_str()).bind(b.as_str()),
        };
        let rows = query.fetch_all(&mut *conn).await.map_err(db)?;
        let last_page = (rows.len() as i64) < PAGE;
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            let (first, last) = (pair_key(first)?, pair_key(last)?);
            let children = match children {
                Some(children) => sqlx::query(AssertSqlSafe(children))
                    .bind(first.0)
                    .bind(first.1)
                    .bind(last.0.as_str())
                    .bind(last.1.as_str())
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db)?,
                None => Vec::new(),
            };
            after = Some(last);
            send(pages, wrap(rows, children)).await?;
        }
        if last_page {
            return Ok(());
        }
    }
}

/// Fetches the inventory in load order: every kind's records (storage with its hosts), the
/// sources' status, the sync history.
async fn fetch_inventory(conn: &mut PgConnection, pages: &mpsc::Sender<Fetched>) -> Result<()> {
    for &kind in InventoryKind::ALL {
        let table = table(kind);
        let select = format!("SELECT {} FROM {}", inventory::select_list(table), table.name);
        let hosts = (kind == InventoryKind::Storage).then_some(
            "SELECT source, storage_key, host_key FROM host_storage \
             WHERE (source, storage_key) >= ($1, $2) AND (source, storage_key) <= ($3, $4) \
             ORDER BY source, storage_key, host_key",
        );
        fetch_by_pair(conn, pages, &select, "source, key", hosts, |rows, hosts| Fetched::Inventory {
            kind,
            rows,
            hosts,
        })
        .await?;
    }
    let sources = format!("SELECT {} FROM inventory_sources", inventory::SOURCE_COLUMNS);
    fetch_by_pair(conn, pages, &sources, "source, scope", None, |rows, _| Fetched::InventorySources(rows)).await?;
    // The columns of `inventory::SyncRow`.
    let syncs = "SELECT id, source, scope, started_at, finished_at, created, updated, back, gone, unchanged, error \
                 FROM inventory_syncs";
    fetch_table(conn, pages, flat(syncs, "id", 0), id_key, |rows, _| Fetched::InventorySyncs(rows)).await
}

/// Child rows, (parent key, child), in parent order, handed out parent by parent.
struct Children<K, T>(std::iter::Peekable<std::vec::IntoIter<(K, T)>>);

impl<K: AsRef<str>, T> Children<K, T> {
    fn new(children: Vec<(K, T)>) -> Self {
        Self(children.into_iter().peekable())
    }

    /// The children of `parent`, the next parent in order.
    fn of(&mut self, parent: &str) -> Vec<T> {
        let mut children = Vec::new();
        while let Some((_, child)) = self.0.next_if(|(key, _)| key.as_ref() == parent) {
            children.push(child);
        }
        children
    }

    /// Fails if rows are left over: rows of no parent, or out of order.
    fn finish(mut self, table: &str) -> Result<()> {
        match self.0.peek() {
            Some((key, _)) => Err(StoreError::corrupt(table, format!("a row of {} has no parent here", key.as_ref()))),
            None => Ok(()),
        }
    }
}

/// Column `index` of a row, decoded without the driver's type check: for the largest
/// tables (GPUs, changes), whose columns `fetch` selects in a fixed order and type.
fn at<'r, T: sqlx::Decode<'r, sqlx::Postgres>>(row: &'r PgRow, index: usize) -> Result<T> {
    row.try_get_unchecked(index).map_err(db)
}

/// Turns fetched pages into records, on a thread of its own so that the connection fetches
/// the next page meanwhile.
fn decode(mut pages: mpsc::Receiver<Fetched>, out: &mut Batcher<'_>) -> Result<()> {
    fn each(rows: &[PgRow], out: &mut Batcher<'_>, decode: impl Fn(&PgRow) -> Result<Record>) -> Result<()> {
        rows.iter().try_for_each(|row| out.blocking_push(decode(row)?))
    }
    while let Some(page) = pages.blocking_recv() {
        match page {
            Fetched::Policy(row) => {
                let policy = PolicyRow::<DateTime<Utc>>::from_row(&row).map_err(db)?;
                out.blocking_push(Record::Policy(policy.into_policy()?))?;
            }
            Fetched::Leases(rows) => each(&rows, out, |row| {
                Ok(Record::Lease(Box::new(LeaseRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_lease()?)))
            })?,
            Fetched::Pools(rows) => each(&rows, out, |row| {
                Ok(Record::Pool(Box::new(PoolRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_pool()?)))
            })?,
            Fetched::Nodes { nodes, gpus } => {
                let gpus = gpus
                    .iter()
                    .map(|row| {
                        let gpu = GpuRow {
                            gpu_index: at(row, 1)?,
                            uuid: at(row, 2)?,
                            name: at(row, 3)?,
                            pci_bus_id: at(row, 4)?,
                            memory_bytes: at(row, 5)?,
                            driver_version: at(row, 6)?,
                            cuda_version: at(row, 7)?,
                        };
                        Ok((at::<&str>(row, 0)?, gpu.into_gpu()?))
                    })
                    .collect::<Result<Vec<(&str, Gpu)>>>()?;
                let mut gpus = Children::new(gpus);
                for row in &nodes {
                    let mut node = node_from_row(row)?;
                    let gpus = gpus.of(node.id.as_str());
                    let last_heartbeat = node.last_heartbeat.take();
                    out.blocking_push(Record::Node(Box::new(NodeRecord { node, gpus, last_heartbeat })))?;
                }
                gpus.finish("node_gpus")?;
            }
            Fetched::Instances(rows) => each(&rows, out, |row| {
                let instance = InstanceRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_instance()?;
                Ok(Record::Instance(Box::new(instance)))
            })?,
            Fetched::Commands { commands, events } => {
                let events = events
                    .iter()
                    .map(|row| {
                        let event = CommandEventRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
                        Ok((event.command_id.clone(), event.into_event()?))
                    })
                    .collect::<Result<Vec<(String, CommandEvent)>>>()?;
                let mut events = Children::new(events);
                for row in &commands {
                    let command = CommandRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_command()?;
                    let events = events.of(&command.id.to_string());
                    out.blocking_push(Record::Command(Box::new(CommandRecord { command, events })))?;
                }
                events.finish("command_events")?;
            }
            Fetched::HealthReports(rows) => each(&rows, out, |row| {
                let report = HealthReportRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
                Ok(Record::HealthReport(Box::new(report.into_report()?)))
            })?,
            Fetched::BootstrapLogs(rows) => each(&rows, out, |row| {
                let log = BootstrapLogRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
                Ok(Record::BootstrapLog(Box::new(log.into_log()?)))
            })?,
            Fetched::Runbooks(rows) => each(&rows, out, |row| {
                let runbook = RunbookRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_runbook()?;
                Ok(Record::Runbook(Box::new(runbook)))
            })?,
            Fetched::Tools(rows) => each(&rows, out, |row| {
                Ok(Record::Tool(Box::new(ToolRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_tool()?)))
            })?,
            Fetched::ApprovalPolicies(rows) => each(&rows, out, |row| {
                let policy = ApprovalPolicyRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_policy()?;
                Ok(Record::ApprovalPolicy(Box::new(policy)))
            })?,
            Fetched::Runs { runs, events } => {
                let events = events
                    .iter()
                    .map(|row| {
                        let event = RunEventRow::<DateTime<Utc>>::from_row(row).map_err(db)?;
                        Ok((event.run_id.clone(), event.into_event()?))
                    })
                    .collect::<Result<Vec<(String, StoredRunEvent)>>>()?;
                let mut events = Children::new(events);
                for row in &runs {
                    let run = RunRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_run()?;
                    let events = events.of(&run.id.to_string());
                    out.blocking_push(Record::Run(Box::new(RunRecord { run, events })))?;
                }
                events.finish("task_events")?;
            }
            Fetched::Approvals(rows) => each(&rows, out, |row| {
                let approval = ApprovalRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_approval()?;
                Ok(Record::Approval(Box::new(approval)))
            })?,
            Fetched::Artifacts(rows) => each(&rows, out, |row| {
                let info = ArtifactInfoRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_info()?;
                let content: Vec<u8> = row.try_get("content").map_err(db)?;
                Ok(Record::Artifact(Box::new(ArtifactRecord { info, content })))
            })?,
            Fetched::ToolCalls(rows) => each(&rows, out, |row| {
                Ok(Record::ToolCall(Box::new(ToolCallRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_call()?)))
            })?,
            Fetched::Audit(rows) => each(&rows, out, |row| {
                Ok(Record::Audit(Box::new(AuditRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_entry()?)))
            })?,
            Fetched::Prices(rows) => each(&rows, out, |row| {
                Ok(Record::Price(Box::new(PriceRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_price()?)))
            })?,
            Fetched::Usage(rows) => each(&rows, out, |row| {
                let usage = UsageRecordRow::<DateTime<Utc>>::from_row(row).map_err(db)?.into_usage()?;
                Ok(Record::LlmUsage(Box::new(usage)))
            })?,
            Fetched::Settings(rows) => each(&rows, out, |row| {
                Ok(Record::Setting(Box::new(usage::SettingRow::from_row(row).map_err(db)?.into_setting()?)))
            })?,
            Fetched::Inventory { kind, rows, hosts } => {
                let hosts = hosts
                    .iter()
                    .map(|row| {
                        let source: &str = at(row, 0)?;
                        let storage_key: &str = at(row, 1)?;
                        let source = source.parse().map_err(|e| StoreError::corrupt("host_storage.source", e))?;
                        Ok((record_id(&source, storage_key), at::<String>(row, 2)?))
                    })
                    .collect::<Result<Vec<(String, String)>>>()?;
                let mut hosts = Children::new(hosts);
                for row in &rows {
                    let mut record = inventory::decode(kind, row)?;
                    let id = record.id();
                    if let RecordState::Storage(storage) = &mut record.state {
                        storage.hosts = hosts.of(&id);
                    }
                    out.blocking_push(Record::InventoryRecord(Box::new(record)))?;
                }
                hosts.finish("host_storage")?;
            }
            Fetched::InventorySources(rows) => each(&rows, out, |row| {
                let status = inventory::source_status(inventory::SourceRow::from_row(row).map_err(db)?)?;
                Ok(Record::InventorySource(Box::new(status)))
            })?,
            Fetched::InventorySyncs(rows) => each(&rows, out, |row| {
                let sync = inventory::sync_record(inventory::SyncRow::from_row(row).map_err(db)?)?;
                Ok(Record::InventorySync(Box::new(sync)))
            })?,
            Fetched::Changes(rows) => each(&rows, out, |row| {
                let change = ChangeRow::<DateTime<Utc>, String> {
                    seq: at(row, 0)?,
                    at: at(row, 1)?,
                    kind: at(row, 2)?,
                    resource_id: at(row, 3)?,
                    op: at(row, 4)?,
                    revision: at(row, 5)?,
                    actor: at(row, 6)?,
                    reason: at(row, 7)?,
                    resource: at(row, 8)?,
                };
                Ok(Record::Change(Box::new(change.into_entry()?)))
            })?,
        }
    }
    Ok(())
}

/// The SQL expression counting a kind's records (a `bigint`).
fn count_of(kind: RecordKind) -> String {
    let table = match kind {
        RecordKind::Policy => "policies",
        RecordKind::Lease => "leases",
        RecordKind::Pool => "pools",
        RecordKind::Node => "nodes",
        RecordKind::Instance => "instances",
        RecordKind::Command => "commands",
        RecordKind::HealthReport => "health_reports",
        RecordKind::BootstrapLog => "bootstrap_logs",
        RecordKind::Runbook => "tasks",
        RecordKind::Tool => "tool_definitions",
        RecordKind::ApprovalPolicy => "approval_policies",
        RecordKind::Run => "task_runs",
        RecordKind::Approval => "approvals",
        RecordKind::Artifact => "artifacts",
        RecordKind::ToolCall => "tool_call_records",
        RecordKind::Audit => "audit_entries",
        RecordKind::Price => "provider_pricing",
        RecordKind::LlmUsage => "llm_requests",
        RecordKind::Setting => "control_settings",
        RecordKind::InventoryRecord => {
            let each: Vec<String> =
                InventoryKind::ALL.iter().map(|k| format!("(SELECT COUNT(*) FROM {})", table(*k).name)).collect();
            return format!("({})", each.join(" + "));
        }
        RecordKind::InventorySource => "inventory_sources",
        RecordKind::InventorySync => "inventory_syncs",
        RecordKind::Change => "changes",
    };
    format!("(SELECT COUNT(*) FROM {table})")
}

/// The decoder of a [`read`]: still at work when the connection has fetched the last page.
type Decoder = tokio::task::JoinHandle<Result<()>>;

/// Reads every record `conn` sees into `sink`: the counts and sequences, then every table,
/// decoded on a thread of its own while the connection fetches the next page. Returns when
/// the connection is free again; await the decoder with [`finish`].
async fn read(conn: &mut PgConnection, sink: &mpsc::Sender<DumpMessage>) -> Result<Decoder> {
    let counted: Vec<String> = RecordKind::ALL.iter().map(|kind| count_of(*kind)).collect();
    let row =
        sqlx::query(AssertSqlSafe(format!("SELECT {}", counted.join(", ")))).fetch_one(&mut *conn).await.map_err(db)?;
    let mut counts = crate::transfer::KindCounts::new();
    for (index, kind) in RecordKind::ALL.into_iter().enumerate() {
        counts.insert(kind, unsigned("count", row.try_get::<i64, _>(index).map_err(db)?)?);
    }
    let (last_seq, compacted_through): (i64, i64) =
        sqlx::query_as("SELECT last_seq, compacted_through FROM change_log WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    let sequences = Sequences {
        change_seq: unsigned("change_log.last_seq", last_seq)?,
        health_report_id: sequence(conn, "health_reports_id_seq").await?,
        bootstrap_log_id: sequence(conn, "bootstrap_logs_id_seq").await?,
        changes_compacted_through: unsigned("change_log.compacted_through", compacted_through)?,
        audit_seq: unsigned(
            "ledger_sequences.last",
            sqlx::query_scalar("SELECT last FROM ledger_sequences WHERE name = 'audit'")
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?,
        )?,
        tool_call_id: sequence(conn, "tool_call_records_id_seq").await?,
        inventory_sync_id: sequence(conn, "inventory_syncs_id_seq").await?,
    };
    let (pages, fetched) = mpsc::channel(2);
    let sink = sink.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        let mut out = Batcher::new(&sink);
        out.blocking_start(Snapshot { counts, sequences })?;
        decode(fetched, &mut out)?;
        out.blocking_flush()
    });
    let fetched = fetch(conn, &pages).await;
    drop(pages);
    if let Err(error) = fetched {
        // The decoder's error first: a fetch that stopped early stopped because of it.
        finish(decoder).await?;
        return Err(error);
    }
    Ok(decoder)
}

/// Waits for a [`read`]'s decoder to deliver its last record.
async fn finish(decoder: Decoder) -> Result<()> {
    decoder.await.map_err(|e| StoreError::unavailable(format!("the dump's decoder failed: {e}")))?
}

pub(super) async fn dump(pool: &PgPool, sink: &mpsc::Sender<DumpMessage>) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await.map_err(db)?;
    let decoder = read(&mut tx, sink).await?;
    finish(decoder).await?;
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// The tables a load empties and writes, and `metric_samples`, which it empties but never
/// fills, with each inventory kind's table ([`load_tables`]). Not among them: the prices,
/// which a load empties only when its first price arrives ([`PRICES`]).
const LOAD_TABLES: [&str; 30] = [
    "policies",
    "leases",
    "pools",
    "nodes",
    "node_gpus",
    "node_liveness",
    "instances",
    "commands",
    "command_events",
    "health_reports",
    "bootstrap_logs",
    "metric_samples",
    "changes",
    "tasks",
    "tool_definitions",
    "approval_policies",
    "task_runs",
    "task_run_targets",
    "task_events",
    "approvals",
    "artifacts",
    "tool_call_records",
    "llm_requests",
    "llm_responses",
    "token_usage",
    "audit_entries",
    "control_settings",
    "host_storage",
    "inventory_sources",
    "inventory_syncs",
];

/// The prices' table. A load locks it with the others but empties it only before the first
/// price it writes: every store starts with the seeded prices, and the records' prices
/// replace them, while records without any (an export written before prices moved) leave
/// the target's as they are. Its key stays in place (a price list is short).
const PRICES: &str = "provider_pricing";

/// [`LOAD_TABLES`] and the inventory kinds' tables.
fn load_tables() -> Vec<&'static str> {
    LOAD_TABLES.into_iter().chain(InventoryKind::ALL.iter().map(|kind| table(*kind).name)).collect()
}

/// Bytes of rows a table gathers before they go to the server as one COPY: large enough
/// that a statement's round trips vanish, small enough to keep a load's memory bounded.
const COPY_BYTES: usize = 4 << 20;

/// What the encoder hands the connection: one COPY's rows, a read-back of everything
/// written, or the end of the load.
enum Chunk {
    Rows { statement: String, data: Vec<u8> },
    ReadBack(mpsc::Sender<DumpMessage>),
    Commit(Sequences),
}

/// The keys, unique constraints, indexes and foreign keys of the loaded tables (and the
/// foreign keys that refer to them), set aside while a load fills the empty tables: each
/// index is then built in one pass and each foreign key checked in one query, instead of
/// row by row. Both lists are read from the catalog in the load's own transaction, so what
/// is put back is exactly what was there (the migrations' schema, whatever its version);
/// PostgreSQL DDL is transactional, so a load that fails or is abandoned puts everything
/// back by rolling back.
struct SetAside {
    /// Keys and unique constraints, then indexes, then foreign keys; empty once put back.
    restore: Vec<String>,
}

/// One row per key, index and foreign key to set aside: (step, statement that drops it,
/// statement that creates it again). Foreign keys drop first (they depend on the keys they
/// refer to) and come back last.
const SET_ASIDE: &str = "\
    WITH loaded AS (SELECT to_regclass(name) AS rel FROM unnest($1::text[]) AS name) \
    SELECT 1 AS step, \
           format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname), \
           format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) \
      FROM pg_constraint c \
     WHERE c.contype = 'f' \
       AND (c.conrelid IN (SELECT rel FROM loaded) OR c.confrelid IN (SELECT rel FROM loaded)) \
    UNION ALL \
    SELECT 2, \
           format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname), \
           format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid)) \
      FROM pg_constraint c \
     WHERE c.contype IN ('p', 'u', 'x') AND c.conrelid IN (SELECT rel FROM loaded) \
    UNION ALL \
    SELECT 3, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid) \
      FROM pg_index i \
     WHERE i.indrelid IN (SELECT rel FROM loaded) \
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                        WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')) \
    ORDER BY 1, 2";

impl SetAside {
    async fn take(conn: &mut PgConnection) -> Result<Self> {
        let tables = load_tables();
        let rows: Vec<(i32, String, String)> =
            sqlx::query_as(SET_ASIDE).bind(&tables).fetch_all(&mut *conn).await.map_err(db)?;
        for (_, drop, _) in &rows {
            sqlx::raw_sql(AssertSqlSafe(drop.as_str())).execute(&mut *conn).await.map_err(db)?;
        }
        let (foreign_keys, rest): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(step, _, _)| *step == 1);
        let restore = rest.into_iter().chain(foreign_keys).map(|(_, _, create)| create).collect();
        Ok(Self { restore })
    }

    /// Puts back whatever is not back yet.
    async fn restore(&mut self, conn: &mut PgConnection) -> Result<()> {
        if self.restore.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        for create in std::mem::take(&mut self.restore) {
            sqlx::raw_sql(AssertSqlSafe(create)).execute(&mut *conn).await.map_err(db)?;
        }
        tracing::debug!(seconds = started.elapsed().as_secs_f64(), "load: keys, indexes and foreign keys put back");
        Ok(())
    }
}

/// Turns records into COPY rows, on a thread of its own so that the connection sends one
/// COPY while the next is encoded. Ends after `Commit`, when the records end, or as soon as
/// the connection stops taking chunks. Buffers come back through `spare` once sent, so the
/// same few megabytes are filled again instead of fresh memory.
fn encode(mut source: mpsc::Receiver<LoadMessage>, chunks: &mpsc::Sender<Chunk>, spare: &mut mpsc::Receiver<Vec<u8>>) {
    let mut tables = Tables::default();
    let mut send = |statement: &str, rows: &mut CopyRows| {
        let data = rows.take(spare.try_recv().unwrap_or_default());
        chunks.blocking_send(Chunk::Rows { statement: statement.to_owned(), data }).is_ok()
    };
    while let Some(message) = source.blocking_recv() {
        match message {
            LoadMessage::Records(records) => {
                for record in &records {
                    tables.add(record);
                }
                // With the foreign keys set aside, tables may be written in any order.
                for (statement, rows) in tables.each() {
                    if rows.len() >= COPY_BYTES && !send(statement, rows) {
                        return;
                    }
                }
            }
            LoadMessage::ReadBack(readback) => {
                for (statement, rows) in tables.each() {
                    if !rows.is_empty() && !send(statement, rows) {
                        return;
                    }
                }
                if chunks.blocking_send(Chunk::ReadBack(readback)).is_err() {
                    return;
                }
            }
            LoadMessage::Commit(sequences) => {
                for (statement, rows) in tables.each() {
                    if !rows.is_empty() && !send(statement, rows) {
                        return;
                    }
                }
                let _ = chunks.blocking_send(Chunk::Commit(sequences));
                return;
            }
        }
        if chunks.is_closed() {
            return;
        }
    }
}

/// Writes the encoder's chunks; true once everything is in and the sequences are set,
/// false if the encoder ended without `Commit`.
async fn write(
    conn: &mut PgConnection,
    chunks: &mut mpsc::Receiver<Chunk>,
    spare: &mpsc::Sender<Vec<u8>>,
    mut set_aside: SetAside,
) -> Result<bool> {
    let mut prices_replaced = false;
    while let Some(chunk) = chunks.recv().await {
        match chunk {
            Chunk::Rows { statement, mut data } => {
                if statement == super::copy_rows::PRICE_COPY && !prices_replaced {
                    // In this transaction, so that COPY FREEZE may write the prices.
                    sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {PRICES}"))).execute(&mut *conn).await.map_err(db)?;
                    prices_replaced = true;
                }
                let mut copy = conn.copy_in_raw(&statement).await.map_err(db)?;
                copy.send(data.as_slice()).await.map_err(db)?;
                copy.finish().await.map_err(db)?;
                data.clear();
                let _ = spare.try_send(data);
            }
            Chunk::ReadBack(readback) => {
                // Everything back first: the read-back pages through the keys, and what it
                // reads has passed every constraint. (Reading back between the keys and the
                // rest, with the connection far ahead of the decoder so that the indexes
                // were built while bosun hashed, measured no faster: the connection, not
                // the decoder, paces a read-back.)
                set_aside.restore(conn).await?;
                let started = std::time::Instant::now();
                let decoder = read(conn, &readback).await?;
                drop(readback);
                finish(decoder).await?;
                tracing::debug!(seconds = started.elapsed().as_secs_f64(), "load: read back");
            }
            Chunk::Commit(sequences) => {
                set_aside.restore(conn).await?;
                sqlx::query(
                    "UPDATE change_log SET last_seq = GREATEST(last_seq, $1), \
                     compacted_through = GREATEST(compacted_through, $2) WHERE id = 1",
                )
                .bind(i64::try_from(sequences.change_seq).unwrap_or(i64::MAX))
                .bind(i64::try_from(sequences.changes_compacted_through).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                sqlx::query(
                    "UPDATE ledger_sequences SET last = GREATEST(last, $1, (SELECT COALESCE(MAX(seq), 0) FROM audit_entries)) \
                     WHERE name = 'audit'",
                )
                .bind(i64::try_from(sequences.audit_seq).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                for (table, column, sequence_name, value) in [
                    ("health_reports", "id", "health_reports_id_seq", sequences.health_report_id),
                    ("bootstrap_logs", "id", "bootstrap_logs_id_seq", sequences.bootstrap_log_id),
                    ("tool_call_records", "id", "tool_call_records_id_seq", sequences.tool_call_id),
                    ("inventory_syncs", "id", "inventory_syncs_id_seq", sequences.inventory_sync_id),
                ] {
                    let value = value.max(sequence(conn, sequence_name).await?);
                    if value > 0 {
                        sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3, true)")
                            .bind(table)
                            .bind(column)
                            .bind(i64::try_from(value).unwrap_or(i64::MAX))
                            .execute(&mut *conn)
                            .await
                            .map_err(db)?;
                    }
                }
                return Ok(true);
            }
        }
    }
    Ok(false)
}

pub(super) async fn load(pool: &PgPool, source: mpsc::Receiver<LoadMessage>, target: Target) -> Result<()> {
    let mut tx = pool.begin().await.map_err(db)?;
    let tables = load_tables().join(", ");
    // Until the load commits or rolls back, nothing else reads or writes these tables: the
    // emptiness check holds, and their keys and indexes can be set aside.
    sqlx::raw_sql(AssertSqlSafe(format!("LOCK TABLE {tables}, {PRICES} IN ACCESS EXCLUSIVE MODE")))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    if target == Target::MustBeEmpty {
        let exists: Vec<String> = filled_tables().map(|t| format!("EXISTS (SELECT 1 FROM {t})")).collect();
        let holds: bool = sqlx::query_scalar(AssertSqlSafe(format!("SELECT {}", exists.join(" OR "))))
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        if holds {
            return Err(target_not_empty());
        }
    }
    // Emptied in this transaction (even when they were empty already), the tables take
    // their rows with COPY FREEZE: written frozen and visible, so neither the first reads
    // (which would set every row's hint bits and write every page again) nor a later
    // vacuum (which would freeze them) go over them once more. Like TRUNCATE, this bends
    // MVCC for a transaction whose snapshot predates the commit: it sees the loaded rows.
    // The append-only ledger tables refuse TRUNCATE unless `ledger_expiry` says
    // `everything`, in this transaction only.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "INSERT INTO ledger_expiry (what, before) VALUES ('everything', 'infinity'); TRUNCATE {tables}; \
         DELETE FROM ledger_expiry WHERE what = 'everything'"
    )))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let set_aside = SetAside::take(&mut tx).await?;
    let (sink, mut chunks) = mpsc::channel(2);
    let (spare, mut spares) = mpsc::channel(4);
    let encoder = tokio::task::spawn_blocking(move || encode(source, &sink, &mut spares));
    let written = write(&mut tx, &mut chunks, &spare, set_aside).await;
    drop(chunks);
    match written {
        Ok(true) => {
            tx.commit().await.map_err(db)?;
            Ok(())
        }
        // The encoder ended without `Commit`: its records ran out, or it failed.
        Ok(false) => {
            encoder.await.map_err(|e| StoreError::unavailable(format!("the load's encoder failed: {e}")))?;
            Err(load_abandoned())
        }
        // Dropping the transaction rolls it back; the encoder stops at its next chunk.
        Err(error) => Err(error),
    }
}
