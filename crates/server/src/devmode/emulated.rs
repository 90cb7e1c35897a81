//! The emulators behind `trunkline dev`, their demo seed, the one-time sign-in links and
//! the `/dev/` routes.
//!
//! The `/dev/` routes that touch a number first read its status through trunkline's own
//! public API with the caller's bearer token, so they act only on what that token may see.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use trunkline_core::ErrorCode;
use trunkline_testkit::livekit::{self as lk, CallScript, LiveKitEmulator};
use trunkline_testkit::telnyx::{self as tx, TelnyxEmulator};
use trunkline_testkit::twilio::{self as tw, TwilioEmulator};

use super::DevArgs;
use crate::auth::Caller;
use crate::config::{self, Config, Env};
use crate::dev::DEV_CUSTOMER;
use crate::error::ApiError;
use crate::process::{Failure, say};
use crate::serve::DevSurface;

/// Numbers each demo account gets; the last one sits on someone else's route.
const DEMO_NUMBERS: usize = 25;
/// The SIP target connect points numbers at: LiveKit's SIP ingress in a real setup.
const DEMO_SIP_TARGET: &str = "sip:trunkline-dev.sip.livekit.example";
/// Who calls in a simulated call.
const DEMO_CALLER: &str = "+14155550199";
/// The name of the route the demo's foreign numbers sit on.
const FOREIGN_ROUTE: &str = "Acme PBX";

/// The emulators and the demo seed, for the banner and the `/dev/` routes.
struct DevMode {
    // Held so they keep running while the server does (each stops when dropped).
    _twilio: TwilioEmulator,
    _telnyx: TelnyxEmulator,
    livekit: LiveKitEmulator,
    demo: Demo,
    /// One-time sign-in codes → (token, role label).
    codes: Mutex<HashMap<String, (String, &'static str)>>,
    /// `http://<bound address>`, once the server listens.
    base: OnceLock<String>,
    client: reqwest::Client,
}

/// The demo accounts' throw-away credentials, printed for pasting into the console.
struct Demo {
    twilio_account: String,
    twilio_key: String,
    twilio_secret: String,
    twilio_first_number: String,
    telnyx_key: String,
}

pub(super) fn start(args: &DevArgs, env: &Env) -> Result<(), Failure> {
    let emulator_failed = |which: &str, e: std::io::Error| {
        Failure::runtime(format!("cannot start the {which} emulator: {e}"))
    };
    let twilio = TwilioEmulator::start_with(tw::EmulatorOptions {
        workers: 1,
        ..tw::EmulatorOptions::default()
    })
    .map_err(|e| emulator_failed("Twilio", e))?;
    let telnyx = TelnyxEmulator::start_with(tx::EmulatorOptions {
        workers: 1,
        ..tx::EmulatorOptions::default()
    })
    .map_err(|e| emulator_failed("Telnyx", e))?;
    let livekit = LiveKitEmulator::start_with(lk::EmulatorOptions {
        workers: 1,
        ..lk::EmulatorOptions::default()
    })
    .map_err(|e| emulator_failed("LiveKit", e))?;
    let demo = seed(&twilio, &telnyx);

    let data_dir = std::path::absolute(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    let db = data_dir.join("trunkline.db");
    fresh_database(&db)?;

    let mut env = env.clone();
    // The developer's own carrier, LiveKit, auth and vault settings must not leak into the
    // sandbox: it talks to the emulators and signs its own tokens.
    let foreign: Vec<String> = env
        .names()
        .filter(|n| {
            [
                "TRUNKLINE_TWILIO_",
                "TRUNKLINE_TELNYX_",
                "TRUNKLINE_LIVEKIT_",
                "TRUNKLINE_AUTH_",
                "TRUNKLINE_VAULT_",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .map(str::to_owned)
        .collect();
    for name in foreign {
        env = env.with_var(&name, None);
    }
    let set = |env: Env, name: &str, value: String| env.with_var(name, Some(OsString::from(value)));
    env = set(
        env,
        config::DATABASE_URL,
        format!("sqlite://{}", db.display()),
    );
    env = set(env, config::DATA_DIR, data_dir.display().to_string());
    env = set(env, "TRUNKLINE_TWILIO_API_BASE", twilio.api_base());
    env = set(
        env,
        "TRUNKLINE_TWILIO_TRUNKING_BASE",
        twilio.trunking_base(),
    );
    env = set(env, "TRUNKLINE_TELNYX_API_BASE", telnyx.api_base());
    env = set(env, config::LIVEKIT_URL, livekit.url());
    env = set(env, config::LIVEKIT_API_KEY, livekit.api_key().to_owned());
    env = set(
        env,
        config::LIVEKIT_API_SECRET,
        livekit.api_secret().to_owned(),
    );
    env = set(env, config::SIP_TARGET, DEMO_SIP_TARGET.to_owned());
    if let Some(listen) = args.listen {
        env = set(env, config::LISTEN, listen.to_string());
    }
    let config = Config::from_env(&env)?;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Failure::runtime(format!("cannot build the HTTP client: {e}")))?;
    let dev = Arc::new(DevMode {
        _twilio: twilio,
        _telnyx: telnyx,
        livekit,
        demo,
        codes: Mutex::new(HashMap::new()),
        base: OnceLock::new(),
        client,
    });
    crate::serve::serve_dev(config, dev)
}

/// The emulators live in memory: a database from an earlier run would point at trunks and
/// credentials that no longer exist. Only the files `trunkline dev` itself writes go.
fn fresh_database(db: &std::path::Path) -> Result<(), Failure> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::runtime(format!(
                    "cannot start a fresh dev database at {}: {e}",
                    db.display()
                )));
            }
        }
    }
    Ok(())
}

