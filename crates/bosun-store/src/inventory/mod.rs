//! The inventory in the store: what lists filter by, and the rule a source's sync follows
//! on every backend (called from [`crate::apply`]).
//!
//! A sync is one transaction per snapshot of one source (or one node's workloads):
//! records are upserted by their stable key, records whose state digest did not change
//! are not written, records the snapshot lacks get `gone_at`, and returning ones lose it.
//! A source that failed changes nothing but its status: its data stays as last read,
//! marked stale with the reason. Each sync is recorded.
//!
//! Services come from bosun's configuration as the snapshot of a source of their own
//! (type `config`); only such a source reports them, and it reports nothing else.
//!
//! `last_seen` is written only with a record's state, so an unchanged sync writes no
//! record row at all; reads show a record still reported as last seen at its scope's last
//! successful sync ([`overlay_last_seen`]).

pub(crate) mod row;

use std::collections::HashMap;
use std::time::Duration;

use bosun_core::inventory::{
    InventoryKind, InventoryRecord, InventorySnapshot, MAX_KEY_LEN, RecordState, Reported, Service, SourceStatus,
    SourceSync, SourceType, StoredState, SyncCounts, SyncRecord, SyncScope, Usage, plan_sync,
};
use bosun_core::validation::check_stored_int;
use bosun_core::{ChangeOp, LabelSelector, NodeId, Revision, SourceName, Timestamp};

use crate::apply::{Applied, ChangeDraft, Stamp, Transaction};
use crate::error::{Result, StoreError};

/// Unchanged records get their usage rewritten (without a revision) at most this often,
/// so usage stays roughly current without a write per record per sync.
pub const USAGE_REFRESH: Duration = Duration::from_secs(300);

/// The most records one snapshot may hold.
pub const MAX_SNAPSHOT_RECORDS: usize = 1_000_000;

const MAX_TEXT: usize = 1024;
const MAX_LIST: usize = 1024;
const MAX_ERROR: usize = 4096;

/// Which records a list returns (all conditions must hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryFilter {
    pub kind: InventoryKind,
    pub source: Option<SourceName>,
    /// The host (its key in the record's source) a VM or container runs on.
    pub host: Option<String>,
    /// The bosun node a record is or runs on.
    pub node: Option<NodeId>,
    pub status: Option<String>,
    /// `Some(true)`: only records gone from their source; `Some(false)`: only present ones.
    pub gone: Option<bool>,
    pub name: Option<String>,
    /// Only records whose labels match (VMs, containers and workloads have labels).
    pub labels: Option<LabelSelector>,
}

impl InventoryFilter {
    pub fn kind(kind: InventoryKind) -> Self {
        Self { kind, source: None, host: None, node: None, status: None, gone: None, name: None, labels: None }
    }

    /// Refuses a filter on a field the kind does not have (storage runs on no host).
    pub fn check(&self) -> Result<()> {
        let table = row::table(self.kind);
        let none = |what: &str| Err(StoreError::invalid(what, format_args!("{} records have no {what}", self.kind)));
        match () {
            () if self.host.is_some() && table.host_column.is_none() => none("host"),
            () if self.node.is_some() && table.node_column.is_none() => none("node"),
            () if self.status.is_some() && table.status_column.is_none() => none("status"),
            () if self.labels.is_some() && table.labels_column.is_none() => none("labels"),
            () => Ok(()),
        }
    }

    pub fn matches(&self, record: &InventoryRecord) -> bool {
        let state = &record.state;
        state.kind() == self.kind
            && self.source.as_ref().is_none_or(|s| *s == record.source)
            && self.host.as_ref().is_none_or(|h| state.host() == Some(h.as_str()))
            && self.node.as_ref().is_none_or(|n| state.node() == Some(n))
            && self.status.as_ref().is_none_or(|s| state.status() == s)
            && self.gone.is_none_or(|g| g == record.gone_at.is_some())
            && self.name.as_ref().is_none_or(|n| state.name() == n)
            && self.labels.as_ref().is_none_or(|s| state.labels().is_some_and(|l| l.matches(s)))
    }
}

/// A stored record as a sync plans with it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRecordState {
    pub key: String,
    pub digest: String,
    pub gone: bool,
    pub usage_at: Timestamp,
    pub revision: Revision,
}

