//! Upstream limits per integration: how many requests one customer's carrier account has in
//! flight at once, and one shared backoff when the carrier says "too many".
//!
//! [`LimitedCarrier`] wraps any [`CarrierProvider`] and is what the use cases see. Every
//! call takes a permit of its integration's gate (the integration is recognised by its
//! credentials: the account id, else the key id, else a keyed hash of the secret kept in
//! memory only). When a call comes back `RATE_LIMITED` (after the adapter's own bounded
//! retries), the whole gate pauses for the carrier's `Retry-After` (or a doubling backoff
//! when it gave none) and its concurrency is lowered: no request of that account starts
//! during the pause, instead of each request retrying on its own. The call itself is tried
//! again after the pause only when `max_rate_limit_retries` allows (bulk jobs retry the
//! whole number instead). Successes slowly give the concurrency back.
//!
//! Bulk jobs, interactive connects and the drift reconciler all go through the same
//! wrapper, so they share one budget per integration within an instance.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{ErrorCode, ValidationError};
use crate::ids::{CarrierNumberId, ProviderKind, RouteId, RouteTargetId};
use crate::model::{CarrierCredentials, NumberRouting};
use crate::ports::{
    CarrierNumber, CarrierProvider, CarrierRoute, CarrierRouteTarget, CredentialForm,
    CredentialInput, IdFormat, NumberPage, NumberQuery, ProviderError, RouteSpec, RouteTargetSpec,
    Termination, TerminationSpec, TerminationState, VerifyReport,
};
use secrecy::SecretString;

/// Settings of the per-integration limits (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests one integration may have in flight at once (per instance).
    pub concurrency: usize,
    /// How many times one call is tried again after `RATE_LIMITED`, each after the shared
    /// pause; past it the error goes to the caller. 0 (the default) for callers that retry
    /// whole operations themselves (bulk jobs) or answer a person who decides (the API).
    pub max_rate_limit_retries: u32,
    /// First pause after a `RATE_LIMITED` that named no wait; doubles per consecutive one.
    pub backoff_base: Duration,
    /// Longest pause.
    pub backoff_max: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            concurrency: 50,
            max_rate_limit_retries: 0,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// Successes that give one permit back after a `RATE_LIMITED` lowered the concurrency.
const SUCCESSES_PER_PERMIT: u32 = 20;

/// One integration's gate.
#[derive(Debug)]
struct Gate {
    permits: Semaphore,
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    /// No request starts before this.
    paused_until: Option<Instant>,
    /// `RATE_LIMITED` answers in a row (reset by a success): the backoff's exponent.
    consecutive: u32,
    /// Permits currently withheld after `RATE_LIMITED` answers.
    withheld: usize,
    successes: u32,
}

/// What happened at the gates: for metrics, logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// `RATE_LIMITED` answers that reached the wrapper.
    pub rate_limited: u64,
    /// Calls tried again after a shared pause.
    pub retried: u64,
}

/// The gates of every integration, shared by everything that calls carriers.
#[derive(Debug)]
pub struct UpstreamLimits {
    settings: LimitSettings,
    gates: Mutex<HashMap<(ProviderKind, String), Arc<Gate>>>,
    hasher: std::collections::hash_map::RandomState,
    stats: Mutex<LimitStats>,
}

