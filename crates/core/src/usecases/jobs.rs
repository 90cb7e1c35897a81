//! Bulk connect and disconnect as durable jobs.
//!
//! A job is stored with its numbers (every one `pending`) and answered at once; an instance
//! claims it ([`Jobs::run_next`]) and runs the ordinary connect (or disconnect) of each
//! number, several at a time, recording each number's result as soon as it has one. The
//! claim is renewed while the job runs; when its instance dies another one claims the job
//! and goes on with the numbers still `pending` only. A number that was under way when its
//! instance died is pending still and is done again, which connect and disconnect allow:
//! they reconcile against live state and reuse what exists, so nothing is created twice.
//!
//! Upstream traffic is bounded by the carriers' [`crate::limits::UpstreamLimits`] (the
//! carriers the onboarding use cases hold are wrapped in it), not here: the job only
//! decides how many numbers are under way at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{ConnectRequest, Onboarding, StepAction, TargetChoice};
use crate::error::{Error, ErrorCode, ValidationError};
use crate::ids::{CarrierNumberId, CustomerId, JobId, ProviderKind};
use crate::model::{Actor, OriginationTargets, RoutingPolicy, TrunkStrategy};
use crate::ports::{
    BulkJob, ClaimState, ItemOutcome, ItemResult, JobClaim, JobCounts, JobItem, JobKind, JobStatus,
    JobStore,
};
use crate::sip::SipTarget;

/// The most numbers one job takes.
pub const MAX_JOB_NUMBERS: usize = 1000;
/// [`MAX_JOB_NUMBERS`] as a page size of the store.
#[allow(clippy::cast_possible_truncation)] // 1,000 fits
const MAX_JOB_NUMBERS_U32: u32 = MAX_JOB_NUMBERS as u32;

/// The longest wait before a number is tried again.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Settings of the job runner (from configuration).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// This instance's name, recorded as the holder of the jobs it claims.
    pub instance_id: String,
    /// How long a claim lives without renewal: how soon another instance takes over a job
    /// whose instance died. Renewed every third of it.
    pub claim_ttl: Duration,
    /// Numbers of one job under way at once on this instance.
    pub parallelism: usize,
    /// How many times one number is tried again after a transient failure (another
    /// operation held it, the carrier was unavailable or kept rate limiting) before it is
    /// recorded `failed`.
    pub max_attempts: u32,
    /// First wait before a retry of a number; doubles per attempt (at least what the error
    /// said to wait).
    pub retry_base: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            instance_id: format!("trunkline-{}", uuid::Uuid::new_v4()),
            claim_ttl: Duration::from_secs(15),
            parallelism: 64,
            max_attempts: 20,
            retry_base: Duration::from_millis(200),
        }
    }
}

/// The options every number of a job is connected or disconnected with, as stored with it.
/// Read back through the checks a request's options pass, so a stored job cannot run with
/// options a request could not give.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredJobOptions", into = "StoredJobOptions")]
pub struct JobOptions {
    pub targets: TargetChoice,
    pub routing: Option<RoutingPolicy>,
    pub trunk_strategy: Option<TrunkStrategy>,
    pub force: bool,
    /// Disconnect only.
    pub restore_voice_config: bool,
}

/// [`JobOptions`] as stored: the request's wire fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredJobOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sip_target: Option<SipTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origination_targets: Option<OriginationTargets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    routing: Option<RoutingPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trunk_strategy: Option<TrunkStrategy>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    restore_voice_config: bool,
}

impl TryFrom<StoredJobOptions> for JobOptions {
    type Error = ValidationError;

    fn try_from(s: StoredJobOptions) -> Result<Self, Self::Error> {
        Ok(Self {
            targets: TargetChoice::from_fields(s.sip_target, s.origination_targets)?,
            routing: s.routing,
            trunk_strategy: s.trunk_strategy,
            force: s.force,
            restore_voice_config: s.restore_voice_config,
        })
    }
}

impl From<JobOptions> for StoredJobOptions {
    fn from(o: JobOptions) -> Self {
        let (sip_target, origination_targets) = o.targets.into_fields();
        Self {
            sip_target,
            origination_targets,
            routing: o.routing,
            trunk_strategy: o.trunk_strategy,
            force: o.force,
            restore_voice_config: o.restore_voice_config,
        }
    }
}

impl JobOptions {
    pub fn connect(req: &ConnectRequest) -> Self {
        Self {
            targets: req.targets.clone(),
            routing: req.routing.clone(),
            trunk_strategy: req.trunk_strategy,
            force: req.force,
            restore_voice_config: false,
        }
    }

    fn connect_request(&self) -> ConnectRequest {
        // Field by field on the default: fields connect gains later keep their defaults.
        let mut req = ConnectRequest::default();
        req.targets.clone_from(&self.targets);
        req.routing.clone_from(&self.routing);
        req.trunk_strategy = self.trunk_strategy;
        req.force = self.force;
        req
    }
}

/// A job and one page of its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub job: BulkJob,
    pub items: Vec<JobItem>,
}

