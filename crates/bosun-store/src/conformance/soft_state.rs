//! Soft state: batched heartbeats and bounded metric samples.

use std::time::Duration;

use bosun_core::{GpuSample, Heartbeat, MetricSample, NodeId, Timestamp};

use super::{Ctx, RegisterExt, batch, new_node, node_id};
use crate::query::{NodeFilter, PageRequest};

pub(crate) fn sample(node: &NodeId, at: Timestamp) -> MetricSample {
    MetricSample {
        node_id: node.clone(),
        at,
        cpu_percent: 37.5,
        memory_percent: 61.25,
        gpus: (0..8)
            .map(|i| GpuSample {
                index: i,
                temperature_c: 60.0 + f64::from(i),
                power_w: 420.5,
                utilization_percent: 87.5,
                memory_used_bytes: 40 << 30,
            })
            .collect(),
    }
}

fn beat(node: &str, at: Timestamp) -> Heartbeat {
    Heartbeat { node_id: node_id(node), at }
}

pub(crate) async fn heartbeats_update_last_heartbeat(ctx: &Ctx) {
    ctx.create_node("n1").await;
    ctx.create_node("n2").await;
    let at = ctx.now() + Duration::from_secs(5);
    assert_eq!(ctx.store.record_heartbeats(&[beat("n1", at)]).await.expect("record"), 1);
    assert_eq!(ctx.store.node(&node_id("n1")).await.expect("get").last_heartbeat, Some(at));
    assert_eq!(ctx.store.node(&node_id("n2")).await.expect("get").last_heartbeat, None);
    let listed = ctx.store.list_nodes(&NodeFilter::default(), &PageRequest::first(10)).await.expect("list");
    assert_eq!(listed.items[0].last_heartbeat, Some(at), "lists carry the last heartbeat too");
}

pub(crate) async fn heartbeats_never_move_backwards(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let later = ctx.now() + Duration::from_secs(10);
    ctx.store.record_heartbeats(&[beat("n1", later)]).await.expect("record");
    ctx.store.record_heartbeats(&[beat("n1", ctx.now() + Duration::from_secs(5))]).await.expect("record");
    assert_eq!(ctx.store.node(&node_id("n1")).await.expect("get").last_heartbeat, Some(later));
}

pub(crate) async fn heartbeats_of_unknown_nodes_are_skipped(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let recorded = ctx.store.record_heartbeats(&[beat("ghost", ctx.now()), beat("n1", ctx.now())]).await;
    assert_eq!(recorded.expect("an unknown node must not fail the batch"), 1);
    assert_eq!(ctx.store.record_heartbeats(&[]).await.expect("empty batch"), 0);
}

pub(crate) async fn duplicate_heartbeats_in_a_batch_keep_the_latest(ctx: &Ctx) {
    ctx.create_node("n1").await;
    let t = ctx.now();
    let batch = [
        beat("n1", t + Duration::from_secs(3)),
        beat("n1", t + Duration::from_secs(9)),
        beat("n1", t + Duration::from_secs(6)),
    ];
    assert_eq!(ctx.store.record_heartbeats(&batch).await.expect("record"), 1);
    assert_eq!(ctx.store.node(&node_id("n1")).await.expect("get").last_heartbeat, Some(t + Duration::from_secs(9)));
}

pub(crate) async fn heartbeats_change_no_revision_and_write_no_change_record(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let seq = ctx.store.last_change_seq().await.expect("seq");
    ctx.store.record_heartbeats(&[beat("n1", ctx.now())]).await.expect("record");
    assert_eq!(ctx.store.node(&node.id).await.expect("get").revision, node.revision);
    assert_eq!(ctx.store.last_change_seq().await.expect("seq"), seq);
    // A compare-and-set update computed before the heartbeat still succeeds.
    ctx.store.commit(batch("update").update_node(node)).await.expect("heartbeats do not conflict with CAS");
}

pub(crate) async fn heartbeats_list_the_newest_per_node_in_pages(ctx: &Ctx) {
    for id in ["n1", "n2", "n3", "silent"] {
        ctx.create_node(id).await;
    }
    let t = ctx.now();
    let beats = [
        beat("n3", t + Duration::from_secs(3)),
        beat("n1", t + Duration::from_secs(1)),
        beat("n2", t + Duration::from_secs(2)),
    ];
    ctx.store.record_heartbeats(&beats).await.expect("record");
    ctx.store.record_heartbeats(&[beat("n1", t + Duration::from_secs(7))]).await.expect("record");
    let first = ctx.store.list_heartbeats(&PageRequest::first(2)).await.expect("first page");
    assert_eq!(first.items, [beat("n1", t + Duration::from_secs(7)), beat("n2", t + Duration::from_secs(2))]);
    let next = PageRequest { limit: 2, after: first.next };
    assert!(next.after.is_some(), "a full page has a next one");
    let second = ctx.store.list_heartbeats(&next).await.expect("second page");
    assert_eq!(second.items, [beat("n3", t + Duration::from_secs(3))], "a node never heard from is not listed");
    assert!(second.next.is_none());
    ctx.store.commit(batch("forget").delete_node(node_id("n2"), None)).await.expect("delete");
    let all = ctx.store.list_heartbeats(&PageRequest::first(10)).await.expect("list");
    let ids: Vec<&str> = all.items.iter().map(|hb| hb.node_id.as_str()).collect();
    assert_eq!(ids, ["n1", "n3"], "a deleted node's heartbeat goes with it");
    let error = ctx.store.list_heartbeats(&PageRequest::first(0)).await.expect_err("page size 0");
    assert!(matches!(error, crate::StoreError::Invalid(_)), "{error:?}");
}

