//! [`CarrierProvider`] for Twilio.

use async_trait::async_trait;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use trunkline_core::model::{CarrierCredentials, NumberRouting};
use trunkline_core::ports::{
    Capabilities, Capability, CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget,
    CredentialForm, CredentialInput, IdFormat, NumberPage, NumberQuery, ProviderError, RouteSpec,
    RouteTargetSpec, Termination, TerminationSpec, TerminationState, VerifyReport,
};
use trunkline_core::{
    CarrierNumberId, ErrorCode, ProviderKind, RouteId, RouteTargetId, ValidationError,
};

use crate::client::{Call, Client};
use crate::config::{TwilioConfig, TwilioConfigError};
use crate::credentials::{self, Auth};
use crate::cursor;
use crate::error::{Resource, TransportFailure, transport};
use crate::ops::TwilioOperation as Op;
use crate::sid::{OriginationUrlSid, PhoneNumberSid, TrunkSid};
use crate::voice::VoiceConfig;
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

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Every item of a Trunking v1 list, following `meta.next_page_url`.
    async fn list_all<L, T>(
        &self,
        auth: &Auth<'_>,
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
            let (items, meta) = split(self.client.json::<L>(auth, &call).await?);
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

    async fn probe(&self, auth: &Auth<'_>, call: Call<'_>) -> Result<(), ProviderError> {
        self.client
            .json::<serde_json::Value>(auth, &call)
            .await
            .map(drop)
    }

    /// The account's friendly name, only with the auth token: a Standard API key cannot
    /// read `/Accounts/{sid}` and the failed attempt would show as a 20003 in the customer's
    /// Twilio debugger.
    async fn account_name(&self, auth: &Auth<'_>) -> Option<String> {
        if !auth.is_auth_token() {
            return None;
        }
        let ids = [auth.account.as_str()];
        let call = Call::new(Op::FetchAccount, Resource::Account, &ids);
        match self.client.json::<AccountJson>(auth, &call).await {
            Ok(a) => a.friendly_name,
            Err(e) => {
                tracing::debug!(code = %e.code, "account name not readable; verify goes on");
                None
            }
        }
    }
}

impl TwilioCarrier {
    async fn fetch_number_sid(
        &self,
        auth: &Auth<'_>,
        number: &PhoneNumberSid,
    ) -> Result<CarrierNumber, ProviderError> {
        let ids = [auth.account.as_str(), number.as_str()];
        let call = Call::new(Op::FetchIncomingPhoneNumber, Resource::Number, &ids);
        let json: IncomingNumberJson = self.client.json(auth, &call).await?;
        json.into_carrier()
            .ok_or_else(|| unreadable("phone number"))
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

fn origination_form<'a>(call: Call<'a>, spec: &RouteTargetSpec) -> Call<'a> {
    call.form("Weight", spec.target.weight().to_string())
        .form("Priority", spec.target.priority().to_string())
        .form("Enabled", if spec.enabled { "true" } else { "false" })
        .form("FriendlyName", truncate_name(&spec.name))
        .form("SipUrl", spec.target.sip_url().to_string())
}

// Ids from the core are opaque; each is parsed into its SID again before it reaches a URL.
// The messages say what the format is and never quote the value.

/// A number id that is not a `PN…` SID: `VALIDATION_FAILED` (it cannot be a Twilio number).
fn number_sid(id: &CarrierNumberId) -> Result<PhoneNumberSid, ProviderError> {
    PhoneNumberSid::try_from(id).map_err(|e| foreign_id(&e.field("numberId")))
}

/// A route id that is not a `TK…` SID names no Twilio trunk: `NOT_FOUND`.
pub(crate) fn trunk_sid(id: &RouteId) -> Result<TrunkSid, ProviderError> {
    TrunkSid::try_from(id).map_err(|e| not_found(&e.field("routeId")))
}

/// A target id that is not an `OU…` SID names no origination URL: `NOT_FOUND`.
fn origination_url_sid(id: &RouteTargetId) -> Result<OriginationUrlSid, ProviderError> {
    OriginationUrlSid::try_from(id).map_err(|e| not_found(&e.field("routeTargetId")))
}

fn foreign_id(e: &ValidationError) -> ProviderError {
    tracing::warn!(field = ?e.field, "an id of another format reached the Twilio adapter");
    ProviderError::new(ErrorCode::ValidationFailed, e.to_string())
}

