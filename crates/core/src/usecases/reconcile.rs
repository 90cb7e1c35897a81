//! The drift reconciler: re-reads connected numbers at the carrier and at LiveKit with the
//! status use case (the same drift rules support sees), records what it found on each
//! connection, audits drift appearing and clearing, and reconnects drifted numbers of the
//! integrations that asked for it (`autoRepair`).
//!
//! One instance runs it at a time (the server holds a lease around each batch). Its upstream
//! traffic is bounded three ways: checks started per second across the fleet, checks in
//! flight across the fleet, and checks in flight per integration (the [`UpstreamLimiter`]
//! seam).
//!
//! [`UpstreamLimiter`]: super::fleet::UpstreamLimiter

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde_json::json;

use super::ConnectRequest;
use super::drift::DriftKind;
use super::fleet::{Fleet, reconciler_actor};
use super::status::NumberStatus;
use crate::error::Error;
use crate::ids::{ConnectionId, ProviderKind};
use crate::model::{
    AuditAction, ConnectionCheck, ConnectionStatus, NumberConnection, RecordedDrift,
};

/// How many connections one store read lists.
const SCAN_PAGE: u32 = 500;

/// Drift that connecting again cannot repair: auto-repair leaves these alone.
const NOT_REPAIRABLE: [&str; 3] = [
    DriftKind::CredentialsInvalid.as_str(),
    DriftKind::CredentialsMissing.as_str(),
    DriftKind::NumberMissing.as_str(),
];

/// Every drift kind the status use case names (a closed set, for metric labels); a stored
/// kind outside it counts as `other`.
pub const DRIFT_KINDS: [&str; 16] = [
    DriftKind::ConnectIncomplete.as_str(),
    DriftKind::CredentialsInvalid.as_str(),
    DriftKind::CredentialsMissing.as_str(),
    DriftKind::LivekitRuleAgentMismatch.as_str(),
    DriftKind::LivekitRuleMissing.as_str(),
    DriftKind::LivekitRuleTrunkMismatch.as_str(),
    DriftKind::LivekitTrunkMissing.as_str(),
    DriftKind::LivekitTrunkNumberMismatch.as_str(),
    DriftKind::NumberMissing.as_str(),
    DriftKind::NumberNotOnTrunk.as_str(),
    DriftKind::OriginationUrlChanged.as_str(),
    DriftKind::OriginationUrlMissing.as_str(),
    DriftKind::OriginationUrlUnexpected.as_str(),
    DriftKind::OriginationUrlUnrecorded.as_str(),
    DriftKind::OrphanTrunk.as_str(),
    DriftKind::TrunkMissing.as_str(),
];

/// What one check found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub check: ConnectionCheck,
    /// A drift kind the previous check did not have.
    pub appeared: bool,
    /// The connection drifted at the previous check and does not now.
    pub cleared: bool,
    /// Auto-repair reconnected the number (whatever the re-check then found).
    pub repaired: bool,
}

/// The fleet as the last scan saw it (for the metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetSummary {
    /// Connections by provider and state: `pending`, `connected`, `failed`, `disconnected`,
    /// and `drifted` (live, and the last check found drift).
    pub connections: BTreeMap<(ProviderKind, &'static str), u64>,
    /// Live connections whose last check found each drift kind.
    pub drifts: BTreeMap<String, u64>,
    /// How long the least recently checked live connection has waited (since its last
    /// check, or since it was created when never checked).
    pub oldest_unchecked_age: Option<Duration>,
    /// Live connections due for a check.
    pub due: usize,
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub checked: usize,
    pub appeared: usize,
    pub cleared: usize,
    pub repaired: usize,
    /// Checks that could not be recorded (store errors).
    pub failed: usize,
    pub summary: FleetSummary,
}

fn kinds(drifts: &[RecordedDrift]) -> BTreeSet<&str> {
    drifts.iter().map(|d| d.kind.as_str()).collect()
}

fn owned_kinds(drifts: &[RecordedDrift]) -> BTreeSet<String> {
    drifts.iter().map(|d| d.kind.clone()).collect()
}

fn recorded(status: &NumberStatus) -> Vec<RecordedDrift> {
    status
        .drifts
        .iter()
        .map(|d| RecordedDrift {
            kind: d.kind.as_str().to_owned(),
            message: d.message.clone(),
        })
        .collect()
}

