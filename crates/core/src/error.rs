//! The normalized error vocabulary shared by every layer.
//!
//! Adapters translate their systems' failures into these codes; the HTTP edge maps each
//! code to one status, once. Messages are written for the customer and never carry secrets.

use serde::{Deserialize, Serialize};

/// Normalized error codes (seed 003, extended by the design). The HTTP edge adds the codes
/// of HTTP itself (a body too large, a method a route does not answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The carrier rejected the credentials (bad key, secret or account).
    AuthInvalid,
    /// The credentials work but lack a permission the operation needs.
    InsufficientPermissions,
    /// The phone number does not exist in, or is not owned by, the account.
    NumberNotFound,
    /// The carrier account has no Elastic SIP Trunking.
    TrunkingNotEnabled,
    /// The SIP target is malformed or not usable by the carrier.
    InvalidSipTarget,
    /// The carrier (or we) asked the caller to slow down.
    RateLimited,
    /// The carrier or the SIP platform could not be reached or failed.
    ProviderUnavailable,
    /// The number is not connected by trunkline.
    NotConnected,
    /// The number sits on a trunk trunkline did not create.
    NumberInUse,
    /// The request is malformed; the message names the field.
    ValidationFailed,
    /// No or an invalid bearer token.
    Unauthenticated,
    /// Authenticated but not allowed.
    Forbidden,
    /// No stored credentials for this customer and provider.
    IntegrationNotFound,
    /// A concurrent operation holds the resource; retry shortly.
    Conflict,
    /// A resource other than a number was not found (route, call, ...).
    NotFound,
    /// The server is not configured for this operation (e.g. no LiveKit, no SIP target).
    NotConfigured,
    /// This instance cannot serve right now (database unreachable or not migrated); retry.
    ServiceUnavailable,
    /// Unexpected failure on our side; details are in the logs under the request id.
    Internal,
    /// Number search, purchase and release are off (`TRUNKLINE_ALLOW_NUMBER_PURCHASE`).
    PurchaseNotEnabled,
    /// Release refused: trunkline did not buy this number (or released it already).
    NotPurchased,
    /// The number is connected, but not with `outbound: true`.
    OutboundNotEnabled,
    /// The callee was busy (SIP 486/600).
    CallBusy,
    /// Nobody answered in time (SIP 408/480/487).
    CallNoAnswer,
    /// The far end or the carrier refused the call (SIP 403/603 and other final answers).
    CallRejected,
    /// The carrier refused the caller ID (not a number of the account).
    CallerIdNotAllowed,
    /// The carrier does not allow calls to this destination (country or number type).
    DestinationNotPermitted,
}

impl ErrorCode {
    /// The wire form, e.g. `AUTH_INVALID`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthInvalid => "AUTH_INVALID",
            Self::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Self::NumberNotFound => "NUMBER_NOT_FOUND",
            Self::TrunkingNotEnabled => "TRUNKING_NOT_ENABLED",
            Self::InvalidSipTarget => "INVALID_SIP_TARGET",
            Self::RateLimited => "RATE_LIMITED",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            Self::NotConnected => "NOT_CONNECTED",
            Self::NumberInUse => "NUMBER_IN_USE",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::IntegrationNotFound => "INTEGRATION_NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::NotFound => "NOT_FOUND",
            Self::NotConfigured => "NOT_CONFIGURED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::PurchaseNotEnabled => "PURCHASE_NOT_ENABLED",
            Self::NotPurchased => "NOT_PURCHASED",
            Self::OutboundNotEnabled => "OUTBOUND_NOT_ENABLED",
            Self::CallBusy => "CALL_BUSY",
            Self::CallNoAnswer => "CALL_NO_ANSWER",
            Self::CallRejected => "CALL_REJECTED",
            Self::CallerIdNotAllowed => "CALLER_ID_NOT_ALLOWED",
            Self::DestinationNotPermitted => "DESTINATION_NOT_PERMITTED",
        }
    }

    /// Every code, for exhaustive table tests and documentation.
    pub const ALL: [ErrorCode; 26] = [
        Self::AuthInvalid,
        Self::InsufficientPermissions,
        Self::NumberNotFound,
        Self::TrunkingNotEnabled,
        Self::InvalidSipTarget,
        Self::RateLimited,
        Self::ProviderUnavailable,
        Self::NotConnected,
        Self::NumberInUse,
        Self::ValidationFailed,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::IntegrationNotFound,
        Self::Conflict,
        Self::NotFound,
        Self::NotConfigured,
        Self::ServiceUnavailable,
        Self::Internal,
        Self::PurchaseNotEnabled,
        Self::NotPurchased,
        Self::OutboundNotEnabled,
        Self::CallBusy,
        Self::CallNoAnswer,
        Self::CallRejected,
        Self::CallerIdNotAllowed,
        Self::DestinationNotPermitted,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value failed to parse at the edge. `field` is filled in by the caller that knows the
/// field's wire name (the parsers only know what was wrong with the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ValidationError {
    /// Wire name of the offending field, when known (`accountSid`, `sipTarget`, ...).
    pub field: Option<&'static str>,
    /// What is wrong, safe to show to the customer (never echoes secrets).
    pub reason: String,
    /// The code the HTTP edge answers with: `VALIDATION_FAILED` unless the value has a
    /// more specific one (a bad SIP URI is `INVALID_SIP_TARGET`).
    pub code: ErrorCode,
}

impl ValidationError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
            code: ErrorCode::ValidationFailed,
        }
    }

    /// A validation failure with a more specific code than `VALIDATION_FAILED`.
    pub fn with_code(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            field: None,
            reason: reason.into(),
            code,
        }
    }

    /// Attach the wire name of the field this value came from.
    #[must_use]
    pub fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}

/// The error of a use case: a normalized code, a message safe to show, and what support
/// needs (the provider's own code). Internal details go to the logs, never into `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// The provider's own error code (Twilio `20003`, ...), for support.
    pub provider_code: Option<String>,
    /// How long the caller should wait before retrying, when known.
    pub retry_after: Option<std::time::Duration>,
    /// Details for the logs only (store or vault failure text). Never shown to callers.
    pub internal: Option<String>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            provider_code: None,
            retry_after: None,
            internal: None,
        }
    }

    /// An unexpected failure on our side: generic message, details kept for the logs.
    pub fn internal(details: impl Into<String>) -> Self {
        Self {
            internal: Some(details.into()),
            ..Self::new(
                ErrorCode::Internal,
                "internal error; see the logs for this request id",
            )
        }
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        Self::new(e.code, e.to_string())
    }
}
