//! Fleet operations over many customers' numbers: number search, purchase and release
//! (`purchase.rs`), the support views (`admin.rs`) and the drift reconciler
//! (`reconcile.rs`). They run on top of [`Onboarding`] (connect, status) and reach the
//! fleet-wide store through their own port, so the onboarding use cases are unchanged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Onboarding;
use crate::error::{Error, ErrorCode};
use crate::ids::{CustomerId, IntegrationId, ProviderKind};
use crate::model::{Actor, AuditAction, IntegrationSettings};
use crate::ports::{FleetStore, NumberMarket};

/// Settings of the fleet use cases (from configuration).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `TRUNKLINE_ALLOW_NUMBER_PURCHASE`: search, purchase and release are refused without it.
    pub allow_number_purchase: bool,
    /// A connection is checked again once its last check is this old.
    pub recheck_after: Duration,
    /// Checks started per second, across the fleet (the reconciler's own rate).
    pub checks_per_second: f64,
    /// Checks of one integration in flight at once.
    pub per_integration_in_flight: usize,
    /// Checks in flight at once, across the fleet.
    pub in_flight: usize,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            allow_number_purchase: false,
            recheck_after: Duration::from_secs(300),
            checks_per_second: 5.0,
            per_integration_in_flight: 2,
            in_flight: 8,
        }
    }
}

/// Admission of upstream work per integration: the seam between the reconciler and whatever
/// bounds one integration's traffic to its carrier. The reconciler holds the permit for the
/// whole check (a check makes several requests). The bulk jobs' shared per-integration
/// limiter implements this trait after the branches merge; until then
/// [`InFlightLimiter`] bounds the reconciler on its own.
#[async_trait]
pub trait UpstreamLimiter: Send + Sync {
    /// Wait until one more unit of work for `integration` may start.
    async fn acquire(&self, integration: IntegrationId) -> UpstreamPermit;
}

/// Held while the work runs; dropping it lets the next one in.
pub struct UpstreamPermit(#[allow(dead_code)] Box<dyn Send + Sync>);

impl std::fmt::Debug for UpstreamPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamPermit")
    }
}

impl UpstreamPermit {
    pub fn new(inner: impl Send + Sync + 'static) -> Self {
        Self(Box::new(inner))
    }
}

/// At most `max` units of work in flight per integration (a semaphore per integration).
#[derive(Debug)]
pub struct InFlightLimiter {
    max: usize,
    semaphores: std::sync::Mutex<HashMap<IntegrationId, Arc<tokio::sync::Semaphore>>>,
}

impl InFlightLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            semaphores: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl UpstreamLimiter for InFlightLimiter {
    async fn acquire(&self, integration: IntegrationId) -> UpstreamPermit {
        let sem = {
            let mut map = self
                .semaphores
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(integration)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max)))
                .clone()
        };
        match sem.acquire_owned().await {
            Ok(p) => UpstreamPermit::new(p),
            // Never closed; an unbounded permit is the only sane answer if it were.
            Err(_) => UpstreamPermit::new(()),
        }
    }
}

/// The ports of the fleet use cases besides [`Onboarding`]'s.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects; `Fleet`'s Debug names what matters
pub struct FleetPorts {
    pub store: Arc<dyn FleetStore>,
    /// Carriers that sell numbers, by provider.
    pub markets: HashMap<ProviderKind, Arc<dyn NumberMarket>>,
    pub limiter: Arc<dyn UpstreamLimiter>,
}

/// Number purchase, support views and the drift reconciler.
#[derive(Clone)]
pub struct Fleet {
    pub(super) onboarding: Arc<Onboarding>,
    pub(super) ports: FleetPorts,
    pub(super) settings: FleetSettings,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("settings", &self.settings)
            .field("markets", &self.ports.markets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Who the reconciler acts as in the audit trail.
pub fn reconciler_actor() -> Actor {
    Actor {
        subject: "trunkline-reconciler".to_owned(),
        role: "system".to_owned(),
    }
}

impl Fleet {
    pub fn new(onboarding: Arc<Onboarding>, ports: FleetPorts, settings: FleetSettings) -> Self {
        Self {
            onboarding,
            ports,
            settings,
        }
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Whether number search, purchase and release are on.
    pub fn number_purchase_enabled(&self) -> bool {
        self.settings.allow_number_purchase
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
        self.onboarding
            .audit(customer, provider, actor, action, details, request_id)
            .await
    }

    /// The integration's fleet settings (defaults when never set).
    pub async fn integration_settings(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<IntegrationSettings, Error> {
        Ok(self
            .ports
            .store
            .get_settings(customer, provider)
            .await?
            .unwrap_or_else(|| IntegrationSettings {
                customer_id: customer.clone(),
                provider,
                auto_repair: false,
                updated_at: chrono::Utc::now(),
            }))
    }

    /// Change the integration's settings (audited). The integration must exist.
    pub async fn update_integration_settings(
        &self,
        actor: &Actor,
        customer: &CustomerId,
        provider: ProviderKind,
        auto_repair: bool,
        request_id: Option<&str>,
    ) -> Result<IntegrationSettings, Error> {
        self.onboarding.carrier(provider)?;
        self.onboarding.integration(customer, provider).await?;
        let settings = IntegrationSettings {
            customer_id: customer.clone(),
            provider,
            auto_repair,
            updated_at: chrono::Utc::now(),
        };
        self.ports.store.put_settings(&settings).await?;
        self.audit(
            customer,
            provider,
            actor,
            AuditAction::SettingsUpdated,
            serde_json::json!({ "autoRepair": auto_repair }),
            request_id,
        )
        .await?;
        Ok(settings)
    }

    pub(super) fn require_purchase(&self) -> Result<(), Error> {
        if self.settings.allow_number_purchase {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::PurchaseNotEnabled,
                "number search, purchase and release are not enabled on this trunkline \
                 (the operator sets TRUNKLINE_ALLOW_NUMBER_PURCHASE=true)",
            ))
        }
    }
}
