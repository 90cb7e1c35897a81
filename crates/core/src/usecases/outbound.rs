//! The outbound half of a connection: carrier termination and the LiveKit outbound trunk.
//!
//! Outbound belongs to a carrier *route*, not to a number: every outbound number on one route
//! shares the route's termination credentials and one long-lived LiveKit outbound trunk whose
//! number list holds them all (the caller ID is chosen per call with `sip_number`). So the
//! route's outbound half is reconciled under a lease on the route, a number joins or leaves
//! the trunk's list, and only the last outbound number's departure removes the trunk and the
//! credentials.
//!
//! The SIP password is generated here, sealed in the vault with the integration's context and
//! kept sealed in the store; carriers never show it back, so trunkline's copy is the only
//! one. It leaves the process only towards the carrier and LiveKit.

use chrono::Utc;
use secrecy::SecretString;

use super::Onboarding;
use super::steps::{Step, StepAction, StepKind};
use crate::error::{Error, ErrorCode};
use crate::ids::{ConnectionId, CustomerId, ProviderKind, RouteId};
use crate::model::{
    CarrierCredentials, Integration, LeaseKey, NumberConnection, SealContext, SealedSecret,
};
use crate::ports::{
    CarrierProvider, OutboundNumber, OutboundRoute, OutboundStore, OutboundTrunkSpec, SipPlatform,
    TerminationSpec,
};

/// The name of the termination objects (a Twilio credential list) and of the LiveKit
/// outbound trunk of one route: how trunkline finds its own again.
pub(crate) fn outbound_name(route: &RouteId) -> String {
    let name = format!("{}-outbound-{route}", super::TRUNKLINE_NAME_PREFIX);
    name.chars().take(64).collect()
}

/// A SIP username: 32 characters at most (Twilio's limit), letters and digits, not derived
/// from anything secret.
fn new_username() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("tl{}", &id[..30])
}

/// A strong random password: 43 base-62 characters from 244 random bits, always with a digit,
/// a lower- and an upper-case letter (Twilio asks for all three and at least 12 characters).
pub(crate) fn new_password() -> SecretString {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    // Base-62 by repeated division of the 256-bit big-endian number.
    let mut digits = Vec::new();
    let mut n = bytes;
    while n.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in &mut n {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 62).unwrap_or(0);
            rem = cur % 62;
        }
        digits.push(ALPHABET[rem as usize]);
    }
    let mut password = String::from_utf8(digits).unwrap_or_default();
    // Each class is present with overwhelming probability; make it certain.
    for (class, c) in [
        (u8::is_ascii_digit as fn(&u8) -> bool, '7'),
        (u8::is_ascii_lowercase, 'k'),
        (u8::is_ascii_uppercase, 'Q'),
    ] {
        if !password.bytes().any(|b| class(&b)) {
            password.push(c);
        }
    }
    SecretString::from(password)
}

fn step(step: StepKind, action: StepAction, id: Option<String>) -> Step {
    Step {
        step,
        action,
        id,
        detail: None,
    }
}

/// The outbound half as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
// Independent facts read from three systems, not states of one machine.
#[allow(clippy::struct_excessive_bools)]
pub struct OutboundStatus {
    /// Whether the number was connected with `outbound: true`.
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_id: Option<String>,
    /// The carrier's termination host, as the carrier reports it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_host: Option<String>,
    /// Whether trunkline's credentials are attached to the route at the carrier.
    pub credentials_attached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub livekit_trunk_id: Option<String>,
    /// Whether LiveKit still has the outbound trunk.
    pub livekit_trunk_exists: bool,
    /// Whether the trunk's number list holds this number.
    pub number_on_livekit_trunk: bool,
    /// What differs from what connect set up; connect again repairs it.
    pub drift: Vec<String>,
}

