//! JSON shapes shared by the routes, each with its OpenAPI schema, and their mapping from
//! domain values. Answers never carry secrets: credentials appear as their SIDs only, and
//! URLs someone configured on a number lose any user name or password they embed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trunkline_core::ValidationError;
use trunkline_core::model::{
    ConnectionStatus, DispatchMode, NumberConnection, NumberRouting, RoutingPolicy,
    RoutingPolicyParts, StoredRouteTarget, TrunkStrategy,
};
use trunkline_core::ports::{Capabilities, Capability};
use trunkline_core::usecases::{Step, StepAction};
use utoipa::ToSchema;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};

use super::schema;

/// One shared trunk per customer, or one dedicated trunk per number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrunkStrategyJson {
    #[default]
    Shared,
    Dedicated,
}

impl From<TrunkStrategyJson> for TrunkStrategy {
    fn from(s: TrunkStrategyJson) -> Self {
        match s {
            TrunkStrategyJson::Shared => Self::Shared,
            TrunkStrategyJson::Dedicated => Self::Dedicated,
        }
    }
}

impl From<TrunkStrategy> for TrunkStrategyJson {
    fn from(s: TrunkStrategy) -> Self {
        match s {
            TrunkStrategy::Shared => Self::Shared,
            TrunkStrategy::Dedicated => Self::Dedicated,
        }
    }
}

/// Who dispatches the agent: trunkline from the LiveKit webhook (`webhook`), or the LiveKit
/// dispatch rule itself (`rule`, needs `agentName`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchModeJson {
    #[default]
    Webhook,
    Rule,
}

impl From<DispatchModeJson> for DispatchMode {
    fn from(m: DispatchModeJson) -> Self {
        match m {
            DispatchModeJson::Webhook => Self::Webhook,
            DispatchModeJson::Rule => Self::Rule,
        }
    }
}

impl From<DispatchMode> for DispatchModeJson {
    fn from(m: DispatchMode) -> Self {
        match m {
            DispatchMode::Webhook => Self::Webhook,
            DispatchMode::Rule => Self::Rule,
        }
    }
}

/// Where calls to the number go once they reach LiveKit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingJson {
    /// The LiveKit agent to dispatch (1–128 bytes, not blank, no control characters).
    #[schema(schema_with = schema::agent_name)]
    pub agent_name: Option<String>,
    /// Opaque to trunkline; handed to the agent as dispatch metadata (at most 16,384 characters).
    #[schema(max_length = 16384)]
    pub metadata: Option<String>,
    /// Set on the SIP participant by the LiveKit trunk (at most 64, keys and values at most 1,024 characters).
    #[serde(default)]
    #[schema(schema_with = schema::attributes)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub dispatch_mode: DispatchModeJson,
}

impl TryFrom<RoutingJson> for RoutingPolicy {
    type Error = ValidationError;

    fn try_from(r: RoutingJson) -> Result<Self, ValidationError> {
        Self::new(RoutingPolicyParts {
            agent_name: r.agent_name,
            metadata: r.metadata,
            attributes: r.attributes,
            dispatch_mode: r.dispatch_mode.into(),
        })
    }
}