fn seed(twilio: &TwilioEmulator, telnyx: &TelnyxEmulator) -> Demo {
    let account = twilio.add_account("trunkline demo");
    let key = twilio.add_api_key(&account.sid, true);
    let numbers = twilio.seed_numbers(&account.sid, DEMO_NUMBERS);
    // One number on a trunk the customer made elsewhere: the console warns before taking it.
    if let Some(last) = numbers.last() {
        let trunk = twilio.add_trunk(&account.sid, Some(FOREIGN_ROUTE));
        twilio.attach_number(&trunk, &last.sid);
    }

    let tel = telnyx.add_account("trunkline demo");
    let tel_numbers = telnyx.seed_numbers(&tel.id, DEMO_NUMBERS);
    if let Some(last) = tel_numbers.last() {
        let connection = telnyx.add_connection(&tel.id, FOREIGN_ROUTE);
        telnyx.set_number_connection(&last.id, Some(&connection));
    }
    Demo {
        twilio_account: account.sid.to_string(),
        twilio_key: key.sid.to_string(),
        twilio_secret: key.secret.clone(),
        twilio_first_number: numbers
            .first()
            .map(|n| n.e164.to_string())
            .unwrap_or_default(),
        telnyx_key: tel.api_key,
    }
}

fn new_code() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl DevSurface for DevMode {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::from(self))
            .service(web::resource("/dev/info").route(web::get().to(info)))
            .service(web::resource("/dev/sign-in").route(web::post().to(sign_in)))
            .service(web::resource("/dev/simulate-call").route(web::post().to(simulate_call)))
            .service(web::resource("/dev/break").route(web::post().to(break_number)))
            .service(web::resource("/dev/answer-call").route(web::post().to(answer_call)));
    }

    fn started(&self, bound: SocketAddr, tokens: Option<&(String, String)>) {
        let reach = if bound.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        } else {
            bound
        };
        let base = format!("http://{reach}");
        let _ = self.base.set(base.clone());
        let d = &self.demo;
        let mut text = String::from(
            "trunkline dev: a sandbox with in-process Twilio, Telnyx and LiveKit emulators \
             (nothing leaves this machine; the database starts afresh on every run)\n\n",
        );
        if let Some((customer, support)) = tokens {
            let (c, s) = (new_code(), new_code());
            {
                let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
                codes.insert(c.clone(), (customer.clone(), "customer"));
                codes.insert(s.clone(), (support.clone(), "support"));
            }
            let _ = write!(
                text,
                "Console, signed in as customer {DEV_CUSTOMER} (one-time link):\n  \
                 {base}/console/#signin={c}\n\
                 Support view (one-time link):\n  {base}/console/#signin={s}\n\n"
            );
            let _ = write!(
                text,
                "Demo credentials to paste in the console (the emulators' own, throw-away):\n  \
                 Twilio Account SID:     {}\n  \
                 Twilio API key SID:     {}\n  \
                 Twilio API key secret:  {}\n  \
                 Telnyx API key:         {}\n  \
                 {} numbers each; the last sits on \"{FOREIGN_ROUTE}\", a route trunkline did \
                 not make.\n  \
                 First Twilio number:    {}\n\n",
                d.twilio_account,
                d.twilio_key,
                d.twilio_secret,
                d.telnyx_key,
                DEMO_NUMBERS,
                d.twilio_first_number,
            );
            let _ = write!(
                text,
                "Or the API (token valid 24 h):\n  \
                 curl -s -H \"Authorization: Bearer {customer}\" {base}/telephony/me\n"
            );
        }
        say(&text);
    }
}

