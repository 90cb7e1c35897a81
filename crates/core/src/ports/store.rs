use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::errors::StoreError;
use crate::ids::{
    AgentDispatchId, CallId, CarrierNumberId, ConnectionId, CustomerId, ProviderKind, RoomName,
    WebhookEventId,
};
use crate::model::{
    AuditEvent, CallRecord, ConnectionCheck, DispatchClaim, Integration, IntegrationSettings,
    Lease, LeaseKey, LeaseState, NumberConnection, PurchasedNumber,
};
use crate::phone::E164;

/// Stored carrier credentials: at most one integration per (customer, provider).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// The customer's integration at `provider`; `Ok(None)` when there is none.
    async fn get_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<Integration>, StoreError>;

    /// Insert, or replace every field of the customer's existing integration at the same
    /// provider (including its id: callers that want to keep the id pass the old one).
    async fn put_integration(&self, integration: &Integration) -> Result<(), StoreError>;

    /// Remove it. Returns whether one existed. Connections are kept (as history).
    async fn delete_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError>;
}

/// Number connections, unique per (customer, provider, phone number sid).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn get_connection(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<NumberConnection>, StoreError>;

    async fn get_connection_by_id(
        &self,
        id: ConnectionId,
    ) -> Result<Option<NumberConnection>, StoreError>;

    /// The live (not `disconnected`) connection whose number is `e164`, used to route an
    /// inbound call. When several customers claim the same number, the most recently
    /// updated live one wins.
    async fn find_live_connection_by_e164(
        &self,
        e164: &E164,
    ) -> Result<Option<NumberConnection>, StoreError>;

    /// Every connection of the customer at the provider, any status, oldest first.
    async fn list_connections(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Vec<NumberConnection>, StoreError>;

    /// Insert or update by `id` (every field written).
    ///
    /// # Errors
    /// `Conflict` when another row (different id) has the same customer, provider and number.
    async fn save_connection(&self, connection: &NumberConnection) -> Result<(), StoreError>;
}

/// Leases that serialize work on one number across server instances.
///
/// A lease is held until released or until its time-to-live runs out (its holder died).
/// Times are the store's clock, so instances with skewed clocks still agree.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Take the lease if nobody holds it or the holder's lease expired.
    /// `Ok(None)` when another holder's lease is live. Atomic across instances.
    async fn try_acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;

    /// Take the lease only if nobody has held it since `seen` was peeked (`peek_lease`):
    /// `seen` is `None` and the key was never taken, or the stored token is still `seen`'s
    /// and the lease is not held now. A `seen` that was held never succeeds: its holder may
    /// have been at work after the peek. `Ok(None)` otherwise, whether the lease is held or
    /// only changed hands (then `try_acquire_lease` may still take it). Atomic across
    /// instances: of callers with the same `seen`, at most one succeeds.
    ///
    /// Lets a reader that peeked the lease free, read what it guards and then needs to change
    /// it keep that read: success means no holder was at work between the peek and now.
    async fn try_acquire_lease_unchanged(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
        seen: Option<LeaseState>,
    ) -> Result<Option<Lease>, StoreError>;

    /// Extend a held lease. `Ok(None)` when it was lost (expired and taken over, or released).
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError>;

    /// Release a held lease. A lease that was already lost is left to its new holder.
    /// Releasing gives the lease a new token (it does not forget the key), so `peek_lease`
    /// before and after tells that someone held it in between.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// The lease's state without taking it: `None` for a key never taken. Lets a reader
    /// that only relies on what a lease guards check that no holder was at work while it
    /// read: peek (not held), read, peek again (the same state).
    async fn peek_lease(&self, key: &LeaseKey) -> Result<Option<LeaseState>, StoreError>;
}

/// A received webhook event, as remembered for deduplication and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEventRecord {
    pub id: WebhookEventId,
    /// LiveKit's event name (`participant_joined`, ...).
    pub kind: String,
    pub room_name: Option<RoomName>,
    pub received_at: DateTime<Utc>,
}