impl Onboarding {
    fn outbound_store(&self) -> Result<&dyn OutboundStore, Error> {
        self.ports.outbound.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                "outbound calls are not available on this server",
            )
        })
    }

    fn seal_context(integration: &Integration) -> SealContext {
        SealContext {
            customer_id: integration.customer_id.clone(),
            integration_id: integration.id,
            provider: integration.provider,
        }
    }

    /// The route's stored outbound half, or a new one with fresh credentials; and the
    /// password in clear for this call sequence. A password that no longer opens (the
    /// integration's credentials were saved again, so its seal context changed) is replaced:
    /// `true` then says the carrier and LiveKit must be given the new one.
    async fn route_secrets(
        &self,
        integration: &Integration,
        route: &RouteId,
    ) -> Result<(OutboundRoute, SecretString, bool), Error> {
        let store = self.outbound_store()?;
        let ctx = Self::seal_context(integration);
        let stored = store
            .get_outbound_route(&integration.customer_id, integration.provider, route)
            .await?;
        if let Some(row) = stored {
            match self.ports.vault.open(&row.sealed_password, &ctx).await {
                Ok(password) => return Ok((row, password, false)),
                Err(e) => {
                    tracing::warn!(error = %e, route = %route, "the outbound SIP password no longer opens; a new one is set");
                    let password = new_password();
                    let sealed = self.ports.vault.seal(&password, &ctx).await?;
                    let row = OutboundRoute {
                        sealed_password: sealed,
                        updated_at: Utc::now(),
                        ..row
                    };
                    return Ok((row, password, true));
                }
            }
        }
        let password = new_password();
        let sealed: SealedSecret = self.ports.vault.seal(&password, &ctx).await?;
        let now = Utc::now();
        Ok((
            OutboundRoute {
                customer_id: integration.customer_id.clone(),
                provider: integration.provider,
                route_id: route.clone(),
                termination_host: None,
                sip_username: new_username(),
                sealed_password: sealed,
                livekit_trunk_id: None,
                created_at: now,
                updated_at: now,
            },
            password,
            true,
        ))
    }

    /// After connect: make the outbound half match `outbound` (`None`: keep what is stored).
    /// Runs under a lease on the route's outbound half, taken here.
    pub(super) async fn reconcile_outbound(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        integration: &Integration,
        conn: &NumberConnection,
        outbound: Option<bool>,
    ) -> Result<Vec<Step>, Error> {
        let Some(store) = self.ports.outbound.as_deref() else {
            if outbound == Some(true) {
                return Err(Error::new(
                    ErrorCode::NotConfigured,
                    "outbound calls are not available on this server",
                ));
            }
            return Ok(Vec::new());
        };
        let stored = store.get_outbound_number(conn.id).await?;
        let want = outbound.unwrap_or(stored.is_some());
        let Some(route) = conn.route_id.clone() else {
            return Ok(Vec::new());
        };
        let mut steps = Vec::new();
        if let Some(old) = &stored
            && (!want || old.route_id != route)
        {
            steps.extend(
                self.leave_outbound_route(carrier, creds, integration, conn.id, &old.route_id)
                    .await?,
            );
        }
        if !want {
            return Ok(steps);
        }
        let Some(sip) = self.ports.sip.clone() else {
            return Err(Error::new(
                ErrorCode::NotConfigured,
                "outbound calls need LiveKit: set TRUNKLINE_LIVEKIT_URL, _API_KEY and _API_SECRET",
            ));
        };
        let key = outbound_lease(&integration.customer_id, integration.provider, &route);
        let work = async {
            store
                .put_outbound_number(&OutboundNumber {
                    connection_id: conn.id,
                    customer_id: conn.customer_id.clone(),
                    provider: conn.provider,
                    route_id: route.clone(),
                    e164: conn.e164.clone(),
                    created_at: Utc::now(),
                })
                .await?;
            self.route_half(carrier, creds, integration, &*sip, &route)
                .await
        };
        steps.extend(self.with_lease(&key, work).await?);
        Ok(steps)
    }

    /// The route's termination and outbound trunk, made to hold every outbound number of the
    /// route. The caller holds the route's outbound lease.
    async fn route_half(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        integration: &Integration,
        sip: &dyn SipPlatform,
        route: &RouteId,
    ) -> Result<Vec<Step>, Error> {
        let store = self.outbound_store()?;
        let (mut row, password, fresh_password) = self.route_secrets(integration, route).await?;
        let name = outbound_name(route);
        let existed = row.termination_host.is_some();
        if fresh_password && existed {
            // The carrier holds a password trunkline can no longer open: replace it.
            carrier.remove_termination(creds, route, &name).await?;
        }
        // Stored before the carrier holds it: a crash after the carrier's create still finds
        // the password that goes with it.
        store.put_outbound_route(&row).await?;
        let spec = TerminationSpec {
            name: name.clone(),
            username: row.sip_username.clone(),
            password: password.clone(),
            allowed_countries: self.settings.outbound_allowed_countries.clone(),
        };
        let termination = carrier.ensure_termination(creds, route, &spec).await?;
        let mut steps = vec![step(
            StepKind::Termination,
            if existed
                && !fresh_password
                && row.termination_host.as_deref() == Some(termination.host.as_str())
            {
                StepAction::Reused
            } else {
                StepAction::Created
            },
            termination.credential_ref.clone(),
        )];
        if let Some(s) = steps.last_mut() {
            s.detail = Some(termination.host.clone());
        }
        row.termination_host = Some(termination.host.clone());
        row.updated_at = Utc::now();
        store.put_outbound_route(&row).await?;

        let numbers = store
            .outbound_numbers_on_route(&integration.customer_id, integration.provider, route)
            .await?;
        let trunk_spec = OutboundTrunkSpec {
            name,
            address: termination.host,
            numbers: numbers.iter().map(|n| n.e164.clone()).collect(),
            auth_username: row.sip_username.clone(),
            auth_password: password,
            password_changed: fresh_password,
            headers: termination.invite_headers,
        };
        let before = match &row.livekit_trunk_id {
            Some(id) => sip.get_outbound_trunk(id).await?,
            None => None,
        };
        let trunk = sip
            .ensure_outbound_trunk(&trunk_spec, row.livekit_trunk_id.clone())
            .await?;
        let action = match &before {
            None => StepAction::Created,
            Some(b) if b == &trunk => StepAction::Reused,
            Some(_) => StepAction::Updated,
        };
        steps.push(step(
            StepKind::LivekitOutboundTrunk,
            action,
            Some(trunk.id.to_string()),
        ));
        row.livekit_trunk_id = Some(trunk.id);
        row.updated_at = Utc::now();
        store.put_outbound_route(&row).await?;
        Ok(steps)
    }

    /// Take the number off its route's outbound half; the last number's departure removes the
    /// outbound trunk and the carrier termination. Takes the route's lease.
    async fn leave_outbound_route(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        integration: &Integration,
        connection: ConnectionId,
        route: &RouteId,
    ) -> Result<Vec<Step>, Error> {
        let store = self.outbound_store()?;
        let key = outbound_lease(&integration.customer_id, integration.provider, route);
        let work = async {
            store.delete_outbound_number(connection).await?;
            let remaining = store
                .outbound_numbers_on_route(&integration.customer_id, integration.provider, route)
                .await?;
            let Some(row) = store
                .get_outbound_route(&integration.customer_id, integration.provider, route)
                .await?
            else {
                return Ok(Vec::new());
            };
            let mut steps = Vec::new();
            let Some(sip) = self.ports.sip.clone() else {
                return Ok(steps);
            };
            if remaining.is_empty() {
                if let Some(trunk) = &row.livekit_trunk_id {
                    sip.delete_outbound_trunk(trunk).await?;
                    steps.push(step(
                        StepKind::LivekitOutboundTrunk,
                        StepAction::Deleted,
                        Some(trunk.to_string()),
                    ));
                }
                carrier
                    .remove_termination(creds, route, &outbound_name(route))
                    .await?;
                steps.push(step(StepKind::Termination, StepAction::Deleted, None));
                store
                    .delete_outbound_route(&integration.customer_id, integration.provider, route)
                    .await?;
            } else if let Some(host) = &row.termination_host {
                // Only the number list changes; the stored password is what LiveKit has,
                // and the headers (Telnyx: `X-Telnyx-Username`) are kept as the trunk has them.
                let (_, password, _) = self.route_secrets(integration, route).await?;
                let headers = match &row.livekit_trunk_id {
                    Some(id) => sip
                        .get_outbound_trunk(id)
                        .await?
                        .map(|t| t.headers)
                        .unwrap_or_default(),
                    None => std::collections::BTreeMap::new(),
                };
                let spec = OutboundTrunkSpec {
                    name: outbound_name(route),
                    address: host.clone(),
                    numbers: remaining.iter().map(|n| n.e164.clone()).collect(),
                    auth_username: row.sip_username.clone(),
                    auth_password: password,
                    password_changed: false,
                    headers,
                };
                let trunk = sip
                    .ensure_outbound_trunk(&spec, row.livekit_trunk_id.clone())
                    .await?;
                steps.push(
                    step(
                        StepKind::LivekitOutboundTrunk,
                        StepAction::Updated,
                        Some(trunk.id.to_string()),
                    )
                    .with_detail("the number left the trunk's list"),
                );
            }
            Ok::<_, Error>(steps)
        };
        self.with_lease(&key, work).await
    }

    /// Before disconnect: the number leaves its route's outbound half (while the carrier
    /// route still exists, since an emptied dedicated route is deleted afterwards).
    pub(super) async fn disconnect_outbound(
        &self,
        carrier: &dyn CarrierProvider,
        creds: &CarrierCredentials,
        integration: &Integration,
        connection: ConnectionId,
    ) -> Result<Vec<Step>, Error> {
        let Some(store) = self.ports.outbound.as_deref() else {
            return Ok(Vec::new());
        };
        let Some(number) = store.get_outbound_number(connection).await? else {
            return Ok(Vec::new());
        };
        self.leave_outbound_route(carrier, creds, integration, connection, &number.route_id)
            .await
    }

    /// The number's outbound half as the carrier and LiveKit hold it, with drift.
    ///
    /// # Errors
    /// Store and provider failures.
    pub async fn outbound_status(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        conn: &NumberConnection,
    ) -> Result<OutboundStatus, Error> {
        let mut status = OutboundStatus {
            enabled: false,
            route_id: None,
            termination_host: None,
            credentials_attached: false,
            livekit_trunk_id: None,
            livekit_trunk_exists: false,
            number_on_livekit_trunk: false,
            drift: Vec::new(),
        };
        let Some(store) = self.ports.outbound.as_deref() else {
            return Ok(status);
        };
        let Some(number) = store.get_outbound_number(conn.id).await? else {
            return Ok(status);
        };
        status.enabled = true;
        status.route_id = Some(number.route_id.to_string());
        let Some(row) = store
            .get_outbound_route(customer, provider, &number.route_id)
            .await?
        else {
            status
                .drift
                .push("the route's outbound half is not set up; connect again".to_owned());
            return Ok(status);
        };
        let carrier = self.carrier(provider)?.clone();
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;
        let held = carrier
            .inspect_termination(
                &creds,
                &number.route_id,
                &outbound_name(&number.route_id),
                &row.sip_username,
            )
            .await?;
        status.termination_host = held.host.clone();
        status.credentials_attached = held.credentials_attached;
        if !held.credentials_attached {
            status
                .drift
                .push("the termination credentials are not attached to the route".to_owned());
        }
        if held.host.is_none() || held.host != row.termination_host {
            status
                .drift
                .push("the route's termination host differs from what trunkline set".to_owned());
        }
        status.livekit_trunk_id = row.livekit_trunk_id.as_ref().map(ToString::to_string);
        if let (Some(sip), Some(id)) = (&self.ports.sip, &row.livekit_trunk_id) {
            match sip.get_outbound_trunk(id).await? {
                Some(trunk) => {
                    status.livekit_trunk_exists = true;
                    status.number_on_livekit_trunk =
                        trunk.numbers.iter().any(|n| n == conn.e164.as_str());
                    if !status.number_on_livekit_trunk {
                        status.drift.push(
                            "the number is missing from the LiveKit outbound trunk's list"
                                .to_owned(),
                        );
                    }
                }
                None => status
                    .drift
                    .push("the LiveKit outbound trunk is gone".to_owned()),
            }
        }
        Ok(status)
    }
}

