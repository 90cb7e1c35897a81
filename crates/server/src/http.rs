//! The HTTP surface: the app factory, and the request middleware (request id, error
//! envelope, access log, metrics) every route and every error goes through.

use std::fmt;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage as _, HttpRequest, HttpResponse, web};
use tracing::Instrument as _;
use trunkline_core::ErrorCode;

use crate::error::{
    ApiError, ErrorEnvelope, PendingError, WireCode, code_for_status, default_message, status_for,
};
use crate::extract::{RequestId, X_REQUEST_ID, json_error, path_error, payload_error, query_error};
use crate::openapi::openapi_json;
use crate::routes::ops::{healthz, me, metrics, readyz};
use crate::state::AppState;
use crate::telemetry::{HTTP_REQUEST_DURATION, HTTP_REQUESTS_TOTAL};

/// The route label of requests no route matched: raw paths would explode the label set.
const UNMATCHED: &str = "unmatched";

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
    code: WireCode,
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
            (Some(cause), WireCode::Core(ErrorCode::Internal)) => {
                tracing::error!(cause = %cause, "internal error");
            }
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

/// The app's default service. Resources fall back to it too when no route of theirs
/// accepts the method: a path some resource matches is then a 405, any other a 404.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let code = if req.match_pattern().is_some() {
        WireCode::MethodNotAllowed
    } else {
        WireCode::Core(ErrorCode::NotFound)
    };
    Err(ApiError::new(code, default_message(code)))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
