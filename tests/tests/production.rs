//! Production start-up: configured keys only, no development fallback, tokens from an
//! external issuer.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trunkline_e2e::{ServerOptions, TestServer};

const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "trunkline-api";

fn testdata(name: &str) -> String {
    format!(
        "{}/../crates/server/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn token(private: &str, alg: Algorithm, claims: &Value) -> String {
    let pem = std::fs::read(testdata(private)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .unwrap();
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

#[tokio::test]
async fn production_uses_configured_keys_and_no_fallback() {
    let vault_key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let server = TestServer::start_with(
        ServerOptions::default()
            .env("TRUNKLINE_ENV", "production")
            .env("TRUNKLINE_VAULT_KEYS", format!("prod1:{vault_key}"))
            .env("TRUNKLINE_VAULT_ACTIVE_KEY", "prod1")
            .env(
                "TRUNKLINE_AUTH_PUBLIC_KEYS",
                format!(
                    "{},{}",
                    testdata("ed25519-public.pem"),
                    testdata("rsa-public.pem")
                ),
            )
            .env("TRUNKLINE_AUTH_ISSUER", ISSUER)
            .env("TRUNKLINE_AUTH_AUDIENCE", AUDIENCE)
            .env("TRUNKLINE_AUTH_CUSTOMER_CLAIM", "org_id"),
    )
    .await
    .unwrap();

    let stdout = server.stdout();
    assert!(!stdout.contains("export TRUNKLINE_TOKEN"), "{stdout}");
    assert!(!stdout.contains("DEVELOPMENT"), "{stdout}");
    for file in ["dev-auth-ed25519.pem", "vault-dev-keys"] {
        assert!(
            !server.data_dir().join(file).exists(),
            "production wrote {file}"
        );
    }
    assert!(
        !server.stderr().contains(&vault_key),
        "the vault key leaked"
    );

    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "auth0|42", "org_id": "org_9",
        "scope": "ignored", "roles": "support", "iat": now, "exp": now + 300,
    });
    for (private, alg) in [
        ("ed25519-private.pem", Algorithm::EdDSA),
        ("rsa-private.pem", Algorithm::RS256),
    ] {
        let t = token(private, alg, &claims);
        let res = server.get("/telephony/me", Some(&t)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{private}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"customerId": "org_9", "subject": "auth0|42", "roles": ["support"]})
        );
        assert!(
            !server.stderr().contains(&t),
            "a token leaked into the logs"
        );
    }

    // A key the server was not given.
    let t = token("other-ed25519-private.pem", Algorithm::EdDSA, &claims);
    let res = server.get("/telephony/me", Some(&t)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errorCode"], "UNAUTHENTICATED");

    // The development issuer is not accepted in production.
    let mut dev = claims.clone();
    dev["iss"] = json!("trunkline-dev");
    let t = token("ed25519-private.pem", Algorithm::EdDSA, &dev);
    let res = server.get("/telephony/me", Some(&t)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
