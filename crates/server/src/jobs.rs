//! The background loop that claims bulk jobs and runs them on this instance (the job use
//! case and the upstream limits it runs under are built with the rest in `crate::state`).
//!
//! Every instance runs the loop. A job is claimed by one instance at a time (the store's
//! claim, renewed while the job runs); when an instance dies its claim expires after
//! `TRUNKLINE_JOBS_CLAIM_TTL_SECS` and another instance's loop claims the job and finishes
//! the numbers still pending.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use trunkline_core::usecases::Jobs;

use crate::config::JobsConfig;

/// Claim and run jobs until `stop`: every poll interval, fill each free slot (at most
/// `max_running` jobs at once) with a job claimed from the store.
pub async fn run_jobs(jobs: Arc<Jobs>, config: JobsConfig, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(config.max_running));
    let mut tick = tokio::time::interval(config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        poll_interval_ms = u64::try_from(config.poll_interval.as_millis()).unwrap_or(u64::MAX),
        max_running = config.max_running,
        "job runner started"
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        while let Ok(slot) = slots.clone().try_acquire_owned() {
            let claim = match jobs.claim_next().await {
                Ok(Some(claim)) => claim,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for jobs to run");
                    break;
                }
            };
            tracing::info!(job = %claim.job.id, kind = claim.job.kind.as_str(), "job claimed");
            let jobs = jobs.clone();
            // On the multi-threaded runtime, off actix's workers, which serve requests. (A
            // SQLite statement dropped mid-flight, such as a lease renewal whose work ended
            // first, no longer needs this: see store-sqlite's `blocking.rs`.)
            tokio::spawn(async move {
                jobs.run_claimed(claim).await;
                drop(slot);
            });
        }
    }
    tracing::info!("job runner stopped; jobs under way are taken over once their claims expire");
}
