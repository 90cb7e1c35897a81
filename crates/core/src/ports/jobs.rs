//! Bulk jobs: connect or disconnect many numbers of one customer in the background, durable
//! in the store so that another instance finishes a job whose instance died.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::errors::StoreError;
use crate::ids::{CarrierNumberId, CustomerId, JobId, ProviderKind};
use crate::model::Actor;

/// What a job does to each of its numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Connect,
    Disconnect,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Connect, Self::Disconnect]
            .into_iter()
            .find(|k| k.as_str() == raw)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for an instance to claim it.
    Queued,
    /// Claimed by an instance (or its holder died and the claim is about to be taken over).
    Running,
    /// Every number has its result (some may have failed).
    Completed,
    /// Cancelled: numbers not started when the cancel was seen are `cancelled`.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

/// The result of one number of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemOutcome {
    /// Not done yet.
    Pending,
    /// Connect changed something (created, updated or moved a step).
    Connected,
    /// Connect found everything already in place and wrote nothing.
    Reused,
    /// Disconnect took the number off.
    Disconnected,
    /// Disconnect found the number already disconnected.
    AlreadyDisconnected,
    /// The operation failed; the item carries the error code and message.
    Failed,
    /// The job was cancelled before this number was started; nothing was done to it.
    Cancelled,
}

