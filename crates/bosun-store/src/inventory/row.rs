//! Inventory records as table rows, written once for every backend: which table and
//! columns each kind has, and a record as a row of typed cells (and back). A backend only
//! moves cells between its driver and these functions.

use bosun_core::inventory::{
    Container, ContainerRuntime, Host, InventoryKind, InventoryRecord, PodRef, RecordState, Service, Storage, Usage,
    Vm, Workload,
};
use bosun_core::{NodeId, Revision, SourceName, Timestamp};

use crate::error::{Result, StoreError};

/// How a column is typed in every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Text,
    Int,
    Real,
    Bool,
    Time,
    /// JSON text (a JSON column on PostgreSQL).
    Json,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column { name, ty }
}

use ColumnType::{Bool, Int, Json, Real, Text, Time};

/// One value of a row. `Null` stands for any column's SQL NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Text(String),
    Int(i64),
    Real(f64),
    Bool(bool),
    Time(Timestamp),
}

/// The columns every inventory table starts with, in this order.
pub(crate) const COMMON: &[Column] = &[
    col("source", Text),
    col("key", Text),
    col("scope", Text),
    col("digest", Text),
    col("cpu", Real),
    col("memory_used", Int),
    col("disk_used", Int),
    col("net_in", Int),
    col("net_out", Int),
    col("uptime_s", Int),
    col("usage_at", Time),
    col("first_seen", Time),
    col("last_seen", Time),
    col("gone_at", Time),
    col("revision", Int),
];

/// The position of `first_seen` in [`COMMON`]: an update leaves it alone.
pub(crate) const FIRST_SEEN: usize = 11;

/// One kind's table.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: &'static str,
    /// The kind's own columns, after [`COMMON`].
    pub columns: &'static [Column],
    /// The columns a list filters by, when the kind has them.
    pub name_column: &'static str,
    pub status_column: Option<&'static str>,
    pub host_column: Option<&'static str>,
    pub node_column: Option<&'static str>,
    /// A JSON object of the record's labels, for the kinds a selector can match.
    pub labels_column: Option<&'static str>,
}

impl Table {
    /// Every column, common ones first.
    pub fn all_columns(&self) -> impl Iterator<Item = &'static Column> + '_ {
        COMMON.iter().chain(self.columns.iter())
    }
}

const HOSTS: Table = Table {
    name: "hosts",
    columns: &[
        col("name", Text),
        col("status", Text),
        col("cpus", Int),
        col("memory_total", Int),
        col("node_id", Text),
    ],
    name_column: "name",
    status_column: Some("status"),
    host_column: None,
    node_column: Some("node_id"),
    labels_column: None,
};

const VMS: Table = Table {
    name: "vms",
    columns: &[
        col("name", Text),
        col("status", Text),
        col("host", Text),
        col("vmid", Int),
        col("template", Bool),
        col("cpus", Int),
        col("memory_total", Int),
        col("disk_total", Int),
        col("ha_managed", Bool),
        col("lock", Text),
        col("config_digest", Text),
        col("gpu_devices", Json),
        col("node_id", Text),
        col("labels", Json),
    ],
    name_column: "name",
    status_column: Some("status"),
    host_column: Some("host"),
    node_column: Some("node_id"),
    labels_column: Some("labels"),
};

const CONTAINERS: Table = Table {
    name: "containers",
    columns: &[
        col("name", Text),
        col("status", Text),
        col("runtime", Text),
        col("host", Text),
        col("vmid", Int),
        col("hostname", Text),
        col("os_template", Text),
        col("template", Bool),
        col("cpus", Int),
        col("memory_total", Int),
        col("disk_total", Int),
        col("ha_managed", Bool),
        col("lock", Text),
        col("config_digest", Text),
        col("labels", Json),
    ],
    name_column: "name",
    status_column: Some("status"),
    host_column: Some("host"),
    node_column: None,
    labels_column: Some("labels"),
};

const STORAGE: Table = Table {
    name: "storage",
    columns: &[
        col("name", Text),
        col("status", Text),
        col("storage_type", Text),
        col("content", Json),
        col("shared", Bool),
        col("total", Int),
    ],
    name_column: "name",
    status_column: Some("status"),
    host_column: None,
    node_column: None,
    labels_column: None,
};

