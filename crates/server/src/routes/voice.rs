//! `POST /telephony/providers/twilio/voice`: Twilio's voice webhook for numbers connected in
//! voice-URL mode, one URL for every customer's account and subaccount.
//!
//! No ids in the path and no user token: the called number is found by (`AccountSid`, `To`)
//! and the request is authenticated by `X-Twilio-Signature`, checked with the auth token of
//! the account that owns the number, over the configured public URL (`TRUNKLINE_PUBLIC_URL`,
//! since trunkline sits behind proxies) as Twilio's SDKs check it
//! (`trunkline_twilio::webhook`). The route is on the call's critical path: one read of the
//! database, nothing written.
//!
//! Answers: 200 TwiML dialing the connection's LiveKit SIP target with its SIP digest
//! credentials; 200 TwiML `<Reject/>` for a number trunkline does not route (logged masked);
//! 400 `VALIDATION_FAILED` without a signature or without `AccountSid` / `To`; 403
//! `FORBIDDEN` for a signature that does not match or an `AccountSid` without stored auth
//! token; 503 `NOT_CONFIGURED` without a public URL, `SERVICE_UNAVAILABLE` when the database
//! fails (Twilio then plays its fallback).

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use trunkline_core::usecases::{ConnectMode, VoiceAnswer, VoiceRefusal, voice_webhook_url};
use trunkline_core::{CarrierAccountId, E164, ErrorCode, ProviderKind, SecretString};
use trunkline_twilio::AccountSid;
use trunkline_twilio::webhook::{self, SIGNATURE_HEADER, SignedContent, VoiceWebhook};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;
use crate::telemetry::VOICE_WEBHOOKS_TOTAL;

pub const PATH: &str = "/telephony/providers/twilio/voice";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(PATH).route(web::post().to(twilio_voice)));
}

/// The parameters of Twilio's voice webhook that trunkline reads; Twilio sends more, and
/// every parameter it sends is part of the signature.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Only the API document reads it; the handler signs every parameter.
pub struct TwilioVoiceForm {
    /// The account (or subaccount) that owns the called number.
    #[serde(rename = "AccountSid")]
    #[schema(
        pattern = "^AC[0-9a-fA-F]{32}$",
        example = "AC0123456789abcdef0123456789abcdef"
    )]
    pub account_sid: String,
    /// The called number, E.164.
    #[serde(rename = "To")]
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$", example = "+14155550100")]
    pub to: String,
    #[serde(rename = "From")]
    pub from: Option<String>,
    #[serde(rename = "CallSid")]
    pub call_sid: Option<String>,
}

fn count(result: &'static str) {
    metrics::counter!(VOICE_WEBHOOKS_TOTAL, "result" => result).increment(1);
}

