//! Verify, save and delete carrier credentials; list the account's numbers.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::json;

use super::Onboarding;
use crate::error::Error;
use crate::ids::{
    AuditEventId, CarrierAccountId, CredentialKeyId, CustomerId, IntegrationId, ProviderKind,
};
use crate::model::{
    Actor, AuditAction, AuditEvent, CarrierCredentials, Integration, IntegrationStatus,
    NumberConnection, SealContext,
};
use crate::ports::{CarrierNumber, CredentialForm, CredentialInput, NumberQuery, VerifyReport};

/// What `save` answers: never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedIntegration {
    pub integration_id: IntegrationId,
    pub account_id: Option<CarrierAccountId>,
    pub key_id: Option<CredentialKeyId>,
    pub report: VerifyReport,
    /// Whether an earlier integration was replaced.
    pub replaced: bool,
}

/// A carrier number and what trunkline knows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberListItem {
    pub number: CarrierNumber,
    /// trunkline's connection for this number, if any (any status).
    pub connection: Option<NumberConnection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumbersPage {
    pub items: Vec<NumberListItem>,
    pub next_cursor: Option<String>,
}

impl Onboarding {
    /// The carriers this instance offers, each with its credentials form, in a stable order.
    pub fn providers(&self) -> Vec<(ProviderKind, CredentialForm)> {
        self.offered()
            .map(|(p, c)| (p, c.credential_form()))
            .collect()
    }

    /// The carriers this instance offers, each with the format of its number ids.
    pub fn number_id_formats(&self) -> Vec<(ProviderKind, crate::ports::IdFormat)> {
        self.offered()
            .map(|(p, c)| (p, c.number_id_format()))
            .collect()
    }

    fn offered(
        &self,
    ) -> impl Iterator<
        Item = (
            ProviderKind,
            &std::sync::Arc<dyn crate::ports::CarrierProvider>,
        ),
    > {
        ProviderKind::ALL
            .into_iter()
            .filter_map(|p| self.ports.carriers.get(&p).map(|c| (p, c)))
    }

    /// The carrier's credentials form.
    ///
    /// # Errors
    /// `NOT_CONFIGURED` for a carrier this instance does not offer.
    pub fn credential_form(&self, provider: ProviderKind) -> Result<CredentialForm, Error> {
        Ok(self.carrier(provider)?.credential_form())
    }

