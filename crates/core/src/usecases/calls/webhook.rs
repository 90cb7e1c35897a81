//! Webhook intake: verify, deduplicate, and turn a SIP participant's events into a call record.

use chrono::{DateTime, Utc};

use super::{CallFacts, Calls, DispatchOutcome, WebhookOutcome, loggable};
use crate::error::{Error, ErrorCode};
use crate::ids::{CallId, RoomName};
use crate::model::{CallRecord, CallStatus, DispatchMode, DispatchStatus, NumberConnection};
use crate::phone::{E164, mask_phone};
use crate::ports::{
    ClaimRequest, JoinRecorded, WebhookError, WebhookEvent, WebhookEventRecord, WebhookKind,
};
use crate::usecases::live_connections::CalledNumber;

impl Calls {
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
                call.agent_name = conn.routing.agent_name().map(str::to_owned);
                call.dispatch_status =
                    match (conn.routing.dispatch_mode(), conn.routing.agent_name()) {
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
            .and_then(|c| match c.routing.dispatch_mode() {
                DispatchMode::Webhook => c.routing.agent_name().map(str::to_owned),
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
                    .dispatch_claimed(
                        &call,
                        &agent,
                        conn.routing.metadata().map(str::to_owned),
                        claim,
                    )
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
            (Some(conn), _, _) if conn.routing.dispatch_mode() == DispatchMode::Rule => {
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
