use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::errors::ProviderError;
use crate::ids::{AccountSid, OriginationUrlSid, PhoneNumberSid, ProviderKind, TrunkSid};
use crate::model::{CarrierCredentials, OriginationTarget, VoiceConfig};
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
    /// Read incoming phone numbers.
    pub numbers: Capability,
    /// Manage Elastic SIP trunks.
    pub trunking: Capability,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub account_sid: AccountSid,
    pub friendly_name: Option<String>,
    pub capabilities: Capabilities,
}

/// A number as the carrier holds it right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierNumber {
    pub sid: PhoneNumberSid,
    pub e164: E164,
    pub friendly_name: Option<String>,
    pub voice_capable: bool,
    /// The trunk the number is attached to, if any.
    pub trunk_sid: Option<TrunkSid>,
    /// The number's own voice configuration (ignored by the carrier while on a trunk).
    pub voice: VoiceConfig,
}

/// One page request. `cursor` is what a previous [`NumberPage::next_cursor`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberQuery {
    /// 1 to [`NumberQuery::MAX_PAGE_SIZE`].
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

/// A trunk as the carrier holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierTrunk {
    pub sid: TrunkSid,
    pub friendly_name: Option<String>,
    pub domain_name: Option<String>,
}

/// What to create. `friendly_name` is how trunkline finds its own trunks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    pub friendly_name: String,
}

/// An origination URL as the carrier holds it. `sip_url` is kept raw: a URL someone else
/// configured need not parse as one of our [`crate::SipTarget`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierOriginationUrl {
    pub sid: OriginationUrlSid,
    pub trunk_sid: TrunkSid,
    pub sip_url: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
    pub friendly_name: Option<String>,
}

/// What an origination URL should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginationUrlSpec {
    pub target: OriginationTarget,
    pub enabled: bool,
    /// At most 64 characters (Twilio's limit); adapters truncate longer names.
    pub friendly_name: String,
}

/// A carrier (Twilio now; others later): primitive, idempotent-where-possible operations.
///
/// The connect *algorithm* lives in the core; an adapter only maps these calls to its API.
/// Every method takes the customer's credentials, because one adapter serves every customer.
/// Errors are classified [`ProviderError`]s: `AUTH_INVALID`, `INSUFFICIENT_PERMISSIONS`,
/// `TRUNKING_NOT_ENABLED`, `RATE_LIMITED` (after the adapter's own bounded retries),
/// `PROVIDER_UNAVAILABLE` (5xx, timeouts, connection failures), and the not-found codes
/// named per method.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CarrierProvider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Check the credentials without changing anything and report what they can do.
    ///
    /// # Errors
    /// `AUTH_INVALID` when the carrier rejects the credentials. A missing *capability* is
    /// not an error: it is reported in [`Capabilities`].
    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError>;

    /// One page of the account's incoming numbers.
    ///
    /// # Errors
    /// `VALIDATION_FAILED` for a cursor this adapter did not produce.
    async fn list_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError>;

    /// The number's live state: trunk and voice configuration.
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND` when the account does not own it.
    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &PhoneNumberSid,
    ) -> Result<CarrierNumber, ProviderError>;

    /// Trunks whose friendly name is exactly `friendly_name` (all pages).
    async fn find_trunks(
        &self,
        creds: &CarrierCredentials,
        friendly_name: &str,
    ) -> Result<Vec<CarrierTrunk>, ProviderError>;

    /// One trunk; `Ok(None)` when it does not exist (deleted behind our back).
    async fn fetch_trunk(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Option<CarrierTrunk>, ProviderError>;

    /// Create a trunk. Not idempotent and not retried blindly: callers look for an
    /// existing trunk first ([`CarrierProvider::find_trunks`]) and re-read after a failure.
    async fn create_trunk(
        &self,
        creds: &CarrierCredentials,
        spec: &TrunkSpec,
    ) -> Result<CarrierTrunk, ProviderError>;

    /// Delete a trunk. Absent already is success. Only for trunks trunkline created and
    /// emptied; never used to "fix" a trunk.
    async fn delete_trunk(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<(), ProviderError>;

    /// All origination URLs of a trunk.
    ///
    /// # Errors
    /// `NOT_FOUND` when the trunk does not exist.
    async fn list_origination_urls(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Vec<CarrierOriginationUrl>, ProviderError>;

    /// Create an origination URL. Not idempotent (see `create_trunk`).
    async fn create_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        spec: &OriginationUrlSpec,
    ) -> Result<CarrierOriginationUrl, ProviderError>;

    /// Make an existing origination URL match `spec`. Idempotent.
    ///
    /// # Errors
    /// `NOT_FOUND` when it does not exist.
    async fn update_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        url: &OriginationUrlSid,
        spec: &OriginationUrlSpec,
    ) -> Result<CarrierOriginationUrl, ProviderError>;

    /// Delete an origination URL. Absent already is success.
    async fn delete_origination_url(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        url: &OriginationUrlSid,
    ) -> Result<(), ProviderError>;

    /// The numbers attached to a trunk (all pages).
    async fn list_trunk_numbers(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
    ) -> Result<Vec<PhoneNumberSid>, ProviderError>;

    /// Attach a number to a trunk. Already attached to this trunk is success.
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND`; `NUMBER_IN_USE` when the carrier refuses because the number is
    /// on another trunk (callers check [`CarrierNumber::trunk_sid`] first).
    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        number: &PhoneNumberSid,
    ) -> Result<(), ProviderError>;

    /// Detach a number from a trunk. Not attached (or trunk gone) is success.
    async fn detach_number(
        &self,
        creds: &CarrierCredentials,
        trunk: &TrunkSid,
        number: &PhoneNumberSid,
    ) -> Result<(), ProviderError>;

    /// Set the number's own voice configuration (used to restore it on disconnect). Fields
    /// that are `None` are cleared. Idempotent.
    ///
    /// # Errors
    /// `NUMBER_NOT_FOUND`.
    async fn update_voice_config(
        &self,
        creds: &CarrierCredentials,
        number: &PhoneNumberSid,
        voice: &VoiceConfig,
    ) -> Result<(), ProviderError>;
}
