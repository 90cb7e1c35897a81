//! Termination on a Twilio Elastic SIP trunk: a `<unique>.pstn.twilio.com` domain name and a
//! SIP credential list (named by trunkline, holding one generated credential) attached to the
//! trunk. Every step reads first and writes only what is missing, so a second
//! `ensure_termination` with the same spec writes nothing.

use secrecy::ExposeSecret;
use serde::Deserialize;
use trunkline_core::ErrorCode;
use trunkline_core::RouteId;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{ProviderError, Termination, TerminationSpec, TerminationState};

use crate::carrier::TwilioCarrier;
use crate::client::Call;
use crate::credentials::Auth;
use crate::error::Resource;
use crate::ops::TwilioOperation as Op;
use crate::sid::TrunkSid;
use crate::wire::TrunkJson;

#[derive(Debug, Deserialize)]
struct CredentialListJson {
    sid: String,
    friendly_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CredentialListPage {
    #[serde(default)]
    credential_lists: Vec<CredentialListJson>,
}

#[derive(Debug, Deserialize)]
struct CredentialJson {
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CredentialPage {
    #[serde(default)]
    credentials: Vec<CredentialJson>,
}

/// Credential lists are identified by a `CL…` SID; anything else in an answer is ignored.
fn is_list_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("CL") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The trunk's termination domain trunkline gives it: derived from the trunk SID, so it is
/// unique in Twilio's namespace and stable across reconnects.
pub(crate) fn domain_for(trunk: &TrunkSid) -> String {
    format!(
        "tl-{}.pstn.twilio.com",
        trunk.as_str()[2..].to_ascii_lowercase()
    )
}

impl TwilioCarrier {
    async fn fetch_trunk_json(
        &self,
        auth: &Auth<'_>,
        trunk: &TrunkSid,
    ) -> Result<Option<TrunkJson>, ProviderError> {
        let ids = [trunk.as_str()];
        match self
            .client()
            .json::<TrunkJson>(auth, &Call::new(Op::FetchTrunk, Resource::Trunk, &ids))
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account's credential list named `name`, if any.
    async fn find_list(
        &self,
        auth: &Auth<'_>,
        name: &str,
    ) -> Result<Option<String>, ProviderError> {
        let ids = [auth.account.as_str()];
        let call = Call::new(Op::ListSipCredentialList, Resource::CredentialList, &ids)
            .query("PageSize", "1000");
        let page: CredentialListPage = self.client().json(auth, &call).await?;
        let mut found: Vec<String> = page
            .credential_lists
            .into_iter()
            .filter(|l| l.friendly_name.as_deref() == Some(name) && is_list_sid(&l.sid))
            .map(|l| l.sid)
            .collect();
        found.sort();
        Ok(found.into_iter().next())
    }

    async fn trunk_lists(
        &self,
        auth: &Auth<'_>,
        trunk: &TrunkSid,
    ) -> Result<Vec<String>, ProviderError> {
        let ids = [trunk.as_str()];
        let call =
            Call::new(Op::ListCredentialList, Resource::Trunk, &ids).query("PageSize", "1000");
        let page: CredentialListPage = self.client().json(auth, &call).await?;
        Ok(page.credential_lists.into_iter().map(|l| l.sid).collect())
    }

    async fn list_usernames(
        &self,
        auth: &Auth<'_>,
        list: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let ids = [auth.account.as_str(), list];
        let call = Call::new(Op::ListSipCredential, Resource::CredentialList, &ids)
            .query("PageSize", "1000");
        let page: CredentialPage = self.client().json(auth, &call).await?;
        Ok(page
            .credentials
            .into_iter()
            .filter_map(|c| c.username)
            .collect())
    }

    pub(crate) async fn ensure_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        let auth = Auth::of(creds)?;
        let trunk = crate::carrier::trunk_sid(route)?;
        let Some(current) = self.fetch_trunk_json(&auth, &trunk).await? else {
            return Err(ProviderError::new(
                ErrorCode::NotFound,
                "the Twilio trunk does not exist",
            ));
        };
        // 1. The termination domain: kept when the trunk has one (someone may already dial
        //    it), set otherwise.
        let host = if let Some(d) = current.domain_name.filter(|d| !d.is_empty()) {
            d
        } else {
            let domain = domain_for(&trunk);
            let ids = [trunk.as_str()];
            let call = Call::new(Op::UpdateTrunk, Resource::Trunk, &ids)
                .form("DomainName", domain.clone());
            let updated: TrunkJson = self.client().json(&auth, &call).await?;
            tracing::info!(trunk = %trunk, "set the trunk's termination domain");
            updated.domain_name.unwrap_or(domain)
        };
        // 2. The credential list, found by name before it is created (a create whose answer
        //    was lost left one behind).
        let list = if let Some(l) = self.find_list(&auth, &spec.name).await? {
            l
        } else {
            let ids = [auth.account.as_str()];
            let call = Call::new(Op::CreateSipCredentialList, Resource::CredentialList, &ids)
                .form("FriendlyName", spec.name.clone());
            match self.client().json::<CredentialListJson>(&auth, &call).await {
                Ok(l) => l.sid,
                Err(e) if e.is_transient() => self.find_list(&auth, &spec.name).await?.ok_or(e)?,
                Err(e) => return Err(e),
            }
        };
        // 3. The credential. Its password cannot be read back: one that exists is trusted
        //    (trunkline removes the list to change it).
        if !self
            .list_usernames(&auth, &list)
            .await?
            .iter()
            .any(|u| u == &spec.username)
        {
            let ids = [auth.account.as_str(), list.as_str()];
            let call = Call::new(Op::CreateSipCredential, Resource::CredentialList, &ids)
                .form("Username", spec.username.clone())
                .form("Password", spec.password.expose_secret().to_owned());
            self.client()
                .json::<serde_json::Value>(&auth, &call)
                .await
                .map_err(|e| {
                    // Twilio's message for a refused credential never holds the password, but
                    // say what the rule is rather than relay it.
                    if e.code == ErrorCode::ValidationFailed {
                        ProviderError::new(
                            ErrorCode::ValidationFailed,
                            "Twilio refused the generated SIP credential (username at most 32 \
                             characters; password at least 12 with a digit and mixed case)",
                        )
                        .with_provider_code(e.provider_code.unwrap_or_default())
                    } else {
                        e
                    }
                })?;
        }
        // 4. The list on the trunk.
        if !self.trunk_lists(&auth, &trunk).await?.contains(&list) {
            let ids = [trunk.as_str()];
            let call = Call::new(Op::CreateCredentialList, Resource::Trunk, &ids)
                .form("CredentialListSid", list.clone());
            self.client()
                .json::<serde_json::Value>(&auth, &call)
                .await?;
            tracing::info!(trunk = %trunk, "attached the termination credential list");
        }
        Ok(Termination {
            host,
            credential_ref: Some(list),
            invite_headers: std::collections::BTreeMap::new(),
        })
    }

