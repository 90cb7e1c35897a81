//! `OutboundStore` on PostgreSQL: the tables of migration `2026-12-05-110000_outbound` in this
//! backend's column types; the rows and the port are `trunkline_store_sql::outbound_store!`.
//! Kept apart from `store.rs`: no statement of the call intake touches these tables.

use trunkline_store_sql::encoding::native as enc;

use crate::error;
use crate::store::PostgresStore;

mod schema {
    diesel::table! {
        outbound_routes (customer_id, provider, route_id) {
            customer_id -> Text,
            provider -> Text,
            route_id -> Text,
            termination_host -> Nullable<Text>,
            sip_username -> Text,
            sealed_password -> Binary,
            livekit_trunk_id -> Nullable<Text>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbound_numbers (connection_id) {
            connection_id -> Uuid,
            customer_id -> Text,
            provider -> Text,
            route_id -> Text,
            e164 -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbound_calls (call_id) {
            call_id -> Uuid,
            room_name -> Text,
            customer_id -> Text,
            connection_id -> Uuid,
            from_e164 -> Text,
            to_e164 -> Text,
            idempotency_key -> Nullable<Text>,
            request_digest -> Text,
            state -> Text,
            failure -> Nullable<Text>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }
}

use schema::{outbound_calls, outbound_numbers, outbound_routes};

trunkline_store_sql::outbound_store!(PostgresStore, diesel::pg::Pg);
