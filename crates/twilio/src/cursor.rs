//! The opaque paging cursor of `list_numbers`.
//!
//! A cursor is `n1.` + base64url(path + `?` + query) of Twilio's `next_page_uri`, after the
//! adapter checked it. Decoding checks it again: the path must be *this* account's
//! IncomingPhoneNumbers list and the query may only hold the paging and filter parameters
//! the adapter itself sends, with sane values. The request is then rebuilt from the
//! configured API base, our own path and those parameters, so a forged cursor can neither
//! reach another host or path nor smuggle other parameters (no SSRF).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use trunkline_core::ports::ProviderError;
use trunkline_core::{E164, ErrorCode};

use crate::config::TwilioConfig;
use crate::ops::TwilioOperation;
use crate::sid::AccountSid;

const PREFIX: &str = "n1.";
/// Twilio's links are ~200 characters; anything far longer is not ours.
const MAX_CURSOR_LEN: usize = 2048;

fn invalid() -> ProviderError {
    ProviderError::new(
        ErrorCode::ValidationFailed,
        "cursor: not a cursor returned by this listing; start again without one",
    )
}

/// Check a `next_page_uri` (relative, or absolute on any host) and keep only its path
/// and validated query.
fn canonical(raw: &str, account: &AccountSid) -> Option<Vec<(String, String)>> {
    let path_and_query = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        let url = url::Url::parse(raw).ok()?;
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    if path != TwilioOperation::ListIncomingPhoneNumber.path(&[account.as_str()]) {
        return None;
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if pairs.iter().any(|(n, _)| *n == name) {
            return None;
        }
        let ok = match name.as_ref() {
            "PageSize" => value
                .parse::<u32>()
                .is_ok_and(|n| (1..=TwilioConfig::MAX_PAGE_SIZE).contains(&n)),
            "Page" => value.parse::<u32>().is_ok(),
            "PageToken" => {
                (1..=256).contains(&value.len())
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            }
            "PhoneNumber" => E164::parse(&value).is_ok_and(|e| e.as_str() == value),
            _ => false,
        };
        if !ok {
            return None;
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

fn to_query(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Turn Twilio's `next_page_uri` into a cursor. `None` when Twilio's link is not one we
/// would accept back (then paging stops rather than hand out a cursor that fails).
pub(crate) fn encode(next_page_uri: &str, account: &AccountSid) -> Option<String> {
    let pairs = canonical(next_page_uri, account)?;
    let path = TwilioOperation::ListIncomingPhoneNumber.path(&[account.as_str()]);
    let text = format!("{path}?{}", to_query(&pairs));
    Some(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(text)))
}

/// The query parameters of the page a cursor points at.
pub(crate) fn decode(
    cursor: &str,
    account: &AccountSid,
) -> Result<Vec<(String, String)>, ProviderError> {
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(invalid());
    }
    let encoded = cursor.strip_prefix(PREFIX).ok_or_else(invalid)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    if !text.starts_with('/') {
        return Err(invalid());
    }
    canonical(&text, account).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountSid {
        AccountSid::parse(&format!("AC{}", "1".repeat(32))).unwrap()
    }

    fn other() -> AccountSid {
        AccountSid::parse(&format!("AC{}", "2".repeat(32))).unwrap()
    }

    fn twilio_link(a: &AccountSid) -> String {
        format!(
            "/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json?PhoneNumber=%2B14155550100&PageSize=50&Page=1&PageToken=PAPN0123"
        )
    }

    #[test]
    fn round_trips_the_paging_parameters() {
        let c = encode(&twilio_link(&account()), &account()).unwrap();
        let pairs = decode(&c, &account()).unwrap();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("PhoneNumber"), Some("+14155550100"));
        assert_eq!(get("PageSize"), Some("50"));
        assert_eq!(get("Page"), Some("1"));
        assert_eq!(get("PageToken"), Some("PAPN0123"));
    }

    #[test]
    fn absolute_links_keep_only_path_and_query() {
        let link = format!("https://api.twilio.com{}", twilio_link(&account()));
        let c = encode(&link, &account()).unwrap();
        assert_eq!(decode(&c, &account()).unwrap().len(), 4);
    }

    #[test]
    fn another_accounts_cursor_is_refused() {
        let c = encode(&twilio_link(&account()), &account()).unwrap();
        let e = decode(&c, &other()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
    }

    #[test]
    fn forged_cursors_are_refused() {
        let forge = |text: &str| format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(text));
        let a = account();
        for bad in [
            forge(&format!("/2010-04-01/Accounts/{a}/Calls.json?PageSize=50")),
            forge(&format!(
                "//evil.example/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json"
            )),
            forge(&format!(
                "https://evil.example/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json"
            )),
            forge(&format!(
                "/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json?PageSize=5000"
            )),
            forge(&format!(
                "/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json?Beta=true"
            )),
            forge(&format!(
                "/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json?PageSize=5&PageSize=6"
            )),
            forge(&format!(
                "/2010-04-01/Accounts/{a}/IncomingPhoneNumbers.json?PageToken=a%2Fb"
            )),
            forge(&format!(
                "/2010-04-01/Accounts/{a}/../{}/IncomingPhoneNumbers.json",
                other()
            )),
            "garbage".to_owned(),
            format!("{PREFIX}!!!"),
            format!("{PREFIX}{}", "A".repeat(5000)),
            String::new(),
        ] {
            let e = decode(&bad, &a).expect_err(&bad);
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
        }
    }

    #[test]
    fn unexpected_twilio_links_end_paging_instead_of_producing_bad_cursors() {
        let a = account();
        assert!(encode(&format!("/2010-04-01/Accounts/{a}/Other.json?Page=1"), &a).is_none());
    }
}
