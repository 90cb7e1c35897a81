//! The app as actix serves it, on a real SQLite file: envelopes for every kind of error,
//! request ids, auth extractors, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use trunkline_core::CustomerId;
use trunkline_vault::{AesGcmVault, KeyRing};

use super::*;
use crate::auth::{ReadScope, WriteScope};
use crate::config::{Config, Env};
use crate::dev::{DEV_TOKEN_TTL, DevAuthKey, DevRole};
use crate::extract::ApiJson;
use crate::state::OpenedStore;

const LIMIT: usize = 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    key: DevAuthKey,
}

impl Fixture {
    async fn new(migrate: bool) -> Self {
        Self::with_env(migrate, []).await
    }

    /// With more `TRUNKLINE_*` variables (they win over the defaults here).
    async fn with_env(migrate: bool, extra: impl IntoIterator<Item = (&str, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut pairs = vec![
            (
                "TRUNKLINE_DATABASE_URL",
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            ("TRUNKLINE_MAX_BODY_BYTES", LIMIT.to_string()),
        ];
        pairs.extend(extra);
        let env = Env::from_pairs(pairs);
        let config = Config::from_env(&env).unwrap();
        let store = OpenedStore::connect(&config).await.unwrap();
        if migrate {
            store.migrate().await.unwrap();
        }
        let key = DevAuthKey::load_or_create(dir.path()).unwrap();
        let keys = SecretString::from(format!(
            "k1:{}",
            KeyRing::generate_key()
                .expect("OS randomness")
                .expose_secret()
        ));
        let ring = KeyRing::from_config(&keys, "k1").unwrap();
        let vault: Arc<dyn trunkline_core::ports::CredentialVault> =
            Arc::new(AesGcmVault::new(ring));
        let adapters =
            crate::state::Adapters::from_config(&config, store.into_stores(), vault).unwrap();
        let state = AppState::new(
            Arc::new(config.clone()),
            adapters,
            Arc::new(key.authenticator(config.claims.clone())),
            crate::telemetry::metrics_handle(),
            "test",
        );
        Self {
            _dir: dir,
            state,
            key,
        }
    }

    fn token(&self, customer: &str, role: DevRole) -> String {
        self.key
            .mint(
                &CustomerId::parse(customer).unwrap(),
                role,
                DEV_TOKEN_TTL,
                &self.state.config.claims,
            )
            .unwrap()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Body {
    name: String,
    inner: Inner,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Inner {
    count: u32,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Paging {
    limit: u32,
}

/// The production app plus routes that exercise the extractors later features use.
fn test_app(
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
    app(state)
        .route(
            "/t/api-json",
            web::post().to(|b: ApiJson<Body>| async move { HttpResponse::Ok().body(b.0.name) }),
        )
        .route(
            "/t/json",
            web::post().to(|b: web::Json<Body>| async move { HttpResponse::Ok().body(b.0.name) }),
        )
        .route(
            "/t/bytes",
            web::post().to(|b: web::Bytes| async move { HttpResponse::Ok().body(b) }),
        )
        .route(
            "/t/items/{n}",
            web::get()
                .to(|n: web::Path<u32>| async move { HttpResponse::Ok().body(n.to_string()) }),
        )
        .route(
            "/t/query",
            web::get().to(|q: web::Query<Paging>| async move {
                HttpResponse::Ok().body(q.limit.to_string())
            }),
        )
        .route(
            "/t/read",
            web::get().to(|s: ReadScope| async move {
                HttpResponse::Ok().body(s.customer_id.as_str().to_owned())
            }),
        )
        .route(
            "/t/write",
            web::post().to(|s: WriteScope| async move {
                HttpResponse::Ok().body(s.customer_id.as_str().to_owned())
            }),
        )
        .route(
            "/t/boom",
            web::get().to(|| async {
                Err::<HttpResponse, _>(ApiError::internal("db password hunter2 rejected"))
            }),
        )
}

/// Status, headers and body (JSON, or the text as a JSON string) of one request.
async fn call<S, B>(svc: &S, req: TestRequest) -> (StatusCode, header::HeaderMap, Value)
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

/// Assert the envelope and that its request id is the header's.
#[track_caller]
fn envelope(
    status: StatusCode,
    headers: &header::HeaderMap,
    body: &Value,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["errorCode"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let header = headers
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap();
    assert_eq!(body["requestId"], header, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "{body}"
    );
}

#[actix_web::test]
async fn unknown_route_is_a_404_envelope() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::get().uri("/nope")).await;
    envelope(s, &h, &b, 404, "NOT_FOUND");
}

#[actix_web::test]
async fn wrong_method_is_a_405_envelope() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::delete().uri("/healthz")).await;
    envelope(s, &h, &b, 405, "METHOD_NOT_ALLOWED");
    let (s, h, b) = call(&svc, TestRequest::get().uri("/t/api-json")).await;
    envelope(s, &h, &b, 405, "METHOD_NOT_ALLOWED");
}

#[actix_web::test]
async fn bad_json_is_a_400_envelope_naming_the_field() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let post = |uri: &str, body: &str| {
        TestRequest::post()
            .uri(uri)
            .insert_header(("content-type", "application/json"))
            .set_payload(body.to_owned())
    };
    for uri in ["/t/api-json", "/t/json"] {
        let (s, h, b) = call(&svc, post(uri, "{not json")).await;
        envelope(s, &h, &b, 400, "VALIDATION_FAILED");

        let (s, h, b) = call(&svc, post(uri, r#"{"inner":{"count":1}}"#)).await;
        envelope(s, &h, &b, 400, "VALIDATION_FAILED");
        assert!(
            b["message"].as_str().unwrap().contains("name: is required"),
            "{b}"
        );

        // A wrong value is not echoed back: it may be personal data.
        let (s, h, b) = call(
            &svc,
            post(uri, r#"{"name":"n","inner":{"count":"+14155550100"}}"#),
        )
        .await;
        envelope(s, &h, &b, 400, "VALIDATION_FAILED");
        assert!(
            !b["message"].as_str().unwrap().contains("4155550100"),
            "{b}"
        );

        let (s, h, b) = call(
            &svc,
            TestRequest::post().uri(uri).set_payload(r#"{"name":"n"}"#),
        )
        .await;
        envelope(s, &h, &b, 400, "VALIDATION_FAILED");
        assert!(b["message"].as_str().unwrap().contains("JSON"), "{b}");
    }
    // ApiJson knows where in the document the problem is.
    let (_, _, b) = call(
        &svc,
        post("/t/api-json", r#"{"name":"n","inner":{"count":-1}}"#),
    )
    .await;
    assert!(
        b["message"].as_str().unwrap().contains("inner.count"),
        "{b}"
    );

    let (s, _, b) = call(
        &svc,
        post("/t/api-json", r#"{"name":"ok","inner":{"count":1}}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, "ok");
}

#[actix_web::test]
async fn bad_path_and_query_are_400_envelopes() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::get().uri("/t/items/abc")).await;
    envelope(s, &h, &b, 400, "VALIDATION_FAILED");
    assert!(!b["message"].as_str().unwrap().contains("abc"), "{b}");
    let (s, h, b) = call(&svc, TestRequest::get().uri("/t/query?limit=many")).await;
    envelope(s, &h, &b, 400, "VALIDATION_FAILED");
    let (s, h, b) = call(&svc, TestRequest::get().uri("/t/query")).await;
    envelope(s, &h, &b, 400, "VALIDATION_FAILED");
    assert!(b["message"].as_str().unwrap().contains("limit"), "{b}");
    let (s, _, b) = call(&svc, TestRequest::get().uri("/t/items/7")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

#[actix_web::test]
async fn body_over_the_limit_is_a_413_envelope() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let big = format!(
        r#"{{"name":"{}","inner":{{"count":1}}}}"#,
        "x".repeat(LIMIT * 2)
    );
    for uri in ["/t/api-json", "/t/json", "/t/bytes"] {
        let req = TestRequest::post()
            .uri(uri)
            .insert_header(("content-type", "application/json"))
            .set_payload(big.clone());
        let (s, h, b) = call(&svc, req).await;
        envelope(s, &h, &b, 413, "PAYLOAD_TOO_LARGE");
    }
    // Just under the limit passes.
    let ok = format!(
        r#"{{"name":"{}","inner":{{"count":1}}}}"#,
        "x".repeat(LIMIT - 100)
    );
    let req = TestRequest::post()
        .uri("/t/api-json")
        .insert_header(("content-type", "application/json"))
        .set_payload(ok);
    let (s, _, _) = call(&svc, req).await;
    assert_eq!(s, StatusCode::OK);
}

#[actix_web::test]
async fn internal_errors_answer_generically() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::get().uri("/t/boom")).await;
    envelope(s, &h, &b, 500, "INTERNAL");
    assert!(!b["message"].as_str().unwrap().contains("hunter2"), "{b}");
}

#[actix_web::test]
async fn request_ids_are_kept_when_sane_and_replaced_otherwise() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (_, h, _) = call(
        &svc,
        TestRequest::get()
            .uri("/healthz")
            .insert_header(("x-request-id", "abc-123")),
    )
    .await;
    assert_eq!(h.get("x-request-id").unwrap(), "abc-123");
    let (_, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/nope")
            .insert_header(("x-request-id", "bad id\twith spaces")),
    )
    .await;
    let id = h.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(b["requestId"], id);
    // Two requests without one get different ids.
    let (_, h1, _) = call(&svc, TestRequest::get().uri("/healthz")).await;
    let (_, h2, _) = call(&svc, TestRequest::get().uri("/healthz")).await;
    assert_ne!(h1.get("x-request-id"), h2.get("x-request-id"));
}

#[actix_web::test]
async fn me_requires_a_valid_token() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::get().uri("/telephony/me")).await;
    envelope(s, &h, &b, 401, "UNAUTHENTICATED");
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");

    let (s, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/telephony/me")
            .insert_header(("authorization", "Basic dXNlcjpwYXNz")),
    )
    .await;
    envelope(s, &h, &b, 401, "UNAUTHENTICATED");

    let token = f.token("cust_7", DevRole::Customer);
    let (s, _, b) = call(
        &svc,
        TestRequest::get()
            .uri("/telephony/me")
            .insert_header(("authorization", format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"customerId": "cust_7", "subject": "dev-user", "roles": ["customer"]})
    );
}

#[actix_web::test]
async fn support_reads_any_customer_and_writes_nothing() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let support = format!("Bearer {}", f.token("staff", DevRole::Support));
    let customer = format!("Bearer {}", f.token("cust_1", DevRole::Customer));

    let (s, _, b) = call(
        &svc,
        TestRequest::get()
            .uri("/t/read?customerId=cust_2")
            .insert_header(("authorization", support.clone())),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, "cust_2");

    let (s, h, b) = call(
        &svc,
        TestRequest::post()
            .uri("/t/write")
            .insert_header(("authorization", support.clone())),
    )
    .await;
    envelope(s, &h, &b, 403, "FORBIDDEN");

    let (s, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/t/read?customerId=cust_2")
            .insert_header(("authorization", customer.clone())),
    )
    .await;
    envelope(s, &h, &b, 403, "FORBIDDEN");

    let (s, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/t/read?customerId=bad%20id")
            .insert_header(("authorization", support)),
    )
    .await;
    envelope(s, &h, &b, 400, "VALIDATION_FAILED");
    assert!(b["message"].as_str().unwrap().contains("customerId"), "{b}");

    let (s, _, b) = call(
        &svc,
        TestRequest::post()
            .uri("/t/write")
            .insert_header(("authorization", customer)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, "cust_1");
}

#[actix_web::test]
async fn readiness_follows_the_database() {
    let f = Fixture::new(false).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, h, b) = call(&svc, TestRequest::get().uri("/readyz")).await;
    envelope(s, &h, &b, 503, "SERVICE_UNAVAILABLE");
    let (s, _, _) = call(&svc, TestRequest::get().uri("/healthz")).await;
    assert_eq!(s, StatusCode::OK);

    let OpenedStore::Sqlite(store) = OpenedStore::connect(&f.state.config).await.unwrap() else {
        panic!("sqlite expected");
    };
    store.migrate().await.unwrap();
    let (s, _, b) = call(&svc, TestRequest::get().uri("/readyz")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b, json!({"status": "ready"}));
}

#[actix_web::test]
async fn metrics_label_routes_by_pattern() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    call(&svc, TestRequest::get().uri("/t/items/424242")).await;
    call(&svc, TestRequest::get().uri("/some/raw/path/777")).await;
    let res = test::call_service(&svc, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        text.contains(r#"route="/t/items/{n}""#) && text.contains(r#"route="unmatched""#),
        "{text}"
    );
    assert!(
        !text.contains("/t/items/424242") && !text.contains("/some/raw/path"),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[actix_web::test]
async fn openapi_document_describes_the_routes() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, _, doc) = call(&svc, TestRequest::get().uri("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/telephony/me",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert!(
        doc["components"]["schemas"]["ErrorEnvelope"].is_object(),
        "{doc}"
    );
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
    assert_eq!(
        doc["paths"]["/telephony/me"]["get"]["security"],
        json!([{"bearer": []}])
    );
    // The management plane: every route, its body and answer schemas, bearer auth. Each
    // carrier's routes are written out (its credentials body is inline, see below).
    let base = "/telephony/providers/twilio";
    assert!(
        doc["paths"]["/telephony/providers/telnyx/numbers"]["get"].is_object(),
        "{doc}"
    );
    for (path, method, request, answer) in [
        (
            format!("{base}/credentials:verify"),
            "post",
            None,
            "VerifyResponse",
        ),
        (format!("{base}/credentials"), "post", None, "SaveResponse"),
        (
            format!("{base}/credentials"),
            "delete",
            None,
            "DeleteResponse",
        ),
        (format!("{base}/numbers"), "get", None, "NumbersResponse"),
        (
            format!("{base}/numbers/{{numberId}}/connect"),
            "post",
            Some("ConnectBody"),
            "ConnectResponse",
        ),
        (
            format!("{base}/numbers/{{numberId}}/disconnect"),
            "post",
            Some("DisconnectBody"),
            "DisconnectResponse",
        ),
        (
            format!("{base}/numbers/{{numberId}}/status"),
            "get",
            None,
            "StatusResponse",
        ),
        ("/telephony/audit".to_owned(), "get", None, "AuditResponse"),
        (
            "/telephony/calls/{callId}".to_owned(),
            "get",
            None,
            "CallJson",
        ),
        (
            "/telephony/calls/by-room/{roomName}".to_owned(),
            "get",
            None,
            "CallJson",
        ),
    ] {
        let op = &doc["paths"][&path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert_eq!(op["security"], json!([{"bearer": []}]), "{path}");
        if let Some(request) = request {
            // An optional body is `oneOf: [null, $ref]`.
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            let reference = body["oneOf"]
                .as_array()
                .and_then(|alts| alts.iter().find(|a| a.get("$ref").is_some()))
                .unwrap_or(body);
            assert_eq!(
                reference["$ref"],
                format!("#/components/schemas/{request}"),
                "{path}"
            );
        }
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/{answer}"),
            "{path}"
        );
        assert!(
            doc["components"]["schemas"][answer].is_object(),
            "{answer} schema missing"
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{path} does not document 401"
        );
    }
    // Schemas reached only through others are registered too.
    for schema in [
        "StepJson",
        "RoutingJson",
        "OriginationTargetBody",
        "CredentialsSection",
        "SectionFailed",
        "DriftJson",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} schema missing"
        );
    }
    // The webhook: no bearer token (LiveKit signs it), the raw body, its acknowledgement.
    let hook = &doc["paths"]["/telephony/livekit-webhook"]["post"];
    assert!(hook.is_object(), "webhook route missing");
    assert!(hook.get("security").is_none(), "{hook}");
    assert!(
        hook["requestBody"]["content"]["application/webhook+json"].is_object(),
        "{hook}"
    );
    assert_eq!(
        hook["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/WebhookAck"
    );
    for status in ["400", "401", "503"] {
        assert!(hook["responses"][status].is_object(), "webhook {status}");
    }
    let status = &doc["components"]["schemas"]["StatusResponse"]["properties"];
    for field in ["lastWebhook", "recentCalls", "livekitTrunk", "livekitRule"] {
        assert!(status[field].is_object(), "StatusResponse.{field} missing");
    }
    let params = &doc["paths"][format!("{base}/numbers")]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["pageSize", "cursor", "phoneNumber", "customerId"] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
}

#[actix_web::test]
async fn webhook_without_livekit_is_not_configured_and_needs_no_user_token() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    // LiveKit's own request: a bare token, no bearer, its content type.
    let (s, h, b) = call(
        &svc,
        TestRequest::post()
            .uri("/telephony/livekit-webhook")
            .insert_header(("content-type", "application/webhook+json"))
            .insert_header(("authorization", "eyJhbGciOiJIUzI1NiJ9.e30.x"))
            .set_payload(r#"{"event":"room_started","id":"EV_1"}"#),
    )
    .await;
    envelope(s, &h, &b, 503, "NOT_CONFIGURED");
    // Without any header it is the same answer: configuration is checked first, so a
    // misconfigured server says so instead of blaming LiveKit's signature.
    let (s, h, b) = call(
        &svc,
        TestRequest::post()
            .uri("/telephony/livekit-webhook")
            .set_payload("{}"),
    )
    .await;
    envelope(s, &h, &b, 503, "NOT_CONFIGURED");
    // The body limit applies to the raw body too.
    let (s, h, b) = call(
        &svc,
        TestRequest::post()
            .uri("/telephony/livekit-webhook")
            .set_payload(vec![b'x'; LIMIT + 1]),
    )
    .await;
    envelope(s, &h, &b, 413, "PAYLOAD_TOO_LARGE");
    let (s, h, b) = call(&svc, TestRequest::get().uri("/telephony/livekit-webhook")).await;
    envelope(s, &h, &b, 405, "METHOD_NOT_ALLOWED");
}

#[actix_web::test]
async fn call_routes_are_authenticated_validated_and_scoped() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let acme = f.token("acme", DevRole::Customer);
    let support = f.token("staff", DevRole::Support);
    let id = uuid::Uuid::new_v4();
    for uri in [
        format!("/telephony/calls/{id}"),
        "/telephony/calls/by-room/call-_%2B14155550199_x".to_owned(),
    ] {
        let (s, h, b) = call(&svc, TestRequest::get().uri(&uri)).await;
        envelope(s, &h, &b, 401, "UNAUTHENTICATED");
        for token in [&acme, &support] {
            let (s, h, b) = call(
                &svc,
                TestRequest::get()
                    .uri(&uri)
                    .insert_header(("authorization", format!("Bearer {token}"))),
            )
            .await;
            envelope(s, &h, &b, 404, "NOT_FOUND");
        }
        // A customer may not name another customer.
        let (s, h, b) = call(
            &svc,
            TestRequest::get()
                .uri(&format!("{uri}?customerId=other"))
                .insert_header(("authorization", format!("Bearer {acme}"))),
        )
        .await;
        envelope(s, &h, &b, 403, "FORBIDDEN");
    }
    let (s, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/telephony/calls/not-a-uuid")
            .insert_header(("authorization", format!("Bearer {acme}"))),
    )
    .await;
    envelope(s, &h, &b, 400, "VALIDATION_FAILED");
    assert!(b["message"].as_str().unwrap().contains("callId"), "{b}");
    // `by-room` is never read as a call id, and a room name may hold a `/`.
    let (s, h, b) = call(
        &svc,
        TestRequest::get()
            .uri("/telephony/calls/by-room/a/b")
            .insert_header(("authorization", format!("Bearer {acme}"))),
    )
    .await;
    envelope(s, &h, &b, 404, "NOT_FOUND");
    assert_eq!(b["message"], "no such call", "{b}");
}

/// What a parameter of an operation is, by name.
fn param<'d>(op: &'d Value, name: &str) -> &'d Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name} in {op}"))
}

