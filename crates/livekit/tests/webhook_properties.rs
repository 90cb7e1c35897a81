//! Properties of the webhook body parser: LiveKit signs the exact bytes, so once the
//! signature holds the body is the only outside input. Any signed bytes are refused as
//! malformed or parsed, never a panic; a well-formed event keeps its id, name, room, time
//! and SIP attributes; and a body that is not signed for exactly itself is refused before
//! it is read.

use std::collections::HashMap;

use proptest::prelude::*;
use secrecy::SecretString;
use trunkline_core::ports::{SipPlatform, WebhookError, WebhookKind};
use trunkline_livekit::{
    ATTR_CALL_ID, ATTR_CALLED, ATTR_CALLER, ATTR_TRUNK_ID, LiveKitConfig, LiveKitPlatform,
};
use trunkline_testkit::livekit::{WebhookSigning, proto, sign_webhook_token};

const KEY: &str = "APIprops";
const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes";

/// Never contacted: verifying a webhook is local.
fn platform() -> LiveKitPlatform {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LiveKitPlatform::new(LiveKitConfig::new(
        "http://127.0.0.1:9",
        KEY,
        SecretString::from(SECRET.to_owned()),
    ))
    .unwrap()
}

fn sign(body: &[u8]) -> String {
    sign_webhook_token(body, &WebhookSigning::new(KEY, SECRET))
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Bodies: arbitrary bytes, arbitrary text, and JSON objects with the event's field names
/// holding values of any shape (so parsing gets past the JSON layer).
fn body_like() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        "\\{\"name\":\"[ -~]{0,8}\"\\}",
        "\\[\\]",
    ];
    let field = prop_oneof![
        Just("id"),
        Just("event"),
        Just("room"),
        Just("participant"),
        Just("createdAt"),
        Just("numDummies"),
    ];
    prop_oneof![
        any::<Vec<u8>>(),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec((field, value), 0..6).prop_map(|fields| {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", inner.join(",")).into_bytes()
        }),
    ]
}

