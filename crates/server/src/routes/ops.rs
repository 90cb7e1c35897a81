//! The operational routes (`/healthz`, `/readyz`, `/metrics`) and `/telephony/me`.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use trunkline_core::ErrorCode;
use trunkline_core::ports::StoreError;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: &'static str,
}

/// Who the caller is, as the token says.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeResponse {
    pub customer_id: String,
    pub subject: String,
    pub roles: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is serving", body = HealthResponse))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and is migrated", body = HealthResponse),
        (status = 503, description = "Not ready", body = ErrorEnvelope),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    // Bounded below the probe's timeout: a database that accepts connections and never
    // answers (or a query stuck on a dead connection) is "not ready", not a hung probe.
    let checked = tokio::time::timeout(
        state.config.database_timeout,
        state.stores.health.check_ready(),
    )
    .await
    .unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "the readiness check took longer than {} ms",
            state.config.database_timeout.as_millis()
        )))
    });
    match checked {
        Ok(()) => Ok(HttpResponse::Ok().json(HealthResponse { status: "ready" })),
        Err(e) => {
            let message = match e {
                StoreError::NotMigrated(_) => {
                    "not ready: the database schema is not migrated (run `trunkline migrate`)"
                }
                _ => "not ready: the database is unreachable",
            };
            Err(ApiError::new(ErrorCode::ServiceUnavailable, message).with_cause(e))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

#[utoipa::path(
    get,
    path = "/telephony/me",
    tag = "telephony",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's customer and roles", body = MeResponse),
        (status = 401, description = "No or an invalid bearer token", body = ErrorEnvelope),
    )
)]
pub async fn me(caller: Caller) -> web::Json<MeResponse> {
    web::Json(MeResponse {
        customer_id: caller.customer_id.as_str().to_owned(),
        subject: caller.subject,
        roles: caller.roles,
    })
}
