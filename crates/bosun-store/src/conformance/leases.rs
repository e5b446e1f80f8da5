//! Leases: one holder at a time, take-overs only of a lease observed unchanged, renewals
//! without change records, and fenced writes that a deposed leader can never commit.

use bosun_core::{ChangeOp, LeaseName, ReplicaId, ResourceKind};

use super::{Ctx, batch};
use crate::StoreError;
use crate::query::ChangeFilter;
use crate::write::WriteOutcome;

fn leader() -> LeaseName {
    "leader".parse().expect("valid")
}

fn replica(id: &str) -> ReplicaId {
    id.parse().expect("valid")
}

async fn lease_changes(ctx: &Ctx) -> Vec<(ChangeOp, u64)> {
    let filter = ChangeFilter { kind: Some(ResourceKind::Lease), ..ChangeFilter::default() };
    ctx.store.list_changes(&filter, 100).await.expect("changes").iter().map(|c| (c.op, c.revision.get())).collect()
}

pub(crate) async fn the_first_candidate_takes_a_new_lease_at_epoch_1(ctx: &Ctx) {
    assert_eq!(ctx.store.lease(&leader()).await.expect("read"), None);
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("a"), None)).await.expect("acquire");
    let lease = ctx.store.lease(&leader()).await.expect("read").expect("held");
    assert_eq!((lease.holder, lease.epoch, lease.renewals), (Some(replica("a")), 1, 0));
    assert_eq!(lease_changes(ctx).await, [(ChangeOp::Created, 1)], "a change of leader is a change record");
}

pub(crate) async fn a_held_lease_is_taken_only_when_observed_unchanged(ctx: &Ctx) {
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("a"), None)).await.expect("acquire");
    let seen = ctx.store.lease(&leader()).await.expect("read").expect("held");
    // Without an observation, or after the holder renewed, a candidate is refused.
    let refused = ctx.store.commit(batch("grab").acquire_lease(leader(), replica("b"), None)).await;
    assert!(matches!(refused, Err(StoreError::LeaseHeld { epoch: 1, .. })), "{refused:?}");
    let committed = ctx.store.commit(batch("renew").renew_lease(seen.fence().expect("held"))).await.expect("renew");
    assert!(matches!(committed.outcomes[0], WriteOutcome::Renewed { renewals: 1, .. }));
    let stale = ctx.store.commit(batch("take").acquire_lease(leader(), replica("b"), Some(seen.observation()))).await;
    assert!(matches!(stale, Err(StoreError::LeaseHeld { .. })), "the holder renewed since: {stale:?}");
    // Observed unchanged (the holder stopped renewing): taken at the next epoch.
    let current = ctx.store.lease(&leader()).await.expect("read").expect("held");
    ctx.store
        .commit(batch("take").acquire_lease(leader(), replica("b"), Some(current.observation())))
        .await
        .expect("take over");
    let lease = ctx.store.lease(&leader()).await.expect("read").expect("held");
    assert_eq!((lease.holder, lease.epoch, lease.renewals), (Some(replica("b")), 2, 0));
    assert_eq!(
        lease_changes(ctx).await,
        [(ChangeOp::Created, 1), (ChangeOp::Updated, 2)],
        "renewals write no change record; the take-over does"
    );
    assert_eq!(ctx.store.check_integrity().await.expect("check"), []);
}

pub(crate) async fn a_deposed_leader_is_fenced_and_writes_nothing(ctx: &Ctx) {
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("a"), None)).await.expect("acquire");
    let old = ctx.store.lease(&leader()).await.expect("read").expect("held");
    let old_fence = old.fence().expect("held");
    // While current, a fenced batch commits.
    ctx.store
        .commit(batch("leader work").create_pool(super::pool("p")).fenced(old_fence.clone()))
        .await
        .expect("fenced");
    ctx.store
        .commit(batch("take").acquire_lease(leader(), replica("b"), Some(old.observation())))
        .await
        .expect("take over");
    let before = ctx.store.last_change_seq().await.expect("seq");
    let fenced = ctx.store.commit(batch("late work").create_pool(super::pool("q")).fenced(old_fence.clone())).await;
    match fenced {
        Err(StoreError::Fenced { fence, current }) => {
            assert_eq!(fence, old_fence);
            assert_eq!(current, "epoch 2 is held by b");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(matches!(ctx.store.pool(&"q".parse().expect("valid")).await, Err(StoreError::NotFound { .. })));
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), before, "nothing written");
    let renew = ctx.store.commit(batch("renew").renew_lease(old_fence.clone())).await;
    assert!(matches!(renew, Err(StoreError::Fenced { .. })), "{renew:?}");
    let release = ctx.store.commit(batch("release").release_lease(old_fence)).await;
    assert!(matches!(release, Err(StoreError::Fenced { .. })), "{release:?}");
    assert_eq!(ctx.store.lease(&leader()).await.expect("read").expect("held").holder, Some(replica("b")));
}

