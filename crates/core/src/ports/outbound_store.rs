use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::errors::StoreError;
use crate::ids::{CallId, ConnectionId, CustomerId, ProviderKind, RoomName, RouteId, SipTrunkId};
use crate::model::SealedSecret;
use crate::phone::E164;

/// The outbound half of one carrier route: its termination credentials and its LiveKit
/// outbound trunk, shared by every outbound number on the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRoute {
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub route_id: RouteId,
    /// The carrier's termination host, once set up.
    pub termination_host: Option<String>,
    pub sip_username: String,
    /// The SIP password, sealed with the integration's context. Never stored in clear.
    pub sealed_password: SealedSecret,
    pub livekit_trunk_id: Option<SipTrunkId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A connected number that may place calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundNumber {
    pub connection_id: ConnectionId,
    pub customer_id: CustomerId,
    pub provider: ProviderKind,
    pub route_id: RouteId,
    pub e164: E164,
    pub created_at: DateTime<Utc>,
}

/// Where an outbound call stands, as placing it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundCallState {
    /// Reserved, not yet dialled (or dialling now).
    Dialing,
    /// LiveKit accepted the participant (answered, when the request waited for it).
    Placed,
    /// Dialling failed; `failure` says why.
    Failed,
}

impl OutboundCallState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dialing => "dialing",
            Self::Placed => "placed",
            Self::Failed => "failed",
        }
    }

    /// # Errors
    /// A value no version of trunkline writes.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "dialing" => Ok(Self::Dialing),
            "placed" => Ok(Self::Placed),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!(
                "outbound_calls.state: {other:?}"
            ))),
        }
    }
}

/// An outbound call: what makes a call record's direction `outbound`, and what an
/// `Idempotency-Key` finds again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub call_id: CallId,
    pub room_name: RoomName,
    pub customer_id: CustomerId,
    pub connection_id: ConnectionId,
    pub from: E164,
    pub to: E164,
    pub idempotency_key: Option<String>,
    /// A digest of the request the key was first used with (a key reused for another
    /// request is refused).
    pub request_digest: String,
    pub state: OutboundCallState,
    /// `ERROR_CODE: message` of a failed dial, safe to show.
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What [`OutboundStore::insert_outbound_call`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundCallInsert {
    /// This call is new: the caller dials it.
    Inserted,
    /// The customer used the call's idempotency key before: that call, not dialled again.
    Existing(Box<OutboundCall>),
}

/// Outbound routes, outbound numbers and outbound calls (with their idempotency keys).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OutboundStore: Send + Sync {
    async fn get_outbound_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<Option<OutboundRoute>, StoreError>;

    /// Insert or replace by (customer, provider, route).
    async fn put_outbound_route(&self, route: &OutboundRoute) -> Result<(), StoreError>;

    /// Remove; absent is success.
    async fn delete_outbound_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<(), StoreError>;

    /// Insert or replace by connection.
    async fn put_outbound_number(&self, number: &OutboundNumber) -> Result<(), StoreError>;

    /// Remove; returns whether it existed.
    async fn delete_outbound_number(&self, connection: ConnectionId) -> Result<bool, StoreError>;

    async fn get_outbound_number(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<OutboundNumber>, StoreError>;

    /// The route's outbound numbers, oldest first.
    async fn outbound_numbers_on_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<Vec<OutboundNumber>, StoreError>;

    /// Record a call about to be dialled. With an idempotency key the customer used before
    /// (any age: keys are kept as long as their call), nothing is written and the first call
    /// comes back. Atomic across instances: of concurrent inserts with one key exactly one
    /// gets `Inserted`.
    async fn insert_outbound_call(
        &self,
        call: &OutboundCall,
    ) -> Result<OutboundCallInsert, StoreError>;

    /// Set a call's state and failure.
    async fn update_outbound_call(
        &self,
        call: CallId,
        state: OutboundCallState,
        failure: Option<String>,
    ) -> Result<(), StoreError>;

    async fn get_outbound_call(&self, call: CallId) -> Result<Option<OutboundCall>, StoreError>;

    /// Withdraw a call that was never dialled (refused by the rate limit), freeing its key.
    /// Absent is success.
    async fn delete_outbound_call(&self, call: CallId) -> Result<(), StoreError>;
}
