//! Outbound on the emulated Telnyx: credential authentication of FQDN connections
//! (`GET|PATCH /fqdn_connections/{id}/fqdn_authentication`, the shape of Telnyx's SDK types,
//! since the trimmed spec does not have it) and outbound voice profiles
//! (`/outbound_voice_profiles`, as the spec has them), assigned to a connection through its
//! `outbound.outbound_voice_profile_id`.
//!
//! Rules as the emulator reads Telnyx: a username is 4 to 32 letters and digits, a password
//! 8 to 128 characters, `credential-authentication` needs both; a profile's name has at least
//! 3 characters and its destinations are ISO alpha-2 codes (default `US`, `CA`); a profile a
//! connection still uses cannot be deleted (422). Passwords are stored (for tests to compare)
//! and rendered masked, never in clear, and never in an error.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::state::{
    ApiError, Connection, Store, body_object, one_of, page, paged, parse_id, string_field,
    timestamp,
};
use crate::twilio::Params;

/// `fqdn_outbound_authentication` values.
pub(crate) const OUTBOUND_AUTH_METHODS: [&str; 2] =
    ["ip-authentication", "credential-authentication"];
/// What a set password shows as.
pub const MASKED_PASSWORD: &str = "********";

#[derive(Debug, Clone)]
pub(crate) struct VoiceProfile {
    pub account: String,
    pub name: String,
    pub enabled: bool,
    pub destinations: Vec<String>,
    pub tags: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// The country Telnyx records for a number (`country_iso_alpha2`), from its calling code;
/// the emulator knows a handful and calls the rest `US` (its seeded numbers are all `+1`).
pub(crate) fn country_of(e164: &str) -> &'static str {
    const CODES: [(&str, &str); 8] = [
        ("+44", "GB"),
        ("+49", "DE"),
        ("+33", "FR"),
        ("+61", "AU"),
        ("+34", "ES"),
        ("+31", "NL"),
        ("+55", "BR"),
        ("+1", "US"),
    ];
    CODES
        .iter()
        .find(|(prefix, _)| e164.starts_with(prefix))
        .map_or("US", |(_, c)| c)
}

/// The `outbound` object of a connection's JSON (fields and types as the spec's
/// `OutboundFqdn`; the profile id only when one is assigned, since the spec's type is a
/// non-null string).
pub(crate) fn connection_outbound_json(c: &Connection) -> Value {
    let mut o = json!({
        "ani_override_type": "always",
        "generate_ringback_tone": false,
        "instant_ringback_enabled": false,
        "localization": "US",
        "t38_reinvite_source": "customer",
        "timeout_1xx_secs": 3,
        "timeout_2xx_secs": 90,
    });
    if let Some(p) = c.voice_profile {
        o["outbound_voice_profile_id"] = json!(p.to_string());
    }
    o
}

fn auth_json(id: u64, c: &Connection) -> Value {
    json!({
        "id": id.to_string(),
        "record_type": "fqdn_authentication",
        "connection_id": id.to_string(),
        "fqdn_outbound_authentication": c.outbound_auth,
        "ip_authentication_method": "token",
        "microsoft_teams_sbc": false,
        "user_name": c.user_name,
        "password": c.password.as_ref().map(|_| MASKED_PASSWORD),
        "failover_url": null,
        "webhook_url": null,
        "txt_name": null,
        "txt_ttl": null,
        "txt_value": null,
    })
}

fn destinations(v: &Value) -> Result<Vec<String>, ApiError> {
    let pointer = "/whitelisted_destinations";
    let items = v.as_array().ok_or_else(|| {
        ApiError::invalid_field(pointer, "whitelisted_destinations must be an array")
    })?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
                out.push(c.to_owned());
            }
            _ => {
                return Err(ApiError::invalid_field(
                    &format!("{pointer}/{i}"),
                    "Invalid destination: each must be an ISO 3166-1 alpha-2 country code",
                ));
            }
        }
    }
    out.dedup();
    Ok(out)
}

impl Store {
    // --- fqdn_authentication ---------------------------------------------------------------