/// Parts that could not be read, as `part:CODE` (a closed set: part names and error codes).
fn unreadable(status: &NumberStatus) -> Vec<String> {
    [
        ("credentials", status.credentials.failure()),
        ("number", status.number.failure()),
        ("trunk", status.trunk.failure()),
        ("routeTargets", status.route_targets.failure()),
        ("livekitTrunk", status.livekit_trunk.failure()),
        ("livekitRule", status.livekit_rule.failure()),
    ]
    .into_iter()
    .filter_map(|(part, code)| code.map(|c| format!("{part}:{c}")))
    .collect()
}

impl Fleet {
    /// Check one connection now: read both sides, record, audit a change, repair when the
    /// integration asked for it.
    pub async fn check_connection(
        &self,
        conn: &NumberConnection,
        previous: Option<&ConnectionCheck>,
    ) -> Result<CheckReport, Error> {
        let _permit = self.ports.limiter.acquire(conn.integration_id).await;
        let (drifts, unread) = self.read_drifts(conn, previous).await;
        let before = owned_kinds(previous.map_or(&[][..], |p| &p.drifts[..]));
        let repairable = !drifts.is_empty()
            && drifts
                .iter()
                .all(|d| !NOT_REPAIRABLE.contains(&d.kind.as_str()));
        let wants_repair = repairable
            && self
                .integration_settings(&conn.customer_id, conn.provider)
                .await?
                .auto_repair;
        if !wants_repair {
            let repaired_at = previous.and_then(|p| p.repaired_at);
            return self
                .finish_check(conn, previous, &before, drifts, unread, false, repaired_at)
                .await;
        }
        // The drift is audited before the repair, so the trail shows it even when the repair
        // clears it at once.
        self.audit_drift(conn, &before, &drifts).await?;
        let outcome = self
            .onboarding
            .connect(
                &reconciler_actor(),
                &conn.customer_id,
                conn.provider,
                &conn.number_id,
                ConnectRequest::default(),
                None,
            )
            .await;
        if let Err(e) = &outcome {
            tracing::warn!(
                connection = %conn.id,
                code = %e.code,
                "reconciler: auto-repair could not reconnect the number"
            );
        }
        let current = self
            .onboarding
            .ports
            .connections
            .get_connection_by_id(conn.id)
            .await?
            .unwrap_or_else(|| conn.clone());
        let audited = owned_kinds(&drifts);
        let (drifts, unread) = self.read_drifts(&current, previous).await;
        self.finish_check(
            conn,
            previous,
            &audited,
            drifts,
            unread,
            true,
            Some(Utc::now()),
        )
        .await
    }

    async fn read_drifts(
        &self,
        conn: &NumberConnection,
        previous: Option<&ConnectionCheck>,
    ) -> (Vec<RecordedDrift>, Vec<String>) {
        match self
            .onboarding
            .status(&conn.customer_id, conn.provider, &conn.number_id)
            .await
        {
            Ok(status) => (recorded(&status), unreadable(&status)),
            // Nothing could be read: what was found before still stands.
            Err(e) => (
                previous.map(|p| p.drifts.clone()).unwrap_or_default(),
                vec![format!("status:{}", e.code)],
            ),
        }
    }

