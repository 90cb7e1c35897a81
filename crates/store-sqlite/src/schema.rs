//! Diesel table definitions matching `migrations/sqlite`: uuids are TEXT, times INTEGER
//! microseconds since the Unix epoch (UTC), JSON documents TEXT.

diesel::table! {
    integrations (id) {
        id -> Text,
        customer_id -> Text,
        provider -> Text,
        account_id -> Nullable<Text>,
        key_id -> Nullable<Text>,
        sealed_secret -> Binary,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    number_connections (id) {
        id -> Text,
        customer_id -> Text,
        provider -> Text,
        integration_id -> Text,
        number_id -> Text,
        e164 -> Text,
        status -> Text,
        trunk_strategy -> Text,
        route_id -> Nullable<Text>,
        route_created -> Bool,
        route_targets -> Text,
        sip_target -> Text,
        routing -> Text,
        previous_routing -> Nullable<Text>,
        livekit_trunk_id -> Nullable<Text>,
        livekit_rule_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        connected_at -> Nullable<BigInt>,
        disconnected_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    leases (key) {
        key -> Text,
        holder -> Text,
        token -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        kind -> Text,
        room_name -> Nullable<Text>,
        received_at -> BigInt,
    }
}

diesel::table! {
    calls (id) {
        id -> Text,
        room_name -> Text,
        customer_id -> Nullable<Text>,
        connection_id -> Nullable<Text>,
        sip_call_id -> Nullable<Text>,
        called -> Nullable<Text>,
        caller -> Nullable<Text>,
        status -> Text,
        dispatch_status -> Text,
        dispatch_id -> Nullable<Text>,
        dispatch_attempts -> Integer,
        agent_name -> Nullable<Text>,
        claimant -> Nullable<Text>,
        claim_expires_at -> Nullable<BigInt>,
        started_at -> BigInt,
        answered_at -> Nullable<BigInt>,
        ended_at -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        customer_id -> Text,
        provider -> Text,
        action -> Text,
        actor_subject -> Text,
        actor_role -> Text,
        details -> Text,
        request_id -> Nullable<Text>,
        at -> BigInt,
    }
}

// Written by diesel_migrations; read here only to tell whether migrations are pending.
diesel::table! {
    __diesel_schema_migrations (version) {
        version -> VarChar,
    }
}

/// The SQL types of uuid, time and byte columns (see `trunkline_store_sql::encoding::text`),
/// for statements written by hand.
pub(crate) type SqlId = diesel::sql_types::Text;
pub(crate) type SqlTs = diesel::sql_types::BigInt;
pub(crate) type SqlBytes = diesel::sql_types::Binary;
