use async_trait::async_trait;

use super::errors::StoreError;
use crate::ids::IntegrationId;
use crate::model::{Integration, SealedSecret};

/// Every customer's sealed credentials, for key rotation (`trunkline vault rotate`).
///
/// Separate from [`super::IntegrationStore`]: only the rotation walks all customers.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SealedSecretStore: Send + Sync {
    /// Up to `limit` integrations with an id greater than `after` (all when `None`), in id
    /// order: a walk that stops can go on from the last id it saw.
    async fn integrations_after(
        &self,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<Integration>, StoreError>;

    /// Put `new` in place of the integration's sealed secret if it still is `expected`, in
    /// one atomic step; whether it was replaced. `false` when the integration is gone or its
    /// secret changed meanwhile (saved again by a live instance): the newer value wins.
    async fn replace_sealed_secret(
        &self,
        id: IntegrationId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError>;
}
