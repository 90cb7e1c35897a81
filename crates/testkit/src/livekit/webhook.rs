//! Webhooks as LiveKit sends them (`livekit/protocol` `webhook/url_notifier.go`): the body is
//! the protojson of a `WebhookEvent`; the `Authorization` header is the bare JWT (HS256,
//! `iss` = API key, valid five minutes) whose `sha256` claim is the standard base64 of the
//! SHA-256 of the exact body; `Content-Type: application/webhook+json`.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The content type LiveKit sends webhooks with.
pub const WEBHOOK_CONTENT_TYPE: &str = "application/webhook+json";

/// How long LiveKit's webhook tokens are valid.
pub const WEBHOOK_TOKEN_TTL: Duration = Duration::from_secs(5 * 60);

/// The standard base64 of the SHA-256 of `body`: the `sha256` claim.
pub fn body_sha256(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body))
}

/// Everything that goes into a webhook token; tests vary one field at a time to forge,
/// expire or mis-sign it.
#[derive(Clone)]
pub struct WebhookSigning {
    pub api_key: String,
    pub api_secret: String,
    pub not_before: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// `None`: the hash of the body being signed.
    pub sha256: Option<String>,
}

impl std::fmt::Debug for WebhookSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSigning")
            .field("api_key", &self.api_key)
            .field("not_before", &self.not_before)
            .field("expires_at", &self.expires_at)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

impl WebhookSigning {
    /// Valid from now for LiveKit's five minutes.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        let now = Utc::now();
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            not_before: now,
            expires_at: now
                + chrono::Duration::from_std(WEBHOOK_TOKEN_TTL).unwrap_or(chrono::Duration::zero()),
            sha256: None,
        }
    }
}

#[derive(Serialize)]
struct WebhookClaims<'a> {
    iss: &'a str,
    nbf: i64,
    exp: i64,
    sha256: String,
}

/// The `Authorization` header value LiveKit would send with `body`.
///
/// # Panics
/// Never for an HMAC key: jsonwebtoken fails to sign only with an unusable RSA/EC key.
pub fn sign_webhook_token(body: &[u8], signing: &WebhookSigning) -> String {
    let claims = WebhookClaims {
        iss: &signing.api_key,
        nbf: signing.not_before.timestamp(),
        exp: signing.expires_at.timestamp(),
        sha256: signing.sha256.clone().unwrap_or_else(|| body_sha256(body)),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(signing.api_secret.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("HS256 signing cannot fail: {e}"))
}

/// One webhook POST and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub target: String,
    /// The event's `id` (empty when the body was not an event).
    pub event_id: String,
    /// The event's name (`participant_joined`, ...).
    pub event: String,
    /// The receiver's HTTP status; `None` when the request failed.
    pub status: Option<u16>,
    /// Why the request failed, when it did.
    pub error: Option<String>,
}

impl WebhookDelivery {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// An inbound call to play: the webhooks LiveKit sends for it, and how to deliver them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallScript {
    /// The number that was called (`sip.trunkPhoneNumber`).
    pub called: String,
    /// The caller (`sip.phoneNumber`).
    pub caller: String,
    /// The room; `None` names it as LiveKit does for the rule the call matches (an
    /// individual rule: `<prefix>_<caller>_<random>`).
    pub room: Option<String>,
    /// How many times each event is delivered in total (0 counts as 1). With several
    /// targets, the copies of an event go round the targets.
    pub duplicates: u32,
    /// Deliver in a random order (events and copies mixed).
    pub shuffle: bool,
    /// Deliver everything at once instead of one after another.
    pub concurrent: bool,
    /// Sequential: the pause before each delivery. Concurrent: each delivery waits a random
    /// time up to this before it is sent.
    pub delay: Duration,
}

impl CallScript {
    /// A call to `to` from `from`: one delivery of each event, in order.
    pub fn new(to: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            called: to.into(),
            caller: from.into(),
            room: None,
            duplicates: 1,
            shuffle: false,
            concurrent: false,
            delay: Duration::ZERO,
        }
    }
}

/// What playing a call produced.
#[derive(Debug, Clone)]
pub struct PlayedCall {
    pub room: String,
    /// The LiveKit trunk the call came in on (`None` when no trunk accepts the number: the
    /// emulator still plays it, as if a catch-all trunk outside trunkline took it).
    pub trunk_id: Option<String>,
    pub sip_call_id: String,
    pub participant_identity: String,
    /// The four events, in the order LiveKit sends them, as JSON.
    pub events: Vec<serde_json::Value>,
    /// Every delivery, in the order it was made (completion order when concurrent).
    pub deliveries: Vec<WebhookDelivery>,
}

impl PlayedCall {
    pub fn event_ids(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| e.get("id").and_then(|v| v.as_str()).map(str::to_owned))
            .collect()
    }
}
