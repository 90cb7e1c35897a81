//! The server's bearer tokens. Two halves of the input: raw text as a token (never accepted:
//! nothing here can sign), and JSON header and claims signed with the configured key (the
//! refusals and acceptances of `Authenticator::verify` on any header fields and claims,
//! never a panic; an accepted token names its subject and customer as the claims do).
#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use trunkline_server::auth::{Authenticator, VerifyKey};
use trunkline_server::config::ClaimNames;

const PUBLIC: &[u8] = include_bytes!("../../crates/server/testdata/ed25519-public.pem");
const PRIVATE: &[u8] = include_bytes!("../../crates/server/testdata/ed25519-private.pem");

static AUTH: LazyLock<(Authenticator, EncodingKey)> = LazyLock::new(|| {
    trunkline_server::install_crypto_provider();
    let key = VerifyKey::from_pem(PUBLIC, None, "ed25519").expect("test key");
    (
        Authenticator::new(
            vec![key],
            "https://issuer.test",
            "trunkline-test",
            ClaimNames::default(),
        ),
        EncodingKey::from_ed_pem(PRIVATE).expect("test key"),
    )
});

fuzz_target!(|data: &[u8]| {
    let (auth, signing) = &*AUTH;
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(auth.verify(text).is_err(), "accepted unsigned {text:?}");
    }
    // Header fields from the input, then the claims; signed, so the checks past the
    // signature are reached.
    let (head, claims) = data.split_at(data.len() / 2);
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(claims) else {
        return;
    };
    let mut header = Header::new(Algorithm::EdDSA);
    if let Ok(fields) = serde_json::from_slice::<serde_json::Value>(head) {
        header.kid = fields["kid"].as_str().map(str::to_owned);
        header.typ = fields["typ"].as_str().map(str::to_owned);
        header.cty = fields["cty"].as_str().map(str::to_owned);
    }
    let Ok(token) = jsonwebtoken::encode(&header, &claims, signing) else {
        return;
    };
    if let Ok(caller) = auth.verify(&token) {
        assert_eq!(claims["sub"].as_str(), Some(caller.subject.as_str()));
        assert!(!caller.customer_id.as_str().is_empty());
    }
    // The same token with its claims swapped for the raw input is not accepted.
    let mut parts = token.split('.');
    let (h, _, s) = (parts.next(), parts.next(), parts.next());
    if let (Some(h), Some(s)) = (h, s) {
        let forged = format!("{h}.{}.{s}", URL_SAFE_NO_PAD.encode(data));
        if forged != token {
            assert!(auth.verify(&forged).is_err());
        }
    }
});
