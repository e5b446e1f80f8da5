//! The change log: one record per mutation, in commit order, queryable by resource,
//! sequence range and actor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Actor, ChangeOp, Health, Heartbeat, NodeTrigger, ResourceKind};

use super::{Ctx, RegisterExt, batch, new_node};
use crate::query::ChangeFilter;
use crate::write::WriteBatch;

pub(crate) async fn records_create_update_delete_with_actor_reason_and_snapshot(ctx: &Ctx) {
    let node = new_node("n1", ctx.now());
    let agent = Actor::Node(node.id.clone());
    ctx.store.commit(WriteBatch::new(agent.clone(), "registered").register(node.clone())).await.expect("create");
    let mut node = ctx.store.node(&node.id).await.expect("get");
    node.apply(NodeTrigger::Cordon, "kernel upgrade", ctx.now()).expect("legal");
    let operator = Actor::operator("alice");
    ctx.store
        .commit(WriteBatch::new(operator.clone(), "kernel upgrade").update_node(node.clone()))
        .await
        .expect("update");
    let liveness = Actor::system("retention");
    ctx.store
        .commit(WriteBatch::new(liveness.clone(), "expired").delete_node(node.id.clone(), None))
        .await
        .expect("delete");

    let log = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "n1"), 10).await.expect("log");
    let summary: Vec<_> = log.iter().map(|c| (c.op, c.revision.get(), c.actor.clone(), c.reason.as_str())).collect();
    assert_eq!(
        summary,
        [
            (ChangeOp::Created, 1, agent, "registered"),
            (ChangeOp::Updated, 2, operator, "kernel upgrade"),
            (ChangeOp::Deleted, 2, liveness, "expired"),
        ]
    );
    assert_eq!(log[1].resource["status"], "CORDONED");
    assert_eq!(log[1].resource["revision"], 2);
    assert_eq!(log[1].resource["gpu_count"], 8);
    let restored: bosun_core::Node = serde_json::from_value(log[1].resource.clone()).expect("snapshot is a node");
    assert_eq!(restored.status, bosun_core::NodeStatus::Cordoned);
}

pub(crate) async fn sequence_is_strictly_increasing(ctx: &Ctx) {
    for i in 0..10 {
        ctx.create_node(&format!("n{i}")).await;
    }
    let log = ctx.store.list_changes(&ChangeFilter::default(), 100).await.expect("log");
    assert_eq!(log.len(), 10);
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(log.last().map(|c| c.seq), Some(ctx.store.last_change_seq().await.expect("seq")));
    let ids: Vec<_> = log.iter().map(|c| c.resource_id.clone()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("n{i}")).collect::<Vec<_>>(), "log order is commit order");
}

