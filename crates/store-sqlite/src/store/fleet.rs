//! The fleet tables (`connection_checks`, `purchased_numbers`, `integration_settings`) and
//! the cross-customer listings the reconciler and the support views read.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use trunkline_core::model::{
    ConnectionCheck, IntegrationSettings, NumberConnection, PurchasedNumber,
};
use trunkline_core::ports::{FleetStore, StoreError};
use trunkline_core::{CarrierNumberId, ConnectionId, CustomerId, E164, ProviderKind};

use super::SqliteStore;
use crate::codec::{self, corrupt, parse};
use crate::error;
use crate::rows::{ConnectionRow, from_micros, micros, uuid_text};
use crate::schema::number_connections;

diesel::table! {
    connection_checks (connection_id) {
        connection_id -> Text,
        checked_at -> BigInt,
        body -> Text,
    }
}

diesel::table! {
    purchased_numbers (customer_id, provider, number_id) {
        customer_id -> Text,
        provider -> Text,
        number_id -> Text,
        e164 -> Text,
        purchased_at -> BigInt,
        released_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    integration_settings (customer_id, provider) {
        customer_id -> Text,
        provider -> Text,
        auto_repair -> Bool,
        updated_at -> BigInt,
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
    ) WHERE customer_id > ? ORDER BY customer_id LIMIT ?";

type PurchaseTuple = (String, String, String, String, i64, Option<i64>);

fn purchase_from(t: &PurchaseTuple) -> Result<PurchasedNumber, StoreError> {
    Ok(PurchasedNumber {
        customer_id: parse("purchased_numbers.customer_id", &t.0, CustomerId::parse)?,
        provider: parse("purchased_numbers.provider", &t.1, ProviderKind::parse)?,
        number_id: parse("purchased_numbers.number_id", &t.2, CarrierNumberId::parse)?,
        e164: parse("purchased_numbers.e164", &t.3, E164::parse)?,
        purchased_at: from_micros("purchased_numbers.purchased_at", t.4)?,
        released_at: t
            .5
            .map(|v| from_micros("purchased_numbers.released_at", v))
            .transpose()?,
    })
}

#[async_trait]
impl FleetStore for SqliteStore {
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
        let after = after.map(|a| uuid_text(a.as_uuid())).unwrap_or_default();
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
        let body = serde_json::to_string(check)
            .map_err(|e| StoreError::Other(format!("connection_checks.body: {e}")))?;
        let mut conn = self.conn().await?;
        diesel::insert_into(connection_checks::table)
            .values((
                connection_checks::connection_id.eq(uuid_text(check.connection_id.as_uuid())),
                connection_checks::checked_at.eq(micros(check.checked_at)),
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
        let keys: Vec<String> = ids.iter().map(|i| uuid_text(i.as_uuid())).collect();
        let mut conn = self.conn().await?;
        let mut out = Vec::with_capacity(ids.len());
        // SQLite caps bound parameters per statement.
        for chunk in keys.chunks(500) {
            let bodies: Vec<String> = connection_checks::table
                .filter(connection_checks::connection_id.eq_any(chunk))
                .select(connection_checks::body)
                .load(&mut conn)
                .await
                .map_err(error::db)?;
            for b in bodies {
                out.push(
                    serde_json::from_str(&b).map_err(|e| corrupt("connection_checks.body", e))?,
                );
            }
        }
        Ok(out)
    }

    async fn save_purchase(&self, p: &PurchasedNumber) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(purchased_numbers::table)
            .values((
                purchased_numbers::customer_id.eq(p.customer_id.as_str()),
                purchased_numbers::provider.eq(p.provider.as_str()),
                purchased_numbers::number_id.eq(p.number_id.as_str()),
                purchased_numbers::e164.eq(p.e164.as_str()),
                purchased_numbers::purchased_at.eq(micros(p.purchased_at)),
                purchased_numbers::released_at.eq(p.released_at.map(micros)),
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
            .first::<(bool, i64)>(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(|(auto_repair, at)| {
                Ok(IntegrationSettings {
                    customer_id: customer.clone(),
                    provider,
                    auto_repair,
                    updated_at: from_micros("integration_settings.updated_at", at)?,
                })
            })
            .transpose()
    }

    async fn put_settings(&self, s: &IntegrationSettings) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(integration_settings::table)
            .values((
                integration_settings::customer_id.eq(s.customer_id.as_str()),
                integration_settings::provider.eq(s.provider.as_str()),
                integration_settings::auto_repair.eq(s.auto_repair),
                integration_settings::updated_at.eq(micros(s.updated_at)),
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