/// Bulk connect and disconnect: submit, read, list, cancel, and run.
#[derive(Clone)]
pub struct Jobs {
    onboarding: Arc<Onboarding>,
    store: Arc<dyn JobStore>,
    settings: JobSettings,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn not_found() -> Error {
    Error::new(ErrorCode::NotFound, "no such job")
}

impl Jobs {
    pub fn new(
        onboarding: Arc<Onboarding>,
        store: Arc<dyn JobStore>,
        settings: JobSettings,
    ) -> Self {
        Self {
            onboarding,
            store,
            settings,
        }
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Check what can be checked before anything is stored: the number list, the carrier
    /// and the saved credentials. Each number's own checks happen when it is run.
    async fn check_submission(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        numbers: &[CarrierNumberId],
    ) -> Result<(), Error> {
        if numbers.is_empty() || numbers.len() > MAX_JOB_NUMBERS {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                format!("numberIds: give 1 to {MAX_JOB_NUMBERS} number ids"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(numbers.len());
        if let Some(dup) = numbers.iter().position(|n| !seen.insert(n)) {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                format!("numberIds[{dup}]: appears twice; give each number once"),
            ));
        }
        self.onboarding.carrier(provider)?;
        self.onboarding.integration(customer, provider).await?;
        Ok(())
    }

    /// Store a connect job for `numbers` with the options of one connect; answered before
    /// anything is done.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` (list, options), `INVALID_SIP_TARGET`, `NOT_CONFIGURED` (carrier,
    /// or no SIP target at all), `INTEGRATION_NOT_FOUND`.
    pub async fn submit_connect(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        numbers: Vec<CarrierNumberId>,
        req: &ConnectRequest,
        request_id: Option<&str>,
    ) -> Result<BulkJob, Error> {
        let settings = self.onboarding.settings();
        req.check(settings.allow_sip_target_override)?;
        if !req.targets.names_target()
            && settings.default_sip_target.is_none()
            && !settings.allow_sip_target_override
        {
            return Err(Error::new(
                ErrorCode::NotConfigured,
                "no SIP target: the server has no default LiveKit SIP ingress \
                 (TRUNKLINE_SIP_TARGET)",
            ));
        }
        self.check_submission(customer, provider, &numbers).await?;
        self.store_job(
            actor,
            customer,
            provider,
            JobKind::Connect,
            JobOptions::connect(req),
            numbers,
            request_id,
        )
        .await
    }

    /// Store a disconnect job for `numbers`.
    ///
    /// # Errors
    /// As [`Jobs::submit_connect`].
    pub async fn submit_disconnect(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        numbers: Vec<CarrierNumberId>,
        restore_voice_config: bool,
        request_id: Option<&str>,
    ) -> Result<BulkJob, Error> {
        self.check_submission(customer, provider, &numbers).await?;
        let options = JobOptions {
            restore_voice_config,
            ..JobOptions::default()
        };
        self.store_job(
            actor,
            customer,
            provider,
            JobKind::Disconnect,
            options,
            numbers,
            request_id,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_job(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        kind: JobKind,
        options: JobOptions,
        numbers: Vec<CarrierNumberId>,
        request_id: Option<&str>,
    ) -> Result<BulkJob, Error> {
        let now = Utc::now();
        let total = u32::try_from(numbers.len()).unwrap_or(u32::MAX);
        let mut counts = JobCounts::default();
        counts.add(ItemOutcome::Pending, total);
        let job = BulkJob {
            id: JobId::new(),
            customer_id: customer.clone(),
            provider,
            kind,
            actor: actor.clone(),
            request_id: request_id.map(str::to_owned),
            options: serde_json::to_value(&options)
                .map_err(|e| Error::new(ErrorCode::Internal, format!("job options: {e}")))?,
            status: JobStatus::Queued,
            cancel_requested: false,
            holder: None,
            counts,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        self.store.create_job(&job, &numbers).await?;
        Ok(job)
    }

    /// The customer's job with its numbers from `from` on (at most `limit`).
    ///
    /// # Errors
    /// `NOT_FOUND` for a job that does not exist or is another customer's.
    pub async fn get(
        &self,
        customer: &CustomerId,
        id: JobId,
        from: u32,
        limit: u32,
    ) -> Result<JobView, Error> {
        let job = self
            .store
            .get_job(customer, id)
            .await?
            .ok_or_else(not_found)?;
        let items = self
            .store
            .job_items(id, from, limit.clamp(1, MAX_JOB_NUMBERS_U32))
            .await?;
        Ok(JobView { job, items })
    }

    /// The customer's jobs, newest first; `before` continues a listing.
    pub async fn list(
        &self,
        customer: &CustomerId,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<BulkJob>, Error> {
        Ok(self
            .store
            .list_jobs(customer, limit.clamp(1, 100), before)
            .await?)
    }

    /// Cancel the customer's job. Numbers already done stay done; numbers under way finish;
    /// numbers not started are left untouched (`cancelled`). Cancelling a finished job
    /// changes nothing.
    ///
    /// # Errors
    /// `NOT_FOUND` for a job that does not exist or is another customer's.
    pub async fn cancel(&self, customer: &CustomerId, id: JobId) -> Result<BulkJob, Error> {
        self.store
            .cancel_job(customer, id)
            .await?
            .ok_or_else(not_found)
    }

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