    fn auth_connection(&self, account: &str, id: &str) -> Result<u64, ApiError> {
        parse_id(id)
            .filter(|i| {
                self.connections
                    .get(i)
                    .is_some_and(|c| c.account == account)
            })
            .ok_or_else(ApiError::not_found)
    }

    pub fn get_fqdn_authentication(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.auth_connection(account, id)?;
        Ok(json!({"data": auth_json(id, &self.connections[&id])}))
    }

    pub fn update_fqdn_authentication(
        &mut self,
        account: &str,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let id = self.auth_connection(account, id)?;
        let obj = body_object(body)?;
        let mut c = self.connections[&id].clone();
        if let Some(m) = one_of(
            obj,
            "fqdn_outbound_authentication",
            "/fqdn_outbound_authentication",
            &OUTBOUND_AUTH_METHODS,
        )? {
            c.outbound_auth = m;
        }
        one_of(
            obj,
            "ip_authentication_method",
            "/ip_authentication_method",
            &["token", "p-charge-info"],
        )?;
        if let Some(u) = string_field(obj, "user_name", "/user_name")? {
            if !(4..=32).contains(&u.len()) || !u.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ApiError::invalid_field(
                    "/user_name",
                    "user_name must be 4 to 32 letters and digits",
                ));
            }
            c.user_name = Some(u.to_owned());
        }
        if let Some(p) = string_field(obj, "password", "/password")? {
            // The value is never echoed, not even in the error.
            if !(8..=128).contains(&p.chars().count()) {
                return Err(ApiError::invalid_field(
                    "/password",
                    "password must be 8 to 128 characters",
                ));
            }
            c.password = Some(p.to_owned());
        }
        for other in ["failover_url", "txt_name", "txt_value", "webhook_url"] {
            string_field(obj, other, &format!("/{other}"))?;
        }
        if c.outbound_auth == "credential-authentication" {
            for (field, set) in [
                ("user_name", c.user_name.is_some()),
                ("password", c.password.is_some()),
            ] {
                if !set {
                    return Err(ApiError::invalid_field(
                        &format!("/{field}"),
                        &format!("{field} is required for credential-authentication"),
                    ));
                }
            }
        }
        c.updated = Utc::now();
        let out = json!({"data": auth_json(id, &c)});
        self.connections.insert(id, c);
        Ok(out)
    }

    /// The `outbound` object of a connection create or update.
    pub(crate) fn apply_connection_outbound(
        &self,
        account: &str,
        c: &mut Connection,
        outbound: &Value,
    ) -> Result<(), ApiError> {
        let outbound = outbound
            .as_object()
            .ok_or_else(|| ApiError::invalid_field("/outbound", "outbound must be an object"))?;
        let pointer = "/outbound/outbound_voice_profile_id";
        match outbound.get("outbound_voice_profile_id") {
            None => {}
            Some(Value::Null) => c.voice_profile = None,
            Some(Value::String(s)) if s.is_empty() => c.voice_profile = None,
            Some(Value::String(s)) => {
                let p = parse_id(s)
                    .filter(|p| {
                        self.voice_profiles
                            .get(p)
                            .is_some_and(|p| p.account == account)
                    })
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            pointer,
                            "outbound_voice_profile_id is not an outbound voice profile of this account",
                        )
                    })?;
                c.voice_profile = Some(p);
            }
            Some(_) => {
                return Err(ApiError::invalid_field(
                    pointer,
                    "outbound_voice_profile_id must be a string",
                ));
            }
        }
        Ok(())
    }

    // --- outbound voice profiles -----------------------------------------------------------

    fn profile_json(&self, id: u64, p: &VoiceProfile) -> Value {
        let connections = self
            .connections
            .values()
            .filter(|c| c.voice_profile == Some(id))
            .count();
        json!({
            "id": id.to_string(),
            "record_type": "outbound_voice_profile",
            "name": p.name,
            "enabled": p.enabled,
            "whitelisted_destinations": p.destinations,
            "connections_count": connections,
            "service_plan": "global",
            "traffic_type": "conversational",
            "usage_payment_method": "rate-deck",
            "concurrent_call_limit": null,
            "daily_spend_limit": "100.00",
            "daily_spend_limit_enabled": false,
            "billing_group_id": null,
            "tags": p.tags,
            "created_at": timestamp(p.created),
            "updated_at": timestamp(p.updated),
        })
    }

    pub fn list_voice_profiles(&self, account: &str, query: &Params) -> Result<Value, ApiError> {
        let page = page(query, 20)?;
        let needle = query.get("filter[name][contains]").map(str::to_lowercase);
        // Telnyx's default sort is -created_at: newest first (ids grow with creation here).
        let items = self
            .voice_profiles
            .iter()
            .rev()
            .filter(|(_, p)| p.account == account)
            .filter(|(_, p)| {
                needle
                    .as_deref()
                    .is_none_or(|n| p.name.to_lowercase().contains(n))
            })
            .map(|(id, p)| self.profile_json(*id, p))
            .collect();
        Ok(paged(items, &page))
    }

    fn own_profile(&self, account: &str, id: &str) -> Result<u64, ApiError> {
        parse_id(id)
            .filter(|i| {
                self.voice_profiles
                    .get(i)
                    .is_some_and(|p| p.account == account)
            })
            .ok_or_else(ApiError::not_found)
    }

    pub fn get_voice_profile(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_profile(account, id)?;
        Ok(json!({"data": self.profile_json(id, &self.voice_profiles[&id])}))
    }

    fn apply_profile(p: &mut VoiceProfile, obj: &Map<String, Value>) -> Result<(), ApiError> {
        if let Some(name) = string_field(obj, "name", "/name")? {
            if name.trim().chars().count() < 3 {
                return Err(ApiError::invalid_field(
                    "/name",
                    "name must be at least 3 characters",
                ));
            }
            name.clone_into(&mut p.name);
        }
        match obj.get("enabled") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => p.enabled = *b,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "/enabled",
                    "enabled must be a boolean",
                ));
            }
        }
        if let Some(d) = obj.get("whitelisted_destinations") {
            p.destinations = destinations(d)?;
        }
        one_of(obj, "service_plan", "/service_plan", &["global"])?;
        one_of(obj, "traffic_type", "/traffic_type", &["conversational"])?;
        one_of(
            obj,
            "usage_payment_method",
            "/usage_payment_method",
            &["rate-deck"],
        )?;
        if let Some(tags) = obj.get("tags") {
            p.tags = tags
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .ok_or_else(|| ApiError::invalid_field("/tags", "tags must be strings"))?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        }
        Ok(())
    }

    pub fn create_voice_profile(
        &mut self,
        account: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let obj = body_object(body)?;
        if string_field(obj, "name", "/name")?.is_none() {
            return Err(ApiError::invalid_field("/name", "name is required"));
        }
        let now = Utc::now();
        let mut p = VoiceProfile {
            account: account.to_owned(),
            name: String::new(),
            enabled: true,
            destinations: vec!["US".to_owned(), "CA".to_owned()],
            tags: Vec::new(),
            created: now,
            updated: now,
        };
        Self::apply_profile(&mut p, obj)?;
        let id = self.next_id();
        let out = json!({"data": self.profile_json(id, &p)});
        self.voice_profiles.insert(id, p);
        Ok(out)
    }

    pub fn update_voice_profile(
        &mut self,
        account: &str,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let id = self.own_profile(account, id)?;
        let obj = body_object(body)?;
        let mut p = self.voice_profiles[&id].clone();
        Self::apply_profile(&mut p, obj)?;
        p.updated = Utc::now();
        let out = json!({"data": self.profile_json(id, &p)});
        self.voice_profiles.insert(id, p);
        Ok(out)
    }

    pub fn delete_voice_profile(&mut self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_profile(account, id)?;
        if self
            .connections
            .values()
            .any(|c| c.voice_profile == Some(id))
        {
            return Err(ApiError::invalid_field(
                "/",
                "The outbound voice profile is still assigned to connections.",
            ));
        }
        let out = json!({"data": self.profile_json(id, &self.voice_profiles[&id])});
        self.voice_profiles.remove(&id);
        Ok(out)
    }
}
