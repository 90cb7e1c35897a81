//! Use cases: the management plane's operations, written against the ports only.
//!
//! [`Onboarding`] holds the ports it needs and exposes one method per operation. Each method
//! takes the acting [`Actor`](crate::model::Actor) and customer explicitly; authorization
//! (who may act for which customer) is decided at the edge before a use case is called.

mod admin;
mod calls;
mod connect;
mod credentials;
mod disconnect;
mod drift;
mod fleet;
mod jobs;
mod lease;
mod live_connections;
mod naming;
mod outbound;
mod place_call;
mod purchase;
mod reconcile;
pub mod rotation;
mod status;
mod steps;
mod voice_url;
mod voice_webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use calls::{
    CallActivity, CallSettings, CallViewer, Calls, CallsPorts, DispatchOutcome, RetryReport,
    WebhookOutcome,
};
pub use connect::{ConnectOutcome, ConnectRequest, TargetChoice};
pub use credentials::{NumberListItem, NumbersPage, SavedIntegration};
pub use disconnect::DisconnectOutcome;
pub use drift::{Drift, DriftKind};
pub use jobs::{JobOptions, JobSettings, JobView, Jobs, MAX_JOB_NUMBERS};
pub use live_connections::{CalledNumber, LIVE_CONNECTION_TTL, LiveConnections};
pub use naming::{TRUNKLINE_NAME_PREFIX, trunk_friendly_name};
pub use outbound::OutboundStatus;
pub use place_call::{OutboundCalls, OutboundCallsPorts, PlaceCall, PlacedCall, PlacedStatus};
pub use status::{NumberStatus, Section};
pub use steps::{Step, StepAction, StepKind};
pub use voice_url::{ConnectMode, voice_webhook_path, voice_webhook_url};
pub use voice_webhook::{VoiceAnswer, VoiceRefusal};

pub use admin::{
    AdminPage, CustomerRoutes, CustomerView, IntegrationView, LiveKitKind, LiveKitObject,
    LiveKitOwner, RouteNumber, RouteView,
};
pub use fleet::{
    Fleet, FleetPorts, FleetSettings, InFlightLimiter, UpstreamLimiter, UpstreamPermit,
    reconciler_actor,
};
pub use purchase::PurchaseOutcome;
pub use reconcile::{BatchReport, CheckReport, DRIFT_KINDS, FleetSummary};

use crate::error::{Error, ErrorCode};
use crate::ids::{CustomerId, ProviderKind};
use crate::model::{CarrierCredentials, Integration, SealContext};
use crate::ports::{
    AuditLog, CarrierProvider, ConnectionStore, CredentialVault, IntegrationStore, LeaseStore,
    OutboundStore, SipPlatform, VoiceUrlStore,
};
use crate::sip::SipTarget;

/// How long a lease lives without renewal. Its holder renews it every third of this while it
/// works, so the TTL only bounds how long a holder that died (a crash, a kill -9) blocks the
/// number: a few seconds, not a minute.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// How long an operation waits for a lease another holder has. Shorter than [`LEASE_TTL`]: a
/// live holder usually finishes within it, and a dead one is better answered at once with
/// when to retry than waited for.
pub const LEASE_WAIT: Duration = Duration::from_secs(5);

/// Settings of the onboarding use cases (from configuration).
#[derive(Debug, Clone)]
pub struct OnboardingSettings {
    /// The LiveKit SIP ingress numbers are connected to when the request names none.
    pub default_sip_target: Option<SipTarget>,
    /// Whether a request may name its own SIP target(s).
    pub allow_sip_target_override: bool,
    /// This instance's name, recorded as the holder of leases it takes.
    pub instance_id: String,
    /// How long a lease lives without renewal (its holder may have died).
    pub lease_ttl: Duration,
    /// How long a connect waits for another instance's connect of the same number.
    pub lease_wait: Duration,
    /// Room name prefix of the LiveKit dispatch rule's individual rooms.
    pub room_prefix: String,
    /// ISO 3166-1 alpha-2 countries outbound calls may reach, for carriers that whitelist
    /// destinations ([`crate::ports::TerminationSpec::allowed_countries`]); empty: the
    /// carrier's default, the countries of the route's numbers.
    pub outbound_allowed_countries: Vec<String>,
    /// The URL the carriers reach trunkline at (`TRUNKLINE_PUBLIC_URL`), for voice-URL mode;
    /// `None`: that mode is refused as not configured.
    pub public_url: Option<String>,
}

