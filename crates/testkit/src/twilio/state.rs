//! The emulator's in-memory Twilio account data and the rules Twilio applies to it.
//!
//! Everything here is synchronous and runs under one mutex; the HTTP layer only parses,
//! authenticates and renders. Errors are [`ApiError`]s carrying Twilio's status and code.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::routes::Params;

/// A Twilio error as it goes on the wire: `{code, message, more_info, status}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            codes::NOT_FOUND,
            format!("The requested resource {path} was not found"),
        )
    }

    pub fn bad_param(message: impl Into<String>) -> Self {
        Self::new(400, codes::BAD_REQUEST, message)
    }

    pub fn body(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        })
    }
}

/// The Twilio error codes the emulator answers with.
pub mod codes {
    /// Authentication failed: unknown or wrong credentials, another account's resource, or a
    /// Standard key on `/Accounts/{sid}`.
    pub const AUTHENTICATE: u32 = 20003;
    /// Method not allowed on the resource.
    pub const METHOD_NOT_ALLOWED: u32 = 20004;
    /// Resource not found.
    pub const NOT_FOUND: u32 = 20404;
    /// The account may not use the product (the emulator's answer for an account without
    /// Elastic SIP Trunking; Twilio documents no dedicated code).
    pub const FORBIDDEN: u32 = 20403;
    /// The request conflicts with the resource's state (the emulator's answer for a number
    /// that is already on a trunk; Twilio does not document the code it uses).
    pub const CONFLICT: u32 = 20409;
    /// Too many requests.
    pub const TOO_MANY_REQUESTS: u32 = 20429;
    /// Internal server error.
    pub const INTERNAL: u32 = 20500;
    /// Service unavailable.
    pub const UNAVAILABLE: u32 = 20503;
    /// Trunk domain name taken or reserved (Twilio keeps a deleted trunk's domain for 30 days).
    pub const DOMAIN_RESERVED: u32 = 21248;
    /// An API key lacks permission for the resource (Restricted keys).
    pub const KEY_LACKS_PERMISSION: u32 = 70051;
    /// Bad request: a parameter is missing, malformed or out of range.
    pub const BAD_REQUEST: u32 = 70002;
}

/// What an API key may do. Twilio's Standard key reaches every resource except
/// `/Accounts` and `/Keys`; a Main key reaches those too; a Restricted key only what it lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPermissions {
    /// Read and update incoming phone numbers (2010 API).
    pub numbers: bool,
    /// Use the Trunking v1 API.
    pub trunking: bool,
    /// A Main key: may also read `/Accounts/{sid}`.
    pub main: bool,
}

impl Default for KeyPermissions {
    /// A Standard key.
    fn default() -> Self {
        Self {
            numbers: true,
            trunking: true,
            main: false,
        }
    }
}

pub(crate) struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub auth_token: String,
    pub trunking_enabled: bool,
    pub created: DateTime<Utc>,
}

pub(crate) struct ApiKey {
    pub account_sid: String,
    pub secret: String,
    pub perms: KeyPermissions,
}

#[derive(Clone)]
pub(crate) struct Number {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_capable: bool,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub voice_application_sid: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub voice_caller_id_lookup: bool,
    pub trunk_sid: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Clone)]
pub(crate) struct Trunk {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: Option<String>,
    pub domain_name: Option<String>,
    pub disaster_recovery_url: Option<String>,
    pub disaster_recovery_method: Option<String>,
    pub transfer_mode: String,
    pub transfer_caller_id: String,
    pub secure: bool,
    pub cnam_lookup_enabled: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Clone)]
pub(crate) struct OriginationUrl {
    pub sid: String,
    pub account_sid: String,
    pub trunk_sid: String,
    pub sip_url: String,
    pub friendly_name: String,
    pub priority: u16,
    pub weight: u16,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Who a request authenticated as.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    AuthToken {
        account: String,
    },
    Key {
        account: String,
        perms: KeyPermissions,
    },
}

impl Principal {
    pub fn account(&self) -> &str {
        match self {
            Self::AuthToken { account } | Self::Key { account, .. } => account,
        }
    }

    fn perms(&self) -> KeyPermissions {
        match self {
            Self::AuthToken { .. } => KeyPermissions {
                numbers: true,
                trunking: true,
                main: true,
            },
            Self::Key { perms, .. } => *perms,
        }
    }
}

#[derive(Default)]
pub(crate) struct Store {
    pub accounts: BTreeMap<String, Account>,
    pub keys: HashMap<String, ApiKey>,
    pub numbers: BTreeMap<String, Number>,
    pub trunks: BTreeMap<String, Trunk>,
    pub origination_urls: BTreeMap<String, OriginationUrl>,
    /// SIP credential lists (`CL…`) and their credentials (`CR…`), and which lists each trunk
    /// uses for termination (trunk sid, list sid).
    pub credential_lists: BTreeMap<String, super::termination::CredentialList>,
    pub credentials: BTreeMap<String, super::termination::SipCredential>,
    pub trunk_credential_lists: std::collections::BTreeSet<(String, String)>,
    /// Domains of deleted trunks: Twilio reserves them (error 21248).
    pub reserved_domains: HashSet<String>,
    /// Sequence for seeded phone numbers, so numbers are distinct across accounts.
    pub next_phone: u64,
}

