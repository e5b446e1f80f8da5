//! What a soft-state flush writes, the same on every backend: the latest heartbeat per node
//! and the latest metric sample per ring slot (a SQL upsert takes one row per key).

use std::collections::HashMap;

use bosun_core::{Heartbeat, MetricSample, NodeId, Timestamp};

/// Keeps the latest heartbeat per node, as the SQL backends must (one upsert per row), in
/// node order so the database walks its index front to back.
pub(crate) fn dedupe_heartbeats(batch: &[Heartbeat]) -> Vec<Heartbeat> {
    let mut latest: HashMap<&NodeId, Timestamp> = HashMap::with_capacity(batch.len());
    for hb in batch {
        latest.entry(&hb.node_id).and_modify(|at| *at = (*at).max(hb.at)).or_insert(hb.at);
    }
    let mut deduped: Vec<Heartbeat> =
        latest.into_iter().map(|(node_id, at)| Heartbeat { node_id: node_id.clone(), at }).collect();
    deduped.sort_unstable_by(|a, b| a.node_id.cmp(&b.node_id));
    deduped
}

/// Keeps the latest sample per (node, ring slot), as the SQL backends must.
pub(crate) fn dedupe_samples<'a>(
    batch: &'a [MetricSample],
    retention: &crate::store::SampleRetention,
) -> Vec<(u32, &'a MetricSample)> {
    let mut latest: HashMap<(&NodeId, u32), &MetricSample> = HashMap::with_capacity(batch.len());
    for sample in batch {
        let key = (&sample.node_id, retention.slot(sample.at));
        latest
            .entry(key)
            .and_modify(|kept| {
                if sample.at >= kept.at {
                    *kept = sample;
                }
            })
            .or_insert(sample);
    }
    latest.into_iter().map(|((_, slot), sample)| (slot, sample)).collect()
}