/// `GET /dev/info`: lets the console show its development tools.
async fn info() -> HttpResponse {
    HttpResponse::Ok().json(json!({"mode": "dev", "simulateCall": true, "answerCall": true}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    code: String,
}

/// `POST /dev/sign-in {"code"}`: trade a one-time code of the banner's link for its token.
async fn sign_in(
    dev: web::Data<DevMode>,
    body: web::Json<SignIn>,
) -> Result<HttpResponse, ApiError> {
    let redeemed = dev
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&body.code);
    match redeemed {
        Some((token, role)) => Ok(HttpResponse::Ok().json(json!({"token": token, "role": role}))),
        None => Err(ApiError::unauthenticated(
            "this sign-in link was used already or is not from this run of `trunkline dev`: \
             paste a token instead (`trunkline dev-token`), or restart `trunkline dev` for new links",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NumberRef {
    provider: String,
    number_id: String,
}

fn plain_segment(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 64 || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::validation(format!(
            "{field}: must be 1 to 64 letters or digits, as the numbers listing gives it"
        )));
    }
    Ok(())
}

impl DevMode {
    /// The number's status read through the public API with the caller's own token, so a
    /// `/dev/` route never reaches further than that token does.
    async fn status_as_caller(&self, req: &HttpRequest, n: &NumberRef) -> Result<Value, ApiError> {
        plain_segment("provider", &n.provider)?;
        plain_segment("numberId", &n.number_id)?;
        self.get_as_caller(
            req,
            &format!(
                "/telephony/providers/{}/numbers/{}/status",
                n.provider, n.number_id
            ),
        )
        .await
    }

    /// A `GET` of the public API with the caller's own token.
    async fn get_as_caller(&self, req: &HttpRequest, path: &str) -> Result<Value, ApiError> {
        let base = self
            .base
            .get()
            .ok_or_else(|| ApiError::internal("the dev server is not listening yet"))?;
        let auth = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthenticated("a bearer token is required"))?;
        let answer = self
            .client
            .get(format!("{base}{path}"))
            .header(reqwest::header::AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| ApiError::internal(format!("request to {path} failed: {e}")))?;
        let ok = answer.status().is_success();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| ApiError::internal(format!("answer of {path} unreadable: {e}")))?;
        if ok {
            return Ok(body);
        }
        let code = serde_json::from_value::<ErrorCode>(body["errorCode"].clone())
            .unwrap_or(ErrorCode::Internal);
        let message = body["message"]
            .as_str()
            .unwrap_or("the request failed")
            .to_owned();
        Err(ApiError::new(code, message))
    }
}

fn connected_part<'a>(status: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    let connection = &status["connection"];
    if connection["status"].as_str() != Some("connected") {
        return Err(ApiError::new(
            ErrorCode::NotConnected,
            "the number is not connected: connect it first",
        ));
    }
    connection
        .pointer(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotConfigured,
                format!("the connection has no {field}"),
            )
        })
}

