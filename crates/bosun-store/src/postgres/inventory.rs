//! The inventory on PostgreSQL: rows move as the shared cells (`crate::inventory::row`),
//! a whole sync's records of one kind per statement as arrays (`UNNEST`), so a sync of
//! tens of thousands of records is a handful of round trips.

use bosun_core::inventory::{
    InventoryKind, InventoryRecord, RecordState, SourceStatus, SourceType, SyncCounts, SyncRecord, SyncScope, Usage,
};
use bosun_core::{Revision, SourceName, Timestamp};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::Query;
// Every SQL text built here is made of the constant table and column names in
// `crate::inventory::row`; values are always bound.
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder, Row};

use super::time;
use crate::error::{Result, StoreError};
use crate::inventory::row::{Cell, ColumnType, FIRST_SEEN, Table, from_row, table, to_row};
use crate::inventory::{InventoryFilter, StoredRecordState};
use crate::sql::{SlowLog, map_err, parse, unsigned};

/// Records per statement: bounds one statement's parameters (and its memory).
const CHUNK: usize = 10_000;

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One column of many rows, typed for binding as a PostgreSQL array.
enum ColumnArray {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Time(Vec<Option<DateTime<Utc>>>),
}

impl ColumnArray {
    fn new(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Text | ColumnType::Json => ColumnArray::Text(Vec::with_capacity(capacity)),
            ColumnType::Int => ColumnArray::Int(Vec::with_capacity(capacity)),
            ColumnType::Real => ColumnArray::Real(Vec::with_capacity(capacity)),
            ColumnType::Bool => ColumnArray::Bool(Vec::with_capacity(capacity)),
            ColumnType::Time => ColumnArray::Time(Vec::with_capacity(capacity)),
        }
    }

    fn push(&mut self, cell: Cell) {
        match (self, cell) {
            (ColumnArray::Text(v), Cell::Text(t)) => v.push(Some(t)),
            (ColumnArray::Int(v), Cell::Int(i)) => v.push(Some(i)),
            (ColumnArray::Real(v), Cell::Real(r)) => v.push(Some(r)),
            (ColumnArray::Bool(v), Cell::Bool(b)) => v.push(Some(b)),
            (ColumnArray::Time(v), Cell::Time(t)) => v.push(Some(time(t))),
            (ColumnArray::Text(v), _) => v.push(None),
            (ColumnArray::Int(v), _) => v.push(None),
            (ColumnArray::Real(v), _) => v.push(None),
            (ColumnArray::Bool(v), _) => v.push(None),
            (ColumnArray::Time(v), _) => v.push(None),
        }
    }

    fn bind(self, query: Query<'_, Postgres, PgArguments>) -> Query<'_, Postgres, PgArguments> {
        match self {
            ColumnArray::Text(v) => query.bind(v),
            ColumnArray::Int(v) => query.bind(v),
            ColumnArray::Real(v) => query.bind(v),
            ColumnArray::Bool(v) => query.bind(v),
            ColumnArray::Time(v) => query.bind(v),
        }
    }
}

fn array_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Json => "text[]",
        ColumnType::Int => "int8[]",
        ColumnType::Real => "float8[]",
        ColumnType::Bool => "bool[]",
        ColumnType::Time => "timestamptz[]",
    }
}

/// The records' rows as one array per column of `table`.
fn arrays(table: &Table, records: &[InventoryRecord]) -> Vec<ColumnArray> {
    let mut arrays: Vec<ColumnArray> = table.all_columns().map(|c| ColumnArray::new(c.ty, records.len())).collect();
    for record in records {
        for (array, cell) in arrays.iter_mut().zip(to_row(record)) {
            array.push(cell);
        }
    }
    arrays
}

/// `UNNEST($1::text[], ...) AS u (source, key, ...)` over every column of `table`.
fn unnest(table: &Table) -> String {
    let arrays: Vec<String> =
        table.all_columns().enumerate().map(|(i, c)| format!("${}::{}", i + 1, array_type(c.ty))).collect();
    let names: Vec<&str> = table.all_columns().map(|c| c.name).collect();
    format!("UNNEST({}) AS u ({})", arrays.join(", "), names.join(", "))
}

