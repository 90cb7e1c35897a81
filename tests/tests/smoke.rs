//! The development server starts with no configuration at all, on SQLite and PostgreSQL,
//! and answers its operational routes and `/telephony/me` over real HTTP.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use trunkline_e2e::{ServerOptions, TestDatabase, TestServer};

async fn json(res: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = res.status();
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let body = res.json::<Value>().await.expect("a JSON body");
    (status, request_id, body)
}

#[track_caller]
fn assert_envelope(body: &Value, code: &str, request_id: Option<&str>) {
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["requestId"].as_str(), request_id, "{body}");
    assert_eq!(
        body.as_object().map(serde_json::Map::len),
        Some(3),
        "{body}"
    );
}

/// What every development server must do, whatever the database.
async fn exercise_dev_server(server: &TestServer) {
    let stdout = server.stdout();
    let token = server.dev_token().expect("a printed customer token");
    let support = server.support_token().expect("a printed support token");
    assert!(
        stdout.contains("curl") && stdout.contains(&format!("{}/telephony/me", server.base_url())),
        "{stdout}"
    );

    let (status, _, body) = json(server.get("/healthz", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = json(server.get("/readyz", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, rid, body) = json(server.get("/telephony/me", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(rid.is_some());
    assert_envelope(&body, "UNAUTHENTICATED", rid.as_deref());

    let (status, rid, body) = json(
        server
            .get("/telephony/me", Some("not.a.token"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_envelope(&body, "UNAUTHENTICATED", rid.as_deref());

    let (status, _, body) = json(server.get("/telephony/me", Some(&token)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customerId"], "dev-customer", "{body}");
    assert_eq!(body["roles"], serde_json::json!(["customer"]), "{body}");
    assert!(
        body["subject"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );

    let (status, _, body) = json(server.get("/telephony/me", Some(&support)).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["roles"], serde_json::json!(["support"]), "{body}");

    let (status, rid, body) = json(server.get("/no/such/route", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_envelope(&body, "NOT_FOUND", rid.as_deref());

    let res = server
        .client()
        .post(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    let (status, rid, body) = json(res).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_envelope(&body, "METHOD_NOT_ALLOWED", rid.as_deref());

    let res = server.get("/metrics", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let metrics = res.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total{")
                && l.contains("route=\"/telephony/me\"")
                && l.contains("status=\"401\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("/no/such/route"),
        "raw paths must not be labels"
    );

    let (status, _, doc) = json(server.get("/openapi.json", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/telephony/me"]["get"].is_object(), "{doc}");

    // The logs carry request ids and never the tokens that were used.
    let logs = server.stderr();
    assert!(logs.contains("request_id"), "{logs}");
    assert!(!logs.contains(&token), "a token leaked into the logs");
    assert!(!logs.contains(&support), "a token leaked into the logs");
}

#[tokio::test]
async fn dev_server_on_sqlite_with_no_configuration() {
    let server = TestServer::start().await.unwrap();
    exercise_dev_server(&server).await;
    let stdout = server.stdout();
    let db = server.data_dir().join("trunkline.db");
    assert!(db.is_file(), "no SQLite file at {}", db.display());
    assert!(stdout.contains(&db.display().to_string()), "{stdout}");
    assert!(stdout.contains("DEVELOPMENT"), "{stdout}");
    assert!(server.data_dir().join("dev-auth-ed25519.pem").is_file());
}

#[tokio::test]
async fn dev_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServerOptions::default().data_dir(dir.path());
    let mut first = TestServer::start_with(opts.clone()).await.unwrap();
    let token = first.dev_token().unwrap();
    let status = first.terminate(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "SIGTERM should stop it cleanly: {status}");

    let second = TestServer::start_with(opts).await.unwrap();
    assert!(second.stdout().contains("reused"), "{}", second.stdout());
    let res = second.get("/telephony/me", Some(&token)).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a token from before the restart"
    );
}

#[tokio::test]
async fn dev_server_on_postgres() {
    let Some(admin) = TestDatabase::admin_url_or_skip("dev_server_on_postgres") else {
        return;
    };
    let db = TestDatabase::create(&admin).await.unwrap();
    let server =
        TestServer::start_with(ServerOptions::default().env("TRUNKLINE_DATABASE_URL", db.url()))
            .await
            .unwrap();
    exercise_dev_server(&server).await;
    let stdout = server.stdout();
    assert!(stdout.contains("PostgreSQL"), "{stdout}");
    assert!(stdout.contains(db.name()), "{stdout}");
    assert!(!server.data_dir().join("trunkline.db").exists());
}

#[tokio::test]
async fn without_migrate_on_start_the_server_is_live_but_not_ready() {
    let server = TestServer::start_with(
        ServerOptions::default()
            .env("TRUNKLINE_MIGRATE_ON_START", "false")
            .skip_ready(),
    )
    .await
    .unwrap();
    let (status, _, body) = json(server.get("/healthz", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, rid, body) = json(server.get("/readyz", None).await.unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_envelope(&body, "SERVICE_UNAVAILABLE", rid.as_deref());
    assert!(
        body["message"].as_str().unwrap().contains("migrate"),
        "{body}"
    );
}
