//! Issue 9's defects at the HTTP edge: metric labels, probes, request ids, validation
//! messages, throttling, the customer in the request span.

use super::*;

#[actix_web::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    for i in 0..200 {
        let method = actix_web::http::Method::from_bytes(format!("XABC{i}").as_bytes()).unwrap();
        call(&svc, TestRequest::default().method(method).uri("/healthz")).await;
    }
    let res = test::call_service(&svc, TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(!text.contains("XABC"), "{text}");
    let known = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
    ];
    // The recorder is the process's: under `cargo test` (every test in one process) the
    // other tests' routes are in it too, so only the series of the route probed here count.
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(r#"route="/healthz""#))
        .collect();
    assert!(
        series.iter().any(|l| l.contains(r#"method="other""#)),
        "{text}"
    );
    for line in &series {
        let method = line
            .split("method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        assert!(known.contains(&method), "{line}");
    }
    assert!(series.len() < 20, "{} series: {text}", series.len());
}

#[actix_web::test]
async fn head_probes_answer_like_get() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    for path in ["/healthz", "/readyz"] {
        let res = test::call_service(
            &svc,
            TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(path)
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "HEAD {path}");
    }
}

#[actix_web::test]
async fn long_client_request_ids_are_replaced_not_echoed() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let longest = "a".repeat(64);
    let (_, h, _) = call(
        &svc,
        TestRequest::get()
            .uri("/healthz")
            .insert_header(("x-request-id", longest.as_str())),
    )
    .await;
    assert_eq!(h.get("x-request-id").unwrap(), longest.as_str());
    for bad in ["a".repeat(65), "x".repeat(128), "has_underscore".to_owned()] {
        let (_, h, b) = call(
            &svc,
            TestRequest::get()
                .uri("/nope")
                .insert_header(("x-request-id", bad.as_str())),
        )
        .await;
        let id = h.get("x-request-id").unwrap().to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{bad} kept as {id}");
        assert_eq!(b["requestId"], id);
        assert!(!b.to_string().contains(&bad), "{b}");
    }
}

/// Bodies the management routes refuse: every message names the field and what it must
/// be, in plain words.
#[actix_web::test]
async fn validation_messages_name_the_field_and_the_allowed_values() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let token = f.token("cust-a", DevRole::Customer);
    let verify = "/telephony/providers/twilio/credentials:verify";
    let connect = "/telephony/providers/twilio/numbers/PN0123456789abcdef0123456789abcdef/connect";
    let cases: [(&str, &str, &str); 9] = [
        (verify, "[]", "body: must be a JSON object"),
        (verify, r#""text""#, "body: must be a JSON object"),
        (verify, "{", "body: is not valid JSON"),
        (
            verify,
            r#"{"accountSid": 5}"#,
            "accountSid: must be a string",
        ),
        (
            verify,
            r#"{"authToken": "hunter2-secret"}"#,
            "accountSid: is required",
        ),
        (
            verify,
            r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"hunter2-secret","x":1}"#,
            r#"x: is not a known field; the fields here are "accountSid", "apiKeySid", "apiKeySecret", "authToken""#,
        ),
        (
            connect,
            r#"{"trunkStrategy":"hunter2-secret"}"#,
            r#"trunkStrategy: must be one of "shared", "dedicated""#,
        ),
        (
            connect,
            r#"{"originationTargets":[{"sipUrl":"sip:a.example","weight":70000}]}"#,
            "originationTargets[0].weight: must be a whole number",
        ),
        (
            connect,
            r#"{"originationTargets":[{"sipUrl":"sip:a.example","priority":-1}]}"#,
            "originationTargets[0].priority: must be a whole number",
        ),
    ];
    for (uri, body, want) in cases {
        let (s, h, b) = call(
            &svc,
            TestRequest::post()
                .uri(uri)
                .insert_header(("authorization", format!("Bearer {token}")))
                .insert_header(("content-type", "application/json"))
                .set_payload(body.to_owned()),
        )
        .await;
        envelope(s, &h, &b, 400, "VALIDATION_FAILED");
        let message = b["message"].as_str().unwrap();
        assert!(message.starts_with(want), "{body}: {message}");
        for leak in [
            "struct ", "u16", "u32", "u64", "`", "expected", "hunter2", "Request",
        ] {
            assert!(!message.contains(leak), "{body}: {message} contains {leak}");
        }
    }
}

#[actix_web::test]
async fn credential_checks_are_throttled_per_customer() {
    let f = Fixture::with_env(
        true,
        [
            // Nothing listens there: each check that gets through fails fast.
            ("TRUNKLINE_TWILIO_API_BASE", "http://127.0.0.1:9".to_owned()),
            (
                "TRUNKLINE_TWILIO_TRUNKING_BASE",
                "http://127.0.0.1:9".to_owned(),
            ),
            ("TRUNKLINE_TWILIO_RETRY_BUDGET_MS", "0".to_owned()),
            ("TRUNKLINE_CREDENTIAL_CHECKS_PER_MINUTE", "1".to_owned()),
            ("TRUNKLINE_CREDENTIAL_CHECKS_BURST", "3".to_owned()),
        ],
    )
    .await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let body = r#"{"accountSid":"AC0123456789abcdef0123456789abcdef","authToken":"wrong-guess"}"#;
    let post = |token: &str, uri: &str| {
        TestRequest::post()
            .uri(uri)
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("content-type", "application/json"))
            .set_payload(body)
    };
    let verify = "/telephony/providers/twilio/credentials:verify";
    let save = "/telephony/providers/twilio/credentials";
    let a = f.token("cust-a", DevRole::Customer);
    for uri in [verify, save, verify] {
        let (s, _, b) = call(&svc, post(&a, uri)).await;
        assert_ne!(s, StatusCode::TOO_MANY_REQUESTS, "{uri}: {b}");
    }
    for uri in [verify, save] {
        let (s, h, b) = call(&svc, post(&a, uri)).await;
        envelope(s, &h, &b, 429, "RATE_LIMITED");
        let after: u64 = h
            .get("retry-after")
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&after), "{after}");
    }
    // Another customer has its own allowance.
    let b_token = f.token("cust-b", DevRole::Customer);
    let (s, _, b) = call(&svc, post(&b_token, verify)).await;
    assert_ne!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
}

#[actix_web::test]
async fn request_log_lines_carry_the_customer() {
    let f = Fixture::new(true).await;
    let svc = test::init_service(test_app(f.state.clone())).await;
    let token = f.token("cust-logged", DevRole::Customer);
    let (lines, _guard) = crate::telemetry::capture::json();
    let (s, _, _) = call(
        &svc,
        TestRequest::get()
            .uri("/telephony/me")
            .insert_header(("authorization", format!("Bearer {token}"))),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let text = lines.text();
    let completed: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request completed")
        .collect();
    assert_eq!(completed.len(), 1, "{text}");
    assert_eq!(completed[0]["span"]["customer_id"], "cust-logged", "{text}");
}
