//! Leases: the one way a use case holds a number, a trunk or a route while it works.

use std::future::Future;
use std::time::Instant;

use super::Onboarding;
use crate::error::Error;
use crate::model::{Lease, LeaseKey, LeaseState};
use crate::ports::LeaseStore;

impl Onboarding {
    /// Run `work` under `key`'s lease: take it (waiting as [`Self::acquire_lease`] does), keep
    /// it alive while `work` runs ([`Self::holding`]), and release it whatever `work` returned.
    pub(super) async fn with_lease<T>(
        &self,
        key: &LeaseKey,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let lease = self.acquire_lease(key).await?;
        let result = self.holding(&lease, work).await;
        self.release_lease(&lease).await;
        result
    }

    /// Take a lease, waiting (with backoff) while another instance holds it, at most
    /// `lease_wait`; then `CONFLICT` with when to retry.
    pub(super) async fn acquire_lease(&self, key: &LeaseKey) -> Result<Lease, Error> {
        let started = Instant::now();
        let deadline = started + self.settings.lease_wait;
        let mut delay = std::time::Duration::from_millis(25);
        loop {
            if let Some(lease) = self
                .ports
                .leases
                .try_acquire_lease(key, &self.settings.instance_id, self.settings.lease_ttl)
                .await?
            {
                return Ok(lease);
            }
            if Instant::now() + delay > deadline {
                return Err(super::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// Take `key`'s lease for work that relies on a read made after `seen` was peeked. First
    /// only if nobody held it since (`true`: the read still stands); failing that, as
    /// anyone would (`false`: someone held it in between, read again). `None` while another
    /// holder's lease is live.
    pub(super) async fn try_acquire_lease_since(
        &self,
        key: &LeaseKey,
        seen: Option<LeaseState>,
    ) -> Result<Option<(Lease, bool)>, Error> {
        let (holder, ttl) = (&self.settings.instance_id, self.settings.lease_ttl);
        let leases = &self.ports.leases;
        if let Some(lease) = leases
            .try_acquire_lease_unchanged(key, holder, ttl, seen)
            .await?
        {
            return Ok(Some((lease, true)));
        }
        Ok(leases
            .try_acquire_lease(key, holder, ttl)
            .await?
            .map(|lease| (lease, false)))
    }

    /// Run `work` while keeping `lease` alive: it is renewed every third of its time-to-live,
    /// because one connect may legitimately outlast the TTL (every carrier call may take its
    /// whole timeout and retry budget), while a holder that dies still lets it expire.
    pub(super) async fn holding<T>(
        &self,
        lease: &Lease,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        keep_alive(&*self.ports.leases, lease, self.settings.lease_ttl, work).await
    }

    pub(super) async fn release_lease(&self, lease: &Lease) {
        if let Err(e) = self.ports.leases.release_lease(lease).await {
            // The lease expires by itself; a failed release only delays the next holder.
            tracing::warn!(error = %e, "could not release lease; it will expire");
        }
    }

    /// Wait (with backoff, until `deadline`) while somebody holds the lease; then its state,
    /// not held. `CONFLICT` with when to retry at the deadline.
    pub(super) async fn wait_for_free_lease(
        &self,
        key: &LeaseKey,
        deadline: Instant,
    ) -> Result<Option<LeaseState>, Error> {
        let started = Instant::now();
        let mut delay = std::time::Duration::from_millis(10);
        loop {
            let state = self.ports.leases.peek_lease(key).await?;
            if !state.is_some_and(|s| s.held) {
                return Ok(state);
            }
            if Instant::now() + delay > deadline {
                return Err(super::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(200));
        }
    }
}

/// Run `work` while renewing `lease` every third of `ttl` (see [`Onboarding::holding`]).
pub(super) async fn keep_alive<T>(
    leases: &dyn LeaseStore,
    lease: &Lease,
    ttl: std::time::Duration,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let renew = async {
        let mut current = lease.clone();
        loop {
            tokio::time::sleep(ttl / 3).await;
            match leases.renew_lease(&current, ttl).await {
                Ok(Some(renewed)) => current = renewed,
                Ok(None) => {
                    // Stopping half-way would leave more to repair than finishing does; the
                    // other holder reads the live state either way.
                    tracing::warn!(
                        "lease lost while working: another instance may act on what it guards now"
                    );
                    return futures::future::pending::<()>().await;
                }
                // A store hiccup: the lease still has two thirds of its time; try again.
                Err(e) => tracing::warn!(error = %e, "could not renew lease"),
            }
        }
    };
    futures::pin_mut!(work);
    futures::pin_mut!(renew);
    match futures::future::select(work, renew).await {
        futures::future::Either::Left((result, _)) => result,
        futures::future::Either::Right(((), work)) => work.await,
    }
}
