//! Properties of the parsers that take outside input: they never panic, accept exactly
//! what their contract says, and a parsed value's string form parses back to itself.

use proptest::prelude::*;
use trunkline_core::ids::{
    AgentDispatchId, CarrierAccountId, CarrierNumberId, CredentialKeyId, CustomerId,
    DispatchRuleId, RoomName, RouteId, RouteTargetId, SipTrunkId, WebhookEventId,
};
use trunkline_core::{E164, SipTarget};

/// Strings people paste as phone numbers: a `+`, digits and the separators the parser skips.
fn phone_like() -> impl Strategy<Value = String> {
    "\\+?[0-9 ().\\-/\u{a0}\u{2010}]{6,24}"
}

/// SIP URIs shaped like the ones customers give, valid or not.
fn sip_like() -> impl Strategy<Value = String> {
    "(sip|SIP|sips):[a-z0-9.\\-\\[\\]:]{0,40}(:[0-9]{1,6})?(;transport=(udp|tcp|tls|TLS|sctp))?"
}

/// Opaque-id candidates: optional surrounding whitespace, then printable ASCII with the
/// occasional space, control or non-ASCII character, long enough to cross every `MAX_LEN`.
fn id_like() -> impl Strategy<Value = String> {
    "[ \t\n]{0,2}([!-~]|[ \u{0}\u{7f}\u{85}é]){0,270}[ \t\n]{0,2}"
}

/// Clean printable ids of `max - 2` to `max + 2` bytes, with optional surrounding whitespace:
/// where an off-by-one in the length check would hide.
fn id_near(max: usize) -> impl Strategy<Value = String> {
    (
        "[ \t\n]{0,2}",
        prop::collection::vec(proptest::char::range('!', '~'), max - 2..=max + 2),
        "[ \t\n]{0,2}",
    )
        .prop_map(|(head, body, tail)| format!("{head}{}{tail}", String::from_iter(body)))
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn e164_round_trips_and_is_idempotent(raw in prop_oneof![phone_like(), any::<String>()]) {
        if let Ok(number) = E164::parse(&raw) {
            let again = E164::parse(&number.to_string());
            prop_assert_eq!(again.as_ref().ok(), Some(&number));
            prop_assert_eq!(number.as_str(), number.to_string());
        }
    }

    #[test]
    fn sip_target_round_trips_through_display(raw in prop_oneof![sip_like(), any::<String>()]) {
        if let Ok(target) = SipTarget::parse(&raw) {
            prop_assert_eq!(SipTarget::parse(&target.to_string()).ok(), Some(target));
        }
    }
}

/// What the opaque ids promise: after trimming surrounding whitespace, 1 to `max` bytes
/// with no whitespace or control characters.
fn opaque_ok(raw: &str, max: usize) -> Option<&str> {
    let s = raw.trim_matches(char::is_whitespace);
    (!s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then_some(s)
}

macro_rules! opaque_id_properties {
    ($($test:ident: $id:ident),* $(,)?) => {
        proptest! {
            #![proptest_config(config())]
            $(
                #[test]
                fn $test(raw in prop_oneof![id_like(), id_near($id::MAX_LEN), any::<String>()]) {
                    let parsed = $id::parse(&raw);
                    match opaque_ok(&raw, $id::MAX_LEN) {
                        Some(expected) => {
                            let id = parsed.expect("a valid opaque id is accepted");
                            prop_assert_eq!(id.as_str(), expected);
                            prop_assert_eq!($id::parse(&id.to_string()).ok(), Some(id));
                        }
                        None => prop_assert!(parsed.is_err(), "accepted {:?}", raw),
                    }
                }
            )*
        }
    };
}

opaque_id_properties!(
    customer_id_accepts_exactly_its_contract: CustomerId,
    carrier_number_id_accepts_exactly_its_contract: CarrierNumberId,
    route_id_accepts_exactly_its_contract: RouteId,
    route_target_id_accepts_exactly_its_contract: RouteTargetId,
    carrier_account_id_accepts_exactly_its_contract: CarrierAccountId,
    credential_key_id_accepts_exactly_its_contract: CredentialKeyId,
    sip_trunk_id_accepts_exactly_its_contract: SipTrunkId,
    dispatch_rule_id_accepts_exactly_its_contract: DispatchRuleId,
    agent_dispatch_id_accepts_exactly_its_contract: AgentDispatchId,
    room_name_accepts_exactly_its_contract: RoomName,
    webhook_event_id_accepts_exactly_its_contract: WebhookEventId,
);

// --- routing policy ------------------------------------------------------------------------

use trunkline_core::model::{DispatchMode, RoutingPolicy, RoutingPolicyParts};

/// Text near the limits, with the occasional control character or reserved prefix.
fn policy_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z \\-_.]{0,12}",
        "(sip\\.|lk\\.)?[a-zA-Z0-9 ]{0,8}[\u{0}\n]?",
        prop::collection::vec(proptest::char::range('a', 'z'), max - 1..=max + 1)
            .prop_map(String::from_iter),
        any::<String>(),
    ]
}

