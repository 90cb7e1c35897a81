//! Properties of the parsers of outside input: SIDs accept exactly their prefix and 32
//! hexadecimal characters, the credentials parser never panics nor echoes a secret, and the
//! paging cursor decoder never panics, follows only this account's numbers list, and gives
//! back the paging parameters it was made from.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use secrecy::SecretString;
use trunkline_core::ports::CredentialInput;

use crate::config::TwilioConfig;
use crate::credentials;
use crate::cursor;
use crate::ops::TwilioOperation;
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

fn account() -> AccountSid {
    AccountSid::parse(&format!("AC{}", "1".repeat(32))).unwrap()
}

fn numbers_path(account: &AccountSid) -> String {
    TwilioOperation::ListIncomingPhoneNumber.path(&[account.as_str()])
}

/// The paging parameters Twilio puts in a `next_page_uri`, each present or not.
fn paging_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        proptest::option::of(1..=TwilioConfig::MAX_PAGE_SIZE),
        proptest::option::of(any::<u32>()),
        proptest::option::of("[A-Za-z0-9_.\\-]{1,64}"),
        proptest::option::of("\\+141555501[0-9]{2}"),
    )
        .prop_map(|(size, page, token, number)| {
            [
                ("PageSize", size.map(|n| n.to_string())),
                ("Page", page.map(|n| n.to_string())),
                ("PageToken", token),
                ("PhoneNumber", number),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect()
        })
}

fn query(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Paths a forged cursor might carry instead of this account's numbers list.
fn foreign_path() -> impl Strategy<Value = String> {
    let ours = numbers_path(&account());
    let other = numbers_path(&AccountSid::parse(&format!("AC{}", "2".repeat(32))).unwrap());
    prop_oneof![
        Just(other),
        Just(ours.replace("IncomingPhoneNumbers", "Calls")),
        Just(format!("//evil.example{ours}")),
        Just(format!("https://evil.example{ours}")),
        Just(format!("{ours}/..")),
        Just(ours.to_lowercase()),
        Just(format!("{ours}%2F")),
        "/[ -~]{0,80}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any text, any `n1.` + base64url, any `n1.` + base64url of a path and query: decoding
    /// never panics, and what it accepts holds only the paging parameters, once each, with
    /// the values the adapter itself would send.
    #[test]
    fn cursor_decoding_never_panics_and_keeps_only_paging_parameters(
        raw in prop_oneof![
            any::<String>(),
            "n1\\.[A-Za-z0-9_\\-=+/]{0,90}",
            (foreign_path(), "[ -~]{0,60}").prop_map(|(p, q)| {
                format!("n1.{}", URL_SAFE_NO_PAD.encode(format!("{p}?{q}")))
            }),
            "[ -~]{0,80}".prop_map(|q| {
                format!("n1.{}", URL_SAFE_NO_PAD.encode(format!("{}?{q}", numbers_path(&account()))))
            }),
        ],
    ) {
        if let Ok(pairs) = cursor::decode(&raw, &account()) {
            let mut seen: Vec<&str> = Vec::new();
            for (name, value) in &pairs {
                prop_assert!(!seen.contains(&name.as_str()), "{} twice in {:?}", name, raw);
                seen.push(name);
                let ok = match name.as_str() {
                    "PageSize" => value
                        .parse::<u32>()
                        .is_ok_and(|n| (1..=TwilioConfig::MAX_PAGE_SIZE).contains(&n)),
                    "Page" => value.parse::<u32>().is_ok(),
                    "PageToken" => value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                    "PhoneNumber" => value.starts_with('+'),
                    _ => false,
                };
                prop_assert!(ok, "{}={:?} from {:?}", name, value, raw);
            }
        }
    }

    /// A link Twilio gives (relative, or absolute on any host) becomes a cursor that decodes
    /// to exactly its paging parameters, for this account only.
    #[test]
    fn cursors_round_trip_the_paging_parameters(
        pairs in paging_pairs(),
        host in proptest::option::of("https://[a-z]{1,12}\\.(twilio\\.com|example)"),
    ) {
        let a = account();
        let link = format!("{}{}?{}", host.unwrap_or_default(), numbers_path(&a), query(&pairs));
        let cursor = cursor::encode(&link, &a).expect("Twilio's own link makes a cursor");
        prop_assert_eq!(cursor::decode(&cursor, &a).unwrap(), pairs);
        let other = AccountSid::parse(&format!("AC{}", "2".repeat(32))).unwrap();
        prop_assert!(cursor::decode(&cursor, &other).is_err());
    }

    /// A cursor whose path is not this account's numbers list is refused, whatever its
    /// query: the adapter never follows another host or path.
    #[test]
    fn cursors_for_another_path_are_refused(path in foreign_path(), pairs in paging_pairs()) {
        let text = format!("{path}?{}", query(&pairs));
        let forged = format!("n1.{}", URL_SAFE_NO_PAD.encode(&text));
        prop_assert!(cursor::decode(&forged, &account()).is_err(), "followed {:?}", text);
        prop_assert!(cursor::encode(&text, &account()).is_none() || path.starts_with("https://"));
    }
}
