//! Pools (SPEC 3.6), first slice: min_nodes is reached through the fake provider without
//! over-provisioning while machines boot, and a failing provider is backed off, then used.

use std::time::Duration;

use bosun_api::v1;
use bosun_core::PoolSpec;
use bosun_provider::ProviderError;
use bosun_provider::fake::FakeSettings;
use bosun_store::{Backend, InstanceFilter, PageRequest};

use crate::harness::*;

on_sql_backends!(a_pool_reaches_min_nodes_without_over_provisioning, a_failing_provider_is_backed_off_then_used);

fn spec(min: u32) -> PoolSpec {
    let mut spec = PoolSpec::single_provider("fake", "h100-8x", min, 10);
    spec.region = "local".into();
    spec
}

async fn instance_states(h: &Harness) -> Vec<v1::InstanceState> {
    let listed = h.root().list_instances(v1::ListInstancesRequest::default()).await.expect("list").into_owned();
    listed.instances.iter().map(|i| i.state.as_known().expect("state")).collect()
}

async fn a_pool_reaches_min_nodes_without_over_provisioning(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(3), FakeSettings::default()).await
    else {
        return;
    };
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(instance_states(&h).await.len(), 3, "min_nodes without an autoscaling block");
    // Again and again while the machines boot: booting instances count.
    for _ in 0..3 {
        h.server().reconcile_pools().await.expect("reconcile");
    }
    assert_eq!(cloud.live_count(), 3, "nothing provisioned twice");
    let mut states = Vec::new();
    for _ in 0..400 {
        states = instance_states(&h).await;
        if states.iter().all(|s| *s == v1::InstanceState::INSTANCE_STATE_RUNNING) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(states, [v1::InstanceState::INSTANCE_STATE_RUNNING; 3], "each agent registered and linked");
    let nodes = h.root().list_nodes(v1::ListNodesRequest { pool: "training".into(), ..Default::default() }).await;
    assert_eq!(nodes.expect("nodes").into_owned().nodes.len(), 3);
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 3);
    let pool = h.server().store().pool(&"training".parse().expect("name")).await.expect("pool");
    let decision = pool.status.last_decision.expect("decision stored");
    assert_eq!((decision.current, decision.target), (3, 3), "{}", decision.reason);
    h.stop().await;
}

async fn a_failing_provider_is_backed_off_then_used(backend: Backend) {
    let Some((h, cloud)) = Harness::start_with_fake_pool(backend, "training", spec(1), FakeSettings::default()).await
    else {
        return;
    };
    let name = "training".parse().expect("name");
    cloud.fail_next(2, ProviderError::Unavailable { provider: "fake".into(), message: "HTTP 503".into() });
    h.server().reconcile_pools().await.expect("reconcile");
    let pool = h.server().store().pool(&name).await.expect("pool");
    let backoff = pool.status.provider_backoff.get("fake").expect("backed off");
    assert_eq!(backoff.consecutive_failures, 1);
    assert!(backoff.last_error.contains("503"));
    let reason = pool.status.last_decision.expect("decision").reason;
    assert!(reason.contains("could not provision"), "{reason}");

    // Within the backoff nothing is tried.
    h.server().reconcile_pools().await.expect("reconcile");
    let failed = InstanceFilter { states: vec![bosun_core::InstanceState::Failed], ..Default::default() };
    let count = |h: &Harness| {
        let store = h.server().store();
        let filter = failed.clone();
        async move { store.list_instances(&filter, &PageRequest::first(100)).await.expect("list").items.len() }
    };
    assert_eq!(count(&h).await, 1, "one attempt, recorded as a FAILED instance");
    h.clock.advance(Duration::from_secs(31));
    h.server().reconcile_pools().await.expect("reconcile");
    let pool = h.server().store().pool(&name).await.expect("pool");
    assert_eq!(pool.status.provider_backoff["fake"].consecutive_failures, 2, "30 s later: tried, failed again");
    h.clock.advance(Duration::from_secs(59));
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 0, "the 60 s backoff still holds");
    h.clock.advance(Duration::from_secs(2));
    h.server().reconcile_pools().await.expect("reconcile");
    assert_eq!(cloud.live_count(), 1, "used once the backoff ran out");
    let pool = h.server().store().pool(&name).await.expect("pool");
    assert!(pool.status.provider_backoff.is_empty(), "a success resets the backoff");
    h.stop().await;
}
