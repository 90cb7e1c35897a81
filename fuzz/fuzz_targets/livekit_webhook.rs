//! The LiveKit webhook: any body with any `Authorization` value is refused or parsed, never
//! a panic; nothing unsigned is ever accepted.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use trunkline_core::ports::SipPlatform as _;
use trunkline_livekit::{LiveKitConfig, LiveKitPlatform};

fn platform() -> &'static LiveKitPlatform {
    static P: OnceLock<LiveKitPlatform> = OnceLock::new();
    P.get_or_init(|| {
        trunkline_livekit::install_jwt_crypto_provider();
        LiveKitPlatform::new(LiveKitConfig::new(
            "http://127.0.0.1:1",
            "APIfuzz",
            SecretString::from("fuzz-secret-fuzz-secret-fuzz-secret"),
        ))
        .expect("a platform")
    })
}

fuzz_target!(|input: (&str, &[u8])| {
    let (authorization, body) = input;
    // The fuzzer does not know the secret: no input may verify.
    assert!(platform().verify_webhook(body, authorization).is_err());
});
