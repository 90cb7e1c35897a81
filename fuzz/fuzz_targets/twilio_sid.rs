//! Twilio SIDs: accepted exactly when, whitespace aside, the prefix and 32 hexadecimal
//! characters; a parsed SID's string form parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_twilio::{
    AccountSid, ApiKeySid, ApplicationSid, OriginationUrlSid, PhoneNumberSid, TrunkSid,
};

fn expected<'a>(raw: &'a str, prefix: &str) -> Option<&'a str> {
    let s = raw.trim_matches(char::is_whitespace);
    let hex = s.strip_prefix(prefix)?;
    (hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(s)
}

macro_rules! check {
    ($raw:expr, $($sid:ident),*) => {$(
        match ($sid::parse($raw), expected($raw, $sid::PREFIX)) {
            (Ok(sid), Some(s)) => {
                assert_eq!(sid.as_str(), s);
                assert_eq!($sid::parse(&sid.to_string()).ok(), Some(sid));
            }
            (Err(_), None) => {}
            (got, want) => panic!("{} {:?}: got {:?}, want {:?}", stringify!($sid), $raw, got, want),
        }
    )*};
}

fuzz_target!(|raw: &str| {
    check!(
        raw,
        AccountSid,
        ApiKeySid,
        PhoneNumberSid,
        TrunkSid,
        OriginationUrlSid,
        ApplicationSid
    );
});
