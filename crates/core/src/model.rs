//! Entities: what trunkline stores and reasons about.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ValidationError};
use crate::ids::{
    AgentDispatchId, AuditEventId, CallId, CarrierAccountId, CarrierNumberId, ConnectionId,
    CredentialKeyId, CustomerId, DispatchRuleId, IntegrationId, ProviderKind, RoomName, RouteId,
    RouteTargetId, SipTrunkId,
};
use crate::phone::E164;
use crate::sip::SipTarget;

// ---------------------------------------------------------------------------------------
// Credentials and integrations
// ---------------------------------------------------------------------------------------

/// Credentials for one account at one carrier, as that carrier's adapter parsed them from
/// the customer's input ([`crate::ports::CarrierProvider::parse_credentials`]). The core
/// treats them as opaque: an account id and a key id it may show back, and one secret it
/// only hands to the vault and to the adapter. `Debug` prints `[REDACTED]` for the secret.
#[derive(Debug, Clone)]
pub struct CarrierCredentials {
    /// The account at the carrier, when the carrier names one (Twilio `AC…`).
    pub account_id: Option<CarrierAccountId>,
    /// The public half of an API key, when the carrier has one (Twilio `SK…`).
    pub key_id: Option<CredentialKeyId>,
    /// The secret: an API key secret, an auth token, a bearer API key.
    pub secret: SecretString,
}

/// A secret sealed by the vault. Opaque bytes; only the vault can open them, and only with
/// the same [`SealContext`] they were sealed with.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(pub Vec<u8>);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// What a sealed secret is bound to (AES-GCM associated data): a ciphertext copied to
/// another customer's, integration's or provider's row does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealContext {
    pub customer_id: CustomerId,
    pub integration_id: IntegrationId,
    pub provider: ProviderKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    Active,
    Disabled,
}

/// A customer's stored credentials at one provider (at most one per customer and provider).
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub id: IntegrationId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    /// See [`CarrierCredentials::account_id`].
    pub account_id: Option<CarrierAccountId>,
    /// See [`CarrierCredentials::key_id`].
    pub key_id: Option<CredentialKeyId>,
    pub sealed_secret: SealedSecret,
    pub status: IntegrationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Carrier-side values
// ---------------------------------------------------------------------------------------

/// What a number pointed at before trunkline attached it to a route, as its carrier's adapter
/// recorded it (Twilio: the number's voice URL and application; Telnyx: its previous
/// connection), so that disconnect can put it back. Opaque to the core: only the adapter that
/// wrote it reads it. It may hold URLs with embedded credentials, so answers show it redacted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NumberRouting(pub serde_json::Value);

impl NumberRouting {
    /// Nothing recorded: the number pointed nowhere.
    pub fn none() -> Self {
        Self(serde_json::Value::Null)
    }
}

/// One SIP target of a route: where the carrier sends inbound calls, with HA priority/weight
/// (lower priority is tried first; weight splits load within a priority). Built only through
/// [`OriginationTarget::new`], and read back from the store through the same check, so a
/// weight of 0 (which the carriers refuse) cannot be held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "OriginationTargetParts")]
pub struct OriginationTarget {
    sip_url: SipTarget,
    priority: u16,
    weight: u16,
}

/// The fields of an [`OriginationTarget`] as the wire and the store hold them, unchecked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OriginationTargetParts {
    sip_url: SipTarget,
    priority: u16,
    weight: u16,
}

impl TryFrom<OriginationTargetParts> for OriginationTarget {
    type Error = ValidationError;

    fn try_from(p: OriginationTargetParts) -> Result<Self, Self::Error> {
        Self::new(p.sip_url, p.priority, p.weight)
    }
}

impl OriginationTarget {
    pub const DEFAULT_PRIORITY: u16 = 10;
    pub const DEFAULT_WEIGHT: u16 = 10;

    /// A target; the error (field `weight`) refuses a weight of 0.
    pub fn new(sip_url: SipTarget, priority: u16, weight: u16) -> Result<Self, ValidationError> {
        if weight == 0 {
            return Err(ValidationError::new("must be from 1 to 65535").field("weight"));
        }
        Ok(Self {
            sip_url,
            priority,
            weight,
        })
    }

    /// A target at the default priority and weight.
    pub fn with_defaults(sip_url: SipTarget) -> Self {
        Self {
            sip_url,
            priority: Self::DEFAULT_PRIORITY,
            weight: Self::DEFAULT_WEIGHT,
        }
    }

    pub fn sip_url(&self) -> &SipTarget {
        &self.sip_url
    }