    pub(crate) async fn inspect_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        let auth = Auth::of(creds)?;
        let trunk = crate::carrier::trunk_sid(route)?;
        let Some(current) = self.fetch_trunk_json(&auth, &trunk).await? else {
            return Ok(TerminationState::default());
        };
        let Some(list) = self.find_list(&auth, name).await? else {
            return Ok(TerminationState {
                host: current.domain_name,
                credentials_attached: false,
            });
        };
        let attached = self.trunk_lists(&auth, &trunk).await?.contains(&list)
            && self
                .list_usernames(&auth, &list)
                .await?
                .iter()
                .any(|u| u == username);
        Ok(TerminationState {
            host: current.domain_name.filter(|d| !d.is_empty()),
            credentials_attached: attached,
        })
    }

    /// Detach and delete the credential list (its credentials go with it). The domain name
    /// stays: Twilio reserves it anyway, and a reconnect reuses it.
    pub(crate) async fn remove_termination_impl(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        let auth = Auth::of(creds)?;
        let trunk = crate::carrier::trunk_sid(route)?;
        let Some(list) = self.find_list(&auth, name).await? else {
            return Ok(());
        };
        if self.fetch_trunk_json(&auth, &trunk).await?.is_some()
            && self.trunk_lists(&auth, &trunk).await?.contains(&list)
        {
            let ids = [trunk.as_str(), list.as_str()];
            let call = Call::new(Op::DeleteCredentialList, Resource::Trunk, &ids);
            match self.client().empty(&auth, &call).await {
                Ok(()) => {}
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let ids = [auth.account.as_str(), list.as_str()];
        let call = Call::new(Op::DeleteSipCredentialList, Resource::CredentialList, &ids);
        match self.client().empty(&auth, &call).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
        tracing::info!(trunk = %trunk, "removed the termination credential list");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_twilio_termination_hosts() {
        let t = TrunkSid::parse(&format!("TK{}", "A".repeat(32))).unwrap();
        let d = domain_for(&t);
        assert_eq!(d, format!("tl-{}.pstn.twilio.com", "a".repeat(32)));
    }
}
