//! Dialling a reserved call, and finishing one whose first request died.

use std::time::Duration;

use chrono::Utc;

use super::{
    DEFAULT_RINGING, DialPlan, OutboundCalls, PlaceCall, PlacedCall, PlacedStatus, failure_of,
};
use crate::error::{Error, ErrorCode};
use crate::ids::{CallId, CustomerId, ProviderKind};
use crate::model::{CallRecord, CallStatus, DispatchStatus, LeaseKey};
use crate::phone::{E164, mask_phone};
use crate::ports::{OutboundCall, OutboundCallState, SipCallRequest};

impl OutboundCalls {
    /// Finish a call whose first request died: its record and the agent as in step 4, then
    /// dial unless LiveKit has the call's participant in its room already (the first request
    /// dialled, and its answer was lost with it), or the call record shows the call went on.
    pub(super) async fn take_over(
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
    pub(super) async fn adopt(
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

    pub(super) async fn dispatch(&self, record: &CallRecord, plan: &DialPlan) -> Result<(), Error> {
        let dispatch = self
            .ports
            .calls
            .dispatch_outbound(record, &plan.agent, plan.metadata.clone())
            .await?;
        tracing::info!(call = %record.id, dispatch = ?dispatch_kind(&dispatch), "outbound call: agent dispatch settled");
        Ok(())
    }

    /// Step 5: `CreateSIPParticipant`, and the outcome recorded.
    pub(super) async fn dial(
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

    /// Hold the number's rate: one call per `1 / rate` seconds, across instances, with a
    /// lease nobody releases (it expires by itself).
    pub(super) async fn take_rate(
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

pub(super) fn dispatch_kind(d: &crate::usecases::DispatchOutcome) -> &'static str {
    match d {
        crate::usecases::DispatchOutcome::Dispatched { .. } => "dispatched",
        crate::usecases::DispatchOutcome::AlreadyDispatched { .. } => "already_dispatched",
        crate::usecases::DispatchOutcome::Failed { .. } => "failed_will_retry",
        _ => "other",
    }
}

/// The call's SIP participant: fixed by the call id, so that a retry finds the participant
/// the first request created.
pub(super) fn participant_identity(call: CallId) -> String {
    format!("sip-out-{}", call.as_uuid().simple())
}

/// The record of a call just reserved: ringing, its dispatch due before anything else
/// happens (if this instance dies now, the background retrier still dispatches).
pub(super) fn new_record(call: &OutboundCall, agent: &str) -> CallRecord {
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
