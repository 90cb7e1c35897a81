//! The HTTP side: one actix-web server over the emulator's state.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

use crate::crashpoint::Moment;

use super::faults::{Action, ActiveFault, RATE_LIMIT, RecordedRequest, decide};
use super::routes::{Resolved, Route, resolve};
use super::state::{ApiError, Store, codes};
use crate::twilio::Params;
use crate::twilio::server::lock;

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Vec<ActiveFault>>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub hang_for: Duration,
    /// Requests a test holds to kill its client at that moment.
    pub gates: crate::crashpoint::Gates,
}

impl Shared {
    fn record(&self, mut entry: RecordedRequest) -> u64 {
        let mut log = lock(&self.log);
        let seq = log.len() as u64;
        entry.seq = seq;
        log.push(entry);
        seq
    }

    fn set_status(&self, seq: u64, status: u16) {
        let mut log = lock(&self.log);
        // The log may have been reset while the request was in flight.
        if let Some(e) = usize::try_from(seq).ok().and_then(|i| log.get_mut(i))
            && e.seq == seq
        {
            e.status = Some(status);
        }
    }
}

pub(crate) fn build(
    shared: Arc<Shared>,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&shared)))
            // Telnyx answers its own error for any body; actix must not refuse first.
            .app_data(web::PayloadConfig::new(1 << 20))
            .default_service(web::to(handle))
    })
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)?
    .run())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json")
        .insert_header(("x-ratelimit-limit", RATE_LIMIT.to_string()))
        .body(body.to_string())
}

fn error_response(error: &ApiError, reset: Option<Duration>) -> HttpResponse {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder.content_type("application/json");
    if let Some(reset) = reset {
        let secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        builder
            .insert_header(("x-ratelimit-limit", RATE_LIMIT.to_string()))
            .insert_header(("x-ratelimit-remaining", "0"))
            .insert_header(("x-ratelimit-reset", secs.to_string()));
    }
    builder.body(error.body().to_string())
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = Params::parse(req.query_string().as_bytes());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let key = bearer(req.headers());
    let account = key
        .as_deref()
        .and_then(|k| lock(&shared.store).keys.get(k).map(|k| k.account.clone()));
    let resolved = resolve(&method, &path);
    let route = match &resolved {
        Resolved::Found(r, _) => Some(*r),
        _ => None,
    };
    let seq = shared.record(RecordedRequest {
        seq: 0,
        route,
        method,
        path,
        query: query.clone(),
        body: json.clone(),
        content_type: content_type.clone(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        bearer: key.is_some(),
        account,
        status: None,
    });

    let decision = decide(&mut lock(&shared.faults), route);
    if !decision.latency.is_zero() {
        actix_web::rt::time::sleep(decision.latency).await;
    }
    let held = shared
        .gates
        .check(route.map(|r| format!("{r:?}")).as_deref());
    if let Some(h) = &held
        && h.moment == Moment::Before
    {
        // Held, then never served: the client is killed meanwhile.
        h.hold().await;
        let response = error_response(
            &ApiError::new(
                503,
                codes::UNEXPECTED,
                "Service Unavailable",
                "The request was not served.",
            ),
            None,
        );
        shared.set_status(seq, response.status().as_u16());
        return response;
    }
    let response = match decision.action {
        Action::Hang => {
            actix_web::rt::time::sleep(shared.hang_for).await;
            error_response(
                &ApiError::new(
                    504,
                    codes::UNEXPECTED,
                    "Gateway timeout",
                    "The request timed out.",
                ),
                None,
            )
        }
        Action::Fail { error, reset } => error_response(&error, reset),
        Action::Proceed => {
            let sent_body = !body.is_empty();
            let is_json = content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/json"));
            if sent_body && (json.is_none() || !is_json) {
                error_response(
                    &ApiError::new(
                        400,
                        codes::BAD_REQUEST,
                        "Bad Request",
                        "The request failed because it was not well-formed.",
                    ),
                    None,
                )
            } else {
                match serve(&shared, resolved, key.as_deref(), &query, json.as_ref()) {
                    Ok((status, body)) => json_response(status, &body),
                    Err(e) => error_response(&e, None),
                }
            }
        }
    };
    if let Some(h) = &held {
        // Served: the change is made; the answer waits until the client is gone.
        h.hold().await;
    }
    shared.set_status(seq, response.status().as_u16());
    response
}

fn serve(
    shared: &Shared,
    resolved: Resolved,
    key: Option<&str>,
    query: &Params,
    body: Option<&Value>,
) -> Result<(u16, Value), ApiError> {
    let (route, id) = match resolved {
        Resolved::Found(r, id) => (r, id.unwrap_or_default()),
        Resolved::MethodNotAllowed => {
            return Err(ApiError::new(
                405,
                codes::BAD_REQUEST,
                "Method not allowed",
                "The method is not allowed for the requested URL.",
            ));
        }
        Resolved::NotFound => return Err(ApiError::not_found()),
    };
    let mut store = lock(&shared.store);
    let (account, numbers_allowed) = store.authenticate(key)?;
    if route.is_numbers() && !numbers_allowed {
        return Err(ApiError::not_authorized());
    }
    let a = account.as_str();
    let ok = |v: Value| Ok((200, v));
    match route {
        Route::GetUserBalance => ok(store.balance(a)?),
        Route::ListPhoneNumbers => ok(store.list_numbers(a, query)?),
        Route::RetrievePhoneNumber => ok(store.get_number(a, &id)?),
        Route::UpdatePhoneNumber => ok(store.update_number(a, &id, body)?),
        Route::ListFqdnConnections => ok(store.list_connections(a, query)?),
        Route::CreateFqdnConnection => Ok((201, store.create_connection(a, body)?)),
        Route::RetrieveFqdnConnection => ok(store.get_connection(a, &id)?),
        Route::UpdateFqdnConnection => ok(store.update_connection(a, &id, body)?),
        Route::DeleteFqdnConnection => ok(store.delete_connection(a, &id)?),
        Route::ListFqdns => ok(store.list_fqdns(a, query)?),
        Route::CreateFqdn => Ok((201, store.create_fqdn(a, body)?)),
        Route::RetrieveFqdn => ok(store.get_fqdn(a, &id)?),
        Route::UpdateFqdn => ok(store.update_fqdn(a, &id, body)?),
        Route::DeleteFqdn => ok(store.delete_fqdn(a, &id)?),
        Route::ListAvailablePhoneNumbers => ok(store.list_available(query)?),
        Route::CreateNumberOrder => ok(store.create_order(a, body)?),
        Route::RetrieveNumberOrder => ok(store.get_order(a, &id)?),
        Route::DeletePhoneNumber => ok(store.delete_number(a, &id)?),
        Route::RetrieveFqdnAuthentication => ok(store.get_fqdn_authentication(a, &id)?),
        Route::UpdateFqdnAuthentication => ok(store.update_fqdn_authentication(a, &id, body)?),
        Route::ListOutboundVoiceProfiles => ok(store.list_voice_profiles(a, query)?),
        Route::CreateVoiceProfile => Ok((200, store.create_voice_profile(a, body)?)),
        Route::GetOutboundVoiceProfile => ok(store.get_voice_profile(a, &id)?),
        Route::UpdateOutboundVoiceProfile => ok(store.update_voice_profile(a, &id, body)?),
        Route::DeleteOutboundVoiceProfile => ok(store.delete_voice_profile(a, &id)?),
    }
}
