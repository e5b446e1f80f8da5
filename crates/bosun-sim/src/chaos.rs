//! Stress mode's chaos: random failures, cascades, recoveries, scheduled outages and
//! replacement of nodes the control plane judged UNHEALTHY.
//!
//! The engine decides; the runner acts (it owns the nodes and the control plane client).
//! Each simulated second the number of failures is drawn for the rate asked
//! (`failure_rate` per minute per 1000 running nodes): the whole part of the expected
//! count, plus one more with the probability of the fraction, so any rate is honoured
//! (Navarch made one Bernoulli trial a second and so capped chaos at one failure a
//! second). Scopes match on the nodes' zone, region, provider and rack, not on id
//! prefixes (which made Navarch's "zone" mean provider plus region). Every draw comes from
//! one generator seeded from the scenario's seed.
//!
//! Cascades are bounded as a whole: one cascade (a failure and everything it sets off, to
//! `max_depth`) hits at most `max_affected_percent` of the scope it started in, and no node
//! twice, so even a high probability cannot run away. Correlated failures (Navarch's
//! `correlated_failures`) set off one further failure each and never chain.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bosun_agent::FaultKind;
use bosun_core::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::agents::SimNode;
use crate::scenario::{Chaos, CorrelationScope, FailureType, Outage, Scope, Startup, Trigger};
use crate::stress::{cold_start, normal, weighted};

/// Navarch's default XID mix: uniform over these.
const DEFAULT_XIDS: &[u32] = &[13, 31, 32, 43, 45, 48, 63, 64, 74, 79, 92, 94, 95];
const MIN_RECOVERY: Duration = Duration::from_secs(10);
const DEFAULT_RECOVERY_MEAN: Duration = Duration::from_secs(300);

/// What the runner should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum ChaosAction {
    Inject {
        node: NodeId,
        failure: FailureType,
        xid: Option<u32>,
        cascading: bool,
    },
    Recover {
        node: NodeId,
        failure: Option<FailureType>,
    },
    OutageStarted {
        name: String,
    },
    /// Power `old` off and boot `new` in its place.
    Replace {
        old: NodeId,
        new: NodeId,
    },
}

#[derive(Debug, Clone)]
enum Scheduled {
    CascadeHit {
        node: NodeId,
        depth: u32,
        cascade: u64,
    },
    /// A correlated failure set off by another.
    Correlated {
        node: NodeId,
        failure: FailureType,
    },
    Recover {
        node: NodeId,
        failure: FailureType,
    },
    OutageStart(usize),
    OutageEnd {
        nodes: Vec<NodeId>,
    },
    Replace {
        old: NodeId,
        new: NodeId,
    },
}

pub struct ChaosEngine {
    chaos: Chaos,
    /// `chaos.failure_types`, parsed once (validated with the scenario).
    failure_types: Vec<(FailureType, u32)>,
    startup: Startup,
    rng: SmallRng,
    next_second: Duration,
    /// Due actions by time; ties keep insertion order.
    queue: BTreeMap<(Duration, u64), Scheduled>,
    sequence: u64,
    replaced: BTreeSet<NodeId>,
    /// `chaos.correlated_failures`, parsed once (validated with the scenario).
    correlations: Vec<Correlation>,
    /// Live cascades: the hits each may still make, and the nodes it hit.
    cascades: BTreeMap<u64, Cascade>,
    next_cascade: u64,
}

#[derive(Debug, Clone)]
struct Correlation {
    trigger: Trigger,
    response: FailureType,
    probability: f64,
    delay: Duration,
    scope: CorrelationScope,
}

#[derive(Debug, Default)]
struct Cascade {
    remaining: usize,
    hit: BTreeSet<NodeId>,
    /// Hits scheduled and not yet made: the cascade is forgotten when none are left.
    outstanding: usize,
}

impl ChaosEngine {
    pub fn new(chaos: Chaos, startup: Startup, seed: u64) -> Self {
        let failure_types =
            chaos.failure_types.iter().filter_map(|f| f.kind.parse().ok().map(|k| (k, f.weight))).collect();
        let correlations = chaos
            .correlated_failures
            .iter()
            .filter_map(|rule| {
                Some(Correlation {
                    trigger: rule.trigger.0.parse().ok()?,
                    response: rule.response.parse().ok()?,
                    probability: rule.probability,
                    delay: rule.delay.map_or(Duration::ZERO, |d| d.0),
                    scope: rule.scope,
                })
            })
            .collect();
        let mut engine = Self {
            failure_types,
            correlations,
            cascades: BTreeMap::new(),
            next_cascade: 0,
            chaos,
            startup,
            rng: SmallRng::seed_from_u64(seed),
            next_second: Duration::from_secs(1),
            queue: BTreeMap::new(),
            sequence: 0,
            replaced: BTreeSet::new(),
        };
        for (i, outage) in engine.chaos.scheduled_outages.clone().iter().enumerate() {
            engine.schedule(outage.start_time.0, Scheduled::OutageStart(i));
        }
        engine
    }

