//! `POST …/credentials:verify`, `POST …/credentials`, `DELETE …/credentials`.

use actix_web::{HttpResponse, web};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use trunkline_core::model::{CarrierAuth, CarrierCredentials};
use trunkline_core::ports::VerifyReport;
use trunkline_core::{AccountSid, ApiKeySid, ErrorCode};
use utoipa::ToSchema;

use super::json::CapabilitiesJson;
use super::{ProviderPath, actor, provider};
use crate::auth::WriteScope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::http::{ApiJson, RequestId};
use crate::state::AppState;

const VERIFY: &str = "/telephony/providers/{provider}/credentials:verify";
const CREDENTIALS: &str = "/telephony/providers/{provider}/credentials";

/// Longest secret accepted. Twilio's are 32 characters; this only stops abuse.
pub(crate) const MAX_SECRET_LEN: usize = 256;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(VERIFY).route(web::post().to(verify_credentials)))
        .service(
            web::resource(CREDENTIALS)
                .route(web::post().to(save_credentials))
                .route(web::delete().to(delete_credentials)),
        );
}

/// Carrier credentials: `accountSid` with either `apiKeySid` + `apiKeySecret` (a Twilio
/// Standard API key, recommended) or `authToken` (the account's auth token). Exactly one
/// form; unknown fields are refused. The secret is only ever sent here, never returned.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRequest {
    pub account_sid: String,
    pub api_key_sid: Option<String>,
    pub api_key_secret: Option<SecretString>,
    pub auth_token: Option<SecretString>,
}

/// Written by hand: "exactly one form" is a `oneOf`, which the derive cannot say.
impl utoipa::PartialSchema for CredentialsRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::schema::credentials_request().into()
    }
}

impl ToSchema for CredentialsRequest {}

