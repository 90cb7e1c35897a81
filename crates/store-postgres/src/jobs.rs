//! `JobStore` on PostgreSQL: bulk jobs and their numbers (`bulk_jobs`, `bulk_job_items`).
//! Claims use the database clock (`now()`), so instances with skewed clocks agree on expiry.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::RunQueryDsl;
use trunkline_core::ports::{
    BulkJob, ClaimState, ItemResult, JOB_COUNT_COLUMNS, JobClaim, JobColumns, JobItem, JobStatus,
    JobStore, StoreError, job_item_from_stored,
};
use trunkline_core::{CarrierNumberId, CustomerId, JobId};
use uuid::Uuid;

use crate::codec;
use crate::error;
use crate::store::PostgresStore;

macro_rules! job_select {
    () => {
        "SELECT j.id, j.customer_id, j.provider, j.kind, j.actor_subject, j.actor_role, \
             j.request_id, j.options, j.status, j.cancel_requested, j.holder, j.created_at, \
             j.updated_at, j.finished_at, "
    };
}

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
struct JobRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    customer_id: String,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    actor_subject: String,
    #[diesel(sql_type = Text)]
    actor_role: String,
    #[diesel(sql_type = Nullable<Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = Text)]
    options: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Bool)]
    cancel_requested: bool,
    #[diesel(sql_type = Nullable<Text>)]
    holder: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    n_pending: i64,
    #[diesel(sql_type = BigInt)]
    n_connected: i64,
    #[diesel(sql_type = BigInt)]
    n_reused: i64,
    #[diesel(sql_type = BigInt)]
    n_disconnected: i64,
    #[diesel(sql_type = BigInt)]
    n_already_disconnected: i64,
    #[diesel(sql_type = BigInt)]
    n_failed: i64,
    #[diesel(sql_type = BigInt)]
    n_cancelled: i64,
}

impl JobRow {
    fn into_job(self) -> Result<BulkJob, StoreError> {
        JobColumns {
            id: self.id,
            customer_id: self.customer_id,
            provider: self.provider,
            kind: self.kind,
            actor_subject: self.actor_subject,
            actor_role: self.actor_role,
            request_id: self.request_id,
            options: self.options,
            status: self.status,
            cancel_requested: self.cancel_requested,
            holder: self.holder,
            counts: [
                self.n_pending,
                self.n_connected,
                self.n_reused,
                self.n_disconnected,
                self.n_already_disconnected,
                self.n_failed,
                self.n_cancelled,
            ],
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        }
        .into_job()
    }
}

#[derive(QueryableByName)]
struct ItemRow {
    #[diesel(sql_type = Integer)]
    position: i32,
    #[diesel(sql_type = Text)]
    number_id: String,
    #[diesel(sql_type = Text)]
    outcome: String,
    #[diesel(sql_type = Nullable<Text>)]
    error_code: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    message: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct CancelRow {
    #[diesel(sql_type = Bool)]
    cancel_requested: bool,
}

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)] // only whether a row came back matters
    status: String,
}

fn position(p: u32) -> Result<i32, StoreError> {
    i32::try_from(p).map_err(|_| StoreError::Other("job item position out of range".to_owned()))
}

