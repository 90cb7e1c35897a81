//! `JobStore` on SQLite: bulk jobs and their numbers (`bulk_jobs`, `bulk_job_items`).
//! SQLite runs one writer at a time, so each conditional UPDATE is a claim that exactly one
//! caller wins; statements that must go together run in one `BEGIN IMMEDIATE` transaction.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;
use trunkline_core::ports::{
    BulkJob, ClaimState, ItemResult, JOB_COUNT_COLUMNS, JobClaim, JobColumns, JobItem, JobStatus,
    JobStore, StoreError, job_item_from_stored,
};
use trunkline_core::{CarrierNumberId, CustomerId, JobId};
use uuid::Uuid;

use crate::codec;
use crate::error;
use crate::rows::{from_micros, micros, parse_uuid, uuid_text};
use crate::store::SqliteStore;

macro_rules! job_select {
    () => {
        "SELECT j.id, j.customer_id, j.provider, j.kind, j.actor_subject, j.actor_role, \
             j.request_id, j.options, j.status, j.cancel_requested, j.holder, j.created_at, \
             j.updated_at, j.finished_at, "
    };
}

/// `?2` is now, `?3` the ttl (microseconds).
const CLAIM_JOB: &str = "\
    UPDATE bulk_jobs SET status = 'running', holder = ?1, claim_token = ?4, \
        claim_expires_at = ?2 + ?3, updated_at = ?2 \
    WHERE id = ( \
        SELECT id FROM bulk_jobs \
        WHERE status = 'queued' \
           OR (status = 'running' AND (claim_expires_at IS NULL OR claim_expires_at <= ?2)) \
        ORDER BY id LIMIT 1) \
    RETURNING id";

const RENEW_CLAIM: &str = "\
    UPDATE bulk_jobs SET claim_expires_at = ?3 + ?4 \
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
struct JobRow {
    #[diesel(sql_type = Text)]
    id: String,
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
    #[diesel(sql_type = Integer)]
    cancel_requested: i32,
    #[diesel(sql_type = Nullable<Text>)]
    holder: Option<String>,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    finished_at: Option<i64>,
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
            id: parse_uuid("bulk_jobs.id", &self.id)?,
            customer_id: self.customer_id,
            provider: self.provider,
            kind: self.kind,
            actor_subject: self.actor_subject,
            actor_role: self.actor_role,
            request_id: self.request_id,
            options: self.options,
            status: self.status,
            cancel_requested: self.cancel_requested != 0,
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
            created_at: from_micros("bulk_jobs.created_at", self.created_at)?,
            updated_at: from_micros("bulk_jobs.updated_at", self.updated_at)?,
            finished_at: self
                .finished_at
                .map(|t| from_micros("bulk_jobs.finished_at", t))
                .transpose()?,
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
    #[diesel(sql_type = Nullable<BigInt>)]
    finished_at: Option<i64>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

#[derive(QueryableByName)]
struct CancelRow {
    #[diesel(sql_type = Integer)]
    cancel_requested: i32,
}

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    status: String,
}

fn position(p: u32) -> Result<i32, StoreError> {
    i32::try_from(p).map_err(|_| StoreError::Other("job item position out of range".to_owned()))
}

fn now() -> i64 {
    micros(Utc::now())
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

impl SqliteStore {
    async fn job_by_id(
        &self,
        id: Uuid,
        customer: Option<&str>,
    ) -> Result<Option<BulkJob>, StoreError> {
        let mut conn = self.conn().await?;
        let sql = format!(
            "{}{JOB_COUNT_COLUMNS} FROM bulk_jobs j WHERE j.id = ?1 AND (?2 IS NULL OR j.customer_id = ?2)",
            job_select!()
        );
        let row: Option<JobRow> = diesel::sql_query(sql)
            .bind::<Text, _>(uuid_text(id))
            .bind::<Nullable<Text>, _>(customer)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(JobRow::into_job).transpose()
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(
        &self,
        job: &BulkJob,
        numbers: &[CarrierNumberId],
    ) -> Result<(), StoreError> {
        let numbers: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        let options = serde_json::to_string(&job.options)
            .map_err(|e| StoreError::Other(format!("job options: {e}")))?;
        let job = job.clone();
        let mut conn = self.conn().await?;
        conn.spawn_blocking(move |c| {
            c.immediate_transaction(|c| {
                let id = uuid_text(job.id.as_uuid());
                let insert_job = diesel::sql_query(
                    "INSERT INTO bulk_jobs (id, customer_id, provider, kind, actor_subject, \
                         actor_role, request_id, options, status, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?9)",
                )
                .bind::<Text, _>(&id)
                .bind::<Text, _>(job.customer_id.as_str())
                .bind::<Text, _>(job.provider.as_str())
                .bind::<Text, _>(job.kind.as_str())
                .bind::<Text, _>(&job.actor.subject)
                .bind::<Text, _>(&job.actor.role)
                .bind::<Nullable<Text>, _>(job.request_id.as_deref())
                .bind::<Text, _>(&options)
                .bind::<BigInt, _>(micros(job.created_at));
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
             WHERE j.customer_id = ?1 AND (?2 IS NULL OR j.id < ?2) \
             ORDER BY j.id DESC LIMIT ?3",
            job_select!()
        );
        let rows: Vec<JobRow> = diesel::sql_query(sql)
            .bind::<Text, _>(customer.as_str())
            .bind::<Nullable<Text>, _>(before.map(|b| uuid_text(b.as_uuid())))
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
             FROM bulk_job_items WHERE job_id = ?1 AND position >= ?2 \
             ORDER BY position LIMIT ?3",
        )
        .bind::<Text, _>(uuid_text(id.as_uuid()))
        .bind::<Integer, _>(position(from)?)
        .bind::<BigInt, _>(codec::limit(limit))
        .load(&mut conn)
        .await
        .map_err(error::db)?;
        rows.into_iter()
            .map(|r| {
                let finished = r
                    .finished_at
                    .map(|t| from_micros("bulk_job_items.finished_at", t))
                    .transpose()?;
                job_item_from_stored(
                    r.position,
                    &r.number_id,
                    &r.outcome,
                    r.error_code,
                    r.message,
                    finished,
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
                .bind::<BigInt, _>(now())
                .bind::<BigInt, _>(codec::ttl_micros(ttl))
                .bind::<Text, _>(uuid_text(token))
                .get_result(&mut conn)
                .await
                .optional()
                .map_err(error::db)?
        };
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let id = parse_uuid("bulk_jobs.id", &claimed.id)?;
        let job = self
            .job_by_id(id, None)
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
            .bind::<Text, _>(uuid_text(id.as_uuid()))
            .bind::<Text, _>(uuid_text(token))
            .bind::<BigInt, _>(now())
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(row.map_or(ClaimState::Lost, |r| ClaimState::Held {
            cancel_requested: r.cancel_requested != 0,
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
            .bind::<Text, _>(uuid_text(id.as_uuid()))
            .bind::<Text, _>(uuid_text(token))
            .bind::<Integer, _>(position(result.position)?)
            .bind::<Text, _>(result.outcome.as_str())
            .bind::<Nullable<Text>, _>(result.error_code.as_deref())
            .bind::<Nullable<Text>, _>(result.message.as_deref())
            .bind::<BigInt, _>(now())
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
        let id = uuid_text(id.as_uuid());
        let token = uuid_text(token);
        let mut conn = self.conn().await?;
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

    async fn cancel_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError> {
        let key = uuid_text(id.as_uuid());
        let owner = customer.as_str().to_owned();
        {
            let mut conn = self.conn().await?;
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
        self.get_job(customer, id).await
    }
}
