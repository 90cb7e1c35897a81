//! Outbound calls: `POST /telephony/calls`.
//!
//! A call is placed from a number the customer connected with `outbound: true`, through the
//! LiveKit outbound trunk of the number's carrier route, with the number as caller ID
//! (`sip_number`). In order, and nothing dialled before every check passed:
//!
//! 1. the `from` number must be the customer's live connection with an outbound half;
//! 2. the call is recorded in the store with its `Idempotency-Key`, atomically across
//!    instances: a retried or concurrent request with the same key gets the first call back
//!    (waiting while the first is still dialling) and never dials again. The first request
//!    holds the call's dial lease while it works; when its instance dies half-way (the lease
//!    runs out with the call still `dialing`), the retry takes the call over and finishes it:
//!    the record and the agent's dispatch as below, then it asks LiveKit whether the call's
//!    participant (room and identity fixed by the call id) is in its room already, and dials
//!    only when it is not;
//! 3. the number's rate (the carrier's default, Twilio 1 call per second) is held with a
//!    lease that expires by itself, shared by every instance: a faster call is answered
//!    `RATE_LIMITED` with `Retry-After`, and its reservation is withdrawn;
//! 4. the call record is written for the room with its dispatch due, and the agent is
//!    dispatched through the same claim as an inbound call's (so a webhook or the background
//!    retrier that sees the call later finds it dispatched and does nothing);
//! 5. LiveKit dials (`CreateSIPParticipant`). A SIP failure ends the call record (which also
//!    cancels a dispatch still due) and answers a clear code with the SIP status.
//!
//! The participant's webhooks then update the call record as they do an inbound call's: its
//! room already has the call, so the join merges into it and its claim finds it dispatched.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};

use super::calls::Calls;
use crate::error::{Error, ErrorCode};
use crate::ids::{CallId, CustomerId, ProviderKind, RoomName, SipTrunkId};
use crate::model::{
    CallRecord, CallStatus, DispatchStatus, Lease, LeaseKey, RoutingPolicy, RoutingPolicyParts,
};
use crate::phone::{E164, mask_phone};
use crate::ports::{
    CallStore, CarrierProvider, ConnectionStore, LeaseStore, OutboundCall, OutboundCallInsert,
    OutboundCallState, OutboundStore, SipCallRequest, SipPlatform,
};

/// The ports outbound calls need.
#[derive(Clone)]
pub struct OutboundCallsPorts {
    /// The call use cases: their claim machinery dispatches the agent.
    pub calls: Arc<Calls>,
    pub call_store: Arc<dyn CallStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub outbound: Arc<dyn OutboundStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub sip: Option<Arc<dyn SipPlatform>>,
    pub carriers: HashMap<ProviderKind, Arc<dyn CarrierProvider>>,
}

impl std::fmt::Debug for OutboundCallsPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundCallsPorts")
            .field("sip", &self.sip.is_some())
            .finish_non_exhaustive()
    }
}

/// `POST /telephony/calls` as the use case takes it (parsed at the edge).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlaceCall {
    pub from: Option<E164>,
    pub to: Option<E164>,
    /// The agent to dispatch; default the number's routing agent.
    pub agent_name: Option<String>,
    pub metadata: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub wait_until_answered: bool,
    pub ringing_timeout: Option<Duration>,
    pub idempotency_key: Option<String>,
}

/// Where a placed call stands in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacedStatus {
    /// LiveKit is dialling (the request did not wait for the answer).
    Dialing,
    /// The callee answered.
    Answered,
}

impl PlacedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dialing => "dialing",
            Self::Answered => "answered",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub call_id: CallId,
    pub room_name: RoomName,
    pub status: PlacedStatus,
    /// The answer of an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
}

/// Outbound call placement.
#[derive(Debug, Clone)]
pub struct OutboundCalls {
    ports: OutboundCallsPorts,
    room_prefix: String,
    /// How long a request whose key another request is dialling waits for that one's outcome.
    replay_wait: Duration,
    /// The dial lease's time to live: how soon a retry takes over a call whose first request
    /// died.
    lease_ttl: Duration,
}

/// What a request whose key was used before gets.
enum Replay {
    /// The first request's answer.
    Answer(PlacedCall),
    /// The first request died with the call still `dialing`: this request holds the call's
    /// dial lease now and finishes it.
    TakeOver(Box<OutboundCall>, Lease),
}

