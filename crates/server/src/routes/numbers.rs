//! `GET …/numbers`, `POST …/numbers/{numberId}/connect`, `POST …/disconnect`,
//! `GET …/status`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use trunkline_core::model::{OriginationTarget, OriginationTargets, RoutingPolicy};
use trunkline_core::ports::NumberQuery;
use trunkline_core::usecases::{ConnectRequest, TargetChoice};
use trunkline_core::{E164, SipTarget, ValidationError};
use utoipa::{IntoParams, ToSchema};

use super::calls::{CallJson, viewer};
use super::json::{
    ConnectionStatusJson, ConnectionSummaryJson, LiveKitIdsJson, OriginationTargetJson,
    RoutingJson, StepJson, TrunkStrategyJson, steps,
};
use super::status::{StatusResponse, WarningJson, warnings};
use super::{CustomerQuery, NumberPath, ProviderPath, number_id, provider};
use crate::auth::ReadScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{OptionalApiJson, RequestContext};
use crate::state::AppState;

/// Calls shown in a number's status, newest first.
const RECENT_CALLS: u32 = 10;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/telephony/providers/{provider}/numbers").route(web::get().to(list_numbers)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers/{numberId}/connect")
            .route(web::post().to(connect_number)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers/{numberId}/disconnect")
            .route(web::post().to(disconnect_number)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers/{numberId}/status")
            .route(web::get().to(number_status)),
    );
}

// ---------------------------------------------------------------------------------------
// List
// ---------------------------------------------------------------------------------------

/// Paging and filtering of the numbers listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct NumbersQuery {
    /// Numbers per page, 1 to 1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub page_size: Option<String>,
    /// `nextCursor` of the previous page; it continues that listing (its page size and
    /// filter win). Opaque: only cursors this server handed out are accepted.
    #[param(schema_with = super::schema::cursor)]
    pub cursor: Option<String>,
    /// Only this number, in E.164 (`+14155550100`; encode `+` as `%2B`). A number that is
    /// not valid for its country code matches nothing.
    #[param(schema_with = super::schema::phone_number)]
    pub phone_number: Option<String>,
}

impl NumbersQuery {
    fn into_query(self) -> Result<NumberQuery, ApiError> {
        let page_size = match self.page_size.as_deref().map(str::trim) {
            None => NumberQuery::DEFAULT_PAGE_SIZE,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=NumberQuery::MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "pageSize: must be a whole number from 1 to {}",
                        NumberQuery::MAX_PAGE_SIZE
                    ))
                })?,
        };
        let cursor = match self.cursor {
            Some(c) if c.is_empty() => None,
            Some(c)
                if c.len() > super::schema::MAX_CURSOR_LEN || c.chars().any(char::is_control) =>
            {
                return Err(ApiError::validation(
                    "cursor: is not a cursor this server handed out; start again without it",
                ));
            }
            other => other,
        };
        let e164 = self
            .phone_number
            .map(|raw| {
                // An unencoded `+` arrives as a space (form encoding): `?phoneNumber=+1415…`
                // is what people type, and a leading space means nothing else here.
                let raw = match raw.strip_prefix(' ') {
                    Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
                        format!("+{rest}")
                    }
                    _ => raw,
                };
                E164::parse(&raw).map_err(|e| ApiError::from(e.field("phoneNumber")))
            })
            .transpose()?;
        Ok(NumberQuery {
            page_size,
            cursor,
            e164,
        })
    }
}

