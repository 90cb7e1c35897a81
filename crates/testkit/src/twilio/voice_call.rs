//! A simulated inbound call in voice-URL mode: Twilio fetches the number's voice URL.
//!
//! As Twilio does: a form POST of the call's parameters to the number's `VoiceUrl` (method
//! `VoiceMethod`, POST here), signed in `X-Twilio-Signature` with the owning account's auth
//! token: base64 HMAC-SHA1 over the URL exactly as configured followed by every parameter
//! name and value, names sorted. This signer is written separately from the adapter's
//! validator (`trunkline_twilio::webhook`) so that the two check each other; the tests check
//! both against vectors of Twilio's official SDK. The answer is read as TwiML and checked:
//! well-formed, one `<Response>`, and for a dial a `<Sip>` URI with its credentials.

use std::sync::OnceLock;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use trunkline_twilio::PhoneNumberSid;

use super::TwilioEmulator;
use super::server::lock;
use super::state::new_sid;

/// How to place the call; the defaults are what Twilio does. The other settings make the
/// request a forgery of one kind or another, for tests of the receiving end.
#[derive(Debug, Clone, Default)]
pub struct VoiceCallOptions {
    /// The caller (`From`); default `+14155550199`.
    pub from: Option<String>,
    /// Sign the URL with its scheme's default port written out (`https://host:443/…`), as
    /// Twilio sometimes does.
    pub sign_with_port: bool,
    /// Sign with this token instead of the owning account's.
    pub sign_with_token: Option<String>,
    /// Change this parameter after signing: `(name, new value)`.
    pub tamper: Option<(String, String)>,
    /// Sign this URL instead of the number's voice URL: a request made for another URL and
    /// replayed to this one.
    pub sign_url: Option<String>,
    /// Where the request physically goes, when not to the voice URL itself: a reverse proxy
    /// in front of the receiver (the signature stays over the voice URL, as Twilio's does).
    pub deliver_to: Option<String>,
    /// Send no `X-Twilio-Signature` at all.
    pub unsigned: bool,
}

/// The TwiML a voice URL answered, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Twiml {
    /// `<Dial><Sip username=… password=…>uri</Sip></Dial>`
    DialSip {
        uri: String,
        username: Option<String>,
        password: Option<String>,
    },
    /// `<Reject/>`
    Reject,
    /// Anything else (kept raw).
    Other(String),
}

/// What the voice URL answered.
#[derive(Debug, Clone)]
pub struct VoiceCallOutcome {
    pub call_sid: String,
    /// The URL the request went to and the signature it carried.
    pub url: String,
    pub signature: Option<String>,
    /// `None` when the request failed before an answer (`error` says why).
    pub status: Option<u16>,
    pub body: String,
    pub content_type: Option<String>,
    /// The answer read as TwiML, for a 200 with an XML body.
    pub twiml: Option<Twiml>,
    pub error: Option<String>,
}

/// Twilio's signature of `url` and `params` with `token` (HMAC-SHA1, base64).
pub fn twilio_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    // HMAC accepts keys of every length.
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `url` with the scheme's default port written out, when it names none.
fn with_default_port(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if parsed.port().is_some() {
        return url.to_owned();
    }
    let port = if parsed.scheme() == "https" { 443 } else { 80 };
    let host = parsed.host_str().unwrap_or_default();
    url.replacen(host, &format!("{host}:{port}"), 1)
}

impl TwilioEmulator {
    /// Change a number's voice URL behind trunkline's back (as in Twilio's console).
    pub fn set_voice_url(&self, number: &PhoneNumberSid, url: Option<&str>) -> bool {
        let mut store = lock(&self.shared.store);
        let Some(n) = store.numbers.get_mut(number.as_str()) else {
            return false;
        };
        n.voice_url = url.map(str::to_owned);
        n.updated = chrono::Utc::now();
        true
    }