/// Answer a call to a number connected in voice-URL mode (set a number's voice URL, POST, to
/// this route; connect does it). Twilio signs the request with the auth token of the account
/// owning the number; trunkline checks the signature over `TRUNKLINE_PUBLIC_URL` followed by
/// this path (and the request's query string), with and without the default port, and
/// answers TwiML.
#[utoipa::path(
    post,
    path = "/telephony/providers/twilio/voice",
    tag = "twilio",
    request_body(
        content = TwilioVoiceForm,
        content_type = "application/x-www-form-urlencoded",
        description = "Twilio's voice webhook parameters, exactly as Twilio sent them"
    ),
    params(
        ("X-Twilio-Signature" = String, Header, pattern = "^[A-Za-z0-9+/]+={0,2}$",
            description = "Base64 HMAC-SHA1, keyed with the owning account's auth token, of the public URL followed by the sorted parameters")
    ),
    responses(
        (status = 200, description = "TwiML: `<Dial><Sip username=… password=…>` toward the number's LiveKit SIP target, or `<Reject/>` for a number trunkline does not route", content_type = "text/xml", body = String),
        (status = 400, description = "`VALIDATION_FAILED`: no `X-Twilio-Signature`, or no `AccountSid` / `To`; nothing stored", body = ErrorEnvelope),
        (status = 403, description = "`FORBIDDEN`: the signature does not match, or the `AccountSid` has no stored auth token; nothing stored", body = ErrorEnvelope),
        (status = 413, description = "`PAYLOAD_TOO_LARGE`", body = ErrorEnvelope),
        (status = 503, description = "`NOT_CONFIGURED` (no `TRUNKLINE_PUBLIC_URL`) or `SERVICE_UNAVAILABLE` (the database)", body = ErrorEnvelope),
    )
)]
pub async fn twilio_voice(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(signature) = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    else {
        count("unsigned");
        return Err(ApiError::validation(
            "X-Twilio-Signature: the header is required (Twilio signs every webhook)",
        ));
    };
    let Some(public) = state.config.public_url.as_deref() else {
        count("not_configured");
        return Err(ApiError::new(
            ErrorCode::NotConfigured,
            "this server has no public URL (TRUNKLINE_PUBLIC_URL): it cannot check Twilio's \
             signatures",
        ));
    };
    // Twilio signs the URL it requested: ours as the carrier sees it, with its query string.
    let mut url = voice_webhook_url(public, ProviderKind::Twilio);
    if !req.query_string().is_empty() {
        url.push('?');
        url.push_str(req.query_string());
    }
    let raw_body = webhook::body_sha256(&url).is_some();
    let params = if raw_body {
        json_params(&body)?
    } else {
        url::form_urlencoded::parse(&body).into_owned().collect()
    };
    let hook = VoiceWebhook::from_params(&params).map_err(|name| {
        count("malformed");
        ApiError::validation(format!("{name}: the parameter is required"))
    })?;
    let account: CarrierAccountId = AccountSid::parse(&hook.account_sid)
        .map_err(|e| {
            count("malformed");
            ApiError::from(e.field("AccountSid"))
        })?
        .into();
    let to = E164::parse(&hook.to).map_err(|e| {
        count("malformed");
        ApiError::from(e.field("To"))
    })?;
    let content = if raw_body {
        SignedContent::Body(&body)
    } else {
        SignedContent::Form(&params)
    };
    let signed_by = |token: &SecretString| webhook::validate(token, &url, content, signature);
    let answer = state
        .onboarding
        .answer_voice_call(ProviderKind::Twilio, &account, &to, &signed_by)
        .await;
    let twiml = match answer {
        Ok(VoiceAnswer::Dial {
            connection_id,
            sip_uri,
            auth,
        }) => {
            count("dialed");
            tracing::info!(
                connection = %connection_id,
                e164 = %to.masked(),
                "voice webhook: dialing LiveKit"
            );
            webhook::dial_sip_twiml(&sip_uri, &auth.username, &auth.password)
        }
        Ok(VoiceAnswer::Reject) => {
            count("rejected");
            tracing::info!(
                e164 = %to.masked(),
                "voice webhook: trunkline does not route this number; rejected"
            );
            webhook::reject_twiml().to_owned()
        }
        Err((e, refusal)) => {
            count(refusal.map_or("error", VoiceRefusal::as_str));
            if let Some(r) = refusal {
                tracing::warn!(
                    reason = r.as_str(),
                    e164 = %to.masked(),
                    "voice webhook refused"
                );
            }
            return Err(e.into());
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(ContentType::xml())
        .body(twiml))
}

/// The string fields of a JSON object body (the `bodySHA256` variant).
fn json_params(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|_| {
            count("malformed");
            ApiError::validation("the body must be a JSON object when the URL has bodySHA256")
        })?;
    Ok(value
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
        .collect())
}

/// How a number reaches LiveKit (connect's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConnectModeJson {
    /// The carrier's SIP route (Twilio Elastic SIP trunk, Telnyx FQDN connection).
    Trunk,
    /// The number's voice URL points at trunkline's voice webhook, which answers TwiML that
    /// dials LiveKit (for accounts without SIP trunking).
    VoiceUrl,
    /// `voiceUrl` when the carrier reports trunking forbidden or not enabled, else `trunk`
    /// (a request value only).
    Auto,
}

impl From<ConnectModeJson> for ConnectMode {
    fn from(m: ConnectModeJson) -> Self {
        match m {
            ConnectModeJson::Trunk => Self::Trunk,
            ConnectModeJson::VoiceUrl => Self::VoiceUrl,
            ConnectModeJson::Auto => Self::Auto,
        }
    }
}

impl From<ConnectMode> for ConnectModeJson {
    fn from(m: ConnectMode) -> Self {
        match m {
            ConnectMode::Trunk => Self::Trunk,
            ConnectMode::VoiceUrl => Self::VoiceUrl,
            ConnectMode::Auto => Self::Auto,
        }
    }
}
