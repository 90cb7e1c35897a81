-- Bulk connect / disconnect jobs (issue 13): a job, its numbers and their results. A job is
-- claimed by one instance at a time (claim_token, claim_expires_at on the database clock);
-- a dead holder's claim expires and another instance claims the job.
CREATE TABLE bulk_jobs (
    id uuid PRIMARY KEY,
    customer_id text NOT NULL,
    provider text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('connect', 'disconnect')),
    actor_subject text NOT NULL,
    actor_role text NOT NULL,
    request_id text,
    options text NOT NULL,
    status text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'cancelled')),
    cancel_requested boolean NOT NULL DEFAULT false,
    holder text,
    claim_token uuid,
    claim_expires_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    finished_at timestamptz
);

-- The customer's jobs, newest first (ids are time-ordered UUIDv7).
CREATE INDEX bulk_jobs_customer ON bulk_jobs (customer_id, id DESC);
-- What instances look for when they claim: jobs not finished.
CREATE INDEX bulk_jobs_unfinished ON bulk_jobs (id) WHERE status IN ('queued', 'running');

CREATE TABLE bulk_job_items (
    job_id uuid NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    position integer NOT NULL,
    number_id text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('pending', 'connected', 'reused', 'disconnected',
        'already_disconnected', 'failed', 'cancelled')),
    error_code text,
    message text,
    finished_at timestamptz,
    PRIMARY KEY (job_id, position)
);
