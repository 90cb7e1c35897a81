//! [`NumberMarket`] for Telnyx: `GET /available_phone_numbers` to search, number orders to
//! buy (asynchronous: the order is polled until it succeeds or fails), and
//! `DELETE /phone_numbers/{id}` to release.

use std::time::Duration;

use async_trait::async_trait;
use trunkline_core::model::CarrierCredentials;
use trunkline_core::ports::{
    AvailableNumber, AvailableNumberQuery, CarrierNumber, CarrierProvider as _, NumberMarket,
    NumberQuery as CoreNumberQuery, NumberType, ProviderError,
};
use trunkline_core::{CarrierNumberId, E164, ErrorCode};

use crate::api::OrderStatus;
use crate::carrier::TelnyxCarrier;
use crate::model::NumberId;

/// How often a pending number order is read again, and for how long at most.
const ORDER_POLL: Duration = Duration::from_millis(250);
const ORDER_WAIT: Duration = Duration::from_secs(30);

fn type_filter(t: NumberType) -> &'static str {
    match t {
        NumberType::Local => "local",
        NumberType::TollFree => "toll_free",
        NumberType::Mobile => "mobile",
    }
}

impl TelnyxCarrier {
    /// The account's number `e164`, if it holds it.
    async fn owned(
        &self,
        creds: &CarrierCredentials,
        e164: &E164,
    ) -> Result<Option<CarrierNumber>, ProviderError> {
        let page = self
            .list_numbers(
                creds,
                &CoreNumberQuery {
                    page_size: 20,
                    cursor: None,
                    e164: Some(e164.clone()),
                },
            )
            .await?;
        Ok(page.items.into_iter().find(|n| &n.e164 == e164))
    }
}

#[async_trait]
impl NumberMarket for TelnyxCarrier {
    async fn search_available_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &AvailableNumberQuery,
    ) -> Result<Vec<AvailableNumber>, ProviderError> {
        let mut filters: Vec<(&'static str, String)> = vec![
            ("filter[country_code]", query.country.clone()),
            (
                "filter[phone_number_type]",
                type_filter(query.number_type).to_owned(),
            ),
            (
                "filter[limit]",
                query.limit.min(AvailableNumberQuery::MAX_LIMIT).to_string(),
            ),
        ];
        if let Some(a) = &query.area_code {
            filters.push(("filter[national_destination_code]", a.clone()));
        }
        if let Some(p) = &query.prefix {
            filters.push(("filter[phone_number][starts_with]", p.clone()));
        }
        if let Some(c) = &query.contains {
            filters.push(("filter[phone_number][contains]", c.clone()));
        }
        let found = self
            .client()
            .search_available(crate::credentials::bearer(creds)?, filters)
            .await?;
        Ok(found
            .into_iter()
            .map(|n| AvailableNumber {
                e164: n.phone_number,
                number_type: query.number_type,
                region: n.region,
                locality: n.locality,
                voice_capable: n.voice,
            })
            .take(query.limit as usize)
            .collect())
    }

    async fn purchase_number(
        &self,
        creds: &CarrierCredentials,
        e164: &E164,
    ) -> Result<CarrierNumber, ProviderError> {
        // Bought already (a retry after a lost answer or a slow order): never buy twice.
        if let Some(n) = self.owned(creds, e164).await? {
            return Ok(n);
        }
        let key = crate::credentials::bearer(creds)?;
        let (order, mut status) = match self.client().create_number_order(key, e164).await {
            Ok(o) => o,
            Err(e) if e.code == ErrorCode::ProviderUnavailable => {
                return match self.owned(creds, e164).await {
                    Ok(Some(n)) => Ok(n),
                    _ => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let deadline = tokio::time::Instant::now() + ORDER_WAIT;
        while status == OrderStatus::Pending {
            if tokio::time::Instant::now() >= deadline {
                return Err(ProviderError::unavailable(
                    "the Telnyx number order did not complete in time; the number may still \
                     arrive in the account: look for it before buying again",
                ));
            }
            tokio::time::sleep(ORDER_POLL).await;
            status = self.client().number_order_status(key, &order).await?;
        }
        if status == OrderStatus::Failure {
            return Err(ProviderError::new(
                ErrorCode::NumberNotFound,
                "Telnyx could not fulfil the number order (the number is no longer for sale); \
                 search again",
            ));
        }
        self.owned(creds, e164).await?.ok_or_else(|| {
            ProviderError::unavailable(
                "the Telnyx number order completed but the number is not in the account yet; \
                 try again shortly",
            )
        })
    }

    async fn release_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let id = NumberId::parse(number.as_str())?;
        self.client()
            .delete_number(crate::credentials::bearer(creds)?, &id)
            .await
    }
}
