//! Configuration: read once from the environment into a validated [`Config`], then passed
//! explicitly. Nothing else in the crate reads the environment.
//!
//! Every problem names its variable and never echoes the value of a secret. All problems
//! found are reported together, on one line, so a misconfigured deployment is fixed in one
//! round trip.

mod background;
mod database;
mod env;
mod keys;
mod livekit;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use trunkline_core::SipTarget;

pub use self::background::{DispatchConfig, FleetConfig, JobsConfig};
use self::background::{parse_dispatch, parse_jobs};
pub use self::database::DatabaseConfig;
use self::database::{parse_database, sqlite_dir};
pub use self::env::{ConfigError, Env, Problem};
use self::env::{Problems, parse_bool, parse_number};
pub use self::keys::{AuthKeysConfig, ClaimNames, KeySource, VaultKeysConfig};
use self::keys::{parse_auth, parse_claim_name, parse_vault};
/// The LiveKit adapter's configuration (server API, key, inbound trunk options): the
/// adapter's own type, validated by the adapter's own rules while the environment is read.
pub use self::livekit::LiveKitConfig;
use self::livekit::{parse_livekit, parse_room_prefix};

pub const LISTEN: &str = "TRUNKLINE_LISTEN";
pub const DATABASE_URL: &str = "TRUNKLINE_DATABASE_URL";
pub const DATABASE_MAX_CONNECTIONS: &str = "TRUNKLINE_DATABASE_MAX_CONNECTIONS";
pub const DATA_DIR: &str = "TRUNKLINE_DATA_DIR";
pub const MIGRATE_ON_START: &str = "TRUNKLINE_MIGRATE_ON_START";
pub const VAULT_KEYS: &str = "TRUNKLINE_VAULT_KEYS";
pub const VAULT_ACTIVE_KEY: &str = "TRUNKLINE_VAULT_ACTIVE_KEY";
pub const AUTH_PUBLIC_KEYS: &str = "TRUNKLINE_AUTH_PUBLIC_KEYS";
pub const AUTH_ISSUER: &str = "TRUNKLINE_AUTH_ISSUER";
pub const AUTH_AUDIENCE: &str = "TRUNKLINE_AUTH_AUDIENCE";
pub const AUTH_CUSTOMER_CLAIM: &str = "TRUNKLINE_AUTH_CUSTOMER_CLAIM";
pub const AUTH_ROLES_CLAIM: &str = "TRUNKLINE_AUTH_ROLES_CLAIM";
pub const ENV: &str = "TRUNKLINE_ENV";
pub const LOG_FORMAT: &str = "TRUNKLINE_LOG_FORMAT";
pub const RUST_LOG: &str = "RUST_LOG";
pub const MAX_BODY_BYTES: &str = "TRUNKLINE_MAX_BODY_BYTES";
pub const SHUTDOWN_TIMEOUT_SECS: &str = "TRUNKLINE_SHUTDOWN_TIMEOUT_SECS";
pub const LIVEKIT_URL: &str = "TRUNKLINE_LIVEKIT_URL";
pub const LIVEKIT_API_KEY: &str = "TRUNKLINE_LIVEKIT_API_KEY";
pub const LIVEKIT_API_SECRET: &str = "TRUNKLINE_LIVEKIT_API_SECRET";
// The adapter's own names, so the server and the adapter crate can never disagree.
pub const LIVEKIT_ALLOWED_ADDRESSES: &str = trunkline_livekit::ALLOWED_ADDRESSES_ENV;
pub const LIVEKIT_AUTH_USERNAME: &str = trunkline_livekit::AUTH_USERNAME_ENV;
pub const LIVEKIT_AUTH_PASSWORD: &str = trunkline_livekit::AUTH_PASSWORD_ENV;
pub const LIVEKIT_MEDIA_ENCRYPTION: &str = trunkline_livekit::MEDIA_ENCRYPTION_ENV;
pub const LIVEKIT_REQUEST_TIMEOUT_SECS: &str = trunkline_livekit::REQUEST_TIMEOUT_ENV;
pub const LIVEKIT_ROOM_PREFIX: &str = "TRUNKLINE_LIVEKIT_ROOM_PREFIX";
pub const DISPATCH_RETRY_INTERVAL_MS: &str = "TRUNKLINE_DISPATCH_RETRY_INTERVAL_MS";
pub const DISPATCH_BACKOFF_BASE_MS: &str = "TRUNKLINE_DISPATCH_BACKOFF_BASE_MS";
pub const DISPATCH_BACKOFF_MAX_MS: &str = "TRUNKLINE_DISPATCH_BACKOFF_MAX_MS";
pub const DISPATCH_MAX_ATTEMPTS: &str = "TRUNKLINE_DISPATCH_MAX_ATTEMPTS";
pub const DISPATCH_CLAIM_TTL_SECS: &str = "TRUNKLINE_DISPATCH_CLAIM_TTL_SECS";
pub const ALLOW_NUMBER_PURCHASE: &str = "TRUNKLINE_ALLOW_NUMBER_PURCHASE";
pub const RECONCILE_CHECKS_PER_MINUTE: &str = "TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE";
pub const RECONCILE_RECHECK_SECS: &str = "TRUNKLINE_RECONCILE_RECHECK_SECS";
pub const RECONCILE_IN_FLIGHT: &str = "TRUNKLINE_RECONCILE_IN_FLIGHT";
pub const RECONCILE_PER_INTEGRATION_IN_FLIGHT: &str =
    "TRUNKLINE_RECONCILE_PER_INTEGRATION_IN_FLIGHT";
