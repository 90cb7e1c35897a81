//! Calls: LiveKit webhooks in, call records and exactly one agent dispatch out.
//!
//! A webhook is verified against its exact raw body, deduplicated on its event id, and, when
//! it is about a SIP call, turns into a call record. The agent of a routed call is dispatched
//! exactly once, whatever the number of deliveries, their order or the number of instances:
//! the store's claim lets one worker at a time dispatch, a completed dispatch is never claimed
//! again, and before dispatching the worker asks LiveKit whether the agent is already in the
//! room (a worker that died between dispatching and recording it must not cause a second
//! dispatch). A dispatch that fails is recorded as failed and picked up again by
//! [`Calls::retry_due_dispatches`], with backoff, until it succeeds or gives up.
//!
//! A call that ended is never dispatched. LiveKit does not keep its webhooks in order, so
//! the end (`participant_left`, `room_finished`) may be acted on before the join: the end
//! cancels a dispatch that is due, and the store's claim refuses a call that ended or whose
//! room finished, in the same statement that would have claimed it (so a retrier on another
//! instance that listed the call before the hang-up cannot dispatch it either).
//!
//! Which events need no action (acknowledged without touching the database): everything but
//! `participant_joined` and `participant_left` of a SIP participant and `room_finished`. In
//! particular `room_started` carries nothing about the call that `participant_joined` does
//! not, and joins and leaves of agents and other non-SIP participants are not calls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorCode};
use crate::ids::{AgentDispatchId, CallId, ConnectionId, CustomerId, RoomName, WebhookEventId};
use crate::model::{
    CallRecord, CallStatus, DispatchClaim, DispatchMode, DispatchStatus, NumberConnection,
};
use crate::phone::{E164, mask_phone};
use crate::ports::{
    CallStore, ClaimRequest, ConnectionStore, JoinRecorded, ProviderError, SipParticipant,
    SipPlatform, WebhookError, WebhookEvent, WebhookEventRecord, WebhookKind,
};
use crate::usecases::live_connections::{CalledNumber, LIVE_CONNECTION_TTL, LiveConnections};

/// Settings of the call use cases (from configuration).
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// This instance's name, recorded as the holder of the dispatch claims it takes.
    pub instance_id: String,
    /// How long a dispatch claim lives: longer than listing and dispatching take, so a live
    /// holder never loses it; after it a dead holder's claim is taken over.
    pub claim_ttl: Duration,
    /// Attempts before a dispatch is given up (and logged loudly for a human).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            instance_id: format!("trunkline-{}", uuid::Uuid::new_v4()),
            claim_ttl: Duration::from_secs(60),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl CallSettings {
    /// How long after its `attempts`-th failure a dispatch is due again.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

/// The ports the call use cases need.
#[derive(Clone)]
pub struct CallsPorts {
    pub calls: Arc<dyn CallStore>,
    pub connections: Arc<dyn ConnectionStore>,
    /// `None` when LiveKit is not configured: webhooks cannot be verified and are refused.
    pub sip: Option<Arc<dyn SipPlatform>>,
}

impl std::fmt::Debug for CallsPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallsPorts")
            .field("sip", &self.sip.is_some())
            .finish_non_exhaustive()
    }
}

/// Who reads call diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallViewer {
    /// A customer sees its own calls only; another customer's are "not found".
    Customer(CustomerId),
    /// Support staff see every call, unrouted ones included.
    Support,
}

impl CallViewer {
    fn may_see(&self, call: &CallRecord) -> bool {
        match self {
            Self::Support => true,
            Self::Customer(c) => call.customer_id.as_ref() == Some(c),
        }
    }
}

/// What happened to a call's agent dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    /// Dispatched now. `recovered`: the agent was already in the room (a worker died
    /// between dispatching and recording it) and only the record was completed.
    Dispatched {
        dispatch_id: AgentDispatchId,
        recovered: bool,
    },
    /// Dispatched before, by anyone.
    AlreadyDispatched { dispatch_id: AgentDispatchId },
    /// Another worker holds the claim (or the dispatch was given up); nothing to do now.
    InProgressElsewhere,
    /// The LiveKit dispatch rule dispatches the agent (dispatch mode `rule`).
    ByRule,
    /// The number's routing names no agent.
    NoAgent,
    /// Nobody connected the called number.
    Unrouted,
    /// Recorded, to be dispatched (by the background retrier).
    Pending,
    /// The call ended before its agent was dispatched: nothing is dispatched.
    Cancelled,
    /// This attempt failed; the background retrier tries again unless `gave_up`.
    Failed {
        attempt: u32,
        gave_up: bool,
        error: ProviderError,
    },
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// Verified; nothing for trunkline to do (nothing stored).
    Ignored { event: String },
    /// This event id was handled before and its work is done.
    Duplicate { event_id: WebhookEventId },
    /// The SIP participant joined: the call is recorded and its dispatch settled.
    CallRecorded {
        call: CallRecord,
        dispatch: DispatchOutcome,
    },
    /// The call ended (`None`: the room was not a call trunkline knows).
    CallEnded { call: Option<CallRecord> },
}

/// Outcome counts of one [`Calls::retry_due_dispatches`] pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryReport {
    /// Due calls looked at.
    pub due: usize,
    /// Still backing off: left for a later pass.
    pub waiting: usize,
    /// Attempts made (claims won).
    pub attempted: usize,
    pub dispatched: usize,
    pub failed: usize,
    pub gave_up: usize,
}

/// The number's recent activity, for status.
#[derive(Debug, Clone, PartialEq)]
pub struct CallActivity {
    /// Newest first.
    pub recent_calls: Vec<CallRecord>,
    /// The last webhook seen for the number's most recent call.
    pub last_webhook: Option<WebhookEventRecord>,
}

/// LiveKit webhooks, call records, agent dispatch and call diagnostics.
#[derive(Debug, Clone)]
pub struct Calls {
    ports: CallsPorts,
    settings: CallSettings,
    /// Live connections by called number, for the webhook path.
    live: Arc<LiveConnections>,
}

/// What a SIP webhook says about its call.
struct CallFacts<'a> {
    room: &'a RoomName,
    at: DateTime<Utc>,
    sip: &'a SipParticipant,
}

impl Calls {
    /// With a cache of live connections of its own: changes made through other handles of
    /// the connection store reach the webhook path within [`LIVE_CONNECTION_TTL`].
    pub fn new(ports: CallsPorts, settings: CallSettings) -> Self {
        let live = Arc::new(LiveConnections::new(
            ports.connections.clone(),
            LIVE_CONNECTION_TTL,
        ));
        Self::with_live_connections(ports, settings, live)
    }

    /// Sharing `live` with the use cases that connect and disconnect numbers (give them
    /// `live` as their connection store), so that their changes reach the webhook path at
    /// once.
    pub fn with_live_connections(
        ports: CallsPorts,
        settings: CallSettings,
        live: Arc<LiveConnections>,
    ) -> Self {
        Self {
            ports,
            settings,
            live,
        }
    }

