//! Twilio failures → trunkline's [`ErrorCode`]s, in one table.
//!
//! | Twilio answer                                       | code                        |
//! |-----------------------------------------------------|-----------------------------|
//! | code 20003, or HTTP 401                             | `AUTH_INVALID`              |
//! | code 70051 (key lacks permission)                   | `INSUFFICIENT_PERMISSIONS`  |
//! | HTTP 403 code 20403 from the Trunking host          | `TRUNKING_NOT_ENABLED`      |
//! | any other HTTP 403                                  | `INSUFFICIENT_PERMISSIONS`  |
//! | code 20404 or HTTP 404 on a phone number            | `NUMBER_NOT_FOUND`          |
//! | code 20404 or HTTP 404 on anything else             | `NOT_FOUND`                 |
//! | code 20429, or HTTP 429                             | `RATE_LIMITED`              |
//! | HTTP 5xx                                            | `PROVIDER_UNAVAILABLE`      |
//! | HTTP 409                                            | `CONFLICT`                  |
//! | HTTP 400 / 422 (other 4xx)                          | `VALIDATION_FAILED`         |
//! | timeout, connection failure, unreadable response    | `PROVIDER_UNAVAILABLE`      |
//!
//! Twilio's own code is kept in [`ProviderError::provider_code`] for support. Messages are
//! ours, never Twilio's free text (which may quote phone numbers) and never credentials.

use std::time::Duration;

use serde::Deserialize;
use trunkline_core::ErrorCode;
use trunkline_core::ports::ProviderError;

use crate::ops::TwilioHost;

/// Twilio's error body: `{code, message, more_info, status}`. Every field is optional
/// because a proxy in front of Twilio may answer with anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct TwilioErrorBody {
    pub code: Option<u32>,
    pub message: Option<String>,
    pub more_info: Option<String>,
    pub status: Option<u16>,
}

impl TwilioErrorBody {
    pub fn parse(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

/// What a failed request was about, for the right not-found code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Account,
    Numbers,
    Number,
    Trunks,
    Trunk,
    OriginationUrl,
    TrunkNumber,
    CredentialList,
}

impl Resource {
    fn noun(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Numbers | Self::Number => "phone number",
            Self::Trunks | Self::Trunk => "trunk",
            Self::OriginationUrl => "origination URL",
            Self::TrunkNumber => "trunk phone number",
            Self::CredentialList => "SIP credential list",
        }
    }
}

/// Twilio's codes the table names.
pub(crate) mod codes {
    pub const AUTHENTICATE: u32 = 20003;
    pub const FORBIDDEN: u32 = 20403;
    pub const NOT_FOUND: u32 = 20404;
    pub const TOO_MANY_REQUESTS: u32 = 20429;
    pub const KEY_LACKS_PERMISSION: u32 = 70051;
}

/// Map an HTTP error answer from Twilio.
pub(crate) fn classify(
    host: TwilioHost,
    resource: Resource,
    status: u16,
    body: &TwilioErrorBody,
    retry_after: Option<Duration>,
) -> ProviderError {
    let code = body.code;
    let (error_code, message) = match (code, status) {
        (Some(codes::AUTHENTICATE), _) | (_, 401) => (
            ErrorCode::AuthInvalid,
            "Twilio rejected the credentials: check the Account SID and the API key SID and \
             secret (or auth token)"
                .to_owned(),
        ),
        (Some(codes::KEY_LACKS_PERMISSION), _) => (
            ErrorCode::InsufficientPermissions,
            format!(
                "the Twilio credentials are valid but not allowed to use this {}; \
                 a Restricted API key needs that permission (or use a Standard key)",
                resource.noun()
            ),
        ),
        (Some(codes::FORBIDDEN), 403) if host == TwilioHost::Trunking => (
            ErrorCode::TrunkingNotEnabled,
            "Elastic SIP Trunking is not available on this Twilio account".to_owned(),
        ),
        (_, 403) => (
            ErrorCode::InsufficientPermissions,
            format!(
                "the Twilio credentials are not allowed to use this {}",
                resource.noun()
            ),
        ),
        (Some(codes::NOT_FOUND), _) | (_, 404) => match resource {
            Resource::Numbers | Resource::Number => (
                ErrorCode::NumberNotFound,
                "the phone number does not exist in this Twilio account".to_owned(),
            ),
            other => (
                ErrorCode::NotFound,
                format!("the Twilio {} does not exist", other.noun()),
            ),
        },
        (Some(codes::TOO_MANY_REQUESTS), _) | (_, 429) => (
            ErrorCode::RateLimited,
            "Twilio is limiting the rate of requests; try again shortly".to_owned(),
        ),
        (_, 500..=599) => (
            ErrorCode::ProviderUnavailable,
            format!("Twilio failed to answer (HTTP {status}); try again later"),
        ),
        (_, 409) => (
            ErrorCode::Conflict,
            format!(
                "Twilio refused the change because of the {}'s current state",
                resource.noun()
            ),
        ),
        (_, _) => (
            ErrorCode::ValidationFailed,
            format!("Twilio rejected the request (HTTP {status})"),
        ),
    };
    let mut error = ProviderError::new(error_code, message);
    if let Some(code) = code {
        error = error.with_provider_code(code.to_string());
    }
    if let Some(after) = retry_after.filter(|_| error_code == ErrorCode::RateLimited) {
        error = error.with_retry_after(after);
    }
    error
}

