-- Voice-URL mode (issue 14). Kept in lockstep with migrations/postgres.

-- The secret a carrier signs its webhooks with (Twilio: the account's auth token), sealed by
-- the vault with the integration's context. One per (customer, provider), for the integration
-- it was saved with: a row whose integration_id is not the current integration's is ignored.
CREATE TABLE webhook_secrets (
    customer_id    TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    integration_id TEXT    NOT NULL,
    sealed_secret  BLOB    NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (customer_id, provider)
) STRICT;

-- A connection in voice-URL mode: the URL the number's voice URL points at and the SIP digest
-- credentials its LiveKit inbound trunk requires (the password sealed with the connection's
-- context). Kept after a disconnect, like the connection. No foreign key, like
-- number_connections to integrations: a table rebuild of either side stays free.
CREATE TABLE voice_url_bindings (
    connection_id       TEXT    PRIMARY KEY NOT NULL,
    voice_url           TEXT    NOT NULL,
    sip_username        TEXT    NOT NULL,
    sealed_sip_password BLOB    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

-- The voice webhook finds the integrations of an account on every call.
CREATE INDEX integrations_provider_account_idx ON integrations (provider, account_id);
