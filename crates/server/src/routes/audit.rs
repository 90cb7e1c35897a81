//! `GET /telephony/audit`: the customer's audit trail.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trunkline_core::model::AuditEvent;
use utoipa::{IntoParams, ToSchema};

use super::CustomerQuery;
use crate::auth::ReadScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/telephony/audit").route(web::get().to(list_audit)));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many events, newest first: 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// Who acted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActorJson {
    /// The token's subject.
    pub subject: String,
    pub role: String,
}

/// One audited change (or verification). Never holds secrets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventJson {
    pub id: String,
    pub at: DateTime<Utc>,
    /// `credentials.verified`, `credentials.saved`, `credentials.deleted`,
    /// `number.connected`, `number.disconnected`.
    #[schema(example = "number.connected")]
    pub action: String,
    pub provider: String,
    pub actor: ActorJson,
    /// The request that did it (the `x-request-id` of its answer).
    pub request_id: Option<String>,
    /// The ids involved (`PN…`, `TK…`, integration and connection ids) and the steps.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&AuditEvent> for AuditEventJson {
    fn from(e: &AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at,
            action: e.action.as_str().to_owned(),
            provider: e.provider.as_str().to_owned(),
            actor: ActorJson {
                subject: e.actor.subject.clone(),
                role: e.actor.role.clone(),
            },
            request_id: e.request_id.clone(),
            details: e.details.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResponse {
    /// Newest first.
    pub items: Vec<AuditEventJson>,
}

/// The customer's audit trail, newest first. The support role may read any customer's.
#[utoipa::path(
    get,
    path = "/telephony/audit",
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery, CustomerQuery),
    responses(
        (status = 200, description = "Events, newest first", body = AuditResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad limit", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn list_audit(
    scope: ReadScope,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.as_deref().map(str::trim) {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "limit: must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let events = state
        .onboarding
        .audit_trail(&scope.customer_id, limit)
        .await?;
    Ok(HttpResponse::Ok().json(AuditResponse {
        items: events.iter().map(Into::into).collect(),
    }))
}
