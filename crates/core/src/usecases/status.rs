//! Status for support: what is configured where, and where it drifted from what we stored.

use std::sync::Arc;

use super::Onboarding;
use super::drift::{Drift, DriftKind};
use super::naming::is_ours;
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierNumberId, CustomerId, IntegrationId, ProviderKind};
use crate::model::{
    CarrierCredentials, ConnectionStatus, DispatchMode, NumberConnection, TrunkStrategy,
};
use crate::ports::{
    CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget, DispatchRuleInfo,
    InboundTrunkInfo, ProviderError, VerifyReport,
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

    fn failed(e: &Error) -> Self {
        Self::Failed {
            code: e.code,
            message: e.message.clone(),
        }
    }

    pub fn ok(&self) -> Option<&T> {
        match self {
            Self::Ok(v) => Some(v),
            _ => None,
        }
    }

    /// The error code of a part that could not be read.
    pub fn failure(&self) -> Option<ErrorCode> {
        match self {
            Self::Failed { code, .. } => Some(*code),
            _ => None,
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
    /// What keeps the number from working that connecting again cannot repair.
    pub warnings: Vec<Drift>,
    /// How the connection reaches LiveKit (`trunk` when nothing is stored).
    pub mode: super::ConnectMode,
}

/// What the carrier sections are read with.
type CarrierAccess = (Arc<dyn CarrierProvider>, CarrierCredentials);

impl Onboarding {
    /// What keeps any connected number of this trunkline from working that no connect can
    /// repair (status and connect's answer say it): without LiveKit, calls reach the SIP target
    /// but no agent is ever dispatched.
    pub fn warnings(&self) -> Vec<Drift> {
        if self.ports.sip.is_some() {
            return Vec::new();
        }
        vec![Drift::new(
            DriftKind::LivekitNotConfigured,
            "LiveKit is not configured on this trunkline: calls to this number cannot reach an \
             agent (set TRUNKLINE_LIVEKIT_URL, TRUNKLINE_LIVEKIT_API_KEY and \
             TRUNKLINE_LIVEKIT_API_SECRET, then connect again)",
        )]
    }

    /// The carrier and opened credentials, or why the carrier side cannot be read. A stored
    /// connection is still shown without them, so the failure names the row in the log.
    async fn carrier_access(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        connection: Option<&NumberConnection>,
    ) -> Result<CarrierAccess, Error> {
        let carrier = self.carrier(provider)?.clone();
        let integration = match self.integration(customer, provider).await {
            Ok(i) => i,
            Err(e) if e.code == ErrorCode::IntegrationNotFound && connection.is_some() => {
                return Err(Error::new(
                    ErrorCode::IntegrationNotFound,
                    "the credentials were deleted: trunkline cannot read the carrier side of \
                     this number, which still takes calls; save the credentials again to see \
                     and manage it",
                ));
            }
            Err(e) => return Err(e),
        };
        match self.credentials_of(&integration).await {
            Ok(creds) => Ok((carrier, creds)),
            Err(e) => {
                log_unreadable_credentials(integration.id, connection, &e);
                Err(Error {
                    message: "the stored credentials could not be opened; the log names the \
                              integration"
                        .to_owned(),
                    ..e
                })
            }
        }
    }
}

fn log_unreadable_credentials(
    integration: IntegrationId,
    connection: Option<&NumberConnection>,
    e: &Error,
) {
    // The internal text is the vault's (key id, "does not open"): never key material.
    tracing::error!(
        integration = %integration,
        connection = %connection.map_or_else(|| "none".to_owned(), |c| c.id.to_string()),
        code = %e.code,
        cause = e.internal.as_deref().unwrap_or(""),
        "status: the stored credentials could not be opened"
    );
}

impl Onboarding {
    /// Everything support needs about one number, read live from both sides, with drifts.
    pub async fn status(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<NumberStatus, Error> {
        let connection = self
            .ports
            .connections
            .get_connection(customer, provider, number)
            .await?;
        let access = self
            .carrier_access(customer, provider, connection.as_ref())
            .await;
        // Nothing stored and nothing readable: there is no status to show, only the reason.
        let access = match (access, &connection) {
            (Err(e), None) => return Err(e),
            (access, _) => access,
        };
        let route_id = connection.as_ref().and_then(|c| c.route_id.clone());

        let carrier_reads = async {
            let (carrier, creds) = match &access {
                Ok(a) => a,
                Err(e) => {
                    return (
                        Section::failed(e),
                        Section::failed(e),
                        Section::failed(e),
                        Section::failed(e),
                    );
                }
            };
            let (credentials, live_number) =
                futures::join!(carrier.verify(creds), carrier.fetch_number(creds, number));
            let (trunk, urls) = match &route_id {
                Some(t) => {
                    let (trunk, urls) = futures::join!(
                        carrier.fetch_route(creds, t),
                        carrier.list_route_targets(creds, t)
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
        // A dedicated trunk of the number left empty by a change to `shared` (the next
        // connect or disconnect removes it). Reported only: a read that fails here is not
        // worth failing the status for.
        let orphans = async {
            match (&connection, &access) {
                (Some(c), Ok((carrier, creds)))
                    if c.status != ConnectionStatus::Disconnected
                        && c.trunk_strategy == TrunkStrategy::Shared =>
                {
                    super::connect::empty_dedicated_trunks(&**carrier, creds, customer, number)
                        .await
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            }
        };
        let (
            (credentials, live_number, trunk, route_targets),
            (livekit_trunk, livekit_rule),
            orphans,
        ) = futures::join!(carrier_reads, livekit_reads, orphans);

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

        let live = connection
            .as_ref()
            .is_some_and(|c| c.status != ConnectionStatus::Disconnected);
        let mut status = NumberStatus {
            credentials,
            number: live_number,
            trunk,
            route_targets,
            livekit_trunk,
            livekit_rule,
            connection,
            drifts: Vec::new(),
            warnings: if live { self.warnings() } else { Vec::new() },
            mode: super::ConnectMode::Trunk,
        };
        status.drifts = drifts(&status, self.ports.sip.is_some());
        status.drifts.extend(orphans.into_iter().map(|t| {
            Drift::new(
                DriftKind::OrphanTrunk,
                format!(
                    "trunk {t}, the number's dedicated trunk, holds no number any more; the \
                     next connect or disconnect of the number removes it"
                ),
            )
        }));
        let carrier = access.as_ref().ok().map(|(c, _)| &**c);
        self.voice_url_status(&mut status, carrier).await?;
        log_failed_parts(&status);
        Ok(status)
    }
}

/// Each part that could not be read, once, naming the row (the section names and codes are
/// a closed set; the messages may quote the carrier and stay out of the log).
fn log_failed_parts(s: &NumberStatus) {
    let Some(conn) = &s.connection else {
        return;
    };
    let parts = [
        ("credentials", s.credentials.failure()),
        ("number", s.number.failure()),
        ("trunk", s.trunk.failure()),
        ("originationUrls", s.route_targets.failure()),
        ("livekitTrunk", s.livekit_trunk.failure()),
        ("livekitRule", s.livekit_rule.failure()),
    ];
    for (part, code) in parts {
        if let Some(code) = code {
            tracing::warn!(
                connection = %conn.id,
                integration = %conn.integration_id,
                part,
                code = %code,
                "status: a part could not be read"
            );
        }
    }
}

/// Compare the stored connection with what was read. Only live connections can drift.
fn drifts(s: &NumberStatus, livekit_configured: bool) -> Vec<Drift> {
    let mut out = Vec::new();
    // Only a refusal is drift; a read that failed (carrier down, a secret that does not open)
    // is reported by its section.
    if let Section::Failed {
        code: code @ (ErrorCode::AuthInvalid | ErrorCode::InsufficientPermissions),
        message,
    } = &s.credentials
    {
        out.push(Drift::new(
            DriftKind::CredentialsInvalid,
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
    if s.credentials.failure() == Some(ErrorCode::IntegrationNotFound) {
        out.push(Drift::new(
            DriftKind::CredentialsMissing,
            "the credentials were deleted while the number is connected: it still takes calls, \
             but trunkline can neither check nor change it; save the credentials again (then \
             disconnect it if it should stop)",
        ));
    }
    // URLs on the trunk this connection did not record: trunkline's own (by name) belong to a
    // connect that did not finish, anything else was added by someone else.
    let unrecorded: Vec<&CarrierRouteTarget> = s
        .route_targets
        .ok()
        .map(|urls| {
            urls.iter()
                .filter(|u| conn.route_targets.iter().all(|o| o.id != u.id))
                .collect()
        })
        .unwrap_or_default();
    let (ours, foreign): (Vec<_>, Vec<_>) = unrecorded
        .into_iter()
        .partition(|u| is_ours(u.name.as_deref()));
    let incomplete =
        conn.status == ConnectionStatus::Failed || conn.status == ConnectionStatus::Pending;
    // A connect that stopped before attaching left the number on no trunk: that is the
    // unfinished connect too, not a move behind trunkline's back.
    let not_attached_yet = incomplete
        && matches!(&s.number, Section::Ok(n) if n.route_id.is_none() && conn.route_id.is_some());
    if incomplete {
        let made = if ours.is_empty() {
            String::new()
        } else {
            format!(
                "; it already made origination URL {}, which connecting again takes over",
                list_urls(&ours)
            )
        };
        let attach = if not_attached_yet {
            "; the number is not on its trunk yet"
        } else {
            ""
        };
        out.push(Drift::new(
            DriftKind::ConnectIncomplete,
            format!(
                "the last connect did not finish ({}){made}{attach}; connect again to finish it",
                conn.last_error.as_deref().unwrap_or("no error recorded")
            ),
        ));
    } else if !ours.is_empty() {
        out.push(Drift::new(
            DriftKind::OriginationUrlUnrecorded,
            format!(
                "the trunk has origination URL {} named by trunkline but not recorded for this \
                 number (a connect of another number on the trunk did not finish, or re-pointed \
                 it); connect again to reconcile the trunk's URLs",
                list_urls(&ours)
            ),
        ));
    }
    match &s.number {
        Section::Failed {
            code: ErrorCode::NumberNotFound,
            ..
        } => {
            out.push(Drift::new(
                DriftKind::NumberMissing,
                "the carrier no longer has this number",
            ));
        }
        Section::Ok(n) if n.route_id != conn.route_id && !not_attached_yet => {
            out.push(Drift::new(
                DriftKind::NumberNotOnTrunk,
                format!(
                    "the number is on {} but trunkline attached it to {}",
                    n.route_id
                        .as_ref()
                        .map_or("no trunk".to_owned(), ToString::to_string),
                    conn.route_id
                        .as_ref()
                        .map_or("no trunk".to_owned(), ToString::to_string),
                ),
            ));
        }
        _ => {}
    }
    if let Section::Ok(None) = &s.trunk {
        out.push(Drift::new(
            DriftKind::TrunkMissing,
            "the trunk trunkline created no longer exists",
        ));
    }
    if let Section::Ok(urls) = &s.route_targets {
        for stored in &conn.route_targets {
            match urls.iter().find(|u| u.id == stored.id) {
                None => out.push(Drift::new(
                    DriftKind::OriginationUrlMissing,
                    format!(
                        "origination URL {} ({}) is gone",
                        stored.id,
                        stored.target.sip_url()
                    ),
                )),
                Some(u) => {
                    let same_url =
                        SipTarget::parse(&u.sip_url).is_ok_and(|p| &p == stored.target.sip_url());
                    if !same_url
                        || u.priority != stored.target.priority()
                        || u.weight != stored.target.weight()
                        || !u.enabled
                    {
                        out.push(Drift::new(
                            DriftKind::OriginationUrlChanged,
                            format!(
                                "origination URL {} is {} (priority {}, weight {}, enabled {}) \
                                 but trunkline set {} (priority {}, weight {})",
                                u.id,
                                u.sip_url,
                                u.priority,
                                u.weight,
                                u.enabled,
                                stored.target.sip_url(),
                                stored.target.priority(),
                                stored.target.weight()
                            ),
                        ));
                    }
                }
            }
        }
        for extra in &foreign {
            out.push(Drift::new(
                DriftKind::OriginationUrlUnexpected,
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
                DriftKind::LivekitTrunkMissing,
                "the LiveKit inbound trunk trunkline created no longer exists",
            )),
            Section::Ok(Some(t)) if !t.numbers.iter().any(|n| n == conn.e164.as_str()) => {
                out.push(Drift::new(
                    DriftKind::LivekitTrunkNumberMismatch,
                    format!("the LiveKit trunk {} no longer accepts this number", t.id),
                ));
            }
            Section::Skipped(_) => out.push(Drift::new(
                DriftKind::LivekitTrunkMissing,
                "no LiveKit inbound trunk is stored for this connection",
            )),
            _ => {}
        }
        match &s.livekit_rule {
            Section::Ok(None) | Section::Skipped(_) => out.push(Drift::new(
                DriftKind::LivekitRuleMissing,
                "the LiveKit dispatch rule for this number does not exist",
            )),
            Section::Ok(Some(rule)) => {
                if let Some(t) = &conn.livekit_trunk_id
                    && !rule.trunk_ids.iter().any(|id| id == t.as_str())
                {
                    out.push(Drift::new(
                        DriftKind::LivekitRuleTrunkMismatch,
                        format!("dispatch rule {} does not apply to trunk {t}", rule.id),
                    ));
                }
                if conn.routing.dispatch_mode() == DispatchMode::Rule
                    && let Some(agent) = conn.routing.agent_name()
                    && !rule.agent_names.iter().any(|a| a == agent)
                {
                    out.push(Drift::new(
                        DriftKind::LivekitRuleAgentMismatch,
                        format!("dispatch rule {} does not dispatch agent {agent}", rule.id),
                    ));
                }
            }
            Section::Failed { .. } => {}
        }
    }
    out
}

fn list_urls(urls: &[&CarrierRouteTarget]) -> String {
    urls.iter()
        .map(|u| format!("{} ({})", u.id, u.sip_url))
        .collect::<Vec<_>>()
        .join(", ")
}
