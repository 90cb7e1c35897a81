//! `VoiceUrlStore` on PostgreSQL: this dialect's statements for webhook secrets, voice-URL
//! bindings, and the voice webhook's one-statement read; the port is
//! `trunkline_store_sql::voice_url_store!`.

use trunkline_store_sql::encoding::native as enc;

use crate::error;
use crate::schema::{SqlBytes, SqlId, SqlTs};
use crate::store::PostgresStore;

const PUT_SECRET: &str = "\
    INSERT INTO webhook_secrets (customer_id, provider, integration_id, sealed_secret, updated_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (customer_id, provider) DO UPDATE SET \
        integration_id = excluded.integration_id, \
        sealed_secret = excluded.sealed_secret, \
        updated_at = excluded.updated_at";

const DELETE_SECRET: &str = "DELETE FROM webhook_secrets WHERE customer_id = $1 AND provider = $2";

const HAS_SECRET: &str = "\
    SELECT COUNT(*) AS n FROM webhook_secrets w \
    JOIN integrations i ON i.customer_id = w.customer_id AND i.provider = w.provider \
        AND i.id = w.integration_id \
    WHERE w.customer_id = $1 AND w.provider = $2";

const SAVE_BINDING: &str = "\
    INSERT INTO voice_url_bindings \
        (connection_id, voice_url, sip_username, sealed_sip_password, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (connection_id) DO UPDATE SET \
        voice_url = excluded.voice_url, \
        sip_username = excluded.sip_username, \
        sealed_sip_password = excluded.sealed_sip_password, \
        updated_at = excluded.updated_at";

const GET_BINDING: &str = "\
    SELECT connection_id, voice_url, sip_username, sealed_sip_password, created_at, updated_at \
    FROM voice_url_bindings WHERE connection_id = $1";

const DELETE_BINDING: &str = "DELETE FROM voice_url_bindings WHERE connection_id = $1";

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
        AND c.provider = i.provider AND c.e164 = $3 AND c.status <> 'disconnected' \
    LEFT JOIN voice_url_bindings b ON b.connection_id = c.id \
    WHERE i.provider = $1 AND i.account_id = $2 AND i.status = 'active' \
    ORDER BY i.customer_id, c.updated_at DESC";

trunkline_store_sql::voice_url_store!(PostgresStore);
