//! Webhook deduplication, call records and the agent-dispatch claim.
//!
//! The rules are the SQL stores' statements (`UPSERT_CALL`, `END_CALL`, `CLAIM_DISPATCH`,
//! ...) written as functions on the tables, so that `record_join` runs them under one lock
//! as SQLite runs them in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tables::StoredCall;
use super::{MemoryStore, Tables, take, until};
use crate::ids::{AgentDispatchId, CallId, ConnectionId, RoomName};
use crate::model::{CallRecord, CallStatus, DispatchClaim, DispatchStatus};
use crate::ports::{CallStore, ClaimRequest, JoinRecorded, StoreError, WebhookEventRecord};

/// The status only moves forward (`ringing` → `active` → `ended`); `unrouted` stays.
fn merge_status(stored: CallStatus, incoming: CallStatus) -> CallStatus {
    match (stored, incoming) {
        (CallStatus::Unrouted | CallStatus::Ended, _) => stored,
        (_, CallStatus::Active | CallStatus::Ended) => incoming,
        _ => stored,
    }
}

fn record_event(t: &mut Tables, event: &WebhookEventRecord) -> bool {
    if t.webhook_events.iter().any(|e| e.id == event.id) {
        return false;
    }
    t.webhook_events.push(event.clone());
    true
}

fn upsert(t: &mut Tables, call: &CallRecord) -> Result<CallRecord, StoreError> {
    let room = call.room_name.as_str();
    let Some(stored) = t.calls.get_mut(room) else {
        if t.calls.values().any(|c| c.call.id == call.id) {
            return Err(StoreError::Conflict(
                "calls: another room's call has this id".to_owned(),
            ));
        }
        t.calls.insert(
            room.to_owned(),
            StoredCall {
                call: call.clone(),
                claimant: None,
                claim_expires: None,
            },
        );
        return Ok(call.clone());
    };
    // What the stored row lacks is filled from `call`; what it has stays.
    let c = &mut stored.call;
    c.customer_id = c.customer_id.take().or_else(|| call.customer_id.clone());
    c.connection_id = c.connection_id.or(call.connection_id);
    c.sip_call_id = c.sip_call_id.take().or_else(|| call.sip_call_id.clone());
    c.called = c.called.take().or_else(|| call.called.clone());
    c.caller = c.caller.take().or_else(|| call.caller.clone());
    c.agent_name = c.agent_name.take().or_else(|| call.agent_name.clone());
    c.answered_at = c.answered_at.or(call.answered_at);
    c.ended_at = c.ended_at.or(call.ended_at);
    c.dispatch_id = c.dispatch_id.take().or_else(|| call.dispatch_id.clone());
    if c.dispatch_status == DispatchStatus::None {
        c.dispatch_status = call.dispatch_status;
    }
    c.status = merge_status(c.status, call.status);
    c.updated_at = c.updated_at.max(call.updated_at);
    Ok(c.clone())
}

fn claim(t: &mut Tables, room: &RoomName, claimant: &str, ttl: Duration) -> DispatchClaim {
    // LiveKit's `room_finished` may come before anything else of the call.
    let finished = t
        .webhook_events
        .iter()
        .filter(|e| e.kind == "room_finished" && e.room_name.as_ref() == Some(room))
        .map(|e| e.received_at)
        .min();
    let Some(stored) = t.calls.get_mut(room.as_str()) else {
        return DispatchClaim::NoSuchCall;
    };
    let now = Utc::now();
    let claimable = match stored.call.dispatch_status {
        DispatchStatus::None | DispatchStatus::Failed => true,
        // A claim without an expiry (written by `upsert_call`) counts as expired.
        DispatchStatus::Claimed => stored.claim_expires.is_none_or(|e| e <= now),
        _ => false,
    };
    if !claimable {
        return match (&stored.call.dispatch_status, &stored.call.dispatch_id) {
            (DispatchStatus::Dispatched, Some(id)) => DispatchClaim::AlreadyDispatched {
                dispatch_id: id.clone(),
            },
            _ => DispatchClaim::HeldByOther,
        };
    }
    let c = &mut stored.call;
    c.updated_at = c.updated_at.max(now);
    if let Some(ended_at) = c.ended_at.or(finished) {
        // An ended call is refused, and its dispatch cancelled, in the same step.
        c.ended_at = Some(ended_at);
        if c.status != CallStatus::Unrouted {
            c.status = CallStatus::Ended;
        }
        c.dispatch_status = DispatchStatus::Cancelled;
        stored.claimant = None;
        stored.claim_expires = None;
        return DispatchClaim::HeldByOther;
    }
    c.dispatch_status = DispatchStatus::Claimed;
    c.dispatch_attempts += 1;
    stored.claimant = Some(claimant.to_owned());
    stored.claim_expires = Some(until(now, ttl));
    DispatchClaim::Won {
        attempt: c.dispatch_attempts,
    }
}

/// The stored call of `room` whose claim `claimant` holds, in one of `statuses`.
fn held<'t>(
    t: &'t mut Tables,
    room: &RoomName,
    claimant: &str,
    statuses: &[DispatchStatus],
) -> Option<&'t mut StoredCall> {
    t.calls.get_mut(room.as_str()).filter(|s| {
        statuses.contains(&s.call.dispatch_status) && s.claimant.as_deref() == Some(claimant)
    })
}

