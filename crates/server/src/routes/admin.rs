//! Support's read-only fleet views: `GET /telephony/admin/customers`, `…/routes` and
//! `…/livekit`. The support role only: a customer token is answered 403 `FORBIDDEN`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trunkline_core::model::ConnectionCheck;
use trunkline_core::usecases::{
    CustomerRoutes, CustomerView, IntegrationView, LiveKitObject, RouteView,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/telephony/admin/customers").route(web::get().to(admin_customers)))
        .service(web::resource("/telephony/admin/routes").route(web::get().to(admin_routes)))
        .service(web::resource("/telephony/admin/livekit").route(web::get().to(admin_livekit)));
}

/// Default and largest page of the admin views.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// Paging of an admin view.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AdminQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub page_size: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(schema_with = super::schema::cursor)]
    pub cursor: Option<String>,
}

/// Paging of the LiveKit view, and whether to list only orphans.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LiveKitQuery {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub page_size: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(schema_with = super::schema::cursor)]
    pub cursor: Option<String>,
    /// `true`: only the objects no connection owns.
    #[param(value_type = Option<bool>)]
    pub orphans: Option<String>,
}

fn page_size(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw.map(str::trim) {
        None => Ok(DEFAULT_PAGE),
        Some(r) => r
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "pageSize: must be a whole number from 1 to {MAX_PAGE}"
                ))
            }),
    }
}

fn cursor(raw: Option<&str>) -> Option<&str> {
    raw.filter(|c| !c.is_empty())
}

fn require_support(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_support() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the admin views are for the support role only",
        ))
    }
}

/// What the drift reconciler last found for a connection.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerCheckJson {
    pub checked_at: DateTime<Utc>,
    /// Drift kinds and messages, as status names them; empty when both sides match.
    pub drifts: Vec<ReconcilerDriftJson>,
    /// Since when the connection has drifted (no clean check in between).
    pub drift_since: Option<DateTime<Utc>>,
    /// Parts that could not be read at the last check (`part:ERROR_CODE`): not drift.
    pub unreadable: Vec<String>,
    /// When auto-repair last reconnected the number.
    pub repaired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerDriftJson {
    #[schema(example = "livekit_rule_missing")]
    pub kind: String,
    pub message: String,
}

