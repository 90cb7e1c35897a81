//! How trunkline names what it creates, so that it can find its own objects again.

use crate::ids::{CarrierNumberId, CustomerId};
use crate::model::TrunkStrategy;

/// Every trunk and origination URL trunkline creates has a friendly name starting with this.
/// Anything without it was made by someone else and is never changed or deleted by trunkline.
pub const TRUNKLINE_NAME_PREFIX: &str = "trunkline";

/// Carriers cap friendly names (Twilio: 64 characters).
const MAX_NAME: usize = 64;

/// The friendly name of the trunk a number goes on:
/// `trunkline-shared-<customer>` (one per customer) or `trunkline-dedicated-<PN…>`.
///
/// Customer ids are opaque and may be long or hold characters a carrier dislikes, so the
/// shared name keeps a sanitized prefix of the id plus a stable hash of the whole id.
pub fn trunk_friendly_name(
    strategy: TrunkStrategy,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> String {
    match strategy {
        TrunkStrategy::Dedicated => format!("{TRUNKLINE_NAME_PREFIX}-dedicated-{number}"),
        TrunkStrategy::Shared => {
            let hash = format!("{:016x}", fnv1a64(customer.as_str().as_bytes()));
            let head = format!("{TRUNKLINE_NAME_PREFIX}-shared-");
            let room = MAX_NAME - head.len() - hash.len() - 1;
            let clean: String = customer
                .as_str()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(room)
                .collect();
            format!("{head}{clean}-{hash}")
        }
    }
}

/// The friendly name of an origination URL trunkline creates (priority distinguishes HA peers).
pub fn origination_friendly_name(priority: u16, weight: u16) -> String {
    format!("{TRUNKLINE_NAME_PREFIX}-livekit-p{priority}-w{weight}")
}

/// Whether a friendly name marks an object trunkline created.
pub fn is_ours(friendly_name: Option<&str>) -> bool {
    friendly_name.is_some_and(|n| n.starts_with(TRUNKLINE_NAME_PREFIX))
}

/// Whether a trunk is one trunkline made for this customer's number: the customer's shared
/// trunk or the number's dedicated trunk. Another customer's `trunkline-…` trunk in the same
/// carrier account is *not* ours: taking a number off it needs `force` like any foreign trunk.
pub fn is_customers_trunk(
    friendly_name: Option<&str>,
    customer: &CustomerId,
    number: &CarrierNumberId,
) -> bool {
    friendly_name.is_some_and(|n| {
        n == trunk_friendly_name(TrunkStrategy::Shared, customer, number)
            || n == trunk_friendly_name(TrunkStrategy::Dedicated, customer, number)
    })
}

/// FNV-1a: a stable, dependency-free hash; names only need to be distinct, not secret.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pn() -> CarrierNumberId {
        CarrierNumberId::parse("PN0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn names_fit_and_are_stable_and_distinct() {
        let a = CustomerId::parse("acme").unwrap();
        let b = CustomerId::parse("acme2").unwrap();
        let long = CustomerId::parse(&"x".repeat(128)).unwrap();
        let na = trunk_friendly_name(TrunkStrategy::Shared, &a, &pn());
        assert_eq!(na, trunk_friendly_name(TrunkStrategy::Shared, &a, &pn()));
        assert_ne!(na, trunk_friendly_name(TrunkStrategy::Shared, &b, &pn()));
        assert!(na.starts_with("trunkline-shared-acme-"), "{na}");
        let nl = trunk_friendly_name(TrunkStrategy::Shared, &long, &pn());
        assert!(nl.len() <= 64, "{nl} is {} long", nl.len());
        let d = trunk_friendly_name(TrunkStrategy::Dedicated, &a, &pn());
        assert_eq!(d, "trunkline-dedicated-PN0123456789abcdef0123456789abcdef");
        assert!(d.len() <= 64);
        assert!(is_ours(Some(&d)) && !is_ours(Some("my trunk")) && !is_ours(None));
    }

    #[test]
    fn another_customers_trunk_is_not_ours() {
        let a = CustomerId::parse("acme").unwrap();
        let b = CustomerId::parse("globex").unwrap();
        let shared_a = trunk_friendly_name(TrunkStrategy::Shared, &a, &pn());
        assert!(is_customers_trunk(Some(&shared_a), &a, &pn()));
        assert!(!is_customers_trunk(Some(&shared_a), &b, &pn()));
        let dedicated = trunk_friendly_name(TrunkStrategy::Dedicated, &a, &pn());
        assert!(is_customers_trunk(Some(&dedicated), &b, &pn()));
        assert!(!is_customers_trunk(Some("pbx"), &a, &pn()));
        assert!(!is_customers_trunk(None, &a, &pn()));
    }

    #[test]
    fn odd_customer_ids_are_sanitized() {
        let c = CustomerId::parse("org/42:ü").unwrap();
        let n = trunk_friendly_name(TrunkStrategy::Shared, &c, &pn());
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{n}"
        );
    }
}
