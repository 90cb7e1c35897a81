//! The fleet tables (`connection_checks`, `purchased_numbers`, `integration_settings`) in
//! this backend's column types, and its statement listing customers; the port is
//! `trunkline_store_sql::fleet_store!`.

use trunkline_store_sql::encoding::native as enc;

use super::PostgresStore;
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

const LIST_CUSTOMERS: &str = "\
    SELECT customer_id FROM ( \
        SELECT customer_id FROM integrations \
        UNION SELECT customer_id FROM number_connections \
    ) AS c WHERE customer_id COLLATE \"C\" > $1 ORDER BY customer_id COLLATE \"C\" LIMIT $2";

// PostgreSQL binds at most 65,535 parameters per statement.
trunkline_store_sql::fleet_store!(PostgresStore, max_binds = 65_535);
