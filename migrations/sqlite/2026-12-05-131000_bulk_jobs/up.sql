-- Bulk connect / disconnect jobs (issue 13): a job, its numbers and their results. A job is
-- claimed by one holder at a time (claim_token, claim_expires_at in microseconds since the
-- epoch); a dead holder's claim expires and another process claims the job.
CREATE TABLE bulk_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('connect', 'disconnect')),
    actor_subject TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    request_id TEXT,
    options TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled')),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    holder TEXT,
    claim_token TEXT,
    claim_expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE INDEX bulk_jobs_customer ON bulk_jobs (customer_id, id DESC);
CREATE INDEX bulk_jobs_unfinished ON bulk_jobs (id) WHERE status IN ('queued', 'running');

CREATE TABLE bulk_job_items (
    job_id TEXT NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    number_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('pending', 'connected', 'reused', 'disconnected',
        'already_disconnected', 'failed', 'cancelled')),
    error_code TEXT,
    message TEXT,
    finished_at INTEGER,
    PRIMARY KEY (job_id, position)
) WITHOUT ROWID;
