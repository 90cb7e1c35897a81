//! `TelnyxCarrier` through the carrier-neutral port, against the emulator over HTTP: what
//! the core's connect / disconnect algorithm does, done by hand.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde_json::json;
use trunkline_core::model::{CarrierCredentials, NumberRouting, OriginationTarget};
use trunkline_core::ports::{
    Capability, CarrierProvider, CredentialInput, NumberQuery, RouteSpec, RouteTargetSpec,
};
use trunkline_core::{CarrierNumberId, ErrorCode, ProviderKind, RouteId, SipTarget};
use trunkline_telnyx::TelnyxCarrier;
use trunkline_testkit::telnyx::{Fault, Route};

use crate::common::World;

fn carrier(w: &World) -> TelnyxCarrier {
    TelnyxCarrier::from_client(w.client.clone())
}

fn creds(key: &str) -> CarrierCredentials {
    CarrierCredentials {
        account_id: None,
        key_id: None,
        secret: SecretString::from(key.to_owned()),
    }
}

fn spec(url: &str, priority: u16) -> RouteTargetSpec {
    RouteTargetSpec {
        target: OriginationTarget::new(
            SipTarget::parse(url).unwrap(),
            priority,
            OriginationTarget::DEFAULT_WEIGHT,
        )
        .unwrap(),
        enabled: true,
        name: format!("trunkline-livekit-p{priority}-w10"),
    }
}

fn nid(id: &str) -> CarrierNumberId {
    CarrierNumberId::parse(id).unwrap()
}

