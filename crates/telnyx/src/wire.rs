//! Telnyx's JSON, as far as the adapter reads it. Fields the adapter does not use are
//! ignored; fields Telnyx may leave out or null are `Option`s.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct Data<T> {
    pub data: T,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub meta: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub page_number: Option<u64>,
    #[serde(default)]
    pub total_pages: Option<u64>,
    #[serde(default)]
    pub total_results: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Balance {
    #[serde(default)]
    pub balance: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Number {
    pub id: String,
    pub phone_number: String,
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    pub connection_name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub country_iso_alpha2: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Inbound {
    #[serde(default)]
    pub ani_number_format: Option<String>,
    #[serde(default)]
    pub dnis_number_format: Option<String>,
    #[serde(default)]
    pub default_primary_fqdn_id: Option<String>,
    #[serde(default)]
    pub default_secondary_fqdn_id: Option<String>,
    #[serde(default)]
    pub default_tertiary_fqdn_id: Option<String>,
    #[serde(default)]
    pub default_routing_method: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Connection {
    pub id: String,
    #[serde(default)]
    pub connection_name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub transport_protocol: Option<String>,
    #[serde(default)]
    pub inbound: Option<Inbound>,
    #[serde(default)]
    pub outbound: Option<Outbound>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Outbound {
    #[serde(default)]
    pub outbound_voice_profile_id: Option<String>,
}

/// `fqdn_authentication` of a connection. The password is deliberately not a field: it is
/// never read, so it can never be logged from here.
#[derive(Debug, Deserialize)]
pub(crate) struct FqdnAuthentication {
    #[serde(default)]
    pub fqdn_outbound_authentication: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VoiceProfile {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub whitelisted_destinations: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Fqdn {
    pub id: String,
    pub connection_id: String,
    pub fqdn: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub dns_record_type: Option<String>,
}