    /// Place an inbound call to `number` in voice-URL mode: POST its parameters to the
    /// number's voice URL, signed as Twilio signs them, and read the TwiML answer.
    ///
    /// # Panics
    /// When the number does not exist or has no voice URL (a test mistake).
    pub async fn place_voice_url_call(
        &self,
        number: &PhoneNumberSid,
        options: &VoiceCallOptions,
    ) -> VoiceCallOutcome {
        let (voice_url, account, token, to) = {
            let store = lock(&self.shared.store);
            let n = store
                .numbers
                .get(number.as_str())
                .unwrap_or_else(|| panic!("no number {number}"));
            let account = store
                .accounts
                .get(&n.account_sid)
                .unwrap_or_else(|| panic!("no account of {number}"));
            (
                n.voice_url
                    .clone()
                    .unwrap_or_else(|| panic!("number {number} has no voice URL")),
                n.account_sid.clone(),
                account.auth_token.clone(),
                n.phone_number.clone(),
            )
        };
        let call_sid = new_sid("CA");
        let from = options
            .from
            .clone()
            .unwrap_or_else(|| "+14155550199".to_owned());
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let mut params = vec![
            p("AccountSid", &account),
            p("ApiVersion", "2010-04-01"),
            p("CallSid", &call_sid),
            p("CallStatus", "ringing"),
            p("CallToken", "%7B%22parentCallInfoToken%22%3A%22%22%7D"),
            p("Called", &to),
            p("CalledCountry", "US"),
            p("Caller", &from),
            p("CallerCountry", "US"),
            p("Direction", "inbound"),
            p("From", &from),
            p("FromCountry", "US"),
            p("To", &to),
            p("ToCountry", "US"),
        ];
        let signed_url = options
            .sign_url
            .clone()
            .unwrap_or_else(|| voice_url.clone());
        let signed_url = if options.sign_with_port {
            with_default_port(&signed_url)
        } else {
            signed_url
        };
        let key = options.sign_with_token.as_deref().unwrap_or(&token);
        let signature = (!options.unsigned).then(|| twilio_signature(key, &signed_url, &params));
        if let Some((name, value)) = &options.tamper {
            match params.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1.clone_from(value),
                None => params.push((name.clone(), value.clone())),
            }
        }
        let url = options.deliver_to.clone().unwrap_or(voice_url);
        let mut outcome = VoiceCallOutcome {
            call_sid,
            url: url.clone(),
            signature: signature.clone(),
            status: None,
            body: String::new(),
            content_type: None,
            twiml: None,
            error: None,
        };
        let mut request = client()
            .post(&url)
            .header("User-Agent", "TwilioProxy/1.1")
            .header("I-Twilio-Idempotency-Token", new_sid(""))
            .form(&params);
        if let Some(s) = signature {
            request = request.header("X-Twilio-Signature", s);
        }
        match request.send().await {
            Ok(r) => {
                outcome.status = Some(r.status().as_u16());
                outcome.content_type = r
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                outcome.body = r.text().await.unwrap_or_default();
                if outcome.status == Some(200) {
                    outcome.twiml = Some(parse_twiml(&outcome.body));
                }
            }
            Err(e) => outcome.error = Some(e.to_string()),
        }
        outcome
    }
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .unwrap_or_default()
    })
}

/// Read the TwiML trunkline answers: one `<Response>` holding `<Dial><Sip …>uri</Sip></Dial>`
/// or `<Reject/>`. Twilio refuses a document that does not parse; so does this.
pub fn parse_twiml(body: &str) -> Twiml {
    static DIAL: OnceLock<regex::Regex> = OnceLock::new();
    let body = body.trim();
    let body = body
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        .unwrap_or(body)
        .trim();
    if body == "<Response><Reject/></Response>" {
        return Twiml::Reject;
    }
    let dial = DIAL.get_or_init(|| {
        regex::Regex::new(
            r#"^<Response><Dial><Sip(?: username="([^"<>]*)")?(?: password="([^"<>]*)")?>([^<>]+)</Sip></Dial></Response>$"#,
        )
        .expect("valid pattern")
    });
    match dial.captures(body) {
        Some(c) => Twiml::DialSip {
            uri: unescape(&c[3]),
            username: c.get(1).map(|m| unescape(m.as_str())),
            password: c.get(2).map(|m| unescape(m.as_str())),
        },
        None => Twiml::Other(body.to_owned()),
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_are_written_out_only_when_missing() {
        assert_eq!(
            with_default_port("https://a.example/v?x=1"),
            "https://a.example:443/v?x=1"
        );
        assert_eq!(
            with_default_port("http://a.example/v"),
            "http://a.example:80/v"
        );
        assert_eq!(
            with_default_port("http://a.example:8080/v"),
            "http://a.example:8080/v"
        );
    }

    #[test]
    fn twiml_is_read_strictly() {
        assert_eq!(
            parse_twiml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Reject/></Response>"),
            Twiml::Reject
        );
        assert_eq!(
            parse_twiml(
                "<Response><Dial><Sip username=\"u\" password=\"p&amp;q\">sip:+1@h;transport=tcp</Sip></Dial></Response>"
            ),
            Twiml::DialSip {
                uri: "sip:+1@h;transport=tcp".to_owned(),
                username: Some("u".to_owned()),
                password: Some("p&q".to_owned()),
            }
        );
        assert!(matches!(parse_twiml("<Response><Dial>"), Twiml::Other(_)));
    }
}
