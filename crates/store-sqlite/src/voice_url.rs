//! `VoiceUrlStore` on SQLite: webhook secrets, voice-URL bindings, and the voice webhook's
//! one-statement read.

use async_trait::async_trait;
use chrono::Utc;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::RunQueryDsl;
use trunkline_core::model::SealedSecret;
use trunkline_core::ports::{
    StoreError, VoiceBinding, VoiceRouteCandidate, VoiceRouteConnection, VoiceUrlStore,
};
use trunkline_core::{
    CarrierAccountId, ConnectionId, CustomerId, E164, IntegrationId, ProviderKind,
};

use crate::codec::{self, parse};
use crate::error;
use crate::rows::{from_micros, micros, parse_uuid, uuid_text};
use crate::store::SqliteStore;

const PUT_SECRET: &str = "\
    INSERT INTO webhook_secrets (customer_id, provider, integration_id, sealed_secret, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5) \
    ON CONFLICT (customer_id, provider) DO UPDATE SET \
        integration_id = excluded.integration_id, \
        sealed_secret = excluded.sealed_secret, \
        updated_at = excluded.updated_at";

const HAS_SECRET: &str = "\
    SELECT COUNT(*) AS n FROM webhook_secrets w \
    JOIN integrations i ON i.customer_id = w.customer_id AND i.provider = w.provider \
        AND i.id = w.integration_id \
    WHERE w.customer_id = ?1 AND w.provider = ?2";

const SAVE_BINDING: &str = "\
    INSERT INTO voice_url_bindings \
        (connection_id, voice_url, sip_username, sealed_sip_password, created_at, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
    ON CONFLICT (connection_id) DO UPDATE SET \
        voice_url = excluded.voice_url, \
        sip_username = excluded.sip_username, \
        sealed_sip_password = excluded.sealed_sip_password, \
        updated_at = excluded.updated_at";

const GET_BINDING: &str = "\
    SELECT connection_id, voice_url, sip_username, sealed_sip_password, created_at, updated_at \
    FROM voice_url_bindings WHERE connection_id = ?1";

/// Everything the voice webhook needs, in one statement: the account's integrations with a
/// current webhook secret, each with its live connection of the number and its binding.
const VOICE_ROUTE: &str = "\
    SELECT i.customer_id, i.id AS integration_id, w.sealed_secret, \
        c.id AS connection_id, c.integration_id AS connection_integration_id, \
        c.status, c.sip_target, b.voice_url, b.sip_username, b.sealed_sip_password, \
        b.created_at, b.updated_at \
    FROM integrations i \
    JOIN webhook_secrets w ON w.customer_id = i.customer_id AND w.provider = i.provider \
        AND w.integration_id = i.id \
    LEFT JOIN number_connections c ON c.customer_id = i.customer_id \
        AND c.provider = i.provider AND c.e164 = ?3 AND c.status <> 'disconnected' \
    LEFT JOIN voice_url_bindings b ON b.connection_id = c.id \
    WHERE i.provider = ?1 AND i.account_id = ?2 AND i.status = 'active' \
    ORDER BY i.customer_id, c.updated_at DESC";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct BindingRow {
    #[diesel(sql_type = Text)]
    connection_id: String,
    #[diesel(sql_type = Text)]
    voice_url: String,
    #[diesel(sql_type = Text)]
    sip_username: String,
    #[diesel(sql_type = Binary)]
    sealed_sip_password: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
}

impl BindingRow {
    fn into_domain(self) -> Result<VoiceBinding, StoreError> {
        Ok(VoiceBinding {
            connection_id: ConnectionId::from_uuid(parse_uuid(
                "voice_url_bindings.connection_id",
                &self.connection_id,
            )?),
            voice_url: self.voice_url,
            sip_username: self.sip_username,
            sealed_sip_password: SealedSecret(self.sealed_sip_password),
            created_at: from_micros("voice_url_bindings.created_at", self.created_at)?,
            updated_at: from_micros("voice_url_bindings.updated_at", self.updated_at)?,
        })
    }
}

#[derive(QueryableByName)]
struct RouteRow {
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    integration_id: String,
    #[diesel(sql_type = Binary)]
    sealed_secret: Vec<u8>,
    #[diesel(sql_type = Nullable<Text>)]
    connection_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    connection_integration_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sip_target: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    voice_url: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sip_username: Option<String>,
    #[diesel(sql_type = Nullable<Binary>)]
    sealed_sip_password: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    updated_at: Option<i64>,
}

