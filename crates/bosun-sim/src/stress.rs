//! Stress mode's generated fleet: who the nodes are and when each boots.
//!
//! Follows Navarch's `fleet_gen` (reference/navarch.md 9.3): weighted templates, providers
//! and regions (chosen over sorted keys so a seed always yields the same fleet), node ids
//! `<provider>-<region>-<template>-<index>`, and the start-up patterns. Unlike Navarch,
//! a node's cold start delays that node only (Navarch's linear pattern waited out every
//! cold start in turn), and every random choice comes from the one seeded generator.

use std::collections::BTreeMap;
use std::time::Duration;

use bosun_core::{Labels, NodeId};
use rand::Rng;
use rand::rngs::SmallRng;

use crate::agents::NodeSpec;
use crate::scenario::{FleetGen, Startup, StartupPattern, Template};

/// A generated node and when it boots (simulated time since the start).
#[derive(Debug, Clone)]
pub struct Planned {
    pub spec: NodeSpec,
    pub start_at: Duration,
}

/// Nodes in one rack, for cascading failures scoped to a rack.
pub const RACK_SIZE: u32 = 16;

fn default_templates() -> Vec<Template> {
    vec![Template {
        name: "h100-8gpu".into(),
        weight: 1,
        gpu_count: 8,
        gpu_type: "NVIDIA H100 80GB HBM3".into(),
        instance_type: String::new(),
        labels: BTreeMap::new(),
        price_per_hour: None,
    }]
}