pub const RECONCILE_TICK_MS: &str = "TRUNKLINE_RECONCILE_TICK_MS";
pub const SIP_TARGET: &str = "TRUNKLINE_SIP_TARGET";
pub const ALLOW_SIP_TARGET_OVERRIDE: &str = "TRUNKLINE_ALLOW_SIP_TARGET_OVERRIDE";
pub const OUTBOUND_ALLOWED_COUNTRIES: &str = "TRUNKLINE_OUTBOUND_ALLOWED_COUNTRIES";
pub const CREDENTIAL_CHECKS_PER_MINUTE: &str = "TRUNKLINE_CREDENTIAL_CHECKS_PER_MINUTE";
pub const CREDENTIAL_CHECKS_BURST: &str = "TRUNKLINE_CREDENTIAL_CHECKS_BURST";
pub const DATABASE_TIMEOUT_MS: &str = "TRUNKLINE_DATABASE_TIMEOUT_MS";
pub const LEASE_TTL_MS: &str = "TRUNKLINE_LEASE_TTL_MS";
pub const UPSTREAM_CONCURRENCY: &str = "TRUNKLINE_UPSTREAM_CONCURRENCY";
pub const JOBS_PARALLELISM: &str = "TRUNKLINE_JOBS_PARALLELISM";
pub const JOBS_MAX_RUNNING: &str = "TRUNKLINE_JOBS_MAX_RUNNING";
pub const JOBS_POLL_INTERVAL_MS: &str = "TRUNKLINE_JOBS_POLL_INTERVAL_MS";
pub const JOBS_CLAIM_TTL_SECS: &str = "TRUNKLINE_JOBS_CLAIM_TTL_SECS";
pub const PUBLIC_URL: &str = "TRUNKLINE_PUBLIC_URL";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/trunkline.db";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_MAX_CONNECTIONS: usize = 10;
/// Credential checks (verify, save) a customer may make per minute, and at once.
pub const DEFAULT_CREDENTIAL_CHECKS_PER_MINUTE: u32 = 10;
pub const DEFAULT_CREDENTIAL_CHECKS_BURST: u32 = 5;
/// The longest wait for a database connection and for the readiness query: below the
/// readiness probe's 3 s timeout in `deploy/k8s`, so a database that accepts connections
/// and never answers makes `/readyz` and the routes answer 503 instead of hanging.
pub const DEFAULT_DATABASE_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_CUSTOMER_CLAIM: &str = "customer_id";
pub const DEFAULT_ROLES_CLAIM: &str = "roles";
pub const DEFAULT_LOG_FILTER: &str = "info";
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// One LiveKit request, connection to last byte (the adapter's default).
pub const DEFAULT_LIVEKIT_REQUEST_TIMEOUT_SECS: u64 = 10;
/// LiveKit names each call's room `<prefix>_<caller>_<random>`.
pub const DEFAULT_LIVEKIT_ROOM_PREFIX: &str = "call-";
/// How often each instance looks for agent dispatches that are due again.
pub const DEFAULT_DISPATCH_RETRY_INTERVAL_MS: u64 = 1_000;
/// The wait after a failed dispatch; it doubles per attempt up to the maximum.
pub const DEFAULT_DISPATCH_BACKOFF_BASE_MS: u64 = 1_000;
pub const DEFAULT_DISPATCH_BACKOFF_MAX_MS: u64 = 60_000;
/// Attempts before a dispatch is given up and logged for a human.
pub const DEFAULT_DISPATCH_MAX_ATTEMPTS: u32 = 8;
/// How long a call's dispatch claim outlives its holder (at least four LiveKit request
/// timeouts: see `background::parse_dispatch`).
pub const DEFAULT_DISPATCH_CLAIM_TTL_SECS: u64 = 60;

/// Bounds that catch typos (an extra zero) rather than express policy.
/// (The bounds of the LiveKit and background settings are in their modules.)
const MAX_MAX_CONNECTIONS: usize = 1_000;
const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
const MAX_SHUTDOWN_TIMEOUT_SECS: u64 = 3_600;

/// The variables a production deployment must set, in the order they are reported.
const PRODUCTION_REQUIRED: [&str; 5] = [
    VAULT_KEYS,
    VAULT_ACTIVE_KEY,
    AUTH_PUBLIC_KEYS,
    AUTH_ISSUER,
    AUTH_AUDIENCE,
];

