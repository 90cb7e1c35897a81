//! Webhook signing secrets, voice-URL bindings, and the voice webhook's one read.

use async_trait::async_trait;

use super::MemoryStore;
use super::tables::WebhookSecret;
use crate::ids::{CarrierAccountId, ConnectionId, CustomerId, IntegrationId, ProviderKind};
use crate::model::{ConnectionStatus, IntegrationStatus, SealedSecret};
use crate::phone::E164;
use crate::ports::{
    StoreError, VoiceBinding, VoiceRouteCandidate, VoiceRouteConnection, VoiceUrlStore,
};

#[async_trait]
impl VoiceUrlStore for MemoryStore {
    async fn put_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        integration: IntegrationId,
        sealed: Option<SealedSecret>,
    ) -> Result<(), StoreError> {
        let mut t = self.enter("put_webhook_secret")?;
        t.webhook_secrets
            .retain(|w| !(&w.customer == customer && w.provider == provider));
        if let Some(sealed) = sealed {
            t.webhook_secrets.push(WebhookSecret {
                customer: customer.clone(),
                provider,
                integration,
                sealed,
            });
        }
        Ok(())
    }

    async fn has_webhook_secret(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError> {
        let t = self.enter("has_webhook_secret")?;
        // A secret sealed for a replaced integration is not the current one's.
        let Some(current) = t.integration(customer, provider).map(|i| i.id) else {
            return Ok(false);
        };
        Ok(t.webhook_secrets
            .iter()
            .any(|w| &w.customer == customer && w.provider == provider && w.integration == current))
    }

    async fn save_voice_binding(&self, binding: &VoiceBinding) -> Result<(), StoreError> {
        let mut t = self.enter("save_voice_binding")?;
        match t
            .voice_bindings
            .iter_mut()
            .find(|b| b.connection_id == binding.connection_id)
        {
            // A replaced binding keeps the time it was first stored.
            Some(stored) => {
                *stored = VoiceBinding {
                    created_at: stored.created_at,
                    ..binding.clone()
                };
            }
            None => t.voice_bindings.push(binding.clone()),
        }
        Ok(())
    }

    async fn get_voice_binding(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<VoiceBinding>, StoreError> {
        let t = self.enter("get_voice_binding")?;
        Ok(t.voice_bindings
            .iter()
            .find(|b| b.connection_id == connection)
            .cloned())
    }

    async fn delete_voice_binding(&self, connection: ConnectionId) -> Result<(), StoreError> {
        let mut t = self.enter("delete_voice_binding")?;
        t.voice_bindings.retain(|b| b.connection_id != connection);
        Ok(())
    }

    async fn voice_route(
        &self,
        provider: ProviderKind,
        account: &CarrierAccountId,
        e164: &E164,
    ) -> Result<Vec<VoiceRouteCandidate>, StoreError> {
        let t = self.enter("voice_route")?;
        let mut candidates = Vec::new();
        for i in t.integrations.iter().filter(|i| {
            i.provider == provider
                && i.account_id.as_ref() == Some(account)
                && i.status == IntegrationStatus::Active
        }) {
            let Some(secret) = t.webhook_secrets.iter().find(|w| {
                w.customer == i.customer_id && w.provider == provider && w.integration == i.id
            }) else {
                continue;
            };
            // The most recently updated live connection of the number, if several.
            let connection = t
                .connections
                .iter()
                .filter(|c| {
                    c.customer_id == i.customer_id
                        && c.provider == provider
                        && &c.e164 == e164
                        && c.status != ConnectionStatus::Disconnected
                })
                .max_by_key(|c| c.updated_at)
                .map(|c| VoiceRouteConnection {
                    connection_id: c.id,
                    integration_id: c.integration_id,
                    status: c.status,
                    sip_target: c.sip_target.to_string(),
                    binding: t
                        .voice_bindings
                        .iter()
                        .find(|b| b.connection_id == c.id)
                        .cloned(),
                });
            candidates.push(VoiceRouteCandidate {
                customer_id: i.customer_id.clone(),
                integration_id: i.id,
                sealed_webhook_secret: secret.sealed.clone(),
                connection,
            });
        }
        candidates.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        Ok(candidates)
    }
}
