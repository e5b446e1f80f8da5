//! A limit on failed authentications per peer address.
//!
//! Without it, a caller could try tokens as fast as the server answers (15,000 in 3 s
//! were measured). Each peer address may fail [`BURST`] times at once, then once per
//! [`REFILL`]; beyond that every request from the address is answered 429 with
//! `Retry-After`, *before* its token is looked at, so guesses during the penalty learn
//! nothing. Successful requests cost nothing. Agents behind one NAT address share the
//! allowance; a misconfigured agent retrying with backoff stays far below it.
//!
//! The algorithm is a generic cell rate (GCRA): one timestamp per address, the time at
//! which its allowance will be whole again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_core::{Clock, Timestamp};

/// Failures a peer may make at once.
pub(crate) const BURST: u32 = 20;
/// Time for one failure to be forgiven.
pub(crate) const REFILL: Duration = Duration::from_secs(3);
/// Addresses remembered before the forgiven ones are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub(crate) struct FailedAuthLimiter {
    clock: Arc<dyn Clock>,
    /// Per address: when its allowance is whole again.
    whole_at: Mutex<HashMap<IpAddr, Timestamp>>,
}

impl FailedAuthLimiter {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, whole_at: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Timestamp>> {
        self.whole_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(retry_after)` while `peer` has no failure left to spend.
    pub(crate) fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        let Some(&whole_at) = self.lock().get(&peer) else { return Ok(()) };
        let owed = whole_at.saturating_since(now);
        let burst = REFILL * BURST;
        if owed + REFILL > burst {
            // The next failure would exceed the burst: wait until one is forgiven.
            return Err((owed + REFILL - burst).max(Duration::from_secs(1)));
        }
        Ok(())
    }

    /// Records a failed authentication by `peer`.
    pub(crate) fn failed(&self, peer: IpAddr) {
        let now = self.clock.now();
        let mut peers = self.lock();
        if peers.len() >= MAX_TRACKED {
            peers.retain(|_, whole_at| *whole_at > now);
        }
        let whole_at = peers.entry(peer).or_insert(now);
        *whole_at = (*whole_at).max(now) + REFILL;
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::FakeClock;

    use super::*;

    #[test]
    fn a_burst_of_failures_then_one_per_refill() {
        let clock = Arc::new(FakeClock::at_default_epoch());
        let limiter = FailedAuthLimiter::new(clock.clone());
        let peer: IpAddr = "192.0.2.7".parse().expect("address");
        let other: IpAddr = "192.0.2.8".parse().expect("address");
        for _ in 0..BURST {
            assert_eq!(limiter.check(peer), Ok(()));
            limiter.failed(peer);
        }
        assert_eq!(limiter.check(peer), Err(REFILL), "the burst is spent");
        assert_eq!(limiter.check(other), Ok(()), "per peer");
        clock.advance(REFILL);
        assert_eq!(limiter.check(peer), Ok(()), "one failure forgiven");
        limiter.failed(peer);
        assert!(limiter.check(peer).is_err());
        clock.advance(REFILL * BURST);
        assert_eq!(limiter.check(peer), Ok(()));
    }
}
