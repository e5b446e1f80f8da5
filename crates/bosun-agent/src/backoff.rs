//! Exponential backoff with jitter, for every retry the agent makes.
//!
//! Jitter matters at fleet scale: after a control-plane restart a hundred thousand agents
//! retry at once, and without it they would keep arriving in lockstep. Each agent seeds its
//! own generator from its node id, so a simulation replays identically.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The shape of a backoff sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Each delay is scaled by a random factor in `1 ± jitter` (0.2 = ±20 %).
    pub jitter: f64,
}

impl BackoffPolicy {
    /// Registration: patient, because an agent that cannot register is useless anyway.
    pub const REGISTRATION: BackoffPolicy =
        BackoffPolicy { initial: Duration::from_secs(1), max: Duration::from_secs(60), multiplier: 2.0, jitter: 0.2 };

    /// Heartbeats, health reports, polls and acknowledgements after a transient error.
    pub const CALLS: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(30),
        multiplier: 2.0,
        jitter: 0.2,
    };
}

/// A running backoff sequence: call [`Backoff::next_delay`] after each failure and
/// [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Self { policy, attempt: 0, rng: SmallRng::seed_from_u64(seed) }
    }

    /// The delay before the next try: `initial × multiplier^failures`, capped at `max`,
    /// then jittered (the jittered value never exceeds `max` by more than the jitter).
    pub fn next_delay(&mut self) -> Duration {
        let p = &self.policy;
        let exponent = i32::try_from(self.attempt).unwrap_or(i32::MAX);
        let base = (p.initial.as_secs_f64() * p.multiplier.powi(exponent)).min(p.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let factor = if p.jitter > 0.0 { 1.0 + self.rng.random_range(-p.jitter..=p.jitter) } else { 1.0 };
        Duration::from_secs_f64((base * factor).max(0.0))
    }

    /// How many delays were handed out since the last reset.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A stable 64-bit seed for `text` (FNV-1a), so per-node randomness is reproducible.
pub(crate) fn seed_from(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        let policy = BackoffPolicy::REGISTRATION;
        let mut backoff = Backoff::new(policy, 7);
        for expected in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0] {
            let delay = backoff.next_delay().as_secs_f64();
            assert!((expected * 0.8..=expected * 1.2).contains(&delay), "{delay} not within 20% of {expected}");
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= Duration::from_millis(1200));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delays = |seed| {
            let mut b = Backoff::new(BackoffPolicy::CALLS, seed);
            (0..5).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays(seed_from("node-1")), delays(seed_from("node-1")));
        assert_ne!(delays(seed_from("node-1")), delays(seed_from("node-2")));
    }
}
