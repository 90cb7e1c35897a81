use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::errors::ProviderError;
use crate::ids::{
    AgentDispatchId, ConnectionId, DispatchRuleId, RoomName, SipTrunkId, WebhookEventId,
};
use crate::model::RoutingPolicy;
use crate::phone::E164;

/// The LiveKit inbound trunk trunkline wants for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTrunkSpec {
    pub connection_id: ConnectionId,
    /// Human-readable name, derived from the connection.
    pub name: String,
    /// The trunk accepts calls to exactly this number.
    pub number: E164,
    /// Attributes for the number's SIP participants. A LiveKit inbound trunk cannot set
    /// participant attributes; the LiveKit adapter sets them through the dispatch rule,
    /// whose spec carries the same map (`routing.attributes`).
    pub attributes: BTreeMap<String, String>,
    /// SIP digest credentials the trunk requires of callers (voice-URL mode: the carrier's
    /// TwiML dials with them); `None` keeps the server-wide setting.
    pub auth: Option<SipDigestAuth>,
}

/// A username and password for SIP digest authentication. `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct SipDigestAuth {
    pub username: String,
    pub password: secrecy::SecretString,
}

impl PartialEq for SipDigestAuth {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        self.username == other.username
            && self.password.expose_secret() == other.password.expose_secret()
    }
}

impl Eq for SipDigestAuth {}

/// An inbound trunk as LiveKit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundTrunkInfo {
    pub id: SipTrunkId,
    pub name: String,
    /// Raw, as LiveKit holds them.
    pub numbers: Vec<String>,
}

/// The dispatch rule trunkline wants for one connection's trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRuleSpec {
    pub connection_id: ConnectionId,
    pub name: String,
    pub trunk_id: SipTrunkId,
    /// Individual rooms named with this prefix.
    pub room_prefix: String,
    pub routing: RoutingPolicy,
}

/// A dispatch rule as LiveKit holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRuleInfo {
    pub id: DispatchRuleId,
    pub name: String,
    pub trunk_ids: Vec<String>,
    pub room_prefix: Option<String>,
    /// Agents dispatched by the rule itself (dispatch mode `rule`).
    pub agent_names: Vec<String>,
}

/// A SIP participant's call attributes from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipParticipant {
    pub identity: String,
    /// `sip.trunkPhoneNumber`: the number that was called (raw).
    pub called_number: Option<String>,
    /// `sip.phoneNumber`: the caller (raw).
    pub caller_number: Option<String>,
    /// `sip.callID`.
    pub sip_call_id: Option<String>,
    /// `sip.trunkID`.
    pub trunk_id: Option<String>,
}

/// What happened, for the events trunkline acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookKind {
    RoomStarted,
    RoomFinished,
    /// A participant joined; `sip` is set for SIP participants.
    ParticipantJoined {
        sip: Option<SipParticipant>,
    },
    ParticipantLeft {
        sip: Option<SipParticipant>,
    },
    /// Any other event (acknowledged without action).
    Other(String),
}

/// A verified LiveKit webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: WebhookEventId,
    /// LiveKit's event name (`participant_joined`, ...).
    pub name: String,
    pub kind: WebhookKind,
    pub room: Option<RoomName>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Why a webhook was refused. Never carries the token or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing or malformed authorization")]
    MissingToken,
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    #[error("body does not match the signed hash")]
    BodyMismatch,
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// The LiveKit outbound trunk of one carrier route: every outbound number of the route in
/// its list, the route's termination as address and credentials (caller ID chosen per call).
#[derive(Debug, Clone)]
pub struct OutboundTrunkSpec {
    /// How trunkline finds it again (derived from the route).
    pub name: String,
    /// The carrier's termination host, without `sip:`.
    pub address: String,
    pub numbers: Vec<E164>,
    pub auth_username: String,
    /// Never logged (`SecretString`). Set on create, and on an existing trunk only when
    /// `password_changed` (LiveKit does not show it back, so it cannot be compared).
    pub auth_password: SecretString,
    pub password_changed: bool,
    /// Added to every INVITE (Telnyx: `X-Telnyx-Username`).
    pub headers: BTreeMap<String, String>,
}

/// An outbound trunk as LiveKit holds it. The password is never read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTrunkInfo {
    pub id: SipTrunkId,
    pub name: String,
    pub address: String,
    /// Raw, as LiveKit holds them.
    pub numbers: Vec<String>,
    pub auth_username: String,
    /// Whether the trunk signals over TCP (what trunkline sets).
    pub tcp: bool,
    pub headers: BTreeMap<String, String>,
}

/// One outbound call: a SIP participant dialled into a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCallRequest {
    pub trunk_id: SipTrunkId,
    /// The caller ID (`sip_number`): one of the trunk's numbers.
    pub from: E164,
    pub to: E164,
    pub room: RoomName,
    pub participant_identity: String,
    pub attributes: BTreeMap<String, String>,
    pub metadata: Option<String>,
    /// Answer only once the callee answered or the call failed.
    pub wait_until_answered: bool,
    pub ringing_timeout: Option<Duration>,
}

/// What LiveKit answered for a SIP participant it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipCallInfo {
    pub participant_id: String,
    pub participant_identity: String,
    pub sip_call_id: String,
}

/// A SIP participant as LiveKit holds it now (`RoomService.GetParticipant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipParticipantState {
    /// `sip.callID`, when LiveKit has set it.
    pub sip_call_id: Option<String>,
    /// The callee answered (`sip.callStatus` is `active`).
    pub answered: bool,
}