pub(crate) fn new_sid(prefix: &str) -> String {
    let n: u128 = rand::rng().random();
    format!("{prefix}{n:032x}")
}

pub(crate) fn new_secret() -> String {
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

pub(crate) fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

pub(crate) fn iso8601(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `(415) 555-0100` for NANP numbers, the E.164 form otherwise (what Twilio shows).
pub(crate) fn default_friendly_name(e164: &str) -> String {
    match e164.strip_prefix("+1") {
        Some(d) if d.len() == 10 => format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..]),
        _ => e164.to_owned(),
    }
}

/// Area codes used for seeded numbers, each with ten `55x` exchanges of 10,000 lines.
const SEED_AREAS: [u32; 8] = [415, 628, 510, 650, 408, 707, 925, 831];

impl Store {
    /// The n-th seeded number: `+1 <area> 55x xxxx`, valid NANP numbers that are distinct
    /// for the first 800,000 seeds.
    pub fn seeded_e164(n: u64) -> String {
        let line = n % 10_000;
        let exchange = 550 + (n / 10_000) % 10;
        let area_index = usize::try_from((n / 100_000) % SEED_AREAS.len() as u64).unwrap_or(0);
        format!("+1{}{exchange}{line:04}", SEED_AREAS[area_index])
    }

    pub fn authenticate(&self, user: &str, password: &str) -> Result<Principal, ApiError> {
        let fail = || ApiError::new(401, codes::AUTHENTICATE, "Authenticate");
        if user.starts_with("AC") {
            let account = self.accounts.get(user).ok_or_else(fail)?;
            if !constant_time_eq(account.auth_token.as_bytes(), password.as_bytes()) {
                return Err(fail());
            }
            return Ok(Principal::AuthToken {
                account: account.sid.clone(),
            });
        }
        if user.starts_with("SK") {
            let key = self.keys.get(user).ok_or_else(fail)?;
            if !constant_time_eq(key.secret.as_bytes(), password.as_bytes()) {
                return Err(fail());
            }
            return Ok(Principal::Key {
                account: key.account_sid.clone(),
                perms: key.perms,
            });
        }
        Err(fail())
    }

    // --- authorization -------------------------------------------------------------------

    /// 2010 API: the path's account must be the caller's.
    pub fn authorize_account_path(
        principal: &Principal,
        path_account: &str,
    ) -> Result<(), ApiError> {
        if principal.account() == path_account {
            Ok(())
        } else {
            Err(ApiError::new(401, codes::AUTHENTICATE, "Authenticate"))
        }
    }

