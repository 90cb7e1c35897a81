//! Outbound termination through the carrier port, against the emulator: credential
//! authentication and an outbound voice profile on an FQDN connection, idempotent, inspected
//! and removed.

use secrecy::SecretString;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{CarrierProvider, RouteSpec, TerminationSpec};
use trunkline_core::{CarrierNumberId, ErrorCode, RouteId};
use trunkline_telnyx::{TERMINATION_HOST, TelnyxCarrier, USERNAME_HEADER};
use trunkline_testkit::telnyx::Route;

use crate::common::World;

fn creds(w: &World) -> CarrierCredentials {
    CarrierCredentials {
        account_id: None,
        key_id: None,
        secret: SecretString::from(w.account.api_key.clone()),
    }
}

fn spec(countries: &[&str]) -> TerminationSpec {
    TerminationSpec {
        name: "trunkline-outbound-test".to_owned(),
        username: "tl0123456789abcdef0123456789abcd".to_owned(),
        password: SecretString::from("Str0ngEnoughPasswordForTelnyx".to_owned()),
        allowed_countries: countries.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// A trunkline connection with two numbers on it: one in the US, one in Great Britain.
async fn route(w: &World, carrier: &TelnyxCarrier) -> RouteId {
    let creds = creds(w);
    let route = carrier
        .create_route(
            &creds,
            &RouteSpec {
                name: "trunkline-termination".to_owned(),
            },
        )
        .await
        .unwrap();
    let us = w.emu.seed_numbers(&w.account.id, 1);
    let gb = w
        .emu
        .add_number(&w.account.id, "+442079460958", Some(route.id.as_str()));
    carrier
        .attach_number(
            &creds,
            &route.id,
            &CarrierNumberId::parse(&us[0].id).unwrap(),
        )
        .await
        .unwrap();
    assert!(w.emu.number(&gb).is_some());
    route.id
}

#[tokio::test]
async fn ensure_is_idempotent_inspect_sees_it_and_remove_undoes_it() {
    let w = World::new();
    let carrier = TelnyxCarrier::from_client(w.client.clone());
    let creds = creds(&w);
    let route = route(&w, &carrier).await;
    assert_eq!(carrier.termination_calls_per_second(), 20);

    let t = carrier
        .ensure_termination(&creds, &route, &spec(&[]))
        .await
        .unwrap();
    assert_eq!(t.host, TERMINATION_HOST);
    assert_eq!(
        t.invite_headers.get(USERNAME_HEADER).map(String::as_str),
        Some("tl0123456789abcdef0123456789abcd")
    );
    let auth = w.emu.outbound_auth(route.as_str()).unwrap();
    assert_eq!(auth.method, "credential-authentication");
    assert_eq!(
        auth.password.as_deref(),
        Some("Str0ngEnoughPasswordForTelnyx")
    );
    let profiles = w.emu.voice_profiles(&w.account.id);
    assert_eq!(profiles.len(), 1);
    assert_eq!(
        profiles[0].whitelisted_destinations,
        vec!["GB", "US"],
        "the countries of the route's numbers"
    );
    assert_eq!(profiles[0].connections, vec![route.to_string()]);

    // Again: reads only.
    let mark = w.emu.requests().len();
    let again = carrier
        .ensure_termination(&creds, &route, &spec(&[]))
        .await
        .unwrap();
    assert_eq!(again, t);
    let writes: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .skip(mark)
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");

    // Explicit countries replace the default on the same profile.
    carrier
        .ensure_termination(&creds, &route, &spec(&["fr", "US"]))
        .await
        .unwrap();
    let profiles = w.emu.voice_profiles(&w.account.id);
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].whitelisted_destinations, vec!["FR", "US"]);
    assert_eq!(w.emu.count(Route::CreateVoiceProfile), 1);

    let state = carrier
        .inspect_termination(
            &creds,
            &route,
            "trunkline-outbound-test",
            &spec(&[]).username,
        )
        .await
        .unwrap();
    assert!(state.credentials_attached);
    assert_eq!(state.host.as_deref(), Some(TERMINATION_HOST));
    let other = carrier
        .inspect_termination(&creds, &route, "trunkline-outbound-test", "tlsomeoneelse")
        .await
        .unwrap();
    assert!(!other.credentials_attached);

    carrier
        .remove_termination(&creds, &route, "trunkline-outbound-test")
        .await
        .unwrap();
    assert!(w.emu.voice_profiles(&w.account.id).is_empty());
    assert_eq!(
        w.emu.outbound_auth(route.as_str()).unwrap().method,
        "ip-authentication"
    );
    assert_eq!(
        w.emu
            .connection(route.as_str())
            .unwrap()
            .outbound_voice_profile_id,
        None
    );
    let state = carrier
        .inspect_termination(
            &creds,
            &route,
            "trunkline-outbound-test",
            &spec(&[]).username,
        )
        .await
        .unwrap();
    assert!(!state.credentials_attached);
    // Removing again, or on a route that is gone, is success.
    carrier
        .remove_termination(&creds, &route, "trunkline-outbound-test")
        .await
        .unwrap();
    let gone = RouteId::parse("1").unwrap();
    carrier
        .remove_termination(&creds, &gone, "trunkline-outbound-test")
        .await
        .unwrap();
    let e = carrier
        .ensure_termination(&creds, &gone, &spec(&[]))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn refused_values_never_carry_the_password() {
    let w = World::new();
    let carrier = TelnyxCarrier::from_client(w.client.clone());
    let creds = creds(&w);
    let route = route(&w, &carrier).await;
    // Too short for the emulated Telnyx: refused by Telnyx, reported without the value.
    let weak = TerminationSpec {
        password: SecretString::from("Sh0rt".to_owned()),
        ..spec(&[])
    };
    let e = carrier
        .ensure_termination(&creds, &route, &weak)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert!(!e.message.contains("Sh0rt"), "{}", e.message);
    assert!(!format!("{e:?}").contains("Sh0rt"), "{e:?}");
    let bad_country = carrier
        .ensure_termination(&creds, &route, &spec(&["USA"]))
        .await
        .unwrap_err();
    assert_eq!(bad_country.code, ErrorCode::ValidationFailed);
    assert!(bad_country.message.contains("allowedCountries"));
}
