//! `trunkline serve` (and the server `trunkline dev` runs): the vault, the authenticator,
//! the store and the application built from the configuration, the HTTP server, the
//! background loops (dispatch retries, reconciler, job runner) and a graceful shutdown.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use actix_web::web;
use trunkline_core::CustomerId;
use trunkline_core::ports::CredentialVault;
use trunkline_vault::{AesGcmVault, KeyRing};

use crate::auth::{Authenticator, VerifyKey};
use crate::config::{self, Config};
use crate::dev::{DEV_AUDIENCE, DEV_CUSTOMER, DEV_ISSUER, DEV_TOKEN_TTL, DevAuthKey, DevRole};
use crate::process::{Failure, absolute, runtime, say};
use crate::state::{Adapters, AppState, OpenedStore, instance_id};
use crate::telemetry;

/// What the development mode (`crate::devmode`) adds to a running server: its routes, and
/// the banner it prints once the server listens.
pub trait DevSurface: Send + Sync {
    fn configure(self: Arc<Self>, cfg: &mut web::ServiceConfig);
    /// `tokens`: the development customer's and support tokens the server minted.
    fn started(&self, bound: SocketAddr, tokens: Option<&(String, String)>);
}

/// A database that cannot be opened at start-up is a start-up error like any other bad
/// setting (exit 2, the variable named): the operator fixes the URL or the database.
pub(crate) async fn open_store(config: &Config) -> Result<OpenedStore, Failure> {
    OpenedStore::connect(config).await.map_err(|e| {
        Failure::config(format!(
            "{}: cannot open the {}: {e}",
            config::DATABASE_URL,
            config.database.describe()
        ))
    })
}

pub(crate) fn where_data_lives(store: &OpenedStore, config: &Config) -> String {
    match store {
        OpenedStore::Sqlite(s) => format!("SQLite database {}", absolute(s.path()).display()),
        OpenedStore::Postgres(_) => config.database.describe(),
    }
}

/// What start-up did in development, for the console.
pub(crate) struct DevNotes {
    pub(crate) lines: Vec<String>,
    pub(crate) tokens: Option<(String, String)>,
}

/// Serve with the development mode's emulators and routes (`trunkline dev`).
pub(crate) fn serve_dev(config: Config, dev: Arc<dyn DevSurface>) -> Result<(), Failure> {
    telemetry::init_logging(config.log_format, &config.log_filter);
    runtime()?.block_on(serve_with(config, Some(dev)))
}

pub(crate) async fn serve(config: Config) -> Result<(), Failure> {
    serve_with(config, None).await
}

