-- Fleet operations: what the drift reconciler last found per connection, the numbers
-- trunkline bought (the only ones it may release), and per-integration settings.
CREATE TABLE connection_checks (
    connection_id uuid        PRIMARY KEY REFERENCES number_connections (id) ON DELETE CASCADE,
    checked_at    timestamptz NOT NULL,
    -- drifts, driftSince, unreadable, repairedAt (see `ConnectionCheck`)
    body          jsonb       NOT NULL
);

CREATE TABLE purchased_numbers (
    customer_id  text        NOT NULL,
    provider     text        NOT NULL,
    number_id    text        NOT NULL,
    e164         text        NOT NULL,
    purchased_at timestamptz NOT NULL,
    released_at  timestamptz,
    PRIMARY KEY (customer_id, provider, number_id)
);

CREATE TABLE integration_settings (
    customer_id text        NOT NULL,
    provider    text        NOT NULL,
    auto_repair boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (customer_id, provider)
);
