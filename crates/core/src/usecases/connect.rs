//! Connect and disconnect: idempotent reconcile, never "create blindly".
//!
//! Connect reads the live state of both sides, plans only the missing steps and applies them,
//! storing every created id at once so that a retry after any failure (or crash) reuses what
//! exists. The carrier half and the LiveKit half are independent and run concurrently.

use std::time::Instant;

use chrono::Utc;
use futures::lock::Mutex;
use serde_json::json;

use super::Onboarding;
use super::naming::{is_customers_trunk, is_ours, origination_friendly_name, trunk_friendly_name};
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierNumberId, ConnectionId, CustomerId, ProviderKind, RouteId, SipTrunkId};
use crate::model::{
    Actor, AuditAction, CarrierCredentials, ConnectionStatus, DispatchMode, Lease, LeaseKey,
    LeaseState, NumberConnection, OriginationTarget, RoutingPolicy, StoredRouteTarget,
    TrunkStrategy,
};
use crate::ports::{
    CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget, DispatchRuleSpec,
    InboundTrunkSpec, RouteSpec, RouteTargetSpec, SipDigestAuth,
};
use crate::sip::SipTarget;

/// How a refusal names a number someone else holds. It never names the holder: that may be
/// another trunkline customer sharing the carrier account or the LiveKit project, whose ids
/// are not this customer's to see.
pub(super) const HELD_ELSEWHERE: &str =
    "the number is configured by another trunkline customer or outside trunkline";

/// The name of a connection's LiveKit trunk and rule: how connect knows its own.
fn livekit_name(connection: ConnectionId) -> String {
    format!("trunkline {connection}")
}

/// What the caller asks connect to make true. A field left `None` keeps what is stored for
/// the number (a retry or resume changes nothing); on a first connect it means the default.
/// A field that is given and differs from what is stored is a change, listed in
/// [`ConnectOutcome::changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// One SIP target (only where overriding is allowed). Exclusive with
    /// `origination_targets`.
    pub sip_target: Option<SipTarget>,
    /// Several targets with priority/weight for HA (only where overriding is allowed). An
    /// empty list asks for the server's default target.
    pub origination_targets: Option<Vec<OriginationTarget>>,
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

impl ConnectRequest {
    /// Checks that need nothing stored: run before any lease or read.
    pub(super) fn check(&self, allow_override: bool) -> Result<(), Error> {
        if self.sip_target.is_some() && self.origination_targets.is_some() {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "sipTarget, originationTargets: give one or the other, not both \
                 (sipTarget is one target; originationTargets lists several)",
            ));
        }
        let overridden = self.sip_target.is_some()
            || self
                .origination_targets
                .as_ref()
                .is_some_and(|t| !t.is_empty());
        if overridden && !allow_override {
            return Err(Error::new(
                ErrorCode::InvalidSipTarget,
                "this server does not allow choosing the SIP target; omit sipTarget and \
                 originationTargets to use the configured LiveKit SIP ingress",
            ));
        }
        if let Some(routing) = &self.routing {
            routing.validate()?;
        }
        Ok(())
    }
}

/// What one connect makes true: the request's fields, else what is stored, else defaults.
pub(super) struct Desired {
    pub(super) targets: Vec<OriginationTarget>,
    pub(super) routing: RoutingPolicy,
    pub(super) strategy: TrunkStrategy,
    /// Request fields that differ from what was stored (`routing`, `trunkStrategy`,
    /// `originationTargets`), in that order.
    pub(super) changes: Vec<&'static str>,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Created,
    Reused,
    Updated,
    Deleted,
    /// The number was taken off another trunk first.
    Moved,
    Restored,
    /// Not applicable or not configured (the detail says why).
    Skipped,
}