#[tokio::test]
async fn a_whole_connect_and_disconnect_through_the_port() {
    let w = World::new();
    let c = carrier(&w);
    let creds = creds(&w.account.api_key);
    // The number sits on the customer's own connection: disconnect must put it back there.
    let theirs = w.emu.add_connection(&w.account.id, "Acme PBX");
    let n = w.emu.seed_numbers(&w.account.id, 3);
    w.emu.set_number_connection(&n[0].id, Some(&theirs));
    let number = nid(&n[0].id);

    w.emu.add_fqdn(&theirs, "pbx.acme.example", 5060, "a");
    let foreign = c
        .list_route_targets(&creds, &RouteId::parse(&theirs).unwrap())
        .await
        .unwrap();
    assert_eq!(foreign.len(), 1);
    assert_eq!(foreign[0].name, None, "someone else's connection: not ours");
    // Made with Telnyx's defaults: UDP, which the rebuilt URI says.
    assert_eq!(foreign[0].sip_url, "sip:pbx.acme.example;transport=udp");

    let before = c.fetch_number(&creds, &number).await.unwrap();
    assert_eq!(
        before.route_id.as_ref().map(RouteId::as_str),
        Some(theirs.as_str())
    );
    assert_eq!(
        before.routing,
        NumberRouting(json!({"connectionId": theirs}))
    );
    assert_eq!(before.e164.as_str(), n[0].phone_number);

    // Route: looked for, created, found again by its exact name.
    let name = "trunkline-cust-1-shared";
    assert!(c.find_routes(&creds, name).await.unwrap().is_empty());
    let route = c
        .create_route(&creds, &RouteSpec { name: name.into() })
        .await
        .unwrap();
    assert_eq!(route.name.as_deref(), Some(name));
    let live = w.emu.connection(route.id.as_str()).unwrap();
    assert_eq!(
        (
            live.transport_protocol.as_str(),
            live.ani_number_format.as_str(),
            live.dnis_number_format.as_str()
        ),
        ("TCP", "+E.164", "+e164")
    );
    let found = c.find_routes(&creds, name).await.unwrap();
    assert_eq!(found, vec![route.clone()]);
    assert!(
        c.find_routes(&creds, "trunkline-cust-1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.fetch_route(&creds, &route.id).await.unwrap(),
        Some(route.clone())
    );

    // Two targets, primary first as the core sends them: the failover order follows.
    let primary = c
        .create_route_target(&creds, &route.id, &spec("sip:a.lk.example", 10))
        .await
        .unwrap();
    let backup = c
        .create_route_target(&creds, &route.id, &spec("sip:b.lk.example:5080", 20))
        .await
        .unwrap();
    let live = w.emu.connection(route.id.as_str()).unwrap();
    assert_eq!(
        live.failover,
        [
            Some(primary.id.to_string()),
            Some(backup.id.to_string()),
            None
        ]
    );
    assert_eq!(live.routing_method, "sequential");
    let fqdns = w.emu.fqdns(route.id.as_str());
    assert!(
        fqdns
            .iter()
            .any(|f| f.fqdn == "b.lk.example" && f.port == 5080 && f.dns_record_type == "a")
    );
    assert!(
        fqdns
            .iter()
            .any(|f| f.fqdn == "a.lk.example" && f.port == 5060)
    );

    // Listed back, each target compares equal to what the core stored: reconnect reuses.
    let targets = c.list_route_targets(&creds, &route.id).await.unwrap();
    assert_eq!(targets.len(), 2);
    for (made, url, priority) in [
        (&primary, "sip:a.lk.example", 10),
        (&backup, "sip:b.lk.example:5080", 20),
    ] {
        let t = targets.iter().find(|t| t.id == made.id).unwrap();
        assert_eq!(t, made, "what create answered is what list answers");
        assert_eq!(
            SipTarget::parse(&t.sip_url).unwrap(),
            SipTarget::parse(url).unwrap()
        );
        assert_eq!((t.priority, t.weight, t.enabled), (priority, 10, true));
        assert_eq!(t.route_id, route.id);
        assert_eq!(
            t.name.as_deref(),
            Some(name),
            "trunkline's connection: its FQDNs"
        );
    }

    // Swapping priorities re-orders the connection, and reads back as asked.
    let swapped = c
        .update_route_target(
            &creds,
            &route.id,
            &backup.id,
            &spec("sip:b.lk.example:5080", 5),
        )
        .await
        .unwrap();
    assert_eq!(swapped.priority, 10);
    let live = w.emu.connection(route.id.as_str()).unwrap();
    assert_eq!(live.failover[0].as_deref(), Some(backup.id.as_str()));
    c.update_route_target(
        &creds,
        &route.id,
        &backup.id,
        &spec("sip:b.lk.example:5080", 20),
    )
    .await
    .unwrap();
    // The same spec again writes nothing.
    w.emu.reset_requests();
    c.update_route_target(
        &creds,
        &route.id,
        &backup.id,
        &spec("sip:b.lk.example:5080", 20),
    )
    .await
    .unwrap();
    assert_eq!(w.emu.count(Route::UpdateFqdnConnection), 0);
    assert_eq!(w.emu.count(Route::UpdateFqdn), 0);

    // Attach (moving it off the customer's connection), twice: the second writes nothing.
    c.attach_number(&creds, &route.id, &number).await.unwrap();
    w.emu.reset_requests();
    c.attach_number(&creds, &route.id, &number).await.unwrap();
    assert_eq!(w.emu.count(Route::UpdatePhoneNumber), 0);
    assert_eq!(
        c.list_route_numbers(&creds, &route.id).await.unwrap(),
        vec![number.clone()]
    );
    let listed = w
        .emu
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/phone_numbers"))
        .unwrap();
    assert_eq!(
        listed.query.get("filter[connection_id]"),
        Some(route.id.as_str())
    );

    // Disconnect: detach, restore what was recorded, delete the targets and the route.
    c.detach_number(&creds, &route.id, &number).await.unwrap();
    assert_eq!(w.emu.number(&n[0].id).unwrap().connection_id, None);
    c.detach_number(&creds, &route.id, &number).await.unwrap();
    c.restore_routing(&creds, &number, &before.routing)
        .await
        .unwrap();
    assert_eq!(
        w.emu.number(&n[0].id).unwrap().connection_id.as_deref(),
        Some(theirs.as_str())
    );
    c.restore_routing(&creds, &number, &before.routing)
        .await
        .unwrap();
    assert!(
        c.list_route_numbers(&creds, &route.id)
            .await
            .unwrap()
            .is_empty()
    );

    c.delete_route_target(&creds, &route.id, &primary.id)
        .await
        .unwrap();
    let live = w.emu.connection(route.id.as_str()).unwrap();
    assert_eq!(
        live.failover,
        [Some(backup.id.to_string()), None, None],
        "no slot points at a deleted FQDN"
    );
    c.delete_route_target(&creds, &route.id, &primary.id)
        .await
        .unwrap();
    c.delete_route(&creds, &route.id).await.unwrap();
    assert_eq!(c.fetch_route(&creds, &route.id).await.unwrap(), None);
    c.delete_route(&creds, &route.id).await.unwrap();
    assert_eq!(
        c.list_route_targets(&creds, &route.id)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn one_priority_is_round_robin_and_three_targets_is_the_limit() {
    let w = World::new();
    let c = carrier(&w);
    let creds = creds(&w.account.api_key);
    let route = c
        .create_route(
            &creds,
            &RouteSpec {
                name: "trunkline-rr".into(),
            },
        )
        .await
        .unwrap();
    for host in ["sip:a.example", "sip:b.example", "sip:c.example"] {
        c.create_route_target(&creds, &route.id, &spec(host, 10))
            .await
            .unwrap();
    }
    assert_eq!(
        w.emu.connection(route.id.as_str()).unwrap().routing_method,
        "round-robin"
    );
    let targets = c.list_route_targets(&creds, &route.id).await.unwrap();
    assert!(
        targets.iter().all(|t| t.priority == 10 && t.enabled),
        "{targets:?}"
    );
    w.emu.reset_requests();
    let e = c
        .create_route_target(&creds, &route.id, &spec("sip:d.example", 10))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidSipTarget);
    assert!(e.message.contains("at most 3"), "{e:?}");
    assert_eq!(w.emu.count(Route::CreateFqdn), 0, "refused before creating");
    // Targets Telnyx cannot hold as trunkline wrote them are refused before any request.
    for bad in [
        "sip:d.example;transport=udp",
        "sip:10.0.0.1",
        "sip:localhost",
    ] {
        let e = c
            .create_route_target(
                &creds,
                &route.id,
                &RouteTargetSpec {
                    enabled: false,
                    ..spec(bad, 10)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidSipTarget, "{bad}: {e:?}");
    }
    assert_eq!(w.emu.count(Route::CreateFqdn), 0);
}

#[tokio::test]
async fn credentials_and_number_ids_are_telnyx_shaped() {
    let w = World::new();
    let c = carrier(&w);
    assert_eq!(c.kind(), ProviderKind::Telnyx);
    let mut input = CredentialInput {
        fields: BTreeMap::new(),
        secrets: BTreeMap::new(),
    };
    input.secrets.insert(
        "apiKey".into(),
        SecretString::from(w.account.api_key.clone()),
    );
    let parsed = c.parse_credentials(&input).unwrap();
    let report = c.verify(&parsed).await.unwrap();
    assert_eq!(report.account_id, None);
    assert_eq!(report.capabilities.numbers, Capability::Available);
    assert_eq!(report.capabilities.trunking, Capability::Available);

    let limited = w.emu.add_api_key(&w.account.id, false);
    let report = c.verify(&creds(&limited.key)).await.unwrap();
    assert_eq!(report.capabilities.numbers, Capability::Forbidden);

    input.fields.insert("accountSid".into(), "AC1".into());
    let e = c.parse_credentials(&input).unwrap_err();
    assert!(e.to_string().contains("accountSid"), "{e}");
    assert!(!e.to_string().contains(&w.account.api_key));

    assert_eq!(
        c.parse_number_id("1293384261075731499").unwrap().as_str(),
        "1293384261075731499"
    );
    for bad in [
        "PN0123456789abcdef0123456789abcdef",
        "",
        "1/2",
        "+15551234567",
    ] {
        let e = c.parse_number_id(bad).unwrap_err();
        assert_eq!(e.field, Some("numberId"));
        assert_eq!(e.reason, "must be a Telnyx phone number id (digits)");
    }
}

#[tokio::test]
async fn another_carriers_records_and_ids_are_refused_without_a_request() {
    let w = World::new();
    let c = carrier(&w);
    let creds = creds(&w.account.api_key);
    let n = w.emu.seed_numbers(&w.account.id, 1);
    let twilio_routing = NumberRouting(json!({
        "voiceUrl": "https://user:secret@example.com/voice",
        "voiceApplicationSid": null
    }));
    let e = c
        .restore_routing(&creds, &nid(&n[0].id), &twilio_routing)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    assert_eq!(e.message, "previousRouting: not a Telnyx routing record");
    // Nothing recorded: nothing to restore.
    c.restore_routing(&creds, &nid(&n[0].id), &NumberRouting::none())
        .await
        .unwrap();
    let twilio_route = RouteId::parse("TK0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(c.fetch_route(&creds, &twilio_route).await.unwrap(), None);
    c.delete_route(&creds, &twilio_route).await.unwrap();
    let e = c
        .fetch_number(&creds, &nid("PN0123456789abcdef0123456789abcdef"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
    let twilio_creds = CarrierCredentials {
        account_id: Some(
            trunkline_core::CarrierAccountId::parse("AC0123456789abcdef0123456789abcdef").unwrap(),
        ),
        ..creds.clone()
    };
    assert_eq!(
        c.verify(&twilio_creds).await.unwrap_err().code,
        ErrorCode::AuthInvalid
    );
    assert!(w.emu.requests().is_empty(), "{:?}", w.emu.requests());
}

#[tokio::test]
async fn errors_surface_with_their_codes() {
    let w = World::new();
    let c = carrier(&w);
    let good = creds(&w.account.api_key);
    let e = c.verify(&creds("KEYnotakey0000000000")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AuthInvalid);
    assert_eq!(e.provider_code.as_deref(), Some("10009"));
    let e = c.fetch_number(&good, &nid("999999")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberNotFound);
    let e = c
        .attach_number(&good, &RouteId::parse("1").unwrap(), &nid("999999"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NumberNotFound);
    let limited = w.emu.add_api_key(&w.account.id, false);
    let n = w.emu.seed_numbers(&w.account.id, 1);
    let e = c
        .fetch_number(&creds(&limited.key), &nid(&n[0].id))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InsufficientPermissions);
    w.emu
        .inject(Route::ListPhoneNumbers, Fault::ServerError { count: 10 });
    let e = c
        .list_numbers(
            &good,
            &NumberQuery {
                page_size: 10,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
}

#[tokio::test]
async fn pages_above_telnyx_limit_fetch_250_behind_the_cursor() {
    let w = World::new();
    let c = carrier(&w);
    let creds = creds(&w.account.api_key);
    let seeded = w.emu.seed_numbers(&w.account.id, 3);
    let page = c
        .list_numbers(
            &creds,
            &NumberQuery {
                page_size: NumberQuery::MAX_PAGE_SIZE,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.next_cursor.is_none());
    let asked = w.emu.requests().pop().unwrap();
    assert_eq!(asked.query.get("page[size]"), Some("250"));
    assert!(
        page.items
            .iter()
            .all(|n| n.voice_capable && n.route_id.is_none())
    );
    assert!(
        page.items
            .iter()
            .all(|n| n.routing == NumberRouting(json!({"connectionId": null})))
    );

    let mut query = NumberQuery {
        page_size: 2,
        cursor: None,
        e164: None,
    };
    let mut seen = Vec::new();
    loop {
        let page = c.list_numbers(&creds, &query).await.unwrap();
        seen.extend(page.items.into_iter().map(|n| n.id.to_string()));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    seen.sort();
    let mut want: Vec<_> = seeded.into_iter().map(|s| s.id).collect();
    want.sort();
    assert_eq!(seen, want);

    let one = c
        .list_numbers(
            &creds,
            &NumberQuery {
                page_size: 5,
                cursor: None,
                e164: Some(trunkline_core::E164::parse(&want_phone(&w)).unwrap()),
            },
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let e = c
        .list_numbers(
            &creds,
            &NumberQuery {
                page_size: 0,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationFailed);
}

fn want_phone(w: &World) -> String {
    w.emu.numbers(&w.account.id)[0].phone_number.clone()
}
