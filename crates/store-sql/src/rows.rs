//! The row types of the call intake's tables and their conversions to and from the domain,
//! written once: [`rows!`](crate::rows!) expands them in each backend's `rows` module.

/// Expands the row types of `integrations`, `number_connections`, `leases`,
/// `webhook_events`, `calls` and `audit_events` for one diesel backend (`$backend`).
///
/// The calling module must have in scope the backend's `diesel::table!`s of those names and
/// `enc`, one of [`encoding`](crate::encoding)'s modules: field types are `enc::Id`,
/// `enc::Ts` and `enc::Json`, and every conversion goes through `enc`.
#[macro_export]
macro_rules! rows {
    ($backend:path) => {
        use diesel::prelude::*;
        use trunkline_core::model::{
            Actor, AuditEvent, CallRecord, Integration, Lease, LeaseKey, NumberConnection,
            SealedSecret,
        };
        use trunkline_core::ports::{StoreError, WebhookEventRecord};
        use trunkline_core::{
            AgentDispatchId, AuditEventId, CallId, CarrierAccountId, CarrierNumberId, ConnectionId,
            CredentialKeyId, CustomerId, DispatchRuleId, E164, IntegrationId, ProviderKind,
            RoomName, RouteId, SipTarget, SipTrunkId, WebhookEventId,
        };
        use $crate::codec::{self, parse, parse_opt};

        #[derive(Debug, Queryable, Selectable, Insertable)]
        #[diesel(table_name = integrations, check_for_backend($backend))]
        pub struct IntegrationRow {
            pub id: enc::Id,
            pub customer_id: String,
            pub provider: String,
            pub account_id: Option<String>,
            pub key_id: Option<String>,
            pub sealed_secret: Vec<u8>,
            pub status: String,
            pub created_at: enc::Ts,
            pub updated_at: enc::Ts,
        }

        impl IntegrationRow {
            pub fn from_domain(i: &Integration) -> Self {
                Self {
                    id: enc::id_to(i.id.as_uuid()),
                    customer_id: i.customer_id.as_str().to_owned(),
                    provider: i.provider.as_str().to_owned(),
                    account_id: i.account_id.as_ref().map(|a| a.as_str().to_owned()),
                    key_id: i.key_id.as_ref().map(|k| k.as_str().to_owned()),
                    sealed_secret: i.sealed_secret.0.clone(),
                    status: codec::integration_status_str(i.status).to_owned(),
                    created_at: enc::ts_to(i.created_at),
                    updated_at: enc::ts_to(i.updated_at),
                }
            }

            pub fn into_domain(self) -> Result<Integration, StoreError> {
                Ok(Integration {
                    id: IntegrationId::from_uuid(enc::id_from("integrations.id", self.id)?),
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
                    created_at: enc::ts_from("integrations.created_at", self.created_at)?,
                    updated_at: enc::ts_from("integrations.updated_at", self.updated_at)?,
                })
            }
        }

        #[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
        #[diesel(table_name = number_connections, check_for_backend($backend))]
        #[diesel(treat_none_as_null = true)]
        pub struct ConnectionRow {
            pub id: enc::Id,
            pub customer_id: String,
            pub provider: String,
            pub integration_id: enc::Id,
            pub number_id: String,
            pub e164: String,
            pub status: String,
            pub trunk_strategy: String,
            pub route_id: Option<String>,
            pub route_created: bool,
            pub route_targets: enc::Json,
            pub sip_target: String,
            pub routing: enc::Json,
            pub previous_routing: Option<enc::Json>,
            pub livekit_trunk_id: Option<String>,
            pub livekit_rule_id: Option<String>,
            pub last_error: Option<String>,
            pub created_at: enc::Ts,
            pub updated_at: enc::Ts,
            pub connected_at: Option<enc::Ts>,
            pub disconnected_at: Option<enc::Ts>,
        }

        impl ConnectionRow {
            pub fn from_domain(c: &NumberConnection) -> Result<Self, StoreError> {
                Ok(Self {
                    id: enc::id_to(c.id.as_uuid()),
                    customer_id: c.customer_id.as_str().to_owned(),
                    provider: c.provider.as_str().to_owned(),
                    integration_id: enc::id_to(c.integration_id.as_uuid()),
                    number_id: c.number_id.as_str().to_owned(),
                    e164: c.e164.as_str().to_owned(),
                    status: c.status.as_str().to_owned(),
                    trunk_strategy: c.trunk_strategy.as_str().to_owned(),
                    route_id: c.route_id.as_ref().map(|r| r.as_str().to_owned()),
                    route_created: c.route_created,
                    route_targets: enc::json_to(
                        "number_connections.route_targets",
                        &c.route_targets,
                    )?,
                    sip_target: c.sip_target.to_string(),
                    routing: enc::json_to("number_connections.routing", &c.routing)?,
                    previous_routing: c
                        .previous_routing
                        .as_ref()
                        .map(|v| enc::json_to("number_connections.previous_routing", v))
                        .transpose()?,
                    livekit_trunk_id: c.livekit_trunk_id.as_ref().map(|t| t.as_str().to_owned()),
                    livekit_rule_id: c.livekit_rule_id.as_ref().map(|r| r.as_str().to_owned()),
                    last_error: c.last_error.clone(),
                    created_at: enc::ts_to(c.created_at),
                    updated_at: enc::ts_to(c.updated_at),
                    connected_at: c.connected_at.map(enc::ts_to),
                    disconnected_at: c.disconnected_at.map(enc::ts_to),
                })
            }

            pub fn into_domain(self) -> Result<NumberConnection, StoreError> {
                Ok(NumberConnection {
                    id: ConnectionId::from_uuid(enc::id_from("number_connections.id", self.id)?),
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
                    integration_id: IntegrationId::from_uuid(enc::id_from(
                        "number_connections.integration_id",
                        self.integration_id,
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
                    route_targets: enc::json_from(
                        "number_connections.route_targets",
                        self.route_targets,
                    )?,
                    sip_target: parse(
                        "number_connections.sip_target",
                        &self.sip_target,
                        SipTarget::parse,
                    )?,
                    routing: enc::json_from("number_connections.routing", self.routing)?,
                    previous_routing: self
                        .previous_routing
                        .map(|v| enc::json_from("number_connections.previous_routing", v))
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
                    created_at: enc::ts_from("number_connections.created_at", self.created_at)?,
                    updated_at: enc::ts_from("number_connections.updated_at", self.updated_at)?,
                    connected_at: self
                        .connected_at
                        .map(|t| enc::ts_from("number_connections.connected_at", t))
                        .transpose()?,
                    disconnected_at: self
                        .disconnected_at
                        .map(|t| enc::ts_from("number_connections.disconnected_at", t))
                        .transpose()?,
                })
            }
        }

        #[derive(Debug, Queryable, QueryableByName, Selectable)]
        #[diesel(table_name = leases, check_for_backend($backend))]
        pub struct LeaseRow {
            pub holder: String,
            pub token: enc::Id,
            pub expires_at: enc::Ts,
        }

        impl LeaseRow {
            pub fn into_domain(self, key: &LeaseKey) -> Result<Lease, StoreError> {
                Ok(Lease {
                    key: key.clone(),
                    holder: self.holder,
                    token: enc::id_from("leases.token", self.token)?,
                    expires_at: enc::ts_from("leases.expires_at", self.expires_at)?,
                })
            }
        }

        #[derive(Debug, Queryable, Selectable, Insertable)]
        #[diesel(table_name = webhook_events, check_for_backend($backend))]
        pub struct WebhookEventRow {
            pub id: String,
            pub kind: String,
            pub room_name: Option<String>,
            pub received_at: enc::Ts,
        }

        impl WebhookEventRow {
            pub fn from_domain(e: &WebhookEventRecord) -> Self {
                Self {
                    id: e.id.as_str().to_owned(),
                    kind: e.kind.clone(),
                    room_name: e.room_name.as_ref().map(|r| r.as_str().to_owned()),
                    received_at: enc::ts_to(e.received_at),
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
                    received_at: enc::ts_from("webhook_events.received_at", self.received_at)?,
                })
            }
        }

        #[derive(Debug, Queryable, QueryableByName, Selectable)]
        #[diesel(table_name = calls, check_for_backend($backend))]
        pub struct CallRow {
            pub id: enc::Id,
            pub room_name: String,
            pub customer_id: Option<String>,
            pub connection_id: Option<enc::Id>,
            pub sip_call_id: Option<String>,
            pub called: Option<String>,
            pub caller: Option<String>,
            pub status: String,
            pub dispatch_status: String,
            pub dispatch_id: Option<String>,
            pub dispatch_attempts: i32,
            pub agent_name: Option<String>,
            pub started_at: enc::Ts,
            pub answered_at: Option<enc::Ts>,
            pub ended_at: Option<enc::Ts>,
            pub updated_at: enc::Ts,
        }

        impl CallRow {
            pub fn into_domain(self) -> Result<CallRecord, StoreError> {
                Ok(CallRecord {
                    id: CallId::from_uuid(enc::id_from("calls.id", self.id)?),
                    room_name: parse("calls.room_name", &self.room_name, RoomName::parse)?,
                    customer_id: parse_opt(
                        "calls.customer_id",
                        self.customer_id.as_deref(),
                        CustomerId::parse,
                    )?,
                    connection_id: self
                        .connection_id
                        .map(|c| {
                            enc::id_from("calls.connection_id", c).map(ConnectionId::from_uuid)
                        })
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
                    started_at: enc::ts_from("calls.started_at", self.started_at)?,
                    answered_at: self
                        .answered_at
                        .map(|t| enc::ts_from("calls.answered_at", t))
                        .transpose()?,
                    ended_at: self
                        .ended_at
                        .map(|t| enc::ts_from("calls.ended_at", t))
                        .transpose()?,
                    updated_at: enc::ts_from("calls.updated_at", self.updated_at)?,
                })
            }
        }

        #[derive(Debug, Queryable, Selectable, Insertable)]
        #[diesel(table_name = audit_events, check_for_backend($backend))]
        pub struct AuditRow {
            pub id: enc::Id,
            pub customer_id: String,
            pub provider: String,
            pub action: String,
            pub actor_subject: String,
            pub actor_role: String,
            pub details: enc::Json,
            pub request_id: Option<String>,
            pub at: enc::Ts,
        }

        impl AuditRow {
            pub fn from_domain(e: &AuditEvent) -> Result<Self, StoreError> {
                Ok(Self {
                    id: enc::id_to(e.id.as_uuid()),
                    customer_id: e.customer_id.as_str().to_owned(),
                    provider: e.provider.as_str().to_owned(),
                    action: e.action.as_str().to_owned(),
                    actor_subject: e.actor.subject.clone(),
                    actor_role: e.actor.role.clone(),
                    details: enc::json_to("audit_events.details", &e.details)?,
                    request_id: e.request_id.clone(),
                    at: enc::ts_to(e.at),
                })
            }

            pub fn into_domain(self) -> Result<AuditEvent, StoreError> {
                Ok(AuditEvent {
                    id: AuditEventId::from_uuid(enc::id_from("audit_events.id", self.id)?),
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
                    details: enc::json_from("audit_events.details", self.details)?,
                    request_id: self.request_id,
                    at: enc::ts_from("audit_events.at", self.at)?,
                })
            }
        }
    };
}
