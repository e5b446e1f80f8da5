//! The per-token rate limit on MCP requests (`mcp.rate_limit_per_second`).
//!
//! A generic cell rate (GCRA), like `auth_limit.rs`: one timestamp per token name, the
//! time at which its allowance will be whole again, on the injected clock. A token may
//! make `rate` requests at once, then one every `1/rate` s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bosun_core::{Clock, Timestamp};

/// Token names remembered before the ones with a whole allowance are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub(crate) struct TokenRateLimiter {
    clock: Arc<dyn Clock>,
    /// The time one request costs.
    interval: Duration,
    /// Requests allowed at once.
    burst: u32,
    whole_at: Mutex<HashMap<String, Timestamp>>,
}

impl TokenRateLimiter {
    pub(crate) fn new(clock: Arc<dyn Clock>, per_second: u32) -> Self {
        let per_second = per_second.max(1);
        Self {
            clock,
            interval: Duration::from_secs(1) / per_second,
            burst: per_second,
            whole_at: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one request of `token`'s allowance, or `Err(retry_after)` when none is left.
    pub(crate) fn check(&self, token: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut tokens = self.whole_at.lock().unwrap_or_else(|p| p.into_inner());
        let owed = tokens.get(token).map_or(Duration::ZERO, |whole_at| whole_at.saturating_since(now));
        let burst = self.interval * self.burst;
        if owed + self.interval > burst {
            return Err(owed + self.interval - burst);
        }
        if tokens.len() >= MAX_TRACKED && !tokens.contains_key(token) {
            tokens.retain(|_, whole_at| *whole_at > now);
        }
        tokens.insert(token.to_owned(), now + owed + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bosun_core::FakeClock;

    use super::*;

    #[test]
    fn a_burst_of_rate_then_one_per_interval_per_token() {
        let clock = Arc::new(FakeClock::at_default_epoch());
        let limiter = TokenRateLimiter::new(clock.clone(), 4);
        for _ in 0..4 {
            assert_eq!(limiter.check("oncall"), Ok(()));
        }
        assert_eq!(limiter.check("oncall"), Err(Duration::from_millis(250)), "the burst is spent");
        assert_eq!(limiter.check("root"), Ok(()), "per token");
        clock.advance(Duration::from_millis(250));
        assert_eq!(limiter.check("oncall"), Ok(()));
        assert!(limiter.check("oncall").is_err());
        clock.advance(Duration::from_secs(1));
        for _ in 0..4 {
            assert_eq!(limiter.check("oncall"), Ok(()));
        }
        assert!(limiter.check("oncall").is_err());
    }
}