    pub fn settings(&self) -> &CallSettings {
        &self.settings
    }

    fn sip(&self) -> Result<&Arc<dyn SipPlatform>, Error> {
        self.ports.sip.as_ref().ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                "LiveKit is not configured on this server",
            )
        })
    }

    /// Handle one webhook delivery: `body` exactly as received, `authorization` the header
    /// value.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` when the signature does not verify (nothing is stored; the reason
    /// is logged), `VALIDATION_FAILED` for a signed body that is not an event,
    /// `NOT_CONFIGURED` without LiveKit, and store failures (answered with a 5xx, so LiveKit
    /// delivers again and the work resumes).
    pub async fn handle_webhook(
        &self,
        body: &[u8],
        authorization: &str,
    ) -> Result<WebhookOutcome, Error> {
        let sip = self.sip()?;
        let event = sip
            .verify_webhook(body, authorization)
            .map_err(|e| refused(&e))?;
        let at = event.created_at.unwrap_or_else(Utc::now);
        let (room, participant) = match (&event.kind, &event.room) {
            (
                WebhookKind::ParticipantJoined { sip: Some(p) }
                | WebhookKind::ParticipantLeft { sip: Some(p) },
                Some(room),
            ) => (room, Some(p)),
            (WebhookKind::RoomFinished, Some(room)) => (room, None),
            _ => {
                tracing::debug!(event = %event.name, id = %event.id, "webhook needs no action");
                return Ok(WebhookOutcome::Ignored { event: event.name });
            }
        };
        let record = WebhookEventRecord {
            id: event.id.clone(),
            kind: event.name.clone(),
            room_name: Some(room.clone()),
            received_at: Utc::now(),
        };
        match (&event.kind, participant) {
            (WebhookKind::ParticipantJoined { .. }, Some(p)) => {
                let facts = CallFacts { room, at, sip: p };
                self.call_joined(&event, &record, &facts).await
            }
            (_, p) => {
                let first = self.ports.calls.record_webhook_event(&record).await?;
                if !first {
                    // Done when the call is ended, or when there is no call and this is not
                    // a SIP participant's leave (which would have recorded one).
                    let done = match self.ports.calls.get_call_by_room(room).await? {
                        Some(call) => call.ended_at.is_some(),
                        None => p.is_none(),
                    };
                    if done {
                        return Ok(duplicate(&event));
                    }
                }
                let facts = p.map(|sip| CallFacts { room, at, sip });
                self.call_ended(room, at, facts.as_ref()).await
            }
        }
    }

    /// Build the call record a SIP participant's webhook describes: routed to the live
    /// connection of the called number, or unrouted.
    async fn describe_call(
        &self,
        facts: &CallFacts<'_>,
    ) -> Result<(CallRecord, Option<NumberConnection>), Error> {
        // The called number is parsed only when its connection is not in memory; the
        // caller's once.
        let CalledNumber {
            number: to_number,
            connection,
        } = match facts.sip.called_number.as_deref() {
            Some(raw) => self.live.live_for_called(raw).await?,
            None => CalledNumber {
                number: None,
                connection: None,
            },
        };
        let from_number = facts
            .sip
            .caller_number
            .as_deref()
            .and_then(|n| E164::parse(n).ok());
        let mut call = CallRecord {
            id: CallId::new(),
            room_name: facts.room.clone(),
            customer_id: None,
            connection_id: None,
            sip_call_id: facts.sip.sip_call_id.clone(),
            called: to_number,
            caller: from_number,
            status: CallStatus::Active,
            dispatch_status: DispatchStatus::None,
            dispatch_id: None,
            dispatch_attempts: 0,
            agent_name: None,
            started_at: facts.at,
            answered_at: Some(facts.at),
            ended_at: None,
            updated_at: Utc::now(),
        };
        match &connection {
            None => {
                call.status = CallStatus::Unrouted;
                call.answered_at = None;
            }
            Some(conn) => {
                call.customer_id = Some(conn.customer_id.clone());
                call.connection_id = Some(conn.id);
                call.agent_name.clone_from(&conn.routing.agent_name);
                call.dispatch_status = match (conn.routing.dispatch_mode, &conn.routing.agent_name)
                {
                    (DispatchMode::Rule, _) => DispatchStatus::ByRule,
                    (DispatchMode::Webhook, None) => DispatchStatus::None,
                    // Written as due before anything else happens: if this instance dies
                    // before claiming, the background retrier still dispatches.
                    (DispatchMode::Webhook, Some(_)) => DispatchStatus::Failed,
                };
            }
        }
        Ok((call, connection))
    }

    async fn call_joined(
        &self,
        event: &WebhookEvent,
        record: &WebhookEventRecord,
        facts: &CallFacts<'_>,
    ) -> Result<WebhookOutcome, Error> {
        let (call, connection) = self.describe_call(facts).await?;
        let agent = connection
            .as_ref()
            .and_then(|c| match c.routing.dispatch_mode {
                DispatchMode::Webhook => c.routing.agent_name.clone(),
                DispatchMode::Rule => None,
            });
        // The event, the call and the claim of its dispatch are written in one step.
        let claim = agent.as_ref().map(|_| ClaimRequest {
            claimant: self.settings.instance_id.clone(),
            ttl: self.settings.claim_ttl,
        });
        let (call, claim) = match self.ports.calls.record_join(record, &call, claim).await? {
            // The first delivery recorded the call; a dispatch it did not finish is due for
            // the background retrier.
            JoinRecorded::Duplicate => return Ok(duplicate(event)),
            JoinRecorded::Recorded { call, claim } => (*call, claim),
        };
        let dispatch = match (&connection, agent, claim) {
            (None, _, _) => {
                // Expected now and then (a number released, a catch-all trunk): not an error.
                tracing::info!(
                    room = %loggable(facts.room.as_str()),
                    called = %facts.sip.called_number.as_deref().map(mask_phone).unwrap_or_default(),
                    "call to a number no connection routes; recorded as unrouted"
                );
                DispatchOutcome::Unrouted
            }
            (Some(conn), Some(agent), Some(claim)) => {
                let (dispatch, recorded) = self
                    .dispatch_claimed(&call, &agent, conn.routing.metadata.clone(), claim)
                    .await?;
                // Not recorded by this attempt: somebody else's work decided the stored state,
                // which `record_join` returned as it was after the claim.
                let call = recorded.unwrap_or(call);
                // The claim was refused because the call had ended (its end was acted on
                // first): say so rather than "in progress elsewhere".
                let dispatch = match dispatch {
                    DispatchOutcome::InProgressElsewhere
                        if call.dispatch_status == DispatchStatus::Cancelled =>
                    {
                        tracing::info!(
                            room = %loggable(facts.room.as_str()),
                            "the call ended before its join was acted on; no agent dispatched"
                        );
                        DispatchOutcome::Cancelled
                    }
                    other => other,
                };
                return Ok(WebhookOutcome::CallRecorded { call, dispatch });
            }
            (Some(conn), _, _) if conn.routing.dispatch_mode == DispatchMode::Rule => {
                DispatchOutcome::ByRule
            }
            (Some(conn), _, _) => {
                tracing::info!(room = %loggable(facts.room.as_str()), connection = %conn.id, "no agent to dispatch");
                DispatchOutcome::NoAgent
            }
        };
        // Unrouted, by rule or without an agent: the upsert's answer is the stored call.
        Ok(WebhookOutcome::CallRecorded { call, dispatch })
    }

    async fn call_ended(
        &self,
        room: &RoomName,
        at: DateTime<Utc>,
        facts: Option<&CallFacts<'_>>,
    ) -> Result<WebhookOutcome, Error> {
        if let Some(call) = self.ports.calls.end_call(room, at).await? {
            return Ok(WebhookOutcome::CallEnded { call: Some(call) });
        }
        let Some(facts) = facts else {
            // `room_finished` of a room that is not a call trunkline knows.
            return Ok(WebhookOutcome::CallEnded { call: None });
        };
        // The SIP participant left before its join was seen (deliveries reorder): record
        // the call, ended, exactly as the join would have; a dispatch it needs is due for
        // the join's handler or the background retrier.
        let (mut call, _) = self.describe_call(facts).await?;
        if call.status != CallStatus::Unrouted {
            call.status = CallStatus::Ended;
        }
        // The call is over before its agent could join: nothing is due.
        if call.dispatch_status == DispatchStatus::Failed {
            call.dispatch_status = DispatchStatus::Cancelled;
        }
        // When it was answered is the join's to say: the store fills a missing answer time
        // when the join arrives, but never replaces one, so the leave's time here would
        // make every reordered call last zero seconds.
        call.answered_at = None;
        call.ended_at = Some(at);
        let call = self.ports.calls.upsert_call(&call).await?;
        let call = self.ports.calls.end_call(room, at).await?.unwrap_or(call);
        Ok(WebhookOutcome::CallEnded { call: Some(call) })
    }

    /// Claim the call's dispatch, then one attempt under the claim (the background retrier's
    /// way; a webhook claims together with recording the call).
    async fn dispatch(
        &self,
        call: &CallRecord,
        agent: &str,
        metadata: Option<String>,
    ) -> Result<DispatchOutcome, Error> {
        let claim = self
            .ports
            .calls
            .claim_dispatch(
                &call.room_name,
                &self.settings.instance_id,
                self.settings.claim_ttl,
            )
            .await?;
        Ok(self.dispatch_claimed(call, agent, metadata, claim).await?.0)
    }

    /// An outbound call's agent, dispatched under the same claim as an inbound call's.
    pub(super) async fn dispatch_outbound(
        &self,
        call: &CallRecord,
        agent: &str,
        metadata: Option<String>,
    ) -> Result<DispatchOutcome, Error> {
        self.dispatch(call, agent, metadata).await
    }

    /// One dispatch attempt, when `claim` was won; plus the call as it is now stored when
    /// this attempt recorded the dispatch itself (so the webhook's answer needs no
    /// read-back), `None` otherwise.
    async fn dispatch_claimed(
        &self,
        call: &CallRecord,
        agent: &str,
        metadata: Option<String>,
        claim: DispatchClaim,
    ) -> Result<(DispatchOutcome, Option<CallRecord>), Error> {
        let room = &call.room_name;
        let attempt = match claim {
            DispatchClaim::Won { attempt } => attempt,
            DispatchClaim::AlreadyDispatched { dispatch_id } => {
                return Ok((DispatchOutcome::AlreadyDispatched { dispatch_id }, None));
            }
            DispatchClaim::HeldByOther => return Ok((DispatchOutcome::InProgressElsewhere, None)),
            DispatchClaim::NoSuchCall => {
                return Err(Error::internal(format!("no call record for room {room}")));
            }
        };
        let sip = self.sip()?;
        // Before dispatching, and again when a dispatch's answer may have been lost: the
        // agent may already be in the room.
        match find_dispatch(&**sip, room, agent).await {
            Ok(Some(found)) => return self.complete(call, attempt, found, true).await,
            Ok(None) => {}
            Err(e) => return self.failed(call, attempt, e).await,
        }
        if attempt > self.settings.max_attempts {
            let e = ProviderError::unavailable("retries exhausted");
            return self.failed(call, attempt, e).await;
        }
        match sip.dispatch_agent(room, agent, metadata).await {
            Ok(id) => self.complete(call, attempt, id, false).await,
            Err(e) if e.is_transient() => match find_dispatch(&**sip, room, agent).await {
                Ok(Some(found)) => self.complete(call, attempt, found, true).await,
                _ => self.failed(call, attempt, e).await,
            },
            Err(e) => self.failed(call, attempt, e).await,
        }
    }

    async fn complete(
        &self,
        call: &CallRecord,
        attempt: u32,
        dispatch_id: AgentDispatchId,
        recovered: bool,
    ) -> Result<(DispatchOutcome, Option<CallRecord>), Error> {
        let room = &call.room_name;
        let me = self.settings.instance_id.as_str();
        let mut recorded = None;
        if self
            .ports
            .calls
            .complete_dispatch(room, me, &dispatch_id)
            .await?
        {
            tracing::info!(room = %loggable(room.as_str()), dispatch = %dispatch_id, recovered, "agent dispatched");
            // What `complete_dispatch` wrote under this attempt's claim.
            recorded = Some(CallRecord {
                dispatch_status: DispatchStatus::Dispatched,
                dispatch_id: Some(dispatch_id.clone()),
                dispatch_attempts: attempt,
                updated_at: Utc::now(),
                ..call.clone()
            });
        } else {
            // The claim ran out while dispatching (claim_ttl too short for LiveKit's answer
            // times). Whoever holds it now finds this dispatch in the room and records it.
            tracing::warn!(
                room = %loggable(room.as_str()),
                dispatch = %dispatch_id,
                "dispatched, but the claim was lost before recording it; claim_ttl may be too short"
            );
        }
        Ok((
            DispatchOutcome::Dispatched {
                dispatch_id,
                recovered,
            },
            recorded,
        ))
    }

    /// Record a failed attempt; plus the call as stored after it (what was written, or read
    /// back when the call's end or another worker decided it).
    async fn failed(
        &self,
        call: &CallRecord,
        attempt: u32,
        error: ProviderError,
    ) -> Result<(DispatchOutcome, Option<CallRecord>), Error> {
        let gave_up = attempt >= self.settings.max_attempts;
        let me = self.settings.instance_id.as_str();
        let recorded = self
            .ports
            .calls
            .fail_dispatch(&call.room_name, me, gave_up)
            .await?;
        if !recorded {
            // The call ended during the attempt (its dispatch is cancelled), or the claim
            // ran out: either way this worker schedules nothing.
            tracing::info!(
                room = %loggable(call.room_name.as_str()),
                call = %call.id,
                attempt,
                code = %error.code,
                "agent dispatch failed after the call ended or the claim was lost; not retried by this worker"
            );
        } else if gave_up {
            tracing::error!(
                room = %loggable(call.room_name.as_str()),
                call = %call.id,
                customer = ?call.customer_id,
                attempts = attempt,
                code = %error.code,
                error = %error.message,
                "GAVE UP dispatching the agent: the call needs a human"
            );
        } else {
            tracing::warn!(
                room = %loggable(call.room_name.as_str()),
                call = %call.id,
                attempt,
                code = %error.code,
                error = %error.message,
                "agent dispatch failed; it will be retried"
            );
        }
        let stored = if recorded {
            Some(CallRecord {
                dispatch_status: if gave_up {
                    DispatchStatus::GaveUp
                } else {
                    DispatchStatus::Failed
                },
                dispatch_attempts: attempt,
                updated_at: Utc::now(),
                ..call.clone()
            })
        } else {
            self.ports.calls.get_call_by_room(&call.room_name).await?
        };
        Ok((
            DispatchOutcome::Failed {
                attempt,
                gave_up,
                error,
            },
            stored,
        ))
    }

    /// Retry the dispatches that are due: failed ones whose backoff has passed and claims
    /// whose holder died. What a background loop calls every few seconds, on every instance
    /// (the claim keeps them from dispatching twice).
    ///
    /// # Errors
    /// Store failures; a failed dispatch is not an error (it is counted and retried).
    pub async fn retry_due_dispatches(&self, limit: u32) -> Result<RetryReport, Error> {
        let due = self.ports.calls.dispatches_due(limit).await?;
        let now = Utc::now();
        let mut report = RetryReport {
            due: due.len(),
            ..RetryReport::default()
        };
        for call in due {
            if call.dispatch_status == DispatchStatus::Failed {
                let wait = self.settings.backoff(call.dispatch_attempts.max(1));
                let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                if call
                    .updated_at
                    .checked_add_signed(wait)
                    .is_none_or(|due_at| due_at > now)
                {
                    report.waiting += 1;
                    continue;
                }
            }
            let (agent, metadata) = self.routing_of(&call).await?;
            let Some(agent) = agent else {
                tracing::error!(room = %loggable(call.room_name.as_str()), call = %call.id, "a due dispatch names no agent");
                continue;
            };
            match self.dispatch(&call, &agent, metadata).await? {
                DispatchOutcome::Dispatched { .. } => {
                    report.attempted += 1;
                    report.dispatched += 1;
                }
                DispatchOutcome::Failed { gave_up, .. } => {
                    report.attempted += 1;
                    report.failed += 1;
                    report.gave_up += usize::from(gave_up);
                }
                _ => {}
            }
        }
        Ok(report)
    }

    /// The agent and metadata to dispatch for a recorded call: the agent recorded with the
    /// call, the metadata of its connection's routing.
    async fn routing_of(
        &self,
        call: &CallRecord,
    ) -> Result<(Option<String>, Option<String>), Error> {
        let connection = match call.connection_id {
            Some(id) => self.ports.connections.get_connection_by_id(id).await?,
            None => None,
        };
        let agent = call.agent_name.clone().or_else(|| {
            connection
                .as_ref()
                .and_then(|c| c.routing.agent_name.clone())
        });
        Ok((agent, connection.and_then(|c| c.routing.metadata)))
    }

    // --- diagnostics --------------------------------------------------------------------

    fn not_found() -> Error {
        Error::new(ErrorCode::NotFound, "no such call")
    }

    /// One call, if `viewer` may see it (another customer's is "not found").
    pub async fn get_call(&self, viewer: &CallViewer, id: CallId) -> Result<CallRecord, Error> {
        self.ports
            .calls
            .get_call(id)
            .await?
            .filter(|c| viewer.may_see(c))
            .ok_or_else(Self::not_found)
    }

    /// The call of a LiveKit room, if `viewer` may see it.
    pub async fn get_call_by_room(
        &self,
        viewer: &CallViewer,
        room: &RoomName,
    ) -> Result<CallRecord, Error> {
        self.ports
            .calls
            .get_call_by_room(room)
            .await?
            .filter(|c| viewer.may_see(c))
            .ok_or_else(Self::not_found)
    }

    /// A connection's most recent calls, newest first, if `viewer` may see the connection.
    pub async fn recent_calls(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<Vec<CallRecord>, Error> {
        self.visible_connection(viewer, connection).await?;
        Ok(self.ports.calls.recent_calls(connection, limit).await?)
    }

    /// Recent calls and the last webhook seen, for a number's status.
    pub async fn activity(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<CallActivity, Error> {
        let recent_calls = self.recent_calls(viewer, connection, limit).await?;
        let last_webhook = match recent_calls.first() {
            Some(call) => self.ports.calls.last_webhook_event(&call.room_name).await?,
            None => None,
        };
        Ok(CallActivity {
            recent_calls,
            last_webhook,
        })
    }

    async fn visible_connection(
        &self,
        viewer: &CallViewer,
        connection: ConnectionId,
    ) -> Result<NumberConnection, Error> {
        self.ports
            .connections
            .get_connection_by_id(connection)
            .await?
            .filter(|c| match viewer {
                CallViewer::Support => true,
                CallViewer::Customer(id) => &c.customer_id == id,
            })
            .ok_or_else(|| Error::new(ErrorCode::NotFound, "no such connection"))
    }
}

/// A room name fit for logs. LiveKit names a call's room after the caller
/// (`call-_+14155550199_…`), and phone numbers are personal data: every run of 7 or more
/// digits is masked.
fn loggable(room: &str) -> String {
    let mut out = String::with_capacity(room.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.chars().filter(char::is_ascii_digit).count();
        out.push_str(&if digits >= 7 {
            mask_phone(run)
        } else {
            run.clone()
        });
        run.clear();
    };
    for c in room.chars() {
        if c.is_ascii_digit() || (c == '+' && run.is_empty()) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn duplicate(event: &WebhookEvent) -> WebhookOutcome {
    tracing::debug!(id = %event.id, event = %event.name, "duplicate webhook delivery");
    WebhookOutcome::Duplicate {
        event_id: event.id.clone(),
    }
}

/// A refused webhook: logged with its reason (which never holds the token or secret),
/// answered without detail.
fn refused(e: &WebhookError) -> Error {
    match e {
        WebhookError::Malformed(reason) => {
            tracing::warn!(reason = %reason, "signed LiveKit webhook is not a usable event");
            Error::new(
                ErrorCode::ValidationFailed,
                "the webhook body is not a LiveKit event",
            )
        }
        other => {
            tracing::warn!(reason = %other, "refused a LiveKit webhook");
            Error::new(
                ErrorCode::Unauthenticated,
                "invalid LiveKit webhook signature",
            )
        }
    }
}

/// The room's dispatch of `agent`, if LiveKit has one.
async fn find_dispatch(
    sip: &dyn SipPlatform,
    room: &RoomName,
    agent: &str,
) -> Result<Option<AgentDispatchId>, ProviderError> {
    Ok(sip
        .list_agent_dispatches(room)
        .await?
        .into_iter()
        .find(|(_, name)| name == agent)
        .map(|(id, _)| id))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::ids::{CarrierNumberId, IntegrationId, ProviderKind};
    use crate::model::{ConnectionStatus, RoutingPolicy, TrunkStrategy};
    use crate::sip::SipTarget;
    use crate::usecases::fakes::FakeStore;
    use crate::usecases::fakes::calls::{FakeCallStore, FakeSip};

    const CALLED: &str = "+14155550100";
    const CALLER: &str = "+14155550199";

    struct World {
        calls: Calls,
        store: FakeCallStore,
        connections: FakeStore,
        sip: FakeSip,
    }

    fn settings() -> CallSettings {
        CallSettings {
            instance_id: "test-instance".to_owned(),
            max_attempts: 3,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(30),
            ..CallSettings::default()
        }
    }

    fn world_with(routing: Option<RoutingPolicy>) -> World {
        let store = FakeCallStore::default();
        let connections = FakeStore::default();
        let sip = FakeSip::default();
        if let Some(routing) = routing {
            let now = Utc::now();
            connections
                .connections
                .lock()
                .unwrap()
                .push(NumberConnection {
                    id: ConnectionId::new(),
                    customer_id: CustomerId::parse("acme").unwrap(),
                    provider: ProviderKind::Twilio,
                    integration_id: IntegrationId::new(),
                    number_id: CarrierNumberId::parse(&format!("PN{:032x}", 1)).unwrap(),
                    e164: E164::parse(CALLED).unwrap(),
                    status: ConnectionStatus::Connected,
                    trunk_strategy: TrunkStrategy::Shared,
                    route_id: None,
                    route_created: false,
                    route_targets: Vec::new(),
                    sip_target: SipTarget::parse("sip:lk.example").unwrap(),
                    routing,
                    previous_routing: None,
                    livekit_trunk_id: None,
                    livekit_rule_id: None,
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                    connected_at: Some(now),
                    disconnected_at: None,
                });
        }
        let ports = CallsPorts {
            calls: Arc::new(store.clone()),
            connections: Arc::new(connections.clone()),
            sip: Some(Arc::new(sip.clone())),
        };
        World {
            calls: Calls::new(ports, settings()),
            store,
            connections,
            sip,
        }
    }

    fn webhook_mode() -> RoutingPolicy {
        RoutingPolicy {
            agent_name: Some("support-agent".to_owned()),
            metadata: Some(r#"{"tier":"gold"}"#.to_owned()),
            attributes: BTreeMap::new(),
            dispatch_mode: DispatchMode::Webhook,
        }
    }

    fn world() -> World {
        world_with(Some(webhook_mode()))
    }

    fn body(id: &str, event: &str, room: &str, sip: bool, at: i64) -> Vec<u8> {
        let mut v = json!({ "id": id, "event": event, "room": room, "createdAt": at });
        if sip {
            v["kind"] = json!("SIP");
            v["called"] = json!(CALLED);
            v["caller"] = json!(CALLER);
            v["callId"] = json!("SCL_1");
        }
        v.to_string().into_bytes()
    }

    /// The four webhooks of one call, as (body, authorization).
    fn call_events(room: &str) -> Vec<(Vec<u8>, String)> {
        let t0 = 1_767_225_600;
        [
            body(&format!("EV_{room}_1"), "room_started", room, false, t0),
            body(
                &format!("EV_{room}_2"),
                "participant_joined",
                room,
                true,
                t0 + 1,
            ),
            body(
                &format!("EV_{room}_3"),
                "participant_left",
                room,
                true,
                t0 + 61,
            ),
            body(
                &format!("EV_{room}_4"),
                "room_finished",
                room,
                false,
                t0 + 62,
            ),
        ]
        .into_iter()
        .map(|b| {
            let auth = FakeSip::sign(&b);
            (b, auth)
        })
        .collect()
    }

    impl World {
        async fn deliver(&self, (body, auth): &(Vec<u8>, String)) -> WebhookOutcome {
            self.calls.handle_webhook(body, auth).await.unwrap()
        }

        fn call(&self, room: &str) -> CallRecord {
            self.store.state().calls.get(room).unwrap().call.clone()
        }
    }

    #[tokio::test]
    async fn the_called_numbers_connection_is_looked_up_once_per_instance() {
        let w = world();
        let first = call_events("call-cache");
        let second = call_events("call-cache-2");
        assert!(matches!(
            w.deliver(&first[1]).await,
            WebhookOutcome::CallRecorded { .. }
        ));
        assert!(matches!(
            w.deliver(&first[1]).await,
            WebhookOutcome::Duplicate { .. }
        ));
        assert!(matches!(
            w.deliver(&second[1]).await,
            WebhookOutcome::CallRecorded { .. }
        ));
        assert_eq!(
            w.connections
                .live_lookups
                .load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the duplicate and the next call are routed from memory"
        );
    }

    #[tokio::test]
    async fn a_call_is_recorded_and_its_agent_dispatched_once() {
        let w = world();
        let events = call_events("call-a");
        assert!(matches!(
            w.deliver(&events[0]).await,
            WebhookOutcome::Ignored { .. }
        ));
        assert_eq!(w.store.total_touches(), 0, "room_started needs no database");

        let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
            panic!("not recorded");
        };
        let DispatchOutcome::Dispatched {
            dispatch_id,
            recovered: false,
        } = dispatch
        else {
            panic!("{dispatch:?}");
        };
        assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
        assert_eq!(call.dispatch_id.as_ref(), Some(&dispatch_id));
        assert_eq!(call.dispatch_attempts, 1);
        assert_eq!(call.status, CallStatus::Active);
        assert_eq!(
            call.customer_id.as_ref().map(CustomerId::as_str),
            Some("acme")
        );
        assert_eq!(call.called.as_ref().map(E164::as_str), Some(CALLED));
        assert_eq!(call.caller.as_ref().map(E164::as_str), Some(CALLER));
        assert_eq!(call.sip_call_id.as_deref(), Some("SCL_1"));
        // The answer is the stored call, known without reading it back.
        let stored = w.call("call-a");
        assert_eq!(
            CallRecord {
                updated_at: stored.updated_at,
                ..call.clone()
            },
            stored
        );
        assert_eq!(w.store.state().touches.get("get_call_by_room"), None);
        {
            let sip = w.sip.state();
            assert_eq!(sip.dispatches.len(), 1);
            let (room, _, agent, metadata) = &sip.dispatches[0];
            assert_eq!((room.as_str(), agent.as_str()), ("call-a", "support-agent"));
            assert_eq!(metadata.as_deref(), Some(r#"{"tier":"gold"}"#));
        }

        w.deliver(&events[2]).await;
        w.deliver(&events[3]).await;
        let call = w.call("call-a");
        assert_eq!(call.status, CallStatus::Ended);
        assert_eq!(call.duration(), Some(Duration::from_secs(60)));
        assert_eq!(w.sip.dispatches_in("call-a"), 1);
    }

    #[tokio::test]
    async fn every_duplicate_in_any_order_still_dispatches_once() {
        let w = world();
        let events = call_events("call-b");
        // Each event three times, the join before the call's end.
        for i in [1, 2, 1, 3, 2, 0, 3, 1, 0, 2, 3, 0] {
            w.deliver(&events[i]).await;
        }
        assert_eq!(w.sip.dispatches_in("call-b"), 1);
        let call = w.call("call-b");
        assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
        assert_eq!(call.status, CallStatus::Ended);
        assert!(call.ended_at.is_some() && call.customer_id.is_some() && call.called.is_some());
        assert_eq!(call.duration(), Some(Duration::from_secs(60)));
        assert_eq!(
            w.store.state().events.len(),
            3,
            "room_started is not stored"
        );
    }

    /// LiveKit does not keep its webhooks in order: the end of a call can come before its
    /// join. Whatever the order, a join acted on after the end dispatches nothing, and the
    /// background retrier finds nothing due.
    #[tokio::test]
    async fn a_call_that_ended_before_its_join_is_acted_on_is_never_dispatched() {
        // (left, finished, join), (finished, join, left), (finished, left, join), each
        // event of the end delivered twice.
        for (n, order) in [[2, 3, 1, 2, 3], [3, 1, 2, 3, 2], [3, 2, 1, 3, 2]]
            .into_iter()
            .enumerate()
        {
            let w = world();
            let name = format!("call-ended-first-{n}");
            let room = RoomName::parse(&name).unwrap();
            let events = call_events(&name);
            for i in order {
                let out = w.deliver(&events[i]).await;
                if i == 1 {
                    let WebhookOutcome::CallRecorded { call, dispatch } = out else {
                        panic!("{order:?}: {out:?}");
                    };
                    assert_eq!(dispatch, DispatchOutcome::Cancelled, "{order:?}");
                    assert_eq!(
                        (call.status, call.dispatch_status, call.dispatch_attempts),
                        (CallStatus::Ended, DispatchStatus::Cancelled, 0),
                        "{order:?}: the answer"
                    );
                }
                if let Some(stored) = w.store.state().calls.get(name.as_str()) {
                    assert_ne!(
                        (stored.call.dispatch_status, stored.call.dispatch_attempts),
                        (DispatchStatus::Failed, 0),
                        "{order:?}: never `failed` without an attempt"
                    );
                }
                // The retrier runs between any two deliveries, long after any backoff.
                w.store.age(&room, chrono::Duration::minutes(5));
                let report = w.calls.retry_due_dispatches(10).await.unwrap();
                assert_eq!(report.attempted, 0, "{order:?}: {report:?}");
            }
            let call = w.call(&name);
            assert_eq!(
                (call.status, call.dispatch_status, call.dispatch_attempts),
                (CallStatus::Ended, DispatchStatus::Cancelled, 0),
                "{order:?}"
            );
            assert!(call.customer_id.is_some() && call.ended_at.is_some());
            assert_eq!(w.sip.state().dispatch_calls, 0, "{order:?}");
            assert_eq!(w.sip.dispatches_in(&name), 0, "{order:?}");
        }

        // The leave first, the join last: the answer time is still the join's.
        let w = world();
        let events = call_events("call-left-first");
        for i in [2, 1] {
            w.deliver(&events[i]).await;
        }
        assert_eq!(
            w.call("call-left-first").duration(),
            Some(Duration::from_secs(60))
        );
    }

    #[tokio::test]
    async fn a_hang_up_after_a_failed_dispatch_cancels_its_retries() {
        let w = world();
        w.sip.state().fail_dispatches = 1;
        let events = call_events("call-hung-up");
        let room = RoomName::parse("call-hung-up").unwrap();
        let WebhookOutcome::CallRecorded { dispatch, .. } = w.deliver(&events[1]).await else {
            panic!()
        };
        assert!(
            matches!(dispatch, DispatchOutcome::Failed { attempt: 1, .. }),
            "{dispatch:?}"
        );
        for i in [2, 3] {
            w.deliver(&events[i]).await;
        }
        let call = w.call("call-hung-up");
        assert_eq!(
            (call.status, call.dispatch_status, call.dispatch_attempts),
            (CallStatus::Ended, DispatchStatus::Cancelled, 1)
        );
        w.store.age(&room, chrono::Duration::minutes(5));
        assert_eq!(
            w.calls.retry_due_dispatches(10).await.unwrap(),
            RetryReport::default()
        );
        assert_eq!(w.sip.state().dispatch_calls, 1, "only the join's attempt");
        assert_eq!(w.sip.dispatches_in("call-hung-up"), 0);
        assert_eq!(
            w.call("call-hung-up").dispatch_status,
            DispatchStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn duplicates_are_recognised_by_event_id() {
        let w = world();
        let events = call_events("call-c");
        w.deliver(&events[1]).await;
        let touches = w.store.total_touches();
        match w.deliver(&events[1]).await {
            WebhookOutcome::Duplicate { event_id } => assert_eq!(event_id.as_str(), "EV_call-c_2"),
            other => panic!("{other:?}"),
        }
        // One insert that says "seen" and one read that says the call exists.
        assert_eq!(w.store.total_touches(), touches + 2);
        assert_eq!(w.sip.state().dispatch_calls, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_deliveries_of_the_same_event_dispatch_once() {
        for round in 0..20 {
            let w = world();
            let room = format!("call-race-{round}");
            let joined = call_events(&room).swap_remove(1);
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let calls = w.calls.clone();
                    let (body, auth) = joined.clone();
                    tokio::spawn(async move { calls.handle_webhook(&body, &auth).await.unwrap() })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
            assert_eq!(w.sip.dispatches_in(&room), 1, "round {round}");
            assert_eq!(w.call(&room).dispatch_status, DispatchStatus::Dispatched);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_sharing_a_store_dispatch_once() {
        let w = world();
        // Three instances: the same store and LiveKit, their own names.
        let instances: Vec<Calls> = (0..3)
            .map(|i| {
                let mut s = settings();
                s.instance_id = format!("instance-{i}");
                Calls::new(w.calls.ports.clone(), s)
            })
            .collect();
        let mut tasks = Vec::new();
        for n in 0..30 {
            let room = format!("call-{n}");
            for (k, event) in call_events(&room).into_iter().enumerate() {
                for copy in 0..3 {
                    let calls = instances[(k + copy) % 3].clone();
                    let event = event.clone();
                    tasks.push(tokio::spawn(async move {
                        calls.handle_webhook(&event.0, &event.1).await.unwrap()
                    }));
                }
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        // A call whose end was acted on before its join is never dispatched; every other
        // one exactly once, and the record says which.
        let mut dispatched = 0;
        for n in 0..30 {
            let room = format!("call-{n}");
            let call = w.call(&room);
            assert_eq!(call.status, CallStatus::Ended, "{room}");
            let expected = match call.dispatch_status {
                DispatchStatus::Dispatched => 1,
                DispatchStatus::Cancelled => 0,
                other => panic!("{room}: {other:?}"),
            };
            assert_eq!(w.sip.dispatches_in(&room), expected, "{room}");
            dispatched += expected;
        }
        assert_eq!(w.sip.state().dispatches.len(), dispatched);
    }

    #[tokio::test]
    async fn a_failed_dispatch_is_retried_with_backoff_and_succeeds_once() {
        let w = world();
        w.sip.state().fail_dispatches = 2;
        let events = call_events("call-d");
        let WebhookOutcome::CallRecorded { dispatch, call } = w.deliver(&events[1]).await else {
            panic!()
        };
        assert!(
            matches!(
                dispatch,
                DispatchOutcome::Failed {
                    attempt: 1,
                    gave_up: false,
                    ..
                }
            ),
            "{dispatch:?}"
        );
        assert_eq!(call.dispatch_status, DispatchStatus::Failed);

        // Not due before its backoff.
        let report = w.calls.retry_due_dispatches(10).await.unwrap();
        assert_eq!((report.due, report.waiting, report.attempted), (1, 1, 0));

        let room = RoomName::parse("call-d").unwrap();
        w.store.age(&room, chrono::Duration::seconds(3));
        let report = w.calls.retry_due_dispatches(10).await.unwrap();
        assert_eq!((report.attempted, report.failed, report.gave_up), (1, 1, 0));
        // The second failure waits twice as long.
        w.store.age(&room, chrono::Duration::seconds(3));
        assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().waiting, 1);
        w.store.age(&room, chrono::Duration::seconds(2));
        let report = w.calls.retry_due_dispatches(10).await.unwrap();
        assert_eq!((report.attempted, report.dispatched), (1, 1));

        let call = w.call("call-d");
        assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
        assert_eq!(call.dispatch_attempts, 3);
        assert_eq!(w.sip.dispatches_in("call-d"), 1);
        assert_eq!(w.sip.state().dispatch_calls, 3);
        // Nothing is due any more, and a late duplicate changes nothing.
        assert_eq!(
            w.calls.retry_due_dispatches(10).await.unwrap(),
            RetryReport::default()
        );
        w.deliver(&events[1]).await;
        assert_eq!(w.sip.state().dispatch_calls, 3);
    }

    #[tokio::test]
    async fn retries_stop_at_max_attempts_and_give_up() {
        let w = world();
        w.sip.state().fail_dispatches = 10;
        w.deliver(&call_events("call-e")[1]).await;
        let room = RoomName::parse("call-e").unwrap();
        for _ in 0..5 {
            w.store.age(&room, chrono::Duration::minutes(5));
            w.calls.retry_due_dispatches(10).await.unwrap();
        }
        let call = w.call("call-e");
        assert_eq!(call.dispatch_status, DispatchStatus::GaveUp);
        assert_eq!(call.dispatch_attempts, 3, "max_attempts");
        assert_eq!(w.sip.state().dispatch_calls, 3);
        assert!(w.sip.state().dispatches.is_empty());
    }

    #[tokio::test]
    async fn a_dispatch_whose_answer_was_lost_is_not_repeated() {
        let w = world();
        w.sip.state().lose_dispatch_answers = 1;
        let WebhookOutcome::CallRecorded { dispatch, .. } =
            w.deliver(&call_events("call-f")[1]).await
        else {
            panic!()
        };
        assert!(
            matches!(
                dispatch,
                DispatchOutcome::Dispatched {
                    recovered: true,
                    ..
                }
            ),
            "{dispatch:?}"
        );
        assert_eq!(w.sip.dispatches_in("call-f"), 1);
        assert_eq!(w.call("call-f").dispatch_status, DispatchStatus::Dispatched);
    }

    #[tokio::test]
    async fn a_worker_that_died_after_dispatching_is_not_followed_by_a_second_dispatch() {
        let w = world();
        let room = RoomName::parse("call-g").unwrap();
        // The worker dispatched, then died before recording it: its claim is still there.
        w.sip.state().fail_lists = 1;
        w.deliver(&call_events("call-g")[1]).await;
        assert_eq!(w.call("call-g").dispatch_status, DispatchStatus::Failed);
        w.sip
            .dispatch_agent(&room, "support-agent", None)
            .await
            .unwrap();
        w.store.age(&room, chrono::Duration::minutes(1));
        let report = w.calls.retry_due_dispatches(10).await.unwrap();
        assert_eq!(report.dispatched, 1);
        assert_eq!(
            w.sip.dispatches_in("call-g"),
            1,
            "found in the room, not dispatched again"
        );
        assert_eq!(w.call("call-g").dispatch_status, DispatchStatus::Dispatched);

        // An expired claim (its holder died) is taken over without waiting for backoff.
        let w = world();
        w.deliver(&call_events("call-h")[0]).await;
        w.sip.state().fail_dispatches = 1;
        w.deliver(&call_events("call-h")[1]).await;
        let room = RoomName::parse("call-h").unwrap();
        let won = w
            .store
            .claim_dispatch(&room, "dead-worker", Duration::from_millis(1))
            .await;
        assert!(matches!(won, Ok(DispatchClaim::Won { .. })), "{won:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let report = w.calls.retry_due_dispatches(10).await.unwrap();
        assert_eq!(report.dispatched, 1);
        assert_eq!(w.sip.dispatches_in("call-h"), 1);
    }

    #[tokio::test]
    async fn rule_mode_records_the_call_and_never_dispatches() {
        let w = world_with(Some(RoutingPolicy {
            dispatch_mode: DispatchMode::Rule,
            ..webhook_mode()
        }));
        let events = call_events("call-i");
        let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
            panic!()
        };
        assert_eq!(dispatch, DispatchOutcome::ByRule);
        assert_eq!(call.dispatch_status, DispatchStatus::ByRule);
        assert_eq!(call.agent_name.as_deref(), Some("support-agent"));
        for e in &events {
            w.deliver(e).await;
        }
        assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);
        assert_eq!(w.sip.state().dispatch_calls, 0);
        assert_eq!(w.store.state().touches.get("claim_dispatch"), None);
    }

    #[tokio::test]
    async fn a_number_without_an_agent_is_recorded_without_dispatch() {
        let w = world_with(Some(RoutingPolicy {
            agent_name: None,
            ..webhook_mode()
        }));
        let WebhookOutcome::CallRecorded { call, dispatch } =
            w.deliver(&call_events("call-j")[1]).await
        else {
            panic!()
        };
        assert_eq!(dispatch, DispatchOutcome::NoAgent);
        assert_eq!(call.dispatch_status, DispatchStatus::None);
        assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);
        assert_eq!(w.sip.state().dispatch_calls, 0);
    }

    #[tokio::test]
    async fn a_call_to_a_number_nobody_connected_is_unrouted() {
        let w = world_with(None);
        let events = call_events("call-k");
        let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
            panic!()
        };
        assert_eq!(dispatch, DispatchOutcome::Unrouted);
        assert_eq!(
            (call.status, call.customer_id.clone()),
            (CallStatus::Unrouted, None)
        );
        assert_eq!(call.called.as_ref().map(E164::as_str), Some(CALLED));
        for e in &events {
            w.deliver(e).await;
        }
        let call = w.call("call-k");
        assert_eq!(
            call.status,
            CallStatus::Unrouted,
            "stays unrouted after the end"
        );
        assert!(call.ended_at.is_some());
        assert_eq!(w.sip.state().dispatch_calls, 0);
        assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);

        // Left before joined: still unrouted.
        let w = world_with(None);
        let events = call_events("call-l");
        w.deliver(&events[2]).await;
        w.deliver(&events[1]).await;
        assert_eq!(w.call("call-l").status, CallStatus::Unrouted);
    }

    #[tokio::test]
    async fn a_bad_signature_is_refused_and_nothing_is_stored() {
        let w = world();
        let (body, auth) = call_events("call-m").swap_remove(1);
        let mut tampered = body.clone();
        tampered.push(b' ');
        for (b, a) in [
            (&body, ""),
            (&body, "signed:1"),
            (&body, &format!("Bearer {auth}")),
            (&tampered, auth.as_str()),
        ] {
            let err = w.calls.handle_webhook(b, a).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::Unauthenticated, "{a}");
            assert!(!err.message.contains(a) || a.is_empty());
        }
        let garbage = b"not json".to_vec();
        let err = w
            .calls
            .handle_webhook(&garbage, &FakeSip::sign(&garbage))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(w.store.total_touches(), 0);
        assert_eq!(w.sip.state().dispatch_calls, 0);
    }

    #[tokio::test]
    async fn events_that_need_no_action_touch_nothing() {
        let w = world();
        for (event, sip) in [
            ("room_started", false),
            ("participant_joined", false),
            ("participant_left", false),
            ("track_published", false),
            ("egress_ended", false),
        ] {
            let b = body("EV_x", event, "call-n", sip, 1);
            let out = w
                .calls
                .handle_webhook(&b, &FakeSip::sign(&b))
                .await
                .unwrap();
            assert!(
                matches!(out, WebhookOutcome::Ignored { .. }),
                "{event}: {out:?}"
            );
        }
        assert_eq!(w.store.total_touches(), 0);
        // A finished room trunkline never recorded: looked up, nothing created.
        let b = body("EV_y", "room_finished", "not-a-call", false, 1);
        let out = w
            .calls
            .handle_webhook(&b, &FakeSip::sign(&b))
            .await
            .unwrap();
        assert_eq!(out, WebhookOutcome::CallEnded { call: None });
        assert!(w.store.state().calls.is_empty());
    }

    #[tokio::test]
    async fn without_livekit_webhooks_are_not_configured() {
        let w = world();
        let ports = CallsPorts {
            sip: None,
            ..w.calls.ports.clone()
        };
        let calls = Calls::new(ports, settings());
        let (b, a) = call_events("call-o").swap_remove(1);
        assert_eq!(
            calls.handle_webhook(&b, &a).await.unwrap_err().code,
            ErrorCode::NotConfigured
        );
    }

    #[tokio::test]
    async fn reads_are_scoped_to_the_customer() {
        let w = world();
        w.deliver(&call_events("call-p")[1]).await;
        let unrouted = world_with(None);
        unrouted.deliver(&call_events("call-q")[1]).await;
        let call = w.call("call-p");
        let acme = CallViewer::Customer(CustomerId::parse("acme").unwrap());
        let other = CallViewer::Customer(CustomerId::parse("globex").unwrap());
        let room = RoomName::parse("call-p").unwrap();

        assert_eq!(w.calls.get_call(&acme, call.id).await.unwrap(), call);
        assert_eq!(w.calls.get_call_by_room(&acme, &room).await.unwrap(), call);
        assert_eq!(
            w.calls
                .get_call(&CallViewer::Support, call.id)
                .await
                .unwrap(),
            call
        );
        for viewer in [&other] {
            assert_eq!(
                w.calls.get_call(viewer, call.id).await.unwrap_err().code,
                ErrorCode::NotFound
            );
            assert_eq!(
                w.calls
                    .get_call_by_room(viewer, &room)
                    .await
                    .unwrap_err()
                    .code,
                ErrorCode::NotFound
            );
        }
        assert_eq!(
            w.calls
                .get_call(&acme, CallId::new())
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );

        // Unrouted calls belong to nobody: support only.
        let q = RoomName::parse("call-q").unwrap();
        assert!(
            unrouted
                .calls
                .get_call_by_room(&CallViewer::Support, &q)
                .await
                .is_ok()
        );
        assert_eq!(
            unrouted
                .calls
                .get_call_by_room(&acme, &q)
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );

        let connection = call.connection_id.unwrap();
        let activity = w.calls.activity(&acme, connection, 10).await.unwrap();
        assert_eq!(activity.recent_calls, std::slice::from_ref(&call));
        assert_eq!(
            activity.last_webhook.map(|e| e.kind),
            Some("participant_joined".to_owned())
        );
        assert_eq!(
            w.calls
                .recent_calls(&other, connection, 10)
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        assert_eq!(
            w.calls
                .recent_calls(&CallViewer::Support, connection, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        let _ = w
            .connections
            .get_connection_by_id(connection)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn rooms_are_logged_without_the_callers_number() {
        assert_eq!(
            loggable("call-_+14155550199_AbC12"),
            "call-_+1********99_AbC12"
        );
        assert_eq!(loggable("call-7_room-123"), "call-7_room-123");
        assert_eq!(loggable("4155550199"), "4*******99");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = settings();
        let secs: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 30, 30]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(30));
    }
}