/// What dialling needs besides the call's identity, resolved from the request and the
/// number's connection.
struct DialPlan {
    sip: Arc<dyn SipPlatform>,
    trunk: SipTrunkId,
    provider: ProviderKind,
    agent: String,
    metadata: Option<String>,
}

/// The longest ringing timeout a request may ask for.
pub const MAX_RINGING_TIMEOUT: Duration = Duration::from_secs(120);
/// LiveKit's default ringing timeout, used when the request names none.
const DEFAULT_RINGING: Duration = Duration::from_secs(30);
/// The longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

fn field_error(field: &'static str, reason: impl Into<String>) -> Error {
    Error::new(
        ErrorCode::ValidationFailed,
        format!("{field}: {}", reason.into()),
    )
}

impl OutboundCalls {
    pub fn new(ports: OutboundCallsPorts, room_prefix: impl Into<String>) -> Self {
        Self {
            ports,
            room_prefix: room_prefix.into(),
            replay_wait: MAX_RINGING_TIMEOUT + Duration::from_secs(15),
            lease_ttl: super::LEASE_TTL,
        }
    }

    /// The dial lease's time to live (the server's lease setting).
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    fn sip(&self) -> Result<&Arc<dyn SipPlatform>, Error> {
        self.ports.sip.as_ref().ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                "outbound calls need LiveKit, which is not configured on this server",
            )
        })
    }

    /// Place a call (see the module documentation for the order of steps).
    ///
    /// # Errors
    /// `VALIDATION_FAILED` for a bad field, `NOT_CONNECTED` / `OUTBOUND_NOT_ENABLED` for a
    /// `from` that may not call, `CONFLICT` for an idempotency key reused with another request,
    /// `RATE_LIMITED` (with `retry_after`), the SIP failure codes, and provider failures.
    pub async fn place(&self, customer: &CustomerId, req: PlaceCall) -> Result<PlacedCall, Error> {
        let from = req
            .from
            .clone()
            .ok_or_else(|| field_error("from", "required: the E.164 number to call from"))?;
        let to = req
            .to
            .clone()
            .ok_or_else(|| field_error("to", "required: the E.164 number to call"))?;
        if from == to {
            return Err(field_error("to", "must differ from `from`"));
        }
        if let Some(t) = req.ringing_timeout
            && (t.is_zero() || t > MAX_RINGING_TIMEOUT)
        {
            return Err(field_error(
                "ringingTimeoutSecs",
                format!("must be 1 to {}", MAX_RINGING_TIMEOUT.as_secs()),
            ));
        }
        if let Some(key) = &req.idempotency_key
            && (key.is_empty()
                || key.len() > MAX_IDEMPOTENCY_KEY
                || key.chars().any(|c| !c.is_ascii_graphic()))
        {
            return Err(field_error(
                "Idempotency-Key",
                format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            ));
        }
        RoutingPolicy::new(RoutingPolicyParts {
            agent_name: req.agent_name.clone(),
            metadata: req.metadata.clone(),
            attributes: req.attributes.clone(),
            ..RoutingPolicyParts::default()
        })
        .map_err(|e| {
            Error::new(
                ErrorCode::ValidationFailed,
                e.to_string().replace("routing.", ""),
            )
        })?;
        let sip = self.sip()?.clone();

        // 1. May this customer call from this number?
        let conn = self
            .ports
            .connections
            .find_live_connection_by_e164(&from)
            .await?
            .filter(|c| &c.customer_id == customer)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotConnected,
                    format!(
                        "from: {} is not a number this customer connected with trunkline",
                        from.masked()
                    ),
                )
            })?;
        let not_outbound = || {
            Error::new(
                ErrorCode::OutboundNotEnabled,
                format!(
                    "from: {} is connected for inbound calls only; connect it again with \
                     \"outbound\": true",
                    from.masked()
                ),
            )
        };
        let number = self
            .ports
            .outbound
            .get_outbound_number(conn.id)
            .await?
            .ok_or_else(not_outbound)?;
        let trunk: SipTrunkId = self
            .ports
            .outbound
            .get_outbound_route(customer, conn.provider, &number.route_id)
            .await?
            .and_then(|r| r.livekit_trunk_id)
            .ok_or_else(not_outbound)?;
        let agent = req
            .agent_name
            .clone()
            .or_else(|| conn.routing.agent_name().map(str::to_owned))
            .ok_or_else(|| {
                field_error(
                    "agentName",
                    "required: this number's routing names no agent to answer its calls",
                )
            })?;
        let metadata = req
            .metadata
            .clone()
            .or_else(|| conn.routing.metadata().map(str::to_owned));

        let plan = DialPlan {
            sip,
            trunk,
            provider: conn.provider,
            agent,
            metadata,
        };

        // 2. Reserve the call (and its idempotency key).
        let call_id = CallId::new();
        let room = RoomName::parse(&format!(
            "{}out_{}",
            self.room_prefix,
            call_id.as_uuid().simple()
        ))
        .map_err(|e| Error::internal(format!("room name: {e}")))?;
        let now = Utc::now();
        let reservation = OutboundCall {
            call_id,
            room_name: room.clone(),
            customer_id: customer.clone(),
            connection_id: conn.id,
            from: from.clone(),
            to: to.clone(),
            idempotency_key: req.idempotency_key.clone(),
            request_digest: digest(&req, &plan.agent),
            state: OutboundCallState::Dialing,
            failure: None,
            created_at: now,
            updated_at: now,
        };
        if let OutboundCallInsert::Existing(first) = self
            .ports
            .outbound
            .insert_outbound_call(&reservation)
            .await?
        {
            if first.request_digest != reservation.request_digest {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    "Idempotency-Key: this key was used with a different request; use a new \
                     key for a new call",
                ));
            }
            return self.answer_for_key(*first, &req, &plan).await;
        }
        // Only a request with a key can be retried, so only such a call needs its lease.
        let lease = if req.idempotency_key.is_some() {
            let key = dial_lease_key(customer, plan.provider, call_id);
            let lease = self
                .ports
                .leases
                .try_acquire_lease(&key, &lease_holder(), self.lease_ttl)
                .await?;
            if lease.is_none() {
                // A retry took the call over already (this request was slower than the
                // lease's time between its reservation and here): it is that one's now.
                return self.answer_for_key(reservation, &req, &plan).await;
            }
            lease
        } else {
            None
        };
        let work = self.first_attempt(&reservation, &req, &plan);
        match &lease {
            Some(lease) => {
                let result = self.holding(lease, work).await;
                self.release(lease).await;
                result
            }
            None => work.await,
        }
    }

    /// A request for a call another request of the same key reserved: that one's answer, or
    /// the call taken over and finished under its dial lease.
    async fn answer_for_key(
        &self,
        first: OutboundCall,
        req: &PlaceCall,
        plan: &DialPlan,
    ) -> Result<PlacedCall, Error> {
        match self.replay(first, plan.provider).await? {
            Replay::Answer(placed) => Ok(placed),
            Replay::TakeOver(first, lease) => {
                let result = self
                    .holding(&lease, self.take_over(&first, req, plan))
                    .await;
                self.release(&lease).await;
                result
            }
        }
    }

    /// Steps 3 to 5 for a call just reserved.
    async fn first_attempt(
        &self,
        reservation: &OutboundCall,
        req: &PlaceCall,
        plan: &DialPlan,
    ) -> Result<PlacedCall, Error> {
        let call_id = reservation.call_id;
        // 3. The number's rate, shared by every instance.
        if let Err(e) = self
            .take_rate(&reservation.customer_id, plan.provider, &reservation.from)
            .await
        {
            // Withdrawn, so that the client's retry with the same key places the call.
            self.ports.outbound.delete_outbound_call(call_id).await?;
            return Err(e);
        }

        // 4. The call record, then the agent through the inbound claim machinery.
        let record = self
            .ports
            .call_store
            .upsert_call(&new_record(reservation, &plan.agent))
            .await?;
        self.dispatch(&record, plan).await?;

        // 5. Dial.
        self.dial(&record, req, plan, false).await
    }

    /// Finish a call whose first request died: its record and the agent as in step 4, then
    /// dial unless LiveKit has the call's participant in its room already (the first request
    /// dialled, and its answer was lost with it), or the call record shows the call went on.
    async fn take_over(
        &self,
        first: &OutboundCall,
        req: &PlaceCall,
        plan: &DialPlan,
    ) -> Result<PlacedCall, Error> {
        tracing::info!(call = %first.call_id, "outbound call: its first request died; taking it over");
        let record = match self.ports.call_store.get_call(first.call_id).await? {
            Some(r) => r,
            None => {
                self.ports
                    .call_store
                    .upsert_call(&new_record(first, &plan.agent))
                    .await?
            }
        };
        if record.status != CallStatus::Ringing || record.sip_call_id.is_some() {
            // LiveKit's webhooks saw the participant, or the call ended: it was dialled.
            return self
                .adopt(
                    &record,
                    record.sip_call_id.clone(),
                    record.answered_at.is_some(),
                )
                .await;
        }
        self.dispatch(&record, plan).await?;
        let identity = participant_identity(first.call_id);
        match plan
            .sip
            .find_sip_participant(&record.room_name, &identity)
            .await?
        {
            Some(found) => self.adopt(&record, found.sip_call_id, found.answered).await,
            None => self.dial(&record, req, plan, true).await,
        }
    }

    /// Record a call the first request dialled as placed (it was, whatever the answer said).
    async fn adopt(
        &self,
        record: &CallRecord,
        sip_call_id: Option<String>,
        answered: bool,
    ) -> Result<PlacedCall, Error> {
        let mut update = record.clone();
        if update.sip_call_id.is_none() {
            update.sip_call_id = sip_call_id;
        }
        if answered && update.answered_at.is_none() {
            if update.status == CallStatus::Ringing {
                update.status = CallStatus::Active;
            }
            update.answered_at = Some(Utc::now());
        }
        update.updated_at = Utc::now();
        self.ports.call_store.upsert_call(&update).await?;
        self.ports
            .outbound
            .update_outbound_call(record.id, OutboundCallState::Placed, None)
            .await?;
        tracing::info!(call = %record.id, answered, "outbound call: found dialled already; not dialled again");
        Ok(PlacedCall {
            call_id: record.id,
            room_name: record.room_name.clone(),
            status: if answered {
                PlacedStatus::Answered
            } else {
                PlacedStatus::Dialing
            },
            replayed: true,
        })
    }

    async fn dispatch(&self, record: &CallRecord, plan: &DialPlan) -> Result<(), Error> {
        let dispatch = self
            .ports
            .calls
            .dispatch_outbound(record, &plan.agent, plan.metadata.clone())
            .await?;
        tracing::info!(call = %record.id, dispatch = ?dispatch_kind(&dispatch), "outbound call: agent dispatch settled");
        Ok(())
    }

    /// Step 5: `CreateSIPParticipant`, and the outcome recorded.
    async fn dial(
        &self,
        record: &CallRecord,
        req: &PlaceCall,
        plan: &DialPlan,
        replayed: bool,
    ) -> Result<PlacedCall, Error> {
        let call_id = record.id;
        let room = record.room_name.clone();
        let (Some(from), Some(to)) = (record.caller.clone(), record.called.clone()) else {
            return Err(Error::internal(
                "an outbound call record without its numbers",
            ));
        };
        let request = SipCallRequest {
            trunk_id: plan.trunk.clone(),
            from,
            to: to.clone(),
            room: room.clone(),
            participant_identity: participant_identity(call_id),
            attributes: req.attributes.clone(),
            metadata: req.metadata.clone(),
            wait_until_answered: req.wait_until_answered,
            ringing_timeout: Some(req.ringing_timeout.unwrap_or(DEFAULT_RINGING)),
        };
        match plan.sip.create_sip_participant(&request).await {
            Ok(info) => {
                let answered = req.wait_until_answered;
                let mut update = record.clone();
                update.sip_call_id = Some(info.sip_call_id);
                if answered {
                    update.status = CallStatus::Active;
                    update.answered_at = Some(Utc::now());
                }
                update.updated_at = Utc::now();
                self.ports.call_store.upsert_call(&update).await?;
                self.ports
                    .outbound
                    .update_outbound_call(call_id, OutboundCallState::Placed, None)
                    .await?;
                tracing::info!(call = %call_id, to = %mask_phone(to.as_str()), answered, "outbound call placed");
                Ok(PlacedCall {
                    call_id,
                    room_name: room,
                    status: if answered {
                        PlacedStatus::Answered
                    } else {
                        PlacedStatus::Dialing
                    },
                    replayed,
                })
            }
            Err(e) => {
                let error = Error::from(e);
                // Ends the record and cancels a dispatch still due; an agent already in the
                // room leaves when LiveKit closes the empty room.
                self.ports.call_store.end_call(&room, Utc::now()).await?;
                self.ports
                    .outbound
                    .update_outbound_call(
                        call_id,
                        OutboundCallState::Failed,
                        Some(failure_of(&error)),
                    )
                    .await?;
                tracing::info!(call = %call_id, code = %error.code, "outbound call failed");
                Err(error)
            }
        }
    }

    /// Run `work` while keeping the dial lease alive, so that a call that rings long is not
    /// taken over while its first request still works.
    async fn holding<T>(
        &self,
        lease: &Lease,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        super::lease::keep_alive(&*self.ports.leases, lease, self.lease_ttl, work).await
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self.ports.leases.release_lease(lease).await {
            // It expires by itself; a failed release only delays a retry's takeover.
            tracing::warn!(error = %e, "could not release the dial lease; it will expire");
        }
    }

    /// The answer of the first request with this key: waited for while the first is still
    /// dialling, its error again when it failed. When the first request's dial lease has run
    /// out with the call still `dialing` (its instance died), this request takes the lease
    /// and the call over.
    async fn replay(&self, first: OutboundCall, provider: ProviderKind) -> Result<Replay, Error> {
        let started = tokio::time::Instant::now();
        let mut current = first;
        let mut delay = Duration::from_millis(50);
        let grace = chrono::Duration::from_std(self.lease_ttl).unwrap_or(chrono::Duration::MAX);
        while current.state == OutboundCallState::Dialing && started.elapsed() < self.replay_wait {
            // The first request takes its lease right after its reservation: once a lease's
            // time has passed since, a free lease means that request is gone.
            if Utc::now() - current.created_at > grace {
                let key = dial_lease_key(&current.customer_id, provider, current.call_id);
                if let Some(lease) = self
                    .ports
                    .leases
                    .try_acquire_lease(&key, &lease_holder(), self.lease_ttl)
                    .await?
                {
                    // Read again under the lease: the first may have finished just before it
                    // let the lease go.
                    match self
                        .ports
                        .outbound
                        .get_outbound_call(current.call_id)
                        .await?
                    {
                        Some(c) if c.state == OutboundCallState::Dialing => {
                            return Ok(Replay::TakeOver(Box::new(c), lease));
                        }
                        Some(c) => {
                            self.release(&lease).await;
                            current = c;
                            break;
                        }
                        None => {
                            self.release(&lease).await;
                            return Err(withdrawn());
                        }
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            match self
                .ports
                .outbound
                .get_outbound_call(current.call_id)
                .await?
            {
                Some(c) => current = c,
                // The first request was refused by the rate limit and withdrew its call.
                None => return Err(withdrawn()),
            }
        }
        match current.state {
            OutboundCallState::Failed => Err(replayed_failure(current.failure.as_deref())),
            state => {
                let answered = self
                    .ports
                    .call_store
                    .get_call(current.call_id)
                    .await?
                    .is_some_and(|c| c.answered_at.is_some());
                Ok(Replay::Answer(PlacedCall {
                    call_id: current.call_id,
                    room_name: current.room_name,
                    status: if state == OutboundCallState::Placed && answered {
                        PlacedStatus::Answered
                    } else {
                        PlacedStatus::Dialing
                    },
                    replayed: true,
                }))
            }
        }
    }

    /// Hold the number's rate: one call per `1 / rate` seconds, across instances, with a
    /// lease nobody releases (it expires by itself).
    async fn take_rate(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        from: &E164,
    ) -> Result<(), Error> {
        let per_second = self
            .ports
            .carriers
            .get(&provider)
            .map_or(1, |c| c.termination_calls_per_second())
            .max(1);
        let interval = Duration::from_secs(1) / per_second;
        let key = LeaseKey::trunk(
            customer.clone(),
            provider,
            &format!("outbound-rate:{}", from.as_str()),
        );
        let holder = format!("call-{}", uuid::Uuid::new_v4().simple());
        match self
            .ports
            .leases
            .try_acquire_lease(&key, &holder, interval)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(Error {
                retry_after: Some(Duration::from_secs(1)),
                ..Error::new(
                    ErrorCode::RateLimited,
                    format!(
                        "from: {} may place {per_second} call(s) per second at {provider}; \
                         retry in 1 s",
                        from.masked()
                    ),
                )
            }),
        }
    }
}

fn dispatch_kind(d: &super::DispatchOutcome) -> &'static str {
    match d {
        super::DispatchOutcome::Dispatched { .. } => "dispatched",
        super::DispatchOutcome::AlreadyDispatched { .. } => "already_dispatched",
        super::DispatchOutcome::Failed { .. } => "failed_will_retry",
        _ => "other",
    }
}

