//! Running a claimed job: its pending numbers, several at a time, with the claim renewed.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt as _;

use super::{JobOptions, Jobs, MAX_JOB_NUMBERS_U32, MAX_RETRY_WAIT};
use crate::error::{Error, ErrorCode};
use crate::ids::CarrierNumberId;
use crate::ports::{
    BulkJob, ClaimState, ItemOutcome, ItemResult, JobClaim, JobItem, JobKind, JobStatus,
};
use crate::usecases::StepAction;

impl Jobs {
    /// Claim one job: the oldest queued one, or one whose instance died (its claim expired).
    ///
    /// # Errors
    /// The store failed.
    pub async fn claim_next(&self) -> Result<Option<JobClaim>, Error> {
        Ok(self
            .store
            .claim_job(&self.settings.instance_id, self.settings.claim_ttl)
            .await?)
    }

    /// Claim one job and run it to its end (or until its claim is lost). Returns whether a
    /// job was claimed.
    ///
    /// # Errors
    /// The store failed to claim.
    pub async fn run_next(&self) -> Result<bool, Error> {
        let Some(claim) = self.claim_next().await? else {
            return Ok(false);
        };
        self.run_claimed(claim).await;
        Ok(true)
    }

    /// Run a claimed job: its pending numbers, several at a time, while renewing the claim.
    /// Ends when every number has a result (the job is then `completed`), when a cancel is
    /// seen (numbers not started become `cancelled`), or when the claim is lost (another
    /// instance goes on).
    pub async fn run_claimed(&self, claim: JobClaim) {
        let JobClaim { job, token } = claim;
        let cancelled = AtomicBool::new(job.cancel_requested);
        let lost = AtomicBool::new(false);
        let heartbeat = async {
            loop {
                tokio::time::sleep(self.settings.claim_ttl / 3).await;
                match self
                    .store
                    .renew_job_claim(job.id, token, self.settings.claim_ttl)
                    .await
                {
                    Ok(ClaimState::Held { cancel_requested }) => {
                        if cancel_requested {
                            cancelled.store(true, Ordering::SeqCst);
                        }
                    }
                    Ok(ClaimState::Lost) => {
                        tracing::warn!(job = %job.id, "job claim lost; another instance goes on with it");
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A store hiccup: the claim still has two thirds of its time.
                    Err(e) => {
                        tracing::warn!(job = %job.id, error = %e, "could not renew a job claim");
                    }
                }
            }
        };
        let work = self.run_items(&job, token, &cancelled, &lost);
        futures::pin_mut!(heartbeat);
        futures::pin_mut!(work);
        // The heartbeat only ends when the claim is lost; then the work stops starting
        // numbers and ends soon after.
        let finished = match futures::future::select(work, heartbeat).await {
            futures::future::Either::Left((finished, _)) => finished,
            futures::future::Either::Right(((), work)) => work.await,
        };
        if !finished || lost.load(Ordering::SeqCst) {
            return;
        }
        let status = if cancelled.load(Ordering::SeqCst) {
            JobStatus::Cancelled
        } else {
            JobStatus::Completed
        };
        match self.store.finish_job(job.id, token, status).await {
            Ok(true) => tracing::info!(job = %job.id, status = status.as_str(), "job finished"),
            Ok(false) => {
                tracing::warn!(job = %job.id, "job claim lost before it could be finished");
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not finish a job; its claim expires and it is finished again");
            }
        }
    }

    /// Run every pending number; `false` when stopped early by a lost claim or a store
    /// failure (the job is then finished by whoever claims it next).
    async fn run_items(
        &self,
        job: &BulkJob,
        token: uuid::Uuid,
        cancelled: &AtomicBool,
        lost: &AtomicBool,
    ) -> bool {
        const PAGE: u32 = MAX_JOB_NUMBERS_U32;
        let items = match self.store.job_items(job.id, 0, PAGE).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not read a job's numbers");
                return false;
            }
        };
        // Stored options are read through the checks a request passes; ones that fail them
        // fail every number rather than run it with other options than were asked for.
        let options = serde_json::from_value::<JobOptions>(job.options.clone()).map_err(|e| {
            tracing::error!(job = %job.id, error = %e, "a job's stored options do not parse; its numbers fail");
            Error::internal(format!("job {}: stored options: {e}", job.id))
        });
        let store_failed = AtomicBool::new(false);
        futures::stream::iter(items.into_iter().filter(|i| i.outcome == ItemOutcome::Pending))
            .for_each_concurrent(self.settings.parallelism.max(1), |item| {
                let options = &options;
                let store_failed = &store_failed;
                async move {
                    if cancelled.load(Ordering::SeqCst)
                        || lost.load(Ordering::SeqCst)
                        || store_failed.load(Ordering::SeqCst)
                    {
                        return;
                    }
                    let result = self.run_item(job, options, &item, cancelled, lost).await;
                    let Some(result) = result else { return };
                    match self.store.record_job_item(job.id, token, &result).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(job = %job.id, position = item.position, "a number's result was not recorded (claim gone or result already there); this instance stops the job");
                            lost.store(true, Ordering::SeqCst);
                        }
                        Err(e) => {
                            tracing::warn!(job = %job.id, error = %e, "could not record a number's result");
                            store_failed.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
            .await;
        !store_failed.load(Ordering::SeqCst)
    }

    /// One number, tried again after transient failures. `None` when the job stopped
    /// (cancelled or claim lost) while the number waited for a retry: it stays pending.
    async fn run_item(
        &self,
        job: &BulkJob,
        options: &Result<JobOptions, Error>,
        item: &JobItem,
        cancelled: &AtomicBool,
        lost: &AtomicBool,
    ) -> Option<ItemResult> {
        let mut attempt = 0;
        loop {
            let outcome = match options {
                Ok(options) => self.once(job, options, &item.number_id).await,
                Err(e) => Err(e.clone()),
            };
            let error = match outcome {
                Ok(outcome) => {
                    return Some(ItemResult {
                        position: item.position,
                        outcome,
                        error_code: None,
                        message: None,
                    });
                }
                Err(e) => e,
            };
            attempt += 1;
            if !retryable(&error) || attempt >= self.settings.max_attempts {
                return Some(ItemResult {
                    position: item.position,
                    outcome: ItemOutcome::Failed,
                    error_code: Some(error.code.as_str().to_owned()),
                    message: Some(error.message),
                });
            }
            let backoff = self
                .settings
                .retry_base
                .saturating_mul(1 << (attempt - 1).min(10))
                .min(MAX_RETRY_WAIT);
            tokio::time::sleep(error.retry_after.unwrap_or_default().max(backoff)).await;
            if cancelled.load(Ordering::SeqCst) || lost.load(Ordering::SeqCst) {
                return None;
            }
        }
    }

    async fn once(
        &self,
        job: &BulkJob,
        options: &JobOptions,
        number: &CarrierNumberId,
    ) -> Result<ItemOutcome, Error> {
        let request_id = job.request_id.as_deref();
        match job.kind {
            JobKind::Connect => {
                let outcome = self
                    .onboarding
                    .connect(
                        &job.actor,
                        &job.customer_id,
                        job.provider,
                        number,
                        options.connect_request(),
                        request_id,
                    )
                    .await?;
                let wrote = outcome
                    .steps
                    .iter()
                    .any(|s| !matches!(s.action, StepAction::Reused | StepAction::Skipped));
                Ok(if wrote {
                    ItemOutcome::Connected
                } else {
                    ItemOutcome::Reused
                })
            }
            JobKind::Disconnect => {
                let outcome = self
                    .onboarding
                    .disconnect(
                        &job.actor,
                        &job.customer_id,
                        job.provider,
                        number,
                        options.restore_voice_config,
                        request_id,
                    )
                    .await?;
                Ok(if outcome.already_disconnected {
                    ItemOutcome::AlreadyDisconnected
                } else {
                    ItemOutcome::Disconnected
                })
            }
        }
    }
}

/// Failures worth another try of the same number: another operation held it (a lease), the
/// carrier or LiveKit was unavailable or kept rate limiting, the database hiccuped.
fn retryable(e: &Error) -> bool {
    matches!(
        e.code,
        ErrorCode::Conflict
            | ErrorCode::RateLimited
            | ErrorCode::ProviderUnavailable
            | ErrorCode::ServiceUnavailable
    )
}
