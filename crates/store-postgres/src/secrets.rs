//! `SealedSecretStore`: the walk over every customer's sealed secrets, of every kind, that
//! key rotation makes, and the compare-and-swap that keeps a concurrent save.

use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text};
use diesel_async::RunQueryDsl;
use trunkline_core::model::SealedSecret;
use trunkline_core::ports::{SealedKind, SealedRow, SealedSecretStore, StoreError};

use crate::error;
use crate::store::PostgresStore;

/// Each kind's rows as (key, customer_id, integration_id, provider, sealed), the context
/// being the integration's the secret was sealed with. Keys joined with U+001F.
fn rows_of(kind: SealedKind) -> &'static str {
    match kind {
        SealedKind::Credentials => {
            "SELECT id::text AS key, customer_id, id::text AS integration_id, provider, \
                 sealed_secret AS sealed FROM integrations"
        }
        SealedKind::WebhookSecret => {
            "SELECT customer_id || chr(31) || provider AS key, customer_id, \
                 integration_id::text AS integration_id, provider, sealed_secret AS sealed \
             FROM webhook_secrets"
        }
        // Sealed with the customer's current integration for the provider.
        SealedKind::OutboundPassword => {
            "SELECT o.customer_id || chr(31) || o.provider || chr(31) || o.route_id AS key, \
                 o.customer_id, i.id::text AS integration_id, o.provider, \
                 o.sealed_password AS sealed \
             FROM outbound_routes o LEFT JOIN integrations i \
                 ON i.customer_id = o.customer_id AND i.provider = o.provider"
        }
        // Sealed with its connection's context.
        SealedKind::VoiceSipPassword => {
            "SELECT b.connection_id::text AS key, c.customer_id, \
                 c.integration_id::text AS integration_id, c.provider, \
                 b.sealed_sip_password AS sealed \
             FROM voice_url_bindings b LEFT JOIN number_connections c ON c.id = b.connection_id"
        }
    }
}

/// Each kind's compare-and-swap: $1 key, $2 expected, $3 new. `updated_at` is left alone:
/// the secret did not change, only its wrapping.
fn replace_of(kind: SealedKind) -> &'static str {
    match kind {
        SealedKind::Credentials => {
            "UPDATE integrations SET sealed_secret = $3 \
             WHERE id::text = $1 AND sealed_secret = $2"
        }
        SealedKind::WebhookSecret => {
            "UPDATE webhook_secrets SET sealed_secret = $3 \
             WHERE customer_id || chr(31) || provider = $1 AND sealed_secret = $2"
        }
        SealedKind::OutboundPassword => {
            "UPDATE outbound_routes SET sealed_password = $3 \
             WHERE customer_id || chr(31) || provider || chr(31) || route_id = $1 \
                 AND sealed_password = $2"
        }
        SealedKind::VoiceSipPassword => {
            "UPDATE voice_url_bindings SET sealed_sip_password = $3 \
             WHERE connection_id::text = $1 AND sealed_sip_password = $2"
        }
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Nullable<Text>)]
    customer_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    integration_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    provider: Option<String>,
    #[diesel(sql_type = Bytea)]
    sealed: Vec<u8>,
}

#[async_trait]
impl SealedSecretStore for PostgresStore {
    async fn sealed_after(
        &self,
        kind: SealedKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let mut conn = self.conn().await?;
        let query = format!(
            "SELECT * FROM ({}) s WHERE s.key COLLATE \"C\" > $1 \
             ORDER BY s.key COLLATE \"C\" LIMIT $2",
            rows_of(kind)
        );
        let rows: Vec<Row> = diesel::sql_query(query)
            .bind::<Text, _>(after.unwrap_or_default())
            .bind::<BigInt, _>(i64::from(limit))
            .load(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                SealedRow::from_columns(
                    r.key,
                    r.customer_id.as_deref(),
                    r.integration_id.as_deref(),
                    r.provider.as_deref(),
                    r.sealed,
                )
            })
            .collect())
    }

    async fn replace_sealed(
        &self,
        kind: SealedKind,
        key: &str,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::sql_query(replace_of(kind))
            .bind::<Text, _>(key)
            .bind::<Bytea, _>(expected.0.as_slice())
            .bind::<Bytea, _>(new.0.as_slice())
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(n == 1)
    }
}
