use std::collections::BTreeMap;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::errors::ProviderError;
use crate::error::ValidationError;
use crate::ids::{CarrierAccountId, CarrierNumberId, ProviderKind, RouteId, RouteTargetId};
use crate::model::{CarrierCredentials, NumberRouting, OriginationTarget};
use crate::phone::E164;

/// Whether the credentials may use one product of the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Available,
    /// The credentials are valid but not allowed (e.g. a restricted API key).
    Forbidden,
    /// The account does not have the product (e.g. Elastic SIP Trunking not enabled).
    NotEnabled,
}

/// What the credentials can do, as found by [`CarrierProvider::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Read the account's phone numbers.
    pub numbers: Capability,
    /// Manage SIP routes (Twilio: Elastic SIP trunks; Telnyx: FQDN connections).
    pub trunking: Capability,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The account the credentials act for, when the carrier names one.
    pub account_id: Option<CarrierAccountId>,
    pub friendly_name: Option<String>,
    pub capabilities: Capabilities,
}

/// One field of a carrier's credentials form, so that a UI need not hard-code any carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialField {
    /// The JSON field name of the credentials body (`accountSid`, `apiKey`, ...).
    pub name: &'static str,
    /// What to show next to the input.
    pub label: &'static str,
    /// A secret: sealed at rest, never shown back, masked in a form.
    pub secret: bool,
    /// A regular expression the value must match, when the carrier's format is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<&'static str>,
}

/// A carrier's credentials form: one or more alternative sets of fields, every field of the
/// chosen set required (Twilio: account SID + API key SID + secret, or account SID + auth token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialForm {
    pub alternatives: Vec<CredentialAlternative>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialAlternative {
    /// A short name for the alternative (`apiKey`, `authToken`).
    pub name: &'static str,
    pub fields: Vec<CredentialField>,
}

impl CredentialForm {
    /// Every field name any alternative uses, and whether it is secret.
    pub fn fields(&self) -> impl Iterator<Item = &CredentialField> {
        self.alternatives.iter().flat_map(|a| a.fields.iter())
    }

    /// Whether `name` is a secret field of this form.
    pub fn is_secret(&self, name: &str) -> bool {
        self.fields().any(|f| f.name == name && f.secret)
    }
}

/// How a carrier writes one kind of id, for the API document (`/openapi.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdFormat {
    /// A regular expression every id the adapter accepts matches.
    pub pattern: &'static str,
    pub example: &'static str,
    pub description: &'static str,
}

/// What a customer entered in a carrier's credentials form, split at the edge into plain
/// fields and secrets (the form says which is which), so a secret is a `SecretString` from
/// the moment it is parsed.
#[derive(Debug, Default)]
pub struct CredentialInput {
    pub fields: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretString>,
}

/// A number as the carrier holds it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierNumber {
    pub id: CarrierNumberId,
    pub e164: E164,
    pub friendly_name: Option<String>,
    pub voice_capable: bool,
    /// The SIP route the number is attached to, if any.
    pub route_id: Option<RouteId>,
    /// What the number points at now besides a route, as the adapter records it: what
    /// disconnect restores (see [`CarrierProvider::restore_routing`]).
    pub routing: NumberRouting,
}

/// One page request. `cursor` is what a previous [`NumberPage::next_cursor`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberQuery {
    /// 1 to [`NumberQuery::MAX_PAGE_SIZE`]; an adapter whose carrier pages smaller fetches
    /// what it can and says so through the cursor.
    pub page_size: u32,
    pub cursor: Option<String>,
    /// Only this number (exact match).
    pub e164: Option<E164>,
}

impl NumberQuery {
    pub const MAX_PAGE_SIZE: u32 = 1000;
    pub const DEFAULT_PAGE_SIZE: u32 = 50;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPage {
    pub items: Vec<CarrierNumber>,
    /// Opaque; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A carrier-side SIP route as the carrier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierRoute {
    pub id: RouteId,
    /// How trunkline finds its own routes again.
    pub name: Option<String>,
}

/// What route to create. `name` is how trunkline finds its own routes again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub name: String,
}

/// A SIP target of a route as the carrier holds it. `sip_url` is kept raw (a `sip:` URI the
/// adapter rebuilt from the carrier's fields): a target someone else configured need not
/// parse as one of our [`crate::SipTarget`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierRouteTarget {
    pub id: RouteTargetId,
    pub route_id: RouteId,
    pub sip_url: String,
    /// Lower is tried first. A carrier with failover order only maps it to that order.
    pub priority: u16,
    /// Load share within one priority; carriers without weights report the default.
    pub weight: u16,
    pub enabled: bool,
    pub name: Option<String>,
}

/// What a route target should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTargetSpec {
    pub target: OriginationTarget,
    pub enabled: bool,
    /// At most 64 characters; adapters truncate longer names.
    pub name: String,
}

