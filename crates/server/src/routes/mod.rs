//! The management plane over HTTP: credentials, numbers, connect, disconnect, status and
//! the audit trail; LiveKit's webhook and the call diagnostics.
//!
//! Handlers only parse the request into domain values, call one use case of
//! [`trunkline_core::usecases::Onboarding`] and map its result to JSON. Who may act for
//! which customer is decided by the extractors ([`ReadScope`](crate::auth::ReadScope):
//! support reads anyone's; [`WriteScope`](crate::auth::WriteScope): support changes
//! nothing). Another customer's ids are simply not found by the use cases (404).
//!
//! Nothing here logs a request body, a secret or an unmasked phone number: the request
//! middleware logs the matched route pattern, status and latency only.

pub mod admin;
pub mod audit;
pub mod calls;
pub mod console;
pub mod credentials;
pub mod jobs;
pub mod json;
pub mod numbers;
pub mod ops;
pub mod outbound;
pub mod providers;
pub mod purchase;
pub mod schema;
pub mod status;
pub mod voice;
pub mod webhook;

use actix_web::web;
use serde::Deserialize;
use trunkline_core::{CarrierNumberId, ProviderKind};
use utoipa::IntoParams;

use crate::error::ApiError;

/// Mount every route of this module.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // actix tries resources in the order they are registered, matching each pattern in
    // turn: LiveKit's webhook is by far the busiest route, so it is tried first
    // (docs/benchmarks.md measured the router at a fifth of a webhook's CPU otherwise).
    webhook::configure(cfg);
    // Twilio's voice webhook is on every call's critical path, too.
    voice::configure(cfg);
    providers::configure(cfg);
    credentials::configure(cfg);
    numbers::configure(cfg);
    audit::configure(cfg);
    calls::configure(cfg);
    purchase::configure(cfg);
    admin::configure(cfg);
    jobs::configure(cfg);
    outbound::configure(cfg);
    console::configure(cfg);
}

/// `{provider}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    /// The carrier: `twilio` or `telnyx` (`GET /telephony/providers` lists those offered).
    #[param(schema_with = schema::provider)]
    pub provider: String,
}

/// `{provider}` and `{numberId}` of a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NumberPath {
    /// The carrier: `twilio` or `telnyx`.
    #[param(schema_with = schema::provider)]
    pub provider: String,
    /// The carrier's id of the number: a Twilio IncomingPhoneNumber SID (`PN…`), a Telnyx
    /// phone number id (digits).
    #[serde(rename = "numberId")]
    #[param(schema_with = schema::number_sid)]
    pub number_id: String,
}

/// `?customerId=` on reads: only the support role may name another customer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Support only: whose data to read. Customers may omit it or name themselves.
    /// 1 to 128 bytes, no whitespace or control characters.
    #[serde(rename = "customerId")]
    #[param(schema_with = schema::customer_id)]
    pub customer_id: Option<String>,
}

pub(crate) fn provider(raw: &str) -> Result<ProviderKind, ApiError> {
    ProviderKind::parse(raw).map_err(|e| ApiError::from(e.field("provider")))
}

/// The number id of a path, in the carrier's own format (the carrier's adapter decides).
pub(crate) fn number_id(
    state: &crate::state::AppState,
    provider: ProviderKind,
    raw: &str,
) -> Result<CarrierNumberId, ApiError> {
    Ok(state.onboarding.parse_number_id(provider, raw)?)
}
