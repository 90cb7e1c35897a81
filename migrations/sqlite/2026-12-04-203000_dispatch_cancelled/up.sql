-- `cancelled`: the call ended before its agent was dispatched; nothing more is attempted.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt, with the same
-- columns, constraints and indexes. No other table refers to it.
CREATE TABLE calls_new (
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
        CHECK (dispatch_status IN
            ('none', 'claimed', 'dispatched', 'failed', 'by_rule', 'gave_up', 'cancelled')),
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

-- A call that ended with its dispatch still due or claimed (written before cancelling
-- existed) is cancelled: nothing is dispatched into an ended call.
INSERT INTO calls_new (id, room_name, customer_id, connection_id, sip_call_id, called, caller, status,
    dispatch_status, dispatch_id, dispatch_attempts, agent_name, claimant, claim_expires_at,
    started_at, answered_at, ended_at, updated_at)
SELECT id, room_name, customer_id, connection_id, sip_call_id, called, caller, status,
    CASE WHEN ended_at IS NOT NULL AND dispatch_status IN ('failed', 'claimed')
        THEN 'cancelled' ELSE dispatch_status END,
    dispatch_id, dispatch_attempts, agent_name, claimant, claim_expires_at,
    started_at, answered_at, ended_at, updated_at
FROM calls;

DROP TABLE calls;
ALTER TABLE calls_new RENAME TO calls;

CREATE INDEX calls_connection_started_idx ON calls (connection_id, started_at DESC);
CREATE INDEX calls_dispatch_due_idx ON calls (dispatch_status, started_at);