/// `development` allows the dev fallbacks; `production` refuses every one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn is_production(self) -> bool {
        self == Self::Production
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub listen: SocketAddr,
    pub database: DatabaseConfig,
    pub database_max_connections: usize,
    /// The longest wait for a pooled database connection and for the readiness check.
    pub database_timeout: Duration,
    /// Per customer: credential checks refilled per minute, and how many at once.
    pub credential_checks_per_minute: u32,
    pub credential_checks_burst: u32,
    /// Where development key files live.
    pub data_dir: PathBuf,
    pub migrate_on_start: bool,
    /// `None`: the development vault key file is used (refused in production).
    pub vault: Option<VaultKeysConfig>,
    /// `None`: the development auth key pair is used (refused in production).
    pub auth: Option<AuthKeysConfig>,
    pub claims: ClaimNames,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    /// `None`: LiveKit is not configured (connect skips its LiveKit half, webhooks are
    /// refused with `NOT_CONFIGURED`).
    pub livekit: Option<LiveKitConfig>,
    /// The prefix of the rooms the dispatch rules create.
    pub livekit_room_prefix: String,
    pub dispatch: DispatchConfig,
    /// How long a connect/disconnect lease lives without renewal: after a crash, the number
    /// is free again within it.
    pub lease_ttl: Duration,
    pub jobs: JobsConfig,
    pub sip_target: Option<SipTarget>,
    pub allow_sip_target_override: bool,
    /// Countries outbound calls may reach, on carriers that whitelist destinations (Telnyx's
    /// outbound voice profile); empty: the countries of the route's numbers.
    pub outbound_allowed_countries: Vec<String>,
    /// The Telnyx adapter's settings (`TRUNKLINE_TELNYX_*`), parsed and validated by the
    /// adapter itself.
    pub telnyx: trunkline_telnyx::TelnyxConfig,
    /// The Twilio adapter's settings (`TRUNKLINE_TWILIO_*`), parsed and validated by the
    /// adapter itself.
    pub twilio: trunkline_twilio::TwilioConfig,
    /// Number purchase and the drift reconciler.
    pub fleet: FleetConfig,
    /// The URL carriers reach trunkline at, behind any proxy (`TRUNKLINE_PUBLIC_URL`), without
    /// a trailing slash: voice-URL mode points numbers at it, and the voice webhook checks
    /// signatures over it. `None`: voice-URL mode is refused as not configured.
    pub public_url: Option<String>,
}

impl Config {
    /// Parse and validate. Only formats are checked here: files are read and connections
    /// made at start-up.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut p = Problems::default();

        let environment = match env.get(ENV, &mut p).as_deref() {
            None => Environment::Development,
            Some(v) if v.eq_ignore_ascii_case("development") => Environment::Development,
            Some(v) if v.eq_ignore_ascii_case("production") => Environment::Production,
            Some(_) => {
                p.push(ENV, "must be development or production");
                Environment::Development
            }
        };

        let listen = parse_listen(env.get(LISTEN, &mut p).as_deref(), &mut p);
        let database = parse_database(env.get(DATABASE_URL, &mut p), &mut p);
        let database_max_connections = parse_number(
            env,
            DATABASE_MAX_CONNECTIONS,
            DEFAULT_MAX_CONNECTIONS,
            1..=MAX_MAX_CONNECTIONS,
            &mut p,
        );
        let database_timeout = Duration::from_millis(parse_number(
            env,
            DATABASE_TIMEOUT_MS,
            DEFAULT_DATABASE_TIMEOUT_MS,
            100..=60_000,
            &mut p,
        ));
        let credential_checks_per_minute = parse_number(
            env,
            CREDENTIAL_CHECKS_PER_MINUTE,
            DEFAULT_CREDENTIAL_CHECKS_PER_MINUTE,
            1..=10_000,
            &mut p,
        );
        let credential_checks_burst = parse_number(
            env,
            CREDENTIAL_CHECKS_BURST,
            DEFAULT_CREDENTIAL_CHECKS_BURST,
            1..=1_000,
            &mut p,
        );
        let explicit_data_dir = env.get(DATA_DIR, &mut p).map(PathBuf::from);
        let data_dir = match (&explicit_data_dir, &database) {
            (Some(dir), _) => dir.clone(),
            (None, Some(DatabaseConfig::Sqlite { path, .. })) => sqlite_dir(path),
            (None, _) => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let migrate_on_start = parse_bool(env, MIGRATE_ON_START, true, &mut p);

        let vault = parse_vault(env, &mut p);
        let auth = parse_auth(env, &mut p);
        let claims = ClaimNames {
            customer: parse_claim_name(env, AUTH_CUSTOMER_CLAIM, DEFAULT_CUSTOMER_CLAIM, &mut p),
            roles: parse_claim_name(env, AUTH_ROLES_CLAIM, DEFAULT_ROLES_CLAIM, &mut p),
        };

        let log_format = match env.get(LOG_FORMAT, &mut p).as_deref() {
            None if env.stderr_is_terminal => LogFormat::Pretty,
            None => LogFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(v) if v.eq_ignore_ascii_case("pretty") => LogFormat::Pretty,
            Some(_) => {
                p.push(LOG_FORMAT, "must be json or pretty");
                LogFormat::Json
            }
        };
        let log_filter = env
            .get(RUST_LOG, &mut p)
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_filter) {
            p.push(RUST_LOG, format!("is not a valid log filter: {e}"));
        }

        let max_body_bytes = parse_number(
            env,
            MAX_BODY_BYTES,
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_BODY_LIMIT,
            &mut p,
        );
        let shutdown_timeout = Duration::from_secs(parse_number(
            env,
            SHUTDOWN_TIMEOUT_SECS,
            DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            0..=MAX_SHUTDOWN_TIMEOUT_SECS,
            &mut p,
        ));

