//! A per-customer token bucket: credential checks (`credentials:verify` and save, which
//! verifies again) are guesses at a carrier secret when they fail, so each customer gets a
//! few per minute.
//!
//! The buckets live in this process: with several instances behind a load balancer a
//! customer gets the allowance once per instance, which still bounds guessing to a rate
//! the carrier's own limits and the audit trail make visible.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trunkline_core::{CustomerId, ErrorCode};

use crate::error::ApiError;

/// Buckets kept before full (idle) ones are dropped: bounds memory whatever the number
/// of customers.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Up to `burst` checks at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct Throttle {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<CustomerId, Bucket>>,
}

impl Throttle {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_minute.max(1)) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `customer`, or answer `RATE_LIMITED` with how long until one
    /// is back (`Retry-After`).
    ///
    /// # Errors
    /// The customer's bucket is empty.
    pub fn check(&self, customer: &CustomerId) -> Result<(), ApiError> {
        self.take(customer, Instant::now()).map_err(|wait| {
            ApiError::new(
                ErrorCode::RateLimited,
                "too many credential checks for this customer; retry after the time in the \
                 Retry-After header",
            )
            .with_retry_after(wait)
        })
    }

    fn take(&self, customer: &CustomerId, now: Instant) -> Result<(), Duration> {
        // A poisoned lock only means another request panicked mid-update; the counts
        // are still usable.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
        }
        let bucket = buckets.entry(customer.clone()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                updated: now,
            };
            Ok(())
        } else {
            *bucket = Bucket {
                tokens,
                updated: now,
            };
            // Whole seconds, rounded up: `Retry-After` has no fractions.
            Err(Duration::from_secs_f64(
                ((1.0 - tokens) / self.per_second).ceil().max(1.0),
            ))
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        (b.tokens + elapsed * self.per_second).min(self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(s: &str) -> CustomerId {
        CustomerId::parse(s).unwrap()
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let t = Throttle::new(10, 5);
        let a = customer("a");
        let start = Instant::now();
        for _ in 0..5 {
            assert!(t.take(&a, start).is_ok());
        }
        let wait = t.take(&a, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        // Another customer has its own bucket.
        assert!(t.take(&customer("b"), start).is_ok());
        // One token back after 6 s (10 a minute), not two.
        let later = start + Duration::from_secs(6);
        assert!(t.take(&a, later).is_ok());
        assert!(t.take(&a, later).is_err());
    }
}