    pub fn authorize_numbers(principal: &Principal) -> Result<(), ApiError> {
        if principal.perms().numbers {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                codes::KEY_LACKS_PERMISSION,
                "Authorization Error: the API key lacks permission for this resource",
            ))
        }
    }

    pub fn authorize_trunking(&self, principal: &Principal) -> Result<(), ApiError> {
        if !principal.perms().trunking {
            return Err(ApiError::new(
                403,
                codes::KEY_LACKS_PERMISSION,
                "Authorization Error: the API key lacks permission for this resource",
            ));
        }
        let enabled = self
            .accounts
            .get(principal.account())
            .is_some_and(|a| a.trunking_enabled);
        if enabled {
            Ok(())
        } else {
            Err(ApiError::new(
                403,
                codes::FORBIDDEN,
                "Elastic SIP Trunking is not enabled for this account",
            ))
        }
    }

    // --- accounts --------------------------------------------------------------------------

    pub fn fetch_account(&self, principal: &Principal, sid: &str) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, sid)?;
        if !principal.perms().main {
            // What Twilio answers a Standard or Restricted key on /Accounts.
            return Err(ApiError::new(
                401,
                codes::AUTHENTICATE,
                "Authentication Error - invalid username",
            ));
        }
        let a = self
            .accounts
            .get(sid)
            .ok_or_else(|| ApiError::not_found(&format!("/2010-04-01/Accounts/{sid}.json")))?;
        let base = format!("/2010-04-01/Accounts/{sid}");
        let subresources: serde_json::Map<String, Value> = [
            ("incoming_phone_numbers", "IncomingPhoneNumbers"),
            ("calls", "Calls"),
            ("applications", "Applications"),
            ("keys", "Keys"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(format!("{base}/{v}.json"))))
        .collect();
        Ok(json!({
            "auth_token": a.auth_token,
            "date_created": rfc2822(a.created),
            "date_updated": rfc2822(a.created),
            "friendly_name": a.friendly_name,
            "owner_account_sid": a.sid,
            "sid": a.sid,
            "status": "active",
            "subresource_uris": subresources,
            "type": "Full",
            "uri": format!("{base}.json"),
        }))
    }

    // --- incoming phone numbers -----------------------------------------------------------

    pub fn number_json(n: &Number) -> Value {
        json!({
            "account_sid": n.account_sid,
            "address_sid": null,
            "address_requirements": "none",
            "api_version": "2010-04-01",
            "beta": false,
            "capabilities": {"voice": n.voice_capable, "sms": true, "mms": true, "fax": false},
            "date_created": rfc2822(n.created),
            "date_updated": rfc2822(n.updated),
            "friendly_name": n.friendly_name,
            "identity_sid": null,
            "phone_number": n.phone_number,
            "origin": "twilio",
            "sid": n.sid,
            "sms_application_sid": null,
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            // Twilio answers "" rather than null for an unset status callback.
            "status_callback": n.status_callback.clone().unwrap_or_default(),
            "status_callback_method": n.status_callback_method,
            "trunk_sid": n.trunk_sid,
            "uri": format!("/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{}.json", n.account_sid, n.sid),
            "voice_receive_mode": "voice",
            "voice_application_sid": n.voice_application_sid,
            "voice_caller_id_lookup": n.voice_caller_id_lookup,
            "voice_fallback_method": n.voice_fallback_method,
            "voice_fallback_url": n.voice_fallback_url,
            "voice_method": n.voice_method,
            "voice_url": n.voice_url,
            "emergency_status": "Inactive",
            "emergency_address_sid": null,
            "emergency_address_status": "unregistered",
            "bundle_sid": null,
            "status": "in-use",
            "type": "local",
        })
    }

    pub fn list_numbers(
        &self,
        principal: &Principal,
        account: &str,
        query: &Params,
    ) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        let paging = Paging::parse(query)?;
        let phone_filter = query.get("PhoneNumber");
        let name_filter = query.get("FriendlyName");
        let items: Vec<&Number> = self
            .numbers
            .values()
            .filter(|n| n.account_sid == account)
            .filter(|n| phone_filter.is_none_or(|p| n.phone_number == p))
            .filter(|n| name_filter.is_none_or(|f| n.friendly_name == f))
            .collect();
        let mut filters = Vec::new();
        if let Some(p) = phone_filter {
            filters.push(("PhoneNumber", p.to_owned()));
        }
        if let Some(f) = name_filter {
            filters.push(("FriendlyName", f.to_owned()));
        }
        let page = paging.slice(&items, |n| n.sid.as_str());
        let path = format!("/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json");
        let uri = |q: String| format!("{path}?{q}");
        let rendered: Vec<Value> = page.items.iter().map(|n| Self::number_json(n)).collect();
        let start = paging.page * paging.page_size;
        let end = if rendered.is_empty() {
            start
        } else {
            start + rendered.len() - 1
        };
        Ok(json!({
            "end": end,
            "first_page_uri": uri(paging.first_query(&filters)),
            "next_page_uri": page.next_token.as_ref().map(|t| uri(paging.next_query(&filters, t))),
            "page": paging.page,
            "page_size": paging.page_size,
            "previous_page_uri": page.prev_token.as_ref().map(|t| uri(paging.prev_query(&filters, t))),
            "start": start,
            "uri": uri(paging.current_query(&filters)),
            "incoming_phone_numbers": rendered,
        }))
    }

    fn owned_number(&self, account: &str, sid: &str) -> Result<&Number, ApiError> {
        self.numbers
            .get(sid)
            .filter(|n| n.account_sid == account)
            .ok_or_else(|| {
                ApiError::not_found(&format!(
                    "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json"
                ))
            })
    }

    pub fn fetch_number(
        &self,
        principal: &Principal,
        account: &str,
        sid: &str,
    ) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        Ok(Self::number_json(self.owned_number(account, sid)?))
    }

    /// Twilio's rules: setting `TrunkSid` clears the voice application and vice versa; an
    /// empty value clears the field.
    pub fn update_number(
        &mut self,
        principal: &Principal,
        account: &str,
        sid: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        self.owned_number(account, sid)?;
        let trunk = form.get("TrunkSid");
        let app = form.get("VoiceApplicationSid");
        if let Some(t) = trunk.filter(|t| !t.is_empty()) {
            check_sid("TrunkSid", t, "TK")?;
            let own_trunk = self
                .trunks
                .get(t)
                .is_some_and(|tr| tr.account_sid == account);
            if !own_trunk {
                return Err(ApiError::bad_param(format!(
                    "TrunkSid {t} is not a trunk of this account"
                )));
            }
            if app.is_some_and(|a| !a.is_empty()) {
                return Err(ApiError::bad_param(
                    "TrunkSid and VoiceApplicationSid cannot both be set",
                ));
            }
        }
        if let Some(a) = app.filter(|a| !a.is_empty()) {
            check_sid("VoiceApplicationSid", a, "AP")?;
        }
        let mut updated = self.numbers[sid].clone();
        for (name, field) in [
            ("VoiceUrl", &mut updated.voice_url),
            ("VoiceFallbackUrl", &mut updated.voice_fallback_url),
            ("StatusCallback", &mut updated.status_callback),
        ] {
            if let Some(v) = form.get(name) {
                *field = optional_url(name, v)?;
            }
        }
        for (name, field) in [
            ("VoiceMethod", &mut updated.voice_method),
            ("VoiceFallbackMethod", &mut updated.voice_fallback_method),
            ("StatusCallbackMethod", &mut updated.status_callback_method),
        ] {
            if let Some(v) = form.get(name) {
                *field = http_method(name, v)?;
            }
        }
        if let Some(v) = form.get("FriendlyName") {
            if v.chars().count() > 64 {
                return Err(ApiError::bad_param(
                    "FriendlyName must be at most 64 characters",
                ));
            }
            v.clone_into(&mut updated.friendly_name);
        }
        if let Some(v) = form.get("VoiceCallerIdLookup") {
            updated.voice_caller_id_lookup = boolean("VoiceCallerIdLookup", v)?;
        }
        if let Some(a) = app {
            updated.voice_application_sid = non_empty(a);
            if !a.is_empty() {
                updated.trunk_sid = None;
            }
        }
        if let Some(t) = trunk {
            updated.trunk_sid = non_empty(t);
            if !t.is_empty() {
                updated.voice_application_sid = None;
            }
        }
        updated.updated = Utc::now();
        let json = Self::number_json(&updated);
        self.numbers.insert(sid.to_owned(), updated);
        Ok(json)
    }

    // --- trunks ----------------------------------------------------------------------------

    fn trunk_json(base: &str, t: &Trunk) -> Value {
        let url = format!("{base}/v1/Trunks/{}", t.sid);
        json!({
            "account_sid": t.account_sid,
            "domain_name": t.domain_name,
            "disaster_recovery_method": t.disaster_recovery_method,
            "disaster_recovery_url": t.disaster_recovery_url,
            "friendly_name": t.friendly_name,
            "secure": t.secure,
            "recording": {"mode": "do-not-record", "trim": "do-not-trim"},
            "transfer_mode": t.transfer_mode,
            "transfer_caller_id": t.transfer_caller_id,
            "cnam_lookup_enabled": t.cnam_lookup_enabled,
            "auth_type": "",
            "symmetric_rtp_enabled": false,
            "auth_type_set": [],
            "date_created": iso8601(t.created),
            "date_updated": iso8601(t.updated),
            "sid": t.sid,
            "url": url,
            "links": {
                "origination_urls": format!("{url}/OriginationUrls"),
                "credential_lists": format!("{url}/CredentialLists"),
                "ip_access_control_lists": format!("{url}/IpAccessControlLists"),
                "phone_numbers": format!("{url}/PhoneNumbers"),
                "recording": format!("{url}/Recording"),
            },
        })
    }

    fn owned_trunk(&self, account: &str, sid: &str) -> Result<&Trunk, ApiError> {
        self.trunks
            .get(sid)
            .filter(|t| t.account_sid == account)
            .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{sid}")))
    }

    pub fn list_trunks(
        &self,
        base: &str,
        principal: &Principal,
        query: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let items: Vec<&Trunk> = self
            .trunks
            .values()
            .filter(|t| t.account_sid == principal.account())
            .collect();
        let rendered = |t: &&Trunk| Self::trunk_json(base, t);
        v1_list(
            base,
            "/v1/Trunks",
            "trunks",
            query,
            &items,
            |t| &t.sid,
            rendered,
        )
    }

    pub fn create_trunk(
        &mut self,
        base: &str,
        principal: &Principal,
        form: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let now = Utc::now();
        let mut trunk = Trunk {
            sid: new_sid("TK"),
            account_sid: principal.account().to_owned(),
            friendly_name: None,
            domain_name: None,
            disaster_recovery_url: None,
            disaster_recovery_method: None,
            transfer_mode: "disable-all".to_owned(),
            transfer_caller_id: "from-transferee".to_owned(),
            secure: false,
            cnam_lookup_enabled: false,
            created: now,
            updated: now,
        };
        self.apply_trunk_form(&mut trunk, form)?;
        let json = Self::trunk_json(base, &trunk);
        self.trunks.insert(trunk.sid.clone(), trunk);
        Ok(json)
    }

    fn apply_trunk_form(&self, trunk: &mut Trunk, form: &Params) -> Result<(), ApiError> {
        if let Some(v) = form.get("FriendlyName") {
            if v.chars().count() > 64 {
                return Err(ApiError::bad_param(
                    "FriendlyName must be at most 64 characters",
                ));
            }
            trunk.friendly_name = non_empty(v);
        }
        if let Some(v) = form.get("DomainName") {
            let d = v.to_ascii_lowercase();
            if !d.is_empty() {
                let label = d.strip_suffix(".pstn.twilio.com").unwrap_or_default();
                let ok = !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !ok {
                    return Err(ApiError::bad_param(
                        "DomainName must contain letters, digits and '-' and end with pstn.twilio.com",
                    ));
                }
                let taken = self.reserved_domains.contains(&d)
                    || self
                        .trunks
                        .values()
                        .any(|t| t.sid != trunk.sid && t.domain_name.as_deref() == Some(&d));
                if taken {
                    return Err(ApiError::new(
                        409,
                        codes::DOMAIN_RESERVED,
                        "The domain name is in use or reserved",
                    ));
                }
            }
            trunk.domain_name = non_empty(&d);
        }
        if let Some(v) = form.get("DisasterRecoveryUrl") {
            trunk.disaster_recovery_url = optional_url("DisasterRecoveryUrl", v)?;
        }
        if let Some(v) = form.get("DisasterRecoveryMethod") {
            trunk.disaster_recovery_method = Some(http_method("DisasterRecoveryMethod", v)?);
        }
        if let Some(v) = form.get("TransferMode") {
            trunk.transfer_mode = one_of(
                "TransferMode",
                v,
                &["disable-all", "enable-all", "sip-only"],
            )?;
        }
        if let Some(v) = form.get("TransferCallerId") {
            trunk.transfer_caller_id = one_of(
                "TransferCallerId",
                v,
                &["from-transferee", "from-transferor"],
            )?;
        }
        if let Some(v) = form.get("Secure") {
            trunk.secure = boolean("Secure", v)?;
        }
        if let Some(v) = form.get("CnamLookupEnabled") {
            trunk.cnam_lookup_enabled = boolean("CnamLookupEnabled", v)?;
        }
        trunk.updated = Utc::now();
        Ok(())
    }

    pub fn fetch_trunk(
        &self,
        base: &str,
        principal: &Principal,
        sid: &str,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        Ok(Self::trunk_json(
            base,
            self.owned_trunk(principal.account(), sid)?,
        ))
    }

    pub fn update_trunk(
        &mut self,
        base: &str,
        principal: &Principal,
        sid: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let mut trunk = self.owned_trunk(principal.account(), sid)?.clone();
        self.apply_trunk_form(&mut trunk, form)?;
        let json = Self::trunk_json(base, &trunk);
        self.trunks.insert(sid.to_owned(), trunk);
        Ok(json)
    }

    pub fn delete_trunk(&mut self, principal: &Principal, sid: &str) -> Result<(), ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_trunk(principal.account(), sid)?;
        self.remove_trunk(sid);
        Ok(())
    }

    /// Delete a trunk the way Twilio does: its origination URLs go, its numbers are released,
    /// its domain name stays reserved.
    pub fn remove_trunk(&mut self, sid: &str) -> bool {
        let Some(trunk) = self.trunks.remove(sid) else {
            return false;
        };
        if let Some(d) = trunk.domain_name {
            self.reserved_domains.insert(d);
        }
        self.origination_urls.retain(|_, o| o.trunk_sid != sid);
        self.trunk_credential_lists.retain(|(t, _)| t != sid);
        for n in self.numbers.values_mut() {
            if n.trunk_sid.as_deref() == Some(sid) {
                n.trunk_sid = None;
                n.updated = Utc::now();
            }
        }
        true
    }

    // --- origination URLs -------------------------------------------------------------------

    fn origination_url_json(base: &str, o: &OriginationUrl) -> Value {
        json!({
            "account_sid": o.account_sid,
            "sid": o.sid,
            "trunk_sid": o.trunk_sid,
            "weight": o.weight,
            "enabled": o.enabled,
            "sip_url": o.sip_url,
            "friendly_name": o.friendly_name,
            "priority": o.priority,
            "date_created": iso8601(o.created),
            "date_updated": iso8601(o.updated),
            "url": format!("{base}/v1/Trunks/{}/OriginationUrls/{}", o.trunk_sid, o.sid),
        })
    }

    fn owned_origination_url(
        &self,
        account: &str,
        trunk: &str,
        sid: &str,
    ) -> Result<&OriginationUrl, ApiError> {
        self.owned_trunk(account, trunk)?;
        self.origination_urls
            .get(sid)
            .filter(|o| o.trunk_sid == trunk)
            .ok_or_else(|| {
                ApiError::not_found(&format!("/v1/Trunks/{trunk}/OriginationUrls/{sid}"))
            })
    }

    pub fn list_origination_urls(
        &self,
        base: &str,
        principal: &Principal,
        trunk: &str,
        query: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_trunk(principal.account(), trunk)?;
        let items: Vec<&OriginationUrl> = self
            .origination_urls
            .values()
            .filter(|o| o.trunk_sid == trunk)
            .collect();
        let path = format!("/v1/Trunks/{trunk}/OriginationUrls");
        v1_list(
            base,
            &path,
            "origination_urls",
            query,
            &items,
            |o| &o.sid,
            |o| Self::origination_url_json(base, o),
        )
    }

    pub fn create_origination_url(
        &mut self,
        base: &str,
        principal: &Principal,
        trunk: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_trunk(principal.account(), trunk)?;
        for required in ["Weight", "Priority", "Enabled", "FriendlyName", "SipUrl"] {
            if form.get(required).is_none() {
                return Err(ApiError::bad_param(format!(
                    "Missing required parameter {required} in the post body"
                )));
            }
        }
        let now = Utc::now();
        let mut o = OriginationUrl {
            sid: new_sid("OU"),
            account_sid: principal.account().to_owned(),
            trunk_sid: trunk.to_owned(),
            sip_url: String::new(),
            friendly_name: String::new(),
            priority: 0,
            weight: 0,
            enabled: false,
            created: now,
            updated: now,
        };
        apply_origination_form(&mut o, form)?;
        let json = Self::origination_url_json(base, &o);
        self.origination_urls.insert(o.sid.clone(), o);
        Ok(json)
    }

    pub fn fetch_origination_url(
        &self,
        base: &str,
        principal: &Principal,
        trunk: &str,
        sid: &str,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let o = self.owned_origination_url(principal.account(), trunk, sid)?;
        Ok(Self::origination_url_json(base, o))
    }

    pub fn update_origination_url(
        &mut self,
        base: &str,
        principal: &Principal,
        trunk: &str,
        sid: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let mut o = self
            .owned_origination_url(principal.account(), trunk, sid)?
            .clone();
        apply_origination_form(&mut o, form)?;
        let json = Self::origination_url_json(base, &o);
        self.origination_urls.insert(sid.to_owned(), o);
        Ok(json)
    }

    pub fn delete_origination_url(
        &mut self,
        principal: &Principal,
        trunk: &str,
        sid: &str,
    ) -> Result<(), ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_origination_url(principal.account(), trunk, sid)?;
        self.origination_urls.remove(sid);
        Ok(())
    }

    // --- trunk phone numbers ----------------------------------------------------------------

    fn trunk_number_json(trunking_base: &str, api_base: &str, n: &Number) -> Value {
        let trunk = n.trunk_sid.clone().unwrap_or_default();
        json!({
            "account_sid": n.account_sid,
            "address_requirements": "none",
            "api_version": "2010-04-01",
            "beta": false,
            "capabilities": {"voice": n.voice_capable, "sms": true, "mms": true, "fax": false},
            "date_created": iso8601(n.created),
            "date_updated": iso8601(n.updated),
            "friendly_name": n.friendly_name,
            "links": {
                "phone_number": format!(
                    "{api_base}/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{}",
                    n.account_sid, n.sid
                ),
            },
            "phone_number": n.phone_number,
            "sid": n.sid,
            "sms_application_sid": null,
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": n.status_callback.clone().unwrap_or_default(),
            "status_callback_method": n.status_callback_method,
            "trunk_sid": n.trunk_sid,
            "url": format!("{trunking_base}/v1/Trunks/{trunk}/PhoneNumbers/{}", n.sid),
            "voice_application_sid": n.voice_application_sid,
            "voice_caller_id_lookup": n.voice_caller_id_lookup,
            "voice_fallback_method": n.voice_fallback_method,
            "voice_fallback_url": n.voice_fallback_url,
            "voice_method": n.voice_method,
            "voice_url": n.voice_url,
        })
    }

    pub fn list_trunk_numbers(
        &self,
        bases: (&str, &str),
        principal: &Principal,
        trunk: &str,
        query: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_trunk(principal.account(), trunk)?;
        let items: Vec<&Number> = self
            .numbers
            .values()
            .filter(|n| n.trunk_sid.as_deref() == Some(trunk))
            .collect();
        let path = format!("/v1/Trunks/{trunk}/PhoneNumbers");
        v1_list(
            bases.0,
            &path,
            "phone_numbers",
            query,
            &items,
            |n| &n.sid,
            |n| Self::trunk_number_json(bases.0, bases.1, n),
        )
    }

    /// Attach a number: sets its trunk and clears its voice application, as Twilio does. A
    /// number already on a trunk (this one or another) is refused with 409.
    pub fn create_trunk_number(
        &mut self,
        bases: (&str, &str),
        principal: &Principal,
        trunk: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        self.owned_trunk(principal.account(), trunk)?;
        let Some(pn) = form.get("PhoneNumberSid") else {
            return Err(ApiError::bad_param(
                "Missing required parameter PhoneNumberSid in the post body",
            ));
        };
        check_sid("PhoneNumberSid", pn, "PN")?;
        let number = self
            .numbers
            .get(pn)
            .filter(|n| n.account_sid == principal.account())
            .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{trunk}/PhoneNumbers/{pn}")))?;
        if let Some(current) = &number.trunk_sid {
            let message = if current == trunk {
                "The phone number is already associated with this trunk".to_owned()
            } else {
                format!("The phone number is already associated with trunk {current}")
            };
            return Err(ApiError::new(409, codes::CONFLICT, message));
        }
        let mut updated = number.clone();
        updated.trunk_sid = Some(trunk.to_owned());
        updated.voice_application_sid = None;
        updated.updated = Utc::now();
        let json = Self::trunk_number_json(bases.0, bases.1, &updated);
        self.numbers.insert(pn.to_owned(), updated);
        Ok(json)
    }

    fn attached_number(&self, account: &str, trunk: &str, sid: &str) -> Result<&Number, ApiError> {
        self.owned_trunk(account, trunk)?;
        self.numbers
            .get(sid)
            .filter(|n| n.account_sid == account && n.trunk_sid.as_deref() == Some(trunk))
            .ok_or_else(|| ApiError::not_found(&format!("/v1/Trunks/{trunk}/PhoneNumbers/{sid}")))
    }

    pub fn fetch_trunk_number(
        &self,
        bases: (&str, &str),
        principal: &Principal,
        trunk: &str,
        sid: &str,
    ) -> Result<Value, ApiError> {
        self.authorize_trunking(principal)?;
        let n = self.attached_number(principal.account(), trunk, sid)?;
        Ok(Self::trunk_number_json(bases.0, bases.1, n))
    }

    pub fn delete_trunk_number(
        &mut self,
        principal: &Principal,
        trunk: &str,
        sid: &str,
    ) -> Result<(), ApiError> {
        self.authorize_trunking(principal)?;
        self.attached_number(principal.account(), trunk, sid)?;
        if let Some(n) = self.numbers.get_mut(sid) {
            n.trunk_sid = None;
            n.updated = Utc::now();
        }
        Ok(())
    }
}

