-- Back to the Twilio-only columns. Fails (NOT NULL) while an integration has no account id,
-- e.g. a Telnyx one: the previous release could not read it anyway.
ALTER TABLE number_connections RENAME COLUMN previous_routing TO previous_voice;
ALTER TABLE number_connections RENAME COLUMN route_targets TO origination_urls;
ALTER TABLE number_connections RENAME COLUMN route_created TO trunk_created;
ALTER TABLE number_connections RENAME COLUMN route_id TO trunk_sid;
ALTER TABLE number_connections RENAME COLUMN number_id TO phone_number_sid;

ALTER TABLE integrations RENAME COLUMN key_id TO api_key_sid;
ALTER TABLE integrations ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE integrations RENAME COLUMN account_id TO account_sid;
ALTER TABLE integrations ADD COLUMN auth_kind text;
UPDATE integrations
    SET auth_kind = CASE WHEN api_key_sid IS NULL THEN 'auth_token' ELSE 'api_key' END;
ALTER TABLE integrations ALTER COLUMN auth_kind SET NOT NULL;
ALTER TABLE integrations
    ADD CONSTRAINT integrations_auth_kind_check CHECK (auth_kind IN ('api_key', 'auth_token'));
