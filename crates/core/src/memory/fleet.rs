//! Fleet operations across customers, and the walk over every sealed secret that key
//! rotation makes.

use async_trait::async_trait;

use super::{MemoryStore, Tables, take};
use crate::ids::{CarrierNumberId, ConnectionId, CustomerId, ProviderKind};
use crate::model::{
    ConnectionCheck, IntegrationSettings, NumberConnection, PurchasedNumber, SealContext,
    SealedSecret,
};
use crate::ports::{FleetStore, SealedKind, SealedRow, SealedSecretStore, StoreError};

#[async_trait]
impl FleetStore for MemoryStore {
    async fn list_customers(
        &self,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let t = self.enter("list_customers")?;
        let mut ids: Vec<CustomerId> = t
            .integrations
            .iter()
            .map(|i| &i.customer_id)
            .chain(t.connections.iter().map(|c| &c.customer_id))
            .filter(|c| after.as_ref().is_none_or(|a| *c > a))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        Ok(take(ids, limit))
    }

    async fn list_all_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let t = self.enter("list_all_connections")?;
        let mut found: Vec<NumberConnection> = t
            .connections
            .iter()
            .filter(|c| after.is_none_or(|a| c.id > a))
            .cloned()
            .collect();
        found.sort_by_key(|c| c.id);
        Ok(take(found, limit))
    }

    async fn save_check(&self, check: &ConnectionCheck) -> Result<(), StoreError> {
        let mut t = self.enter("save_check")?;
        t.checks.insert(check.connection_id, check.clone());
        Ok(())
    }

    async fn get_checks(&self, ids: &[ConnectionId]) -> Result<Vec<ConnectionCheck>, StoreError> {
        let t = self.enter("get_checks")?;
        Ok(ids
            .iter()
            .filter_map(|i| t.checks.get(i).cloned())
            .collect())
    }

    async fn save_purchase(&self, purchase: &PurchasedNumber) -> Result<(), StoreError> {
        let mut t = self.enter("save_purchase")?;
        match t.purchases.iter_mut().find(|p| {
            p.customer_id == purchase.customer_id
                && p.provider == purchase.provider
                && p.number_id == purchase.number_id
        }) {
            Some(stored) => *stored = purchase.clone(),
            None => t.purchases.push(purchase.clone()),
        }
        Ok(())
    }

    async fn get_purchase(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<PurchasedNumber>, StoreError> {
        let t = self.enter("get_purchase")?;
        Ok(t.purchases
            .iter()
            .find(|p| {
                &p.customer_id == customer && p.provider == provider && &p.number_id == number
            })
            .cloned())
    }

    async fn get_settings(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<IntegrationSettings>, StoreError> {
        let t = self.enter("get_settings")?;
        Ok(t.settings
            .iter()
            .find(|s| &s.customer_id == customer && s.provider == provider)
            .cloned())
    }

    async fn put_settings(&self, settings: &IntegrationSettings) -> Result<(), StoreError> {
        let mut t = self.enter("put_settings")?;
        match t
            .settings
            .iter_mut()
            .find(|s| s.customer_id == settings.customer_id && s.provider == settings.provider)
        {
            Some(stored) => *stored = settings.clone(),
            None => t.settings.push(settings.clone()),
        }
        Ok(())
    }
}

/// Parts of a composite key, joined as the SQL stores join them (U+001F).
fn key_of(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

/// The context a secret of (customer, provider) is sealed with: their current integration's.
fn current_context(
    t: &Tables,
    customer: &CustomerId,
    provider: ProviderKind,
) -> Option<SealContext> {
    t.integration(customer, provider).map(|i| SealContext {
        customer_id: i.customer_id.clone(),
        integration_id: i.id,
        provider,
    })
}

/// Every stored secret of `kind`, unsorted.
fn rows_of(t: &Tables, kind: SealedKind) -> Vec<SealedRow> {
    match kind {
        SealedKind::Credentials => t
            .integrations
            .iter()
            .map(|i| SealedRow {
                key: i.id.to_string(),
                context: Some(SealContext {
                    customer_id: i.customer_id.clone(),
                    integration_id: i.id,
                    provider: i.provider,
                }),
                sealed: i.sealed_secret.clone(),
            })
            .collect(),
        // Sealed with the integration the secret was stored for.
        SealedKind::WebhookSecret => t
            .webhook_secrets
            .iter()
            .map(|w| SealedRow {
                key: key_of(&[w.customer.as_str(), w.provider.as_str()]),
                context: Some(SealContext {
                    customer_id: w.customer.clone(),
                    integration_id: w.integration,
                    provider: w.provider,
                }),
                sealed: w.sealed.clone(),
            })
            .collect(),
        SealedKind::OutboundPassword => t
            .outbound_routes
            .iter()
            .map(|r| SealedRow {
                key: key_of(&[
                    r.customer_id.as_str(),
                    r.provider.as_str(),
                    r.route_id.as_str(),
                ]),
                context: current_context(t, &r.customer_id, r.provider),
                sealed: r.sealed_password.clone(),
            })
            .collect(),
        // Sealed with its connection's context.
        SealedKind::VoiceSipPassword => t
            .voice_bindings
            .iter()
            .map(|b| SealedRow {
                key: b.connection_id.to_string(),
                context: t
                    .connections
                    .iter()
                    .find(|c| c.id == b.connection_id)
                    .map(|c| SealContext {
                        customer_id: c.customer_id.clone(),
                        integration_id: c.integration_id,
                        provider: c.provider,
                    }),
                sealed: b.sealed_sip_password.clone(),
            })
            .collect(),
    }
}

/// The stored secret of `kind` under `key`, to replace in place.
fn secret_mut<'t>(t: &'t mut Tables, kind: SealedKind, key: &str) -> Option<&'t mut SealedSecret> {
    match kind {
        SealedKind::Credentials => t
            .integrations
            .iter_mut()
            .find(|i| i.id.to_string() == key)
            .map(|i| &mut i.sealed_secret),
        SealedKind::WebhookSecret => t
            .webhook_secrets
            .iter_mut()
            .find(|w| key_of(&[w.customer.as_str(), w.provider.as_str()]) == key)
            .map(|w| &mut w.sealed),
        SealedKind::OutboundPassword => t
            .outbound_routes
            .iter_mut()
            .find(|r| {
                key_of(&[
                    r.customer_id.as_str(),
                    r.provider.as_str(),
                    r.route_id.as_str(),
                ]) == key
            })
            .map(|r| &mut r.sealed_password),
        SealedKind::VoiceSipPassword => t
            .voice_bindings
            .iter_mut()
            .find(|b| b.connection_id.to_string() == key)
            .map(|b| &mut b.sealed_sip_password),
    }
}

#[async_trait]
impl SealedSecretStore for MemoryStore {
    async fn sealed_after(
        &self,
        kind: SealedKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let t = self.enter("sealed_after")?;
        let mut rows: Vec<SealedRow> = rows_of(&t, kind)
            .into_iter()
            .filter(|r| after.as_ref().is_none_or(|a| r.key > *a))
            .collect();
        // Byte order of the keys, as the walk's contract says.
        rows.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        Ok(take(rows, limit))
    }

    async fn replace_sealed(
        &self,
        kind: SealedKind,
        key: &str,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("replace_sealed")?;
        // `updated_at` is left alone: the secret did not change, only its wrapping.
        match secret_mut(&mut t, kind, key).filter(|s| *s == expected) {
            Some(stored) => {
                stored.clone_from(new);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
