//! The rows of [`MemoryStore`](super::MemoryStore), one field per table.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::ids::{CallId, ConnectionId, CustomerId, IntegrationId, JobId, ProviderKind, RouteId};
use crate::model::{
    AuditEvent, CallRecord, ConnectionCheck, Integration, IntegrationSettings, Lease,
    NumberConnection, PurchasedNumber, SealedSecret,
};
use crate::ports::{
    BulkJob, JobItem, OutboundCall, OutboundNumber, OutboundRoute, VoiceBinding, WebhookEventRecord,
};

/// Every table. Rows are kept in insertion order; each read sorts as its port says.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// No table exists yet (see `MemoryStore::unmigrated`).
    pub unmigrated: bool,
    pub integrations: Vec<Integration>,
    pub connections: Vec<NumberConnection>,
    /// By `LeaseKey::storage_key`.
    pub leases: HashMap<String, Lease>,
    pub audit: Vec<AuditEvent>,
    pub webhook_events: Vec<WebhookEventRecord>,
    /// By room name.
    pub calls: HashMap<String, StoredCall>,
    pub checks: HashMap<ConnectionId, ConnectionCheck>,
    pub purchases: Vec<PurchasedNumber>,
    pub settings: Vec<IntegrationSettings>,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub voice_bindings: Vec<VoiceBinding>,
    pub jobs: BTreeMap<JobId, StoredJob>,
    pub outbound_routes: Vec<OutboundRoute>,
    pub outbound_numbers: Vec<OutboundNumber>,
    pub outbound_calls: HashMap<CallId, OutboundCall>,
    pub journal: Journal,
}

/// A call and who holds its dispatch claim.
#[derive(Debug, Clone)]
pub(crate) struct StoredCall {
    pub call: CallRecord,
    pub claimant: Option<String>,
    pub claim_expires: Option<DateTime<Utc>>,
}

/// A job, its numbers, and its claim.
#[derive(Debug, Clone)]
pub(crate) struct StoredJob {
    pub job: BulkJob,
    pub items: Vec<JobItem>,
    pub token: Option<uuid::Uuid>,
    pub expires: Option<DateTime<Utc>>,
}

/// The secret (customer, provider)'s webhooks are signed with, sealed for `integration`.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSecret {
    pub customer: CustomerId,
    pub provider: ProviderKind,
    pub integration: IntegrationId,
    pub sealed: SealedSecret,
}

/// What tests count: calls per port method, and the leases won. Not part of any rule.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub calls: HashMap<&'static str, usize>,
    pub leases_won: Vec<String>,
}

impl Tables {
    pub fn integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Option<&Integration> {
        self.integrations
            .iter()
            .find(|i| &i.customer_id == customer && i.provider == provider)
    }

    pub fn route(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        route: &RouteId,
    ) -> Option<&OutboundRoute> {
        self.outbound_routes
            .iter()
            .find(|r| &r.customer_id == customer && r.provider == provider && &r.route_id == route)
    }
}