fn release_claim(stored: &mut StoredCall, status: DispatchStatus, now: DateTime<Utc>) {
    stored.call.dispatch_status = status;
    stored.call.updated_at = now;
    stored.claimant = None;
    stored.claim_expires = None;
}

#[async_trait]
impl CallStore for MemoryStore {
    async fn record_webhook_event(&self, event: &WebhookEventRecord) -> Result<bool, StoreError> {
        let mut t = self.enter("record_webhook_event")?;
        Ok(record_event(&mut t, event))
    }

    async fn last_webhook_event(
        &self,
        room: &RoomName,
    ) -> Result<Option<WebhookEventRecord>, StoreError> {
        let t = self.enter("last_webhook_event")?;
        Ok(t.webhook_events
            .iter()
            .filter(|e| e.room_name.as_ref() == Some(room))
            .max_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)))
            .cloned())
    }

    async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError> {
        let mut t = self.enter("upsert_call")?;
        upsert(&mut t, call)
    }

    async fn end_call(
        &self,
        room: &RoomName,
        at: DateTime<Utc>,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut t = self.enter("end_call")?;
        Ok(t.calls.get_mut(room.as_str()).map(|stored| {
            let c = &mut stored.call;
            c.ended_at = c.ended_at.or(Some(at));
            if c.status != CallStatus::Unrouted {
                c.status = CallStatus::Ended;
            }
            // The claimant is kept: a worker dispatching right now may still record it.
            if matches!(
                c.dispatch_status,
                DispatchStatus::Failed | DispatchStatus::Claimed
            ) {
                c.dispatch_status = DispatchStatus::Cancelled;
            }
            c.updated_at = c.updated_at.max(Utc::now());
            c.clone()
        }))
    }

    async fn get_call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
        let t = self.enter("get_call")?;
        Ok(t.calls
            .values()
            .find(|c| c.call.id == id)
            .map(|c| c.call.clone()))
    }

    async fn get_call_by_room(&self, room: &RoomName) -> Result<Option<CallRecord>, StoreError> {
        let t = self.enter("get_call_by_room")?;
        Ok(t.calls.get(room.as_str()).map(|c| c.call.clone()))
    }

    async fn recent_calls(
        &self,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let t = self.enter("recent_calls")?;
        let mut calls: Vec<CallRecord> = t
            .calls
            .values()
            .filter(|c| c.call.connection_id == Some(connection))
            .map(|c| c.call.clone())
            .collect();
        calls.sort_by_key(|c| std::cmp::Reverse((c.started_at, c.id)));
        Ok(take(calls, limit))
    }

    async fn claim_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        ttl: Duration,
    ) -> Result<DispatchClaim, StoreError> {
        let mut t = self.enter("claim_dispatch")?;
        Ok(claim(&mut t, room, claimant, ttl))
    }

    async fn complete_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        dispatch_id: &AgentDispatchId,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("complete_dispatch")?;
        // Cancelled while this claimant was dispatching: what it did is still recorded.
        let statuses = [DispatchStatus::Claimed, DispatchStatus::Cancelled];
        let Some(stored) = held(&mut t, room, claimant, &statuses) else {
            return Ok(false);
        };
        stored.call.dispatch_id = Some(dispatch_id.clone());
        release_claim(stored, DispatchStatus::Dispatched, Utc::now());
        Ok(true)
    }

    async fn fail_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        gave_up: bool,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("fail_dispatch")?;
        let Some(stored) = held(&mut t, room, claimant, &[DispatchStatus::Claimed]) else {
            return Ok(false);
        };
        let status = if gave_up {
            DispatchStatus::GaveUp
        } else {
            DispatchStatus::Failed
        };
        release_claim(stored, status, Utc::now());
        Ok(true)
    }

    async fn dispatches_due(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let t = self.enter("dispatches_due")?;
        let now = Utc::now();
        let mut due: Vec<CallRecord> = t
            .calls
            .values()
            .filter(|c| c.call.ended_at.is_none())
            .filter(|c| match c.call.dispatch_status {
                DispatchStatus::Failed => true,
                DispatchStatus::Claimed => c.claim_expires.is_none_or(|e| e <= now),
                _ => false,
            })
            .map(|c| c.call.clone())
            .collect();
        due.sort_by_key(|c| (c.started_at, c.id));
        Ok(take(due, limit))
    }

    /// The event, the merge and the claim under one lock, as SQLite runs them in one
    /// transaction: of racing copies of one event exactly one records.
    async fn record_join(
        &self,
        event: &WebhookEventRecord,
        call: &CallRecord,
        claim_request: Option<ClaimRequest>,
    ) -> Result<JoinRecorded, StoreError> {
        let mut t = self.enter("record_join")?;
        let first = record_event(&mut t, event);
        if !first && t.calls.contains_key(call.room_name.as_str()) {
            return Ok(JoinRecorded::Duplicate);
        }
        let mut stored = upsert(&mut t, call)?;
        let outcome = claim_request.map(|c| claim(&mut t, &call.room_name, &c.claimant, c.ttl));
        // The claim's changes, or another worker's, as stored after it.
        if outcome.is_some()
            && let Some(after) = t.calls.get(call.room_name.as_str())
        {
            stored = after.call.clone();
        }
        Ok(JoinRecorded::Recorded {
            call: Box::new(stored),
            claim: outcome,
        })
    }
}