impl Default for OnboardingSettings {
    fn default() -> Self {
        Self {
            default_sip_target: None,
            allow_sip_target_override: false,
            instance_id: format!("trunkline-{}", uuid::Uuid::new_v4()),
            lease_ttl: LEASE_TTL,
            lease_wait: LEASE_WAIT,
            room_prefix: "call-".to_owned(),
            outbound_allowed_countries: Vec::new(),
            public_url: None,
        }
    }
}

/// `CONFLICT` for a lease still held after waiting `waited` for it. Whoever holds it either
/// lives (and may finish any moment) or died: a dead holder renewed it at the latest when the
/// wait began, so it has expired `ttl - waited` from now. That is when to retry.
fn lease_conflict(ttl: Duration, waited: Duration) -> Error {
    let left = ttl.saturating_sub(waited);
    // Whole seconds, as `Retry-After` carries them, rounded up: never too early.
    let secs = (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1);
    Error {
        retry_after: Some(Duration::from_secs(secs)),
        ..Error::new(
            ErrorCode::Conflict,
            format!(
                "another connect or disconnect of this number (or of a number on its trunk) is \
                 in progress; retry in {secs} s (if the instance running it stopped, its lease \
                 has expired by then)"
            ),
        )
    }
}

/// The ports the onboarding use cases need.
#[derive(Clone)]
pub struct OnboardingPorts {
    pub carriers: HashMap<ProviderKind, Arc<dyn CarrierProvider>>,
    /// `None` when LiveKit is not configured: the carrier half still runs, and status says so.
    pub sip: Option<Arc<dyn SipPlatform>>,
    pub vault: Arc<dyn CredentialVault>,
    pub integrations: Arc<dyn IntegrationStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub audit: Arc<dyn AuditLog>,
    /// Outbound routes and numbers; `None` where the store has none (connect then refuses
    /// `outbound: true`).
    pub outbound: Option<Arc<dyn OutboundStore>>,
    pub voice: Arc<dyn VoiceUrlStore>,
}

impl std::fmt::Debug for OnboardingPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnboardingPorts")
            .field("carriers", &self.carriers.keys().collect::<Vec<_>>())
            .field("sip", &self.sip.is_some())
            .finish_non_exhaustive()
    }
}

/// The management plane: credentials, numbers, connect, disconnect, status.
#[derive(Debug, Clone)]
pub struct Onboarding {
    ports: OnboardingPorts,
    settings: OnboardingSettings,
}

impl Onboarding {
    pub fn new(ports: OnboardingPorts, settings: OnboardingSettings) -> Self {
        Self { ports, settings }
    }

    pub fn settings(&self) -> &OnboardingSettings {
        &self.settings
    }

    fn carrier(&self, provider: ProviderKind) -> Result<&Arc<dyn CarrierProvider>, Error> {
        self.ports.carriers.get(&provider).ok_or_else(|| {
            Error::new(
                ErrorCode::NotConfigured,
                format!("provider {provider} is not configured"),
            )
        })
    }

    async fn integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Integration, Error> {
        self.ports
            .integrations
            .get_integration(customer, provider)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::IntegrationNotFound,
                    format!("no {provider} credentials are saved; save them first"),
                )
            })
    }

    /// The customer's audit events, newest first (at most `limit`, clamped to 1..=1000).
    /// Events never hold secrets; support may read any customer's.
    pub async fn audit_trail(
        &self,
        customer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<crate::model::AuditEvent>, Error> {
        Ok(self
            .ports
            .audit
            .list_audit(customer, limit.clamp(1, 1000))
            .await?)
    }

    /// Open the stored secret into credentials for one adapter call sequence.
    async fn credentials_of(&self, integration: &Integration) -> Result<CarrierCredentials, Error> {
        let ctx = SealContext {
            customer_id: integration.customer_id.clone(),
            integration_id: integration.id,
            provider: integration.provider,
        };
        let secret = self
            .ports
            .vault
            .open(&integration.sealed_secret, &ctx)
            .await?;
        Ok(CarrierCredentials {
            account_id: integration.account_id.clone(),
            key_id: integration.key_id.clone(),
            secret,
        })
    }
}

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod jobs_tests;
#[cfg(test)]
mod tests;
