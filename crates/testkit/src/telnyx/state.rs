//! The emulator's accounts, keys, numbers, FQDN connections and FQDNs, and Telnyx's rules.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng as _;
use serde_json::{Map, Value, json};

use crate::twilio::Params;

/// Telnyx's error codes the emulator answers with.
pub mod codes {
    /// Resource not found.
    pub const NOT_FOUND: &str = "10005";
    /// Unexpected error (the emulator's 500 and 503).
    pub const UNEXPECTED: &str = "10007";
    /// Authentication failed.
    pub const AUTHENTICATION_FAILED: &str = "10009";
    /// Not authorized: the key may not use this resource.
    pub const NOT_AUTHORIZED: &str = "10010";
    /// Too many requests.
    pub const TOO_MANY_REQUESTS: &str = "10011";
    /// Bad request / invalid value (`source` names the field).
    pub const BAD_REQUEST: &str = "10015";
}

/// Largest `page[size]` Telnyx accepts.
pub const MAX_PAGE_SIZE: u64 = 250;

/// An error answer in Telnyx's shape: `{"errors":[{code,title,detail,source,meta}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// JSON pointer into the request body.
    pub pointer: Option<String>,
    /// The query parameter at fault.
    pub parameter: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, title: &'static str, detail: &str) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.to_owned(),
            pointer: None,
            parameter: None,
        }
    }

    pub fn not_found() -> Self {
        Self {
            pointer: Some("/".to_owned()),
            ..Self::new(
                404,
                codes::NOT_FOUND,
                "Resource not found",
                "The requested resource or URL could not be found.",
            )
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            codes::AUTHENTICATION_FAILED,
            "Authentication failed",
            "Could not understand the provided credentials.",
        )
    }

    pub fn not_authorized() -> Self {
        Self {
            pointer: Some("/".to_owned()),
            ..Self::new(
                403,
                codes::NOT_AUTHORIZED,
                "Not authorized",
                "You are not authorized to access the requested resource.",
            )
        }
    }

    /// 422 on a body field, `pointer` like `/inbound/dnis_number_format`.
    pub fn invalid_field(pointer: &str, detail: &str) -> Self {
        Self {
            pointer: Some(pointer.to_owned()),
            ..Self::new(422, codes::BAD_REQUEST, "Bad Request", detail)
        }
    }

    /// 400 on a query parameter.
    pub fn invalid_parameter(parameter: &str, detail: &str) -> Self {
        Self {
            parameter: Some(parameter.to_owned()),
            ..Self::new(400, codes::BAD_REQUEST, "Bad Request", detail)
        }
    }

    pub fn body(&self) -> Value {
        let mut e = json!({
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "meta": {"url": format!("https://developers.telnyx.com/docs/overview/errors/{}", self.code)},
        });
        let mut source = Map::new();
        if let Some(p) = &self.pointer {
            source.insert("pointer".into(), json!(p));
        }
        if let Some(p) = &self.parameter {
            source.insert("parameter".into(), json!(p));
        }
        if !source.is_empty() {
            e["source"] = Value::Object(source);
        }
        json!({ "errors": [e] })
    }
}

pub(crate) fn new_api_key() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..40)
        .map(|_| char::from(rng.sample(rand::distr::Alphanumeric)))
        .collect();
    format!("KEY{tail}")
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub balance: String,
    pub credit_limit: String,
}

#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    pub account: String,
    pub numbers_allowed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub account: String,
    pub phone_number: String,
    pub connection_id: Option<u64>,
    pub customer_reference: Option<String>,
    pub tags: Vec<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub account: String,
    pub name: String,
    pub active: bool,
    pub transport_protocol: String,
    pub ani_number_format: String,
    pub dnis_number_format: String,
    pub primary_fqdn: Option<u64>,
    pub secondary_fqdn: Option<u64>,
    pub tertiary_fqdn: Option<u64>,
    pub routing_method: String,
    pub tags: Vec<String>,
    /// `fqdn_outbound_authentication`: `ip-authentication` (the default) or
    /// `credential-authentication`.
    pub outbound_auth: String,
    pub user_name: Option<String>,
    /// Kept to compare in tests; never rendered (Telnyx masks it).
    pub password: Option<String>,
    /// `outbound.outbound_voice_profile_id`.
    pub voice_profile: Option<u64>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