/// Who claims a call's agent dispatch, and for how long (see `CallStore::claim_dispatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub claimant: String,
    pub ttl: Duration,
}

/// What `CallStore::record_join` did.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinRecorded {
    /// The event was seen before and its room has a call: nothing was changed.
    Duplicate,
    /// The call as stored after the merge and, when a claim was asked for, after the claim
    /// (so a refused claim's cancellation, or another worker's dispatch, shows without
    /// reading the call again), and the claim's outcome.
    Recorded {
        call: Box<CallRecord>,
        claim: Option<DispatchClaim>,
    },
}

/// Webhook deduplication, call records and the agent-dispatch claim.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CallStore: Send + Sync {
    /// Remember an event id. Returns `true` the first time an id is seen and `false` for
    /// every later delivery, across instances: exactly one caller gets `true`.
    async fn record_webhook_event(&self, event: &WebhookEventRecord) -> Result<bool, StoreError>;

    /// The most recently received event for a room, if any.
    async fn last_webhook_event(
        &self,
        room: &RoomName,
    ) -> Result<Option<WebhookEventRecord>, StoreError>;

    /// Insert the call for `call.room_name` if there is none; otherwise merge into the
    /// stored one: fields the stored row lacks (`None`) are filled from `call`, and the
    /// status only moves forward (`ringing` → `active` → `ended`; `unrouted` stays). Returns
    /// the stored record after the merge. The stored `id` wins over `call.id`. Atomic.
    async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError>;

    /// Mark the room's call ended at `at` (the first end time wins), and cancel its
    /// dispatch when one is due or under way (`failed`, `claimed` → `cancelled`; the
    /// claimant of a claim under way can still `complete_dispatch`). `Ok(None)` when no
    /// call exists for the room.
    async fn end_call(
        &self,
        room: &RoomName,
        at: DateTime<Utc>,
    ) -> Result<Option<CallRecord>, StoreError>;

    async fn get_call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError>;

    async fn get_call_by_room(&self, room: &RoomName) -> Result<Option<CallRecord>, StoreError>;

    /// The connection's most recent calls, newest first.
    async fn recent_calls(
        &self,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError>;

    /// Claim the right to dispatch the agent for the room's call. Exactly one concurrent
    /// caller wins; a claim whose `ttl` ran out without completing (holder died) can be won
    /// again; a completed dispatch is never claimed again. Winning increments
    /// `dispatch_attempts`.
    ///
    /// A call that ended is never claimed: ended as stored, or its room's `room_finished`
    /// event recorded (LiveKit may send it before anything else of the call). The claim
    /// decides this atomically, in the same step that would have claimed, and then cancels
    /// the dispatch (status `cancelled`, no attempt counted; the call is marked ended at the
    /// event's receipt when only the event said so) and answers `HeldByOther`. So a worker
    /// that listed the call before its end, on any instance, cannot dispatch it.
    async fn claim_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        ttl: Duration,
    ) -> Result<DispatchClaim, StoreError>;

    /// Record a successful dispatch (status `dispatched`). Returns `false`, and changes
    /// nothing, when the call is already dispatched or `claimant` no longer holds the claim.
    /// A claim that the call's end cancelled while its holder was dispatching is still held:
    /// the agent may be in the room, and the record says so.
    async fn complete_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        dispatch_id: &AgentDispatchId,
    ) -> Result<bool, StoreError>;

    /// Record a failed attempt and drop the claim: status `failed` (to be retried) or
    /// `gave_up`. Returns `false` when `claimant` no longer holds the claim, or the call's
    /// end cancelled it (it stays `cancelled`).
    async fn fail_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        gave_up: bool,
    ) -> Result<bool, StoreError>;

    /// Calls not ended whose dispatch is `failed`, or `claimed` with an expired claim,
    /// oldest first: the work a background retrier picks up after failures and crashes.
    async fn dispatches_due(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError>;

    /// A SIP participant's join: remember `event` (as `record_webhook_event`); when it was
    /// seen before and its room has a call, stop (`Duplicate`); otherwise merge `call` (as
    /// `upsert_call`) and, when `claim` is given, claim the call's dispatch (as
    /// `claim_dispatch`). The default runs those methods one after another, which is correct
    /// because each is atomic and idempotent; a store may do better (SQLite runs them as one
    /// transaction: one fsync instead of three; PostgreSQL records the event and the call in one
    /// statement, then claims in a second one that also answers the lost claim's reason and
    /// the stored call). A delivery whose event was seen before never claims.
    async fn record_join(
        &self,
        event: &WebhookEventRecord,
        call: &CallRecord,
        claim: Option<ClaimRequest>,
    ) -> Result<JoinRecorded, StoreError> {
        let first = self.record_webhook_event(event).await?;
        if !first && self.get_call_by_room(&call.room_name).await?.is_some() {
            return Ok(JoinRecorded::Duplicate);
        }
        let mut call = self.upsert_call(call).await?;
        let claim = match claim {
            Some(c) => Some(
                self.claim_dispatch(&call.room_name, &c.claimant, c.ttl)
                    .await?,
            ),
            None => None,
        };
        match &claim {
            None => {}
            // What the claim wrote.
            Some(DispatchClaim::Won { attempt }) => {
                call.dispatch_status = crate::model::DispatchStatus::Claimed;
                call.dispatch_attempts = *attempt;
            }
            Some(_) => {
                if let Some(after) = self.get_call_by_room(&call.room_name).await? {
                    call = after;
                }
            }
        }
        Ok(JoinRecorded::Recorded {
            call: Box::new(call),
            claim,
        })
    }
}