fn refuse_support(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_support() {
        return Err(ApiError::forbidden(
            "support reads and changes nothing: sign in as the customer",
        ));
    }
    Ok(())
}

/// `POST /dev/simulate-call {"provider", "numberId"}`: the LiveKit emulator plays an
/// inbound call to the connected number, sending trunkline the four signed webhooks LiveKit
/// sends (room started, SIP participant joined, participant left, room finished).
async fn simulate_call(
    req: HttpRequest,
    caller: Caller,
    dev: web::Data<DevMode>,
    body: web::Json<NumberRef>,
) -> Result<HttpResponse, ApiError> {
    refuse_support(&caller)?;
    let status = dev.status_as_caller(&req, &body).await?;
    let e164 = connected_part(&status, "/e164")?.to_owned();
    let base = dev.base.get().cloned().unwrap_or_default();
    let played = dev
        .livekit
        .play_inbound_call(
            &[format!("{base}{}", crate::routes::webhook::PATH)],
            CallScript::new(e164, DEMO_CALLER),
        )
        .await;
    let deliveries: Vec<Value> = played
        .deliveries
        .iter()
        .map(|d| json!({"event": d.event, "eventId": d.event_id, "status": d.status}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "roomName": played.room,
        "caller": DEMO_CALLER,
        "deliveries": deliveries,
    })))
}

/// `POST /dev/break {"provider", "numberId"}`: delete the number's LiveKit dispatch rule
/// behind trunkline's back, as someone in LiveKit's dashboard might; status then shows the
/// drift and connect repairs it.
async fn break_number(
    req: HttpRequest,
    caller: Caller,
    dev: web::Data<DevMode>,
    body: web::Json<NumberRef>,
) -> Result<HttpResponse, ApiError> {
    refuse_support(&caller)?;
    let status = dev.status_as_caller(&req, &body).await?;
    let rule = connected_part(&status, "/livekit/ruleId")?.to_owned();
    let removed = dev.livekit.remove_rule(&rule);
    Ok(HttpResponse::Ok().json(json!({"removed": "livekitRule", "id": rule, "existed": removed})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CallRef {
    call_id: String,
}

/// `POST /dev/answer-call {"callId"}`: the emulated callee of an outbound call placed with
/// `POST /telephony/calls` answers and hangs up, and the LiveKit emulator sends trunkline the
/// signed webhooks a real call produces (participant joined, participant left, room
/// finished). The call is read through the public API with the caller's token first.
async fn answer_call(
    req: HttpRequest,
    caller: Caller,
    dev: web::Data<DevMode>,
    body: web::Json<CallRef>,
) -> Result<HttpResponse, ApiError> {
    refuse_support(&caller)?;
    let id = uuid::Uuid::parse_str(&body.call_id).map_err(|_| {
        ApiError::validation("callId: must be the callId POST /telephony/calls answered")
    })?;
    let call = dev
        .get_as_caller(&req, &format!("/telephony/calls/{id}"))
        .await?;
    if call["direction"].as_str() != Some("outbound") {
        return Err(ApiError::validation(
            "callId: not an outbound call; /dev/simulate-call plays inbound calls",
        ));
    }
    let room = call["roomName"].as_str().unwrap_or_default().to_owned();
    let base = dev.base.get().cloned().unwrap_or_default();
    let deliveries: Vec<Value> = dev
        .livekit
        .play_outbound_call(&[format!("{base}{}", crate::routes::webhook::PATH)], &room)
        .await
        .iter()
        .map(|d| json!({"event": d.event, "eventId": d.event_id, "status": d.status}))
        .collect();
    if deliveries.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "the LiveKit emulator placed no call into this room",
        ));
    }
    Ok(HttpResponse::Ok().json(json!({"roomName": room, "deliveries": deliveries})))
}
