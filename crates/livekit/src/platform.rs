//! [`LiveKitPlatform`]: trunkline's `SipPlatform` port on LiveKit's server API.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use livekit_api::access_token::TokenVerifier;
use livekit_api::webhooks::WebhookReceiver;
use livekit_protocol as proto;
use proto::sip_dispatch_rule::Rule;
use secrecy::ExposeSecret;
use trunkline_core::model::DispatchMode;
use trunkline_core::ports::{
    DispatchRuleInfo, DispatchRuleSpec, InboundTrunkInfo, InboundTrunkSpec, OutboundTrunkInfo,
    OutboundTrunkSpec, ProviderError, SipCallInfo, SipCallRequest, SipParticipantState,
    SipPlatform, WebhookError, WebhookEvent,
};
use trunkline_core::{
    AgentDispatchId, ConnectionId, DispatchRuleId, E164, ErrorCode, RoomName, SipTrunkId,
};
use url::Url;

use crate::config::{InboundTrunkOptions, LiveKitConfig, LiveKitConfigError};
use crate::twirp::{Grant, Twirp, USER_AGENT_VALUE};
use crate::webhook;

const SIP: &str = "SIP";
const AGENT_DISPATCH: &str = "AgentDispatchService";

/// The LiveKit half of trunkline: inbound trunks, dispatch rules, agent dispatch and webhook
/// verification, over LiveKit's Twirp server API.
pub struct LiveKitPlatform {
    twirp: Twirp,
    receiver: WebhookReceiver,
    /// The receiver's token check alone, for bodies the receiver cannot take (not UTF-8).
    verifier: TokenVerifier,
    inbound: InboundTrunkOptions,
    base: Url,
    api_key: String,
}

impl fmt::Debug for LiveKitPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitPlatform")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key)
            .field("inbound", &self.inbound)
            .finish_non_exhaustive()
    }
}

/// Make jsonwebtoken's full RustCrypto provider the process default.
///
/// livekit-api's token code registers an HMAC-only provider as jsonwebtoken's process-wide
/// default the first time it signs or verifies, if nothing was installed before. In a
/// process that also verifies RS256/ES256/EdDSA tokens (the server's user authentication),
/// that would make those fail with `InvalidAlgorithm`. Installing the full provider first
/// keeps both working; it is idempotent, and a no-op when a provider is already installed.
pub fn install_jwt_crypto_provider() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

impl LiveKitPlatform {
    pub fn new(config: LiveKitConfig) -> Result<Self, LiveKitConfigError> {
        config.validate()?;
        install_jwt_crypto_provider();
        let base = config.base_url()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .user_agent(USER_AGENT_VALUE)
            .build()
            .map_err(|e| LiveKitConfigError::Client(e.to_string()))?;
        let secret = config.api_secret.expose_secret();
        let verifier = TokenVerifier::with_api_key(&config.api_key, secret);
        let receiver = WebhookReceiver::new(verifier.clone());
        Ok(Self {
            twirp: Twirp::new(
                http,
                base.clone(),
                config.api_key.clone(),
                config.api_secret,
            ),
            receiver,
            verifier,
            inbound: config.inbound,
            base,
            api_key: config.api_key,
        })
    }

    /// The server API base in use.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    // --- inbound trunks ------------------------------------------------------------------