/// A number of the account and whether trunkline connected it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberItemJson {
    #[schema(example = "PN0123456789abcdef0123456789abcdef")]
    pub number_id: String,
    #[schema(example = "+14155550100")]
    pub e164: String,
    pub friendly_name: Option<String>,
    pub voice_capable: bool,
    /// The trunk the number is on at the carrier, whoever attached it.
    pub route_id: Option<String>,
    /// trunkline's connection of the number (any status, `disconnected` included), or
    /// `null` when trunkline never connected it.
    pub connection: Option<ConnectionSummaryJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumbersResponse {
    pub items: Vec<NumberItemJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of the account's incoming numbers.
#[utoipa::path(
    get,
    path = "/telephony/providers/{provider}/numbers",
    tag = "numbers",
    security(("bearer" = [])),
    params(ProviderPath, NumbersQuery, CustomerQuery),
    responses(
        (status = 200, description = "One page", body = NumbersResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad pageSize, cursor or phoneNumber", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`: no credentials saved", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`: the stored credentials no longer work", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED` by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn list_numbers(
    scope: ReadScope,
    path: web::Path<ProviderPath>,
    query: web::Query<NumbersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let query = query.into_inner().into_query()?;
    let page = state
        .onboarding
        .list_numbers(&scope.customer_id, provider, &query)
        .await?;
    let items = page
        .items
        .iter()
        .map(|item| NumberItemJson {
            number_id: item.number.id.to_string(),
            e164: item.number.e164.to_string(),
            friendly_name: item.number.friendly_name.clone(),
            voice_capable: item.number.voice_capable,
            route_id: item.number.route_id.as_ref().map(ToString::to_string),
            connection: item.connection.as_ref().map(Into::into),
        })
        .collect();
    Ok(HttpResponse::Ok().json(NumbersResponse {
        items,
        next_cursor: page.next_cursor,
    }))
}

// ---------------------------------------------------------------------------------------
// Connect
// ---------------------------------------------------------------------------------------

/// One place Twilio sends the number's calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginationTargetBody {
    /// A `sip:` URI (not `sips:`), host and optional port and `transport`.
    #[schema(schema_with = super::schema::sip_uri)]
    pub sip_url: String,
    /// Lower is tried first (default 10).
    #[serde(default, deserialize_with = "super::json::whole_u16")]
    #[schema(minimum = 0, maximum = 65535)]
    pub priority: Option<u16>,
    /// Load share within one priority, 1 to 65535 (default 10).
    #[serde(default, deserialize_with = "super::json::whole_u16")]
    #[schema(minimum = 1, maximum = 65535)]
    pub weight: Option<u16>,
}

/// What connect should make true. Every field is optional. A field left out keeps what is
/// stored for the number, so running connect again resumes without changing anything; on a
/// first connect it means the default (the server's SIP target, the shared trunk, no agent).
/// A field that is given and differs from what is stored is a change, listed in `changes`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectBody {
    /// One SIP target instead of the server's; only where the server allows overriding.
    /// Not together with `originationTargets`.
    #[schema(schema_with = super::schema::sip_uri_or_null)]
    pub sip_target: Option<String>,
    /// Several targets with priority and weight (high availability); only where the
    /// server allows overriding. At most 10. An empty list goes back to the server's
    /// target. Not together with `sipTarget`.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub origination_targets: Option<Vec<OriginationTargetBody>>,
    /// Replaces the stored routing as a whole: `{}` clears the agent, metadata and
    /// attributes; left out (or `null`), the stored routing is kept.
    #[schema(schema_with = super::json::routing_request)]
    pub routing: Option<RoutingJson>,
    /// `shared` (one trunk per customer, the default of a first connect) or `dedicated`
    /// (one per number). Left out, the stored strategy is kept.
    pub trunk_strategy: Option<TrunkStrategyJson>,
    /// Move the number even when it sits on a trunk trunkline did not create. It never
    /// takes a number another trunkline customer has connected.
    pub force: Option<bool>,
    /// `true`: also set up outbound calls from this number (carrier termination and the
    /// LiveKit outbound trunk of its route); `false`: remove them. Left out, what is stored
    /// is kept (a first connect: inbound only).
    pub outbound: Option<bool>,
    /// `trunk` (the carrier's SIP route), `voiceUrl` (the number's voice URL, answered by
    /// trunkline's voice webhook, for accounts without SIP trunking) or `auto` (`voiceUrl`
    /// when the carrier reports trunking forbidden or not enabled). Left out, the stored
    /// mode is kept (`trunk` on a first connect). A connected number changes mode only
    /// after a disconnect.
    pub mode: Option<super::voice::ConnectModeJson>,
}

impl ConnectBody {
    pub(crate) fn into_request(self) -> Result<ConnectRequest, ApiError> {
        let sip_target = self
            .sip_target
            .map(|raw| SipTarget::parse(&raw).map_err(|e| ApiError::from(e.field("sipTarget"))))
            .transpose()?;
        let origination_targets = self
            .origination_targets
            .map(parse_origination_targets)
            .transpose()?;
        let routing = self.routing.map(RoutingPolicy::try_from).transpose()?;
        Ok(ConnectRequest {
            targets: TargetChoice::from_fields(sip_target, origination_targets)?,
            routing,
            trunk_strategy: self.trunk_strategy.map(Into::into),
            force: self.force.unwrap_or(false),
            outbound: self.outbound,
            mode: self.mode.map(Into::into),
        })
    }
}

fn parse_origination_targets(
    bodies: Vec<OriginationTargetBody>,
) -> Result<OriginationTargets, ApiError> {
    // The entry's index goes into the message: a field name alone does not say which entry.
    let at = |i: usize, e: ValidationError| {
        let field = e.field.map(|f| format!(".{f}")).unwrap_or_default();
        ApiError::new(
            e.code,
            format!("originationTargets[{i}]{field}: {}", e.reason),
        )
    };
    OriginationTargets::parse(bodies, |i, t| {
        let sip_url = SipTarget::parse(&t.sip_url).map_err(|e| at(i, e.field("sipUrl")))?;
        OriginationTarget::new(
            sip_url,
            t.priority.unwrap_or(OriginationTarget::DEFAULT_PRIORITY),
            t.weight.unwrap_or(OriginationTarget::DEFAULT_WEIGHT),
        )
        .map_err(|e| at(i, e))
    })
}

/// The connection as connect left it, and what each step did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    pub connection_id: String,
    pub status: ConnectionStatusJson,
    pub number_id: String,
    pub e164: String,
    pub route_id: Option<String>,
    pub trunk_strategy: TrunkStrategyJson,
    /// The primary SIP target (lowest priority).
    pub sip_target: String,
    pub origination_targets: Vec<OriginationTargetJson>,
    pub routing: RoutingJson,
    /// What this connect changed against the stored connection: `routing`,
    /// `trunkStrategy`, `originationTargets` (values are in the fields above; the previous
    /// ones are in the audit trail). Empty for a first connect and for a resume.
    pub changes: Vec<String>,
    /// Which steps created, reused, updated, moved or deleted what.
    pub steps: Vec<StepJson>,
    pub livekit: LiveKitIdsJson,
    /// What keeps the number from working although connect succeeded (e.g.
    /// `livekit_not_configured`: calls cannot reach an agent).
    pub warnings: Vec<WarningJson>,
    /// The mode the number is connected in: `trunk` or `voiceUrl`.
    pub mode: super::voice::ConnectModeJson,
}

