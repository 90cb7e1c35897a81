//! `POST /telephony/calls`: an outbound call from a number the customer connected with
//! `"outbound": true`. The use case (`trunkline_core::usecases::OutboundCalls`) checks, reserves
//! the `Idempotency-Key`, rate-limits, dispatches the agent and dials; this handler only parses
//! and answers.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use trunkline_core::usecases::{PlaceCall, PlacedStatus};
use trunkline_core::{CallId, E164};
use utoipa::ToSchema;

use crate::auth::WriteScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiJson;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/telephony/calls").route(web::post().to(place_call)));
}

/// The header that makes a retried request return the first call instead of dialling again.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// A call to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceCallBody {
    /// The caller ID: a number this customer connected with `"outbound": true`, E.164.
    #[schema(schema_with = super::schema::e164)]
    pub from: String,
    /// The number to call, E.164.
    #[schema(schema_with = super::schema::e164)]
    pub to: String,
    /// The agent to dispatch into the call's room; default the number's `routing.agentName`.
    #[schema(schema_with = super::schema::agent_name)]
    pub agent_name: Option<String>,
    /// Handed to the agent as dispatch metadata and set on the SIP participant (at most
    /// 16,384 characters).
    #[schema(max_length = 16384)]
    pub metadata: Option<String>,
    /// Attributes of the SIP participant (at most 64; keys not starting with `sip.` or `lk.`).
    #[serde(default)]
    #[schema(schema_with = super::schema::attributes)]
    pub attributes: Option<BTreeMap<String, String>>,
    /// Answer only once the callee answered (`201 … "status": "answered"`) or the call
    /// failed (its error code). Default `false`: answer as soon as LiveKit dials.
    pub wait_until_answered: Option<bool>,
    /// How long to let it ring, 1 to 120 seconds (default 30).
    #[serde(default, deserialize_with = "super::json::whole_u16")]
    #[schema(minimum = 1, maximum = 120)]
    pub ringing_timeout_secs: Option<u16>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlacedStatusJson {
    /// LiveKit is dialling; the participant's webhooks complete the call record.
    Dialing,
    /// The callee answered (with `waitUntilAnswered`).
    Answered,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectionJson {
    Inbound,
    Outbound,
}

/// The placed call. `GET /telephony/calls/{callId}` follows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacedCallJson {
    pub call_id: String,
    /// The LiveKit room of the call (`<prefix>out_<id>`).
    pub room_name: String,
    pub direction: DirectionJson,
    pub status: PlacedStatusJson,
    /// This answer is the first request's, returned for a retry with its `Idempotency-Key`.
    pub replayed: bool,
}

fn number(field: &'static str, raw: &str) -> Result<E164, ApiError> {
    E164::parse(raw).map_err(|e| ApiError::from(e.field(field)))
}

