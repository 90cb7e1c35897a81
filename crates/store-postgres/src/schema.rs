//! Diesel table definitions matching `migrations/postgres`.

diesel::table! {
    integrations (id) {
        id -> Uuid,
        customer_id -> Text,
        provider -> Text,
        account_id -> Nullable<Text>,
        key_id -> Nullable<Text>,
        sealed_secret -> Bytea,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    number_connections (id) {
        id -> Uuid,
        customer_id -> Text,
        provider -> Text,
        integration_id -> Uuid,
        number_id -> Text,
        e164 -> Text,
        status -> Text,
        trunk_strategy -> Text,
        route_id -> Nullable<Text>,
        route_created -> Bool,
        route_targets -> Jsonb,
        sip_target -> Text,
        routing -> Jsonb,
        previous_routing -> Nullable<Jsonb>,
        livekit_trunk_id -> Nullable<Text>,
        livekit_rule_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        connected_at -> Nullable<Timestamptz>,
        disconnected_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    leases (key) {
        key -> Text,
        holder -> Text,
        token -> Uuid,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        kind -> Text,
        room_name -> Nullable<Text>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    calls (id) {
        id -> Uuid,
        room_name -> Text,
        customer_id -> Nullable<Text>,
        connection_id -> Nullable<Uuid>,
        sip_call_id -> Nullable<Text>,
        called -> Nullable<Text>,
        caller -> Nullable<Text>,
        status -> Text,
        dispatch_status -> Text,
        dispatch_id -> Nullable<Text>,
        dispatch_attempts -> Integer,
        agent_name -> Nullable<Text>,
        claimant -> Nullable<Text>,
        claim_expires_at -> Nullable<Timestamptz>,
        started_at -> Timestamptz,
        answered_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Uuid,
        customer_id -> Text,
        provider -> Text,
        action -> Text,
        actor_subject -> Text,
        actor_role -> Text,
        details -> Jsonb,
        request_id -> Nullable<Text>,
        at -> Timestamptz,
    }
}

// Written by diesel_migrations; read here only to tell whether migrations are pending.
diesel::table! {
    __diesel_schema_migrations (version) {
        version -> VarChar,
    }
}

/// The SQL types of uuid, time and byte columns, for statements written by hand.
pub(crate) type SqlId = diesel::sql_types::Uuid;
pub(crate) type SqlTs = diesel::sql_types::Timestamptz;
pub(crate) type SqlBytes = diesel::sql_types::Bytea;
