//! Row types (native Postgres types) and their conversions to and from the domain.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use trunkline_core::model::{
    Actor, AuditEvent, CallRecord, Integration, NumberConnection, SealedSecret,
};
use trunkline_core::ports::{StoreError, WebhookEventRecord};
use trunkline_core::{
    AgentDispatchId, AuditEventId, CallId, CarrierAccountId, CarrierNumberId, ConnectionId,
    CredentialKeyId, CustomerId, DispatchRuleId, E164, IntegrationId, ProviderKind, RoomName,
    RouteId, SipTarget, SipTrunkId, WebhookEventId,
};
use uuid::Uuid;

use crate::codec::{self, corrupt, parse, parse_opt};
use crate::schema::{
    audit_events, calls, integrations, leases, number_connections, webhook_events,
};

fn to_json<T: Serialize>(column: &str, value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Other(format!("{column}: {e}")))
}

fn from_json<T: DeserializeOwned>(column: &str, value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| corrupt(column, e))
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = integrations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct IntegrationRow {
    pub id: Uuid,
    pub customer_id: String,
    pub provider: String,
    pub account_id: Option<String>,
    pub key_id: Option<String>,
    pub sealed_secret: Vec<u8>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl IntegrationRow {
    pub fn from_domain(i: &Integration) -> Self {
        Self {
            id: i.id.as_uuid(),
            customer_id: i.customer_id.as_str().to_owned(),
            provider: i.provider.as_str().to_owned(),
            account_id: i.account_id.as_ref().map(|a| a.as_str().to_owned()),
            key_id: i.key_id.as_ref().map(|k| k.as_str().to_owned()),
            sealed_secret: i.sealed_secret.0.clone(),
            status: codec::integration_status_str(i.status).to_owned(),
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }

    pub fn into_domain(self) -> Result<Integration, StoreError> {
        Ok(Integration {
            id: IntegrationId::from_uuid(self.id),
            customer_id: parse(
                "integrations.customer_id",
                &self.customer_id,
                CustomerId::parse,
            )?,
            provider: parse("integrations.provider", &self.provider, ProviderKind::parse)?,
            account_id: parse_opt(
                "integrations.account_id",
                self.account_id.as_deref(),
                CarrierAccountId::parse,
            )?,
            key_id: parse_opt(
                "integrations.key_id",
                self.key_id.as_deref(),
                CredentialKeyId::parse,
            )?,
            sealed_secret: SealedSecret(self.sealed_secret),
            status: codec::parse_integration_status(&self.status)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = number_connections,
    check_for_backend(diesel::pg::Pg),
    treat_none_as_null = true
)]
pub(crate) struct ConnectionRow {
    pub id: Uuid,
    pub customer_id: String,
    pub provider: String,
    pub integration_id: Uuid,
    pub number_id: String,
    pub e164: String,
    pub status: String,
    pub trunk_strategy: String,
    pub route_id: Option<String>,
    pub route_created: bool,
    pub route_targets: serde_json::Value,
    pub sip_target: String,
    pub routing: serde_json::Value,
    pub previous_routing: Option<serde_json::Value>,
    pub livekit_trunk_id: Option<String>,
    pub livekit_rule_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl ConnectionRow {
    pub fn from_domain(c: &NumberConnection) -> Result<Self, StoreError> {
        Ok(Self {
            id: c.id.as_uuid(),
            customer_id: c.customer_id.as_str().to_owned(),
            provider: c.provider.as_str().to_owned(),
            integration_id: c.integration_id.as_uuid(),
            number_id: c.number_id.as_str().to_owned(),
            e164: c.e164.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            trunk_strategy: c.trunk_strategy.as_str().to_owned(),
            route_id: c.route_id.as_ref().map(|r| r.as_str().to_owned()),
            route_created: c.route_created,
            route_targets: to_json("number_connections.route_targets", &c.route_targets)?,
            sip_target: c.sip_target.to_string(),
            routing: to_json("number_connections.routing", &c.routing)?,
            previous_routing: c
                .previous_routing
                .as_ref()
                .map(|v| to_json("number_connections.previous_routing", v))
                .transpose()?,
            livekit_trunk_id: c.livekit_trunk_id.as_ref().map(|t| t.as_str().to_owned()),
            livekit_rule_id: c.livekit_rule_id.as_ref().map(|r| r.as_str().to_owned()),
            last_error: c.last_error.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            connected_at: c.connected_at,
            disconnected_at: c.disconnected_at,
        })
    }

    pub fn into_domain(self) -> Result<NumberConnection, StoreError> {
        Ok(NumberConnection {
            id: ConnectionId::from_uuid(self.id),
            customer_id: parse(
                "number_connections.customer_id",
                &self.customer_id,
                CustomerId::parse,
            )?,
            provider: parse(
                "number_connections.provider",
                &self.provider,
                ProviderKind::parse,
            )?,
            integration_id: IntegrationId::from_uuid(self.integration_id),
            number_id: parse(
                "number_connections.number_id",
                &self.number_id,
                CarrierNumberId::parse,
            )?,
            e164: parse("number_connections.e164", &self.e164, E164::parse)?,
            status: codec::parse_connection_status(&self.status)?,
            trunk_strategy: codec::parse_trunk_strategy(&self.trunk_strategy)?,
            route_id: parse_opt(
                "number_connections.route_id",
                self.route_id.as_deref(),
                RouteId::parse,
            )?,
            route_created: self.route_created,
            route_targets: from_json("number_connections.route_targets", self.route_targets)?,
            sip_target: parse(
                "number_connections.sip_target",
                &self.sip_target,
                SipTarget::parse,
            )?,
            routing: from_json("number_connections.routing", self.routing)?,
            previous_routing: self
                .previous_routing
                .map(|v| from_json("number_connections.previous_routing", v))
                .transpose()?,
            livekit_trunk_id: parse_opt(
                "number_connections.livekit_trunk_id",
                self.livekit_trunk_id.as_deref(),
                SipTrunkId::parse,
            )?,
            livekit_rule_id: parse_opt(
                "number_connections.livekit_rule_id",
                self.livekit_rule_id.as_deref(),
                DispatchRuleId::parse,
            )?,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
            connected_at: self.connected_at,
            disconnected_at: self.disconnected_at,
        })
    }
}

#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = leases, check_for_backend(diesel::pg::Pg))]
pub(crate) struct LeaseRow {
    pub holder: String,
    pub token: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_events, check_for_backend(diesel::pg::Pg))]
pub(crate) struct WebhookEventRow {
    pub id: String,
    pub kind: String,
    pub room_name: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl WebhookEventRow {
    pub fn into_domain(self) -> Result<WebhookEventRecord, StoreError> {
        Ok(WebhookEventRecord {
            id: parse("webhook_events.id", &self.id, WebhookEventId::parse)?,
            kind: self.kind,
            room_name: parse_opt(
                "webhook_events.room_name",
                self.room_name.as_deref(),
                RoomName::parse,
            )?,
            received_at: self.received_at,
        })
    }
}

#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = calls, check_for_backend(diesel::pg::Pg))]
pub(crate) struct CallRow {
    pub id: Uuid,
    pub room_name: String,
    pub customer_id: Option<String>,
    pub connection_id: Option<Uuid>,
    pub sip_call_id: Option<String>,
    pub called: Option<String>,
    pub caller: Option<String>,
    pub status: String,
    pub dispatch_status: String,
    pub dispatch_id: Option<String>,
    pub dispatch_attempts: i32,
    pub agent_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl CallRow {
    pub fn into_domain(self) -> Result<CallRecord, StoreError> {
        Ok(CallRecord {
            id: CallId::from_uuid(self.id),
            room_name: parse("calls.room_name", &self.room_name, RoomName::parse)?,
            customer_id: parse_opt(
                "calls.customer_id",
                self.customer_id.as_deref(),
                CustomerId::parse,
            )?,
            connection_id: self.connection_id.map(ConnectionId::from_uuid),
            sip_call_id: self.sip_call_id,
            called: parse_opt("calls.called", self.called.as_deref(), E164::parse)?,
            caller: parse_opt("calls.caller", self.caller.as_deref(), E164::parse)?,
            status: codec::parse_call_status(&self.status)?,
            dispatch_status: codec::parse_dispatch_status(&self.dispatch_status)?,
            dispatch_id: parse_opt(
                "calls.dispatch_id",
                self.dispatch_id.as_deref(),
                AgentDispatchId::parse,
            )?,
            dispatch_attempts: codec::attempts_from_db(self.dispatch_attempts)?,
            agent_name: self.agent_name,
            started_at: self.started_at,
            answered_at: self.answered_at,
            ended_at: self.ended_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub(crate) struct AuditRow {
    pub id: Uuid,
    pub customer_id: String,
    pub provider: String,
    pub action: String,
    pub actor_subject: String,
    pub actor_role: String,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl AuditRow {
    pub fn from_domain(e: &AuditEvent) -> Self {
        Self {
            id: e.id.as_uuid(),
            customer_id: e.customer_id.as_str().to_owned(),
            provider: e.provider.as_str().to_owned(),
            action: e.action.as_str().to_owned(),
            actor_subject: e.actor.subject.clone(),
            actor_role: e.actor.role.clone(),
            details: e.details.clone(),
            request_id: e.request_id.clone(),
            at: e.at,
        }
    }

    pub fn into_domain(self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: AuditEventId::from_uuid(self.id),
            customer_id: parse(
                "audit_events.customer_id",
                &self.customer_id,
                CustomerId::parse,
            )?,
            provider: parse("audit_events.provider", &self.provider, ProviderKind::parse)?,
            action: codec::parse_audit_action(&self.action)?,
            actor: Actor {
                subject: self.actor_subject,
                role: self.actor_role,
            },
            details: self.details,
            request_id: self.request_id,
            at: self.at,
        })
    }
}
