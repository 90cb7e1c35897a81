-- trunkline schema, SQLite flavour. Kept in lockstep with migrations/postgres (same version
-- names, same tables and columns). STRICT tables; types chosen to stay sortable and exact:
--   uuids      TEXT, lower-case hyphenated (UUID v7 text sorts like the uuid)
--   times      INTEGER microseconds since the Unix epoch, UTC (what Postgres keeps too)
--   JSON       TEXT holding a JSON document (checked with json_valid)
--   booleans   INTEGER 0/1

CREATE TABLE integrations (
    id            TEXT    PRIMARY KEY NOT NULL,
    customer_id   TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    account_sid   TEXT    NOT NULL,
    auth_kind     TEXT    NOT NULL CHECK (auth_kind IN ('api_key', 'auth_token')),
    api_key_sid   TEXT,
    sealed_secret BLOB    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT integrations_customer_provider_key UNIQUE (customer_id, provider)
) STRICT;

CREATE TABLE number_connections (
    id               TEXT    PRIMARY KEY NOT NULL,
    customer_id      TEXT    NOT NULL,
    provider         TEXT    NOT NULL,
    integration_id   TEXT    NOT NULL,
    phone_number_sid TEXT    NOT NULL,
    e164             TEXT    NOT NULL,
    status           TEXT    NOT NULL
        CHECK (status IN ('pending', 'connected', 'failed', 'disconnected')),
    trunk_strategy   TEXT    NOT NULL CHECK (trunk_strategy IN ('shared', 'dedicated')),
    trunk_sid        TEXT,
    trunk_created    INTEGER NOT NULL CHECK (trunk_created IN (0, 1)),
    origination_urls TEXT    NOT NULL CHECK (json_valid(origination_urls)),
    sip_target       TEXT    NOT NULL,
    routing          TEXT    NOT NULL CHECK (json_valid(routing)),
    previous_voice   TEXT    CHECK (previous_voice IS NULL OR json_valid(previous_voice)),
    livekit_trunk_id TEXT,
    livekit_rule_id  TEXT,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    connected_at     INTEGER,
    disconnected_at  INTEGER,
    CONSTRAINT number_connections_customer_provider_number_key
        UNIQUE (customer_id, provider, phone_number_sid)
) STRICT;

CREATE INDEX number_connections_e164_idx ON number_connections (e164, updated_at DESC);

CREATE TABLE leases (
    key        TEXT    PRIMARY KEY NOT NULL,
    holder     TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_events (
    id          TEXT    PRIMARY KEY NOT NULL,
    kind        TEXT    NOT NULL,
    room_name   TEXT,
    received_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_events_room_received_idx ON webhook_events (room_name, received_at DESC);

CREATE TABLE calls (
    id                TEXT    PRIMARY KEY NOT NULL,
    room_name         TEXT    NOT NULL,
    customer_id       TEXT,
    connection_id     TEXT,
    sip_call_id       TEXT,
    called            TEXT,
    caller            TEXT,
    status            TEXT    NOT NULL
        CHECK (status IN ('ringing', 'active', 'ended', 'unrouted')),
    dispatch_status   TEXT    NOT NULL
        CHECK (dispatch_status IN ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up')),
    dispatch_id       TEXT,
    dispatch_attempts INTEGER NOT NULL DEFAULT 0 CHECK (dispatch_attempts >= 0),
    agent_name        TEXT,
    claimant          TEXT,
    claim_expires_at  INTEGER,
    started_at        INTEGER NOT NULL,
    answered_at       INTEGER,
    ended_at          INTEGER,
    updated_at        INTEGER NOT NULL,
    CONSTRAINT calls_room_name_key UNIQUE (room_name)
) STRICT;

CREATE INDEX calls_connection_started_idx ON calls (connection_id, started_at DESC);
CREATE INDEX calls_dispatch_due_idx ON calls (dispatch_status, started_at);

CREATE TABLE audit_events (
    id            TEXT    PRIMARY KEY NOT NULL,
    customer_id   TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    actor_subject TEXT    NOT NULL,
    actor_role    TEXT    NOT NULL,
    details       TEXT    NOT NULL CHECK (json_valid(details)),
    request_id    TEXT,
    at            INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_events_customer_at_idx ON audit_events (customer_id, at DESC);