fn secret(value: SecretString, field: &'static str) -> Result<SecretString, ApiError> {
    let s = value.expose_secret();
    if s.trim().is_empty() {
        return Err(ApiError::validation(format!("{field}: must not be empty")));
    }
    if s.len() > MAX_SECRET_LEN {
        return Err(ApiError::validation(format!(
            "{field}: must be at most {MAX_SECRET_LEN} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::validation(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(value)
}

impl CredentialsRequest {
    /// Parse into domain credentials; every error names its field and none echoes a value.
    pub fn into_credentials(self) -> Result<CarrierCredentials, ApiError> {
        let account_sid = AccountSid::parse(&self.account_sid)
            .map_err(|e| ApiError::from(e.field("accountSid")))?;
        let auth = match (self.api_key_sid, self.api_key_secret, self.auth_token) {
            (Some(sid), Some(key_secret), None) => CarrierAuth::ApiKey {
                key_sid: ApiKeySid::parse(&sid)
                    .map_err(|e| ApiError::from(e.field("apiKeySid")))?,
                secret: secret(key_secret, "apiKeySecret")?,
            },
            (None, None, Some(token)) => CarrierAuth::AuthToken {
                token: secret(token, "authToken")?,
            },
            (None, None, None) => {
                return Err(ApiError::validation(
                    "apiKeySid: is required, with apiKeySecret (or give authToken instead)",
                ));
            }
            (Some(_), None, None) => {
                return Err(ApiError::validation(
                    "apiKeySecret: is required with apiKeySid",
                ));
            }
            (None, Some(_), None) => {
                return Err(ApiError::validation(
                    "apiKeySid: is required with apiKeySecret",
                ));
            }
            (_, _, Some(_)) => {
                return Err(ApiError::validation(
                    "authToken: give either apiKeySid and apiKeySecret, or authToken, not both",
                ));
            }
        };
        Ok(CarrierCredentials { account_sid, auth })
    }
}

/// The credentials work. A missing capability (a key without trunking permission, an
/// account without Elastic SIP Trunking) is reported here, not as a failure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOk {
    /// Always `true`.
    pub ok: bool,
    pub account_sid: String,
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
            account_sid: r.account_sid.to_string(),
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
    scope: WriteScope,
    path: web::Path<ProviderPath>,
    request_id: RequestId,
    state: web::Data<AppState>,
    body: ApiJson<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let creds = body.into_inner().into_credentials()?;
    state.credential_checks.check(&scope.customer_id)?;
    let result = state
        .onboarding
        .verify_credentials(
            &actor(&scope.caller),
            &scope.customer_id,
            provider,
            &creds,
            Some(request_id.as_str()),
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
    pub account_sid: String,
    /// The API key's SID; absent when an auth token was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_sid: Option<String>,
    pub capabilities: CapabilitiesJson,
    /// Whether earlier credentials were replaced (the integration keeps its id).
    pub replaced: bool,
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
    scope: WriteScope,
    path: web::Path<ProviderPath>,
    request_id: RequestId,
    state: web::Data<AppState>,
    body: ApiJson<CredentialsRequest>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let creds = body.into_inner().into_credentials()?;
    // Saving verifies the credentials at the carrier again: it counts as a check.
    state.credential_checks.check(&scope.customer_id)?;
    let saved = state
        .onboarding
        .save_credentials(
            &actor(&scope.caller),
            &scope.customer_id,
            provider,
            &creds,
            Some(request_id.as_str()),
        )
        .await?;
    tracing::info!(
        integration = %saved.integration_id,
        account = %saved.account_sid,
        replaced = saved.replaced,
        "credentials saved"
    );
    Ok(HttpResponse::Ok().json(SaveResponse {
        integration_id: saved.integration_id.to_string(),
        account_sid: saved.account_sid.to_string(),
        api_key_sid: saved.api_key_sid.as_ref().map(ToString::to_string),
        capabilities: (&saved.report.capabilities).into(),
        replaced: saved.replaced,
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
    scope: WriteScope,
    path: web::Path<ProviderPath>,
    request_id: RequestId,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider(&path.provider)?;
    let deleted = state
        .onboarding
        .delete_credentials(
            &actor(&scope.caller),
            &scope.customer_id,
            provider,
            Some(request_id.as_str()),
        )
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
    use super::*;

    fn req(json: serde_json::Value) -> Result<CarrierCredentials, ApiError> {
        serde_json::from_value::<CredentialsRequest>(json)
            .unwrap()
            .into_credentials()
    }

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SK0123456789abcdef0123456789abcdef";

    #[track_caller]
    fn refused(json: serde_json::Value, field: &str) {
        let e = req(json).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        assert!(
            e.message().starts_with(field),
            "{} does not name {field}",
            e.message()
        );
        assert!(!e.message().contains("hunter2"), "{}", e.message());
    }

    #[test]
    fn exactly_one_form_and_fields_are_named() {
        let key =
            req(serde_json::json!({"accountSid": AC, "apiKeySid": SK, "apiKeySecret": "hunter2"}))
                .unwrap();
        assert_eq!(
            key.api_key_sid().map(ToString::to_string).as_deref(),
            Some(SK)
        );
        let token = req(serde_json::json!({"accountSid": AC, "authToken": "hunter2"})).unwrap();
        assert!(token.api_key_sid().is_none());
        assert!(!format!("{key:?}{token:?}").contains("hunter2"));

        refused(
            serde_json::json!({"accountSid": "AC1", "authToken": "hunter2"}),
            "accountSid",
        );
        refused(
            serde_json::json!({"accountSid": AC, "apiKeySid": "SKx", "apiKeySecret": "hunter2"}),
            "apiKeySid",
        );
        refused(
            serde_json::json!({"accountSid": AC, "apiKeySid": SK}),
            "apiKeySecret",
        );
        refused(
            serde_json::json!({"accountSid": AC, "apiKeySecret": "hunter2"}),
            "apiKeySid",
        );
        refused(serde_json::json!({"accountSid": AC}), "apiKeySid");
        refused(
            serde_json::json!({"accountSid": AC, "apiKeySid": SK, "apiKeySecret": "hunter2", "authToken": "hunter2"}),
            "authToken",
        );
        refused(
            serde_json::json!({"accountSid": AC, "apiKeySid": SK, "apiKeySecret": "  "}),
            "apiKeySecret",
        );
        refused(
            serde_json::json!({"accountSid": AC, "authToken": "x".repeat(300)}),
            "authToken",
        );
        refused(
            serde_json::json!({"accountSid": AC, "authToken": "a\nb"}),
            "authToken",
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_value::<CredentialsRequest>(
            serde_json::json!({"accountSid": AC, "authToken": "t", "password": "p"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