pub(crate) async fn metric_samples_round_trip_oldest_first(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let samples: Vec<_> = [20, 0, 10].iter().map(|s| sample(&node.id, ctx.now() + Duration::from_secs(*s))).collect();
    assert_eq!(ctx.store.record_metric_samples(&samples).await.expect("record"), 3);
    let read = ctx.store.metric_samples(&node.id, Timestamp::UNIX_EPOCH).await.expect("read");
    let mut expected = samples.clone();
    expected.sort_by_key(|s| s.at);
    assert_eq!(read, expected);
    let since = ctx.store.metric_samples(&node.id, ctx.now() + Duration::from_secs(10)).await.expect("read");
    assert_eq!(since.len(), 2);
}

pub(crate) async fn metric_samples_are_bounded_per_node(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    // Test stores keep 6 samples over 60 s: one per 10 s bucket.
    for i in 0..20 {
        let s = sample(&node.id, ctx.now() + Duration::from_secs(i * 10));
        ctx.store.record_metric_samples(&[s]).await.expect("record");
    }
    let read = ctx.store.metric_samples(&node.id, Timestamp::UNIX_EPOCH).await.expect("read");
    let offsets: Vec<_> = read.iter().map(|s| s.at.saturating_since(ctx.now()).as_secs()).collect();
    assert_eq!(offsets, [140, 150, 160, 170, 180, 190], "only the newest samples are kept");
    // Two samples in one bucket: the later wins, the earlier is refused afterwards.
    let late = sample(&node.id, ctx.now() + Duration::from_secs(195));
    assert_eq!(ctx.store.record_metric_samples(&[late]).await.expect("record"), 1);
    let stale = sample(&node.id, ctx.now() + Duration::from_secs(191));
    assert_eq!(ctx.store.record_metric_samples(&[stale]).await.expect("record"), 0);
    let newest = ctx.store.metric_samples(&node.id, Timestamp::UNIX_EPOCH).await.expect("read");
    assert_eq!(newest.last().map(|s| s.at), Some(ctx.now() + Duration::from_secs(195)));
}

pub(crate) async fn metric_samples_outside_the_window_are_not_returned(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let t0 = ctx.now();
    let samples = [sample(&node.id, t0), sample(&node.id, t0 + Duration::from_secs(10))];
    ctx.store.record_metric_samples(&samples).await.expect("record");
    ctx.clock.advance(Duration::from_secs(65));
    let read = ctx.store.metric_samples(&node.id, Timestamp::UNIX_EPOCH).await.expect("read");
    assert_eq!(read.iter().map(|s| s.at).collect::<Vec<_>>(), [t0 + Duration::from_secs(10)]);
    assert!(ctx.store.metric_samples(&node.id, t0 + Duration::from_secs(20)).await.expect("read").is_empty());
    crate::conformance::assert_err!(
        ctx.store.metric_samples(&node_id("ghost"), t0).await,
        crate::conformance::E::NotFound { .. }
    );
}

pub(crate) async fn metric_samples_of_unknown_nodes_are_skipped(ctx: &Ctx) {
    let node = ctx.create_node("n1").await;
    let samples = [sample(&node_id("ghost"), ctx.now()), sample(&node.id, ctx.now())];
    assert_eq!(ctx.store.record_metric_samples(&samples).await.expect("record"), 1);
}

pub(crate) async fn large_soft_state_batches(ctx: &Ctx) {
    const NODES: usize = 1000;
    let mut b = batch("bulk");
    for i in 0..NODES {
        b = b.register(new_node(&format!("n{i:04}"), ctx.now()));
    }
    ctx.store.commit(b).await.expect("bulk register");
    let t0 = ctx.now();
    let mut beats = Vec::new();
    let mut samples = Vec::new();
    for round in 0..10u64 {
        for i in 0..NODES {
            let id = node_id(&format!("n{i:04}"));
            let at = t0 + Duration::from_secs(round * 10);
            beats.push(Heartbeat { node_id: id.clone(), at });
            samples.push(sample(&id, at));
        }
    }
    assert_eq!(beats.len(), 10_000);
    assert_eq!(ctx.store.record_heartbeats(&beats).await.expect("heartbeats"), NODES as u64);
    // Ten samples per node fall into ten buckets of a six-slot ring: six survive.
    assert_eq!(ctx.store.record_metric_samples(&samples).await.expect("samples"), 6 * NODES as u64);
    let last = t0 + Duration::from_secs(90);
    let node = ctx.store.node(&node_id("n0999")).await.expect("get");
    assert_eq!(node.last_heartbeat, Some(last));
    let kept = ctx.store.metric_samples(&node.id, Timestamp::UNIX_EPOCH).await.expect("read");
    assert_eq!(kept.len(), 6);
    assert_eq!(kept.last().map(|s| s.at), Some(last));
}