impl UpstreamLimits {
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            settings: LimitSettings {
                concurrency: settings.concurrency.max(1),
                ..settings
            },
            gates: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
            stats: Mutex::new(LimitStats::default()),
        }
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    pub fn stats(&self) -> LimitStats {
        *lock(&self.stats)
    }

    /// The integration the credentials belong to. Never the secret itself: a hash of it
    /// with this process's random key, only for carriers whose credentials name nothing else.
    fn key(&self, creds: &CarrierCredentials) -> String {
        if let Some(account) = &creds.account_id {
            return format!("account:{account}");
        }
        if let Some(key) = &creds.key_id {
            return format!("key:{key}");
        }
        let mut h = self.hasher.build_hasher();
        h.write(creds.secret.expose_secret().as_bytes());
        format!("secret:{:016x}", h.finish())
    }

    fn gate(&self, provider: ProviderKind, creds: &CarrierCredentials) -> Arc<Gate> {
        let key = (provider, self.key(creds));
        lock(&self.gates)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Gate {
                    permits: Semaphore::new(self.settings.concurrency),
                    state: Mutex::new(GateState {
                        paused_until: None,
                        consecutive: 0,
                        withheld: 0,
                        successes: 0,
                    }),
                })
            })
            .clone()
    }

    /// Run `call` under the integration's gate, pausing the whole gate on `RATE_LIMITED`.
    pub async fn run<T, F, Fut>(
        &self,
        provider: ProviderKind,
        creds: &CarrierCredentials,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let gate = self.gate(provider, creds);
        let mut attempt = 0;
        loop {
            wait_pause(&gate).await;
            let permit = gate
                .permits
                .acquire()
                .await
                .map_err(|_| ProviderError::unavailable("the upstream gate is closed"))?;
            // A pause may have begun while this call waited for its permit.
            wait_pause(&gate).await;
            let result = call().await;
            drop(permit);
            match result {
                Err(e) if e.code == ErrorCode::RateLimited => {
                    lock(&self.stats).rate_limited += 1;
                    self.slow_down(&gate, e.retry_after);
                    if attempt >= self.settings.max_rate_limit_retries {
                        return Err(e);
                    }
                    attempt += 1;
                    lock(&self.stats).retried += 1;
                }
                other => {
                    if other.is_ok() {
                        Self::speed_up(&gate);
                    }
                    return other;
                }
            }
        }
    }

    /// Pause the gate and lower its concurrency by a quarter (at least one permit stays).
    fn slow_down(&self, gate: &Gate, retry_after: Option<Duration>) {
        let mut s = lock(&gate.state);
        s.consecutive = s.consecutive.saturating_add(1);
        s.successes = 0;
        let backoff = self
            .settings
            .backoff_base
            .saturating_mul(1 << (s.consecutive - 1).min(16))
            .min(self.settings.backoff_max);
        let wait = retry_after
            .unwrap_or(backoff)
            .min(self.settings.backoff_max);
        let until = Instant::now() + wait;
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
        let allowed = self.settings.concurrency - s.withheld;
        let cut = (allowed / 4).min(allowed.saturating_sub(1));
        if cut > 0 {
            // Only permits that are free now can be withheld; the rest are cut as they return.
            let forgotten = gate.permits.forget_permits(cut);
            s.withheld += forgotten;
        }
        tracing::warn!(
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            concurrency = self.settings.concurrency - s.withheld,
            "carrier rate limit: pausing this integration's requests"
        );
    }

    fn speed_up(gate: &Gate) {
        let mut s = lock(&gate.state);
        s.consecutive = 0;
        if s.withheld == 0 {
            return;
        }
        s.successes += 1;
        if s.successes >= SUCCESSES_PER_PERMIT {
            s.successes = 0;
            s.withheld -= 1;
            gate.permits.add_permits(1);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain counters behind: still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn wait_pause(gate: &Gate) {
    loop {
        let until = lock(&gate.state).paused_until;
        match until {
            Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
            _ => return,
        }
    }
}

/// A carrier whose every upstream call goes through [`UpstreamLimits`].
pub struct LimitedCarrier {
    /// Kept here rather than asked of `inner` on every call.
    provider: ProviderKind,
    inner: Arc<dyn CarrierProvider>,
    limits: Arc<UpstreamLimits>,
}

impl LimitedCarrier {
    pub fn new(
        provider: ProviderKind,
        inner: Arc<dyn CarrierProvider>,
        limits: Arc<UpstreamLimits>,
    ) -> Self {
        Self {
            provider,
            inner,
            limits,
        }
    }

    /// Wrap every carrier of a map in the same limits.
    pub fn wrap_all(
        carriers: &HashMap<ProviderKind, Arc<dyn CarrierProvider>>,
        limits: &Arc<UpstreamLimits>,
    ) -> HashMap<ProviderKind, Arc<dyn CarrierProvider>> {
        carriers
            .iter()
            .map(|(p, c)| {
                let wrapped: Arc<dyn CarrierProvider> =
                    Arc::new(Self::new(*p, c.clone(), limits.clone()));
                (*p, wrapped)
            })
            .collect()
    }
}

impl std::fmt::Debug for LimitedCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedCarrier")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CarrierProvider for LimitedCarrier {
    fn kind(&self) -> ProviderKind {
        self.provider
    }

    fn credential_form(&self) -> CredentialForm {
        self.inner.credential_form()
    }

    fn parse_credentials(
        &self,
        input: &CredentialInput,
    ) -> Result<CarrierCredentials, ValidationError> {
        self.inner.parse_credentials(input)
    }

    fn parse_number_id(&self, raw: &str) -> Result<CarrierNumberId, ValidationError> {
        self.inner.parse_number_id(raw)
    }

    fn number_id_format(&self) -> IdFormat {
        self.inner.number_id_format()
    }

    async fn verify(&self, creds: &CarrierCredentials) -> Result<VerifyReport, ProviderError> {
        let p = self.kind();
        self.limits.run(p, creds, || self.inner.verify(creds)).await
    }

    async fn list_numbers(
        &self,
        creds: &CarrierCredentials,
        query: &NumberQuery,
    ) -> Result<NumberPage, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.list_numbers(creds, query))
            .await
    }

    async fn fetch_number(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
    ) -> Result<CarrierNumber, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.fetch_number(creds, number))
            .await
    }

    async fn find_routes(
        &self,
        creds: &CarrierCredentials,
        name: &str,
    ) -> Result<Vec<CarrierRoute>, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.find_routes(creds, name))
            .await
    }

    async fn fetch_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Option<CarrierRoute>, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.fetch_route(creds, route))
            .await
    }

    async fn create_route(
        &self,
        creds: &CarrierCredentials,
        spec: &RouteSpec,
    ) -> Result<CarrierRoute, ProviderError> {
        // A 429 means the carrier did not carry the request out: trying it again cannot
        // create a second route.
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.create_route(creds, spec))
            .await
    }

    async fn delete_route(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.delete_route(creds, route))
            .await
    }

    async fn list_route_targets(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierRouteTarget>, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.list_route_targets(creds, route))
            .await
    }

    async fn create_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.create_route_target(creds, route, spec)
            })
            .await
    }

    async fn update_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
        spec: &RouteTargetSpec,
    ) -> Result<CarrierRouteTarget, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.update_route_target(creds, route, target, spec)
            })
            .await
    }

    async fn delete_route_target(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        target: &RouteTargetId,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.delete_route_target(creds, route, target)
            })
            .await
    }

    async fn list_route_numbers(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
    ) -> Result<Vec<CarrierNumberId>, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.list_route_numbers(creds, route))
            .await
    }

    async fn attach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.attach_number(creds, route, number))
            .await
    }

    async fn detach_number(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        number: &CarrierNumberId,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.detach_number(creds, route, number))
            .await
    }

    async fn restore_routing(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        routing: &NumberRouting,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.restore_routing(creds, number, routing)
            })
            .await
    }

    // Every method with a default body is forwarded too: the default would otherwise
    // answer for the wrapped carrier (voice-URL mode refused, outbound "not supported").

    fn parse_webhook_secret(
        &self,
        input: &CredentialInput,
    ) -> Result<Option<SecretString>, ValidationError> {
        self.inner.parse_webhook_secret(input)
    }

    async fn verify_webhook_secret(
        &self,
        creds: &CarrierCredentials,
        secret: &SecretString,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.verify_webhook_secret(creds, secret))
            .await
    }

    fn supports_voice_url(&self) -> bool {
        self.inner.supports_voice_url()
    }

    async fn set_voice_url(
        &self,
        creds: &CarrierCredentials,
        number: &CarrierNumberId,
        url: &str,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || self.inner.set_voice_url(creds, number, url))
            .await
    }

    fn routing_points_at(&self, routing: &NumberRouting, url: &str) -> bool {
        self.inner.routing_points_at(routing, url)
    }

    fn termination_calls_per_second(&self) -> u32 {
        self.inner.termination_calls_per_second()
    }

    async fn ensure_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        spec: &TerminationSpec,
    ) -> Result<Termination, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.ensure_termination(creds, route, spec)
            })
            .await
    }

    async fn inspect_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
        username: &str,
    ) -> Result<TerminationState, ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.inspect_termination(creds, route, name, username)
            })
            .await
    }

    async fn remove_termination(
        &self,
        creds: &CarrierCredentials,
        route: &RouteId,
        name: &str,
    ) -> Result<(), ProviderError> {
        let p = self.kind();
        self.limits
            .run(p, creds, || {
                self.inner.remove_termination(creds, route, name)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn creds(account: &str) -> CarrierCredentials {
        CarrierCredentials {
            account_id: Some(crate::ids::CarrierAccountId::parse(account).unwrap()),
            key_id: None,
            secret: secrecy::SecretString::from("s3cr3t".to_owned()),
        }
    }

    #[tokio::test]
    async fn concurrency_is_bounded_per_integration() {
        let limits = Arc::new(UpstreamLimits::new(LimitSettings {
            concurrency: 3,
            ..LimitSettings::default()
        }));
        let in_flight = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        let a = creds("AC0");
        let call = || async {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ProviderError>(())
        };
        let runs = (0..20).map(|_| limits.run(ProviderKind::Twilio, &a, call));
        futures::future::try_join_all(runs).await.unwrap();
        assert_eq!(max.load(Ordering::SeqCst), 3);

        // Another account has its own gate: both run their full concurrency at once.
        let b = creds("AC1");
        max.store(0, Ordering::SeqCst);
        let both = (0..20).map(|i| {
            let c = if i % 2 == 0 { &a } else { &b };
            limits.run(ProviderKind::Twilio, c, call)
        });
        futures::future::try_join_all(both).await.unwrap();
        assert_eq!(max.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_pauses_every_call_of_the_integration_once() {
        let limits = Arc::new(UpstreamLimits::new(LimitSettings {
            concurrency: 4,
            max_rate_limit_retries: 3,
            ..LimitSettings::default()
        }));
        let a = creds("AC0");
        let calls = Mutex::new(Vec::<Instant>::new());
        let refused = AtomicUsize::new(0);
        let start = Instant::now();
        let call = || async {
            lock(&calls).push(Instant::now());
            // The first request is refused with Retry-After: 2 s.
            if refused.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(ProviderError::new(ErrorCode::RateLimited, "slow down")
                    .with_retry_after(Duration::from_secs(2)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        };
        let first = limits.run(ProviderKind::Twilio, &a, call);
        let later = async {
            // Started after the refusal: they wait for the shared pause instead of trying.
            tokio::time::sleep(Duration::from_millis(10)).await;
            futures::future::try_join_all(
                (0..5).map(|_| limits.run(ProviderKind::Twilio, &a, call)),
            )
            .await
        };
        let (first, later) = futures::join!(first, later);
        first.unwrap();
        later.unwrap();
        let calls = lock(&calls).clone();
        assert_eq!(
            calls.len(),
            7,
            "one refusal, then each call once: no retry storm"
        );
        for t in &calls[1..] {
            assert!(
                *t >= start + Duration::from_secs(2),
                "nothing ran during the pause"
            );
        }
        assert_eq!(limits.stats().rate_limited, 1);
        assert_eq!(limits.stats().retried, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_persistent_rate_limit_gives_up_after_the_configured_retries() {
        let limits = UpstreamLimits::new(LimitSettings {
            concurrency: 1,
            max_rate_limit_retries: 2,
            ..LimitSettings::default()
        });
        let tries = AtomicUsize::new(0);
        let e = limits
            .run(ProviderKind::Telnyx, &creds("AC0"), || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(ProviderError::new(ErrorCode::RateLimited, "no"))
            })
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }
}