impl Connection {
    /// A connection with Telnyx's defaults: UDP, and numbers without their `+` (see
    /// DESIGN.md), sequential routing, active.
    pub fn new(account: &str, name: &str) -> Self {
        let now = Utc::now();
        Self {
            account: account.to_owned(),
            name: name.to_owned(),
            active: true,
            transport_protocol: "UDP".to_owned(),
            ani_number_format: "E.164-national".to_owned(),
            dnis_number_format: "e164".to_owned(),
            primary_fqdn: None,
            secondary_fqdn: None,
            tertiary_fqdn: None,
            routing_method: "sequential".to_owned(),
            tags: Vec::new(),
            outbound_auth: "ip-authentication".to_owned(),
            user_name: None,
            password: None,
            voice_profile: None,
            created: now,
            updated: now,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Fqdn {
    pub account: String,
    pub connection_id: u64,
    pub fqdn: String,
    pub port: u16,
    pub dns_record_type: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Everything the emulator knows. Ids of numbers, connections and FQDNs come from one
/// counter of Telnyx-sized (19-digit) integers, so an id never names two things.
#[derive(Debug)]
pub(crate) struct Store {
    pub accounts: HashMap<String, Account>,
    pub keys: HashMap<String, ApiKey>,
    pub numbers: BTreeMap<u64, Number>,
    pub connections: BTreeMap<u64, Connection>,
    pub fqdns: BTreeMap<u64, Fqdn>,
    pub voice_profiles: BTreeMap<u64, super::outbound::VoiceProfile>,
    next_id: u64,
    pub next_phone: u32,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            accounts: HashMap::new(),
            keys: HashMap::new(),
            numbers: BTreeMap::new(),
            connections: BTreeMap::new(),
            fqdns: BTreeMap::new(),
            voice_profiles: BTreeMap::new(),
            next_id: 1_293_384_261_075_731_000,
            next_phone: 0,
        }
    }
}

pub(crate) const TRANSPORTS: [&str; 3] = ["UDP", "TCP", "TLS"];
pub(crate) const ANI_FORMATS: [&str; 4] = ["+E.164", "E.164", "+E.164-national", "E.164-national"];
pub(crate) const DNIS_FORMATS: [&str; 4] = ["+e164", "e164", "national", "sip_username"];
pub(crate) const ROUTING_METHODS: [&str; 2] = ["sequential", "round-robin"];
pub(crate) const DNS_RECORD_TYPES: [&str; 2] = ["a", "srv"];

/// A page request: `page[number]` (from 1) and `page[size]` (1..=250).
pub(crate) struct Page {
    number: u64,
    size: u64,
}

pub(crate) fn page(query: &Params, default_size: u64) -> Result<Page, ApiError> {
    let read = |name: &str, default: u64, max: u64| -> Result<u64, ApiError> {
        match query.get(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_parameter(
                    name,
                    &format!("{name} must be an integer from 1 to {max}"),
                )),
            },
        }
    };
    Ok(Page {
        number: read("page[number]", 1, u64::from(u32::MAX))?,
        size: read("page[size]", default_size, MAX_PAGE_SIZE)?,
    })
}

/// `{data, meta}` for one page of `items` (already filtered and ordered).
pub(crate) fn paged(items: Vec<Value>, page: &Page) -> Value {
    let total = items.len() as u64;
    let total_pages = total.div_ceil(page.size);
    let skip = usize::try_from((page.number - 1).saturating_mul(page.size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page.size).unwrap_or(usize::MAX);
    let data: Vec<Value> = items.into_iter().skip(skip).take(take).collect();
    json!({
        "data": data,
        "meta": {
            "page_number": page.number,
            "page_size": page.size,
            "total_pages": total_pages,
            "total_results": total,
        }
    })
}

pub(crate) fn body_object(body: Option<&Value>) -> Result<&Map<String, Value>, ApiError> {
    body.and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid_field("/", "The request body must be a JSON object."))
}

