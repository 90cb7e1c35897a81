-- Back to the Twilio-only columns. Fails (NOT NULL) while an integration has no account id,
-- e.g. a Telnyx one: the previous release could not read it anyway.
ALTER TABLE number_connections RENAME COLUMN previous_routing TO previous_voice;
ALTER TABLE number_connections RENAME COLUMN route_targets TO origination_urls;
ALTER TABLE number_connections RENAME COLUMN route_created TO trunk_created;
ALTER TABLE number_connections RENAME COLUMN route_id TO trunk_sid;
ALTER TABLE number_connections RENAME COLUMN number_id TO phone_number_sid;

CREATE TABLE integrations_twilio_only (
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

INSERT INTO integrations_twilio_only
    (id, customer_id, provider, account_sid, auth_kind, api_key_sid, sealed_secret, status,
     created_at, updated_at)
SELECT id, customer_id, provider, account_id,
       CASE WHEN key_id IS NULL THEN 'auth_token' ELSE 'api_key' END,
       key_id, sealed_secret, status, created_at, updated_at
FROM integrations;

DROP TABLE integrations;
ALTER TABLE integrations_twilio_only RENAME TO integrations;
