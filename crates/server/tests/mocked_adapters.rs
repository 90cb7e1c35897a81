//! The real HTTP app over `mockall` mocks of the ports, for what only a mock can produce: a
//! carrier that fails at each step of a connect, answers the emulators never give, a LiveKit
//! that times out, a vault that refuses to seal or open. Each test shows how the port's error
//! surfaces at the HTTP edge (status, `errorCode`, the request id envelope) and what the real
//! SQLite store holds afterwards. The database is never mocked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use trunkline_core::model::{
    CarrierCredentials, ConnectionStatus, NumberConnection, NumberRouting, SealedSecret,
};
use trunkline_core::ports::{
    Capabilities, Capability, CarrierNumber, CarrierRoute, CarrierRouteTarget,
    CredentialAlternative, CredentialField, CredentialForm, CredentialVault, DispatchRuleInfo,
    IdFormat, InboundTrunkInfo, MockCarrierProvider, MockCredentialVault, MockSipPlatform,
    ProviderError, SipPlatform, VaultError, VerifyReport, WebhookError,
};
use trunkline_core::{
    CarrierNumberId, CustomerId, DispatchRuleId, E164, ErrorCode, ProviderKind, RouteId,
    RouteTargetId, SipTrunkId, ValidationError,
};
use trunkline_server::config::{Config, Env};
use trunkline_server::dev::{DEV_TOKEN_TTL, DevAuthKey, DevRole};
use trunkline_server::state::{Adapters, AppState, OpenedStore, Stores};
use trunkline_vault::{AesGcmVault, KeyRing};

const CUSTOMER: &str = "acme";
const NUMBER: &str = "PN0001";
const E164_NUMBER: &str = "+14155550100";
const ROUTE: &str = "TK0001";
const TARGET: &str = "OU0001";
const SECRET: &str = "carrier-secret-value-9f3k";
const CREDENTIALS: &str = "/telephony/providers/twilio/credentials";
const CONNECT: &str = "/telephony/providers/twilio/numbers/PN0001/connect";
const STATUS: &str = "/telephony/providers/twilio/numbers/PN0001/status";

/// One app over the mocks and a real SQLite file in a temporary directory.
struct Harness {
    _dir: tempfile::TempDir,
    state: AppState,
    stores: Stores,
    token: String,
}

