//! `trunkline_time_to_dispatch_seconds`: how long a caller waited for the agent, from the
//! webhook's receipt to LiveKit's answer that settled the dispatch; and
//! `trunkline_time_to_dispatch_livekit_seconds`: the part of it spent waiting for LiveKit's
//! answers, so that a slow agent can be told apart: trunkline's own work (the store, the
//! queue for a core) or LiveKit's.
//!
//! The webhook handler knows when the delivery arrived; only the LiveKit adapter knows when
//! LiveKit was asked and when it answered. [`TimedSip`] wraps the adapter the call use cases
//! see and notes both for every `CreateDispatch` / `ListDispatch` in a task-local slot that
//! [`timed`] opens around one delivery; the handler then records the histograms with the
//! dispatch's outcome, and a debug event (`trunkline::time_to_dispatch`) with the split. Work
//! outside a delivery (the background retrier) has no slot and is not timed: it has no
//! receipt to measure from.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use trunkline_core::ports::{
    DispatchRuleInfo, DispatchRuleSpec, InboundTrunkInfo, InboundTrunkSpec, OutboundTrunkInfo,
    OutboundTrunkSpec, ProviderError, SipCallInfo, SipCallRequest, SipParticipantState,
    SipPlatform, WebhookError, WebhookEvent,
};
use trunkline_core::usecases::{DispatchOutcome, WebhookOutcome};
use trunkline_core::{AgentDispatchId, DispatchRuleId, E164, RoomName, SipTrunkId};

use crate::telemetry::{TIME_TO_DISPATCH, TIME_TO_DISPATCH_LIVEKIT};

/// What one delivery's dispatch requests to LiveKit took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchTiming {
    /// When the first dispatch request of the delivery was sent.
    pub asked: Option<Instant>,
    /// When the last one was answered.
    pub answered: Option<Instant>,
    /// The sum of their waits.
    pub livekit: Duration,
}

tokio::task_local! {
    static TIMING: Cell<DispatchTiming>;
}

/// Run one LiveKit dispatch request, noting when it was sent and answered (outside a
/// delivery there is no slot: nothing is noted).
async fn noted<T>(request: impl Future<Output = T>) -> T {
    let asked = Instant::now();
    let answer = request.await;
    let answered = Instant::now();
    let _ = TIMING.try_with(|slot| {
        let mut t = slot.get();
        t.asked = t.asked.or(Some(asked));
        t.answered = Some(answered);
        t.livekit += answered - asked;
        slot.set(t);
    });
    answer
}

/// Run one delivery's handling; returns its result and what its dispatch requests took.
pub async fn timed<F: Future>(work: F) -> (F::Output, DispatchTiming) {
    TIMING
        .scope(Cell::new(DispatchTiming::default()), async move {
            let out = work.await;
            (out, TIMING.with(Cell::get))
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

/// Record the histograms for one delivery received at `received`.
pub fn record(received: Instant, timing: DispatchTiming, outcome: &WebhookOutcome) {
    let (Some(asked), Some(answered), Some(label)) =
        (timing.asked, timing.answered, outcome_label(outcome))
    else {
        return;
    };
    let total = answered.saturating_duration_since(received);
    metrics::histogram!(TIME_TO_DISPATCH, "outcome" => label).record(total.as_secs_f64());
    metrics::histogram!(TIME_TO_DISPATCH_LIVEKIT, "outcome" => label)
        .record(timing.livekit.as_secs_f64());
    tracing::debug!(
        target: "trunkline::time_to_dispatch",
        outcome = label,
        total_us = micros(total),
        before_livekit_us = micros(asked.saturating_duration_since(received)),
        livekit_us = micros(timing.livekit),
        "time to dispatch"
    );
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
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
        noted(self.0.dispatch_agent(room, agent_name, metadata)).await
    }

    async fn list_agent_dispatches(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(AgentDispatchId, String)>, ProviderError> {
        // The list settles the dispatch when it finds the agent (or fails): noted too; a
        // `CreateDispatch` that follows notes its own, later answer.
        noted(self.0.list_agent_dispatches(room)).await
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
    async fn requests_inside_a_delivery_are_noted_and_outside_it_are_not() {
        noted(async {}).await; // no slot: must not panic
        let before = Instant::now();
        let ((), timing) = timed(async {
            noted(tokio::time::sleep(Duration::from_millis(5))).await;
            noted(tokio::time::sleep(Duration::from_millis(5))).await;
        })
        .await;
        let (Some(asked), Some(answered)) = (timing.asked, timing.answered) else {
            panic!("{timing:?}");
        };
        assert!(before <= asked && asked < answered, "{timing:?}");
        // Both waits summed, the first request's start kept.
        assert!(timing.livekit >= Duration::from_millis(10), "{timing:?}");
        assert!(answered - asked >= timing.livekit, "{timing:?}");
        let ((), none) = timed(async {}).await;
        assert_eq!(none, DispatchTiming::default());
    }
}