impl RouteRow {
    fn into_domain(self) -> Result<VoiceRouteCandidate, StoreError> {
        let connection = match (
            self.connection_id,
            self.connection_integration_id,
            self.status,
            self.sip_target,
        ) {
            (Some(id), Some(integration), Some(status), Some(sip_target)) => {
                let connection_id =
                    ConnectionId::from_uuid(parse_uuid("number_connections.id", &id)?);
                let binding = match (
                    self.voice_url,
                    self.sip_username,
                    self.sealed_sip_password,
                    self.created_at,
                    self.updated_at,
                ) {
                    (Some(voice_url), Some(sip_username), Some(sealed), Some(c), Some(u)) => Some(
                        BindingRow {
                            connection_id: id,
                            voice_url,
                            sip_username,
                            sealed_sip_password: sealed,
                            created_at: c,
                            updated_at: u,
                        }
                        .into_domain()?,
                    ),
                    _ => None,
                };
                Some(VoiceRouteConnection {
                    connection_id,
                    integration_id: IntegrationId::from_uuid(parse_uuid(
                        "number_connections.integration_id",
                        &integration,
                    )?),
                    status: codec::parse_connection_status(&status)?,
                    sip_target,
                    binding,
                })
            }
            _ => None,
        };
        Ok(VoiceRouteCandidate {
            customer_id: parse(
                "integrations.customer_id",
                &self.customer_id,
                CustomerId::parse,
            )?,
            integration_id: IntegrationId::from_uuid(parse_uuid(
                "integrations.id",
                &self.integration_id,
            )?),
            sealed_webhook_secret: SealedSecret(self.sealed_secret),
            connection,
        })
    }
}

#[async_trait]
impl VoiceUrlStore for SqliteStore {
    async fn put_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        integration: IntegrationId,
        sealed: Option<SealedSecret>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        match &sealed {
            Some(s) => diesel::sql_query(PUT_SECRET)
                .bind::<Text, _>(customer.as_str())
                .bind::<Text, _>(provider.as_str())
                .bind::<Text, _>(uuid_text(integration.as_uuid()))
                .bind::<Binary, _>(s.0.as_slice())
                .bind::<BigInt, _>(micros(Utc::now()))
                .execute(&mut conn)
                .await
                .map_err(error::db)?,
            None => diesel::sql_query(
                "DELETE FROM webhook_secrets WHERE customer_id = ?1 AND provider = ?2",
            )
            .bind::<Text, _>(customer.as_str())
            .bind::<Text, _>(provider.as_str())
            .execute(&mut conn)
            .await
            .map_err(error::db)?,
        };
        Ok(())
    }

    async fn has_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let row: Count = diesel::sql_query(HAS_SECRET)
            .bind::<Text, _>(customer.as_str())
            .bind::<Text, _>(provider.as_str())
            .get_result(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(row.n > 0)
    }

    async fn save_voice_binding(&self, b: &VoiceBinding) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query(SAVE_BINDING)
            .bind::<Text, _>(uuid_text(b.connection_id.as_uuid()))
            .bind::<Text, _>(&b.voice_url)
            .bind::<Text, _>(&b.sip_username)
            .bind::<Binary, _>(b.sealed_sip_password.0.as_slice())
            .bind::<BigInt, _>(micros(b.created_at))
            .bind::<BigInt, _>(micros(b.updated_at))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn get_voice_binding(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<VoiceBinding>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<BindingRow> = diesel::sql_query(GET_BINDING)
            .bind::<Text, _>(uuid_text(connection.as_uuid()))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(BindingRow::into_domain).transpose()
    }

    async fn delete_voice_binding(&self, connection: ConnectionId) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::sql_query("DELETE FROM voice_url_bindings WHERE connection_id = ?1")
            .bind::<Text, _>(uuid_text(connection.as_uuid()))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn voice_route(
        &self,
        provider: ProviderKind,
        account: &CarrierAccountId,
        e164: &E164,
    ) -> Result<Vec<VoiceRouteCandidate>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<RouteRow> = diesel::sql_query(VOICE_ROUTE)
            .bind::<Text, _>(provider.as_str())
            .bind::<Text, _>(account.as_str())
            .bind::<Text, _>(e164.as_str())
            .load(&mut conn)
            .await
            .map_err(error::db)?;
        let rows = rows
            .into_iter()
            .map(RouteRow::into_domain)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(codec::one_candidate_per_integration(rows))
    }
}
