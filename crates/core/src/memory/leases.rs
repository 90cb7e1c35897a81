//! Leases: one holder per key until released or expired; a token per acquisition.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, Tables, until};
use crate::model::{Lease, LeaseKey, LeaseState};
use crate::ports::{LeaseStore, StoreError};

#[async_trait]
impl LeaseStore for MemoryStore {
    async fn try_acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut t = self.enter("try_acquire_lease")?;
        let now = Utc::now();
        if t.leases
            .get(&key.storage_key())
            .is_some_and(|l| l.expires_at > now)
        {
            return Ok(None);
        }
        Ok(Some(take(&mut t, key, holder, until(now, ttl))))
    }

    async fn try_acquire_lease_unchanged(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
        seen: Option<LeaseState>,
    ) -> Result<Option<Lease>, StoreError> {
        let mut t = self.enter("try_acquire_lease_unchanged")?;
        let now = Utc::now();
        let unchanged = match (t.leases.get(&key.storage_key()), seen) {
            (None, None) => true,
            (Some(stored), Some(seen)) => {
                !seen.held && stored.token == seen.token && stored.expires_at <= now
            }
            _ => false,
        };
        Ok(unchanged.then(|| take(&mut t, key, holder, until(now, ttl))))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut t = self.enter("renew_lease")?;
        // The token, not the holder's name: a holder whose lease was taken over (or that
        // released it) cannot extend the next holder's.
        match t.leases.get_mut(&lease.key.storage_key()) {
            Some(stored) if stored.token == lease.token => {
                stored.expires_at = until(Utc::now(), ttl);
                Ok(Some(stored.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut t = self.enter("release_lease")?;
        if let Some(stored) = t
            .leases
            .get_mut(&lease.key.storage_key())
            .filter(|l| l.token == lease.token)
        {
            // A new token, so that a peek before and one after tell it was held between.
            stored.token = uuid::Uuid::new_v4();
            stored.expires_at = Utc::now();
        }
        Ok(())
    }

    async fn peek_lease(&self, key: &LeaseKey) -> Result<Option<LeaseState>, StoreError> {
        let t = self.enter("peek_lease")?;
        let now = Utc::now();
        Ok(t.leases.get(&key.storage_key()).map(|l| LeaseState {
            token: l.token,
            held: l.expires_at > now,
        }))
    }
}

/// Give `key`'s lease to `holder` under a new token (the caller checked that it may).
fn take(t: &mut Tables, key: &LeaseKey, holder: &str, expires_at: DateTime<Utc>) -> Lease {
    let lease = Lease {
        key: key.clone(),
        holder: holder.to_owned(),
        token: uuid::Uuid::new_v4(),
        expires_at,
    };
    t.leases.insert(key.storage_key(), lease.clone());
    t.journal.leases_won.push(key.storage_key());
    lease
}