    async fn audit_drift(
        &self,
        conn: &NumberConnection,
        before: &BTreeSet<String>,
        drifts: &[RecordedDrift],
    ) -> Result<(), Error> {
        let now = kinds(drifts);
        let new: Vec<&str> = now
            .iter()
            .filter(|k| !before.contains(**k))
            .copied()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        self.audit(
            &conn.customer_id,
            conn.provider,
            &reconciler_actor(),
            AuditAction::DriftDetected,
            json!({
                "connectionId": conn.id,
                "numberId": conn.number_id,
                "appeared": new,
                "drifts": now,
            }),
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish_check(
        &self,
        conn: &NumberConnection,
        previous: Option<&ConnectionCheck>,
        before: &BTreeSet<String>,
        drifts: Vec<RecordedDrift>,
        unread: Vec<String>,
        repaired: bool,
        repaired_at: Option<DateTime<Utc>>,
    ) -> Result<CheckReport, Error> {
        let now_kinds = kinds(&drifts);
        let appeared = now_kinds.iter().any(|k| !before.contains(*k));
        let cleared = now_kinds.is_empty() && !before.is_empty();
        if appeared {
            self.audit_drift(conn, before, &drifts).await?;
        }
        if cleared {
            self.audit(
                &conn.customer_id,
                conn.provider,
                &reconciler_actor(),
                AuditAction::DriftCleared,
                json!({
                    "connectionId": conn.id,
                    "numberId": conn.number_id,
                    "cleared": before,
                    "repaired": repaired,
                }),
                None,
            )
            .await?;
        }
        let now = Utc::now();
        let check = ConnectionCheck {
            connection_id: conn.id,
            checked_at: now,
            drift_since: if drifts.is_empty() {
                None
            } else {
                Some(previous.and_then(|p| p.drift_since).unwrap_or(now))
            },
            drifts,
            unreadable: unread,
            repaired_at,
        };
        self.ports.store.save_check(&check).await?;
        Ok(CheckReport {
            check,
            appeared,
            cleared,
            repaired,
        })
    }

    /// Scan every connection, then check up to `max_checks` of the live ones that are due
    /// (never checked first, then the least recently checked), paced by the settings.
    pub async fn reconcile_batch(&self, max_checks: usize) -> Result<BatchReport, Error> {
        let now = Utc::now();
        let recheck = chrono::Duration::from_std(self.settings.recheck_after)
            .unwrap_or(chrono::Duration::MAX);
        let mut summary = FleetSummary::default();
        // (never checked, last checked or created) → sort key; the oldest first.
        let mut due: Vec<(
            bool,
            DateTime<Utc>,
            NumberConnection,
            Option<ConnectionCheck>,
        )> = Vec::new();
        let mut after: Option<ConnectionId> = None;
        loop {
            let page = self
                .ports
                .store
                .list_all_connections(after, SCAN_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let live: Vec<ConnectionId> = page
                .iter()
                .filter(|c| c.status != ConnectionStatus::Disconnected)
                .map(|c| c.id)
                .collect();
            let mut checks: HashMap<ConnectionId, ConnectionCheck> = self
                .ports
                .store
                .get_checks(&live)
                .await?
                .into_iter()
                .map(|c| (c.connection_id, c))
                .collect();
            let full = page.len() == SCAN_PAGE as usize;
            for conn in page {
                let check = checks.remove(&conn.id);
                let live = conn.status != ConnectionStatus::Disconnected;
                let drifted = live && check.as_ref().is_some_and(|c| !c.drifts.is_empty());
                let state = if drifted {
                    "drifted"
                } else {
                    conn.status.as_str()
                };
                *summary
                    .connections
                    .entry((conn.provider, state))
                    .or_default() += 1;
                if !live {
                    continue;
                }
                if let Some(c) = &check {
                    for k in kinds(&c.drifts) {
                        *summary.drifts.entry(k.to_owned()).or_default() += 1;
                    }
                }
                let since = check.as_ref().map_or(conn.created_at, |c| c.checked_at);
                let age = (now - since).to_std().unwrap_or_default();
                summary.oldest_unchecked_age =
                    Some(summary.oldest_unchecked_age.map_or(age, |a| a.max(age)));
                if check.is_none() || now - since >= recheck {
                    due.push((check.is_some(), since, conn, check));
                }
            }
            if !full {
                break;
            }
        }
        summary.due = due.len();
        due.sort_by_key(|d| (d.0, d.1));
        due.truncate(max_checks);

        let mut report = BatchReport {
            summary,
            ..BatchReport::default()
        };
        // Check i starts no earlier than i paces after the batch began: the fleet-wide rate.
        let pace = Duration::from_secs_f64(1.0 / self.settings.checks_per_second.max(0.001));
        let start = tokio::time::Instant::now();
        let checks = futures::stream::iter(due.into_iter().enumerate())
            .map(|(i, (_, _, conn, prev))| async move {
                let slot = u32::try_from(i).unwrap_or(u32::MAX);
                tokio::time::sleep_until(start + pace.saturating_mul(slot)).await;
                let r = self.check_connection(&conn, prev.as_ref()).await;
                (conn.id, r)
            })
            .buffer_unordered(self.settings.in_flight.max(1));
        futures::pin_mut!(checks);
        while let Some((id, r)) = checks.next().await {
            match r {
                Ok(c) => {
                    report.checked += 1;
                    report.appeared += usize::from(c.appeared);
                    report.cleared += usize::from(c.cleared);
                    report.repaired += usize::from(c.repaired);
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(connection = %id, code = %e.code, "reconciler: a check failed");
                }
            }
        }
        Ok(report)
    }

    /// The reconciler's last check of a connection, if any.
    pub async fn last_check(&self, id: ConnectionId) -> Result<Option<ConnectionCheck>, Error> {
        Ok(self.ports.store.get_checks(&[id]).await?.into_iter().next())
    }
}
