//! The JSON of a number's status (`GET …/numbers/{numberId}/status`): each part read live
//! (credentials, the number, its trunk and origination URLs, the LiveKit trunk and rule)
//! as a section that is there, failed or skipped, and the drifts between them.

use serde::Serialize;
use trunkline_core::ports::{
    CarrierNumber, CarrierRoute, CarrierRouteTarget, DispatchRuleInfo, InboundTrunkInfo,
    VerifyReport,
};
use trunkline_core::usecases::{Drift, NumberStatus, Section};
use utoipa::ToSchema;

use super::admin::ReconcilerCheckJson;
use super::calls::{CallJson, WebhookSeenJson};
use super::json::{CapabilitiesJson, ConnectionJson, redacted_routing};
use super::outbound::OutboundStatusJson;
use super::voice::ConnectModeJson;

/// A part of the status that could not be read; the rest still is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SectionFailed {
    /// Always `false`.
    pub ok: bool,
    pub error_code: String,
    pub message: String,
}

/// A part of the status that was not read, and why (not configured, nothing stored).
#[derive(Debug, Serialize, ToSchema)]
pub struct SectionSkipped {
    pub skipped: String,
}

macro_rules! section {
    ($(#[$doc:meta])* $name:ident, $ok:ty) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        #[serde(untagged)]
        pub enum $name {
            Ok($ok),
            Failed(SectionFailed),
            Skipped(SectionSkipped),
        }

        impl $name {
            fn from_section<T>(s: &Section<T>, ok: impl FnOnce(&T) -> $ok) -> Self {
                match s {
                    Section::Ok(v) => Self::Ok(ok(v)),
                    Section::Failed { code, message } => Self::Failed(SectionFailed {
                        ok: false,
                        error_code: code.as_str().to_owned(),
                        message: message.clone(),
                    }),
                    Section::Skipped(why) => Self::Skipped(SectionSkipped {
                        skipped: (*why).to_owned(),
                    }),
                }
            }
        }
    };
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsStatus {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    pub capabilities: CapabilitiesJson,
}

section!(
    /// Whether the stored credentials still verify.
    CredentialsSection,
    CredentialsStatus
);

fn credentials_status(r: &VerifyReport) -> CredentialsStatus {
    CredentialsStatus {
        ok: true,
        account_id: r.account_id.as_ref().map(ToString::to_string),
        friendly_name: r.friendly_name.clone(),
        capabilities: (&r.capabilities).into(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberLive {
    pub ok: bool,
    pub number_id: String,
    pub e164: String,
    pub friendly_name: Option<String>,
    pub voice_capable: bool,
    /// The route (Twilio trunk, Telnyx connection) the number is on, as the carrier sees it.
    pub route_id: Option<String>,
    /// What else the number points at, as the carrier's adapter records it (Twilio: its own
    /// voice configuration, ignored while on a trunk); URL credentials redacted.
    #[schema(value_type = Object)]
    pub routing: serde_json::Value,
}

section!(
    /// The number as the carrier holds it now.
    NumberSection,
    NumberLive
);

fn number_live(n: &CarrierNumber) -> NumberLive {
    NumberLive {
        ok: true,
        number_id: n.id.to_string(),
        e164: n.e164.to_string(),
        friendly_name: n.friendly_name.clone(),
        voice_capable: n.voice_capable,
        route_id: n.route_id.as_ref().map(ToString::to_string),
        routing: redacted_routing(&n.routing),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrunkLive {
    pub ok: bool,
    /// `false` when the stored trunk no longer exists at the carrier.
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

section!(
    /// The trunk trunkline stored for the number, as the carrier holds it.
    TrunkSection,
    TrunkLive
);

fn trunk_live(t: Option<&CarrierRoute>) -> TrunkLive {
    TrunkLive {
        ok: true,
        exists: t.is_some(),
        route_id: t.map(|t| t.id.to_string()),
        name: t.and_then(|t| t.name.clone()),
    }
}

/// An origination URL as the carrier holds it (raw: whoever set it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveOriginationUrlJson {
    pub id: String,
    pub sip_url: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginationUrlsLive {
    pub ok: bool,
    pub items: Vec<LiveOriginationUrlJson>,
}

section!(
    /// Every origination URL of the stored trunk.
    OriginationUrlsSection,
    OriginationUrlsLive
);

fn origination_urls_live(urls: &[CarrierRouteTarget]) -> OriginationUrlsLive {
    OriginationUrlsLive {
        ok: true,
        items: urls
            .iter()
            .map(|u| LiveOriginationUrlJson {
                id: u.id.to_string(),
                sip_url: u.sip_url.clone(),
                priority: u.priority,
                weight: u.weight,
                enabled: u.enabled,
                name: u.name.clone(),
            })
            .collect(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitTrunkLive {
    pub ok: bool,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The numbers the trunk accepts.
    pub numbers: Vec<String>,
}

section!(
    /// The LiveKit inbound trunk, as LiveKit holds it.
    LiveKitTrunkSection,
    LiveKitTrunkLive
);

fn livekit_trunk_live(t: Option<&InboundTrunkInfo>) -> LiveKitTrunkLive {
    LiveKitTrunkLive {
        ok: true,
        exists: t.is_some(),
        id: t.map(|t| t.id.to_string()),
        name: t.map(|t| t.name.clone()),
        numbers: t.map(|t| t.numbers.clone()).unwrap_or_default(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitRuleLive {
    pub ok: bool,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub trunk_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_prefix: Option<String>,
    /// Agents the rule dispatches by itself (dispatch mode `rule`).
    pub agent_names: Vec<String>,
}

section!(
    /// The LiveKit dispatch rule, as LiveKit holds it.
    LiveKitRuleSection,
    LiveKitRuleLive
);

fn livekit_rule_live(r: Option<&DispatchRuleInfo>) -> LiveKitRuleLive {
    LiveKitRuleLive {
        ok: true,
        exists: r.is_some(),
        id: r.map(|r| r.id.to_string()),
        name: r.map(|r| r.name.clone()),
        trunk_ids: r.map(|r| r.trunk_ids.clone()).unwrap_or_default(),
        room_prefix: r.and_then(|r| r.room_prefix.clone()),
        agent_names: r.map(|r| r.agent_names.clone()).unwrap_or_default(),
    }
}

/// A difference between what trunkline stored and what the carrier or LiveKit holds.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftJson {
    /// Stable, machine-readable: `credentials_invalid`, `credentials_missing`,
    /// `connect_incomplete`, `number_missing`, `number_not_on_trunk`, `trunk_missing`,
    /// `origination_url_missing`, `origination_url_changed`, `origination_url_unexpected`,
    /// `origination_url_unrecorded`, `livekit_trunk_missing`, `livekit_trunk_number_mismatch`,
    /// `livekit_rule_missing`, `livekit_rule_trunk_mismatch`, `livekit_rule_agent_mismatch`.
    #[schema(example = "number_not_on_trunk")]
    pub kind: String,
    pub message: String,
}

impl From<&Drift> for DriftJson {
    fn from(d: &Drift) -> Self {
        Self {
            kind: d.kind.as_str().to_owned(),
            message: d.message.clone(),
        }
    }
}

/// What keeps a connected number from working that connecting again cannot repair.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarningJson {
    /// Stable, machine-readable: `livekit_not_configured` (calls cannot reach an agent).
    #[schema(example = "livekit_not_configured")]
    pub kind: String,
    pub message: String,
}

pub(super) fn warnings(ws: &[Drift]) -> Vec<WarningJson> {
    ws.iter()
        .map(|w| WarningJson {
            kind: w.kind.as_str().to_owned(),
            message: w.message.clone(),
        })
        .collect()
}

/// Everything about one number, read live, with drifts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub number_id: String,
    pub credentials: CredentialsSection,
    pub number: NumberSection,
    pub trunk: TrunkSection,
    pub route_targets: OriginationUrlsSection,
    pub livekit_trunk: LiveKitTrunkSection,
    pub livekit_rule: LiveKitRuleSection,
    /// trunkline's own record (ids, targets, routing policy); `null` when it never
    /// connected the number.
    pub connection: Option<ConnectionJson>,
    /// Empty when everything matches.
    pub drifts: Vec<DriftJson>,
    /// What keeps the (live) number from working that connecting again cannot repair.
    pub warnings: Vec<WarningJson>,
    /// The last LiveKit webhook trunkline acted on for the number's most recent call;
    /// `null` when no call reached it yet.
    pub last_webhook: Option<WebhookSeenJson>,
    /// The number's most recent calls (at most 10), newest first.
    pub recent_calls: Vec<CallJson>,
    /// What the drift reconciler last found; `null` when it has not checked the number.
    pub reconciler: Option<ReconcilerCheckJson>,
    /// The outbound half (carrier termination and the LiveKit outbound trunk) as they hold
    /// it, with its drift; `null` when trunkline never connected the number.
    pub outbound: Option<OutboundStatusJson>,
    /// How the connection reaches LiveKit: `trunk` or `voiceUrl` (`trunk` when trunkline
    /// never connected the number).
    pub mode: ConnectModeJson,
}

impl StatusResponse {
    pub(super) fn new(number: &trunkline_core::CarrierNumberId, s: &NumberStatus) -> Self {
        Self {
            number_id: number.to_string(),
            credentials: CredentialsSection::from_section(&s.credentials, credentials_status),
            number: NumberSection::from_section(&s.number, number_live),
            trunk: TrunkSection::from_section(&s.trunk, |t| trunk_live(t.as_ref())),
            route_targets: OriginationUrlsSection::from_section(&s.route_targets, |u| {
                origination_urls_live(u)
            }),
            livekit_trunk: LiveKitTrunkSection::from_section(&s.livekit_trunk, |t| {
                livekit_trunk_live(t.as_ref())
            }),
            livekit_rule: LiveKitRuleSection::from_section(&s.livekit_rule, |r| {
                livekit_rule_live(r.as_ref())
            }),
            connection: s.connection.as_ref().map(Into::into),
            drifts: s.drifts.iter().map(Into::into).collect(),
            warnings: warnings(&s.warnings),
            last_webhook: None,
            recent_calls: Vec::new(),
            reconciler: None,
            outbound: None,
            mode: s.mode.into(),
        }
    }
}
