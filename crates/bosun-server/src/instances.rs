//! Instance housekeeping without providers (the pools reconciler adds those): instances
//! whose agent never registered fail, and terminated instances are forgotten after the
//! retention period.

use bosun_core::{Actor, InstanceState, InstanceTrigger};
use bosun_store::{InstanceFilter, StoreError, WriteBatch, all_pages};

use crate::app::App;
use crate::error::ApiResult;

/// Fails PROVISIONING and PENDING_REGISTRATION instances older than the registration
/// timeout. Returns how many.
pub(crate) async fn fail_unregistered(app: &App) -> ApiResult<usize> {
    let now = app.now();
    let cutoff = now - app.settings.instance_registration_timeout;
    let waiting = list(app, vec![InstanceState::Provisioning, InstanceState::PendingRegistration]).await?;
    let actor = Actor::system("instances");
    let timeout = bosun_config::duration::format(app.settings.instance_registration_timeout);
    let mut failed = 0;
    for mut instance in waiting.into_iter().filter(|i| i.state_changed_at < cutoff) {
        let message = format!("registration timeout: no agent registered within {timeout}");
        if instance.apply(InstanceTrigger::Fail, &message, now).is_err() {
            continue;
        }
        match app.store.commit(WriteBatch::new(actor.clone(), message).update_instance(instance)).await {
            Ok(_) => failed += 1,
            // Registered (or changed) meanwhile.
            Err(StoreError::Conflict { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(failed)
}

/// Deletes TERMINATED instances that finished longer ago than the retention period.
/// Returns how many.
///
/// FAILED instances are kept: their VM may exist and bill, and the record is bosun's only
/// handle on it. The pools reconciler terminates them through their provider first (FAILED
/// -> TERMINATING -> TERMINATED), after which retention applies.
pub(crate) async fn purge_finished(app: &App) -> ApiResult<usize> {
    let cutoff = app.now() - app.settings.terminated_retention;
    let finished = list(app, vec![InstanceState::Terminated]).await?;
    let actor = Actor::system("retention");
    let mut deleted = 0;
    for instance in finished.into_iter().filter(|i| i.state_changed_at < cutoff) {
        let batch = WriteBatch::new(actor.clone(), "finished instance retention expired")
            .delete_instance(instance.id.clone(), Some(instance.revision));
        match app.store.commit(batch).await {
            Ok(_) => deleted += 1,
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(deleted)
}

async fn list(app: &App, states: Vec<InstanceState>) -> ApiResult<Vec<bosun_core::Instance>> {
    let filter = &InstanceFilter { states, ..Default::default() };
    let store = &app.store;
    Ok(all_pages(|page| async move { store.list_instances(filter, &page).await }).await?)
}
