//! Connect and disconnect: idempotent reconcile, never "create blindly".
//!
//! Connect reads the live state of both sides, plans only the missing steps and applies them,
//! storing every created id at once so that a retry after any failure (or crash) reuses what
//! exists. The carrier half and the LiveKit half are independent and run concurrently.
//!
//! The carrier half is in `carrier`, the LiveKit half in `livekit`; disconnect is in
//! `super::disconnect`, the steps both report in `super::steps`.

use super::Onboarding;
use super::naming::trunk_friendly_name;
use super::steps::Step;
use crate::error::{Error, ErrorCode, ValidationError};
use crate::ids::{CarrierNumberId, ConnectionId, CustomerId, ProviderKind};
use crate::model::{
    Actor, AuditAction, CarrierCredentials, ConnectionStatus, LeaseKey, NumberConnection,
    OriginationTargets, RoutingPolicy, TrunkStrategy,
};
use crate::ports::{CarrierNumber, CarrierProvider};
use crate::sip::SipTarget;
use chrono::Utc;
use futures::lock::Mutex;
use serde_json::json;
use std::time::Instant;

mod carrier;
mod livekit;

use carrier::{Prepared, TrunkRead, attach};
pub(super) use carrier::{empty_dedicated_trunks, remove_empty_dedicated};
use livekit::livekit_name;

/// How a refusal names a number someone else holds. It never names the holder: that may be
/// another trunkline customer sharing the carrier account or the LiveKit project, whose ids
/// are not this customer's to see.
pub(super) const HELD_ELSEWHERE: &str =
    "the number is configured by another trunkline customer or outside trunkline";

/// What the caller asks connect to make true. A field left `None` keeps what is stored for
/// the number (a retry or resume changes nothing); on a first connect it means the default.
/// A field that is given and differs from what is stored is a change, listed in
/// [`ConnectOutcome::changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Where calls to the number go (naming one's own only where overriding is allowed).
    pub targets: TargetChoice,
    /// Replaces the stored routing as a whole: `Some(RoutingPolicy::default())` clears the
    /// agent, metadata and attributes.
    pub routing: Option<RoutingPolicy>,
    pub trunk_strategy: Option<TrunkStrategy>,
    /// Take the number even when it sits on a trunk trunkline did not create. Never takes it
    /// from another trunkline customer's live connection.
    pub force: bool,
    /// Set up (`true`) or remove (`false`) the outbound half (see `outbound.rs`); `None`
    /// keeps what is stored (a first connect: inbound only).
    pub outbound: Option<bool>,
    /// How the number reaches LiveKit; `None` keeps the stored connection's mode (`trunk`
    /// on a first connect). See [`super::voice_url`].
    pub mode: Option<super::ConnectMode>,
}

/// Where connect points the number's calls. On the wire this is `sipTarget` or
/// `originationTargets`, one or the other: here there is no way to give both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TargetChoice {
    /// Keep what is stored for the number (a first connect: the server's default).
    #[default]
    Keep,
    /// One SIP target at the default priority and weight (`sipTarget`).
    One(SipTarget),
    /// Several targets with priority and weight for HA (`originationTargets`). An empty list
    /// asks for the server's default target.
    Several(OriginationTargets),
}

impl TargetChoice {
    /// The choice the two wire fields make; refused when both are given.
    pub fn from_fields(
        sip_target: Option<SipTarget>,
        origination_targets: Option<OriginationTargets>,
    ) -> Result<Self, ValidationError> {
        match (sip_target, origination_targets) {
            (Some(_), Some(_)) => Err(ValidationError::new(
                "sipTarget, originationTargets: give one or the other, not both \
                 (sipTarget is one target; originationTargets lists several)",
            )),
            (Some(t), None) => Ok(Self::One(t)),
            (None, Some(list)) => Ok(Self::Several(list)),
            (None, None) => Ok(Self::Keep),
        }
    }

    /// The two wire fields (`sipTarget`, `originationTargets`) of this choice.
    pub fn into_fields(self) -> (Option<SipTarget>, Option<OriginationTargets>) {
        match self {
            Self::Keep => (None, None),
            Self::One(t) => (Some(t), None),
            Self::Several(list) => (None, Some(list)),
        }
    }

    /// Whether the caller names its own target rather than the server's.
    pub fn names_target(&self) -> bool {
        match self {
            Self::Keep => false,
            Self::One(_) => true,
            Self::Several(list) => !list.is_empty(),
        }
    }
}

impl ConnectRequest {
    /// What needs the server's configuration but nothing stored: run before any lease or
    /// read. The request's values themselves were checked when they were built.
    pub(super) fn check(&self, allow_override: bool) -> Result<(), Error> {
        if self.targets.names_target() && !allow_override {
            return Err(Error::new(
                ErrorCode::InvalidSipTarget,
                "this server does not allow choosing the SIP target; omit sipTarget and \
                 originationTargets to use the configured LiveKit SIP ingress",
            ));
        }
        Ok(())
    }
}