const WORKLOADS: Table = Table {
    name: "workloads",
    columns: &[
        col("node_id", Text),
        col("gpu_indexes", Json),
        col("pid", Int),
        col("process_name", Text),
        col("container_id", Text),
        col("pod_namespace", Text),
        col("pod_name", Text),
        col("pod_uid", Text),
        col("gpu_memory_bytes", Int),
        col("started_at", Time),
        // Derived from the other columns (`Workload::labels`), kept for the selector.
        col("labels", Json),
    ],
    name_column: "process_name",
    status_column: None,
    host_column: None,
    node_column: Some("node_id"),
    labels_column: Some("labels"),
};

const SERVICES: Table = Table {
    name: "services",
    columns: &[col("name", Text), col("selector", Text), col("kinds", Json), col("description", Text)],
    name_column: "name",
    status_column: None,
    host_column: None,
    node_column: None,
    labels_column: None,
};

pub(crate) fn table(kind: InventoryKind) -> &'static Table {
    match kind {
        InventoryKind::Host => &HOSTS,
        InventoryKind::Vm => &VMS,
        InventoryKind::Container => &CONTAINERS,
        InventoryKind::Storage => &STORAGE,
        InventoryKind::Workload => &WORKLOADS,
        InventoryKind::Service => &SERVICES,
    }
}

