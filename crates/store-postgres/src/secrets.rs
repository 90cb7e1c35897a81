//! `SealedSecretStore`: the walk over every customer's sealed credentials that key rotation
//! makes, and the compare-and-swap that keeps a concurrent save.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use trunkline_core::IntegrationId;
use trunkline_core::model::{Integration, SealedSecret};
use trunkline_core::ports::{SealedSecretStore, StoreError};

use crate::error;
use crate::rows::IntegrationRow;
use crate::schema::integrations;
use crate::store::PostgresStore;

#[async_trait]
impl SealedSecretStore for PostgresStore {
    async fn integrations_after(
        &self,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<Integration>, StoreError> {
        let mut conn = self.conn().await?;
        let mut query = integrations::table
            .select(IntegrationRow::as_select())
            .order(integrations::id)
            .limit(i64::from(limit))
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(integrations::id.gt(after.as_uuid()));
        }
        query
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(IntegrationRow::into_domain)
            .collect()
    }

    async fn replace_sealed_secret(
        &self,
        id: IntegrationId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        // `updated_at` is left alone: the credentials did not change, only their wrapping.
        let n = diesel::update(
            integrations::table
                .filter(integrations::id.eq(id.as_uuid()))
                .filter(integrations::sealed_secret.eq(&expected.0)),
        )
        .set(integrations::sealed_secret.eq(&new.0))
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(n == 1)
    }
}
