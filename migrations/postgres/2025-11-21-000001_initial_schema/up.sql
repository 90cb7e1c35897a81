-- trunkline schema, PostgreSQL flavour. Kept in lockstep with migrations/sqlite (same version
-- names, same tables and columns); native types here: uuid, timestamptz, jsonb, bytea.

-- Carrier credentials: at most one integration per (customer, provider). The secret is sealed
-- by the vault before it gets here; the database never sees plaintext.
CREATE TABLE integrations (
    id            uuid        PRIMARY KEY,
    customer_id   text        NOT NULL,
    provider      text        NOT NULL,
    account_sid   text        NOT NULL,
    auth_kind     text        NOT NULL CHECK (auth_kind IN ('api_key', 'auth_token')),
    api_key_sid   text,
    sealed_secret bytea       NOT NULL,
    status        text        NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT integrations_customer_provider_key UNIQUE (customer_id, provider)
);

-- One row per (customer, provider, number), kept as history after a disconnect. No foreign key
-- to integrations: deleting credentials keeps the connections.
CREATE TABLE number_connections (
    id               uuid        PRIMARY KEY,
    customer_id      text        NOT NULL,
    provider         text        NOT NULL,
    integration_id   uuid        NOT NULL,
    phone_number_sid text        NOT NULL,
    e164             text        NOT NULL,
    status           text        NOT NULL
        CHECK (status IN ('pending', 'connected', 'failed', 'disconnected')),
    trunk_strategy   text        NOT NULL CHECK (trunk_strategy IN ('shared', 'dedicated')),
    trunk_sid        text,
    trunk_created    boolean     NOT NULL,
    origination_urls jsonb       NOT NULL,
    sip_target       text        NOT NULL,
    routing          jsonb       NOT NULL,
    previous_voice   jsonb,
    livekit_trunk_id text,
    livekit_rule_id  text,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    connected_at     timestamptz,
    disconnected_at  timestamptz,
    CONSTRAINT number_connections_customer_provider_number_key
        UNIQUE (customer_id, provider, phone_number_sid)
);

-- Inbound call routing looks a connection up by the called number on every call.
CREATE INDEX number_connections_e164_idx ON number_connections (e164, updated_at DESC);

-- Cross-instance leases (one number's connect/disconnect at a time).
CREATE TABLE leases (
    key        text        PRIMARY KEY,
    holder     text        NOT NULL,
    token      uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Webhook deduplication (the primary key is the dedupe) and "last event seen" diagnostics.
CREATE TABLE webhook_events (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL,
    room_name   text,
    received_at timestamptz NOT NULL
);

CREATE INDEX webhook_events_room_received_idx ON webhook_events (room_name, received_at DESC);

-- One call per LiveKit room. claimant/claim_expires_at hold the agent-dispatch claim.
CREATE TABLE calls (
    id                uuid        PRIMARY KEY,
    room_name         text        NOT NULL,
    customer_id       text,
    connection_id     uuid,
    sip_call_id       text,
    called            text,
    caller            text,
    status            text        NOT NULL
        CHECK (status IN ('ringing', 'active', 'ended', 'unrouted')),
    dispatch_status   text        NOT NULL
        CHECK (dispatch_status IN ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up')),
    dispatch_id       text,
    dispatch_attempts integer     NOT NULL DEFAULT 0 CHECK (dispatch_attempts >= 0),
    agent_name        text,
    claimant          text,
    claim_expires_at  timestamptz,
    started_at        timestamptz NOT NULL,
    answered_at       timestamptz,
    ended_at          timestamptz,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT calls_room_name_key UNIQUE (room_name)
);

CREATE INDEX calls_connection_started_idx ON calls (connection_id, started_at DESC);
CREATE INDEX calls_dispatch_due_idx ON calls (dispatch_status, started_at);

-- Append-only audit trail, read per customer newest first.
CREATE TABLE audit_events (
    id            uuid        PRIMARY KEY,
    customer_id   text        NOT NULL,
    provider      text        NOT NULL,
    action        text        NOT NULL,
    actor_subject text        NOT NULL,
    actor_role    text        NOT NULL,
    details       jsonb       NOT NULL,
    request_id    text,
    at            timestamptz NOT NULL
);

CREATE INDEX audit_events_customer_at_idx ON audit_events (customer_id, at DESC);