/// Values above `i64::MAX` were refused by the rules before any row is built.
fn int(value: u64) -> Cell {
    Cell::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

fn text(value: &str) -> Cell {
    Cell::Text(value.to_owned())
}

fn opt_text(value: Option<&str>) -> Cell {
    value.map_or(Cell::Null, text)
}

fn json<T: serde::Serialize>(value: &T) -> Cell {
    Cell::Text(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
}

/// The record as a row: [`COMMON`]'s cells, then its kind's.
pub(crate) fn to_row(record: &InventoryRecord) -> Vec<Cell> {
    let usage = &record.usage;
    let mut row = vec![
        Cell::Text(record.source.to_string()),
        text(&record.key),
        text(record.scope().as_stored()),
        text(&record.digest),
        Cell::Real(usage.cpu),
        int(usage.memory_used),
        int(usage.disk_used),
        int(usage.net_in),
        int(usage.net_out),
        int(usage.uptime_s),
        Cell::Time(record.usage_at),
        Cell::Time(record.first_seen),
        Cell::Time(record.last_seen),
        record.gone_at.map_or(Cell::Null, Cell::Time),
        int(record.revision.get()),
    ];
    match &record.state {
        RecordState::Host(h) => row.extend([
            text(&h.name),
            text(&h.status),
            int(u64::from(h.cpus)),
            int(h.memory_total),
            opt_text(h.node_id.as_ref().map(NodeId::as_str)),
        ]),
        RecordState::Vm(v) => row.extend([
            text(&v.name),
            text(&v.status),
            text(&v.host),
            int(u64::from(v.vmid)),
            Cell::Bool(v.template),
            int(u64::from(v.cpus)),
            int(v.memory_total),
            int(v.disk_total),
            Cell::Bool(v.ha_managed),
            opt_text(v.lock.as_deref()),
            opt_text(v.config_digest.as_deref()),
            json(&v.gpu_devices),
            opt_text(v.node_id.as_ref().map(NodeId::as_str)),
            json(&v.labels),
        ]),
        RecordState::Container(c) => row.extend([
            text(&c.name),
            text(&c.status),
            text(c.runtime.as_str()),
            text(&c.host),
            c.vmid.map_or(Cell::Null, |v| int(u64::from(v))),
            opt_text(c.hostname.as_deref()),
            opt_text(c.os_template.as_deref()),
            Cell::Bool(c.template),
            int(u64::from(c.cpus)),
            int(c.memory_total),
            int(c.disk_total),
            Cell::Bool(c.ha_managed),
            opt_text(c.lock.as_deref()),
            opt_text(c.config_digest.as_deref()),
            json(&c.labels),
        ]),
        RecordState::Storage(s) => row.extend([
            text(&s.name),
            text(&s.status),
            text(&s.storage_type),
            json(&s.content),
            Cell::Bool(s.shared),
            int(s.total),
        ]),
        RecordState::Workload(w) => row.extend([
            text(w.node_id.as_str()),
            json(&w.gpu_indexes),
            int(u64::from(w.pid)),
            text(&w.process_name),
            opt_text(w.container_id.as_deref()),
            opt_text(w.pod.as_ref().and_then(|p| p.namespace.as_deref())),
            opt_text(w.pod.as_ref().and_then(|p| p.name.as_deref())),
            opt_text(w.pod.as_ref().map(|p| p.uid.as_str())),
            int(w.gpu_memory_bytes),
            w.started_at.map_or(Cell::Null, Cell::Time),
            json(&w.labels()),
        ]),
        RecordState::Service(s) => row.extend([
            text(s.name.as_str()),
            Cell::Text(s.selector.to_string()),
            json(&s.kinds),
            opt_text(s.description.as_deref()),
        ]),
    }
    row
}

/// Reads a row's cells in column order, naming the column of any cell it cannot use.
struct Cells<'t> {
    table: &'t Table,
    cells: std::vec::IntoIter<Cell>,
    index: usize,
}

impl Cells<'_> {
    fn column(&self) -> String {
        let name = self.table.all_columns().nth(self.index.saturating_sub(1)).map_or("?", |c| c.name);
        format!("{}.{name}", self.table.name)
    }

    fn next(&mut self) -> Cell {
        self.index += 1;
        self.cells.next().unwrap_or(Cell::Null)
    }

    fn bad(&self, problem: &str) -> StoreError {
        StoreError::corrupt(self.column(), problem)
    }

    fn opt_text(&mut self) -> Result<Option<String>> {
        match self.next() {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(t)),
            _ => Err(self.bad("is not text")),
        }
    }

    fn text(&mut self) -> Result<String> {
        self.opt_text()?.ok_or_else(|| self.bad("is NULL"))
    }

    fn opt_u64(&mut self) -> Result<Option<u64>> {
        match self.next() {
            Cell::Null => Ok(None),
            Cell::Int(i) => u64::try_from(i).map(Some).map_err(|_| self.bad("is negative")),
            _ => Err(self.bad("is not an integer")),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        self.opt_u64()?.ok_or_else(|| self.bad("is NULL"))
    }

    fn opt_u32(&mut self) -> Result<Option<u32>> {
        self.opt_u64()?.map(|v| u32::try_from(v).map_err(|_| self.bad("is above 2^32"))).transpose()
    }

    fn u32(&mut self) -> Result<u32> {
        self.opt_u32()?.ok_or_else(|| self.bad("is NULL"))
    }

    fn real(&mut self) -> Result<f64> {
        match self.next() {
            Cell::Real(r) => Ok(r),
            Cell::Int(i) => Ok(i as f64),
            _ => Err(self.bad("is not a number")),
        }
    }

    fn bool(&mut self) -> Result<bool> {
        match self.next() {
            Cell::Bool(b) => Ok(b),
            Cell::Int(0) => Ok(false),
            Cell::Int(1) => Ok(true),
            _ => Err(self.bad("is not a boolean")),
        }
    }

    fn opt_time(&mut self) -> Result<Option<Timestamp>> {
        match self.next() {
            Cell::Null => Ok(None),
            Cell::Time(t) => Ok(Some(t)),
            Cell::Int(micros) => Ok(Some(Timestamp::from_unix_micros(micros))),
            _ => Err(self.bad("is not a time")),
        }
    }

    fn time(&mut self) -> Result<Timestamp> {
        self.opt_time()?.ok_or_else(|| self.bad("is NULL"))
    }

    fn json<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let text = self.text()?;
        serde_json::from_str(&text).map_err(|e| self.bad(&format!("is not the JSON expected: {e}")))
    }

    fn parsed<T: std::str::FromStr>(&mut self) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text()?;
        text.parse().map_err(|e: T::Err| self.bad(&e.to_string()))
    }

    fn opt_node(&mut self) -> Result<Option<NodeId>> {
        self.opt_text()?
            .map(|t| t.parse().map_err(|e: bosun_core::ValidationError| self.bad(&e.to_string())))
            .transpose()
    }
}