fn not_found(e: &ValidationError) -> ProviderError {
    tracing::warn!(field = ?e.field, "an id of another format reached the Twilio adapter");
    ProviderError::new(
        ErrorCode::NotFound,
        format!("no such object at Twilio: {e}"),
    )
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

    fn credential_form(&self) -> CredentialForm {
        credentials::form()
    }

    fn parse_credentials(
        &self,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, ValidationError> {
        credentials::parse(input)
    }

    /// Strict: `PN` and 32 hexadecimal characters.
    fn parse_number_id(&self, raw: &str) -> Result<CarrierNumberId, ValidationError> {
        PhoneNumberSid::parse(raw).map(Into::into)
    }

    fn number_id_format(&self) -> IdFormat {
        IdFormat {
            pattern: "^PN[0-9a-fA-F]{32}$",
            example: "PN0123456789abcdef0123456789abcdef",
            description: "A Twilio IncomingPhoneNumber SID (`PN…`).",
        }
    }

    /// Probes `IncomingPhoneNumbers.json?PageSize=1` and `Trunks?PageSize=1` concurrently
    /// (plus the account's name when the credentials are the auth token). The numbers probe
    /// decides whether the credentials are valid *for this account*; once it has, a 20003 on
    /// the trunking probe means "not allowed to use trunking", not "bad credentials".
    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError> {
        let auth = Auth::of(creds)?;
        let account = [auth.account.as_str()];
        let numbers = self.probe(
            &auth,
            Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account)
                .query("PageSize", "1"),
        );
        let trunks = self.probe(
            &auth,
            Call::new(Op::ListTrunk, Resource::Trunks, &[]).query("PageSize", "1"),
        );
        let (numbers, trunks, friendly_name) =
            tokio::join!(numbers, trunks, self.account_name(&auth));
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
            account = %auth.account,
            numbers = ?capabilities.numbers,
            trunking = ?capabilities.trunking,
            "twilio credentials verified"
        );
        Ok(VerifyReport {
            account_id: Some(auth.account.clone().into()),
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
        let auth = Auth::of(creds)?;
        let account = [auth.account.as_str()];
        let mut call = Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account);
        // A cursor continues the listing it came from: its filter and page size win.
        if let Some(c) = &query.cursor {
            call.query = cursor::decode(c, &auth.account)?;
        } else {
            if let Some(e164) = &query.e164 {
                call = call.query("PhoneNumber", e164.as_str());
            }
            call = call.query("PageSize", query.page_size.to_string());
        }
        let page: NumberListJson = self.client.json(&auth, &call).await?;
        let next_cursor = match page.next_page_uri.filter(|u| !u.is_empty()) {
            None => None,
            Some(link) => Some(cursor::encode(&link, &auth.account).ok_or_else(|| {
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

    /// The number's trunk is its route; its own voice configuration is its routing record.
    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<CarrierNumber, ProviderError> {
        let number = number_sid(number)?;
        self.fetch_number_sid(&Auth::of(creds)?, &number).await
    }

    /// Trunks whose friendly name is exactly `name`.
    async fn find_routes(
        &self,
        creds: &CarrierCredentials,
        name: &str,
    ) -> Result<Vec<CarrierRoute>, ProviderError> {
        let auth = Auth::of(creds)?;
        let trunks: Vec<TrunkJson> = self
            .list_all(
                &auth,
                Op::ListTrunk,
                Resource::Trunks,
                &[],
                |l: TrunkListJson| (l.trunks, l.meta),
            )
            .await?;
        Ok(trunks
            .into_iter()
            .filter(|t| t.friendly_name.as_deref() == Some(name))
            .filter_map(TrunkJson::into_carrier)
            .collect())
    }

    async fn fetch_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Option<CarrierRoute>, ProviderError> {
        // Not a trunk SID: no such trunk can exist, which is what `None` says.
        let Ok(trunk) = TrunkSid::try_from(route) else {
            tracing::warn!("a route id of another format reached the Twilio adapter");
            return Ok(None);
        };
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let call = Call::new(Op::FetchTrunk, Resource::Trunk, &ids);
        match self.client.json::<TrunkJson>(&auth, &call).await {
            Ok(t) => t
                .into_carrier()
                .map(Some)
                .ok_or_else(|| unreadable("trunk")),
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An Elastic SIP trunk named `spec.name`. Twilio trunks need nothing else for LiveKit:
    /// Twilio sends `+E.164` numbers, and the transport is in each origination URL.
    async fn create_route(
        &self,
        creds: &CarrierCredentials,
        spec: &RouteSpec,
    ) -> Result<CarrierRoute, ProviderError> {
        // Truncating would make the trunk unfindable by its name: refuse instead.
        if spec.name.chars().count() > MAX_FRIENDLY_NAME || spec.name.is_empty() {
            return Err(ProviderError::new(
                ErrorCode::ValidationFailed,
                format!("trunk friendly name must be 1 to {MAX_FRIENDLY_NAME} characters"),
            ));
        }
        let auth = Auth::of(creds)?;
        let call = Call::new(Op::CreateTrunk, Resource::Trunks, &[])
            .form("FriendlyName", spec.name.clone());
        let trunk: TrunkJson = self.client.json(&auth, &call).await?;
        let trunk = trunk.into_carrier().ok_or_else(|| unreadable("trunk"))?;
        tracing::info!(trunk = %trunk.id, "twilio trunk created");
        Ok(trunk)
    }

    async fn delete_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<(), ProviderError> {
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let call = Call::new(Op::DeleteTrunk, Resource::Trunk, &ids);
        match self.client.empty(&auth, &call).await {
            Ok(()) => {
                tracing::info!(trunk = %trunk, "twilio trunk deleted");
                Ok(())
            }
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The trunk's origination URLs.
    async fn list_route_targets(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierRouteTarget>, ProviderError> {
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let urls: Vec<OriginationUrlJson> = self
            .list_all(
                &auth,
                Op::ListOriginationUrl,
                Resource::Trunk,
                &ids,
                |l: OriginationUrlListJson| (l.origination_urls, l.meta),
            )
            .await?;
        Ok(urls
            .into_iter()
            .filter_map(|o| o.into_carrier(&trunk))
            .collect())
    }

    async fn create_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let call = origination_form(
            Call::new(Op::CreateOriginationUrl, Resource::Trunk, &ids),
            spec,
        );
        let json: OriginationUrlJson = self.client.json(&auth, &call).await?;
        let url = json
            .into_carrier(&trunk)
            .ok_or_else(|| unreadable("origination URL"))?;
        tracing::info!(trunk = %trunk, origination_url = %url.id, "twilio origination URL created");
        Ok(url)
    }

    async fn update_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let trunk = trunk_sid(route)?;
        let url = origination_url_sid(target)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str(), url.as_str()];
        let call = origination_form(
            Call::new(Op::UpdateOriginationUrl, Resource::OriginationUrl, &ids),
            spec,
        );
        let json: OriginationUrlJson = self.client.json(&auth, &call).await?;
        json.into_carrier(&trunk)
            .ok_or_else(|| unreadable("origination URL"))
    }

    async fn delete_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
    ) -> Result<(), ProviderError> {
        let trunk = trunk_sid(route)?;
        let url = origination_url_sid(target)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str(), url.as_str()];
        let call = Call::new(Op::DeleteOriginationUrl, Resource::OriginationUrl, &ids);
        match self.client.empty(&auth, &call).await {
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn list_route_numbers(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierNumberId>, ProviderError> {
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let numbers: Vec<TrunkNumberJson> = self
            .list_all(
                &auth,
                Op::ListPhoneNumber,
                Resource::Trunk,
                &ids,
                |l: TrunkNumberListJson| (l.phone_numbers, l.meta),
            )
            .await?;
        Ok(numbers
            .into_iter()
            .filter_map(|n| PhoneNumberSid::parse(n.sid.as_deref().unwrap_or_default()).ok())
            .map(Into::into)
            .collect())
    }

    /// `POST /v1/Trunks/{TK}/PhoneNumbers`. When Twilio refuses (already on a trunk, or a
    /// 404 that may be the number or the trunk), the number is re-read to answer precisely:
    /// on this trunk → success, on another → `NUMBER_IN_USE`, gone → `NUMBER_NOT_FOUND`.
    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let number = number_sid(number)?;
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str()];
        let call = Call::new(Op::CreatePhoneNumber, Resource::TrunkNumber, &ids)
            .form("PhoneNumberSid", number.as_str());
        let Err(refused) = self.client.json::<serde_json::Value>(&auth, &call).await else {
            tracing::info!(trunk = %trunk, number = %number, "number attached to trunk");
            return Ok(());
        };
        if !matches!(
            refused.code,
            ErrorCode::Conflict | ErrorCode::NotFound | ErrorCode::ValidationFailed
        ) {
            return Err(refused);
        }
        let current = self.fetch_number_sid(&auth, &number).await?;
        match current.route_id {
            Some(t) if t == *route => Ok(()),
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
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let number = number_sid(number)?;
        let trunk = trunk_sid(route)?;
        let auth = Auth::of(creds)?;
        let ids = [trunk.as_str(), number.as_str()];
        let call = Call::new(Op::DeletePhoneNumber, Resource::TrunkNumber, &ids);
        match self.client.empty(&auth, &call).await {
            Ok(()) => {
                tracing::info!(trunk = %trunk, number = %number, "number detached from trunk");
                Ok(())
            }
            Err(e) if is_code(&e, ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn parse_webhook_secret(
        &self,
        input: &CredentialInput,
    ) -> Result<Option<SecretString>, ValidationError> {
        credentials::webhook_secret(input)
    }

    /// Voice URL and method POST; the voice application is cleared, since Twilio prefers an
    /// application over the voice URL. The fallback URL and status callback are left alone.
    fn supports_voice_url(&self) -> bool {
        true
    }

    async fn set_voice_url(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        url: &str,
    ) -> Result<(), ProviderError> {
        let number = number_sid(number)?;
        let auth = Auth::of(creds)?;
        let ids = [auth.account.as_str(), number.as_str()];
        let call = Call::new(Op::UpdateIncomingPhoneNumber, Resource::Number, &ids)
            .form("VoiceUrl", url.to_owned())
            .form("VoiceMethod", "POST".to_owned())
            .form("VoiceApplicationSid", String::new());
        self.client
            .json::<serde_json::Value>(&auth, &call)
            .await
            .map(drop)?;
        tracing::info!(number = %number, "number voice URL pointed at trunkline");
        Ok(())
    }

    /// An auth token beside an API key: the key was verified, the token not yet. It is
    /// checked as the account's own credentials with the numbers probe of `verify` (the
    /// request Twilio answers 20003 to a token of another account).
    async fn verify_webhook_secret(
        &self,
        creds: &CarrierCredentials,
        secret: &SecretString,
    ) -> Result<(), ProviderError> {
        if creds.key_id.is_none() {
            // The token alone is the credentials' secret, verified with them.
            return Ok(());
        }
        let as_token = CarrierCredentials {
            account_id: creds.account_id.clone(),
            key_id: None,
            secret: secret.clone(),
        };
        let auth = Auth::of(&as_token)?;
        let account = [auth.account.as_str()];
        self.probe(
            &auth,
            Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account)
                .query("PageSize", "1"),
        )
        .await
        .map_err(|e| match e.code {
            ErrorCode::AuthInvalid => ProviderError::new(
                ErrorCode::AuthInvalid,
                "authToken: Twilio does not accept this auth token for the Account SID (the \
                 API key is fine); copy the account's current auth token from the Twilio \
                 console: Twilio signs the voice webhook with it",
            ),
            _ => e,
        })
    }

    fn routing_points_at(&self, routing: &NumberRouting, url: &str) -> bool {
        VoiceConfig::from_routing(routing).is_ok_and(|v| {
            v.voice_application_sid.is_none()
                && v.voice_url.as_deref() == Some(url)
                && v.voice_method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case("POST"))
        })
    }

    /// The record is a [`VoiceConfig`]; all six fields are sent: `""` clears a URL or the
    /// application; a method Twilio cannot leave unset goes back to Twilio's default `POST`.
    /// Setting a voice application makes Twilio drop the number's trunk, so this belongs
    /// after `detach_number`.
    async fn restore_routing(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        routing: &NumberRouting,
    ) -> Result<(), ProviderError> {
        let number = number_sid(number)?;
        let voice = VoiceConfig::from_routing(routing)?;
        let auth = Auth::of(creds)?;
        let method = |m: &Option<String>| {
            m.as_deref()
                .map_or_else(|| "POST".to_owned(), str::to_ascii_uppercase)
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let ids = [auth.account.as_str(), number.as_str()];
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
            .json::<serde_json::Value>(&auth, &call)
            .await
            .map(drop)?;
        tracing::info!(number = %number, "number voice configuration restored");
        Ok(())
    }

    async fn ensure_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        self.ensure_termination_impl(creds, route, spec).await
    }

    async fn inspect_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        self.inspect_termination_impl(creds, route, name, username)
            .await
    }

    async fn remove_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        self.remove_termination_impl(creds, route, name).await
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