pub(crate) async fn history_of_one_resource(ctx: &Ctx) {
    let mut a = ctx.create_node("a").await;
    ctx.create_node("b").await;
    for health in [Health::Healthy, Health::Degraded, Health::Healthy] {
        a.health = health;
        ctx.store.commit(batch("report").update_node(a.clone())).await.expect("update");
        a = ctx.store.node(&a.id).await.expect("get");
    }
    let history = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "a"), 100).await.expect("log");
    let revisions: Vec<_> = history.iter().map(|c| c.revision.get()).collect();
    assert_eq!(revisions, [1, 2, 3, 4]);
    let healths: Vec<_> =
        history.iter().map(|c| c.resource["health"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(healths, ["UNKNOWN", "HEALTHY", "DEGRADED", "HEALTHY"]);
    let commands = ctx
        .store
        .list_changes(&ChangeFilter { kind: Some(ResourceKind::Command), ..Default::default() }, 100)
        .await
        .expect("log");
    assert!(commands.is_empty());
}

pub(crate) async fn sequence_ranges_and_limits(ctx: &Ctx) {
    for i in 0..10 {
        ctx.create_node(&format!("n{i}")).await;
    }
    let all = ctx.store.list_changes(&ChangeFilter::default(), 100).await.expect("log");
    let (s2, s5) = (all[2].seq, all[5].seq);
    let range = ctx
        .store
        .list_changes(&ChangeFilter { after_seq: s2, up_to_seq: Some(s5), ..Default::default() }, 100)
        .await
        .expect("range");
    assert_eq!(range.iter().map(|c| c.seq).collect::<Vec<_>>(), all[3..=5].iter().map(|c| c.seq).collect::<Vec<_>>());
    let limited =
        ctx.store.list_changes(&ChangeFilter { after_seq: s2, ..Default::default() }, 2).await.expect("limited");
    assert_eq!(limited.iter().map(|c| c.seq).collect::<Vec<_>>(), [all[3].seq, all[4].seq]);
    let past_end = ctx
        .store
        .list_changes(&ChangeFilter { after_seq: all[9].seq, ..Default::default() }, 100)
        .await
        .expect("empty");
    assert!(past_end.is_empty());
}

pub(crate) async fn by_actor(ctx: &Ctx) {
    let alice = Actor::operator("alice");
    let bob = Actor::operator("bob");
    for (i, who) in [&alice, &bob, &alice].into_iter().enumerate() {
        let node = new_node(&format!("n{i}"), ctx.now());
        ctx.store.commit(WriteBatch::new(who.clone(), "provision").register(node)).await.expect("create");
    }
    let by_alice =
        ctx.store.list_changes(&ChangeFilter { actor: Some(alice), ..Default::default() }, 100).await.expect("audit");
    let ids: Vec<_> = by_alice.iter().map(|c| c.resource_id.as_str()).collect();
    assert_eq!(ids, ["n0", "n2"]);
}

pub(crate) async fn snapshots_exclude_soft_state(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    ctx.store.record_heartbeats(&[Heartbeat { node_id: node.id.clone(), at: ctx.now() }]).await.expect("heartbeat");
    node.health = Health::Healthy;
    ctx.store.commit(batch("report").update_node(node)).await.expect("update");
    let log = ctx.store.list_changes(&ChangeFilter::resource(ResourceKind::Node, "n1"), 10).await.expect("log");
    for change in log {
        assert!(change.resource.get("last_heartbeat").is_none(), "soft state must not be in snapshots");
    }
}

pub(crate) async fn time_comes_from_the_injected_clock(ctx: &Ctx) {
    ctx.clock.advance(Duration::from_secs(3600));
    let expected = ctx.now();
    ctx.create_node("n1").await;
    let log = ctx.store.list_changes(&ChangeFilter::default(), 10).await.expect("log");
    assert_eq!(log[0].at, expected);
}

pub(crate) async fn concurrent_writers_leave_a_complete_ordered_log(ctx: &Ctx) {
    const WRITERS: usize = 8;
    const NODES_EACH: usize = 10;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&ctx.store);
        let now = ctx.now();
        tasks.push(tokio::spawn(async move {
            for i in 0..NODES_EACH {
                let node = new_node(&format!("w{w}-n{i}"), now);
                store.commit(batch("concurrent").register(node)).await.expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let log = ctx.store.list_changes(&ChangeFilter::default(), 1000).await.expect("log");
    assert_eq!(log.len(), WRITERS * NODES_EACH);
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    let ids: BTreeSet<_> = log.iter().map(|c| c.resource_id.clone()).collect();
    assert_eq!(ids.len(), WRITERS * NODES_EACH);
    // Reading in slices by sequence ranges reassembles exactly the whole log.
    let mut after = 0;
    let mut pieces = Vec::new();
    loop {
        let slice =
            ctx.store.list_changes(&ChangeFilter { after_seq: after, ..Default::default() }, 7).await.expect("slice");
        let Some(last) = slice.last() else { break };
        after = last.seq;
        pieces.extend(slice.into_iter().map(|c| c.seq));
    }
    assert_eq!(pieces, log.iter().map(|c| c.seq).collect::<Vec<_>>());
}
