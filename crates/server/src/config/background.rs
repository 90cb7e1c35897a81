//! The settings of the background work: agent dispatch retries, bulk jobs and their
//! upstream limits, number purchase and the drift reconciler.

use std::time::Duration;

use super::env::{Env, Problems, parse_bool, parse_number};
use super::{
    ALLOW_NUMBER_PURCHASE, DEFAULT_DISPATCH_BACKOFF_BASE_MS, DEFAULT_DISPATCH_BACKOFF_MAX_MS,
    DEFAULT_DISPATCH_CLAIM_TTL_SECS, DEFAULT_DISPATCH_MAX_ATTEMPTS,
    DEFAULT_DISPATCH_RETRY_INTERVAL_MS, DISPATCH_BACKOFF_BASE_MS, DISPATCH_BACKOFF_MAX_MS,
    DISPATCH_CLAIM_TTL_SECS, DISPATCH_MAX_ATTEMPTS, DISPATCH_RETRY_INTERVAL_MS,
    JOBS_CLAIM_TTL_SECS, JOBS_MAX_RUNNING, JOBS_PARALLELISM, JOBS_POLL_INTERVAL_MS,
    LIVEKIT_REQUEST_TIMEOUT_SECS, RECONCILE_CHECKS_PER_MINUTE, RECONCILE_IN_FLIGHT,
    RECONCILE_PER_INTEGRATION_IN_FLIGHT, RECONCILE_RECHECK_SECS, RECONCILE_TICK_MS,
    UPSTREAM_CONCURRENCY,
};

/// A call waits for its agent: a retry loop slower than this is a misconfiguration.
const MAX_DISPATCH_RETRY_INTERVAL_MS: u64 = 60_000;
/// Bounds that catch typos (an extra zero) rather than express policy.
const MAX_DISPATCH_BACKOFF_MS: u64 = 3_600_000;
const MAX_DISPATCH_ATTEMPTS: u32 = 100;
const MAX_DISPATCH_CLAIM_TTL_SECS: u64 = 3_600;
/// LiveKit request timeouts a dispatch claim must outlast (see `parse_dispatch`).
const CLAIM_TTL_REQUEST_TIMEOUTS: u32 = 4;

/// Agent dispatch retries (see `trunkline_core::usecases::CallSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchConfig {
    /// How often the background retrier looks for due dispatches.
    pub retry_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_attempts: u32,
    /// How long a call's dispatch claim lasts: how soon another instance dispatches the
    /// agent of a call whose claimant died.
    pub claim_ttl: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_millis(DEFAULT_DISPATCH_RETRY_INTERVAL_MS),
            backoff_base: Duration::from_millis(DEFAULT_DISPATCH_BACKOFF_BASE_MS),
            backoff_max: Duration::from_millis(DEFAULT_DISPATCH_BACKOFF_MAX_MS),
            max_attempts: DEFAULT_DISPATCH_MAX_ATTEMPTS,
            claim_ttl: Duration::from_secs(DEFAULT_DISPATCH_CLAIM_TTL_SECS),
        }
    }
}

/// Bulk jobs and the per-integration upstream limits (see `crate::jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsConfig {
    /// Carrier requests one integration may have in flight at once, per instance.
    pub upstream_concurrency: usize,
    /// Numbers of one job under way at once.
    pub parallelism: usize,
    /// Jobs one instance runs at once.
    pub max_running: usize,
    /// How often an idle instance looks for jobs to claim.
    pub poll_interval: Duration,
    /// How long a claim outlives its holder's last renewal.
    pub claim_ttl: Duration,
}

/// Number purchase and the drift reconciler (`TRUNKLINE_ALLOW_NUMBER_PURCHASE`,
/// `TRUNKLINE_RECONCILE_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    pub allow_number_purchase: bool,
    /// Checks started per minute across the fleet; 0 turns the reconciler off.
    pub checks_per_minute: u32,
    /// A connection is checked again once its last check is this old.
    pub recheck_after: Duration,
    pub in_flight: usize,
    pub per_integration_in_flight: usize,
    /// How often an instance tries for the reconciler's lease and looks for due checks.
    pub tick: Duration,
}

