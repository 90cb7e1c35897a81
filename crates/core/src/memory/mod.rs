//! [`MemoryStore`]: every store port in memory, for tests.
//!
//! It implements [`Store`](crate::ports::Store) with the rules the port docs state and the
//! store contract suite (`crates/store-contract`) checks, and it runs that suite like the
//! PostgreSQL and SQLite stores do (`crates/store-contract/tests/memory.rs`). The use-case
//! unit tests run against it, so a use case tested here meets the same rules as in
//! production.
//!
//! One mutex guards every table: each method holds it from its first read to its last
//! write, which makes every method atomic, as the ports ask ("exactly one caller wins").
//! Times are this process's clock.
//!
//! Compiled for core's own tests and with the `memory-store` feature, which only test code
//! enables (a dev-dependency): no production build carries it.

mod calls;
mod fleet;
mod integrations;
mod jobs;
mod leases;
mod outbound;
mod tables;
mod voice_url;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ports::{StoreError, StoreHealth};

pub(crate) use tables::Tables;

/// Every store port in memory. Cloning is cheap: clones share the tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

/// The only migration there is: creating the tables.
const MIGRATION: &str = "memory-1";

impl MemoryStore {
    /// A migrated, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose tables do not exist yet: every method answers `NotMigrated` until
    /// [`MemoryStore::migrate`] runs (as a fresh database would).
    pub fn unmigrated() -> Self {
        let store = Self::default();
        store.lock().unmigrated = true;
        store
    }

    /// Create the tables; the migrations applied (none the second time).
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut t = self.lock();
        if !t.unmigrated {
            return Ok(Vec::new());
        }
        t.unmigrated = false;
        Ok(vec![MIGRATION.to_owned()])
    }

    /// How many times the port method `method` was called (for tests that count round
    /// trips to the store).
    pub fn calls_to(&self, method: &str) -> usize {
        self.lock().journal.calls.get(method).copied().unwrap_or(0)
    }

    /// Port methods called so far, of every port.
    pub fn total_calls(&self) -> usize {
        self.lock().journal.calls.values().sum()
    }

    /// The storage keys of the leases won so far, in order.
    pub fn leases_won(&self) -> Vec<String> {
        self.lock().journal.leases_won.clone()
    }

    /// Forget the calls and leases counted so far.
    pub fn clear_journal(&self) {
        self.lock().journal = tables::Journal::default();
    }

    /// The tables, for a test that puts the store in a state no port method produces (a
    /// row another version wrote, time that passed). Everything else goes through the ports.
    #[cfg(test)]
    pub(crate) fn tables(&self) -> MutexGuard<'_, Tables> {
        self.lock()
    }

    /// A panic while the lock was held left no half-written row behind that matters to a
    /// test store: every method writes only after its checks.
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tables for one call of the port method `method`, counted.
    fn enter(&self, method: &'static str) -> Result<MutexGuard<'_, Tables>, StoreError> {
        let mut t = self.lock();
        *t.journal.calls.entry(method).or_default() += 1;
        if t.unmigrated {
            return Err(StoreError::NotMigrated(format!(
                "{method}: the memory store's tables do not exist yet"
            )));
        }
        Ok(t)
    }
}

/// `ttl` from now; a ttl beyond the calendar is the end of time.
fn until(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// At most `limit` of `items`.
fn take<T>(items: impl IntoIterator<Item = T>, limit: u32) -> Vec<T> {
    items
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect()
}

#[async_trait]
impl StoreHealth for MemoryStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.enter("check_ready").map(drop)
    }
}
