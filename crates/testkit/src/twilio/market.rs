//! Numbers for sale: `AvailablePhoneNumbers/{Country}/{Local|TollFree|Mobile}.json`, buying
//! one (`POST IncomingPhoneNumbers.json`) and releasing one (`DELETE
//! IncomingPhoneNumbers/{Sid}.json`), with Twilio's rules: a bought number leaves the
//! inventory, buying one that is not for sale is 400 / 21422, a released number is gone.

use chrono::Utc;
use serde_json::{Value, json};

use super::routes::Params;
use super::state::{ApiError, Number, Principal, Store, default_friendly_name, new_sid};

/// Twilio's code for "phone number not available".
pub const NOT_AVAILABLE: u32 = 21422;

/// A number in the emulator's inventory.
#[derive(Debug, Clone)]
pub(crate) struct ForSale {
    pub e164: String,
    pub country: String,
    /// `Local`, `TollFree` or `Mobile`, as the path names the type.
    pub kind: &'static str,
    pub region: String,
    pub locality: String,
}

/// `Contains`: digits, letters (ignored here) and `*` for any one digit, matched anywhere.
fn contains(e164: &str, pattern: &str) -> bool {
    let digits: Vec<char> = e164.trim_start_matches('+').chars().collect();
    let pat: Vec<char> = pattern.chars().collect();
    if pat.is_empty() || pat.len() > digits.len() {
        return pat.is_empty();
    }
    (0..=digits.len() - pat.len()).any(|start| {
        pat.iter()
            .zip(&digits[start..])
            .all(|(p, d)| *p == '*' || p == d)
    })
}

/// The national part of a number the emulator sells (NANP: after `+1`).
fn national(e164: &str) -> &str {
    e164.strip_prefix("+1")
        .unwrap_or(e164.trim_start_matches('+'))
}

fn available_json(n: &ForSale) -> Value {
    json!({
        // The spec types this field `phone-number` (E.164), unlike an incoming number's
        // free-text friendly name: the emulator answers what the spec says.
        "friendly_name": n.e164,
        "phone_number": n.e164,
        "lata": "722",
        "locality": n.locality,
        "rate_center": n.locality.to_uppercase(),
        "latitude": 37.77,
        "longitude": -122.41,
        "region": n.region,
        "postal_code": "94105",
        "iso_country": n.country,
        "address_requirements": "none",
        "beta": false,
        "capabilities": {"voice": true, "sms": true, "mms": true, "fax": false},
    })
}

impl Store {
    pub(crate) fn list_available(
        &self,
        principal: &Principal,
        account: &str,
        country: &str,
        kind: &'static str,
        query: &Params,
    ) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        let page_size = match query.get("PageSize") {
            None => 50,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| ApiError::bad_param("PageSize must be from 1 to 1000"))?,
        };
        let area = query.get("AreaCode");
        let pattern = query.get("Contains");
        let items: Vec<Value> = self
            .for_sale
            .values()
            .filter(|n| n.country == country && n.kind == kind)
            .filter(|n| area.is_none_or(|a| national(&n.e164).starts_with(a)))
            .filter(|n| pattern.is_none_or(|p| contains(&n.e164, p)))
            .take(page_size)
            .map(available_json)
            .collect();
        let uri =
            format!("/2010-04-01/Accounts/{account}/AvailablePhoneNumbers/{country}/{kind}.json");
        Ok(json!({
            "end": items.len().saturating_sub(1),
            "first_page_uri": uri,
            "next_page_uri": null,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": null,
            "start": 0,
            "uri": uri,
            "available_phone_numbers": items,
        }))
    }

    pub(crate) fn buy_number(
        &mut self,
        principal: &Principal,
        account: &str,
        form: &Params,
    ) -> Result<Value, ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        let wanted = form
            .get("PhoneNumber")
            .ok_or_else(|| ApiError::bad_param("PhoneNumber or AreaCode is required"))?;
        let Some(sale) = self.for_sale.remove(wanted) else {
            return Err(ApiError::new(
                400,
                NOT_AVAILABLE,
                format!("The requested phone number {wanted} is not available"),
            ));
        };
        let sid = new_sid("PN");
        let now = Utc::now();
        let number = Number {
            sid: sid.clone(),
            account_sid: account.to_owned(),
            phone_number: sale.e164.clone(),
            friendly_name: default_friendly_name(&sale.e164),
            voice_capable: true,
            voice_url: None,
            voice_method: "POST".to_owned(),
            voice_fallback_url: None,
            voice_fallback_method: "POST".to_owned(),
            voice_application_sid: None,
            status_callback: None,
            status_callback_method: "POST".to_owned(),
            voice_caller_id_lookup: false,
            trunk_sid: None,
            created: now,
            updated: now,
        };
        let rendered = Self::number_json(&number);
        self.numbers.insert(sid, number);
        Ok(rendered)
    }

    pub(crate) fn release(
        &mut self,
        principal: &Principal,
        account: &str,
        sid: &str,
    ) -> Result<(), ApiError> {
        Self::authorize_account_path(principal, account)?;
        Self::authorize_numbers(principal)?;
        match self.numbers.get(sid) {
            Some(n) if n.account_sid == account => {
                self.numbers.remove(sid);
                Ok(())
            }
            _ => Err(ApiError::not_found(&format!(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_matches_digits_and_wildcards_anywhere() {
        assert!(contains("+14155550100", "555"));
        assert!(contains("+14155550100", "415*55"));
        assert!(!contains("+14155550100", "999"));
        assert!(contains("+14155550100", ""));
    }
}