pub(crate) fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    pointer: &str,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_field(
            pointer,
            &format!("{name} must be a string"),
        )),
    }
}

pub(crate) fn one_of(
    obj: &Map<String, Value>,
    name: &str,
    pointer: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match string_field(obj, name, pointer)? {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::invalid_field(
            pointer,
            &format!(
                "Invalid {name}: {v}, was provided. Acceptable values are {}",
                allowed.join(", ")
            ),
        )),
    }
}

pub(crate) fn parse_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

impl Store {
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// `+1 312 555 xxxx` and other Chicago codes, distinct for each call.
    pub fn seeded_e164(n: u32) -> String {
        let area = [312, 773, 872][(n / 10_000) as usize % 3];
        format!("+1{area}555{:04}", n % 10_000)
    }

    /// The account of a bearer key.
    pub fn authenticate(&self, key: Option<&str>) -> Result<(String, bool), ApiError> {
        let key = key.ok_or_else(ApiError::unauthenticated)?;
        let k = self.keys.get(key).ok_or_else(ApiError::unauthenticated)?;
        Ok((k.account.clone(), k.numbers_allowed))
    }

    pub fn balance(&self, account: &str) -> Result<Value, ApiError> {
        let a = self.accounts.get(account).ok_or_else(ApiError::not_found)?;
        let balance: f64 = a.balance.parse().unwrap_or_default();
        let limit: f64 = a.credit_limit.parse().unwrap_or_default();
        Ok(json!({"data": {
            "record_type": "balance",
            "balance": a.balance,
            "credit_limit": a.credit_limit,
            "available_credit": format!("{:.2}", balance + limit),
            "pending": "0.00",
            "currency": "USD",
        }}))
    }

    // --- phone numbers ---------------------------------------------------------------------

    fn number_json(&self, id: u64, n: &Number) -> Value {
        let connection = n.connection_id.and_then(|c| self.connections.get(&c));
        json!({
            "id": id.to_string(),
            "record_type": "phone_number",
            "phone_number": n.phone_number,
            "status": "active",
            "tags": n.tags,
            "external_pin": null,
            "connection_id": n.connection_id.map(|c| c.to_string()),
            "connection_name": connection.map(|c| c.name.clone()),
            "customer_reference": n.customer_reference,
            "messaging_profile_id": null,
            "messaging_profile_name": null,
            "billing_group_id": null,
            "emergency_enabled": false,
            "emergency_address_id": null,
            "emergency_status": "disabled",
            "call_forwarding_enabled": true,
            "cnam_listing_enabled": false,
            "caller_id_name_enabled": false,
            "call_recording_enabled": false,
            "t38_fax_gateway_enabled": false,
            "hd_voice_enabled": false,
            "inbound_call_screening": "disabled",
            "deletion_lock_enabled": false,
            "phone_number_type": "local",
            "country_iso_alpha2": super::outbound::country_of(&n.phone_number),
            "source_type": "number_order",
            "purchased_at": timestamp(n.created),
            "created_at": timestamp(n.created),
            "activated_at": timestamp(n.created),
            "updated_at": timestamp(n.updated),
        })
    }

