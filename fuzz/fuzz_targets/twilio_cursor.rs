//! Twilio's paging cursor: any text decodes or is refused; what decodes holds only the
//! paging parameters, once each, and re-encodes to a cursor that decodes the same. Any
//! `next_page_uri` that makes a cursor makes one that decodes.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use trunkline_twilio::AccountSid;
use trunkline_twilio::fuzzing::{decode_cursor, encode_cursor};

static ACCOUNT: LazyLock<AccountSid> =
    LazyLock::new(|| AccountSid::parse("AC11111111111111111111111111111111").expect("a valid SID"));

const PATH: &str =
    "/2010-04-01/Accounts/AC11111111111111111111111111111111/IncomingPhoneNumbers.json";

fuzz_target!(|raw: &str| {
    let account = &*ACCOUNT;
    if let Ok(pairs) = decode_cursor(raw, account) {
        let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a parameter twice: {pairs:?}");
        assert!(
            names
                .iter()
                .all(|n| ["Page", "PageSize", "PageToken", "PhoneNumber"].contains(n)),
            "{pairs:?}"
        );
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        let link = format!("{PATH}?{}", query.finish());
        let cursor = encode_cursor(&link, account).expect("decoded parameters encode");
        assert_eq!(decode_cursor(&cursor, account).ok(), Some(pairs));
    }
    if let Some(cursor) = encode_cursor(raw, account) {
        assert!(
            decode_cursor(&cursor, account).is_ok(),
            "{raw:?} -> {cursor}"
        );
    }
});