/// A participant: SIP or not, with some of the SIP attributes LiveKit sets.
fn participant() -> impl Strategy<Value = proto::ParticipantInfo> {
    (
        any::<bool>(),
        "[A-Za-z0-9_]{1,20}",
        proptest::option::of("\\+[1-9][0-9]{6,14}"),
        proptest::option::of("\\+[1-9][0-9]{6,14}"),
        proptest::option::of("SCL_[A-Za-z0-9]{4,12}"),
        proptest::option::of("ST_[A-Za-z0-9]{4,12}"),
    )
        .prop_map(|(sip, identity, called, caller, call_id, trunk)| {
            let attributes: HashMap<String, String> = [
                (ATTR_CALLED, called),
                (ATTR_CALLER, caller),
                (ATTR_CALL_ID, call_id),
                (ATTR_TRUNK_ID, trunk),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            let kind = if sip {
                proto::participant_info::Kind::Sip
            } else {
                proto::participant_info::Kind::Standard
            };
            proto::ParticipantInfo {
                identity,
                kind: kind as i32,
                attributes,
                ..proto::ParticipantInfo::default()
            }
        })
}

/// A well-formed event as LiveKit serialises it: an `EV_` id, a known or unknown name, an
/// optional room and participant, a creation time in seconds.
fn event() -> impl Strategy<Value = proto::WebhookEvent> {
    (
        "EV_[A-Za-z0-9]{1,24}",
        prop_oneof![
            Just("room_started".to_owned()),
            Just("room_finished".to_owned()),
            Just("participant_joined".to_owned()),
            Just("participant_left".to_owned()),
            "[a-z_]{1,20}",
        ],
        proptest::option::of("[!-~]{1,64}"),
        proptest::option::of(participant()),
        0i64..4_102_444_800,
    )
        .prop_map(
            |(id, name, room, participant, created_at)| proto::WebhookEvent {
                id,
                event: name,
                room: room.map(|name| proto::Room {
                    name,
                    ..proto::Room::default()
                }),
                participant,
                created_at,
                ..proto::WebhookEvent::default()
            },
        )
}

proptest! {
    #![proptest_config(config())]

    /// Signed for exactly itself, any body is parsed or refused as malformed: the signature
    /// held, so no other refusal is right, and nothing panics.
    #[test]
    fn signed_bodies_are_parsed_or_refused_as_malformed(body in body_like()) {
        let lk = platform();
        match lk.verify_webhook(&body, &sign(&body)) {
            Ok(event) => {
                // Accepted only with a usable id and a name, which JSON must have carried.
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| TestCaseError::fail(format!("accepted non-JSON: {e}")))?;
                prop_assert_eq!(json["id"].as_str().map(str::trim), Some(event.id.as_str()));
                prop_assert_eq!(json["event"].as_str(), Some(event.name.as_str()));
                prop_assert!(!event.name.is_empty());
            }
            Err(e) => prop_assert!(matches!(e, WebhookError::Malformed(_)), "{:?}", e),
        }
    }

    /// A well-formed event keeps its fields through the parser.
    #[test]
    fn well_formed_events_round_trip(event in event()) {
        let lk = platform();
        let body = serde_json::to_vec(&event).unwrap();
        let parsed = lk.verify_webhook(&body, &sign(&body)).unwrap();
        prop_assert_eq!(parsed.id.as_str(), event.id.as_str());
        prop_assert_eq!(&parsed.name, &event.event);
        prop_assert_eq!(
            parsed.room.as_ref().map(trunkline_core::RoomName::as_str),
            event.room.as_ref().map(|r| r.name.as_str())
        );
        prop_assert_eq!(
            parsed.created_at.map(|t| t.timestamp()),
            (event.created_at > 0).then_some(event.created_at)
        );
        let sip_expected = event
            .participant
            .as_ref()
            .filter(|p| p.kind == proto::participant_info::Kind::Sip as i32);
        match (&parsed.kind, event.event.as_str()) {
            (WebhookKind::RoomStarted, "room_started")
            | (WebhookKind::RoomFinished, "room_finished") => {}
            (WebhookKind::ParticipantJoined { sip }, "participant_joined")
            | (WebhookKind::ParticipantLeft { sip }, "participant_left") => {
                prop_assert_eq!(sip.is_some(), sip_expected.is_some());
                if let (Some(sip), Some(p)) = (sip, sip_expected) {
                    let attr = |k: &str| p.attributes.get(k).cloned();
                    prop_assert_eq!(&sip.identity, &p.identity);
                    prop_assert_eq!(&sip.called_number, &attr(ATTR_CALLED));
                    prop_assert_eq!(&sip.caller_number, &attr(ATTR_CALLER));
                    prop_assert_eq!(&sip.sip_call_id, &attr(ATTR_CALL_ID));
                    prop_assert_eq!(&sip.trunk_id, &attr(ATTR_TRUNK_ID));
                }
            }
            (WebhookKind::Other(name), other) => prop_assert_eq!(name.as_str(), other),
            (kind, name) => prop_assert!(false, "{} parsed as {:?}", name, kind),
        }
    }

    /// What must be refused is refused before the body is read: a token for other bytes, one
    /// signed with another secret or by another key, a `Bearer ` prefix, no token, garbage.
    #[test]
    fn bodies_not_signed_for_exactly_themselves_are_refused(
        event in event(),
        other in body_like(),
        junk in any::<String>(),
    ) {
        let lk = platform();
        let body = serde_json::to_vec(&event).unwrap();
        let token = sign(&body);
        let mut forged = vec![
            sign_webhook_token(&body, &WebhookSigning::new(KEY, "another-secret-of-thirty-two-bytes")),
            sign_webhook_token(&body, &WebhookSigning::new("APIother", SECRET)),
            format!("Bearer {token}"),
            String::new(),
            junk,
        ];
        if other != body {
            forged.push(sign(&other));
        }
        for authorization in forged {
            let refused = lk.verify_webhook(&body, &authorization);
            prop_assert!(
                matches!(
                    refused,
                    Err(WebhookError::MissingToken
                        | WebhookError::InvalidSignature(_)
                        | WebhookError::BodyMismatch)
                ),
                "{:?} for {:?}",
                refused,
                authorization
            );
        }
    }
}
