-- Fleet operations: what the drift reconciler last found per connection, the numbers
-- trunkline bought (the only ones it may release), and per-integration settings.
CREATE TABLE connection_checks (
    connection_id TEXT    PRIMARY KEY NOT NULL
        REFERENCES number_connections (id) ON DELETE CASCADE,
    checked_at    INTEGER NOT NULL,
    -- drifts, driftSince, unreadable, repairedAt (see `ConnectionCheck`)
    body          TEXT    NOT NULL
) STRICT;

CREATE TABLE purchased_numbers (
    customer_id  TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    number_id    TEXT    NOT NULL,
    e164         TEXT    NOT NULL,
    purchased_at INTEGER NOT NULL,
    released_at  INTEGER,
    PRIMARY KEY (customer_id, provider, number_id)
) STRICT;

CREATE TABLE integration_settings (
    customer_id TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    auto_repair INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (customer_id, provider)
) STRICT;
