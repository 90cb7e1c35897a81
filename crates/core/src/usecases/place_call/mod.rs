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

mod dial;
mod replay;

use dial::new_record;
use replay::{digest, replayed_failure};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::calls::Calls;
use crate::error::{Error, ErrorCode};
use crate::ids::{CallId, CustomerId, ProviderKind, RoomName, SipTrunkId};
use crate::model::{Lease, LeaseKey, RoutingPolicy, RoutingPolicyParts};
use crate::phone::E164;
use crate::ports::{
    CallStore, CarrierProvider, ConnectionStore, LeaseStore, OutboundCall, OutboundCallInsert,
    OutboundCallState, OutboundStore, SipPlatform,
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

/// `CODE: message`, as stored for a failed call.
fn failure_of(e: &Error) -> String {
    format!("{}: {}", e.code, e.message)
}
