//! [`CarrierProvider`] for Twilio.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use trunkline_core::model::{CarrierAuth, CarrierCredentials, VoiceConfig};
use trunkline_core::ports::{
    Capabilities, Capability, CarrierNumber, CarrierOriginationUrl, CarrierProvider, CarrierTrunk,
    NumberPage, NumberQuery, OriginationUrlSpec, ProviderError, TrunkSpec, VerifyReport,
};
use trunkline_core::{ErrorCode, OriginationUrlSid, PhoneNumberSid, ProviderKind, TrunkSid};

use crate::client::{Call, Client};
use crate::config::{TwilioConfig, TwilioConfigError};
use crate::cursor;
use crate::error::{Resource, TransportFailure, transport};
use crate::ops::TwilioOperation as Op;
use crate::wire::{
    AccountJson, IncomingNumberJson, MetaJson, NumberListJson, OriginationUrlJson,
    OriginationUrlListJson, TrunkJson, TrunkListJson, TrunkNumberJson, TrunkNumberListJson,
};

/// Twilio's limit on friendly names (trunks and origination URLs).
pub const MAX_FRIENDLY_NAME: usize = 64;

/// A v1 list never legitimately has this many pages (1000 per page); past it the adapter
/// assumes a paging loop and stops with an error instead of spinning.
const MAX_PAGES: usize = 10_000;

/// The Twilio carrier adapter. Cheap to clone; one instance serves every customer.
#[derive(Debug, Clone)]
pub struct TwilioCarrier {
    client: Client,
}

impl TwilioCarrier {
    pub fn new(config: TwilioConfig) -> Result<Self, TwilioConfigError> {
        Ok(Self {
            client: Client::new(config)?,
        })
    }

    pub fn config(&self) -> &TwilioConfig {
        self.client.config()
    }

    /// Every item of a Trunking v1 list, following `meta.next_page_url`.
    async fn list_all<L, T>(
        &self,
        creds: &CarrierCredentials,
        op: Op,
        resource: Resource,
        ids: &[&str],
        split: impl Fn(L) -> (Vec<T>, MetaJson),
    ) -> Result<Vec<T>, ProviderError>
    where
        L: DeserializeOwned,
    {
        let mut query = vec![(
            "PageSize".to_owned(),
            self.client.config().list_page_size.to_string(),
        )];
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut call = Call::new(op, resource, ids);
            call.query = std::mem::take(&mut query);
            let (items, meta) = split(self.client.json::<L>(creds, &call).await?);
            all.extend(items);
            let Some(next) = meta.next_page_url.filter(|u| !u.is_empty()) else {
                return Ok(all);
            };
            query = next_page_query(&next).ok_or_else(|| {
                tracing::warn!(op = %op, "unexpected next_page_url from Twilio");
                transport(TransportFailure::BadResponse)
            })?;
        }
        tracing::warn!(op = %op, "Twilio list did not end after {MAX_PAGES} pages");
        Err(transport(TransportFailure::BadResponse))
    }

    async fn probe(&self, creds: &CarrierCredentials, call: Call<'_>) -> Result<(), ProviderError> {
        self.client
            .json::<serde_json::Value>(creds, &call)
            .await
            .map(drop)
    }

    /// The account's friendly name, only with the auth token: a Standard API key cannot
    /// read `/Accounts/{sid}` and the failed attempt would show as a 20003 in the customer's
    /// Twilio debugger.
    async fn account_name(&self, creds: &CarrierCredentials) -> Option<String> {
        if !matches!(creds.auth, CarrierAuth::AuthToken { .. }) {
            return None;
        }
        let ids = [creds.account_sid.as_str()];
        let call = Call::new(Op::FetchAccount, Resource::Account, &ids);
        match self.client.json::<AccountJson>(creds, &call).await {
            Ok(a) => a.friendly_name,
            Err(e) => {
                tracing::debug!(code = %e.code, "account name not readable; verify goes on");
                None
            }
        }
    }
}

/// The paging parameters of a v1 `next_page_url`. Only its query is used, on our own base
/// and path, so a link can never lead the credentials to another host or resource.
fn next_page_query(next_page_url: &str) -> Option<Vec<(String, String)>> {
    let url = url::Url::parse(next_page_url).ok()?;
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    pairs
        .iter()
        .all(|(k, _)| matches!(k.as_str(), "PageSize" | "Page" | "PageToken"))
        .then_some(pairs)
}

/// What one verification probe said.
enum Probe {
    Ok,
    AuthFailed(ProviderError),
    Capability(Capability),
    Failed(ProviderError),
}