    /// Parse a credentials body with the carrier's own rules.
    ///
    /// # Errors
    /// `NOT_CONFIGURED` for a carrier this instance does not offer; `VALIDATION_FAILED`
    /// naming the field.
    pub fn parse_credentials(
        &self,
        provider: ProviderKind,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, Error> {
        Ok(self.carrier(provider)?.parse_credentials(input)?)
    }

    /// Parse a number id from a path in the carrier's own format.
    ///
    /// # Errors
    /// As [`Onboarding::parse_credentials`]; the validation error names `numberId`.
    pub fn parse_number_id(
        &self,
        provider: ProviderKind,
        raw: &str,
    ) -> Result<crate::ids::CarrierNumberId, Error> {
        Ok(self
            .carrier(provider)?
            .parse_number_id(raw)
            .map_err(|e| e.field("numberId"))?)
    }

    pub(super) async fn audit(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        actor: &Actor,
        action: AuditAction,
        details: serde_json::Value,
        request_id: Option<&str>,
    ) -> Result<(), Error> {
        let event = AuditEvent {
            id: AuditEventId::new(),
            customer_id: customer.clone(),
            provider,
            action,
            actor: actor.clone(),
            details,
            request_id: request_id.map(str::to_owned),
            at: Utc::now(),
        };
        self.ports.audit.append_audit(&event).await?;
        Ok(())
    }

    /// Check credentials with the carrier without saving anything.
    ///
    /// # Errors
    /// The carrier's classified error (`AUTH_INVALID`, `PROVIDER_UNAVAILABLE`, ...).
    pub async fn verify_credentials(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        creds: &CarrierCredentials,
        request_id: Option<&str>,
    ) -> Result<VerifyReport, Error> {
        let result = self.carrier(provider)?.verify(creds).await;
        // Failed verdicts are audited too: repeated failures are what support and security
        // look for. Transport failures say nothing about the credentials and are not.
        let details = match &result {
            Ok(report) => json!({
                "ok": true,
                "accountId": report.account_id,
                "keyId": creds.key_id,
                "capabilities": report.capabilities,
            }),
            Err(e) if !e.is_transient() => json!({
                "ok": false,
                "errorCode": e.code,
                "accountId": creds.account_id,
                "keyId": creds.key_id,
            }),
            Err(_) => serde_json::Value::Null,
        };
        if !details.is_null() {
            self.audit(
                customer,
                provider,
                actor,
                AuditAction::CredentialsVerified,
                details,
                request_id,
            )
            .await?;
        }
        Ok(result?)
    }

    /// Verify again, seal the secret and store the integration, replacing an earlier one
    /// (whose id is kept, so connections stay linked to it).
    pub async fn save_credentials(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        creds: &CarrierCredentials,
        request_id: Option<&str>,
    ) -> Result<SavedIntegration, Error> {
        let report = self.carrier(provider)?.verify(creds).await?;
        let existing = self
            .ports
            .integrations
            .get_integration(customer, provider)
            .await?;
        let now = Utc::now();
        let id = existing.as_ref().map_or_else(IntegrationId::new, |i| i.id);
        let ctx = SealContext {
            customer_id: customer.clone(),
            integration_id: id,
            provider,
        };
        let sealed_secret = self.ports.vault.seal(&creds.secret, &ctx).await?;
        let integration = Integration {
            id,
            customer_id: customer.clone(),
            provider,
            account_id: creds.account_id.clone(),
            key_id: creds.key_id.clone(),
            sealed_secret,
            status: IntegrationStatus::Active,
            created_at: existing.as_ref().map_or(now, |i| i.created_at),
            updated_at: now,
        };
        self.ports
            .integrations
            .put_integration(&integration)
            .await?;
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::CredentialsSaved,
            json!({
                "integrationId": id,
                "accountId": creds.account_id,
                "keyId": creds.key_id,
                "replaced": existing.is_some(),
            }),
            request_id,
        )
        .await?;
        Ok(SavedIntegration {
            integration_id: id,
            account_id: creds.account_id.clone(),
            key_id: creds.key_id.clone(),
            report,
            replaced: existing.is_some(),
        })
    }

    /// Remove the stored credentials. Carrier configuration (trunks, attached numbers) is
    /// left exactly as it is; connections stay as history. Returns whether any existed.
    pub async fn delete_credentials(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        request_id: Option<&str>,
    ) -> Result<bool, Error> {
        let existed = self
            .ports
            .integrations
            .delete_integration(customer, provider)
            .await?;
        // The webhook secret goes with the credentials it was saved with.
        self.ports
            .voice
            .put_webhook_secret(customer, provider, IntegrationId::new(), None)
            .await?;
        if existed {
            self.audit(
                customer,
                provider,
                actor,
                AuditAction::CredentialsDeleted,
                json!({ "carrierConfigurationLeftInPlace": true }),
                request_id,
            )
            .await?;
        }
        Ok(existed)
    }

    /// One page of the account's numbers, each with trunkline's connection if any.
    pub async fn list_numbers(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        query: &NumberQuery,
    ) -> Result<NumbersPage, Error> {
        let integration = self.integration(customer, provider).await?;
        let creds = self.credentials_of(&integration).await?;
        let page = self.carrier(provider)?.list_numbers(&creds, query).await?;
        let mut ours: HashMap<_, _> = self
            .ports
            .connections
            .list_connections(customer, provider)
            .await?
            .into_iter()
            .map(|c| (c.number_id.clone(), c))
            .collect();
        let items = page
            .items
            .into_iter()
            .map(|number| {
                let connection = ours.remove(&number.id);
                NumberListItem { number, connection }
            })
            .collect();
        Ok(NumbersPage {
            items,
            next_cursor: page.next_cursor,
        })
    }
}
