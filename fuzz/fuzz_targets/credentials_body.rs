//! Credentials bodies (`POST …/credentials`): any bytes that are a JSON object go through
//! the route's split by the carrier's form and the carrier's parser; what is accepted uses
//! only the form's fields with string values, and no refusal shows a secret.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use trunkline_core::ports::CarrierProvider;
use trunkline_server::routes::credentials::credential_input;
use trunkline_telnyx::{TelnyxCarrier, TelnyxConfig};
use trunkline_twilio::{TwilioCarrier, TwilioConfig};

static CARRIERS: LazyLock<(TwilioCarrier, TelnyxCarrier)> = LazyLock::new(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
    (
        TwilioCarrier::new(TwilioConfig::default()).expect("default config"),
        TelnyxCarrier::new(TelnyxConfig::default()).expect("default config"),
    )
});

fn check(carrier: &dyn CarrierProvider, body: &Map<String, Value>) {
    let form = carrier.credential_form();
    let parsed = credential_input(&form, body.clone())
        .map_err(|e| format!("{e} {e:?}"))
        .and_then(|input| {
            carrier
                .parse_credentials(&input)
                .map_err(|e| format!("{e} {e:?}"))
        });
    match parsed {
        Ok(creds) => {
            for (name, value) in body {
                assert!(form.fields().any(|f| f.name == name), "accepted {name:?}");
                assert!(value.is_string(), "accepted {name}: {value:?}");
            }
            let secret = creds.secret.expose_secret();
            assert!(body.values().any(|v| v.as_str() == Some(secret)));
        }
        Err(shown) => {
            for (name, value) in body {
                if let Some(s) = value.as_str().map(str::trim).filter(|s| s.len() >= 8) {
                    if form.is_secret(name) {
                        assert!(!shown.contains(s), "refusal shows a secret: {shown}");
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let (twilio, telnyx) = &*CARRIERS;
    check(twilio, &body);
    check(telnyx, &body);
});
