//! Integrations, number connections and the audit trail.

use async_trait::async_trait;

use super::{MemoryStore, take};
use crate::ids::{CarrierNumberId, ConnectionId, CustomerId, ProviderKind};
use crate::model::{AuditEvent, ConnectionStatus, Integration, NumberConnection};
use crate::phone::E164;
use crate::ports::{AuditLog, ConnectionStore, IntegrationStore, StoreError};

#[async_trait]
impl IntegrationStore for MemoryStore {
    async fn get_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<Integration>, StoreError> {
        let t = self.enter("get_integration")?;
        Ok(t.integration(customer, provider).cloned())
    }

    async fn put_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let mut t = self.enter("put_integration")?;
        // One per (customer, provider): the new one replaces every field, its id included.
        match t.integrations.iter_mut().find(|i| {
            i.customer_id == integration.customer_id && i.provider == integration.provider
        }) {
            Some(stored) => *stored = integration.clone(),
            None => t.integrations.push(integration.clone()),
        }
        Ok(())
    }

    async fn delete_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError> {
        let mut t = self.enter("delete_integration")?;
        let before = t.integrations.len();
        t.integrations
            .retain(|i| !(&i.customer_id == customer && i.provider == provider));
        Ok(t.integrations.len() != before)
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn get_connection(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let t = self.enter("get_connection")?;
        Ok(t.connections
            .iter()
            .find(|c| {
                &c.customer_id == customer && c.provider == provider && &c.number_id == number
            })
            .cloned())
    }

    async fn get_connection_by_id(
        &self,
        id: ConnectionId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let t = self.enter("get_connection_by_id")?;
        Ok(t.connections.iter().find(|c| c.id == id).cloned())
    }

    async fn find_live_connection_by_e164(
        &self,
        e164: &E164,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let t = self.enter("find_live_connection_by_e164")?;
        Ok(t.connections
            .iter()
            .filter(|c| &c.e164 == e164 && c.status != ConnectionStatus::Disconnected)
            .max_by_key(|c| (c.updated_at, c.id))
            .cloned())
    }

    async fn list_connections(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let t = self.enter("list_connections")?;
        let mut found: Vec<NumberConnection> = t
            .connections
            .iter()
            .filter(|c| &c.customer_id == customer && c.provider == provider)
            .cloned()
            .collect();
        found.sort_by_key(|c| (c.created_at, c.id));
        Ok(found)
    }

    async fn save_connection(&self, connection: &NumberConnection) -> Result<(), StoreError> {
        let mut t = self.enter("save_connection")?;
        if t.connections.iter().any(|c| {
            c.id != connection.id
                && c.customer_id == connection.customer_id
                && c.provider == connection.provider
                && c.number_id == connection.number_id
        }) {
            return Err(StoreError::Conflict(
                "number_connections: the customer already has a connection of this number"
                    .to_owned(),
            ));
        }
        match t.connections.iter_mut().find(|c| c.id == connection.id) {
            Some(stored) => *stored = connection.clone(),
            None => t.connections.push(connection.clone()),
        }
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut t = self.enter("append_audit")?;
        if t.audit.iter().any(|e| e.id == event.id) {
            return Err(StoreError::Conflict(
                "audit_events: the id exists".to_owned(),
            ));
        }
        t.audit.push(event.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        customer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let t = self.enter("list_audit")?;
        let mut found: Vec<AuditEvent> = t
            .audit
            .iter()
            .filter(|e| &e.customer_id == customer)
            .cloned()
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        Ok(take(found, limit))
    }
}
