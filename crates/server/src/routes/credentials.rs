//! `POST …/credentials:verify`, `POST …/credentials`, `DELETE …/credentials`.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Serialize;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{CredentialForm, CredentialInput, VerifyReport};
use trunkline_core::{ErrorCode, ProviderKind};
use utoipa::ToSchema;

use super::json::CapabilitiesJson;
use super::{ProviderPath, provider};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ApiJson, RequestContext};
use crate::state::AppState;

const VERIFY: &str = "/telephony/providers/{provider}/credentials:verify";
const CREDENTIALS: &str = "/telephony/providers/{provider}/credentials";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(VERIFY).route(web::post().to(verify_credentials)))
        .service(
            web::resource(CREDENTIALS)
                .route(web::post().to(save_credentials))
                .route(web::delete().to(delete_credentials)),
        );
}

/// Carrier credentials: the fields of one alternative of the carrier's credentials form
/// (`GET /telephony/providers` lists them per carrier): Twilio's `accountSid` with either
/// `apiKeySid` + `apiKeySecret` (a Standard API key, recommended) or `authToken`; Telnyx's
/// `apiKey`. Unknown fields are refused; each error names its field and none echoes a value.
/// The secret is only ever sent here, never returned. Schema only: the body is parsed by the
/// carrier's adapter.
#[derive(Debug)]
pub struct CredentialsRequest;

/// Written by hand: "exactly one form" is a `oneOf`, which the derive cannot say.
impl utoipa::PartialSchema for CredentialsRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::schema::credentials_request().into()
    }
}

impl ToSchema for CredentialsRequest {}

/// Longest field name echoed back in an error: field names come from outside.
const MAX_ECHOED_NAME: usize = 40;

/// Split a credentials body into plain fields and secrets by the carrier's form, so that a
/// secret is a `SecretString` from here on. The carrier's adapter then checks the values.
pub fn credential_input(
    form: &CredentialForm,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<CredentialInput, ApiError> {
    let mut input = CredentialInput::default();
    for (name, value) in body {
        if !form.fields().any(|f| f.name == name) {
            let mut known: Vec<&str> = Vec::new();
            for f in form.fields() {
                if !known.contains(&f.name) {
                    known.push(f.name);
                }
            }
            let shown: String = name.chars().take(MAX_ECHOED_NAME).collect();
            let known: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
            return Err(ApiError::validation(format!(
                "{shown}: is not a known field; the fields here are {}",
                known.join(", ")
            )));
        }
        let serde_json::Value::String(value) = value else {
            return Err(ApiError::validation(format!("{name}: must be a string")));
        };
        if form.is_secret(&name) {
            input.secrets.insert(name, SecretString::from(value));
        } else {
            input.fields.insert(name, value);
        }
    }
    Ok(input)
}

fn parse_body(
    state: &AppState,
    provider: ProviderKind,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<CarrierCredentials, ApiError> {
    let form = state.onboarding.credential_form(provider)?;
    let input = credential_input(&form, body)?;
    Ok(state.onboarding.parse_credentials(provider, &input)?)
}

/// The credentials work. A missing capability (a key without trunking permission, an
/// account without Elastic SIP Trunking) is reported here, not as a failure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOk {
    /// Always `true`.
    pub ok: bool,
    /// The account the credentials act for, when the carrier names one (Twilio `AC…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The account's name, when the credentials may read it (an auth token can; a
    /// Standard API key cannot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    pub capabilities: CapabilitiesJson,
}

/// The carrier refused the credentials.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyFailed {
    /// Always `false`.
    pub ok: bool,
    /// `AUTH_INVALID`, `INSUFFICIENT_PERMISSIONS` or `TRUNKING_NOT_ENABLED`.
    #[schema(example = "AUTH_INVALID")]
    pub error_code: String,
    pub message: String,
}

/// The verdict of a verification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum VerifyResponse {
    Ok(VerifyOk),
    Failed(VerifyFailed),
}

impl From<&VerifyReport> for VerifyOk {
    fn from(r: &VerifyReport) -> Self {
        Self {
            ok: true,
            account_id: r.account_id.as_ref().map(ToString::to_string),
            friendly_name: r.friendly_name.clone(),
            capabilities: (&r.capabilities).into(),
        }
    }
}