/// The sync scopes whose status [`overlay_last_seen`] needs for `records` (those still
/// reported), each once: a page of workloads names only its own nodes' scopes, so a read
/// looks up a page's worth of status rows, never one per node of the fleet.
pub(crate) fn scopes_of(records: &[InventoryRecord]) -> Vec<(SourceName, SyncScope)> {
    let scopes: std::collections::BTreeSet<(SourceName, SyncScope)> =
        records.iter().filter(|r| r.gone_at.is_none()).map(|r| (r.source.clone(), r.scope())).collect();
    scopes.into_iter().collect()
}

/// Shows records still reported as seen at their scope's last successful sync (an
/// unchanged sync does not write them). `sources` holds at least the statuses of
/// [`scopes_of`] the records.
pub(crate) fn overlay_last_seen(records: &mut [InventoryRecord], sources: &[SourceStatus]) {
    let last_success: HashMap<(&SourceName, &str), Timestamp> =
        sources.iter().filter_map(|s| Some(((&s.source, s.scope.as_stored()), s.last_success_at?))).collect();
    for record in records.iter_mut().filter(|r| r.gone_at.is_none()) {
        let scope = record.scope();
        if let Some(at) = last_success.get(&(&record.source, scope.as_stored())) {
            record.last_seen = record.last_seen.max(*at);
        }
    }
}

/// The parsed cursor key of an inventory list: `SOURCE/KEY`.
pub(crate) fn split_id(id: &str) -> Result<(SourceName, String)> {
    let (source, key) =
        id.split_once('/').ok_or_else(|| StoreError::invalid("id", format_args!("{id:?} is not SOURCE/KEY")))?;
    let source = source.parse().map_err(|e| StoreError::invalid("id", e))?;
    Ok((source, key.to_owned()))
}

fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(StoreError::invalid(field, format_args!("is {} bytes long; the limit is {max}", value.len())));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(field, "contains a NUL character"));
    }
    Ok(())
}

fn check_opt(field: &str, value: Option<&str>) -> Result<()> {
    value.map_or(Ok(()), |v| check_text(field, v, MAX_TEXT))
}

fn check_int(field: &str, value: u64) -> Result<()> {
    check_stored_int(field, value).map_err(StoreError::from)
}

fn check_list(field: &str, values: &[String]) -> Result<()> {
    if values.len() > MAX_LIST {
        return Err(StoreError::invalid(field, format_args!("has {} entries; the limit is {MAX_LIST}", values.len())));
    }
    values.iter().try_for_each(|v| check_text(field, v, MAX_TEXT))
}

/// Refuses what the store cannot hold, naming the record and field.
fn check_reported<T>(kind: InventoryKind, reported: &Reported<T>, check: impl Fn(&T) -> Result<()>) -> Result<()> {
    let named = |e: StoreError| match e {
        StoreError::Invalid(e) => StoreError::Invalid(e.within(&format!("{kind}[{:?}]", reported.key))),
        other => other,
    };
    if reported.key.is_empty() || reported.key.len() > MAX_KEY_LEN || reported.key.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            &format!("{kind} key"),
            format_args!("{:?} must be 1 to {MAX_KEY_LEN} printable characters", reported.key),
        ));
    }
    check_text("digest", &reported.digest, MAX_TEXT).map_err(named)?;
    let usage = &reported.usage;
    if !usage.cpu.is_finite() || usage.cpu < 0.0 {
        return Err(named(StoreError::invalid("cpu", format_args!("{} is not a fraction >= 0", usage.cpu))));
    }
    for (field, value) in [
        ("memory_used", usage.memory_used),
        ("disk_used", usage.disk_used),
        ("net_in", usage.net_in),
        ("net_out", usage.net_out),
        ("uptime_s", usage.uptime_s),
    ] {
        check_int(field, value).map_err(named)?;
    }
    check(&reported.state).map_err(named)
}