fn apply_origination_form(o: &mut OriginationUrl, form: &Params) -> Result<(), ApiError> {
    if let Some(v) = form.get("Weight") {
        o.weight = u16_param("Weight", v)?;
    }
    if let Some(v) = form.get("Priority") {
        o.priority = u16_param("Priority", v)?;
    }
    if let Some(v) = form.get("Enabled") {
        o.enabled = boolean("Enabled", v)?;
    }
    if let Some(v) = form.get("FriendlyName") {
        if v.chars().count() > 64 {
            return Err(ApiError::bad_param(
                "FriendlyName must be at most 64 characters",
            ));
        }
        v.clone_into(&mut o.friendly_name);
    }
    if let Some(v) = form.get("SipUrl") {
        let ok = v.len() > 4
            && v[..4].eq_ignore_ascii_case("sip:")
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(ApiError::bad_param("SipUrl must be a sip: URI"));
        }
        v.clone_into(&mut o.sip_url);
    }
    o.updated = Utc::now();
    Ok(())
}

/// Compare secrets without an early exit, as a real service would.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn check_sid(name: &str, v: &str, prefix: &str) -> Result<(), ApiError> {
    let ok =
        v.len() == 34 && v.starts_with(prefix) && v[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_param(format!(
            "{name} must be a {prefix} SID"
        )))
    }
}

