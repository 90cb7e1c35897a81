//! Call diagnostics: `GET /telephony/calls/{callId}` and
//! `GET /telephony/calls/by-room/{roomName}`, and the call and webhook shapes the number
//! status shares.
//!
//! A customer sees its own calls; the support role sees every call, unrouted ones (calls to
//! a number nobody connected, which belong to no customer) included. Another customer's
//! call is "not found", never "forbidden": ids must not be probed for existence.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trunkline_core::model::{CallRecord, CallStatus, DispatchStatus};
use trunkline_core::ports::WebhookEventRecord;
use trunkline_core::usecases::CallViewer;
use trunkline_core::{CallId, RoomName};
use utoipa::{IntoParams, ToSchema};

use super::CustomerQuery;
use crate::auth::ReadScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `by-room` first: a room name may contain `/` (the tail pattern takes the rest of the
    // path), and `by-room` itself must never be read as a call id.
    cfg.service(
        web::resource("/telephony/calls/by-room/{roomName:.+}")
            .route(web::get().to(get_call_by_room)),
    )
    .service(web::resource("/telephony/calls/{callId}").route(web::get().to(get_call)));
}

/// `{callId}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CallPath {
    /// trunkline's id of the call (a UUID), as the webhook answer and the number status
    /// give it.
    #[serde(rename = "callId")]
    #[param(schema_with = super::schema::call_id)]
    pub call_id: String,
}

/// `{roomName}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RoomPath {
    /// The LiveKit room of the call, percent-encoded (`+` as `%2B`).
    #[serde(rename = "roomName")]
    #[param(schema_with = super::schema::room_name)]
    pub room_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatusJson {
    /// Known, not yet answered.
    Ringing,
    /// The caller is in the room.
    Active,
    Ended,
    /// Nobody connected the called number: recorded, never dispatched.
    Unrouted,
}

