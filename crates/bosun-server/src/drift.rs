//! Drift from the declared inventory (`inventory.declaration`).
//!
//! After every successful sync of a source the declaration names, the leader compares
//! the declaration with the present VMs and containers of its sources in the store
//! (`bosun_core::inventory::drift::compare`) and sets the `bosun_inventory_drift` gauges.
//! When the report differs from the last one this server recorded (and at the first check
//! after a start, which has none), it is written as a change record of kind `drift` under
//! the id [`DRIFT_ID`]: `bosun inventory history drift declaration` lists every state the
//! drift went through, and a record with an empty report says the drift ended.
//!
//! A follower checks nothing: a sync it ran on an operator's request is checked at the
//! leader's next sync of that source.

use std::sync::Arc;

use bosun_core::inventory::drift::{Declaration, DriftReport, compare};
use bosun_core::{Actor, SourceName};
use bosun_store::inventory::InventoryFilter;
use bosun_store::{WriteBatch, all_pages};

use crate::app::App;
use crate::error::ApiResult;

/// The id drift records are written under.
pub(crate) const DRIFT_ID: &str = "declaration";

/// The actor drift records are written by (the inventory's syncs use the same).
const ACTOR: &str = "inventory";

/// The configured declaration and the last report recorded for it.
#[derive(Debug)]
pub(crate) struct DriftCheck {
    declaration: Arc<Declaration>,
    /// Held through a whole check, so two checks (the loop's and an operator's sync now)
    /// never record out of order, nor the same report twice.
    last: tokio::sync::Mutex<Option<DriftReport>>,
}

impl DriftCheck {
    pub(crate) fn new(declaration: Arc<Declaration>) -> Self {
        Self { declaration, last: tokio::sync::Mutex::new(None) }
    }
}

/// Checks the drift after `source` was synced successfully, when the declaration names
/// it and this replica leads. A check that fails is logged: the sync itself succeeded.
pub(crate) async fn after_sync(app: &App, source: &SourceName) {
    let Some(check) = &app.drift else { return };
    if !check.declaration.sources().contains(source) {
        return;
    }
    if let Some(Err(error)) = app.as_leader(check_now(app, check)).await {
        tracing::warn!("the inventory's drift from its declaration was not checked: {error}");
    }
}

/// Compares the declaration with the store now, sets the gauges, and records the report
/// if it changed.
async fn check_now(app: &App, check: &DriftCheck) -> ApiResult<()> {
    let mut last = check.last.lock().await;
    let declaration = &check.declaration;
    let mut records = Vec::new();
    for kind in declaration.kinds() {
        for source in declaration.scope(kind) {
            let filter = &InventoryFilter { source: Some(source), gone: Some(false), ..InventoryFilter::kind(kind) };
            let store = &app.store;
            records.extend(all_pages(|page| async move { store.list_inventory(filter, &page).await }).await?);
        }
    }
    let report = compare(declaration, &records);
    app.metrics.inventory_drift(report.counts());
    if last.as_ref() != Some(&report) {
        let counts = report.counts();
        let reason = format!(
            "drift from the declared inventory: {} missing, {} unexpected, {} changed",
            counts.missing, counts.unexpected, counts.changed
        );
        let batch = WriteBatch::new(Actor::system(ACTOR), reason).record_drift(DRIFT_ID, report.clone());
        app.store.commit(batch).await?;
        app.committed.notify_waiters();
        if !report.is_empty() {
            tracing::warn!(
                missing = counts.missing,
                unexpected = counts.unexpected,
                changed = counts.changed,
                "the inventory drifts from its declaration (bosun inventory history drift {DRIFT_ID})"
            );
        }
        *last = Some(report);
    }
    Ok(())
}
