//! Every error mapping, produced by a real (emulated) Twilio answer.

use std::net::TcpListener;
use std::time::Duration;

use trunkline_core::ErrorCode;
use trunkline_core::model::OriginationTarget;
use trunkline_core::ports::{CarrierProvider, NumberQuery, RouteSpec, RouteTargetSpec};
use trunkline_core::{CarrierNumberId, RouteId, RouteTargetId, SipTarget};
use trunkline_testkit::twilio::{Fault, Host, KeyPermissions, Route};
use trunkline_twilio::{
    OriginationUrlSid, PhoneNumberSid, TwilioCarrier, TwilioConfig, VoiceConfig,
};

use crate::common::{World, carrier_with};

fn spec() -> RouteTargetSpec {
    RouteTargetSpec {
        target: OriginationTarget::with_defaults(SipTarget::parse("sip:a.example.com").unwrap()),
        enabled: true,
        name: "x".into(),
    }
}

#[tokio::test]
async fn bad_credentials_are_auth_invalid_on_both_hosts() {
    let w = World::new();
    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    let mut wrong = w.key.clone();
    wrong.secret.push('x');
    let creds = wrong.credentials();
    let e = w
        .carrier
        .list_numbers(
            &creds,
            &NumberQuery {
                page_size: 5,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    let e = w.carrier.find_routes(&creds, "t").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    let e = w
        .carrier
        .fetch_route(&creds, &RouteId::from(&tk))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    assert_eq!(e.provider_code.as_deref(), Some("20003"));
    // Not retried: a wrong secret stays wrong.
    assert_eq!(w.emu.count(Route::FetchTrunk), 1);
}

#[tokio::test]
async fn a_key_without_permission_is_insufficient_permissions() {
    let w = World::new();
    let restricted = w.emu.add_api_key(&w.account.sid, false);
    let e = w
        .carrier
        .create_route(&restricted.credentials(), &RouteSpec { name: "t".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);
    assert_eq!(e.provider_code.as_deref(), Some("70051"));

    let no_numbers = w.emu.add_api_key_with(
        &w.account.sid,
        KeyPermissions {
            numbers: false,
            trunking: true,
            main: false,
        },
    );
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    let e = w
        .carrier
        .fetch_number(&no_numbers.credentials(), &CarrierNumberId::from(&pn))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);
}

#[tokio::test]
async fn an_account_without_trunking_is_trunking_not_enabled() {
    let w = World::new();
    let plain = w.emu.add_account_without_trunking("plain");
    let key = w.emu.add_api_key(&plain.sid, true);
    let e = w
        .carrier
        .find_routes(&key.credentials(), "t")
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TrunkingNotEnabled);
    assert_eq!(e.provider_code.as_deref(), Some("20403"));
    let e = w
        .carrier
        .create_route(
            &plain.auth_token_credentials(),
            &RouteSpec { name: "t".into() },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::TrunkingNotEnabled);
    // Numbers still work on such an account.
    w.emu.seed_numbers(&plain.sid, 1);
    let page = w
        .carrier
        .list_numbers(
            &key.credentials(),
            &NumberQuery {
                page_size: 5,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn not_found_is_per_resource() {
    let w = World::new();
    let missing_pn = PhoneNumberSid::parse(&format!("PN{}", "1".repeat(32))).unwrap();
    let e = w
        .carrier
        .fetch_number(&w.creds(), &CarrierNumberId::from(&missing_pn))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberNotFound);

    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    let missing_ou = OriginationUrlSid::parse(&format!("OU{}", "1".repeat(32))).unwrap();
    let e = w
        .carrier
        .update_route_target(
            &w.creds(),
            &RouteId::from(&tk),
            &RouteTargetId::from(&missing_ou),
            &spec(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(e.provider_code.as_deref(), Some("20404"));
    w.emu.remove_trunk(&tk);
    let e = w
        .carrier
        .list_route_targets(&w.creds(), &RouteId::from(&tk))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    // Where the port says absent is fine, it is.
    assert_eq!(
        w.carrier
            .fetch_route(&w.creds(), &RouteId::from(&tk))
            .await
            .unwrap(),
        None
    );
    w.carrier
        .delete_route(&w.creds(), &RouteId::from(&tk))
        .await
        .unwrap();
    w.carrier
        .delete_route_target(
            &w.creds(),
            &RouteId::from(&tk),
            &RouteTargetId::from(&missing_ou),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn rate_limits_end_as_rate_limited_with_twilios_code() {
    let w = World::with(|c| c.max_retries = 2);
    w.emu.inject(
        Route::ListTrunk,
        Fault::RateLimit {
            count: 100,
            retry_after: Duration::ZERO,
        },
    );
    let e = w.carrier.find_routes(&w.creds(), "t").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.provider_code.as_deref(), Some("20429"));
    assert_eq!(e.retry_after, Some(Duration::ZERO));
    assert_eq!(w.emu.count(Route::ListTrunk), 3);
}

#[tokio::test]
async fn server_errors_are_provider_unavailable() {
    let w = World::new();
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    w.emu.inject(
        Route::FetchIncomingPhoneNumber,
        Fault::ServerError { count: 1 },
    );
    let e = w
        .carrier
        .fetch_number(&w.creds(), &CarrierNumberId::from(&pn))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(e.provider_code.as_deref(), Some("20500"));
    assert!(e.is_transient());
    // A 500 is not retried: the core decides.
    assert_eq!(w.emu.count(Route::FetchIncomingPhoneNumber), 1);

    w.emu.inject(
        Host::Trunking,
        Fault::Unavailable {
            count: 100,
            retry_after: None,
        },
    );
    let e = w.carrier.find_routes(&w.creds(), "t").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(e.provider_code.as_deref(), Some("20503"));
}

#[tokio::test]
async fn timeouts_are_provider_unavailable() {
    let w = World::with(|c| {
        c.request_timeout = Duration::from_millis(300);
        c.max_retries = 1;
    });
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    w.emu
        .inject(Route::FetchIncomingPhoneNumber, Fault::Hang { count: 10 });
    let started = std::time::Instant::now();
    let e = w
        .carrier
        .fetch_number(&w.creds(), &CarrierNumberId::from(&pn))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(e.provider_code, None);
    assert_eq!(
        w.emu.count(Route::FetchIncomingPhoneNumber),
        2,
        "a read is retried once"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connection_failures_are_provider_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let base = format!("http://{closed}");
    let config = TwilioConfig {
        max_retries: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..TwilioConfig::with_bases(&base, &base).unwrap()
    };
    let carrier: TwilioCarrier = carrier_with(config);
    let w = World::new();
    let e = carrier.verify(&w.creds()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert!(!e.message.contains(&w.key.secret));
}

#[tokio::test]
async fn a_request_twilio_rejects_is_validation_failed_with_its_code() {
    let w = World::new();
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    // A stored voice URL is raw text; Twilio refuses one that is not a URL.
    let e = w
        .carrier
        .restore_routing(
            &w.creds(),
            &CarrierNumberId::from(&pn),
            &VoiceConfig {
                voice_url: Some("not a url".into()),
                ..VoiceConfig::default()
            }
            .to_routing(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert_eq!(e.provider_code.as_deref(), Some("70002"));
    assert!(
        !e.message.contains("not a url"),
        "Twilio's text is not echoed: {e:?}"
    );
    assert_eq!(
        w.emu.count(Route::UpdateIncomingPhoneNumber),
        1,
        "not retried"
    );
}