    fn schedule(&mut self, at: Duration, what: Scheduled) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), what);
    }

    /// Whether [`ChaosEngine::tick`] has anything to do at `now`.
    pub fn is_due(&self, now: Duration) -> bool {
        now >= self.next_second || self.queue.first_key_value().is_some_and(|((at, _), _)| *at <= now)
    }

    /// Decides what happens at `now`; `live` are the running nodes, in id order.
    pub fn tick(&mut self, now: Duration, live: &[&SimNode], all: &BTreeMap<NodeId, SimNode>) -> Vec<ChaosAction> {
        let mut actions = Vec::new();
        while now >= self.next_second {
            self.next_second += Duration::from_secs(1);
            if live.is_empty() {
                continue;
            }
            let expected = self.chaos.failure_rate / 60.0 * live.len() as f64 / 1000.0;
            let mut count = expected.floor() as u64;
            if self.rng.random::<f64>() < expected.fract() {
                count += 1;
            }
            for _ in 0..count {
                let node = live[self.rng.random_range(0..live.len())];
                let failure = self.pick_failure();
                self.fail(now, node, failure, false, live, &mut actions);
                if let Some(c) = self.chaos.cascading.as_ref().filter(|c| c.enabled)
                    && self.rng.random::<f64>() < c.probability
                {
                    let cascade = self.start_cascade(node, live);
                    self.cascade_from(now, node, 1, cascade, live);
                    self.forget_finished(cascade);
                }
            }
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Scheduled::CascadeHit { node, depth, cascade } => {
                    if let Some(c) = self.cascades.get_mut(&cascade) {
                        c.outstanding = c.outstanding.saturating_sub(1);
                    }
                    let Some(sim) = all.get(&node).filter(|n| n.is_running()) else {
                        self.forget_finished(cascade);
                        continue;
                    };
                    self.fail(now, sim, FailureType::Gpu(FaultKind::Xid), true, live, &mut actions);
                    let max_depth = self.chaos.cascading.as_ref().and_then(|c| c.max_depth).unwrap_or(3);
                    let p = self.chaos.cascading.as_ref().map_or(0.0, |c| c.probability);
                    if depth < max_depth && self.rng.random::<f64>() < p {
                        self.cascade_from(now, sim, depth + 1, cascade, live);
                    }
                    self.forget_finished(cascade);
                }
                Scheduled::Correlated { node, failure } => {
                    let Some(sim) = all.get(&node).filter(|n| n.is_running()) else { continue };
                    self.inject(now, sim, failure, true, &mut actions);
                }
                Scheduled::Recover { node, failure } => {
                    actions.push(ChaosAction::Recover { node, failure: Some(failure) })
                }
                Scheduled::OutageStart(i) => {
                    let outage = self.chaos.scheduled_outages[i].clone();
                    let failure: FailureType = outage.failure_type.parse().unwrap_or(FailureType::Gpu(FaultKind::Xid));
                    let nodes: Vec<NodeId> =
                        live.iter().filter(|n| self.in_outage(&outage, n)).map(|n| n.spec.id.clone()).collect();
                    for node in &nodes {
                        let xid = (failure == FailureType::Gpu(FaultKind::Xid)).then_some(79);
                        actions.push(ChaosAction::Inject { node: node.clone(), failure, xid, cascading: false });
                    }
                    actions.push(ChaosAction::OutageStarted { name: outage.name.clone() });
                    self.schedule(now + outage.duration.0, Scheduled::OutageEnd { nodes });
                }
                Scheduled::OutageEnd { nodes } => {
                    actions.extend(nodes.into_iter().map(|node| ChaosAction::Recover { node, failure: None }));
                }
                Scheduled::Replace { old, new } => actions.push(ChaosAction::Replace { old, new }),
            }
        }
        actions
    }

    fn pick_failure(&mut self) -> FailureType {
        weighted(self.failure_types.iter().map(|(k, w)| (k, *w)), &mut self.rng)
            .copied()
            .unwrap_or(FailureType::Gpu(FaultKind::Xid))
    }

    fn pick_xid(&mut self) -> u32 {
        if self.chaos.xid_distribution.is_empty() {
            return DEFAULT_XIDS[self.rng.random_range(0..DEFAULT_XIDS.len())];
        }
        weighted(self.chaos.xid_distribution.iter().map(|(k, w)| (k, *w)), &mut self.rng).copied().unwrap_or(79)
    }

    /// One failure on `node`, its recovery if it is one that recovers, and the correlated
    /// failures it sets off.
    fn fail(
        &mut self,
        now: Duration,
        node: &SimNode,
        failure: FailureType,
        cascading: bool,
        live: &[&SimNode],
        actions: &mut Vec<ChaosAction>,
    ) {
        let xid = self.inject(now, node, failure, cascading, actions);
        self.correlate(now, node, failure, xid, live);
    }

    /// Injects one failure and schedules its recovery; returns the XID it drew, if any.
    fn inject(
        &mut self,
        now: Duration,
        node: &SimNode,
        failure: FailureType,
        cascading: bool,
        actions: &mut Vec<ChaosAction>,
    ) -> Option<u32> {
        let xid = (failure == FailureType::Gpu(FaultKind::Xid)).then(|| self.pick_xid());
        actions.push(ChaosAction::Inject { node: node.spec.id.clone(), failure, xid, cascading });
        // Application-class faults clear on their own; hardware-class XIDs stay until the
        // control plane acts (a GPU reset, a reboot, a replacement), as the catalog says.
        let recovers = xid.is_none_or(|code| !bosun_core::xid::is_hardware(code));
        if let Some(r) = self.chaos.recovery.as_ref().filter(|r| r.enabled)
            && recovers
            && self.rng.random::<f64>() < r.probability
        {
            let mean = r.mean_time.map_or(DEFAULT_RECOVERY_MEAN, |d| d.0);
            let sd = r.std_dev.map_or(mean / 4, |d| d.0);
            let after = Duration::from_secs_f64(normal(&mut self.rng, mean.as_secs_f64(), sd.as_secs_f64()).max(0.0))
                .max(MIN_RECOVERY);
            self.schedule(now + after, Scheduled::Recover { node: node.spec.id.clone(), failure });
        }
        xid
    }

    /// Schedules the correlated failures `failure` (with `xid`) on `origin` sets off.
    fn correlate(
        &mut self,
        now: Duration,
        origin: &SimNode,
        failure: FailureType,
        xid: Option<u32>,
        live: &[&SimNode],
    ) {
        for rule in self.correlations.clone() {
            let triggered = match rule.trigger {
                Trigger::Xid(code) => xid == Some(code),
                Trigger::Failure(kind) => kind == failure,
            };
            if !triggered || self.rng.random::<f64>() >= rule.probability {
                continue;
            }
            let candidates: Vec<&SimNode> = match rule.scope {
                CorrelationScope::SameNode => vec![origin],
                CorrelationScope::SameRack => live
                    .iter()
                    .copied()
                    .filter(|n| n.spec.id != origin.spec.id && same_scope(Scope::Rack, origin, n))
                    .collect(),
                CorrelationScope::SameZone => live
                    .iter()
                    .copied()
                    .filter(|n| n.spec.id != origin.spec.id && same_scope(Scope::Zone, origin, n))
                    .collect(),
                CorrelationScope::Random => live.to_vec(),
            };
            if candidates.is_empty() {
                continue;
            }
            let target = candidates[self.rng.random_range(0..candidates.len())].spec.id.clone();
            self.schedule(now + rule.delay, Scheduled::Correlated { node: target, failure: rule.response });
        }
    }

    /// A new cascade from `origin`: it may hit `max_affected_percent` of `origin`'s scope.
    fn start_cascade(&mut self, origin: &SimNode, live: &[&SimNode]) -> u64 {
        let scope_size = match self.chaos.cascading.as_ref() {
            Some(c) => {
                let scope = c.scope.unwrap_or(Scope::Zone);
                live.iter().filter(|n| n.spec.id != origin.spec.id && same_scope(scope, origin, n)).count()
            }
            None => 0,
        };
        let fraction = self
            .chaos
            .cascading
            .as_ref()
            .and_then(|c| c.max_affected_percent)
            .map_or(0.1, |p| if p > 1.0 { p / 100.0 } else { p });
        let remaining = ((scope_size as f64 * fraction).floor() as usize).max(1);
        self.next_cascade += 1;
        let mut cascade = Cascade { remaining, hit: BTreeSet::new(), outstanding: 0 };
        cascade.hit.insert(origin.spec.id.clone());
        self.cascades.insert(self.next_cascade, cascade);
        self.next_cascade
    }

    /// Drops a cascade that has no hit left to make.
    fn forget_finished(&mut self, cascade: u64) {
        if self.cascades.get(&cascade).is_some_and(|c| c.outstanding == 0) {
            self.cascades.remove(&cascade);
        }
    }

    fn cascade_from(&mut self, now: Duration, origin: &SimNode, depth: u32, cascade: u64, live: &[&SimNode]) {
        let Some(c) = self.chaos.cascading.clone() else { return };
        let Some(budget) = self.cascades.get(&cascade) else { return };
        if budget.remaining == 0 {
            return;
        }
        let scope = c.scope.unwrap_or(Scope::Zone);
        let peers: Vec<&SimNode> =
            live.iter().copied().filter(|n| !budget.hit.contains(&n.spec.id) && same_scope(scope, origin, n)).collect();
        if peers.is_empty() {
            return;
        }
        let count = self.rng.random_range(1..=budget.remaining.min(peers.len()));
        let min = c.min_delay.map_or(Duration::from_secs(1), |d| d.0);
        let max = c.max_delay.map_or(min + Duration::from_secs(9), |d| d.0).max(min);
        for _ in 0..count {
            let peer = peers[self.rng.random_range(0..peers.len())].spec.id.clone();
            let Some(budget) = self.cascades.get_mut(&cascade) else { return };
            if !budget.hit.insert(peer.clone()) {
                continue;
            }
            budget.remaining -= 1;
            budget.outstanding += 1;
            let delay = if max > min {
                Duration::from_secs_f64(self.rng.random_range(min.as_secs_f64()..max.as_secs_f64()))
            } else {
                min
            };
            self.schedule(now + delay, Scheduled::CascadeHit { node: peer, depth, cascade });
        }
    }

    fn in_outage(&mut self, outage: &Outage, node: &SimNode) -> bool {
        let target = outage.target.trim();
        match outage.scope {
            Scope::Zone => node.spec.zone == target,
            Scope::Region => node.spec.region == target,
            Scope::Provider => node.spec.provider == target,
            Scope::Rack => node.spec.labels.get("rack").is_some_and(|r| r == target),
            Scope::Percentage | Scope::Random => {
                let percent: f64 = target.trim_end_matches('%').trim().parse().unwrap_or(0.0);
                self.rng.random::<f64>() * 100.0 < percent
            }
        }
    }

    /// With `recovery.replace_fatal`, powers off a node the control plane judged
    /// UNHEALTHY and boots `<id>-gen<N+1>` after a cold start. Once per node.
    pub fn replace_later(&mut self, node: &NodeId, now: Duration) {
        let Some(r) = self.chaos.recovery.as_ref().filter(|r| r.enabled && r.replace_fatal) else { return };
        if !self.replaced.insert(node.clone()) {
            return;
        }
        let delay = match r.replace_cold_start {
            Some(d) => d.0,
            None if self.startup.cold_start_max.is_some() || self.startup.cold_start_mean.is_some() => {
                let startup = self.startup.clone();
                cold_start(&startup, &mut self.rng)
            }
            None => Duration::from_secs_f64(self.rng.random_range(30.0..60.0)),
        };
        let (base, generation) = match node.as_str().rsplit_once("-gen") {
            Some((base, n)) if n.parse::<u32>().is_ok() => (base.to_owned(), n.parse::<u32>().unwrap_or(0)),
            _ => (node.to_string(), 0),
        };
        if let Ok(new) = format!("{base}-gen{}", generation + 1).parse() {
            self.schedule(now + delay, Scheduled::Replace { old: node.clone(), new });
        }
    }
}

fn same_scope(scope: Scope, a: &SimNode, b: &SimNode) -> bool {
    match scope {
        Scope::Rack => a.spec.labels.get("rack") == b.spec.labels.get("rack"),
        Scope::Zone => a.spec.zone == b.spec.zone,
        Scope::Region => a.spec.region == b.spec.region,
        Scope::Provider => a.spec.provider == b.spec.provider,
        Scope::Random | Scope::Percentage => true,
    }
}

#[cfg(test)]
mod tests;