fn probe_result(r: Result<(), ProviderError>) -> Probe {
    match r {
        Ok(()) => Probe::Ok,
        Err(e) => match e.code {
            ErrorCode::AuthInvalid => Probe::AuthFailed(e),
            ErrorCode::InsufficientPermissions => Probe::Capability(Capability::Forbidden),
            ErrorCode::TrunkingNotEnabled => Probe::Capability(Capability::NotEnabled),
            _ => Probe::Failed(e),
        },
    }
}

/// Cut to Twilio's 64 characters on a character boundary.
fn truncate_name(name: &str) -> String {
    name.chars().take(MAX_FRIENDLY_NAME).collect()
}

fn origination_form<'a>(call: Call<'a>, spec: &OriginationUrlSpec) -> Call<'a> {
    call.form("Weight", spec.target.weight.to_string())
        .form("Priority", spec.target.priority.to_string())
        .form("Enabled", if spec.enabled { "true" } else { "false" })
        .form("FriendlyName", truncate_name(&spec.friendly_name))
        .form("SipUrl", spec.target.sip_url.to_string())
}

fn unreadable(what: &str) -> ProviderError {
    tracing::warn!("Twilio answered a {what} trunkline cannot read");
    ProviderError::new(
        ErrorCode::Internal,
        format!("Twilio answered a {what} trunkline cannot read"),
    )
}

fn is_code(e: &ProviderError, code: ErrorCode) -> bool {
    e.code == code
}

