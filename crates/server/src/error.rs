//! The one error type of the HTTP edge and the one table from error code to HTTP status.
//!
//! Handlers and extractors return [`ApiError`]; its response carries the code and message
//! in an extension, and the request middleware (`http::request_context`) renders the
//! envelope `{"errorCode","message","requestId"}` once it knows the request id. Errors
//! actix raises by itself (unknown route, wrong method, body too large) are rendered by the
//! same middleware, so every error the service answers has the same shape.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use trunkline_core::ErrorCode;
use trunkline_core::ValidationError;
use trunkline_core::ports::{ProviderError, StoreError, VaultError};
use utoipa::ToSchema;

/// The `errorCode` of an error response: every code of the core, and the codes only the
/// HTTP edge produces (the core never sees a request body's size or an HTTP method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireCode {
    /// A code of the use cases, the adapters and the parsers.
    Core(ErrorCode),
    /// The request body is larger than allowed.
    PayloadTooLarge,
    /// The route exists but not with this HTTP method.
    MethodNotAllowed,
}

impl WireCode {
    /// The codes only the HTTP edge produces.
    pub const EDGE: [WireCode; 2] = [Self::PayloadTooLarge, Self::MethodNotAllowed];

    /// The wire form, e.g. `AUTH_INVALID`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Core(code) => code.as_str(),
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        }
    }

    /// Every code an error response may carry.
    pub fn all() -> impl Iterator<Item = WireCode> {
        ErrorCode::ALL.into_iter().map(Self::Core).chain(Self::EDGE)
    }
}

impl From<ErrorCode> for WireCode {
    fn from(code: ErrorCode) -> Self {
        Self::Core(code)
    }
}

impl PartialEq<ErrorCode> for WireCode {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == Self::Core(*other)
    }
}

impl fmt::Display for WireCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP status of each error code. The only place statuses are chosen for errors.
pub fn status_for(code: WireCode) -> StatusCode {
    let code = match code {
        WireCode::PayloadTooLarge => return StatusCode::PAYLOAD_TOO_LARGE,
        WireCode::MethodNotAllowed => return StatusCode::METHOD_NOT_ALLOWED,
        WireCode::Core(code) => code,
    };
    match code {
        ErrorCode::ValidationFailed | ErrorCode::InvalidSipTarget => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::PurchaseNotEnabled => StatusCode::FORBIDDEN,
        ErrorCode::NumberNotFound
        | ErrorCode::IntegrationNotFound
        | ErrorCode::NotFound
        | ErrorCode::NotConnected => StatusCode::NOT_FOUND,
        ErrorCode::NumberInUse
        | ErrorCode::Conflict
        | ErrorCode::TrunkingNotEnabled
        | ErrorCode::NotPurchased
        | ErrorCode::OutboundNotEnabled => StatusCode::CONFLICT,
        // The request is well-formed but the carrier refused the customer's credentials or
        // key; 401/403 would read as our own session failing and log the user out.
        ErrorCode::AuthInvalid | ErrorCode::InsufficientPermissions => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        // The call was placed and the far end or the carrier answered it with a failure.
        ErrorCode::CallBusy
        | ErrorCode::CallNoAnswer
        | ErrorCode::CallRejected
        | ErrorCode::CallerIdNotAllowed
        | ErrorCode::DestinationNotPermitted => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::ProviderUnavailable
        | ErrorCode::NotConfigured
        | ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The code an error response that did not come from an [`ApiError`] is reported under.
pub fn code_for_status(status: StatusCode) -> WireCode {
    let code = match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => return WireCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => return WireCode::PayloadTooLarge,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::ValidationFailed,
    };
    WireCode::Core(code)
}

/// A message for an error actix produced, where we have nothing more specific.
pub fn default_message(code: WireCode) -> &'static str {
    match code {
        WireCode::MethodNotAllowed => "this route does not accept this HTTP method",
        WireCode::PayloadTooLarge => "the request body is larger than allowed",
        WireCode::Core(ErrorCode::NotFound) => "no route matches this path",
        WireCode::Core(ErrorCode::Unauthenticated) => "a valid bearer token is required",
        WireCode::Core(ErrorCode::Forbidden) => "not allowed",
        WireCode::Core(ErrorCode::ServiceUnavailable) => {
            "the service cannot serve this request right now"
        }
        WireCode::Core(ErrorCode::Internal) => INTERNAL_MESSAGE,
        WireCode::Core(_) => "the request is invalid",
    }
}

const INTERNAL_MESSAGE: &str = "internal error; the logs have details under this request id";

/// The error envelope every error response carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    /// One of the normalized error codes, e.g. `VALIDATION_FAILED`.
    #[schema(example = "UNAUTHENTICATED")]
    pub error_code: String,
    /// What went wrong, safe to show to the customer.
    pub message: String,
    /// Also the `x-request-id` response header; the logs carry it too.
    pub request_id: String,
}

