//! Properties of the parsers of outside input: SIDs accept exactly their prefix and 32
//! hexadecimal characters, the credentials parser never panics nor echoes a secret, and the
//! paging cursor decoder never panics, follows only this account's numbers list, and gives
//! back the paging parameters it was made from. The voice webhook form (the contract
//! `fuzz/fuzz_targets/twilio_voice_form.rs` checks too): reading it never panics and takes the
//! first value of each name, never an empty one; a well-formed form round-trips its fields;
//! a missing or empty `AccountSid` / `To` is refused by name; the called number is normalised
//! or refused the same way however it is written; and the signature refuses any change.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};
use trunkline_core::phone::E164;
use trunkline_core::ports::CredentialInput;

use crate::config::TwilioConfig;
use crate::credentials;
use crate::cursor;
use crate::ops::TwilioOperation;
use crate::sid::{
    AccountSid, ApiKeySid, ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid,
};
use crate::webhook::{SignedContent, VoiceWebhook, signature, validate};

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

/// The names a voice webhook form carries: the ones trunkline reads, others Twilio sends, and
/// anything else.
fn form_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AccountSid".to_owned()),
        Just("To".to_owned()),
        Just("CallSid".to_owned()),
        Just("From".to_owned()),
        Just("accountsid".to_owned()),
        "[A-Za-z]{1,10}",
    ]
}

fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "AC[0-9a-f]{32}",
        "CA[0-9a-f]{32}",
        "\\+1415555[0-9]{4}",
        any::<String>(),
    ]
}

/// The contract, written independently of the parser: the first pair of that name, if its
/// value is not empty.
fn first_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Ways of writing one phone number that people and carriers use.
fn written(digits: &str, style: usize) -> String {
    let (cc, rest) = digits.split_at(1);
    let (a, b) = rest.split_at(3);
    let (b, c) = b.split_at(3);
    match style % 6 {
        0 => format!("+{digits}"),
        1 => format!("+{cc} {a} {b} {c}"),
        2 => format!("+{cc} ({a}) {b}-{c}"),
        3 => format!("+{cc}.{a}.{b}.{c}"),
        4 => format!(" +{cc}\u{a0}{a}\u{2011}{b}\t{c}"),
        _ => format!("+{cc}-{a}/{b}-{c}"),
    }
}