fn optional_url(name: &str, v: &str) -> Result<Option<String>, ApiError> {
    if v.is_empty() {
        return Ok(None);
    }
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(v.to_owned())),
        _ => Err(ApiError::bad_param(format!(
            "{name} must be an http(s) URL"
        ))),
    }
}

fn http_method(name: &str, v: &str) -> Result<String, ApiError> {
    match v.to_ascii_uppercase().as_str() {
        m @ ("GET" | "POST") => Ok(m.to_owned()),
        _ => Err(ApiError::bad_param(format!("{name} must be GET or POST"))),
    }
}

fn boolean(name: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_param(format!("{name} must be true or false"))),
    }
}

fn u16_param(name: &str, v: &str) -> Result<u16, ApiError> {
    v.parse::<u16>()
        .map_err(|_| ApiError::bad_param(format!("{name} must be an integer from 0 to 65535")))
}

fn one_of(name: &str, v: &str, allowed: &[&str]) -> Result<String, ApiError> {
    allowed
        .iter()
        .find(|a| **a == v)
        .map(|a| (*a).to_owned())
        .ok_or_else(|| ApiError::bad_param(format!("{name} must be one of {}", allowed.join(", "))))
}

// --- paging ----------------------------------------------------------------------------------

/// Twilio's paging parameters: `PageSize` (1..=1000, default 50), `Page` (index) and
/// `PageToken` (`PA<sid>` = after that sid, `PB<sid>` = before it).
pub(crate) struct Paging {
    pub page_size: usize,
    pub page: usize,
    pub token: Option<PageToken>,
}