    pub fn list_numbers(&self, account: &str, query: &Params) -> Result<Value, ApiError> {
        let page = page(query, 20)?;
        let phone = query.get("filter[phone_number]");
        if let Some(p) = phone
            && p.bytes().filter(u8::is_ascii_digit).count() < 3
        {
            return Err(ApiError::invalid_parameter(
                "filter[phone_number]",
                "filter[phone_number] requires at least three digits",
            ));
        }
        let connection = query.get("filter[connection_id]");
        // Telnyx sorts by created_at, newest first; ids grow with creation here.
        let items = self
            .numbers
            .iter()
            .rev()
            .filter(|(_, n)| n.account == account)
            .filter(|(_, n)| {
                // Telnyx's spec: "Non-numerical characters will result in no values
                // being returned" (a `+` included).
                phone.is_none_or(|p| {
                    p.bytes().all(|b| b.is_ascii_digit()) && n.phone_number.contains(p)
                })
            })
            .filter(|(_, n)| {
                connection
                    .is_none_or(|c| n.connection_id.map(|id| id.to_string()).as_deref() == Some(c))
            })
            .map(|(id, n)| self.number_json(*id, n))
            .collect();
        Ok(paged(items, &page))
    }

    fn own_number(&self, account: &str, id: &str) -> Result<u64, ApiError> {
        parse_id(id)
            .filter(|i| self.numbers.get(i).is_some_and(|n| n.account == account))
            .ok_or_else(ApiError::not_found)
    }

    pub fn get_number(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_number(account, id)?;
        Ok(json!({"data": self.number_json(id, &self.numbers[&id])}))
    }

