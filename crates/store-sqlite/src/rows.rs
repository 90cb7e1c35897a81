//! Row types (SQLite storage forms) and their conversions to and from the domain.
//!
//! uuids are stored as lower-case hyphenated TEXT, times as INTEGER microseconds since the
//! Unix epoch (UTC; exact to the microsecond like Postgres, and sortable), JSON as TEXT.

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

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(column: &str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| corrupt(column, "time out of range"))
}

fn opt_from_micros(column: &str, v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(|v| from_micros(column, v)).transpose()
}

pub(crate) fn uuid_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

pub(crate) fn parse_uuid(column: &str, raw: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(raw).map_err(|e| corrupt(column, e))
}

fn json_text<T: Serialize>(column: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(format!("{column}: {e}")))
}

fn from_json_text<T: DeserializeOwned>(column: &str, raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| corrupt(column, e))
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = integrations, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct IntegrationRow {
    pub id: String,
    pub customer_id: String,
    pub provider: String,
    pub account_id: Option<String>,
    pub key_id: Option<String>,
    pub sealed_secret: Vec<u8>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl IntegrationRow {
    pub fn from_domain(i: &Integration) -> Self {
        Self {
            id: uuid_text(i.id.as_uuid()),
            customer_id: i.customer_id.as_str().to_owned(),
            provider: i.provider.as_str().to_owned(),
            account_id: i.account_id.as_ref().map(|a| a.as_str().to_owned()),
            key_id: i.key_id.as_ref().map(|k| k.as_str().to_owned()),
            sealed_secret: i.sealed_secret.0.clone(),
            status: codec::integration_status_str(i.status).to_owned(),
            created_at: micros(i.created_at),
            updated_at: micros(i.updated_at),
        }
    }

    pub fn into_domain(self) -> Result<Integration, StoreError> {
        Ok(Integration {
            id: IntegrationId::from_uuid(parse_uuid("integrations.id", &self.id)?),
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
            created_at: from_micros("integrations.created_at", self.created_at)?,
            updated_at: from_micros("integrations.updated_at", self.updated_at)?,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = number_connections,
    check_for_backend(diesel::sqlite::Sqlite),
    treat_none_as_null = true
)]
pub(crate) struct ConnectionRow {
    pub id: String,
    pub customer_id: String,
    pub provider: String,
    pub integration_id: String,
    pub number_id: String,
    pub e164: String,
    pub status: String,
    pub trunk_strategy: String,
    pub route_id: Option<String>,
    pub route_created: bool,
    pub route_targets: String,
    pub sip_target: String,
    pub routing: String,
    pub previous_routing: Option<String>,
    pub livekit_trunk_id: Option<String>,
    pub livekit_rule_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub connected_at: Option<i64>,
    pub disconnected_at: Option<i64>,
}

impl ConnectionRow {
    pub fn from_domain(c: &NumberConnection) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid_text(c.id.as_uuid()),
            customer_id: c.customer_id.as_str().to_owned(),
            provider: c.provider.as_str().to_owned(),
            integration_id: uuid_text(c.integration_id.as_uuid()),
            number_id: c.number_id.as_str().to_owned(),
            e164: c.e164.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
            trunk_strategy: c.trunk_strategy.as_str().to_owned(),
            route_id: c.route_id.as_ref().map(|r| r.as_str().to_owned()),
            route_created: c.route_created,
            route_targets: json_text("number_connections.route_targets", &c.route_targets)?,
            sip_target: c.sip_target.to_string(),
            routing: json_text("number_connections.routing", &c.routing)?,
            previous_routing: c
                .previous_routing
                .as_ref()
                .map(|v| json_text("number_connections.previous_routing", v))
                .transpose()?,
            livekit_trunk_id: c.livekit_trunk_id.as_ref().map(|t| t.as_str().to_owned()),
            livekit_rule_id: c.livekit_rule_id.as_ref().map(|r| r.as_str().to_owned()),
            last_error: c.last_error.clone(),
            created_at: micros(c.created_at),
            updated_at: micros(c.updated_at),
            connected_at: c.connected_at.map(micros),
            disconnected_at: c.disconnected_at.map(micros),
        })
    }

    pub fn into_domain(self) -> Result<NumberConnection, StoreError> {
        Ok(NumberConnection {
            id: ConnectionId::from_uuid(parse_uuid("number_connections.id", &self.id)?),
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
            integration_id: IntegrationId::from_uuid(parse_uuid(
                "number_connections.integration_id",
                &self.integration_id,
            )?),
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
            route_targets: from_json_text("number_connections.route_targets", &self.route_targets)?,
            sip_target: parse(
                "number_connections.sip_target",
                &self.sip_target,
                SipTarget::parse,
            )?,
            routing: from_json_text("number_connections.routing", &self.routing)?,
            previous_routing: self
                .previous_routing
                .as_deref()
                .map(|v| from_json_text("number_connections.previous_routing", v))
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
            created_at: from_micros("number_connections.created_at", self.created_at)?,
            updated_at: from_micros("number_connections.updated_at", self.updated_at)?,
            connected_at: opt_from_micros("number_connections.connected_at", self.connected_at)?,
            disconnected_at: opt_from_micros(
                "number_connections.disconnected_at",
                self.disconnected_at,
            )?,
        })
    }
}

