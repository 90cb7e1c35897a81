//! Bulk jobs and their numbers: claimed by one holder at a time, results only under the
//! current claim, as the SQL stores' conditional updates.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tables::StoredJob;
use super::{MemoryStore, take, until};
use crate::ids::{CarrierNumberId, CustomerId, JobId};
use crate::ports::{
    BulkJob, ClaimState, ItemOutcome, ItemResult, JobClaim, JobCounts, JobItem, JobStatus,
    JobStore, StoreError,
};

/// The job with its counts, which the store computes from its numbers.
fn view(s: &StoredJob) -> BulkJob {
    let mut job = s.job.clone();
    job.counts = JobCounts::default();
    for item in &s.items {
        job.counts.add(item.outcome, 1);
    }
    job
}

/// Numbers not started are cancelled with the job.
fn cancel_pending(s: &mut StoredJob, now: DateTime<Utc>) {
    for item in s
        .items
        .iter_mut()
        .filter(|i| i.outcome == ItemOutcome::Pending)
    {
        item.outcome = ItemOutcome::Cancelled;
        item.finished_at = Some(now);
    }
}

/// Only a running job's current token holds its claim.
fn claimed(s: &StoredJob, token: uuid::Uuid) -> bool {
    s.job.status == JobStatus::Running && s.token == Some(token)
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create_job(
        &self,
        job: &BulkJob,
        numbers: &[CarrierNumberId],
    ) -> Result<(), StoreError> {
        let mut t = self.enter("create_job")?;
        if t.jobs.contains_key(&job.id) {
            return Err(StoreError::Conflict("bulk_jobs: the id exists".to_owned()));
        }
        let mut items = Vec::with_capacity(numbers.len());
        for (position, number) in numbers.iter().enumerate() {
            items.push(JobItem {
                position: u32::try_from(position)
                    .map_err(|_| StoreError::Other("bulk_job_items: too many numbers".into()))?,
                number_id: number.clone(),
                outcome: ItemOutcome::Pending,
                error_code: None,
                message: None,
                finished_at: None,
            });
        }
        // A new job is queued, whatever the caller's copy says.
        let stored = BulkJob {
            status: JobStatus::Queued,
            cancel_requested: false,
            holder: None,
            counts: JobCounts::default(),
            updated_at: job.created_at,
            finished_at: None,
            ..job.clone()
        };
        t.jobs.insert(
            job.id,
            StoredJob {
                job: stored,
                items,
                token: None,
                expires: None,
            },
        );
        Ok(())
    }

    async fn get_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError> {
        let t = self.enter("get_job")?;
        Ok(t.jobs
            .get(&id)
            .filter(|s| &s.job.customer_id == customer)
            .map(view))
    }

    async fn list_jobs(
        &self,
        customer: &CustomerId,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<BulkJob>, StoreError> {
        let t = self.enter("list_jobs")?;
        Ok(take(
            t.jobs
                .values()
                .rev()
                .filter(|s| &s.job.customer_id == customer)
                .filter(|s| before.is_none_or(|b| s.job.id < b))
                .map(view),
            limit,
        ))
    }

    async fn job_items(
        &self,
        id: JobId,
        from: u32,
        limit: u32,
    ) -> Result<Vec<JobItem>, StoreError> {
        let t = self.enter("job_items")?;
        Ok(t.jobs
            .get(&id)
            .map(|s| {
                take(
                    s.items.iter().filter(|i| i.position >= from).cloned(),
                    limit,
                )
            })
            .unwrap_or_default())
    }

    async fn claim_job(&self, holder: &str, ttl: Duration) -> Result<Option<JobClaim>, StoreError> {
        let mut t = self.enter("claim_job")?;
        let now = Utc::now();
        // The oldest claimable job: ids sort by creation.
        let Some(s) = t.jobs.values_mut().find(|s| match s.job.status {
            JobStatus::Queued => true,
            JobStatus::Running => s.expires.is_none_or(|e| e <= now),
            _ => false,
        }) else {
            return Ok(None);
        };
        let token = uuid::Uuid::new_v4();
        s.job.status = JobStatus::Running;
        s.job.holder = Some(holder.to_owned());
        s.job.updated_at = now;
        s.token = Some(token);
        s.expires = Some(until(now, ttl));
        Ok(Some(JobClaim {
            job: view(s),
            token,
        }))
    }

    async fn renew_job_claim(
        &self,
        id: JobId,
        token: uuid::Uuid,
        ttl: Duration,
    ) -> Result<ClaimState, StoreError> {
        let mut t = self.enter("renew_job_claim")?;
        match t.jobs.get_mut(&id).filter(|s| claimed(s, token)) {
            Some(s) => {
                s.expires = Some(until(Utc::now(), ttl));
                Ok(ClaimState::Held {
                    cancel_requested: s.job.cancel_requested,
                })
            }
            None => Ok(ClaimState::Lost),
        }
    }

    async fn record_job_item(
        &self,
        id: JobId,
        token: uuid::Uuid,
        result: &ItemResult,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("record_job_item")?;
        let Some(item) = t
            .jobs
            .get_mut(&id)
            .filter(|s| claimed(s, token))
            .and_then(|s| {
                s.items
                    .iter_mut()
                    .find(|i| i.position == result.position && i.outcome == ItemOutcome::Pending)
            })
        else {
            return Ok(false);
        };
        item.outcome = result.outcome;
        item.error_code.clone_from(&result.error_code);
        item.message.clone_from(&result.message);
        item.finished_at = Some(Utc::now());
        Ok(true)
    }

    async fn finish_job(
        &self,
        id: JobId,
        token: uuid::Uuid,
        status: JobStatus,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("finish_job")?;
        let Some(s) = t.jobs.get_mut(&id).filter(|s| claimed(s, token)) else {
            return Ok(false);
        };
        let now = Utc::now();
        s.job.status = status;
        s.job.finished_at = Some(now);
        s.job.updated_at = now;
        s.job.holder = None;
        s.token = None;
        s.expires = None;
        if status == JobStatus::Cancelled {
            cancel_pending(s, now);
        }
        Ok(true)
    }

    async fn cancel_job(
        &self,
        customer: &CustomerId,
        id: JobId,
    ) -> Result<Option<BulkJob>, StoreError> {
        let mut t = self.enter("cancel_job")?;
        let Some(s) = t
            .jobs
            .get_mut(&id)
            .filter(|s| &s.job.customer_id == customer)
        else {
            return Ok(None);
        };
        let now = Utc::now();
        match s.job.status {
            JobStatus::Queued => {
                s.job.cancel_requested = true;
                s.job.updated_at = now;
                s.job.status = JobStatus::Cancelled;
                s.job.finished_at = Some(now);
                cancel_pending(s, now);
            }
            // Its holder sees the request at its next renewal and stops starting numbers.
            JobStatus::Running => {
                s.job.cancel_requested = true;
                s.job.updated_at = now;
            }
            JobStatus::Completed | JobStatus::Cancelled => {}
        }
        Ok(Some(view(s)))
    }
}
