//! Number search, purchase and release (opt-in: `TRUNKLINE_ALLOW_NUMBER_PURCHASE`), and the
//! integration's fleet settings (`autoRepair`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use trunkline_core::E164;
use trunkline_core::ports::{AvailableNumberQuery, NumberType};
use utoipa::{IntoParams, ToSchema};

use super::numbers::ConnectBody;
use super::{CustomerQuery, NumberPath, ProviderPath, number_id, provider};
use crate::auth::ReadScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, RequestContext};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/telephony/providers/{provider}/available-numbers")
            .route(web::get().to(search_numbers)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers:purchase")
            .route(web::post().to(purchase_number)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers/{numberId}/release")
            .route(web::post().to(release_number)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/settings")
            .route(web::get().to(get_settings))
            .route(web::put().to(put_settings)),
    );
}

/// What to search for.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// ISO 3166-1 alpha-2 country code (`US`).
    #[param(value_type = String, pattern = "^[A-Za-z]{2}$", example = "US")]
    pub country: Option<String>,
    /// `local` (default), `toll_free` or `mobile`.
    #[param(value_type = Option<String>, pattern = "^(local|toll_free|mobile)$")]
    pub r#type: Option<String>,
    /// National area code (`415`).
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,6}$")]
    pub area_code: Option<String>,
    /// Digits the national number starts with.
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,10}$")]
    pub prefix: Option<String>,
    /// Digits the number contains.
    #[param(value_type = Option<String>, pattern = "^[0-9]{1,10}$")]
    pub contains: Option<String>,
    /// At most this many numbers, 1 to 50 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
}

fn digits(
    field: &'static str,
    raw: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match raw.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(r) if r.len() <= max && r.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(r)),
        Some(_) => Err(ApiError::validation(format!(
            "{field}: must be 1 to {max} digits"
        ))),
    }
}

