//! Fakes of the carrier, the vault and LiveKit, for the use-case unit tests only. The store
//! is not faked: the tests run on [`MemoryStore`], which passes the store contract suite
//! like the real stores. The real adapters are tested against emulators and real databases
//! in their own crates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ErrorCode;
use crate::ids::{CarrierAccountId, CarrierNumberId, ProviderKind, RouteId, RouteTargetId};
pub use crate::memory::MemoryStore;
use crate::model::{CarrierCredentials, NumberRouting, SealContext, SealedSecret};
use crate::phone::E164;
use crate::ports::*;

fn hex32(n: usize) -> String {
    format!("{n:032x}")
}

#[derive(Debug, Default)]
pub struct CarrierState {
    pub numbers: Vec<CarrierNumber>,
    pub trunks: Vec<CarrierRoute>,
    pub urls: Vec<CarrierRouteTarget>,
    pub next: usize,
    /// Calls by method name.
    pub calls: HashMap<&'static str, usize>,
    /// Methods that fail once with this error, then succeed.
    pub fail_once: HashMap<&'static str, ProviderError>,
    /// `create_trunk` creates the trunk but answers with an error (a lost answer).
    pub lose_create_answer: bool,
    /// `verify` reports trunking as not enabled (an account without Elastic SIP Trunking).
    pub trunking_not_enabled: bool,
    /// The carrier has no voice-URL routing (`supports_voice_url` is false).
    pub no_voice_url: bool,
    /// Runs once, at the next call of the method: what another instance does meanwhile.
    pub meanwhile: HashMap<&'static str, Meanwhile>,
    /// Runs once, right after the next `find_routes` or `list_route_targets` read what it
    /// answers: another instance changing the carrier after that read.
    pub after_read: HashMap<&'static str, Meanwhile>,
}

/// An action `CarrierState::meanwhile` or `after_read` runs (at most once), on the carrier.
pub struct Meanwhile(pub Box<dyn FnOnce(&mut CarrierState) + Send>);

impl CarrierState {
    fn read_done(&mut self, method: &'static str) {
        if let Some(Meanwhile(action)) = self.after_read.remove(method) {
            action(self);
        }
    }
}

impl std::fmt::Debug for Meanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meanwhile(..)")
    }
}

#[derive(Debug, Clone, Default)]
pub struct FakeCarrier(pub Arc<Mutex<CarrierState>>);

impl FakeCarrier {
    pub fn with_numbers(n: usize) -> (Self, Vec<CarrierNumberId>) {
        let fake = Self::default();
        let mut sids = Vec::new();
        {
            let mut s = fake.0.lock().unwrap();
            for i in 0..n {
                let sid = CarrierNumberId::parse(&format!("PN{}", hex32(i + 1))).unwrap();
                s.numbers.push(CarrierNumber {
                    id: sid.clone(),
                    e164: E164::parse(&format!("+1415555{:04}", 100 + i)).unwrap(),
                    friendly_name: None,
                    voice_capable: true,
                    route_id: None,
                    routing: NumberRouting(serde_json::json!({
                        "voiceUrl": format!("https://old.example/{i}"),
                        "voiceMethod": "POST",
                    })),
                });
                sids.push(sid);
            }
        }
        (fake, sids)
    }

