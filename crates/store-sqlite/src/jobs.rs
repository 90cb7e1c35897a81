//! `JobStore` on SQLite: bulk jobs and their numbers (`bulk_jobs`, `bulk_job_items`).
//! SQLite runs one writer at a time, so each conditional UPDATE is a claim that exactly one
//! caller wins; statements that must go together run in one `BEGIN IMMEDIATE` transaction.
//! The reads and claims are `trunkline_store_sql::job_store!`.

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;
use trunkline_core::ports::{BulkJob, JobStatus, StoreError};
use trunkline_core::{CustomerId, JobId};
use trunkline_store_sql::encoding::text as enc;
use uuid::Uuid;

use crate::error;
use crate::schema::{SqlId, SqlTs};
use crate::store::SqliteStore;

const JOB_BY_ID: &str = "WHERE j.id = ?1 AND (?2 IS NULL OR j.customer_id = ?2)";

const LIST_JOBS: &str =
    "WHERE j.customer_id = ?1 AND (?2 IS NULL OR j.id < ?2) ORDER BY j.id DESC LIMIT ?3";

const JOB_ITEMS: &str = "\
    SELECT position, number_id, outcome, error_code, message, finished_at \
    FROM bulk_job_items WHERE job_id = ?1 AND position >= ?2 \
    ORDER BY position LIMIT ?3";

/// `?3` is the ttl, `?4` now (microseconds).
const CLAIM_JOB: &str = "\
    UPDATE bulk_jobs SET status = 'running', holder = ?1, claim_token = ?2, \
        claim_expires_at = ?4 + ?3, updated_at = ?4 \
    WHERE id = ( \
        SELECT id FROM bulk_jobs \
        WHERE status = 'queued' \
           OR (status = 'running' AND (claim_expires_at IS NULL OR claim_expires_at <= ?4)) \
        ORDER BY id LIMIT 1) \
    RETURNING id";

const RENEW_CLAIM: &str = "\
    UPDATE bulk_jobs SET claim_expires_at = ?4 + ?3 \
    WHERE id = ?1 AND claim_token = ?2 AND status = 'running' \
    RETURNING cancel_requested";

const RECORD_ITEM: &str = "\
    UPDATE bulk_job_items SET outcome = ?4, error_code = ?5, message = ?6, finished_at = ?7 \
    WHERE job_id = ?1 AND position = ?3 AND outcome = 'pending' \
      AND EXISTS (SELECT 1 FROM bulk_jobs WHERE id = ?1 AND claim_token = ?2 AND status = 'running')";

const FINISH_JOB: &str = "\
    UPDATE bulk_jobs SET status = ?3, finished_at = ?4, updated_at = ?4, holder = NULL, \
        claim_token = NULL, claim_expires_at = NULL \
    WHERE id = ?1 AND claim_token = ?2 AND status = 'running' \
    RETURNING status";

const CANCEL_JOB: &str = "\
    UPDATE bulk_jobs SET cancel_requested = 1, updated_at = ?3, \
        status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END, \
        finished_at = CASE WHEN status = 'queued' THEN ?3 ELSE finished_at END \
    WHERE id = ?1 AND customer_id = ?2 AND status IN ('queued', 'running') \
    RETURNING status";

const CANCEL_PENDING: &str = "\
    UPDATE bulk_job_items SET outcome = 'cancelled', finished_at = ?2 \
    WHERE job_id = ?1 AND outcome = 'pending'";

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    status: String,
}

fn now() -> i64 {
    enc::ts_to(Utc::now())
}

/// Cancel the job's numbers not started when `status` says the job is now cancelled.
fn cancel_pending_if(
    c: &mut SqliteConnection,
    id: &str,
    status: Option<StatusRow>,
) -> QueryResult<Option<String>> {
    let status = status.map(|s| s.status);
    if status.as_deref() == Some(JobStatus::Cancelled.as_str()) {
        diesel::RunQueryDsl::execute(
            diesel::sql_query(CANCEL_PENDING)
                .bind::<Text, _>(id)
                .bind::<BigInt, _>(now()),
            c,
        )?;
    }
    Ok(status)
}

trunkline_store_sql::job_store!(SqliteStore, clock = [.bind::<BigInt, _>(now())] {
    async fn insert(&self, job: &BulkJob, numbers: Vec<String>) -> Result<(), StoreError> {
        let options = trunkline_store_sql::jobs::options_text(job)?;
        let job = job.clone();
        let mut conn = self.write_conn().await?;
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let id = enc::id_to(job.id.as_uuid());
                let insert_job = trunkline_store_sql::bind_job_columns!(
                    diesel::sql_query(
                    "INSERT INTO bulk_jobs (id, customer_id, provider, kind, actor_subject, \
                         actor_role, request_id, options, status, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?9)",
                ),
                    &job,
                    &options
                );
                diesel::RunQueryDsl::execute(insert_job, c)?;
                for (i, n) in numbers.iter().enumerate() {
                    let insert_item = diesel::sql_query(
                        "INSERT INTO bulk_job_items (job_id, position, number_id, outcome) \
                         VALUES (?1, ?2, ?3, 'pending')",
                    )
                    .bind::<Text, _>(&id)
                    .bind::<Integer, _>(i32::try_from(i).unwrap_or(i32::MAX))
                    .bind::<Text, _>(n);
                    diesel::RunQueryDsl::execute(insert_item, c)?;
                }
                Ok(())
            })
        })
        .await
        .map_err(error::db)
    }

    async fn finish(&self, id: JobId, token: Uuid, status: JobStatus) -> Result<bool, StoreError> {
        let id = enc::id_to(id.as_uuid());
        let token = enc::id_to(token);
        let mut conn = self.write_conn().await?;
        let done = conn
            .spawn_blocking(move |c| {
                c.immediate_transaction(|c| {
                    let row: Option<StatusRow> = diesel::RunQueryDsl::get_result(
                        diesel::sql_query(FINISH_JOB)
                            .bind::<Text, _>(&id)
                            .bind::<Text, _>(&token)
                            .bind::<Text, _>(status.as_str())
                            .bind::<BigInt, _>(now()),
                        c,
                    )
                    .optional()?;
                    cancel_pending_if(c, &id, row)
                })
            })
            .await
            .map_err(error::db)?;
        Ok(done.is_some())
    }

    async fn cancel(&self, customer: &CustomerId, id: JobId) -> Result<(), StoreError> {
        let key = enc::id_to(id.as_uuid());
        let owner = customer.as_str().to_owned();
        {
            let mut conn = self.write_conn().await?;
            conn.spawn_blocking(move |c| {
                c.immediate_transaction(|c| {
                    let row: Option<StatusRow> = diesel::RunQueryDsl::get_result(
                        diesel::sql_query(CANCEL_JOB)
                            .bind::<Text, _>(&key)
                            .bind::<Text, _>(&owner)
                            .bind::<BigInt, _>(now()),
                        c,
                    )
                    .optional()?;
                    cancel_pending_if(c, &key, row)
                })
            })
            .await
            .map_err(error::db)?;
        }
        Ok(())
    }
});
