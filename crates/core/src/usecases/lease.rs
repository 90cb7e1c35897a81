//! Leases: the one way a use case holds a number, a trunk or a route while it works.

use std::future::Future;

use super::Onboarding;
use crate::error::Error;
use crate::model::LeaseKey;

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
}
