//! Shared set-up: an emulator, an adapter pointed at it, a seeded account.

#![allow(dead_code)]

use std::time::Duration;

use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::CarrierNumber;
use trunkline_core::{CarrierNumberId, RouteId};
use trunkline_testkit::twilio::{TestAccount, TestApiKey, TwilioEmulator};
use trunkline_twilio::{PhoneNumberSid, TrunkSid, TwilioCarrier, TwilioConfig, VoiceConfig};

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

/// The core's id of a number the emulator made.
pub fn number_id(sid: &PhoneNumberSid) -> CarrierNumberId {
    sid.into()
}

/// The core's id of a trunk the emulator made.
pub fn route_id(sid: &TrunkSid) -> RouteId {
    sid.into()
}

/// The trunk behind a route the adapter returned, to inspect it in the emulator.
pub fn trunk_sid(id: &RouteId) -> TrunkSid {
    TrunkSid::try_from(id).unwrap()
}

/// A number's routing record read as the voice configuration it is.
pub fn voice_of(n: &CarrierNumber) -> VoiceConfig {
    VoiceConfig::from_routing(&n.routing).unwrap()
}