    pub fn priority(&self) -> u16 {
        self.priority
    }

    /// At least 1.
    pub fn weight(&self) -> u16 {
        self.weight
    }
}

/// The origination targets of one route: at most [`OriginationTargets::MAX`], no SIP URL
/// twice. Empty only where a request asks for the server's default target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OriginationTarget>")]
pub struct OriginationTargets(Vec<OriginationTarget>);

impl OriginationTargets {
    pub const MAX: usize = 10;

    /// The list; refused (`INVALID_SIP_TARGET`) over [`Self::MAX`] targets or with a SIP URL
    /// listed twice.
    pub fn new(targets: Vec<OriginationTarget>) -> Result<Self, ValidationError> {
        Self::parse(targets, |_, t| Ok::<_, ValidationError>(t))
    }

    /// The list of what `parse` makes of each raw entry (given its index), checked as
    /// [`Self::new`] checks it. The count is checked before any entry is parsed, so that an
    /// over-long list is refused as such whatever its entries hold.
    pub fn parse<T, E: From<ValidationError>>(
        raw: Vec<T>,
        mut parse: impl FnMut(usize, T) -> Result<OriginationTarget, E>,
    ) -> Result<Self, E> {
        if raw.len() > Self::MAX {
            return Err(ValidationError::with_code(
                ErrorCode::InvalidSipTarget,
                format!("at most {} targets", Self::MAX),
            )
            .field("originationTargets")
            .into());
        }
        let mut targets: Vec<OriginationTarget> = Vec::with_capacity(raw.len());
        for (i, entry) in raw.into_iter().enumerate() {
            let target = parse(i, entry)?;
            if targets.iter().any(|t| t.sip_url == target.sip_url) {
                return Err(ValidationError::with_code(
                    ErrorCode::InvalidSipTarget,
                    format!("origination target {} is listed twice", target.sip_url),
                )
                .into());
            }
            targets.push(target);
        }
        Ok(Self(targets))
    }

    /// One target at the default priority and weight.
    pub fn one(sip_url: SipTarget) -> Self {
        Self(vec![OriginationTarget::with_defaults(sip_url)])
    }

    /// The same targets, lowest priority first and, within one priority, heaviest first:
    /// the first is the primary target, the one the carrier tries first.
    #[must_use]
    pub fn by_priority(mut self) -> Self {
        self.0
            .sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
        self
    }
}

impl TryFrom<Vec<OriginationTarget>> for OriginationTargets {
    type Error = ValidationError;

    fn try_from(targets: Vec<OriginationTarget>) -> Result<Self, Self::Error> {
        Self::new(targets)
    }
}

impl std::ops::Deref for OriginationTargets {
    type Target = [OriginationTarget];

    fn deref(&self) -> &[OriginationTarget] {
        &self.0
    }
}

/// One shared trunk per customer, or one dedicated trunk per number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkStrategy {
    #[default]
    Shared,
    Dedicated,
}

impl TrunkStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Dedicated => "dedicated",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Routing and connections
// ---------------------------------------------------------------------------------------

/// Who dispatches the agent to the call's room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchMode {
    /// trunkline dispatches from the `participant_joined` webhook (seed 003's default).
    #[default]
    Webhook,
    /// The LiveKit dispatch rule carries the agent in its room configuration; trunkline
    /// must then *not* dispatch from the webhook as well.
    Rule,
}

/// Which agent a call to the number reaches, and with what. Built only through
/// [`RoutingPolicy::new`], and read back from the store or a job's options through the same
/// check, so every policy holds its limits and a `rule` dispatch always has its agent.
/// `Default` is the empty policy: no agent, webhook dispatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RoutingPolicyParts")]
pub struct RoutingPolicy {
    agent_name: Option<String>,
    metadata: Option<String>,
    attributes: BTreeMap<String, String>,
    dispatch_mode: DispatchMode,
}

/// The fields of a [`RoutingPolicy`], unchecked: what the wire and the store hold, and what
/// [`RoutingPolicy::new`] checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingPolicyParts {
    pub agent_name: Option<String>,
    /// Opaque to trunkline; handed to the agent as dispatch metadata.
    pub metadata: Option<String>,
    /// Set on the SIP participant by the LiveKit trunk.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub dispatch_mode: DispatchMode,
}

impl TryFrom<RoutingPolicyParts> for RoutingPolicy {
    type Error = ValidationError;

    fn try_from(parts: RoutingPolicyParts) -> Result<Self, Self::Error> {
        Self::new(parts)
    }
}

