//! Routing policy (the JSON of a number's `routing`): any bytes are read or refused; a
//! policy that reads is one its checked constructor accepts, and it serialises and reads
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trunkline_core::model::RoutingPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = serde_json::from_slice::<RoutingPolicy>(data) else {
        return;
    };
    let json = serde_json::to_vec(&policy).expect("a policy serialises");
    let again: RoutingPolicy = serde_json::from_slice(&json).expect("and reads back");
    assert_eq!(again, policy);
    assert_eq!(RoutingPolicy::new(again.into()), Ok(policy));
});