/// Codes that are the carrier's verdict on the credentials, answered as `ok: false`. Other
/// failures (the carrier unreachable, rate limits) did not reach a verdict and are errors.
fn is_verdict(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AuthInvalid | ErrorCode::InsufficientPermissions | ErrorCode::TrunkingNotEnabled
    )
}

/// Check carrier credentials without saving them.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/credentials:verify",
    tag = "credentials",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "The carrier's verdict: `ok: true` with what the \
            credentials may do, or `ok: false` with `AUTH_INVALID`, `INSUFFICIENT_PERMISSIONS` \
            or `TRUNKING_NOT_ENABLED`", body = VerifyResponse),
        (status = 400, description = "`VALIDATION_FAILED`: a malformed field", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `TRUNKLINE_MAX_BODY_BYTES`", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`: too many credential checks for this \
            customer (see `Retry-After`), or by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`: the carrier did not answer; `SERVICE_UNAVAILABLE`: the database did not", body = ErrorEnvelope),
    )
)]
pub async fn verify_credentials(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let creds = parse_body(&state, provider, body.into_inner())?;
    state.credential_checks.check(&ctx.customer_id)?;
    let result = state
        .onboarding
        .verify_credentials(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &creds,
            ctx.request_id(),
        )
        .await;
    let answer = match result {
        Ok(report) => VerifyResponse::Ok((&report).into()),
        Err(e) if is_verdict(e.code) => {
            tracing::info!(
                code = %e.code,
                provider_code = e.provider_code.as_deref(),
                "credentials refused by the carrier"
            );
            VerifyResponse::Failed(VerifyFailed {
                ok: false,
                error_code: e.code.as_str().to_owned(),
                message: e.message,
            })
        }
        Err(e) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// Saved credentials; never the secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaveResponse {
    pub integration_id: String,
    /// The account at the carrier, when the carrier names one (Twilio `AC…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The API key's public id, when the carrier has one (Twilio `SK…`); absent for an
    /// auth token or a bearer key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub capabilities: CapabilitiesJson,
    /// Whether earlier credentials were replaced (the integration keeps its id).
    pub replaced: bool,
    /// Whether a secret the carrier signs its webhooks with is stored (Twilio: the auth
    /// token, given alone or beside the API key): voice-URL mode needs it. Never returned.
    pub webhook_secret_stored: bool,
}

/// Verify again, encrypt the secret and store the credentials, replacing earlier ones.
#[utoipa::path(
    post,
    path = "/telephony/providers/{provider}/credentials",
    tag = "credentials",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = CredentialsRequest,
    responses(
        (status = 200, description = "Saved (created or replaced)", body = SaveResponse),
        (status = 400, description = "`VALIDATION_FAILED`: a malformed field", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 409, description = "`TRUNKING_NOT_ENABLED`, or `CONFLICT`: a concurrent change; retry", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`: the body is over `TRUNKLINE_MAX_BODY_BYTES`", body = ErrorEnvelope),
        (status = 422, description = "`AUTH_INVALID` / `INSUFFICIENT_PERMISSIONS`: the carrier refused the credentials; nothing was saved", body = ErrorEnvelope),
        (status = 429, description = "`RATE_LIMITED`: too many credential checks for this \
            customer (see `Retry-After`), or by the carrier", body = ErrorEnvelope),
        (status = 503, description = "`PROVIDER_UNAVAILABLE`: the carrier did not answer; `SERVICE_UNAVAILABLE`: the database did not", body = ErrorEnvelope),
    )
)]
pub async fn save_credentials(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
    body: ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let form = state.onboarding.credential_form(provider)?;
    let input = credential_input(&form, body.into_inner())?;
    let creds = state.onboarding.parse_credentials(provider, &input)?;
    let webhook_secret = state.onboarding.parse_webhook_secret(provider, &input)?;
    // Saving verifies the credentials at the carrier again: it counts as a check.
    state.credential_checks.check(&ctx.customer_id)?;
    if let Some(secret) = &webhook_secret {
        state
            .onboarding
            .verify_webhook_secret(provider, &creds, secret)
            .await?;
    }
    let saved = state
        .onboarding
        .save_credentials(
            &ctx.actor,
            &ctx.customer_id,
            provider,
            &creds,
            ctx.request_id(),
        )
        .await?;
    // Replaced with the credentials (or removed when they carry none): an old auth token
    // must not keep validating webhooks after the customer rotated it.
    state
        .onboarding
        .save_webhook_secret(&ctx.customer_id, provider, webhook_secret.as_ref())
        .await?;
    tracing::info!(
        integration = %saved.integration_id,
        account = saved.account_id.as_ref().map_or("none", |a| a.as_str()),
        replaced = saved.replaced,
        "credentials saved"
    );
    Ok(HttpResponse::Ok().json(SaveResponse {
        integration_id: saved.integration_id.to_string(),
        account_id: saved.account_id.as_ref().map(ToString::to_string),
        key_id: saved.key_id.as_ref().map(ToString::to_string),
        capabilities: (&saved.report.capabilities).into(),
        replaced: saved.replaced,
        webhook_secret_stored: webhook_secret.is_some(),
    }))
}

/// What deleting credentials did, and what it did not.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResponse {
    /// Whether credentials were stored (deleting twice is not an error).
    pub deleted: bool,
    /// Always `true`: trunks, origination URLs and attached numbers stay as they are.
    pub carrier_configuration_left_in_place: bool,
    pub message: String,
}

const LEFT_IN_PLACE: &str = "Carrier configuration is left as it is: trunks, origination URLs \
    and numbers attached to them stay, and connected numbers keep sending calls to LiveKit. \
    trunkline can no longer change them without credentials: disconnect numbers before \
    deleting credentials, or save credentials again to do so, or undo it in the carrier's \
    console.";

/// Remove the stored credentials. Carrier configuration is not undone.
#[utoipa::path(
    delete,
    path = "/telephony/providers/{provider}/credentials",
    tag = "credentials",
    security(("bearer" = [])),
    params(ProviderPath),
    responses(
        (status = 200, description = "Removed (or there were none)", body = DeleteResponse),
        (status = 400, description = "`VALIDATION_FAILED`: unknown provider", body = ErrorEnvelope),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the support role changes nothing", body = ErrorEnvelope),
        (status = 503, description = "`SERVICE_UNAVAILABLE`: the database did not answer", body = ErrorEnvelope),
    )
)]
pub async fn delete_credentials(
    ctx: RequestContext,
    path: web::Path<ProviderPath>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let deleted = state
        .onboarding
        .delete_credentials(&ctx.actor, &ctx.customer_id, provider, ctx.request_id())
        .await?;
    let message = if deleted {
        format!("Stored {provider} credentials were deleted. {LEFT_IN_PLACE}")
    } else {
        format!("No {provider} credentials were stored. {LEFT_IN_PLACE}")
    };
    Ok(HttpResponse::Ok().json(DeleteResponse {
        deleted,
        carrier_configuration_left_in_place: true,
        message,
    }))
}

#[cfg(test)]
mod tests {
    use trunkline_core::ports::{CredentialAlternative, CredentialField};

    use super::*;

    fn form() -> CredentialForm {
        let field = |name, secret| CredentialField {
            name,
            label: name,
            secret,
            pattern: None,
            example: None,
        };
        CredentialForm {
            alternatives: vec![
                CredentialAlternative {
                    name: "apiKey",
                    fields: vec![field("accountSid", false), field("apiKeySecret", true)],
                },
                CredentialAlternative {
                    name: "authToken",
                    fields: vec![field("accountSid", false), field("authToken", true)],
                },
            ],
        }
    }

    fn body(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn secrets_are_split_from_plain_fields_by_the_form() {
        let input = credential_input(
            &form(),
            body(serde_json::json!({"accountSid": "AC1", "authToken": "hunter2"})),
        )
        .unwrap();
        assert_eq!(
            input.fields.get("accountSid").map(String::as_str),
            Some("AC1")
        );
        assert!(input.secrets.contains_key("authToken"));
        assert!(!format!("{input:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_and_non_string_fields_are_refused_by_name_without_values() {
        let e = credential_input(
            &form(),
            body(serde_json::json!({"accountSid": "AC1", "password": "hunter2"})),
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert_eq!(
            e.message(),
            r#"password: is not a known field; the fields here are "accountSid", "apiKeySecret", "authToken""#
        );
        assert!(!e.message().contains("hunter2"));
        let e = credential_input(&form(), body(serde_json::json!({"authToken": 42}))).unwrap_err();
        assert_eq!(e.message(), "authToken: must be a string");
        let long = "x".repeat(500);
        let e =
            credential_input(&form(), body(serde_json::json!({ long.clone(): "v" }))).unwrap_err();
        assert!(!e.message().contains(&long));
    }
}