impl From<RoutingPolicy> for RoutingPolicyParts {
    fn from(p: RoutingPolicy) -> Self {
        Self {
            agent_name: p.agent_name,
            metadata: p.metadata,
            attributes: p.attributes,
            dispatch_mode: p.dispatch_mode,
        }
    }
}

impl RoutingPolicy {
    pub const MAX_AGENT_NAME: usize = 128;
    pub const MAX_METADATA: usize = 16 * 1024;
    pub const MAX_ATTRIBUTES: usize = 64;
    pub const MAX_ATTRIBUTE_LEN: usize = 1024;
    /// LiveKit sets `sip.*` on SIP participants (`sip.trunkPhoneNumber`, …) and `lk.*` for
    /// itself (`lk.sip.inviteTime`, …); a routing attribute there would shadow or fake them.
    pub const RESERVED_ATTRIBUTE_PREFIXES: [&'static str; 2] = ["sip.", "lk."];

    /// The policy, once its limits hold; the error names the offending field
    /// (`routing.agentName`, ...).
    pub fn new(parts: RoutingPolicyParts) -> Result<Self, ValidationError> {
        parts.check()?;
        let RoutingPolicyParts {
            agent_name,
            metadata,
            attributes,
            dispatch_mode,
        } = parts;
        Ok(Self {
            agent_name,
            metadata,
            attributes,
            dispatch_mode,
        })
    }

    pub fn agent_name(&self) -> Option<&str> {
        self.agent_name.as_deref()
    }

    /// Opaque to trunkline; handed to the agent as dispatch metadata.
    pub fn metadata(&self) -> Option<&str> {
        self.metadata.as_deref()
    }

    /// Set on the SIP participant by the LiveKit trunk.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    pub fn dispatch_mode(&self) -> DispatchMode {
        self.dispatch_mode
    }
}

impl RoutingPolicyParts {
    /// The limits of a [`RoutingPolicy`].
    fn check(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.agent_name {
            // Characters, as JSON Schema's `maxLength` (in /openapi.json) counts them.
            if name.trim().is_empty() || name.chars().count() > RoutingPolicy::MAX_AGENT_NAME {
                return Err(ValidationError::new(format!(
                    "must be 1 to {} characters",
                    RoutingPolicy::MAX_AGENT_NAME
                ))
                .field("routing.agentName"));
            }
            if name.chars().any(char::is_control) {
                return Err(ValidationError::new("must not contain control characters")
                    .field("routing.agentName"));
            }
        }
        if self
            .metadata
            .as_ref()
            .is_some_and(|m| m.chars().count() > RoutingPolicy::MAX_METADATA)
        {
            return Err(ValidationError::new(format!(
                "must be at most {} characters",
                RoutingPolicy::MAX_METADATA
            ))
            .field("routing.metadata"));
        }
        if self.attributes.len() > RoutingPolicy::MAX_ATTRIBUTES {
            return Err(ValidationError::new(format!(
                "at most {} attributes",
                RoutingPolicy::MAX_ATTRIBUTES
            ))
            .field("routing.attributes"));
        }
        for (k, v) in &self.attributes {
            if k.is_empty()
                || k.chars().count() > RoutingPolicy::MAX_ATTRIBUTE_LEN
                || v.chars().count() > RoutingPolicy::MAX_ATTRIBUTE_LEN
            {
                return Err(ValidationError::new(format!(
                    "keys must be non-empty; keys and values at most {} characters",
                    RoutingPolicy::MAX_ATTRIBUTE_LEN
                ))
                .field("routing.attributes"));
            }
            if let Some(prefix) = RoutingPolicy::RESERVED_ATTRIBUTE_PREFIXES
                .iter()
                .find(|p| k.starts_with(*p))
            {
                return Err(ValidationError::new(format!(
                    "keys starting with \"{prefix}\" are reserved by LiveKit (it sets them on \
                     SIP participants); reserved prefixes: \"sip.\", \"lk.\""
                ))
                .field("routing.attributes"));
            }
        }
        if self.dispatch_mode == DispatchMode::Rule && self.agent_name.is_none() {
            return Err(
                ValidationError::new("dispatch mode 'rule' needs an agent name")
                    .field("routing.agentName"),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Connect started; some steps may be done (their ids are stored).
    Pending,
    /// Both sides configured.
    Connected,
    /// The last connect attempt failed part-way; a retry reconciles.
    Failed,
    /// Disconnected; the row is kept until a reconnect reuses and rewrites it.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connected => "connected",
            Self::Failed => "failed",
            Self::Disconnected => "disconnected",
        }
    }
}

/// A route target trunkline created or adopted on the route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRouteTarget {
    /// `sid` in rows written before carriers were pluggable.
    #[serde(alias = "sid")]
    pub id: RouteTargetId,
    pub target: OriginationTarget,
}

