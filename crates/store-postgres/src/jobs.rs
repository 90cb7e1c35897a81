//! `JobStore` on PostgreSQL: bulk jobs and their numbers (`bulk_jobs`, `bulk_job_items`).
//! Claims use the database clock (`now()`), so instances with skewed clocks agree on expiry.
//! The reads and claims are `trunkline_store_sql::job_store!`; what must go together is one
//! statement here.

use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use diesel_async::RunQueryDsl;
use trunkline_core::ports::{BulkJob, JobStatus, StoreError};
use trunkline_core::{CustomerId, JobId};
use trunkline_store_sql::encoding::native as enc;
use uuid::Uuid;

use crate::error;
use crate::schema::{SqlId, SqlTs};
use crate::store::PostgresStore;

const JOB_BY_ID: &str = "WHERE j.id = $1 AND ($2::text IS NULL OR j.customer_id = $2)";

const LIST_JOBS: &str =
    "WHERE j.customer_id = $1 AND ($2::uuid IS NULL OR j.id < $2) ORDER BY j.id DESC LIMIT $3";

const JOB_ITEMS: &str = "\
    SELECT position, number_id, outcome, error_code, message, finished_at \
    FROM bulk_job_items WHERE job_id = $1 AND position >= $2 \
    ORDER BY position LIMIT $3";

/// The job and its numbers in one statement: both are stored or neither.
const CREATE_JOB: &str = "\
    WITH j AS ( \
        INSERT INTO bulk_jobs (id, customer_id, provider, kind, actor_subject, actor_role, \
            request_id, options, status, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $9) RETURNING id) \
    INSERT INTO bulk_job_items (job_id, position, number_id, outcome) \
    SELECT j.id, (t.ord - 1)::integer, t.n, 'pending' \
    FROM j, unnest($10::text[]) WITH ORDINALITY AS t(n, ord)";

/// Oldest claimable job first; `SKIP LOCKED` lets concurrent claimers pass each other
/// instead of queueing on the same row, and the row lock makes the claim exclusive.
const CLAIM_JOB: &str = "\
    UPDATE bulk_jobs SET status = 'running', holder = $1, claim_token = $2, \
        claim_expires_at = now() + $3::float8 * interval '1 microsecond', updated_at = now() \
    WHERE id = ( \
        SELECT id FROM bulk_jobs \
        WHERE status = 'queued' \
           OR (status = 'running' AND (claim_expires_at IS NULL OR claim_expires_at <= now())) \
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
    RETURNING id";

const RENEW_CLAIM: &str = "\
    UPDATE bulk_jobs SET claim_expires_at = now() + $3::float8 * interval '1 microsecond' \
    WHERE id = $1 AND claim_token = $2 AND status = 'running' \
    RETURNING cancel_requested";

const RECORD_ITEM: &str = "\
    UPDATE bulk_job_items SET outcome = $4, error_code = $5, message = $6, finished_at = now() \
    WHERE job_id = $1 AND position = $3 AND outcome = 'pending' \
      AND EXISTS (SELECT 1 FROM bulk_jobs WHERE id = $1 AND claim_token = $2 AND status = 'running')";

/// Finishing a cancelled job cancels its numbers not started, in the same statement.
const FINISH_JOB: &str = "\
    WITH f AS ( \
        UPDATE bulk_jobs SET status = $3, finished_at = now(), updated_at = now(), \
            holder = NULL, claim_token = NULL, claim_expires_at = NULL \
        WHERE id = $1 AND claim_token = $2 AND status = 'running' \
        RETURNING id, status), \
    c AS ( \
        UPDATE bulk_job_items SET outcome = 'cancelled', finished_at = now() \
        WHERE job_id = $1 AND outcome = 'pending' \
          AND EXISTS (SELECT 1 FROM f WHERE f.status = 'cancelled')) \
    SELECT id FROM f";

/// A queued job is cancelled at once (its numbers with it); a running one is marked for
/// its holder; a finished one is left alone.
const CANCEL_JOB: &str = "\
    WITH u AS ( \
        UPDATE bulk_jobs SET cancel_requested = true, updated_at = now(), \
            status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
            finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END \
        WHERE id = $1 AND customer_id = $2 AND status IN ('queued', 'running') \
        RETURNING status), \
    c AS ( \
        UPDATE bulk_job_items SET outcome = 'cancelled', finished_at = now() \
        WHERE job_id = $1 AND outcome = 'pending' \
          AND EXISTS (SELECT 1 FROM u WHERE u.status = 'cancelled')) \
    SELECT status FROM u";

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)] // only whether a row came back matters
    status: String,
}

trunkline_store_sql::job_store!(PostgresStore, clock = [] {
    async fn insert(&self, job: &BulkJob, numbers: Vec<String>) -> Result<(), StoreError> {
        let options = trunkline_store_sql::jobs::options_text(job)?;
        let mut conn = self.conn().await?;
        trunkline_store_sql::bind_job_columns!(diesel::sql_query(CREATE_JOB), job, options)
            .bind::<Array<Text>, _>(numbers)
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn finish(&self, id: JobId, token: Uuid, status: JobStatus) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let done: Option<IdRow> = diesel::sql_query(FINISH_JOB)
            .bind::<SqlId, _>(id.as_uuid())
            .bind::<SqlId, _>(token)
            .bind::<Text, _>(status.as_str())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(done.is_some())
    }

    async fn cancel(&self, customer: &CustomerId, id: JobId) -> Result<(), StoreError> {
        {
            let mut conn = self.conn().await?;
            diesel::sql_query(CANCEL_JOB)
                .bind::<SqlId, _>(id.as_uuid())
                .bind::<Text, _>(customer.as_str())
                .load::<StatusRow>(&mut conn)
                .await
                .map_err(error::db)?;
        }
        Ok(())
    }
});