        let livekit = parse_livekit(env, &mut p);
        let livekit_room_prefix = parse_room_prefix(env, &mut p);
        let livekit_request_timeout = livekit.as_ref().map_or(
            Duration::from_secs(DEFAULT_LIVEKIT_REQUEST_TIMEOUT_SECS),
            |l| l.request_timeout,
        );
        let dispatch = parse_dispatch(env, livekit_request_timeout, &mut p);
        let lease_ttl = Duration::from_millis(parse_number(
            env,
            LEASE_TTL_MS,
            u64::try_from(trunkline_core::usecases::LEASE_TTL.as_millis()).unwrap_or(10_000),
            1_000..=60_000,
            &mut p,
        ));
        let jobs = parse_jobs(env, &mut p);
        let sip_target = env
            .get(SIP_TARGET, &mut p)
            .and_then(|raw| match SipTarget::parse(&raw) {
                Ok(t) => Some(t),
                Err(e) => {
                    p.push(SIP_TARGET, e.reason);
                    None
                }
            });
        let allow_sip_target_override = parse_bool(env, ALLOW_SIP_TARGET_OVERRIDE, false, &mut p);
        let fleet = FleetConfig::from_env(env, &mut p);
        let outbound_allowed_countries = parse_countries(env, &mut p);
        let public_url = env
            .get(PUBLIC_URL, &mut p)
            .and_then(|raw| match parse_public_url(&raw) {
                Ok(u) => Some(u),
                Err(e) => {
                    p.push(PUBLIC_URL, e);
                    None
                }
            });
        // Each carrier adapter owns its variables and reports every problem, each by name.
        let twilio = trunkline_twilio::TwilioConfig::from_lookup(|name| env.lossy(name))
            .unwrap_or_else(|e| {
                for problem in e.problems() {
                    p.push(problem.variable, problem.message.clone());
                }
                trunkline_twilio::TwilioConfig::twilio_public()
            });
        let telnyx = trunkline_telnyx::TelnyxConfig::from_lookup(|name| env.lossy(name))
            .unwrap_or_else(|e| {
                for problem in e.problems {
                    p.push(problem.variable, problem.message);
                }
                trunkline_telnyx::TelnyxConfig::telnyx_public()
            });

        match (p.0.is_empty(), listen, database) {
            (true, Some(listen), Some(database)) => Ok(Self {
                environment,
                listen,
                database,
                database_max_connections,
                database_timeout,
                credential_checks_per_minute,
                credential_checks_burst,
                data_dir,
                migrate_on_start,
                vault,
                auth,
                claims,
                log_format,
                log_filter,
                max_body_bytes,
                shutdown_timeout,
                livekit,
                livekit_room_prefix,
                dispatch,
                lease_ttl,
                jobs,
                sip_target,
                allow_sip_target_override,
                outbound_allowed_countries,
                telnyx,
                twilio,
                fleet,
                public_url,
            }),
            _ => Err(ConfigError { problems: p.0 }),
        }
    }

    /// Production refuses every development fallback. All missing variables are named at
    /// once.
    pub fn check_production(&self, env: &Env) -> Result<(), ConfigError> {
        if !self.environment.is_production() {
            return Ok(());
        }
        let missing: Vec<&str> = PRODUCTION_REQUIRED
            .into_iter()
            .filter(|name| !env.is_set(name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError::single(
            ENV,
            format!(
                "production requires {} (development fallbacks are refused in production)",
                missing.join(", ")
            ),
        ))
    }
}

fn parse_listen(raw: Option<&str>, p: &mut Problems) -> Option<SocketAddr> {
    let raw = raw.unwrap_or(DEFAULT_LISTEN);
    if let Ok(addr) = raw.parse() {
        Some(addr)
    } else {
        p.push(
            LISTEN,
            "must be an IP address and port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
        );
        None
    }
}

/// ISO 3166-1 alpha-2 codes, comma-separated (`US, CA`); upper-cased, duplicates dropped.
fn parse_countries(env: &Env, p: &mut Problems) -> Vec<String> {
    let Some(raw) = env.get(OUTBOUND_ALLOWED_COUNTRIES, p) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_alphabetic()) {
            p.push(
                OUTBOUND_ALLOWED_COUNTRIES,
                "must be ISO 3166-1 alpha-2 country codes separated by commas, e.g. \"US,CA\"",
            );
            return Vec::new();
        }
        let code = part.to_ascii_uppercase();
        if !out.contains(&code) {
            out.push(code);
        }
    }
    if out.len() > MAX_OUTBOUND_COUNTRIES {
        p.push(
            OUTBOUND_ALLOWED_COUNTRIES,
            format!("at most {MAX_OUTBOUND_COUNTRIES} countries"),
        );
        return Vec::new();
    }
    out
}

/// More countries than any carrier's whitelist holds is a typo, not a policy.
const MAX_OUTBOUND_COUNTRIES: usize = 250;