/// A request that got no usable HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportFailure {
    Timeout,
    Connect,
    Other,
    /// A 2xx answer whose body is not what the spec promises.
    BadResponse,
}

pub(crate) fn transport(failure: TransportFailure) -> ProviderError {
    ProviderError::unavailable(match failure {
        TransportFailure::Timeout => "Twilio did not answer in time; try again later",
        TransportFailure::Connect => "could not connect to Twilio; try again later",
        TransportFailure::Other => "the request to Twilio failed in transit; try again later",
        TransportFailure::BadResponse => "Twilio answered with a response trunkline cannot read",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: Option<u32>, status: u16) -> TwilioErrorBody {
        TwilioErrorBody {
            code,
            message: Some("Twilio's own words, +14155550100".to_owned()),
            more_info: code.map(|c| format!("https://www.twilio.com/docs/errors/{c}")),
            status: Some(status),
        }
    }

    /// Every row of the table in the module docs, plus the edges between rows.
    #[test]
    fn every_row_of_the_table() {
        use ErrorCode::*;
        use Resource::*;
        use TwilioHost::{Api, Trunking};
        let rows: &[(TwilioHost, Resource, u16, Option<u32>, ErrorCode)] = &[
            (Api, Numbers, 401, Some(20003), AuthInvalid),
            (Trunking, Trunks, 401, Some(20003), AuthInvalid),
            (Api, Account, 401, None, AuthInvalid),
            (Api, Number, 403, Some(20003), AuthInvalid),
            (Trunking, Trunks, 403, Some(70051), InsufficientPermissions),
            (Api, Numbers, 403, Some(70051), InsufficientPermissions),
            (Api, Numbers, 401, Some(70051), AuthInvalid),
            (Trunking, Trunks, 403, Some(20403), TrunkingNotEnabled),
            (Trunking, Trunk, 403, Some(20403), TrunkingNotEnabled),
            (Api, Numbers, 403, Some(20403), InsufficientPermissions),
            (Trunking, Trunks, 403, None, InsufficientPermissions),
            (Api, Number, 404, Some(20404), NumberNotFound),
            (Api, Numbers, 404, None, NumberNotFound),
            (Trunking, Trunk, 404, Some(20404), NotFound),
            (Trunking, OriginationUrl, 404, Some(20404), NotFound),
            (Trunking, TrunkNumber, 404, Some(20404), NotFound),
            (Api, Account, 404, Some(20404), NotFound),
            (Api, Numbers, 429, Some(20429), RateLimited),
            (Trunking, Trunks, 429, None, RateLimited),
            (Api, Number, 400, Some(20429), RateLimited),
            (Api, Number, 500, Some(20500), ProviderUnavailable),
            (Trunking, Trunk, 502, None, ProviderUnavailable),
            (Trunking, Trunk, 503, Some(20503), ProviderUnavailable),
            (Api, Number, 504, None, ProviderUnavailable),
            (Trunking, TrunkNumber, 409, Some(20409), Conflict),
            (Api, Number, 400, Some(21421), ValidationFailed),
            (Trunking, OriginationUrl, 400, Some(70002), ValidationFailed),
            (Api, Number, 422, None, ValidationFailed),
        ];
        for (host, resource, status, code, expected) in rows {
            let e = classify(*host, *resource, *status, &body(*code, *status), None);
            assert_eq!(
                e.code, *expected,
                "{host:?} {resource:?} {status} {code:?} gave {e:?}"
            );
            assert_eq!(e.provider_code, code.map(|c| c.to_string()));
            assert!(!e.message.contains("+1415"), "echoed Twilio's text: {e:?}");
        }
    }

    #[test]
    fn retry_after_is_kept_only_for_rate_limits() {
        let after = Some(Duration::from_secs(2));
        let limited = classify(
            TwilioHost::Api,
            Resource::Numbers,
            429,
            &body(Some(20429), 429),
            after,
        );
        assert_eq!(limited.retry_after, after);
        let unavailable = classify(
            TwilioHost::Api,
            Resource::Numbers,
            503,
            &body(None, 503),
            after,
        );
        assert_eq!(unavailable.retry_after, None);
    }

    #[test]
    fn transport_failures_are_unavailable() {
        for f in [
            TransportFailure::Timeout,
            TransportFailure::Connect,
            TransportFailure::Other,
            TransportFailure::BadResponse,
        ] {
            let e = transport(f);
            assert_eq!(e.code, ErrorCode::ProviderUnavailable, "{f:?}");
            assert!(e.is_transient());
        }
    }

    #[test]
    fn error_bodies_parse_leniently() {
        let b = TwilioErrorBody::parse(
            br#"{"code": 20404, "message": "not found", "more_info": "x", "status": 404}"#,
        );
        assert_eq!(b.code, Some(20404));
        assert_eq!(
            TwilioErrorBody::parse(b"<html>bad gateway</html>"),
            TwilioErrorBody::default()
        );
        assert_eq!(
            TwilioErrorBody::parse(br#"{"code": "oops"}"#),
            TwilioErrorBody::default()
        );
    }
}
