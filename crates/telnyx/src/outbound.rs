//! Outbound termination on a Telnyx FQDN connection: credential authentication on the
//! connection (`/fqdn_connections/{id}/fqdn_authentication`, which Telnyx's SDKs use and its
//! trimmed spec leaves out) and an outbound voice profile named by trunkline, holding the
//! destination countries, assigned to the connection. LiveKit's outbound trunk then sends its
//! INVITEs to [`TERMINATION_HOST`] with the credentials and [`USERNAME_HEADER`].
//!
//! Every step reads first and writes only what differs, so a second `ensure_termination`
//! with the same spec writes nothing. The password is only sent when the connection does not
//! already authenticate with the username: Telnyx never shows it back (newer accounts mask
//! it), so the core replaces the credentials (remove, then ensure) when its copy changes.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{ProviderError, Termination, TerminationSpec, TerminationState};
use trunkline_core::{ErrorCode, RouteId};

use crate::api::{TelnyxClient, bad_response};
use crate::carrier::{TelnyxCarrier, connection_id, no_route};
use crate::client::Call;
use crate::credentials::bearer;
use crate::error::{Resource, invalid};
use crate::model::{
    CREDENTIAL_AUTHENTICATION, ConnectionId, FqdnConnection, IP_AUTHENTICATION, OutboundAuth,
    VoiceProfile,
};
use crate::ops::TelnyxOperation as Op;
use crate::wire;

/// Where LiveKit sends outbound calls for Telnyx: Telnyx's SIP proxy, which routes them by
/// the credentials (LiveKit's Telnyx guide and DESIGN.md).
pub const TERMINATION_HOST: &str = "sip.telnyx.com";

/// The header LiveKit adds to every INVITE so Telnyx can tell which connection's
/// credentials a call uses before challenging it.
pub const USERNAME_HEADER: &str = "X-Telnyx-Username";

/// Telnyx's documented default for SIP trunking: 20 outbound calls per second per source IP
/// or per SIP username ("Calls Per Second (CPS) Limits", Telnyx support). trunkline limits
/// per number; the numbers of one route share one username, so this is an upper bound.
pub const TERMINATION_CALLS_PER_SECOND: u32 = 20;

/// Telnyx's limit on an outbound SIP username as trunkline uses it (the core makes ≤ 32
/// letters and digits for every carrier).
const MAX_USERNAME: usize = 32;

fn auth(a: wire::FqdnAuthentication) -> OutboundAuth {
    OutboundAuth {
        method: a.fqdn_outbound_authentication.filter(|m| !m.is_empty()),
        user_name: a.user_name.filter(|u| !u.is_empty()),
    }
}

fn profile(p: wire::VoiceProfile) -> Result<VoiceProfile, ProviderError> {
    if p.id.is_empty() || p.id.len() > 20 || !p.id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_response("outbound voice profile id"));
    }
    let mut destinations = p.whitelisted_destinations.unwrap_or_default();
    destinations.sort();
    destinations.dedup();
    Ok(VoiceProfile {
        id: p.id,
        name: p.name.unwrap_or_default(),
        enabled: p.enabled.unwrap_or(true),
        destinations,
    })
}

