//! SIP target parsing: never panics; the string form of a target parses back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::SipTarget;

fuzz_target!(|raw: &str| {
    if let Ok(t) = SipTarget::parse(raw) {
        let again = SipTarget::parse(&t.to_string()).expect("a target's string form parses");
        assert_eq!(again, t);
    }
});
