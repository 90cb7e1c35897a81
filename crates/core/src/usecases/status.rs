//! Status for support: what is configured where, and where it drifted from what we stored.

use serde::Serialize;

use super::Onboarding;
use crate::error::{Error, ErrorCode};
use crate::ids::{CustomerId, CarrierNumberId, ProviderKind};
use crate::model::{ConnectionStatus, DispatchMode, NumberConnection};
use crate::ports::{
    CarrierNumber, CarrierRouteTarget, CarrierRoute, DispatchRuleInfo, InboundTrunkInfo,
    ProviderError, VerifyReport,
};
use crate::sip::SipTarget;

/// One part of the status, read live. A failed read does not fail the whole status: support
/// sees what could be read and why the rest could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section<T> {
    Ok(T),
    Failed {
        code: ErrorCode,
        message: String,
    },
    /// Not read (not configured, or nothing to read); the text says why.
    Skipped(&'static str),
}

impl<T> Section<T> {
    fn from_result(r: Result<T, ProviderError>) -> Self {
        match r {
            Ok(v) => Self::Ok(v),
            Err(e) => Self::Failed {
                code: e.code,
                message: e.message,
            },
        }
    }

    pub fn ok(&self) -> Option<&T> {
        match self {
            Self::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// A difference between what trunkline stored and what the carrier or LiveKit holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// Stable machine-readable kind, e.g. `number_not_on_trunk`.
    pub kind: &'static str,
    pub message: String,
}

impl Drift {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumberStatus {
    pub credentials: Section<VerifyReport>,
    pub number: Section<CarrierNumber>,
    /// The trunk trunkline stored for the number.
    pub trunk: Section<Option<CarrierRoute>>,
    pub route_targets: Section<Vec<CarrierRouteTarget>>,
    pub livekit_trunk: Section<Option<InboundTrunkInfo>>,
    pub livekit_rule: Section<Option<DispatchRuleInfo>>,
    /// trunkline's own record (routing policy, ids); never secrets.
    pub connection: Option<NumberConnection>,
    pub drifts: Vec<Drift>,
}

impl Onboarding {
    /// Everything support needs about one number, read live from both sides, with drifts.
    pub async fn status(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<NumberStatus, Error> {
        let carrier = self.carrier(provider)?.clone();
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;
        let connection = self
            .ports
            .connections
            .get_connection(customer, provider, number)
            .await?;
        let route_id = connection.as_ref().and_then(|c| c.route_id.clone());

        let carrier_reads = async {
            let (credentials, live_number) =
                futures::join!(carrier.verify(&creds), carrier.fetch_number(&creds, number));
            let (trunk, urls) = match &route_id {
                Some(t) => {
                    let (trunk, urls) = futures::join!(
                        carrier.fetch_route(&creds, t),
                        carrier.list_route_targets(&creds, t)
                    );
                    (Section::from_result(trunk), Section::from_result(urls))
                }
                None => (
                    Section::Skipped("no trunk stored"),
                    Section::Skipped("no trunk stored"),
                ),
            };
            (
                Section::from_result(credentials),
                Section::from_result(live_number),
                trunk,
                urls,
            )
        };
        let livekit_reads = async {
            let Some(sip) = &self.ports.sip else {
                return (
                    Section::Skipped("LiveKit is not configured"),
                    Section::Skipped("LiveKit is not configured"),
                );
            };
            let lk_trunk = connection.as_ref().and_then(|c| c.livekit_trunk_id.clone());
            let lk_rule = connection.as_ref().and_then(|c| c.livekit_rule_id.clone());
            let trunk = async {
                match &lk_trunk {
                    Some(id) => Section::from_result(sip.get_inbound_trunk(id).await),
                    None => Section::Skipped("no LiveKit trunk stored"),
                }
            };
            let rule = async {
                match &lk_rule {
                    Some(id) => Section::from_result(sip.get_dispatch_rule(id).await),
                    None => Section::Skipped("no LiveKit dispatch rule stored"),
                }
            };
            futures::join!(trunk, rule)
        };
        let ((credentials, live_number, trunk, route_targets), (livekit_trunk, livekit_rule)) =
            futures::join!(carrier_reads, livekit_reads);

        // A number the account does not hold and trunkline never connected is not something
        // to report on: it is an unknown id (possibly another customer's), so answer as one.
        if connection.is_none()
            && let Section::Failed {
                code: ErrorCode::NumberNotFound,
                message,
            } = &live_number
        {
            return Err(Error::new(ErrorCode::NumberNotFound, message.clone()));
        }

        let mut status = NumberStatus {
            credentials,
            number: live_number,
            trunk,
            route_targets,
            livekit_trunk,
            livekit_rule,
            connection,
            drifts: Vec::new(),
        };
        status.drifts = drifts(&status, self.ports.sip.is_some());
        Ok(status)
    }
}

/// Compare the stored connection with what was read. Only live connections can drift.
fn drifts(s: &NumberStatus, livekit_configured: bool) -> Vec<Drift> {
    let mut out = Vec::new();
    if let Section::Failed { code, message } = &s.credentials {
        out.push(Drift::new(
            "credentials_invalid",
            format!("credentials no longer verify: {code}: {message}"),
        ));
    }
    let Some(conn) = s
        .connection
        .as_ref()
        .filter(|c| c.status != ConnectionStatus::Disconnected)
    else {
        return out;
    };
    if conn.status == ConnectionStatus::Failed || conn.status == ConnectionStatus::Pending {
        out.push(Drift::new(
            "connect_incomplete",
            format!(
                "the last connect did not finish ({}); connect again to repair",
                conn.last_error.as_deref().unwrap_or("no error recorded")
            ),
        ));
    }
    match &s.number {
        Section::Failed {
            code: ErrorCode::NumberNotFound,
            ..
        } => {
            out.push(Drift::new(
                "number_missing",
                "the carrier no longer has this number",
            ));
        }
        Section::Ok(n) if n.route_id != conn.route_id => out.push(Drift::new(
            "number_not_on_trunk",
            format!(
                "the number is on {} but trunkline attached it to {}",
                n.route_id
                    .as_ref()
                    .map_or("no trunk".to_owned(), ToString::to_string),
                conn.route_id
                    .as_ref()
                    .map_or("no trunk".to_owned(), ToString::to_string),
            ),
        )),
        _ => {}
    }
    if let Section::Ok(None) = &s.trunk {
        out.push(Drift::new(
            "trunk_missing",
            "the trunk trunkline created no longer exists",
        ));
    }
    if let Section::Ok(urls) = &s.route_targets {
        for stored in &conn.route_targets {
            match urls.iter().find(|u| u.id == stored.id) {
                None => out.push(Drift::new(
                    "origination_url_missing",
                    format!(
                        "origination URL {} ({}) is gone",
                        stored.id, stored.target.sip_url
                    ),
                )),
                Some(u) => {
                    let same_url =
                        SipTarget::parse(&u.sip_url).is_ok_and(|p| p == stored.target.sip_url);
                    if !same_url
                        || u.priority != stored.target.priority
                        || u.weight != stored.target.weight
                        || !u.enabled
                    {
                        out.push(Drift::new(
                            "origination_url_changed",
                            format!(
                                "origination URL {} is {} (priority {}, weight {}, enabled {}) \
                                 but trunkline set {} (priority {}, weight {})",
                                u.id,
                                u.sip_url,
                                u.priority,
                                u.weight,
                                u.enabled,
                                stored.target.sip_url,
                                stored.target.priority,
                                stored.target.weight
                            ),
                        ));
                    }
                }
            }
        }
        for extra in urls
            .iter()
            .filter(|u| conn.route_targets.iter().all(|o| o.id != u.id))
        {
            out.push(Drift::new(
                "origination_url_unexpected",
                format!(
                    "the trunk also sends calls to {} ({}), which trunkline did not set",
                    extra.sip_url, extra.id
                ),
            ));
        }
    }
    if livekit_configured {
        match &s.livekit_trunk {
            Section::Ok(None) => out.push(Drift::new(
                "livekit_trunk_missing",
                "the LiveKit inbound trunk trunkline created no longer exists",
            )),
            Section::Ok(Some(t)) if !t.numbers.iter().any(|n| n == conn.e164.as_str()) => {
                out.push(Drift::new(
                    "livekit_trunk_number_mismatch",
                    format!("the LiveKit trunk {} no longer accepts this number", t.id),
                ));
            }
            Section::Skipped(_) => out.push(Drift::new(
                "livekit_trunk_missing",
                "no LiveKit inbound trunk is stored for this connection",
            )),
            _ => {}
        }
        match &s.livekit_rule {
            Section::Ok(None) | Section::Skipped(_) => out.push(Drift::new(
                "livekit_rule_missing",
                "the LiveKit dispatch rule for this number does not exist",
            )),
            Section::Ok(Some(rule)) => {
                if let Some(t) = &conn.livekit_trunk_id
                    && !rule.trunk_ids.iter().any(|id| id == t.as_str())
                {
                    out.push(Drift::new(
                        "livekit_rule_trunk_mismatch",
                        format!("dispatch rule {} does not apply to trunk {t}", rule.id),
                    ));
                }
                if conn.routing.dispatch_mode == DispatchMode::Rule
                    && let Some(agent) = &conn.routing.agent_name
                    && !rule.agent_names.contains(agent)
                {
                    out.push(Drift::new(
                        "livekit_rule_agent_mismatch",
                        format!("dispatch rule {} does not dispatch agent {agent}", rule.id),
                    ));
                }
            }
            Section::Failed { .. } => {}
        }
    }
    out
}
