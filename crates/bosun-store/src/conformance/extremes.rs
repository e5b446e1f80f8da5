//! Extreme values: the largest integers and the earliest and latest times every backend
//! holds round-trip exactly; anything beyond is `Invalid` naming the field on every
//! backend (never clamped by one, refused by another, stored exactly by a third, and never
//! an outage).

use std::collections::BTreeMap;

use bosun_core::validation::MAX_STORED_INT;
use bosun_core::{
    ClassifiedEvent, EventType, Health, HealthEvent, HealthReport, HealthSystem, Node, Timestamp, Verdict,
};

use super::soft_state::sample;
use super::{Ctx, E, assert_err, batch, node_id, registration};
use crate::query::ChangeFilter;

fn node_with_gpu_memory(id: &str, ctx: &Ctx, memory_bytes: u64) -> (Node, Vec<bosun_core::node::Gpu>) {
    let mut registration = registration(id);
    registration.gpus[3].memory_bytes = memory_bytes;
    let node = Node::register(&registration, ctx.now()).expect("node");
    (node, registration.gpus)
}

pub(crate) async fn the_largest_storable_integers_round_trip_and_larger_ones_are_invalid(ctx: &Ctx) {
    let (node, gpus) = node_with_gpu_memory("n1", ctx, MAX_STORED_INT);
    ctx.store.commit(batch("register").create_node(node.clone(), gpus.clone())).await.expect("create");
    assert_eq!(ctx.store.node_gpus(&node.id).await.expect("inventory"), gpus);

    let (node, gpus) = node_with_gpu_memory("n2", ctx, MAX_STORED_INT + 1);
    let message = assert_err!(ctx.store.commit(batch("register").create_node(node, gpus)).await, E::Invalid(_));
    assert!(message.starts_with("invalid gpus[3].memory_bytes: 9223372036854775808 is above"), "{message}");
    assert_err!(ctx.store.node(&node_id("n2")).await, E::NotFound { .. });

    let mut reading = sample(&node_id("n1"), ctx.now());
    reading.gpus[5].memory_used_bytes = MAX_STORED_INT;
    assert_eq!(ctx.store.record_metric_samples(std::slice::from_ref(&reading)).await.expect("record"), 1);
    assert_eq!(ctx.store.metric_samples(&node_id("n1"), ctx.now()).await.expect("read"), [reading.clone()]);
    reading.gpus[5].memory_used_bytes = u64::MAX;
    let message = assert_err!(ctx.store.record_metric_samples(&[reading]).await, E::Invalid(_));
    assert!(message.starts_with("invalid samples[0].gpus[5].memory_used_bytes"), "{message}");

    // Sequence numbers past anything stored select nothing, on every backend.
    let beyond = ChangeFilter { after_seq: u64::MAX, ..ChangeFilter::default() };
    assert!(ctx.store.list_changes(&beyond, 10).await.expect("list").is_empty());
    let all = ChangeFilter { up_to_seq: Some(u64::MAX), ..ChangeFilter::default() };
    assert!(!ctx.store.list_changes(&all, 10).await.expect("list").is_empty());
    // After the upper bound (ListEvents bounds every read by the last sequence number):
    // nothing, where the memory store used to panic.
    let inverted = ChangeFilter { after_seq: u64::MAX, up_to_seq: Some(1), ..ChangeFilter::default() };
    assert!(ctx.store.list_changes(&inverted, 10).await.expect("list").is_empty());
    let equal = ChangeFilter { after_seq: 1, up_to_seq: Some(1), ..ChangeFilter::default() };
    assert!(ctx.store.list_changes(&equal, 10).await.expect("list").is_empty());
}

fn event_at(at: Timestamp) -> ClassifiedEvent {
    ClassifiedEvent {
        event: HealthEvent {
            timestamp: at,
            gpu_index: 0,
            gpu_uuid: String::new(),
            system: HealthSystem::Thermal,
            event_type: EventType::Thermal,
            metrics: BTreeMap::new(),
            message: "edge of time".into(),
        },
        verdict: Verdict::healthy(),
    }
}

pub(crate) async fn the_earliest_and_latest_times_round_trip_and_others_are_invalid(ctx: &Ctx) {
    let (node, gpus) = node_with_gpu_memory("n1", ctx, 1);
    ctx.store.commit(batch("register").create_node(node, gpus)).await.expect("create");
    let earliest = Timestamp::checked_from_unix_micros(*Timestamp::ACCEPTED_MICROS.start()).expect("in range");
    let latest = Timestamp::checked_from_unix_micros(*Timestamp::ACCEPTED_MICROS.end()).expect("in range");
    let report = HealthReport::new(node_id("n1"), ctx.now(), vec![], vec![event_at(earliest), event_at(latest)]);
    ctx.store.commit(batch("report").append_health_report(report.clone())).await.expect("append");
    let history = ctx.store.health_history(&node_id("n1"), 10).await.expect("history");
    assert_eq!(history[0].report, report, "both edges round-trip exactly");

    // Year 10,000 and beyond: refused, not clamped to the epoch or the edge.
    let beyond = Timestamp::from_unix_micros(*Timestamp::ACCEPTED_MICROS.end() + 1);
    let report = HealthReport::new(node_id("n1"), ctx.now(), vec![], vec![event_at(beyond)]);
    let message = assert_err!(ctx.store.commit(batch("report").append_health_report(report)).await, E::Invalid(_));
    assert!(message.starts_with("invalid events[0].timestamp"), "{message}");
    assert_eq!(report_health(ctx).await, Health::Healthy, "nothing was appended");
}

async fn report_health(ctx: &Ctx) -> Health {
    let history = ctx.store.health_history(&node_id("n1"), 10).await.expect("history");
    assert_eq!(history.len(), 1);
    history[0].report.health
}
