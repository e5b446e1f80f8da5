//! Pools: spec and status documents with revisions.

use std::collections::BTreeMap;

use bosun_core::pool::{PoolCondition, PoolConditionKind, ProviderBackoff, ScalingDecision};
use bosun_core::{PoolName, ResourceKind};

use super::{Ctx, E, assert_err, batch, pool};
use crate::query::ChangeFilter;

pub(crate) async fn create_get_update_delete(ctx: &Ctx) {
    let training = pool("training");
    ctx.store.commit(batch("config").create_pool(training.clone())).await.expect("create");
    assert_eq!(ctx.store.pool(&training.name).await.expect("get"), training);
    assert_err!(ctx.store.commit(batch("config").create_pool(training.clone())).await, E::AlreadyExists { .. });

    let mut resized = training.clone();
    resized.spec.max_nodes = 16;
    ctx.store.commit(batch("config").update_pool(resized.clone())).await.expect("update");
    let stored = ctx.store.pool(&training.name).await.expect("get");
    assert_eq!((stored.spec.max_nodes, stored.revision.get()), (16, 2));
    assert_err!(ctx.store.commit(batch("stale").update_pool(resized)).await, E::Conflict { .. });

    ctx.store.commit(batch("config").delete_pool(training.name.clone(), Some(stored.revision))).await.expect("delete");
    assert_err!(ctx.store.pool(&training.name).await, E::NotFound { .. });
    let ops: Vec<_> = ctx
        .store
        .list_changes(&ChangeFilter::resource(ResourceKind::Pool, "training"), 10)
        .await
        .expect("log")
        .iter()
        .map(|c| c.op.as_str())
        .collect();
    assert_eq!(ops, ["created", "updated", "deleted"]);
}

pub(crate) async fn invalid_spec_is_rejected(ctx: &Ctx) {
    let mut bad = pool("training");
    bad.spec.min_nodes = 20;
    let message = assert_err!(ctx.store.commit(batch("config").create_pool(bad)).await, E::Invalid(_));
    assert_eq!(message, "invalid spec.min_nodes: 20 is above max_nodes 8");
    assert!(ctx.store.list_pools().await.expect("list").is_empty());
}

pub(crate) async fn status_round_trips(ctx: &Ctx) {
    let mut p = pool("training");
    ctx.store.commit(batch("config").create_pool(p.clone())).await.expect("create");
    p.status.last_scale_at = Some(ctx.now());
    p.status.provider_backoff.insert(
        "lambda".into(),
        ProviderBackoff { consecutive_failures: 2, retry_after: ctx.now(), last_error: "no capacity".into() },
    );
    p.status.last_decision = Some(ScalingDecision {
        at: ctx.now(),
        current: 3,
        target: 4,
        reason: "utilization 91% above 80%".into(),
        inputs: BTreeMap::from([("utilization".to_owned(), "91".to_owned())]),
        conditions: vec![PoolCondition {
            kind: PoolConditionKind::MassFailure,
            message: "4 of 6 nodes turned UNHEALTHY within 10m".into(),
            since: ctx.now(),
        }],
    });
    ctx.store.commit(batch("reconcile").update_pool(p.clone())).await.expect("update");
    let stored = ctx.store.pool(&p.name).await.expect("get");
    assert_eq!(stored.status, p.status);
}

pub(crate) async fn list_is_sorted_by_name(ctx: &Ctx) {
    let mut b = batch("config");
    for name in ["inference", "batch", "training"] {
        b = b.create_pool(pool(name));
    }
    ctx.store.commit(b).await.expect("create");
    let names: Vec<PoolName> = ctx.store.list_pools().await.expect("list").into_iter().map(|p| p.name).collect();
    let names: Vec<&str> = names.iter().map(PoolName::as_str).collect();
    assert_eq!(names, ["batch", "inference", "training"]);
}
