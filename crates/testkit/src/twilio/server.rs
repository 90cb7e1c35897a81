//! The HTTP side: one actix-web server per Twilio host, both over the same state.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use serde_json::Value;

use crate::crashpoint::Moment;

use super::faults::{Action, ActiveFault, RecordedRequest, decide};
use super::routes::{Host, Params, PathIds, Resolved, Route, resolve};
use super::state::{ApiError, Store, codes, new_sid};

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub faults: Mutex<Vec<ActiveFault>>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub api_base: String,
    pub trunking_base: String,
    pub hang_for: Duration,
    /// Requests a test holds to kill its client at that moment.
    pub gates: crate::crashpoint::Gates,
    pub concurrency: Arc<crate::concurrency::Concurrency>,
}

/// The emulator's state is plain data; a panic while holding a lock cannot leave it
/// half-updated in a way later tests would care about, so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
    host: Host,
    listener: TcpListener,
    workers: usize,
) -> std::io::Result<Server> {
    listener.set_nonblocking(true)?;
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(Arc::clone(&shared)))
            .app_data(web::Data::new(host))
            .default_service(web::to(handle))
    })
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)?
    .run())
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .content_type("application/json; charset=utf-8")
        .insert_header(("Twilio-Request-Id", new_sid("RQ")))
        .body(body.to_string())
}

fn error_response(error: &ApiError, retry_after: Option<Duration>) -> HttpResponse {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    builder
        .content_type("application/json; charset=utf-8")
        .insert_header(("Twilio-Request-Id", new_sid("RQ")));
    if error.status == 401 {
        builder.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Twilio API\""));
    }
    if let Some(after) = retry_after {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    builder.body(error.body().to_string())
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
    host: web::Data<Host>,
) -> HttpResponse {
    let host = **host;
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let query = Params::parse(req.query_string().as_bytes());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let form = if content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        Params::parse(&body)
    } else {
        Params::default()
    };
    let auth = basic_auth(req.headers());
    let resolved = resolve(host, &method, &path);
    let route = match &resolved {
        Resolved::Found(r, _) => Some(*r),
        _ => None,
    };
    let seq = shared.record(RecordedRequest {
        seq: 0,
        host,
        route,
        method,
        path: path.clone(),
        query: query.clone(),
        form: form.clone(),
        content_type,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        auth_user: auth.as_ref().map(|(u, _)| u.clone()),
        status: None,
    });

    // Twilio counts an account's requests in flight and refuses those over its limit
    // before doing anything else (they are safe to retry).
    let _in_flight = match shared.concurrency.admit() {
        Ok(guard) => guard,
        Err(now) => {
            let mut refused = error_response(
                &ApiError::new(429, codes::TOO_MANY_REQUESTS, "Too Many Requests"),
                None,
            );
            if let Ok(v) = header::HeaderValue::from_str(&now.to_string()) {
                refused.headers_mut().insert(
                    header::HeaderName::from_static("twilio-concurrent-requests"),
                    v,
                );
            }
            shared.set_status(seq, 429);
            return refused;
        }
    };
    let decision = decide(&mut super::server::lock(&shared.faults), host, route);
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
            &ApiError::new(503, codes::UNAVAILABLE, "Service Unavailable"),
            None,
        );
        shared.set_status(seq, response.status().as_u16());
        return response;
    }
    let response = match decision.action {
        Action::Hang => {
            actix_web::rt::time::sleep(shared.hang_for).await;
            error_response(
                &ApiError::new(504, codes::UNAVAILABLE, "Gateway Timeout"),
                None,
            )
        }
        Action::Fail { error, retry_after } => error_response(&error, retry_after),
        Action::Proceed => match serve(&shared, host, &path, resolved, auth, &query, &form) {
            Ok((status, Some(body))) => json_response(status, &body),
            Ok((status, None)) => {
                HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                    .insert_header(("Twilio-Request-Id", new_sid("RQ")))
                    .finish()
            }
            Err(e) => error_response(&e, None),
        },
    };
    if let Some(h) = &held {
        // Served: the change is made; the answer waits until the client is gone.
        h.hold().await;
    }
    shared.set_status(seq, response.status().as_u16());
    response
}

fn required(id: Option<&String>) -> Result<&str, ApiError> {
    id.map(String::as_str)
        .ok_or_else(|| ApiError::new(404, codes::NOT_FOUND, "Not found"))
}

