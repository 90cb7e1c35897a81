//! `POST /telephony/livekit-webhook`: LiveKit's signed webhooks in, call records and
//! exactly one agent dispatch out (`trunkline_core::usecases::Calls::handle_webhook`).
//!
//! No user token: LiveKit authenticates each delivery with the JWT in `Authorization`,
//! signed with the API secret over the SHA-256 of the exact body. So the body is read raw
//! (`web::Bytes`: the configured body limit applies) and handed over byte for byte; it is
//! never parsed, logged or echoed before the signature verified.
//!
//! Answers: 200 for every verified event, whether it was acted on, a duplicate delivery or
//! one that needs no action (LiveKit must not retry those); 401 `UNAUTHENTICATED` for a
//! token that does not verify (nothing stored; the reason is logged without the token);
//! 400 `VALIDATION_FAILED` for a signed body that is not an event; 503 `NOT_CONFIGURED`
//! without LiveKit; 503 `SERVICE_UNAVAILABLE` when the database fails, so LiveKit delivers
//! again and the work resumes.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use trunkline_core::usecases::{DispatchOutcome, WebhookOutcome};
use utoipa::ToSchema;

use crate::dispatch_timing;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;
use crate::telemetry::LIVEKIT_WEBHOOKS_TOTAL;

pub const PATH: &str = "/telephony/livekit-webhook";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(PATH).route(web::post().to(livekit_webhook)));
}

/// What trunkline did with a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookResultJson {
    /// Acted on: the call was recorded or moved along.
    Accepted,
    /// This event id was handled before; nothing was done again.
    Duplicate,
    /// Nothing for trunkline to do (not a SIP call's event); nothing was stored.
    Ignored,
}

/// What became of the call's agent dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchOutcomeJson {
    /// Dispatched by this delivery.
    Dispatched,
    /// Dispatched before (by any instance).
    AlreadyDispatched,
    /// Another instance holds the dispatch claim.
    InProgressElsewhere,
    /// The LiveKit dispatch rule dispatches the agent.
    ByRule,
    /// The number's routing names no agent.
    NoAgent,
    /// Nobody connected the called number.
    Unrouted,
    /// Recorded; the background retrier dispatches it.
    Pending,
    /// This attempt failed; the background retrier tries again after a backoff.
    Failed,
    /// Every attempt failed; a human has to look (logged as an error).
    GaveUp,
    /// The call ended before its agent was dispatched; nothing is dispatched.
    Cancelled,
}

impl DispatchOutcomeJson {
    /// The JSON value, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatched => "dispatched",
            Self::AlreadyDispatched => "already_dispatched",
            Self::InProgressElsewhere => "in_progress_elsewhere",
            Self::ByRule => "by_rule",
            Self::NoAgent => "no_agent",
            Self::Unrouted => "unrouted",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::GaveUp => "gave_up",
            Self::Cancelled => "cancelled",
        }
    }
}

impl From<&DispatchOutcome> for DispatchOutcomeJson {
    fn from(d: &DispatchOutcome) -> Self {
        match d {
            DispatchOutcome::Dispatched { .. } => Self::Dispatched,
            DispatchOutcome::AlreadyDispatched { .. } => Self::AlreadyDispatched,
            DispatchOutcome::InProgressElsewhere => Self::InProgressElsewhere,
            DispatchOutcome::ByRule => Self::ByRule,
            DispatchOutcome::NoAgent => Self::NoAgent,
            DispatchOutcome::Unrouted => Self::Unrouted,
            DispatchOutcome::Pending => Self::Pending,
            DispatchOutcome::Failed { gave_up: true, .. } => Self::GaveUp,
            DispatchOutcome::Failed { .. } => Self::Failed,
            DispatchOutcome::Cancelled => Self::Cancelled,
        }
    }
}

/// The acknowledgement. LiveKit only looks at the status; the body is for people reading
/// delivery logs. It never carries phone numbers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAck {
    pub result: WebhookResultJson,
    /// LiveKit's event name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "participant_joined")]
    pub event: Option<String>,
    /// LiveKit's event id, for duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// trunkline's call record (see `GET /telephony/calls/{callId}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Set when the event was the SIP participant joining.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<DispatchOutcomeJson>,
}