/// One customer's number wired (or being wired) to LiveKit.
///
/// Unique per (customer, provider, number_id): reconnecting after a disconnect
/// reuses the row. Every id is stored as soon as the object exists, so a retry after a
/// crash reuses it instead of creating another.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberConnection {
    pub id: ConnectionId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub integration_id: IntegrationId,
    pub number_id: CarrierNumberId,
    pub e164: E164,
    pub status: ConnectionStatus,
    pub trunk_strategy: TrunkStrategy,
    /// The carrier-side SIP route the number is attached to.
    pub route_id: Option<RouteId>,
    /// Whether trunkline created the route (only such a route may be deleted on disconnect).
    pub route_created: bool,
    pub route_targets: Vec<StoredRouteTarget>,
    /// The primary SIP target (the first origination target).
    pub sip_target: SipTarget,
    pub routing: RoutingPolicy,
    /// What the number pointed at before trunkline attached it.
    pub previous_routing: Option<NumberRouting>,
    pub livekit_trunk_id: Option<SipTrunkId>,
    pub livekit_rule_id: Option<DispatchRuleId>,
    /// Last failure, safe to show (error code and message), for status.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The room exists or the SIP participant joined; not yet known to be answered.
    Ringing,
    Active,
    Ended,
    /// Nobody connected the called number: recorded, not dispatched.
    Unrouted,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Unrouted => "unrouted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DispatchStatus {
    /// No dispatch needed or not yet attempted.
    None,
    /// A worker holds the claim and is dispatching.
    Claimed,
    /// The agent was dispatched (`dispatch_id` is set). Final.
    Dispatched,
    /// The last attempt failed; a retry is scheduled.
    Failed,
    /// The dispatch rule dispatches by itself (dispatch mode `rule`).
    ByRule,
    /// Retries exhausted; needs a human (logged loudly).
    GaveUp,
    /// The call ended before its agent was dispatched: nothing more is attempted. Final.
    Cancelled,
}

impl DispatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Claimed => "claimed",
            Self::Dispatched => "dispatched",
            Self::Failed => "failed",
            Self::ByRule => "by_rule",
            Self::GaveUp => "gave_up",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One call, keyed by its LiveKit room (one SIP call, one room).
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: CallId,
    pub room_name: RoomName,
    pub customer_id: Option<CustomerId>,
    pub connection_id: Option<ConnectionId>,
    pub sip_call_id: Option<String>,
    pub called: Option<E164>,
    pub caller: Option<E164>,
    pub status: CallStatus,
    pub dispatch_status: DispatchStatus,
    pub dispatch_id: Option<AgentDispatchId>,
    pub dispatch_attempts: u32,
    pub agent_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl CallRecord {
    /// Call duration, once it ended.
    pub fn duration(&self) -> Option<Duration> {
        let end = self.ended_at?;
        let start = self.answered_at.unwrap_or(self.started_at);
        (end - start).to_std().ok()
    }
}

/// The outcome of trying to claim a call's agent dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchClaim {
    /// This caller holds the claim (until its time-to-live runs out) and must dispatch;
    /// `attempt` counts from 1.
    Won { attempt: u32 },
    /// Already dispatched (by anyone): nothing to do.
    AlreadyDispatched { dispatch_id: AgentDispatchId },
    /// Another caller holds a live claim: nothing to do now.
    HeldByOther,
    /// No call record exists for the room.
    NoSuchCall,
}

// ---------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------

/// What a lease protects, within one customer's account at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LeaseResource {
    /// Connect/disconnect of one number.
    Number(CarrierNumberId),
    /// Creation of a shared trunk (several numbers' connects may race to create it).
    Trunk(String),
    /// Work of which one instance runs at a time, whoever the customer (the drift
    /// reconciler). The key's customer and provider are not part of its storage key.
    Singleton(&'static str),
}

/// The key of a lease: a resource of one customer at one provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub resource: LeaseResource,
}

impl LeaseKey {
    pub fn number(
        customer_id: CustomerId,
        provider: ProviderKind,
        number: CarrierNumberId,
    ) -> Self {
        Self {
            customer_id,
            provider,
            resource: LeaseResource::Number(number),
        }
    }

