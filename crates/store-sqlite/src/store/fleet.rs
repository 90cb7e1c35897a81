//! The fleet tables (`connection_checks`, `purchased_numbers`, `integration_settings`) in
//! this backend's column types, and its statement listing customers; the port is
//! `trunkline_store_sql::fleet_store!`.

use trunkline_store_sql::encoding::text as enc;

use super::SqliteStore;
use crate::error;
use crate::rows::ConnectionRow;
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

const LIST_CUSTOMERS: &str = "\
    SELECT customer_id FROM ( \
        SELECT customer_id FROM integrations \
        UNION SELECT customer_id FROM number_connections \
    ) WHERE customer_id > ? ORDER BY customer_id LIMIT ?";

// SQLite caps bound parameters per statement.
trunkline_store_sql::fleet_store!(SqliteStore, max_binds = 500);
