//! `GET /telephony/providers`: the carriers this instance offers and the fields of their
//! credentials forms, so that a UI does not hard-code any carrier.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use trunkline_core::ports::{CredentialAlternative, CredentialField, CredentialForm};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ErrorEnvelope;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/telephony/providers").route(web::get().to(list_providers)));
}

/// One field of a credentials form.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialFieldJson {
    /// The JSON field name of the credentials body.
    #[schema(example = "accountSid")]
    pub name: String,
    /// What to show next to the input.
    pub label: String,
    /// A secret: sealed at rest, never shown back; mask it in a form.
    pub secret: bool,
    /// A regular expression the value must match, when the carrier's format is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// One way to give credentials; every field of it is required.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialAlternativeJson {
    #[schema(example = "apiKey")]
    pub name: String,
    pub fields: Vec<CredentialFieldJson>,
}

/// A carrier this instance offers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderJson {
    /// The path segment: `/telephony/providers/{provider}/…`.
    #[schema(example = "twilio")]
    pub provider: String,
    #[schema(example = "Twilio")]
    pub name: String,
    /// The credentials body: exactly the fields of one alternative.
    pub credentials: Vec<CredentialAlternativeJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvidersResponse {
    pub providers: Vec<ProviderJson>,
    /// Whether number search, purchase and release are on here
    /// (`TRUNKLINE_ALLOW_NUMBER_PURCHASE`).
    pub number_purchase: bool,
}

fn field(f: &CredentialField) -> CredentialFieldJson {
    CredentialFieldJson {
        name: f.name.to_owned(),
        label: f.label.to_owned(),
        secret: f.secret,
        pattern: f.pattern.map(str::to_owned),
        example: f.example.map(str::to_owned),
    }
}

fn alternatives(form: &CredentialForm) -> Vec<CredentialAlternativeJson> {
    form.alternatives
        .iter()
        .map(|a: &CredentialAlternative| CredentialAlternativeJson {
            name: a.name.to_owned(),
            fields: a.fields.iter().map(field).collect(),
        })
        .collect()
}

/// The carriers this instance offers, each with the fields of its credentials form.
#[utoipa::path(
    get,
    path = "/telephony/providers",
    tag = "credentials",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The carriers offered here", body = ProvidersResponse),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorEnvelope),
    )
)]
pub async fn list_providers(_caller: Caller, state: web::Data<AppState>) -> HttpResponse {
    let providers = state
        .onboarding
        .providers()
        .into_iter()
        .map(|(p, form)| ProviderJson {
            provider: p.as_str().to_owned(),
            name: p.display_name().to_owned(),
            credentials: alternatives(&form),
        })
        .collect();
    HttpResponse::Ok().json(ProvidersResponse {
        providers,
        number_purchase: state.fleet.number_purchase_enabled(),
    })
}
