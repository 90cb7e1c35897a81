//! In-memory fakes of the ports, for the use-case unit tests only. The real adapters are
//! tested against emulators and real databases in their own crates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ErrorCode;
use crate::ids::{
    CarrierAccountId, CarrierNumberId, ConnectionId, CustomerId, ProviderKind, RouteId,
    RouteTargetId,
};
use crate::model::{
    AuditEvent, CarrierCredentials, ConnectionStatus, Integration, Lease, LeaseKey, LeaseState,
    NumberConnection, NumberRouting, SealContext, SealedSecret,
};
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
}

/// An action `CarrierState::meanwhile` runs (at most once).
pub struct Meanwhile(pub Box<dyn FnOnce() + Send>);

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
            action();
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
        let s = self.enter("find_routes")?;
        Ok(s.trunks
            .iter()
            .filter(|t| t.name.as_deref() == Some(name))
            .cloned()
            .collect())
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
        let s = self.enter("list_route_targets")?;
        Ok(s.urls
            .iter()
            .filter(|u| &u.route_id == t)
            .cloned()
            .collect())
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

/// Integrations, connections, leases and audit in memory.
#[derive(Debug, Default, Clone)]
pub struct FakeStore {
    pub integrations: Arc<Mutex<Vec<Integration>>>,
    pub connections: Arc<Mutex<Vec<NumberConnection>>>,
    pub leases: Arc<Mutex<HashMap<String, Lease>>>,
    pub audit: Arc<Mutex<Vec<AuditEvent>>>,
    pub fleet: Arc<Mutex<FleetState>>,
    pub voice: Arc<Mutex<FakeVoice>>,
    /// `find_live_connection_by_e164` calls.
    pub live_lookups: Arc<std::sync::atomic::AtomicUsize>,
    /// The keys of every lease taken, in order.
    pub acquired: Arc<Mutex<Vec<String>>>,
}

/// The fleet tables in memory.
#[derive(Debug, Default)]
pub struct FleetState {
    pub checks: HashMap<ConnectionId, crate::model::ConnectionCheck>,
    pub purchases: Vec<crate::model::PurchasedNumber>,
    pub settings: Vec<crate::model::IntegrationSettings>,
}

#[async_trait]
impl crate::ports::FleetStore for FakeStore {
    async fn list_customers(
        &self,
        after: Option<CustomerId>,
        limit: u32,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let mut ids: Vec<CustomerId> = self
            .integrations
            .lock()
            .unwrap()
            .iter()
            .map(|i| i.customer_id.clone())
            .chain(
                self.connections
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|c| c.customer_id.clone()),
            )
            .filter(|c| after.as_ref().is_none_or(|a| c > a))
            .collect();
        ids.sort();
        ids.dedup();
        ids.truncate(limit as usize);
        Ok(ids)
    }
    async fn list_all_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let mut v: Vec<NumberConnection> = self
            .connections
            .lock()
            .unwrap()
            .iter()
            .filter(|c| after.is_none_or(|a| c.id > a))
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        v.truncate(limit as usize);
        Ok(v)
    }
    async fn save_check(&self, check: &crate::model::ConnectionCheck) -> Result<(), StoreError> {
        self.fleet
            .lock()
            .unwrap()
            .checks
            .insert(check.connection_id, check.clone());
        Ok(())
    }
    async fn get_checks(
        &self,
        ids: &[ConnectionId],
    ) -> Result<Vec<crate::model::ConnectionCheck>, StoreError> {
        let f = self.fleet.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|i| f.checks.get(i).cloned())
            .collect())
    }
    async fn save_purchase(&self, p: &crate::model::PurchasedNumber) -> Result<(), StoreError> {
        let mut f = self.fleet.lock().unwrap();
        f.purchases.retain(|x| {
            !(x.customer_id == p.customer_id
                && x.provider == p.provider
                && x.number_id == p.number_id)
        });
        f.purchases.push(p.clone());
        Ok(())
    }
    async fn get_purchase(
        &self,
        c: &CustomerId,
        p: ProviderKind,
        n: &CarrierNumberId,
    ) -> Result<Option<crate::model::PurchasedNumber>, StoreError> {
        Ok(self
            .fleet
            .lock()
            .unwrap()
            .purchases
            .iter()
            .find(|x| &x.customer_id == c && x.provider == p && &x.number_id == n)
            .cloned())
    }
    async fn get_settings(
        &self,
        c: &CustomerId,
        p: ProviderKind,
    ) -> Result<Option<crate::model::IntegrationSettings>, StoreError> {
        Ok(self
            .fleet
            .lock()
            .unwrap()
            .settings
            .iter()
            .find(|x| &x.customer_id == c && x.provider == p)
            .cloned())
    }
    async fn put_settings(&self, s: &crate::model::IntegrationSettings) -> Result<(), StoreError> {
        let mut f = self.fleet.lock().unwrap();
        f.settings
            .retain(|x| !(x.customer_id == s.customer_id && x.provider == s.provider));
        f.settings.push(s.clone());
        Ok(())
    }
}