/// A column as read from `u` for writing: JSON text becomes JSON.
fn from_u(name: &str, ty: ColumnType) -> String {
    if ty == ColumnType::Json { format!("u.{name}::jsonb") } else { format!("u.{name}") }
}

/// The columns of `table` as selected for decoding (JSON read back as text).
pub(super) fn select_list(table: &Table) -> String {
    table
        .all_columns()
        .map(|c| if c.ty == ColumnType::Json { format!("{}::text", c.name) } else { c.name.to_owned() })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn decode(kind: InventoryKind, row: &PgRow) -> Result<InventoryRecord> {
    let cells = table(kind)
        .all_columns()
        .enumerate()
        .map(|(i, c)| {
            Ok(match c.ty {
                ColumnType::Text | ColumnType::Json => {
                    row.try_get::<Option<String>, _>(i)?.map_or(Cell::Null, Cell::Text)
                }
                ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map_or(Cell::Null, Cell::Int),
                ColumnType::Real => row.try_get::<Option<f64>, _>(i)?.map_or(Cell::Null, Cell::Real),
                ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map_or(Cell::Null, Cell::Bool),
                ColumnType::Time => {
                    row.try_get::<Option<DateTime<Utc>>, _>(i)?.map_or(Cell::Null, |t| Cell::Time(t.into()))
                }
            })
        })
        .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
        .map_err(|e| map_err(e, None))?;
    from_row(kind, cells)
}

async fn with_hosts(
    conn: &mut PgConnection,
    slow: SlowLog,
    mut records: Vec<InventoryRecord>,
) -> Result<Vec<InventoryRecord>> {
    let storage: Vec<(String, String)> = records
        .iter()
        .filter(|r| matches!(r.state, RecordState::Storage(_)))
        .map(|r| (r.source.to_string(), r.key.clone()))
        .collect();
    if storage.is_empty() {
        return Ok(records);
    }
    let (sources, keys): (Vec<String>, Vec<String>) = storage.into_iter().unzip();
    let links: Vec<(String, String, String)> = slow
        .run(
            "host_storage.list",
            sqlx::query_as(
                "SELECT h.source, h.storage_key, h.host_key FROM host_storage h \
                 JOIN UNNEST($1::text[], $2::text[]) AS u (source, key) \
                 ON h.source = u.source AND h.storage_key = u.key ORDER BY h.host_key",
            )
            .bind(sources)
            .bind(keys)
            .fetch_all(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    for record in &mut records {
        if let RecordState::Storage(storage) = &mut record.state {
            storage.hosts = links
                .iter()
                .filter(|(s, k, _)| s == record.source.as_str() && *k == record.key)
                .map(|(_, _, h)| h.clone())
                .collect();
        }
    }
    Ok(records)
}

async fn write_hosts(conn: &mut PgConnection, slow: SlowLog, records: &[InventoryRecord]) -> Result<()> {
    let mut sources = Vec::new();
    let mut keys = Vec::new();
    let (mut link_sources, mut link_keys, mut link_hosts) = (Vec::new(), Vec::new(), Vec::new());
    for record in records {
        let RecordState::Storage(storage) = &record.state else { continue };
        sources.push(record.source.to_string());
        keys.push(record.key.clone());
        for host in &storage.hosts {
            link_sources.push(record.source.to_string());
            link_keys.push(record.key.clone());
            link_hosts.push(host.clone());
        }
    }
    if sources.is_empty() {
        return Ok(());
    }
    slow.run(
        "host_storage.delete",
        sqlx::query(
            "DELETE FROM host_storage h USING UNNEST($1::text[], $2::text[]) AS u (source, key) \
             WHERE h.source = u.source AND h.storage_key = u.key",
        )
        .bind(sources)
        .bind(keys)
        .execute(&mut *conn),
    )
    .await
    .map_err(|e| map_err(e, None))?;
    slow.run(
        "host_storage.insert",
        sqlx::query(
            "INSERT INTO host_storage (source, storage_key, host_key) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])",
        )
        .bind(link_sources)
        .bind(link_keys)
        .bind(link_hosts)
        .execute(&mut *conn),
    )
    .await
    .map_err(|e| map_err(e, None))?;
    Ok(())
}

pub(super) async fn insert(
    conn: &mut PgConnection,
    slow: SlowLog,
    kind: InventoryKind,
    records: &[InventoryRecord],
) -> Result<()> {
    let table = table(kind);
    let names: Vec<&str> = table.all_columns().map(|c| c.name).collect();
    let values: Vec<String> = table.all_columns().map(|c| from_u(c.name, c.ty)).collect();
    let sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM {}",
        table.name,
        names.join(", "),
        values.join(", "),
        unnest(table)
    );
    for chunk in records.chunks(CHUNK) {
        let query = arrays(table, chunk).into_iter().fold(sqlx::query(AssertSqlSafe(sql.as_str())), |q, a| a.bind(q));
        slow.run("inventory.insert", query.execute(&mut *conn)).await.map_err(|e| map_err(e, None))?;
        write_hosts(conn, slow, chunk).await?;
    }
    Ok(())
}

pub(super) async fn update(
    conn: &mut PgConnection,
    slow: SlowLog,
    kind: InventoryKind,
    records: &[InventoryRecord],
) -> Result<()> {
    let table = table(kind);
    let set: Vec<String> = table
        .all_columns()
        .enumerate()
        .filter(|(i, _)| *i >= 2 && *i != FIRST_SEEN)
        .map(|(_, c)| format!("{} = {}", c.name, from_u(c.name, c.ty)))
        .collect();
    let sql = format!(
        "UPDATE {} t SET {} FROM {} WHERE t.source = u.source AND t.key = u.key",
        table.name,
        set.join(", "),
        unnest(table)
    );
    for chunk in records.chunks(CHUNK) {
        let query = arrays(table, chunk).into_iter().fold(sqlx::query(AssertSqlSafe(sql.as_str())), |q, a| a.bind(q));
        let done = slow.run("inventory.update", query.execute(&mut *conn)).await.map_err(|e| map_err(e, None))?;
        if done.rows_affected() != chunk.len() as u64 {
            return Err(StoreError::corrupt(table.name, "a record vanished during the sync"));
        }
        write_hosts(conn, slow, chunk).await?;
    }
    Ok(())
}

pub(super) async fn refresh_usage(
    conn: &mut PgConnection,
    slow: SlowLog,
    kind: InventoryKind,
    source: &SourceName,
    usage: &[(String, Usage)],
    at: Timestamp,
) -> Result<()> {
    let sql = format!(
        "UPDATE {} t SET cpu = u.cpu, memory_used = u.memory_used, disk_used = u.disk_used, net_in = u.net_in, \
         net_out = u.net_out, uptime_s = u.uptime_s, usage_at = $9 \
         FROM UNNEST($2::text[], $3::float8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[]) \
         AS u (key, cpu, memory_used, disk_used, net_in, net_out, uptime_s) \
         WHERE t.source = $1 AND t.key = u.key",
        table(kind).name
    );
    for chunk in usage.chunks(CHUNK) {
        let column = |f: fn(&Usage) -> u64| chunk.iter().map(|(_, u)| int(f(u))).collect::<Vec<i64>>();
        let query = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(source.as_str())
            .bind(chunk.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|(_, u)| u.cpu).collect::<Vec<f64>>())
            .bind(column(|u| u.memory_used))
            .bind(column(|u| u.disk_used))
            .bind(column(|u| u.net_in))
            .bind(column(|u| u.net_out))
            .bind(column(|u| u.uptime_s))
            .bind(time(at));
        slow.run("inventory.refresh_usage", query.execute(&mut *conn)).await.map_err(|e| map_err(e, None))?;
    }
    Ok(())
}

pub(super) async fn states(
    conn: &mut PgConnection,
    slow: SlowLog,
    kind: InventoryKind,
    source: &SourceName,
    scope: &SyncScope,
) -> Result<Vec<StoredRecordState>> {
    let sql = format!(
        "SELECT key, digest, gone_at IS NOT NULL, usage_at, revision FROM {} WHERE source = $1 AND scope = $2",
        table(kind).name
    );
    let rows: Vec<(String, String, bool, DateTime<Utc>, i64)> = slow
        .run(
            "inventory.states",
            sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(source.as_str())
                .bind(scope.as_stored())
                .fetch_all(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter()
        .map(|(key, digest, gone, usage_at, revision)| {
            Ok(StoredRecordState {
                key,
                digest,
                gone,
                usage_at: usage_at.into(),
                revision: Revision::new(unsigned("revision", revision)?)
                    .ok_or_else(|| StoreError::corrupt("revision", "is 0"))?,
            })
        })
        .collect()
}

pub(super) async fn record(
    conn: &mut PgConnection,
    slow: SlowLog,
    kind: InventoryKind,
    source: &SourceName,
    key: &str,
) -> Result<Option<InventoryRecord>> {
    let table = table(kind);
    let sql = format!("SELECT {} FROM {} WHERE source = $1 AND key = $2", select_list(table), table.name);
    let row = slow
        .run(
            "inventory.get",
            sqlx::query(AssertSqlSafe(sql.as_str())).bind(source.as_str()).bind(key).fetch_optional(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    let records = row.iter().map(|r| decode(kind, r)).collect::<Result<Vec<_>>>()?;
    Ok(with_hosts(conn, slow, records).await?.pop())
}

/// The filter's conditions as ` AND ...` clauses, their values bound.
fn push_filter(q: &mut QueryBuilder<Postgres>, filter: &InventoryFilter) -> Result<()> {
    let table = table(filter.kind);
    if let Some(source) = &filter.source {
        q.push(" AND source = ").push_bind(source.to_string());
    }
    let none = |what: &str| StoreError::invalid(what, format_args!("{} records have no {what}", filter.kind));
    if let Some(host) = &filter.host {
        let column = table.host_column.ok_or_else(|| none("host"))?;
        q.push(format!(" AND {column} = ")).push_bind(host.clone());
    }
    if let Some(node) = &filter.node {
        let column = table.node_column.ok_or_else(|| none("node"))?;
        q.push(format!(" AND {column} = ")).push_bind(node.to_string());
    }
    if let Some(status) = &filter.status {
        let column = table.status_column.ok_or_else(|| none("status"))?;
        q.push(format!(" AND {column} = ")).push_bind(status.clone());
    }
    if let Some(name) = &filter.name {
        q.push(format!(" AND {} = ", table.name_column)).push_bind(name.clone());
    }
    if let Some(selector) = &filter.labels {
        let column = table.labels_column.ok_or_else(|| none("labels"))?;
        if selector.terms().next().is_some() {
            q.push(format!(" AND {column} @> ")).push_bind(Json(selector.as_labels().clone()));
        }
        for key in selector.required_keys() {
            q.push(format!(" AND jsonb_exists({column}, ")).push_bind(key.to_owned()).push(")");
        }
    }
    match filter.gone {
        Some(true) => {
            q.push(" AND gone_at IS NOT NULL");
        }
        Some(false) => {
            q.push(" AND gone_at IS NULL");
        }
        None => {}
    }
    Ok(())
}

pub(super) async fn list(
    conn: &mut PgConnection,
    slow: SlowLog,
    filter: &InventoryFilter,
    after: Option<(SourceName, String)>,
    limit: i64,
) -> Result<Vec<InventoryRecord>> {
    let table = table(filter.kind);
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT {} FROM {} WHERE TRUE", select_list(table), table.name));
    if let Some((source, key)) = after {
        q.push(" AND (source, key) > (").push_bind(source.to_string()).push(", ").push_bind(key).push(")");
    }
    push_filter(&mut q, filter)?;
    q.push(" ORDER BY source, key LIMIT ").push_bind(limit);
    let rows = slow.run("inventory.list", q.build().fetch_all(&mut *conn)).await.map_err(|e| map_err(e, None))?;
    let records = rows.iter().map(|r| decode(filter.kind, r)).collect::<Result<Vec<_>>>()?;
    with_hosts(conn, slow, records).await
}

pub(super) async fn count(conn: &mut PgConnection, slow: SlowLog, filter: &InventoryFilter) -> Result<u64> {
    let mut q = QueryBuilder::<Postgres>::new(format!("SELECT COUNT(*) FROM {} WHERE TRUE", table(filter.kind).name));
    push_filter(&mut q, filter)?;
    let row = slow.run("inventory.count", q.build().fetch_one(&mut *conn)).await.map_err(|e| map_err(e, None))?;
    let count: i64 = row.try_get(0).map_err(|e| map_err(e, None))?;
    unsigned("count", count)
}

pub(super) const SOURCE_COLUMNS: &str =
    "source, scope, type, last_sync_at, last_success_at, error, counts::text, syncs";

pub(super) type SourceRow = (String, String, String, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>, String, i64);

pub(super) fn source_status(row: SourceRow) -> Result<SourceStatus> {
    let (source, scope, source_type, last_sync_at, last_success_at, error, counts, syncs) = row;
    Ok(SourceStatus {
        source: parse("inventory_sources.source", &source)?,
        scope: SyncScope::from_stored(&scope).map_err(|e| StoreError::corrupt("inventory_sources.scope", e))?,
        source_type: parse::<SourceType>("inventory_sources.type", &source_type)?,
        last_sync_at: last_sync_at.into(),
        last_success_at: last_success_at.map(Into::into),
        error,
        counts: serde_json::from_str(&counts).map_err(|e| StoreError::corrupt("inventory_sources.counts", e))?,
        syncs: unsigned("inventory_sources.syncs", syncs)?,
    })
}

/// A source scope's status, its row locked for the rest of the transaction (two syncs of
/// one scope take turns).
pub(super) async fn source(
    conn: &mut PgConnection,
    slow: SlowLog,
    source: &SourceName,
    scope: &SyncScope,
) -> Result<Option<SourceStatus>> {
    let sql = format!("SELECT {SOURCE_COLUMNS} FROM inventory_sources WHERE source = $1 AND scope = $2 FOR UPDATE");
    let row: Option<SourceRow> = slow
        .run(
            "inventory_sources.get",
            sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(source.as_str())
                .bind(scope.as_stored())
                .fetch_optional(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    row.map(source_status).transpose()
}

/// The statuses of the scopes `records` belong to (see `crate::inventory::scopes_of`), in
/// one query.
pub(super) async fn sources_of(
    conn: &mut PgConnection,
    slow: SlowLog,
    records: &[InventoryRecord],
) -> Result<Vec<SourceStatus>> {
    let scopes = crate::inventory::scopes_of(records);
    if scopes.is_empty() {
        return Ok(Vec::new());
    }
    let (names, stored): (Vec<&str>, Vec<&str>) =
        scopes.iter().map(|(s, scope)| (s.as_str(), scope.as_stored())).unzip();
    let rows: Vec<SourceRow> = slow
        .run(
            "inventory_sources.of_page",
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {SOURCE_COLUMNS} FROM inventory_sources \
                 WHERE (source, scope) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))"
            )))
            .bind(names)
            .bind(stored)
            .fetch_all(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(source_status).collect()
}

pub(super) async fn sources(conn: &mut PgConnection, slow: SlowLog) -> Result<Vec<SourceStatus>> {
    let rows: Vec<SourceRow> = slow
        .run(
            "inventory_sources.list",
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {SOURCE_COLUMNS} FROM inventory_sources ORDER BY source, scope"
            )))
            .fetch_all(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(source_status).collect()
}

pub(super) async fn put_source(conn: &mut PgConnection, slow: SlowLog, status: &SourceStatus) -> Result<()> {
    let counts = serde_json::to_string(&status.counts).map_err(|e| StoreError::invalid("counts", e))?;
    slow.run(
        "inventory_sources.put",
        sqlx::query(
            "INSERT INTO inventory_sources (source, scope, type, last_sync_at, last_success_at, error, counts, syncs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) \
             ON CONFLICT (source, scope) DO UPDATE SET type = excluded.type, last_sync_at = excluded.last_sync_at, \
             last_success_at = excluded.last_success_at, error = excluded.error, counts = excluded.counts, \
             syncs = excluded.syncs",
        )
        .bind(status.source.as_str())
        .bind(status.scope.as_stored())
        .bind(status.source_type.as_str())
        .bind(time(status.last_sync_at))
        .bind(status.last_success_at.map(time))
        .bind(status.error.as_deref())
        .bind(counts)
        .bind(int(status.syncs))
        .execute(&mut *conn),
    )
    .await
    .map_err(|e| map_err(e, None))?;
    Ok(())
}

pub(super) async fn insert_sync(conn: &mut PgConnection, slow: SlowLog, sync: &SyncRecord) -> Result<u64> {
    let c = &sync.counts;
    let id: i64 = slow
        .run(
            "inventory_syncs.insert",
            sqlx::query_scalar(
                "INSERT INTO inventory_syncs (source, scope, started_at, finished_at, created, updated, back, gone, \
                 unchanged, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(sync.source.as_str())
            .bind(sync.scope.as_stored())
            .bind(time(sync.started_at))
            .bind(time(sync.finished_at))
            .bind(int(c.created))
            .bind(int(c.updated))
            .bind(int(c.back))
            .bind(int(c.gone))
            .bind(int(c.unchanged))
            .bind(sync.error.as_deref())
            .fetch_one(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    unsigned("inventory_syncs.id", id)
}

pub(super) type SyncRow = (i64, String, String, DateTime<Utc>, DateTime<Utc>, i64, i64, i64, i64, i64, Option<String>);

pub(super) async fn syncs(
    conn: &mut PgConnection,
    slow: SlowLog,
    source: Option<&SourceName>,
    limit: i64,
) -> Result<Vec<SyncRecord>> {
    let rows: Vec<SyncRow> = slow
        .run(
            "inventory_syncs.list",
            sqlx::query_as(
                "SELECT id, source, scope, started_at, finished_at, created, updated, back, gone, unchanged, error \
                 FROM inventory_syncs WHERE ($1::text IS NULL OR source = $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(source.map(SourceName::as_str))
            .bind(limit)
            .fetch_all(&mut *conn),
        )
        .await
        .map_err(|e| map_err(e, None))?;
    rows.into_iter().map(sync_record).collect()
}

/// A sync as read: id, source, scope, started_at, finished_at, created, updated, back,
/// gone, unchanged, error.
pub(super) fn sync_record(row: SyncRow) -> Result<SyncRecord> {
    let (id, source, scope, started_at, finished_at, created, updated, back, gone, unchanged, error) = row;
    let count = |v: i64| unsigned("inventory_syncs.count", v);
    Ok(SyncRecord {
        id: unsigned("inventory_syncs.id", id)?,
        source: parse("inventory_syncs.source", &source)?,
        scope: SyncScope::from_stored(&scope).map_err(|e| StoreError::corrupt("inventory_syncs.scope", e))?,
        started_at: started_at.into(),
        finished_at: finished_at.into(),
        counts: SyncCounts {
            created: count(created)?,
            updated: count(updated)?,
            back: count(back)?,
            gone: count(gone)?,
            unchanged: count(unchanged)?,
        },
        error,
    })
}

/// `live_revisions`' part for the inventory (see `maintenance.rs`).
pub(super) const LIVE_REVISIONS: &str = "SELECT 'host', source || '/' || key, revision FROM hosts UNION ALL \
     SELECT 'vm', source || '/' || key, revision FROM vms UNION ALL \
     SELECT 'container', source || '/' || key, revision FROM containers UNION ALL \
     SELECT 'storage', source || '/' || key, revision FROM storage UNION ALL \
     SELECT 'workload', source || '/' || key, revision FROM workloads UNION ALL \
     SELECT 'service', source || '/' || key, revision FROM services";
