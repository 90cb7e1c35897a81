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
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{ConnectRequest, Onboarding, TargetChoice};
use crate::error::{Error, ErrorCode, ValidationError};
use crate::ids::{CarrierNumberId, CustomerId, JobId, ProviderKind};
use crate::model::{Actor, OriginationTargets, RoutingPolicy, TrunkStrategy};
use crate::ports::{BulkJob, ItemOutcome, JobCounts, JobItem, JobKind, JobStatus, JobStore};
use crate::sip::SipTarget;

mod runner;

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
}