fn policy() -> impl Strategy<Value = RoutingPolicyParts> {
    (
        proptest::option::of(policy_text(RoutingPolicy::MAX_AGENT_NAME)),
        proptest::option::of(prop_oneof![
            "[ -~]{0,20}",
            prop::collection::vec(
                Just('x'),
                RoutingPolicy::MAX_METADATA..=RoutingPolicy::MAX_METADATA + 1
            )
            .prop_map(String::from_iter),
        ]),
        prop::collection::btree_map(
            policy_text(RoutingPolicy::MAX_ATTRIBUTE_LEN),
            policy_text(RoutingPolicy::MAX_ATTRIBUTE_LEN),
            0..4,
        ),
        prop::bool::ANY,
    )
        .prop_map(
            |(agent_name, metadata, attributes, rule)| RoutingPolicyParts {
                agent_name,
                metadata,
                attributes,
                dispatch_mode: if rule {
                    DispatchMode::Rule
                } else {
                    DispatchMode::Webhook
                },
            },
        )
}

/// The contract of `RoutingPolicy::new`, written out independently.
fn policy_ok(p: &RoutingPolicyParts) -> bool {
    let name_ok = p.agent_name.as_ref().is_none_or(|n| {
        !n.trim().is_empty()
            && n.len() <= RoutingPolicy::MAX_AGENT_NAME
            && !n.chars().any(char::is_control)
    });
    let metadata_ok = p
        .metadata
        .as_ref()
        .is_none_or(|m| m.len() <= RoutingPolicy::MAX_METADATA);
    let attributes_ok = p.attributes.len() <= RoutingPolicy::MAX_ATTRIBUTES
        && p.attributes.iter().all(|(k, v)| {
            !k.is_empty()
                && k.len() <= RoutingPolicy::MAX_ATTRIBUTE_LEN
                && v.len() <= RoutingPolicy::MAX_ATTRIBUTE_LEN
                && !k.starts_with("sip.")
                && !k.starts_with("lk.")
        });
    let mode_ok = p.dispatch_mode == DispatchMode::Webhook || p.agent_name.is_some();
    name_ok && metadata_ok && attributes_ok && mode_ok
}

proptest! {
    #![proptest_config(config())]

    /// `RoutingPolicy::new` accepts exactly what its contract allows, and a refusal names a
    /// `routing.` field; the stored form (JSON) is the fields' own and reads back to the same
    /// policy, and the stored form of a refused policy does not read back at all.
    #[test]
    fn routing_policy_validates_its_contract_and_round_trips(p in policy()) {
        let json = serde_json::to_string(&p).unwrap();
        match RoutingPolicy::new(p.clone()) {
            Ok(policy) => {
                prop_assert!(policy_ok(&p), "accepted {p:?}");
                prop_assert_eq!(&serde_json::to_string(&policy).unwrap(), &json);
                let back: RoutingPolicy = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &policy);
                prop_assert_eq!(RoutingPolicyParts::from(back), p);
            }
            Err(e) => {
                prop_assert!(!policy_ok(&p), "refused {p:?}: {e:?}");
                prop_assert!(e.field.is_some_and(|f| f.starts_with("routing.")), "{e:?}");
                prop_assert!(serde_json::from_str::<RoutingPolicy>(&json).is_err(), "{json}");
            }
        }
    }

    /// Any JSON at all: reading a stored policy never panics.
    #[test]
    fn routing_policy_reads_any_json_without_panicking(raw in any::<String>(), n in any::<i64>()) {
        let _ = serde_json::from_str::<RoutingPolicy>(&raw);
        let doc = format!(
            "{{\"agentName\":{n},\"attributes\":{{\"a\":{raw:?}}},\"dispatchMode\":{raw:?}}}"
        );
        if let Ok(p) = serde_json::from_str::<RoutingPolicy>(&doc) {
            prop_assert!(RoutingPolicy::new(p.into()).is_ok());
        }
    }
}
