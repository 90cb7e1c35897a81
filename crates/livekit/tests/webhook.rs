//! Webhook verification against tokens and bodies made exactly as LiveKit makes them (by the
//! emulator), and every way they can be wrong.

use chrono::Utc;
use secrecy::SecretString;
use trunkline_core::ports::{SipPlatform, WebhookError, WebhookKind};
use trunkline_livekit::{LiveKitConfig, LiveKitPlatform};
use trunkline_testkit::livekit::{
    CallScript, LiveKitEmulator, WebhookSigning, body_sha256, sign_webhook_token,
};

fn platform(emu: &LiveKitEmulator) -> LiveKitPlatform {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LiveKitPlatform::new(LiveKitConfig::new(
        emu.url(),
        emu.api_key(),
        SecretString::from(emu.api_secret().to_owned()),
    ))
    .unwrap()
}

/// The four events of one call, as LiveKit would send them (bodies as raw bytes).
fn call_bodies(emu: &LiveKitEmulator) -> Vec<Vec<u8>> {
    emu.inbound_call(&CallScript::new("+14155550100", "+14155550199"))
        .events
        .iter()
        .map(|e| e.to_string().into_bytes())
        .collect()
}

#[test]
fn livekit_signed_events_verify_and_parse() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let call = emu.inbound_call(&CallScript::new("+14155550100", "+14155550199"));
    let names: Vec<String> = call
        .events
        .iter()
        .map(|e| {
            let body = e.to_string().into_bytes();
            let event = lk.verify_webhook(&body, &emu.sign_webhook(&body)).unwrap();
            assert_eq!(
                event.room.as_ref().map(trunkline_core::RoomName::as_str),
                Some(call.room.as_str())
            );
            assert!(event.created_at.is_some());
            assert_eq!(Some(event.id.as_str()), e["id"].as_str());
            if let WebhookKind::ParticipantJoined { sip } | WebhookKind::ParticipantLeft { sip } =
                &event.kind
            {
                let sip = sip.as_ref().expect("a SIP participant");
                assert_eq!(sip.called_number.as_deref(), Some("+14155550100"));
                assert_eq!(sip.caller_number.as_deref(), Some("+14155550199"));
                assert_eq!(sip.sip_call_id.as_deref(), Some(call.sip_call_id.as_str()));
                assert_eq!(sip.identity, call.participant_identity);
            }
            event.name
        })
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
}

#[test]
fn the_trunk_id_attribute_is_read_when_a_trunk_took_the_call() {
    let emu = LiveKitEmulator::start();
    let trunk = emu.insert_trunk(trunkline_testkit::livekit::proto::SipInboundTrunkInfo {
        numbers: vec!["+14155550100".to_owned()],
        ..Default::default()
    });
    let lk = platform(&emu);
    let call = emu.inbound_call(&CallScript::new("+14155550100", "+14155550199"));
    let body = call.events[1].to_string().into_bytes();
    let event = lk.verify_webhook(&body, &emu.sign_webhook(&body)).unwrap();
    let WebhookKind::ParticipantJoined { sip: Some(sip) } = event.kind else {
        panic!("{:?}", event.kind);
    };
    assert_eq!(sip.trunk_id.as_deref(), Some(trunk.as_str()));
}

#[test]
fn other_participants_and_events_are_not_sip_calls() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let body = serde_json::json!({
        "event": "participant_joined",
        "id": "EV_agent",
        "createdAt": "1767225600",
        "room": { "name": "call-_x_y", "sid": "RM_1" },
        "participant": { "identity": "agent-1", "kind": "AGENT",
                         "attributes": { "sip.trunkPhoneNumber": "+14155550100" } },
        "someFieldFromANewerLiveKit": { "x": 1 }
    })
    .to_string()
    .into_bytes();
    let event = lk.verify_webhook(&body, &emu.sign_webhook(&body)).unwrap();
    assert_eq!(event.kind, WebhookKind::ParticipantJoined { sip: None });

    let body = br#"{"event":"track_published","id":"EV_t","room":{"name":"r"}}"#;
    let event = lk.verify_webhook(body, &emu.sign_webhook(body)).unwrap();
    assert_eq!(event.kind, WebhookKind::Other("track_published".to_owned()));
}

