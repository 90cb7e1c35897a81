//! Application state: the adapters behind their ports, built once at start-up.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret as _;
use trunkline_core::ProviderKind;
use trunkline_core::limits::{LimitSettings, LimitedCarrier, UpstreamLimits};
use trunkline_core::ports::{
    AuditLog, CallStore, CarrierProvider, ConnectionStore, CredentialVault, FleetStore,
    IntegrationStore, JobStore, LeaseStore, NumberMarket, OutboundStore, SipPlatform, Store,
    StoreError, StoreHealth, VoiceUrlStore,
};
use trunkline_core::usecases::{
    CallSettings, Calls, CallsPorts, Fleet, FleetPorts, FleetSettings, InFlightLimiter,
    JobSettings, Jobs, LIVE_CONNECTION_TTL, LiveConnections, Onboarding, OnboardingPorts,
    OnboardingSettings, OutboundCalls, OutboundCallsPorts,
};
use trunkline_livekit::LiveKitPlatform;
use trunkline_store_postgres::PostgresStore;
use trunkline_store_sqlite::SqliteStore;
use trunkline_telnyx::TelnyxCarrier;
use trunkline_twilio::TwilioCarrier;

use crate::auth::Authenticator;
use crate::config::{Config, DatabaseConfig};
use crate::throttle::Throttle;

/// One store adapter seen through each port the routes need. Every handle points at the
/// same adapter (and so the same connection pool).
#[derive(Clone)]
pub struct Stores {
    pub integrations: Arc<dyn IntegrationStore>,
    pub connections: Arc<dyn ConnectionStore>,
    pub leases: Arc<dyn LeaseStore>,
    pub calls: Arc<dyn CallStore>,
    pub audit: Arc<dyn AuditLog>,
    pub health: Arc<dyn StoreHealth>,
    pub fleet: Arc<dyn FleetStore>,
    pub jobs: Arc<dyn JobStore>,
    /// Outbound routes, numbers and calls.
    pub outbound: Arc<dyn OutboundStore>,
    pub voice: Arc<dyn VoiceUrlStore>,
    /// `connections` itself: the webhook path's cache of live connections, emptied by every
    /// connection this instance saves.
    pub live_connections: Arc<LiveConnections>,
}

impl Stores {
    pub fn from_store<S: Store + 'static>(store: Arc<S>) -> Self {
        let live_connections = Arc::new(LiveConnections::new(store.clone(), LIVE_CONNECTION_TTL));
        Self {
            fleet: store.clone(),
            outbound: store.clone(),
            integrations: store.clone(),
            connections: live_connections.clone(),
            live_connections,
            leases: store.clone(),
            calls: store.clone(),
            audit: store.clone(),
            jobs: store.clone(),
            voice: store.clone(),
            health: store,
        }
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// The store chosen by the database URL's scheme.
#[derive(Debug)]
pub enum OpenedStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl OpenedStore {
    /// Connect (creating the SQLite file and its directory if needed). No migration.
    ///
    /// # Errors
    /// The database cannot be opened or reached.
    pub async fn connect(config: &Config) -> Result<Self, StoreError> {
        match &config.database {
            DatabaseConfig::Sqlite { url, .. } => SqliteStore::connect(url).await.map(Self::Sqlite),
            DatabaseConfig::Postgres { url, .. } => {
                PostgresStore::connect(url.expose_secret(), config.database_max_connections)
                    .await
                    .map(|s| Self::Postgres(s.with_acquire_timeout(config.database_timeout)))
            }
        }
    }

    /// Apply pending migrations; the versions applied, oldest first.
    ///
    /// # Errors
    /// A migration failed.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
    }