fn check_snapshot(sync: &SourceSync, snapshot: &InventorySnapshot) -> Result<()> {
    if snapshot.len() > MAX_SNAPSHOT_RECORDS {
        return Err(StoreError::TooLarge {
            what: format!("the snapshot of {}", sync.source),
            size: snapshot.len() as u64,
            limit: MAX_SNAPSHOT_RECORDS as u64,
        });
    }
    let misplaced = match sync.source_type {
        SourceType::Config => snapshot.services.len() != snapshot.len(),
        SourceType::Proxmox | SourceType::Agent => !snapshot.services.is_empty(),
    };
    if misplaced {
        return Err(StoreError::invalid(
            "snapshot",
            "services come from the configuration: a config source reports them and nothing else",
        ));
    }
    if sync.scope == SyncScope::Source && !snapshot.workloads.is_empty() {
        return Err(StoreError::invalid(
            "snapshot",
            "workloads are synced per node (a node's scope), not with a whole source",
        ));
    }
    if let SyncScope::Node(node) = &sync.scope {
        if snapshot.len() != snapshot.workloads.len() {
            return Err(StoreError::invalid("snapshot", "a node's snapshot holds only its workloads"));
        }
        if let Some(other) = snapshot.workloads.iter().find(|w| w.state.node_id != *node) {
            return Err(StoreError::invalid(
                "snapshot",
                format_args!("node {node}'s snapshot reports a workload of node {}", other.state.node_id),
            ));
        }
    }
    for host in &snapshot.hosts {
        check_reported(InventoryKind::Host, host, |h| {
            check_text("name", &h.name, MAX_TEXT)?;
            check_text("status", &h.status, MAX_TEXT)?;
            check_int("memory_total", h.memory_total)
        })?;
    }
    for vm in &snapshot.vms {
        check_reported(InventoryKind::Vm, vm, |v| {
            check_text("name", &v.name, MAX_TEXT)?;
            check_text("status", &v.status, MAX_TEXT)?;
            check_text("host", &v.host, MAX_TEXT)?;
            check_int("memory_total", v.memory_total)?;
            check_int("disk_total", v.disk_total)?;
            check_opt("lock", v.lock.as_deref())?;
            check_opt("config_digest", v.config_digest.as_deref())?;
            check_list("gpu_devices", &v.gpu_devices)
        })?;
    }
    for container in &snapshot.containers {
        check_reported(InventoryKind::Container, container, |c| {
            check_text("name", &c.name, MAX_TEXT)?;
            check_text("status", &c.status, MAX_TEXT)?;
            check_text("host", &c.host, MAX_TEXT)?;
            check_opt("hostname", c.hostname.as_deref())?;
            check_opt("os_template", c.os_template.as_deref())?;
            check_int("memory_total", c.memory_total)?;
            check_int("disk_total", c.disk_total)?;
            check_opt("lock", c.lock.as_deref())?;
            check_opt("config_digest", c.config_digest.as_deref())
        })?;
    }
    for storage in &snapshot.storage {
        check_reported(InventoryKind::Storage, storage, |s| {
            check_text("name", &s.name, MAX_TEXT)?;
            check_text("status", &s.status, MAX_TEXT)?;
            check_text("storage_type", &s.storage_type, MAX_TEXT)?;
            check_list("content", &s.content)?;
            check_list("hosts", &s.hosts)?;
            check_int("total", s.total)
        })?;
    }
    for workload in &snapshot.workloads {
        check_reported(InventoryKind::Workload, workload, |w| {
            check_text("process_name", &w.process_name, MAX_TEXT)?;
            check_opt("container_id", w.container_id.as_deref())?;
            if let Some(pod) = &w.pod {
                check_opt("pod.namespace", pod.namespace.as_deref())?;
                check_opt("pod.name", pod.name.as_deref())?;
                check_text("pod.uid", &pod.uid, MAX_TEXT)?;
            }
            if w.gpu_indexes.len() > MAX_LIST {
                return Err(StoreError::invalid("gpu_indexes", format_args!("has {} entries", w.gpu_indexes.len())));
            }
            check_int("gpu_memory_bytes", w.gpu_memory_bytes)
        })?;
    }
    for service in &snapshot.services {
        check_reported(InventoryKind::Service, service, |s| {
            if service.key != s.name.as_str() {
                return Err(StoreError::invalid("name", format_args!("{} is not the key {:?}", s.name, service.key)));
            }
            check_text("selector", &s.selector.to_string(), MAX_TEXT)?;
            check_opt("description", s.description.as_deref())?;
            // What `Service::new` refuses (an empty selector selects everything, no kinds
            // nothing), refused here too: a load reads services it did not build.
            Service::new(s.name.clone(), s.selector.clone(), s.kinds.clone(), s.description.clone())?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Refuses a record a sync could not have written (a load's check of a record read from a
/// file), naming the record and field: it is checked as the one-record snapshot its scope
/// would have read it in, and a storage's hosts must be as a sync keeps them.
pub(crate) fn check_record(record: &InventoryRecord) -> Result<()> {
    let (scope, source_type) = match (record.scope(), &record.state) {
        (SyncScope::Source, RecordState::Service(_)) => (SyncScope::Source, SourceType::Config),
        (SyncScope::Source, _) => (SyncScope::Source, SourceType::Proxmox),
        (node, _) => (node, SourceType::Agent),
    };
    fn reported<T>(record: &InventoryRecord, state: T) -> Reported<T> {
        Reported { key: record.key.clone(), digest: record.digest.clone(), state, usage: record.usage }
    }
    let mut snapshot = InventorySnapshot::default();
    match &record.state {
        RecordState::Host(h) => snapshot.hosts.push(reported(record, h.clone())),
        RecordState::Vm(v) => snapshot.vms.push(reported(record, v.clone())),
        RecordState::Container(c) => snapshot.containers.push(reported(record, c.clone())),
        RecordState::Storage(s) => {
            if s.hosts.windows(2).any(|pair| pair[0] >= pair[1]) {
                return Err(StoreError::invalid(
                    &format!("storage[{:?}].hosts", record.key),
                    "must be sorted and without repeats, as a sync keeps them",
                ));
            }
            snapshot.storage.push(reported(record, s.clone()));
        }
        RecordState::Workload(w) => snapshot.workloads.push(reported(record, w.clone())),
        RecordState::Service(s) => snapshot.services.push(reported(record, s.clone())),
    }
    let sync = SourceSync {
        source: record.source.clone(),
        source_type,
        scope,
        started_at: record.first_seen,
        outcome: Err(String::new()),
    };
    check_snapshot(&sync, &snapshot)
}

fn check_counts(counts: &SyncCounts) -> Result<()> {
    let SyncCounts { created, updated, back, gone, unchanged } = *counts;
    for (field, value) in
        [("created", created), ("updated", updated), ("back", back), ("gone", gone), ("unchanged", unchanged)]
    {
        check_int(&format!("counts.{field}"), value)?;
    }
    Ok(())
}

/// An error as a sync keeps it: one line, at most [`MAX_ERROR`] bytes.
fn check_error(error: Option<&str>) -> Result<()> {
    match error {
        Some(error) if error.contains(['\n', '\r']) => Err(StoreError::invalid("error", "is more than one line")),
        Some(error) => check_text("error", error, MAX_ERROR),
        None => Ok(()),
    }
}

/// Refuses a source's status a sync could not have written (a load's check of one read
/// from a file), naming the source and field.
pub(crate) fn check_source_status(status: &SourceStatus) -> Result<()> {
    let named = |e: StoreError| match e {
        StoreError::Invalid(e) => StoreError::Invalid(e.within(&format!("source {}", status.source))),
        other => other,
    };
    if matches!(status.scope, SyncScope::Node(_)) != (status.source_type == SourceType::Agent) {
        return Err(named(StoreError::invalid(
            "scope",
            format_args!("a {} source has no scope {:?}", status.source_type, status.scope.as_stored()),
        )));
    }
    if status.syncs == 0 {
        return Err(named(StoreError::invalid("syncs", "is 0; a source's status is written by its first sync")));
    }
    check_int("syncs", status.syncs).map_err(named)?;
    check_counts(&status.counts).map_err(named)?;
    check_error(status.error.as_deref()).map_err(named)
}

/// Refuses a recorded sync a store could not hold (a load's check of one read from a
/// file), naming the sync and field.
pub(crate) fn check_sync_record(sync: &SyncRecord) -> Result<()> {
    let named = |e: StoreError| match e {
        StoreError::Invalid(e) => StoreError::Invalid(e.within(&format!("sync {}", sync.id))),
        other => other,
    };
    if sync.id == 0 {
        return Err(named(StoreError::invalid("id", "is 0; ids start at 1")));
    }
    check_int("id", sync.id).map_err(named)?;
    check_counts(&sync.counts).map_err(named)?;
    check_error(sync.error.as_deref()).map_err(named)
}

/// One kind's reported records: key, digest and usage, and a way to make each one's
/// state, which a sync does only for the records it writes (most syncs write few).
struct ReportedKind<'s> {
    entries: Vec<(&'s str, &'s str, Usage)>,
    state: Box<dyn Fn(usize) -> RecordState + Send + Sync + 's>,
}

fn reported_kind(snapshot: &InventorySnapshot, kind: InventoryKind) -> ReportedKind<'_> {
    fn each<'s, T: Clone + Sync>(records: &'s [Reported<T>], wrap: fn(T) -> RecordState) -> ReportedKind<'s> {
        ReportedKind {
            entries: records.iter().map(|r| (r.key.as_str(), r.digest.as_str(), r.usage)).collect(),
            state: Box::new(move |i| wrap(records[i].state.clone())),
        }
    }
    match kind {
        InventoryKind::Host => each(&snapshot.hosts, RecordState::Host),
        InventoryKind::Vm => each(&snapshot.vms, RecordState::Vm),
        InventoryKind::Container => each(&snapshot.containers, RecordState::Container),
        // The digest covers the hosts as reported; keep them in one order.
        InventoryKind::Storage => each(&snapshot.storage, |mut s| {
            s.hosts.sort();
            s.hosts.dedup();
            RecordState::Storage(s)
        }),
        InventoryKind::Workload => each(&snapshot.workloads, RecordState::Workload),
        InventoryKind::Service => each(&snapshot.services, RecordState::Service),
    }
}

/// The kinds a source of this type reports (an agent: its node's workloads).
fn kinds(source_type: SourceType) -> &'static [InventoryKind] {
    match source_type {
        SourceType::Proxmox => {
            &[InventoryKind::Host, InventoryKind::Vm, InventoryKind::Container, InventoryKind::Storage]
        }
        SourceType::Agent => &[InventoryKind::Workload],
        SourceType::Config => &[InventoryKind::Service],
    }
}

