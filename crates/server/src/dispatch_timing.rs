//! `trunkline_time_to_dispatch_seconds`: how long a caller waited for the agent, from the
//! webhook's receipt to LiveKit's answer that settled the dispatch.
//!
//! The webhook handler knows when the delivery arrived; only the LiveKit adapter knows when
//! LiveKit answered. [`TimedSip`] wraps the adapter the call use cases see and notes the
//! instant of every `CreateDispatch` / `ListDispatch` answer in a task-local slot that
//! [`timed`] opens around one delivery; the handler then records the histogram with the
//! dispatch's outcome. Work outside a delivery (the background retrier) has no slot and is
//! not timed: it has no receipt to measure from.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use trunkline_core::ports::{
    DispatchRuleInfo, DispatchRuleSpec, InboundTrunkInfo, InboundTrunkSpec, OutboundTrunkInfo,
    OutboundTrunkSpec, ProviderError, SipCallInfo, SipCallRequest, SipParticipantState,
    SipPlatform, WebhookError, WebhookEvent,
};
use trunkline_core::usecases::{DispatchOutcome, WebhookOutcome};
use trunkline_core::{AgentDispatchId, DispatchRuleId, E164, RoomName, SipTrunkId};

use crate::telemetry::TIME_TO_DISPATCH;

tokio::task_local! {
    static ANSWERED: Cell<Option<Instant>>;
}

fn note_answer() {
    // Outside a delivery there is no slot: nothing to note.
    let _ = ANSWERED.try_with(|slot| slot.set(Some(Instant::now())));
}

/// Run one delivery's handling; returns its result and the instant LiveKit last answered a
/// dispatch request during it.
pub async fn timed<F: Future>(work: F) -> (F::Output, Option<Instant>) {
    ANSWERED
        .scope(Cell::new(None), async move {
            let out = work.await;
            (out, ANSWERED.with(Cell::get))
        })
        .await
}

/// The outcome label of a dispatch this delivery attempted (a closed set), `None` when it
/// attempted none.
pub fn outcome_label(outcome: &WebhookOutcome) -> Option<&'static str> {
    let WebhookOutcome::CallRecorded { dispatch, .. } = outcome else {
        return None;
    };
    match dispatch {
        DispatchOutcome::Dispatched {
            recovered: false, ..
        } => Some("dispatched"),
        DispatchOutcome::Dispatched {
            recovered: true, ..
        } => Some("recovered"),
        DispatchOutcome::Failed { gave_up: false, .. } => Some("failed"),
        DispatchOutcome::Failed { gave_up: true, .. } => Some("gave_up"),
        _ => None,
    }
}

/// Record the histogram for one delivery received at `received`.
pub fn record(received: Instant, answered: Option<Instant>, outcome: &WebhookOutcome) {
    if let (Some(answered), Some(label)) = (answered, outcome_label(outcome)) {
        metrics::histogram!(TIME_TO_DISPATCH, "outcome" => label)
            .record(answered.saturating_duration_since(received).as_secs_f64());
    }
}

/// The LiveKit adapter, noting when dispatch requests are answered (see the module).
pub struct TimedSip(pub Arc<dyn SipPlatform>);

impl std::fmt::Debug for TimedSip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimedSip")
    }
}

#[async_trait]
impl SipPlatform for TimedSip {
    async fn ensure_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        self.0.ensure_inbound_trunk(spec, existing).await
    }

    async fn ensure_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
        existing: Option<DispatchRuleId>,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        self.0.ensure_dispatch_rule(spec, existing).await
    }

    async fn create_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        self.0.create_inbound_trunk(spec).await
    }

    async fn create_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        self.0.create_dispatch_rule(spec).await
    }

    async fn inbound_trunks_for_number(
        &self,
        number: &E164,
    ) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
        self.0.inbound_trunks_for_number(number).await
    }

    async fn get_inbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<InboundTrunkInfo>, ProviderError> {
        self.0.get_inbound_trunk(id).await
    }

    async fn get_dispatch_rule(
        &self,
        id: &DispatchRuleId,
    ) -> Result<Option<DispatchRuleInfo>, ProviderError> {
        self.0.get_dispatch_rule(id).await
    }

    async fn list_inbound_trunks(&self) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
        self.0.list_inbound_trunks().await
    }

    async fn list_dispatch_rules(&self) -> Result<Vec<DispatchRuleInfo>, ProviderError> {
        self.0.list_dispatch_rules().await
    }

    async fn delete_inbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError> {
        self.0.delete_inbound_trunk(id).await
    }

    async fn delete_dispatch_rule(&self, id: &DispatchRuleId) -> Result<(), ProviderError> {
        self.0.delete_dispatch_rule(id).await
    }

    async fn dispatch_agent(
        &self,
        room: &RoomName,
        agent_name: &str,
        metadata: Option<String>,
    ) -> Result<AgentDispatchId, ProviderError> {
        let answer = self.0.dispatch_agent(room, agent_name, metadata).await;
        note_answer();
        answer
    }

    async fn list_agent_dispatches(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(AgentDispatchId, String)>, ProviderError> {
        let answer = self.0.list_agent_dispatches(room).await;
        // The list settles the dispatch when it finds the agent (or fails): noted too; a
        // `CreateDispatch` that follows notes its own, later answer.
        note_answer();
        answer
    }

    fn verify_webhook(
        &self,
        body: &[u8],
        authorization: &str,
    ) -> Result<WebhookEvent, WebhookError> {
        self.0.verify_webhook(body, authorization)
    }

    // The outbound half is forwarded too: a wrapper that left these to the trait's defaults
    // would answer "not supported" for an adapter that supports them.
    async fn ensure_outbound_trunk(
        &self,
        spec: &OutboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<OutboundTrunkInfo, ProviderError> {
        self.0.ensure_outbound_trunk(spec, existing).await
    }

    async fn get_outbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<OutboundTrunkInfo>, ProviderError> {
        self.0.get_outbound_trunk(id).await
    }

    async fn list_outbound_trunks(&self) -> Result<Vec<OutboundTrunkInfo>, ProviderError> {
        self.0.list_outbound_trunks().await
    }

    async fn delete_outbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError> {
        self.0.delete_outbound_trunk(id).await
    }

    async fn create_sip_participant(
        &self,
        request: &SipCallRequest,
    ) -> Result<SipCallInfo, ProviderError> {
        self.0.create_sip_participant(request).await
    }

    async fn find_sip_participant(
        &self,
        room: &RoomName,
        identity: &str,
    ) -> Result<Option<SipParticipantState>, ProviderError> {
        self.0.find_sip_participant(room, identity).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_inside_a_delivery_is_noted_and_outside_it_is_not() {
        note_answer(); // no slot: must not panic
        let before = Instant::now();
        let ((), answered) = timed(async { note_answer() }).await;
        assert!(answered.is_some_and(|a| a >= before));
        let ((), none) = timed(async {}).await;
        assert_eq!(none, None);
    }
}