/// What an error response carries until the middleware renders the envelope.
#[derive(Debug, Clone)]
pub(crate) struct PendingError {
    pub code: WireCode,
    pub message: String,
    /// Logged (never answered) by the middleware, inside the request's span.
    pub cause: Option<String>,
}

/// An error answered to a client.
pub struct ApiError {
    code: WireCode,
    message: Cow<'static, str>,
    cause: Option<String>,
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: impl Into<WireCode>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// An unexpected failure: the client gets a generic message; `cause` goes to the logs.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, INTERNAL_MESSAGE).with_cause(cause)
    }

    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// Attach details for the logs. They are never part of the response.
    #[must_use]
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// Answer with a `Retry-After` header.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn code(&self) -> WireCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn to_pending(&self) -> PendingError {
        PendingError {
            code: self.code,
            message: self.message.to_string(),
            cause: self.cause.clone(),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("cause", &self.cause)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_for(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if let Some(after) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, after.as_secs().max(1)));
        }
        if self.code == ErrorCode::Unauthenticated {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let mut res = res.finish();
        res.extensions_mut().insert(self.to_pending());
        res
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(e.code, e.to_string())
    }
}

impl From<trunkline_core::error::Error> for ApiError {
    /// A use case's error: its code and message as they are, its internal details to the
    /// logs only.
    fn from(e: trunkline_core::error::Error) -> Self {
        let mut err = Self::new(e.code, e.message);
        err.retry_after = e.retry_after;
        // The provider's own code (Twilio 20003, 70051, …) is what support looks up; it
        // goes to the request's log line with any internal details.
        err.cause = match (e.internal, e.provider_code) {
            (Some(internal), Some(code)) => Some(format!("{internal} (provider code {code})")),
            (Some(internal), None) => Some(internal),
            (None, Some(code)) => Some(format!("provider code {code}")),
            (None, None) => None,
        };
        err
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        let retry_after = e.retry_after;
        let mut err = Self::new(e.code, e.message);
        err.retry_after = retry_after;
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => {
                Self::new(ErrorCode::Conflict, "a concurrent change conflicted; retry")
                    .with_cause(e)
            }
            StoreError::Unavailable(_) | StoreError::NotMigrated(_) => Self::new(
                ErrorCode::ServiceUnavailable,
                "the database is unavailable; retry shortly",
            )
            .with_cause(e),
            StoreError::Corrupt(_) | StoreError::Other(_) => Self::internal(e),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        Self::internal(format_args!("vault: {e}"))
    }
}