/// Voice-URL storage in memory; `route_reads` counts the webhook's reads.
#[derive(Debug, Default)]
pub struct FakeVoice {
    pub secrets: Vec<(
        CustomerId,
        ProviderKind,
        crate::ids::IntegrationId,
        SealedSecret,
    )>,
    pub bindings: Vec<VoiceBinding>,
    pub route_reads: usize,
}

#[async_trait]
impl VoiceUrlStore for FakeStore {
    async fn put_webhook_secret(
        &self,
        c: &CustomerId,
        p: ProviderKind,
        i: crate::ids::IntegrationId,
        sealed: Option<SealedSecret>,
    ) -> Result<(), StoreError> {
        let mut v = self.voice.lock().unwrap();
        v.secrets.retain(|(cc, pp, _, _)| !(cc == c && *pp == p));
        if let Some(s) = sealed {
            v.secrets.push((c.clone(), p, i, s));
        }
        Ok(())
    }
    async fn has_webhook_secret(
        &self,
        c: &CustomerId,
        p: ProviderKind,
    ) -> Result<bool, StoreError> {
        let current = self.get_integration(c, p).await?.map(|i| i.id);
        Ok(self
            .voice
            .lock()
            .unwrap()
            .secrets
            .iter()
            .any(|(cc, pp, i, _)| cc == c && *pp == p && Some(*i) == current))
    }
    async fn save_voice_binding(&self, b: &VoiceBinding) -> Result<(), StoreError> {
        let mut v = self.voice.lock().unwrap();
        v.bindings.retain(|x| x.connection_id != b.connection_id);
        v.bindings.push(b.clone());
        Ok(())
    }
    async fn get_voice_binding(
        &self,
        id: ConnectionId,
    ) -> Result<Option<VoiceBinding>, StoreError> {
        Ok(self
            .voice
            .lock()
            .unwrap()
            .bindings
            .iter()
            .find(|b| b.connection_id == id)
            .cloned())
    }
    async fn delete_voice_binding(&self, id: ConnectionId) -> Result<(), StoreError> {
        self.voice
            .lock()
            .unwrap()
            .bindings
            .retain(|b| b.connection_id != id);
        Ok(())
    }
    async fn voice_route(
        &self,
        p: ProviderKind,
        account: &CarrierAccountId,
        e: &E164,
    ) -> Result<Vec<VoiceRouteCandidate>, StoreError> {
        let integrations = self.integrations.lock().unwrap().clone();
        let connections = self.connections.lock().unwrap().clone();
        let mut v = self.voice.lock().unwrap();
        v.route_reads += 1;
        let mut out = Vec::new();
        for i in integrations.iter().filter(|i| {
            i.provider == p
                && i.account_id.as_ref() == Some(account)
                && i.status == crate::model::IntegrationStatus::Active
        }) {
            let Some((_, _, _, sealed)) = v
                .secrets
                .iter()
                .find(|(c, pp, id, _)| c == &i.customer_id && *pp == p && *id == i.id)
            else {
                continue;
            };
            let connection = connections
                .iter()
                .find(|c| {
                    c.customer_id == i.customer_id
                        && c.provider == p
                        && &c.e164 == e
                        && c.status != crate::model::ConnectionStatus::Disconnected
                })
                .map(|c| VoiceRouteConnection {
                    connection_id: c.id,
                    integration_id: c.integration_id,
                    status: c.status,
                    sip_target: c.sip_target.to_string(),
                    binding: v.bindings.iter().find(|b| b.connection_id == c.id).cloned(),
                });
            out.push(VoiceRouteCandidate {
                customer_id: i.customer_id.clone(),
                integration_id: i.id,
                sealed_webhook_secret: sealed.clone(),
                connection,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl IntegrationStore for FakeStore {
    async fn get_integration(
        &self,
        c: &CustomerId,
        p: ProviderKind,
    ) -> Result<Option<Integration>, StoreError> {
        Ok(self
            .integrations
            .lock()
            .unwrap()
            .iter()
            .find(|i| &i.customer_id == c && i.provider == p)
            .cloned())
    }
    async fn put_integration(&self, i: &Integration) -> Result<(), StoreError> {
        let mut v = self.integrations.lock().unwrap();
        v.retain(|x| !(x.customer_id == i.customer_id && x.provider == i.provider));
        v.push(i.clone());
        Ok(())
    }
    async fn delete_integration(
        &self,
        c: &CustomerId,
        p: ProviderKind,
    ) -> Result<bool, StoreError> {
        let mut v = self.integrations.lock().unwrap();
        let before = v.len();
        v.retain(|x| !(&x.customer_id == c && x.provider == p));
        Ok(v.len() != before)
    }
}

/// Carrier credentials only: the core's tests of rotation need no other kind.
#[async_trait]
impl crate::ports::SealedSecretStore for FakeStore {
    async fn sealed_after(
        &self,
        kind: crate::ports::SealedKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<crate::ports::SealedRow>, StoreError> {
        if kind != crate::ports::SealedKind::Credentials {
            return Ok(Vec::new());
        }
        let mut v: Vec<crate::ports::SealedRow> = self
            .integrations
            .lock()
            .unwrap()
            .iter()
            .map(|i| crate::ports::SealedRow {
                key: i.id.to_string(),
                context: Some(crate::model::SealContext {
                    customer_id: i.customer_id.clone(),
                    integration_id: i.id,
                    provider: i.provider,
                }),
                sealed: i.sealed_secret.clone(),
            })
            .filter(|r| after.as_ref().is_none_or(|a| r.key > *a))
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(v)
    }
    async fn replace_sealed(
        &self,
        kind: crate::ports::SealedKind,
        key: &str,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        if kind != crate::ports::SealedKind::Credentials {
            return Ok(false);
        }
        let mut v = self.integrations.lock().unwrap();
        match v
            .iter_mut()
            .find(|i| i.id.to_string() == key && &i.sealed_secret == expected)
        {
            Some(i) => {
                i.sealed_secret = new.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl ConnectionStore for FakeStore {
    async fn get_connection(
        &self,
        c: &CustomerId,
        p: ProviderKind,
        n: &CarrierNumberId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        Ok(self
            .connections
            .lock()
            .unwrap()
            .iter()
            .find(|x| &x.customer_id == c && x.provider == p && &x.number_id == n)
            .cloned())
    }
    async fn get_connection_by_id(
        &self,
        id: ConnectionId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        Ok(self
            .connections
            .lock()
            .unwrap()
            .iter()
            .find(|x| x.id == id)
            .cloned())
    }
    async fn find_live_connection_by_e164(
        &self,
        e: &E164,
    ) -> Result<Option<NumberConnection>, StoreError> {
        self.live_lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .connections
            .lock()
            .unwrap()
            .iter()
            .filter(|x| &x.e164 == e && x.status != ConnectionStatus::Disconnected)
            // As the contract says: the most recently updated live one wins.
            .max_by_key(|x| x.updated_at)
            .cloned())
    }
    async fn list_connections(
        &self,
        c: &CustomerId,
        p: ProviderKind,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let mut v: Vec<_> = self
            .connections
            .lock()
            .unwrap()
            .iter()
            .filter(|x| &x.customer_id == c && x.provider == p)
            .cloned()
            .collect();
        // Oldest first, as the contract lists them, whatever order they were saved in.
        v.sort_by_key(|x| x.created_at);
        Ok(v)
    }
    async fn save_connection(&self, conn: &NumberConnection) -> Result<(), StoreError> {
        let mut v = self.connections.lock().unwrap();
        // One row per customer, provider and number.
        if v.iter().any(|x| {
            x.id != conn.id
                && x.customer_id == conn.customer_id
                && x.provider == conn.provider
                && x.number_id == conn.number_id
        }) {
            return Err(StoreError::Conflict("number".into()));
        }
        match v.iter_mut().find(|x| x.id == conn.id) {
            Some(row) => *row = conn.clone(),
            None => v.push(conn.clone()),
        }
        Ok(())
    }
}

#[async_trait]
impl LeaseStore for FakeStore {
    async fn try_acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut m = self.leases.lock().unwrap();
        let now = Utc::now();
        if m.get(&key.storage_key())
            .is_some_and(|l| l.expires_at > now)
        {
            return Ok(None);
        }
        let lease = Lease {
            key: key.clone(),
            holder: holder.to_owned(),
            token: uuid::Uuid::new_v4(),
            expires_at: now + chrono::Duration::from_std(ttl).unwrap(),
        };
        m.insert(key.storage_key(), lease.clone());
        self.acquired.lock().unwrap().push(key.storage_key());
        Ok(Some(lease))
    }
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut m = self.leases.lock().unwrap();
        match m.get_mut(&lease.key.storage_key()) {
            Some(l) if l.token == lease.token => {
                l.expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap();
                Ok(Some(l.clone()))
            }
            _ => Ok(None),
        }
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut m = self.leases.lock().unwrap();
        if let Some(l) = m
            .get_mut(&lease.key.storage_key())
            .filter(|l| l.token == lease.token)
        {
            l.token = uuid::Uuid::new_v4();
            l.expires_at = Utc::now();
        }
        Ok(())
    }
    async fn peek_lease(&self, key: &LeaseKey) -> Result<Option<LeaseState>, StoreError> {
        let m = self.leases.lock().unwrap();
        Ok(m.get(&key.storage_key()).map(|l| LeaseState {
            token: l.token,
            held: l.expires_at > Utc::now(),
        }))
    }
}

#[async_trait]
impl AuditLog for FakeStore {
    async fn append_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        self.audit.lock().unwrap().push(e.clone());
        Ok(())
    }
    async fn list_audit(&self, c: &CustomerId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self
            .audit
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|e| &e.customer_id == c)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

impl FakeStore {
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
}

pub fn account() -> CarrierAccountId {
    CarrierAccountId::parse(&format!("AC{}", hex32(77))).unwrap()
}

/// Calls: an in-memory CallStore with the SQL stores' semantics, and a LiveKit stand-in.
pub mod calls {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::Utc;

    use crate::ids::ConnectionId;
    use crate::model::{CallRecord, CallStatus, DispatchClaim, DispatchStatus};
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

    #[derive(Debug, Clone)]
    pub struct StoredCall {
        pub call: crate::model::CallRecord,
        pub claimant: Option<String>,
        pub claim_expires: Option<chrono::DateTime<Utc>>,
    }

    #[derive(Debug, Default)]
    pub struct CallState {
        pub calls: HashMap<String, StoredCall>,
        pub events: Vec<WebhookEventRecord>,
        /// Every CallStore method call, by name.
        pub touches: HashMap<&'static str, usize>,
    }

    /// Calls, webhook events and dispatch claims in memory, atomically (one lock), with the
    /// semantics of the SQL stores: merges fill what is missing and never move status back.
    #[derive(Debug, Default, Clone)]
    pub struct FakeCallStore(pub Arc<Mutex<CallState>>);

    impl FakeCallStore {
        pub fn state(&self) -> std::sync::MutexGuard<'_, CallState> {
            self.0.lock().unwrap()
        }

        pub fn total_touches(&self) -> usize {
            self.state().touches.values().sum()
        }

        fn enter(&self, method: &'static str) -> std::sync::MutexGuard<'_, CallState> {
            let mut s = self.0.lock().unwrap();
            *s.touches.entry(method).or_default() += 1;
            s
        }

        /// Age a call's last change (to pass a backoff without waiting).
        pub fn age(&self, room: &crate::ids::RoomName, by: chrono::Duration) {
            if let Some(c) = self.state().calls.get_mut(room.as_str()) {
                c.call.updated_at -= by;
                if let Some(exp) = c.claim_expires.as_mut() {
                    *exp -= by;
                }
            }
        }
    }

    fn merge_status(stored: CallStatus, incoming: CallStatus) -> CallStatus {
        match (stored, incoming) {
            (CallStatus::Unrouted | CallStatus::Ended, _) => stored,
            (_, CallStatus::Active | CallStatus::Ended) => incoming,
            _ => stored,
        }
    }

    #[async_trait]
    impl CallStore for FakeCallStore {
        async fn record_webhook_event(
            &self,
            event: &WebhookEventRecord,
        ) -> Result<bool, StoreError> {
            let mut s = self.enter("record_webhook_event");
            if s.events.iter().any(|e| e.id == event.id) {
                return Ok(false);
            }
            s.events.push(event.clone());
            Ok(true)
        }

        async fn last_webhook_event(
            &self,
            room: &crate::ids::RoomName,
        ) -> Result<Option<WebhookEventRecord>, StoreError> {
            let s = self.enter("last_webhook_event");
            Ok(s.events
                .iter()
                .rev()
                .find(|e| e.room_name.as_ref() == Some(room))
                .cloned())
        }

        async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError> {
            let mut s = self.enter("upsert_call");
            let key = call.room_name.as_str().to_owned();
            let Some(stored) = s.calls.get_mut(&key) else {
                s.calls.insert(
                    key,
                    StoredCall {
                        call: call.clone(),
                        claimant: None,
                        claim_expires: None,
                    },
                );
                return Ok(call.clone());
            };
            let c = &mut stored.call;
            c.customer_id = c.customer_id.clone().or_else(|| call.customer_id.clone());
            c.connection_id = c.connection_id.or(call.connection_id);
            c.sip_call_id = c.sip_call_id.clone().or_else(|| call.sip_call_id.clone());
            c.called = c.called.clone().or_else(|| call.called.clone());
            c.caller = c.caller.clone().or_else(|| call.caller.clone());
            c.agent_name = c.agent_name.clone().or_else(|| call.agent_name.clone());
            c.answered_at = c.answered_at.or(call.answered_at);
            c.ended_at = c.ended_at.or(call.ended_at);
            c.dispatch_id = c.dispatch_id.clone().or_else(|| call.dispatch_id.clone());
            if c.dispatch_status == DispatchStatus::None {
                c.dispatch_status = call.dispatch_status;
            }
            c.status = merge_status(c.status, call.status);
            c.updated_at = c.updated_at.max(call.updated_at);
            Ok(c.clone())
        }

        async fn end_call(
            &self,
            room: &crate::ids::RoomName,
            at: chrono::DateTime<Utc>,
        ) -> Result<Option<CallRecord>, StoreError> {
            let mut s = self.enter("end_call");
            Ok(s.calls.get_mut(room.as_str()).map(|stored| {
                let c = &mut stored.call;
                c.ended_at = c.ended_at.or(Some(at));
                if c.status != CallStatus::Unrouted {
                    c.status = CallStatus::Ended;
                }
                // The claimant is kept: a worker dispatching right now may still record it.
                if matches!(
                    c.dispatch_status,
                    DispatchStatus::Failed | DispatchStatus::Claimed
                ) {
                    c.dispatch_status = DispatchStatus::Cancelled;
                }
                c.updated_at = c.updated_at.max(Utc::now());
                c.clone()
            }))
        }

        async fn get_call(&self, id: crate::ids::CallId) -> Result<Option<CallRecord>, StoreError> {
            let s = self.enter("get_call");
            Ok(s.calls
                .values()
                .find(|c| c.call.id == id)
                .map(|c| c.call.clone()))
        }

        async fn get_call_by_room(
            &self,
            room: &crate::ids::RoomName,
        ) -> Result<Option<CallRecord>, StoreError> {
            let s = self.enter("get_call_by_room");
            Ok(s.calls.get(room.as_str()).map(|c| c.call.clone()))
        }

        async fn recent_calls(
            &self,
            connection: ConnectionId,
            limit: u32,
        ) -> Result<Vec<CallRecord>, StoreError> {
            let s = self.enter("recent_calls");
            let mut calls: Vec<CallRecord> = s
                .calls
                .values()
                .filter(|c| c.call.connection_id == Some(connection))
                .map(|c| c.call.clone())
                .collect();
            calls.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            calls.truncate(limit as usize);
            Ok(calls)
        }

        async fn claim_dispatch(
            &self,
            room: &crate::ids::RoomName,
            claimant: &str,
            ttl: Duration,
        ) -> Result<DispatchClaim, StoreError> {
            let mut s = self.enter("claim_dispatch");
            let finished = s
                .events
                .iter()
                .filter(|e| e.kind == "room_finished" && e.room_name.as_ref() == Some(room))
                .map(|e| e.received_at)
                .min();
            let Some(stored) = s.calls.get_mut(room.as_str()) else {
                return Ok(DispatchClaim::NoSuchCall);
            };
            let now = Utc::now();
            let claimable = match stored.call.dispatch_status {
                DispatchStatus::None | DispatchStatus::Failed => true,
                DispatchStatus::Claimed => stored.claim_expires.is_none_or(|e| e <= now),
                _ => false,
            };
            let ended_at = stored.call.ended_at.or(finished);
            if claimable && ended_at.is_some() {
                // As the stores' claim statement: an ended call is refused and its
                // dispatch cancelled, in the same step.
                let c = &mut stored.call;
                c.ended_at = ended_at;
                if c.status != CallStatus::Unrouted {
                    c.status = CallStatus::Ended;
                }
                c.dispatch_status = DispatchStatus::Cancelled;
                c.updated_at = c.updated_at.max(now);
                stored.claimant = None;
                stored.claim_expires = None;
                return Ok(DispatchClaim::HeldByOther);
            }
            if claimable {
                stored.call.dispatch_status = DispatchStatus::Claimed;
                stored.call.dispatch_attempts += 1;
                stored.call.updated_at = stored.call.updated_at.max(now);
                stored.claimant = Some(claimant.to_owned());
                stored.claim_expires = Some(now + chrono::Duration::from_std(ttl).unwrap());
                return Ok(DispatchClaim::Won {
                    attempt: stored.call.dispatch_attempts,
                });
            }
            Ok(
                match (&stored.call.dispatch_status, &stored.call.dispatch_id) {
                    (DispatchStatus::Dispatched, Some(id)) => DispatchClaim::AlreadyDispatched {
                        dispatch_id: id.clone(),
                    },
                    _ => DispatchClaim::HeldByOther,
                },
            )
        }

        async fn complete_dispatch(
            &self,
            room: &crate::ids::RoomName,
            claimant: &str,
            dispatch_id: &crate::ids::AgentDispatchId,
        ) -> Result<bool, StoreError> {
            let mut s = self.enter("complete_dispatch");
            let Some(stored) = s.calls.get_mut(room.as_str()) else {
                return Ok(false);
            };
            // Cancelled while this claimant was dispatching: what it did is still recorded.
            if !matches!(
                stored.call.dispatch_status,
                DispatchStatus::Claimed | DispatchStatus::Cancelled
            ) || stored.claimant.as_deref() != Some(claimant)
            {
                return Ok(false);
            }
            stored.call.dispatch_status = DispatchStatus::Dispatched;
            stored.call.dispatch_id = Some(dispatch_id.clone());
            stored.call.updated_at = Utc::now();
            stored.claimant = None;
            stored.claim_expires = None;
            Ok(true)
        }

        async fn fail_dispatch(
            &self,
            room: &crate::ids::RoomName,
            claimant: &str,
            gave_up: bool,
        ) -> Result<bool, StoreError> {
            let mut s = self.enter("fail_dispatch");
            let Some(stored) = s.calls.get_mut(room.as_str()) else {
                return Ok(false);
            };
            if stored.call.dispatch_status != DispatchStatus::Claimed
                || stored.claimant.as_deref() != Some(claimant)
            {
                return Ok(false);
            }
            stored.call.dispatch_status = if gave_up {
                DispatchStatus::GaveUp
            } else {
                DispatchStatus::Failed
            };
            stored.call.updated_at = Utc::now();
            stored.claimant = None;
            stored.claim_expires = None;
            Ok(true)
        }

        async fn dispatches_due(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
            let s = self.enter("dispatches_due");
            let now = Utc::now();
            let mut due: Vec<CallRecord> = s
                .calls
                .values()
                .filter(|c| c.call.ended_at.is_none())
                .filter(|c| match c.call.dispatch_status {
                    DispatchStatus::Failed => true,
                    DispatchStatus::Claimed => c.claim_expires.is_none_or(|e| e <= now),
                    _ => false,
                })
                .map(|c| c.call.clone())
                .collect();
            due.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
            due.truncate(limit as usize);
            Ok(due)
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

/// Bulk jobs in memory, with the SQL stores' semantics (one lock makes every method atomic).
pub mod jobs {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};

    use crate::ids::{CarrierNumberId, CustomerId, JobId};
    use crate::ports::*;

    #[derive(Debug, Clone)]
    pub struct StoredJob {
        pub job: BulkJob,
        pub items: Vec<JobItem>,
        pub token: Option<uuid::Uuid>,
        pub expires: Option<DateTime<Utc>>,
    }

    #[derive(Debug, Default, Clone)]
    pub struct FakeJobStore(pub Arc<Mutex<HashMap<JobId, StoredJob>>>);

    fn view(s: &StoredJob) -> BulkJob {
        let mut job = s.job.clone();
        job.counts = JobCounts::default();
        for i in &s.items {
            job.counts.add(i.outcome, 1);
        }
        job
    }

    fn until(ttl: Duration) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(ttl).unwrap()
    }

    fn finish(s: &mut StoredJob, status: JobStatus) {
        let now = Utc::now();
        s.job.status = status;
        s.job.finished_at = Some(now);
        s.job.updated_at = now;
        s.job.holder = None;
        s.token = None;
        s.expires = None;
        if status == JobStatus::Cancelled {
            for i in s
                .items
                .iter_mut()
                .filter(|i| i.outcome == ItemOutcome::Pending)
            {
                i.outcome = ItemOutcome::Cancelled;
                i.finished_at = Some(now);
            }
        }
    }

    #[async_trait]
    impl JobStore for FakeJobStore {
        async fn create_job(
            &self,
            job: &BulkJob,
            numbers: &[CarrierNumberId],
        ) -> Result<(), StoreError> {
            let mut m = self.0.lock().unwrap();
            if m.contains_key(&job.id) {
                return Err(StoreError::Conflict("job id".into()));
            }
            let items = numbers
                .iter()
                .enumerate()
                .map(|(i, n)| JobItem {
                    position: u32::try_from(i).unwrap(),
                    number_id: n.clone(),
                    outcome: ItemOutcome::Pending,
                    error_code: None,
                    message: None,
                    finished_at: None,
                })
                .collect();
            m.insert(
                job.id,
                StoredJob {
                    job: job.clone(),
                    items,
                    token: None,
                    expires: None,
                },
            );
            Ok(())
        }

        async fn get_job(
            &self,
            customer: &CustomerId,
            id: JobId,
        ) -> Result<Option<BulkJob>, StoreError> {
            let m = self.0.lock().unwrap();
            Ok(m.get(&id)
                .filter(|s| &s.job.customer_id == customer)
                .map(view))
        }

        async fn list_jobs(
            &self,
            customer: &CustomerId,
            limit: u32,
            before: Option<JobId>,
        ) -> Result<Vec<BulkJob>, StoreError> {
            let m = self.0.lock().unwrap();
            let mut jobs: Vec<BulkJob> = m
                .values()
                .filter(|s| &s.job.customer_id == customer)
                .filter(|s| before.is_none_or(|b| s.job.id < b))
                .map(view)
                .collect();
            jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
            jobs.truncate(limit as usize);
            Ok(jobs)
        }

        async fn job_items(
            &self,
            id: JobId,
            from: u32,
            limit: u32,
        ) -> Result<Vec<JobItem>, StoreError> {
            let m = self.0.lock().unwrap();
            Ok(m.get(&id)
                .map(|s| {
                    s.items
                        .iter()
                        .filter(|i| i.position >= from)
                        .take(limit as usize)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default())
        }

        async fn claim_job(
            &self,
            holder: &str,
            ttl: Duration,
        ) -> Result<Option<JobClaim>, StoreError> {
            let mut m = self.0.lock().unwrap();
            let now = Utc::now();
            let Some(s) = m
                .values_mut()
                .filter(|s| match s.job.status {
                    JobStatus::Queued => true,
                    JobStatus::Running => s.expires.is_none_or(|e| e <= now),
                    _ => false,
                })
                .min_by_key(|s| s.job.id)
            else {
                return Ok(None);
            };
            let token = uuid::Uuid::new_v4();
            s.job.status = JobStatus::Running;
            s.job.holder = Some(holder.to_owned());
            s.job.updated_at = now;
            s.token = Some(token);
            s.expires = Some(until(ttl));
            Ok(Some(JobClaim {
                job: view(s),
                token,
            }))
        }

        async fn renew_job_claim(
            &self,
            id: JobId,
            token: uuid::Uuid,
            ttl: Duration,
        ) -> Result<ClaimState, StoreError> {
            let mut m = self.0.lock().unwrap();
            match m.get_mut(&id) {
                Some(s) if s.token == Some(token) => {
                    s.expires = Some(until(ttl));
                    Ok(ClaimState::Held {
                        cancel_requested: s.job.cancel_requested,
                    })
                }
                _ => Ok(ClaimState::Lost),
            }
        }

        async fn record_job_item(
            &self,
            id: JobId,
            token: uuid::Uuid,
            r: &ItemResult,
        ) -> Result<bool, StoreError> {
            let mut m = self.0.lock().unwrap();
            let Some(s) = m.get_mut(&id).filter(|s| s.token == Some(token)) else {
                return Ok(false);
            };
            let Some(item) = s
                .items
                .iter_mut()
                .find(|i| i.position == r.position && i.outcome == ItemOutcome::Pending)
            else {
                return Ok(false);
            };
            item.outcome = r.outcome;
            item.error_code.clone_from(&r.error_code);
            item.message.clone_from(&r.message);
            item.finished_at = Some(Utc::now());
            s.job.updated_at = Utc::now();
            Ok(true)
        }

        async fn finish_job(
            &self,
            id: JobId,
            token: uuid::Uuid,
            status: JobStatus,
        ) -> Result<bool, StoreError> {
            let mut m = self.0.lock().unwrap();
            let Some(s) = m.get_mut(&id).filter(|s| s.token == Some(token)) else {
                return Ok(false);
            };
            finish(s, status);
            Ok(true)
        }

        async fn cancel_job(
            &self,
            customer: &CustomerId,
            id: JobId,
        ) -> Result<Option<BulkJob>, StoreError> {
            let mut m = self.0.lock().unwrap();
            let Some(s) = m.get_mut(&id).filter(|s| &s.job.customer_id == customer) else {
                return Ok(None);
            };
            if !s.job.status.is_finished() {
                s.job.cancel_requested = true;
                s.job.updated_at = Utc::now();
                if s.job.status == JobStatus::Queued {
                    finish(s, JobStatus::Cancelled);
                }
            }
            Ok(Some(view(s)))
        }
    }
}