impl From<&ConnectionCheck> for ReconcilerCheckJson {
    fn from(c: &ConnectionCheck) -> Self {
        Self {
            checked_at: c.checked_at,
            drifts: c
                .drifts
                .iter()
                .map(|d| ReconcilerDriftJson {
                    kind: d.kind.clone(),
                    message: d.message.clone(),
                })
                .collect(),
            drift_since: c.drift_since,
            unreadable: c.unreadable.clone(),
            repaired_at: c.repaired_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminIntegrationJson {
    #[schema(example = "twilio")]
    pub provider: String,
    /// `null` when the credentials were deleted but connections remain.
    pub integration_id: Option<String>,
    /// `active` or `disabled`; `null` without credentials.
    pub status: Option<String>,
    pub auto_repair: bool,
    /// Connected numbers.
    pub connected_numbers: u64,
    /// Live connections whose last reconciler check found drift.
    pub drifted_numbers: u64,
    /// Live connections the reconciler has not checked yet.
    pub unchecked_numbers: u64,
    /// Connections whose last connect did not finish.
    pub incomplete_numbers: u64,
    /// The least recent reconciler check among the live connections.
    pub oldest_check_at: Option<DateTime<Utc>>,
    /// `ok`, `drifted`, `incomplete`, `unchecked` or `credentials_missing`.
    #[schema(example = "ok")]
    pub health: String,
}

impl From<&IntegrationView> for AdminIntegrationJson {
    fn from(v: &IntegrationView) -> Self {
        Self {
            provider: v.provider.as_str().to_owned(),
            integration_id: v.integration_id.map(|i| i.to_string()),
            status: v.status.map(|s| {
                match s {
                    trunkline_core::model::IntegrationStatus::Active => "active",
                    trunkline_core::model::IntegrationStatus::Disabled => "disabled",
                }
                .to_owned()
            }),
            auto_repair: v.auto_repair,
            connected_numbers: v.connected,
            drifted_numbers: v.drifted,
            unchecked_numbers: v.unchecked,
            incomplete_numbers: v.incomplete,
            oldest_check_at: v.oldest_check,
            health: v.health().to_owned(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCustomerJson {
    pub customer_id: String,
    pub integrations: Vec<AdminIntegrationJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCustomersResponse {
    pub items: Vec<AdminCustomerJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl From<&CustomerView> for AdminCustomerJson {
    fn from(c: &CustomerView) -> Self {
        Self {
            customer_id: c.customer_id.as_str().to_owned(),
            integrations: c.integrations.iter().map(Into::into).collect(),
        }
    }
}

/// Customers with their integrations, connected-number counts and health. Support only.
#[utoipa::path(
    get,
    path = "/telephony/admin/customers",
    tag = "admin",
    security(("bearer" = [])),
    params(AdminQuery),
    responses(
        (status = 200, description = "One page of customers", body = AdminCustomersResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad pageSize or cursor", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: not the support role", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn admin_customers(
    caller: Caller,
    query: web::Query<AdminQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_support(&caller)?;
    let size = page_size(query.page_size.as_deref())?;
    let page = state
        .fleet
        .admin_customers(cursor(query.cursor.as_deref()), size)
        .await?;
    Ok(HttpResponse::Ok().json(AdminCustomersResponse {
        items: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminRouteNumberJson {
    pub connection_id: String,
    pub number_id: String,
    /// E.164, masked (support sees which number by its id).
    pub e164: String,
    /// `pending`, `connected` or `failed`.
    pub status: String,
    pub livekit_trunk_id: Option<String>,
    pub livekit_rule_id: Option<String>,
    /// The reconciler's last check; `null` when not checked yet.
    pub reconciler: Option<ReconcilerCheckJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminRouteJson {
    #[schema(example = "twilio")]
    pub provider: String,
    /// The carrier's route: a Twilio trunk SID, a Telnyx connection id.
    pub route_id: String,
    /// trunkline created the route.
    pub created_by_trunkline: bool,
    pub numbers: Vec<AdminRouteNumberJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCustomerRoutesJson {
    pub customer_id: String,
    pub routes: Vec<AdminRouteJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminRoutesResponse {
    pub items: Vec<AdminCustomerRoutesJson>,
    pub next_cursor: Option<String>,
}

impl From<&RouteView> for AdminRouteJson {
    fn from(r: &RouteView) -> Self {
        Self {
            provider: r.provider.as_str().to_owned(),
            route_id: r.route_id.to_string(),
            created_by_trunkline: r.created,
            numbers: r
                .numbers
                .iter()
                .map(|n| AdminRouteNumberJson {
                    connection_id: n.connection.id.to_string(),
                    number_id: n.connection.number_id.to_string(),
                    e164: n.connection.e164.masked().clone(),
                    status: n.connection.status.as_str().to_owned(),
                    livekit_trunk_id: n
                        .connection
                        .livekit_trunk_id
                        .as_ref()
                        .map(ToString::to_string),
                    livekit_rule_id: n
                        .connection
                        .livekit_rule_id
                        .as_ref()
                        .map(ToString::to_string),
                    reconciler: n.check.as_ref().map(Into::into),
                })
                .collect(),
        }
    }
}

impl From<&CustomerRoutes> for AdminCustomerRoutesJson {
    fn from(c: &CustomerRoutes) -> Self {
        Self {
            customer_id: c.customer_id.as_str().to_owned(),
            routes: c.routes.iter().map(Into::into).collect(),
        }
    }
}

/// The carrier routes (trunks, connections) trunkline manages, per customer. Support only.
#[utoipa::path(
    get,
    path = "/telephony/admin/routes",
    tag = "admin",
    security(("bearer" = [])),
    params(AdminQuery),
    responses(
        (status = 200, description = "One page of customers with their routes", body = AdminRoutesResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad pageSize or cursor", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: not the support role", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn admin_routes(
    caller: Caller,
    query: web::Query<AdminQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_support(&caller)?;
    let size = page_size(query.page_size.as_deref())?;
    let page = state
        .fleet
        .admin_routes(cursor(query.cursor.as_deref()), size)
        .await?;
    Ok(HttpResponse::Ok().json(AdminRoutesResponse {
        items: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitOwnerJson {
    pub connection_id: String,
    pub customer_id: String,
    #[schema(example = "twilio")]
    pub provider: String,
    /// The owning connection's status (`disconnected`: a disconnect left the object). An
    /// outbound trunk belongs to a carrier route: its owner is the route's first connection.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveKitObjectJson {
    /// `inbound_trunk`, `dispatch_rule` or `outbound_trunk`.
    #[schema(example = "inbound_trunk")]
    pub kind: String,
    #[schema(example = "ST_abc123")]
    pub id: String,
    pub name: String,
    /// Inbound trunk: the numbers it accepts; outbound trunk: the numbers it may call from
    /// (masked).
    pub numbers: Vec<String>,
    /// Dispatch rule: the trunks it applies to.
    pub trunk_ids: Vec<String>,
    /// No connection owns it.
    pub orphan: bool,
    pub owner: Option<LiveKitOwnerJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminLiveKitResponse {
    /// trunkline's LiveKit inbound trunks, dispatch rules and outbound trunks, in that
    /// order, each kind by id.
    pub items: Vec<LiveKitObjectJson>,
    pub next_cursor: Option<String>,
}

fn mask_raw(raw: &str) -> String {
    trunkline_core::E164::parse(raw).map_or_else(|_| "***".to_owned(), |e| e.masked().clone())
}

impl From<&LiveKitObject> for LiveKitObjectJson {
    fn from(o: &LiveKitObject) -> Self {
        Self {
            kind: o.kind.as_str().to_owned(),
            id: o.id.clone(),
            name: o.name.clone(),
            numbers: o.numbers.iter().map(|n| mask_raw(n)).collect(),
            trunk_ids: o.trunk_ids.clone(),
            orphan: o.owner.is_none(),
            owner: o.owner.as_ref().map(|w| LiveKitOwnerJson {
                connection_id: w.connection_id.to_string(),
                customer_id: w.customer_id.as_str().to_owned(),
                provider: w.provider.as_str().to_owned(),
                status: w.status.as_str().to_owned(),
            }),
        }
    }
}

/// The LiveKit inbound trunks and dispatch rules trunkline manages, and its orphans:
/// trunkline-named objects no connection owns. Support only.
#[utoipa::path(
    get,
    path = "/telephony/admin/livekit",
    tag = "admin",
    security(("bearer" = [])),
    params(LiveKitQuery),
    responses(
        (status = 200, description = "One page of LiveKit objects", body = AdminLiveKitResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad pageSize, cursor or orphans", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: not the support role", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` (no LiveKit), `PROVIDER_UNAVAILABLE` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn admin_livekit(
    caller: Caller,
    query: web::Query<LiveKitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_support(&caller)?;
    let size = page_size(query.page_size.as_deref())?;
    let orphans = match query.orphans.as_deref().map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("orphans: must be true or false")),
    };
    let page = state
        .fleet
        .admin_livekit(cursor(query.cursor.as_deref()), size, orphans)
        .await?;
    Ok(HttpResponse::Ok().json(AdminLiveKitResponse {
        items: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}
