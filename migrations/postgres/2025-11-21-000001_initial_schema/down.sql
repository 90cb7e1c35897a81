DROP TABLE audit_events;
DROP TABLE calls;
DROP TABLE webhook_events;
DROP TABLE leases;
DROP TABLE number_connections;
DROP TABLE integrations;
