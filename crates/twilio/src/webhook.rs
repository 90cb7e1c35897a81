//! Twilio's voice webhook: the request's parameters and its `X-Twilio-Signature`.
//!
//! Twilio signs a webhook with HMAC-SHA1, keyed with the auth token of the account that owns
//! the called number, over the URL it requested followed by every POST parameter (names
//! sorted, each name followed by its value(s), sorted). Its SDKs accept the URL with and
//! without the scheme's default port, because Twilio's side is not consistent about it; a
//! URL carrying `bodySHA256` signs the URL alone and binds the raw body by its SHA-256.
//! [`validate`] follows `twilio.request_validator.RequestValidator` of the official SDK; the
//! tests check it against vectors that SDK computed (`tests/fixtures/signature_vectors.json`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header Twilio signs its webhooks in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// What a request to validate carries: form parameters, or (`bodySHA256` in the URL) a raw
/// body whose hash the URL names.
#[derive(Debug, Clone, Copy)]
pub enum SignedContent<'a> {
    Form(&'a [(String, String)]),
    Body(&'a [u8]),
}

/// The base64 HMAC-SHA1 Twilio sends for `url` and `params` (what the SDK's
/// `compute_signature` returns). Repeated values of one name count once, as in the SDK.
pub fn signature(auth_token: &SecretString, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

fn mac(auth_token: &SecretString, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.expose_secret().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// Whether `signature` is Twilio's for this request, signed with `auth_token`: over `url`
/// without its port or with the scheme's default port added, and for a `bodySHA256` URL with
/// the body's hash matching. Comparisons are constant-time.
pub fn validate(
    auth_token: &SecretString,
    url: &str,
    content: SignedContent<'_>,
    signature: &str,
) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let (params, body_ok) = match content {
        SignedContent::Form(params) => (params, true),
        SignedContent::Body(body) => match body_sha256(url) {
            Some(expected) => {
                let actual = hex::encode(Sha256::digest(body));
                (
                    &[][..],
                    bool::from(actual.as_bytes().ct_eq(expected.as_bytes())),
                )
            }
            // A raw body without a hash in the URL binds nothing: refuse it.
            None => return false,
        },
    };
    let (without, with) = port_variants(url);
    let ok = |u: &str| mac(auth_token, u, params).verify_slice(&given).is_ok();
    // Both always computed: the time taken says nothing about which form matched.
    let a = ok(&without);
    let b = ok(&with);
    body_ok && (a || b)
}

/// The `bodySHA256` query parameter of `url`, as Twilio adds it for a JSON body.
pub fn body_sha256(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned())
}

/// `url` without a port and with the scheme's default port (443 for https, else 80), as the
/// SDK's `remove_port` / `add_port` write them; a URL with a port keeps it in the second form.
fn port_variants(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), url.to_owned());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let hostport = &authority[host_start..];
    let port_at = hostport
        .rfind(':')
        .filter(|&i| !hostport[i..].contains(']') && hostport[i + 1..].parse::<u16>().is_ok());
    let userinfo = &authority[..host_start];
    if let Some(i) = port_at {
        (
            format!("{scheme}://{userinfo}{}{tail}", &hostport[..i]),
            url.to_owned(),
        )
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        (
            url.to_owned(),
            format!("{scheme}://{authority}:{port}{tail}"),
        )
    }
}

/// What trunkline reads of Twilio's voice webhook: the account and the called number, raw
/// (the caller parses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceWebhook {
    pub account_sid: String,
    pub to: String,
    pub call_sid: Option<String>,
}

impl VoiceWebhook {
    /// Read the parameters trunkline routes by.
    ///
    /// # Errors
    /// The name of the first missing required parameter (`AccountSid`, `To`).
    pub fn from_params(params: &[(String, String)]) -> Result<Self, &'static str> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            account_sid: get("AccountSid").ok_or("AccountSid")?,
            to: get("To").ok_or("To")?,
            call_sid: get("CallSid"),
        })
    }
}

/// The TwiML that dials a SIP URI with digest credentials. Every value is XML-escaped.
pub fn dial_sip_twiml(sip_uri: &str, username: &str, password: &SecretString) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial><Sip username=\"{}\" \
         password=\"{}\">{}</Sip></Dial></Response>",
        xml_escape(username),
        xml_escape(password.expose_secret()),
        xml_escape(sip_uri),
    )
}

/// The TwiML that refuses a call (busy-free: Twilio plays nothing and the caller hears it
/// rejected).
pub fn reject_twiml() -> &'static str {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject/></Response>"
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn port_variants_follow_the_sdk() {
        assert_eq!(
            port_variants("https://a.example/p?q=1"),
            (
                "https://a.example/p?q=1".to_owned(),
                "https://a.example:443/p?q=1".to_owned()
            )
        );
        assert_eq!(
            port_variants("http://a.example:8080/p"),
            (
                "http://a.example/p".to_owned(),
                "http://a.example:8080/p".to_owned()
            )
        );
        assert_eq!(
            port_variants("http://a.example"),
            (
                "http://a.example".to_owned(),
                "http://a.example:80".to_owned()
            )
        );
    }

    #[test]
    fn a_signature_of_another_token_or_garbage_is_refused() {
        let params = vec![("To".to_owned(), "+14155550100".to_owned())];
        let sig = signature(&token("a"), "https://x.example/v", &params);
        assert!(validate(
            &token("a"),
            "https://x.example/v",
            SignedContent::Form(&params),
            &sig
        ));
        assert!(!validate(
            &token("b"),
            "https://x.example/v",
            SignedContent::Form(&params),
            &sig
        ));
        for garbage in ["", "not base64!", "AAAA"] {
            assert!(!validate(
                &token("a"),
                "https://x.example/v",
                SignedContent::Form(&params),
                garbage
            ));
        }
    }

    #[test]
    fn a_raw_body_needs_its_hash_in_the_url() {
        let sig = signature(&token("a"), "https://x.example/v", &[]);
        assert!(!validate(
            &token("a"),
            "https://x.example/v",
            SignedContent::Body(b"{}"),
            &sig
        ));
    }

    #[test]
    fn twiml_escapes_every_value() {
        let xml = dial_sip_twiml("sip:+1@h;transport=tcp", "u\"<", &token("p&'>"));
        assert!(xml.contains("username=\"u&quot;&lt;\""), "{xml}");
        assert!(xml.contains("password=\"p&amp;&apos;&gt;\""), "{xml}");
        assert!(xml.contains(">sip:+1@h;transport=tcp</Sip>"), "{xml}");
    }

    #[test]
    fn webhook_parameters_name_what_is_missing() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            VoiceWebhook::from_params(&[p("To", "+1")]).unwrap_err(),
            "AccountSid"
        );
        assert_eq!(
            VoiceWebhook::from_params(&[p("AccountSid", "AC1"), p("To", "")]).unwrap_err(),
            "To"
        );
        let w = VoiceWebhook::from_params(&[p("AccountSid", "AC1"), p("To", "+1")]).unwrap();
        assert_eq!(w.account_sid, "AC1");
    }
}