impl From<&RoutingPolicy> for RoutingJson {
    fn from(r: &RoutingPolicy) -> Self {
        Self {
            agent_name: r.agent_name().map(str::to_owned),
            metadata: r.metadata().map(str::to_owned),
            attributes: r.attributes().clone(),
            dispatch_mode: r.dispatch_mode().into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatusJson {
    /// Connect started; some steps may be done (their ids are stored).
    Pending,
    /// Carrier (and LiveKit, when configured) are set up.
    Connected,
    /// The last connect failed part-way; connect again to finish it.
    Failed,
    /// Disconnected; kept as history.
    Disconnected,
}

impl From<ConnectionStatus> for ConnectionStatusJson {
    fn from(s: ConnectionStatus) -> Self {
        match s {
            ConnectionStatus::Pending => Self::Pending,
            ConnectionStatus::Connected => Self::Connected,
            ConnectionStatus::Failed => Self::Failed,
            ConnectionStatus::Disconnected => Self::Disconnected,
        }
    }
}

/// A SIP target trunkline set on the carrier route (Twilio: an origination URL; Telnyx: an
/// FQDN of the connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginationTargetJson {
    /// The carrier's id of the target (Twilio `OU…`, Telnyx a numeric id).
    pub id: String,
    #[schema(example = "sip:abc123.sip.livekit.cloud")]
    pub sip_url: String,
    /// Lower is tried first.
    pub priority: u16,
    /// Load share within one priority.
    pub weight: u16,
}

impl From<&StoredRouteTarget> for OriginationTargetJson {
    fn from(o: &StoredRouteTarget) -> Self {
        Self {
            id: o.id.to_string(),
            sip_url: o.target.sip_url().to_string(),
            priority: o.target.priority(),
            weight: o.target.weight(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepActionJson {
    Created,
    Reused,
    Updated,
    Deleted,
    Moved,
    Restored,
    Skipped,
}

impl From<StepAction> for StepActionJson {
    fn from(a: StepAction) -> Self {
        match a {
            StepAction::Created => Self::Created,
            StepAction::Reused => Self::Reused,
            StepAction::Updated => Self::Updated,
            StepAction::Deleted => Self::Deleted,
            StepAction::Moved => Self::Moved,
            StepAction::Restored => Self::Restored,
            StepAction::Skipped => Self::Skipped,
        }
    }
}

/// One step of connect or disconnect and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepJson {
    /// `trunk`, `originationUrl`, `attachment`, `voiceConfig`, `livekitTrunk` or
    /// `livekitRule`.
    #[schema(example = "trunk")]
    pub step: String,
    pub action: StepActionJson,
    /// The id of the object the step acted on, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&Step> for StepJson {
    fn from(s: &Step) -> Self {
        Self {
            step: s.step.as_str().to_owned(),
            action: s.action.into(),
            id: s.id.clone(),
            detail: s.detail.clone(),
        }
    }
}

pub fn steps(steps: &[Step]) -> Vec<StepJson> {
    steps.iter().map(StepJson::from).collect()
}

/// The LiveKit side of a connection (empty until LiveKit is configured on the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitIdsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trunk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
}

impl From<&NumberConnection> for LiveKitIdsJson {
    fn from(c: &NumberConnection) -> Self {
        Self {
            trunk_id: c.livekit_trunk_id.as_ref().map(ToString::to_string),
            rule_id: c.livekit_rule_id.as_ref().map(ToString::to_string),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityJson {
    Available,
    /// The credentials are valid but may not use this (e.g. a Restricted key).
    Forbidden,
    /// The account does not have the product (e.g. Elastic SIP Trunking).
    NotEnabled,
}

impl From<Capability> for CapabilityJson {
    fn from(c: Capability) -> Self {
        match c {
            Capability::Available => Self::Available,
            Capability::Forbidden => Self::Forbidden,
            Capability::NotEnabled => Self::NotEnabled,
        }
    }
}

/// What the credentials may do at the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesJson {
    /// Read incoming phone numbers.
    pub numbers: CapabilityJson,
    /// Manage Elastic SIP trunks (needed to connect).
    pub trunking: CapabilityJson,
}

impl From<&Capabilities> for CapabilitiesJson {
    fn from(c: &Capabilities) -> Self {
        Self {
            numbers: c.numbers.into(),
            trunking: c.trunking.into(),
        }
    }
}

/// What a number pointed at before trunkline attached it, as its carrier's adapter recorded
/// it (Twilio: `voiceUrl`, `voiceMethod`, `voiceApplicationSid`, …; Telnyx: `connectionId`),
/// with any credentials embedded in URLs replaced by `***`.
pub fn redacted_routing(routing: &NumberRouting) -> serde_json::Value {
    fn redact(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(redact_url(s)),
            serde_json::Value::Array(a) => a.iter().map(redact).collect(),
            serde_json::Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), redact(v))).collect(),
            other => other.clone(),
        }
    }
    redact(&routing.0)
}

/// Replace a URL's user name and password (webhook URLs sometimes embed Basic-auth
/// credentials) with `***`. Anything that does not parse as a URL is returned as is.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// trunkline's record of a connection: ids, targets and routing policy. Never secrets.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionJson {
    pub connection_id: String,
    pub status: ConnectionStatusJson,
    pub number_id: String,
    #[schema(example = "+14155550100")]
    pub e164: String,
    pub trunk_strategy: TrunkStrategyJson,
    pub route_id: Option<String>,
    /// Whether trunkline created the trunk (only such a dedicated trunk is removed on
    /// disconnect).
    pub route_created: bool,
    /// The primary SIP target.
    pub sip_target: String,
    pub origination_targets: Vec<OriginationTargetJson>,
    pub routing: RoutingJson,
    /// What the number did before trunkline attached it; disconnect can restore it.
    /// What the number pointed at before trunkline attached it (the carrier's own record,
    /// URL credentials redacted); disconnect can restore it.
    #[schema(value_type = Option<Object>)]
    pub previous_routing: Option<serde_json::Value>,
    pub livekit: LiveKitIdsJson,
    /// Why the last connect failed, when it did.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub connected_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl From<&NumberConnection> for ConnectionJson {
    fn from(c: &NumberConnection) -> Self {
        Self {
            connection_id: c.id.to_string(),
            status: c.status.into(),
            number_id: c.number_id.to_string(),
            e164: c.e164.to_string(),
            trunk_strategy: c.trunk_strategy.into(),
            route_id: c.route_id.as_ref().map(ToString::to_string),
            route_created: c.route_created,
            sip_target: c.sip_target.to_string(),
            origination_targets: c.route_targets.iter().map(Into::into).collect(),
            routing: (&c.routing).into(),
            previous_routing: c.previous_routing.as_ref().map(redacted_routing),
            livekit: c.into(),
            last_error: c.last_error.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            connected_at: c.connected_at,
            disconnected_at: c.disconnected_at,
        }
    }
}

/// Whether and how trunkline connected a number, in a numbers listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSummaryJson {
    pub connection_id: String,
    pub status: ConnectionStatusJson,
    pub trunk_strategy: TrunkStrategyJson,
    pub route_id: Option<String>,
}

