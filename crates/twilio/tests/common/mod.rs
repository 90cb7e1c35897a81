//! Shared set-up: an emulator, an adapter pointed at it, a seeded account.

#![allow(dead_code)]

use std::time::Duration;

use trunkline_core::model::CarrierCredentials;
use trunkline_testkit::twilio::{TestAccount, TestApiKey, TwilioEmulator};
use trunkline_twilio::{TwilioCarrier, TwilioConfig};

pub fn init() {
    // reqwest's rustls needs a process-wide provider once another crate enables ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Short timeouts and backoff so failure paths stay fast.
pub fn config(emu: &TwilioEmulator) -> TwilioConfig {
    TwilioConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        max_retries: 3,
        retry_budget: Duration::from_secs(5),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        ..TwilioConfig::with_bases(&emu.api_base(), &emu.trunking_base()).unwrap()
    }
}

pub fn carrier_with(config: TwilioConfig) -> TwilioCarrier {
    init();
    TwilioCarrier::new(config).unwrap()
}

pub struct World {
    pub emu: TwilioEmulator,
    pub carrier: TwilioCarrier,
    pub account: TestAccount,
    pub key: TestApiKey,
}

impl World {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut TwilioConfig)) -> Self {
        let emu = TwilioEmulator::start();
        let mut cfg = config(&emu);
        tweak(&mut cfg);
        let carrier = carrier_with(cfg);
        let account = emu.add_account("test account");
        let key = emu.add_api_key(&account.sid, true);
        Self {
            emu,
            carrier,
            account,
            key,
        }
    }

    pub fn creds(&self) -> CarrierCredentials {
        self.key.credentials()
    }
}
