//! `JobStore` (bulk jobs and their numbers: `bulk_jobs`, `bulk_job_items`) written once for
//! both backends, but for the statements that must go together (creating, finishing and
//! cancelling a job), which each backend writes with its dialect's means.

/// The job columns every job read selects, before `JOB_COUNT_COLUMNS`.
pub const JOB_SELECT: &str = "SELECT j.id, j.customer_id, j.provider, j.kind, j.actor_subject, \
    j.actor_role, j.request_id, j.options, j.status, j.cancel_requested, j.holder, j.created_at, \
    j.updated_at, j.finished_at, ";

/// A job's options as stored (JSON text in both backends).
pub fn options_text(
    job: &trunkline_core::ports::BulkJob,
) -> Result<String, trunkline_core::ports::StoreError> {
    serde_json::to_string(&job.options)
        .map_err(|e| trunkline_core::ports::StoreError::Other(format!("job options: {e}")))
}

/// Expands `JobStore` for `$store`. The backend writes, in braces, the statements that must
/// go together, as methods of `$store`: `insert(&self, job, numbers)` (the job and its
/// numbers, both or neither), `finish(&self, id, token, status) -> bool` (and cancel the
/// numbers not started when the job is cancelled) and `cancel(&self, customer, id)` (a
/// queued job at once, with its numbers; a running one marked for its holder).
///
/// `clock = [...]`: the binds that follow the common ones in `CLAIM_JOB`, `RENEW_CLAIM` and
/// `RECORD_ITEM` (SQLite binds this process's clock; PostgreSQL reads the database's and
/// binds nothing). The calling module must have in scope those statements, `JOB_BY_ID`
/// (the job `$1`, of customer `$2` when not null), `LIST_JOBS` (customer `$1`, ids before
/// `$2` when not null, at most `$3`) and `JOB_ITEMS` (job `$1`, from position `$2`, at most
/// `$3`): each a `WHERE` (and `ORDER BY`) after [`JOB_SELECT`](crate::jobs::JOB_SELECT) and
/// `trunkline_core::ports::JOB_COUNT_COLUMNS`, but `JOB_ITEMS` which is whole. Also the
/// backend's `SqlId` and `SqlTs`, `enc`, `error::db`, `$store::conn(&self)` (see
/// [`ports`](crate::ports)) and `diesel_async::RunQueryDsl`.
#[macro_export]
macro_rules! job_store {
    ($store:ty, clock = [$($clock:tt)*] { $($own:tt)* }) => {
        mod job_rows {
            use diesel::QueryableByName;
            use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
            use trunkline_core::ports::{BulkJob, JobColumns, StoreError};

            use super::{enc, SqlId, SqlTs};

            #[derive(QueryableByName)]
            pub(super) struct JobRow {
                #[diesel(sql_type = SqlId)]
                id: enc::Id,
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
                #[diesel(sql_type = SqlTs)]
                created_at: enc::Ts,
                #[diesel(sql_type = SqlTs)]
                updated_at: enc::Ts,
                #[diesel(sql_type = Nullable<SqlTs>)]
                finished_at: Option<enc::Ts>,
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
                pub(super) fn into_job(self) -> Result<BulkJob, StoreError> {
                    JobColumns {
                        id: enc::id_from("bulk_jobs.id", self.id)?,
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
                        created_at: enc::ts_from("bulk_jobs.created_at", self.created_at)?,
                        updated_at: enc::ts_from("bulk_jobs.updated_at", self.updated_at)?,
                        finished_at: self
                            .finished_at
                            .map(|t| enc::ts_from("bulk_jobs.finished_at", t))
                            .transpose()?,
                    }
                    .into_job()
                }
            }

            #[derive(QueryableByName)]
            pub(super) struct ItemRow {
                #[diesel(sql_type = Integer)]
                pub(super) position: i32,
                #[diesel(sql_type = Text)]
                pub(super) number_id: String,
                #[diesel(sql_type = Text)]
                pub(super) outcome: String,
                #[diesel(sql_type = Nullable<Text>)]
                pub(super) error_code: Option<String>,
                #[diesel(sql_type = Nullable<Text>)]
                pub(super) message: Option<String>,
                #[diesel(sql_type = Nullable<SqlTs>)]
                pub(super) finished_at: Option<enc::Ts>,
            }

            #[derive(QueryableByName)]
            pub(super) struct IdRow {
                #[diesel(sql_type = SqlId)]
                pub(super) id: enc::Id,
            }

            #[derive(QueryableByName)]
            pub(super) struct CancelRow {
                #[diesel(sql_type = Bool)]
                pub(super) cancel_requested: bool,
            }

            pub(super) fn position(p: u32) -> Result<i32, StoreError> {
                i32::try_from(p)
                    .map_err(|_| StoreError::Other("job item position out of range".to_owned()))
            }
        }

        const _: () = {
            // Traits only, and full paths for the rest: the backend's methods resolve their
            // names in the backend's module.
            use diesel::OptionalExtension as _;

            use job_rows::{CancelRow, IdRow, ItemRow, JobRow, position};

            impl $store {
                $($own)*

                async fn job_by_id(
                    &self,
                    id: uuid::Uuid,
                    customer: Option<&str>,
                ) -> Result<Option<trunkline_core::ports::BulkJob>, trunkline_core::ports::StoreError>
                {
                    let mut conn = self.conn().await?;
                    let sql = format!(
                        "{}{} FROM bulk_jobs j {JOB_BY_ID}",
                        $crate::jobs::JOB_SELECT,
                        trunkline_core::ports::JOB_COUNT_COLUMNS,
                    );
                    let row: Option<JobRow> = diesel::sql_query(sql)
                        .bind::<SqlId, _>(enc::id_to(id))
                        .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(customer)
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    row.map(JobRow::into_job).transpose()
                }
            }

            #[async_trait::async_trait]
            impl trunkline_core::ports::JobStore for $store {
                async fn create_job(
                    &self,
                    job: &trunkline_core::ports::BulkJob,
                    numbers: &[trunkline_core::CarrierNumberId],
                ) -> Result<(), trunkline_core::ports::StoreError> {
                    let numbers: Vec<String> = numbers.iter().map(ToString::to_string).collect();
                    self.insert(job, numbers).await
                }

                async fn finish_job(
                    &self,
                    id: trunkline_core::JobId,
                    token: uuid::Uuid,
                    status: trunkline_core::ports::JobStatus,
                ) -> Result<bool, trunkline_core::ports::StoreError> {
                    self.finish(id, token, status).await
                }

                async fn cancel_job(
                    &self,
                    customer: &trunkline_core::CustomerId,
                    id: trunkline_core::JobId,
                ) -> Result<Option<trunkline_core::ports::BulkJob>, trunkline_core::ports::StoreError>
                {
                    self.cancel(customer, id).await?;
                    self.get_job(customer, id).await
                }

                async fn get_job(
                    &self,
                    customer: &trunkline_core::CustomerId,
                    id: trunkline_core::JobId,
                ) -> Result<Option<trunkline_core::ports::BulkJob>, trunkline_core::ports::StoreError>
                {
                    self.job_by_id(id.as_uuid(), Some(customer.as_str())).await
                }

                async fn list_jobs(
                    &self,
                    customer: &trunkline_core::CustomerId,
                    limit: u32,
                    before: Option<trunkline_core::JobId>,
                ) -> Result<Vec<trunkline_core::ports::BulkJob>, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::{BigInt, Nullable, Text};
                    let mut conn = self.conn().await?;
                    let sql = format!(
                        "{}{} FROM bulk_jobs j {LIST_JOBS}",
                        $crate::jobs::JOB_SELECT,
                        trunkline_core::ports::JOB_COUNT_COLUMNS,
                    );
                    let rows: Vec<JobRow> = diesel::sql_query(sql)
                        .bind::<Text, _>(customer.as_str())
                        .bind::<Nullable<SqlId>, _>(before.map(|b| enc::id_to(b.as_uuid())))
                        .bind::<BigInt, _>($crate::codec::limit(limit))
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?;
                    rows.into_iter().map(JobRow::into_job).collect()
                }

                async fn job_items(
                    &self,
                    id: trunkline_core::JobId,
                    from: u32,
                    limit: u32,
                ) -> Result<Vec<trunkline_core::ports::JobItem>, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::{BigInt, Integer};
                    let mut conn = self.conn().await?;
                    let rows: Vec<ItemRow> = diesel::sql_query(JOB_ITEMS)
                        .bind::<SqlId, _>(enc::id_to(id.as_uuid()))
                        .bind::<Integer, _>(position(from)?)
                        .bind::<BigInt, _>($crate::codec::limit(limit))
                        .load(&mut conn)
                        .await
                        .map_err(error::db)?;
                    rows.into_iter()
                        .map(|r| {
                            let finished = r
                                .finished_at
                                .map(|t| enc::ts_from("bulk_job_items.finished_at", t))
                                .transpose()?;
                            trunkline_core::ports::job_item_from_stored(
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

                async fn claim_job(
                    &self,
                    holder: &str,
                    ttl: std::time::Duration,
                ) -> Result<Option<trunkline_core::ports::JobClaim>, trunkline_core::ports::StoreError>
                {
                    use diesel::sql_types::{BigInt, Text};
                    let token = uuid::Uuid::new_v4();
                    let claimed: Option<IdRow> = {
                        let mut conn = self.write_conn().await?;
                        diesel::sql_query(CLAIM_JOB)
                            .bind::<Text, _>(holder)
                            .bind::<SqlId, _>(enc::id_to(token))
                            .bind::<BigInt, _>($crate::codec::ttl_micros(ttl))
                            $($clock)*
                            .get_result(&mut conn)
                            .await
                            .optional()
                            .map_err(error::db)?
                    };
                    let Some(claimed) = claimed else {
                        return Ok(None);
                    };
                    let id = enc::id_from("bulk_jobs.id", claimed.id)?;
                    let job = self.job_by_id(id, None).await?.ok_or_else(|| {
                        trunkline_core::ports::StoreError::Other("a claimed job vanished".to_owned())
                    })?;
                    Ok(Some(trunkline_core::ports::JobClaim { job, token }))
                }

                async fn renew_job_claim(
                    &self,
                    id: trunkline_core::JobId,
                    token: uuid::Uuid,
                    ttl: std::time::Duration,
                ) -> Result<trunkline_core::ports::ClaimState, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::BigInt;
                    let mut conn = self.write_conn().await?;
                    let row: Option<CancelRow> = diesel::sql_query(RENEW_CLAIM)
                        .bind::<SqlId, _>(enc::id_to(id.as_uuid()))
                        .bind::<SqlId, _>(enc::id_to(token))
                        .bind::<BigInt, _>($crate::codec::ttl_micros(ttl))
                        $($clock)*
                        .get_result(&mut conn)
                        .await
                        .optional()
                        .map_err(error::db)?;
                    Ok(row.map_or(trunkline_core::ports::ClaimState::Lost, |r| {
                        trunkline_core::ports::ClaimState::Held {
                            cancel_requested: r.cancel_requested,
                        }
                    }))
                }

                async fn record_job_item(
                    &self,
                    id: trunkline_core::JobId,
                    token: uuid::Uuid,
                    result: &trunkline_core::ports::ItemResult,
                ) -> Result<bool, trunkline_core::ports::StoreError> {
                    use diesel::sql_types::{Integer, Nullable, Text};
                    let mut conn = self.write_conn().await?;
                    let n = diesel::sql_query(RECORD_ITEM)
                        .bind::<SqlId, _>(enc::id_to(id.as_uuid()))
                        .bind::<SqlId, _>(enc::id_to(token))
                        .bind::<Integer, _>(position(result.position)?)
                        .bind::<Text, _>(result.outcome.as_str())
                        .bind::<Nullable<Text>, _>(result.error_code.as_deref())
                        .bind::<Nullable<Text>, _>(result.message.as_deref())
                        $($clock)*
                        .execute(&mut conn)
                        .await
                        .map_err(error::db)?;
                    Ok(n == 1)
                }
            }
        };
    };
}