fn default_providers() -> BTreeMap<String, u32> {
    [("gcp", 50), ("aws", 35), ("lambda", 15)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn default_regions() -> BTreeMap<String, u32> {
    [("us-central1", 30), ("us-east1", 25), ("us-west1", 20), ("europe-west1", 15), ("asia-east1", 10)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Picks a key by weight; `weights` iterate in sorted order, so the pick is reproducible.
pub fn weighted<'a, K>(weights: impl IntoIterator<Item = (&'a K, u32)> + Clone, rng: &mut SmallRng) -> Option<&'a K>
where
    K: 'a,
{
    let total: u64 = weights.clone().into_iter().map(|(_, w)| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.random_range(0..total);
    for (key, weight) in weights {
        let weight = u64::from(weight);
        if roll < weight {
            return Some(key);
        }
        roll -= weight;
    }
    None
}

/// Navarch's instance type for a template that names none.
fn default_instance_type(provider: &str, gpus: u32) -> String {
    match provider {
        "gcp" => format!("a3-highgpu-{gpus}g"),
        "aws" if gpus == 8 => "p5.48xlarge".into(),
        "aws" => "p4d.24xlarge".into(),
        "lambda" => format!("gpu_{gpus}x_h100"),
        _ => "generic-gpu".into(),
    }
}

/// The whole fleet with start times, in index order.
pub fn generate(fleet: &FleetGen, rng: &mut SmallRng) -> Vec<Planned> {
    let templates = if fleet.templates.is_empty() { default_templates() } else { fleet.templates.clone() };
    let providers = if fleet.providers.is_empty() { default_providers() } else { fleet.providers.clone() };
    let regions = if fleet.regions.is_empty() { default_regions() } else { fleet.regions.clone() };
    let startup = fleet.startup.clone().unwrap_or_default();
    let starts = start_times(fleet.total_nodes, &startup, rng);
    let mut planned = Vec::with_capacity(fleet.total_nodes as usize);
    for (index, start_at) in (0..fleet.total_nodes).zip(starts) {
        let template = weighted(templates.iter().map(|t| (t, t.weight)), rng).expect("templates have weights");
        let provider = weighted(providers.iter().map(|(k, w)| (k, *w)), rng).cloned().unwrap_or_else(|| "gcp".into());
        let region =
            weighted(regions.iter().map(|(k, w)| (k, *w)), rng).cloned().unwrap_or_else(|| "us-central1".into());
        let zone = match fleet.zones.get(&region).filter(|z| !z.is_empty()) {
            Some(zones) => zones[rng.random_range(0..zones.len())].clone(),
            None => format!("{region}-{}", ['a', 'b', 'c', 'd'][rng.random_range(0..4)]),
        };
        let id: NodeId = format!("{provider}-{region}-{}-{index:04}", template.name)
            .parse()
            .unwrap_or_else(|_| format!("node-{index:05}").parse().expect("a valid node id"));
        let mut labels = template.labels.clone();
        labels.insert("template".into(), template.name.clone());
        labels.insert("generated".into(), "true".into());
        labels.insert("index".into(), index.to_string());
        labels.insert("rack".into(), format!("{zone}-r{:03}", index / RACK_SIZE));
        // Template labels were validated with the scenario; generated ones are plain.
        let labels = Labels::try_from(labels).unwrap_or_default();
        let instance_type = if template.instance_type.is_empty() {
            default_instance_type(&provider, template.gpu_count)
        } else {
            template.instance_type.clone()
        };
        planned.push(Planned {
            spec: NodeSpec {
                id,
                provider,
                region,
                zone,
                instance_type,
                gpu_count: template.gpu_count,
                gpu_type: template.gpu_type.clone(),
                labels,
                price_per_hour: template.price_per_hour,
            },
            start_at: start_at + cold_start(&startup, rng),
        });
    }
    planned
}

fn jittered(interval: Duration, jitter_percent: f64, rng: &mut SmallRng) -> Duration {
    if jitter_percent <= 0.0 {
        return interval;
    }
    let spread = (jitter_percent / 100.0).min(1.0);
    interval.mul_f64(1.0 + rng.random_range(-spread..=spread))
}

/// When each node's machine is started, before its cold start.
fn start_times(total: u32, startup: &Startup, rng: &mut SmallRng) -> Vec<Duration> {
    let pattern = startup.pattern.unwrap_or_default();
    let jitter = startup.jitter_percent.unwrap_or(if startup.pattern.is_none() { 10.0 } else { 0.0 });
    let n = total as usize;
    match pattern {
        StartupPattern::Instant => vec![Duration::ZERO; n],
        StartupPattern::Linear => {
            let duration = startup.duration.map_or(Duration::from_secs(30), |d| d.0);
            let interval = duration / total.max(1);
            let mut at = Duration::ZERO;
            (0..n)
                .map(|_| {
                    let this = at;
                    at += jittered(interval, jitter, rng);
                    this
                })
                .collect()
        }
        StartupPattern::Exponential => {
            let duration = startup.duration.map_or(Duration::from_secs(120), |d| d.0);
            // Batches of 1, 2, 4, ... until everyone is placed.
            let rounds = (u64::from(total) + 1).next_power_of_two().trailing_zeros().max(1);
            let interval = duration / rounds;
            let mut times = Vec::with_capacity(n);
            let mut batch = 1usize;
            let mut at = Duration::ZERO;
            while times.len() < n {
                times.extend(std::iter::repeat_n(at, batch.min(n - times.len())));
                batch *= 2;
                at += jittered(interval, jitter, rng);
            }
            times
        }
        StartupPattern::Wave => {
            let duration = startup.duration.map_or(Duration::from_secs(300), |d| d.0);
            let batch = startup.batch_size.unwrap_or(100).max(1) as usize;
            let batches = n.div_ceil(batch).max(1);
            let interval = duration / u32::try_from(batches).unwrap_or(u32::MAX);
            let mut at = Duration::ZERO;
            let mut times = Vec::with_capacity(n);
            for _ in 0..batches {
                times.extend(std::iter::repeat_n(at, batch.min(n - times.len())));
                at += jittered(interval, jitter, rng);
            }
            times
        }
    }
}

/// A cold start: normal(mean, stddev) clamped to [min, max] when a mean is given, else
/// uniform over [min, max), else none.
pub fn cold_start(startup: &Startup, rng: &mut SmallRng) -> Duration {
    let min = startup.cold_start_min.map_or(Duration::ZERO, |d| d.0);
    let max = startup.cold_start_max.map(|d| d.0);
    if let Some(mean) = startup.cold_start_mean {
        let sd = startup.cold_start_stddev.map_or(Duration::ZERO, |d| d.0);
        let value = normal(rng, mean.0.as_secs_f64(), sd.as_secs_f64()).max(min.as_secs_f64());
        let value = max.map_or(value, |max| value.min(max.as_secs_f64()));
        return Duration::from_secs_f64(value.max(0.0));
    }
    match max {
        Some(max) if max > min => Duration::from_secs_f64(rng.random_range(min.as_secs_f64()..max.as_secs_f64())),
        _ => min,
    }
}

/// A normal variate (Box-Muller).
pub fn normal(rng: &mut SmallRng, mean: f64, sd: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests;