    /// The lease of work one instance of the whole fleet runs at a time.
    pub fn singleton(name: &'static str) -> Self {
        Self {
            customer_id: CustomerId::parse("trunkline").unwrap_or_else(|_| unreachable!()),
            provider: ProviderKind::Twilio,
            resource: LeaseResource::Singleton(name),
        }
    }

    pub fn trunk(customer_id: CustomerId, provider: ProviderKind, friendly_name: &str) -> Self {
        Self {
            customer_id,
            provider,
            resource: LeaseResource::Trunk(friendly_name.to_owned()),
        }
    }

    /// A single-string form for storage, unambiguous whatever the customer id holds:
    /// `<len(customer)>:<customer>/<provider>/number:<number id>` or `…/trunk:<name>`.
    pub fn storage_key(&self) -> String {
        if let LeaseResource::Singleton(name) = &self.resource {
            return format!("singleton:{name}");
        }
        let c = self.customer_id.as_str();
        let r = match &self.resource {
            LeaseResource::Number(n) => format!("number:{n}"),
            LeaseResource::Trunk(t) => format!("trunk:{t}"),
            LeaseResource::Singleton(_) => unreachable!("handled above"),
        };
        format!("{}:{c}/{}/{r}", c.len(), self.provider)
    }
}

/// A held lease. `token` changes with every acquisition and every release, so a holder whose
/// lease expired and was taken over cannot release or renew the new holder's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: LeaseKey,
    pub holder: String,
    pub token: uuid::Uuid,
    pub expires_at: DateTime<Utc>,
}

/// A lease seen without taking it (`LeaseStore::peek_lease`). The token changes with every
/// acquisition and every release, so two equal states, the first not held, mean that nobody
/// held the lease at any moment between the two reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    pub token: uuid::Uuid,
    /// Held now, by the store's clock.
    pub held: bool,
}

// ---------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------

/// Audit actions (seed 003's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "credentials.verified")]
    CredentialsVerified,
    #[serde(rename = "credentials.saved")]
    CredentialsSaved,
    #[serde(rename = "credentials.deleted")]
    CredentialsDeleted,
    #[serde(rename = "number.connected")]
    NumberConnected,
    #[serde(rename = "number.disconnected")]
    NumberDisconnected,
    #[serde(rename = "number.purchased")]
    NumberPurchased,
    #[serde(rename = "number.released")]
    NumberReleased,
    #[serde(rename = "connection.drift_detected")]
    DriftDetected,
    #[serde(rename = "connection.drift_cleared")]
    DriftCleared,
    #[serde(rename = "integration.settings_updated")]
    SettingsUpdated,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CredentialsVerified => "credentials.verified",
            Self::CredentialsSaved => "credentials.saved",
            Self::CredentialsDeleted => "credentials.deleted",
            Self::NumberConnected => "number.connected",
            Self::NumberDisconnected => "number.disconnected",
            Self::NumberPurchased => "number.purchased",
            Self::NumberReleased => "number.released",
            Self::DriftDetected => "connection.drift_detected",
            Self::DriftCleared => "connection.drift_cleared",
            Self::SettingsUpdated => "integration.settings_updated",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::CredentialsVerified,
            Self::CredentialsSaved,
            Self::CredentialsDeleted,
            Self::NumberConnected,
            Self::NumberDisconnected,
            Self::NumberPurchased,
            Self::NumberReleased,
            Self::DriftDetected,
            Self::DriftCleared,
            Self::SettingsUpdated,
        ]
        .into_iter()
        .find(|a| a.as_str() == raw)
    }
}

/// Who did it: the subject of the JWT, and with which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub subject: String,
    pub role: String,
}

/// A persisted audit event. `details` never holds secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: AuditEventId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub action: AuditAction,
    pub actor: Actor,
    /// Ids involved (number, route, integration, ...) and outcome.
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Fleet: reconciler checks, purchased numbers, per-integration settings
// ---------------------------------------------------------------------------------------

/// One drift as the reconciler recorded it (`kind` from the status use case's closed set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedDrift {
    pub kind: String,
    pub message: String,
}

/// What the drift reconciler last found for a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheck {
    pub connection_id: ConnectionId,
    pub checked_at: DateTime<Utc>,
    /// Empty when both sides match what trunkline stored.
    pub drifts: Vec<RecordedDrift>,
    /// Since when the connection has drifted without a clean check in between.
    pub drift_since: Option<DateTime<Utc>>,
    /// Parts that could not be read (error codes), which are not drift.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// When auto-repair last reconnected the number.
    #[serde(default)]
    pub repaired_at: Option<DateTime<Utc>>,
}