#[async_trait]
impl CarrierProvider for TwilioCarrier {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Twilio
    }

    /// Probes `IncomingPhoneNumbers.json?PageSize=1` and `Trunks?PageSize=1` concurrently
    /// (plus the account's name when the credentials are the auth token). The numbers probe
    /// decides whether the credentials are valid *for this account*; once it has, a 20003 on
    /// the trunking probe means "not allowed to use trunking", not "bad credentials".
    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError> {
        let account = [creds.account_sid.as_str()];
        let numbers = self.probe(
            creds,
            Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account)
                .query("PageSize", "1"),
        );
        let trunks = self.probe(
            creds,
            Call::new(Op::ListTrunk, Resource::Trunks, &[]).query("PageSize", "1"),
        );
        let (numbers, trunks, friendly_name) =
            tokio::join!(numbers, trunks, self.account_name(creds));
        let (numbers, trunks) = (probe_result(numbers), probe_result(trunks));
        // Only the numbers probe names the account in its path; Trunking v1 acts on whatever
        // account the key belongs to. A 20003 there means these credentials do not belong to
        // this Account SID, whatever the trunking probe said.
        if let Probe::AuthFailed(e) | Probe::Failed(e) = numbers {
            return Err(e);
        }
        if let Probe::Failed(e) = trunks {
            return Err(e);
        }
        let capability = |p: Probe| match p {
            Probe::Ok => Capability::Available,
            Probe::Capability(c) => c,
            // The numbers probe proved the credentials: a 20003 here is a permission refusal.
            Probe::AuthFailed(_) | Probe::Failed(_) => Capability::Forbidden,
        };
        let capabilities = Capabilities {
            numbers: capability(numbers),
            trunking: capability(trunks),
        };
        tracing::info!(
            account = %creds.account_sid,
            numbers = ?capabilities.numbers,
            trunking = ?capabilities.trunking,
            "twilio credentials verified"
        );
        Ok(VerifyReport {
            account_sid: creds.account_sid.clone(),
            friendly_name,
            capabilities,
        })
    }

    async fn list_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError> {
        if !(1..=NumberQuery::MAX_PAGE_SIZE).contains(&query.page_size) {
            return Err(ProviderError::new(
                ErrorCode::ValidationFailed,
                format!("pageSize: must be 1 to {}", NumberQuery::MAX_PAGE_SIZE),
            ));
        }
        let account = [creds.account_sid.as_str()];
        let mut call = Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account);
        // A cursor continues the listing it came from: its filter and page size win.
        if let Some(c) = &query.cursor {
            call.query = cursor::decode(c, &creds.account_sid)?;
        } else {
            if let Some(e164) = &query.e164 {
                call = call.query("PhoneNumber", e164.as_str());
            }
            call = call.query("PageSize", query.page_size.to_string());
        }
        let page: NumberListJson = self.client.json(creds, &call).await?;
        let next_cursor = match page.next_page_uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(link) => Some(cursor::encode(&link, &creds.account_sid).ok_or_else(|| {
                tracing::warn!("unexpected next_page_uri from Twilio");
                transport(TransportFailure::BadResponse)
            })?),
        };
        let items = page
            .incoming_phone_numbers
            .into_iter()
            .filter_map(IncomingNumberJson::into_carrier)
            .filter(|n| query.cursor.is_some() || query.e164.as_ref().is_none_or(|e| *e == n.e164))
            .collect();
        Ok(NumberPage { items, next_cursor })
    }

    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &PhoneNumberSid,
    ) -> Result<CarrierNumber, ProviderError> {
        let ids = [creds.account_sid.as_str(), number.as_str()];
        let call = Call::new(Op::FetchIncomingPhoneNumber, Resource::Number, &ids);
        let json: IncomingNumberJson = self.client.json(creds, &call).await?;
        json.into_carrier()
            .ok_or_else(|| unreadable("phone number"))
    }

    async fn find_trunks(
        &self,
        creds: &CarrierCredentials,
        friendly_name: &str,
    ) -> Result<Vec<CarrierTrunk>, ProviderError> {
        let trunks: Vec<TrunkJson> = self
            .list_all(
                creds,
                Op::ListTrunk,
                Resource::Trunks,
                &[],
                |l: TrunkListJson| (l.trunks, l.meta),
            )
            .await?;
        Ok(trunks
            .into_iter()
            .filter(|t| t.friendly_name.as_deref() == Some(friendly_name))
            .filter_map(TrunkJson::into_carrier)
            .collect())
    }

    async fn fetch_trunk(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Option<CarrierTrunk>, ProviderError> {
        let ids = [trunk.as_str()];
        let call = Call::new(Op::FetchTrunk, Resource::Trunk, &ids);
        match self.client.json::<TrunkJson>(creds, &call).await {
            Ok(t) => t
                .into_carrier()
                .map(Some)
                .ok_or_else(|| unreadable("trunk")),
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_trunk(
        &self,
        creds: &CarrierCredentials,
        spec: &TrunkSpec,
    ) -> Result<CarrierTrunk, ProviderError> {
        // Truncating would make the trunk unfindable by its name: refuse instead.
        if spec.friendly_name.chars().count() > MAX_FRIENDLY_NAME || spec.friendly_name.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::ValidationFailed,
                format!("trunk friendly name must be 1 to {MAX_FRIENDLY_NAME} characters"),
            ));
        }
        let call = Call::new(Op::CreateTrunk, Resource::Trunks, &[])
            .form("FriendlyName", spec.friendly_name.clone());
        let trunk: TrunkJson = self.client.json(creds, &call).await?;
        let trunk = trunk.into_carrier().ok_or_else(|| unreadable("trunk"))?;
        tracing::info!(trunk = %trunk.sid, "twilio trunk created");
        Ok(trunk)
    }

    async fn delete_trunk(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<(), ProviderError> {
        let ids = [trunk.as_str()];
        let call = Call::new(Op::DeleteTrunk, Resource::Trunk, &ids);
        match self.client.empty(creds, &call).await {
            Ok(()) => {
                tracing::info!(trunk = %trunk, "twilio trunk deleted");
                Ok(())
            }
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list_origination_urls(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Vec<CarrierOriginationUrl>, ProviderError> {
        let ids = [trunk.as_str()];
        let urls: Vec<OriginationUrlJson> = self
            .list_all(
                creds,
                Op::ListOriginationUrl,
                Resource::Trunk,
                &ids,
                |l: OriginationUrlListJson| (l.origination_urls, l.meta),
            )
            .await?;
        Ok(urls
            .into_iter()
            .filter_map(|o| o.into_carrier(trunk))
            .collect())
    }

    async fn create_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        spec: &OriginationUrlSpec,
    ) -> Result<CarrierOriginationUrl, ProviderError> {
        let ids = [trunk.as_str()];
        let call = origination_form(
            Call::new(Op::CreateOriginationUrl, Resource::Trunk, &ids),
            spec,
        );
        let json: OriginationUrlJson = self.client.json(creds, &call).await?;
        let url = json
            .into_carrier(trunk)
            .ok_or_else(|| unreadable("origination URL"))?;
        tracing::info!(trunk = %trunk, origination_url = %url.sid, "twilio origination URL created");
        Ok(url)
    }

    async fn update_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        url: &OriginationUrlSid,
        spec: &OriginationUrlSpec,
    ) -> Result<CarrierOriginationUrl, ProviderError> {
        let ids = [trunk.as_str(), url.as_str()];
        let call = origination_form(
            Call::new(Op::UpdateOriginationUrl, Resource::OriginationUrl, &ids),
            spec,
        );
        let json: OriginationUrlJson = self.client.json(creds, &call).await?;
        json.into_carrier(trunk)
            .ok_or_else(|| unreadable("origination URL"))
    }

    async fn delete_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        url: &OriginationUrlSid,
    ) -> Result<(), ProviderError> {
        let ids = [trunk.as_str(), url.as_str()];
        let call = Call::new(Op::DeleteOriginationUrl, Resource::OriginationUrl, &ids);
        match self.client.empty(creds, &call).await {
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn list_trunk_numbers(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Vec<PhoneNumberSid>, ProviderError> {
        let ids = [trunk.as_str()];
        let numbers: Vec<TrunkNumberJson> = self
            .list_all(
                creds,
                Op::ListPhoneNumber,
                Resource::Trunk,
                &ids,
                |l: TrunkNumberListJson| (l.phone_numbers, l.meta),
            )
            .await?;
        Ok(numbers
            .into_iter()
            .filter_map(|n| PhoneNumberSid::parse(n.sid.as_deref().unwrap_or_default()).ok())
            .collect())
    }

    /// `POST /v1/Trunks/{TK}/PhoneNumbers`. When Twilio refuses (already on a trunk, or a
    /// 404 that may be the number or the trunk), the number is re-read to answer precisely:
    /// on this trunk → success, on another → `NUMBER_IN_USE`, gone → `NUMBER_NOT_FOUND`.
    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        number: &PhoneNumberSid,
    ) -> Result<(), ProviderError> {
        let ids = [trunk.as_str()];
        let call = Call::new(Op::CreatePhoneNumber, Resource::TrunkNumber, &ids)
            .form("PhoneNumberSid", number.as_str());
        let Err(refused) = self.client.json::<serde_json::Value>(creds, &call).await else {
            tracing::info!(trunk = %trunk, number = %number, "number attached to trunk");
            return Ok(());
        };
        if !matches!(
            refused.code,
            ErrorCode::Conflict | ErrorCode::NotFound | ErrorCode::ValidationFailed
        ) {
            return Err(refused);
        }
        let current = self.fetch_number(creds, number).await?;
        match current.trunk_sid {
            Some(t) if t == *trunk => Ok(()),
            Some(other) => {
                tracing::info!(number = %number, trunk = %other, "number is on another trunk");
                let mut in_use = ProviderError::new(
                    ErrorCode::NumberInUse,
                    format!("the phone number is attached to another Twilio trunk ({other})"),
                );
                in_use.provider_code = refused.provider_code;
                Err(in_use)
            }
            None => Err(refused),
        }
    }

    async fn detach_number(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        number: &PhoneNumberSid,
    ) -> Result<(), ProviderError> {
        let ids = [trunk.as_str(), number.as_str()];
        let call = Call::new(Op::DeletePhoneNumber, Resource::TrunkNumber, &ids);
        match self.client.empty(creds, &call).await {
            Ok(()) => {
                tracing::info!(trunk = %trunk, number = %number, "number detached from trunk");
                Ok(())
            }
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends all six fields: `""` clears a URL or the application; a method Twilio cannot
    /// leave unset goes back to Twilio's default `POST`. Setting a voice application makes
    /// Twilio drop the number's trunk, so this belongs after `detach_number`.
    async fn update_voice_config(
        &self,
        creds: &CarrierCredentials,
        number: &PhoneNumberSid,
        voice: &VoiceConfig,
    ) -> Result<(), ProviderError> {
        let method = |m: &Option<String>| {
            m.as_deref()
                .map_or_else(|| "POST".to_owned(), str::to_ascii_uppercase)
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let ids = [creds.account_sid.as_str(), number.as_str()];
        let call = Call::new(Op::UpdateIncomingPhoneNumber, Resource::Number, &ids)
            .form("VoiceUrl", text(&voice.voice_url))
            .form("VoiceMethod", method(&voice.voice_method))
            .form("VoiceFallbackUrl", text(&voice.voice_fallback_url))
            .form("VoiceFallbackMethod", method(&voice.voice_fallback_method))
            .form(
                "VoiceApplicationSid",
                voice
                    .voice_application_sid
                    .as_ref()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
            )
            .form("StatusCallback", text(&voice.status_callback));
        self.client
            .json::<serde_json::Value>(creds, &call)
            .await
            .map(drop)?;
        tracing::info!(number = %number, "number voice configuration restored");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server installs a crypto provider at start; building the adapter must not depend
    /// on that having happened first (it only builds the client, it connects nowhere).
    #[test]
    fn builds_without_a_process_wide_tls_provider() {
        let c = TwilioCarrier::new(TwilioConfig::default()).unwrap();
        assert_eq!(c.kind(), ProviderKind::Twilio);
    }

    #[test]
    fn names_are_cut_on_character_boundaries() {
        assert_eq!(
            truncate_name(&"é".repeat(70)).chars().count(),
            MAX_FRIENDLY_NAME
        );
        assert_eq!(truncate_name("short"), "short");
    }

    #[test]
    fn v1_links_only_yield_paging_parameters() {
        let q = next_page_query(
            "https://trunking.twilio.com/v1/Trunks?PageSize=2&Page=1&PageToken=PAx",
        )
        .unwrap();
        assert_eq!(q.len(), 3);
        assert!(next_page_query("https://evil.example/v1/Trunks?PageSize=2&Beta=true").is_none());
        assert!(
            next_page_query("/v1/Trunks?PageSize=2").is_none(),
            "v1 links are absolute"
        );
    }
}