/// ISO 3166-1 alpha-2 codes, upper case, sorted, each once.
fn countries(raw: &[String]) -> Result<Vec<String>, ProviderError> {
    let mut out = Vec::with_capacity(raw.len());
    for c in raw {
        let c = c.trim().to_ascii_uppercase();
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "allowedCountries",
                "must be ISO 3166-1 alpha-2 country codes (e.g. US, GB)",
            ));
        }
        out.push(c);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl TelnyxClient {
    /// How a connection authenticates outbound calls; `None` when the connection is gone.
    pub async fn get_outbound_auth(
        &self,
        key: &SecretString,
        id: &ConnectionId,
    ) -> Result<Option<OutboundAuth>, ProviderError> {
        let call = Call::new(
            Op::RetrieveFqdnAuthentication,
            Resource::Connection,
            Some(id.as_str()),
        );
        match self
            .http
            .json_or_failure::<wire::Data<wire::FqdnAuthentication>>(key, &call)
            .await
        {
            Ok(d) => Ok(Some(auth(d.data))),
            Err(f) if f.status() == Some(404) => Ok(None),
            Err(f) => Err(f.into_error(Resource::Connection)),
        }
    }

    /// Outbound calls of the connection authenticate with `user_name` and `password`
    /// (`credential-authentication`). The password goes to Telnyx only; an error never
    /// carries it (messages are trunkline's own, see `error.rs`).
    pub async fn set_outbound_credentials(
        &self,
        key: &SecretString,
        id: &ConnectionId,
        user_name: &str,
        password: &SecretString,
    ) -> Result<OutboundAuth, ProviderError> {
        if user_name.is_empty()
            || user_name.len() > MAX_USERNAME
            || !user_name.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "username",
                "must be 1 to 32 letters and digits for a Telnyx SIP username",
            ));
        }
        if password.expose_secret().is_empty() {
            return Err(invalid("password", "must not be empty"));
        }
        let call = Call::new(
            Op::UpdateFqdnAuthentication,
            Resource::Connection,
            Some(id.as_str()),
        )
        .body(json!({
            "fqdn_outbound_authentication": CREDENTIAL_AUTHENTICATION,
            "user_name": user_name,
            "password": password.expose_secret(),
        }));
        let data: wire::Data<wire::FqdnAuthentication> =
            self.http.json(key, &call).await.map_err(|e| {
                if e.code == ErrorCode::ValidationFailed {
                    let mut refused = ProviderError::new(
                        ErrorCode::ValidationFailed,
                        "Telnyx refused the generated SIP credential for the FQDN connection \
                         (username: letters and digits, at most 32)",
                    );
                    if let Some(code) = e.provider_code {
                        refused = refused.with_provider_code(code);
                    }
                    refused
                } else {
                    e
                }
            })?;
        Ok(auth(data.data))
    }

    /// Outbound calls of the connection no longer authenticate with credentials
    /// (`ip-authentication`, Telnyx's default).
    pub async fn clear_outbound_credentials(
        &self,
        key: &SecretString,
        id: &ConnectionId,
    ) -> Result<OutboundAuth, ProviderError> {
        let call = Call::new(
            Op::UpdateFqdnAuthentication,
            Resource::Connection,
            Some(id.as_str()),
        )
        .body(json!({"fqdn_outbound_authentication": IP_AUTHENTICATION}));
        let data: wire::Data<wire::FqdnAuthentication> = self.http.json(key, &call).await?;
        Ok(auth(data.data))
    }

    /// Every outbound voice profile named exactly `name` (≥ 3 characters, Telnyx's minimum),
    /// lowest id first; every page of `filter[name][contains]`.
    pub async fn find_voice_profiles(
        &self,
        key: &SecretString,
        name: &str,
    ) -> Result<Vec<VoiceProfile>, ProviderError> {
        if name.chars().count() < 3 {
            return Err(invalid("name", "must have at least 3 characters"));
        }
        let listed: Vec<wire::VoiceProfile> = self
            .read_all(key, |page, size| {
                Call::new(Op::ListOutboundVoiceProfiles, Resource::VoiceProfile, None)
                    .query("page[number]", page)
                    .query("page[size]", size)
                    .query("filter[name][contains]", name)
            })
            .await?;
        let mut found = Vec::new();
        for p in listed {
            let p = profile(p)?;
            if p.name == name {
                found.push(p);
            }
        }
        found.sort_by_key(|p| (p.id.len(), p.id.clone()));
        Ok(found)
    }

    /// Create an enabled outbound voice profile. Without destinations Telnyx applies its
    /// default (US and CA). Never retried: callers look for it first and after a failure.
    pub async fn create_voice_profile(
        &self,
        key: &SecretString,
        name: &str,
        destinations: &[String],
    ) -> Result<VoiceProfile, ProviderError> {
        let mut body = json!({"name": name, "enabled": true});
        if !destinations.is_empty() {
            body["whitelisted_destinations"] = json!(destinations);
        }
        let call = Call::new(Op::CreateVoiceProfile, Resource::VoiceProfile, None).body(body);
        let data: wire::Data<wire::VoiceProfile> = self.http.json(key, &call).await?;
        profile(data.data)
    }

    /// Enable a profile with exactly these destinations (the spec requires `name` in the
    /// body: it is sent unchanged).
    pub async fn update_voice_profile(
        &self,
        key: &SecretString,
        current: &VoiceProfile,
        destinations: &[String],
    ) -> Result<VoiceProfile, ProviderError> {
        let call = Call::new(
            Op::UpdateOutboundVoiceProfile,
            Resource::VoiceProfile,
            Some(current.id.as_str()),
        )
        .body(json!({
            "name": current.name,
            "enabled": true,
            "whitelisted_destinations": destinations,
        }));
        let data: wire::Data<wire::VoiceProfile> = self.http.json(key, &call).await?;
        profile(data.data)
    }

    /// Delete a profile; one already gone is success. Telnyx refuses while a connection
    /// still uses it: unassign it first.
    pub async fn delete_voice_profile(
        &self,
        key: &SecretString,
        id: &str,
    ) -> Result<(), ProviderError> {
        let call = Call::new(
            Op::DeleteOutboundVoiceProfile,
            Resource::VoiceProfile,
            Some(id),
        );
        self.delete(key, &call).await
    }

    /// Assign a profile to the connection (`Some`) or none (`None`, sent as `""`: the spec
    /// types `outbound_voice_profile_id` as a non-null string).
    pub async fn set_connection_voice_profile(
        &self,
        key: &SecretString,
        id: &ConnectionId,
        profile: Option<&str>,
    ) -> Result<FqdnConnection, ProviderError> {
        let call = Call::new(
            Op::UpdateFqdnConnection,
            Resource::Connection,
            Some(id.as_str()),
        )
        .body(json!({"outbound": {"outbound_voice_profile_id": profile.unwrap_or("")}}));
        let data: wire::Data<wire::Connection> = self.http.json(key, &call).await?;
        crate::api::connection_of(data.data)
    }
}