    pub fn into_stores(self) -> Stores {
        match self {
            Self::Sqlite(s) => Stores::from_store(Arc::new(s)),
            Self::Postgres(s) => Stores::from_store(Arc::new(s)),
        }
    }
}

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub stores: Stores,
    pub vault: Arc<dyn CredentialVault>,
    pub auth: Arc<Authenticator>,
    pub metrics: PrometheusHandle,
    /// The management plane's use cases, over the adapters above.
    pub onboarding: Arc<Onboarding>,
    /// LiveKit webhooks, call records, agent dispatch and call diagnostics.
    pub calls: Arc<Calls>,
    /// Per-customer allowance of credential checks (verify, save).
    pub credential_checks: Arc<Throttle>,
    /// Number purchase, the support views and the drift reconciler.
    pub fleet: Arc<Fleet>,
    /// The per-integration upstream limits every carrier call goes through (connect, bulk
    /// jobs, and whatever else reads carriers in the background).
    pub limits: Arc<UpstreamLimits>,
    /// Bulk connect and disconnect jobs.
    pub jobs: Arc<Jobs>,
    /// `POST /telephony/calls`.
    pub outbound_calls: Arc<OutboundCalls>,
}

/// The credential-check throttle the configuration asks for.
pub fn credential_checks(config: &Config) -> Arc<Throttle> {
    Arc::new(Throttle::new(
        config.credential_checks_per_minute,
        config.credential_checks_burst,
    ))
}

/// This instance's name as a lease holder: unique per process, readable in the database
/// when support asks who holds a lease.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    let random: u32 = rand::random();
    format!("{host}/{}/{random:08x}", std::process::id())
}

/// The LiveKit adapter, when `TRUNKLINE_LIVEKIT_*` are set. One instance serves both the
/// management plane (trunks, rules) and the calls (dispatch, webhook verification).
///
/// Building it also makes jsonwebtoken's full crypto provider the process default (see
/// `trunkline_livekit::install_jwt_crypto_provider`): livekit-api would otherwise install an
/// HMAC-only one and the RS256/ES256/EdDSA user tokens would stop verifying.
///
/// # Errors
/// The adapter refuses the configuration (the message names the variable).
pub fn build_livekit(config: &Config) -> Result<Option<Arc<dyn SipPlatform>>, String> {
    let Some(livekit) = &config.livekit else {
        return Ok(None);
    };
    let platform = LiveKitPlatform::new(livekit.clone()).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(platform)))
}

/// Every adapter behind its port. `trunkline serve` builds them from the configuration
/// ([`Adapters::from_config`]); integration tests build them from emulators or `mockall`
/// mocks; [`AppState::new`] turns them into the application either way.
#[derive(Clone)]
pub struct Adapters {
    /// The carriers this instance offers, by provider.
    pub carriers: HashMap<ProviderKind, Arc<dyn CarrierProvider>>,
    /// LiveKit; `None` when not configured (connect skips it, webhooks answer NOT_CONFIGURED).
    pub sip: Option<Arc<dyn SipPlatform>>,
    pub vault: Arc<dyn CredentialVault>,
    pub stores: Stores,
    /// Carriers that sell numbers (used only with `TRUNKLINE_ALLOW_NUMBER_PURCHASE`).
    pub markets: HashMap<ProviderKind, Arc<dyn NumberMarket>>,
}

impl fmt::Debug for Adapters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapters")
            .field("carriers", &self.carriers.keys().collect::<Vec<_>>())
            .field("sip", &self.sip.is_some())
            .finish_non_exhaustive()
    }
}

impl Adapters {
    /// The production adapters: every carrier and LiveKit from the configuration.
    ///
    /// # Errors
    /// An adapter refuses its configuration (the message names the variable).
    pub fn from_config(
        config: &Config,
        stores: Stores,
        vault: Arc<dyn CredentialVault>,
    ) -> Result<Self, String> {
        Ok(Self {
            carriers: build_carriers(config)?,
            sip: build_livekit(config)?,
            vault,
            stores,
            markets: build_markets(config)?,
        })
    }
}