/// One step of connect or disconnect, for the answer and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// `trunk`, `originationUrl`, `attachment`, `voiceConfig`, `livekitTrunk`, `livekitRule`.
    pub step: &'static str,
    pub action: StepAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Step {
    pub(super) fn new(step: &'static str, action: StepAction, id: Option<String>) -> Self {
        Self {
            step,
            action,
            id,
            detail: None,
        }
    }

    pub(super) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct DisconnectOutcome {
    pub connection: NumberConnection,
    pub steps: Vec<Step>,
    /// The connection was already disconnected; nothing was changed.
    pub already_disconnected: bool,
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
                .map(|t| vec![OriginationTarget::new(t)])
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotConfigured,
                        "no SIP target: the server has no default LiveKit SIP ingress \
                         (TRUNKLINE_SIP_TARGET) and the request named none",
                    )
                })
        };
        let stored_targets = stored.map(stored_targets);
        let mut targets = match (&req.sip_target, &req.origination_targets, &stored_targets) {
            (Some(t), _, _) => vec![OriginationTarget::new(t.clone())],
            (None, Some(list), _) if !list.is_empty() => list.clone(),
            (None, None, Some(kept)) if self.settings.allow_sip_target_override => kept.clone(),
            _ => default()?,
        };
        check_targets(&targets)?;
        // Lowest priority first: the primary target is the one Twilio tries first.
        targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
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

    /// Take a lease, waiting (with backoff) while another instance holds it, at most
    /// `lease_wait`; then `CONFLICT` with when to retry.
    pub(super) async fn acquire_lease(&self, key: &LeaseKey) -> Result<Lease, Error> {
        let started = Instant::now();
        let deadline = started + self.settings.lease_wait;
        let mut delay = std::time::Duration::from_millis(25);
        loop {
            if let Some(lease) = self
                .ports
                .leases
                .try_acquire_lease(key, &self.settings.instance_id, self.settings.lease_ttl)
                .await?
            {
                return Ok(lease);
            }
            if Instant::now() + delay > deadline {
                return Err(super::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// Run `work` while keeping `lease` alive: it is renewed every third of its time-to-live,
    /// because one connect may legitimately outlast the TTL (every carrier call may take its
    /// whole timeout and retry budget), while a holder that dies still lets it expire.
    pub(super) async fn holding<T>(
        &self,
        lease: &Lease,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let renew = async {
            let mut current = lease.clone();
            loop {
                tokio::time::sleep(self.settings.lease_ttl / 3).await;
                match self
                    .ports
                    .leases
                    .renew_lease(&current, self.settings.lease_ttl)
                    .await
                {
                    Ok(Some(renewed)) => current = renewed,
                    Ok(None) => {
                        // Stopping half-way would leave more to repair than finishing does;
                        // the other holder's reconcile reads the live state either way.
                        tracing::warn!(
                            "lease lost while working: another instance may act on what it \
                             guards now"
                        );
                        return futures::future::pending::<()>().await;
                    }
                    // A store hiccup: the lease still has two thirds of its time; try again.
                    Err(e) => tracing::warn!(error = %e, "could not renew lease"),
                }
            }
        };
        futures::pin_mut!(work);
        futures::pin_mut!(renew);
        match futures::future::select(work, renew).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(((), work)) => work.await,
        }
    }

    pub(super) async fn release_lease(&self, lease: &Lease) {
        if let Err(e) = self.ports.leases.release_lease(lease).await {
            // The lease expires by itself; a failed release only delays the next holder.
            tracing::warn!(error = %e, "could not release lease; it will expire");
        }
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

        let lease = self
            .acquire_lease(&LeaseKey::number(
                customer.clone(),
                provider,
                number.clone(),
            ))
            .await?;
        let result = self
            .holding(
                &lease,
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
            .await;
        self.release_lease(&lease).await;

        let mut outcome = result?;
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

    /// Read what connect acts on (the number and the trunk it should go on, at once), refuse
    /// what must be refused before anything is written, then store the pending connection.
    async fn prepare_connect(
        &self,
        job: &Job<'_>,
        desired: &Desired,
        existing: Option<NumberConnection>,
    ) -> Result<Prepared, Error> {
        let Job {
            carrier,
            creds,
            customer,
            number_id,
            req,
            desired_name,
            ..
        } = *job;
        let stored_trunk = existing.as_ref().and_then(|c| c.route_id.clone());
        let (number, found) = futures::try_join!(
            async { Ok::<_, Error>(carrier.fetch_number(creds, number_id).await?) },
            find_trunk(carrier, creds, desired_name, stored_trunk.as_ref()),
        )?;
        if !number.voice_capable {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "this number cannot receive voice calls",
            ));
        }
        // Every side that can refuse is asked before the carrier is touched: a refusal after
        // the number moved would leave it on a trunk whose calls reach nobody.
        self.refuse_numbers_held_elsewhere(customer, existing.as_ref(), &number.e164)
            .await?;

        // Whose trunk is the number on? Ours (by stored id, or by the names we give this
        // customer's trunks) may be moved; anybody else's is a conflict unless forced.
        let mut moved_from: Option<RouteId> = None;
        let mut on_our_trunk = false;
        if let Some(current) = &number.route_id {
            if found.as_ref().map(|f| &f.trunk.id) == Some(current) {
                on_our_trunk = true;
            } else {
                on_our_trunk = stored_trunk.as_ref() == Some(current) || {
                    let current_trunk = carrier.fetch_route(creds, current).await?;
                    let name = current_trunk.as_ref().and_then(|t| t.name.as_deref());
                    is_customers_trunk(name, customer, number_id)
                };
                if !on_our_trunk && !req.force {
                    return Err(Error::new(
                        ErrorCode::NumberInUse,
                        format!(
                            "{HELD_ELSEWHERE}: it is on a trunk this connection did not create; \
                             pass force=true to move it"
                        ),
                    ));
                }
                moved_from = Some(current.clone());
            }
        }

        let now = Utc::now();
        let (mut conn, was_disconnected) = pending_connection(job, existing, &number, desired, now);
        let mut steps = Vec::new();
        // Attaching overrides the number's own voice configuration: remember it first, unless
        // the number already sits on one of our trunks (then what we hold is the original).
        if (conn.previous_routing.is_none() || was_disconnected) && !on_our_trunk {
            conn.previous_routing = Some(number.routing.clone());
            steps.push(Step::new("voiceConfig", StepAction::Created, None).detail("recorded"));
        } else if conn.previous_routing.is_some() {
            steps.push(
                Step::new("voiceConfig", StepAction::Reused, None)
                    .detail("the configuration recorded before trunkline attached the number"),
            );
        } else {
            steps.push(
                Step::new("voiceConfig", StepAction::Skipped, None)
                    .detail("the number was already on trunkline's trunk; nothing to record"),
            );
        }
        conn.updated_at = now;
        self.ports.connections.save_connection(&conn).await?;
        Ok(Prepared {
            number,
            found,
            moved_from,
            conn,
            steps,
            was_disconnected,
        })
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

    /// Wait (with backoff, until `deadline`) while somebody holds the lease; then its state,
    /// not held. `CONFLICT` with when to retry at the deadline.
    async fn wait_for_free_lease(
        &self,
        key: &LeaseKey,
        deadline: Instant,
    ) -> Result<Option<LeaseState>, Error> {
        let started = Instant::now();
        let mut delay = std::time::Duration::from_millis(10);
        loop {
            let state = self.ports.leases.peek_lease(key).await?;
            if !state.is_some_and(|s| s.held) {
                return Ok(state);
            }
            if Instant::now() + delay > deadline {
                return Err(super::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(200));
        }
    }

    /// The trunk the number goes on, with origination URLs matching `targets`.
    ///
    /// Most connects to a shared trunk find it as it must be and change nothing on it. Such a
    /// connect takes no lease: it records the trunk on its connection (from then on, the guard
    /// of anyone changing the trunk counts this number), then checks that nobody held the
    /// trunk's lease since before it read the trunk (`peek_lease` then and now, the same
    /// state). A holder at work meanwhile means the read may be stale: wait, read again.
    /// Otherwise any holder that came later saw this number, and one that came earlier had
    /// finished before the read. Without this, the numbers of a bulk connect to one trunk
    /// queued one by one behind its lease (331 s for 1,000 numbers, docs/benchmarks.md).
    ///
    /// A connect that must change the trunk (create it, reconcile its URLs) does so under the
    /// lease, reading the shared trunk again under it: two such connects never both create a
    /// URL. A dedicated trunk is only ever changed under its number's lease, which the caller
    /// holds, so what was read stays true.
    async fn trunk_in_place(
        &self,
        job: &Job<'_>,
        read: TrunkRead<'_>,
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(RouteId, Vec<Step>), Error> {
        let TrunkRead {
            key,
            mut found,
            mut seen,
            deadline,
            reread,
        } = read;
        let started = Instant::now();
        let stored = progress.conn.lock().await.route_id.clone();
        loop {
            if let Some(f) = found.take_if(|f| urls_in_place(&f.urls, targets)) {
                let result = self.trunk_and_urls(job, Some(f), targets, progress).await?;
                if self.ports.leases.peek_lease(key).await? == seen {
                    return Ok(result);
                }
            } else if let Some(lease) = self
                .ports
                .leases
                .try_acquire_lease(key, &self.settings.instance_id, self.settings.lease_ttl)
                .await?
            {
                let work = async {
                    let found = if reread {
                        find_trunk(job.carrier, job.creds, job.desired_name, stored.as_ref())
                            .await?
                    } else {
                        found
                    };
                    self.trunk_and_urls(job, found, targets, progress).await
                };
                let result = self.holding(&lease, work).await;
                self.release_lease(&lease).await;
                return result;
            }
            // Somebody changed the trunk, or is changing it: read again once they are done.
            if Instant::now() >= deadline {
                return Err(super::lease_conflict(
                    self.settings.lease_ttl,
                    started.elapsed(),
                ));
            }
            seen = self.wait_for_free_lease(key, deadline).await?;
            found = find_trunk(job.carrier, job.creds, job.desired_name, stored.as_ref()).await?;
        }
    }

    /// The trunk found (or a new one), then its origination URLs. Changes the trunk only
    /// under its lease (`trunk_in_place`).
    async fn trunk_and_urls(
        &self,
        job: &Job<'_>,
        found: Option<FoundTrunk>,
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(RouteId, Vec<Step>), Error> {
        let Job {
            carrier,
            creds,
            customer,
            provider,
            desired_name,
            ..
        } = *job;
        let (trunk, live, step) = match found {
            Some(FoundTrunk { trunk, urls }) => {
                let step = Step::new("trunk", StepAction::Reused, Some(trunk.id.to_string()));
                (trunk, urls, step)
            }
            None => create_trunk(carrier, creds, desired_name).await?,
        };
        progress
            .update(|c| {
                c.route_created = is_ours(trunk.name.as_deref());
                c.route_id = Some(trunk.id.clone());
            })
            .await?;
        let mut steps = vec![step];
        if !job.req.force {
            self.guard_shared_trunk_targets(
                customer, provider, &trunk.id, &live, targets, progress,
            )
            .await?;
        }
        steps.extend(
            self.ensure_origination_urls(carrier, creds, &trunk.id, targets, live, progress)
                .await?,
        );
        Ok((trunk.id, steps))
    }

    /// Origination URLs belong to the trunk, not to a number: on a trunk other live numbers
    /// share, different targets would silently re-point their calls too. Refuse unless forced.
    async fn guard_shared_trunk_targets(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        trunk: &RouteId,
        live: &[CarrierRouteTarget],
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(), Error> {
        let ours: Vec<_> = live.iter().filter(|u| is_ours(u.name.as_deref())).collect();
        let same = ours.len() == targets.len()
            && targets.iter().all(|t| {
                ours.iter().any(|u| {
                    u.enabled
                        && u.priority == t.priority
                        && u.weight == t.weight
                        && SipTarget::parse(&u.sip_url).is_ok_and(|p| p == t.sip_url)
                })
            });
        if same || ours.is_empty() {
            return Ok(());
        }
        let this = progress.conn.lock().await.id;
        let others = self
            .ports
            .connections
            .list_connections(customer, provider)
            .await?
            .into_iter()
            .filter(|c| {
                c.id != this
                    && c.route_id.as_ref() == Some(trunk)
                    && c.status != ConnectionStatus::Disconnected
            })
            .count();
        if others == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "trunk {trunk} is shared with {others} other connected number(s) whose calls go \
                 to different SIP targets; these targets would re-point them too. Connect with \
                 the same targets, use trunkStrategy \"dedicated\", or pass force=true to \
                 re-point every number on the trunk"
            ),
        ))
    }

    /// Make the trunk's origination URLs match the targets: reuse equal ones, update ones
    /// whose priority/weight/enabled differ, create missing ones, delete stale ones trunkline
    /// created. URLs someone else created are left alone (status reports them as drift).
    async fn ensure_origination_urls(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        trunk: &RouteId,
        targets: &[OriginationTarget],
        live: Vec<CarrierRouteTarget>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        let mut kept = Vec::new();
        for target in targets {
            let spec = RouteTargetSpec {
                target: target.clone(),
                enabled: true,
                name: origination_friendly_name(target.priority, target.weight),
            };
            let same_url = live.iter().find(|u| {
                SipTarget::parse(&u.sip_url).is_ok_and(|parsed| parsed == target.sip_url)
            });
            let (sid, action) = match same_url {
                Some(u)
                    if u.priority == target.priority && u.weight == target.weight && u.enabled =>
                {
                    (u.id.clone(), StepAction::Reused)
                }
                Some(u) => {
                    let updated = carrier
                        .update_route_target(creds, trunk, &u.id, &spec)
                        .await?;
                    (updated.id, StepAction::Updated)
                }
                None => {
                    let created = carrier.create_route_target(creds, trunk, &spec).await?;
                    (created.id, StepAction::Created)
                }
            };
            let stored = StoredRouteTarget {
                id: sid.clone(),
                target: target.clone(),
            };
            progress
                .update(|c| {
                    c.route_targets
                        .retain(|o| o.id != stored.id && o.target.sip_url != stored.target.sip_url);
                    c.route_targets.push(stored);
                })
                .await?;
            steps.push(
                Step::new("originationUrl", action, Some(sid.to_string()))
                    .detail(target.sip_url.to_string()),
            );
            kept.push(sid);
        }
        for stale in live
            .iter()
            .filter(|u| !kept.contains(&u.id) && is_ours(u.name.as_deref()))
        {
            carrier.delete_route_target(creds, trunk, &stale.id).await?;
            steps.push(
                Step::new(
                    "originationUrl",
                    StepAction::Deleted,
                    Some(stale.id.to_string()),
                )
                .detail(stale.sip_url.clone()),
            );
        }
        progress
            .update(|c| c.route_targets.retain(|o| kept.contains(&o.id)))
            .await?;
        Ok(steps)
    }

    /// The LiveKit inbound trunk and dispatch rule. For a `fresh` connection (made by this
    /// call) nothing of it can exist at LiveKit yet, so both are created without looking first.
    pub(super) async fn livekit_half(
        &self,
        number: &CarrierNumber,
        fresh: bool,
        routing_changed: bool,
        auth: Option<SipDigestAuth>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        // Only a race with another holder gets this far (connect checks LiveKit first); the
        // adapter's message names the holder's trunk, which is not this customer's to see.
        self.livekit_steps(number, fresh, routing_changed, auth, progress)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::NumberInUse {
                    Error::new(
                        ErrorCode::NumberInUse,
                        format!("{HELD_ELSEWHERE} (LiveKit)"),
                    )
                } else {
                    e
                }
            })
    }

    async fn livekit_steps(
        &self,
        number: &CarrierNumber,
        fresh: bool,
        routing_changed: bool,
        auth: Option<SipDigestAuth>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let Some(sip) = &self.ports.sip else {
            return Ok(vec![
                Step::new("livekitTrunk", StepAction::Skipped, None)
                    .detail("LiveKit is not configured on this server"),
            ]);
        };
        let (connection_id, old_trunk, old_rule, routing) = {
            let c = progress.conn.lock().await;
            (
                c.id,
                c.livekit_trunk_id.clone(),
                c.livekit_rule_id.clone(),
                c.routing.clone(),
            )
        };
        let trunk_spec = InboundTrunkSpec {
            connection_id,
            name: livekit_name(connection_id),
            number: number.e164.clone(),
            attributes: routing.attributes.clone(),
            auth,
        };
        let rule_spec = |trunk_id: &SipTrunkId| DispatchRuleSpec {
            connection_id,
            name: livekit_name(connection_id),
            trunk_id: trunk_id.clone(),
            room_prefix: self.settings.room_prefix.clone(),
            routing: routing.clone(),
        };
        debug_assert!(
            routing.dispatch_mode == DispatchMode::Webhook || routing.agent_name.is_some()
        );
        let store_trunk = |id: SipTrunkId| progress.update(|c| c.livekit_trunk_id = Some(id));
        let rule = match (&old_trunk, fresh) {
            (_, true) => {
                let trunk = sip.create_inbound_trunk(&trunk_spec).await?;
                store_trunk(trunk.id.clone()).await?;
                let rule = sip.create_dispatch_rule(&rule_spec(&trunk.id)).await?;
                (trunk, rule)
            }
            // Both stored (a reconnect): read, and repair if needed, both at once. The rule is
            // checked against the stored trunk; a trunk that had to be recreated gets the
            // rule pointed at it afterwards.
            (Some(stored), false) => {
                let stored_rule = rule_spec(stored);
                let (trunk, rule) = futures::join!(
                    sip.ensure_inbound_trunk(&trunk_spec, Some(stored.clone())),
                    sip.ensure_dispatch_rule(&stored_rule, old_rule.clone()),
                );
                let trunk = trunk?;
                store_trunk(trunk.id.clone()).await?;
                let rule = if &trunk.id == stored {
                    rule?
                } else {
                    let existing = rule.ok().map(|r| r.id).or_else(|| old_rule.clone());
                    sip.ensure_dispatch_rule(&rule_spec(&trunk.id), existing)
                        .await?
                };
                (trunk, rule)
            }
            (None, false) => {
                let trunk = sip.ensure_inbound_trunk(&trunk_spec, None).await?;
                store_trunk(trunk.id.clone()).await?;
                let rule = sip
                    .ensure_dispatch_rule(&rule_spec(&trunk.id), old_rule.clone())
                    .await?;
                (trunk, rule)
            }
        };
        let (trunk, rule) = rule;
        progress
            .update(|c| c.livekit_rule_id = Some(rule.id.clone()))
            .await?;
        Ok(vec![
            Step::new(
                "livekitTrunk",
                reuse_or_create(old_trunk.as_ref(), &trunk.id),
                Some(trunk.id.to_string()),
            ),
            match reuse_or_create(old_rule.as_ref(), &rule.id) {
                StepAction::Reused if routing_changed => Step::new(
                    "livekitRule",
                    StepAction::Updated,
                    Some(rule.id.to_string()),
                )
                .detail("routing changed"),
                action => Step::new("livekitRule", action, Some(rule.id.to_string())),
            },
        ])
    }

    /// Disconnect a number: detach it, optionally restore its previous voice configuration,
    /// delete a dedicated trunk trunkline created once it is empty, remove the LiveKit trunk
    /// and rule, keep the connection row as history. Idempotent.
    pub async fn disconnect(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
        restore_voice_config: bool,
        request_id: Option<&str>,
    ) -> Result<DisconnectOutcome, Error> {
        let not_connected = || {
            Error::new(
                ErrorCode::NotConnected,
                "this number is not connected by trunkline",
            )
        };
        let Some(existing) = self
            .ports
            .connections
            .get_connection(customer, provider, number)
            .await?
        else {
            return Err(not_connected());
        };
        if existing.status == ConnectionStatus::Disconnected {
            return Ok(DisconnectOutcome {
                connection: existing,
                steps: Vec::new(),
                already_disconnected: true,
            });
        }
        let carrier = self.carrier(provider)?.clone();
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;
        let outbound = self
            .disconnect_outbound(&*carrier, &creds, &integration, existing.id)
            .await?;
        let lease = self
            .acquire_lease(&LeaseKey::number(
                customer.clone(),
                provider,
                number.clone(),
            ))
            .await?;
        let result = self
            .holding(
                &lease,
                self.disconnect_locked(
                    &*carrier,
                    &creds,
                    customer,
                    provider,
                    number,
                    restore_voice_config,
                ),
            )
            .await;
        self.release_lease(&lease).await;
        let mut outcome = result?;
        outcome.steps.splice(0..0, outbound);
        if !outcome.already_disconnected {
            self.audit(
                customer,
                provider,
                actor,
                AuditAction::NumberDisconnected,
                json!({
                    "connectionId": outcome.connection.id,
                    "numberId": number,
                    "routeId": outcome.connection.route_id,
                    "restoreVoiceConfig": restore_voice_config,
                    "steps": outcome.steps,
                }),
                request_id,
            )
            .await?;
        }
        Ok(outcome)
    }

    async fn disconnect_locked(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        customer: &CustomerId,
        provider: ProviderKind,
        number_id: &CarrierNumberId,
        restore: bool,
    ) -> Result<DisconnectOutcome, Error> {
        // Re-read under the lease: a concurrent disconnect may have finished meanwhile.
        let Some(conn) = self
            .ports
            .connections
            .get_connection(customer, provider, number_id)
            .await?
        else {
            return Err(Error::new(
                ErrorCode::NotConnected,
                "this number is not connected by trunkline",
            ));
        };
        if conn.status == ConnectionStatus::Disconnected {
            return Ok(DisconnectOutcome {
                connection: conn,
                steps: Vec::new(),
                already_disconnected: true,
            });
        }
        let progress = Progress {
            onboarding: self,
            conn: Mutex::new(conn.clone()),
        };
        let route_gone = std::sync::atomic::AtomicBool::new(false);
        let carrier_half = async {
            let mut steps = Vec::new();
            let number = match carrier.fetch_number(creds, number_id).await {
                Ok(n) => Some(n),
                // Released or ported away: nothing left to detach or restore.
                Err(e) if e.code == ErrorCode::NumberNotFound => None,
                Err(e) => return Err(Error::from(e)),
            };
            if let Some(steps) = self
                .disconnect_voice_url(carrier, creds, &conn, number.as_ref())
                .await?
            {
                return Ok(steps);
            }
            if let (Some(n), Some(trunk)) = (&number, &conn.route_id) {
                if n.route_id.as_ref() == Some(trunk) {
                    carrier.detach_number(creds, trunk, number_id).await?;
                    steps.push(Step::new(
                        "attachment",
                        StepAction::Deleted,
                        Some(trunk.to_string()),
                    ));
                } else {
                    steps.push(
                        Step::new("attachment", StepAction::Skipped, Some(trunk.to_string()))
                            .detail("the number was not on trunkline's trunk"),
                    );
                }
            }
            if restore && number.is_some() {
                match &conn.previous_routing {
                    Some(voice) => {
                        carrier.restore_routing(creds, number_id, voice).await?;
                        steps.push(Step::new("voiceConfig", StepAction::Restored, None));
                    }
                    None => steps.push(
                        Step::new("voiceConfig", StepAction::Skipped, None)
                            .detail("no previous voice configuration was recorded"),
                    ),
                }
            }
            if let (TrunkStrategy::Dedicated, true, Some(trunk)) =
                (conn.trunk_strategy, conn.route_created, &conn.route_id)
            {
                if carrier.fetch_route(creds, trunk).await?.is_none() {
                    // Deleted already: by an earlier attempt that died before recording it
                    // (its answer lost), or by hand. The record must not keep naming it.
                    route_gone.store(true, std::sync::atomic::Ordering::SeqCst);
                    steps.push(
                        Step::new("trunk", StepAction::Skipped, Some(trunk.to_string()))
                            .detail("the trunk was already gone"),
                    );
                } else if carrier.list_route_numbers(creds, trunk).await?.is_empty() {
                    carrier.delete_route(creds, trunk).await?;
                    steps.push(Step::new(
                        "trunk",
                        StepAction::Deleted,
                        Some(trunk.to_string()),
                    ));
                } else {
                    steps.push(
                        Step::new("trunk", StepAction::Skipped, Some(trunk.to_string()))
                            .detail("other numbers are still on the trunk"),
                    );
                }
            }
            if conn.trunk_strategy == TrunkStrategy::Shared && number.is_some() {
                // A dedicated trunk an earlier change to `shared` left behind.
                steps.extend(remove_empty_dedicated(carrier, creds, customer, number_id).await);
            }
            Ok(steps)
        };
        let livekit_half = async {
            let mut steps = Vec::new();
            let Some(sip) = &self.ports.sip else {
                return Ok(steps);
            };
            if let Some(rule) = &conn.livekit_rule_id {
                sip.delete_dispatch_rule(rule).await?;
                progress.update(|c| c.livekit_rule_id = None).await?;
                steps.push(Step::new(
                    "livekitRule",
                    StepAction::Deleted,
                    Some(rule.to_string()),
                ));
            }
            if let Some(trunk) = &conn.livekit_trunk_id {
                sip.delete_inbound_trunk(trunk).await?;
                progress.update(|c| c.livekit_trunk_id = None).await?;
                steps.push(Step::new(
                    "livekitTrunk",
                    StepAction::Deleted,
                    Some(trunk.to_string()),
                ));
            }
            Ok::<_, Error>(steps)
        };
        let (carrier_result, livekit_result) = futures::join!(carrier_half, livekit_half);
        let mut steps = carrier_result?;
        steps.extend(livekit_result?);
        let stored_trunk = conn.route_id.as_ref().map(ToString::to_string);
        let trunk_deleted = route_gone.load(std::sync::atomic::Ordering::SeqCst)
            || steps.iter().any(|s| {
                s.step == "trunk" && s.action == StepAction::Deleted && s.id == stored_trunk
            });
        progress
            .update(|c| {
                c.status = ConnectionStatus::Disconnected;
                c.disconnected_at = Some(Utc::now());
                c.last_error = None;
                c.route_targets.clear();
                if trunk_deleted {
                    c.route_id = None;
                    c.route_created = false;
                }
            })
            .await?;
        Ok(DisconnectOutcome {
            connection: progress.snapshot().await,
            steps,
            already_disconnected: false,
        })
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
    let primary = desired.targets[0].sip_url.clone();
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

/// What `trunk_in_place` starts from: the trunk as read, and the trunk lease's state from
/// before that read.
struct TrunkRead<'a> {
    key: &'a LeaseKey,
    found: Option<FoundTrunk>,
    seen: Option<LeaseState>,
    deadline: Instant,
    /// Read the trunk again under its lease: it is shared, so others change it too.
    reread: bool,
}

/// Whether the trunk's URLs are the targets already, so that `trunk_and_urls` changes
/// nothing and its guard refuses nothing: each target's URL (the one
/// `ensure_origination_urls` picks) is trunkline's, enabled, with the target's priority and
/// weight, and trunkline has no other URL there.
fn urls_in_place(live: &[CarrierRouteTarget], targets: &[OriginationTarget]) -> bool {
    let ours = live.iter().filter(|u| is_ours(u.name.as_deref())).count();
    ours == targets.len()
        && targets.iter().all(|t| {
            live.iter()
                .find(|u| SipTarget::parse(&u.sip_url).is_ok_and(|p| p == t.sip_url))
                .is_some_and(|u| {
                    is_ours(u.name.as_deref())
                        && u.enabled
                        && u.priority == t.priority
                        && u.weight == t.weight
                })
        })
}

/// A trunk connect found before writing anything, with its origination URLs.
struct FoundTrunk {
    trunk: CarrierRoute,
    urls: Vec<CarrierRouteTarget>,
}

/// What connect read and checked before its first write to a carrier.
struct Prepared {
    number: CarrierNumber,
    /// The trunk the number should go on, when it exists already.
    found: Option<FoundTrunk>,
    /// Our trunk (or, forced, someone else's) the number leaves.
    moved_from: Option<RouteId>,
    conn: NumberConnection,
    steps: Vec<Step>,
    was_disconnected: bool,
}

/// The trunk the number should go on, if it exists: the stored one while it keeps the desired
/// name, else one found by name. Its origination URLs are read in the same round trip as the
/// stored trunk, since a reconnect needs both.
async fn find_trunk(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    desired_name: &str,
    stored: Option<&RouteId>,
) -> Result<Option<FoundTrunk>, Error> {
    if let Some(sid) = stored {
        let (trunk, urls) = futures::join!(
            carrier.fetch_route(creds, sid),
            carrier.list_route_targets(creds, sid)
        );
        // The URLs only count if the trunk is still there (a deleted one lists as not found).
        if let Some(trunk) = trunk?
            && trunk.name.as_deref() == Some(desired_name)
        {
            return Ok(Some(FoundTrunk { trunk, urls: urls? }));
        }
    }
    let Some(trunk) = find_one(carrier, creds, desired_name).await? else {
        return Ok(None);
    };
    let urls = carrier.list_route_targets(creds, &trunk.id).await?;
    Ok(Some(FoundTrunk { trunk, urls }))
}

/// Create the trunk (the caller holds its lease and found none). A trunk created just now has
/// no origination URLs, so none are listed.
async fn create_trunk(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    desired_name: &str,
) -> Result<(CarrierRoute, Vec<CarrierRouteTarget>, Step), Error> {
    let spec = RouteSpec {
        name: desired_name.to_owned(),
    };
    let trunk = match carrier.create_route(creds, &spec).await {
        Ok(t) => t,
        // A create is never retried blindly: the request may have succeeded with its answer
        // lost, so look again before giving up.
        Err(e) if e.is_transient() => match find_one(carrier, creds, desired_name).await {
            Ok(Some(t)) => {
                let urls = carrier.list_route_targets(creds, &t.id).await?;
                let step = Step::new("trunk", StepAction::Created, Some(t.id.to_string()));
                return Ok((t, urls, step));
            }
            _ => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let step = Step::new("trunk", StepAction::Created, Some(trunk.id.to_string()));
    Ok((trunk, Vec::new(), step))
}

/// Put the number on `trunk`, taking it off `moved_from` first. Last of the carrier steps, so
/// calls only reach the trunk once its origination URLs exist.
async fn attach(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    number: &CarrierNumber,
    trunk: &RouteId,
    moved_from: Option<RouteId>,
) -> Result<Step, Error> {
    if number.route_id.as_ref() == Some(trunk) {
        return Ok(Step::new(
            "attachment",
            StepAction::Reused,
            Some(trunk.to_string()),
        ));
    }
    if let Some(old) = &moved_from {
        carrier.detach_number(creds, old, &number.id).await?;
    }
    carrier.attach_number(creds, trunk, &number.id).await?;
    let action = if moved_from.is_some() {
        StepAction::Moved
    } else {
        StepAction::Created
    };
    let mut step = Step::new("attachment", action, Some(trunk.to_string()));
    if let Some(old) = moved_from {
        step = step.detail(format!("moved from trunk {old}"));
    }
    Ok(step)
}

async fn find_one(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    name: &str,
) -> Result<Option<CarrierRoute>, Error> {
    let mut found = carrier.find_routes(creds, name).await?;
    // Deterministic choice if a race ever produced two: every instance picks the same one.
    found.sort_by(|a, b| a.id.cmp(&b.id));
    if found.len() > 1 {
        tracing::warn!(
            count = found.len(),
            "several trunks share trunkline's name; using the first by sid"
        );
    }
    Ok(found.into_iter().next())
}

fn reuse_or_create<T: PartialEq>(old: Option<&T>, new: &T) -> StepAction {
    if old == Some(new) {
        StepAction::Reused
    } else {
        StepAction::Created
    }
}

/// The targets a stored connection points at, in the order `desired` sorts them. A
/// disconnect forgets the origination URLs but keeps the primary target.
fn stored_targets(c: &NumberConnection) -> Vec<OriginationTarget> {
    let mut targets: Vec<_> = if c.route_targets.is_empty() {
        vec![OriginationTarget::new(c.sip_target.clone())]
    } else {
        c.route_targets.iter().map(|o| o.target.clone()).collect()
    };
    targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
    targets
}

fn check_targets(targets: &[OriginationTarget]) -> Result<(), Error> {
    if targets.len() > 10 {
        return Err(Error::new(
            ErrorCode::InvalidSipTarget,
            "at most 10 origination targets",
        ));
    }
    for (i, a) in targets.iter().enumerate() {
        if targets[..i].iter().any(|b| b.sip_url == a.sip_url) {
            return Err(Error::new(
                ErrorCode::InvalidSipTarget,
                format!("origination target {} is listed twice", a.sip_url),
            ));
        }
        if a.weight == 0 {
            return Err(Error::new(
                ErrorCode::InvalidSipTarget,
                "origination target weight must be at least 1",
            ));
        }
    }
    Ok(())
}

/// This number's dedicated trunks (`trunkline-dedicated-PN…`) that hold no number: only a
/// trunk named for this very number, and only once the carrier lists no number on it.
pub(super) async fn empty_dedicated_trunks(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> Result<Vec<RouteId>, crate::ports::ProviderError> {
    let name = trunk_friendly_name(TrunkStrategy::Dedicated, customer, number);
    let mut empty = Vec::new();
    for trunk in carrier.find_routes(creds, &name).await? {
        if carrier
            .list_route_numbers(creds, &trunk.id)
            .await?
            .is_empty()
        {
            empty.push(trunk.id);
        }
    }
    Ok(empty)
}

/// Remove this number's dedicated trunk if no number is on it: emptied by a change to
/// `shared`, or left behind by an earlier one (deleting a trunk removes its origination URLs
/// too). A failure here leaves the number connected; the next connect or disconnect tries
/// again, so it is reported as a skipped step rather than as an error.
async fn remove_empty_dedicated(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> Vec<Step> {
    let removed = async {
        let mut steps = Vec::new();
        for trunk in empty_dedicated_trunks(carrier, creds, customer, number).await? {
            carrier.delete_route(creds, &trunk).await?;
            steps.push(
                Step::new("trunk", StepAction::Deleted, Some(trunk.to_string()))
                    .detail("the number's dedicated trunk, left empty"),
            );
        }
        Ok::<_, crate::ports::ProviderError>(steps)
    };
    match removed.await {
        Ok(steps) => steps,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "could not remove an empty dedicated trunk; the next connect or disconnect retries"
            );
            vec![Step::new("trunk", StepAction::Skipped, None).detail(
                "an empty dedicated trunk could not be removed yet; the next connect or \
                     disconnect retries",
            )]
        }
    }
}