impl TelnyxCarrier {
    /// The destinations the profile should allow: the spec's, else the countries of the
    /// route's numbers as Telnyx records them (`country_iso_alpha2`); empty when neither
    /// says (Telnyx's default then applies to a new profile; an existing one is kept).
    async fn destinations(
        &self,
        key: &SecretString,
        id: &ConnectionId,
        spec: &TerminationSpec,
    ) -> Result<Vec<String>, ProviderError> {
        if !spec.allowed_countries.is_empty() {
            return countries(&spec.allowed_countries);
        }
        let numbers = self.client().list_connection_numbers(key, id).await?;
        let found: Vec<String> = numbers.into_iter().filter_map(|n| n.country).collect();
        countries(&found)
    }

    /// The route's profile (found by name, created when missing) with `destinations`.
    async fn ensure_profile(
        &self,
        key: &SecretString,
        name: &str,
        destinations: &[String],
    ) -> Result<VoiceProfile, ProviderError> {
        let client = self.client();
        let existing = client
            .find_voice_profiles(key, name)
            .await?
            .into_iter()
            .next();
        let Some(existing) = existing else {
            let created = match client.create_voice_profile(key, name, destinations).await {
                Ok(p) => p,
                // The answer may be lost with the profile made: look before giving up.
                Err(e) if e.is_transient() => client
                    .find_voice_profiles(key, name)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or(e)?,
                Err(e) => return Err(e),
            };
            tracing::info!(profile = %created.id, countries = ?created.destinations, "created the Telnyx outbound voice profile");
            return Ok(created);
        };
        if existing.enabled && (destinations.is_empty() || existing.destinations == destinations) {
            return Ok(existing);
        }
        let want = if destinations.is_empty() {
            existing.destinations.clone()
        } else {
            destinations.to_vec()
        };
        let updated = client.update_voice_profile(key, &existing, &want).await?;
        tracing::info!(profile = %updated.id, countries = ?updated.destinations, "updated the Telnyx outbound voice profile");
        Ok(updated)
    }

