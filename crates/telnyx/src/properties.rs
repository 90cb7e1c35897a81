//! Properties of the parsers of outside input: Telnyx ids accept exactly 1 to 20 ASCII
//! digits, and the paging cursor decoder never panics and only accepts what it encodes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use crate::cursor::{self, Position};
use crate::model::{ConnectionId, FqdnId, NumberId};

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn id_like() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{0,24}", "[0-9 +\\-a/.]{0,22}", any::<String>()]
}

fn id_ok(raw: &str) -> bool {
    (1..=20).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_digit())
}

macro_rules! id_properties {
    ($($test:ident: $id:ident),* $(,)?) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $test(raw in id_like()) {
                    match $id::parse(&raw) {
                        Ok(id) => {
                            prop_assert!(id_ok(&raw), "accepted {:?}", raw);
                            prop_assert_eq!(id.as_str(), raw.as_str());
                            prop_assert_eq!($id::parse(&id.to_string()).ok(), Some(id));
                        }
                        Err(_) => prop_assert!(!id_ok(&raw), "refused {:?}", raw),
                    }
                }
            )*
        }
    };
}

id_properties!(
    number_id_accepts_exactly_1_to_20_digits: NumberId,
    connection_id_accepts_exactly_1_to_20_digits: ConnectionId,
    fqdn_id_accepts_exactly_1_to_20_digits: FqdnId,
);

/// Cursor candidates: arbitrary text, `t1.` + arbitrary base64url, and `t1.` + the base64url
/// of text shaped like a cursor body (so decoding gets past base64 and UTF-8).
fn cursor_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "t1\\.[A-Za-z0-9_\\-=+/]{0,70}",
        "[0-9+\\-]{0,12}(\\.[0-9+\\-]{0,12}){0,3}"
            .prop_map(|body| format!("t1.{}", URL_SAFE_NO_PAD.encode(body))),
    ]
}

fn position() -> impl Strategy<Value = Position> {
    (
        2u32..=u32::MAX,
        1u32..=250,
        proptest::option::of("[0-9]{3,15}"),
    )
        .prop_map(|(page, size, digits)| Position { page, size, digits })
}

proptest! {
    #![proptest_config(config())]

    /// Whatever `decode` accepts, `encode` gives back verbatim: nothing else is a cursor.
    #[test]
    fn cursor_decode_accepts_only_what_encode_produces(raw in cursor_like()) {
        if let Ok(p) = cursor::decode(&raw) {
            prop_assert_eq!(cursor::encode(&p), raw);
        }
    }

    #[test]
    fn cursors_round_trip(p in position()) {
        prop_assert_eq!(cursor::decode(&cursor::encode(&p)).ok(), Some(p));
    }
}
