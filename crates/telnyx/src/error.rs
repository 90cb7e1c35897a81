//! Telnyx failures → trunkline's [`ErrorCode`]s, in one table.
//!
//! | Telnyx answer                                         | code                        |
//! |-------------------------------------------------------|-----------------------------|
//! | code 10009, or HTTP 401                               | `AUTH_INVALID`              |
//! | code 10010, or HTTP 403                               | `INSUFFICIENT_PERMISSIONS`  |
//! | code 10005 or HTTP 404 on a phone number              | `NUMBER_NOT_FOUND`          |
//! | code 10005 or HTTP 404 on anything else               | `NOT_FOUND`                 |
//! | code 10011, or HTTP 429 (after the retries)           | `RATE_LIMITED`              |
//! | HTTP 5xx (after the retries)                          | `PROVIDER_UNAVAILABLE`      |
//! | code 10015 / 10016, HTTP 400 / 422, any other 4xx     | `VALIDATION_FAILED`, naming the field from `source.pointer` (or `source.parameter`) |
//! | timeout, connection failure, unreadable response      | `PROVIDER_UNAVAILABLE`      |
//!
//! The first error's Telnyx code is kept in [`ProviderError::provider_code`] for support.
//! Messages are ours, never Telnyx's free text (which may quote phone numbers), never the
//! key. The field name is Telnyx's, cleaned to a JSON-pointer-ish character set.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use trunkline_core::ErrorCode;
use trunkline_core::ports::ProviderError;

/// One entry of Telnyx's `errors` array. Every field is optional because a proxy in front
/// of Telnyx may answer with anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct TelnyxError {
    /// A string in Telnyx's answers; a number is accepted too.
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub source: Option<Source>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Source {
    #[serde(default)]
    pub pointer: Option<String>,
    #[serde(default)]
    pub parameter: Option<String>,
}

/// `{"errors": [...]}`; only the first error is used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<TelnyxError>,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// The first error's code, as text.
    pub fn code(&self) -> Option<String> {
        match self.errors.first()?.code.as_ref()? {
            Value::String(s) if !s.is_empty() && s.len() <= 16 => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The field the first error names: `/inbound/dnis_number_format` →
    /// `inbound.dnis_number_format`; a query parameter as is. `None` for `/` or nothing.
    pub fn field(&self) -> Option<String> {
        let source = self.errors.first()?.source.as_ref()?;
        let raw = source
            .pointer
            .as_deref()
            .map(|p| p.trim_start_matches('/').replace('/', "."))
            .filter(|p| !p.is_empty())
            .or_else(|| source.parameter.clone())?;
        let clean: String = raw
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '-'))
            .take(64)
            .collect();
        (!clean.is_empty()).then_some(clean)
    }
}

/// What a failed request was about, for the right not-found code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Balance,
    Number,
    Connection,
    Fqdn,
    VoiceProfile,
}

impl Resource {
    fn noun(self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::Number => "phone number",
            Self::Connection => "FQDN connection",
            Self::Fqdn => "FQDN",
            Self::VoiceProfile => "outbound voice profile",
        }
    }
}

/// Telnyx's codes the table names.
pub(crate) mod codes {
    pub const NOT_FOUND: &str = "10005";
    pub const AUTHENTICATION_FAILED: &str = "10009";
    pub const NOT_AUTHORIZED: &str = "10010";
    pub const TOO_MANY_REQUESTS: &str = "10011";
}

/// Map an HTTP error answer from Telnyx.
pub(crate) fn classify(
    resource: Resource,
    status: u16,
    body: &ErrorBody,
    retry_after: Option<Duration>,
) -> ProviderError {
    let code = body.code();
    let (error_code, message) = match (code.as_deref(), status) {
        (Some(codes::AUTHENTICATION_FAILED), _) | (_, 401) => (
            ErrorCode::AuthInvalid,
            "Telnyx rejected the API key: check that it is a current API v2 key".to_owned(),
        ),
        (Some(codes::NOT_AUTHORIZED), _) | (_, 403) => (
            ErrorCode::InsufficientPermissions,
            format!(
                "the Telnyx API key is valid but not allowed to use this {}",
                resource.noun()
            ),
        ),
        (Some(codes::NOT_FOUND), _) | (_, 404) => match resource {
            Resource::Number => (
                ErrorCode::NumberNotFound,
                "the phone number does not exist in this Telnyx account".to_owned(),
            ),
            other => (
                ErrorCode::NotFound,
                format!("the Telnyx {} does not exist", other.noun()),
            ),
        },
        (Some(codes::TOO_MANY_REQUESTS), _) | (_, 429) => (
            ErrorCode::RateLimited,
            "Telnyx is limiting the rate of requests; try again shortly".to_owned(),
        ),
        (_, 500..=599) => (
            ErrorCode::ProviderUnavailable,
            format!("Telnyx failed to answer (HTTP {status}); try again later"),
        ),
        (_, _) => (
            ErrorCode::ValidationFailed,
            match body.field() {
                Some(field) => format!(
                    "Telnyx rejected the {} request: {field} is invalid",
                    resource.noun()
                ),
                None => format!(
                    "Telnyx rejected the {} request (HTTP {status})",
                    resource.noun()
                ),
            },
        ),
    };
    let mut error = ProviderError::new(error_code, message);
    if let Some(code) = code {
        error = error.with_provider_code(code);
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
        TransportFailure::Timeout => "Telnyx did not answer in time; try again later",
        TransportFailure::Connect => "could not connect to Telnyx; try again later",
        TransportFailure::Other => "the request to Telnyx failed in transit; try again later",
        TransportFailure::BadResponse => "Telnyx answered with a response trunkline cannot read",
    })
}