    pub fn add_foreign_trunk(&self) -> RouteId {
        let mut s = self.0.lock().unwrap();
        s.next += 1;
        let sid = RouteId::parse(&format!("TK{}", hex32(9000 + s.next))).unwrap();
        s.trunks.push(CarrierRoute {
            id: sid.clone(),
            name: Some("pbx".into()),
        });
        sid
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, CarrierState> {
        self.0.lock().unwrap()
    }

    pub fn writes(&self) -> usize {
        let s = self.state();
        [
            "create_route",
            "delete_route",
            "create_route_target",
            "update_route_target",
            "delete_route_target",
            "attach_number",
            "detach_number",
            "restore_routing",
            "set_voice_url",
        ]
        .iter()
        .map(|m| s.calls.get(m).copied().unwrap_or(0))
        .sum()
    }

    fn enter(
        &self,
        method: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, CarrierState>, ProviderError> {
        let mut s = self.0.lock().unwrap();
        *s.calls.entry(method).or_default() += 1;
        if let Some(Meanwhile(action)) = s.meanwhile.remove(method) {
            action(&mut s);
        }
        if let Some(e) = s.fail_once.remove(method) {
            return Err(e);
        }
        Ok(s)
    }
}

fn not_found() -> ProviderError {
    ProviderError::new(ErrorCode::NumberNotFound, "no such number")
}

#[async_trait]
impl CarrierProvider for FakeCarrier {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Twilio
    }

    fn credential_form(&self) -> CredentialForm {
        CredentialForm {
            alternatives: vec![CredentialAlternative {
                name: "apiKey",
                fields: vec![CredentialField {
                    name: "apiKey",
                    label: "API key",
                    secret: true,
                    pattern: None,
                    example: None,
                }],
            }],
        }
    }

    fn parse_credentials(
        &self,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, crate::ValidationError> {
        let secret = input
            .secrets
            .get("apiKey")
            .ok_or_else(|| crate::ValidationError::new("is required").field("apiKey"))?;
        Ok(CarrierCredentials {
            account_id: Some(account()),
            key_id: None,
            secret: secret.clone(),
        })
    }

    fn number_id_format(&self) -> IdFormat {
        IdFormat {
            pattern: ".+",
            example: "PN1",
            description: "a fake id",
        }
    }

    fn parse_number_id(&self, raw: &str) -> Result<CarrierNumberId, crate::ValidationError> {
        CarrierNumberId::parse(raw)
    }

    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError> {
        let s = self.enter("verify")?;
        Ok(VerifyReport {
            account_id: creds.account_id.clone(),
            friendly_name: Some("Test".into()),
            capabilities: Capabilities {
                numbers: Capability::Available,
                trunking: if s.trunking_not_enabled {
                    Capability::NotEnabled
                } else {
                    Capability::Available
                },
            },
        })
    }

    async fn list_numbers(
        &self,
        _: &CarrierCredentials,
        q: &NumberQuery,
    ) -> Result<NumberPage, ProviderError> {
        let s = self.enter("list_numbers")?;
        Ok(NumberPage {
            items: s
                .numbers
                .iter()
                .take(q.page_size as usize)
                .cloned()
                .collect(),
            next_cursor: None,
        })
    }

    async fn fetch_number(
        &self,
        _: &CarrierCredentials,
        n: &CarrierNumberId,
    ) -> Result<CarrierNumber, ProviderError> {
        let s = self.enter("fetch_number")?;
        s.numbers
            .iter()
            .find(|x| &x.id == n)
            .cloned()
            .ok_or_else(not_found)
    }

    async fn find_routes(
        &self,
        _: &CarrierCredentials,
        name: &str,
    ) -> Result<Vec<CarrierRoute>, ProviderError> {
        let mut s = self.enter("find_routes")?;
        let found = s
            .trunks
            .iter()
            .filter(|t| t.name.as_deref() == Some(name))
            .cloned()
            .collect();
        s.read_done("find_routes");
        Ok(found)
    }

    async fn fetch_route(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
    ) -> Result<Option<CarrierRoute>, ProviderError> {
        let s = self.enter("fetch_route")?;
        Ok(s.trunks.iter().find(|x| &x.id == t).cloned())
    }

    async fn create_route(
        &self,
        _: &CarrierCredentials,
        spec: &RouteSpec,
    ) -> Result<CarrierRoute, ProviderError> {
        let mut s = self.enter("create_route")?;
        s.next += 1;
        let t = CarrierRoute {
            id: RouteId::parse(&format!("TK{}", hex32(s.next))).unwrap(),
            name: Some(spec.name.clone()),
        };
        s.trunks.push(t.clone());
        if s.lose_create_answer {
            s.lose_create_answer = false;
            return Err(ProviderError::unavailable("timed out"));
        }
        Ok(t)
    }

    async fn delete_route(&self, _: &CarrierCredentials, t: &RouteId) -> Result<(), ProviderError> {
        let mut s = self.enter("delete_route")?;
        s.trunks.retain(|x| &x.id != t);
        s.urls.retain(|u| &u.route_id != t);
        for n in &mut s.numbers {
            if n.route_id.as_ref() == Some(t) {
                n.route_id = None;
            }
        }
        Ok(())
    }

    async fn list_route_targets(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
    ) -> Result<Vec<CarrierRouteTarget>, ProviderError> {
        let mut s = self.enter("list_route_targets")?;
        let found = s
            .urls
            .iter()
            .filter(|u| &u.route_id == t)
            .cloned()
            .collect();
        s.read_done("list_route_targets");
        Ok(found)
    }

    async fn create_route_target(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let mut s = self.enter("create_route_target")?;
        s.next += 1;
        let u = CarrierRouteTarget {
            id: RouteTargetId::parse(&format!("OU{}", hex32(s.next))).unwrap(),
            route_id: t.clone(),
            sip_url: spec.target.sip_url().to_string(),
            priority: spec.target.priority(),
            weight: spec.target.weight(),
            enabled: spec.enabled,
            name: Some(spec.name.clone()),
        };
        s.urls.push(u.clone());
        Ok(u)
    }

    async fn update_route_target(
        &self,
        _: &CarrierCredentials,
        _: &RouteId,
        sid: &RouteTargetId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let mut s = self.enter("update_route_target")?;
        let u = s
            .urls
            .iter_mut()
            .find(|u| &u.id == sid)
            .ok_or_else(|| ProviderError::new(ErrorCode::NotFound, "no url"))?;
        u.sip_url = spec.target.sip_url().to_string();
        u.priority = spec.target.priority();
        u.weight = spec.target.weight();
        u.enabled = spec.enabled;
        Ok(u.clone())
    }

    async fn delete_route_target(
        &self,
        _: &CarrierCredentials,
        _: &RouteId,
        sid: &RouteTargetId,
    ) -> Result<(), ProviderError> {
        let mut s = self.enter("delete_route_target")?;
        s.urls.retain(|u| &u.id != sid);
        Ok(())
    }

    async fn list_route_numbers(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
    ) -> Result<Vec<CarrierNumberId>, ProviderError> {
        let s = self.enter("list_route_numbers")?;
        Ok(s.numbers
            .iter()
            .filter(|n| n.route_id.as_ref() == Some(t))
            .map(|n| n.id.clone())
            .collect())
    }

    async fn attach_number(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
        n: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let mut s = self.enter("attach_number")?;
        let num = s
            .numbers
            .iter_mut()
            .find(|x| &x.id == n)
            .ok_or_else(not_found)?;
        match &num.route_id {
            Some(cur) if cur == t => Ok(()),
            Some(_) => Err(ProviderError::new(
                ErrorCode::NumberInUse,
                "on another trunk",
            )),
            None => {
                num.route_id = Some(t.clone());
                Ok(())
            }
        }
    }

    async fn detach_number(
        &self,
        _: &CarrierCredentials,
        t: &RouteId,
        n: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let mut s = self.enter("detach_number")?;
        if let Some(num) = s
            .numbers
            .iter_mut()
            .find(|x| &x.id == n && x.route_id.as_ref() == Some(t))
        {
            num.route_id = None;
        }
        Ok(())
    }

    async fn restore_routing(
        &self,
        _: &CarrierCredentials,
        n: &CarrierNumberId,
        v: &NumberRouting,
    ) -> Result<(), ProviderError> {
        let mut s = self.enter("restore_routing")?;
        let num = s
            .numbers
            .iter_mut()
            .find(|x| &x.id == n)
            .ok_or_else(not_found)?;
        num.routing = v.clone();
        Ok(())
    }

    fn parse_webhook_secret(
        &self,
        input: &CredentialInput,
    ) -> Result<Option<SecretString>, crate::ValidationError> {
        Ok(input.secrets.get("authToken").cloned())
    }

    fn supports_voice_url(&self) -> bool {
        !self.state().no_voice_url
    }

    async fn set_voice_url(
        &self,
        _: &CarrierCredentials,
        n: &CarrierNumberId,
        url: &str,
    ) -> Result<(), ProviderError> {
        let mut s = self.enter("set_voice_url")?;
        let num = s
            .numbers
            .iter_mut()
            .find(|x| &x.id == n)
            .ok_or_else(not_found)?;
        num.routing = NumberRouting(serde_json::json!({ "voiceUrl": url, "voiceMethod": "POST" }));
        Ok(())
    }

    fn routing_points_at(&self, routing: &NumberRouting, url: &str) -> bool {
        routing.0.get("voiceUrl").and_then(|v| v.as_str()) == Some(url)
            && routing.0.get("voiceMethod").and_then(|v| v.as_str()) == Some("POST")
    }
}

/// Seals by prefixing the context, so a wrong context fails like the real vault.
#[derive(Debug, Default)]
pub struct FakeVault;

fn ctx_tag(ctx: &SealContext) -> String {
    format!(
        "{}|{}|{}|",
        ctx.customer_id, ctx.integration_id, ctx.provider
    )
}

#[async_trait]
impl CredentialVault for FakeVault {
    async fn seal(
        &self,
        secret: &SecretString,
        ctx: &SealContext,
    ) -> Result<SealedSecret, VaultError> {
        Ok(SealedSecret(
            format!("{}{}", ctx_tag(ctx), secret.expose_secret()).into_bytes(),
        ))
    }
    async fn open(
        &self,
        sealed: &SealedSecret,
        ctx: &SealContext,
    ) -> Result<SecretString, VaultError> {
        let s = String::from_utf8(sealed.0.clone()).map_err(|_| VaultError::Malformed("utf8"))?;
        s.strip_prefix(&ctx_tag(ctx))
            .map(|p| SecretString::from(p.to_owned()))
            .ok_or(VaultError::Decrypt)
    }
    fn needs_reseal(&self, _: &SealedSecret) -> bool {
        false
    }
    async fn reseal(
        &self,
        sealed: &SealedSecret,
        _: &SealContext,
    ) -> Result<SealedSecret, VaultError> {
        Ok(sealed.clone())
    }
}

/// What the use-case tests need of the memory store beyond its ports: wiring, and time
/// that passed. Every rule is the store's own (`crate::memory`), checked by the contract suite.
impl MemoryStore {
    /// The onboarding ports of a test: this store behind every store port, the fake vault,
    /// no outbound store.
    pub fn onboarding_ports(
        &self,
        carriers: HashMap<ProviderKind, Arc<dyn CarrierProvider>>,
        sip: Option<Arc<dyn SipPlatform>>,
    ) -> super::OnboardingPorts {
        super::OnboardingPorts {
            carriers,
            sip,
            vault: Arc::new(FakeVault),
            integrations: Arc::new(self.clone()),
            connections: Arc::new(self.clone()),
            leases: Arc::new(self.clone()),
            audit: Arc::new(self.clone()),
            outbound: None,
            voice: Arc::new(self.clone()),
        }
    }

    /// Age a call's last change and its claim by `by` (to pass a backoff without waiting).
    pub fn age(&self, room: &crate::ids::RoomName, by: chrono::Duration) {
        if let Some(c) = self.tables().calls.get_mut(room.as_str()) {
            c.call.updated_at -= by;
            if let Some(exp) = c.claim_expires.as_mut() {
                *exp -= by;
            }
        }
    }
}

pub fn account() -> CarrierAccountId {
    CarrierAccountId::parse(&format!("AC{}", hex32(77))).unwrap()
}

/// Calls: a sample connection and a LiveKit stand-in.
pub mod calls {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::Utc;

    use crate::ids::ConnectionId;
    use crate::ports::*;

    /// A connected number routed to an agent by webhook, as calls tests need one.
    pub fn sample_connection(e164: &str) -> crate::model::NumberConnection {
        use crate::ids::{CarrierNumberId, CustomerId, IntegrationId, ProviderKind};
        use crate::model::{ConnectionStatus, DispatchMode, RoutingPolicy, TrunkStrategy};
        let now = Utc::now();
        crate::model::NumberConnection {
            id: ConnectionId::new(),
            customer_id: CustomerId::parse("acme").unwrap(),
            provider: ProviderKind::Twilio,
            integration_id: IntegrationId::new(),
            number_id: CarrierNumberId::parse(&format!("PN{:032x}", 1)).unwrap(),
            e164: crate::phone::E164::parse(e164).unwrap(),
            status: ConnectionStatus::Connected,
            trunk_strategy: TrunkStrategy::Shared,
            route_id: None,
            route_created: false,
            route_targets: Vec::new(),
            sip_target: crate::sip::SipTarget::parse("sip:lk.example").unwrap(),
            routing: RoutingPolicy::new(crate::model::RoutingPolicyParts {
                agent_name: Some("support-agent".to_owned()),
                metadata: None,
                attributes: std::collections::BTreeMap::new(),
                dispatch_mode: DispatchMode::Webhook,
            })
            .unwrap(),
            previous_routing: None,
            livekit_trunk_id: None,
            livekit_rule_id: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            connected_at: Some(now),
            disconnected_at: None,
        }
    }

    #[derive(Debug, Default)]
    pub struct SipState {
        /// (room, dispatch id, agent, metadata), in creation order.
        pub dispatches: Vec<(
            crate::ids::RoomName,
            crate::ids::AgentDispatchId,
            String,
            Option<String>,
        )>,
        /// The next N `dispatch_agent` calls fail with PROVIDER_UNAVAILABLE.
        pub fail_dispatches: u32,
        /// The next N `dispatch_agent` calls dispatch but answer PROVIDER_UNAVAILABLE.
        pub lose_dispatch_answers: u32,
        /// The next N `list_agent_dispatches` calls fail.
        pub fail_lists: u32,
        pub dispatch_calls: usize,
        /// `list_agent_dispatches` calls, answered or failed.
        pub list_calls: usize,
        pub verified: usize,
        /// Inbound trunks, for the connect tests that check who holds a number.
        pub inbound_trunks: Vec<InboundTrunkInfo>,
        /// Dispatch rules, for the tests of connect's LiveKit half.
        pub rules: Vec<DispatchRuleInfo>,
        /// Ids handed out so far (trunks and rules).
        pub next_id: usize,
    }

    /// LiveKit's webhook and dispatch half: a body is "signed" when the authorization is
    /// `signed:<body length>`, and the body is a small JSON description of the event.
    #[derive(Debug, Default, Clone)]
    pub struct FakeSip(pub Arc<Mutex<SipState>>);

    impl FakeSip {
        pub fn state(&self) -> std::sync::MutexGuard<'_, SipState> {
            self.0.lock().unwrap()
        }

        pub fn sign(body: &[u8]) -> String {
            format!("signed:{}", body.len())
        }

        pub fn dispatches_in(&self, room: &str) -> usize {
            self.state()
                .dispatches
                .iter()
                .filter(|d| d.0.as_str() == room)
                .count()
        }
    }

    fn unused() -> ProviderError {
        ProviderError::unavailable("not used by the call tests")
    }

    #[async_trait]
    impl SipPlatform for FakeSip {
        /// The stored trunk when it still exists (brought up to the spec), else a new one.
        async fn ensure_inbound_trunk(
            &self,
            spec: &InboundTrunkSpec,
            stored: Option<crate::ids::SipTrunkId>,
        ) -> Result<InboundTrunkInfo, ProviderError> {
            let mut s = self.state();
            let want = InboundTrunkInfo {
                id: if let Some(id) =
                    stored.filter(|id| s.inbound_trunks.iter().any(|t| &t.id == id))
                {
                    id
                } else {
                    s.next_id += 1;
                    crate::ids::SipTrunkId::parse(&format!("ST_{}", s.next_id)).unwrap()
                },
                name: spec.name.clone(),
                numbers: vec![spec.number.as_str().to_owned()],
            };
            s.inbound_trunks.retain(|t| t.id != want.id);
            s.inbound_trunks.push(want.clone());
            Ok(want)
        }

        /// The stored rule when it still exists (brought up to the spec), else a new one.
        async fn ensure_dispatch_rule(
            &self,
            spec: &DispatchRuleSpec,
            stored: Option<crate::ids::DispatchRuleId>,
        ) -> Result<DispatchRuleInfo, ProviderError> {
            let mut s = self.state();
            let want = DispatchRuleInfo {
                id: if let Some(id) = stored.filter(|id| s.rules.iter().any(|r| &r.id == id)) {
                    id
                } else {
                    s.next_id += 1;
                    crate::ids::DispatchRuleId::parse(&format!("SDR_{}", s.next_id)).unwrap()
                },
                name: spec.name.clone(),
                trunk_ids: vec![spec.trunk_id.to_string()],
                room_prefix: Some(spec.room_prefix.clone()),
                agent_names: spec
                    .routing
                    .agent_name()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            };
            s.rules.retain(|r| r.id != want.id);
            s.rules.push(want.clone());
            Ok(want)
        }

        async fn inbound_trunks_for_number(
            &self,
            number: &crate::phone::E164,
        ) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
            Ok(self
                .state()
                .inbound_trunks
                .iter()
                .filter(|t| t.numbers.iter().any(|n| n == number.as_str()))
                .cloned()
                .collect())
        }

        async fn get_inbound_trunk(
            &self,
            _: &crate::ids::SipTrunkId,
        ) -> Result<Option<InboundTrunkInfo>, ProviderError> {
            Err(unused())
        }

        async fn get_dispatch_rule(
            &self,
            _: &crate::ids::DispatchRuleId,
        ) -> Result<Option<DispatchRuleInfo>, ProviderError> {
            Err(unused())
        }

        async fn list_inbound_trunks(&self) -> Result<Vec<InboundTrunkInfo>, ProviderError> {
            Ok(self.state().inbound_trunks.clone())
        }

        async fn list_dispatch_rules(&self) -> Result<Vec<DispatchRuleInfo>, ProviderError> {
            Err(unused())
        }

        async fn delete_inbound_trunk(
            &self,
            _: &crate::ids::SipTrunkId,
        ) -> Result<(), ProviderError> {
            Err(unused())
        }

        async fn delete_dispatch_rule(
            &self,
            _: &crate::ids::DispatchRuleId,
        ) -> Result<(), ProviderError> {
            Err(unused())
        }

        async fn dispatch_agent(
            &self,
            room: &crate::ids::RoomName,
            agent_name: &str,
            metadata: Option<String>,
        ) -> Result<crate::ids::AgentDispatchId, ProviderError> {
            // Let concurrent handlers interleave here, as a network call would.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let mut s = self.0.lock().unwrap();
            s.dispatch_calls += 1;
            if s.fail_dispatches > 0 {
                s.fail_dispatches -= 1;
                return Err(ProviderError::unavailable("LiveKit answered 503"));
            }
            let id = crate::ids::AgentDispatchId::parse(&format!("AD_{}", s.dispatches.len() + 1))
                .unwrap();
            s.dispatches
                .push((room.clone(), id.clone(), agent_name.to_owned(), metadata));
            if s.lose_dispatch_answers > 0 {
                s.lose_dispatch_answers -= 1;
                return Err(ProviderError::unavailable("timed out"));
            }
            Ok(id)
        }

        async fn list_agent_dispatches(
            &self,
            room: &crate::ids::RoomName,
        ) -> Result<Vec<(crate::ids::AgentDispatchId, String)>, ProviderError> {
            let mut s = self.0.lock().unwrap();
            s.list_calls += 1;
            if s.fail_lists > 0 {
                s.fail_lists -= 1;
                return Err(ProviderError::unavailable("LiveKit answered 502"));
            }
            Ok(s.dispatches
                .iter()
                .filter(|d| &d.0 == room)
                .map(|d| (d.1.clone(), d.2.clone()))
                .collect())
        }

        fn verify_webhook(
            &self,
            body: &[u8],
            authorization: &str,
        ) -> Result<WebhookEvent, WebhookError> {
            if authorization.is_empty() {
                return Err(WebhookError::MissingToken);
            }
            if authorization != Self::sign(body) {
                return Err(WebhookError::InvalidSignature(
                    "signature does not verify".into(),
                ));
            }
            self.0.lock().unwrap().verified += 1;
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
            let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
            let id = crate::ids::WebhookEventId::parse(&text("id").unwrap_or_default())
                .map_err(|e| WebhookError::Malformed(e.to_string()))?;
            let name = text("event").unwrap_or_default();
            let sip = (text("kind").as_deref() == Some("SIP")).then(|| SipParticipant {
                identity: text("identity").unwrap_or_default(),
                called_number: text("called"),
                caller_number: text("caller"),
                sip_call_id: text("callId"),
                trunk_id: text("trunkId"),
            });
            let kind = match name.as_str() {
                "room_started" => WebhookKind::RoomStarted,
                "room_finished" => WebhookKind::RoomFinished,
                "participant_joined" => WebhookKind::ParticipantJoined { sip },
                "participant_left" => WebhookKind::ParticipantLeft { sip },
                other => WebhookKind::Other(other.to_owned()),
            };
            Ok(WebhookEvent {
                id,
                name,
                kind,
                room: text("room").map(|r| crate::ids::RoomName::parse(&r).unwrap()),
                created_at: v
                    .get("createdAt")
                    .and_then(serde_json::Value::as_i64)
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
            })
        }
    }
}
