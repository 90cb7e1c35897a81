//! The HTTP side: Twirp over actix-web, authenticated like LiveKit's API key middleware.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use livekit_protocol as proto;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::crashpoint::Moment;

use super::faults::{Action, ActiveFault, Method, RecordedRequest, Service, decide};
use super::state::{Store, TwirpError};

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    /// API key → secret.
    pub keys: Mutex<HashMap<String, String>>,
    pub faults: Mutex<Vec<ActiveFault>>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub hang_for: Duration,
    /// Requests a test holds to kill its client at that moment.
    pub gates: crate::crashpoint::Gates,
    pub concurrency: std::sync::Arc<crate::concurrency::Concurrency>,
}

/// The state is plain data; a panic while holding a lock cannot leave it half-updated in a
/// way later requests would care about, so poisoning is ignored.
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

    fn finish(&self, seq: u64, status: u16, error_code: Option<&str>) {
        let mut log = lock(&self.log);
        // The log may have been reset while the request was in flight.
        if let Some(e) = usize::try_from(seq).ok().and_then(|i| log.get_mut(i))
            && e.seq == seq
        {
            e.status = Some(status);
            e.error_code = error_code.map(str::to_owned);
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
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .default_service(web::to(handle))
    })
    .workers(workers.max(1))
    .disable_signals()
    .shutdown_timeout(0)
    .listen(listener)?
    .run())
}

// --- authentication ----------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct VideoClaims {
    room_admin: bool,
    room: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SipClaims {
    admin: bool,
    call: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Claims {
    iss: String,
    video: VideoClaims,
    sip: SipClaims,
}

enum Auth {
    /// No `Authorization` header: the request goes on without grants (and fails the
    /// permission check), as LiveKit's middleware lets it.
    None,
    Granted(Claims),
    /// Refused by the middleware: 401 with a plain-text body.
    Refused(String),
}

/// The unverified `iss`, for the request log.
fn unverified_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
        .ok()
        .map(|t| t.claims.iss)
}

/// LiveKit's `APIKeyAuthMiddleware`: `Bearer <jwt>`, HS256, issued by a known key, signed
/// with its secret, within `nbf`/`exp` (one minute of leeway), `exp` required.
fn authenticate(headers: &HeaderMap, keys: &HashMap<String, String>) -> Auth {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Auth::None;
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return Auth::Refused("invalid authorization header. Must start with Bearer ".to_owned());
    };
    let Ok(unverified) = jsonwebtoken::dangerous::insecure_decode::<Claims>(token) else {
        return Auth::Refused("invalid authorization token".to_owned());
    };
    let Some(secret) = keys.get(&unverified.claims.iss) else {
        return Auth::Refused("invalid API key".to_owned());
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 60;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss"]);
    validation.set_issuer(&[&unverified.claims.iss]);
    match jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    ) {
        Ok(data) => Auth::Granted(data.claims),
        Err(e) => Auth::Refused(format!("invalid authorization token: {e}")),
    }
}

fn permission_denied() -> TwirpError {
    // LiveKit answers missing grants as `unauthenticated` ("permissions denied").
    TwirpError::new("unauthenticated", "permissions denied")
}

fn require_sip_admin(claims: Option<&Claims>) -> Result<(), TwirpError> {
    if claims.is_some_and(|c| c.sip.admin) {
        Ok(())
    } else {
        Err(permission_denied())
    }
}

fn require_sip_call(claims: Option<&Claims>) -> Result<(), TwirpError> {
    if claims.is_some_and(|c| c.sip.call) {
        Ok(())
    } else {
        Err(permission_denied())
    }
}

fn require_room_admin(claims: Option<&Claims>, room: &str) -> Result<(), TwirpError> {
    if claims.is_some_and(|c| c.video.room_admin && c.video.room == room) {
        Ok(())
    } else {
        Err(permission_denied())
    }
}

// --- Twirp ---------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn decode<T: prost::Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, TwirpError> {
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| {
            TwirpError::new(
                "malformed",
                format!("failed to unmarshal request body: {e}"),
            )
        }),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| {
            TwirpError::new("malformed", format!("failed to parse request json: {e}"))
        }),
    }
}

fn encode<T: prost::Message + serde::Serialize>(encoding: Encoding, value: &T) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => value.encode_to_vec(),
        // pbjson's serializer cannot fail on generated types.
        Encoding::Json => serde_json::to_vec(value).unwrap_or_default(),
    }
}

