//! Webhooks as the emulator sends them, checked the way LiveKit's receivers check them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use trunkline_testkit::livekit::{
    CallScript, LiveKitEmulator, WEBHOOK_CONTENT_TYPE, WebhookSigning, body_sha256, proto,
    sign_webhook_token,
};

use crate::receiver::{Received, Receiver};

/// Verify like LiveKit's Go `webhook.Receive`: the bare header is an HS256 token issued by
/// the key, signed with its secret, and its `sha256` claim is the hash of the body.
fn verify(r: &Received, key: &str, secret: &str) -> Value {
    let token = r.header("authorization").expect("an Authorization header");
    assert!(
        !token.starts_with("Bearer "),
        "LiveKit sends the bare token"
    );
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[key]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sha256"], body_sha256(&r.body));
    let ttl = claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap();
    assert_eq!(ttl, 300, "valid for five minutes");
    assert_eq!(r.header("content-type"), Some(WEBHOOK_CONTENT_TYPE));
    assert_eq!(r.method, "POST");
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn a_webhook_is_signed_exactly_like_livekit_signs_it() {
    let emu = LiveKitEmulator::start();
    let receiver = Receiver::start(200).await;
    let event = json!({ "event": "room_started", "id": "EV_1", "room": { "name": "r" } });
    let delivery = emu.send_webhook(&receiver.url, &event).await;
    assert!(delivery.succeeded(), "{delivery:?}");
    assert_eq!(
        (delivery.event_id.as_str(), delivery.event.as_str()),
        ("EV_1", "room_started")
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(verify(&got[0], emu.api_key(), emu.api_secret()), event);

    // The signature really depends on the secret and the body.
    let token = got[0].header("authorization").unwrap();
    let strict = Validation::new(Algorithm::HS256);
    assert!(
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(b"other"), &strict).is_err()
    );
    assert_ne!(body_sha256(b"{}"), body_sha256(&got[0].body));
}

#[tokio::test]
async fn negative_tokens_can_be_made_and_sent_raw() {
    let emu = LiveKitEmulator::start();
    let receiver = Receiver::start(401).await;
    let body = br#"{"event":"room_started","id":"EV_2"}"#.to_vec();
    let expired = WebhookSigning {
        expires_at: chrono::Utc::now() - chrono::Duration::minutes(5),
        ..emu.webhook_signing()
    };
    let token = sign_webhook_token(&body, &expired);
    let delivery = emu
        .send_raw_webhook(&receiver.url, body.clone(), Some(token.clone()))
        .await;
    assert_eq!(delivery.status, Some(401));
    assert!(!delivery.succeeded());
    let got = receiver.received();
    assert_eq!(got[0].header("authorization"), Some(token.as_str()));
    assert_eq!(got[0].body, body);
    let no_header = emu.send_raw_webhook(&receiver.url, body, None).await;
    assert_eq!(no_header.status, Some(401));
    assert_eq!(receiver.received()[1].header("authorization"), None);

    // Nobody listening: the delivery says so instead of failing the test run.
    let gone = emu
        .send_raw_webhook("http://127.0.0.1:9/hook", b"{}".to_vec(), None)
        .await;
    assert!(gone.status.is_none() && gone.error.is_some());
}

#[tokio::test]
async fn an_inbound_call_is_four_livekit_shaped_events() {
    let emu = LiveKitEmulator::start();
    let trunk = emu.insert_trunk(proto::SipInboundTrunkInfo {
        name: "t".to_owned(),
        numbers: vec!["+14155550100".to_owned()],
        ..Default::default()
    });
    emu.insert_rule(proto::SipDispatchRuleInfo {
        rule: Some(proto::SipDispatchRule {
            rule: Some(proto::sip_dispatch_rule::Rule::DispatchRuleIndividual(
                proto::SipDispatchRuleIndividual {
                    room_prefix: "call-".to_owned(),
                    ..Default::default()
                },
            )),
        }),
        trunk_ids: vec![trunk.clone()],
        ..Default::default()
    });
    let receiver = Receiver::start(200).await;
    let call = emu
        .play_inbound_call(
            std::slice::from_ref(&receiver.url),
            CallScript::new("+14155550100", "+14155550199"),
        )
        .await;
    assert!(
        call.room.starts_with("call-_+14155550199_"),
        "{}",
        call.room
    );
    assert_eq!(call.trunk_id.as_deref(), Some(trunk.as_str()));
    assert_eq!(emu.rooms(), std::slice::from_ref(&call.room));
    assert!(
        emu.dispatches(&call.room).is_empty(),
        "the rule has no agents"
    );

    let events: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| verify(r, emu.api_key(), emu.api_secret()))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "room_started",
            "participant_joined",
            "participant_left",
            "room_finished"
        ]
    );
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "each event has its own id");
    assert!(
        events
            .iter()
            .all(|e| e["room"]["name"] == call.room.as_str())
    );
    assert!(events.iter().all(|e| {
        e["createdAt"]
            .as_str()
            .is_some_and(|s| s.parse::<i64>().is_ok())
    }));

    let joined = &events[1]["participant"];
    assert_eq!(joined["kind"], "SIP");
    assert_eq!(joined["state"], "ACTIVE");
    assert_eq!(joined["identity"], call.participant_identity.as_str());
    let attrs = &joined["attributes"];
    assert_eq!(attrs["sip.trunkPhoneNumber"], "+14155550100");
    assert_eq!(attrs["sip.phoneNumber"], "+14155550199");
    assert_eq!(attrs["sip.callID"], call.sip_call_id.as_str());
    assert_eq!(attrs["sip.trunkID"], trunk.as_str());
    assert_eq!(events[2]["participant"]["state"], "DISCONNECTED");
    assert_eq!(call.event_ids().len(), 4);
}