impl ItemOutcome {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Connected,
        Self::Reused,
        Self::Disconnected,
        Self::AlreadyDisconnected,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connected => "connected",
            Self::Reused => "reused",
            Self::Disconnected => "disconnected",
            Self::AlreadyDisconnected => "already_disconnected",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// How many numbers of a job have each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: u32,
    pub connected: u32,
    pub reused: u32,
    pub disconnected: u32,
    pub already_disconnected: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl JobCounts {
    pub fn add(&mut self, outcome: ItemOutcome, n: u32) {
        let slot = match outcome {
            ItemOutcome::Pending => &mut self.pending,
            ItemOutcome::Connected => &mut self.connected,
            ItemOutcome::Reused => &mut self.reused,
            ItemOutcome::Disconnected => &mut self.disconnected,
            ItemOutcome::AlreadyDisconnected => &mut self.already_disconnected,
            ItemOutcome::Failed => &mut self.failed,
            ItemOutcome::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    pub fn total(&self) -> u32 {
        self.pending
            + self.connected
            + self.reused
            + self.disconnected
            + self.already_disconnected
            + self.failed
            + self.cancelled
    }
}

/// A bulk job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkJob {
    pub id: JobId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub kind: JobKind,
    /// Who submitted it: every number's operation is done and audited in their name.
    pub actor: Actor,
    /// The submitting request's id, carried into each number's audit event.
    pub request_id: Option<String>,
    /// The options every number is connected (or disconnected) with, as the use case
    /// serialized them. Opaque to the store.
    pub options: serde_json::Value,
    pub status: JobStatus,
    /// A cancel was asked for; the holder stops starting numbers when it sees it.
    pub cancel_requested: bool,
    /// The instance holding the job's claim, while it runs.
    pub holder: Option<String>,
    /// Per outcome, computed by the store from the job's numbers.
    pub counts: JobCounts,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One number of a job and its result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobItem {
    /// The number's place in the submitted list, from 0.
    pub position: u32,
    pub number_id: CarrierNumberId,
    pub outcome: ItemOutcome,
    /// For `failed`: the normalized error code (`NUMBER_IN_USE`, ...).
    pub error_code: Option<String>,
    /// For `failed`: the error's message, safe to show to the customer.
    pub message: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A claim on a job: who holds it, and the token that proves it. The token changes with every
/// claim, so a holder whose claim was taken over can no longer record results.
#[derive(Debug, Clone, PartialEq)]
pub struct JobClaim {
    pub job: BulkJob,
    pub token: uuid::Uuid,
}

/// What a renewal of a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// Still held; `cancel_requested` says whether a cancel was asked for meanwhile.
    Held { cancel_requested: bool },
    /// Taken over by another instance (this holder's claim expired) or the job finished.
    Lost,
}

/// A finished number's result, as the holder records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResult {
    pub position: u32,
    pub outcome: ItemOutcome,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

/// Bulk jobs and their numbers.
///
/// A job is claimed by one instance at a time with a time-limited claim (the store's clock),
/// renewed while it runs: a holder that dies stops renewing, and another instance claims the
/// job once the claim has expired. Results are recorded only under the current claim, and a
/// number with a result is never handed out again.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Store a new job (status `queued`) with its numbers, every one `pending`, in order.
    ///
    /// # Errors
    /// `Conflict` when a job with the same id exists.
    async fn create_job(
        &self,
        job: &BulkJob,
        numbers: &[CarrierNumberId],
    ) -> Result<(), StoreError>;

    /// The customer's job; `Ok(None)` when it does not exist or is another customer's.
    async fn get_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError>;

    /// The customer's jobs, newest first, at most `limit`, only those older than `before`
    /// when given (keyset paging: pass the last id of the previous page).
    async fn list_jobs(
        &self,
        customer: &CustomerId,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<BulkJob>, StoreError>;

    /// The job's numbers in submitted order, from `position` `from` on, at most `limit`.
    async fn job_items(&self, id: JobId, from: u32, limit: u32)
    -> Result<Vec<JobItem>, StoreError>;

    /// Claim the oldest job that is `queued`, or `running` with an expired claim (its holder
    /// died), for `ttl`; the job becomes `running`. Exactly one concurrent caller wins a
    /// given job. `Ok(None)` when there is nothing to claim.
    async fn claim_job(&self, holder: &str, ttl: Duration) -> Result<Option<JobClaim>, StoreError>;

    /// Extend a held claim by `ttl` from now. `Lost` when the token no longer holds it.
    async fn renew_job_claim(
        &self,
        id: JobId,
        token: uuid::Uuid,
        ttl: Duration,
    ) -> Result<ClaimState, StoreError>;

    /// Record a number's result, only under the current claim and only for a number still
    /// `pending`. Returns whether it was recorded.
    async fn record_job_item(
        &self,
        id: JobId,
        token: uuid::Uuid,
        result: &ItemResult,
    ) -> Result<bool, StoreError>;

    /// End the job under the current claim: `Completed` or `Cancelled` (then every number
    /// still `pending` becomes `cancelled`). The claim is dropped. Returns whether it held.
    async fn finish_job(
        &self,
        id: JobId,
        token: uuid::Uuid,
        status: JobStatus,
    ) -> Result<bool, StoreError>;

    /// Ask for the customer's job to be cancelled. A `queued` job is cancelled at once (its
    /// numbers `cancelled`); a `running` one is marked and its holder stops starting numbers;
    /// a finished one is left as it is. The job as it is after that; `Ok(None)` when it does
    /// not exist or is another customer's.
    async fn cancel_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError>;
}

/// The stored form of a job, shared by the store adapters: each reads its own column types
/// into this and lets [`JobColumns::into_job`] check every value.
#[derive(Debug, Clone)]
pub struct JobColumns {
    pub id: uuid::Uuid,
    pub customer_id: String,
    pub provider: String,
    pub kind: String,
    pub actor_subject: String,
    pub actor_role: String,
    pub request_id: Option<String>,
    pub options: String,
    pub status: String,
    pub cancel_requested: bool,
    pub holder: Option<String>,
    /// Per outcome, in [`ItemOutcome::ALL`] order.
    pub counts: [i64; 7],
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The SQL of the per-outcome counts, in [`ItemOutcome::ALL`] order, as correlated
/// subqueries on `bulk_job_items` of the job aliased `j` (both SQL stores understand it).
pub const JOB_COUNT_COLUMNS: &str = "\
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'pending') AS n_pending, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'connected') AS n_connected, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'reused') AS n_reused, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'disconnected') AS n_disconnected, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'already_disconnected') AS n_already_disconnected, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'failed') AS n_failed, \
    (SELECT count(*) FROM bulk_job_items i WHERE i.job_id = j.id AND i.outcome = 'cancelled') AS n_cancelled";

fn corrupt(column: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {what}"))
}

impl JobColumns {
    /// # Errors
    /// `Corrupt` for a stored value that does not parse.
    pub fn into_job(self) -> Result<BulkJob, StoreError> {
        let mut counts = JobCounts::default();
        for (outcome, n) in ItemOutcome::ALL.into_iter().zip(self.counts) {
            counts.add(
                outcome,
                u32::try_from(n).map_err(|e| corrupt("bulk_job_items count", e))?,
            );
        }
        Ok(BulkJob {
            id: JobId::from_uuid(self.id),
            customer_id: CustomerId::parse(&self.customer_id)
                .map_err(|e| corrupt("bulk_jobs.customer_id", e))?,
            provider: ProviderKind::parse(&self.provider)
                .map_err(|e| corrupt("bulk_jobs.provider", e))?,
            kind: JobKind::parse(&self.kind)
                .ok_or_else(|| corrupt("bulk_jobs.kind", &self.kind))?,
            actor: Actor {
                subject: self.actor_subject,
                role: self.actor_role,
            },
            request_id: self.request_id,
            options: serde_json::from_str(&self.options)
                .map_err(|e| corrupt("bulk_jobs.options", e))?,
            status: JobStatus::parse(&self.status)
                .ok_or_else(|| corrupt("bulk_jobs.status", &self.status))?,
            cancel_requested: self.cancel_requested,
            holder: self.holder,
            counts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        })
    }
}

/// One stored number of a job.
///
/// # Errors
/// `Corrupt` for a stored value that does not parse.
pub fn job_item_from_stored(
    position: i32,
    number_id: &str,
    outcome: &str,
    error_code: Option<String>,
    message: Option<String>,
    finished_at: Option<DateTime<Utc>>,
) -> Result<JobItem, StoreError> {
    Ok(JobItem {
        position: u32::try_from(position).map_err(|e| corrupt("bulk_job_items.position", e))?,
        number_id: CarrierNumberId::parse(number_id)
            .map_err(|e| corrupt("bulk_job_items.number_id", e))?,
        outcome: ItemOutcome::parse(outcome)
            .ok_or_else(|| corrupt("bulk_job_items.outcome", outcome))?,
        error_code,
        message,
        finished_at,
    })
}
