//! Properties of bearer-token verification: whatever the header and claims hold, `verify`
//! never panics, accepts only a token signed by a configured key with the right issuer,
//! audience, an unexpired `exp`, a non-empty `sub` and a valid customer id, and reads that
//! customer back exactly.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};
use trunkline_core::CustomerId;

use crate::auth::{Authenticator, VerifyKey};
use crate::config::ClaimNames;

const ISS: &str = "https://issuer.test";
const AUD: &str = "trunkline-test";

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .expect("test key")
}

fn auth() -> Authenticator {
    let key = VerifyKey::from_pem(&testdata("ed25519-public.pem"), None, "ed25519").unwrap();
    Authenticator::new(vec![key], ISS, AUD, ClaimNames::default())
}

fn sign(claims: &Value, kid: Option<String>) -> String {
    let key = EncodingKey::from_ed_pem(&testdata("ed25519-private.pem")).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid;
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// JSON values of every shape, small.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

proptest! {
    #![proptest_config(config())]

    /// Any string at all: refused, never a panic.
    #[test]
    fn any_text_is_refused(raw in any::<String>()) {
        prop_assert!(auth().verify(&raw).is_err());
    }

    /// Any header and any claims, with a signature that is not the key's: refused. The
    /// header names every algorithm a forger tries (`none`, HS256 keyed with the public key).
    #[test]
    fn forged_headers_and_claims_are_refused(
        alg in prop_oneof![
            Just("none".to_owned()),
            Just("HS256".to_owned()),
            Just("EdDSA".to_owned()),
            Just("RS256".to_owned()),
            "[A-Za-z0-9]{0,6}",
        ],
        kid in proptest::option::of(json_value()),
        extra in json_value(),
        claims in json_value(),
        sig in "[A-Za-z0-9_\\-]{0,90}",
    ) {
        let mut header = json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = kid;
        }
        header["x"] = extra;
        let token = format!("{}.{}.{sig}", b64(&header), b64(&claims));
        prop_assert!(auth().verify(&token).is_err());
    }

    /// Signed by the key, with any issuer, audience, expiry, subject and customer claim:
    /// accepted exactly when each is right, and the customer read back as given.
    #[test]
    fn signed_claims_are_accepted_exactly_when_valid(
        right_iss in any::<bool>(),
        right_aud in any::<bool>(),
        exp_in in -3_600i64..3_600,
        sub in prop_oneof![Just(Value::from("user-1")), json_value()],
        customer in prop_oneof!["[a-zA-Z0-9_\\-]{1,20}".prop_map(Value::from), json_value()],
        roles in prop_oneof![Just(json!(["support"])), json_value()],
        kid in proptest::option::of("[ -~]{0,10}"),
    ) {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": if right_iss { ISS } else { "https://other.test" },
            "aud": if right_aud { AUD } else { "someone-else" },
            "exp": now + exp_in,
            "iat": now,
            "sub": sub,
            "customer_id": customer,
            "roles": roles,
        });
        let verdict = auth().verify(&sign(&claims, kid));
        // jsonwebtoken allows 60 s of leeway on `exp`; stay clear of the edge.
        let expired = exp_in < -120;
        let fresh = exp_in > 120;
        match verdict {
            Ok(caller) => {
                prop_assert!(right_iss && right_aud && !expired, "{claims}");
                let raw = match &claims["customer_id"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    other => panic!("accepted a customer claim {other}"),
                };
                prop_assert_eq!(Some(caller.customer_id), CustomerId::parse(&raw).ok());
                prop_assert!(claims["sub"].as_str().is_some_and(|s| !s.trim().is_empty()));
            }
            Err(e) => {
                let customer_ok = match &claims["customer_id"] {
                    Value::String(s) => CustomerId::parse(s).is_ok(),
                    Value::Number(n) if n.is_i64() || n.is_u64() => {
                        CustomerId::parse(&n.to_string()).is_ok()
                    }
                    _ => false,
                };
                let sub_ok = claims["sub"].as_str().is_some_and(|s| !s.trim().is_empty());
                let roles_ok = match &claims["roles"] {
                    Value::Null | Value::String(_) => true,
                    Value::Array(a) => a.iter().all(Value::is_string),
                    _ => false,
                };
                prop_assert!(
                    !(right_iss && right_aud && fresh && customer_ok && sub_ok && roles_ok),
                    "refused a valid token: {e:?} {claims}"
                );
            }
        }
    }
}