/// What one connect makes true: the request's fields, else what is stored, else defaults.
pub(super) struct Desired {
    /// Primary (lowest priority) first.
    pub(super) targets: OriginationTargets,
    pub(super) routing: RoutingPolicy,
    pub(super) strategy: TrunkStrategy,
    /// Request fields that differ from what was stored (`routing`, `trunkStrategy`,
    /// `originationTargets`), in that order.
    pub(super) changes: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOutcome {
    pub connection: NumberConnection,
    pub steps: Vec<Step>,
    /// What this connect changed against the stored connection (`routing`,
    /// `trunkStrategy`, `originationTargets`); empty for a first connect or a resume.
    pub changes: Vec<&'static str>,
    /// The mode the number is connected in (`auto` resolved).
    pub mode: super::ConnectMode,
}

/// The connection row, shared by the concurrent halves so each can persist its ids at once
/// without overwriting the other's.
pub(super) struct Progress<'a> {
    pub(super) onboarding: &'a Onboarding,
    pub(super) conn: Mutex<NumberConnection>,
}

impl Progress<'_> {
    pub(super) async fn update(&self, f: impl FnOnce(&mut NumberConnection)) -> Result<(), Error> {
        let mut conn = self.conn.lock().await;
        f(&mut conn);
        conn.updated_at = Utc::now();
        self.onboarding
            .ports
            .connections
            .save_connection(&conn)
            .await?;
        Ok(())
    }

    pub(super) async fn snapshot(&self) -> NumberConnection {
        self.conn.lock().await.clone()
    }
}