impl From<CallStatus> for CallStatusJson {
    fn from(s: CallStatus) -> Self {
        match s {
            CallStatus::Ringing => Self::Ringing,
            CallStatus::Active => Self::Active,
            CallStatus::Ended => Self::Ended,
            CallStatus::Unrouted => Self::Unrouted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DispatchStatusJson {
    /// Nothing to dispatch (no agent, unrouted) or not yet attempted.
    None,
    /// An instance holds the claim and is dispatching now.
    Claimed,
    /// The agent was dispatched; `dispatchId` is LiveKit's id. Final.
    Dispatched,
    /// The last attempt failed; the background retrier tries again after a backoff.
    Failed,
    /// The LiveKit dispatch rule dispatches the agent (dispatch mode `rule`).
    ByRule,
    /// Every attempt failed; logged as an error for a human.
    GaveUp,
    /// The call ended before its agent was dispatched; nothing more is attempted. Final.
    Cancelled,
}

impl From<DispatchStatus> for DispatchStatusJson {
    fn from(s: DispatchStatus) -> Self {
        match s {
            DispatchStatus::None => Self::None,
            DispatchStatus::Claimed => Self::Claimed,
            DispatchStatus::Dispatched => Self::Dispatched,
            DispatchStatus::Failed => Self::Failed,
            DispatchStatus::ByRule => Self::ByRule,
            DispatchStatus::GaveUp => Self::GaveUp,
            DispatchStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// One call as trunkline recorded it from LiveKit's webhooks.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallJson {
    pub call_id: String,
    /// The LiveKit room (one call, one room). LiveKit's individual dispatch rules name it
    /// `<prefix>_<caller>_<random>`, so it can contain the caller's number.
    #[schema(example = "call-_+14155550199_aBcD1234")]
    pub room_name: String,
    pub status: CallStatusJson,
    /// `inbound` (a call to a connected number) or `outbound` (placed with
    /// `POST /telephony/calls`: `called` is the callee, `caller` the customer's number).
    pub direction: super::outbound::DirectionJson,
    /// The customer whose connected number was called; `null` when unrouted.
    pub customer_id: Option<String>,
    pub connection_id: Option<String>,
    /// LiveKit's `sip.callID`.
    pub sip_call_id: Option<String>,
    /// The number that was called, E.164. In full for the customer it belongs to; masked
    /// (`+1*******00`) for anyone else (support).
    #[schema(example = "+14155550100")]
    pub called: Option<String>,
    /// The caller, E.164; in full or masked as `called`.
    #[schema(example = "+14155550199")]
    pub caller: Option<String>,
    /// The agent trunkline dispatches (or the rule dispatches).
    pub agent_name: Option<String>,
    pub dispatch_status: DispatchStatusJson,
    /// LiveKit's agent dispatch id (`AD_…`) once dispatched.
    pub dispatch_id: Option<String>,
    /// Dispatch attempts made (claims won), successful or not.
    pub dispatch_attempts: u32,
    /// LiveKit's time of the first of the call's events trunkline handled: the join,
    /// normally; when deliveries were reordered and the leave came first, the leave's.
    pub started_at: DateTime<Utc>,
    /// When the caller joined the room (the join's time, whatever order deliveries came
    /// in); `null` for unrouted calls and until the join is seen.
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The last change to the record.
    pub updated_at: DateTime<Utc>,
    /// Whole seconds from answer (or start) to end; `null` until the call ended.
    pub duration_seconds: Option<u64>,
}

impl CallJson {
    /// `owner_view`: the numbers in full (the caller is the customer the call belongs to).
    pub fn new(c: &CallRecord, owner_view: bool) -> Self {
        let number = |n: &Option<trunkline_core::E164>| {
            n.as_ref().map(|n| {
                if owner_view {
                    n.to_string()
                } else {
                    n.masked()
                }
            })
        };
        Self {
            call_id: c.id.to_string(),
            room_name: c.room_name.to_string(),
            status: c.status.into(),
            direction: super::outbound::DirectionJson::Inbound,
            customer_id: c.customer_id.as_ref().map(ToString::to_string),
            connection_id: c.connection_id.map(|id| id.to_string()),
            sip_call_id: c.sip_call_id.clone(),
            called: number(&c.called),
            caller: number(&c.caller),
            agent_name: c.agent_name.clone(),
            dispatch_status: c.dispatch_status.into(),
            dispatch_id: c.dispatch_id.as_ref().map(ToString::to_string),
            dispatch_attempts: c.dispatch_attempts,
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            updated_at: c.updated_at,
            duration_seconds: c.duration().map(|d| d.as_secs()),
        }
    }

    /// As `viewer` may see it: the owner in full, everyone else masked.
    pub fn for_viewer(c: &CallRecord, viewer: &CallViewer) -> Self {
        let owner =
            matches!(viewer, CallViewer::Customer(id) if c.customer_id.as_ref() == Some(id));
        Self::new(c, owner)
    }
}

/// The last LiveKit webhook trunkline acted on for a room.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSeenJson {
    /// LiveKit's event id (`EV_…`).
    pub event_id: String,
    /// `participant_joined`, `participant_left`, `room_finished`.
    #[schema(example = "participant_joined")]
    pub event: String,
    pub room_name: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl From<&WebhookEventRecord> for WebhookSeenJson {
    fn from(w: &WebhookEventRecord) -> Self {
        Self {
            event_id: w.id.to_string(),
            event: w.kind.clone(),
            room_name: w.room_name.as_ref().map(ToString::to_string),
            received_at: w.received_at,
        }
    }
}

/// Who reads: support sees every call (its `customerId` narrows nothing: unrouted calls
/// belong to no customer), a customer its own.
pub fn viewer(scope: &ReadScope) -> CallViewer {
    if scope.caller.is_support() {
        CallViewer::Support
    } else {
        CallViewer::Customer(scope.customer_id.clone())
    }
}

/// One call by trunkline's id.
#[utoipa::path(
    get,
    path = "/telephony/calls/{callId}",
    tag = "calls",
    security(("bearer" = [])),
    params(CallPath, CustomerQuery),
    responses(
        (status = 200, description = "The call", body = CallJson),
        (status = 400, description = "`VALIDATION_FAILED`: callId is not a call id", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such call, or not the caller's", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn get_call(
    scope: ReadScope,
    path: web::Path<CallPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = CallId::parse(&path.call_id).map_err(|e| ApiError::from(e.field("callId")))?;
    let viewer = viewer(&scope);
    let call = state.calls.get_call(&viewer, id).await?;
    let mut json = CallJson::for_viewer(&call, &viewer);
    json.direction = super::outbound::direction_of(&state, call.id).await?;
    Ok(HttpResponse::Ok().json(json))
}

/// The call of a LiveKit room.
#[utoipa::path(
    get,
    path = "/telephony/calls/by-room/{roomName}",
    tag = "calls",
    security(("bearer" = [])),
    params(RoomPath, CustomerQuery),
    responses(
        (status = 200, description = "The call", body = CallJson),
        (status = 400, description = "`VALIDATION_FAILED`: not a room name", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no call in that room, or not the caller's", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn get_call_by_room(
    scope: ReadScope,
    path: web::Path<RoomPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&path.room_name).map_err(|e| ApiError::from(e.field("roomName")))?;
    let viewer = viewer(&scope);
    let call = state.calls.get_call_by_room(&viewer, &room).await?;
    let mut json = CallJson::for_viewer(&call, &viewer);
    json.direction = super::outbound::direction_of(&state, call.id).await?;
    Ok(HttpResponse::Ok().json(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::{CustomerId, E164};

    fn call(customer: Option<&str>) -> CallRecord {
        let now = Utc::now();
        CallRecord {
            id: CallId::new(),
            room_name: RoomName::parse("call-_+14155550199_x").unwrap(),
            customer_id: customer.map(|c| CustomerId::parse(c).unwrap()),
            connection_id: None,
            sip_call_id: Some("SCL_1".into()),
            called: Some(E164::parse("+14155550100").unwrap()),
            caller: Some(E164::parse("+14155550199").unwrap()),
            status: CallStatus::Ended,
            dispatch_status: DispatchStatus::Dispatched,
            dispatch_id: None,
            dispatch_attempts: 1,
            agent_name: Some("a".into()),
            started_at: now - chrono::Duration::seconds(50),
            answered_at: Some(now - chrono::Duration::seconds(42)),
            ended_at: Some(now),
            updated_at: now,
        }
    }

    #[test]
    fn numbers_are_in_full_for_their_owner_only() {
        let c = call(Some("acme"));
        let acme = CallViewer::Customer(CustomerId::parse("acme").unwrap());
        let owner = serde_json::to_value(CallJson::for_viewer(&c, &acme)).unwrap();
        assert_eq!(owner["called"], "+14155550100");
        assert_eq!(owner["caller"], "+14155550199");
        assert_eq!(owner["durationSeconds"], 42);
        assert_eq!(owner["status"], "ended");
        assert_eq!(owner["dispatchStatus"], "dispatched");
        let support = serde_json::to_value(CallJson::for_viewer(&c, &CallViewer::Support)).unwrap();
        for field in ["called", "caller"] {
            let shown = support[field].as_str().unwrap();
            assert!(shown.contains('*') && shown.len() == 12, "{shown}");
        }
        // An unrouted call has no owner: masked for everyone.
        let unrouted = serde_json::to_value(CallJson::for_viewer(&call(None), &acme)).unwrap();
        assert!(unrouted["caller"].as_str().unwrap().contains('*'));
    }
}