fn twirp_error_response(error: &TwirpError) -> HttpResponse {
    HttpResponse::build(
        StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("application/json")
    .body(error.body().to_string())
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let method = Method::from_path(&path);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let seq = shared.record(RecordedRequest {
        seq: 0,
        method,
        http_method: req.method().as_str().to_owned(),
        path: path.clone(),
        content_type: content_type.clone(),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        api_key: unverified_key(req.headers()),
        status: None,
        error_code: None,
    });

    // Counted only: LiveKit has no concurrency limit to emulate.
    let _in_flight = shared.concurrency.admit();
    let decision = decide(&mut lock(&shared.faults), method);
    if !decision.latency.is_zero() {
        actix_web::rt::time::sleep(decision.latency).await;
    }
    let held = shared
        .gates
        .check(method.map(|m| format!("{m:?}")).as_deref());
    if let Some(h) = &held
        && h.moment == Moment::Before
    {
        // Held, then never served: the client is killed meanwhile.
        h.hold().await;
        let e = TwirpError::for_status(503);
        let response = twirp_error_response(&e);
        shared.finish(seq, response.status().as_u16(), Some(e.code));
        return response;
    }
    let (response, code) = match decision.action {
        Action::Hang => {
            actix_web::rt::time::sleep(shared.hang_for).await;
            let e = TwirpError::new("deadline_exceeded", "the emulator hung this request");
            (twirp_error_response(&e), Some(e.code))
        }
        Action::Fail(status) => {
            let e = TwirpError::for_status(status);
            (twirp_error_response(&e), Some(e.code))
        }
        action @ (Action::Proceed | Action::LoseAnswer(_)) => {
            let served = serve(&shared, &req, method, content_type.as_deref(), &body);
            match (action, served) {
                (Action::LoseAnswer(status), _) => {
                    let e = TwirpError::for_status(status);
                    (twirp_error_response(&e), Some(e.code))
                }
                (_, Served::Ok(bytes, ct)) => {
                    (HttpResponse::Ok().content_type(ct).body(bytes), None)
                }
                (_, Served::Twirp(e)) => (twirp_error_response(&e), Some(e.code)),
                (_, Served::Refused(text)) => (
                    HttpResponse::Unauthorized()
                        .content_type("text/plain; charset=utf-8")
                        .body(text),
                    None,
                ),
            }
        }
    };
    if let Some(h) = &held {
        // Served: the change is made; the answer waits until the client is gone.
        h.hold().await;
    }
    shared.finish(seq, response.status().as_u16(), code);
    response
}

enum Served {
    Ok(Vec<u8>, &'static str),
    Twirp(TwirpError),
    Refused(String),
}

macro_rules! rpc {
    ($encoding:expr, $body:expr, $req:ty, |$r:ident| $run:expr) => {{
        let $r: $req = decode($encoding, $body)?;
        let out = $run?;
        Ok(encode($encoding, &out))
    }};
}

fn serve(
    shared: &Shared,
    req: &HttpRequest,
    method: Option<Method>,
    content_type: Option<&str>,
    body: &[u8],
) -> Served {
    let auth = authenticate(req.headers(), &lock(&shared.keys));
    let claims = match auth {
        Auth::Refused(text) => return Served::Refused(text),
        Auth::None => None,
        Auth::Granted(c) => Some(c),
    };
    if req.method() != actix_web::http::Method::POST {
        return Served::Twirp(TwirpError::new(
            "bad_route",
            format!("unsupported method {} (only POST is allowed)", req.method()),
        ));
    }
    let Some(method) = method else {
        return Served::Twirp(TwirpError::new(
            "bad_route",
            format!("no handler for path {:?}", req.path()),
        ));
    };
    let media = content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let encoding = match media.as_deref() {
        Some("application/protobuf" | "application/x-protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        _ => {
            return Served::Twirp(TwirpError::new(
                "bad_route",
                format!("unexpected Content-Type: {:?}", content_type.unwrap_or("")),
            ));
        }
    };
    let result = call(shared, method, encoding, body, claims.as_ref());
    let ct = match encoding {
        Encoding::Protobuf => "application/protobuf",
        Encoding::Json => "application/json",
    };
    match result {
        Ok(bytes) => Served::Ok(bytes, ct),
        Err(e) => Served::Twirp(e),
    }
}

fn call(
    shared: &Shared,
    method: Method,
    enc: Encoding,
    body: &[u8],
    claims: Option<&Claims>,
) -> Result<Vec<u8>, TwirpError> {
    if method.service() == Service::Sip {
        // Decoding comes first in Twirp; the permission check is the handler's first step.
        return match method {
            Method::CreateSipInboundTrunk => {
                rpc!(enc, body, proto::CreateSipInboundTrunkRequest, |r| {
                    require_sip_admin(claims).and_then(|()| lock(&shared.store).create_trunk(r))
                })
            }
            Method::UpdateSipInboundTrunk => {
                rpc!(enc, body, proto::UpdateSipInboundTrunkRequest, |r| {
                    require_sip_admin(claims).and_then(|()| lock(&shared.store).update_trunk(r))
                })
            }
            Method::GetSipInboundTrunk => rpc!(enc, body, proto::GetSipInboundTrunkRequest, |r| {
                require_sip_admin(claims).and_then(|()| lock(&shared.store).get_trunk(&r))
            }),
            Method::ListSipInboundTrunk => {
                rpc!(enc, body, proto::ListSipInboundTrunkRequest, |r| {
                    require_sip_admin(claims).map(|()| lock(&shared.store).list_trunks(&r))
                })
            }
            Method::DeleteSipTrunk => rpc!(enc, body, proto::DeleteSipTrunkRequest, |r| {
                require_sip_admin(claims).and_then(|()| lock(&shared.store).delete_trunk(&r))
            }),
            Method::CreateSipDispatchRule => {
                rpc!(enc, body, proto::CreateSipDispatchRuleRequest, |r| {
                    require_sip_admin(claims).and_then(|()| lock(&shared.store).create_rule(r))
                })
            }
            Method::UpdateSipDispatchRule => {
                rpc!(enc, body, proto::UpdateSipDispatchRuleRequest, |r| {
                    require_sip_admin(claims).and_then(|()| lock(&shared.store).update_rule(r))
                })
            }
            Method::ListSipDispatchRule => {
                rpc!(enc, body, proto::ListSipDispatchRuleRequest, |r| {
                    require_sip_admin(claims).map(|()| lock(&shared.store).list_rules(&r))
                })
            }
            Method::DeleteSipDispatchRule => {
                rpc!(enc, body, proto::DeleteSipDispatchRuleRequest, |r| {
                    require_sip_admin(claims).and_then(|()| lock(&shared.store).delete_rule(&r))
                })
            }
            Method::CreateSipOutboundTrunk => {
                rpc!(enc, body, proto::CreateSipOutboundTrunkRequest, |r| {
                    require_sip_admin(claims)
                        .and_then(|()| lock(&shared.store).create_outbound_trunk(r))
                })
            }
            Method::UpdateSipOutboundTrunk => {
                rpc!(enc, body, proto::UpdateSipOutboundTrunkRequest, |r| {
                    require_sip_admin(claims)
                        .and_then(|()| lock(&shared.store).update_outbound_trunk(r))
                })
            }
            Method::ListSipOutboundTrunk => {
                rpc!(enc, body, proto::ListSipOutboundTrunkRequest, |r| {
                    require_sip_admin(claims).map(|()| lock(&shared.store).list_outbound_trunks(&r))
                })
            }
            Method::CreateSipParticipant => {
                rpc!(enc, body, proto::CreateSipParticipantRequest, |r| {
                    require_sip_call(claims)
                        .and_then(|()| lock(&shared.store).create_sip_participant(&r))
                })
            }
            _ => Err(TwirpError::new("bad_route", "no such method")),
        };
    }
    match method {
        Method::CreateDispatch => rpc!(enc, body, proto::CreateAgentDispatchRequest, |r| {
            require_room_admin(claims, &r.room)
                .and_then(|()| lock(&shared.store).create_dispatch(&r))
        }),
        Method::ListDispatch => rpc!(enc, body, proto::ListAgentDispatchRequest, |r| {
            require_room_admin(claims, &r.room).and_then(|()| lock(&shared.store).list_dispatch(&r))
        }),
        Method::DeleteDispatch => rpc!(enc, body, proto::DeleteAgentDispatchRequest, |r| {
            require_room_admin(claims, &r.room)
                .and_then(|()| lock(&shared.store).delete_dispatch(&r))
        }),
        Method::GetParticipant => rpc!(enc, body, proto::RoomParticipantIdentity, |r| {
            require_room_admin(claims, &r.room)
                .and_then(|()| lock(&shared.store).get_participant(&r))
        }),
        _ => Err(TwirpError::new("bad_route", "no such method")),
    }
}
