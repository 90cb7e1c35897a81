//! [`NumberMarket`] for Twilio: `AvailablePhoneNumbers` to search, `IncomingPhoneNumbers`
//! to buy (create) and release (delete).

use async_trait::async_trait;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{
    AvailableNumber, AvailableNumberQuery, CarrierNumber, NumberMarket, NumberType, ProviderError,
};
use trunkline_core::{CarrierNumberId, E164, ErrorCode};

use crate::carrier::TwilioCarrier;
use crate::client::Call;
use crate::credentials::Auth;
use crate::error::Resource;
use crate::ops::TwilioOperation as Op;
use crate::sid::PhoneNumberSid;
use crate::wire::{AvailableNumberListJson, IncomingNumberJson, NumberListJson};

fn list_op(t: NumberType) -> Op {
    match t {
        NumberType::Local => Op::ListAvailablePhoneNumberLocal,
        NumberType::TollFree => Op::ListAvailablePhoneNumberTollFree,
        NumberType::Mobile => Op::ListAvailablePhoneNumberMobile,
    }
}

impl TwilioCarrier {
    /// The account's number `e164`, if it holds it (after a purchase whose answer was lost).
    async fn owned(
        &self,
        auth: &Auth<'_>,
        e164: &E164,
    ) -> Result<Option<CarrierNumber>, ProviderError> {
        let account = [auth.account.as_str()];
        let call = Call::new(Op::ListIncomingPhoneNumber, Resource::Numbers, &account)
            .query("PhoneNumber", e164.as_str())
            .query("PageSize", "20");
        let page: NumberListJson = self.client().json(auth, &call).await?;
        Ok(page
            .incoming_phone_numbers
            .into_iter()
            .filter_map(IncomingNumberJson::into_carrier)
            .find(|n| &n.e164 == e164))
    }
}

#[async_trait]
impl NumberMarket for TwilioCarrier {
    async fn search_available_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &AvailableNumberQuery,
    ) -> Result<Vec<AvailableNumber>, ProviderError> {
        if query.country.len() != 2 || !query.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ProviderError::new(
                ErrorCode::ValidationFailed,
                "country: must be a two-letter country code",
            ));
        }
        let auth = Auth::of(creds)?;
        let ids = [auth.account.as_str(), query.country.as_str()];
        let mut call = Call::new(list_op(query.number_type), Resource::AvailableNumbers, &ids)
            .query("VoiceEnabled", "true")
            .query(
                "PageSize",
                query.limit.min(AvailableNumberQuery::MAX_LIMIT).to_string(),
            );
        if let Some(a) = &query.area_code {
            call = call.query("AreaCode", a.clone());
        }
        // Twilio has no prefix filter: `Contains` narrows the search, and the answer is
        // filtered to numbers that really start with the prefix.
        if let Some(c) = query.contains.as_ref().or(query.prefix.as_ref()) {
            call = call.query("Contains", c.clone());
        }
        let list: AvailableNumberListJson = self.client().json(&auth, &call).await?;
        Ok(list
            .available_phone_numbers
            .into_iter()
            .filter_map(|n| {
                let e164 = E164::parse(&n.phone_number?).ok()?;
                if let Some(p) = &query.prefix
                    && !e164.national_digits().starts_with(p.as_str())
                {
                    return None;
                }
                Some(AvailableNumber {
                    e164,
                    number_type: query.number_type,
                    region: n.region.filter(|r| !r.is_empty()),
                    locality: n.locality.filter(|l| !l.is_empty()),
                    voice_capable: n.capabilities.unwrap_or_default().voice.unwrap_or(false),
                })
            })
            .take(query.limit as usize)
            .collect())
    }

    async fn purchase_number(
        &self,
        creds: &CarrierCredentials,
        e164: &E164,
    ) -> Result<CarrierNumber, ProviderError> {
        let auth = Auth::of(creds)?;
        // Bought already (a retry after a lost answer): never buy twice.
        if let Some(n) = self.owned(&auth, e164).await? {
            return Ok(n);
        }
        let account = [auth.account.as_str()];
        let call = Call::new(Op::CreateIncomingPhoneNumber, Resource::Numbers, &account)
            .form("PhoneNumber", e164.as_str());
        match self.client().json::<IncomingNumberJson>(&auth, &call).await {
            Ok(json) => json.into_carrier().ok_or_else(|| {
                ProviderError::new(
                    ErrorCode::Internal,
                    "Twilio answered a purchased number trunkline cannot read",
                )
            }),
            // The create may have happened: look before saying it did not.
            Err(e) if e.code == ErrorCode::ProviderUnavailable => {
                match self.owned(&auth, e164).await {
                    Ok(Some(n)) => Ok(n),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn release_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let sid = PhoneNumberSid::try_from(number).map_err(|e| {
            ProviderError::new(ErrorCode::ValidationFailed, e.field("numberId").to_string())
        })?;
        let auth = Auth::of(creds)?;
        let ids = [auth.account.as_str(), sid.as_str()];
        let call = Call::new(Op::DeleteIncomingPhoneNumber, Resource::Number, &ids);
        match self.client().empty(&auth, &call).await {
            Err(e) if e.code == ErrorCode::NumberNotFound => Ok(()),
            other => other,
        }
    }
}