/// What outbound termination a route should have: calls LiveKit sends to the carrier
/// authenticate with these credentials and may leave the account with the route's numbers as
/// caller ID.
#[derive(Debug, Clone)]
pub struct TerminationSpec {
    /// How trunkline finds its own termination objects again (a Twilio credential list's
    /// friendly name); at most 64 characters.
    pub name: String,
    /// The SIP username, at most 32 characters (Twilio's limit), letters and digits.
    pub username: String,
    /// Never logged: `SecretString`'s `Debug` is redacted.
    pub password: SecretString,
    /// ISO 3166-1 alpha-2 countries calls may go to (carriers with a whitelist: Telnyx).
    pub allowed_countries: Vec<String>,
}

/// Termination as the carrier holds it after [`CarrierProvider::ensure_termination`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// The host LiveKit's outbound trunk sends its INVITEs to (no `sip:`).
    pub host: String,
    /// The carrier's id of what holds the credentials (a Twilio credential list), for status.
    pub credential_ref: Option<String>,
    /// SIP headers LiveKit must add to every INVITE (Telnyx: `X-Telnyx-Username`).
    pub invite_headers: BTreeMap<String, String>,
}

/// Termination as the carrier holds it now, for status and drift.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminationState {
    /// The termination host, when the route has one.
    pub host: Option<String>,
    /// Whether credentials named `spec.name` with the username are attached to the route.
    pub credentials_attached: bool,
}