/// One lease per route's outbound half: the numbers of a route share its trunk and credentials.
fn outbound_lease(customer: &CustomerId, provider: ProviderKind, route: &RouteId) -> LeaseKey {
    LeaseKey::trunk(customer.clone(), provider, &format!("outbound:{route}"))
}

impl Step {
    fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn passwords_are_long_mixed_and_distinct() {
        let a = new_password();
        let b = new_password();
        assert_ne!(a.expose_secret(), b.expose_secret());
        for p in [a.expose_secret(), b.expose_secret()] {
            assert!(p.len() >= 40, "{} characters", p.len());
            assert!(p.bytes().any(|c| c.is_ascii_digit()));
            assert!(p.bytes().any(|c| c.is_ascii_lowercase()));
            assert!(p.bytes().any(|c| c.is_ascii_uppercase()));
            assert!(p.bytes().all(|c| c.is_ascii_alphanumeric()));
        }
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn usernames_fit_twilio() {
        let u = new_username();
        assert!(u.len() <= 32 && u.len() >= 16, "{u}");
        assert!(u.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(u, new_username());
    }

    #[test]
    fn names_fit_and_are_ours() {
        let r = RouteId::parse("TK0123456789abcdef0123456789abcdef").unwrap();
        let n = outbound_name(&r);
        assert!(
            n.len() <= 64 && super::super::naming::is_ours(Some(&n)),
            "{n}"
        );
    }
}
