//! Number search, purchase and release (opt-in: `TRUNKLINE_ALLOW_NUMBER_PURCHASE`).
//!
//! trunkline releases only numbers it bought: every purchase is recorded before anything
//! else happens, and release refuses any number without that record.

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use super::fleet::Fleet;
use super::{ConnectOutcome, ConnectRequest};
use crate::error::{Error, ErrorCode};
use crate::ids::{CarrierNumberId, CustomerId, ProviderKind};
use crate::model::{Actor, AuditAction, ConnectionStatus, PurchasedNumber};
use crate::phone::E164;
use crate::ports::{AvailableNumber, AvailableNumberQuery, CarrierNumber, NumberMarket};

/// What a purchase did.
#[derive(Debug)]
pub struct PurchaseOutcome {
    pub number: CarrierNumber,
    /// The connect asked for in the same request: its outcome, or why it failed (the number
    /// is bought either way; connect it again).
    pub connect: Option<Result<ConnectOutcome, Error>>,
}

impl Fleet {
    fn market(&self, provider: ProviderKind) -> Result<&Arc<dyn NumberMarket>, Error> {
        self.ports.markets.get(&provider).ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                format!("provider {provider} does not sell numbers through trunkline"),
            )
        })
    }

    /// Numbers for sale at the customer's carrier account.
    pub async fn search_numbers(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        query: &AvailableNumberQuery,
    ) -> Result<Vec<AvailableNumber>, Error> {
        self.require_purchase()?;
        let market = self.market(provider)?.clone();
        let integration = self.onboarding.integration(customer, provider).await?;
        let creds = self.onboarding.credentials_of(&integration).await?;
        Ok(market.search_available_numbers(&creds, query).await?)
    }

    /// Buy `e164` into the customer's account, record it as trunkline's, and connect it when
    /// `connect` is given.
    pub async fn purchase_number(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        e164: &E164,
        connect: Option<ConnectRequest>,
        request_id: Option<&str>,
    ) -> Result<PurchaseOutcome, Error> {
        self.require_purchase()?;
        let market = self.market(provider)?.clone();
        let integration = self.onboarding.integration(customer, provider).await?;
        let creds = self.onboarding.credentials_of(&integration).await?;
        let number = market.purchase_number(&creds, e164).await?;
        let purchase = PurchasedNumber {
            customer_id: customer.clone(),
            provider,
            number_id: number.id.clone(),
            e164: number.e164.clone(),
            purchased_at: Utc::now(),
            released_at: None,
        };
        self.ports.store.save_purchase(&purchase).await?;
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::NumberPurchased,
            json!({ "numberId": number.id, "connect": connect.is_some() }),
            request_id,
        )
        .await?;
        let connect = match connect {
            Some(req) => Some(
                self.onboarding
                    .connect(actor, customer, provider, &number.id, req, request_id)
                    .await,
            ),
            None => None,
        };
        Ok(PurchaseOutcome { number, connect })
    }

    /// Release a number trunkline bought. `confirm` must repeat the number's E.164: a
    /// released number is gone for good and may be bought by anyone.
    pub async fn release_number(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
        confirm: &str,
        request_id: Option<&str>,
    ) -> Result<PurchasedNumber, Error> {
        self.require_purchase()?;
        let market = self.market(provider)?.clone();
        let purchase = self
            .ports
            .store
            .get_purchase(customer, provider, number)
            .await?
            .filter(|p| p.released_at.is_none())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NotPurchased,
                    "trunkline did not buy this number (or released it already): it releases \
                     only numbers it bought",
                )
            })?;
        if confirm != purchase.e164.as_str() {
            return Err(Error::from(
                crate::ValidationError::new(
                    "must repeat the number being released, in E.164 (releasing is final)",
                )
                .field("confirm"),
            ));
        }
        let live = self
            .onboarding
            .ports
            .connections
            .get_connection(customer, provider, number)
            .await?
            .is_some_and(|c| c.status != ConnectionStatus::Disconnected);
        if live {
            return Err(Error::new(
                ErrorCode::Conflict,
                "the number is connected: disconnect it before releasing it",
            ));
        }
        let integration = self.onboarding.integration(customer, provider).await?;
        let creds = self.onboarding.credentials_of(&integration).await?;
        market.release_number(&creds, number).await?;
        let released = PurchasedNumber {
            released_at: Some(Utc::now()),
            ..purchase
        };
        self.ports.store.save_purchase(&released).await?;
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::NumberReleased,
            json!({ "numberId": number }),
            request_id,
        )
        .await?;
        Ok(released)
    }
}
