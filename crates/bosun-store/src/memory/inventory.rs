//! The memory store's inventory: records by kind, source and key; source statuses; the
//! sync history.

use std::collections::BTreeMap;
use std::ops::Bound;

use bosun_core::inventory::{InventoryKind, InventoryRecord, SourceStatus, SyncRecord, SyncScope, Usage};
use bosun_core::{SourceName, Timestamp};

use super::{State, Tx};
use crate::error::{Result, StoreError};
use crate::inventory::{InventoryFilter, StoredRecordState, overlay_last_seen, scopes_of, split_id};
use crate::query::{Page, PageRequest};

/// A record's place within its kind: its source and key, in the SQL backends' order.
pub(super) type RecordKey = (SourceName, String);

#[derive(Debug, Default, Clone)]
pub(super) struct Inventory {
    pub records: BTreeMap<InventoryKind, BTreeMap<RecordKey, InventoryRecord>>,
    pub sources: BTreeMap<(SourceName, String), SourceStatus>,
    pub syncs: BTreeMap<u64, SyncRecord>,
    pub last_sync_id: u64,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.records.values().all(BTreeMap::is_empty) && self.sources.is_empty() && self.syncs.is_empty()
    }
}

fn key(source: &SourceName, key: &str) -> RecordKey {
    (source.clone(), key.to_owned())
}

fn of_kind(state: &State, kind: InventoryKind) -> impl Iterator<Item = (&RecordKey, &InventoryRecord)> {
    state.inventory.records.get(&kind).into_iter().flatten()
}

impl Tx<'_> {
    pub(super) fn inventory_source_of(&self, source: &SourceName, scope: &SyncScope) -> Option<SourceStatus> {
        self.state.inventory.sources.get(&(source.clone(), scope.as_stored().to_owned())).cloned()
    }

    pub(super) fn put_source_status(&mut self, status: &SourceStatus) {
        let key = (status.source.clone(), status.scope.as_stored().to_owned());
        self.put_keyed(|s| &mut s.inventory.sources, key, Some(status.clone()));
    }

    pub(super) fn record_sync(&mut self, sync: &SyncRecord) -> u64 {
        let previous = self.state.inventory.last_sync_id;
        let id = previous + 1;
        self.state.inventory.last_sync_id = id;
        self.state.inventory.syncs.insert(id, SyncRecord { id, ..sync.clone() });
        self.undo.push(Box::new(move |s| {
            s.inventory.syncs.remove(&id);
            s.inventory.last_sync_id = previous;
        }));
        id
    }

    pub(super) fn record_states(
        &self,
        kind: InventoryKind,
        source: &SourceName,
        scope: &SyncScope,
    ) -> Vec<StoredRecordState> {
        of_kind(self.state, kind)
            .filter(|((s, _), r)| s == source && r.scope() == *scope)
            .map(|((_, key), r)| StoredRecordState {
                key: key.clone(),
                digest: r.digest.clone(),
                gone: r.gone_at.is_some(),
                usage_at: r.usage_at,
                revision: r.revision,
            })
            .collect()
    }

    pub(super) fn record(&self, kind: InventoryKind, source: &SourceName, k: &str) -> Option<InventoryRecord> {
        self.state.inventory.records.get(&kind)?.get(&key(source, k)).cloned()
    }

    pub(super) fn put_records(&mut self, kind: InventoryKind, records: &[InventoryRecord], keep_first_seen: bool) {
        for record in records {
            let mut record = record.clone();
            if keep_first_seen && let Some(stored) = self.record(kind, &record.source, &record.key) {
                record.first_seen = stored.first_seen;
            }
            self.put_record(kind, record);
        }
    }

    fn put_record(&mut self, kind: InventoryKind, record: InventoryRecord) {
        let k = key(&record.source, &record.key);
        let old = self.state.inventory.records.entry(kind).or_default().insert(k.clone(), record);
        self.undo.push(Box::new(move |s| {
            let records = s.inventory.records.entry(kind).or_default();
            match old {
                Some(old) => records.insert(k, old),
                None => records.remove(&k),
            };
        }));
    }

    pub(super) fn refresh_usage(
        &mut self,
        kind: InventoryKind,
        source: &SourceName,
        usage: &[(String, Usage)],
        at: Timestamp,
    ) {
        for (k, usage) in usage {
            if let Some(mut record) = self.record(kind, source, k) {
                record.usage = *usage;
                record.usage_at = at;
                self.put_record(kind, record);
            }
        }
    }
}

pub(super) fn list(state: &State, filter: &InventoryFilter, page: &PageRequest) -> Result<Page<InventoryRecord>> {
    filter.check()?;
    let limit = page.checked_limit()?;
    let kind = filter.kind.resource_kind();
    let after = page.start_after(kind)?.map(|id| split_id(&id)).transpose()?;
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut rows: Vec<InventoryRecord> = state
        .inventory
        .records
        .get(&filter.kind)
        .into_iter()
        .flat_map(|records| records.range((start.clone(), Bound::Unbounded)))
        .map(|(_, r)| r)
        .filter(|r| filter.matches(r))
        .take(limit as usize + 1)
        .cloned()
        .collect();
    let sources = sources_of(state, &rows);
    overlay_last_seen(&mut rows, &sources);
    Ok(Page::from_rows(rows, limit, kind, InventoryRecord::id))
}

pub(super) fn count(state: &State, filter: &InventoryFilter) -> Result<u64> {
    filter.check()?;
    Ok(of_kind(state, filter.kind).filter(|(_, r)| filter.matches(r)).count() as u64)
}

pub(super) fn get(state: &State, kind: InventoryKind, source: &SourceName, k: &str) -> Result<InventoryRecord> {
    let mut record = state
        .inventory
        .records
        .get(&kind)
        .and_then(|records| records.get(&key(source, k)))
        .cloned()
        .ok_or_else(|| StoreError::not_found(kind.resource_kind(), bosun_core::inventory::record_id(source, k)))?;
    let sources = sources_of(state, std::slice::from_ref(&record));
    overlay_last_seen(std::slice::from_mut(&mut record), &sources);
    Ok(record)
}

fn sources_of(state: &State, records: &[InventoryRecord]) -> Vec<SourceStatus> {
    scopes_of(records)
        .into_iter()
        .filter_map(|(source, scope)| state.inventory.sources.get(&(source, scope.as_stored().to_owned())).cloned())
        .collect()
}

pub(super) fn sources(state: &State) -> Vec<SourceStatus> {
    state.inventory.sources.values().cloned().collect()
}

pub(super) fn syncs(state: &State, source: Option<&SourceName>, limit: u32) -> Vec<SyncRecord> {
    state
        .inventory
        .syncs
        .values()
        .rev()
        .filter(|s| source.is_none_or(|source| s.source == *source))
        .take(limit as usize)
        .cloned()
        .collect()
}
