//! Which provider a pool provisions from next, and how a failing provider is backed off
//! (SPEC 3.6).
//!
//! Pure functions of the pool's providers, their stored backoff and what each provider
//! says about capacity and price. The reconciler tries the providers in the order given
//! and records a failure with [`ProviderBackoff::after_failure`]; a provider whose backoff
//! has run out is tried again, so a pool never wedges after a transient failure (Navarch's
//! selector did, reference/navarch.md 11).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::Timestamp;
use crate::pool::{PoolProvider, ProviderBackoff, SelectionStrategy};

/// The first backoff after a failure; it doubles with each further one.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);

impl ProviderBackoff {
    /// The backoff after one more failure: 30 s, 60 s, 120 s ... up to 10 min.
    pub fn after_failure(previous: Option<&ProviderBackoff>, now: Timestamp, error: &str) -> ProviderBackoff {
        let consecutive_failures = previous.map_or(0, |b| b.consecutive_failures).saturating_add(1);
        let doublings = consecutive_failures.saturating_sub(1).min(16);
        let delay = BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX);
        ProviderBackoff { consecutive_failures, retry_after: now + delay, last_error: error.to_owned() }
    }

    /// Whether the provider is still being left alone at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        now < self.retry_after
    }
}

/// What a provider reports about the pool's instance type right now, when it can.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Offer {
    /// US dollars per hour.
    pub price_per_hour: Option<f64>,
    /// Whether it has capacity in the pool's region.
    pub has_capacity: Option<bool>,
}

/// One provider of a pool, with what the reconciler knows about it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub provider: &'a PoolProvider,
    /// The pool's live instances (PROVISIONING, PENDING_REGISTRATION, RUNNING) on it.
    pub live_instances: u32,
    pub offer: Offer,
}

/// Providers to try, best first, and the ones left out with why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    pub order: Vec<String>,
    pub skipped: Vec<(String, String)>,
}