/// The carrier adapters this instance offers, from their configuration.
///
/// # Errors
/// An adapter refuses its configuration (the message names the variable).
pub fn build_carriers(
    config: &Config,
) -> Result<HashMap<ProviderKind, Arc<dyn CarrierProvider>>, String> {
    let twilio = TwilioCarrier::new(config.twilio.clone()).map_err(|e| e.to_string())?;
    let mut carriers: HashMap<ProviderKind, Arc<dyn CarrierProvider>> = HashMap::new();
    carriers.insert(ProviderKind::Twilio, Arc::new(twilio));
    let telnyx = TelnyxCarrier::new(config.telnyx.clone()).map_err(|e| e.to_string())?;
    carriers.insert(ProviderKind::Telnyx, Arc::new(telnyx));
    Ok(carriers)
}

/// The carriers' number markets (search, purchase, release).
///
/// # Errors
/// An adapter refuses its configuration (the message names the variable).
pub fn build_markets(
    config: &Config,
) -> Result<HashMap<ProviderKind, Arc<dyn NumberMarket>>, String> {
    let mut markets: HashMap<ProviderKind, Arc<dyn NumberMarket>> = HashMap::new();
    let twilio = TwilioCarrier::new(config.twilio.clone()).map_err(|e| e.to_string())?;
    markets.insert(ProviderKind::Twilio, Arc::new(twilio));
    let telnyx = TelnyxCarrier::new(config.telnyx.clone()).map_err(|e| e.to_string())?;
    markets.insert(ProviderKind::Telnyx, Arc::new(telnyx));
    Ok(markets)
}

/// The limits every carrier call of this instance goes through.
pub fn build_limits(config: &Config) -> Arc<UpstreamLimits> {
    Arc::new(UpstreamLimits::new(LimitSettings {
        concurrency: config.jobs.upstream_concurrency,
        ..LimitSettings::default()
    }))
}

/// The job use case over the onboarding use cases (whose carriers are already limited).
pub fn build_jobs(
    config: &Config,
    onboarding: &Arc<Onboarding>,
    stores: &Stores,
    instance_id: &str,
) -> Jobs {
    let settings = JobSettings {
        instance_id: instance_id.to_owned(),
        claim_ttl: config.jobs.claim_ttl,
        parallelism: config.jobs.parallelism,
        ..JobSettings::default()
    };
    Jobs::new(onboarding.clone(), stores.jobs.clone(), settings)
}

/// Build the fleet use cases over the management plane.
pub fn build_fleet(config: &Config, adapters: &Adapters, onboarding: Arc<Onboarding>) -> Fleet {
    let f = &config.fleet;
    let settings = FleetSettings {
        allow_number_purchase: f.allow_number_purchase,
        recheck_after: f.recheck_after,
        checks_per_second: f64::from(f.checks_per_minute.max(1)) / 60.0,
        per_integration_in_flight: f.per_integration_in_flight,
        in_flight: f.in_flight,
    };
    let ports = FleetPorts {
        store: adapters.stores.fleet.clone(),
        markets: adapters.markets.clone(),
        // How many checks of one integration run at once. Each check's carrier reads also
        // pass the shared per-integration upstream limits (`onboarding` is built over
        // `LimitedCarrier`), so the reconciler and bulk jobs draw on one budget.
        limiter: Arc::new(InFlightLimiter::new(f.per_integration_in_flight)),
    };
    Fleet::new(onboarding, ports, settings)
}

/// Build the management plane over the adapters. The one place the onboarding use cases
/// get their ports.
pub fn build_onboarding(config: &Config, adapters: &Adapters, instance_id: &str) -> Onboarding {
    let ports = OnboardingPorts {
        carriers: adapters.carriers.clone(),
        sip: adapters.sip.clone(),
        vault: adapters.vault.clone(),
        integrations: adapters.stores.integrations.clone(),
        connections: adapters.stores.connections.clone(),
        leases: adapters.stores.leases.clone(),
        audit: adapters.stores.audit.clone(),
        outbound: Some(adapters.stores.outbound.clone()),
        voice: adapters.stores.voice.clone(),
    };
    let settings = OnboardingSettings {
        default_sip_target: config.sip_target.clone(),
        allow_sip_target_override: config.allow_sip_target_override,
        instance_id: instance_id.to_owned(),
        lease_ttl: config.lease_ttl,
        // A holder that is alive renews within a third of the lifetime: waiting longer than
        // the lifetime only waits for a dead one.
        lease_wait: trunkline_core::usecases::LEASE_WAIT.min(config.lease_ttl / 2),
        room_prefix: config.livekit_room_prefix.clone(),
        outbound_allowed_countries: config.outbound_allowed_countries.clone(),
        public_url: config.public_url.clone(),
    };
    Onboarding::new(ports, settings)
}

