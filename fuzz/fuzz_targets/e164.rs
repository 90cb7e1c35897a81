//! E.164 parsing: never panics; what parses prints back to itself and parses again equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::E164;

fuzz_target!(|raw: &str| {
    if let Ok(n) = E164::parse(raw) {
        let again = E164::parse(n.as_str()).expect("a parsed number parses again");
        assert_eq!(again, n);
    }
});
