//! `SealedSecretStore` on PostgreSQL: this dialect's statements over each kind of sealed secret;
//! the port is `trunkline_store_sql::sealed_secret_store!`.

use trunkline_core::ports::SealedKind;

use crate::error;
use crate::schema::SqlBytes;
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

/// One page of a kind's rows, in byte order of their keys.
fn page_of(kind: SealedKind) -> String {
    format!(
        "SELECT * FROM ({}) s WHERE s.key COLLATE \"C\" > $1 ORDER BY s.key COLLATE \"C\" LIMIT $2",
        rows_of(kind)
    )
}

trunkline_store_sql::sealed_secret_store!(PostgresStore);
