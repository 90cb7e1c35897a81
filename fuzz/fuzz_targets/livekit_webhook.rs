//! LiveKit's webhook body: any bytes, signed for exactly themselves, are parsed or refused
//! as malformed (the signature held, so no other refusal is right); what is parsed carried
//! its id and event name in JSON. The same bytes under a token for other bytes are refused
//! as unauthenticated.
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use trunkline_core::ports::{SipPlatform, WebhookError};
use trunkline_livekit::{LiveKitConfig, LiveKitPlatform, install_jwt_crypto_provider};

const KEY: &str = "APIfuzz";
const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes";

/// Never contacted: verifying a webhook is local.
static PLATFORM: LazyLock<LiveKitPlatform> = LazyLock::new(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
    install_jwt_crypto_provider();
    LiveKitPlatform::new(LiveKitConfig::new(
        "http://127.0.0.1:9",
        KEY,
        SecretString::from(SECRET.to_owned()),
    ))
    .expect("a valid config")
});

/// The `Authorization` value LiveKit sends with `body`.
fn sign(body: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({
        "iss": KEY,
        "nbf": now - 10,
        "exp": now + 300,
        "sha256": base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)),
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

fuzz_target!(|body: &[u8]| {
    let lk = &*PLATFORM;
    match lk.verify_webhook(body, &sign(body)) {
        Ok(event) => {
            let json: serde_json::Value =
                serde_json::from_slice(body).expect("only JSON is accepted");
            assert_eq!(json["id"].as_str().map(str::trim), Some(event.id.as_str()));
            assert_eq!(json["event"].as_str(), Some(event.name.as_str()));
            assert!(!event.name.is_empty());
        }
        Err(e) => assert!(matches!(e, WebhookError::Malformed(_)), "{e:?}"),
    }
    let mut other = body.to_vec();
    other.push(b' ');
    let forged = lk.verify_webhook(body, &sign(&other));
    assert!(
        matches!(forged, Err(WebhookError::BodyMismatch)),
        "{forged:?}"
    );
});
