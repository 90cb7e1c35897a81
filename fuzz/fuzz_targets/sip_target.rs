//! SIP targets: any text is parsed or refused; a parsed target's string form parses back to
//! the same target.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::SipTarget;

fuzz_target!(|raw: &str| {
    if let Ok(target) = SipTarget::parse(raw) {
        let shown = target.to_string();
        let again = SipTarget::parse(&shown).expect("a target's string form parses");
        assert_eq!(again, target, "{shown}");
        assert_eq!(again.to_string(), shown);
    }
});