/// A form as Twilio sends one: every name once, `AccountSid` and `To` set, in any order.
fn well_formed_form()
-> impl Strategy<Value = (String, String, Option<String>, Vec<(String, String)>)> {
    (
        "AC[0-9a-f]{32}",
        "1415555[0-9]{4}",
        proptest::option::of("CA[0-9a-f]{32}"),
        prop::collection::btree_map("[A-Z][A-Za-z]{0,10}", any::<String>(), 0..6),
    )
        .prop_flat_map(|(account, digits, call, extra)| {
            let to = format!("+{digits}");
            let mut params: Vec<(String, String)> = extra
                .into_iter()
                .filter(|(k, _)| !["AccountSid", "To", "CallSid"].contains(&k.as_str()))
                .collect();
            params.push(("AccountSid".to_owned(), account.clone()));
            params.push(("To".to_owned(), to.clone()));
            if let Some(c) = &call {
                params.push(("CallSid".to_owned(), c.clone()));
            }
            (
                Just(account),
                Just(to),
                Just(call),
                Just(params).prop_shuffle(),
            )
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any form, any bytes read as a form: reading it never panics, and what it reads is the
    /// first value of each name, or the name of the first required one missing or empty.
    #[test]
    fn voice_forms_never_panic_and_take_the_first_non_empty_value(
        params in prop::collection::vec((form_name(), form_value()), 0..8),
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let from_bytes: Vec<(String, String)> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        for params in [params, from_bytes] {
            match VoiceWebhook::from_params(&params) {
                Ok(hook) => {
                    prop_assert_eq!(Some(hook.account_sid.as_str()), first_value(&params, "AccountSid"));
                    prop_assert_eq!(Some(hook.to.as_str()), first_value(&params, "To"));
                    prop_assert_eq!(hook.call_sid.as_deref(), first_value(&params, "CallSid"));
                }
                Err(missing) => {
                    let expected = ["AccountSid", "To"]
                        .into_iter()
                        .find(|n| first_value(&params, n).is_none());
                    prop_assert_eq!(Some(missing), expected, "{:?}", params);
                }
            }
        }
    }

    /// A well-formed form, encoded as Twilio posts it and read as the server reads it, gives
    /// back its fields, and its `AccountSid` and `To` parse to the values sent.
    #[test]
    fn well_formed_voice_forms_round_trip(form in well_formed_form()) {
        let (account, to, call, params) = form;
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            body.append_pair(k, v);
        }
        let body = body.finish();
        let read: Vec<(String, String)> =
            url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        prop_assert_eq!(&read, &params);
        let hook = VoiceWebhook::from_params(&read).expect("a well-formed form is read");
        prop_assert_eq!(&hook.account_sid, &account);
        prop_assert_eq!(&hook.to, &to);
        prop_assert_eq!(&hook.call_sid, &call);
        prop_assert_eq!(AccountSid::parse(&hook.account_sid).map(|a| a.to_string()).ok(), Some(account));
        let e164 = E164::parse(&hook.to).expect("a valid number");
        prop_assert_eq!(e164.as_str(), to.as_str());
    }

    /// Without `AccountSid` or `To`, or with either empty (also when a later pair of the same
    /// name has a value: only the first counts), the form is refused with that name,
    /// `AccountSid` first.
    #[test]
    fn voice_forms_without_a_required_field_are_refused(
        form in well_formed_form(),
        drop_account in any::<bool>(),
        drop_to in any::<bool>(),
        empty_instead in any::<bool>(),
        later_value in "[ -~]{1,20}",
    ) {
        prop_assume!(drop_account || drop_to);
        let (_, _, _, mut params) = form;
        for (name, dropped) in [("AccountSid", drop_account), ("To", drop_to)] {
            if !dropped {
                continue;
            }
            if empty_instead {
                for (k, v) in &mut params {
                    if k == name {
                        v.clear();
                    }
                }
                params.push((name.to_owned(), later_value.clone()));
            } else {
                params.retain(|(k, _)| k != name);
            }
        }
        let expected = if drop_account { "AccountSid" } else { "To" };
        prop_assert_eq!(VoiceWebhook::from_params(&params), Err(expected));
    }

    /// The called number as read from the form is normalised to one canonical `+` form or
    /// refused, the same way however it is written; the canonical form is a fixed point. A
    /// `+` sent unencoded reads as a space, and the number is refused, never taken as
    /// another.
    #[test]
    fn called_numbers_are_normalised_or_refused_consistently(
        digits in prop_oneof!["1415555[0-9]{4}", "[1-9][0-9]{9}", "[0-9]{10}"],
        styles in prop::collection::vec(0..6usize, 2..5),
        junk in "[ -~]{0,16}",
    ) {
        let read = |to: &str| {
            let body = format!("AccountSid=AC{}&To={}", "1".repeat(32), url::form_urlencoded::byte_serialize(to.as_bytes()).collect::<String>());
            let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let hook = VoiceWebhook::from_params(&params).expect("AccountSid and To are set");
            prop_assert_eq!(&hook.to, to);
            Ok(E164::parse(&hook.to).ok())
        };
        let canonical = read(&format!("+{digits}"))?;
        if let Some(n) = &canonical {
            let rest = n.as_str().strip_prefix('+').unwrap_or_default();
            prop_assert!(!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()), "{:?}", n);
            let again = E164::parse(n.as_str()).ok();
            prop_assert_eq!(again.as_ref(), Some(n));
        }
        if digits.starts_with("1415555") {
            prop_assert!(canonical.is_some(), "+{} is a valid number", digits);
        }
        for style in styles {
            let w = written(&digits, style);
            prop_assert_eq!(&read(&w)?, &canonical, "{:?}", w);
        }
        let unencoded = format!("AccountSid=AC{}&To=+{digits}", "1".repeat(32));
        let params: Vec<(String, String)> = url::form_urlencoded::parse(unencoded.as_bytes()).into_owned().collect();
        let hook = VoiceWebhook::from_params(&params).expect("AccountSid and To are set");
        prop_assert!(E164::parse(&hook.to).is_err(), "{:?}", hook.to);
        let garbled = format!("+{digits}{junk}x");
        prop_assert!(E164::parse(&garbled).is_err(), "{:?}", garbled);
    }

    /// A signature over a form is accepted for that form only: changing any value, dropping
    /// or adding a parameter, changing the URL or the token, each is refused.
    #[test]
    fn voice_signatures_refuse_any_change(
        params in prop::collection::btree_map("[A-Za-z]{1,12}", any::<String>(), 1..8),
        token in "[ -~]{1,40}",
        pick in any::<prop::sample::Index>(),
        changed in any::<String>(),
        added in ("[A-Za-z]{13,16}", any::<String>()),
        change in 0..5usize,
    ) {
        let params: Vec<(String, String)> = params.into_iter().collect();
        let token = SecretString::from(token);
        let url = "https://trunkline.example/twilio/voice";
        let good = signature(&token, url, &params);
        prop_assert!(validate(&token, url, SignedContent::Form(&params), &good));
        let i = pick.index(params.len());
        let mut forged = params.clone();
        let mut forged_url = url.to_owned();
        let mut forged_token = token.clone();
        match change {
            0 => {
                prop_assume!(changed != forged[i].1);
                forged[i].1 = changed;
            }
            1 => {
                forged.remove(i);
            }
            2 => forged.push(added),
            3 => forged_url.push_str("?x=1"),
            _ => forged_token = SecretString::from(format!("{}x", token.expose_secret())),
        }
        prop_assert!(
            !validate(&forged_token, &forged_url, SignedContent::Form(&forged), &good),
            "change {} accepted: {:?} -> {:?}", change, params, forged
        );
    }
}
