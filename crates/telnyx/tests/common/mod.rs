//! The adapter against a fresh emulator over HTTP, with quick timeouts and retries.

use std::time::Duration;

use secrecy::SecretString;
use trunkline_telnyx::{TelnyxClient, TelnyxConfig};
use trunkline_testkit::telnyx::{EmulatorOptions, TelnyxEmulator, TestAccount};

pub struct World {
    pub emu: TelnyxEmulator,
    pub client: TelnyxClient,
    pub account: TestAccount,
    pub key: SecretString,
}

/// Production settings but quick: 500 ms per request, a 3 s retry budget, 10–50 ms
/// backoff, and pages of 2 so that listings read whole cross pages.
pub fn config(base: &str) -> TelnyxConfig {
    TelnyxConfig {
        request_timeout: Duration::from_millis(500),
        retry_budget: Duration::from_secs(3),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        list_page_size: 2,
        ..TelnyxConfig::with_base(base).unwrap()
    }
}

impl World {
    pub fn new() -> Self {
        Self::with_config(config)
    }

    pub fn with_config(make: impl FnOnce(&str) -> TelnyxConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emu = TelnyxEmulator::start_with(EmulatorOptions {
            hang_for: Duration::from_secs(3),
            ..EmulatorOptions::default()
        })
        .unwrap();
        let account = emu.add_account("world");
        let key = SecretString::from(account.api_key.clone());
        let client = TelnyxClient::new(make(&emu.api_base())).unwrap();
        Self {
            emu,
            client,
            account,
            key,
        }
    }
}