/// The answer for a key whose first request withdrew its call (refused by the rate limit).
fn withdrawn() -> Error {
    replayed_failure(Some(
        "RATE_LIMITED: the number's call rate was reached; retry in 1 s",
    ))
}

/// The lease a call's request holds while it works on the call.
fn dial_lease_key(customer: &CustomerId, provider: ProviderKind, call: CallId) -> LeaseKey {
    LeaseKey::trunk(
        customer.clone(),
        provider,
        &format!("outbound-call:{}", call.as_uuid().simple()),
    )
}

fn lease_holder() -> String {
    format!("call-{}", uuid::Uuid::new_v4().simple())
}

/// The call's SIP participant: fixed by the call id, so that a retry finds the participant
/// the first request created.
fn participant_identity(call: CallId) -> String {
    format!("sip-out-{}", call.as_uuid().simple())
}

/// The record of a call just reserved: ringing, its dispatch due before anything else
/// happens (if this instance dies now, the background retrier still dispatches).
fn new_record(call: &OutboundCall, agent: &str) -> CallRecord {
    CallRecord {
        id: call.call_id,
        room_name: call.room_name.clone(),
        customer_id: Some(call.customer_id.clone()),
        connection_id: Some(call.connection_id),
        sip_call_id: None,
        called: Some(call.to.clone()),
        caller: Some(call.from.clone()),
        status: CallStatus::Ringing,
        dispatch_status: DispatchStatus::Failed,
        dispatch_id: None,
        dispatch_attempts: 0,
        agent_name: Some(agent.to_owned()),
        started_at: call.created_at,
        answered_at: None,
        ended_at: None,
        updated_at: call.created_at,
    }
}

