//! Agent dispatch under the store's claim, and the retries of failed dispatches.

use chrono::Utc;

use super::{Calls, DispatchOutcome, RetryReport, loggable};
use crate::error::Error;
use crate::ids::{AgentDispatchId, RoomName};
use crate::model::{CallRecord, DispatchClaim, DispatchStatus};
use crate::ports::{ProviderError, SipPlatform};

impl Calls {
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
    pub(in crate::usecases) async fn dispatch_outbound(
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
    pub(super) async fn dispatch_claimed(
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
        // After an earlier attempt, and again when a dispatch's answer may have been lost:
        // the agent may already be in the room (that attempt's holder dispatched it, then
        // died or lost the answer). The first attempt skips the question: only a claim's
        // holder dispatches, and every claim counts an attempt, so nobody has dispatched
        // this call's agent yet. That saves the caller a LiveKit round trip.
        if attempt > 1 {
            match find_dispatch(&**sip, room, agent).await {
                Ok(Some(found)) => return self.complete(call, attempt, found, true).await,
                Ok(None) => {}
                Err(e) => return self.failed(call, attempt, e).await,
            }
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
                .and_then(|c| c.routing.agent_name().map(str::to_owned))
        });
        Ok((
            agent,
            connection.and_then(|c| c.routing.metadata().map(str::to_owned)),
        ))
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
