//! Properties of the parsers of outside input: SIDs accept exactly their prefix and 32
//! hexadecimal characters, and the credentials parser never panics nor echoes a secret.

use std::collections::BTreeMap;

use proptest::prelude::*;
use secrecy::SecretString;
use trunkline_core::ports::CredentialInput;

use crate::credentials;
use crate::sid::{
    AccountSid, ApiKeySid, ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid,
};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Strings near a SID: a two-letter prefix (often a real one), then 28 to 36 characters
/// that are mostly hexadecimal, with optional whitespace around.
fn sid_like() -> impl Strategy<Value = String> {
    "[ \n]?(AC|SK|PN|TK|OU|AP|ac|pn|[A-Z]{2})([0-9a-fA-F]|[g-z\\-]){28,36}[ \n]?"
}

/// The contract, written independently of the parser: surrounding whitespace aside,
/// `prefix` then exactly 32 ASCII hexadecimal characters.
fn sid_ok<'a>(raw: &'a str, prefix: &str) -> Option<&'a str> {
    let s = raw.trim_matches(char::is_whitespace);
    let hex = s.strip_prefix(prefix)?;
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(s)
}

macro_rules! sid_properties {
    ($($test:ident: $sid:ident),* $(,)?) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $test(raw in prop_oneof![
                    sid_like(),
                    // Right prefix, all hex, lengths around 32: where an off-by-one would hide.
                    "[0-9a-fA-F]{30,34}".prop_map(|h| format!("{}{h}", $sid::PREFIX)),
                    any::<String>(),
                ]) {
                    let parsed = $sid::parse(&raw);
                    match sid_ok(&raw, $sid::PREFIX) {
                        Some(expected) => {
                            let sid = parsed.expect("a well-formed SID is accepted");
                            prop_assert_eq!(sid.as_str(), expected);
                            prop_assert_eq!($sid::parse(&sid.to_string()).ok(), Some(sid));
                        }
                        None => prop_assert!(parsed.is_err(), "accepted {:?}", raw),
                    }
                }
            )*
        }
    };
}

sid_properties!(
    account_sid_accepts_exactly_its_format: AccountSid,
    api_key_sid_accepts_exactly_its_format: ApiKeySid,
    phone_number_sid_accepts_exactly_its_format: PhoneNumberSid,
    trunk_sid_accepts_exactly_its_format: TrunkSid,
    origination_url_sid_accepts_exactly_its_format: OriginationUrlSid,
    application_sid_accepts_exactly_its_format: ApplicationSid,
);

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("accountSid".to_owned()),
        Just("apiKeySid".to_owned()),
        Just("apiKeySecret".to_owned()),
        Just("authToken".to_owned()),
        "[a-zA-Z]{1,12}",
    ]
}

fn plain_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "AC[0-9a-f]{32}",
        "SK[0-9a-f]{32}",
        sid_like(),
        any::<String>()
    ]
}

/// Secrets long enough (8+ characters) that finding one in a message is not a coincidence.
fn secret_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{8,40}",
        "[A-Za-z0-9\u{0}\u{7}]{8,20}",
        "[a-z]{8}".prop_map(|s| s.repeat(40)),
        "[ -~]{8,300}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn credentials_never_echo_a_secret(
        fields in prop::collection::btree_map(field_name(), plain_value(), 0..4),
        secrets in prop::collection::btree_map(field_name(), secret_value(), 0..3),
    ) {
        let input = CredentialInput {
            fields,
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
                .collect::<BTreeMap<_, _>>(),
        };
        if let Err(e) = credentials::parse(&input) {
            let shown = format!("{e} {e:?}");
            for secret in secrets.values().filter(|s| s.trim().len() >= 8) {
                prop_assert!(!shown.contains(secret.trim()), "error shows a secret: {}", shown);
            }
        }
    }
}
