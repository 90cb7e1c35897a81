-- Older versions do not know `cancelled`; `gave_up` is final for them too (never retried).
CREATE TABLE calls_old (
    id                TEXT    PRIMARY KEY NOT NULL,
    room_name         TEXT    NOT NULL,
    customer_id       TEXT,
    connection_id     TEXT,
    sip_call_id       TEXT,
    called            TEXT,
    caller            TEXT,
    status            TEXT    NOT NULL
        CHECK (status IN ('ringing', 'active', 'ended', 'unrouted')),
    dispatch_status   TEXT    NOT NULL
        CHECK (dispatch_status IN ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up')),
    dispatch_id       TEXT,
    dispatch_attempts INTEGER NOT NULL DEFAULT 0 CHECK (dispatch_attempts >= 0),
    agent_name        TEXT,
    claimant          TEXT,
    claim_expires_at  INTEGER,
    started_at        INTEGER NOT NULL,
    answered_at       INTEGER,
    ended_at          INTEGER,
    updated_at        INTEGER NOT NULL,
    CONSTRAINT calls_room_name_key UNIQUE (room_name)
) STRICT;

INSERT INTO calls_old (id, room_name, customer_id, connection_id, sip_call_id, called, caller, status,
    dispatch_status, dispatch_id, dispatch_attempts, agent_name, claimant, claim_expires_at,
    started_at, answered_at, ended_at, updated_at)
SELECT id, room_name, customer_id, connection_id, sip_call_id, called, caller, status,
    CASE WHEN dispatch_status = 'cancelled' THEN 'gave_up' ELSE dispatch_status END,
    dispatch_id, dispatch_attempts, agent_name, claimant, claim_expires_at,
    started_at, answered_at, ended_at, updated_at
FROM calls;

DROP TABLE calls;
ALTER TABLE calls_old RENAME TO calls;

CREATE INDEX calls_connection_started_idx ON calls (connection_id, started_at DESC);
CREATE INDEX calls_dispatch_due_idx ON calls (dispatch_status, started_at);