/// A carrier: primitive, idempotent-where-possible operations shaped around what bringing
/// your own number needs from any carrier (numbers, one number's live routing, a SIP route
/// with SIP targets, attaching a number to it), not around one carrier's objects.
///
/// The connect *algorithm* lives in the core; an adapter only maps these calls to its API.
/// Carrier ids are opaque to the core: the adapter parses what reaches it from outside
/// ([`CarrierProvider::parse_number_id`]) and produces every other id itself. Every method
/// takes the customer's credentials, because one adapter serves every customer.
/// Errors are classified [`ProviderError`]s: `AUTH_INVALID`, `INSUFFICIENT_PERMISSIONS`,
/// `TRUNKING_NOT_ENABLED`, `RATE_LIMITED` (after the adapter's own bounded retries),
/// `PROVIDER_UNAVAILABLE` (5xx, timeouts, connection failures), `VALIDATION_FAILED` (the
/// carrier refused a value; the message names it), and the not-found codes named per method.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CarrierProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// The fields of this carrier's credentials body.
    fn credential_form(&self) -> CredentialForm;

    /// Parse what the customer entered into credentials, checking every field's format.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the field (its JSON name) for a missing or malformed
    /// value, or for a mix of two alternatives. It never echoes a secret.
    fn parse_credentials(
        &self,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, ValidationError>;

    /// Parse a number id from outside (a path parameter) in this carrier's format.
    ///
    /// # Errors
    /// A [`ValidationError`] saying what the format is.
    fn parse_number_id(&self, raw: &str) -> Result<CarrierNumberId, ValidationError>;

    /// The format of the number ids [`CarrierProvider::parse_number_id`] accepts.
    fn number_id_format(&self) -> IdFormat;

    /// Check the credentials without changing anything and report what they can do.
    ///
    /// # Errors
    /// `AUTH_INVALID` when the carrier rejects the credentials. A missing *capability* is
    /// not an error: it is reported in [`Capabilities`].
    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError>;

    /// One page of the account's numbers.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` for a cursor this adapter did not produce.
    async fn list_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError>;

    /// The number's live state: its route and what else it points at.
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND` when the account does not own it.
    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<CarrierNumber, ProviderError>;

    /// Routes whose name is exactly `name` (all pages).
    async fn find_routes(
        &self,
        creds: &CarrierCredentials,
        name: &str,
    ) -> Result<Vec<CarrierRoute>, ProviderError>;

    /// One route; `Ok(None)` when it does not exist (deleted behind our back).
    async fn fetch_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Option<CarrierRoute>, ProviderError>;

    /// Create a route configured for LiveKit (for Telnyx: `+E.164` number formats and TCP).
    /// Not idempotent and not retried blindly: callers look for an existing route first
    /// ([`CarrierProvider::find_routes`]) and re-read after a failure.
    async fn create_route(
        &self,
        creds: &CarrierCredentials,
        spec: &RouteSpec,
    ) -> Result<CarrierRoute, ProviderError>;

    /// Delete a route. Absent already is success. Only for routes trunkline created and
    /// emptied; never used to "fix" a route.
    async fn delete_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<(), ProviderError>;

    /// All SIP targets of a route.
    ///
    /// # Errors
    /// `NOT_FOUND` when the route does not exist.
    async fn list_route_targets(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierRouteTarget>, ProviderError>;

    /// Create a SIP target on a route. Not idempotent (see `create_route`).
    ///
    /// # Errors
    /// `INVALID_SIP_TARGET` when the carrier cannot express the target.
    async fn create_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError>;

    /// Make an existing SIP target match `spec`. Idempotent.
    ///
    /// # Errors
    /// `NOT_FOUND` when it does not exist.
    async fn update_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError>;

    /// Delete a SIP target. Absent already is success.
    async fn delete_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
    ) -> Result<(), ProviderError>;

    /// The numbers attached to a route (all pages).
    async fn list_route_numbers(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierNumberId>, ProviderError>;

    /// Attach a number to a route. Already attached to this route is success. On a carrier
    /// where a number has one route only, this moves it: callers read the number first and
    /// decide (see [`CarrierNumber::route_id`]).
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND`; `NUMBER_IN_USE` when the carrier refuses because the number is
    /// on another route.
    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError>;

    /// Detach a number from a route. Not attached (or route gone) is success.
    async fn detach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError>;

    /// The secret the carrier signs its webhooks to trunkline with, when the customer's
    /// input carries one (Twilio: the account's auth token, optional beside an API key).
    /// Sealed like the credentials' secret and never shown back. The default: this carrier's
    /// credentials carry none.
    ///
    /// # Errors
    /// A [`ValidationError`] naming the field; it never echoes the secret.
    fn parse_webhook_secret(
        &self,
        input: &CredentialInput,
    ) -> Result<Option<SecretString>, ValidationError> {
        let _ = input;
        Ok(None)
    }

    /// Check at the carrier a webhook secret given beside the credentials (Twilio: an auth
    /// token beside an API key), so that a wrong one is refused when saved rather than
    /// failing every call's signature. The default: nothing to check.
    ///
    /// # Errors
    /// `AUTH_INVALID` naming the secret's field; the carrier's transport errors.
    async fn verify_webhook_secret(
        &self,
        creds: &CarrierCredentials,
        secret: &SecretString,
    ) -> Result<(), ProviderError> {
        let _ = (creds, secret);
        Ok(())
    }

    /// Voice-URL mode: make the carrier fetch what to do with a call to the number from `url`
    /// (HTTP POST), instead of a SIP route or anything else it points at. Idempotent. The
    /// default: the carrier has no such mode.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` saying the carrier does not support voice-URL mode;
    /// `NUMBER_NOT_FOUND`.
    /// Whether the carrier can route a number by a voice URL ([`Self::set_voice_url`]);
    /// connect refuses `mode: voiceUrl` up front on a carrier that cannot, before it asks for
    /// anything else.
    fn supports_voice_url(&self) -> bool {
        false
    }

    async fn set_voice_url(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        url: &str,
    ) -> Result<(), ProviderError> {
        let _ = (creds, number, url);
        Err(ProviderError::new(
            crate::ErrorCode::ValidationFailed,
            format!(
                "mode: {} numbers cannot be connected by voice URL; connect with mode \"trunk\"",
                self.kind()
            ),
        ))
    }

    /// Whether the number, with `routing` as [`CarrierNumber::routing`] reports it, sends its
    /// calls to `url` by voice URL (POST). Tells connect what to record and status whether
    /// the voice URL was changed at the carrier. The default: never.
    fn routing_points_at(&self, routing: &NumberRouting, url: &str) -> bool {
        let _ = (routing, url);
        false
    }

    /// Put back what the number pointed at, as [`CarrierNumber::routing`] recorded it
    /// before trunkline attached it (used on disconnect, after detaching). Idempotent.
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND`; `VALIDATION_FAILED` for a record another adapter wrote.
    async fn restore_routing(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        routing: &NumberRouting,
    ) -> Result<(), ProviderError>;

    /// Outbound calls per second the carrier allows per number by default (Twilio trunks: 1);
    /// `POST /telephony/calls` refuses faster calls with `RATE_LIMITED` instead of letting
    /// the carrier fail them.
    fn termination_calls_per_second(&self) -> u32 {
        1
    }

    /// Make outbound termination on `route` true as `spec` says: the termination host (Twilio:
    /// a `<unique>.pstn.twilio.com` domain name on the trunk), the credentials (Twilio: a
    /// credential list named `spec.name` holding `spec.username` with `spec.password`,
    /// attached to the trunk; the password is set again, since a carrier never shows it back),
    /// and whatever else the carrier needs. Idempotent: a second call with the same spec
    /// changes nothing the carrier reports; never creates a second list or credential.
    ///
    /// # Errors
    /// `NOT_FOUND` when the route does not exist; `VALIDATION_FAILED` when the carrier refuses
    /// a credential (its message never carries the password); `NOT_CONFIGURED` for a carrier
    /// without outbound support in trunkline.
    async fn ensure_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        let _ = (creds, route, spec);
        Err(ProviderError::new(
            crate::error::ErrorCode::NotConfigured,
            format!("outbound calls are not supported for {} yet", self.kind()),
        ))
    }

    /// The route's termination as the carrier holds it (status and drift). A route that no
    /// longer exists answers the default (nothing attached).
    async fn inspect_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        let _ = (creds, route, name, username);
        Ok(TerminationState::default())
    }

    /// Remove what [`CarrierProvider::ensure_termination`] set up under `name`: detach and
    /// delete the credentials. Absent already (or the route gone) is success.
    async fn remove_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        let _ = (creds, route, name);
        Ok(())
    }
}