pub(crate) enum PageToken {
    After(String),
    Before(String),
}

pub(crate) struct PageSlice<'a, T> {
    pub items: &'a [T],
    pub next_token: Option<String>,
    pub prev_token: Option<String>,
}

impl Paging {
    pub const DEFAULT_PAGE_SIZE: usize = 50;
    pub const MAX_PAGE_SIZE: usize = 1000;

    pub fn parse(query: &Params) -> Result<Self, ApiError> {
        let page_size = match query.get("PageSize") {
            None => Self::DEFAULT_PAGE_SIZE,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=Self::MAX_PAGE_SIZE).contains(n))
                .ok_or_else(|| ApiError::bad_param("PageSize must be an integer from 1 to 1000"))?,
        };
        let page = match query.get("Page") {
            None => 0,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::bad_param("Page must be a non-negative integer"))?,
        };
        let token = match query.get("PageToken") {
            None => None,
            Some(t) => Some(if let Some(sid) = t.strip_prefix("PA") {
                PageToken::After(sid.to_owned())
            } else if let Some(sid) = t.strip_prefix("PB") {
                PageToken::Before(sid.to_owned())
            } else {
                return Err(ApiError::bad_param("PageToken is not valid"));
            }),
        };
        Ok(Self {
            page_size,
            page,
            token,
        })
    }

    /// The page of `items` (sorted by `key`) this request asks for, with the tokens of the
    /// neighbouring pages.
    pub fn slice<'a, T>(&self, items: &'a [T], key: impl Fn(&T) -> &str) -> PageSlice<'a, T> {
        let (start, end) = match &self.token {
            Some(PageToken::After(sid)) => {
                let start = items.partition_point(|i| key(i) <= sid.as_str());
                (start, (start + self.page_size).min(items.len()))
            }
            Some(PageToken::Before(sid)) => {
                let end = items.partition_point(|i| key(i) < sid.as_str());
                (end.saturating_sub(self.page_size), end)
            }
            None => {
                let start = self.page.saturating_mul(self.page_size).min(items.len());
                (start, (start + self.page_size).min(items.len()))
            }
        };
        let slice = &items[start..end];
        let next_token = (end < items.len())
            .then(|| slice.last().map(|l| format!("PA{}", key(l))))
            .flatten();
        let prev_token = (self.page > 0 && start > 0)
            .then(|| slice.first().map(|f| format!("PB{}", key(f))))
            .flatten();
        PageSlice {
            items: slice,
            next_token,
            prev_token,
        }
    }

    fn query(
        filters: &[(&str, String)],
        page_size: usize,
        page: usize,
        token: Option<&str>,
    ) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in filters {
            s.append_pair(k, v);
        }
        s.append_pair("PageSize", &page_size.to_string());
        s.append_pair("Page", &page.to_string());
        if let Some(t) = token {
            s.append_pair("PageToken", t);
        }
        s.finish()
    }

    pub fn first_query(&self, filters: &[(&str, String)]) -> String {
        Self::query(filters, self.page_size, 0, None)
    }

    pub fn current_query(&self, filters: &[(&str, String)]) -> String {
        let token = self.token.as_ref().map(|t| match t {
            PageToken::After(s) => format!("PA{s}"),
            PageToken::Before(s) => format!("PB{s}"),
        });
        Self::query(filters, self.page_size, self.page, token.as_deref())
    }

    pub fn next_query(&self, filters: &[(&str, String)], token: &str) -> String {
        Self::query(filters, self.page_size, self.page + 1, Some(token))
    }

    pub fn prev_query(&self, filters: &[(&str, String)], token: &str) -> String {
        Self::query(
            filters,
            self.page_size,
            self.page.saturating_sub(1),
            Some(token),
        )
    }
}

/// A Trunking v1 list page: the items under `key` and a `meta` block with absolute URLs.
pub(crate) fn v1_list<T>(
    base: &str,
    path: &str,
    key: &str,
    query: &Params,
    items: &[T],
    sid: impl Fn(&T) -> &str,
    render: impl Fn(&T) -> Value,
) -> Result<Value, ApiError> {
    let paging = Paging::parse(query)?;
    let page = paging.slice(items, sid);
    let url = |q: String| format!("{base}{path}?{q}");
    let rendered: Vec<Value> = page.items.iter().map(render).collect();
    let mut body = serde_json::Map::new();
    body.insert(
        "meta".to_owned(),
        json!({
            "first_page_url": url(paging.first_query(&[])),
            "key": key,
            "next_page_url": page.next_token.as_ref().map(|t| url(paging.next_query(&[], t))),
            "page": paging.page,
            "page_size": paging.page_size,
            "previous_page_url": page.prev_token.as_ref().map(|t| url(paging.prev_query(&[], t))),
            "url": url(paging.current_query(&[])),
        }),
    );
    body.insert(key.to_owned(), Value::Array(rendered));
    Ok(Value::Object(body))
}
