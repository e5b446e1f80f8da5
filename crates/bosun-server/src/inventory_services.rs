//! The services the configuration declares (`inventory.services`): synced as the records of
//! bosun's own `services` source (type `config`) through `Write::SyncInventory`, as any
//! source's snapshot, so a new service is created, one whose selector, kinds or description
//! changed is updated (with history), and one no longer configured gets `gone_at`.
//!
//! The configuration changes only with a restart: the leader syncs the services when it
//! starts leading (at start, and again at each election, so a new leader's configuration
//! is what the inventory shows), which writes nothing when nothing changed.
//!
//! A service's members are not stored: they are resolved when it is read, by the store's
//! label filter over its kinds (present records only), so a re-tagged VM joins or leaves a
//! service at its source's next sync.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_config::inventory::SERVICES_SOURCE;
use bosun_core::inventory::{
    InventoryRecord, InventorySnapshot, Reported, Service, SourceSync, SourceType, SyncScope, Usage,
};
use bosun_core::{Actor, SourceName};
use bosun_store::inventory::InventoryFilter;
use bosun_store::{PageRequest, WriteBatch, WriteOutcome, query};
use sha2::{Digest as _, Sha256};

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::inventory::Synced;

/// The most members a read of a service returns (with the count of all of them).
pub(crate) const MAX_MEMBERS: usize = 1000;

/// How soon the services loop tries again after a failed sync.
pub(crate) const RETRY: Duration = Duration::from_secs(60);

/// The actor the syncs are recorded under.
const ACTOR: &str = "inventory";

pub(crate) fn source() -> ApiResult<SourceName> {
    SERVICES_SOURCE.parse().map_err(|_| ApiError::Internal("the services' source name is invalid".to_owned()))
}

/// The SHA-256 of the service as JSON, in hexadecimal: its selector is written in one
/// order and its kinds are a set, so the same service always digests the same.
fn digest(service: &Service) -> String {
    // A service of names and strings always serializes.
    let json = serde_json::to_vec(service).unwrap_or_default();
    Sha256::digest(&json).iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

fn reported(services: &[Service]) -> Vec<Reported<Service>> {
    services
        .iter()
        .map(|service| Reported {
            key: service.name.to_string(),
            digest: digest(service),
            state: service.clone(),
            usage: Usage::default(),
        })
        .collect()
}

/// Syncs the configured services. Does nothing (`None`) when none is configured and none
/// was ever synced: a server without services keeps no `services` source.
pub(crate) async fn sync(app: &App) -> ApiResult<Option<Synced>> {
    let configured = &app.settings.inventory_services;
    let source = source()?;
    if configured.is_empty() && !app.store.inventory_sources().await?.iter().any(|s| s.source == source) {
        return Ok(None);
    }
    let sync = SourceSync {
        source: source.clone(),
        source_type: SourceType::Config,
        scope: SyncScope::Source,
        started_at: app.now(),
        outcome: Ok(InventorySnapshot { services: reported(configured), ..InventorySnapshot::default() }),
    };
    let batch = WriteBatch::new(Actor::system(ACTOR), "sync of the configured services").sync_inventory(sync);
    let committed = app.store.commit(batch).await?;
    app.committed.notify_waiters();
    match committed.outcomes.first() {
        Some(WriteOutcome::Synced { counts, .. }) => {
            app.metrics.inventory_synced(source.as_str(), true, counts);
            Ok(Some(Synced { counts: *counts, error: None }))
        }
        _ => Err(ApiError::Internal("an inventory sync committed without its outcome".to_owned())),
    }
}

/// The leadership term the services were last synced in (the election epoch; 0 for a
/// server that leads alone), shared by the passes of the services loop.
pub(crate) type SyncedTerm = Arc<Mutex<Option<u64>>>;

/// Syncs the services once per leadership term (leader work): a pass in a term that
/// already synced them does nothing, one after a failed sync tries again.
pub(crate) async fn sync_once_per_term(app: &App, synced: &SyncedTerm) -> ApiResult<()> {
    let term = *app.elected.borrow();
    if *synced.lock().unwrap_or_else(|p| p.into_inner()) == Some(term) {
        return Ok(());
    }
    sync(app).await?;
    *synced.lock().unwrap_or_else(|p| p.into_inner()) = Some(term);
    Ok(())
}

/// A service's members: the present records of its kinds whose labels match its
/// selector, by kind, source and key, at most [`MAX_MEMBERS`]; and how many there are.
pub(crate) async fn members(app: &App, service: &Service) -> ApiResult<(Vec<InventoryRecord>, u64)> {
    let mut members = Vec::new();
    let mut count = 0;
    for kind in &service.kinds {
        let filter = InventoryFilter {
            gone: Some(false),
            labels: Some(service.selector.clone()),
            ..InventoryFilter::kind(kind.inventory_kind())
        };
        count += app.store.count_inventory(&filter).await?;
        let mut after = None;
        while members.len() < MAX_MEMBERS {
            let limit = u32::try_from(MAX_MEMBERS - members.len()).unwrap_or(query::MAX_PAGE_SIZE);
            let page = app.store.list_inventory(&filter, &PageRequest { limit, after }).await?;
            members.extend(page.items);
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
    }
    Ok((members, count))
}