impl FleetConfig {
    pub(super) fn from_env(env: &Env, p: &mut Problems) -> Self {
        Self {
            allow_number_purchase: parse_bool(env, ALLOW_NUMBER_PURCHASE, false, p),
            checks_per_minute: parse_number(env, RECONCILE_CHECKS_PER_MINUTE, 300, 0..=60_000, p),
            recheck_after: Duration::from_secs(parse_number(
                env,
                RECONCILE_RECHECK_SECS,
                300,
                1..=86_400,
                p,
            )),
            in_flight: parse_number(env, RECONCILE_IN_FLIGHT, 8, 1..=256, p),
            per_integration_in_flight: parse_number(
                env,
                RECONCILE_PER_INTEGRATION_IN_FLIGHT,
                2,
                1..=64,
                p,
            ),
            tick: Duration::from_millis(parse_number(
                env,
                RECONCILE_TICK_MS,
                1_000,
                10..=60_000,
                p,
            )),
        }
    }
}

/// `livekit_request_timeout`: the longest one LiveKit request may take, which the dispatch
/// claim must outlast several times over.
pub(super) fn parse_dispatch(
    env: &Env,
    livekit_request_timeout: Duration,
    p: &mut Problems,
) -> DispatchConfig {
    let ms = |name, default, min, max, p: &mut Problems| {
        Duration::from_millis(parse_number(env, name, default, min..=max, p))
    };
    let retry_interval = ms(
        DISPATCH_RETRY_INTERVAL_MS,
        DEFAULT_DISPATCH_RETRY_INTERVAL_MS,
        10,
        MAX_DISPATCH_RETRY_INTERVAL_MS,
        p,
    );
    let backoff_base = ms(
        DISPATCH_BACKOFF_BASE_MS,
        DEFAULT_DISPATCH_BACKOFF_BASE_MS,
        1,
        MAX_DISPATCH_BACKOFF_MS,
        p,
    );
    let backoff_max = ms(
        DISPATCH_BACKOFF_MAX_MS,
        DEFAULT_DISPATCH_BACKOFF_MAX_MS,
        1,
        MAX_DISPATCH_BACKOFF_MS,
        p,
    );
    if backoff_max < backoff_base {
        p.push(
            DISPATCH_BACKOFF_MAX_MS,
            format!("must not be less than {DISPATCH_BACKOFF_BASE_MS}"),
        );
    }
    let max_attempts = parse_number(
        env,
        DISPATCH_MAX_ATTEMPTS,
        DEFAULT_DISPATCH_MAX_ATTEMPTS,
        1..=MAX_DISPATCH_ATTEMPTS,
        p,
    );
    // One attempt makes up to three LiveKit requests (list, create, list again after a lost
    // answer). A holder still at work must never lose its claim mid-attempt, or another
    // instance could take the claim over and dispatch the agent a second time. The default
    // stays above that bound whatever the timeout; a value set below it is refused.
    let least = livekit_request_timeout * CLAIM_TTL_REQUEST_TIMEOUTS;
    let default_secs = least.as_secs().max(DEFAULT_DISPATCH_CLAIM_TTL_SECS);
    let claim_ttl = Duration::from_secs(parse_number(
        env,
        DISPATCH_CLAIM_TTL_SECS,
        default_secs,
        1..=MAX_DISPATCH_CLAIM_TTL_SECS,
        p,
    ));
    if claim_ttl < least {
        p.push(
            DISPATCH_CLAIM_TTL_SECS,
            format!(
                "must be at least {CLAIM_TTL_REQUEST_TIMEOUTS} × {LIVEKIT_REQUEST_TIMEOUT_SECS} \
                 ({} s): one dispatch attempt makes up to three LiveKit requests, and an \
                 instance still dispatching must never lose the call's claim mid-attempt, or \
                 another instance could dispatch the agent a second time",
                least.as_secs()
            ),
        );
    }
    DispatchConfig {
        retry_interval,
        backoff_base,
        backoff_max,
        max_attempts,
        claim_ttl,
    }
}

pub(super) fn parse_jobs(env: &Env, p: &mut Problems) -> JobsConfig {
    // Twilio's default account concurrency limit is 100 requests: half of it leaves room
    // for the customer's own use of the account and for a second instance.
    JobsConfig {
        upstream_concurrency: parse_number(env, UPSTREAM_CONCURRENCY, 50, 1..=1_000, p),
        parallelism: parse_number(env, JOBS_PARALLELISM, 64, 1..=1_000, p),
        max_running: parse_number(env, JOBS_MAX_RUNNING, 4, 1..=64, p),
        poll_interval: Duration::from_millis(parse_number(
            env,
            JOBS_POLL_INTERVAL_MS,
            1_000,
            10..=60_000,
            p,
        )),
        claim_ttl: Duration::from_secs(parse_number(env, JOBS_CLAIM_TTL_SECS, 15, 2..=600, p)),
    }
}