    #[allow(deprecated)] // `media_encryption` is kept in step with `media` for older servers.
    fn desired_trunk(&self, spec: &InboundTrunkSpec) -> proto::SipInboundTrunkInfo {
        let encryption = self.inbound.media_encryption.map(|e| e.to_proto() as i32);
        // The connection's own credentials (voice-URL mode) win over the server-wide ones.
        let (auth_username, auth_password) = match &spec.auth {
            Some(a) => (a.username.clone(), a.password.expose_secret().to_owned()),
            None => (
                self.inbound.auth_username.clone().unwrap_or_default(),
                self.inbound
                    .auth_password
                    .as_ref()
                    .map(|p| p.expose_secret().to_owned())
                    .unwrap_or_default(),
            ),
        };
        proto::SipInboundTrunkInfo {
            name: spec.name.clone(),
            metadata: trunk_metadata(spec.connection_id),
            numbers: vec![spec.number.as_str().to_owned()],
            allowed_addresses: self.inbound.allowed_addresses.clone(),
            auth_username,
            auth_password,
            media_encryption: encryption.unwrap_or_default(),
            media: encryption.map(|e| proto::SipMediaConfig {
                encryption: Some(e),
                ..proto::SipMediaConfig::default()
            }),
            ..proto::SipInboundTrunkInfo::default()
        }
    }