/// A value the caller gave that cannot be sent to Telnyx.
pub(crate) fn invalid(field: &str, why: &str) -> ProviderError {
    ProviderError::new(ErrorCode::ValidationFailed, format!("{field}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(code: Option<&str>, pointer: Option<&str>, parameter: Option<&str>) -> ErrorBody {
        ErrorBody::parse(
            json!({"errors": [{
                "code": code, "title": "t", "detail": "Telnyx's words, +13125550100",
                "source": {"pointer": pointer, "parameter": parameter},
            }]})
            .to_string()
            .as_bytes(),
        )
    }

    /// Every row of the table in the module docs, plus the edges between rows.
    #[test]
    fn every_row_of_the_table() {
        use ErrorCode::*;
        use Resource::*;
        let rows: &[(Resource, u16, Option<&str>, ErrorCode)] = &[
            (Balance, 401, Some("10009"), AuthInvalid),
            (Number, 401, None, AuthInvalid),
            (Connection, 403, Some("10009"), AuthInvalid),
            (Number, 403, Some("10010"), InsufficientPermissions),
            (Connection, 403, None, InsufficientPermissions),
            (Fqdn, 400, Some("10010"), InsufficientPermissions),
            (Number, 404, Some("10005"), NumberNotFound),
            (Number, 404, None, NumberNotFound),
            (Connection, 404, Some("10005"), NotFound),
            (Fqdn, 404, None, NotFound),
            (Number, 429, Some("10011"), RateLimited),
            (Connection, 429, None, RateLimited),
            (Fqdn, 400, Some("10011"), RateLimited),
            (Number, 500, Some("10007"), ProviderUnavailable),
            (Connection, 502, None, ProviderUnavailable),
            (Fqdn, 503, None, ProviderUnavailable),
            (Connection, 422, Some("10015"), ValidationFailed),
            (Number, 400, Some("10016"), ValidationFailed),
            (Fqdn, 409, None, ValidationFailed),
        ];
        for (resource, status, code, expected) in rows {
            let e = classify(*resource, *status, &body(*code, None, None), None);
            assert_eq!(
                e.code, *expected,
                "{resource:?} {status} {code:?} gave {e:?}"
            );
            assert_eq!(e.provider_code.as_deref(), *code);
            assert!(!e.message.contains("+1312"), "echoed Telnyx's text: {e:?}");
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let e = classify(
            Resource::Connection,
            422,
            &body(Some("10015"), Some("/inbound/dnis_number_format"), None),
            None,
        );
        assert!(e.message.contains("inbound.dnis_number_format"), "{e:?}");
        let e = classify(
            Resource::Number,
            400,
            &body(Some("10015"), None, Some("page[size]")),
            None,
        );
        assert!(e.message.contains("page[size]"), "{e:?}");
        let e = classify(
            Resource::Number,
            400,
            &body(Some("10015"), Some("/"), None),
            None,
        );
        assert!(e.message.contains("HTTP 400"), "{e:?}");
        let e = classify(
            Resource::Fqdn,
            422,
            &body(Some("10015"), Some("/fqdn\n<script>"), None),
            None,
        );
        assert!(e.message.contains("fqdnscript"), "cleaned: {e:?}");
    }

    #[test]
    fn retry_after_is_kept_only_for_rate_limits() {
        let after = Some(Duration::from_secs(2));
        let limited = classify(
            Resource::Number,
            429,
            &body(Some("10011"), None, None),
            after,
        );
        assert_eq!(limited.retry_after, after);
        let unavailable = classify(Resource::Number, 503, &ErrorBody::default(), after);
        assert_eq!(unavailable.retry_after, None);
    }

    #[test]
    fn error_bodies_parse_leniently() {
        assert_eq!(
            ErrorBody::parse(b"<html>bad gateway</html>"),
            ErrorBody::default()
        );
        assert_eq!(
            ErrorBody::parse(br#"{"errors": [{"code": 10005}]}"#)
                .code()
                .as_deref(),
            Some("10005")
        );
        assert_eq!(ErrorBody::parse(br#"{"errors": []}"#).code(), None);
        for f in [
            TransportFailure::Timeout,
            TransportFailure::Connect,
            TransportFailure::Other,
            TransportFailure::BadResponse,
        ] {
            assert_eq!(transport(f).code, ErrorCode::ProviderUnavailable);
        }
    }
}