fn change(record: &InventoryRecord, op: ChangeOp) -> ChangeDraft {
    ChangeDraft {
        kind: record.kind().resource_kind(),
        resource_id: record.id(),
        op,
        revision: record.revision,
        resource: crate::sql::to_json(record),
    }
}

/// Applies one source's read: see the module's documentation.
pub(crate) async fn sync<T: Transaction>(tx: &mut T, stamp: Stamp<'_>, sync: &SourceSync) -> Result<Applied> {
    let now = stamp.at;
    if matches!(sync.scope, SyncScope::Node(_)) != (sync.source_type == SourceType::Agent) {
        return Err(StoreError::invalid(
            "scope",
            format_args!(
                "a {} source syncs {}",
                sync.source_type,
                match sync.source_type {
                    SourceType::Agent => "one node's workloads at a time",
                    SourceType::Proxmox | SourceType::Config => "as a whole",
                }
            ),
        ));
    }
    let previous = tx.inventory_source(&sync.source, &sync.scope).await?;
    if let Some(previous) = &previous
        && previous.source_type != sync.source_type
    {
        return Err(StoreError::invalid(
            "source",
            format_args!("{} is a {} source, not a {} one", sync.source, previous.source_type, sync.source_type),
        ));
    }
    let mut counts = SyncCounts::default();
    let mut changes = Vec::new();
    let error = match &sync.outcome {
        Err(reason) => {
            let mut reason = reason.replace(['\n', '\r'], " ");
            if reason.len() > MAX_ERROR {
                let mut cut = MAX_ERROR;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
            }
            Some(reason)
        }
        Ok(snapshot) => {
            check_snapshot(sync, snapshot)?;
            let seen_before = previous.as_ref().and_then(|p| p.last_success_at);
            for &kind in kinds(sync.source_type) {
                sync_kind(tx, now, sync, snapshot, kind, seen_before, &mut counts, &mut changes).await?;
            }
            None
        }
    };
    let record = SyncRecord {
        id: 0,
        source: sync.source.clone(),
        scope: sync.scope.clone(),
        started_at: sync.started_at.min(now),
        finished_at: now,
        counts,
        error: error.clone(),
    };
    // An agent reports every minute or so: only its syncs that changed something, or
    // failed, are worth a row of history. Its status row says when it last reported.
    let recorded = sync.source_type != SourceType::Agent || counts.changed_anything() || error.is_some();
    let id = if recorded { tx.insert_inventory_sync(&record).await? } else { 0 };
    let status = SourceStatus {
        source: sync.source.clone(),
        source_type: sync.source_type,
        scope: sync.scope.clone(),
        last_sync_at: now,
        last_success_at: if error.is_none() { Some(now) } else { previous.as_ref().and_then(|p| p.last_success_at) },
        error,
        counts,
        syncs: previous.map_or(0, |p| p.syncs) + 1,
    };
    tx.put_inventory_source(&status).await?;
    Ok(Applied::synced(id, counts, changes))
}

