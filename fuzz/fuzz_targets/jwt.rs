//! Bearer tokens: any text is refused (the fuzzer holds no signing key), never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trunkline_server::auth::{Authenticator, VerifyKey};
use trunkline_server::config::ClaimNames;

fn auth() -> &'static Authenticator {
    static A: OnceLock<Authenticator> = OnceLock::new();
    A.get_or_init(|| {
        let pem = include_bytes!("../../crates/server/testdata/ed25519-public.pem");
        let key = VerifyKey::from_pem(pem, None, "fuzz").expect("the test key");
        Authenticator::new(vec![key], "https://issuer.test", "trunkline", ClaimNames::default())
    })
}

fuzz_target!(|token: &str| {
    assert!(auth().verify(token).is_err());
});