/// An http(s) URL with a host and no credentials, query or fragment, kept as written (the
/// carrier signs the URL exactly as it requests it) minus a trailing slash.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(
            "must be an http(s) URL with a host, e.g. https://trunkline.example.com".into(),
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(raw.trim().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::Path;

    use super::*;
    use secrecy::ExposeSecret as _;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_without_any_variable() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        let DatabaseConfig::Sqlite { path, url } = &c.database else {
            panic!("expected sqlite, got {:?}", c.database);
        };
        assert_eq!(url, DEFAULT_DATABASE_URL);
        assert_eq!(path, Path::new("./data/trunkline.db"));
        assert_eq!(c.data_dir, Path::new("./data"));
        assert_eq!(c.database_max_connections, 10);
        assert!(c.migrate_on_start);
        assert!(c.vault.is_none());
        assert!(c.auth.is_none());
        assert_eq!(c.claims, ClaimNames::default());
        assert_eq!(c.claims.customer, "customer_id");
        assert_eq!(c.claims.roles, "roles");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.max_body_bytes, 65_536);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert!(c.livekit.is_none());
        assert_eq!(c.livekit_room_prefix, "call-");
        assert_eq!(c.dispatch, DispatchConfig::default());
        assert_eq!(c.dispatch.retry_interval, Duration::from_secs(1));
        assert_eq!(c.dispatch.backoff_base, Duration::from_secs(1));
        assert_eq!(c.dispatch.backoff_max, Duration::from_secs(60));
        assert_eq!(c.dispatch.max_attempts, 8);
        assert_eq!(c.dispatch.claim_ttl, Duration::from_secs(60));
        assert!(c.sip_target.is_none());
        assert!(!c.allow_sip_target_override);
        // The adapters' own defaults (their tests pin the values).
        assert_eq!(c.twilio, trunkline_twilio::TwilioConfig::default());
        assert_eq!(c.telnyx, trunkline_telnyx::TelnyxConfig::default());
    }

    #[test]
    fn log_format_defaults_to_pretty_on_a_terminal() {
        let c = Config::from_env(&Env::default().with_terminal(true)).unwrap();
        assert_eq!(c.log_format, LogFormat::Pretty);
        let c =
            Config::from_env(&Env::from_pairs([(LOG_FORMAT, "json")]).with_terminal(true)).unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn every_variable_is_read() {
        let c = parse(&[
            (ENV, "Production"),
            (LISTEN, "0.0.0.0:9000"),
            (DATABASE_URL, "postgres://u:pw@db.internal:6432/trunk"),
            (DATABASE_MAX_CONNECTIONS, "25"),
            (DATA_DIR, "/var/lib/trunkline"),
            (MIGRATE_ON_START, "false"),
            (VAULT_KEYS, "k1:AAAA"),
            (VAULT_ACTIVE_KEY, "k1"),
            (
                AUTH_PUBLIC_KEYS,
                "/etc/a.pem, -----BEGIN PUBLIC KEY-----\\nAAA",
            ),
            (AUTH_ISSUER, "https://issuer"),
            (AUTH_AUDIENCE, "trunkline-api"),
            (AUTH_CUSTOMER_CLAIM, "org"),
            (AUTH_ROLES_CLAIM, "scope"),
            (LOG_FORMAT, "pretty"),
            (RUST_LOG, "debug,actix_web=warn"),
            (MAX_BODY_BYTES, "1024"),
            (SHUTDOWN_TIMEOUT_SECS, "5"),
            (LIVEKIT_URL, "wss://lk.example.com"),
            (LIVEKIT_API_KEY, "APIkey"),
            (LIVEKIT_API_SECRET, "s3cret"),
            (LIVEKIT_ALLOWED_ADDRESSES, "54.172.60.0/30, 2001:db8::1"),
            (LIVEKIT_AUTH_USERNAME, "carrier"),
            (LIVEKIT_AUTH_PASSWORD, "sip-pass-w0rd"),
            (LIVEKIT_MEDIA_ENCRYPTION, "require"),
            (LIVEKIT_REQUEST_TIMEOUT_SECS, "4"),
            (LIVEKIT_ROOM_PREFIX, "inbound-"),
            (DISPATCH_RETRY_INTERVAL_MS, "250"),
            (DISPATCH_BACKOFF_BASE_MS, "100"),
            (DISPATCH_BACKOFF_MAX_MS, "5000"),
            (DISPATCH_MAX_ATTEMPTS, "3"),
            (DISPATCH_CLAIM_TTL_SECS, "16"),
            (SIP_TARGET, "sip:abc.sip.livekit.cloud;transport=tcp"),
            (ALLOW_SIP_TARGET_OVERRIDE, "yes"),
            (OUTBOUND_ALLOWED_COUNTRIES, "us, CA,US"),
            (trunkline_twilio::API_BASE_ENV, "http://127.0.0.1:1234"),
            (trunkline_twilio::TIMEOUT_MS_ENV, "750"),
            (trunkline_telnyx::RETRY_BUDGET_MS_ENV, "0"),
        ])
        .unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        let DatabaseConfig::Postgres { url, display } = &c.database else {
            panic!("expected postgres");
        };
        assert_eq!(
            url.expose_secret(),
            "postgres://u:pw@db.internal:6432/trunk"
        );
        assert_eq!(display, "db.internal:6432/trunk");
        assert!(!c.database.describe().contains("pw"));
        assert_eq!(c.database_max_connections, 25);
        assert_eq!(c.data_dir, Path::new("/var/lib/trunkline"));
        assert!(!c.migrate_on_start);
        let vault = c.vault.as_ref().unwrap();
        assert_eq!(vault.keys.expose_secret(), "k1:AAAA");
        assert_eq!(vault.active_kid, "k1");
        let auth = c.auth.as_ref().unwrap();
        assert_eq!(
            auth.public_keys,
            vec![
                KeySource::File(PathBuf::from("/etc/a.pem")),
                KeySource::Inline("-----BEGIN PUBLIC KEY-----\nAAA".to_owned()),
            ]
        );
        assert_eq!(auth.issuer, "https://issuer");
        assert_eq!(auth.audience, "trunkline-api");
        assert_eq!(c.claims.customer, "org");
        assert_eq!(c.claims.roles, "scope");
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.log_filter, "debug,actix_web=warn");
        assert_eq!(c.max_body_bytes, 1024);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        let lk = c.livekit.as_ref().unwrap();
        assert_eq!(lk.url, "wss://lk.example.com");
        assert_eq!(lk.base_url().unwrap().as_str(), "https://lk.example.com/");
        assert_eq!(lk.api_key, "APIkey");
        assert_eq!(lk.api_secret.expose_secret(), "s3cret");
        assert_eq!(lk.request_timeout, Duration::from_secs(4));
        assert_eq!(
            lk.inbound.allowed_addresses,
            ["54.172.60.0/30", "2001:db8::1"]
        );
        assert_eq!(lk.inbound.auth_username.as_deref(), Some("carrier"));
        assert_eq!(
            lk.inbound
                .auth_password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .as_deref(),
            Some("sip-pass-w0rd")
        );
        assert_eq!(
            lk.inbound.media_encryption,
            Some(trunkline_livekit::MediaEncryption::Require)
        );
        assert_eq!(c.livekit_room_prefix, "inbound-");
        assert_eq!(c.outbound_allowed_countries, ["US", "CA"]);
        assert_eq!(
            c.dispatch,
            DispatchConfig {
                retry_interval: Duration::from_millis(250),
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_secs(5),
                max_attempts: 3,
                claim_ttl: Duration::from_secs(16),
            }
        );
        assert_eq!(
            c.sip_target.as_ref().unwrap().host(),
            "abc.sip.livekit.cloud"
        );
        assert!(c.allow_sip_target_override);
        // The adapters see the server's environment (their tests cover every variable).
        assert_eq!(c.twilio.api_base.as_str(), "http://127.0.0.1:1234/");
        assert_eq!(c.twilio.request_timeout, Duration::from_millis(750));
        assert_eq!(c.telnyx.retry_budget, Duration::ZERO);
        // Nothing secret in Debug output.
        let debug = format!("{c:?}");
        for secret in ["pw@", "k1:AAAA", "s3cret", "sip-pass-w0rd"] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        c.check_production(&Env::from_pairs([
            (VAULT_KEYS, "x"),
            (VAULT_ACTIVE_KEY, "x"),
            (AUTH_PUBLIC_KEYS, "x"),
            (AUTH_ISSUER, "x"),
            (AUTH_AUDIENCE, "x"),
        ]))
        .unwrap();
    }

    #[test]
    fn sqlite_data_dir_is_the_files_directory_unless_set() {
        let c = parse(&[(DATABASE_URL, "sqlite:///srv/db/t.db")]).unwrap();
        assert_eq!(c.data_dir, Path::new("/srv/db"));
        let c = parse(&[(DATABASE_URL, "sqlite:t.db")]).unwrap();
        assert_eq!(c.data_dir, Path::new("."));
        let c = parse(&[(DATABASE_URL, "sqlite:///srv/db/t.db"), (DATA_DIR, "/x")]).unwrap();
        assert_eq!(c.data_dir, Path::new("/x"));
        let c = parse(&[(DATABASE_URL, "postgres://h/db")]).unwrap();
        assert_eq!(c.data_dir, Path::new("./data"));
    }

    #[test]
    fn blank_counts_as_unset() {
        let c = parse(&[(LISTEN, "  "), (ENV, "")]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.environment, Environment::Development);
    }

    fn problem(pairs: &[(&str, &str)], variable: &str) -> String {
        let err = parse(pairs).unwrap_err();
        assert!(err.names(variable), "{err} does not name {variable}");
        let line = err.to_string();
        assert!(!line.contains('\n'), "{line:?} is not one line");
        line
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&str, &str)] = &[
            (LISTEN, "localhost"),
            (LISTEN, "127.0.0.1:99999"),
            (ENV, "staging"),
            (DATABASE_URL, "mysql://x"),
            (DATABASE_URL, "sqlite://"),
            (DATABASE_URL, "sqlite::memory:"),
            (DATABASE_URL, "postgres://"),
            (DATABASE_MAX_CONNECTIONS, "0"),
            (DATABASE_MAX_CONNECTIONS, "ten"),
            (MIGRATE_ON_START, "maybe"),
            (LOG_FORMAT, "xml"),
            (RUST_LOG, "info,[[["),
            (MAX_BODY_BYTES, "-1"),
            (MAX_BODY_BYTES, "0"),
            (SHUTDOWN_TIMEOUT_SECS, "1e3"),
            (SIP_TARGET, "sips:x.example.com"),
            (ALLOW_SIP_TARGET_OVERRIDE, "2"),
            (OUTBOUND_ALLOWED_COUNTRIES, "USA"),
            (OUTBOUND_ALLOWED_COUNTRIES, "US;CA"),
            (OUTBOUND_ALLOWED_COUNTRIES, "U1"),
            (AUTH_CUSTOMER_CLAIM, "a b"),
            (AUTH_ROLES_CLAIM, "a\tb"),
        ];
        for (var, value) in cases {
            problem(&[(var, value)], var);
        }
    }

    #[test]
    fn bad_livekit_and_dispatch_values_name_their_variable() {
        let livekit = [
            (LIVEKIT_URL, "http://127.0.0.1:7880"),
            (LIVEKIT_API_KEY, "APIkey"),
            (LIVEKIT_API_SECRET, "s3cret"),
        ];
        let cases: &[(&str, &str, &str)] = &[
            (LIVEKIT_URL, "ftp://lk.example", LIVEKIT_URL),
            (LIVEKIT_URL, "https://user:pw@lk.example", LIVEKIT_URL),
            (
                LIVEKIT_ALLOWED_ADDRESSES,
                "10.0.0.0/33",
                LIVEKIT_ALLOWED_ADDRESSES,
            ),
            (
                LIVEKIT_ALLOWED_ADDRESSES,
                "carrier.example",
                LIVEKIT_ALLOWED_ADDRESSES,
            ),
            (LIVEKIT_AUTH_USERNAME, "only-user", LIVEKIT_AUTH_PASSWORD),
            (LIVEKIT_AUTH_PASSWORD, "only-pass", LIVEKIT_AUTH_USERNAME),
            (LIVEKIT_MEDIA_ENCRYPTION, "maybe", LIVEKIT_MEDIA_ENCRYPTION),
            (
                LIVEKIT_REQUEST_TIMEOUT_SECS,
                "0",
                LIVEKIT_REQUEST_TIMEOUT_SECS,
            ),
            (
                LIVEKIT_REQUEST_TIMEOUT_SECS,
                "121",
                LIVEKIT_REQUEST_TIMEOUT_SECS,
            ),
            (LIVEKIT_ROOM_PREFIX, "call prefix", LIVEKIT_ROOM_PREFIX),
            (LIVEKIT_ROOM_PREFIX, "call/", LIVEKIT_ROOM_PREFIX),
            (DISPATCH_RETRY_INTERVAL_MS, "0", DISPATCH_RETRY_INTERVAL_MS),
            (
                DISPATCH_RETRY_INTERVAL_MS,
                "60001",
                DISPATCH_RETRY_INTERVAL_MS,
            ),
            (DISPATCH_BACKOFF_BASE_MS, "soon", DISPATCH_BACKOFF_BASE_MS),
            (DISPATCH_BACKOFF_MAX_MS, "10", DISPATCH_BACKOFF_MAX_MS),
            (DISPATCH_MAX_ATTEMPTS, "0", DISPATCH_MAX_ATTEMPTS),
            (DISPATCH_CLAIM_TTL_SECS, "0", DISPATCH_CLAIM_TTL_SECS),
            (DISPATCH_CLAIM_TTL_SECS, "3601", DISPATCH_CLAIM_TTL_SECS),
            (DISPATCH_CLAIM_TTL_SECS, "a minute", DISPATCH_CLAIM_TTL_SECS),
        ];
        for (var, value, named) in cases {
            let mut pairs = livekit.to_vec();
            pairs.retain(|(k, _)| k != var);
            pairs.push((var, value));
            problem(&pairs, named);
        }
        // Every problem at once, not the first one the adapter's validation meets.
        let mut pairs = livekit.to_vec();
        pairs.extend([
            (LIVEKIT_ALLOWED_ADDRESSES, "nonsense"),
            (LIVEKIT_AUTH_USERNAME, "only-user"),
            (LIVEKIT_MEDIA_ENCRYPTION, "maybe"),
        ]);
        let err = parse(&pairs).unwrap_err();
        for var in [
            LIVEKIT_ALLOWED_ADDRESSES,
            LIVEKIT_AUTH_PASSWORD,
            LIVEKIT_MEDIA_ENCRYPTION,
        ] {
            assert!(err.names(var), "{err} does not name {var}");
        }
    }

    /// The dispatch claim lasts 60 s unless set, and never less than four LiveKit request
    /// timeouts: a claimant still at work must not lose its claim mid-attempt.
    #[test]
    fn dispatch_claim_ttl_defaults_to_60_s_and_outlasts_four_livekit_requests() {
        let livekit = [
            (LIVEKIT_URL, "http://127.0.0.1:7880"),
            (LIVEKIT_API_KEY, "APIkey"),
            (LIVEKIT_API_SECRET, "s3cret"),
        ];
        let claim_ttl = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = livekit.to_vec();
            pairs.extend_from_slice(extra);
            parse(&pairs).map(|c| c.dispatch.claim_ttl)
        };
        let secs = Duration::from_secs;
        assert_eq!(claim_ttl(&[]).unwrap(), secs(60));
        assert_eq!(parse(&[]).unwrap().dispatch.claim_ttl, secs(60));
        assert_eq!(
            claim_ttl(&[(DISPATCH_CLAIM_TTL_SECS, "45")]).unwrap(),
            secs(45)
        );
        assert_eq!(
            claim_ttl(&[(DISPATCH_CLAIM_TTL_SECS, "40")]).unwrap(),
            secs(40),
            "exactly four 10 s requests"
        );
        // Unset, it follows a longer request timeout up rather than refuse to start.
        assert_eq!(
            claim_ttl(&[(LIVEKIT_REQUEST_TIMEOUT_SECS, "20")]).unwrap(),
            secs(80)
        );
        assert_eq!(
            claim_ttl(&[
                (LIVEKIT_REQUEST_TIMEOUT_SECS, "2"),
                (DISPATCH_CLAIM_TTL_SECS, "8")
            ])
            .unwrap(),
            secs(8)
        );

        for (extra, least) in [
            (&[(DISPATCH_CLAIM_TTL_SECS, "39")][..], "40 s"),
            (
                &[
                    (LIVEKIT_REQUEST_TIMEOUT_SECS, "30"),
                    (DISPATCH_CLAIM_TTL_SECS, "60"),
                ][..],
                "120 s",
            ),
        ] {
            let mut pairs = livekit.to_vec();
            pairs.extend_from_slice(extra);
            let line = problem(&pairs, DISPATCH_CLAIM_TTL_SECS);
            assert!(line.contains(least), "{line}");
            assert!(line.contains(LIVEKIT_REQUEST_TIMEOUT_SECS), "{line}");
            assert!(line.contains("never lose"), "{line}");
        }
        // Without LiveKit the bound is the default request timeout's.
        problem(&[(DISPATCH_CLAIM_TTL_SECS, "30")], DISPATCH_CLAIM_TTL_SECS);
    }

    #[test]
    fn livekit_options_without_livekit_are_refused() {
        let err = parse(&[(LIVEKIT_MEDIA_ENCRYPTION, "require")]).unwrap_err();
        for var in [LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET] {
            assert!(err.names(var), "{err} does not name {var}");
        }
        assert!(err.to_string().contains(LIVEKIT_MEDIA_ENCRYPTION), "{err}");
        let err = parse(&[(LIVEKIT_ROOM_PREFIX, "x-")]).unwrap_err();
        assert!(err.names(LIVEKIT_URL), "{err}");
        let line = problem(&[(LIVEKIT_AUTH_PASSWORD, "hunter2-sip")], LIVEKIT_URL);
        assert!(!line.contains("hunter2-sip"), "{line}");
    }

    #[test]
    fn secrets_are_never_echoed() {
        let line = problem(
            &[(DATABASE_URL, "postgres://user:hunter2@/db")],
            DATABASE_URL,
        );
        assert!(!line.contains("hunter2"), "{line}");
        let line = problem(
            &[(LIVEKIT_API_SECRET, "hunter2"), (LIVEKIT_URL, "wss://x")],
            LIVEKIT_API_KEY,
        );
        assert!(!line.contains("hunter2"), "{line}");
        let line = problem(&[(VAULT_KEYS, "k1:hunter2")], VAULT_ACTIVE_KEY);
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn several_problems_are_reported_together_on_one_line() {
        let line = problem(&[(LISTEN, "x"), (LOG_FORMAT, "y")], LISTEN);
        assert!(line.contains(LOG_FORMAT), "{line}");
    }

    #[test]
    fn the_adapters_problems_join_the_servers_in_one_report() {
        let err = parse(&[
            (LISTEN, "x"),
            (trunkline_twilio::TIMEOUT_MS_ENV, "0"),
            (
                trunkline_twilio::TRUNKING_BASE_ENV,
                "https://u:hunter2@t.example",
            ),
            (trunkline_telnyx::API_BASE_ENV, "ftp://api.telnyx.com"),
        ])
        .unwrap_err();
        for var in [
            LISTEN,
            trunkline_twilio::TIMEOUT_MS_ENV,
            trunkline_twilio::TRUNKING_BASE_ENV,
            trunkline_telnyx::API_BASE_ENV,
        ] {
            assert!(err.names(var), "{err} does not name {var}");
        }
        assert_eq!(err.problems.len(), 4, "{err}");
        let line = err.to_string();
        assert!(!line.contains('\n') && !line.contains("hunter2"), "{line}");
    }

    #[test]
    fn non_utf8_adapter_value_is_named_not_defaulted() {
        use std::os::unix::ffi::OsStringExt;
        for var in [
            trunkline_twilio::API_BASE_ENV,
            trunkline_telnyx::TIMEOUT_MS_ENV,
        ] {
            let env = Env::from_pairs([(var, OsString::from_vec(vec![0xff, 0xfe]))]);
            let err = Config::from_env(&env).unwrap_err();
            assert!(err.names(var), "{err}");
        }
    }

    #[test]
    fn partial_auth_and_livekit_are_refused() {
        let err = parse(&[(AUTH_ISSUER, "i")]).unwrap_err();
        assert!(
            err.names(AUTH_PUBLIC_KEYS) && err.names(AUTH_AUDIENCE),
            "{err}"
        );
        assert!(!err.names(AUTH_ISSUER), "{err}");
        let err = parse(&[(LIVEKIT_URL, "wss://x")]).unwrap_err();
        assert!(
            err.names(LIVEKIT_API_KEY) && err.names(LIVEKIT_API_SECRET),
            "{err}"
        );
        let err = parse(&[
            (AUTH_PUBLIC_KEYS, "a.pem,,b.pem"),
            (AUTH_ISSUER, "i"),
            (AUTH_AUDIENCE, "a"),
        ])
        .unwrap_err();
        assert!(err.names(AUTH_PUBLIC_KEYS), "{err}");
    }

    #[test]
    fn non_utf8_value_is_a_problem_not_a_panic() {
        use std::os::unix::ffi::OsStringExt;
        let env = Env::from_pairs([(LISTEN, OsString::from_vec(vec![0xff, 0xfe]))]);
        let err = Config::from_env(&env).unwrap_err();
        assert!(err.names(LISTEN), "{err}");
    }

    #[test]
    fn production_names_every_missing_variable_at_once() {
        let env = Env::from_pairs([
            (ENV, "production"),
            (AUTH_ISSUER, "i"),
            (AUTH_AUDIENCE, "a"),
            (AUTH_PUBLIC_KEYS, "k.pem"),
        ]);
        let c = Config::from_env(&env).unwrap();
        let line = c.check_production(&env).unwrap_err().to_string();
        assert!(
            line.contains(VAULT_KEYS) && line.contains(VAULT_ACTIVE_KEY),
            "{line}"
        );
        assert!(!line.contains(AUTH_ISSUER), "{line}");

        let env = Env::from_pairs([(ENV, "production")]);
        let c = Config::from_env(&env).unwrap();
        let line = c.check_production(&env).unwrap_err().to_string();
        for var in PRODUCTION_REQUIRED {
            assert!(line.contains(var), "{line} misses {var}");
        }
        // Development needs none of them.
        let env = Env::default();
        Config::from_env(&env)
            .unwrap()
            .check_production(&env)
            .unwrap();
    }
}
