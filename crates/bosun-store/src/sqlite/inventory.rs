//! The inventory on SQLite: rows move as the shared cells (`crate::inventory::row`), one
//! prepared statement per table, executed once per record inside the writer's
//! transaction.

use bosun_core::inventory::{
    InventoryKind, InventoryRecord, RecordState, SourceStatus, SourceType, SyncCounts, SyncRecord, SyncScope, Usage,
};
use bosun_core::{SourceName, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::micros;
use super::read::{collect, one, text};
use crate::error::{Result, StoreError};
use crate::inventory::row::{Cell, ColumnType, FIRST_SEEN, Table, from_row, table, to_row};
use crate::inventory::{InventoryFilter, StoredRecordState};
use crate::sql::{label_path, parse, unsigned};

fn value(cell: Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Text(t) => Value::Text(t),
        Cell::Int(i) => Value::Integer(i),
        Cell::Real(r) => Value::Real(r),
        Cell::Bool(b) => Value::Integer(i64::from(b)),
        Cell::Time(t) => Value::Integer(micros(t)),
    }
}

fn cell(row: &Row<'_>, index: usize, ty: ColumnType) -> rusqlite::Result<Cell> {
    Ok(match row.get::<_, Value>(index)? {
        Value::Null => Cell::Null,
        Value::Integer(i) if ty == ColumnType::Time => Cell::Time(Timestamp::from_unix_micros(i)),
        Value::Integer(i) => Cell::Int(i),
        Value::Real(r) => Cell::Real(r),
        Value::Text(t) => Cell::Text(t),
        Value::Blob(_) => Cell::Null,
    })
}

pub(super) fn column_list(table: &Table) -> String {
    table.all_columns().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

pub(super) fn decode(kind: InventoryKind, row: &Row<'_>) -> Result<InventoryRecord> {
    let cells =
        table(kind).all_columns().enumerate().map(|(i, c)| cell(row, i, c.ty)).collect::<rusqlite::Result<Vec<_>>>()?;
    from_row(kind, cells)
}

/// Fills in which hosts see each storage record.
fn with_hosts(conn: &Connection, mut records: Vec<InventoryRecord>) -> Result<Vec<InventoryRecord>> {
    for record in &mut records {
        if let RecordState::Storage(storage) = &mut record.state {
            storage.hosts = storage_hosts(conn, &record.source, &record.key)?;
        }
    }
    Ok(records)
}

/// The hosts that see the storage `key` of `source`, in key order.
pub(super) fn storage_hosts(conn: &Connection, source: &SourceName, key: &str) -> Result<Vec<String>> {
    let mut select = conn
        .prepare_cached("SELECT host_key FROM host_storage WHERE source = ?1 AND storage_key = ?2 ORDER BY host_key")?;
    let hosts = select.query_map(params![source.as_str(), key], |row| row.get::<_, String>(0))?;
    Ok(hosts.collect::<rusqlite::Result<_>>()?)
}

fn write_hosts(conn: &Connection, record: &InventoryRecord) -> Result<()> {
    let RecordState::Storage(storage) = &record.state else { return Ok(()) };
    conn.prepare_cached("DELETE FROM host_storage WHERE source = ?1 AND storage_key = ?2")?
        .execute(params![record.source.as_str(), record.key])?;
    let mut insert =
        conn.prepare_cached("INSERT INTO host_storage (source, storage_key, host_key) VALUES (?1, ?2, ?3)")?;
    for host in &storage.hosts {
        insert.execute(params![record.source.as_str(), record.key, host])?;
    }
    Ok(())
}

pub(super) fn insert(conn: &Connection, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let table = table(kind);
    let count = table.all_columns().count();
    let placeholders: Vec<String> = (1..=count).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, column_list(table), placeholders.join(", "));
    let mut statement = conn.prepare_cached(&sql)?;
    for record in records {
        statement.execute(params_from_iter(to_row(record).into_iter().map(value)))?;
        write_hosts(conn, record)?;
    }
    Ok(())
}