    pub fn update_number(
        &mut self,
        account: &str,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let id = self.own_number(account, id)?;
        let obj = body_object(body)?;
        let connection = match obj.get("connection_id") {
            None => None,
            // Telnyx's spec types connection_id as a string; "" (and null) detach.
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.is_empty() => Some(None),
            Some(Value::String(s)) => {
                let c = parse_id(s)
                    .filter(|c| {
                        self.connections
                            .get(c)
                            .is_some_and(|c| c.account == account)
                    })
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            "/connection_id",
                            "connection_id is not a connection of this account",
                        )
                    })?;
                Some(Some(c))
            }
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "/connection_id",
                    "connection_id must be a string",
                ));
            }
        };
        let reference = string_field(obj, "customer_reference", "/customer_reference")?;
        let tags = match obj.get("tags") {
            None => None,
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Some(
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>(),
            ),
            Some(_) => return Err(ApiError::invalid_field("/tags", "tags must be strings")),
        };
        let n = self.numbers.get_mut(&id).ok_or_else(ApiError::not_found)?;
        if let Some(c) = connection {
            n.connection_id = c;
        }
        if let Some(r) = reference {
            n.customer_reference = Some(r.to_owned());
        }
        if let Some(t) = tags {
            n.tags = t;
        }
        n.updated = Utc::now();
        Ok(json!({"data": self.number_json(id, &self.numbers[&id])}))
    }

    // --- FQDN connections ------------------------------------------------------------------

    fn connection_json(id: u64, c: &Connection) -> Value {
        let fqdn_id = |f: Option<u64>| f.map(|f| f.to_string());
        json!({
            "id": id.to_string(),
            "record_type": "fqdn_connection",
            "connection_name": c.name,
            "active": c.active,
            "transport_protocol": c.transport_protocol,
            "tags": c.tags,
            "anchorsite_override": "Latency",
            "dtmf_type": "RFC 2833",
            "encrypted_media": null,
            "onnet_t38_passthrough_enabled": false,
            "microsoft_teams_sbc": false,
            "webhook_event_failover_url": null,
            "webhook_api_version": "1",
            "webhook_timeout_secs": null,
            "inbound": {
                "ani_number_format": c.ani_number_format,
                "dnis_number_format": c.dnis_number_format,
                "codecs": ["G722", "G711U", "G711A", "G729", "OPUS", "H.264"],
                "default_routing_method": c.routing_method,
                "default_primary_fqdn_id": fqdn_id(c.primary_fqdn),
                "default_secondary_fqdn_id": fqdn_id(c.secondary_fqdn),
                "default_tertiary_fqdn_id": fqdn_id(c.tertiary_fqdn),
                "channel_limit": null,
                "generate_ringback_tone": false,
                "isup_headers_enabled": false,
                "prack_enabled": false,
                "shaken_stir_enabled": false,
                "sip_compact_headers_enabled": true,
                "sip_region": "US",
                "sip_subdomain": null,
                "sip_subdomain_receive_settings": "from_anyone",
                "timeout_1xx_secs": 3,
                "timeout_2xx_secs": 90,
            },
            "outbound": super::outbound::connection_outbound_json(c),
            "created_at": timestamp(c.created),
            "updated_at": timestamp(c.updated),
        })
    }

    pub fn list_connections(&self, account: &str, query: &Params) -> Result<Value, ApiError> {
        let page = page(query, MAX_PAGE_SIZE)?;
        let contains = query.get("filter[connection_name][contains]");
        if let Some(c) = contains
            && c.chars().count() < 3
        {
            return Err(ApiError::invalid_parameter(
                "filter[connection_name][contains]",
                "filter[connection_name][contains] requires at least three characters",
            ));
        }
        let needle = contains.map(str::to_lowercase);
        let fqdn = query.get("filter[fqdn]");
        let items = self
            .connections
            .iter()
            .rev()
            .filter(|(_, c)| c.account == account)
            .filter(|(_, c)| {
                needle
                    .as_deref()
                    .is_none_or(|n| c.name.to_lowercase().contains(n))
            })
            .filter(|(id, _)| {
                fqdn.is_none_or(|f| {
                    self.fqdns
                        .values()
                        .any(|x| x.connection_id == **id && x.fqdn == f)
                })
            })
            .map(|(id, c)| Self::connection_json(*id, c))
            .collect();
        Ok(paged(items, &page))
    }

    fn own_connection(&self, account: &str, id: &str) -> Result<u64, ApiError> {
        parse_id(id)
            .filter(|i| {
                self.connections
                    .get(i)
                    .is_some_and(|c| c.account == account)
            })
            .ok_or_else(ApiError::not_found)
    }

    pub fn get_connection(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_connection(account, id)?;
        Ok(json!({"data": Self::connection_json(id, &self.connections[&id])}))
    }

    /// Apply the fields of a create or update body to `c`.
    fn apply_connection(
        &self,
        account: &str,
        own_id: Option<u64>,
        c: &mut Connection,
        obj: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        if let Some(name) = string_field(obj, "connection_name", "/connection_name")? {
            if name.trim().is_empty() {
                return Err(ApiError::invalid_field(
                    "/connection_name",
                    "connection_name must not be blank",
                ));
            }
            name.clone_into(&mut c.name);
        }
        match obj.get("active") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => c.active = *b,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "/active",
                    "active must be a boolean",
                ));
            }
        }
        if let Some(t) = one_of(
            obj,
            "transport_protocol",
            "/transport_protocol",
            &TRANSPORTS,
        )? {
            c.transport_protocol = t;
        }
        if let Some(tags) = obj.get("tags") {
            c.tags = tags
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .ok_or_else(|| ApiError::invalid_field("/tags", "tags must be strings"))?
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        }
        if let Some(outbound) = obj.get("outbound") {
            self.apply_connection_outbound(account, c, outbound)?;
        }
        let Some(inbound) = obj.get("inbound") else {
            return Ok(());
        };
        let inbound = inbound
            .as_object()
            .ok_or_else(|| ApiError::invalid_field("/inbound", "inbound must be an object"))?;
        if let Some(f) = one_of(
            inbound,
            "ani_number_format",
            "/inbound/ani_number_format",
            &ANI_FORMATS,
        )? {
            c.ani_number_format = f;
        }
        if let Some(f) = one_of(
            inbound,
            "dnis_number_format",
            "/inbound/dnis_number_format",
            &DNIS_FORMATS,
        )? {
            c.dnis_number_format = f;
        }
        if let Some(m) = one_of(
            inbound,
            "default_routing_method",
            "/inbound/default_routing_method",
            &ROUTING_METHODS,
        )? {
            c.routing_method = m;
        }
        for (name, slot) in [
            ("default_primary_fqdn_id", &mut c.primary_fqdn),
            ("default_secondary_fqdn_id", &mut c.secondary_fqdn),
            ("default_tertiary_fqdn_id", &mut c.tertiary_fqdn),
        ] {
            let pointer = format!("/inbound/{name}");
            match inbound.get(name) {
                None => {}
                Some(Value::Null) => *slot = None,
                Some(Value::String(s)) => {
                    // An FQDN of this very connection: a new connection has none yet.
                    let f = parse_id(s)
                        .filter(|f| {
                            self.fqdns.get(f).is_some_and(|x| {
                                x.account == account && Some(x.connection_id) == own_id
                            })
                        })
                        .ok_or_else(|| {
                            ApiError::invalid_field(
                                &pointer,
                                &format!("{name} is not an FQDN of this connection"),
                            )
                        })?;
                    *slot = Some(f);
                }
                Some(_) => {
                    return Err(ApiError::invalid_field(
                        &pointer,
                        &format!("{name} must be a string"),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn create_connection(
        &mut self,
        account: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let obj = body_object(body)?;
        if string_field(obj, "connection_name", "/connection_name")?.is_none() {
            return Err(ApiError::invalid_field(
                "/connection_name",
                "connection_name is required",
            ));
        }
        let mut c = Connection::new(account, "");
        self.apply_connection(account, None, &mut c, obj)?;
        let id = self.next_id();
        let out = json!({"data": Self::connection_json(id, &c)});
        self.connections.insert(id, c);
        Ok(out)
    }

    pub fn update_connection(
        &mut self,
        account: &str,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let id = self.own_connection(account, id)?;
        let obj = body_object(body)?;
        let mut c = self.connections[&id].clone();
        self.apply_connection(account, Some(id), &mut c, obj)?;
        c.updated = Utc::now();
        let out = json!({"data": Self::connection_json(id, &c)});
        self.connections.insert(id, c);
        Ok(out)
    }

    /// Telnyx refuses to delete a connection that numbers still use (the emulator's reading
    /// of it: 422 on `/`); its FQDNs go with it.
    pub fn delete_connection(&mut self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_connection(account, id)?;
        if self.numbers.values().any(|n| n.connection_id == Some(id)) {
            return Err(ApiError::invalid_field(
                "/",
                "The connection is still assigned to phone numbers.",
            ));
        }
        let out = json!({"data": Self::connection_json(id, &self.connections[&id])});
        self.remove_connection(id);
        Ok(out)
    }

    /// Remove a connection, its FQDNs, and detach its numbers (the test helper's
    /// "deleted behind trunkline's back").
    pub fn remove_connection(&mut self, id: u64) -> bool {
        self.fqdns.retain(|_, f| f.connection_id != id);
        for n in self.numbers.values_mut() {
            if n.connection_id == Some(id) {
                n.connection_id = None;
            }
        }
        self.connections.remove(&id).is_some()
    }

    // --- FQDNs -----------------------------------------------------------------------------

    fn fqdn_json(id: u64, f: &Fqdn) -> Value {
        json!({
            "id": id.to_string(),
            "record_type": "fqdn",
            "connection_id": f.connection_id.to_string(),
            "fqdn": f.fqdn,
            "port": f.port,
            "dns_record_type": f.dns_record_type,
            "created_at": timestamp(f.created),
            "updated_at": timestamp(f.updated),
        })
    }

    pub fn list_fqdns(&self, account: &str, query: &Params) -> Result<Value, ApiError> {
        let page = page(query, MAX_PAGE_SIZE)?;
        let connection = query.get("filter[connection_id]");
        let fqdn = query.get("filter[fqdn]");
        let items = self
            .fqdns
            .iter()
            .filter(|(_, f)| f.account == account)
            .filter(|(_, f)| connection.is_none_or(|c| f.connection_id.to_string() == c))
            .filter(|(_, f)| fqdn.is_none_or(|x| f.fqdn == x))
            .map(|(id, f)| Self::fqdn_json(*id, f))
            .collect();
        Ok(paged(items, &page))
    }

    fn own_fqdn(&self, account: &str, id: &str) -> Result<u64, ApiError> {
        parse_id(id)
            .filter(|i| self.fqdns.get(i).is_some_and(|f| f.account == account))
            .ok_or_else(ApiError::not_found)
    }

    pub fn get_fqdn(&self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_fqdn(account, id)?;
        Ok(json!({"data": Self::fqdn_json(id, &self.fqdns[&id])}))
    }

    fn apply_fqdn(
        &self,
        account: &str,
        f: &mut Fqdn,
        obj: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        if let Some(c) = string_field(obj, "connection_id", "/connection_id")? {
            f.connection_id = parse_id(c)
                .filter(|c| {
                    self.connections
                        .get(c)
                        .is_some_and(|c| c.account == account)
                })
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "/connection_id",
                        "connection_id is not a connection of this account",
                    )
                })?;
        }
        if let Some(host) = string_field(obj, "fqdn", "/fqdn")? {
            let ok = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(ApiError::invalid_field(
                    "/fqdn",
                    "fqdn must be a fully qualified domain name",
                ));
            }
            host.clone_into(&mut f.fqdn);
        }
        match obj.get("port") {
            None | Some(Value::Null) => {}
            Some(v) => {
                f.port = v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        ApiError::invalid_field("/port", "port must be from 1 to 65535")
                    })?;
            }
        }
        if let Some(t) = one_of(
            obj,
            "dns_record_type",
            "/dns_record_type",
            &DNS_RECORD_TYPES,
        )? {
            f.dns_record_type = t;
        }
        Ok(())
    }

    pub fn create_fqdn(&mut self, account: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let obj = body_object(body)?;
        for required in ["connection_id", "fqdn", "dns_record_type"] {
            if string_field(obj, required, &format!("/{required}"))?.is_none() {
                return Err(ApiError::invalid_field(
                    &format!("/{required}"),
                    &format!("{required} is required"),
                ));
            }
        }
        let now = Utc::now();
        let mut f = Fqdn {
            account: account.to_owned(),
            connection_id: 0,
            fqdn: String::new(),
            port: 5060,
            dns_record_type: String::new(),
            created: now,
            updated: now,
        };
        self.apply_fqdn(account, &mut f, obj)?;
        let id = self.next_id();
        let out = json!({"data": Self::fqdn_json(id, &f)});
        self.fqdns.insert(id, f);
        Ok(out)
    }

    pub fn update_fqdn(
        &mut self,
        account: &str,
        id: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let id = self.own_fqdn(account, id)?;
        let obj = body_object(body)?;
        let mut f = self.fqdns[&id].clone();
        let before = f.connection_id;
        self.apply_fqdn(account, &mut f, obj)?;
        f.updated = Utc::now();
        if f.connection_id != before {
            self.forget_fqdn(id);
        }
        let out = json!({"data": Self::fqdn_json(id, &f)});
        self.fqdns.insert(id, f);
        Ok(out)
    }

    pub fn delete_fqdn(&mut self, account: &str, id: &str) -> Result<Value, ApiError> {
        let id = self.own_fqdn(account, id)?;
        let out = json!({"data": Self::fqdn_json(id, &self.fqdns[&id])});
        self.fqdns.remove(&id);
        self.forget_fqdn(id);
        Ok(out)
    }

    /// A connection's primary/secondary/tertiary FQDN cannot name an FQDN that left it.
    fn forget_fqdn(&mut self, id: u64) {
        for c in self.connections.values_mut() {
            for slot in [
                &mut c.primary_fqdn,
                &mut c.secondary_fqdn,
                &mut c.tertiary_fqdn,
            ] {
                if *slot == Some(id) {
                    *slot = None;
                }
            }
        }
    }
}