/// Connect an existing number: trunk, origination URL(s), attachment. Idempotent: calling
/// it again changes nothing that is already right; after a failure it resumes.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers/{numberId}/connect",
    tag = "numbers",
    security(("bearer" = [])),
    params(NumberPath),
    request_body(content = Option<ConnectBody>, description = "Optional; what is left out keeps what is stored (defaults on a first connect)"),
    responses(
        (status = 200, description = "Connected", body = ConnectResponse),
        (status = 400, description = "`VALIDATION_FAILED` (names the field) or `INVALID_SIP_TARGET`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`NUMBER_NOT_FOUND` or `INTEGRATION_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`NUMBER_IN_USE` (on a trunk trunkline did not create, retry with `force`; or connected by another trunkline customer), `TRUNKING_NOT_ENABLED`, or `CONFLICT` (another connect of this number is running: `Retry-After` says when to retry)", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `TRUNKLINE_MAX_BODY_BYTES`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS` (e.g. the key may not use trunking)", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`; retrying resumes where it stopped", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, `NOT_CONFIGURED` (no SIP target) or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn connect_number(
    ctx: RequestContext,
    path: web::Path<NumberPath>,
    state: web::Data<AppState>,
    body: OptionalApiJson<ConnectBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let number = number_id(&state, provider, &path.number_id)?;
    let req = body.into_inner().into_request()?;
    let out = state
        .onboarding
        .connect(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &number,
            req,
            ctx.request_id(),
        )
        .await?;
    let c = &out.connection;
    tracing::info!(
        connection = %c.id,
        number = %c.number_id,
        e164 = %c.e164.masked(),
        trunk = %c.route_id.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string),
        "number connected"
    );
    Ok(HttpResponse::Ok().json(ConnectResponse {
        connection_id: c.id.to_string(),
        status: c.status.into(),
        number_id: c.number_id.to_string(),
        e164: c.e164.to_string(),
        route_id: c.route_id.as_ref().map(ToString::to_string),
        trunk_strategy: c.trunk_strategy.into(),
        sip_target: c.sip_target.to_string(),
        origination_targets: c.route_targets.iter().map(Into::into).collect(),
        routing: (&c.routing).into(),
        changes: out.changes.iter().map(|&c| c.to_owned()).collect(),
        steps: steps(&out.steps),
        livekit: c.into(),
        warnings: warnings(&state.onboarding.warnings()),
        mode: out.mode.into(),
    }))
}

