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
use crate::ids::{AgentDispatchId, CustomerId, RoomName, WebhookEventId};
use crate::model::CallRecord;
use crate::phone::mask_phone;
use crate::ports::{
    CallStore, ConnectionStore, ProviderError, SipParticipant, SipPlatform, WebhookEventRecord,
};
use crate::usecases::live_connections::{LIVE_CONNECTION_TTL, LiveConnections};

mod diagnostics;
mod dispatch;
mod webhook;

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

#[cfg(test)]
mod tests;