    async fn get_trunk_raw(
        &self,
        id: &str,
    ) -> Result<Option<proto::SipInboundTrunkInfo>, ProviderError> {
        let req = proto::GetSipInboundTrunkRequest {
            sip_trunk_id: id.to_owned(),
        };
        let got: Result<proto::GetSipInboundTrunkResponse, _> = self
            .twirp
            .call(SIP, "GetSIPInboundTrunk", &req, &Grant::SipAdmin)
            .await;
        match got {
            Ok(resp) => Ok(resp.trunk.filter(|t| t.sip_trunk_id == id)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            // Servers from before GetSIPInboundTrunk: the id filter of the list does the same.
            Err(e)
                if matches!(
                    e.provider_code.as_deref(),
                    Some("bad_route" | "unimplemented")
                ) =>
            {
                let req = proto::ListSipInboundTrunkRequest {
                    trunk_ids: vec![id.to_owned()],
                    ..proto::ListSipInboundTrunkRequest::default()
                };
                let resp: proto::ListSipInboundTrunkResponse = self
                    .twirp
                    .call(SIP, "ListSIPInboundTrunk", &req, &Grant::SipAdmin)
                    .await?;
                Ok(resp.items.into_iter().find(|t| t.sip_trunk_id == id))
            }
            Err(e) => Err(e),
        }
    }

    /// Trunks that accept exactly `number` (LiveKit's number filter also returns trunks
    /// that accept any number; those do not hold it).
    async fn trunks_holding(
        &self,
        number: &str,
    ) -> Result<Vec<proto::SipInboundTrunkInfo>, ProviderError> {
        let req = proto::ListSipInboundTrunkRequest {
            numbers: vec![number.to_owned()],
            ..proto::ListSipInboundTrunkRequest::default()
        };
        let resp: proto::ListSipInboundTrunkResponse = self
            .twirp
            .call(SIP, "ListSIPInboundTrunk", &req, &Grant::SipAdmin)
            .await?;
        let mut holding: Vec<_> = resp
            .items
            .into_iter()
            .filter(|t| t.numbers.iter().any(|n| normalize_number(n) == number))
            .collect();
        holding.sort_by(|a, b| a.sip_trunk_id.cmp(&b.sip_trunk_id));
        Ok(holding)
    }

    /// Bring a trunk trunkline owns to the desired state; no write when it already is.
    async fn reconcile_trunk(
        &self,
        current: proto::SipInboundTrunkInfo,
        desired: &proto::SipInboundTrunkInfo,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        if trunk_matches(&current, desired) {
            return trunk_info(&current);
        }
        let id = current.sip_trunk_id.clone();
        let mut replacement = current;
        apply_trunk(&mut replacement, desired);
        let req = proto::UpdateSipInboundTrunkRequest {
            sip_trunk_id: id.clone(),
            action: Some(proto::update_sip_inbound_trunk_request::Action::Replace(
                replacement,
            )),
        };
        let updated: proto::SipInboundTrunkInfo = self
            .twirp
            .call(SIP, "UpdateSIPInboundTrunk", &req, &Grant::SipAdmin)
            .await?;
        tracing::info!(trunk_id = %id, "updated LiveKit inbound trunk");
        trunk_info(&updated)
    }

    // --- dispatch rules ------------------------------------------------------------------

    fn desired_rule(spec: &DispatchRuleSpec) -> proto::SipDispatchRuleInfo {
        let agents = match (spec.routing.dispatch_mode(), spec.routing.agent_name()) {
            (DispatchMode::Rule, Some(agent)) => vec![proto::RoomAgentDispatch {
                agent_name: agent.to_owned(),
                metadata: spec.routing.metadata().unwrap_or_default().to_owned(),
                ..proto::RoomAgentDispatch::default()
            }],
            // Mode `webhook`: trunkline dispatches from the participant_joined webhook; an
            // agent in the rule as well would be dispatched twice.
            _ => Vec::new(),
        };
        proto::SipDispatchRuleInfo {
            rule: Some(individual_rule(&spec.room_prefix)),
            trunk_ids: vec![spec.trunk_id.as_str().to_owned()],
            name: spec.name.clone(),
            attributes: spec
                .routing
                .attributes()
                .clone()
                .into_iter()
                .collect::<HashMap<_, _>>(),
            room_config: (!agents.is_empty()).then(|| proto::RoomConfiguration {
                agents,
                ..proto::RoomConfiguration::default()
            }),
            ..proto::SipDispatchRuleInfo::default()
        }
    }

    async fn list_rules(
        &self,
        req: proto::ListSipDispatchRuleRequest,
    ) -> Result<Vec<proto::SipDispatchRuleInfo>, ProviderError> {
        let resp: proto::ListSipDispatchRuleResponse = self
            .twirp
            .call(SIP, "ListSIPDispatchRule", &req, &Grant::SipAdmin)
            .await?;
        // An id filter answers a missing id with an empty item in its place.
        Ok(resp
            .items
            .into_iter()
            .filter(|r| !r.sip_dispatch_rule_id.is_empty())
            .collect())
    }

    async fn get_rule_raw(
        &self,
        id: &str,
    ) -> Result<Option<proto::SipDispatchRuleInfo>, ProviderError> {
        let rules = self
            .list_rules(proto::ListSipDispatchRuleRequest {
                dispatch_rule_ids: vec![id.to_owned()],
                ..proto::ListSipDispatchRuleRequest::default()
            })
            .await?;
        Ok(rules.into_iter().find(|r| r.sip_dispatch_rule_id == id))
    }

    /// Rules that apply to `trunk` specifically (rules for every trunk are left out: they
    /// neither conflict with nor stand in for a trunk's own rule).
    async fn rules_for_trunk(
        &self,
        trunk: &str,
    ) -> Result<Vec<proto::SipDispatchRuleInfo>, ProviderError> {
        let mut rules = self
            .list_rules(proto::ListSipDispatchRuleRequest {
                trunk_ids: vec![trunk.to_owned()],
                ..proto::ListSipDispatchRuleRequest::default()
            })
            .await?;
        rules.retain(|r| r.trunk_ids.iter().any(|t| t == trunk));
        rules.sort_by(|a, b| a.sip_dispatch_rule_id.cmp(&b.sip_dispatch_rule_id));
        Ok(rules)
    }

    async fn reconcile_rule(
        &self,
        current: proto::SipDispatchRuleInfo,
        desired: &proto::SipDispatchRuleInfo,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        if rule_matches(&current, desired) {
            return rule_info(&current);
        }
        let id = current.sip_dispatch_rule_id.clone();
        let mut replacement = current;
        apply_rule(&mut replacement, desired);
        let req = proto::UpdateSipDispatchRuleRequest {
            sip_dispatch_rule_id: id.clone(),
            action: Some(proto::update_sip_dispatch_rule_request::Action::Replace(
                replacement,
            )),
        };
        let updated: proto::SipDispatchRuleInfo = self
            .twirp
            .call(SIP, "UpdateSIPDispatchRule", &req, &Grant::SipAdmin)
            .await?;
        tracing::info!(rule_id = %id, "updated LiveKit dispatch rule");
        rule_info(&updated)
    }

    /// Create the trunk; when the answer is lost, look before giving up, never create twice.
    async fn create_trunk(
        &self,
        spec: &InboundTrunkSpec,
        desired: proto::SipInboundTrunkInfo,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        let req = proto::CreateSipInboundTrunkRequest {
            trunk: Some(desired),
        };
        match self
            .twirp
            .call::<_, proto::SipInboundTrunkInfo>(
                SIP,
                "CreateSIPInboundTrunk",
                &req,
                &Grant::SipAdmin,
            )
            .await
        {
            Ok(created) => {
                tracing::info!(
                    trunk_id = %created.sip_trunk_id,
                    number = %spec.number.masked(),
                    "created LiveKit inbound trunk"
                );
                trunk_info(&created)
            }
            // The trunk may exist with its answer lost: look before giving up, never create
            // a second time.
            Err(e) if e.is_transient() => {
                let holding = self
                    .trunks_holding(spec.number.as_str())
                    .await
                    .map_err(|_| e.clone())?;
                match holding.into_iter().find(|t| t.name == spec.name) {
                    Some(t) => trunk_info(&t),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Create the rule; when the answer is lost, look before giving up, never create twice.
    async fn create_rule(
        &self,
        spec: &DispatchRuleSpec,
        desired: proto::SipDispatchRuleInfo,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        let req = proto::CreateSipDispatchRuleRequest {
            dispatch_rule: Some(desired),
            ..proto::CreateSipDispatchRuleRequest::default()
        };
        match self
            .twirp
            .call::<_, proto::SipDispatchRuleInfo>(
                SIP,
                "CreateSIPDispatchRule",
                &req,
                &Grant::SipAdmin,
            )
            .await
        {
            Ok(created) => {
                tracing::info!(
                    rule_id = %created.sip_dispatch_rule_id,
                    trunk_id = spec.trunk_id.as_str(),
                    "created LiveKit dispatch rule"
                );
                rule_info(&created)
            }
            Err(e) if e.is_transient() => {
                let rules = self
                    .rules_for_trunk(spec.trunk_id.as_str())
                    .await
                    .map_err(|_| e.clone())?;
                match rules.into_iter().find(|r| r.name == spec.name) {
                    Some(r) => rule_info(&r),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl SipPlatform for LiveKitPlatform {
    async fn ensure_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        let desired = self.desired_trunk(spec);
        if let Some(id) = &existing
            && let Some(current) = self.get_trunk_raw(id.as_str()).await?
        {
            return self.reconcile_trunk(current, &desired).await;
        }
        let number = spec.number.as_str();
        let holding = self.trunks_holding(number).await?;
        if let Some(ours) = holding.iter().find(|t| t.name == spec.name) {
            return self.reconcile_trunk(ours.clone(), &desired).await;
        }
        if let Some(other) = holding.first() {
            return Err(foreign_trunk(other));
        }
        self.create_trunk(spec, desired).await
    }

    async fn ensure_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
        existing: Option<DispatchRuleId>,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        let desired = Self::desired_rule(spec);
        if let Some(id) = &existing
            && let Some(current) = self.get_rule_raw(id.as_str()).await?
        {
            return self.reconcile_rule(current, &desired).await;
        }
        let trunk = spec.trunk_id.as_str();
        let rules = self.rules_for_trunk(trunk).await?;
        if let Some(ours) = rules.iter().find(|r| r.name == spec.name) {
            return self.reconcile_rule(ours.clone(), &desired).await;
        }
        if let Some(other) = rules.first() {
            return Err(ProviderError::new(
                ErrorCode::Conflict,
                format!(
                    "LiveKit dispatch rule {} ({:?}) already routes calls of trunk {trunk}; \
                     trunkline does not change rules it did not create",
                    other.sip_dispatch_rule_id,
                    crate::error::sanitize(&other.name)
                ),
            )
            .with_provider_code("foreign_rule"));
        }
        self.create_rule(spec, desired).await
    }

    async fn inbound_trunks_for_number(
        &self,
        number: &E164,
    ) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
        self.trunks_holding(number.as_str())
            .await?
            .iter()
            .map(trunk_info)
            .collect()
    }

    async fn create_inbound_trunk(
        &self,
        spec: &InboundTrunkSpec,
    ) -> Result<InboundTrunkInfo, ProviderError> {
        match self.create_trunk(spec, self.desired_trunk(spec)).await {
            // LiveKit refuses a second trunk for the number; the full path lists the trunks
            // holding it and names the one in the way.
            Err(e) if e.code == ErrorCode::Conflict => self.ensure_inbound_trunk(spec, None).await,
            other => other,
        }
    }

    async fn create_dispatch_rule(
        &self,
        spec: &DispatchRuleSpec,
    ) -> Result<DispatchRuleInfo, ProviderError> {
        match self.create_rule(spec, Self::desired_rule(spec)).await {
            Err(e) if e.code == ErrorCode::Conflict => self.ensure_dispatch_rule(spec, None).await,
            other => other,
        }
    }

    async fn get_inbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<InboundTrunkInfo>, ProviderError> {
        self.get_trunk_raw(id.as_str())
            .await?
            .as_ref()
            .map(trunk_info)
            .transpose()
    }

    async fn get_dispatch_rule(
        &self,
        id: &DispatchRuleId,
    ) -> Result<Option<DispatchRuleInfo>, ProviderError> {
        self.get_rule_raw(id.as_str())
            .await?
            .as_ref()
            .map(rule_info)
            .transpose()
    }

    async fn list_inbound_trunks(&self) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
        let resp: proto::ListSipInboundTrunkResponse = self
            .twirp
            .call(
                SIP,
                "ListSIPInboundTrunk",
                &proto::ListSipInboundTrunkRequest::default(),
                &Grant::SipAdmin,
            )
            .await?;
        resp.items.iter().map(trunk_info).collect()
    }

    async fn list_dispatch_rules(&self) -> Result<Vec<DispatchRuleInfo>, ProviderError> {
        self.list_rules(proto::ListSipDispatchRuleRequest::default())
            .await?
            .iter()
            .map(rule_info)
            .collect()
    }

    async fn delete_inbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError> {
        let req = proto::DeleteSipTrunkRequest {
            sip_trunk_id: id.as_str().to_owned(),
        };
        match self
            .twirp
            .call::<_, proto::SipTrunkInfo>(SIP, "DeleteSIPTrunk", &req, &Grant::SipAdmin)
            .await
        {
            Ok(_) => {
                tracing::info!(trunk_id = %id, "deleted LiveKit inbound trunk");
                Ok(())
            }
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_dispatch_rule(&self, id: &DispatchRuleId) -> Result<(), ProviderError> {
        let req = proto::DeleteSipDispatchRuleRequest {
            sip_dispatch_rule_id: id.as_str().to_owned(),
        };
        match self
            .twirp
            .call::<_, proto::SipDispatchRuleInfo>(
                SIP,
                "DeleteSIPDispatchRule",
                &req,
                &Grant::SipAdmin,
            )
            .await
        {
            Ok(_) => {
                tracing::info!(rule_id = %id, "deleted LiveKit dispatch rule");
                Ok(())
            }
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn dispatch_agent(
        &self,
        room: &RoomName,
        agent_name: &str,
        metadata: Option<String>,
    ) -> Result<AgentDispatchId, ProviderError> {
        let req = proto::CreateAgentDispatchRequest {
            agent_name: agent_name.to_owned(),
            room: room.as_str().to_owned(),
            metadata: metadata.unwrap_or_default(),
            ..proto::CreateAgentDispatchRequest::default()
        };
        let grant = Grant::RoomAdmin(room.as_str().to_owned());
        let dispatch: proto::AgentDispatch = self
            .twirp
            .call(AGENT_DISPATCH, "CreateDispatch", &req, &grant)
            .await?;
        AgentDispatchId::parse(&dispatch.id).map_err(|e| {
            ProviderError::unavailable(format!(
                "LiveKit answered CreateDispatch with an unusable id: {e}"
            ))
            .with_provider_code("decode")
        })
    }

    async fn list_agent_dispatches(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(AgentDispatchId, String)>, ProviderError> {
        let req = proto::ListAgentDispatchRequest {
            room: room.as_str().to_owned(),
            ..proto::ListAgentDispatchRequest::default()
        };
        let grant = Grant::RoomAdmin(room.as_str().to_owned());
        let listed: Result<proto::ListAgentDispatchResponse, _> = self
            .twirp
            .call(AGENT_DISPATCH, "ListDispatch", &req, &grant)
            .await;
        match listed {
            Ok(resp) => Ok(resp
                .agent_dispatches
                .into_iter()
                .filter_map(|d| Some((AgentDispatchId::parse(&d.id).ok()?, d.agent_name)))
                .collect()),
            // No such room (any more): nothing was dispatched to it.
            Err(e) if e.code == ErrorCode::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn verify_webhook(
        &self,
        body: &[u8],
        authorization: &str,
    ) -> Result<WebhookEvent, WebhookError> {
        webhook::verify(&self.receiver, &self.verifier, body, authorization)
    }

    async fn ensure_outbound_trunk(
        &self,
        spec: &OutboundTrunkSpec,
        existing: Option<SipTrunkId>,
    ) -> Result<OutboundTrunkInfo, ProviderError> {
        crate::outbound::ensure(&self.twirp, spec, existing).await
    }

    async fn get_outbound_trunk(
        &self,
        id: &SipTrunkId,
    ) -> Result<Option<OutboundTrunkInfo>, ProviderError> {
        crate::outbound::fetch(&self.twirp, id).await
    }

    async fn list_outbound_trunks(&self) -> Result<Vec<OutboundTrunkInfo>, ProviderError> {
        crate::outbound::list(&self.twirp).await
    }

    async fn delete_outbound_trunk(&self, id: &SipTrunkId) -> Result<(), ProviderError> {
        crate::outbound::delete(&self.twirp, id).await
    }

    async fn create_sip_participant(
        &self,
        request: &SipCallRequest,
    ) -> Result<SipCallInfo, ProviderError> {
        crate::outbound::dial(&self.twirp, request).await
    }

    async fn find_sip_participant(
        &self,
        room: &RoomName,
        identity: &str,
    ) -> Result<Option<SipParticipantState>, ProviderError> {
        crate::outbound::find_participant(&self.twirp, room, identity).await
    }
}

// --- comparison and conversion -------------------------------------------------------------

/// The JSON kept in a trunk's metadata, so support can tell which connection owns it.
fn trunk_metadata(connection: ConnectionId) -> String {
    serde_json::json!({ "managedBy": "trunkline", "connectionId": connection }).to_string()
}

fn individual_rule(room_prefix: &str) -> proto::SipDispatchRule {
    proto::SipDispatchRule {
        rule: Some(Rule::DispatchRuleIndividual(
            proto::SipDispatchRuleIndividual {
                room_prefix: room_prefix.to_owned(),
                pin: String::new(),
                no_randomness: false,
            },
        )),
    }
}

/// LiveKit's own number normalization: spaces, dashes and parentheses dropped, `+` added.
pub(crate) fn normalize_number(raw: &str) -> String {
    let trimmed = raw.trim();
    let looks_like_number = !trimmed.is_empty()
        && trimmed
            .strip_prefix('+')
            .unwrap_or(trimmed)
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '(' | ')'));
    if !looks_like_number {
        return trimmed.to_owned();
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    format!("+{digits}")
}

fn set_of(items: &[String]) -> BTreeSet<String> {
    items.iter().map(|s| s.trim().to_owned()).collect()
}

#[allow(deprecated)]
fn effective_encryption(t: &proto::SipInboundTrunkInfo) -> i32 {
    t.media
        .as_ref()
        .and_then(|m| m.encryption)
        .unwrap_or(t.media_encryption)
}

fn trunk_matches(
    current: &proto::SipInboundTrunkInfo,
    desired: &proto::SipInboundTrunkInfo,
) -> bool {
    let numbers = |t: &proto::SipInboundTrunkInfo| {
        t.numbers
            .iter()
            .map(|n| normalize_number(n))
            .collect::<BTreeSet<_>>()
    };
    current.name == desired.name
        && current.metadata == desired.metadata
        && numbers(current) == numbers(desired)
        && set_of(&current.allowed_addresses) == set_of(&desired.allowed_addresses)
        && current.allowed_numbers.is_empty()
        && current.auth_username == desired.auth_username
        && current.auth_password == desired.auth_password
        && effective_encryption(current) == effective_encryption(desired)
}

/// Overwrite the fields trunkline manages; keep the rest (codecs, headers, Krisp, timeouts
/// someone tuned on the trunk).
#[allow(deprecated)]
fn apply_trunk(current: &mut proto::SipInboundTrunkInfo, desired: &proto::SipInboundTrunkInfo) {
    current.name.clone_from(&desired.name);
    current.metadata.clone_from(&desired.metadata);
    current.numbers.clone_from(&desired.numbers);
    current
        .allowed_addresses
        .clone_from(&desired.allowed_addresses);
    current.allowed_numbers.clear();
    current.auth_username.clone_from(&desired.auth_username);
    current.auth_password.clone_from(&desired.auth_password);
    let encryption = effective_encryption(desired);
    current.media_encryption = encryption;
    match (&mut current.media, &desired.media) {
        (Some(media), _) => media.encryption = Some(encryption),
        (None, Some(media)) => current.media = Some(media.clone()),
        (None, None) => {}
    }
}

fn agents_of(r: &proto::SipDispatchRuleInfo) -> Vec<(String, String)> {
    r.room_config
        .as_ref()
        .map(|c| {
            c.agents
                .iter()
                .map(|a| (a.agent_name.clone(), a.metadata.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn rule_matches(
    current: &proto::SipDispatchRuleInfo,
    desired: &proto::SipDispatchRuleInfo,
) -> bool {
    current.rule == desired.rule
        && set_of(&current.trunk_ids) == set_of(&desired.trunk_ids)
        && current.name == desired.name
        && current.metadata == desired.metadata
        && current.attributes == desired.attributes
        && current.numbers.is_empty()
        && current.inbound_numbers.is_empty()
        && !current.hide_phone_number
        && agents_of(current) == agents_of(desired)
}

fn apply_rule(current: &mut proto::SipDispatchRuleInfo, desired: &proto::SipDispatchRuleInfo) {
    current.rule.clone_from(&desired.rule);
    current.trunk_ids.clone_from(&desired.trunk_ids);
    current.name.clone_from(&desired.name);
    current.metadata.clone_from(&desired.metadata);
    current.attributes.clone_from(&desired.attributes);
    current.numbers.clear();
    current.inbound_numbers.clear();
    current.hide_phone_number = false;
    let agents = desired
        .room_config
        .as_ref()
        .map(|c| c.agents.clone())
        .unwrap_or_default();
    let mut config = current.room_config.take().unwrap_or_default();
    config.agents = agents;
    current.room_config = (config != proto::RoomConfiguration::default()).then_some(config);
}

fn trunk_info(t: &proto::SipInboundTrunkInfo) -> Result<InboundTrunkInfo, ProviderError> {
    Ok(InboundTrunkInfo {
        id: SipTrunkId::parse(&t.sip_trunk_id).map_err(|e| unusable_id("trunk", &e))?,
        name: t.name.clone(),
        numbers: t.numbers.clone(),
    })
}

fn rule_info(r: &proto::SipDispatchRuleInfo) -> Result<DispatchRuleInfo, ProviderError> {
    let room_prefix = match r.rule.as_ref().and_then(|r| r.rule.as_ref()) {
        Some(Rule::DispatchRuleIndividual(i)) => Some(i.room_prefix.clone()),
        Some(Rule::DispatchRuleCallee(c)) => Some(c.room_prefix.clone()),
        Some(Rule::DispatchRuleDirect(_)) | None => None,
    };
    Ok(DispatchRuleInfo {
        id: DispatchRuleId::parse(&r.sip_dispatch_rule_id)
            .map_err(|e| unusable_id("dispatch rule", &e))?,
        name: r.name.clone(),
        trunk_ids: r.trunk_ids.clone(),
        room_prefix,
        agent_names: agents_of(r).into_iter().map(|(name, _)| name).collect(),
    })
}

fn unusable_id(what: &str, e: &trunkline_core::ValidationError) -> ProviderError {
    ProviderError::unavailable(format!("LiveKit answered with an unusable {what} id: {e}"))
        .with_provider_code("decode")
}

fn foreign_trunk(t: &proto::SipInboundTrunkInfo) -> ProviderError {
    ProviderError::new(
        ErrorCode::NumberInUse,
        format!(
            "LiveKit inbound trunk {} ({:?}) already accepts this number; trunkline does not \
             take over trunks it did not create: remove the number from that trunk, then connect \
             again",
            t.sip_trunk_id,
            crate::error::sanitize(&t.name)
        ),
    )
    .with_provider_code("foreign_trunk")
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::model::{RoutingPolicy, RoutingPolicyParts};

    #[test]
    fn numbers_normalize_like_livekit() {
        assert_eq!(normalize_number("+1 (415) 555-0100"), "+14155550100");
        assert_eq!(normalize_number("14155550100"), "+14155550100");
        assert_eq!(normalize_number("sip-user"), "sip-user");
        assert_eq!(normalize_number(""), "");
    }

    #[test]
    fn rule_agents_follow_the_dispatch_mode() {
        let mut spec = DispatchRuleSpec {
            connection_id: ConnectionId::new(),
            name: "trunkline x".into(),
            trunk_id: SipTrunkId::parse("ST_1").unwrap(),
            room_prefix: "call-".into(),
            routing: RoutingPolicy::new(RoutingPolicyParts {
                agent_name: Some("support".into()),
                metadata: Some("{\"tier\":1}".into()),
                ..Default::default()
            })
            .unwrap(),
        };
        assert!(LiveKitPlatform::desired_rule(&spec).room_config.is_none());
        spec.routing = RoutingPolicy::new(RoutingPolicyParts {
            dispatch_mode: DispatchMode::Rule,
            ..spec.routing.clone().into()
        })
        .unwrap();
        let rule = LiveKitPlatform::desired_rule(&spec);
        assert_eq!(
            agents_of(&rule),
            [("support".to_owned(), "{\"tier\":1}".to_owned())]
        );
        assert!(rule.numbers.is_empty() && rule.inbound_numbers.is_empty());
    }

    #[test]
    fn applying_a_rule_removes_agents_but_keeps_other_room_settings() {
        let mut current = proto::SipDispatchRuleInfo {
            room_config: Some(proto::RoomConfiguration {
                empty_timeout: 30,
                agents: vec![proto::RoomAgentDispatch {
                    agent_name: "old".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            inbound_numbers: vec!["+14155550100".into()],
            ..Default::default()
        };
        let desired = proto::SipDispatchRuleInfo {
            rule: Some(individual_rule("call-")),
            name: "n".into(),
            ..Default::default()
        };
        assert!(!rule_matches(&current, &desired));
        apply_rule(&mut current, &desired);
        assert!(rule_matches(&current, &desired));
        assert_eq!(
            current.room_config.as_ref().map(|c| c.empty_timeout),
            Some(30)
        );
        assert!(agents_of(&current).is_empty());
    }
}