/// Place an outbound call: the agent is dispatched to a new room exactly once and LiveKit
/// dials `to` with `from` as caller ID. Nothing is dialled unless `from` may call.
#[utoipa::path(
    post,
    path = "/telephony/calls",
    tag = "calls",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Up to 255 visible ASCII characters. A retry with the same key (and the same body) returns the first call instead of dialling again, on any instance; kept as long as the call record (at least 24 h). The same key with another body is `CONFLICT`."),
    ),
    request_body = PlaceCallBody,
    responses(
        (status = 201, description = "Placed (or, for a repeated `Idempotency-Key`, the first call)", body = PlacedCallJson),
        (status = 400, description = "`VALIDATION_FAILED` (names the field)", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role reads calls, never places them", body = ErrorEnvelope),
        (status = 404, description = "`NOT_CONNECTED`: `from` is not a number this customer connected", body = ErrorEnvelope),
        (status = 409, description = "`OUTBOUND_NOT_ENABLED` (connected for inbound only) or `CONFLICT` (the `Idempotency-Key` was used with another request)", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 422, description = "The call failed: `CALL_BUSY`, `CALL_NO_ANSWER`, `CALL_REJECTED`, `CALLER_ID_NOT_ALLOWED`, `DESTINATION_NOT_PERMITTED` (the message gives the SIP status)", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`: the number's call rate (Twilio: 1 call per second); `Retry-After` says when", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, `NOT_CONFIGURED` (no LiveKit) or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn place_call(
    scope: WriteScope,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<PlaceCallBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let idempotency_key = match req.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::validation("Idempotency-Key: visible ASCII characters only")
                })?
                .to_owned(),
        ),
    };
    let call = PlaceCall {
        from: Some(number("from", &body.from)?),
        to: Some(number("to", &body.to)?),
        agent_name: body.agent_name,
        metadata: body.metadata,
        attributes: body.attributes.unwrap_or_default(),
        wait_until_answered: body.wait_until_answered.unwrap_or(false),
        ringing_timeout: body
            .ringing_timeout_secs
            .map(|s| Duration::from_secs(u64::from(s))),
        idempotency_key,
    };
    let placed = state.outbound_calls.place(&scope.customer_id, call).await?;
    Ok(HttpResponse::Created().json(PlacedCallJson {
        call_id: placed.call_id.to_string(),
        room_name: placed.room_name.to_string(),
        direction: DirectionJson::Outbound,
        status: match placed.status {
            PlacedStatus::Dialing => PlacedStatusJson::Dialing,
            PlacedStatus::Answered => PlacedStatusJson::Answered,
        },
        replayed: placed.replayed,
    }))
}

/// The direction of a recorded call: outbound when trunkline placed it.
///
/// # Errors
/// The store did not answer.
pub async fn direction_of(state: &AppState, call: CallId) -> Result<DirectionJson, ApiError> {
    Ok(
        if state
            .stores
            .outbound
            .get_outbound_call(call)
            .await?
            .is_some()
        {
            DirectionJson::Outbound
        } else {
            DirectionJson::Inbound
        },
    )
}

/// The outbound half of a connected number, as status shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
// Independent facts read from three systems, not states of one machine.
#[allow(clippy::struct_excessive_bools)]
pub struct OutboundStatusJson {
    /// Whether the number was connected with `"outbound": true`.
    pub enabled: bool,
    pub route_id: Option<String>,
    /// The carrier's termination host as the carrier reports it now
    /// (Twilio: `<unique>.pstn.twilio.com`).
    pub termination_host: Option<String>,
    /// Whether trunkline's SIP credentials are attached to the route at the carrier.
    pub credentials_attached: bool,
    pub livekit_trunk_id: Option<String>,
    /// Whether LiveKit still has the outbound trunk.
    pub livekit_trunk_exists: bool,
    /// Whether the outbound trunk's number list holds this number.
    pub number_on_livekit_trunk: bool,
    /// What differs from what connect set up; connecting again repairs it.
    pub drift: Vec<String>,
    /// Set when the carrier or LiveKit could not be read: `ERROR_CODE: message`.
    pub error: Option<String>,
}

/// The outbound half for status: never fails the status as a whole.
pub async fn outbound_status(
    state: &AppState,
    customer: &trunkline_core::CustomerId,
    provider: trunkline_core::ProviderKind,
    connection: &trunkline_core::model::NumberConnection,
) -> OutboundStatusJson {
    match state
        .onboarding
        .outbound_status(customer, provider, connection)
        .await
    {
        Ok(s) => OutboundStatusJson {
            enabled: s.enabled,
            route_id: s.route_id,
            termination_host: s.termination_host,
            credentials_attached: s.credentials_attached,
            livekit_trunk_id: s.livekit_trunk_id,
            livekit_trunk_exists: s.livekit_trunk_exists,
            number_on_livekit_trunk: s.number_on_livekit_trunk,
            drift: s.drift,
            error: None,
        },
        Err(e) => OutboundStatusJson {
            enabled: true,
            route_id: None,
            termination_host: None,
            credentials_attached: false,
            livekit_trunk_id: None,
            livekit_trunk_exists: false,
            number_on_livekit_trunk: false,
            drift: Vec::new(),
            error: Some(format!("{}: {}", e.code, e.message)),
        },
    }
}