// ---------------------------------------------------------------------------------------
// Disconnect
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisconnectBody {
    /// Put back the voice configuration the number had before trunkline attached it
    /// (default `false`).
    pub restore_voice_config: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectResponse {
    pub connection_id: String,
    /// `disconnected`; the row is kept until the number is connected again, which reuses
    /// and rewrites it (the audit trail is the history).
    pub status: ConnectionStatusJson,
    pub number_id: String,
    pub e164: String,
    /// The trunk trunkline used, unless it was a dedicated trunk that was removed.
    pub route_id: Option<String>,
    /// The number was already disconnected; nothing was changed.
    pub already_disconnected: bool,
    pub steps: Vec<StepJson>,
}

/// Disconnect a number: detach it, restore its voice configuration when asked, remove a
/// dedicated trunk left empty. Idempotent; the connection row is kept (status
/// `disconnected`) until a reconnect reuses and rewrites it.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers/{numberId}/disconnect",
    tag = "numbers",
    security(("bearer" = [])),
    params(NumberPath),
    request_body(content = Option<DisconnectBody>, description = "Optional"),
    responses(
        (status = 200, description = "Disconnected (now or before)", body = DisconnectResponse),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`NOT_CONNECTED` (trunkline never connected it) or `INTEGRATION_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`CONFLICT`: a connect or disconnect of this number is running; `Retry-After` says when to retry", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `TRUNKLINE_MAX_BODY_BYTES`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn disconnect_number(
    ctx: RequestContext,
    path: web::Path<NumberPath>,
    state: web::Data<AppState>,
    body: OptionalApiJson<DisconnectBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let number = number_id(&state, provider, &path.number_id)?;
    let restore = body.into_inner().restore_voice_config.unwrap_or(false);
    let out = state
        .onboarding
        .disconnect(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &number,
            restore,
            ctx.request_id(),
        )
        .await?;
    let c = &out.connection;
    tracing::info!(
        connection = %c.id,
        number = %c.number_id,
        e164 = %c.e164.masked(),
        already = out.already_disconnected,
        "number disconnected"
    );
    Ok(HttpResponse::Ok().json(DisconnectResponse {
        connection_id: c.id.to_string(),
        status: c.status.into(),
        number_id: c.number_id.to_string(),
        e164: c.e164.to_string(),
        route_id: c.route_id.as_ref().map(ToString::to_string),
        already_disconnected: out.already_disconnected,
        steps: steps(&out.steps),
    }))
}

/// Diagnostics for one number: credentials, the number and its trunk as the carrier sees
/// them, the trunk's origination URLs, the LiveKit trunk and dispatch rule as LiveKit holds
/// them, trunkline's mapping and routing policy, the drifts between them, and the number's
/// recent calls and last webhook. Reads only; the support role may read any customer's.
#[utoipa::path(
    get,
    path = "/telephony/providers/{provider}/numbers/{numberId}/status",
    tag = "numbers",
    security(("bearer" = [])),
    params(NumberPath, CustomerQuery),
    responses(
        (status = 200, description = "The status; a part that could not be read says why", body = StatusResponse),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 404, description = "`NUMBER_NOT_FOUND` (neither in the account nor connected) or `INTEGRATION_NOT_FOUND` (no credentials and never connected; a connected number still answers 200, its carrier sections saying why they cannot be read)", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn number_status(
    scope: ReadScope,
    path: web::Path<NumberPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let number = number_id(&state, provider, &path.number_id)?;
    let status = state
        .onboarding
        .status(&scope.customer_id, provider, &number)
        .await?;
    if !status.drifts.is_empty() {
        tracing::info!(
            number = %number,
            drifts = ?status.drifts.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
            "status found drift"
        );
    }
    let mut body = StatusResponse::new(&number, &status);
    if let Some(connection) = &status.connection {
        let viewer = viewer(&scope);
        let activity = state
            .calls
            .activity(&viewer, connection.id, RECENT_CALLS)
            .await?;
        body.last_webhook = activity.last_webhook.as_ref().map(Into::into);
        body.recent_calls = activity
            .recent_calls
            .iter()
            .map(|c| CallJson::for_viewer(c, &viewer))
            .collect();
        body.reconciler = state
            .fleet
            .last_check(connection.id)
            .await?
            .as_ref()
            .map(Into::into);
        for (json, call) in body.recent_calls.iter_mut().zip(&activity.recent_calls) {
            json.direction = super::outbound::direction_of(&state, call.id).await?;
        }
        body.outbound = Some(
            super::outbound::outbound_status(&state, &scope.customer_id, provider, connection)
                .await,
        );
    }
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline_core::ErrorCode;

    fn connect(json: serde_json::Value) -> Result<ConnectRequest, ApiError> {
        serde_json::from_value::<ConnectBody>(json)
            .unwrap()
            .into_request()
    }

    /// JSON Schema counts `394.0` as an integer: the body takes it as one (schemathesis
    /// found it refused), and still refuses a fraction or a value out of range.
    #[test]
    fn integral_numbers_written_as_floats_are_whole_numbers() {
        let t: OriginationTargetBody = serde_json::from_value(
            serde_json::json!({"sipUrl": "sip:a.example", "priority": 394.0, "weight": 7}),
        )
        .unwrap();
        assert_eq!((t.priority, t.weight), (Some(394), Some(7)));
        for bad in [
            serde_json::json!(394.5),
            serde_json::json!(70000),
            serde_json::json!(-1),
        ] {
            let r: Result<OriginationTargetBody, _> = serde_json::from_value(
                serde_json::json!({"sipUrl": "sip:a.example", "priority": bad}),
            );
            assert!(r.is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_body_names_fields_and_codes() {
        let e = connect(serde_json::json!({"sipTarget": "sips:x.example"})).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidSipTarget);
        assert!(e.message().starts_with("sipTarget: "), "{}", e.message());
        let e = connect(serde_json::json!({"originationTargets": [
            {"sipUrl": "sip:a.example"}, {"sipUrl": "bogus"}]}))
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidSipTarget);
        assert!(
            e.message().starts_with("originationTargets[1].sipUrl: "),
            "{}",
            e.message()
        );
        let e = connect(serde_json::json!({"originationTargets": [
            {"sipUrl": "sip:a.example", "weight": 0}]}))
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert!(
            e.message().starts_with("originationTargets[0].weight"),
            "{}",
            e.message()
        );
        let e = connect(serde_json::json!({"routing": {"agentName": ""}})).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert!(
            e.message().starts_with("routing.agentName"),
            "{}",
            e.message()
        );
        let e = connect(serde_json::json!({"routing": {"dispatchMode": "rule"}})).unwrap_err();
        assert!(
            e.message().starts_with("routing.agentName"),
            "{}",
            e.message()
        );

        let ok = connect(serde_json::json!({
            "originationTargets": [{"sipUrl": "sip:b.example", "priority": 20, "weight": 5}],
            "routing": {"agentName": "a", "attributes": {"k": "v"}, "dispatchMode": "rule"},
            "trunkStrategy": "dedicated",
            "force": true,
        }))
        .unwrap();
        let TargetChoice::Several(targets) = ok.targets else {
            panic!("{:?}", ok.targets)
        };
        assert_eq!(targets[0].priority(), 20);
        assert_eq!(
            ok.trunk_strategy,
            Some(trunkline_core::model::TrunkStrategy::Dedicated)
        );
        assert!(ok.force);
        assert_eq!(ok.routing.unwrap().attributes()["k"], "v");
        // Left out is "keep what is stored"; given empty is "clear".
        let empty = connect(serde_json::json!({})).unwrap();
        assert_eq!(empty, ConnectRequest::default());
        let cleared = connect(serde_json::json!({"routing": {}})).unwrap();
        assert_eq!(cleared.routing, Some(RoutingPolicy::default()));
        let e = connect(serde_json::json!({"routing": {"attributes": {"sip.callID": "x"}}}))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert!(
            e.message().starts_with("routing.attributes"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn numbers_query_is_checked() {
        let q = |page: Option<&str>, cursor: Option<&str>, phone: Option<&str>| NumbersQuery {
            page_size: page.map(ToOwned::to_owned),
            cursor: cursor.map(ToOwned::to_owned),
            phone_number: phone.map(ToOwned::to_owned),
        };
        for bad in ["0", "1001", "ten", "-1", ""] {
            let e = q(Some(bad), None, None).into_query().unwrap_err();
            assert!(
                e.message().starts_with("pageSize"),
                "{bad}: {}",
                e.message()
            );
        }
        let e = q(None, None, Some("4155550100")).into_query().unwrap_err();
        assert!(e.message().starts_with("phoneNumber"), "{}", e.message());
        let e = q(None, Some(&"x".repeat(3000)), None)
            .into_query()
            .unwrap_err();
        assert!(e.message().starts_with("cursor"), "{}", e.message());
        // An unencoded `+` decoded as a space is read as the `+` it was.
        let ok = q(Some("7"), Some(""), Some(" 14155550100"))
            .into_query()
            .unwrap();
        assert_eq!(ok.page_size, 7);
        assert_eq!(ok.cursor, None);
        assert_eq!(ok.e164.unwrap().as_str(), "+14155550100");
    }
}
