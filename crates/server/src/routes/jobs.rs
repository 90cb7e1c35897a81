//! Bulk jobs: `POST …/numbers:connect`, `POST …/numbers:disconnect` (answered `202` with the
//! job), `GET /telephony/jobs`, `GET /telephony/jobs/{jobId}`, `POST …/{jobId}:cancel`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trunkline_core::ports::{BulkJob, JobCounts, JobItem};
use trunkline_core::usecases::{JobView, MAX_JOB_NUMBERS};
use trunkline_core::{CarrierNumberId, JobId, ProviderKind};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use super::numbers::ConnectBody;
use super::{CustomerQuery, ProviderPath, provider};
use crate::auth::{ReadScope, WriteScope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, RequestContext};
use crate::state::AppState;

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;
/// A job id as the server writes it (hyphenated UUID), or its 32-digit form.
const JOB_ID_PATTERN: &str = "^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$";

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The job id never holds `/` or `:`, so `…/{jobId}:cancel` and `…/{jobId}` cannot be
    // read as one another. Nor `%`: the router matches the decoded path but the 405/404
    // fallback (`http::no_route`) the raw one, so a percent-encoded `:` in the id would
    // otherwise match there only and answer 405 instead of 404.
    cfg.service(
        web::resource("/telephony/providers/{provider}/numbers:connect")
            .route(web::post().to(bulk_connect)),
    )
    .service(
        web::resource("/telephony/providers/{provider}/numbers:disconnect")
            .route(web::post().to(bulk_disconnect)),
    )
    .service(web::resource("/telephony/jobs").route(web::get().to(list_jobs)))
    .service(
        web::resource("/telephony/jobs/{jobId:[^/:%]+}:cancel").route(web::post().to(cancel_job)),
    )
    .service(web::resource("/telephony/jobs/{jobId:[^/:%]+}").route(web::get().to(get_job)));
}

/// The `{jobId}` path parameter.
fn job_id_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .description(Some("The job's id, as `numbers:connect` answered it."))
        .pattern(Some(JOB_ID_PATTERN))
        .examples(["0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b"])
        .into()
}

/// `{jobId}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    #[serde(rename = "jobId")]
    #[param(schema_with = job_id_schema)]
    pub job_id: String,
}

/// A job id that is not one (wrong shape) names no job: `404`, as an unknown one.
fn job_id(raw: &str) -> Result<JobId, ApiError> {
    let well_formed = (raw.len() == 32 || raw.len() == 36)
        && raw.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    well_formed
        .then(|| JobId::parse(raw).ok())
        .flatten()
        .ok_or_else(|| ApiError::new(trunkline_core::ErrorCode::NotFound, "no such job"))
}

fn numbers(
    state: &AppState,
    provider: ProviderKind,
    raw: &[String],
) -> Result<Vec<CarrierNumberId>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, n)| {
            state
                .onboarding
                .parse_number_id(provider, n)
                .map_err(|e| ApiError::new(e.code, format!("numberIds[{i}]: {}", e.message)))
        })
        .collect()
}

/// Connect many numbers with the same options, in the background.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkConnectBody {
    /// The carrier's ids of the numbers (as `GET …/numbers` lists them), each once.
    #[schema(min_items = 1, max_items = 1000)]
    pub number_ids: Vec<String>,
    /// What every number is connected with: the body of one connect.
    #[serde(default)]
    pub options: Option<ConnectBody>,
}

/// Disconnect many numbers, in the background.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkDisconnectBody {
    /// The carrier's ids of the numbers, each once.
    #[schema(min_items = 1, max_items = 1000)]
    pub number_ids: Vec<String>,
    /// Put back each number's voice configuration from before trunkline (default `false`).
    pub restore_voice_config: Option<bool>,
}