async fn serve_with(config: Config, dev_mode: Option<Arc<dyn DevSurface>>) -> Result<(), Failure> {
    let config = Arc::new(config);
    let dev = !config.environment.is_production();
    let mut notes = DevNotes {
        lines: Vec::new(),
        tokens: None,
    };
    let data_dir = absolute(&config.data_dir);
    tracing::info!(
        environment = config.environment.as_str(),
        version = env!("CARGO_PKG_VERSION"),
        "trunkline starting"
    );

    let vault = build_vault(&config, &data_dir, &mut notes)?;
    let auth = build_auth(&config, &data_dir, &mut notes)?;

    let store = open_store(&config).await?;
    let location = where_data_lives(&store, &config);
    tracing::info!(database = %location, data_dir = %data_dir.display(), "database opened");
    if dev {
        notes.lines.insert(
            0,
            format!("data: {} (data directory {})", location, data_dir.display()),
        );
    }
    if config.migrate_on_start {
        let applied = store
            .migrate()
            .await
            .map_err(|e| Failure::runtime(format!("migration failed: {e}")))?;
        tracing::info!(applied = applied.len(), versions = ?applied, "migrations applied");
        if dev {
            notes.lines.push(if applied.is_empty() {
                "migrations: the schema is up to date".to_owned()
            } else {
                format!("migrations: applied {}", applied.join(", "))
            });
        }
    } else {
        tracing::info!("TRUNKLINE_MIGRATE_ON_START=false: not migrating");
    }

    let adapters =
        Adapters::from_config(&config, store.into_stores(), vault).map_err(Failure::config)?;
    let instance = instance_id();
    let livekit_configured = adapters.sip.is_some();
    tracing::info!(
        twilio_api = %config.twilio.api_base,
        twilio_trunking = %config.twilio.trunking_base,
        twilio_timeout = ?config.twilio.request_timeout,
        telnyx_api = %config.telnyx.api_base,
        instance = %instance,
        "onboarding ready"
    );
    if let Some(lk) = &config.livekit {
        tracing::info!(
            livekit = %lk.url,
            api_key = %lk.api_key,
            room_prefix = %config.livekit_room_prefix,
            allowed_addresses = lk.inbound.allowed_addresses.len(),
            sip_auth = lk.inbound.auth_username.is_some(),
            media_encryption = lk.inbound.media_encryption.map_or("default", |e| e.as_str()),
            "LiveKit configured: connect manages its trunks and rules, webhooks are accepted"
        );
    } else {
        tracing::warn!(
            "{} is not set: connect skips LiveKit and {} answers NOT_CONFIGURED",
            config::LIVEKIT_URL,
            crate::routes::webhook::PATH
        );
    }
    if let Some(target) = &config.sip_target {
        tracing::info!(sip_target = %target, "default SIP target");
    } else {
        tracing::warn!(
            "{} is not set: connect needs a SIP target in each request (and {}=true)",
            config::SIP_TARGET,
            config::ALLOW_SIP_TARGET_OVERRIDE
        );
    }
    if dev {
        notes.lines.push(format!(
            "twilio: {} / {}; SIP target: {}",
            config.twilio.api_base,
            config.twilio.trunking_base,
            config.sip_target.as_ref().map_or_else(
                || "none (set TRUNKLINE_SIP_TARGET)".to_owned(),
                ToString::to_string
            )
        ));
        notes.lines.push(match &config.livekit {
            Some(lk) => format!(
                "livekit: {} (webhooks: POST {})",
                lk.url,
                crate::routes::webhook::PATH
            ),
            None => "livekit: not configured (set TRUNKLINE_LIVEKIT_URL, _API_KEY, _API_SECRET)"
                .to_owned(),
        });
    }
    let state = AppState::new(
        config.clone(),
        adapters,
        auth,
        telemetry::metrics_handle(),
        &instance,
    );
    let calls = state.calls.clone();
    let fleet = state.fleet.clone();
    let leases = state.stores.leases.clone();
    let jobs = state.jobs.clone();
    let upkeep = state.metrics.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });

    let dev_routes = dev_mode.clone();
    let server = actix_web::HttpServer::new(move || {
        let dev_routes = dev_routes.clone();
        crate::http::app(state.clone()).configure(move |cfg| {
            if let Some(d) = dev_routes {
                d.configure(cfg);
            }
        })
    })
    // actix treats SIGINT as a forced stop; both signals drain here (see `on_signals`).
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .bind(config.listen)
    .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", config.listen)))?;
    let bound = server.addrs().first().copied().unwrap_or(config.listen);

    if let Some(d) = &dev_mode {
        d.started(bound, notes.tokens.as_ref());
    } else if dev {
        print_dev_banner(&notes, bound);
    }
    say(&format!("listening on http://{bound}"));
    tracing::info!(address = %bound, "listening");

    // libphonenumber compiles its metadata on the first parse (≈ 110 ms of CPU): pay it now,
    // off the async workers and after the listener is up (so `/readyz` is not delayed),
    // rather than in the first connect or the first call's webhook.
    drop(tokio::task::spawn_blocking(|| {
        let _ = trunkline_core::E164::parse("+14155550100");
    }));

    let server = server.run();
    let handle = server.handle();
    let timeout = config.shutdown_timeout;
    // Set on the first signal (and when the server stops for any other reason): the
    // dispatch retrier starts no new pass after it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let retrier = livekit_configured.then(|| {
        actix_web::rt::spawn(retry_dispatches(
            calls,
            config.dispatch.retry_interval,
            stop_rx,
        ))
    });
    // On the multi-threaded runtime, like the job runner (see `jobs::run_jobs`).
    let reconciler = tokio::spawn(crate::reconciler::run(
        fleet,
        leases,
        instance.clone(),
        config.fleet.clone(),
        stop_tx.subscribe(),
    ));
    // A worker of the multi-threaded runtime (see `jobs::run_jobs`).
    let job_runner = tokio::spawn(crate::jobs::run_jobs(
        jobs,
        config.jobs,
        stop_tx.subscribe(),
    ));
    let stop_on_signal = stop_tx.clone();
    actix_web::rt::spawn(async move {
        if let Err(e) = on_signals(handle, timeout, stop_on_signal).await {
            tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM");
        }
    });
    let outcome = server.await;
    let _ = stop_tx.send(true);
    drop(job_runner);
    if let Some(retrier) = retrier {
        // A pass in flight finishes (its dispatch claims would otherwise wait out their
        // TTL before another instance takes them over), within the shutdown budget.
        if tokio::time::timeout(timeout, retrier).await.is_err() {
            tracing::warn!(
                "the dispatch retrier did not finish its pass before the shutdown timeout"
            );
        }
    }
    if tokio::time::timeout(timeout, reconciler).await.is_err() {
        tracing::warn!("the reconciler did not finish its batch before the shutdown timeout");
    }
    outcome.map_err(|e| Failure::runtime(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// While retry passes keep failing, one WARN per this long.
const OUTAGE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Due dispatches picked up per pass; the rest wait for the next one.
const RETRY_BATCH: u32 = 100;

/// The background half of exactly-once dispatch: every `interval`, retry the dispatches
/// that failed (once their backoff passed) and those whose claim holder died. Every
/// instance runs one; the store's claim keeps them from dispatching twice.
async fn retry_dispatches(
    calls: Arc<trunkline_core::usecases::Calls>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::telemetry::DISPATCH_RETRIES_TOTAL;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        interval_ms = interval.as_millis(),
        "dispatch retrier started"
    );
    let mut outage = telemetry::RepeatedFailure::new(OUTAGE_LOG_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let result = calls.retry_due_dispatches(RETRY_BATCH).await;
        if result.is_ok()
            && let Some((failures, lasted)) = outage.succeeded(std::time::Instant::now())
        {
            tracing::info!(
                failures,
                lasted_secs = lasted.as_secs(),
                "dispatch retry passes work again"
            );
        }
        match result {
            // Counts only: the calls' rooms and numbers are logged (masked) by the use case.
            Ok(report) if report.attempted > 0 => {
                for (outcome, n) in [
                    ("dispatched", report.dispatched),
                    ("failed", report.failed.saturating_sub(report.gave_up)),
                    ("gave_up", report.gave_up),
                ] {
                    if n > 0 {
                        metrics::counter!(DISPATCH_RETRIES_TOTAL, "outcome" => outcome)
                            .increment(n as u64);
                    }
                }
                tracing::info!(
                    due = report.due,
                    waiting = report.waiting,
                    attempted = report.attempted,
                    dispatched = report.dispatched,
                    failed = report.failed,
                    gave_up = report.gave_up,
                    "dispatch retry pass"
                );
            }
            Ok(report) => {
                if report.due > 0 {
                    tracing::debug!(
                        due = report.due,
                        waiting = report.waiting,
                        "dispatch retry pass: all waiting"
                    );
                }
            }
            Err(e) => {
                // The database is away: try again next tick; nothing is lost (the calls
                // stay due in the store). One line per tick would flood the logs.
                if let Some(failures) = outage.failed(std::time::Instant::now()) {
                    tracing::warn!(
                        code = %e.code,
                        error = %e.message,
                        failures,
                        "dispatch retry pass failed (logged at most once a minute while \
                         it keeps failing)"
                    );
                }
            }
        }
    }
    tracing::info!("dispatch retrier stopped");
}

/// SIGINT or SIGTERM: stop accepting, let in-flight requests finish within the shutdown
/// timeout. A second signal stops at once.
async fn on_signals(
    handle: actix_web::dev::ServerHandle,
    timeout: std::time::Duration,
    stop_background: tokio::sync::watch::Sender<bool>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        timeout_secs = timeout.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    let _ = stop_background.send(true);
    let graceful = handle.clone();
    actix_web::rt::spawn(async move { graceful.stop(true).await });
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: stopping now");
    handle.stop(false).await;
    Ok(())
}

pub(crate) fn build_vault(
    config: &Config,
    data_dir: &Path,
    notes: &mut DevNotes,
) -> Result<Arc<dyn CredentialVault>, Failure> {
    let ring = if let Some(keys) = &config.vault {
        KeyRing::from_config(&keys.keys, &keys.active_kid)
            .map_err(|e| Failure::config(format!("{}: {e}", config::VAULT_KEYS)))?
    } else {
        let (ring, file) = KeyRing::load_or_create_dev(data_dir).map_err(Failure::runtime)?;
        // The vault logs its own warning; the console gets this one.
        let path = absolute(&file.path);
        notes.lines.push(format!(
            "vault: WARNING: DEVELOPMENT key file {} ({}). It sits next to the data it \
             protects: anyone with both can read the stored carrier credentials, and losing \
             it loses them. Set {} and {} for real use.",
            path.display(),
            if file.created {
                "created now"
            } else {
                "reused"
            },
            config::VAULT_KEYS,
            config::VAULT_ACTIVE_KEY,
        ));
        ring
    };
    Ok(Arc::new(AesGcmVault::new(ring)))
}

fn build_auth(
    config: &Config,
    data_dir: &Path,
    notes: &mut DevNotes,
) -> Result<Arc<Authenticator>, Failure> {
    if let Some(auth) = &config.auth {
        let keys = VerifyKey::load_all(&auth.public_keys)
            .map_err(|e| Failure::config(format!("{}: {e}", config::AUTH_PUBLIC_KEYS)))?;
        for k in &keys {
            tracing::info!(key = k.label(), kid = k.kid(), algorithm = ?k.algorithm(), "JWT key loaded");
        }
        return Ok(Arc::new(Authenticator::new(
            keys,
            &auth.issuer,
            &auth.audience,
            config.claims.clone(),
        )));
    }
    let key = DevAuthKey::load_or_create(data_dir).map_err(Failure::runtime)?;
    let path = absolute(key.path());
    tracing::warn!(path = %path.display(), "using the DEVELOPMENT auth key pair");
    notes.lines.push(format!(
        "auth: development Ed25519 key pair {} ({}); issuer {DEV_ISSUER}, audience {DEV_AUDIENCE}. \
         Set {}, {} and {} for real use.",
        path.display(),
        if key.created() {
            "created now"
        } else {
            "reused"
        },
        config::AUTH_PUBLIC_KEYS,
        config::AUTH_ISSUER,
        config::AUTH_AUDIENCE,
    ));
    let customer = CustomerId::parse(DEV_CUSTOMER).map_err(Failure::runtime)?;
    let mint = |role| {
        key.mint(&customer, role, DEV_TOKEN_TTL, &config.claims)
            .map_err(|e| Failure::runtime(format!("cannot sign a development token: {e}")))
    };
    notes.tokens = Some((mint(DevRole::Customer)?, mint(DevRole::Support)?));
    Ok(Arc::new(key.authenticator(config.claims.clone())))
}

fn print_dev_banner(notes: &DevNotes, bound: SocketAddr) {
    // An unspecified bind address is reachable on loopback; curl cannot dial 0.0.0.0.
    let reach = if bound.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
    } else {
        bound
    };
    let mut text = String::from(
        "trunkline is running in DEVELOPMENT mode (TRUNKLINE_ENV=production turns every \
         fallback below into a start-up error)\n",
    );
    for line in &notes.lines {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    if let Some((customer, support)) = &notes.tokens {
        let _ = write!(
            text,
            "\nDevelopment tokens, valid 24 h (more with `trunkline dev-token --customer X \
             [--role support]`):\n\
             # customer {DEV_CUSTOMER}\n\
             export TRUNKLINE_TOKEN={customer}\n\
             # support: reads any customer's data (?customerId=...), changes nothing\n\
             export TRUNKLINE_SUPPORT_TOKEN={support}\n\
             \nTry:\n\
             curl -s -H \"Authorization: Bearer $TRUNKLINE_TOKEN\" http://{reach}/telephony/me\n"
        );
    }
    say(&text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    /// A store without its schema fails every pass, like a database that is down.
    #[tokio::test]
    async fn a_failing_retrier_warns_once_not_every_tick() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([(
            config::DATABASE_URL,
            format!("sqlite://{}/t.db", dir.path().display()),
        )]);
        let config = Config::from_env(&env).unwrap();
        let stores = OpenedStore::connect(&config).await.unwrap().into_stores();
        let calls = Arc::new(crate::state::build_calls(&config, &stores, None, "test"));
        let (lines, _guard) = telemetry::capture::json();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let retrier = retry_dispatches(calls, std::time::Duration::from_millis(5), stop_rx);
        let stopper = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let _ = stop_tx.send(true);
        };
        tokio::join!(retrier, stopper);
        let text = lines.text();
        let warns = text
            .lines()
            .filter(|l| l.contains("dispatch retry pass failed"))
            .count();
        assert_eq!(warns, 1, "{text}");
    }
}
