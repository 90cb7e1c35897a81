//! The HTTP surface: the app factory, the request middleware (request id, error envelope,
//! access log, metrics), the operational routes and `/telephony/me`.

use std::fmt;
use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, FromRequest, HttpMessage as _, HttpRequest, HttpResponse, web};
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use trunkline_core::ErrorCode;
use trunkline_core::ports::StoreError;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::error::{
    ApiError, ErrorEnvelope, PendingError, code_for_status, default_message, status_for,
};
use crate::state::AppState;
use crate::telemetry::{HTTP_REQUEST_DURATION, HTTP_REQUESTS_TOTAL};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The route label of requests no route matched: raw paths would explode the label set.
const UNMATCHED: &str = "unmatched";
/// Client request ids are stored in the audit trail and logged: short, and plain tokens.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The `method` label: the methods some route answers, everything else `other`, so a
/// client inventing methods cannot grow the label set.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The id of one request: the `x-request-id` the client sent when it is a sane token
/// (so ids correlate across proxies), otherwise a fresh UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    fn from_headers(headers: &header::HeaderMap) -> Self {
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

/// Build the application. Routes of later features are added by their own `configure`
/// functions; tests may add routes to the returned `App` too, and they get the same
/// middleware and error handling.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.config.max_body_bytes;
    let auth = web::Data::from(state.auth.clone());
    App::new()
        .app_data(web::Data::new(state))
        .app_data(auth)
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(|e, _| json_error(&e).into()),
        )
        .app_data(web::PayloadConfig::new(limit))
        .app_data(web::PathConfig::default().error_handler(|e, _| path_error(&e).into()))
        .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(&e).into()))
        .wrap(from_fn(request_context))
        // HEAD too: load balancers probe with it.
        .service(
            web::resource("/healthz")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(readyz))
                .route(web::head().to(readyz)),
        )
        .service(web::resource("/metrics").route(web::get().to(metrics)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi_json)))
        .service(web::resource("/telephony/me").route(web::get().to(me)))
        .configure(crate::routes::configure)
        .default_service(web::to(no_route))
}

/// Request id, span, error envelope, access log and metrics for every request.
async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(request_id.clone());
    let method = method_label(req.method());
    // The matched pattern, never the raw path: paths carry ids and room names.
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        // Recorded once the bearer token is verified (`auth::authenticate`); a support
        // read of another customer records that customer too.
        customer_id = tracing::field::Empty,
        for_customer_id = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        // Handlers' and extractors' errors arrive as responses. An `Err` (from a service
        // that does not convert its errors) has no request to attach a response to, so it
        // goes on as an error that renders the complete envelope itself.
        let (outcome, status) = match next.call(req).await {
            Ok(res) => {
                let mut res = if res.status().is_client_error() || res.status().is_server_error() {
                    render_error(res.map_into_boxed_body(), &request_id)
                } else {
                    res.map_into_boxed_body()
                };
                if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
                    res.headers_mut().insert(X_REQUEST_ID, v);
                }
                let status = res.status();
                (Ok(res), status)
            }
            Err(err) => {
                let res = HttpResponse::from_error(err);
                let rendered = RenderedError::new(&res, &request_id);
                let status = status_for(rendered.code);
                (Err(rendered.into()), status)
            }
        };
        let status = status.as_u16();
        let elapsed = started.elapsed();
        let labels = [
            ("method", method.to_owned()),
            ("route", route.clone()),
            ("status", status.to_string()),
        ];
        metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
        metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        // Probes, scrapes and LiveKit's webhooks come in volume: their successes are counted
        // (metrics above) and logged at debug. The webhook handler logs what it acted on.
        let routine = matches!(
            route.as_str(),
            "/healthz" | "/readyz" | "/metrics" | crate::routes::webhook::PATH
        );
        if routine && status < 400 {
            tracing::debug!(status, latency_ms, "request completed");
        } else {
            tracing::info!(status, latency_ms, "request completed");
        }
        outcome
    }
    .instrument(span)
    .await
}

/// Replace whatever body an error response has with the envelope.
fn render_error(res: ServiceResponse<BoxBody>, request_id: &RequestId) -> ServiceResponse<BoxBody> {
    let (req, original) = res.into_parts();
    let rendered = RenderedError::new(&original, request_id);
    ServiceResponse::new(req, rendered.response())
}

/// An error response, complete with envelope, request id and the original's headers.
#[derive(Debug)]
struct RenderedError {
    code: ErrorCode,
    message: String,
    request_id: RequestId,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl RenderedError {
    /// Also logs the cause, inside the request's span.
    fn new(original: &HttpResponse, request_id: &RequestId) -> Self {
        let pending = original.extensions().get::<PendingError>().cloned();
        let pending = pending.unwrap_or_else(|| classify(original));
        match (&pending.cause, pending.code) {
            (Some(cause), ErrorCode::Internal) => tracing::error!(cause = %cause, "internal error"),
            (Some(cause), _) => {
                tracing::warn!(cause = %cause, code = %pending.code, "request failed");
            }
            // Refusals are routine (scanners, expired tokens); the reason helps debugging.
            (None, _) => tracing::debug!(
                code = %pending.code,
                message = %pending.message,
                "request refused"
            ),
        }
        Self {
            code: pending.code,
            message: pending.message,
            request_id: request_id.clone(),
            headers: original
                .headers()
                .iter()
                .filter(|(n, _)| **n != header::CONTENT_TYPE && **n != header::CONTENT_LENGTH)
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        }
    }

    fn response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(status_for(self.code));
        for (name, value) in &self.headers {
            builder.append_header((name.clone(), value.clone()));
        }
        if let Ok(v) = HeaderValue::from_str(self.request_id.as_str()) {
            builder.insert_header((X_REQUEST_ID, v));
        }
        builder.json(ErrorEnvelope {
            error_code: self.code.as_str().to_owned(),
            message: self.message.clone(),
            request_id: self.request_id.to_string(),
        })
    }
}

