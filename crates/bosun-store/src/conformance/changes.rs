//! The change log: one record per mutation, in commit order, queryable by resource,
//! sequence range and actor.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bosun_core::{Actor, ChangeOp, Health, Heartbeat, NodeTrigger, ResourceKind};

use super::{Ctx, RegisterExt, batch, new_node};
use crate::query::ChangeFilter;
use crate::testing::test_options;
use crate::write::WriteBatch;
use crate::{Backend, ChangeSignal, ChangeSignals, open_store};

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

/// A store that gives change signals hears every commit to its database, another
/// handle's as well as its own, keeps hearing them after its listening connection is cut
/// (and says it listens again, since what was committed meanwhile was not heard), and
/// stops signalling when closed. A store that gives none is one only its own process
/// writes to.
pub(crate) async fn commits_of_every_writer_are_signalled(ctx: &Ctx) {
    let Some(mut signals) = ctx.store.change_signals().await else {
        assert_ne!(ctx.store.backend(), Backend::Postgres, "servers share PostgreSQL: it must signal their commits");
        return;
    };
    let location = &ctx.test_store().location;
    let other = open_store(location, test_options(ctx.clock.clone())).await.expect("a second handle");
    wait_for(&mut signals, "listening", |s| s.connections >= 1).await;

    let theirs = commit_node(&other, "theirs", ctx).await;
    wait_for(&mut signals, "another handle's commit", |s| s.seq >= theirs).await;
    let ours = commit_node(&ctx.store, "ours", ctx).await;
    wait_for(&mut signals, "its own commit", |s| s.seq >= ours).await;

    let connections = signals.latest().connections;
    assert_eq!(crate::testing::cut_change_listeners(location).await, 1, "one store listens");
    wait_for(&mut signals, "listening again", |s| s.connections > connections).await;
    let later = commit_node(&other, "later", ctx).await;
    wait_for(&mut signals, "a commit after the cut", |s| s.seq >= later).await;

    other.close().await;
    ctx.store.close().await;
    let ended = tokio::time::timeout(SIGNAL_WAIT, async { while signals.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "a closed store stops signalling");
    assert!(ctx.store.change_signals().await.is_none(), "nor does it start again");
}

/// How long a test waits for a signal before it fails.
const SIGNAL_WAIT: Duration = Duration::from_secs(10);

async fn commit_node(store: &crate::SharedStore, id: &str, ctx: &Ctx) -> u64 {
    let committed = store.commit(batch("register").register(new_node(id, ctx.now()))).await.expect("commit");
    committed.last_change_seq().expect("a change record")
}

async fn wait_for(signals: &mut ChangeSignals, what: &str, done: impl Fn(ChangeSignal) -> bool) {
    let heard = tokio::time::timeout(SIGNAL_WAIT, async {
        while !done(signals.latest()) {
            signals.next().await.expect("the store keeps signalling");
        }
    })
    .await;
    assert!(heard.is_ok(), "no signal for {what} within {SIGNAL_WAIT:?}: {:?}", signals.latest());
}
