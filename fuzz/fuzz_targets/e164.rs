//! E.164: any text is parsed or refused; a parsed number is `+` and 8 to 15 digits, and its
//! string form parses back to itself (normalisation is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::E164;

fuzz_target!(|raw: &str| {
    if let Ok(number) = E164::parse(raw) {
        let s = number.as_str();
        let digits = s.strip_prefix('+').expect("E.164 starts with +");
        assert!((8..=15).contains(&digits.len()), "{s}");
        assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s}");
        assert_eq!(E164::parse(&number.to_string()).ok(), Some(number));
    }
});
