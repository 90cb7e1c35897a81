use async_trait::async_trait;

use super::errors::StoreError;
use crate::ids::{CustomerId, IntegrationId, ProviderKind};
use crate::model::{SealContext, SealedSecret};

/// Which kind of stored secret: every value the vault seals and the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SealedKind {
    /// A customer's carrier credentials (`integrations`).
    Credentials,
    /// The secret a carrier signs its voice webhooks with (`webhook_secrets`).
    WebhookSecret,
    /// An outbound route's SIP password (`outbound_routes`).
    OutboundPassword,
    /// A voice-URL connection's SIP digest password (`voice_url_bindings`).
    VoiceSipPassword,
}

impl SealedKind {
    /// Every kind, in the order a rotation walks them.
    pub const ALL: [Self; 4] = [
        Self::Credentials,
        Self::WebhookSecret,
        Self::OutboundPassword,
        Self::VoiceSipPassword,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::WebhookSecret => "webhook secret",
            Self::OutboundPassword => "outbound SIP password",
            Self::VoiceSipPassword => "voice-URL SIP password",
        }
    }
}

/// One stored secret of one kind, for key rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    /// The row's key within its kind (opaque; the walk goes in its byte order).
    pub key: String,
    /// The context it was sealed with; `None` when its owner is gone (an outbound route or a
    /// binding whose integration or connection no longer exists): it cannot be opened.
    pub context: Option<SealContext>,
    pub sealed: SealedSecret,
}

impl SealedRow {
    /// A row from the store's columns; the context only when every part of it parses.
    pub fn from_columns(
        key: String,
        customer_id: Option<&str>,
        integration_id: Option<&str>,
        provider: Option<&str>,
        sealed: Vec<u8>,
    ) -> Self {
        let context = (|| {
            Some(SealContext {
                customer_id: CustomerId::parse(customer_id?).ok()?,
                integration_id: IntegrationId::parse(integration_id?).ok()?,
                provider: ProviderKind::parse(provider?).ok()?,
            })
        })();
        Self {
            key,
            context,
            sealed: SealedSecret(sealed),
        }
    }
}

/// Every customer's sealed secrets, of every kind, for key rotation (`trunkline vault
/// rotate`).
///
/// Separate from the other store ports: only the rotation walks all customers.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SealedSecretStore: Send + Sync {
    /// Up to `limit` secrets of `kind` whose key is greater than `after` (all when `None`),
    /// in key byte order: a walk that stops can go on from the last key it saw.
    async fn sealed_after(
        &self,
        kind: SealedKind,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError>;

    /// Put `new` in place of the secret if it still is `expected`, in one atomic step;
    /// whether it was replaced. `false` when the row is gone or its secret changed meanwhile
    /// (saved again by a live instance): the newer value wins.
    async fn replace_sealed(
        &self,
        kind: SealedKind,
        key: &str,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError>;
}
