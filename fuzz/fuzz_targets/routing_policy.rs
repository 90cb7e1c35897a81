//! A routing policy read from JSON: never panics; a policy that reads back validates the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::model::RoutingPolicy;

fuzz_target!(|raw: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<RoutingPolicy>(raw) {
        let verdict = p.validate().is_ok();
        let back: RoutingPolicy =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.validate().is_ok(), verdict);
    }
});