/// Remove values a parser may have quoted into its message (`invalid type: string "…"`),
/// keeping the names of fields and variants, which the client needs and which are not
/// personal data.
pub fn redact_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[start];
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let Some(len) = after[1..].find(char::from(quote)) else {
            // An unterminated quote: drop the tail rather than echo it.
            out.push('…');
            return out;
        };
        let quoted = &after[..len + 2];
        let keeps_name = quote == b'`'
            && ["field ", "variant ", "one of ", ", ", "parameter "]
                .iter()
                .any(|w| out.ends_with(w));
        if keeps_name {
            out.push_str(quoted);
        } else {
            out.push(char::from(quote));
            out.push('…');
            out.push(char::from(quote));
        }
        rest = &after[len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_an_error_status() {
        for code in WireCode::all() {
            let status = status_for(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code} -> {status}"
            );
        }
    }

    #[test]
    fn statuses_actix_produces_keep_their_status_in_the_envelope() {
        for status in [400, 401, 403, 404, 405, 409, 413, 429, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(status_for(code_for_status(status)), status, "{status}");
        }
        // Statuses without a code of their own become the nearest one.
        let s = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        assert_eq!(code_for_status(s), ErrorCode::ValidationFailed);
        assert_eq!(
            code_for_status(StatusCode::BAD_GATEWAY),
            ErrorCode::Internal
        );
        assert_eq!(
            code_for_status(StatusCode::UNPROCESSABLE_ENTITY),
            ErrorCode::ValidationFailed
        );
    }

    #[test]
    fn table_rows_that_clients_rely_on() {
        let rows = [
            (WireCode::Core(ErrorCode::ValidationFailed), 400),
            (WireCode::Core(ErrorCode::InvalidSipTarget), 400),
            (WireCode::Core(ErrorCode::Unauthenticated), 401),
            (WireCode::Core(ErrorCode::Forbidden), 403),
            (WireCode::Core(ErrorCode::NotFound), 404),
            (WireCode::Core(ErrorCode::NumberNotFound), 404),
            (WireCode::Core(ErrorCode::IntegrationNotFound), 404),
            (WireCode::MethodNotAllowed, 405),
            (WireCode::Core(ErrorCode::Conflict), 409),
            (WireCode::Core(ErrorCode::NumberInUse), 409),
            (WireCode::Core(ErrorCode::NotConnected), 404),
            (WireCode::PayloadTooLarge, 413),
            (WireCode::Core(ErrorCode::AuthInvalid), 422),
            (WireCode::Core(ErrorCode::InsufficientPermissions), 422),
            (WireCode::Core(ErrorCode::TrunkingNotEnabled), 409),
            (WireCode::Core(ErrorCode::RateLimited), 429),
            (WireCode::Core(ErrorCode::Internal), 500),
            (WireCode::Core(ErrorCode::ProviderUnavailable), 503),
            (WireCode::Core(ErrorCode::NotConfigured), 503),
            (WireCode::Core(ErrorCode::ServiceUnavailable), 503),
            (WireCode::Core(ErrorCode::PurchaseNotEnabled), 403),
            (WireCode::Core(ErrorCode::NotPurchased), 409),
            (WireCode::Core(ErrorCode::OutboundNotEnabled), 409),
            (WireCode::Core(ErrorCode::CallBusy), 422),
            (WireCode::Core(ErrorCode::CallNoAnswer), 422),
            (WireCode::Core(ErrorCode::CallRejected), 422),
            (WireCode::Core(ErrorCode::CallerIdNotAllowed), 422),
            (WireCode::Core(ErrorCode::DestinationNotPermitted), 422),
        ];
        assert_eq!(
            rows.len(),
            WireCode::all().count(),
            "a code is missing a row"
        );
        for (code, status) in rows {
            assert_eq!(status_for(code).as_u16(), status, "{code}");
        }
    }

    /// `docs/troubleshooting.md` lists every code once, with the status this table gives it.
    #[test]
    fn troubleshooting_doc_matches_the_table() {
        let doc = include_str!("../../../docs/troubleshooting.md");
        let rows: Vec<(&str, &str)> = doc
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.next()?;
                code.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
                    .then_some((code, status))
            })
            .collect();
        for code in WireCode::all() {
            let found: Vec<&&str> = rows
                .iter()
                .filter(|(c, _)| *c == code.as_str())
                .map(|(_, s)| s)
                .collect();
            assert_eq!(found.len(), 1, "{code} must have exactly one row");
            assert_eq!(
                *found[0],
                status_for(code).as_u16().to_string(),
                "{code}'s HTTP column"
            );
        }
        assert_eq!(
            rows.len(),
            WireCode::all().count(),
            "a row for an unknown code"
        );
    }

    #[test]
    fn envelope_is_camel_case_with_exactly_three_fields() {
        let v = serde_json::to_value(ErrorEnvelope {
            error_code: "NOT_FOUND".into(),
            message: "m".into(),
            request_id: "r".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errorCode": "NOT_FOUND", "message": "m", "requestId": "r"})
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal("db password is hunter2");
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(!e.message().contains("hunter2"));
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let pending = res.extensions().get::<PendingError>().cloned().unwrap();
        assert_eq!(pending.cause.as_deref(), Some("db password is hunter2"));
        assert!(!pending.message.contains("hunter2"));
    }

    #[test]
    fn conversions_keep_the_code() {
        let e = ApiError::from(trunkline_core::SipTarget::parse("http://x").unwrap_err());
        assert_eq!(e.code(), ErrorCode::InvalidSipTarget);
        let e = ApiError::from(
            ProviderError::new(ErrorCode::RateLimited, "slow down")
                .with_retry_after(Duration::from_secs(7)),
        );
        let res = e.error_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "7");
        let e = ApiError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(e.code(), ErrorCode::ServiceUnavailable);
        assert!(!e.message().contains("refused"));
        let e = ApiError::from(StoreError::Corrupt("row 7".into()));
        assert_eq!(e.code(), ErrorCode::Internal);
        let e = ApiError::from(VaultError::Decrypt);
        assert_eq!(e.code(), ErrorCode::Internal);
        let e = ApiError::from(trunkline_core::error::Error::internal("row 9 is corrupt"));
        assert_eq!(e.code(), ErrorCode::Internal);
        assert!(!e.message().contains("row 9"));
        assert_eq!(e.to_pending().cause.as_deref(), Some("row 9 is corrupt"));
        let e = ApiError::from(trunkline_core::error::Error::new(
            ErrorCode::NumberInUse,
            "the number is on another trunk",
        ));
        assert_eq!(e.error_response().status(), StatusCode::CONFLICT);
        let mut carrier = trunkline_core::error::Error::new(ErrorCode::AuthInvalid, "rejected");
        carrier.provider_code = Some("20003".into());
        let e = ApiError::from(carrier);
        assert_eq!(e.message(), "rejected");
        assert_eq!(e.to_pending().cause.as_deref(), Some("provider code 20003"));
    }

    #[test]
    fn redaction_keeps_names_and_drops_values() {
        assert_eq!(
            redact_values("invalid type: string \"+14155550100\", expected u32"),
            "invalid type: string \"…\", expected u32"
        );
        assert_eq!(
            redact_values("invalid type: integer `14155550100`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            redact_values("missing field `accountSid` at line 1 column 2"),
            "missing field `accountSid` at line 1 column 2"
        );
        assert_eq!(
            redact_values("unknown field `x`, expected one of `a`, `b`"),
            "unknown field `x`, expected one of `a`, `b`"
        );
        assert_eq!(redact_values("oops \"unterminated secret"), "oops …");
    }
}