    pub(crate) async fn ensure_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        let key = bearer(creds)?;
        let id = connection_id(route).ok_or_else(no_route)?;
        let client = self.client();
        let Some(conn) = client.get_connection(key, &id).await? else {
            return Err(no_route());
        };
        // 1. Credential authentication with trunkline's username. One already in place is
        //    trusted (its password cannot be read back; the core removes it to change it).
        let current = client
            .get_outbound_auth(key, &id)
            .await?
            .unwrap_or_default();
        if !current.is_credentials_of(&spec.username) {
            client
                .set_outbound_credentials(key, &id, &spec.username, &spec.password)
                .await?;
            tracing::info!(connection = %id, "set credential authentication for outbound calls");
        }
        // 2. The outbound voice profile with the destinations.
        let destinations = self.destinations(key, &id, spec).await?;
        let profile = self.ensure_profile(key, &spec.name, &destinations).await?;
        // 3. The profile on the connection.
        if conn.outbound_voice_profile_id.as_deref() != Some(profile.id.as_str()) {
            client
                .set_connection_voice_profile(key, &id, Some(&profile.id))
                .await?;
            tracing::info!(connection = %id, profile = %profile.id, "assigned the outbound voice profile");
        }
        Ok(Termination {
            host: TERMINATION_HOST.to_owned(),
            credential_ref: Some(id.as_str().to_owned()),
            invite_headers: BTreeMap::from([(USERNAME_HEADER.to_owned(), spec.username.clone())]),
        })
    }

    pub(crate) async fn inspect_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        let key = bearer(creds)?;
        let Some(id) = connection_id(route) else {
            return Ok(TerminationState::default());
        };
        let client = self.client();
        let Some(conn) = client.get_connection(key, &id).await? else {
            return Ok(TerminationState::default());
        };
        let auth = client
            .get_outbound_auth(key, &id)
            .await?
            .unwrap_or_default();
        let profiles = client.find_voice_profiles(key, name).await?;
        let assigned = profiles
            .iter()
            .any(|p| p.enabled && conn.outbound_voice_profile_id.as_deref() == Some(&p.id));
        Ok(TerminationState {
            host: Some(TERMINATION_HOST.to_owned()),
            credentials_attached: auth.is_credentials_of(username) && assigned,
        })
    }

    /// Unassign and delete the route's profiles, and switch the connection back to
    /// `ip-authentication`. The connection itself stays (the core deletes an emptied
    /// dedicated route afterwards).
    pub(crate) async fn remove_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        let key = bearer(creds)?;
        let Some(id) = connection_id(route) else {
            return Ok(());
        };
        let client = self.client();
        let profiles = client.find_voice_profiles(key, name).await?;
        if let Some(conn) = client.get_connection(key, &id).await? {
            if conn
                .outbound_voice_profile_id
                .as_deref()
                .is_some_and(|p| profiles.iter().any(|x| x.id == p))
            {
                client.set_connection_voice_profile(key, &id, None).await?;
                tracing::info!(connection = %id, "unassigned the outbound voice profile");
            }
            let auth = client
                .get_outbound_auth(key, &id)
                .await?
                .unwrap_or_default();
            if auth.method.as_deref() == Some(CREDENTIAL_AUTHENTICATION) {
                client.clear_outbound_credentials(key, &id).await?;
                tracing::info!(connection = %id, "removed credential authentication for outbound calls");
            }
        }
        for p in &profiles {
            client.delete_voice_profile(key, &p.id).await?;
            tracing::info!(profile = %p.id, "deleted the Telnyx outbound voice profile");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_normalized_and_checked() {
        let raw = vec!["us".to_owned(), " GB".to_owned(), "US".to_owned()];
        assert_eq!(countries(&raw).unwrap(), vec!["GB", "US"]);
        for bad in ["USA", "1A", ""] {
            let e = countries(&[bad.to_owned()]).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
        }
    }

    #[test]
    fn only_the_username_and_credential_method_count_as_ours() {
        let a = OutboundAuth {
            method: Some(CREDENTIAL_AUTHENTICATION.to_owned()),
            user_name: Some("tl123".to_owned()),
        };
        assert!(a.is_credentials_of("tl123"));
        assert!(!a.is_credentials_of("tl124"));
        let ip = OutboundAuth {
            method: Some(IP_AUTHENTICATION.to_owned()),
            ..a
        };
        assert!(!ip.is_credentials_of("tl123"));
    }

    #[test]
    fn profile_ids_are_digits() {
        let p = |id: &str| wire::VoiceProfile {
            id: id.to_owned(),
            name: Some("x".into()),
            enabled: None,
            whitelisted_destinations: Some(vec!["US".into(), "CA".into()]),
        };
        let ok = profile(p("1293384261075731499")).unwrap();
        assert_eq!(ok.destinations, vec!["CA", "US"]);
        assert!(ok.enabled);
        assert!(profile(p("abc")).is_err());
    }
}