impl PostgresStore {
    async fn job_by_id(
        &self,
        id: Uuid,
        customer: Option<&str>,
    ) -> Result<Option<BulkJob>, StoreError> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "{}{JOB_COUNT_COLUMNS} FROM bulk_jobs j WHERE j.id = $1 AND ($2::text IS NULL OR j.customer_id = $2)",
            job_select!()
        );
        let row: Option<JobRow> = diesel::sql_query(sql)
            .bind::<SqlUuid, _>(id)
            .bind::<Nullable<Text>, _>(customer)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(JobRow::into_job).transpose()
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn create_job(
        &self,
        job: &BulkJob,
        numbers: &[CarrierNumberId],
    ) -> Result<(), StoreError> {
        let numbers: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        let options = serde_json::to_string(&job.options)
            .map_err(|e| StoreError::Other(format!("job options: {e}")))?;
        let mut conn = self.conn().await?;
        diesel::sql_query(CREATE_JOB)
            .bind::<SqlUuid, _>(job.id.as_uuid())
            .bind::<Text, _>(job.customer_id.as_str())
            .bind::<Text, _>(job.provider.as_str())
            .bind::<Text, _>(job.kind.as_str())
            .bind::<Text, _>(&job.actor.subject)
            .bind::<Text, _>(&job.actor.role)
            .bind::<Nullable<Text>, _>(job.request_id.as_deref())
            .bind::<Text, _>(options)
            .bind::<Timestamptz, _>(job.created_at)
            .bind::<Array<Text>, _>(numbers)
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn get_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError> {
        self.job_by_id(id.as_uuid(), Some(customer.as_str())).await
    }

    async fn list_jobs(
        &self,
        customer: &CustomerId,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<BulkJob>, StoreError> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "{}{JOB_COUNT_COLUMNS} FROM bulk_jobs j \
             WHERE j.customer_id = $1 AND ($2::uuid IS NULL OR j.id < $2) \
             ORDER BY j.id DESC LIMIT $3",
            job_select!()
        );
        let rows: Vec<JobRow> = diesel::sql_query(sql)
            .bind::<Text, _>(customer.as_str())
            .bind::<Nullable<SqlUuid>, _>(before.map(|b| b.as_uuid()))
            .bind::<BigInt, _>(codec::limit(limit))
            .load(&mut conn)
            .await
            .map_err(error::db)?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn job_items(
        &self,
        id: JobId,
        from: u32,
        limit: u32,
    ) -> Result<Vec<JobItem>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<ItemRow> = diesel::sql_query(
            "SELECT position, number_id, outcome, error_code, message, finished_at \
             FROM bulk_job_items WHERE job_id = $1 AND position >= $2 \
             ORDER BY position LIMIT $3",
        )
        .bind::<SqlUuid, _>(id.as_uuid())
        .bind::<Integer, _>(position(from)?)
        .bind::<BigInt, _>(codec::limit(limit))
        .load(&mut conn)
        .await
        .map_err(error::db)?;
        rows.into_iter()
            .map(|r| {
                job_item_from_stored(
                    r.position,
                    &r.number_id,
                    &r.outcome,
                    r.error_code,
                    r.message,
                    r.finished_at,
                )
            })
            .collect()
    }

    async fn claim_job(&self, holder: &str, ttl: Duration) -> Result<Option<JobClaim>, StoreError> {
        let token = Uuid::new_v4();
        let claimed: Option<IdRow> = {
            let mut conn = self.conn().await?;
            diesel::sql_query(CLAIM_JOB)
                .bind::<Text, _>(holder)
                .bind::<SqlUuid, _>(token)
                .bind::<BigInt, _>(codec::ttl_micros(ttl))
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(error::db)?
        };
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let job = self
            .job_by_id(claimed.id, None)
            .await?
            .ok_or_else(|| StoreError::Other("a claimed job vanished".to_owned()))?;
        Ok(Some(JobClaim { job, token }))
    }

    async fn renew_job_claim(
        &self,
        id: JobId,
        token: Uuid,
        ttl: Duration,
    ) -> Result<ClaimState, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<CancelRow> = diesel::sql_query(RENEW_CLAIM)
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<SqlUuid, _>(token)
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(row.map_or(ClaimState::Lost, |r| ClaimState::Held {
            cancel_requested: r.cancel_requested,
        }))
    }

    async fn record_job_item(
        &self,
        id: JobId,
        token: Uuid,
        result: &ItemResult,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let n = diesel::sql_query(RECORD_ITEM)
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<SqlUuid, _>(token)
            .bind::<Integer, _>(position(result.position)?)
            .bind::<Text, _>(result.outcome.as_str())
            .bind::<Nullable<Text>, _>(result.error_code.as_deref())
            .bind::<Nullable<Text>, _>(result.message.as_deref())
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(n == 1)
    }

    async fn finish_job(
        &self,
        id: JobId,
        token: Uuid,
        status: JobStatus,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let done: Option<IdRow> = diesel::sql_query(FINISH_JOB)
            .bind::<SqlUuid, _>(id.as_uuid())
            .bind::<SqlUuid, _>(token)
            .bind::<Text, _>(status.as_str())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(done.is_some())
    }

    async fn cancel_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError> {
        {
            let mut conn = self.conn().await?;
            diesel::sql_query(CANCEL_JOB)
                .bind::<SqlUuid, _>(id.as_uuid())
                .bind::<Text, _>(customer.as_str())
                .load::<StatusRow>(&mut conn)
                .await
                .map_err(error::db)?;
        }
        self.get_job(customer, id).await
    }
}