/// Build the call use cases (webhooks, dispatch, diagnostics) over the stores and the
/// LiveKit adapter (`None`: webhooks are answered `NOT_CONFIGURED`).
pub fn build_calls(
    config: &Config,
    stores: &Stores,
    sip: Option<Arc<dyn SipPlatform>>,
    instance_id: &str,
) -> Calls {
    let settings = CallSettings {
        instance_id: instance_id.to_owned(),
        // At least four LiveKit request timeouts (checked with the configuration): a dead
        // holder's claim is taken over after this.
        claim_ttl: config.dispatch.claim_ttl,
        max_attempts: config.dispatch.max_attempts,
        backoff_base: config.dispatch.backoff_base,
        backoff_max: config.dispatch.backoff_max,
    };
    let ports = CallsPorts {
        calls: stores.calls.clone(),
        connections: stores.connections.clone(),
        // Timed, for `trunkline_time_to_dispatch_seconds`.
        sip: sip.map(|s| Arc::new(crate::dispatch_timing::TimedSip(s)) as Arc<dyn SipPlatform>),
    };
    Calls::with_live_connections(ports, settings, stores.live_connections.clone())
}

impl AppState {
    /// The application over its adapters: what [`crate::http::app`] serves. `trunkline
    /// serve`, `trunkline dev` and the integration tests all build it here.
    pub fn new(
        config: Arc<Config>,
        adapters: Adapters,
        auth: Arc<Authenticator>,
        metrics: PrometheusHandle,
        instance_id: &str,
    ) -> Self {
        let limits = build_limits(&config);
        let limited = Adapters {
            carriers: LimitedCarrier::wrap_all(&adapters.carriers, &limits),
            ..adapters
        };
        let onboarding = Arc::new(build_onboarding(&config, &limited, instance_id));
        let calls = Arc::new(build_calls(
            &config,
            &limited.stores,
            limited.sip.clone(),
            instance_id,
        ));
        let jobs = build_jobs(&config, &onboarding, &limited.stores, instance_id);
        let fleet = Arc::new(build_fleet(&config, &limited, onboarding.clone()));
        // Outbound calls read the carriers through the same per-integration limits.
        let outbound_calls = OutboundCalls::new(
            OutboundCallsPorts {
                calls: calls.clone(),
                call_store: limited.stores.calls.clone(),
                connections: limited.stores.connections.clone(),
                outbound: limited.stores.outbound.clone(),
                leases: limited.stores.leases.clone(),
                sip: limited.sip.clone(),
                carriers: limited.carriers.clone(),
            },
            config.livekit_room_prefix.clone(),
        )
        .with_lease_ttl(config.lease_ttl);
        Self {
            fleet,
            outbound_calls: Arc::new(outbound_calls),
            stores: limited.stores,
            vault: limited.vault,
            auth,
            metrics,
            onboarding,
            calls,
            credential_checks: credential_checks(&config),
            limits,
            jobs: Arc::new(jobs),
            config,
        }
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Env};

    /// A call's dispatch claim lasts what the configuration says.
    #[tokio::test]
    async fn calls_claim_dispatches_for_the_configured_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([
            (
                config::DATABASE_URL,
                format!("sqlite://{}/t.db", dir.path().display()),
            ),
            (config::DISPATCH_CLAIM_TTL_SECS, "45".to_owned()),
        ]);
        let config = Config::from_env(&env).unwrap();
        let stores = OpenedStore::connect(&config).await.unwrap().into_stores();
        let calls = build_calls(&config, &stores, None, "test");
        assert_eq!(
            calls.settings().claim_ttl,
            std::time::Duration::from_secs(45)
        );
    }
}
