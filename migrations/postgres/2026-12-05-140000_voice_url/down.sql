DROP INDEX integrations_provider_account_idx;
DROP TABLE voice_url_bindings;
DROP TABLE webhook_secrets;
