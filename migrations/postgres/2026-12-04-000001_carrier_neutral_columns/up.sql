-- Carriers are pluggable (issue 10): the columns lose Twilio's names and shapes. Kept in
-- lockstep with migrations/sqlite. Lossless: every value is carried over as it was.

-- integrations: `account_sid` (NOT NULL) becomes the optional `account_id`, `api_key_sid`
-- becomes `key_id`, and `auth_kind` (and its CHECK) goes: an API-key integration is exactly
-- one with a key id. The previous release wrote `api_key_sid` when, and only when,
-- `auth_kind` was `api_key`; the UPDATE keeps that rule even for a row that broke it.
UPDATE integrations SET api_key_sid = NULL WHERE auth_kind <> 'api_key';
ALTER TABLE integrations DROP COLUMN auth_kind;
ALTER TABLE integrations RENAME COLUMN account_sid TO account_id;
ALTER TABLE integrations ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE integrations RENAME COLUMN api_key_sid TO key_id;

-- number_connections: renames only; the unique constraint (customer, provider, number) and
-- the indexes follow the columns. `route_targets` keeps the stored JSON (its elements' `sid`
-- key is read as `id`); `previous_routing` keeps it verbatim (only the carrier adapter
-- reads it).
ALTER TABLE number_connections RENAME COLUMN phone_number_sid TO number_id;
ALTER TABLE number_connections RENAME COLUMN trunk_sid TO route_id;
ALTER TABLE number_connections RENAME COLUMN trunk_created TO route_created;
ALTER TABLE number_connections RENAME COLUMN origination_urls TO route_targets;
ALTER TABLE number_connections RENAME COLUMN previous_voice TO previous_routing;
