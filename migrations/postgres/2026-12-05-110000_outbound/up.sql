-- Outbound calls (issue 11). Kept in lockstep with migrations/sqlite. New tables only: the
-- calls table is untouched, an outbound call is a call with a row in `outbound_calls`.

-- The outbound half of one carrier route: its SIP credentials (the password only sealed by
-- the vault) and its LiveKit outbound trunk, shared by the route's outbound numbers.
CREATE TABLE outbound_routes (
    customer_id      TEXT        NOT NULL,
    provider         TEXT        NOT NULL,
    route_id         TEXT        NOT NULL,
    termination_host TEXT,
    sip_username     TEXT        NOT NULL,
    sealed_password  BYTEA       NOT NULL,
    livekit_trunk_id TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, provider, route_id)
);

-- A connected number that may place calls (connected with `outbound: true`).
CREATE TABLE outbound_numbers (
    connection_id UUID        PRIMARY KEY NOT NULL,
    customer_id   TEXT        NOT NULL,
    provider      TEXT        NOT NULL,
    route_id      TEXT        NOT NULL,
    e164          TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbound_numbers_route ON outbound_numbers (customer_id, provider, route_id);

-- Placed calls and their idempotency keys: one key, one call, per customer, for as long as
-- the row is kept (at least the 24 h clients may rely on).
CREATE TABLE outbound_calls (
    call_id         UUID        PRIMARY KEY NOT NULL,
    room_name       TEXT        NOT NULL UNIQUE,
    customer_id     TEXT        NOT NULL,
    connection_id   UUID        NOT NULL,
    from_e164       TEXT        NOT NULL,
    to_e164         TEXT        NOT NULL,
    idempotency_key TEXT,
    request_digest  TEXT        NOT NULL,
    state           TEXT        NOT NULL CHECK (state IN ('dialing', 'placed', 'failed')),
    failure         TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT outbound_calls_idempotency UNIQUE (customer_id, idempotency_key)
);