/// LiveKit: inbound SIP trunks, dispatch rules, agent dispatch and webhook verification.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SipPlatform: Send + Sync {
    /// Make an inbound trunk accept exactly `spec.number`: reuse `existing` (or a trunk found
    /// by listing with the number) and update it, or create one. Idempotent.
    async fn ensure_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<InboundTrunkInfo, ProviderError>;

    /// Make a dispatch rule for `spec.trunk_id` carry the routing policy. Idempotent.
    async fn ensure_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
        existing: Option<DispatchRuleId>,
    ) -> Result<DispatchRuleInfo, ProviderError>;

    /// The inbound trunk of a connection made by this very call: no earlier attempt can have
    /// created one, so an adapter may create it without listing first (one round trip instead
    /// of two on a cold connect). Must still refuse, like `ensure_inbound_trunk`, when a trunk
    /// trunkline did not create holds the number, and must not create twice when a create's
    /// answer is lost.
    async fn create_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        self.ensure_inbound_trunk(spec, None).await
    }

    /// The dispatch rule of a trunk created just now: nothing can route that trunk yet, so an
    /// adapter may create the rule without listing first. Same guarantees otherwise as
    /// `ensure_dispatch_rule`.
    async fn create_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        self.ensure_dispatch_rule(spec, None).await
    }

    /// Every inbound trunk that accepts exactly `number`, whoever made it: connect asks
    /// before it moves anything at the carrier, since LiveKit lets only one trunk hold a
    /// number.
    async fn inbound_trunks_for_number(
        &self,
        number: &E164,
    ) -> Result<Vec<InboundTrunkInfo>, ProviderError>;

    /// `Ok(None)` when absent.
    async fn get_inbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<InboundTrunkInfo>, ProviderError>;

    /// `Ok(None)` when absent.
    async fn get_dispatch_rule(
        &self,
        id: &DispatchRuleId,
    ) -> Result<Option<DispatchRuleInfo>, ProviderError>;

    /// Every inbound trunk of the LiveKit project, whoever made it (the support view finds
    /// trunkline's orphans among them by name).
    async fn list_inbound_trunks(&self) -> Result<Vec<InboundTrunkInfo>, ProviderError>;

    /// Every dispatch rule of the LiveKit project, whoever made it.
    async fn list_dispatch_rules(&self) -> Result<Vec<DispatchRuleInfo>, ProviderError>;

    /// Delete; absent is success.
    async fn delete_inbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError>;

    /// Delete; absent is success.
    async fn delete_dispatch_rule(&self, id: &DispatchRuleId) -> Result<(), ProviderError>;

    /// Dispatch `agent_name` to the room with `metadata`.
    async fn dispatch_agent(
        &self,
        room: &RoomName,
        agent_name: &str,
        metadata: Option<String>,
    ) -> Result<AgentDispatchId, ProviderError>;

    /// Agent dispatches that already exist in the room (to avoid a second dispatch after a
    /// crash between dispatching and recording it).
    async fn list_agent_dispatches(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(AgentDispatchId, String)>, ProviderError>;

    /// Verify the `Authorization` header against the exact raw body and parse the event.
    fn verify_webhook(
        &self,
        body: &[u8],
        authorization: &str,
    ) -> Result<WebhookEvent, WebhookError>;

    /// Make the outbound trunk match `spec`: reuse `existing` (or one found by `spec.name`)
    /// and update what differs, or create one. Idempotent; never creates a second trunk for
    /// the same name. Signals over TCP.
    async fn ensure_outbound_trunk(
        &self,
        spec: &OutboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<OutboundTrunkInfo, ProviderError> {
        let _ = (spec, existing);
        Err(outbound_unsupported())
    }

    /// `Ok(None)` when absent.
    async fn get_outbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<OutboundTrunkInfo>, ProviderError> {
        let _ = id;
        Err(outbound_unsupported())
    }

    /// Every outbound trunk of the LiveKit project, whoever made it (the support view finds
    /// trunkline's orphans among them by name).
    async fn list_outbound_trunks(&self) -> Result<Vec<OutboundTrunkInfo>, ProviderError> {
        Err(outbound_unsupported())
    }

    /// Delete; absent is success.
    async fn delete_outbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError> {
        let _ = id;
        Err(outbound_unsupported())
    }

    /// Dial `request.to` into the room (LiveKit's `CreateSIPParticipant`).
    ///
    /// # Errors
    /// A SIP failure maps to `CALL_BUSY` (486/600), `CALL_NO_ANSWER` (408/480/487),
    /// `CALLER_ID_NOT_ALLOWED`, `DESTINATION_NOT_PERMITTED`, `CALL_REJECTED` (403/603 and other
    /// final answers), with the SIP status as `provider_code` and in the message; `NOT_FOUND`
    /// for an unknown trunk; the usual transport codes otherwise.
    async fn create_sip_participant(
        &self,
        request: &SipCallRequest,
    ) -> Result<SipCallInfo, ProviderError> {
        let _ = request;
        Err(outbound_unsupported())
    }

    /// The participant `identity` in `room` as LiveKit holds it now (`RoomService.
    /// GetParticipant`); `Ok(None)` when the room or the participant is not there (any more).
    /// A retried outbound call asks before it dials again: a call whose
    /// `CreateSIPParticipant` answer was lost is in its room already, under the identity the
    /// use case chose, and must not be placed twice.
    async fn find_sip_participant(
        &self,
        room: &RoomName,
        identity: &str,
    ) -> Result<Option<SipParticipantState>, ProviderError> {
        let _ = (room, identity);
        Err(outbound_unsupported())
    }
}

fn outbound_unsupported() -> ProviderError {
    ProviderError::new(
        crate::error::ErrorCode::NotConfigured,
        "this SIP platform adapter does not place outbound calls",
    )
}