impl Harness {
    /// `vault: None` is the real AES-GCM vault: a mock only where the vault must fail.
    async fn new(
        carrier: MockCarrierProvider,
        sip: Option<MockSipPlatform>,
        vault: Option<MockCredentialVault>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([
            (
                "TRUNKLINE_DATABASE_URL",
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            ("TRUNKLINE_SIP_TARGET", "sip:agent.lk.mock.test".to_owned()),
        ]);
        let config = Config::from_env(&env).unwrap();
        let store = OpenedStore::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        let stores = store.into_stores();
        let vault: Arc<dyn CredentialVault> = if let Some(v) = vault {
            Arc::new(v)
        } else {
            let keys = SecretString::from(format!(
                "k1:{}",
                KeyRing::generate_key().unwrap().expose_secret()
            ));
            Arc::new(AesGcmVault::new(KeyRing::from_config(&keys, "k1").unwrap()))
        };
        let mut carriers: HashMap<ProviderKind, Arc<dyn trunkline_core::ports::CarrierProvider>> =
            HashMap::new();
        carriers.insert(ProviderKind::Twilio, Arc::new(carrier));
        let adapters = Adapters {
            carriers,
            sip: sip.map(|s| Arc::new(s) as Arc<dyn SipPlatform>),
            vault,
            stores: stores.clone(),
            markets: HashMap::new(),
        };
        let key = DevAuthKey::load_or_create(dir.path()).unwrap();
        let token = key
            .mint(
                &customer(),
                DevRole::Customer,
                DEV_TOKEN_TTL,
                &config.claims,
            )
            .unwrap();
        let state = AppState::new(
            Arc::new(config.clone()),
            adapters,
            Arc::new(key.authenticator(config.claims.clone())),
            trunkline_server::telemetry::metrics_handle(),
            "mocked",
        );
        Self {
            _dir: dir,
            state,
            stores,
            token,
        }
    }

    fn post(&self, uri: &str, body: &Value) -> TestRequest {
        TestRequest::post()
            .uri(uri)
            .insert_header(("authorization", format!("Bearer {}", self.token)))
            .set_json(body)
    }

    fn get(&self, uri: &str) -> TestRequest {
        TestRequest::get()
            .uri(uri)
            .insert_header(("authorization", format!("Bearer {}", self.token)))
    }

    async fn connection(&self) -> Option<NumberConnection> {
        self.stores
            .connections
            .get_connection(&customer(), ProviderKind::Twilio, &number_id())
            .await
            .unwrap()
    }

    /// The audit trail's action names, oldest first.
    async fn audited(&self) -> Vec<String> {
        let mut events = self
            .stores
            .audit
            .list_audit(&customer(), 100)
            .await
            .unwrap();
        events.reverse();
        events
            .iter()
            .map(|e| {
                serde_json::to_value(e.action)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

fn customer() -> CustomerId {
    CustomerId::parse(CUSTOMER).unwrap()
}

fn number_id() -> CarrierNumberId {
    CarrierNumberId::parse(NUMBER).unwrap()
}

/// Status, headers and body (JSON) of one request.
async fn call<S, B>(svc: &S, req: TestRequest) -> (StatusCode, HeaderMap, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(svc, req.to_request()).await;
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

/// The error envelope: status, code, a message, and the request id both in the body and
/// in `x-request-id`. Returns the message.
#[track_caller]
fn envelope(
    (status, headers, body): &(StatusCode, HeaderMap, Value),
    want_status: u16,
    want_code: &str,
) -> String {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["errorCode"], want_code, "{body}");
    let header = headers
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap();
    assert!(!header.is_empty());
    assert_eq!(body["requestId"], header, "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    // Neither the carrier's secret nor the number ever comes back in an error.
    assert!(!message.contains(SECRET), "{body}");
    assert!(!message.contains(E164_NUMBER), "{body}");
    message
}

#[track_caller]
fn ok(res: &(StatusCode, HeaderMap, Value)) -> &Value {
    assert_eq!(res.0, StatusCode::OK, "{}", res.2);
    assert!(res.1.get("x-request-id").is_some());
    &res.2
}

fn report() -> VerifyReport {
    VerifyReport {
        account_id: None,
        friendly_name: Some("Acme".to_owned()),
        capabilities: Capabilities {
            numbers: Capability::Available,
            trunking: Capability::Available,
        },
    }
}

fn number(voice_capable: bool) -> CarrierNumber {
    CarrierNumber {
        id: number_id(),
        e164: E164::parse(E164_NUMBER).unwrap(),
        friendly_name: None,
        voice_capable,
        route_id: None,
        routing: NumberRouting::none(),
    }
}

fn unavailable() -> ProviderError {
    ProviderError::unavailable("the carrier did not answer in time")
}

/// A carrier whose routes parse (one secret field, `apiKey`) and whose credentials verify;
/// each test adds the calls it expects.
fn carrier() -> MockCarrierProvider {
    let mut c = MockCarrierProvider::new();
    c.expect_kind().return_const(ProviderKind::Twilio);
    c.expect_credential_form().returning(|| CredentialForm {
        alternatives: vec![CredentialAlternative {
            name: "apiKey",
            fields: vec![CredentialField {
                name: "apiKey",
                label: "API key",
                secret: true,
                pattern: None,
                example: None,
            }],
        }],
    });
    c.expect_parse_credentials().returning(|input| {
        let secret = input
            .secrets
            .get("apiKey")
            .ok_or_else(|| ValidationError::new("is required").field("apiKey"))?;
        Ok(CarrierCredentials {
            account_id: None,
            key_id: None,
            secret: SecretString::from(secret.expose_secret().to_owned()),
        })
    });
    // This carrier signs no webhooks (voice-URL mode): saving credentials stores no secret.
    c.expect_parse_webhook_secret().returning(|_| Ok(None));
    c.expect_parse_number_id().returning(CarrierNumberId::parse);
    c.expect_number_id_format().return_const(IdFormat {
        pattern: "^PN[0-9]+$",
        example: "PN0001",
        description: "a mock number id",
    });
    c
}

/// [`carrier`] that verifies, so that credentials save.
fn verifying_carrier() -> MockCarrierProvider {
    let mut c = carrier();
    c.expect_verify().returning(|_| Ok(report()));
    c
}

/// A carrier on which connect gets as far as its first write: the number (voice capable,
/// on no route) and no trunk of ours yet.
fn reading_carrier() -> MockCarrierProvider {
    let mut c = verifying_carrier();
    c.expect_fetch_number().returning(|_, _| Ok(number(true)));
    c.expect_find_routes().returning(|_, _| Ok(Vec::new()));
    c
}

/// Creates the route it is asked for, keeping its name for later reads.
fn creates_route(c: &mut MockCarrierProvider) -> Arc<Mutex<Option<String>>> {
    let name = Arc::new(Mutex::new(None));
    let kept = name.clone();
    c.expect_create_route().times(1).returning(move |_, spec| {
        *kept.lock().unwrap() = Some(spec.name.clone());
        Ok(CarrierRoute {
            id: RouteId::parse(ROUTE).unwrap(),
            name: Some(spec.name.clone()),
        })
    });
    name
}

fn created_target(
    route: &RouteId,
    spec: &trunkline_core::ports::RouteTargetSpec,
) -> CarrierRouteTarget {
    CarrierRouteTarget {
        id: RouteTargetId::parse(TARGET).unwrap(),
        route_id: route.clone(),
        sip_url: spec.target.sip_url().to_string(),
        priority: spec.target.priority(),
        weight: spec.target.weight(),
        enabled: spec.enabled,
        name: Some(spec.name.clone()),
    }
}

/// A carrier on which connect creates the route and its target; each test says how the
/// attachment goes.
fn building_carrier() -> MockCarrierProvider {
    let mut c = reading_carrier();
    creates_route(&mut c);
    c.expect_create_route_target()
        .times(1)
        .returning(|_, route, spec| Ok(created_target(route, spec)));
    c
}

/// A carrier on which a first connect succeeds.
fn connecting_carrier() -> MockCarrierProvider {
    let mut c = building_carrier();
    c.expect_attach_number()
        .times(1)
        .returning(|_, _, _| Ok(()));
    c
}

/// A connect that failed after the carrier created the route: the route is kept.
#[track_caller]
fn failed_on_the_route(conn: &NumberConnection) {
    assert_eq!(conn.status, ConnectionStatus::Failed, "{conn:?}");
    assert_eq!(conn.route_id.as_ref().map(RouteId::as_str), Some(ROUTE));
    assert!(conn.route_created, "{conn:?}");
}

/// A LiveKit that holds nothing for the number and creates what it is asked for.
fn livekit() -> MockSipPlatform {
    let mut s = MockSipPlatform::new();
    s.expect_inbound_trunks_for_number()
        .returning(|_| Ok(Vec::new()));
    s.expect_create_inbound_trunk().returning(|spec| {
        Ok(InboundTrunkInfo {
            id: SipTrunkId::parse("ST_mock").unwrap(),
            name: spec.name.clone(),
            numbers: vec![spec.number.to_string()],
        })
    });
    s.expect_create_dispatch_rule().returning(|spec| {
        Ok(DispatchRuleInfo {
            id: DispatchRuleId::parse("SDR_mock").unwrap(),
            name: spec.name.clone(),
            trunk_ids: vec![spec.trunk_id.to_string()],
            room_prefix: Some(spec.room_prefix.clone()),
            agent_names: Vec::new(),
        })
    });
    s
}

async fn serve(
    h: &Harness,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(trunkline_server::app(h.state.clone())).await
}

/// The app with the customer's credentials saved through the route (so verified and sealed).
async fn serve_with_credentials(
    h: &Harness,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    let svc = serve(h).await;
    let res = call(&svc, h.post(CREDENTIALS, &json!({"apiKey": SECRET}))).await;
    assert!(ok(&res)["integrationId"].is_string(), "{}", res.2);
    svc
}

#[actix_web::test]
async fn carrier_down_while_reading_the_number_stores_nothing() {
    let mut c = verifying_carrier();
    c.expect_fetch_number()
        .times(1)
        .returning(|_, _| Err(unavailable()));
    c.expect_find_routes().returning(|_, _| Ok(Vec::new()));
    let h = Harness::new(c, Some(livekit()), None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    envelope(&res, 503, "PROVIDER_UNAVAILABLE");
    assert!(h.connection().await.is_none());
    assert_eq!(h.audited().await, ["credentials.saved"]);
}

#[actix_web::test]
async fn carrier_down_while_creating_the_route_looks_again_and_keeps_no_route() {
    let mut c = verifying_carrier();
    c.expect_fetch_number().returning(|_, _| Ok(number(true)));
    // Once before taking the trunk's lease (taken unchanged since the peek, so that read
    // stands: nobody can have created the trunk meanwhile), once more after the failed create
    // (its answer may have been lost).
    c.expect_find_routes()
        .times(2)
        .returning(|_, _| Ok(Vec::new()));
    c.expect_create_route()
        .times(1)
        .returning(|_, _| Err(unavailable()));
    let h = Harness::new(c, None, None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    envelope(&res, 503, "PROVIDER_UNAVAILABLE");
    let conn = h.connection().await.expect("the attempt is recorded");
    assert_eq!(conn.status, ConnectionStatus::Failed);
    assert_eq!(conn.route_id, None);
    assert!(conn.route_targets.is_empty());
    assert!(
        conn.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("PROVIDER_UNAVAILABLE")),
        "{conn:?}"
    );
    assert_eq!(h.audited().await, ["credentials.saved"]);
}

#[actix_web::test]
async fn route_target_failure_keeps_the_route_and_the_retry_reuses_it() {
    let mut c = reading_carrier();
    let name = creates_route(&mut c);
    // On the retry the stored route is read back, under the name it was created with.
    c.expect_fetch_route().returning(move |_, id| {
        Ok(Some(CarrierRoute {
            id: id.clone(),
            name: name.lock().unwrap().clone(),
        }))
    });
    c.expect_list_route_targets()
        .returning(|_, _| Ok(Vec::new()));
    let attempts = AtomicUsize::new(0);
    c.expect_create_route_target()
        .times(2)
        .returning(move |_, route, spec| {
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(unavailable())
            } else {
                Ok(created_target(route, spec))
            }
        });
    c.expect_attach_number()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let h = Harness::new(c, None, None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    envelope(&res, 503, "PROVIDER_UNAVAILABLE");
    let conn = h.connection().await.expect("the attempt is recorded");
    failed_on_the_route(&conn);
    assert!(conn.route_targets.is_empty());

    let res = call(&svc, h.get(STATUS)).await;
    let status = ok(&res);
    assert_eq!(status["connection"]["status"], "failed", "{status}");
    assert_eq!(status["connection"]["routeId"], ROUTE, "{status}");

    // The retry finds the stored route: no second create (`times(1)` above).
    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    let body = ok(&res);
    assert_eq!(body["status"], "connected", "{body}");
    assert_eq!(body["routeId"], ROUTE, "{body}");
    let conn = h.connection().await.unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);
    assert_eq!(conn.last_error, None);
    assert_eq!(
        conn.route_targets
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        [TARGET]
    );
    assert_eq!(h.audited().await, ["credentials.saved", "number.connected"]);
}

#[actix_web::test]
async fn route_gone_at_the_carrier_is_recreated_on_reconnect() {
    let mut c = reading_carrier();
    let created = AtomicUsize::new(0);
    c.expect_create_route().times(2).returning(move |_, spec| {
        let n = created.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(CarrierRoute {
            id: RouteId::parse(&format!("TK000{n}")).unwrap(),
            name: Some(spec.name.clone()),
        })
    });
    // Deleted behind trunkline's back: the stored route reads as absent, its targets as
    // not found.
    c.expect_fetch_route().returning(|_, _| Ok(None));
    c.expect_list_route_targets()
        .returning(|_, _| Err(ProviderError::new(ErrorCode::NotFound, "no such route")));
    c.expect_create_route_target()
        .times(2)
        .returning(|_, route, spec| Ok(created_target(route, spec)));
    c.expect_attach_number()
        .times(2)
        .returning(|_, _, _| Ok(()));
    let h = Harness::new(c, None, None).await;
    let svc = serve_with_credentials(&h).await;
    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    assert_eq!(ok(&res)["routeId"], ROUTE);

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    let body = ok(&res);
    assert_eq!(body["status"], "connected", "{body}");
    assert_eq!(body["routeId"], "TK0002", "{body}");
    let trunk = body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "trunk")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(trunk["action"], "created", "{body}");
    let conn = h.connection().await.unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);
    assert_eq!(conn.route_id.as_ref().map(RouteId::as_str), Some("TK0002"));
    assert_eq!(conn.route_targets.len(), 1);
}

#[actix_web::test]
async fn number_held_at_attach_is_a_409_and_keeps_what_was_created() {
    let mut c = building_carrier();
    c.expect_attach_number().times(1).returning(|_, _, _| {
        Err(ProviderError::new(
            ErrorCode::NumberInUse,
            "the number is attached to another trunk",
        )
        .with_provider_code("21218"))
    });
    let h = Harness::new(c, None, None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    let message = envelope(&res, 409, "NUMBER_IN_USE");
    // The carrier's own code goes to the logs, not to the caller.
    assert!(!message.contains("21218"), "{message}");
    let conn = h.connection().await.expect("the attempt is recorded");
    failed_on_the_route(&conn);
    assert_eq!(
        conn.route_targets
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        [TARGET]
    );
    assert_eq!(h.audited().await, ["credentials.saved"]);
}

#[actix_web::test]
async fn number_that_takes_no_voice_calls_is_refused_before_any_write() {
    let mut c = verifying_carrier();
    c.expect_fetch_number().returning(|_, _| Ok(number(false)));
    c.expect_find_routes().returning(|_, _| Ok(Vec::new()));
    // No create_route / attach_number expectation: any write would panic the mock.
    let h = Harness::new(c, Some(MockSipPlatform::new()), None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    let message = envelope(&res, 400, "VALIDATION_FAILED");
    assert!(message.contains("voice"), "{message}");
    assert!(h.connection().await.is_none());
}

#[actix_web::test]
async fn carrier_rate_limit_is_a_429_with_retry_after() {
    let mut c = verifying_carrier();
    c.expect_fetch_number().returning(|_, _| {
        Err(
            ProviderError::new(ErrorCode::RateLimited, "too many requests")
                .with_retry_after(Duration::from_secs(7)),
        )
    });
    c.expect_find_routes().returning(|_, _| Ok(Vec::new()));
    let h = Harness::new(c, None, None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    envelope(&res, 429, "RATE_LIMITED");
    assert_eq!(res.1.get("retry-after").unwrap(), "7");
    assert!(h.connection().await.is_none());
}

#[actix_web::test]
async fn livekit_timeout_keeps_the_carrier_half() {
    let c = connecting_carrier();
    let mut s = MockSipPlatform::new();
    s.expect_inbound_trunks_for_number()
        .returning(|_| Ok(Vec::new()));
    s.expect_create_inbound_trunk()
        .times(1)
        .returning(|_| Err(ProviderError::unavailable("LiveKit timed out")));
    let h = Harness::new(c, Some(s), None).await;
    let svc = serve_with_credentials(&h).await;

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    envelope(&res, 503, "PROVIDER_UNAVAILABLE");
    let conn = h.connection().await.expect("the attempt is recorded");
    failed_on_the_route(&conn);
    assert_eq!(conn.route_targets.len(), 1);
    assert_eq!(conn.livekit_trunk_id, None);
    assert_eq!(conn.livekit_rule_id, None);
    assert_eq!(h.audited().await, ["credentials.saved"]);
}

#[actix_web::test]
async fn webhook_refusals_surface_as_their_codes() {
    let mut s = MockSipPlatform::new();
    s.expect_verify_webhook().returning(|_, auth| {
        if auth == "forged" {
            Err(WebhookError::InvalidSignature("bad signature".to_owned()))
        } else {
            Err(WebhookError::Malformed("no event".to_owned()))
        }
    });
    let h = Harness::new(carrier(), Some(s), None).await;
    let svc = serve(&h).await;
    let webhook = |auth: &str| {
        TestRequest::post()
            .uri("/telephony/livekit-webhook")
            .insert_header(("authorization", auth.to_owned()))
            .insert_header(("content-type", "application/webhook+json"))
            .set_payload(r#"{"event":"participant_joined"}"#)
    };
    let res = call(&svc, webhook("forged")).await;
    envelope(&res, 401, "UNAUTHENTICATED");
    let res = call(&svc, webhook("signed")).await;
    envelope(&res, 400, "VALIDATION_FAILED");
}

/// A vault that seals, and opens until `refuse` is set (a key taken out of the ring).
fn vault(refuse: Arc<AtomicBool>) -> MockCredentialVault {
    let mut v = MockCredentialVault::new();
    v.expect_seal()
        .returning(|secret, _| Ok(SealedSecret(secret.expose_secret().as_bytes().to_vec())));
    v.expect_open().returning(move |sealed, _| {
        if refuse.load(Ordering::SeqCst) {
            Err(VaultError::UnknownKey("k-retired".to_owned()))
        } else {
            Ok(SecretString::from(
                String::from_utf8(sealed.0.clone()).unwrap(),
            ))
        }
    });
    v.expect_needs_reseal().return_const(false);
    v
}

/// An `INTERNAL` answer is generic: the vault's cause (key id, what failed) is for the logs.
#[track_caller]
fn hides_the_cause(message: &str) {
    assert!(message.starts_with("internal error;"), "{message}");
    for cause in ["vault", "k-retired", "key", "encrypt", "decrypt"] {
        assert!(!message.to_lowercase().contains(cause), "{message}");
    }
}

#[actix_web::test]
async fn vault_that_refuses_to_open_fails_status_sections_and_connect_without_its_cause() {
    let c = connecting_carrier();
    let refuse = Arc::new(AtomicBool::new(false));
    let h = Harness::new(c, None, Some(vault(refuse.clone()))).await;
    let svc = serve_with_credentials(&h).await;
    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    assert_eq!(ok(&res)["status"], "connected");

    refuse.store(true, Ordering::SeqCst);
    let res = call(&svc, h.get(STATUS)).await;
    let status = ok(&res);
    for section in ["credentials", "number", "trunk", "routeTargets"] {
        assert_eq!(status[section]["ok"], false, "{section}: {status}");
        assert_eq!(
            status[section]["errorCode"], "INTERNAL",
            "{section}: {status}"
        );
        let message = status[section]["message"].as_str().unwrap();
        assert!(!message.contains("k-retired"), "{section}: {status}");
    }
    assert_eq!(status["connection"]["status"], "connected", "{status}");

    let res = call(&svc, h.post(CONNECT, &json!({}))).await;
    let message = envelope(&res, 500, "INTERNAL");
    hides_the_cause(&message);
    // Nothing was attempted, so nothing is recorded against the connection.
    let conn = h.connection().await.unwrap();
    assert_eq!(conn.status, ConnectionStatus::Connected);
    assert_eq!(conn.last_error, None);
}

#[actix_web::test]
async fn vault_that_refuses_to_seal_stores_no_credentials() {
    let mut v = MockCredentialVault::new();
    v.expect_seal()
        .times(1)
        .returning(|_, _| Err(VaultError::Encrypt));
    let h = Harness::new(verifying_carrier(), None, Some(v)).await;
    let svc = serve(&h).await;

    let res = call(&svc, h.post(CREDENTIALS, &json!({"apiKey": SECRET}))).await;
    let message = envelope(&res, 500, "INTERNAL");
    hides_the_cause(&message);
    let stored = h
        .stores
        .integrations
        .get_integration(&customer(), ProviderKind::Twilio)
        .await
        .unwrap();
    assert!(stored.is_none());
    let res = call(&svc, h.get("/telephony/providers/twilio/numbers")).await;
    envelope(&res, 404, "INTEGRATION_NOT_FOUND");
    assert!(h.audited().await.is_empty());
}

#[actix_web::test]
async fn credentials_without_permission_are_a_verdict_and_are_not_saved() {
    let mut c = carrier();
    c.expect_verify().returning(|_| {
        Err(ProviderError::new(
            ErrorCode::InsufficientPermissions,
            "the key may not manage trunks",
        ))
    });
    let h = Harness::new(c, None, None).await;
    let svc = serve(&h).await;

    let res = call(
        &svc,
        h.post(
            "/telephony/providers/twilio/credentials:verify",
            &json!({"apiKey": SECRET}),
        ),
    )
    .await;
    let body = ok(&res);
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["errorCode"], "INSUFFICIENT_PERMISSIONS", "{body}");
    assert!(!body.to_string().contains(SECRET));

    let res = call(&svc, h.post(CREDENTIALS, &json!({"apiKey": SECRET}))).await;
    envelope(&res, 422, "INSUFFICIENT_PERMISSIONS");
    let stored = h
        .stores
        .integrations
        .get_integration(&customer(), ProviderKind::Twilio)
        .await
        .unwrap();
    assert!(stored.is_none());
    // The verdicts are audited; nothing was saved.
    assert_eq!(h.audited().await, ["credentials.verified"]);
}