impl fmt::Display for RenderedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl actix_web::ResponseError for RenderedError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        status_for(self.code)
    }

    fn error_response(&self) -> HttpResponse {
        self.response()
    }
}

/// An error response actix produced on its own (no route, wrong method, an extractor's
/// error without a handler).
fn classify(res: &HttpResponse) -> PendingError {
    if let Some(err) = res.error() {
        if let Some(e) = err.as_error::<PayloadError>() {
            return payload_error(e).to_pending();
        }
        if let Some(e) = err.as_error::<JsonPayloadError>() {
            return json_error(e).to_pending();
        }
        if let Some(e) = err.as_error::<PathError>() {
            return path_error(e).to_pending();
        }
        if let Some(e) = err.as_error::<QueryPayloadError>() {
            return query_error(e).to_pending();
        }
    }
    let code = code_for_status(res.status());
    PendingError {
        code,
        message: default_message(code).to_owned(),
        cause: res
            .error()
            .filter(|_| code == ErrorCode::Internal)
            .map(ToString::to_string),
    }
}

fn payload_error(e: &PayloadError) -> ApiError {
    match e {
        PayloadError::Overflow => too_large(),
        _ => ApiError::validation("the request body could not be read"),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "the request body is larger than allowed",
    )
}

fn json_error(e: &JsonPayloadError) -> ApiError {
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

fn path_error(e: &PathError) -> ApiError {
    let PathError::Deserialize(inner) = e else {
        return ApiError::validation("invalid path parameter");
    };
    ApiError::validation(crate::wire_errors::describe("path", "", &inner.to_string()))
}

fn query_error(e: &QueryPayloadError) -> ApiError {
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

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// Who the caller is, as the token says.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub customer_id: String,
    pub subject: String,
    pub roles: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is serving", body = HealthResponse))
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and is migrated", body = HealthResponse),
        (status = 503, description = "Not ready", body = ErrorEnvelope),
    )
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Bounded below the probe's timeout: a database that accepts connections and never
    // answers (or a query stuck on a dead connection) is "not ready", not a hung probe.
    let checked = tokio::time::timeout(
        state.config.database_timeout,
        state.stores.health.check_ready(),
    )
    .await
    .unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "the readiness check took longer than {} ms",
            state.config.database_timeout.as_millis()
        )))
    });
    match checked {
        Ok(()) => Ok(HttpResponse::Ok().json(HealthResponse { status: "ready" })),
        Err(e) => {
            let message = match e {
                StoreError::NotMigrated(_) => {
                    "not ready: the database schema is not migrated (run `trunkline migrate`)"
                }
                _ => "not ready: the database is unreachable",
            };
            Err(ApiError::new(ErrorCode::ServiceUnavailable, message).with_cause(e))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"))
)]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::document(&state.onboarding))
}

#[utoipa::path(
    get,
    path = "/telephony/me",
    tag = "telephony",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's customer and roles", body = MeResponse),
        (status = 401, description = "No or an invalid bearer token", body = ErrorEnvelope),
    )
)]
async fn me(caller: Caller) -> web::Json<MeResponse> {
    web::Json(MeResponse {
        customer_id: caller.customer_id.as_str().to_owned(),
        subject: caller.subject,
        roles: caller.roles,
    })
}

/// The app's default service. Resources fall back to it too when no route of theirs
/// accepts the method: a path some resource matches is then a 405, any other a 404.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let code = if req.match_pattern().is_some() {
        ErrorCode::MethodNotAllowed
    } else {
        ErrorCode::NotFound
    };
    Err(ApiError::new(code, default_message(code)))
}

/// The OpenAPI document, generated from the handlers and types above.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "trunkline",
        description = "Connect phone numbers a customer owns at a carrier to a LiveKit SIP ingress."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        openapi_json,
        me,
        crate::routes::providers::list_providers,
        crate::routes::credentials::verify_credentials,
        crate::routes::credentials::save_credentials,
        crate::routes::credentials::delete_credentials,
        crate::routes::numbers::list_numbers,
        crate::routes::numbers::connect_number,
        crate::routes::numbers::disconnect_number,
        crate::routes::numbers::number_status,
        crate::routes::audit::list_audit,
        crate::routes::webhook::livekit_webhook,
        crate::routes::voice::twilio_voice,
        crate::routes::calls::get_call,
        crate::routes::calls::get_call_by_room,
        crate::routes::jobs::bulk_connect,
        crate::routes::jobs::bulk_disconnect,
        crate::routes::jobs::list_jobs,
        crate::routes::jobs::get_job,
        crate::routes::jobs::cancel_job,
        crate::routes::outbound::place_call,
    ),
    components(schemas(ErrorEnvelope, HealthResponse, MeResponse)),
    modifiers(&BearerAuth, &PathParamsRequired)
)]
pub struct ApiDoc;

/// OpenAPI requires every path parameter to be `required`; the derive leaves it out on
/// parameters whose schema is written by hand (`schema_with`, `routes::schema`).
struct PathParamsRequired;

impl Modify for PathParamsRequired {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::Required;
        use utoipa::openapi::path::ParameterIn;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if param.parameter_in == ParameterIn::Path {
                        param.required = Required::True;
                    }
                }
            }
        }
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