/// Orders `candidates` by `strategy`, leaving out providers in backoff at `now`.
///
/// - priority: lowest `priority` first.
/// - round-robin: the provider furthest below its weighted share of the pool's live
///   instances first (stateless, so it survives restarts); weight 0 is never picked.
/// - availability: providers reporting capacity first, unknown next, none last.
/// - cost: cheapest known price first, unknown prices last.
///
/// Ties keep the lower priority, then configuration order.
pub fn select(
    strategy: SelectionStrategy,
    candidates: &[Candidate<'_>],
    backoff: &BTreeMap<String, ProviderBackoff>,
    now: Timestamp,
) -> Selection {
    let mut selection = Selection::default();
    let mut usable: Vec<(usize, &Candidate<'_>)> = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        let name = &candidate.provider.name;
        if let Some(b) = backoff.get(name).filter(|b| b.is_active(now)) {
            selection.skipped.push((
                name.clone(),
                format!(
                    "backing off until {} after {} failure(s): {}",
                    b.retry_after, b.consecutive_failures, b.last_error
                ),
            ));
        } else if strategy == SelectionStrategy::RoundRobin && candidate.provider.weight == 0 {
            selection.skipped.push((name.clone(), "weight 0".to_owned()));
        } else {
            usable.push((index, candidate));
        }
    }
    let tie = |a: &(usize, &Candidate<'_>), b: &(usize, &Candidate<'_>)| {
        a.1.provider.priority.cmp(&b.1.provider.priority).then(a.0.cmp(&b.0))
    };
    usable.sort_by(|a, b| {
        let primary = match strategy {
            SelectionStrategy::Priority => Ordering::Equal,
            SelectionStrategy::RoundRobin => {
                // Compare (live + 1) / weight without floating point.
                let share = |c: &Candidate<'_>| (u64::from(c.live_instances) + 1, u64::from(c.provider.weight));
                let ((an, ad), (bn, bd)) = (share(a.1), share(b.1));
                (an * bd).cmp(&(bn * ad))
            }
            SelectionStrategy::Availability => {
                let rank = |c: &Candidate<'_>| match c.offer.has_capacity {
                    Some(true) => 0,
                    None => 1,
                    Some(false) => 2,
                };
                rank(a.1).cmp(&rank(b.1))
            }
            SelectionStrategy::Cost => {
                let price = |c: &Candidate<'_>| c.offer.price_per_hour.filter(|p| p.is_finite() && *p >= 0.0);
                match (price(a.1), price(b.1)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            }
        };
        primary.then_with(|| tie(a, b))
    });
    selection.order = usable.into_iter().map(|(_, c)| c.provider.name.clone()).collect();
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, priority: u32, weight: u32) -> PoolProvider {
        PoolProvider { name: name.into(), priority, weight, regions: Vec::new(), instance_type: None }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000)
    }

    #[test]
    fn backoff_doubles_from_30_seconds_to_10_minutes() {
        let mut backoff: Option<ProviderBackoff> = None;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let next = ProviderBackoff::after_failure(backoff.as_ref(), t(0), "503");
            delays.push(next.retry_after.saturating_since(t(0)).as_secs());
            backoff = Some(next);
        }
        assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600, 600]);
        let b = backoff.expect("set");
        assert!(b.is_active(t(599)) && !b.is_active(t(600)), "tried again once it runs out");
        let far = ProviderBackoff { consecutive_failures: u32::MAX, ..b };
        assert_eq!(ProviderBackoff::after_failure(Some(&far), t(0), "x").retry_after, t(600), "no overflow");
    }

    #[test]
    fn strategies_order_providers() {
        let (a, b, c) = (provider("a", 2, 1), provider("b", 1, 3), provider("c", 3, 0));
        let offers = [
            Offer { price_per_hour: Some(30.0), has_capacity: Some(false) },
            Offer { price_per_hour: None, has_capacity: None },
            Offer { price_per_hour: Some(20.0), has_capacity: Some(true) },
        ];
        let live = [0, 0, 0];
        let candidates: Vec<Candidate<'_>> = [&a, &b, &c]
            .iter()
            .zip(offers)
            .zip(live)
            .map(|((p, offer), live_instances)| Candidate { provider: p, live_instances, offer })
            .collect();
        let none = BTreeMap::new();
        let order = |s| select(s, &candidates, &none, t(0)).order;
        assert_eq!(order(SelectionStrategy::Priority), ["b", "a", "c"]);
        assert_eq!(order(SelectionStrategy::Availability), ["c", "b", "a"]);
        assert_eq!(order(SelectionStrategy::Cost), ["c", "a", "b"]);
        let rr = select(SelectionStrategy::RoundRobin, &candidates, &none, t(0));
        assert_eq!(rr.order, ["b", "a"]);
        assert_eq!(rr.skipped, [("c".to_owned(), "weight 0".to_owned())]);
    }

    #[test]
    fn round_robin_follows_weights_as_the_pool_grows() {
        let (a, b) = (provider("a", 1, 1), provider("b", 1, 3));
        let mut live = [0u32, 0];
        let mut picks = String::new();
        for _ in 0..8 {
            let candidates = [
                Candidate { provider: &a, live_instances: live[0], offer: Offer::default() },
                Candidate { provider: &b, live_instances: live[1], offer: Offer::default() },
            ];
            let first = select(SelectionStrategy::RoundRobin, &candidates, &BTreeMap::new(), t(0)).order[0].clone();
            live[usize::from(first == "b")] += 1;
            picks.push_str(&first);
        }
        assert_eq!(live, [2, 6], "3:1 weights give a 3:1 split: {picks}");
    }

    #[test]
    fn providers_in_backoff_are_skipped_until_it_runs_out() {
        let (a, b) = (provider("a", 1, 1), provider("b", 2, 1));
        let candidates = [
            Candidate { provider: &a, live_instances: 0, offer: Offer::default() },
            Candidate { provider: &b, live_instances: 0, offer: Offer::default() },
        ];
        let mut backoff = BTreeMap::new();
        backoff.insert("a".to_owned(), ProviderBackoff::after_failure(None, t(0), "capacity"));
        let during = select(SelectionStrategy::Priority, &candidates, &backoff, t(10));
        assert_eq!(during.order, ["b"]);
        assert!(during.skipped[0].1.contains("backing off") && during.skipped[0].1.contains("capacity"));
        assert_eq!(select(SelectionStrategy::Priority, &candidates, &backoff, t(30)).order, ["a", "b"]);
        backoff.insert("b".to_owned(), ProviderBackoff::after_failure(None, t(20), "503"));
        assert!(select(SelectionStrategy::Priority, &candidates, &backoff, t(25)).order.is_empty(), "all backing off");
    }
}
