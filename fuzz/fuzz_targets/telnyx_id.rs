//! Telnyx ids: accepted exactly when 1 to 20 ASCII digits, kept as given, and their string
//! form parses back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_telnyx::{ConnectionId, FqdnId, NumberId};

macro_rules! check {
    ($raw:expr, $($id:ident),*) => {$(
        let ok = (1..=20).contains(&$raw.len()) && $raw.bytes().all(|b| b.is_ascii_digit());
        match $id::parse($raw) {
            Ok(id) => {
                assert!(ok, "{} accepted {:?}", stringify!($id), $raw);
                assert_eq!(id.as_str(), $raw);
                assert_eq!($id::parse(&id.to_string()).ok(), Some(id));
            }
            Err(_) => assert!(!ok, "{} refused {:?}", stringify!($id), $raw),
        }
    )*};
}

fuzz_target!(|raw: &str| {
    check!(raw, NumberId, ConnectionId, FqdnId);
});