impl Onboarding {
    /// What this connect makes true, and what of it differs from `stored`. Targets are the
    /// request's own, else the stored ones, else the configured default; where overriding is
    /// not allowed the server owns them, and they are always the configured default.
    pub(super) fn desired(
        &self,
        req: &ConnectRequest,
        stored: Option<&NumberConnection>,
    ) -> Result<Desired, Error> {
        let default = || {
            self.settings
                .default_sip_target
                .clone()
                .map(OriginationTargets::one)
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotConfigured,
                        "no SIP target: the server has no default LiveKit SIP ingress \
                         (TRUNKLINE_SIP_TARGET) and the request named none",
                    )
                })
        };
        let stored_targets = stored.map(stored_targets).transpose()?;
        let targets = match (&req.targets, &stored_targets) {
            (TargetChoice::One(t), _) => OriginationTargets::one(t.clone()),
            (TargetChoice::Several(list), _) if !list.is_empty() => list.clone(),
            (TargetChoice::Keep, Some(kept)) if self.settings.allow_sip_target_override => {
                kept.clone()
            }
            _ => default()?,
        }
        .by_priority();
        let routing = req
            .routing
            .clone()
            .or_else(|| stored.map(|c| c.routing.clone()))
            .unwrap_or_default();
        let strategy = req
            .trunk_strategy
            .or_else(|| stored.map(|c| c.trunk_strategy))
            .unwrap_or_default();
        let mut changes = Vec::new();
        if let (Some(c), Some(kept)) = (stored, &stored_targets) {
            if routing != c.routing {
                changes.push("routing");
            }
            if strategy != c.trunk_strategy {
                changes.push("trunkStrategy");
            }
            let same = targets.len() == kept.len() && targets.iter().all(|t| kept.contains(t));
            if !same {
                changes.push("originationTargets");
            }
        }
        Ok(Desired {
            targets,
            routing,
            strategy,
            changes,
        })
    }

    /// Connect a number: carrier trunk + origination URLs + attachment, and the LiveKit
    /// inbound trunk + dispatch rule. Idempotent; safe to retry after any failure.
    pub async fn connect(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
        req: ConnectRequest,
        request_id: Option<&str>,
    ) -> Result<ConnectOutcome, Error> {
        req.check(self.settings.allow_sip_target_override)?;
        let carrier = self.carrier(provider)?.clone();
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;

        let key = LeaseKey::number(customer.clone(), provider, number.clone());
        let mut outcome = self
            .with_lease(
                &key,
                // Boxed: the reconcile's state machine is large, and lives on the heap.
                Box::pin(self.connect_in_mode(&Job {
                    carrier: &*carrier,
                    creds: &creds,
                    customer,
                    provider,
                    number_id: number,
                    req: &req,
                    integration_id: integration.id,
                    // Named in `connect_locked`, once the stored strategy is read.
                    desired_name: "",
                })),
            )
            .await?;
        let outbound = self
            .reconcile_outbound(
                &*carrier,
                &creds,
                &integration,
                &outcome.connection,
                req.outbound,
            )
            .await?;
        outcome.steps.extend(outbound);
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::NumberConnected,
            json!({
                "connectionId": outcome.connection.id,
                "numberId": number,
                "routeId": outcome.connection.route_id,
                "livekitTrunkId": outcome.connection.livekit_trunk_id,
                "livekitRuleId": outcome.connection.livekit_rule_id,
                "changes": outcome.changes,
                "mode": outcome.mode,
                "steps": outcome.steps,
            }),
            request_id,
        )
        .await?;
        Ok(outcome)
    }

    pub(super) async fn connect_locked(&self, job: &Job<'_>) -> Result<ConnectOutcome, Error> {
        let Job {
            customer,
            provider,
            number_id,
            ..
        } = *job;
        let existing = self
            .ports
            .connections
            .get_connection(customer, provider, number_id)
            .await?;
        // Read under the number's lease: what is stored now is what a resume keeps.
        let desired = self.desired(job.req, existing.as_ref())?;
        let desired_name = &trunk_friendly_name(desired.strategy, customer, number_id);
        let job = &Job {
            desired_name,
            ..*job
        };
        let targets = &desired.targets;
        // A connection made by this very call cannot have left anything at LiveKit yet.
        let fresh = existing.is_none();
        // A shared trunk and its origination URLs belong to several numbers. Changing them
        // happens under a lease on the trunk's name (see `trunk_in_place`); reading them needs
        // none, as long as no holder of that lease is at work between the read and its use.
        // So the read that starts here (in `prepare_connect`) comes after a first look at the
        // lease.
        let trunk_key = LeaseKey::trunk(customer.clone(), provider, desired_name);
        let deadline = Instant::now() + self.settings.lease_wait;
        let free = async {
            let seen = self.wait_for_free_lease(&trunk_key, deadline).await?;
            Ok::<_, Error>((seen, self.prepare_connect(job, &desired, existing).await?))
        };
        let (seen, prepared) = match free.await {
            Ok(p) => p,
            Err(e) => {
                if !fresh {
                    self.record_failure(customer, provider, number_id, &e).await;
                }
                return Err(e);
            }
        };
        let Prepared {
            number,
            found,
            moved_from,
            conn,
            mut steps,
            was_disconnected,
        } = prepared;

        let progress = Progress {
            onboarding: self,
            conn: Mutex::new(conn),
        };
        let carrier_half = async {
            let trunk = TrunkRead {
                key: &trunk_key,
                found,
                seen,
                deadline,
                reread: desired.strategy == TrunkStrategy::Shared,
            };
            // The number's own attachment needs only the number's lease, which the caller holds.
            let (trunk, mut steps) = self.trunk_in_place(job, trunk, targets, &progress).await?;
            let left = moved_from.is_some();
            steps.push(attach(job.carrier, job.creds, &number, &trunk, moved_from).await?);
            // Only now, with the number on its new trunk, can the dedicated one be empty. A
            // first connect that moved nothing cannot have left one behind.
            if desired.strategy == TrunkStrategy::Shared && (left || !fresh) {
                steps.extend(
                    remove_empty_dedicated(job.carrier, job.creds, customer, number_id).await,
                );
            }
            Ok::<_, Error>(steps)
        };
        let routing_changed = desired.changes.contains(&"routing");
        let livekit_half = self.livekit_half(&number, fresh, routing_changed, None, &progress);
        let (carrier_result, livekit_result) = futures::join!(carrier_half, livekit_half);

        let failure = match (&carrier_result, &livekit_result) {
            (Err(e), _) | (_, Err(e)) => Some(e.clone()),
            _ => None,
        };
        if let Some(e) = failure {
            progress
                .update(|c| {
                    c.status = ConnectionStatus::Failed;
                    c.last_error = Some(format!("{}: {}", e.code, e.message));
                })
                .await?;
            return Err(e);
        }
        steps.extend(carrier_result.unwrap_or_default());
        steps.extend(livekit_result.unwrap_or_default());
        progress
            .update(|c| {
                c.status = ConnectionStatus::Connected;
                c.last_error = None;
                if c.connected_at.is_none() || was_disconnected {
                    c.connected_at = Some(Utc::now());
                }
            })
            .await?;
        Ok(ConnectOutcome {
            connection: progress.snapshot().await,
            steps,
            changes: desired.changes,
            mode: super::ConnectMode::Trunk,
        })
    }

    /// A connect that failed before changing anything still leaves its error on the existing
    /// connection, as a failure further on would: the last attempt's outcome is what support
    /// looks for.
    async fn record_failure(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number_id: &CarrierNumberId,
        error: &Error,
    ) {
        let recorded = async {
            if let Some(mut conn) = self
                .ports
                .connections
                .get_connection(customer, provider, number_id)
                .await?
            {
                conn.status = ConnectionStatus::Failed;
                conn.last_error = Some(format!("{}: {}", error.code, error.message));
                conn.updated_at = Utc::now();
                self.ports.connections.save_connection(&conn).await?;
            }
            Ok::<_, Error>(())
        };
        if let Err(e) = recorded.await {
            tracing::warn!(error = %e, "could not record the failed connect on its connection");
        }
    }

    /// Refuse, whatever `force` says, a number that another trunkline customer's live
    /// connection holds or that a LiveKit inbound trunk other than this connection's accepts:
    /// LiveKit lets one trunk accept a number, and taking the carrier side alone would cut
    /// the holder's calls off without making them ours.
    pub(super) async fn refuse_numbers_held_elsewhere(
        &self,
        customer: &CustomerId,
        existing: Option<&NumberConnection>,
        e164: &crate::phone::E164,
    ) -> Result<(), Error> {
        let stored = async {
            let live = self
                .ports
                .connections
                .find_live_connection_by_e164(e164)
                .await?;
            Ok::<_, Error>(live.is_some_and(|c| &c.customer_id != customer))
        };
        let livekit = async {
            let Some(sip) = &self.ports.sip else {
                return Ok::<_, Error>(false);
            };
            let ours = existing.map(|c| (c.livekit_trunk_id.clone(), livekit_name(c.id)));
            let holders = sip.inbound_trunks_for_number(e164).await?;
            Ok(holders.iter().any(|t| match &ours {
                Some((id, name)) => id.as_ref() != Some(&t.id) && &t.name != name,
                None => true,
            }))
        };
        let (stored, livekit) = futures::try_join!(stored, livekit)?;
        if stored || livekit {
            return Err(Error::new(
                ErrorCode::NumberInUse,
                format!(
                    "{HELD_ELSEWHERE}; force does not take it from there: disconnect it where \
                     it is connected first, then connect again"
                ),
            ));
        }
        Ok(())
    }
}