fn serve(
    shared: &Shared,
    host: Host,
    path: &str,
    resolved: Resolved,
    auth: Option<(String, String)>,
    query: &Params,
    form: &Params,
) -> Result<(u16, Option<Value>), ApiError> {
    let (route, ids): (Route, PathIds) = match resolved {
        Resolved::Found(r, ids) => (r, ids),
        Resolved::MethodNotAllowed => {
            return Err(ApiError::new(
                405,
                codes::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ));
        }
        Resolved::NotFound => return Err(ApiError::not_found(path)),
    };
    debug_assert_eq!(route.host(), host);
    let (user, password) =
        auth.ok_or_else(|| ApiError::new(401, codes::AUTHENTICATE, "Authenticate"))?;
    let mut store = lock(&shared.store);
    let p = store.authenticate(&user, &password)?;
    let trunking = shared.trunking_base.as_str();
    let bases = (trunking, shared.api_base.as_str());
    let account = ids.account.as_ref();
    let trunk = ids.trunk.as_ref();
    let sid = ids.sid.as_ref();
    let ok = |v: Value| Ok((200, Some(v)));
    let created = |v: Value| Ok((201, Some(v)));
    match route {
        Route::FetchAccount => ok(store.fetch_account(&p, required(account)?)?),
        Route::ListIncomingPhoneNumber => ok(store.list_numbers(&p, required(account)?, query)?),
        Route::FetchIncomingPhoneNumber => {
            ok(store.fetch_number(&p, required(account)?, required(sid)?)?)
        }
        Route::UpdateIncomingPhoneNumber => {
            ok(store.update_number(&p, required(account)?, required(sid)?, form)?)
        }
        Route::ListTrunk => ok(store.list_trunks(trunking, &p, query)?),
        Route::CreateTrunk => created(store.create_trunk(trunking, &p, form)?),
        Route::FetchTrunk => ok(store.fetch_trunk(trunking, &p, required(trunk)?)?),
        Route::UpdateTrunk => ok(store.update_trunk(trunking, &p, required(trunk)?, form)?),
        Route::DeleteTrunk => {
            store.delete_trunk(&p, required(trunk)?)?;
            Ok((204, None))
        }
        Route::ListOriginationUrl => {
            ok(store.list_origination_urls(trunking, &p, required(trunk)?, query)?)
        }
        Route::CreateOriginationUrl => {
            created(store.create_origination_url(trunking, &p, required(trunk)?, form)?)
        }
        Route::FetchOriginationUrl => {
            ok(store.fetch_origination_url(trunking, &p, required(trunk)?, required(sid)?)?)
        }
        Route::UpdateOriginationUrl => ok(store.update_origination_url(
            trunking,
            &p,
            required(trunk)?,
            required(sid)?,
            form,
        )?),
        Route::DeleteOriginationUrl => {
            store.delete_origination_url(&p, required(trunk)?, required(sid)?)?;
            Ok((204, None))
        }
        Route::ListPhoneNumber => {
            ok(store.list_trunk_numbers(bases, &p, required(trunk)?, query)?)
        }
        Route::CreatePhoneNumber => {
            created(store.create_trunk_number(bases, &p, required(trunk)?, form)?)
        }
        Route::FetchPhoneNumber => {
            ok(store.fetch_trunk_number(bases, &p, required(trunk)?, required(sid)?)?)
        }
        Route::DeletePhoneNumber => {
            store.delete_trunk_number(&p, required(trunk)?, required(sid)?)?;
            Ok((204, None))
        }
        Route::ListAvailablePhoneNumberLocal
        | Route::ListAvailablePhoneNumberTollFree
        | Route::ListAvailablePhoneNumberMobile => {
            let kind = match route {
                Route::ListAvailablePhoneNumberLocal => "Local",
                Route::ListAvailablePhoneNumberTollFree => "TollFree",
                _ => "Mobile",
            };
            let country = ids.country.as_ref();
            ok(store.list_available(&p, required(account)?, required(country)?, kind, query)?)
        }
        Route::CreateIncomingPhoneNumber => {
            created(store.buy_number(&p, required(account)?, form)?)
        }
        Route::DeleteIncomingPhoneNumber => {
            store.release(&p, required(account)?, required(sid)?)?;
            Ok((204, None))
        }
        Route::ListSipCredentialList
        | Route::CreateSipCredentialList
        | Route::DeleteSipCredentialList
        | Route::ListSipCredential
        | Route::CreateSipCredential
        | Route::UpdateSipCredential
        | Route::DeleteSipCredential
        | Route::ListCredentialList
        | Route::CreateCredentialList
        | Route::DeleteCredentialList => {
            let api = shared.api_base.as_str();
            store.serve_termination(route, (api, trunking), &p, &ids, query, form)
        }
    }
}
