//! Atomicity: a batch commits entirely or leaves no trace.

use bosun_core::{Health, NodeStatus, Revision};

use super::{Ctx, E, RegisterExt, assert_err, batch, new_node, node_id};
use crate::query::{ChangeFilter, NodeFilter};
use crate::write::WriteOutcome;

pub(crate) async fn failed_batch_leaves_no_rows_and_no_change_records(ctx: &Ctx) {
    ctx.create_node("existing").await;
    let seq_before = ctx.store.last_change_seq().await.expect("seq");
    let counts_before = ctx.store.counts().await.expect("counts");
    let mut invalid = new_node("n3", ctx.now());
    invalid.status_reason = "\u{7}".into();
    let failing = batch("register three")
        .register(new_node("n1", ctx.now()))
        .register(new_node("n2", ctx.now()))
        .create_instance(
            bosun_core::Instance::start_provisioning(super::instance_request("i1"), ctx.now()).expect("new"),
        )
        .register(invalid);
    assert_err!(ctx.store.commit(failing).await, E::Invalid(_));
    assert_eq!(ctx.node_ids(&NodeFilter::default()).await, ["existing"]);
    assert_eq!(ctx.store.counts().await.expect("counts"), counts_before);
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), seq_before);
    let changes = ctx.store.list_changes(&ChangeFilter { after_seq: seq_before, ..Default::default() }, 10).await;
    assert!(changes.expect("log").is_empty());
    // The store is still writable and sequence numbers carry on without reuse problems.
    ctx.store.commit(batch("retry").register(new_node("n1", ctx.now()))).await.expect("retry");
    assert!(ctx.store.last_change_seq().await.expect("seq") > seq_before);
}

pub(crate) async fn conflict_midway_rolls_back_earlier_writes(ctx: &Ctx) {
    let a = ctx.create_node("a").await;
    let mut b = ctx.create_node("b").await;
    b.health = Health::Healthy;
    ctx.store.commit(batch("bump b").update_node(b)).await.expect("bump");
    let mut a_edit = a.clone();
    a_edit.health = Health::Degraded;
    let mut b_stale = new_node("b", ctx.now());
    b_stale.registered_at = a.registered_at;
    b_stale.revision = Revision::FIRST; // b is at revision 2 now
    let result = ctx.store.commit(batch("both").update_node(a_edit).update_node(b_stale)).await;
    assert_err!(result, E::Conflict { .. });
    let a_now = ctx.store.node(&node_id("a")).await.expect("get");
    assert_eq!((a_now.health, a_now.revision.get()), (a.health, 1), "the first write was rolled back");
}

pub(crate) async fn outcomes_report_revisions_and_sequences(ctx: &Ctx) {
    let mut node = ctx.create_node("n1").await;
    node.apply(bosun_core::NodeTrigger::Cordon, "maintenance", ctx.now()).expect("legal");
    let seq_before = ctx.store.last_change_seq().await.expect("seq");
    let committed =
        ctx.store.commit(batch("mixed").update_node(node).register(new_node("n2", ctx.now()))).await.expect("commit");
    match committed.outcomes.as_slice() {
        [
            WriteOutcome::Resource { revision: r1, change_seq: s1 },
            WriteOutcome::Resource { revision: r2, change_seq: s2 },
        ] => {
            assert_eq!((r1.get(), r2.get()), (2, 1));
            assert!(*s1 > seq_before && s2 > s1, "sequence numbers follow batch order");
        }
        other => panic!("unexpected outcomes {other:?}"),
    }
    assert_eq!(committed.last_change_seq(), Some(ctx.store.last_change_seq().await.expect("seq")));
    assert_eq!(ctx.store.node(&node_id("n1")).await.expect("get").status, NodeStatus::Cordoned);
}

pub(crate) async fn same_record_twice_in_one_batch(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let mut first = node.clone();
    first.apply(bosun_core::NodeTrigger::Cordon, "cordon", ctx.now()).expect("legal");
    let mut second = first.clone();
    second.revision = Revision::new(2).expect("valid");
    second.apply(bosun_core::NodeTrigger::Drain, "drain", ctx.now()).expect("legal");
    let committed =
        ctx.store.commit(batch("cordon then drain").update_node(first).update_node(second)).await.expect("commit");
    assert_eq!(committed.revision(1).get(), 3);
    assert_eq!(ctx.store.node(&node.id).await.expect("get").status, NodeStatus::Draining);
}

pub(crate) async fn empty_batch_is_a_no_op(ctx: &Ctx) {
    let committed = ctx.store.commit(batch("nothing")).await.expect("commit");
    assert!(committed.outcomes.is_empty());
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), 0);
}

pub(crate) async fn concurrent_failing_batches_do_not_affect_others(ctx: &Ctx) {
    // Stores may commit concurrent batches together (SQLite's group commit); a failing
    // batch must still fail alone.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = std::sync::Arc::clone(&ctx.store);
        let mut node = new_node(&format!("n{i:02}"), ctx.now());
        if i % 3 == 0 {
            node.status_reason = "\u{7}".into();
        }
        tasks.push(tokio::spawn(async move { (i, store.commit(batch("concurrent").register(node)).await) }));
    }
    for task in tasks {
        let (i, result) = task.await.expect("task");
        match (i % 3 == 0, result) {
            (true, Err(crate::StoreError::Invalid(_))) | (false, Ok(_)) => {}
            (bad, other) => panic!("batch {i} (invalid: {bad}) got {other:?}"),
        }
    }
    assert_eq!(ctx.store.counts().await.expect("counts").nodes, 16);
    assert_eq!(ctx.store.list_changes(&ChangeFilter::default(), 100).await.expect("log").len(), 16);
    assert!(ctx.store.check_integrity().await.expect("check").is_empty());
}
