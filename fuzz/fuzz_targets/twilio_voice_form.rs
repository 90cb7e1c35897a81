//! Twilio's voice webhook form: any body is read as a form; the parameters trunkline routes
//! by are taken exactly as given (the first of each name, never empty), and checking a
//! signature over them never panics and never accepts a forged one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use trunkline_twilio::webhook::{SignedContent, VoiceWebhook, signature, validate};

fuzz_target!(|data: &[u8]| {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let first = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match VoiceWebhook::from_params(&params) {
        Ok(hook) => {
            assert_eq!(Some(hook.account_sid.as_str()), first("AccountSid"));
            assert_eq!(Some(hook.to.as_str()), first("To"));
            assert!(!hook.account_sid.is_empty() && !hook.to.is_empty());
            assert_eq!(
                hook.call_sid.as_deref(),
                first("CallSid").filter(|s| !s.is_empty())
            );
        }
        Err(missing) => assert!(first(missing).is_none_or(str::is_empty), "{missing}"),
    }
    let token = SecretString::from("fuzz-auth-token".to_owned());
    let url = "https://trunkline.example/twilio/voice";
    let good = signature(&token, url, &params);
    assert!(validate(&token, url, SignedContent::Form(&params), &good));
    let other = SecretString::from("another-token".to_owned());
    assert!(!validate(&other, url, SignedContent::Form(&params), &good));
});
