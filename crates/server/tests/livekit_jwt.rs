//! jsonwebtoken 10 resolves its crypto backend through one process-wide provider, and
//! livekit-api's token code installs an HMAC-only one the first time it signs or verifies,
//! unless a provider is installed already. With that one in place, the RS256/ES256/EdDSA
//! user tokens the server verifies would all be refused.
//!
//! This is its own test binary (its own process) on purpose: nothing else may touch
//! jsonwebtoken before the LiveKit adapter does, exactly as when the server builds its
//! adapters before the first request. It fails if `LiveKitPlatform::new` stops installing
//! the full provider first.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::json;
use trunkline_core::ports::SipPlatform as _;
use trunkline_livekit::{LiveKitConfig, LiveKitPlatform};
use trunkline_server::auth::{Authenticator, VerifyKey};
use trunkline_server::config::ClaimNames;

fn testdata(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn user_tokens_still_verify_after_the_livekit_adapter_checked_a_webhook() {
    // 1. The adapter, built as the server builds it (nothing listens there: no request is
    //    made, verification is local).
    let platform = LiveKitPlatform::new(LiveKitConfig::new(
        "http://127.0.0.1:9",
        "APIjwtprobe",
        SecretString::from("a-secret-long-enough-for-hs256-0123456789"),
    ))
    .expect("a valid configuration");
    // 2. livekit-api's verifier runs (and would install its HMAC-only provider).
    let refused = platform.verify_webhook(br#"{"event":"room_started"}"#, "not.a.jwt");
    assert!(refused.is_err(), "{refused:?}");

    // 3. User tokens of every key type the server accepts still sign and verify.
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": "https://issuer.test",
        "aud": "trunkline-test",
        "sub": "user-1",
        "customer_id": "acme",
        "iat": now,
        "exp": now + 600,
    });
    for (alg, private, public) in [
        (
            Algorithm::EdDSA,
            "ed25519-private.pem",
            "ed25519-public.pem",
        ),
        (Algorithm::RS256, "rsa-private.pem", "rsa-public.pem"),
        (Algorithm::ES256, "ec256-private.pem", "ec256-public.pem"),
    ] {
        let pem = testdata(private);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .expect("a private key");
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &key)
            .unwrap_or_else(|e| panic!("{alg:?} cannot sign after LiveKit ran: {e}"));
        let verify = VerifyKey::from_pem(&testdata(public), None, public).expect("a public key");
        let auth = Authenticator::new(
            vec![verify],
            "https://issuer.test",
            "trunkline-test",
            ClaimNames::default(),
        );
        let caller = auth
            .verify(&token)
            .unwrap_or_else(|e| panic!("{alg:?} token refused after LiveKit ran: {}", e.0));
        assert_eq!(caller.customer_id.as_str(), "acme");
    }
}
