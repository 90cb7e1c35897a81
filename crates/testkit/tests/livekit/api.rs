//! LiveKit's server API as the emulator serves it, request by request.

use std::time::{Duration, Instant};

use serde_json::json;
use trunkline_testkit::livekit::{
    EmulatorOptions, Fault, LiveKitEmulator, Method, MethodSelector, Service, proto,
};

use crate::client::{call, call_json, post, room_admin, sip_admin, token, token_at};

const SIP: &str = "SIP";
const DISPATCH: &str = "AgentDispatchService";

fn admin(emu: &LiveKitEmulator) -> String {
    token(emu.api_key(), emu.api_secret(), &sip_admin())
}

fn inbound(name: &str, numbers: &[&str]) -> proto::CreateSipInboundTrunkRequest {
    proto::CreateSipInboundTrunkRequest {
        trunk: Some(proto::SipInboundTrunkInfo {
            name: name.to_owned(),
            numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

fn individual(prefix: &str) -> proto::SipDispatchRule {
    proto::SipDispatchRule {
        rule: Some(proto::sip_dispatch_rule::Rule::DispatchRuleIndividual(
            proto::SipDispatchRuleIndividual {
                room_prefix: prefix.to_owned(),
                ..Default::default()
            },
        )),
    }
}

async fn create_trunk(
    emu: &LiveKitEmulator,
    req: &proto::CreateSipInboundTrunkRequest,
) -> Result<proto::SipInboundTrunkInfo, crate::client::Reply> {
    call(&emu.url(), SIP, "CreateSIPInboundTrunk", &admin(emu), req).await
}

#[tokio::test]
async fn authentication_is_checked_like_livekit() {
    let emu = LiveKitEmulator::start();
    let base = emu.url();
    let path = "/twirp/livekit.SIP/ListSIPInboundTrunk";
    let body = proto::ListSipInboundTrunkRequest::default();
    let send = |auth: Option<String>| {
        let base = base.clone();
        let body = prost::Message::encode_to_vec(&body);
        async move { post(&base, path, auth.as_deref(), "application/protobuf", body).await }
    };

    // No token at all: the middleware lets it through, the handler refuses (Twirp JSON).
    let r = send(None).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (401, Some("unauthenticated"))
    );
    assert_eq!(r.json()["msg"], "permissions denied");

    // The middleware's own refusals are plain text.
    let good = admin(&emu);
    for (auth, text) in [
        (good.clone(), "Must start with Bearer"),
        (format!("Basic {good}"), "Must start with Bearer"),
        ("Bearer not-a-jwt".to_owned(), "invalid authorization token"),
        (
            format!(
                "Bearer {}",
                token("APIunknown", emu.api_secret(), &sip_admin())
            ),
            "invalid API key",
        ),
        (
            format!(
                "Bearer {}",
                token(emu.api_key(), "wrong-secret", &sip_admin())
            ),
            "invalid authorization token",
        ),
        (
            format!(
                "Bearer {}",
                token_at(emu.api_key(), emu.api_secret(), &sip_admin(), -900, -300)
            ),
            "invalid authorization token",
        ),
        (
            format!(
                "Bearer {}",
                token_at(emu.api_key(), emu.api_secret(), &sip_admin(), 300, 900)
            ),
            "invalid authorization token",
        ),
    ] {
        let r = send(Some(auth)).await;
        assert_eq!(r.status, 401, "{text}");
        assert!(
            r.content_type.starts_with("text/plain"),
            "{}",
            r.content_type
        );
        assert!(r.text().contains(text), "{} / {text}", r.text());
    }

    // Within the minute of leeway: still good.
    let skewed = token_at(emu.api_key(), emu.api_secret(), &sip_admin(), 30, 600);
    assert_eq!(send(Some(format!("Bearer {skewed}"))).await.status, 200);

    // A valid token without the SIP admin grant.
    let no_grant = token(emu.api_key(), emu.api_secret(), &room_admin("r"));
    let r = send(Some(format!("Bearer {no_grant}"))).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (401, Some("unauthenticated"))
    );

    // A revoked key.
    emu.revoke_api_key(emu.api_key());
    let r = send(Some(format!("Bearer {good}"))).await;
    assert!(r.text().contains("invalid API key"));
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.status == Some(200))
            .count(),
        1
    );
}

