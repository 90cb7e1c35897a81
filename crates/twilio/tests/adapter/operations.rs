//! Every port operation, happy paths and the states Twilio can be in.

use std::collections::BTreeSet;

use trunkline_core::model::{CarrierCredentials, NumberRouting, OriginationTarget};
use trunkline_core::ports::{Capability, CarrierProvider, NumberQuery, RouteSpec, RouteTargetSpec};
use trunkline_core::{CarrierNumberId, E164, ErrorCode, RouteId, RouteTargetId, SipTarget};
use trunkline_testkit::twilio::{KeyPermissions, Route, TwilioEmulator};
use trunkline_twilio::{ApplicationSid, PhoneNumberSid, TwilioCarrier, VoiceConfig};

use crate::common::{World, carrier_with, config, number_id, route_id, trunk_sid, voice_of};

fn query(page_size: u32) -> NumberQuery {
    NumberQuery {
        page_size,
        cursor: None,
        e164: None,
    }
}

fn origination(sip: &str, priority: u16, weight: u16, name: &str) -> RouteTargetSpec {
    RouteTargetSpec {
        target: OriginationTarget::new(SipTarget::parse(sip).unwrap(), priority, weight).unwrap(),
        enabled: true,
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn verify_reports_capabilities_per_kind_of_credentials() {
    let w = World::new();
    let report = w.carrier.verify(&w.creds()).await.unwrap();
    assert_eq!(report.account_id, Some(w.account.sid.clone().into()));
    assert_eq!(report.capabilities.numbers, Capability::Available);
    assert_eq!(report.capabilities.trunking, Capability::Available);
    // A Standard key cannot read /Accounts: verify must not even try.
    assert_eq!(report.friendly_name, None);
    assert_eq!(w.emu.count(Route::FetchAccount), 0);

    let by_token = w
        .carrier
        .verify(&w.account.auth_token_credentials())
        .await
        .unwrap();
    assert_eq!(by_token.friendly_name.as_deref(), Some("test account"));
    assert_eq!(by_token.capabilities.trunking, Capability::Available);

    let restricted = w.emu.add_api_key(&w.account.sid, false);
    let r = w.carrier.verify(&restricted.credentials()).await.unwrap();
    assert_eq!(r.capabilities.numbers, Capability::Available);
    assert_eq!(r.capabilities.trunking, Capability::Forbidden);

    let no_numbers = w.emu.add_api_key_with(
        &w.account.sid,
        KeyPermissions {
            numbers: false,
            trunking: true,
            main: false,
        },
    );
    let r = w.carrier.verify(&no_numbers.credentials()).await.unwrap();
    assert_eq!(r.capabilities.numbers, Capability::Forbidden);
    assert_eq!(r.capabilities.trunking, Capability::Available);

    let plain = w.emu.add_account_without_trunking("no trunking");
    let plain_key = w.emu.add_api_key(&plain.sid, true);
    let r = w.carrier.verify(&plain_key.credentials()).await.unwrap();
    assert_eq!(r.capabilities.numbers, Capability::Available);
    assert_eq!(r.capabilities.trunking, Capability::NotEnabled);
}

#[tokio::test]
async fn verify_rejects_bad_credentials() {
    let w = World::new();
    let mut wrong = w.key.clone();
    wrong.secret = "not-the-secret".to_owned();
    let e = w.carrier.verify(&wrong.credentials()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    assert_eq!(e.provider_code.as_deref(), Some("20003"));
    assert!(!e.message.contains("not-the-secret"));

    // A valid key used with another account's SID.
    let other = w.emu.add_account("other");
    let mut mixed = w.key.clone();
    mixed.account_sid = other.sid.clone();
    let e = w.carrier.verify(&mixed.credentials()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);

    w.emu.remove_api_key(&w.key.sid);
    let e = w.carrier.verify(&w.creds()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
}

#[tokio::test]
async fn list_numbers_pages_through_more_than_three_pages() {
    let w = World::new();
    let seeded = w.emu.seed_numbers(&w.account.sid, 23);
    // Another account's numbers must not leak into this listing.
    let other = w.emu.add_account("other");
    w.emu.seed_numbers(&other.sid, 4);

    let mut seen = Vec::new();
    let mut q = query(5);
    let mut pages = 0;
    loop {
        let page = w.carrier.list_numbers(&w.creds(), &q).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 5);
        seen.extend(page.items.into_iter().map(|n| (n.id, n.e164)));
        match page.next_cursor {
            Some(c) => {
                assert!(
                    !c.contains("IncomingPhoneNumbers"),
                    "cursor is not opaque: {c}"
                );
                q.cursor = Some(c);
            }
            None => break,
        }
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, 5);
    assert_eq!(w.emu.count(Route::ListIncomingPhoneNumber), 5);
    let expected: BTreeSet<_> = seeded
        .iter()
        .map(|n| (number_id(&n.sid), n.e164.clone()))
        .collect();
    let got: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(got.len(), seen.len(), "a number came twice");
    assert_eq!(got, expected);
}

#[tokio::test]
async fn list_numbers_handles_thousands_with_the_maximum_page_size() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.sid, 2500);
    let mut q = query(NumberQuery::MAX_PAGE_SIZE);
    let mut total = 0;
    let mut pages = 0;
    loop {
        let page = w.carrier.list_numbers(&w.creds(), &q).await.unwrap();
        total += page.items.len();
        pages += 1;
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!((total, pages), (2500, 3));
    let sizes: Vec<_> = w
        .emu
        .requests()
        .iter()
        .filter_map(|r| r.query.get("PageSize").map(str::to_owned))
        .collect();
    assert_eq!(sizes, ["1000", "1000", "1000"]);
}

#[tokio::test]
async fn list_numbers_filters_by_number_and_checks_its_input() {
    let w = World::new();
    let seeded = w.emu.seed_numbers(&w.account.sid, 6);
    let wanted = &seeded[3];
    let page = w
        .carrier
        .list_numbers(
            &w.creds(),
            &NumberQuery {
                e164: Some(wanted.e164.clone()),
                ..query(50)
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, number_id(&wanted.sid));
    assert!(page.items[0].voice_capable);
    assert_eq!(page.next_cursor, None);

    let none = w
        .carrier
        .list_numbers(
            &w.creds(),
            &NumberQuery {
                e164: Some(E164::parse("+442079460958").unwrap()),
                ..query(50)
            },
        )
        .await
        .unwrap();
    assert!(none.items.is_empty());

    w.emu.reset_requests();
    for size in [0, NumberQuery::MAX_PAGE_SIZE + 1] {
        let e = w
            .carrier
            .list_numbers(&w.creds(), &query(size))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed, "page size {size}");
    }
    for cursor in ["garbage", "n1.Zm9v", ""] {
        let e = w
            .carrier
            .list_numbers(
                &w.creds(),
                &NumberQuery {
                    cursor: Some(cursor.to_owned()),
                    ..query(5)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed, "cursor {cursor:?}");
    }
    assert_eq!(w.emu.requests().len(), 0, "invalid input reached Twilio");
}

#[tokio::test]
async fn a_cursor_from_another_account_is_refused_without_a_request() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.sid, 3);
    let page = w.carrier.list_numbers(&w.creds(), &query(1)).await.unwrap();
    let cursor = page.next_cursor.unwrap();

    let other = w.emu.add_account("other");
    let other_key = w.emu.add_api_key(&other.sid, true);
    w.emu.reset_requests();
    let e = w
        .carrier
        .list_numbers(
            &other_key.credentials(),
            &NumberQuery {
                cursor: Some(cursor),
                ..query(1)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert_eq!(w.emu.requests().len(), 0);
}

#[tokio::test]
async fn fetch_number_reads_live_trunk_and_voice_configuration() {
    let w = World::new();
    let app = ApplicationSid::parse(&format!("AP{}", "d".repeat(32))).unwrap();
    let voice = VoiceConfig {
        voice_url: Some("https://example.com/voice".into()),
        voice_method: Some("GET".into()),
        voice_fallback_url: Some("https://example.com/fallback".into()),
        voice_fallback_method: Some("POST".into()),
        voice_application_sid: Some(app.clone()),
        status_callback: Some("https://example.com/status".into()),
    };
    let e164 = E164::parse("+14155550123").unwrap();
    let pn = w.emu.add_number(&w.account.sid, &e164, &voice);
    let n = w
        .carrier
        .fetch_number(&w.creds(), &number_id(&pn))
        .await
        .unwrap();
    assert_eq!(n.id, number_id(&pn));
    assert_eq!(n.e164, e164);
    assert_eq!(n.friendly_name.as_deref(), Some("(415) 555-0123"));
    assert_eq!(n.route_id, None);
    assert_eq!(voice_of(&n), voice);

    // Someone attaches it in the console: Twilio drops the voice application.
    let tk = w.emu.add_trunk(&w.account.sid, Some("theirs"));
    assert!(w.emu.attach_number(&tk, &pn));
    let n = w
        .carrier
        .fetch_number(&w.creds(), &number_id(&pn))
        .await
        .unwrap();
    assert_eq!(n.route_id, Some(route_id(&tk)));
    assert_eq!(voice_of(&n).voice_application_sid, None);
    assert_eq!(voice_of(&n).voice_url, voice.voice_url);
}

#[tokio::test]
async fn fetch_number_not_owned_is_number_not_found() {
    let w = World::new();
    let other = w.emu.add_account("other");
    let theirs = w.emu.seed_numbers(&other.sid, 1).remove(0);
    let unknown = PhoneNumberSid::parse(&format!("PN{}", "0".repeat(32))).unwrap();
    for pn in [theirs.sid, unknown] {
        let e = w
            .carrier
            .fetch_number(&w.creds(), &number_id(&pn))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NumberNotFound, "{pn}");
        assert_eq!(e.provider_code.as_deref(), Some("20404"));
    }
}

#[tokio::test]
async fn trunks_are_created_found_by_exact_name_across_pages_and_fetched() {
    let w = World::with(|c| c.list_page_size = 2);
    let name = "trunkline-shared-cust_1";
    let created = w
        .carrier
        .create_route(&w.creds(), &RouteSpec { name: name.into() })
        .await
        .unwrap();
    assert_eq!(created.name.as_deref(), Some(name));
    let stored = w.emu.trunk(&trunk_sid(&created.id)).unwrap();
    assert_eq!(stored.friendly_name.as_deref(), Some(name));
    assert_eq!(stored.account_sid, w.account.sid);

    // Noise: near-misses and trunks without a name, enough for four pages of two.
    for n in [
        Some("trunkline-shared-cust_10"),
        Some("TRUNKLINE-SHARED-CUST_1"),
        None,
    ] {
        w.emu.add_trunk(&w.account.sid, n);
    }
    w.emu
        .add_trunk(&w.account.sid, Some("customer's own trunk"));
    let twin = w.emu.add_trunk(&w.account.sid, Some(name));
    w.emu.add_trunk(&w.account.sid, None);
    // Another account's trunk with the same name is invisible.
    let other = w.emu.add_account("other");
    w.emu.add_trunk(&other.sid, Some(name));

    w.emu.reset_requests();
    let found = w.carrier.find_routes(&w.creds(), name).await.unwrap();
    let ids: BTreeSet<_> = found.iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, BTreeSet::from([created.id.clone(), route_id(&twin)]));
    assert_eq!(w.emu.count(Route::ListTrunk), 4, "7 trunks in pages of 2");
    assert!(
        w.carrier
            .find_routes(&w.creds(), "nobody")
            .await
            .unwrap()
            .is_empty()
    );

    let fetched = w
        .carrier
        .fetch_route(&w.creds(), &created.id)
        .await
        .unwrap();
    assert_eq!(fetched, Some(created.clone()));
    assert!(w.emu.remove_trunk(&trunk_sid(&created.id)));
    assert_eq!(
        w.carrier
            .fetch_route(&w.creds(), &created.id)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn create_trunk_refuses_names_it_could_not_find_again() {
    let w = World::new();
    for name in [String::new(), "x".repeat(65)] {
        let e = w
            .carrier
            .create_route(&w.creds(), &RouteSpec { name })
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
    }
    assert_eq!(w.emu.count(Route::CreateTrunk), 0);
    let ok = "é".repeat(64);
    let t = w
        .carrier
        .create_route(&w.creds(), &RouteSpec { name: ok.clone() })
        .await
        .unwrap();
    assert_eq!(t.name, Some(ok));
}

#[tokio::test]
async fn delete_trunk_is_idempotent() {
    let w = World::new();
    let tk = w.emu.add_trunk(&w.account.sid, Some("to delete"));
    w.carrier
        .delete_route(&w.creds(), &route_id(&tk))
        .await
        .unwrap();
    assert!(w.emu.trunk(&tk).is_none());
    w.carrier
        .delete_route(&w.creds(), &route_id(&tk))
        .await
        .unwrap();
    assert_eq!(w.emu.count(Route::DeleteTrunk), 2);
}

#[tokio::test]
async fn origination_urls_are_created_listed_updated_and_deleted() {
    let w = World::with(|c| c.list_page_size = 2);
    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    let long_name = format!("trunkline {}", "n".repeat(80));
    let spec = origination(
        "sip:abc123.sip.livekit.cloud;transport=tcp",
        10,
        20,
        &long_name,
    );
    let created = w
        .carrier
        .create_route_target(&w.creds(), &route_id(&tk), &spec)
        .await
        .unwrap();
    assert_eq!(created.route_id, route_id(&tk));
    assert_eq!(
        created.sip_url,
        "sip:abc123.sip.livekit.cloud;transport=tcp"
    );
    assert_eq!(
        (created.priority, created.weight, created.enabled),
        (10, 20, true)
    );
    let stored = w.emu.origination_urls(&tk);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].friendly_name.chars().count(),
        64,
        "truncated to Twilio's limit"
    );
    assert!(long_name.starts_with(&stored[0].friendly_name));

    for i in 0..4u16 {
        w.emu
            .add_origination_url(&tk, &format!("sip:backup{i}.example.com"), 20 + i, 5)
            .unwrap();
    }
    w.emu.reset_requests();
    let listed = w
        .carrier
        .list_route_targets(&w.creds(), &route_id(&tk))
        .await
        .unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.contains(&created));
    assert_eq!(
        w.emu.count(Route::ListOriginationUrl),
        3,
        "5 URLs in pages of 2"
    );

    let mut changed = origination("sip:10.0.0.5:5070", 1, 99, "trunkline primary");
    changed.enabled = false;
    let updated = w
        .carrier
        .update_route_target(&w.creds(), &route_id(&tk), &created.id, &changed)
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.sip_url, "sip:10.0.0.5:5070");
    assert_eq!(
        (updated.priority, updated.weight, updated.enabled),
        (1, 99, false)
    );
    assert_eq!(updated.name.as_deref(), Some("trunkline primary"));
    // Idempotent: the same update again changes nothing.
    let again = w
        .carrier
        .update_route_target(&w.creds(), &route_id(&tk), &created.id, &changed)
        .await
        .unwrap();
    assert_eq!(again, updated);

    w.carrier
        .delete_route_target(&w.creds(), &route_id(&tk), &created.id)
        .await
        .unwrap();
    assert_eq!(w.emu.origination_urls(&tk).len(), 4);
    w.carrier
        .delete_route_target(&w.creds(), &route_id(&tk), &created.id)
        .await
        .unwrap();
    let e = w
        .carrier
        .update_route_target(&w.creds(), &route_id(&tk), &created.id, &changed)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn origination_urls_of_a_missing_trunk_are_not_found() {
    let w = World::new();
    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    w.emu.remove_trunk(&tk);
    let e = w
        .carrier
        .list_route_targets(&w.creds(), &route_id(&tk))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = w
        .carrier
        .create_route_target(
            &w.creds(),
            &route_id(&tk),
            &origination("sip:a.example.com", 10, 10, "x"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = w
        .carrier
        .list_route_numbers(&w.creds(), &route_id(&tk))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn attach_sets_the_trunk_clears_the_application_and_is_idempotent() {
    let w = World::new();
    let app = ApplicationSid::parse(&format!("AP{}", "e".repeat(32))).unwrap();
    let voice = VoiceConfig {
        voice_url: Some("https://example.com/twiml".into()),
        voice_application_sid: Some(app),
        ..VoiceConfig::default()
    };
    let pn = w.emu.add_number(
        &w.account.sid,
        &E164::parse("+14155550177").unwrap(),
        &voice,
    );
    let tk = w.emu.add_trunk(&w.account.sid, Some("ours"));
    w.carrier
        .attach_number(&w.creds(), &route_id(&tk), &number_id(&pn))
        .await
        .unwrap();
    let n = w.emu.number(&pn).unwrap();
    assert_eq!(n.trunk_sid.as_ref(), Some(&tk));
    assert_eq!(n.voice.voice_application_sid, None);
    assert_eq!(n.voice.voice_url, voice.voice_url);

    // Twilio refuses the second attach; the adapter sees it is already there.
    w.carrier
        .attach_number(&w.creds(), &route_id(&tk), &number_id(&pn))
        .await
        .unwrap();
    assert_eq!(w.emu.count(Route::CreatePhoneNumber), 2);
    assert_eq!(w.emu.trunk_numbers(&tk), vec![pn.clone()]);
}

#[tokio::test]
async fn attach_refuses_a_number_on_another_trunk_and_unknown_ids() {
    let w = World::new();
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    let theirs = w.emu.add_trunk(&w.account.sid, Some("customer's"));
    let ours = w.emu.add_trunk(&w.account.sid, Some("ours"));
    w.emu.attach_number(&theirs, &pn);
    let e = w
        .carrier
        .attach_number(&w.creds(), &route_id(&ours), &number_id(&pn))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberInUse);
    assert!(e.message.contains(theirs.as_str()), "{e:?}");
    assert_eq!(
        w.emu.number(&pn).unwrap().trunk_sid,
        Some(theirs),
        "not stolen"
    );

    let unknown = PhoneNumberSid::parse(&format!("PN{}", "0".repeat(32))).unwrap();
    let e = w
        .carrier
        .attach_number(&w.creds(), &route_id(&ours), &number_id(&unknown))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberNotFound);

    let free = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    w.emu.remove_trunk(&ours);
    let e = w
        .carrier
        .attach_number(&w.creds(), &route_id(&ours), &number_id(&free))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn trunk_numbers_are_listed_across_pages_and_detached_idempotently() {
    let w = World::with(|c| c.list_page_size = 2);
    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    let numbers = w.emu.seed_numbers(&w.account.sid, 7);
    for n in &numbers[..5] {
        w.carrier
            .attach_number(&w.creds(), &route_id(&tk), &number_id(&n.sid))
            .await
            .unwrap();
    }
    w.emu.reset_requests();
    let listed: BTreeSet<_> = w
        .carrier
        .list_route_numbers(&w.creds(), &route_id(&tk))
        .await
        .unwrap()
        .into_iter()
        .collect();
    let expected: BTreeSet<_> = numbers[..5].iter().map(|n| number_id(&n.sid)).collect();
    assert_eq!(listed, expected);
    assert_eq!(w.emu.count(Route::ListPhoneNumber), 3);

    let pn = &numbers[0].sid;
    w.carrier
        .detach_number(&w.creds(), &route_id(&tk), &number_id(pn))
        .await
        .unwrap();
    assert_eq!(w.emu.number(pn).unwrap().trunk_sid, None);
    w.carrier
        .detach_number(&w.creds(), &route_id(&tk), &number_id(pn))
        .await
        .unwrap();
    // Not attached to this trunk (only to another): nothing happens to it.
    let other = w.emu.add_trunk(&w.account.sid, Some("other"));
    w.emu.attach_number(&other, &numbers[5].sid);
    w.carrier
        .detach_number(&w.creds(), &route_id(&tk), &number_id(&numbers[5].sid))
        .await
        .unwrap();
    assert_eq!(
        w.emu.number(&numbers[5].sid).unwrap().trunk_sid,
        Some(other)
    );
    // Trunk gone: success too.
    w.emu.remove_trunk(&tk);
    w.carrier
        .detach_number(&w.creds(), &route_id(&tk), &number_id(&numbers[1].sid))
        .await
        .unwrap();
}

#[tokio::test]
async fn previous_voice_configuration_is_restored_after_detach() {
    let w = World::new();
    let app = ApplicationSid::parse(&format!("AP{}", "f".repeat(32))).unwrap();
    let before = VoiceConfig {
        voice_url: Some("https://example.com/a".into()),
        voice_method: Some("GET".into()),
        voice_fallback_url: None,
        voice_fallback_method: Some("POST".into()),
        voice_application_sid: Some(app),
        status_callback: Some("https://example.com/status".into()),
    };
    let pn = w.emu.add_number(
        &w.account.sid,
        &E164::parse("+14155550155").unwrap(),
        &before,
    );
    let recorded = w
        .carrier
        .fetch_number(&w.creds(), &number_id(&pn))
        .await
        .unwrap()
        .routing;
    assert_eq!(VoiceConfig::from_routing(&recorded).unwrap(), before);

    let tk = w.emu.add_trunk(&w.account.sid, Some("t"));
    w.carrier
        .attach_number(&w.creds(), &route_id(&tk), &number_id(&pn))
        .await
        .unwrap();
    // Meanwhile someone points the number somewhere else.
    let w_voice_url = Some("https://example.com/changed".to_owned());
    w.carrier
        .restore_routing(
            &w.creds(),
            &number_id(&pn),
            &VoiceConfig {
                voice_url: w_voice_url.clone(),
                ..VoiceConfig::default()
            }
            .to_routing(),
        )
        .await
        .unwrap();
    let n = w.emu.number(&pn).unwrap();
    assert_eq!(n.voice.voice_url, w_voice_url);
    assert_eq!(n.voice.status_callback, None, "None clears");
    assert_eq!(
        n.voice.voice_method.as_deref(),
        Some("POST"),
        "unset method is Twilio's default"
    );
    assert_eq!(
        n.trunk_sid.as_ref(),
        Some(&tk),
        "clearing the application keeps the trunk"
    );

    w.carrier
        .detach_number(&w.creds(), &route_id(&tk), &number_id(&pn))
        .await
        .unwrap();
    w.carrier
        .restore_routing(&w.creds(), &number_id(&pn), &recorded)
        .await
        .unwrap();
    let n = w.emu.number(&pn).unwrap();
    assert_eq!(n.voice, before);
    assert_eq!(n.trunk_sid, None);
    assert_eq!(
        voice_of(
            &w.carrier
                .fetch_number(&w.creds(), &number_id(&pn))
                .await
                .unwrap()
        ),
        before
    );

    let unknown = PhoneNumberSid::parse(&format!("PN{}", "0".repeat(32))).unwrap();
    let e = w
        .carrier
        .restore_routing(&w.creds(), &number_id(&unknown), &before.to_routing())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberNotFound);
}

#[tokio::test]
async fn a_record_stored_by_the_previous_release_restores_identically() {
    let w = World::new();
    let pn = w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid;
    // `previous_voice` as the release before pluggable carriers wrote it.
    let stored = serde_json::json!({
        "voiceUrl": "https://example.com/answer",
        "voiceMethod": "GET",
        "voiceFallbackUrl": "https://example.com/fallback",
        "voiceFallbackMethod": null,
        "voiceApplicationSid": null,
        "statusCallback": "https://example.com/status",
    });
    w.carrier
        .restore_routing(&w.creds(), &number_id(&pn), &NumberRouting(stored.clone()))
        .await
        .unwrap();
    let read = w
        .carrier
        .fetch_number(&w.creds(), &number_id(&pn))
        .await
        .unwrap();
    let mut expected: VoiceConfig = serde_json::from_value(stored).unwrap();
    // Twilio answers its default for a method it cannot leave unset.
    expected.voice_fallback_method = Some("POST".into());
    assert_eq!(voice_of(&read), expected);
    assert_eq!(read.routing, expected.to_routing());

    // Nothing recorded: everything is cleared.
    w.carrier
        .restore_routing(&w.creds(), &number_id(&pn), &NumberRouting::none())
        .await
        .unwrap();
    let n = w.emu.number(&pn).unwrap();
    assert_eq!(n.voice.voice_url, None);
    assert_eq!(n.voice.status_callback, None);
}

#[tokio::test]
async fn ids_records_and_credentials_of_another_carrier_are_refused_without_a_request() {
    let w = World::new();
    let creds = w.creds();
    let c = &w.carrier;
    let pn = number_id(&w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid);
    let tk = route_id(&w.emu.add_trunk(&w.account.sid, Some("t")));
    // Telnyx ids are numeric strings; a SID of the wrong kind is no better.
    let number = CarrierNumberId::parse("1293384261075731499").unwrap();
    let route = RouteId::parse("1494404757140276705").unwrap();
    let as_route = RouteId::parse(pn.as_str()).unwrap();
    let target = RouteTargetId::parse("fqdn-42").unwrap();
    let spec = origination("sip:a.example.com", 10, 10, "x");
    w.emu.reset_requests();

    let code = |r: Result<(), trunkline_core::ports::ProviderError>| r.unwrap_err().code;
    assert_eq!(
        code(c.fetch_number(&creds, &number).await.map(drop)),
        ErrorCode::ValidationFailed
    );
    assert_eq!(
        code(c.attach_number(&creds, &tk, &number).await),
        ErrorCode::ValidationFailed
    );
    assert_eq!(
        code(c.detach_number(&creds, &tk, &number).await),
        ErrorCode::ValidationFailed
    );
    for r in [&route, &as_route] {
        assert_eq!(c.fetch_route(&creds, r).await.unwrap(), None);
        assert_eq!(code(c.delete_route(&creds, r).await), ErrorCode::NotFound);
        assert_eq!(
            code(c.list_route_targets(&creds, r).await.map(drop)),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(c.create_route_target(&creds, r, &spec).await.map(drop)),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(c.list_route_numbers(&creds, r).await.map(drop)),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(c.attach_number(&creds, r, &pn).await),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(c.detach_number(&creds, r, &pn).await),
            ErrorCode::NotFound
        );
    }
    let e = c
        .update_route_target(&creds, &tk, &target, &spec)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(!e.message.contains("fqdn-42"), "{e:?}");
    assert_eq!(
        code(c.delete_route_target(&creds, &tk, &target).await),
        ErrorCode::NotFound
    );

    let telnyx_record = NumberRouting(serde_json::json!({"connectionId": "1494404757140276705"}));
    let e = c
        .restore_routing(&creds, &pn, &telnyx_record)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert!(!e.message.contains("1494404757140276705"), "{e:?}");
    assert_eq!(
        code(
            c.restore_routing(&creds, &number, &NumberRouting::none())
                .await
        ),
        ErrorCode::ValidationFailed
    );

    let foreign = CarrierCredentials {
        account_id: None,
        key_id: None,
        secret: w.key.secret.clone().into(),
    };
    assert_eq!(
        c.verify(&foreign).await.unwrap_err().code,
        ErrorCode::AuthInvalid
    );
    assert_eq!(
        code(c.fetch_number(&foreign, &pn).await.map(drop)),
        ErrorCode::AuthInvalid
    );
    assert_eq!(w.emu.requests().len(), 0, "a foreign value reached Twilio");

    assert_eq!(c.parse_number_id(&format!(" {pn} ")).unwrap(), pn);
    assert!(c.parse_number_id("1293384261075731499").is_err());
    assert!(c.parse_number_id(tk.as_str()).is_err());
}

#[tokio::test]
async fn requests_name_trunkline_and_never_carry_the_secret_in_the_clear() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.sid, 1);
    w.carrier.verify(&w.creds()).await.unwrap();
    let requests = w.emu.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let ua = r.user_agent.as_deref().unwrap_or_default();
        assert!(
            ua.starts_with(&format!("trunkline/{}", env!("CARGO_PKG_VERSION"))),
            "{ua}"
        );
        assert_eq!(r.auth_user.as_deref(), Some(w.key.sid.as_str()));
        let text = format!("{r:?}");
        assert!(!text.contains(&w.key.secret));
    }
    // The adapter's own Debug output never shows the secret either.
    let dbg = format!("{:?} {:?}", w.carrier, w.creds());
    assert!(!dbg.contains(&w.key.secret), "{dbg}");
}

#[tokio::test]
async fn the_public_hosts_are_the_default() {
    crate::common::init();
    let c = TwilioCarrier::new(trunkline_twilio::TwilioConfig::default()).unwrap();
    assert_eq!(c.config().api_base.as_str(), "https://api.twilio.com/");
    assert_eq!(
        c.config().trunking_base.as_str(),
        "https://trunking.twilio.com/"
    );
    assert_eq!(c.kind(), trunkline_core::ProviderKind::Twilio);
    // And a config for the emulator validates like any other.
    let emu = TwilioEmulator::start();
    let _ = carrier_with(config(&emu));
}