impl From<&WebhookOutcome> for WebhookAck {
    fn from(o: &WebhookOutcome) -> Self {
        let ack = |result| Self {
            result,
            event: None,
            event_id: None,
            call_id: None,
            dispatch: None,
        };
        match o {
            WebhookOutcome::Ignored { event } => Self {
                event: Some(event.clone()),
                ..ack(WebhookResultJson::Ignored)
            },
            WebhookOutcome::Duplicate { event_id } => Self {
                event_id: Some(event_id.to_string()),
                ..ack(WebhookResultJson::Duplicate)
            },
            WebhookOutcome::CallRecorded { call, dispatch } => Self {
                event: Some("participant_joined".to_owned()),
                call_id: Some(call.id.to_string()),
                dispatch: Some(dispatch.into()),
                ..ack(WebhookResultJson::Accepted)
            },
            WebhookOutcome::CallEnded { call } => Self {
                call_id: call.as_ref().map(|c| c.id.to_string()),
                ..ack(WebhookResultJson::Accepted)
            },
        }
    }
}

/// Receive one LiveKit webhook (configure LiveKit's webhook URL to point here). Verified
/// against the exact raw body with the configured API key and secret; deduplicated on the
/// event id across instances; the SIP participant joining records the call and dispatches
/// the number's agent exactly once.
#[utoipa::path(
    post,
    path = "/telephony/livekit-webhook",
    tag = "livekit",
    request_body(
        content = String,
        content_type = "application/webhook+json",
        description = "LiveKit's `WebhookEvent`, exactly as LiveKit sent it"
    ),
    params(
        ("Authorization" = String, Header,
            description = "LiveKit's webhook token: the bare JWT (no `Bearer `), HS256 with the API secret, `iss` the API key, `sha256` the base64 SHA-256 of the body")
    ),
    responses(
        (status = 200, description = "Verified: accepted, duplicate or needing no action", body = WebhookAck),
        (status = 400, description = "`VALIDATION_FAILED`: the signed body is not a LiveKit event", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`: missing, forged, expired, wrong-key or `Bearer`-prefixed token, or a body that does not match it; nothing stored", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` (no LiveKit on this server) or `SERVICE_UNAVAILABLE` (database; LiveKit delivers again)", body = ErrorEnvelope),
    )
)]
pub async fn livekit_webhook(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let received = std::time::Instant::now();
    // A header that is not visible ASCII cannot be a JWT: treated as absent (refused).
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (handled, timing) =
        dispatch_timing::timed(state.calls.handle_webhook(&body, authorization)).await;
    let outcome = match handled {
        Ok(outcome) => {
            dispatch_timing::record(received, timing, &outcome);
            outcome
        }
        Err(e) => {
            let result = match e.code {
                trunkline_core::ErrorCode::Unauthenticated => "refused",
                trunkline_core::ErrorCode::ValidationFailed => "malformed",
                trunkline_core::ErrorCode::NotConfigured => "not_configured",
                _ => "error",
            };
            metrics::counter!(LIVEKIT_WEBHOOKS_TOTAL, "result" => result).increment(1);
            return Err(e.into());
        }
    };
    let ack = WebhookAck::from(&outcome);
    let result = match ack.result {
        WebhookResultJson::Accepted => "accepted",
        WebhookResultJson::Duplicate => "duplicate",
        WebhookResultJson::Ignored => "ignored",
    };
    metrics::counter!(LIVEKIT_WEBHOOKS_TOTAL, "result" => result).increment(1);
    // Ids and outcomes only: the room name carries the caller's number.
    if ack.result == WebhookResultJson::Accepted {
        tracing::info!(
            // A join records the call; the leave and `room_finished` end it.
            what = if ack.dispatch.is_some() {
                "call_recorded"
            } else {
                "call_ended"
            },
            call = ack.call_id.as_deref().unwrap_or("none"),
            dispatch = ack.dispatch.map_or("none", DispatchOutcomeJson::as_str),
            "livekit webhook accepted"
        );
    } else {
        tracing::debug!(result, event = ?ack.event, "livekit webhook acknowledged");
    }
    Ok(HttpResponse::Ok().json(ack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_outcomes_log_as_they_serialize() {
        for d in [
            DispatchOutcomeJson::Dispatched,
            DispatchOutcomeJson::AlreadyDispatched,
            DispatchOutcomeJson::InProgressElsewhere,
            DispatchOutcomeJson::ByRule,
            DispatchOutcomeJson::NoAgent,
            DispatchOutcomeJson::Unrouted,
            DispatchOutcomeJson::Pending,
            DispatchOutcomeJson::Failed,
            DispatchOutcomeJson::GaveUp,
            DispatchOutcomeJson::Cancelled,
        ] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