#[tokio::test]
async fn agent_dispatch_needs_room_admin_for_that_room() {
    let emu = LiveKitEmulator::start();
    let base = emu.url();
    let req = proto::CreateAgentDispatchRequest {
        agent_name: "a".to_owned(),
        room: "room-1".to_owned(),
        ..Default::default()
    };
    let other_room = token(emu.api_key(), emu.api_secret(), &room_admin("room-2"));
    let err = call::<_, proto::AgentDispatch>(&base, DISPATCH, "CreateDispatch", &other_room, &req)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_deref(), Some("unauthenticated"));
    assert_eq!(
        call::<_, proto::AgentDispatch>(&base, DISPATCH, "CreateDispatch", &admin(&emu), &req)
            .await
            .unwrap_err()
            .status,
        401
    );

    let ok = token(emu.api_key(), emu.api_secret(), &room_admin("room-1"));
    let d: proto::AgentDispatch = call(&base, DISPATCH, "CreateDispatch", &ok, &req)
        .await
        .unwrap();
    assert!(d.id.starts_with("AD_"));
    let list: proto::ListAgentDispatchResponse = call(
        &base,
        DISPATCH,
        "ListDispatch",
        &ok,
        &proto::ListAgentDispatchRequest {
            room: "room-1".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(list.agent_dispatches, std::slice::from_ref(&d));
    assert_eq!(emu.dispatches("room-1"), [d]);

    // A room that does not exist (or has ended) is not found.
    let none = token(emu.api_key(), emu.api_secret(), &room_admin("nowhere"));
    let err = call::<_, proto::ListAgentDispatchResponse>(
        &base,
        DISPATCH,
        "ListDispatch",
        &none,
        &proto::ListAgentDispatchRequest {
            room: "nowhere".to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.status, err.code().as_deref()),
        (404, Some("not_found"))
    );
    emu.close_room("room-1");
    assert!(emu.dispatches("room-1").is_empty());
    assert_eq!(emu.dispatch_history("room-1").len(), 1);
}

#[tokio::test]
async fn json_and_protobuf_bodies_are_both_served() {
    let emu = LiveKitEmulator::start();
    let r = call_json(
        &emu.url(),
        SIP,
        "CreateSIPInboundTrunk",
        &admin(&emu),
        &json!({ "trunk": { "name": "json trunk", "numbers": ["+14155550100"], "allowedAddresses": ["10.0.0.1"] } }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.content_type.starts_with("application/json"));
    let created = r.json();
    let id = created["sipTrunkId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ST_"));
    assert_eq!(created["allowedAddresses"], json!(["10.0.0.1"]));

    // Read back over protobuf.
    let got: proto::GetSipInboundTrunkResponse = call(
        &emu.url(),
        SIP,
        "GetSIPInboundTrunk",
        &admin(&emu),
        &proto::GetSipInboundTrunkRequest {
            sip_trunk_id: id.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(got.trunk.unwrap().name, "json trunk");

    // Twirp's own refusals: wrong content type, unknown method, broken body.
    let r = post(
        &emu.url(),
        "/twirp/livekit.SIP/ListSIPInboundTrunk",
        Some(&format!("Bearer {}", admin(&emu))),
        "text/plain",
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.code().as_deref(), Some("bad_route"));
    let r = post(
        &emu.url(),
        "/twirp/livekit.SIP/NoSuchMethod",
        Some(&format!("Bearer {}", admin(&emu))),
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (404, Some("bad_route")));
    let r = call_json(
        &emu.url(),
        SIP,
        "ListSIPInboundTrunk",
        &admin(&emu),
        &json!("not an object"),
    )
    .await;
    assert_eq!((r.status, r.code().as_deref()), (400, Some("malformed")));
}

#[tokio::test]
async fn the_same_number_on_two_trunks_is_refused_as_livekit_does() {
    let emu = LiveKitEmulator::start();
    let first = create_trunk(&emu, &inbound("a", &["+14155550100"]))
        .await
        .unwrap();
    let err = create_trunk(&emu, &inbound("b", &["+1 415 555 0100"]))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code().as_deref()),
        (400, Some("invalid_argument"))
    );
    let msg = err.json()["msg"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with("Conflicting inbound SIP Trunks: \"<new>\" and"),
        "{msg}"
    );
    assert!(msg.contains(&first.sip_trunk_id), "{msg}");

    // Callers told apart by allowed_numbers may share the number (LiveKit's buckets: a
    // trunk for some callers next to one for any caller is allowed; the same caller twice is not).
    let mut split = inbound("c", &["+14155550100"]);
    split.trunk.as_mut().unwrap().allowed_numbers = vec!["+14155550111".to_owned()];
    create_trunk(&emu, &split).await.unwrap();
    let mut same_caller = inbound("d", &["+14155550100"]);
    same_caller.trunk.as_mut().unwrap().allowed_numbers = vec!["+1 415 555 0111".to_owned()];
    let err = create_trunk(&emu, &same_caller).await.unwrap_err();
    assert!(
        err.json()["msg"]
            .as_str()
            .unwrap()
            .contains("AllowedNumber"),
        "{err:?}"
    );
    assert_eq!(emu.trunks().len(), 2);
    let emu = LiveKitEmulator::start();
    let mut one = inbound("a", &["+14155550100"]);
    one.trunk.as_mut().unwrap().allowed_numbers = vec!["+14155550111".to_owned()];
    let mut two = inbound("b", &["+14155550100"]);
    two.trunk.as_mut().unwrap().allowed_numbers = vec!["+14155550122".to_owned()];
    create_trunk(&emu, &one).await.unwrap();
    create_trunk(&emu, &two).await.unwrap();

    // For security LiveKit wants numbers, addresses or credentials.
    let err = create_trunk(&emu, &inbound("open", &[])).await.unwrap_err();
    assert!(err.json()["msg"].as_str().unwrap().contains("for security"));

    // A trunk id on create is refused.
    let mut with_id = inbound("x", &["+14155550133"]);
    with_id.trunk.as_mut().unwrap().sip_trunk_id = "ST_mine".to_owned();
    assert_eq!(
        create_trunk(&emu, &with_id)
            .await
            .unwrap_err()
            .code()
            .as_deref(),
        Some("invalid_argument")
    );
    assert_eq!(emu.trunks().len(), 2);
}

#[tokio::test]
async fn list_filters_behave_like_livekits() {
    let emu = LiveKitEmulator::start();
    let a = create_trunk(&emu, &inbound("a", &["+14155550100"]))
        .await
        .unwrap();
    let b = create_trunk(&emu, &inbound("b", &["+14155550101"]))
        .await
        .unwrap();
    let mut any = inbound("any", &[]);
    any.trunk.as_mut().unwrap().auth_username = "u".to_owned();
    any.trunk.as_mut().unwrap().auth_password = "p".to_owned();
    let any = create_trunk(&emu, &any).await.unwrap();

    let list = |req: proto::ListSipInboundTrunkRequest| {
        let base = emu.url();
        let token = admin(&emu);
        async move {
            let r: proto::ListSipInboundTrunkResponse =
                call(&base, SIP, "ListSIPInboundTrunk", &token, &req)
                    .await
                    .unwrap();
            r.items
                .into_iter()
                .map(|t| t.sip_trunk_id)
                .collect::<Vec<_>>()
        }
    };
    // The number filter includes trunks that accept any number.
    let by_number = list(proto::ListSipInboundTrunkRequest {
        numbers: vec!["+1 (415) 555-0100".to_owned()],
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_number,
        [a.sip_trunk_id.clone(), any.sip_trunk_id.clone()]
    );
    // Ids in the order asked, an empty item for a missing one.
    let by_id = list(proto::ListSipInboundTrunkRequest {
        trunk_ids: vec![
            b.sip_trunk_id.clone(),
            "ST_gone".to_owned(),
            a.sip_trunk_id.clone(),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(
        by_id,
        [
            b.sip_trunk_id.clone(),
            String::new(),
            a.sip_trunk_id.clone()
        ]
    );
    assert_eq!(
        list(proto::ListSipInboundTrunkRequest::default())
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn a_duplicate_dispatch_rule_is_refused() {
    let emu = LiveKitEmulator::start();
    let base = emu.url();
    let t = admin(&emu);
    let trunk = create_trunk(&emu, &inbound("a", &["+14155550100"]))
        .await
        .unwrap();
    let rule = |name: &str| proto::CreateSipDispatchRuleRequest {
        dispatch_rule: Some(proto::SipDispatchRuleInfo {
            rule: Some(individual("call-")),
            trunk_ids: vec![trunk.sip_trunk_id.clone()],
            name: name.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let first: proto::SipDispatchRuleInfo =
        call(&base, SIP, "CreateSIPDispatchRule", &t, &rule("one"))
            .await
            .unwrap();
    assert!(first.sip_dispatch_rule_id.starts_with("SDR_"));
    let err = call::<_, proto::SipDispatchRuleInfo>(
        &base,
        SIP,
        "CreateSIPDispatchRule",
        &t,
        &rule("two"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code().as_deref(), Some("invalid_argument"));
    let msg = err.json()["msg"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("already exists in dispatch rule")
            && msg.contains(&first.sip_dispatch_rule_id),
        "{msg}"
    );

    // A rule for every trunk does not collide with a trunk's own rule.
    let mut wildcard = rule("all");
    wildcard.dispatch_rule.as_mut().unwrap().trunk_ids.clear();
    let all: proto::SipDispatchRuleInfo = call(&base, SIP, "CreateSIPDispatchRule", &t, &wildcard)
        .await
        .unwrap();
    // ... and the trunk filter lists both.
    let listed: proto::ListSipDispatchRuleResponse = call(
        &base,
        SIP,
        "ListSIPDispatchRule",
        &t,
        &proto::ListSipDispatchRuleRequest {
            trunk_ids: vec![trunk.sip_trunk_id.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ids: Vec<_> = listed
        .items
        .iter()
        .map(|r| r.sip_dispatch_rule_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            first.sip_dispatch_rule_id.clone(),
            all.sip_dispatch_rule_id.clone()
        ]
    );

    // A rule without a rule.
    let mut empty = rule("empty");
    empty.dispatch_rule.as_mut().unwrap().rule = None;
    let err =
        call::<_, proto::SipDispatchRuleInfo>(&base, SIP, "CreateSIPDispatchRule", &t, &empty)
            .await
            .unwrap_err();
    assert!(err.json()["msg"].as_str().unwrap().contains("missing rule"));

    // Deleting twice: the second is not found.
    let del = proto::DeleteSipDispatchRuleRequest {
        sip_dispatch_rule_id: first.sip_dispatch_rule_id.clone(),
    };
    call::<_, proto::SipDispatchRuleInfo>(&base, SIP, "DeleteSIPDispatchRule", &t, &del)
        .await
        .unwrap();
    let err = call::<_, proto::SipDispatchRuleInfo>(&base, SIP, "DeleteSIPDispatchRule", &t, &del)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status, err.code().as_deref()),
        (404, Some("not_found"))
    );
    assert_eq!(emu.rules().len(), 1);
}

#[tokio::test]
async fn updates_replace_or_patch_and_keep_the_rules() {
    let emu = LiveKitEmulator::start();
    let base = emu.url();
    let t = admin(&emu);
    let a = create_trunk(&emu, &inbound("a", &["+14155550100"]))
        .await
        .unwrap();
    let b = create_trunk(&emu, &inbound("b", &["+14155550101"]))
        .await
        .unwrap();

    let patch = proto::UpdateSipInboundTrunkRequest {
        sip_trunk_id: b.sip_trunk_id.clone(),
        action: Some(proto::update_sip_inbound_trunk_request::Action::Update(
            proto::SipInboundTrunkUpdate {
                name: Some("b2".to_owned()),
                numbers: Some(proto::ListUpdate {
                    add: vec!["+14155550102".to_owned()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    };
    let patched: proto::SipInboundTrunkInfo = call(&base, SIP, "UpdateSIPInboundTrunk", &t, &patch)
        .await
        .unwrap();
    assert_eq!((patched.name.as_str(), patched.numbers.len()), ("b2", 2));

    // Replacing b's numbers with a's number collides with a.
    let replace = proto::UpdateSipInboundTrunkRequest {
        sip_trunk_id: b.sip_trunk_id.clone(),
        action: Some(proto::update_sip_inbound_trunk_request::Action::Replace(
            proto::SipInboundTrunkInfo {
                numbers: vec!["+14155550100".to_owned()],
                ..Default::default()
            },
        )),
    };
    let err =
        call::<_, proto::SipInboundTrunkInfo>(&base, SIP, "UpdateSIPInboundTrunk", &t, &replace)
            .await
            .unwrap_err();
    assert!(
        err.json()["msg"]
            .as_str()
            .unwrap()
            .contains(&a.sip_trunk_id)
    );
    assert_eq!(
        emu.trunk(&b.sip_trunk_id).unwrap().name,
        "b2",
        "a refused update changes nothing"
    );

    let missing = proto::UpdateSipInboundTrunkRequest {
        sip_trunk_id: "ST_gone".to_owned(),
        ..replace
    };
    let err =
        call::<_, proto::SipInboundTrunkInfo>(&base, SIP, "UpdateSIPInboundTrunk", &t, &missing)
            .await
            .unwrap_err();
    assert_eq!(err.code().as_deref(), Some("not_found"));
}

#[tokio::test]
async fn faults_are_injected_per_method_and_logged() {
    let emu = LiveKitEmulator::start_with(EmulatorOptions {
        hang_for: Duration::from_millis(300),
        ..EmulatorOptions::default()
    })
    .unwrap();
    let base = emu.url();
    let t = admin(&emu);
    let list = proto::ListSipInboundTrunkRequest::default();

    emu.inject(
        Method::ListSipInboundTrunk,
        Fault::Fail {
            count: 2,
            status: 503,
        },
    );
    for _ in 0..2 {
        let err = call::<_, proto::ListSipInboundTrunkResponse>(
            &base,
            SIP,
            "ListSIPInboundTrunk",
            &t,
            &list,
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status, err.code().as_deref()),
            (503, Some("unavailable"))
        );
    }
    call::<_, proto::ListSipInboundTrunkResponse>(&base, SIP, "ListSIPInboundTrunk", &t, &list)
        .await
        .unwrap();

    // A fault on one method leaves the others alone.
    emu.inject(
        Method::CreateDispatch,
        Fault::Fail {
            count: 1,
            status: 429,
        },
    );
    create_trunk(&emu, &inbound("a", &["+14155550100"]))
        .await
        .unwrap();

    // A lost answer: the change happened.
    emu.inject(
        Service::Sip,
        Fault::LoseAnswer {
            count: 1,
            status: 500,
        },
    );
    let err = create_trunk(&emu, &inbound("b", &["+14155550101"]))
        .await
        .unwrap_err();
    assert_eq!((err.status, err.code().as_deref()), (500, Some("internal")));
    assert_eq!(emu.trunks().len(), 2);

    emu.inject(
        Method::ListSipDispatchRule,
        Fault::Latency(Duration::from_millis(150)),
    );
    let started = Instant::now();
    call::<_, proto::ListSipDispatchRuleResponse>(
        &base,
        SIP,
        "ListSIPDispatchRule",
        &t,
        &proto::ListSipDispatchRuleRequest::default(),
    )
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    emu.inject(Method::GetSipInboundTrunk, Fault::Hang { count: 1 });
    let started = Instant::now();
    let err = call::<_, proto::GetSipInboundTrunkResponse>(
        &base,
        SIP,
        "GetSIPInboundTrunk",
        &t,
        &proto::GetSipInboundTrunkRequest {
            sip_trunk_id: "ST_x".to_owned(),
        },
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.code().as_deref(), Some("deadline_exceeded"));

    assert_eq!(emu.count(Method::ListSipInboundTrunk), 3);
    assert_eq!(emu.count(Service::Sip), 7);
    assert_eq!(emu.count(MethodSelector::Writes), 2);
    assert_eq!(
        emu.count(Method::CreateDispatch),
        0,
        "the unused CreateDispatch fault is still pending"
    );
    let log = emu.requests();
    assert_eq!(
        log.iter()
            .filter(|r| r.error_code.as_deref() == Some("unavailable"))
            .count(),
        2
    );
    assert!(
        log.iter()
            .all(|r| r.api_key.as_deref() == Some(emu.api_key()))
    );
    assert!(emu.counts().contains(&(Method::CreateSipInboundTrunk, 2)));
    emu.reset();
    assert!(emu.requests().is_empty() && emu.trunks().is_empty());
}