#[tokio::test]
async fn duplicates_shuffled_and_concurrent_go_round_the_targets() {
    let emu = LiveKitEmulator::start();
    let receivers = [
        Receiver::start(200).await,
        Receiver::start(200).await,
        Receiver::start(200).await,
    ];
    let targets: Vec<String> = receivers.iter().map(|r| r.url.clone()).collect();
    let script = CallScript {
        room: Some("call-fixed".to_owned()),
        duplicates: 3,
        shuffle: true,
        concurrent: true,
        delay: Duration::from_millis(20),
        ..CallScript::new("+14155550100", "+14155550199")
    };
    let call = emu.play_inbound_call(&targets, script).await;
    assert_eq!(call.room, "call-fixed");
    assert_eq!(call.deliveries.len(), 12);
    assert!(
        call.deliveries
            .iter()
            .all(trunkline_testkit::livekit::WebhookDelivery::succeeded)
    );
    // Every target got every event exactly once.
    for r in &receivers {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for got in r.received() {
            let event = verify(&got, emu.api_key(), emu.api_secret());
            *seen
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(seen.keys().cloned().collect::<Vec<_>>().len(), 4);
        assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    }
    // No call trunk: still played, without a trunk id.
    assert_eq!(call.trunk_id, None);
}

#[tokio::test]
async fn sequential_deliveries_keep_order_unless_shuffled() {
    let emu = LiveKitEmulator::start();
    let receiver = Receiver::start(200).await;
    let script = CallScript {
        duplicates: 2,
        ..CallScript::new("+14155550100", "+14155550199")
    };
    let call = emu
        .play_inbound_call(std::slice::from_ref(&receiver.url), script)
        .await;
    let got: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            verify(r, emu.api_key(), emu.api_secret())["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        got,
        [
            "room_started",
            "room_started",
            "participant_joined",
            "participant_joined",
            "participant_left",
            "participant_left",
            "room_finished",
            "room_finished"
        ]
    );
    assert_eq!(
        call.deliveries
            .iter()
            .map(|d| d.event.clone())
            .collect::<Vec<_>>(),
        got
    );

    // Shuffled: the same multiset; with 8 deliveries the chance of the original order
    // coming back 5 times in a row is (1/2520)^5.
    let mut reordered = false;
    for _ in 0..5 {
        let r = Receiver::start(200).await;
        let script = CallScript {
            duplicates: 2,
            shuffle: true,
            ..CallScript::new("+14155550100", "+14155550199")
        };
        let call = emu
            .play_inbound_call(std::slice::from_ref(&r.url), script)
            .await;
        let order: Vec<String> = call.deliveries.iter().map(|d| d.event.clone()).collect();
        let mut sorted = order.clone();
        sorted.sort();
        let mut expected = got.clone();
        expected.sort();
        assert_eq!(sorted, expected);
        reordered |= order != got;
    }
    assert!(reordered);
}

#[tokio::test]
async fn a_rule_with_agents_dispatches_them_when_the_call_comes_in() {
    let emu = LiveKitEmulator::start();
    let trunk = emu.insert_trunk(proto::SipInboundTrunkInfo {
        numbers: vec!["+14155550100".to_owned()],
        ..Default::default()
    });
    emu.insert_rule(proto::SipDispatchRuleInfo {
        rule: Some(proto::SipDispatchRule {
            rule: Some(proto::sip_dispatch_rule::Rule::DispatchRuleIndividual(
                proto::SipDispatchRuleIndividual {
                    room_prefix: "in-".to_owned(),
                    ..Default::default()
                },
            )),
        }),
        trunk_ids: vec![trunk],
        room_config: Some(proto::RoomConfiguration {
            agents: vec![proto::RoomAgentDispatch {
                agent_name: "ruled-agent".to_owned(),
                metadata: "m".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    });
    let call = emu.inbound_call(&CallScript::new("+14155550100", "+14155550199"));
    assert!(call.room.starts_with("in-_"), "{}", call.room);
    let dispatches = emu.dispatches(&call.room);
    assert_eq!(dispatches.len(), 1);
    assert_eq!(
        (
            dispatches[0].agent_name.as_str(),
            dispatches[0].metadata.as_str()
        ),
        ("ruled-agent", "m")
    );
    assert_eq!(emu.total_dispatches(), 1);
}