/// How far a job got, per result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressJson {
    pub total: u32,
    /// Numbers with a result (any but `pending`).
    pub done: u32,
    pub pending: u32,
    pub connected: u32,
    pub reused: u32,
    pub disconnected: u32,
    pub already_disconnected: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl From<&JobCounts> for ProgressJson {
    fn from(c: &JobCounts) -> Self {
        Self {
            total: c.total(),
            done: c.total() - c.pending,
            pending: c.pending,
            connected: c.connected,
            reused: c.reused,
            disconnected: c.disconnected,
            already_disconnected: c.already_disconnected,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

/// One number of a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobItemJson {
    pub number_id: String,
    /// `pending`, `connected` (connect changed something), `reused` (everything was in
    /// place), `disconnected`, `already_disconnected`, `failed` (see `errorCode`), or
    /// `cancelled` (the job was cancelled before this number was started: nothing was
    /// done to it).
    #[schema(example = "connected")]
    pub result: String,
    /// For `failed`: the code one connect (or disconnect) of this number would answer.
    pub error_code: Option<String>,
    /// For `failed`: what went wrong.
    pub message: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&JobItem> for JobItemJson {
    fn from(i: &JobItem) -> Self {
        Self {
            number_id: i.number_id.to_string(),
            result: i.outcome.as_str().to_owned(),
            error_code: i.error_code.clone(),
            message: i.message.clone(),
            finished_at: i.finished_at,
        }
    }
}

/// A bulk job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobJson {
    pub job_id: String,
    /// `connect` or `disconnect`.
    pub kind: String,
    pub provider: String,
    /// `queued`, `running`, `completed` (every number has its result) or `cancelled`.
    pub status: String,
    /// A cancel was asked for; numbers under way finish, the others are left untouched.
    pub cancel_requested: bool,
    pub progress: ProgressJson,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Each number in submitted order (only in `GET /telephony/jobs/{jobId}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<JobItemJson>>,
}

fn job_json(job: &BulkJob, items: Option<&[JobItem]>) -> JobJson {
    JobJson {
        job_id: job.id.to_string(),
        kind: job.kind.as_str().to_owned(),
        provider: job.provider.as_str().to_owned(),
        status: job.status.as_str().to_owned(),
        cancel_requested: job.cancel_requested,
        progress: (&job.counts).into(),
        created_at: job.created_at,
        updated_at: job.updated_at,
        finished_at: job.finished_at,
        items: items.map(|i| i.iter().map(Into::into).collect()),
    }
}

fn accepted(job: &BulkJob) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/telephony/jobs/{}", job.id)))
        .json(job_json(job, None))
}

/// Connect up to 1,000 numbers with the options of one connect. Answered at once (`202`)
/// with the job; the numbers are connected in the background (by any instance), each as
/// its own connect would, and `GET /telephony/jobs/{jobId}` shows each one's result.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers:connect",
    tag = "jobs",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = BulkConnectBody,
    responses(
        (status = 202, description = "The job, queued (`Location` names it)", body = JobJson),
        (status = 400, description = "`VALIDATION_FAILED` (names the field: an id in the carrier's wrong format, a number given twice, none or more than 1,000) or `INVALID_SIP_TARGET`", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`: no credentials saved", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` (the carrier, or no SIP target) or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn bulk_connect(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<BulkConnectBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let body = body.into_inner();
    let numbers = numbers(&state, provider, &body.number_ids)?;
    let req = body.options.unwrap_or_default().into_request()?;
    let job = state
        .jobs
        .submit_connect(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            numbers,
            &req,
            ctx.request_id(),
        )
        .await?;
    tracing::info!(job = %job.id, numbers = job.counts.total(), "bulk connect queued");
    Ok(accepted(&job))
}

/// Disconnect up to 1,000 numbers. Answered at once (`202`) with the job.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/numbers:disconnect",
    tag = "jobs",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = BulkDisconnectBody,
    responses(
        (status = 202, description = "The job, queued (`Location` names it)", body = JobJson),
        (status = 400, description = "`VALIDATION_FAILED` (names the field)", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`INTEGRATION_NOT_FOUND`: no credentials saved", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` (the carrier) or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn bulk_disconnect(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<BulkDisconnectBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let body = body.into_inner();
    let numbers = numbers(&state, provider, &body.number_ids)?;
    let job = state
        .jobs
        .submit_disconnect(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            numbers,
            body.restore_voice_config.unwrap_or(false),
            ctx.request_id(),
        )
        .await?;
    tracing::info!(job = %job.id, numbers = job.counts.total(), "bulk disconnect queued");
    Ok(accepted(&job))
}

/// Paging of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Jobs per page, newest first: 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    #[param(schema_with = job_id_schema)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsResponse {
    /// Newest first, without their numbers.
    pub items: Vec<JobJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The customer's bulk jobs, newest first. The support role may read any customer's.
#[utoipa::path(
    get,
    path = "/telephony/jobs",
    tag = "jobs",
    security(("bearer" = [])),
    params(JobsQuery, CustomerQuery),
    responses(
        (status = 200, description = "One page of jobs", body = JobsResponse),
        (status = 400, description = "`VALIDATION_FAILED`: bad limit or cursor", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn list_jobs(
    scope: ReadScope,
    query: web::Query<JobsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = match query.limit.as_deref().map(str::trim) {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "limit: must be a whole number from 1 to {MAX_PAGE}"
                ))
            })?,
    };
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            job_id(c)
                .map_err(|_| ApiError::validation("cursor: is not a cursor this server handed out"))
        })
        .transpose()?;
    let jobs = state.jobs.list(&scope.customer_id, limit, before).await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(JobsResponse {
        items: jobs.iter().map(|j| job_json(j, None)).collect(),
        next_cursor,
    }))
}

/// A job: its progress and the result of each of its numbers. The support role may read
/// any customer's (with `customerId`).
#[utoipa::path(
    get,
    path = "/telephony/jobs/{jobId}",
    tag = "jobs",
    security(("bearer" = [])),
    params(JobPath, CustomerQuery),
    responses(
        (status = 200, description = "The job and every number's result", body = JobJson),
        (status = 400, description = "`VALIDATION_FAILED`: a blank or malformed customerId", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: customerId names another customer", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such job (or another customer's)", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn get_job(
    scope: ReadScope,
    path: web::Path<JobPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&path.job_id)?;
    #[allow(clippy::cast_possible_truncation)] // 1,000
    let JobView { job, items } = state
        .jobs
        .get(&scope.customer_id, id, 0, MAX_JOB_NUMBERS as u32)
        .await?;
    Ok(HttpResponse::Ok().json(job_json(&job, Some(&items))))
}

/// Cancel a job. Numbers already done stay done, numbers under way finish, numbers not yet
/// started are left untouched (`cancelled`). Cancelling a finished job changes nothing.
#[utoipa::path(
    post,
    path = "/telephony/jobs/{jobId}:cancel",
    tag = "jobs",
    security(("bearer" = [])),
    params(JobPath),
    responses(
        (status = 200, description = "The job as it is now (`cancelled` when it had not started; `cancelRequested` while its numbers under way finish)", body = JobJson),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 404, description = "`NOT_FOUND`: no such job (or another customer's)", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn cancel_job(
    scope: WriteScope,
    path: web::Path<JobPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = job_id(&path.job_id)?;
    let job = state.jobs.cancel(&scope.customer_id, id).await?;
    tracing::info!(job = %job.id, status = job.status.as_str(), "job cancel asked");
    Ok(HttpResponse::Ok().json(job_json(&job, None)))
}