pub(crate) async fn a_released_lease_is_taken_at_once(ctx: &Ctx) {
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("a"), None)).await.expect("acquire");
    let fence = ctx.store.lease(&leader()).await.expect("read").expect("held").fence().expect("held");
    ctx.store.commit(batch("shutting down").release_lease(fence.clone())).await.expect("release");
    let released = ctx.store.lease(&leader()).await.expect("read").expect("stored");
    assert_eq!((released.holder, released.epoch), (None, 1));
    let fenced = ctx.store.commit(batch("late").create_pool(super::pool("p")).fenced(fence)).await;
    assert!(matches!(fenced, Err(StoreError::Fenced { ref current, .. }) if current == "released in epoch 1"));
    // No observation needed: nobody holds it.
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("b"), None)).await.expect("acquire");
    let lease = ctx.store.lease(&leader()).await.expect("read").expect("held");
    assert_eq!((lease.holder, lease.epoch), (Some(replica("b")), 2));
    assert_eq!(lease_changes(ctx).await, [(ChangeOp::Created, 1), (ChangeOp::Updated, 2), (ChangeOp::Updated, 3)]);
}

pub(crate) async fn a_restarted_holder_takes_its_lease_back_at_the_next_epoch(ctx: &Ctx) {
    ctx.store.commit(batch("elect").acquire_lease(leader(), replica("a"), None)).await.expect("acquire");
    let before = ctx.store.lease(&leader()).await.expect("read").expect("held").fence().expect("held");
    ctx.store.commit(batch("restarted").acquire_lease(leader(), replica("a"), None)).await.expect("re-acquire");
    let lease = ctx.store.lease(&leader()).await.expect("read").expect("held");
    assert_eq!((lease.holder, lease.epoch), (Some(replica("a")), 2));
    // The previous incarnation's writes are fenced.
    let fenced = ctx.store.commit(batch("old incarnation").create_pool(super::pool("p")).fenced(before)).await;
    assert!(matches!(fenced, Err(StoreError::Fenced { .. })), "{fenced:?}");
}

pub(crate) async fn replicas_announce_themselves_and_old_ones_are_forgotten(ctx: &Ctx) {
    use bosun_core::ReplicaPresence;
    let presence = |id: &str, address: &str, seen| ReplicaPresence {
        replica_id: replica(id),
        address: address.to_owned(),
        started_at: ctx.now(),
        last_seen: seen,
    };
    let start = ctx.now();
    let long_ago = start - std::time::Duration::from_secs(3600);
    ctx.store.record_replica(&presence("b", "http://b:50051", start), long_ago).await.expect("record");
    ctx.store.record_replica(&presence("a", "http://a:50051", start), long_ago).await.expect("record");
    ctx.clock.advance(std::time::Duration::from_secs(2));
    // A later announcement moves last_seen on; an older one never moves it back.
    ctx.store.record_replica(&presence("a", "http://a:50052", ctx.now()), long_ago).await.expect("record");
    ctx.store.record_replica(&presence("b", "http://b:50051", long_ago), long_ago).await.expect("record");
    let listed = ctx.store.list_replicas().await.expect("list");
    let seen: Vec<(&str, &str, bosun_core::Timestamp)> =
        listed.iter().map(|r| (r.replica_id.as_str(), r.address.as_str(), r.last_seen)).collect();
    assert_eq!(seen, [("a", "http://a:50052", ctx.now()), ("b", "http://b:50051", start)]);
    // A replica not seen since the cut-off is forgotten by the next announcement.
    ctx.store.record_replica(&presence("a", "http://a:50052", ctx.now()), ctx.now()).await.expect("record");
    let listed = ctx.store.list_replicas().await.expect("list");
    assert_eq!(listed.iter().map(|r| r.replica_id.as_str()).collect::<Vec<_>>(), ["a"]);
    let refused = ctx.store.record_replica(&presence("c", &"x".repeat(600), ctx.now()), long_ago).await;
    assert!(matches!(refused, Err(StoreError::Invalid(_))), "{refused:?}");
}
