//! The drift reconciler's background loop: every instance runs one, and the one holding the
//! `reconciler` lease does the work, a batch per tick, renewing the lease between batches.
//! Its metrics are set by the lease holder (`trunkline_reconcile_leader` is 1 there).

use std::sync::Arc;
use std::time::Duration;

use trunkline_core::ProviderKind;
use trunkline_core::model::{Lease, LeaseKey};
use trunkline_core::ports::LeaseStore;
use trunkline_core::usecases::{BatchReport, DRIFT_KINDS, Fleet};

use crate::config::FleetConfig;

pub const CONNECTIONS: &str = "trunkline_connections";
pub const DRIFTS: &str = "trunkline_drifts";
pub const OLDEST_UNCHECKED: &str = "trunkline_reconcile_oldest_unchecked_seconds";
pub const CHECKS_TOTAL: &str = "trunkline_reconcile_checks_total";
pub const LEADER: &str = "trunkline_reconcile_leader";

const LEASE_NAME: &str = "reconciler";
const STATES: [&str; 5] = ["pending", "connected", "drifted", "failed", "disconnected"];
const PROVIDERS: [ProviderKind; 2] = [ProviderKind::Twilio, ProviderKind::Telnyx];

fn describe() {
    metrics::describe_gauge!(
        CONNECTIONS,
        "Connections by provider and state (drifted: live, and the last check found drift)"
    );
    metrics::describe_gauge!(
        DRIFTS,
        "Live connections whose last check found each drift kind"
    );
    metrics::describe_gauge!(
        OLDEST_UNCHECKED,
        metrics::Unit::Seconds,
        "How long the least recently checked live connection has waited for a check"
    );
    metrics::describe_counter!(CHECKS_TOTAL, "Reconciler checks, by outcome");
    metrics::describe_gauge!(LEADER, "1 on the instance holding the reconciler's lease");
}

fn export(report: &BatchReport) {
    let s = &report.summary;
    for provider in PROVIDERS {
        for state in STATES {
            let n = s.connections.get(&(provider, state)).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(CONNECTIONS, "provider" => provider.as_str(), "state" => state)
                .set(n as f64);
        }
    }
    let mut other = 0;
    for (kind, n) in &s.drifts {
        if !DRIFT_KINDS.contains(&kind.as_str()) {
            other += n;
        }
    }
    for kind in DRIFT_KINDS {
        let n = s.drifts.get(kind).copied().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(DRIFTS, "kind" => kind).set(n as f64);
    }
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(DRIFTS, "kind" => "other").set(other as f64);
    metrics::gauge!(OLDEST_UNCHECKED).set(s.oldest_unchecked_age.map_or(0.0, |d| d.as_secs_f64()));
    for (outcome, n) in [
        ("checked", report.checked),
        ("drift_appeared", report.appeared),
        ("drift_cleared", report.cleared),
        ("repaired", report.repaired),
        ("failed", report.failed),
    ] {
        if n > 0 {
            metrics::counter!(CHECKS_TOTAL, "outcome" => outcome).increment(n as u64);
        }
    }
}

/// The lease lives this long without renewal: a dead holder's work is taken over after it.
fn lease_ttl(config: &FleetConfig) -> Duration {
    (config.tick * 10).max(Duration::from_secs(10))
}

/// Checks per batch: what the configured rate starts in a third of the lease's life, so a
/// batch ends (and the lease is renewed) well before the lease could run out.
fn batch_size(config: &FleetConfig) -> usize {
    let per_sec = f64::from(config.checks_per_minute) / 60.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = (per_sec * lease_ttl(config).as_secs_f64() / 3.0) as usize;
    n.max(1)
}

/// Run until `stop` turns true. Off when `TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE=0`.
pub async fn run(
    fleet: Arc<Fleet>,
    leases: Arc<dyn LeaseStore>,
    instance: String,
    config: FleetConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if config.checks_per_minute == 0 {
        tracing::info!("drift reconciler off (TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE=0)");
        return;
    }
    describe();
    metrics::gauge!(LEADER).set(0.0);
    let ttl = lease_ttl(&config);
    let batch = batch_size(&config);
    let key = LeaseKey::singleton(LEASE_NAME);
    let mut held: Option<Lease> = None;
    let mut tick = tokio::time::interval(config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        checks_per_minute = config.checks_per_minute,
        recheck_secs = config.recheck_after.as_secs(),
        batch,
        "drift reconciler started"
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let was_leader = held.is_some();
        held = match held.take() {
            Some(l) => leases.renew_lease(&l, ttl).await.unwrap_or_else(|e| {
                // A store hiccup: keep the lease we still hold; it lives for a while yet.
                tracing::warn!(error = %e, "reconciler: could not renew its lease");
                Some(l)
            }),
            None => leases
                .try_acquire_lease(&key, &instance, ttl)
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "reconciler: could not try for the lease");
                    None
                }),
        };
        if held.is_some() != was_leader {
            tracing::info!(leader = held.is_some(), "reconciler: lease changed hands");
            metrics::gauge!(LEADER).set(if held.is_some() { 1.0 } else { 0.0 });
        }
        if held.is_none() {
            continue;
        }
        match fleet.reconcile_batch(batch).await {
            Ok(report) => {
                export(&report);
                if report.checked > 0 {
                    tracing::info!(
                        checked = report.checked,
                        due = report.summary.due,
                        appeared = report.appeared,
                        cleared = report.cleared,
                        repaired = report.repaired,
                        failed = report.failed,
                        "reconciler batch"
                    );
                }
            }
            Err(e) => tracing::warn!(code = %e.code, "reconciler: a batch failed"),
        }
    }
    if let Some(l) = held {
        // The next instance need not wait out the lease.
        let _ = leases.release_lease(&l).await;
    }
}