impl SearchQuery {
    fn into_query(self) -> Result<AvailableNumberQuery, ApiError> {
        let country = self
            .country
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .ok_or_else(|| ApiError::validation("country: must be a two-letter country code"))?;
        let number_type = match self.r#type.as_deref().map(str::trim) {
            None | Some("local") => NumberType::Local,
            Some("toll_free") => NumberType::TollFree,
            Some("mobile") => NumberType::Mobile,
            Some(_) => {
                return Err(ApiError::validation(
                    "type: must be local, toll_free or mobile",
                ));
            }
        };
        let limit = match self.limit.as_deref().map(str::trim) {
            None => 20,
            Some(r) => r
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=AvailableNumberQuery::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::validation("limit: must be a whole number from 1 to 50")
                })?,
        };
        Ok(AvailableNumberQuery {
            country,
            number_type,
            area_code: digits("areaCode", self.area_code, 6)?,
            prefix: digits("prefix", self.prefix, 10)?,
            contains: digits("contains", self.contains, 10)?,
            limit,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailableNumberJson {
    #[schema(example = "+14155550100")]
    pub phone_number: String,
    /// `local`, `toll_free` or `mobile`.
    pub r#type: String,
    pub region: Option<String>,
    pub locality: Option<String>,
    pub voice: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse {
    pub numbers: Vec<AvailableNumberJson>,
}

/// Numbers for sale at the customer's carrier account. Needs
/// `TRUNKLINE_ALLOW_NUMBER_PURCHASE=true`.
#[utoipa::path(
    get,
    path = "/telephony/providers/{provider}/available-numbers",
    tag = "purchase",
    security(("bearer" = [])),
    params(ProviderPath, SearchQuery, CustomerQuery),
    responses(
        (status = 200, description = "Numbers for sale", body = SearchResponse),
        (status = 400, description = "`VALIDATION_FAILED`: names the parameter", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`PURCHASE_NOT_ENABLED`, or `FORBIDDEN` (customerId names another customer)", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED` by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, `NOT_CONFIGURED` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn search_numbers(
    scope: ReadScope,
    path: web::Path<ProviderPath>,
    query: web::Query<SearchQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let q = query.into_inner().into_query()?;
    let found = state
        .fleet
        .search_numbers(&scope.customer_id, provider, &q)
        .await?;
    Ok(HttpResponse::Ok().json(SearchResponse {
        numbers: found
            .into_iter()
            .map(|n| AvailableNumberJson {
                phone_number: n.e164.to_string(),
                r#type: n.number_type.as_str().to_owned(),
                region: n.region,
                locality: n.locality,
                voice: n.voice_capable,
            })
            .collect(),
    }))
}

/// What to buy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseBody {
    /// A number a search returned, in E.164.
    #[schema(example = "+14155550100", pattern = "^\\+[1-9][0-9]{7,14}$")]
    pub phone_number: String,
    /// Connect the number in the same request, with these options (`{}`: the defaults).
    pub connect: Option<ConnectBody>,
}

/// How the connect asked for with a purchase went.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseConnectJson {
    pub ok: bool,
    pub connection_id: Option<String>,
    /// `connected` when it finished.
    pub status: Option<String>,
    /// Why it failed (the number is bought; connect it again).
    pub error_code: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseResponse {
    /// The carrier's id of the number now in the account.
    pub number_id: String,
    pub phone_number: String,
    /// Present when the request asked to connect.
    pub connect: Option<PurchaseConnectJson>,
}

/// Buy a number into the customer's carrier account (recorded as trunkline's, so it can be
/// released), optionally connecting it. Audited. Needs `TRUNKLINE_ALLOW_NUMBER_PURCHASE=true`.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers:purchase",
    tag = "purchase",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = PurchaseBody,
    responses(
        (status = 201, description = "Bought (and connected when asked)", body = PurchaseResponse),
        (status = 400, description = "`VALIDATION_FAILED`: names the field", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`PURCHASE_NOT_ENABLED`, or `FORBIDDEN` (the support role changes nothing)", body = ErrorEnvelope),
        (status = 404, description = "`NUMBER_NOT_FOUND` (no longer for sale) or `INTEGRATION_NOT_FOUND`", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED` by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE` (an order that did not complete in time: look for the number before buying again), `NOT_CONFIGURED` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn purchase_number(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<PurchaseBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let body = body.into_inner();
    let e164 =
        E164::parse(&body.phone_number).map_err(|e| ApiError::from(e.field("phoneNumber")))?;
    let connect = body.connect.map(ConnectBody::into_request).transpose()?;
    let out = state
        .fleet
        .purchase_number(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &e164,
            connect,
            ctx.request_id(),
        )
        .await?;
    tracing::info!(number = %out.number.id, e164 = %out.number.e164.masked(), "number purchased");
    let connect = out.connect.map(|r| match r {
        Ok(c) => PurchaseConnectJson {
            ok: true,
            connection_id: Some(c.connection.id.to_string()),
            status: Some(c.connection.status.as_str().to_owned()),
            error_code: None,
            message: None,
        },
        Err(e) => PurchaseConnectJson {
            ok: false,
            connection_id: None,
            status: None,
            error_code: Some(e.code.as_str().to_owned()),
            message: Some(e.message),
        },
    });
    Ok(HttpResponse::Created().json(PurchaseResponse {
        number_id: out.number.id.to_string(),
        phone_number: out.number.e164.to_string(),
        connect,
    }))
}

/// The explicit confirmation a release needs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseBody {
    /// The number being released, in E.164, repeated: releasing is final.
    #[schema(example = "+14155550100")]
    pub confirm: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseResponse {
    pub number_id: String,
    pub released: bool,
}

/// Release a number trunkline bought (never one the customer brought). Disconnect it first.
/// Audited. Needs `TRUNKLINE_ALLOW_NUMBER_PURCHASE=true`.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers/{numberId}/release",
    tag = "purchase",
    security(("bearer" = [])),
    params(NumberPath),
    request_body = ReleaseBody,
    responses(
        (status = 200, description = "Released", body = ReleaseResponse),
        (status = 400, description = "`VALIDATION_FAILED`: `confirm` does not repeat the number", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`PURCHASE_NOT_ENABLED`, or `FORBIDDEN` (the support role changes nothing)", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`", body = ErrorEnvelope),
        (status = 409, description = "`NOT_PURCHASED` (trunkline did not buy it) or `CONFLICT` (still connected)", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED` by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`, `NOT_CONFIGURED` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn release_number(
    ctx: RequestContext,
    path: web::Path<NumberPath>,
    state: web::Data<AppState>,
    body: ApiJson<ReleaseBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let number = number_id(&state, provider, &path.number_id)?;
    let released = state
        .fleet
        .release_number(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &number,
            body.into_inner().confirm.trim(),
            ctx.request_id(),
        )
        .await?;
    tracing::info!(number = %number, e164 = %released.e164.masked(), "number released");
    Ok(HttpResponse::Ok().json(ReleaseResponse {
        number_id: number.to_string(),
        released: true,
    }))
}

/// The integration's fleet settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsBody {
    /// The drift reconciler reconnects this integration's drifted numbers. Off by default.
    pub auto_repair: bool,
}

/// The integration's fleet settings (defaults when never set).
#[utoipa::path(
    get,
    path = "/telephony/providers/{provider}/settings",
    tag = "credentials",
    security(("bearer" = [])),
    params(ProviderPath, CustomerQuery),
    responses(
        (status = 200, description = "The settings", body = SettingsBody),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn get_settings(
    scope: ReadScope,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let s = state
        .fleet
        .integration_settings(&scope.customer_id, provider)
        .await?;
    Ok(HttpResponse::Ok().json(SettingsBody {
        auto_repair: s.auto_repair,
    }))
}

/// Change the integration's fleet settings. Audited.
#[utoipa::path(
    put,
    path = "/telephony/providers/{provider}/settings",
    tag = "credentials",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "The settings now", body = SettingsBody),
        (status = 400, description = "`VALIDATION_FAILED`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`: save credentials first", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` or `SERVICE_UNAVAILABLE`", body = ErrorEnvelope),
    )
)]
pub async fn put_settings(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<SettingsBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let s = state
        .fleet
        .update_integration_settings(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            body.into_inner().auto_repair,
            ctx.request_id(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(SettingsBody {
        auto_repair: s.auto_repair,
    }))
}
