//! Storage of voice-URL mode: the secret a carrier signs its voice webhooks with, and each
//! voice-URL connection's SIP digest credentials; and the one read the webhook makes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::errors::StoreError;
use crate::ids::{CarrierAccountId, ConnectionId, CustomerId, IntegrationId, ProviderKind};
use crate::model::{ConnectionStatus, SealedSecret};
use crate::phone::E164;

/// A connection in voice-URL mode: the number's voice URL points at trunkline's generic
/// webhook, which answers with a dial to LiveKit using these SIP digest credentials (the
/// password sealed with the connection's [`crate::model::SealContext`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceBinding {
    pub connection_id: ConnectionId,
    /// The webhook URL the number's voice URL was pointed at.
    pub voice_url: String,
    pub sip_username: String,
    pub sealed_sip_password: SealedSecret,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One integration whose account id is the webhook's, with its webhook signing secret and,
/// when it has one, its connection of the called number.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceRouteCandidate {
    pub customer_id: CustomerId,
    pub integration_id: IntegrationId,
    /// Sealed with the integration's context.
    pub sealed_webhook_secret: SealedSecret,
    /// The customer's live (not disconnected) connection of the number, if any.
    pub connection: Option<VoiceRouteConnection>,
}

/// What the webhook needs of a connection to answer a call.
#[derive(Debug, Clone, PartialEq)]
pub struct VoiceRouteConnection {
    pub connection_id: ConnectionId,
    /// The integration the connection's secrets are sealed with.
    pub integration_id: IntegrationId,
    pub status: ConnectionStatus,
    /// The primary SIP target, raw as stored.
    pub sip_target: String,
    /// `None` when the connection is not in voice-URL mode.
    pub binding: Option<VoiceBinding>,
}

/// Webhook signing secrets and voice-URL bindings.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait VoiceUrlStore: Send + Sync {
    /// Store (`Some`) or remove (`None`) the secret the carrier signs the customer's webhooks
    /// with, for the integration `integration` of (customer, provider). One per (customer,
    /// provider): a new one replaces the old.
    async fn put_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        integration: IntegrationId,
        sealed: Option<SealedSecret>,
    ) -> Result<(), StoreError>;

    /// Whether (customer, provider) has a webhook secret for its current integration.
    async fn has_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError>;

    /// Insert or replace the connection's binding.
    async fn save_voice_binding(&self, binding: &VoiceBinding) -> Result<(), StoreError>;

    async fn get_voice_binding(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<VoiceBinding>, StoreError>;

    /// Remove it; absent is success.
    async fn delete_voice_binding(&self, connection: ConnectionId) -> Result<(), StoreError>;

    /// Everything the voice webhook needs, in ONE round trip to the database (it is on the
    /// call's critical path): every active integration at `provider` whose account id is
    /// `account` and that has a webhook secret for its current integration id, each with its
    /// live connection of `e164` and that connection's binding. Empty when none.
    async fn voice_route(
        &self,
        provider: ProviderKind,
        account: &CarrierAccountId,
        e164: &E164,
    ) -> Result<Vec<VoiceRouteCandidate>, StoreError>;
}