/// A number trunkline bought for a customer: the only numbers it may release.
#[derive(Debug, Clone, PartialEq)]
pub struct PurchasedNumber {
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub number_id: CarrierNumberId,
    pub e164: E164,
    pub purchased_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
}

/// Per-integration settings of the fleet operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationSettings {
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    /// Whether the reconciler reconnects numbers it finds drifted. Off by default.
    pub auto_repair: bool,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn credentials_debug_never_shows_the_secret() {
        let creds = CarrierCredentials {
            account_id: Some(CarrierAccountId::parse("acct-1").unwrap()),
            key_id: Some(CredentialKeyId::parse("key-1").unwrap()),
            secret: SecretString::from("super-secret-value"),
        };
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains("super-secret-value"), "{dbg}");
        let sealed = SealedSecret(b"ciphertext-bytes".to_vec());
        assert_eq!(format!("{sealed:?}"), "SealedSecret(16 bytes)");
    }

    fn policy(parts: RoutingPolicyParts) -> Result<RoutingPolicy, ValidationError> {
        RoutingPolicy::new(parts)
    }

    fn refused_field(parts: RoutingPolicyParts) -> Option<&'static str> {
        policy(parts).unwrap_err().field
    }

    /// The limits count characters, as the `maxLength` of /openapi.json does: a name of
    /// 128 two-byte characters is one the schema allows (schemathesis found the byte count).
    #[test]
    fn routing_policy_limits_count_characters_not_bytes() {
        let wide = |n: usize| "é".repeat(n);
        let ok = policy(RoutingPolicyParts {
            agent_name: Some(wide(RoutingPolicy::MAX_AGENT_NAME)),
            metadata: Some(wide(RoutingPolicy::MAX_METADATA)),
            attributes: [(
                wide(RoutingPolicy::MAX_ATTRIBUTE_LEN),
                wide(RoutingPolicy::MAX_ATTRIBUTE_LEN),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        });
        assert!(ok.is_ok(), "{ok:?}");
        let long_name = RoutingPolicyParts {
            agent_name: Some(wide(RoutingPolicy::MAX_AGENT_NAME + 1)),
            ..Default::default()
        };
        assert_eq!(refused_field(long_name), Some("routing.agentName"));
        let long_value = RoutingPolicyParts {
            attributes: [("k".to_owned(), wide(RoutingPolicy::MAX_ATTRIBUTE_LEN + 1))]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        assert_eq!(refused_field(long_value), Some("routing.attributes"));
    }

    /// Each limit, with the field and the message the API answers.
    #[test]
    fn routing_policy_refusals_name_the_field_and_say_why() {
        let named = |agent: &str| RoutingPolicyParts {
            agent_name: Some(agent.to_owned()),
            ..Default::default()
        };
        let with_attributes = |attributes: BTreeMap<String, String>| RoutingPolicyParts {
            attributes,
            ..Default::default()
        };
        let cases = [
            (named(""), "routing.agentName: must be 1 to 128 characters"),
            (
                named("  "),
                "routing.agentName: must be 1 to 128 characters",
            ),
            (
                named("a\u{7}b"),
                "routing.agentName: must not contain control characters",
            ),
            (
                RoutingPolicyParts {
                    metadata: Some("x".repeat(RoutingPolicy::MAX_METADATA + 1)),
                    ..named("support-agent")
                },
                "routing.metadata: must be at most 16384 characters",
            ),
            (
                with_attributes(
                    (0..=RoutingPolicy::MAX_ATTRIBUTES)
                        .map(|i| (format!("k{i}"), String::new()))
                        .collect(),
                ),
                "routing.attributes: at most 64 attributes",
            ),
            (
                with_attributes([(String::new(), "v".to_owned())].into()),
                "routing.attributes: keys must be non-empty; keys and values at most 1024 \
                 characters",
            ),
            (
                RoutingPolicyParts {
                    dispatch_mode: DispatchMode::Rule,
                    ..Default::default()
                },
                "routing.agentName: dispatch mode 'rule' needs an agent name",
            ),
        ];
        for (parts, message) in cases {
            let e = policy(parts.clone()).unwrap_err();
            assert_eq!(e.to_string(), message, "{parts:?}");
            assert_eq!(e.code, ErrorCode::ValidationFailed);
        }
        let ruled = policy(RoutingPolicyParts {
            dispatch_mode: DispatchMode::Rule,
            ..named("support-agent")
        })
        .unwrap();
        assert_eq!(
            (ruled.dispatch_mode(), ruled.agent_name()),
            (DispatchMode::Rule, Some("support-agent"))
        );
    }

    #[test]
    fn routing_attributes_in_livekits_namespaces_are_refused() {
        for key in ["sip.trunkPhoneNumber", "sip.", "lk.sip.inviteTime"] {
            let e = policy(RoutingPolicyParts {
                attributes: [(key.to_owned(), "x".to_owned())].into(),
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(e.field, Some("routing.attributes"), "{key}");
            assert!(e.reason.contains("reserved"), "{key}: {}", e.reason);
        }
        let p = policy(RoutingPolicyParts {
            attributes: [
                ("sipx".to_owned(), "x".to_owned()),
                ("tier".to_owned(), "1".to_owned()),
            ]
            .into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.attributes().len(), 2);
    }

    /// The empty policy is a valid one: connect's `routing: {}` clears to it.
    #[test]
    fn the_default_policy_is_the_empty_valid_one() {
        assert_eq!(
            policy(RoutingPolicyParts::default()),
            Ok(RoutingPolicy::default())
        );
        let p = RoutingPolicy::default();
        assert_eq!(
            (p.agent_name(), p.metadata(), p.dispatch_mode()),
            (None, None, DispatchMode::Webhook)
        );
        assert!(p.attributes().is_empty());
    }

    #[test]
    fn routing_policy_json_is_camel_case_with_defaults() {
        let p: RoutingPolicy = serde_json::from_str(r#"{"agentName":"a"}"#).unwrap();
        assert_eq!(p.dispatch_mode(), DispatchMode::Webhook);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["dispatchMode"], "webhook");
    }

    /// The stores keep the policy as this JSON: its bytes are those of the public fields the
    /// policy had before it was checked on construction.
    #[test]
    fn routing_policy_is_stored_as_it_always_was_and_reads_back() {
        assert_eq!(
            serde_json::to_string(&RoutingPolicy::default()).unwrap(),
            r#"{"agentName":null,"metadata":null,"attributes":{},"dispatchMode":"webhook"}"#
        );
        let p = policy(RoutingPolicyParts {
            agent_name: Some("support-agent".to_owned()),
            metadata: Some(r#"{"plan":"gold"}"#.to_owned()),
            attributes: [("tier".to_owned(), "1".to_owned())].into(),
            dispatch_mode: DispatchMode::Rule,
        })
        .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"agentName":"support-agent","metadata":"{\"plan\":\"gold\"}","attributes":{"tier":"1"},"dispatchMode":"rule"}"#
        );
        assert_eq!(serde_json::from_str::<RoutingPolicy>(&json).unwrap(), p);
        assert_eq!(
            serde_json::to_string(&RoutingPolicyParts::from(p)).unwrap(),
            json
        );
    }

    /// A stored or submitted value goes through the same checks as one built in code.
    #[test]
    fn an_invalid_policy_does_not_deserialize() {
        for (json, reason) in [
            (
                r#"{"dispatchMode":"rule"}"#,
                "dispatch mode 'rule' needs an agent name",
            ),
            (r#"{"agentName":" "}"#, "must be 1 to 128 characters"),
            (r#"{"attributes":{"lk.x":"1"}}"#, "reserved by LiveKit"),
        ] {
            let e = serde_json::from_str::<RoutingPolicy>(json).unwrap_err();
            assert!(e.to_string().contains(reason), "{json}: {e}");
        }
    }

    fn sip(raw: &str) -> SipTarget {
        SipTarget::parse(raw).unwrap()
    }

    #[test]
    fn an_origination_target_needs_a_weight_of_at_least_one() {
        let t = OriginationTarget::new(sip("sip:a.example"), 0, 1).unwrap();
        assert_eq!(
            (t.sip_url(), t.priority(), t.weight()),
            (&sip("sip:a.example"), 0, 1)
        );
        let e = OriginationTarget::new(sip("sip:a.example"), 10, 0).unwrap_err();
        assert_eq!(e.to_string(), "weight: must be from 1 to 65535");
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        let d = OriginationTarget::with_defaults(sip("sip:a.example"));
        assert_eq!(
            (d.priority(), d.weight()),
            (
                OriginationTarget::DEFAULT_PRIORITY,
                OriginationTarget::DEFAULT_WEIGHT
            )
        );
    }

    #[test]
    fn an_origination_target_is_stored_as_it_always_was_and_reads_back_checked() {
        let t = OriginationTarget::new(sip("sip:a.example:5060"), 20, 5).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"sipUrl":"sip:a.example:5060","priority":20,"weight":5}"#
        );
        assert_eq!(serde_json::from_str::<OriginationTarget>(&json).unwrap(), t);
        let zero = r#"{"sipUrl":"sip:a.example","priority":20,"weight":0}"#;
        let e = serde_json::from_str::<OriginationTarget>(zero).unwrap_err();
        assert!(e.to_string().contains("must be from 1 to 65535"), "{e}");
    }

    #[test]
    fn origination_targets_hold_at_most_ten_distinct_urls() {
        let target = |n: usize| OriginationTarget::with_defaults(sip(&format!("sip:t{n}.example")));
        let ten = OriginationTargets::new((0..10).map(target).collect()).unwrap();
        assert_eq!(ten.len(), OriginationTargets::MAX);
        assert!(OriginationTargets::new(Vec::new()).unwrap().is_empty());

        let e = OriginationTargets::new((0..11).map(target).collect()).unwrap_err();
        assert_eq!(e.to_string(), "originationTargets: at most 10 targets");
        assert_eq!(e.code, ErrorCode::InvalidSipTarget);

        let twice = OriginationTarget::new(sip("sip:t1.example"), 20, 1).unwrap();
        let e = OriginationTargets::new(vec![target(1), target(2), twice]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "origination target sip:t1.example is listed twice"
        );
        assert_eq!(e.code, ErrorCode::InvalidSipTarget);
    }

    /// The count is refused before any entry is looked at, as the API always did: an
    /// over-long list is refused as such whatever its entries hold.
    #[test]
    fn origination_targets_parse_counts_before_it_parses_entries() {
        let mut parsed = 0;
        let e = OriginationTargets::parse(vec!["x"; 11], |_, _| {
            parsed += 1;
            Err(ValidationError::new("an entry"))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "originationTargets: at most 10 targets");
        assert_eq!(parsed, 0);
        let e = OriginationTargets::parse(vec!["a", "b"], |i, raw| {
            if i == 1 {
                return Err(ValidationError::new(format!("entry {i} ({raw})")));
            }
            Ok(OriginationTarget::with_defaults(sip(&format!(
                "sip:{raw}.example"
            ))))
        })
        .unwrap_err();
        assert_eq!(e.reason, "entry 1 (b)");
    }

    #[test]
    fn origination_targets_sort_primary_first_and_store_as_a_plain_list() {
        let t = |url: &str, priority, weight| {
            OriginationTarget::new(sip(url), priority, weight).unwrap()
        };
        let list = OriginationTargets::new(vec![
            t("sip:c.example", 20, 1),
            t("sip:b.example", 10, 1),
            t("sip:a.example", 10, 5),
        ])
        .unwrap();
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(
            json,
            r#"[{"sipUrl":"sip:c.example","priority":20,"weight":1},{"sipUrl":"sip:b.example","priority":10,"weight":1},{"sipUrl":"sip:a.example","priority":10,"weight":5}]"#
        );
        assert_eq!(
            serde_json::from_str::<OriginationTargets>(&json).unwrap(),
            list
        );
        let sorted: Vec<_> = list
            .by_priority()
            .iter()
            .map(|t| t.sip_url().to_string())
            .collect();
        assert_eq!(sorted, ["sip:a.example", "sip:b.example", "sip:c.example"]);

        let twice = r#"[{"sipUrl":"sip:a.example","priority":1,"weight":1},{"sipUrl":"sip:a.example","priority":2,"weight":1}]"#;
        let e = serde_json::from_str::<OriginationTargets>(twice).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }

    #[test]
    fn audit_action_round_trips() {
        for a in [
            AuditAction::CredentialsSaved,
            AuditAction::NumberDisconnected,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }

    #[test]
    fn call_duration_counts_from_answer() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut c = CallRecord {
            id: CallId::new(),
            room_name: RoomName::parse("call-1").unwrap(),
            customer_id: None,
            connection_id: None,
            sip_call_id: None,
            called: None,
            caller: None,
            status: CallStatus::Ended,
            dispatch_status: DispatchStatus::None,
            dispatch_id: None,
            dispatch_attempts: 0,
            agent_name: None,
            started_at: t0,
            answered_at: Some(t0 + chrono::Duration::seconds(2)),
            ended_at: Some(t0 + chrono::Duration::seconds(62)),
            updated_at: t0,
        };
        assert_eq!(c.duration(), Some(Duration::from_secs(60)));
        c.ended_at = None;
        assert_eq!(c.duration(), None);
    }
}
