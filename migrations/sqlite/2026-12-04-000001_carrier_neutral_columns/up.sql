-- Carriers are pluggable (issue 10): the columns lose Twilio's names and shapes. Kept in
-- lockstep with migrations/postgres. Lossless: every value is carried over as it was.
--
-- integrations: `account_sid` (NOT NULL) becomes the optional `account_id`, `api_key_sid`
-- becomes `key_id`, and `auth_kind` goes: an API-key integration is exactly one with a key
-- id (the previous release wrote `api_key_sid` when, and only when, `auth_kind` was
-- `api_key`; the CASE keeps that rule even for a row that broke it). SQLite can neither drop
-- a column named in a CHECK nor drop a NOT NULL in place, so the table is rebuilt: create,
-- copy, drop, rename. No foreign key points at it, and it has no index of its own besides
-- the unique constraint, which the new table declares.
CREATE TABLE integrations_carrier_neutral (
    id            TEXT    PRIMARY KEY NOT NULL,
    customer_id   TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    account_id    TEXT,
    key_id        TEXT,
    sealed_secret BLOB    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT integrations_customer_provider_key UNIQUE (customer_id, provider)
) STRICT;

INSERT INTO integrations_carrier_neutral
    (id, customer_id, provider, account_id, key_id, sealed_secret, status, created_at,
     updated_at)
SELECT id, customer_id, provider, account_sid,
       CASE WHEN auth_kind = 'api_key' THEN api_key_sid END,
       sealed_secret, status, created_at, updated_at
FROM integrations;

DROP TABLE integrations;
ALTER TABLE integrations_carrier_neutral RENAME TO integrations;

-- number_connections: renames only. SQLite rewrites the CHECKs, the unique constraint
-- (customer, provider, number) and the indexes that name a renamed column.
-- `route_targets` keeps the stored JSON: its elements' `sid` key is read as `id`.
-- `previous_routing` keeps the stored JSON verbatim: only the carrier adapter reads it.
ALTER TABLE number_connections RENAME COLUMN phone_number_sid TO number_id;
ALTER TABLE number_connections RENAME COLUMN trunk_sid TO route_id;
ALTER TABLE number_connections RENAME COLUMN trunk_created TO route_created;
ALTER TABLE number_connections RENAME COLUMN origination_urls TO route_targets;
ALTER TABLE number_connections RENAME COLUMN previous_voice TO previous_routing;
