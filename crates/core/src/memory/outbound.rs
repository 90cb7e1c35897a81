//! Outbound routes, outbound numbers and outbound calls with their idempotency keys.

use async_trait::async_trait;
use chrono::Utc;

use super::MemoryStore;
use crate::ids::{CallId, ConnectionId, CustomerId, ProviderKind, RouteId};
use crate::ports::{
    OutboundCall, OutboundCallInsert, OutboundCallState, OutboundNumber, OutboundRoute,
    OutboundStore, StoreError,
};

#[async_trait]
impl OutboundStore for MemoryStore {
    async fn get_outbound_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<Option<OutboundRoute>, StoreError> {
        let t = self.enter("get_outbound_route")?;
        Ok(t.route(customer, provider, route).cloned())
    }

    async fn put_outbound_route(&self, route: &OutboundRoute) -> Result<(), StoreError> {
        let mut t = self.enter("put_outbound_route")?;
        match t.outbound_routes.iter_mut().find(|r| {
            r.customer_id == route.customer_id
                && r.provider == route.provider
                && r.route_id == route.route_id
        }) {
            // A replaced route keeps the time it was first stored.
            Some(stored) => {
                *stored = OutboundRoute {
                    created_at: stored.created_at,
                    ..route.clone()
                };
            }
            None => t.outbound_routes.push(route.clone()),
        }
        Ok(())
    }

    async fn delete_outbound_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<(), StoreError> {
        let mut t = self.enter("delete_outbound_route")?;
        t.outbound_routes.retain(|r| {
            !(&r.customer_id == customer && r.provider == provider && &r.route_id == route)
        });
        Ok(())
    }

    async fn put_outbound_number(&self, number: &OutboundNumber) -> Result<(), StoreError> {
        let mut t = self.enter("put_outbound_number")?;
        match t
            .outbound_numbers
            .iter_mut()
            .find(|n| n.connection_id == number.connection_id)
        {
            // A replaced number keeps the time it was first stored.
            Some(stored) => {
                *stored = OutboundNumber {
                    created_at: stored.created_at,
                    ..number.clone()
                };
            }
            None => t.outbound_numbers.push(number.clone()),
        }
        Ok(())
    }

    async fn delete_outbound_number(&self, connection: ConnectionId) -> Result<bool, StoreError> {
        let mut t = self.enter("delete_outbound_number")?;
        let before = t.outbound_numbers.len();
        t.outbound_numbers.retain(|n| n.connection_id != connection);
        Ok(t.outbound_numbers.len() != before)
    }

    async fn get_outbound_number(
        &self,
        connection: ConnectionId,
    ) -> Result<Option<OutboundNumber>, StoreError> {
        let t = self.enter("get_outbound_number")?;
        Ok(t.outbound_numbers
            .iter()
            .find(|n| n.connection_id == connection)
            .cloned())
    }

    async fn outbound_numbers_on_route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Result<Vec<OutboundNumber>, StoreError> {
        let t = self.enter("outbound_numbers_on_route")?;
        let mut found: Vec<OutboundNumber> = t
            .outbound_numbers
            .iter()
            .filter(|n| {
                &n.customer_id == customer && n.provider == provider && &n.route_id == route
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.e164).cmp(&(b.created_at, &b.e164)));
        Ok(found)
    }

    async fn insert_outbound_call(
        &self,
        call: &OutboundCall,
    ) -> Result<OutboundCallInsert, StoreError> {
        let mut t = self.enter("insert_outbound_call")?;
        // Keys are the customer's own, and kept as long as their call.
        if let Some(key) = &call.idempotency_key
            && let Some(first) = t.outbound_calls.values().find(|c| {
                c.customer_id == call.customer_id && c.idempotency_key.as_ref() == Some(key)
            })
        {
            return Ok(OutboundCallInsert::Existing(Box::new(first.clone())));
        }
        if t.outbound_calls.contains_key(&call.call_id)
            || t.outbound_calls
                .values()
                .any(|c| c.room_name == call.room_name)
        {
            return Err(StoreError::Conflict(
                "outbound_calls: the call exists".to_owned(),
            ));
        }
        t.outbound_calls.insert(call.call_id, call.clone());
        Ok(OutboundCallInsert::Inserted)
    }

    async fn update_outbound_call(
        &self,
        call: CallId,
        state: OutboundCallState,
        failure: Option<String>,
    ) -> Result<(), StoreError> {
        let mut t = self.enter("update_outbound_call")?;
        if let Some(stored) = t.outbound_calls.get_mut(&call) {
            stored.state = state;
            stored.failure = failure;
            stored.updated_at = Utc::now();
        }
        Ok(())
    }

    async fn get_outbound_call(&self, call: CallId) -> Result<Option<OutboundCall>, StoreError> {
        let t = self.enter("get_outbound_call")?;
        Ok(t.outbound_calls.get(&call).cloned())
    }

    async fn delete_outbound_call(&self, call: CallId) -> Result<(), StoreError> {
        let mut t = self.enter("delete_outbound_call")?;
        t.outbound_calls.remove(&call);
        Ok(())
    }
}