impl From<&NumberConnection> for ConnectionSummaryJson {
    fn from(c: &NumberConnection) -> Self {
        Self {
            connection_id: c.id.to_string(),
            status: c.status.into(),
            trunk_strategy: c.trunk_strategy.into(),
            route_id: c.route_id.as_ref().map(ToString::to_string),
        }
    }
}

/// A whole number from 0 to 65535. JSON Schema counts `394.0` as an integer, so it is
/// accepted as one; `394.5` is not.
pub(super) fn whole_u16<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        // serde_json writes an integral float as `394.0`.
        n.to_string()
            .strip_suffix(".0")
            .and_then(|w| w.parse::<u64>().ok())
    });
    whole
        .and_then(|v| u16::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other("a number"),
                &"a whole number from 0 to 65535",
            )
        })
}

/// `routing` of connect (or `null`): the routing policy, and `dispatchMode: rule` needs an `agentName`.
pub fn routing_request() -> Schema {
    let not_rule = ObjectBuilder::new().property(
        "dispatchMode",
        schema::string().enum_values(Some(["webhook"])),
    );
    let with_agent = ObjectBuilder::new()
        .property("agentName", schema::string())
        .required("agentName");
    let policy = AllOfBuilder::new()
        .item(RefOr::Ref(Ref::from_schema_name(
            <RoutingJson as ToSchema>::name(),
        )))
        .item(AnyOfBuilder::new().item(not_rule).item(with_agent));
    AnyOfBuilder::new().item(schema::null()).item(policy).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_embedded_credentials_only() {
        assert_eq!(
            redact_url("https://user:hunter2@hooks.example/voice?x=1"),
            "https://***@hooks.example/voice?x=1"
        );
        assert_eq!(
            redact_url("https://hooks.example/voice"),
            "https://hooks.example/voice"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
