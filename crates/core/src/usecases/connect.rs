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
use crate::ids::{ConnectionId, CustomerId, PhoneNumberSid, ProviderKind, TrunkSid};
use crate::model::{
    Actor, AuditAction, CarrierCredentials, ConnectionStatus, DispatchMode, Lease, LeaseKey,
    NumberConnection, OriginationTarget, RoutingPolicy, StoredOriginationUrl, TrunkStrategy,
};
use crate::ports::{
    CarrierNumber, CarrierOriginationUrl, CarrierProvider, CarrierTrunk, DispatchRuleSpec,
    InboundTrunkSpec, OriginationUrlSpec, SipPlatform, TrunkSpec,
};
use crate::sip::SipTarget;

/// What the caller asks connect to make true.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Override of the default SIP target (only where overriding is allowed).
    pub sip_target: Option<SipTarget>,
    /// Several targets with priority/weight for HA (only where overriding is allowed).
    pub origination_targets: Vec<OriginationTarget>,
    pub routing: RoutingPolicy,
    pub trunk_strategy: TrunkStrategy,
    /// Take the number even when it sits on a trunk trunkline did not create.
    pub force: bool,
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
    fn new(step: &'static str, action: StepAction, id: Option<String>) -> Self {
        Self {
            step,
            action,
            id,
            detail: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectOutcome {
    pub connection: NumberConnection,
    pub steps: Vec<Step>,
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
struct Progress<'a> {
    onboarding: &'a Onboarding,
    conn: Mutex<NumberConnection>,
}

impl Progress<'_> {
    async fn update(&self, f: impl FnOnce(&mut NumberConnection)) -> Result<(), Error> {
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

    async fn snapshot(&self) -> NumberConnection {
        self.conn.lock().await.clone()
    }
}

impl Onboarding {
    /// The origination targets of a request: the request's own (when overriding is allowed)
    /// or the configured default.
    fn resolve_targets(&self, req: &ConnectRequest) -> Result<Vec<OriginationTarget>, Error> {
        let overridden = req.sip_target.is_some() || !req.origination_targets.is_empty();
        if overridden && !self.settings.allow_sip_target_override {
            return Err(Error::new(
                ErrorCode::InvalidSipTarget,
                "this server does not allow choosing the SIP target; omit sipTarget and \
                 originationTargets to use the configured LiveKit SIP ingress",
            ));
        }
        let mut targets = req.origination_targets.clone();
        if let Some(t) = &req.sip_target
            && targets.iter().all(|o| &o.sip_url != t)
        {
            targets.insert(0, OriginationTarget::new(t.clone()));
        }
        if targets.is_empty() {
            let Some(default) = &self.settings.default_sip_target else {
                return Err(Error::new(
                    ErrorCode::NotConfigured,
                    "no SIP target: the server has no default LiveKit SIP ingress \
                     (TRUNKLINE_SIP_TARGET) and the request named none",
                ));
            };
            targets.push(OriginationTarget::new(default.clone()));
        }
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
        // Lowest priority first: the primary target is the one Twilio tries first.
        targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
        Ok(targets)
    }

    /// Take a lease, waiting (with backoff) while another instance holds it.
    pub(super) async fn acquire_lease(&self, key: &LeaseKey) -> Result<Lease, Error> {
        let deadline = Instant::now() + self.settings.lease_wait;
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
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "another operation on this number is in progress; retry in a few seconds",
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
                            "lease lost while working: another instance may act on the same                              number now"
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
        number: &PhoneNumberSid,
        req: ConnectRequest,
        request_id: Option<&str>,
    ) -> Result<ConnectOutcome, Error> {
        let targets = self.resolve_targets(&req)?;
        req.routing.validate()?;
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
                self.connect_locked(
                    &*carrier,
                    &creds,
                    customer,
                    provider,
                    number,
                    &req,
                    targets,
                    integration.id,
                ),
            )
            .await;
        self.release_lease(&lease).await;

        let outcome = result?;
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::NumberConnected,
            json!({
                "connectionId": outcome.connection.id,
                "phoneNumberSid": number,
                "trunkSid": outcome.connection.trunk_sid,
                "livekitTrunkId": outcome.connection.livekit_trunk_id,
                "livekitRuleId": outcome.connection.livekit_rule_id,
                "steps": outcome.steps,
            }),
            request_id,
        )
        .await?;
        Ok(outcome)
    }

    #[allow(clippy::too_many_arguments)]
    async fn connect_locked(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        customer: &CustomerId,
        provider: ProviderKind,
        number_sid: &PhoneNumberSid,
        req: &ConnectRequest,
        targets: Vec<OriginationTarget>,
        integration_id: crate::ids::IntegrationId,
    ) -> Result<ConnectOutcome, Error> {
        let number = carrier.fetch_number(creds, number_sid).await?;
        if !number.voice_capable {
            return Err(Error::new(
                ErrorCode::ValidationFailed,
                "this number cannot receive voice calls",
            ));
        }
        let desired_name = trunk_friendly_name(req.trunk_strategy, customer, number_sid);
        let existing = self
            .ports
            .connections
            .get_connection(customer, provider, number_sid)
            .await?;

        // Whose trunk is the number on? Ours (by stored id, or by the names we give this
        // customer's trunks) may be moved; anybody else's is a conflict unless forced.
        let mut moved_from: Option<TrunkSid> = None;
        let mut on_our_trunk = false;
        if let Some(current) = &number.trunk_sid {
            let stored = existing.as_ref().and_then(|c| c.trunk_sid.as_ref());
            let current_trunk = carrier.fetch_trunk(creds, current).await?;
            let name = current_trunk
                .as_ref()
                .and_then(|t| t.friendly_name.as_deref());
            on_our_trunk =
                stored == Some(current) || is_customers_trunk(name, customer, number_sid);
            if !on_our_trunk && !req.force {
                return Err(Error::new(
                    ErrorCode::NumberInUse,
                    format!(
                        "the number is on trunk {current}, which trunkline did not create; \
                         pass force=true to move it"
                    ),
                ));
            }
            if name != Some(desired_name.as_str()) {
                moved_from = Some(current.clone());
            }
        }

        let now = Utc::now();
        let primary = targets[0].sip_url.clone();
        let mut conn = existing.unwrap_or_else(|| NumberConnection {
            id: ConnectionId::new(),
            customer_id: customer.clone(),
            provider,
            integration_id,
            phone_number_sid: number_sid.clone(),
            e164: number.e164.clone(),
            status: ConnectionStatus::Pending,
            trunk_strategy: req.trunk_strategy,
            trunk_sid: None,
            trunk_created: false,
            origination_urls: Vec::new(),
            sip_target: primary.clone(),
            routing: req.routing.clone(),
            previous_voice: None,
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
        conn.integration_id = integration_id;
        conn.e164 = number.e164.clone();
        conn.trunk_strategy = req.trunk_strategy;
        conn.sip_target = primary;
        conn.routing = req.routing.clone();
        let mut steps = Vec::new();
        // Attaching overrides the number's own voice configuration: remember it first, unless
        // the number already sits on one of our trunks (then what we hold is the original).
        if (conn.previous_voice.is_none() || was_disconnected) && !on_our_trunk {
            conn.previous_voice = Some(number.voice.clone());
            steps.push(Step::new("voiceConfig", StepAction::Created, None).detail("recorded"));
        }
        conn.updated_at = now;
        self.ports.connections.save_connection(&conn).await?;

        let progress = Progress {
            onboarding: self,
            conn: Mutex::new(conn),
        };
        let carrier_half = self.carrier_half(
            carrier,
            creds,
            customer,
            provider,
            &number,
            &desired_name,
            &targets,
            moved_from,
            req.force,
            &progress,
        );
        let livekit_half = self.livekit_half(&number, &progress);
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
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn carrier_half(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumber,
        desired_name: &str,
        targets: &[OriginationTarget],
        moved_from: Option<TrunkSid>,
        force: bool,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        let stored_trunk = progress.conn.lock().await.trunk_sid.clone();
        let (trunk, trunk_step) = self
            .ensure_trunk(
                carrier,
                creds,
                customer,
                provider,
                desired_name,
                stored_trunk,
            )
            .await?;
        progress
            .update(|c| {
                c.trunk_created = is_ours(trunk.friendly_name.as_deref());
                c.trunk_sid = Some(trunk.sid.clone());
            })
            .await?;
        steps.push(trunk_step);

        let live = carrier.list_origination_urls(creds, &trunk.sid).await?;
        if !force {
            self.guard_shared_trunk_targets(
                customer, provider, &trunk.sid, &live, targets, progress,
            )
            .await?;
        }
        steps.extend(
            self.ensure_origination_urls(carrier, creds, &trunk.sid, targets, live, progress)
                .await?,
        );

        if number.trunk_sid.as_ref() == Some(&trunk.sid) {
            steps.push(Step::new(
                "attachment",
                StepAction::Reused,
                Some(trunk.sid.to_string()),
            ));
        } else {
            if let Some(old) = &moved_from {
                carrier.detach_number(creds, old, &number.sid).await?;
            }
            carrier
                .attach_number(creds, &trunk.sid, &number.sid)
                .await?;
            let action = if moved_from.is_some() {
                StepAction::Moved
            } else {
                StepAction::Created
            };
            let mut step = Step::new("attachment", action, Some(trunk.sid.to_string()));
            if let Some(old) = moved_from {
                step = step.detail(format!("moved from trunk {old}"));
            }
            steps.push(step);
        }
        Ok(steps)
    }

    /// The trunk the number goes on: the stored one if it still exists under the desired name,
    /// else one found by name, else a new one (under a customer-wide lease, because several
    /// numbers' connects may race to create a shared trunk).
    async fn ensure_trunk(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        customer: &CustomerId,
        provider: ProviderKind,
        desired_name: &str,
        stored: Option<TrunkSid>,
    ) -> Result<(CarrierTrunk, Step), Error> {
        if let Some(sid) = stored
            && let Some(t) = carrier.fetch_trunk(creds, &sid).await?
            && t.friendly_name.as_deref() == Some(desired_name)
        {
            let step = Step::new("trunk", StepAction::Reused, Some(t.sid.to_string()));
            return Ok((t, step));
        }
        if let Some(t) = find_one(carrier, creds, desired_name).await? {
            let step = Step::new("trunk", StepAction::Reused, Some(t.sid.to_string()));
            return Ok((t, step));
        }
        let lease = self
            .acquire_lease(&LeaseKey::trunk(customer.clone(), provider, desired_name))
            .await?;
        let work = async {
            // Someone may have created it while we waited for the lease.
            if let Some(t) = find_one(carrier, creds, desired_name).await? {
                let step = Step::new("trunk", StepAction::Reused, Some(t.sid.to_string()));
                return Ok((t, step));
            }
            let spec = TrunkSpec {
                friendly_name: desired_name.to_owned(),
            };
            match carrier.create_trunk(creds, &spec).await {
                Ok(t) => {
                    let step = Step::new("trunk", StepAction::Created, Some(t.sid.to_string()));
                    Ok((t, step))
                }
                // A create is never retried blindly: the request may have succeeded with its
                // answer lost, so look again before giving up.
                Err(e) if e.is_transient() => match find_one(carrier, creds, desired_name).await {
                    Ok(Some(t)) => {
                        let step = Step::new("trunk", StepAction::Created, Some(t.sid.to_string()));
                        Ok((t, step))
                    }
                    _ => Err(e.into()),
                },
                Err(e) => Err(e.into()),
            }
        };
        let result = self.holding(&lease, work).await;
        self.release_lease(&lease).await;
        result
    }

    /// Origination URLs belong to the trunk, not to a number: on a trunk other live numbers
    /// share, different targets would silently re-point their calls too. Refuse unless forced.
    async fn guard_shared_trunk_targets(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        trunk: &TrunkSid,
        live: &[CarrierOriginationUrl],
        targets: &[OriginationTarget],
        progress: &Progress<'_>,
    ) -> Result<(), Error> {
        let ours: Vec<_> = live
            .iter()
            .filter(|u| is_ours(u.friendly_name.as_deref()))
            .collect();
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
                    && c.trunk_sid.as_ref() == Some(trunk)
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
        trunk: &TrunkSid,
        targets: &[OriginationTarget],
        live: Vec<CarrierOriginationUrl>,
        progress: &Progress<'_>,
    ) -> Result<Vec<Step>, Error> {
        let mut steps = Vec::new();
        let mut kept = Vec::new();
        for target in targets {
            let spec = OriginationUrlSpec {
                target: target.clone(),
                enabled: true,
                friendly_name: origination_friendly_name(target.priority, target.weight),
            };
            let same_url = live.iter().find(|u| {
                SipTarget::parse(&u.sip_url).is_ok_and(|parsed| parsed == target.sip_url)
            });
            let (sid, action) = match same_url {
                Some(u)
                    if u.priority == target.priority && u.weight == target.weight && u.enabled =>
                {
                    (u.sid.clone(), StepAction::Reused)
                }
                Some(u) => {
                    let updated = carrier
                        .update_origination_url(creds, trunk, &u.sid, &spec)
                        .await?;
                    (updated.sid, StepAction::Updated)
                }
                None => {
                    let created = carrier.create_origination_url(creds, trunk, &spec).await?;
                    (created.sid, StepAction::Created)
                }
            };
            let stored = StoredOriginationUrl {
                sid: sid.clone(),
                target: target.clone(),
            };
            progress
                .update(|c| {
                    c.origination_urls.retain(|o| {
                        o.sid != stored.sid && o.target.sip_url != stored.target.sip_url
                    });
                    c.origination_urls.push(stored);
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
            .filter(|u| !kept.contains(&u.sid) && is_ours(u.friendly_name.as_deref()))
        {
            carrier
                .delete_origination_url(creds, trunk, &stale.sid)
                .await?;
            steps.push(
                Step::new(
                    "originationUrl",
                    StepAction::Deleted,
                    Some(stale.sid.to_string()),
                )
                .detail(stale.sip_url.clone()),
            );
        }
        progress
            .update(|c| c.origination_urls.retain(|o| kept.contains(&o.sid)))
            .await?;
        Ok(steps)
    }

    async fn livekit_half(
        &self,
        number: &CarrierNumber,
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
            name: format!("trunkline {connection_id}"),
            number: number.e164.clone(),
            attributes: routing.attributes.clone(),
        };
        let trunk = sip
            .ensure_inbound_trunk(&trunk_spec, old_trunk.clone())
            .await?;
        progress
            .update(|c| c.livekit_trunk_id = Some(trunk.id.clone()))
            .await?;
        let rule = ensure_rule(
            &**sip,
            connection_id,
            &trunk.id,
            &self.settings.room_prefix,
            routing,
            old_rule.clone(),
        )
        .await?;
        progress
            .update(|c| c.livekit_rule_id = Some(rule.id.clone()))
            .await?;
        Ok(vec![
            Step::new(
                "livekitTrunk",
                reuse_or_create(old_trunk.as_ref(), &trunk.id),
                Some(trunk.id.to_string()),
            ),
            Step::new(
                "livekitRule",
                reuse_or_create(old_rule.as_ref(), &rule.id),
                Some(rule.id.to_string()),
            ),
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
        number: &PhoneNumberSid,
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
        let outcome = result?;
        if !outcome.already_disconnected {
            self.audit(
                customer,
                provider,
                actor,
                AuditAction::NumberDisconnected,
                json!({
                    "connectionId": outcome.connection.id,
                    "phoneNumberSid": number,
                    "trunkSid": outcome.connection.trunk_sid,
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
        number_sid: &PhoneNumberSid,
        restore: bool,
    ) -> Result<DisconnectOutcome, Error> {
        // Re-read under the lease: a concurrent disconnect may have finished meanwhile.
        let Some(conn) = self
            .ports
            .connections
            .get_connection(customer, provider, number_sid)
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
        let carrier_half = async {
            let mut steps = Vec::new();
            let number = match carrier.fetch_number(creds, number_sid).await {
                Ok(n) => Some(n),
                // Released or ported away: nothing left to detach or restore.
                Err(e) if e.code == ErrorCode::NumberNotFound => None,
                Err(e) => return Err(Error::from(e)),
            };
            if let (Some(n), Some(trunk)) = (&number, &conn.trunk_sid) {
                if n.trunk_sid.as_ref() == Some(trunk) {
                    carrier.detach_number(creds, trunk, number_sid).await?;
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
                match &conn.previous_voice {
                    Some(voice) => {
                        carrier
                            .update_voice_config(creds, number_sid, voice)
                            .await?;
                        steps.push(Step::new("voiceConfig", StepAction::Restored, None));
                    }
                    None => steps.push(
                        Step::new("voiceConfig", StepAction::Skipped, None)
                            .detail("no previous voice configuration was recorded"),
                    ),
                }
            }
            if let (TrunkStrategy::Dedicated, true, Some(trunk)) =
                (conn.trunk_strategy, conn.trunk_created, &conn.trunk_sid)
                && carrier.fetch_trunk(creds, trunk).await?.is_some()
            {
                if carrier.list_trunk_numbers(creds, trunk).await?.is_empty() {
                    carrier.delete_trunk(creds, trunk).await?;
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
        let trunk_deleted = steps
            .iter()
            .any(|s| s.step == "trunk" && s.action == StepAction::Deleted);
        progress
            .update(|c| {
                c.status = ConnectionStatus::Disconnected;
                c.disconnected_at = Some(Utc::now());
                c.last_error = None;
                c.origination_urls.clear();
                if trunk_deleted {
                    c.trunk_sid = None;
                    c.trunk_created = false;
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

async fn find_one(
    carrier: &dyn CarrierProvider,
    creds: &CarrierCredentials,
    name: &str,
) -> Result<Option<CarrierTrunk>, Error> {
    let mut found = carrier.find_trunks(creds, name).await?;
    // Deterministic choice if a race ever produced two: every instance picks the same one.
    found.sort_by(|a, b| a.sid.cmp(&b.sid));
    if found.len() > 1 {
        tracing::warn!(
            count = found.len(),
            "several trunks share trunkline's name; using the first by sid"
        );
    }
    Ok(found.into_iter().next())
}

async fn ensure_rule(
    sip: &dyn SipPlatform,
    connection_id: ConnectionId,
    trunk_id: &crate::ids::SipTrunkId,
    room_prefix: &str,
    routing: RoutingPolicy,
    existing: Option<crate::ids::DispatchRuleId>,
) -> Result<crate::ports::DispatchRuleInfo, Error> {
    let spec = DispatchRuleSpec {
        connection_id,
        name: format!("trunkline {connection_id}"),
        trunk_id: trunk_id.clone(),
        room_prefix: room_prefix.to_owned(),
        routing,
    };
    debug_assert!(
        spec.routing.dispatch_mode == DispatchMode::Webhook || spec.routing.agent_name.is_some()
    );
    Ok(sip.ensure_dispatch_rule(&spec, existing).await?)
}

fn reuse_or_create<T: PartialEq>(old: Option<&T>, new: &T) -> StepAction {
    if old == Some(new) {
        StepAction::Reused
    } else {
        StepAction::Created
    }
}
