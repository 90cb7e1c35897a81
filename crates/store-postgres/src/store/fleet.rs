//! The fleet tables (`connection_checks`, `purchased_numbers`, `integration_settings`) and
//! the cross-customer listings the reconciler and the support views read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use trunkline_core::model::{
    ConnectionCheck, IntegrationSettings, NumberConnection, PurchasedNumber,
};
use trunkline_core::ports::{FleetStore, StoreError};
use trunkline_core::{CarrierNumberId, ConnectionId, CustomerId, E164, ProviderKind};

use super::PostgresStore;
use crate::codec::{self, corrupt, parse};
use crate::error;
use crate::rows::ConnectionRow;
use crate::schema::number_connections;

diesel::table! {
    connection_checks (connection_id) {
        connection_id -> Uuid,
        checked_at -> Timestamptz,
        body -> Jsonb,
    }
}

diesel::table! {
    purchased_numbers (customer_id, provider, number_id) {
        customer_id -> Text,
        provider -> Text,
        number_id -> Text,
        e164 -> Text,
        purchased_at -> Timestamptz,
        released_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    integration_settings (customer_id, provider) {
        customer_id -> Text,
        provider -> Text,
        auto_repair -> Bool,
        updated_at -> Timestamptz,
    }
}

#[derive(QueryableByName)]
struct CustomerRow {
    #[diesel(sql_type = Text)]
    customer_id: String,
}

const LIST_CUSTOMERS: &str = "\
    SELECT customer_id FROM ( \
        SELECT customer_id FROM integrations \
        UNION SELECT customer_id FROM number_connections \
    ) AS c WHERE customer_id COLLATE \"C\" > $1 ORDER BY customer_id COLLATE \"C\" LIMIT $2";

type PurchaseTuple = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn purchase_from(t: &PurchaseTuple) -> Result<PurchasedNumber, StoreError> {
    Ok(PurchasedNumber {
        customer_id: parse("purchased_numbers.customer_id", &t.0, CustomerId::parse)?,
        provider: parse("purchased_numbers.provider", &t.1, ProviderKind::parse)?,
        number_id: parse("purchased_numbers.number_id", &t.2, CarrierNumberId::parse)?,
        e164: parse("purchased_numbers.e164", &t.3, E164::parse)?,
        purchased_at: t.4,
        released_at: t.5,
    })
}

#[async_trait]
impl FleetStore for PostgresStore {
    async fn list_customers(
        &self,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(LIST_CUSTOMERS)
            .bind::<Text, _>(after.as_ref().map_or("", CustomerId::as_str).to_owned())
            .bind::<BigInt, _>(codec::limit(limit))
            .load::<CustomerRow>(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(|r| parse("customer_id", &r.customer_id, CustomerId::parse))
            .collect()
    }

    async fn list_all_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let mut conn = self.conn().await?;
        let after = after.map_or(uuid::Uuid::nil(), |a| a.as_uuid());
        number_connections::table
            .filter(number_connections::id.gt(after))
            .order(number_connections::id.asc())
            .limit(codec::limit(limit))
            .select(ConnectionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(ConnectionRow::into_domain)
            .collect()
    }

    async fn save_check(&self, check: &ConnectionCheck) -> Result<(), StoreError> {
        let body = serde_json::to_value(check)
            .map_err(|e| StoreError::Other(format!("connection_checks.body: {e}")))?;
        let mut conn = self.conn().await?;
        diesel::insert_into(connection_checks::table)
            .values((
                connection_checks::connection_id.eq(check.connection_id.as_uuid()),
                connection_checks::checked_at.eq(check.checked_at),
                connection_checks::body.eq(body),
            ))
            .on_conflict(connection_checks::connection_id)
            .do_update()
            .set((
                connection_checks::checked_at.eq(excluded(connection_checks::checked_at)),
                connection_checks::body.eq(excluded(connection_checks::body)),
            ))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn get_checks(&self, ids: &[ConnectionId]) -> Result<Vec<ConnectionCheck>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<uuid::Uuid> = ids.iter().map(ConnectionId::as_uuid).collect();
        let mut conn = self.conn().await?;
        let bodies: Vec<serde_json::Value> = connection_checks::table
            .filter(connection_checks::connection_id.eq_any(keys))
            .select(connection_checks::body)
            .load(&mut conn)
            .await
            .map_err(error::db)?;
        bodies
            .into_iter()
            .map(|b| serde_json::from_value(b).map_err(|e| corrupt("connection_checks.body", e)))
            .collect()
    }

    async fn save_purchase(&self, p: &PurchasedNumber) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(purchased_numbers::table)
            .values((
                purchased_numbers::customer_id.eq(p.customer_id.as_str()),
                purchased_numbers::provider.eq(p.provider.as_str()),
                purchased_numbers::number_id.eq(p.number_id.as_str()),
                purchased_numbers::e164.eq(p.e164.as_str()),
                purchased_numbers::purchased_at.eq(p.purchased_at),
                purchased_numbers::released_at.eq(p.released_at),
            ))
            .on_conflict((
                purchased_numbers::customer_id,
                purchased_numbers::provider,
                purchased_numbers::number_id,
            ))
            .do_update()
            .set((
                purchased_numbers::e164.eq(excluded(purchased_numbers::e164)),
                purchased_numbers::purchased_at.eq(excluded(purchased_numbers::purchased_at)),
                purchased_numbers::released_at.eq(excluded(purchased_numbers::released_at)),
            ))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn get_purchase(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<PurchasedNumber>, StoreError> {
        let mut conn = self.conn().await?;
        purchased_numbers::table
            .filter(purchased_numbers::customer_id.eq(customer.as_str()))
            .filter(purchased_numbers::provider.eq(provider.as_str()))
            .filter(purchased_numbers::number_id.eq(number.as_str()))
            .select((
                purchased_numbers::customer_id,
                purchased_numbers::provider,
                purchased_numbers::number_id,
                purchased_numbers::e164,
                purchased_numbers::purchased_at,
                purchased_numbers::released_at,
            ))
            .first::<PurchaseTuple>(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(|t| purchase_from(&t))
            .transpose()
    }

    async fn get_settings(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<IntegrationSettings>, StoreError> {
        let mut conn = self.conn().await?;
        integration_settings::table
            .filter(integration_settings::customer_id.eq(customer.as_str()))
            .filter(integration_settings::provider.eq(provider.as_str()))
            .select((
                integration_settings::auto_repair,
                integration_settings::updated_at,
            ))
            .first::<(bool, DateTime<Utc>)>(&mut conn)
            .await
            .optional()
            .map_err(error::db)
            .map(|found| {
                found.map(|(auto_repair, at)| IntegrationSettings {
                    customer_id: customer.clone(),
                    provider,
                    auto_repair,
                    updated_at: at,
                })
            })
    }

    async fn put_settings(&self, s: &IntegrationSettings) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(integration_settings::table)
            .values((
                integration_settings::customer_id.eq(s.customer_id.as_str()),
                integration_settings::provider.eq(s.provider.as_str()),
                integration_settings::auto_repair.eq(s.auto_repair),
                integration_settings::updated_at.eq(s.updated_at),
            ))
            .on_conflict((
                integration_settings::customer_id,
                integration_settings::provider,
            ))
            .do_update()
            .set((
                integration_settings::auto_repair.eq(excluded(integration_settings::auto_repair)),
                integration_settings::updated_at.eq(excluded(integration_settings::updated_at)),
            ))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }
}
