//! Properties of the credentials body parser: the JSON object of `POST …/credentials`
//! (and `:verify`), split by the carrier's form, then parsed by the carrier's adapter. Any
//! body is accepted or refused, never a panic, and no refusal shows a secret; a well-formed
//! body gives back exactly its ids and secret; a field outside the form or a value that is
//! not a string is refused.

use std::sync::LazyLock;

use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::CarrierProvider;
use trunkline_telnyx::{TelnyxCarrier, TelnyxConfig};
use trunkline_twilio::{TwilioCarrier, TwilioConfig};

use crate::routes::credentials::credential_input;

/// One of each carrier for every case: making one builds an HTTP client (slow), and
/// parsing credentials never uses it.
static CARRIERS: LazyLock<(TwilioCarrier, TelnyxCarrier)> = LazyLock::new(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
    (
        TwilioCarrier::new(TwilioConfig::default()).unwrap(),
        TelnyxCarrier::new(TelnyxConfig::default()).unwrap(),
    )
});

fn twilio() -> &'static TwilioCarrier {
    &CARRIERS.0
}

fn telnyx() -> &'static TelnyxCarrier {
    &CARRIERS.1
}

/// The route's parse: the form's split, then the adapter's parser. The refusal as the
/// caller would see it (message and debug form).
fn parse(
    carrier: &dyn CarrierProvider,
    body: Map<String, Value>,
) -> Result<CarrierCredentials, String> {
    let input =
        credential_input(&carrier.credential_form(), body).map_err(|e| format!("{e} {e:?}"))?;
    carrier
        .parse_credentials(&input)
        .map_err(|e| format!("{e} {e:?}"))
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

const FIELDS: [&str; 5] = [
    "accountSid",
    "apiKeySid",
    "apiKeySecret",
    "authToken",
    "apiKey",
];

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,12}",
        1 => any::<String>(),
    ]
}

/// Secrets long enough (8+ characters) that finding one in a message is not a coincidence.
fn secret_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{8,40}",
        "[ -~]{8,300}",
        "[A-Za-z0-9\u{0}\n]{8,20}"
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop_oneof![
            "AC[0-9a-f]{32}",
            "SK[0-9a-fA-F]{30,34}",
            secret_like(),
            any::<String>(),
        ]
        .prop_map(Value::String),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Array(Vec::new())),
    ]
}

fn body() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(field_name(), value(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// The fields of each carrier's form.
fn in_form(carrier: &dyn CarrierProvider, name: &str) -> bool {
    carrier.credential_form().fields().any(|f| f.name == name)
}

fn check_any_body(
    carrier: &dyn CarrierProvider,
    body: &Map<String, Value>,
) -> Result<(), TestCaseError> {
    match parse(carrier, body.clone()) {
        Ok(creds) => {
            for (name, value) in body {
                prop_assert!(in_form(carrier, name), "accepted the field {:?}", name);
                prop_assert!(value.is_string(), "accepted {}: {:?}", name, value);
            }
            // The secret kept is one the body gave.
            let secret = creds.secret.expose_secret();
            prop_assert!(body.values().any(|v| v.as_str() == Some(secret)));
        }
        Err(shown) => {
            for (name, value) in body {
                let Some(s) = value.as_str().filter(|s| s.trim().len() >= 8) else {
                    continue;
                };
                if carrier.credential_form().is_secret(name) {
                    prop_assert!(
                        !shown.contains(s.trim()),
                        "refusal shows a secret: {}",
                        shown
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_twilio_body_is_parsed_or_refused_without_showing_a_secret(body in body()) {
        check_any_body(twilio(), &body)?;
    }

    #[test]
    fn any_telnyx_body_is_parsed_or_refused_without_showing_a_secret(body in body()) {
        check_any_body(telnyx(), &body)?;
    }

    /// Each alternative of Twilio's form, well formed, gives back its ids and its secret.
    #[test]
    fn well_formed_twilio_bodies_round_trip(
        account in "AC[0-9a-f]{32}",
        key in proptest::option::of("SK[0-9a-fA-F]{32}"),
        secret in "[!-~][ -~]{0,200}[!-~]",
    ) {
        let mut body = Map::new();
        body.insert("accountSid".to_owned(), Value::from(account.as_str()));
        match &key {
            Some(key) => {
                body.insert("apiKeySid".to_owned(), Value::from(key.as_str()));
                body.insert("apiKeySecret".to_owned(), Value::from(secret.as_str()));
            }
            None => {
                body.insert("authToken".to_owned(), Value::from(secret.as_str()));
            }
        }
        let creds = parse(twilio(), body).map_err(TestCaseError::fail)?;
        prop_assert_eq!(creds.account_id.as_ref().map(trunkline_core::CarrierAccountId::as_str), Some(account.as_str()));
        prop_assert_eq!(creds.key_id.as_ref().map(trunkline_core::CredentialKeyId::as_str), key.as_deref());
        prop_assert_eq!(creds.secret.expose_secret(), secret.as_str());
    }

    #[test]
    fn well_formed_telnyx_bodies_round_trip(key in "[!-~][ -~]{0,200}[!-~]") {
        let mut body = Map::new();
        body.insert("apiKey".to_owned(), Value::from(key.as_str()));
        let creds = parse(telnyx(), body).map_err(TestCaseError::fail)?;
        prop_assert!(creds.account_id.is_none() && creds.key_id.is_none());
        prop_assert_eq!(creds.secret.expose_secret(), key.as_str());
    }

    /// A well-formed body with one more field outside the form, or one value that is not a
    /// string, is refused.
    #[test]
    fn extra_fields_and_non_string_values_are_refused(
        extra in "[a-zA-Z]{1,12}",
        bad in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), Just(Value::Bool(true))],
        which in 0usize..2,
    ) {
        let mut twilio_body = Map::new();
        twilio_body.insert("accountSid".to_owned(), Value::from(format!("AC{}", "1".repeat(32))));
        twilio_body.insert("authToken".to_owned(), Value::from("a-token-of-thirty-two"));
        let mut telnyx_body = Map::new();
        telnyx_body.insert("apiKey".to_owned(), Value::from("KEY-of-telnyx"));
        for (carrier, mut body) in [
            (twilio() as &dyn CarrierProvider, twilio_body),
            (telnyx() as &dyn CarrierProvider, telnyx_body),
        ] {
            prop_assert!(parse(carrier, body.clone()).is_ok());
            if which == 0 && !in_form(carrier, &extra) {
                body.insert(extra.clone(), Value::from("x"));
            } else {
                let first = body.keys().next().cloned().unwrap_or_default();
                body.insert(first, bad.clone());
            }
            prop_assert!(parse(carrier, body).is_err());
        }
    }
}