/// `CODE: message`, as stored for a failed call.
fn failure_of(e: &Error) -> String {
    format!("{}: {}", e.code, e.message)
}

/// The stored failure of the first request, as an error again.
fn replayed_failure(failure: Option<&str>) -> Error {
    let (code, message) = failure.and_then(|f| f.split_once(": ")).unwrap_or((
        "PROVIDER_UNAVAILABLE",
        "the first request with this key failed",
    ));
    let code = ErrorCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(ErrorCode::ProviderUnavailable);
    let mut e = Error::new(code, message);
    if code == ErrorCode::RateLimited {
        e.retry_after = Some(Duration::from_secs(1));
    }
    e
}

/// What the idempotency key stands for: the request's fields (and the agent it resolved to).
fn digest(req: &PlaceCall, agent: &str) -> String {
    let canonical = serde_json::json!({
        "from": req.from.as_ref().map(E164::as_str),
        "to": req.to.as_ref().map(E164::as_str),
        "agent": agent,
        "metadata": req.metadata,
        "attributes": req.attributes,
        "wait": req.wait_until_answered,
        "ringing": req.ringing_timeout.map(|d| d.as_secs()),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_failures_keep_their_code() {
        let e = replayed_failure(Some("CALL_BUSY: the callee is busy (SIP 486 Busy Here)"));
        assert_eq!(e.code, ErrorCode::CallBusy);
        assert!(e.message.contains("486"));
        let e = replayed_failure(Some("RATE_LIMITED: slow down"));
        assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(replayed_failure(None).code, ErrorCode::ProviderUnavailable);
    }

    #[test]
    fn digests_tell_requests_apart() {
        let a = PlaceCall {
            from: E164::parse("+14155550100").ok(),
            to: E164::parse("+14155550199").ok(),
            ..PlaceCall::default()
        };
        let b = PlaceCall {
            to: E164::parse("+14155550198").ok(),
            ..a.clone()
        };
        assert_eq!(digest(&a, "agent"), digest(&a.clone(), "agent"));
        assert_ne!(digest(&a, "agent"), digest(&b, "agent"));
        assert_ne!(digest(&a, "agent"), digest(&a, "other"));
    }
}