#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = leases, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct LeaseRow {
    pub holder: String,
    pub token: String,
    pub expires_at: i64,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_events, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct WebhookEventRow {
    pub id: String,
    pub kind: String,
    pub room_name: Option<String>,
    pub received_at: i64,
}

impl WebhookEventRow {
    pub fn from_domain(e: &WebhookEventRecord) -> Self {
        Self {
            id: e.id.as_str().to_owned(),
            kind: e.kind.clone(),
            room_name: e.room_name.as_ref().map(|r| r.as_str().to_owned()),
            received_at: micros(e.received_at),
        }
    }

    pub fn into_domain(self) -> Result<WebhookEventRecord, StoreError> {
        Ok(WebhookEventRecord {
            id: parse("webhook_events.id", &self.id, WebhookEventId::parse)?,
            kind: self.kind,
            room_name: parse_opt(
                "webhook_events.room_name",
                self.room_name.as_deref(),
                RoomName::parse,
            )?,
            received_at: from_micros("webhook_events.received_at", self.received_at)?,
        })
    }
}

#[derive(Debug, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = calls, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct CallRow {
    pub id: String,
    pub room_name: String,
    pub customer_id: Option<String>,
    pub connection_id: Option<String>,
    pub sip_call_id: Option<String>,
    pub called: Option<String>,
    pub caller: Option<String>,
    pub status: String,
    pub dispatch_status: String,
    pub dispatch_id: Option<String>,
    pub dispatch_attempts: i32,
    pub agent_name: Option<String>,
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub updated_at: i64,
}

impl CallRow {
    pub fn into_domain(self) -> Result<CallRecord, StoreError> {
        Ok(CallRecord {
            id: CallId::from_uuid(parse_uuid("calls.id", &self.id)?),
            room_name: parse("calls.room_name", &self.room_name, RoomName::parse)?,
            customer_id: parse_opt(
                "calls.customer_id",
                self.customer_id.as_deref(),
                CustomerId::parse,
            )?,
            connection_id: self
                .connection_id
                .as_deref()
                .map(|c| parse_uuid("calls.connection_id", c).map(ConnectionId::from_uuid))
                .transpose()?,
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
            started_at: from_micros("calls.started_at", self.started_at)?,
            answered_at: opt_from_micros("calls.answered_at", self.answered_at)?,
            ended_at: opt_from_micros("calls.ended_at", self.ended_at)?,
            updated_at: from_micros("calls.updated_at", self.updated_at)?,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct AuditRow {
    pub id: String,
    pub customer_id: String,
    pub provider: String,
    pub action: String,
    pub actor_subject: String,
    pub actor_role: String,
    pub details: String,
    pub request_id: Option<String>,
    pub at: i64,
}

impl AuditRow {
    pub fn from_domain(e: &AuditEvent) -> Result<Self, StoreError> {
        Ok(Self {
            id: uuid_text(e.id.as_uuid()),
            customer_id: e.customer_id.as_str().to_owned(),
            provider: e.provider.as_str().to_owned(),
            action: e.action.as_str().to_owned(),
            actor_subject: e.actor.subject.clone(),
            actor_role: e.actor.role.clone(),
            details: json_text("audit_events.details", &e.details)?,
            request_id: e.request_id.clone(),
            at: micros(e.at),
        })
    }

    pub fn into_domain(self) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: AuditEventId::from_uuid(parse_uuid("audit_events.id", &self.id)?),
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
            details: from_json_text("audit_events.details", &self.details)?,
            request_id: self.request_id,
            at: from_micros("audit_events.at", self.at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_microseconds_and_sort_as_integers() {
        let t = DateTime::from_timestamp_micros(1_773_500_966_535_897).unwrap();
        assert_eq!(from_micros("t", micros(t)).unwrap(), t);
        let before_epoch = DateTime::from_timestamp_micros(-1).unwrap();
        assert!(micros(before_epoch) < micros(t));
        assert!(matches!(
            from_micros("t", i64::MAX),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn uuid_text_sorts_like_v7_creation_order() {
        let a = Uuid::now_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Uuid::now_v7();
        assert!(uuid_text(a) < uuid_text(b));
        assert_eq!(parse_uuid("id", &uuid_text(a)).unwrap(), a);
        assert!(matches!(
            parse_uuid("id", "nope"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
