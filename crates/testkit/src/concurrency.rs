//! Requests in flight at an emulator: the most seen at once (what a client's concurrency
//! bound is checked against), and an optional limit beyond which requests are refused, as
//! Twilio refuses an account's requests over its concurrency limit (429, code 20429).

use std::sync::{Arc, Mutex, PoisonError};

/// What the emulator saw, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConcurrencyStats {
    /// Requests being served right now.
    pub in_flight: usize,
    /// The most requests served at once (refused ones are not served).
    pub max_in_flight: usize,
    /// Requests refused because the limit was reached.
    pub refused: u64,
    /// The limit, if any.
    pub limit: Option<usize>,
}

/// Shared by an emulator's handlers.
#[derive(Debug, Default)]
pub(crate) struct Concurrency {
    state: Mutex<ConcurrencyStats>,
}

/// Held while a request is served; dropping it (also when the client goes away) ends it.
pub(crate) struct InFlight(Arc<Concurrency>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

impl Concurrency {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConcurrencyStats> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admit one request, or `Err(in flight now)` when the limit is reached.
    pub(crate) fn admit(self: &Arc<Self>) -> Result<InFlight, usize> {
        let mut s = self.lock();
        if s.limit.is_some_and(|limit| s.in_flight >= limit) {
            s.refused += 1;
            return Err(s.in_flight);
        }
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        Ok(InFlight(Arc::clone(self)))
    }

    pub(crate) fn set_limit(&self, limit: Option<usize>) {
        self.lock().limit = limit;
    }

    pub(crate) fn stats(&self) -> ConcurrencyStats {
        *self.lock()
    }

    /// Start counting afresh (the limit stays).
    pub(crate) fn reset(&self) {
        let mut s = self.lock();
        s.max_in_flight = s.in_flight;
        s.refused = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_counts_the_most_at_once() {
        let c = Arc::new(Concurrency::default());
        c.set_limit(Some(2));
        let a = c.admit().unwrap();
        let b = c.admit().unwrap();
        assert_eq!(c.admit().err(), Some(2));
        drop(a);
        let _c = c.admit().unwrap();
        drop(b);
        let s = c.stats();
        assert_eq!((s.in_flight, s.max_in_flight, s.refused), (1, 2, 1));
        c.reset();
        assert_eq!(c.stats().max_in_flight, 1);
    }
}