/// The audit trail. Append-only.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// The customer's events, newest first.
    async fn list_audit(
        &self,
        customer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Readiness of the store, for `/readyz`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// `Ok` when the database answers and every migration is applied.
    ///
    /// # Errors
    /// `Unavailable` when it does not answer; `NotMigrated` when migrations are pending.
    async fn check_ready(&self) -> Result<(), StoreError>;
}

/// Fleet operations across customers: the reconciler's checks, the numbers trunkline
/// bought, per-integration settings, and the paged listings the support views read.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Customer ids that have an integration or a connection, ascending, strictly after
    /// `after`, at most `limit`.
    async fn list_customers(
        &self,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError>;

    /// Connections of every customer, any status, ordered by id, strictly after `after`,
    /// at most `limit`.
    async fn list_all_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<NumberConnection>, StoreError>;

    /// Insert or replace the connection's check.
    async fn save_check(&self, check: &ConnectionCheck) -> Result<(), StoreError>;

    /// The checks of these connections (those that have one), in no particular order.
    async fn get_checks(&self, ids: &[ConnectionId]) -> Result<Vec<ConnectionCheck>, StoreError>;

    /// Insert or replace (by customer, provider, number id) a purchase record.
    async fn save_purchase(&self, purchase: &PurchasedNumber) -> Result<(), StoreError>;

    /// `Ok(None)` when trunkline never bought this number for this customer.
    async fn get_purchase(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<PurchasedNumber>, StoreError>;

    /// `Ok(None)` when never set (every setting at its default).
    async fn get_settings(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<IntegrationSettings>, StoreError>;

    /// Insert or replace.
    async fn put_settings(&self, settings: &IntegrationSettings) -> Result<(), StoreError>;
}

/// Everything a store adapter provides. Implemented automatically.
pub trait Store:
    IntegrationStore
    + ConnectionStore
    + LeaseStore
    + CallStore
    + AuditLog
    + StoreHealth
    + FleetStore
    + super::SealedSecretStore
    + super::JobStore
    + super::OutboundStore
    + super::VoiceUrlStore
{
}

impl<T> Store for T where
    T: IntegrationStore
        + ConnectionStore
        + LeaseStore
        + CallStore
        + AuditLog
        + StoreHealth
        + FleetStore
        + super::SealedSecretStore
        + super::JobStore
        + super::OutboundStore
        + super::VoiceUrlStore
{
}