#[test]
fn every_forgery_is_refused() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let body = call_bodies(&emu).swap_remove(1);
    let good = emu.webhook_signing();
    let token = |s: &WebhookSigning| sign_webhook_token(&body, s);
    let invalid = |e: Result<_, WebhookError>| match e {
        Err(WebhookError::InvalidSignature(reason)) => reason,
        other => panic!("expected InvalidSignature, got {other:?}"),
    };

    assert_eq!(
        lk.verify_webhook(&body, "").unwrap_err(),
        WebhookError::MissingToken
    );
    assert_eq!(
        lk.verify_webhook(&body, "   ").unwrap_err(),
        WebhookError::MissingToken
    );
    // LiveKit sends the bare token; its receivers take the header value as the token.
    let bearer = format!("Bearer {}", token(&good));
    assert_eq!(
        lk.verify_webhook(&body, &bearer).unwrap_err(),
        WebhookError::MissingToken
    );

    let wrong_secret = WebhookSigning {
        api_secret: "another-secret".to_owned(),
        ..good.clone()
    };
    let reason = invalid(lk.verify_webhook(&body, &token(&wrong_secret)));
    assert!(reason.contains("signature"), "{reason}");

    // Another key pair of the same LiveKit project: not the key trunkline is configured with.
    let (other_key, other_secret) = emu.add_api_key();
    let wrong_pair = WebhookSigning {
        api_key: other_key.clone(),
        api_secret: other_secret,
        ..good.clone()
    };
    let reason = invalid(lk.verify_webhook(&body, &token(&wrong_pair)));
    assert!(reason.contains("signature"), "{reason}");
    let wrong_issuer = WebhookSigning {
        api_key: other_key,
        ..good.clone()
    };
    let reason = invalid(lk.verify_webhook(&body, &token(&wrong_issuer)));
    assert!(reason.contains("API key"), "{reason}");

    let expired = WebhookSigning {
        not_before: Utc::now() - chrono::Duration::minutes(10),
        expires_at: Utc::now() - chrono::Duration::minutes(5),
        ..good.clone()
    };
    assert_eq!(
        invalid(lk.verify_webhook(&body, &token(&expired))),
        "token expired"
    );

    let early = WebhookSigning {
        not_before: Utc::now() + chrono::Duration::minutes(5),
        expires_at: Utc::now() + chrono::Duration::minutes(10),
        ..good.clone()
    };
    assert_eq!(
        invalid(lk.verify_webhook(&body, &token(&early))),
        "token not yet valid"
    );

    let reason = invalid(lk.verify_webhook(&body, "not-a-jwt"));
    assert_eq!(reason, "not a JWT");

    // A token for another body: the signature is fine, the hash is not.
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|b| *b == b'5').unwrap();
    tampered[pos] = b'6';
    assert_eq!(
        lk.verify_webhook(&tampered, &token(&good)).unwrap_err(),
        WebhookError::BodyMismatch
    );
    let other_hash = WebhookSigning {
        sha256: Some(body_sha256(b"{}")),
        ..good.clone()
    };
    assert_eq!(
        lk.verify_webhook(&body, &token(&other_hash)).unwrap_err(),
        WebhookError::BodyMismatch
    );
    // Whitespace is part of the signed body.
    let mut spaced = body.clone();
    spaced.push(b'\n');
    assert_eq!(
        lk.verify_webhook(&spaced, &token(&good)).unwrap_err(),
        WebhookError::BodyMismatch
    );

    let no_hash = WebhookSigning {
        sha256: Some("***".to_owned()),
        ..good.clone()
    };
    assert!(matches!(
        lk.verify_webhook(&body, &token(&no_hash)),
        Err(WebhookError::InvalidSignature(_))
    ));

    // Still good after all that.
    assert!(lk.verify_webhook(&body, &token(&good)).is_ok());
}

#[test]
fn signed_garbage_is_malformed_not_accepted() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    for body in [
        b"not json".to_vec(),
        br#"{"event":"room_started","room":{"name":"r"}}"#.to_vec(),
        br#"{"event":"","id":"EV_1"}"#.to_vec(),
        br#"{"event":"room_started","id":"EV 1"}"#.to_vec(),
        vec![0xff, 0xfe, b'{', b'}'],
    ] {
        let result = lk.verify_webhook(&body, &emu.sign_webhook(&body));
        assert!(
            matches!(result, Err(WebhookError::Malformed(_))),
            "{result:?}"
        );
    }
}

/// A body that is not UTF-8 still meets the signature check first: unsigned or tampered, it
/// is refused as unauthenticated, not as malformed.
#[test]
fn bodies_that_are_not_utf8_are_checked_for_a_signature_first() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let binary = vec![0xff, 0xfe, b'{', b'}'];
    let forged = WebhookSigning {
        api_secret: "not-the-secret-0123456789".to_owned(),
        ..emu.webhook_signing()
    };
    assert!(matches!(
        lk.verify_webhook(&binary, &sign_webhook_token(&binary, &forged)),
        Err(WebhookError::InvalidSignature(_))
    ));
    assert!(matches!(
        lk.verify_webhook(&binary, "not-a-jwt"),
        Err(WebhookError::InvalidSignature(_))
    ));
    // Signed for another body.
    assert_eq!(
        lk.verify_webhook(&binary, &emu.sign_webhook(b"{}")),
        Err(WebhookError::BodyMismatch)
    );
    // Signed for exactly these bytes: a malformed event (see `signed_garbage_…`).
    assert!(matches!(
        lk.verify_webhook(&binary, &emu.sign_webhook(&binary)),
        Err(WebhookError::Malformed(_))
    ));
}

#[test]
fn refusals_never_echo_the_token_or_secret() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let body = call_bodies(&emu).swap_remove(0);
    let wrong = WebhookSigning {
        api_secret: "topsecretvalue".to_owned(),
        ..emu.webhook_signing()
    };
    let token = sign_webhook_token(&body, &wrong);
    let err = lk.verify_webhook(&body, &token).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(&token)
            && !text.contains("topsecretvalue")
            && !text.contains(emu.api_secret()),
        "{text}"
    );
}

/// The parsers' messages name the field; the webhook adds nothing that repeats it.
#[test]
fn malformed_ids_are_described_once() {
    let emu = LiveKitEmulator::start();
    let lk = platform(&emu);
    let long_room = "r".repeat(300);
    for (body, field) in [
        (
            format!(r#"{{"event":"room_started","id":"EV_1","room":{{"name":"{long_room}"}}}}"#),
            "room name",
        ),
        (
            r#"{"event":"room_started","id":"EV 1"}"#.to_owned(),
            "webhook event id",
        ),
    ] {
        let body = body.into_bytes();
        let Err(WebhookError::Malformed(message)) =
            lk.verify_webhook(&body, &emu.sign_webhook(&body))
        else {
            panic!("not malformed");
        };
        assert!(message.starts_with(field), "{message}");
        assert_eq!(message.matches(field).count(), 1, "{message}");
        assert!(!message.contains(&long_room), "{message}");
    }
}