/// `/openapi.json` states the constraints the server enforces, not only prose: what
/// schemathesis (scripts/schemathesis) generates from it is then what the server accepts.
#[actix_web::test]
async fn openapi_document_states_the_constraints_the_server_enforces() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let (s, _, doc) = call(&svc, TestRequest::get().uri("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let base = "/telephony/providers/twilio";
    let connect = &doc["paths"][format!("{base}/numbers/{{numberId}}/connect")]["post"];

    // Each carrier offered has its own paths, with its own number id format; no path
    // keeps a `{provider}` parameter that would let a Telnyx id pass as a Twilio one.
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!path.contains("{provider}"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["parameters"]
                    .as_array()
                    .is_none_or(|ps| ps.iter().all(|p| p["name"] != "provider")),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        param(connect, "numberId")["schema"]["pattern"],
        "^PN[0-9a-fA-F]{32}$"
    );
    let telnyx_connect =
        &doc["paths"]["/telephony/providers/telnyx/numbers/{numberId}/connect"]["post"];
    assert_eq!(
        param(telnyx_connect, "numberId")["schema"]["pattern"],
        "^[0-9]{1,20}$"
    );
    let audit = &doc["paths"]["/telephony/audit"]["get"];
    let customer = &param(audit, "customerId")["schema"];
    assert_eq!(customer["maxLength"], 128, "{customer}");
    let pattern = customer["pattern"].as_str().unwrap();
    assert!(
        pattern.contains("]+"),
        "customerId must be non-empty: {pattern}"
    );
    assert_ne!(param(audit, "customerId")["required"], true);

    // connect: the body is optional (an empty one uses the defaults); a weight is at least 1.
    assert_ne!(connect["requestBody"]["required"], true, "{connect}");
    let target = &schemas["OriginationTargetBody"]["properties"];
    assert_eq!(target["weight"]["minimum"], 1, "{target}");
    assert_eq!(target["weight"]["maximum"], 65535, "{target}");
    assert_eq!(target["priority"]["minimum"], 0, "{target}");
    assert_eq!(
        schemas["ConnectBody"]["properties"]["originationTargets"]["maxItems"],
        10
    );
    assert_eq!(schemas["ConnectBody"]["additionalProperties"], false);

    // Credentials: exactly one of the carrier's closed forms (Twilio: two; Telnyx: one).
    let body = |path: &str| {
        doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let telnyx = body("/telephony/providers/telnyx/credentials");
    assert_eq!(telnyx["required"], json!(["apiKey"]), "{telnyx}");
    assert_eq!(telnyx["additionalProperties"], false);
    assert_eq!(telnyx["properties"]["apiKey"]["writeOnly"], true);
    let twilio = body(&format!("{base}/credentials"));
    let forms = twilio["oneOf"]
        .as_array()
        .expect("Twilio's body is a oneOf");
    assert_eq!(forms.len(), 3);
    let mut required: Vec<Value> = forms.iter().map(|f| f["required"].clone()).collect();
    required.sort_by_key(ToString::to_string);
    assert_eq!(
        required,
        // Sorted as JSON text: `,` sorts before `]`, so the longer API-key form comes first.
        [
            json!(["accountSid", "apiKeySid", "apiKeySecret", "authToken"]),
            json!(["accountSid", "apiKeySid", "apiKeySecret"]),
            json!(["accountSid", "authToken"])
        ]
    );
    // Twilio's voice webhook: no bearer token, the signature header, TwiML or the envelope.
    let voice = &doc["paths"]["/telephony/providers/twilio/voice"]["post"];
    assert!(voice.get("security").is_none(), "{voice}");
    assert!(
        voice["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
        "{voice}"
    );
    assert!(
        voice["responses"]["200"]["content"]["text/xml"].is_object(),
        "{voice}"
    );
    for status in ["400", "403", "503"] {
        assert!(voice["responses"][status].is_object(), "{status}");
    }
    for form in forms {
        assert_eq!(form["additionalProperties"], false, "{form}");
        assert_eq!(
            form["properties"]["accountSid"]["pattern"],
            "^AC[0-9a-fA-F]{32}$"
        );
    }

    // Every error an operation documents is the envelope, as JSON.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, answer) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorEnvelope",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // A route with a body documents the body limit.
    for (path, method) in [
        (format!("{base}/credentials"), "post"),
        (format!("{base}/credentials:verify"), "post"),
        (format!("{base}/numbers/{{numberId}}/connect"), "post"),
        (format!("{base}/numbers/{{numberId}}/disconnect"), "post"),
    ] {
        assert!(
            doc["paths"][&path][method]["responses"]["413"].is_object(),
            "{method} {path} does not document 413"
        );
    }
}

/// The document says an optional body may be `null` (utoipa's `Option<T>`); the server
/// reads it as no body, like an empty one, instead of refusing it.
#[actix_web::test]
async fn an_optional_body_may_be_null() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let acme = f.token("acme", DevRole::Customer);
    for action in ["connect", "disconnect"] {
        for body in ["null", " null\n", ""] {
            let (s, h, b) = call(
                &svc,
                TestRequest::post()
                    .uri(&format!(
                        "/telephony/providers/twilio/numbers/PN0123456789abcdef0123456789abcdef/{action}"
                    ))
                    .insert_header(("authorization", format!("Bearer {acme}")))
                    .insert_header(("content-type", "application/json"))
                    .set_payload(body),
            )
            .await;
            // Past the body: acme saved no credentials and connected nothing.
            if action == "connect" {
                envelope(s, &h, &b, 404, "INTEGRATION_NOT_FOUND");
            } else {
                envelope(s, &h, &b, 404, "NOT_CONNECTED");
            }
        }
    }
}

#[path = "http_hardening_tests.rs"]
mod hardening;