#[allow(clippy::too_many_arguments)]
async fn sync_kind<T: Transaction>(
    tx: &mut T,
    now: Timestamp,
    sync: &SourceSync,
    snapshot: &InventorySnapshot,
    kind: InventoryKind,
    seen_before: Option<Timestamp>,
    counts: &mut SyncCounts,
    changes: &mut Vec<ChangeDraft>,
) -> Result<()> {
    let stored_rows = tx.inventory_states(kind, &sync.source, &sync.scope).await?;
    let reported = reported_kind(snapshot, kind);
    if stored_rows.is_empty() && reported.entries.is_empty() {
        return Ok(());
    }
    let stored: HashMap<String, StoredState> =
        stored_rows.iter().map(|r| (r.key.clone(), StoredState { digest: r.digest.clone(), gone: r.gone })).collect();
    let pairs: Vec<(&str, &str)> = reported.entries.iter().map(|(key, digest, _)| (*key, *digest)).collect();
    let plan = plan_sync(&stored, &pairs).map_err(|e| StoreError::invalid(&format!("{kind} key"), e))?;
    let by_key: HashMap<&str, &StoredRecordState> = stored_rows.iter().map(|r| (r.key.as_str(), r)).collect();

    let record = |index: usize, revision: Revision| {
        let (key, digest, usage) = &reported.entries[index];
        InventoryRecord {
            source: sync.source.clone(),
            key: (*key).to_owned(),
            state: (reported.state)(index),
            digest: (*digest).to_owned(),
            usage: *usage,
            usage_at: now,
            first_seen: now,
            last_seen: now,
            gone_at: None,
            revision,
        }
    };
    let created: Vec<InventoryRecord> = plan.create.iter().map(|&i| record(i, Revision::FIRST)).collect();
    let mut updated: Vec<InventoryRecord> = plan
        .update
        .iter()
        .chain(&plan.back)
        .map(|&i| record(i, by_key[reported.entries[i].0].revision.next()))
        .collect();
    for key in &plan.gone {
        let mut gone = tx
            .inventory_record(kind, &sync.source, key)
            .await?
            .ok_or_else(|| StoreError::corrupt(kind.as_str(), format_args!("{key} vanished during the sync")))?;
        gone.gone_at = Some(now);
        gone.last_seen = seen_before.map_or(gone.last_seen, |t| t.max(gone.last_seen));
        gone.revision = gone.revision.next();
        updated.push(gone);
    }
    let refresh: Vec<(String, Usage)> = plan
        .unchanged
        .iter()
        .filter(|&&i| by_key[reported.entries[i].0].usage_at + USAGE_REFRESH <= now)
        .map(|&i| (reported.entries[i].0.to_owned(), reported.entries[i].2))
        .collect();

    tx.insert_inventory(kind, &created).await?;
    tx.update_inventory(kind, &updated).await?;
    if !refresh.is_empty() {
        tx.refresh_inventory_usage(kind, &sync.source, &refresh, now).await?;
    }
    changes.extend(created.iter().map(|r| change(r, ChangeOp::Created)));
    changes.extend(updated.iter().map(|r| change(r, ChangeOp::Updated)));
    counts.created += plan.create.len() as u64;
    counts.updated += plan.update.len() as u64;
    counts.back += plan.back.len() as u64;
    counts.gone += plan.gone.len() as u64;
    counts.unchanged += plan.unchanged.len() as u64;
    Ok(())
}
