//! Webhook verification: LiveKit signs each webhook with a JWT (HS256, `iss` = the API key)
//! whose `sha256` claim is the base64 SHA-256 of the exact body, and sends it as the bare
//! `Authorization` header value. livekit-api's `WebhookReceiver` checks both.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use livekit_api::access_token::{AccessTokenError, TokenVerifier};
use livekit_api::webhooks::{WebhookError as ReceiverError, WebhookReceiver};
use livekit_protocol as proto;
use sha2::{Digest as _, Sha256};
use trunkline_core::ports::{SipParticipant, WebhookError, WebhookEvent, WebhookKind};
use trunkline_core::{RoomName, WebhookEventId};

/// Participant attributes LiveKit sets on SIP participants.
pub const ATTR_CALLED: &str = "sip.trunkPhoneNumber";
pub const ATTR_CALLER: &str = "sip.phoneNumber";
pub const ATTR_CALL_ID: &str = "sip.callID";
pub const ATTR_TRUNK_ID: &str = "sip.trunkID";

/// Check `authorization` against the exact `body` and parse the event.
///
/// The header value must be the bare token, as LiveKit sends it. A `Bearer `-prefixed value
/// is refused: LiveKit never sends one, and its own receivers (Go `webhook.Receive`, Node
/// `WebhookReceiver.receive`, Rust `WebhookReceiver::receive`) all parse the header value
/// as the token, so none of them accepts it either.
pub(crate) fn verify(
    receiver: &WebhookReceiver,
    verifier: &TokenVerifier,
    body: &[u8],
    authorization: &str,
) -> Result<WebhookEvent, WebhookError> {
    let token = authorization.trim();
    if token.is_empty() {
        return Err(WebhookError::MissingToken);
    }
    if token.split_once(' ').is_some() {
        // `Bearer <jwt>` or any other scheme: not what LiveKit sends.
        return Err(WebhookError::MissingToken);
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(not_utf8(verifier, body, token));
    };
    let event = receiver.receive(text, token).map_err(|e| match e {
        ReceiverError::InvalidSignature => WebhookError::BodyMismatch,
        ReceiverError::InvalidBase64(_) => {
            WebhookError::InvalidSignature("the sha256 claim is not base64".to_owned())
        }
        ReceiverError::InvalidAuth(e) => WebhookError::InvalidSignature(auth_reason(&e)),
        ReceiverError::InvalidData(e) => {
            WebhookError::Malformed(format!("not a webhook event: {e}"))
        }
    })?;
    convert(&event)
}

/// A body that is not UTF-8 is never a LiveKit event, and the receiver only takes text; but
/// the token is still checked first, exactly as for any other body, so that a caller who
/// cannot sign is refused as such (401) and learns nothing about how its body was read.
fn not_utf8(verifier: &TokenVerifier, body: &[u8], token: &str) -> WebhookError {
    match verifier.verify(token) {
        Err(e) => WebhookError::InvalidSignature(auth_reason(&e)),
        Ok(claims)
            if claims.sha256
                == base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)) =>
        {
            WebhookError::Malformed("body is not UTF-8 JSON".to_owned())
        }
        Ok(_) => WebhookError::BodyMismatch,
    }
}

/// Why a token was refused, in words safe to log (never the token or the secret).
fn auth_reason(error: &AccessTokenError) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error {
        AccessTokenError::Encoding(e) => match e.kind() {
            ErrorKind::ExpiredSignature => "token expired".to_owned(),
            ErrorKind::ImmatureSignature => "token not yet valid".to_owned(),
            ErrorKind::InvalidSignature => {
                "signature does not verify with the configured API secret".to_owned()
            }
            ErrorKind::InvalidIssuer => "token was not issued by the configured API key".to_owned(),
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                "token is not HS256".to_owned()
            }
            ErrorKind::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => "not a JWT".to_owned(),
            other => format!("token rejected ({other:?})"),
        },
        other => format!("token rejected ({other})"),
    }
}

fn convert(event: &proto::WebhookEvent) -> Result<WebhookEvent, WebhookError> {
    let id =
        WebhookEventId::parse(&event.id).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if event.event.is_empty() {
        return Err(WebhookError::Malformed("event name is empty".to_owned()));
    }
    let room = match event
        .room
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
    {
        Some(name) => Some(
            // The parser's message names the field already ("room name must …").
            RoomName::parse(name).map_err(|e| WebhookError::Malformed(e.to_string()))?,
        ),
        None => None,
    };
    let sip = || event.participant.as_ref().and_then(sip_participant);
    let kind = match event.event.as_str() {
        "room_started" => WebhookKind::RoomStarted,
        "room_finished" => WebhookKind::RoomFinished,
        "participant_joined" => WebhookKind::ParticipantJoined { sip: sip() },
        "participant_left" => WebhookKind::ParticipantLeft { sip: sip() },
        other => WebhookKind::Other(other.to_owned()),
    };
    let created_at = (event.created_at > 0)
        .then(|| DateTime::<Utc>::from_timestamp(event.created_at, 0))
        .flatten();
    Ok(WebhookEvent {
        id,
        name: event.event.clone(),
        kind,
        room,
        created_at,
    })
}

/// The SIP half of a participant, when it is one (kind `SIP`).
fn sip_participant(p: &proto::ParticipantInfo) -> Option<SipParticipant> {
    if p.kind != proto::participant_info::Kind::Sip as i32 {
        return None;
    }
    let attr = |k: &str| {
        p.attributes
            .get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(SipParticipant {
        identity: p.identity.clone(),
        called_number: attr(ATTR_CALLED),
        caller_number: attr(ATTR_CALLER),
        sip_call_id: attr(ATTR_CALL_ID),
        trunk_id: attr(ATTR_TRUNK_ID),
    })
}