/// The row a connect works on: the stored connection (a disconnected one back to pending) or
/// a new pending one, brought up to date with the number and the desired routing (both
/// modes). Also whether it was disconnected.
pub(super) fn pending_connection(
    job: &Job<'_>,
    stored: Option<NumberConnection>,
    number: &CarrierNumber,
    desired: &Desired,
    now: chrono::DateTime<Utc>,
) -> (NumberConnection, bool) {
    let primary = desired.targets[0].sip_url().clone();
    let mut conn = stored.unwrap_or_else(|| NumberConnection {
        id: ConnectionId::new(),
        customer_id: job.customer.clone(),
        provider: job.provider,
        integration_id: job.integration_id,
        number_id: job.number_id.clone(),
        e164: number.e164.clone(),
        status: ConnectionStatus::Pending,
        trunk_strategy: desired.strategy,
        route_id: None,
        route_created: false,
        route_targets: Vec::new(),
        sip_target: primary.clone(),
        routing: desired.routing.clone(),
        previous_routing: None,
        livekit_trunk_id: None,
        livekit_rule_id: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        connected_at: None,
        disconnected_at: None,
    });
    let was_disconnected = conn.status == ConnectionStatus::Disconnected;
    if was_disconnected {
        conn.status = ConnectionStatus::Pending;
        conn.disconnected_at = None;
    }
    conn.integration_id = job.integration_id;
    conn.e164 = number.e164.clone();
    conn.trunk_strategy = desired.strategy;
    conn.sip_target = primary;
    conn.routing = desired.routing.clone();
    (conn, was_disconnected)
}

/// One connect's fixed inputs, passed down its steps.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) carrier: &'a dyn CarrierProvider,
    pub(super) creds: &'a CarrierCredentials,
    pub(super) customer: &'a CustomerId,
    pub(super) provider: ProviderKind,
    pub(super) number_id: &'a CarrierNumberId,
    pub(super) req: &'a ConnectRequest,
    pub(super) integration_id: crate::ids::IntegrationId,
    /// The name of the trunk the number goes on (see `naming`).
    pub(super) desired_name: &'a str,
}

/// The targets a stored connection points at, in the order `desired` sorts them. A
/// disconnect forgets the origination URLs but keeps the primary target.
fn stored_targets(c: &NumberConnection) -> Result<OriginationTargets, Error> {
    if c.route_targets.is_empty() {
        return Ok(OriginationTargets::one(c.sip_target.clone()));
    }
    let targets = c.route_targets.iter().map(|o| o.target.clone()).collect();
    Ok(OriginationTargets::new(targets)?.by_priority())
}