/// A row read back (in [`Table::all_columns`] order) as a record. Storage's hosts come
/// from `host_storage`: the caller fills them in.
pub(crate) fn from_row(kind: InventoryKind, cells: Vec<Cell>) -> Result<InventoryRecord> {
    let table = table(kind);
    let mut c = Cells { table, cells: cells.into_iter(), index: 0 };
    let source: SourceName = c.parsed()?;
    let key = c.text()?;
    let _scope = c.text()?;
    let digest = c.text()?;
    let usage = Usage {
        cpu: c.real()?,
        memory_used: c.u64()?,
        disk_used: c.u64()?,
        net_in: c.u64()?,
        net_out: c.u64()?,
        uptime_s: c.u64()?,
    };
    let usage_at = c.time()?;
    let first_seen = c.time()?;
    let last_seen = c.time()?;
    let gone_at = c.opt_time()?;
    let revision = Revision::new(c.u64()?).ok_or_else(|| c.bad("is 0"))?;
    let state = match kind {
        InventoryKind::Host => RecordState::Host(Host {
            name: c.text()?,
            status: c.text()?,
            cpus: c.u32()?,
            memory_total: c.u64()?,
            node_id: c.opt_node()?,
        }),
        InventoryKind::Vm => RecordState::Vm(Vm {
            name: c.text()?,
            status: c.text()?,
            host: c.text()?,
            vmid: c.u32()?,
            template: c.bool()?,
            cpus: c.u32()?,
            memory_total: c.u64()?,
            disk_total: c.u64()?,
            ha_managed: c.bool()?,
            lock: c.opt_text()?,
            config_digest: c.opt_text()?,
            gpu_devices: c.json()?,
            node_id: c.opt_node()?,
            labels: c.json()?,
        }),
        InventoryKind::Container => RecordState::Container(Container {
            name: c.text()?,
            status: c.text()?,
            runtime: c.parsed::<ContainerRuntime>()?,
            host: c.text()?,
            vmid: c.opt_u32()?,
            hostname: c.opt_text()?,
            os_template: c.opt_text()?,
            template: c.bool()?,
            cpus: c.u32()?,
            memory_total: c.u64()?,
            disk_total: c.u64()?,
            ha_managed: c.bool()?,
            lock: c.opt_text()?,
            config_digest: c.opt_text()?,
            labels: c.json()?,
        }),
        InventoryKind::Storage => RecordState::Storage(Storage {
            name: c.text()?,
            status: c.text()?,
            storage_type: c.text()?,
            content: c.json()?,
            shared: c.bool()?,
            total: c.u64()?,
            hosts: Vec::new(),
        }),
        InventoryKind::Workload => {
            let node_id = c.opt_node()?.ok_or_else(|| c.bad("is NULL"))?;
            let gpu_indexes = c.json()?;
            let pid = c.u32()?;
            let process_name = c.text()?;
            let container_id = c.opt_text()?;
            let (namespace, name, uid) = (c.opt_text()?, c.opt_text()?, c.opt_text()?);
            let pod = uid.map(|uid| PodRef { namespace, name, uid });
            let workload = Workload {
                node_id,
                gpu_indexes,
                pid,
                process_name,
                container_id,
                pod,
                gpu_memory_bytes: c.u64()?,
                started_at: c.opt_time()?,
            };
            // The labels column is derived from the others: the record derives them again.
            c.next();
            RecordState::Workload(workload)
        }
        InventoryKind::Service => RecordState::Service(Service {
            name: c.parsed()?,
            selector: c.parsed()?,
            kinds: c.json()?,
            description: c.opt_text()?,
        }),
    };
    Ok(InventoryRecord { source, key, state, digest, usage, usage_at, first_seen, last_seen, gone_at, revision })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_cell_per_column() {
        for kind in InventoryKind::ALL {
            let table = table(*kind);
            let names: std::collections::HashSet<_> = table.all_columns().map(|c| c.name).collect();
            assert_eq!(names.len(), table.all_columns().count(), "{}: a column twice", table.name);
            assert_eq!(table.all_columns().nth(FIRST_SEEN).map(|c| c.name), Some("first_seen"));
        }
    }
}
