//! The extractors the handlers take: the request id, the context of a change (who acts,
//! for which customer, under which request id), and JSON bodies whose errors name the
//! offending field. Also how actix's own extractor errors (path, query, body) are worded.

use std::fmt;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, web};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use trunkline_core::CustomerId;
use trunkline_core::model::Actor;

use crate::auth::WriteScope;
use crate::error::{ApiError, WireCode};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Client request ids are stored in the audit trail and logged: short, and plain tokens.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The id of one request: the `x-request-id` the client sent when it is a sane token
/// (so ids correlate across proxies), otherwise a fresh UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub(crate) fn from_headers(headers: &header::HeaderMap) -> Self {
        headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= MAX_REQUEST_ID_LEN
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
            })
            .map_or_else(
                || Self(uuid::Uuid::now_v7().to_string()),
                |v| Self(v.to_owned()),
            )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<RequestId>()
                .cloned()
                .ok_or_else(|| ApiError::internal("request id middleware is not installed")),
        )
    }
}

/// The context of a change: who acts (for the audit trail), the customer acted for, and
/// the request id the change is recorded under. Refused like [`WriteScope`]: the support
/// role changes nothing, and a customer acts only for itself.
#[derive(Debug)]
pub struct RequestContext {
    pub actor: Actor,
    pub customer_id: CustomerId,
    pub request_id: RequestId,
}

impl RequestContext {
    /// The request id as the use cases take it.
    pub fn request_id(&self) -> Option<&str> {
        Some(self.request_id.as_str())
    }
}

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let scope = WriteScope::from_request(req, payload).into_inner();
        let request_id = RequestId::from_request(req, payload).into_inner();
        ready(scope.and_then(|scope| {
            Ok(Self {
                actor: scope.caller.actor(),
                customer_id: scope.customer_id,
                request_id: request_id?,
            })
        }))
    }
}

pub(crate) fn payload_error(e: &PayloadError) -> ApiError {
    match e {
        PayloadError::Overflow => too_large(),
        _ => ApiError::validation("the request body could not be read"),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        WireCode::PayloadTooLarge,
        "the request body is larger than allowed",
    )
}

pub(crate) fn json_error(e: &JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            too_large()
        }
        JsonPayloadError::ContentType => {
            ApiError::validation("the body must be JSON (Content-Type: application/json)")
        }
        JsonPayloadError::Deserialize(e) => ApiError::validation(json_message(".", e)),
        JsonPayloadError::Payload(p) => payload_error(p),
        _ => ApiError::validation("invalid JSON body"),
    }
}

pub(crate) fn path_error(e: &PathError) -> ApiError {
    let PathError::Deserialize(inner) = e else {
        return ApiError::validation("invalid path parameter");
    };
    ApiError::validation(crate::wire_errors::describe("path", "", &inner.to_string()))
}

pub(crate) fn query_error(e: &QueryPayloadError) -> ApiError {
    let QueryPayloadError::Deserialize(inner) = e else {
        return ApiError::validation("invalid query string");
    };
    ApiError::validation(crate::wire_errors::describe(
        "query string",
        "",
        &inner.to_string(),
    ))
}

/// A serde_json failure at `path`: syntax errors give the position, data errors the
/// field and what it must be.
fn json_message(path: &str, e: &serde_json::Error) -> String {
    if e.is_syntax() || e.is_eof() {
        crate::wire_errors::not_json(e.line(), e.column())
    } else {
        crate::wire_errors::describe(crate::wire_errors::BODY, path, &e.to_string())
    }
}

/// A JSON body whose errors name the offending field (`numbers[0].sipTarget: ...`).
/// Honours the configured body limit. Prefer it to `web::Json` for request bodies.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.mime_type().ok().flatten().is_some_and(|m| {
        (m.type_() == "application" && m.subtype() == "json")
            || m.suffix().is_some_and(|s| s == "json")
    })
}

fn not_json() -> ApiError {
    ApiError::validation("the body must be JSON (Content-Type: application/json)")
}

/// Read the whole body (within the configured limit).
async fn read_body(
    body: impl std::future::Future<Output = Result<web::Bytes, actix_web::Error>>,
) -> Result<web::Bytes, ApiError> {
    body.await.map_err(|e| {
        e.as_error::<PayloadError>().map_or_else(
            || ApiError::validation("the request body could not be read"),
            payload_error,
        )
    })
}

/// Decode JSON, naming the offending field and never echoing a value (bodies carry
/// secrets and phone numbers).
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::validation(json_message(&path, e.inner()))
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(not_json());
            }
            let bytes = read_body(body).await?;
            decode_json(&bytes).map(ApiJson)
        })
    }
}

/// Like [`ApiJson`], for bodies whose every field is optional: an empty body (any or no
/// `Content-Type`) is `T::default()`, so `curl -X POST` without `-d` works. A JSON `null`
/// is no body too, as the OpenAPI document of an optional body says.
#[derive(Debug)]
pub struct OptionalApiJson<T>(pub T);

impl<T> OptionalApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalApiJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = read_body(body).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Self(T::default()));
            }
            if !json {
                return Err(not_json());
            }
            decode_json::<Option<T>>(&bytes).map(|b| OptionalApiJson(b.unwrap_or_default()))
        })
    }
}