pub(super) fn update(conn: &Connection, kind: InventoryKind, records: &[InventoryRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let table = table(kind);
    // Everything but the key (source, key) and first_seen; the key binds last.
    let set: Vec<String> = table
        .all_columns()
        .enumerate()
        .filter(|(i, _)| *i >= 2 && *i != FIRST_SEEN)
        .map(|(i, c)| format!("{} = ?{}", c.name, i + 1))
        .collect();
    let sql = format!("UPDATE {} SET {} WHERE source = ?1 AND key = ?2", table.name, set.join(", "));
    let mut statement = conn.prepare_cached(&sql)?;
    for record in records {
        let changed = statement.execute(params_from_iter(to_row(record).into_iter().map(value)))?;
        if changed != 1 {
            return Err(StoreError::corrupt(table.name, format_args!("{} vanished during the sync", record.id())));
        }
        write_hosts(conn, record)?;
    }
    Ok(())
}

pub(super) fn refresh_usage(
    conn: &Connection,
    kind: InventoryKind,
    source: &SourceName,
    usage: &[(String, Usage)],
    at: Timestamp,
) -> Result<()> {
    let sql = format!(
        "UPDATE {} SET cpu = ?3, memory_used = ?4, disk_used = ?5, net_in = ?6, net_out = ?7, uptime_s = ?8, \
         usage_at = ?9 WHERE source = ?1 AND key = ?2",
        table(kind).name
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (key, u) in usage {
        statement.execute(params![
            source.as_str(),
            key,
            u.cpu,
            int(u.memory_used),
            int(u.disk_used),
            int(u.net_in),
            int(u.net_out),
            int(u.uptime_s),
            micros(at)
        ])?;
    }
    Ok(())
}

pub(super) fn states(
    conn: &Connection,
    kind: InventoryKind,
    source: &SourceName,
    scope: &SyncScope,
) -> Result<Vec<StoredRecordState>> {
    let sql = format!(
        "SELECT key, digest, gone_at IS NOT NULL, usage_at, revision FROM {} WHERE source = ?1 AND scope = ?2",
        table(kind).name
    );
    collect(conn, &sql, &[text(source.as_str()), text(scope.as_stored())], |row| {
        Ok(StoredRecordState {
            key: row.get(0)?,
            digest: row.get(1)?,
            gone: row.get(2)?,
            usage_at: Timestamp::from_unix_micros(row.get(3)?),
            revision: bosun_core::Revision::new(unsigned("revision", row.get(4)?)?)
                .ok_or_else(|| StoreError::corrupt("revision", "is 0"))?,
        })
    })
}

pub(super) fn record(
    conn: &Connection,
    kind: InventoryKind,
    source: &SourceName,
    key: &str,
) -> Result<Option<InventoryRecord>> {
    let table = table(kind);
    let sql = format!("SELECT {} FROM {} WHERE source = ?1 AND key = ?2", column_list(table), table.name);
    let found = one(conn, &sql, &[text(source.as_str()), text(key)], |row| decode(kind, row))?;
    Ok(with_hosts(conn, found.into_iter().collect())?.pop())
}

/// The filter's conditions as ` AND ...` clauses, their values appended to `params`.
fn push_filter(sql: &mut String, params: &mut Vec<Value>, filter: &InventoryFilter) -> Result<()> {
    fn bind(sql: &mut String, params: &mut Vec<Value>, clause: &str, value: Value) {
        params.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", params.len()));
    }
    let table = table(filter.kind);
    if let Some(source) = &filter.source {
        bind(sql, params, "source =", text(source.as_str()));
    }
    let none = |what: &str| StoreError::invalid(what, format_args!("{} records have no {what}", filter.kind));
    if let Some(host) = &filter.host {
        let column = table.host_column.ok_or_else(|| none("host"))?;
        bind(sql, params, &format!("{column} ="), text(host.as_str()));
    }
    if let Some(node) = &filter.node {
        let column = table.node_column.ok_or_else(|| none("node"))?;
        bind(sql, params, &format!("{column} ="), text(node.as_str()));
    }
    if let Some(status) = &filter.status {
        let column = table.status_column.ok_or_else(|| none("status"))?;
        bind(sql, params, &format!("{column} ="), text(status.as_str()));
    }
    if let Some(name) = &filter.name {
        bind(sql, params, &format!("{} =", table.name_column), text(name.as_str()));
    }
    if let Some(selector) = &filter.labels {
        let column = table.labels_column.ok_or_else(|| none("labels"))?;
        for (key, value) in selector.terms() {
            params.push(text(label_path(key)));
            params.push(text(value));
            sql.push_str(&format!(" AND json_extract({column}, ?{}) = ?{}", params.len() - 1, params.len()));
        }
        for key in selector.required_keys() {
            params.push(text(label_path(key)));
            sql.push_str(&format!(" AND json_type({column}, ?{}) IS NOT NULL", params.len()));
        }
    }
    match filter.gone {
        Some(true) => sql.push_str(" AND gone_at IS NOT NULL"),
        Some(false) => sql.push_str(" AND gone_at IS NULL"),
        None => {}
    }
    Ok(())
}

pub(super) fn list(
    conn: &Connection,
    filter: &InventoryFilter,
    after: Option<(SourceName, String)>,
    limit: i64,
) -> Result<Vec<InventoryRecord>> {
    let table = table(filter.kind);
    let mut sql = format!("SELECT {} FROM {} WHERE 1 = 1", column_list(table), table.name);
    let mut params = Vec::new();
    if let Some((source, key)) = after {
        sql.push_str(" AND (source, key) > (?1, ?2)");
        params.extend([text(source.as_str()), text(key)]);
    }
    push_filter(&mut sql, &mut params, filter)?;
    params.push(Value::Integer(limit));
    sql.push_str(&format!(" ORDER BY source, key LIMIT ?{}", params.len()));
    let rows = collect(conn, &sql, &params, |row| decode(filter.kind, row))?;
    with_hosts(conn, rows)
}

pub(super) fn count(conn: &Connection, filter: &InventoryFilter) -> Result<u64> {
    let table = table(filter.kind);
    let mut sql = format!("SELECT COUNT(*) FROM {} WHERE 1 = 1", table.name);
    let mut params = Vec::new();
    push_filter(&mut sql, &mut params, filter)?;
    let count = one(conn, &sql, &params, |row| Ok(row.get::<_, i64>(0)?))?.unwrap_or(0);
    unsigned("count", count)
}

pub(super) const SOURCE_COLUMNS: &str = "source, scope, type, last_sync_at, last_success_at, error, counts, syncs";

pub(super) fn source_row(row: &Row<'_>) -> Result<SourceStatus> {
    let scope: String = row.get(1)?;
    let counts: String = row.get(6)?;
    Ok(SourceStatus {
        source: parse("inventory_sources.source", &row.get::<_, String>(0)?)?,
        scope: SyncScope::from_stored(&scope).map_err(|e| StoreError::corrupt("inventory_sources.scope", e))?,
        source_type: parse::<SourceType>("inventory_sources.type", &row.get::<_, String>(2)?)?,
        last_sync_at: Timestamp::from_unix_micros(row.get(3)?),
        last_success_at: row.get::<_, Option<i64>>(4)?.map(Timestamp::from_unix_micros),
        error: row.get(5)?,
        counts: serde_json::from_str::<SyncCounts>(&counts)
            .map_err(|e| StoreError::corrupt("inventory_sources.counts", e))?,
        syncs: unsigned("inventory_sources.syncs", row.get(7)?)?,
    })
}

pub(super) fn source(conn: &Connection, source: &SourceName, scope: &SyncScope) -> Result<Option<SourceStatus>> {
    one(
        conn,
        &format!("SELECT {SOURCE_COLUMNS} FROM inventory_sources WHERE source = ?1 AND scope = ?2"),
        &[text(source.as_str()), text(scope.as_stored())],
        source_row,
    )
}

/// The statuses of the scopes `records` belong to (see `crate::inventory::scopes_of`).
pub(super) fn sources_of(conn: &Connection, records: &[InventoryRecord]) -> Result<Vec<SourceStatus>> {
    let mut statuses = Vec::new();
    for (source_name, scope) in crate::inventory::scopes_of(records) {
        statuses.extend(source(conn, &source_name, &scope)?);
    }
    Ok(statuses)
}

pub(super) fn sources(conn: &Connection) -> Result<Vec<SourceStatus>> {
    collect(conn, &format!("SELECT {SOURCE_COLUMNS} FROM inventory_sources ORDER BY source, scope"), &[], source_row)
}

/// A sync's write of its source's status: a scope's row is replaced.
const UPSERT_SOURCE: &str = "INSERT INTO inventory_sources (source, scope, type, last_sync_at, last_success_at, error, \
     counts, syncs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (source, scope) DO UPDATE SET type = excluded.type, last_sync_at = excluded.last_sync_at, \
     last_success_at = excluded.last_success_at, error = excluded.error, counts = excluded.counts, \
     syncs = excluded.syncs";

/// A load's write of a source's status: a scope twice is refused.
pub(super) const INSERT_SOURCE: &str = "INSERT INTO inventory_sources (source, scope, type, last_sync_at, \
     last_success_at, error, counts, syncs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

pub(super) fn put_source(conn: &Connection, status: &SourceStatus) -> Result<()> {
    write_source(conn, UPSERT_SOURCE, status)
}

/// Writes `status` with `sql`, [`UPSERT_SOURCE`] or [`INSERT_SOURCE`].
pub(super) fn write_source(conn: &Connection, sql: &str, status: &SourceStatus) -> Result<()> {
    let counts = serde_json::to_string(&status.counts).map_err(|e| StoreError::invalid("counts", e))?;
    conn.prepare_cached(sql)?.execute(params![
        status.source.as_str(),
        status.scope.as_stored(),
        status.source_type.as_str(),
        micros(status.last_sync_at),
        status.last_success_at.map(micros),
        status.error,
        counts,
        i64::try_from(status.syncs).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

pub(super) const SYNC_COLUMNS: &str =
    "id, source, scope, started_at, finished_at, created, updated, back, gone, unchanged, error";

/// A sync's columns after its id, in [`SYNC_COLUMNS`] order.
fn sync_values(sync: &SyncRecord) -> [Value; 10] {
    let c = &sync.counts;
    let int = |v: u64| Value::Integer(i64::try_from(v).unwrap_or(i64::MAX));
    [
        text(sync.source.as_str()),
        text(sync.scope.as_stored()),
        Value::Integer(micros(sync.started_at)),
        Value::Integer(micros(sync.finished_at)),
        int(c.created),
        int(c.updated),
        int(c.back),
        int(c.gone),
        int(c.unchanged),
        sync.error.clone().map_or(Value::Null, Value::Text),
    ]
}

/// Records a sync under the next id, which it returns.
pub(super) fn insert_sync(conn: &Connection, sync: &SyncRecord) -> Result<u64> {
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO inventory_syncs (source, scope, started_at, finished_at, created, updated, back, gone, \
             unchanged, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
        )?
        .query_row(params_from_iter(sync_values(sync)), |row| row.get(0))?;
    unsigned("inventory_syncs.id", id)
}

/// Writes a sync under its own id, as a load does.
pub(super) fn load_sync(conn: &Connection, sync: &SyncRecord) -> Result<()> {
    let id = Value::Integer(i64::try_from(sync.id).unwrap_or(i64::MAX));
    conn.prepare_cached(&format!(
        "INSERT INTO inventory_syncs ({SYNC_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params_from_iter(std::iter::once(id).chain(sync_values(sync))))?;
    Ok(())
}

/// A row of [`SYNC_COLUMNS`].
pub(super) fn sync_row(row: &Row<'_>) -> Result<SyncRecord> {
    let scope: String = row.get(2)?;
    let count = |i: usize| -> Result<u64> { unsigned("inventory_syncs.count", row.get(i)?) };
    Ok(SyncRecord {
        id: unsigned("inventory_syncs.id", row.get(0)?)?,
        source: parse("inventory_syncs.source", &row.get::<_, String>(1)?)?,
        scope: SyncScope::from_stored(&scope).map_err(|e| StoreError::corrupt("inventory_syncs.scope", e))?,
        started_at: Timestamp::from_unix_micros(row.get(3)?),
        finished_at: Timestamp::from_unix_micros(row.get(4)?),
        counts: SyncCounts {
            created: count(5)?,
            updated: count(6)?,
            back: count(7)?,
            gone: count(8)?,
            unchanged: count(9)?,
        },
        error: row.get(10)?,
    })
}

pub(super) fn syncs(conn: &Connection, source: Option<&SourceName>, limit: i64) -> Result<Vec<SyncRecord>> {
    let (filter, mut params) = match source {
        Some(source) => (" WHERE source = ?1", vec![text(source.as_str())]),
        None => ("", Vec::new()),
    };
    params.push(Value::Integer(limit));
    let sql = format!("SELECT {SYNC_COLUMNS} FROM inventory_syncs{filter} ORDER BY id DESC LIMIT ?{}", params.len());
    collect(conn, &sql, &params, sync_row)
}

/// `live_revisions`' part for the inventory (see `maintenance.rs`).
pub(super) const LIVE_REVISIONS: &str = "SELECT 'host', source || '/' || key, revision FROM hosts UNION ALL \
     SELECT 'vm', source || '/' || key, revision FROM vms UNION ALL \
     SELECT 'container', source || '/' || key, revision FROM containers UNION ALL \
     SELECT 'storage', source || '/' || key, revision FROM storage UNION ALL \
     SELECT 'workload', source || '/' || key, revision FROM workloads UNION ALL \
     SELECT 'service', source || '/' || key, revision FROM services";
