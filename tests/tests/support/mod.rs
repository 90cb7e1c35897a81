//! Shared fixtures of the onboarding end-to-end tests: the Twilio emulator, the real
//! `trunkline` binary configured against it (SQLite or PostgreSQL), tokens for several
//! customers and for support, and an HTTP client that remembers every answer so a test can
//! check that no secret was ever sent back.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod livekit;
pub mod telnyx;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trunkline_e2e::{ServerOptions, TestDatabase, TestServer};
use trunkline_testkit::twilio::{
    EmulatorOptions, TestAccount, TestApiKey, TrunkView, TwilioEmulator,
};
use trunkline_twilio::{PhoneNumberSid, TrunkSid};

pub const ISSUER: &str = "https://idp.e2e.test/";
pub const AUDIENCE: &str = "trunkline-e2e";
/// The server's default SIP target (the LiveKit SIP ingress connect points numbers at).
pub const SIP_TARGET: &str = "sip:ingress.livekit.e2e.test";
/// How long a hung carrier request stays unanswered in the emulators: longer than the carrier
/// timeout a hang scenario sets (onboarding_faults.rs: 1 s), short enough that hung handlers
/// are gone by the next test step.
pub const HANG_FOR: Duration = Duration::from_secs(3);

fn testdata(name: &str) -> String {
    format!(
        "{}/../crates/server/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A bearer token for `customer` with `roles`, signed with the key the servers trust.
pub fn token(customer: &str, roles: &[&str]) -> String {
    let pem = std::fs::read(testdata("ed25519-private.pem")).expect("test signing key");
    let key = EncodingKey::from_ed_pem(&pem).expect("an Ed25519 PEM");
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": format!("user-of-{customer}"),
        "customer_id": customer,
        "roles": roles,
        "iat": now,
        "exp": now + 3600,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).expect("sign")
}

/// Which database the server under test uses.
#[derive(Debug)]
pub enum Backend {
    /// A SQLite file in the server's own data directory.
    Sqlite,
    /// A fresh PostgreSQL database, dropped when the test ends.
    Postgres(TestDatabase),
}

impl Backend {
    /// A fresh PostgreSQL database, or `None` (after a skip line) without
    /// `TRUNKLINE_TEST_POSTGRES_URL`.
    pub async fn postgres_or_skip(test: &str) -> Option<Self> {
        let admin = TestDatabase::admin_url_or_skip(test)?;
        Some(Self::Postgres(
            TestDatabase::create(&admin)
                .await
                .expect("create a test database"),
        ))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// Run a scenario once on SQLite and once on PostgreSQL (skipped, with a line saying so,
/// when `TRUNKLINE_TEST_POSTGRES_URL` is unset). Use with `#[macro_use] mod support;`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario(super::support::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                let name = concat!(module_path!(), "::postgres");
                if let Some(b) = super::support::Backend::postgres_or_skip(name).await {
                    super::$scenario(b).await;
                }
            }
        }
    )*};
}

/// A random 32-byte vault key, shared by every instance of one test.
pub fn vault_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Server settings for one test: what every server of the test shares (database, vault
/// and auth keys, the emulator), plus per-test extras.
#[derive(Debug, Clone)]
pub struct Settings {
    pub env: Vec<(String, String)>,
}

impl Settings {
    pub fn new(emu: &TwilioEmulator, backend: &Backend) -> Self {
        let mut env = vec![
            ("TRUNKLINE_TWILIO_API_BASE".to_owned(), emu.api_base()),
            (
                "TRUNKLINE_TWILIO_TRUNKING_BASE".to_owned(),
                emu.trunking_base(),
            ),
            ("TRUNKLINE_SIP_TARGET".to_owned(), SIP_TARGET.to_owned()),
            (
                "TRUNKLINE_ALLOW_SIP_TARGET_OVERRIDE".to_owned(),
                "true".to_owned(),
            ),
            // The scenarios verify credentials many times over; the throttle has its own
            // tests (crates/server/src/http_hardening_tests.rs).
            (
                "TRUNKLINE_CREDENTIAL_CHECKS_BURST".to_owned(),
                "1000".to_owned(),
            ),
            (
                "TRUNKLINE_CREDENTIAL_CHECKS_PER_MINUTE".to_owned(),
                "10000".to_owned(),
            ),
            // The emulator answers in milliseconds, but the suite shares 2 cores (and a
            // hypervisor's steal) with the instances, PostgreSQL and the other tests: 2 s was
            // seen to run out in CI (livekit_concurrency, session 10). A scenario that hangs
            // a request sets its own, shorter timeout.
            ("TRUNKLINE_TWILIO_TIMEOUT_MS".to_owned(), "10000".to_owned()),
            (
                "TRUNKLINE_TWILIO_RETRY_BUDGET_MS".to_owned(),
                "1500".to_owned(),
            ),
            (
                "TRUNKLINE_AUTH_PUBLIC_KEYS".to_owned(),
                testdata("ed25519-public.pem"),
            ),
            ("TRUNKLINE_AUTH_ISSUER".to_owned(), ISSUER.to_owned()),
            ("TRUNKLINE_AUTH_AUDIENCE".to_owned(), AUDIENCE.to_owned()),
            (
                "TRUNKLINE_VAULT_KEYS".to_owned(),
                format!("e2e1:{}", vault_key()),
            ),
            ("TRUNKLINE_VAULT_ACTIVE_KEY".to_owned(), "e2e1".to_owned()),
        ];
        if let Backend::Postgres(db) = backend {
            env.push(("TRUNKLINE_DATABASE_URL".to_owned(), db.url().to_owned()));
        }
        Self { env }
    }

    /// Point the servers at a LiveKit emulator, with dispatch retries fast enough for tests
    /// (a retry pass every 100 ms, backoff from 100 ms).
    #[must_use]
    pub fn with_livekit(self, lk: &trunkline_testkit::livekit::LiveKitEmulator) -> Self {
        self.with("TRUNKLINE_LIVEKIT_URL", &lk.url())
            .with("TRUNKLINE_LIVEKIT_API_KEY", lk.api_key())
            .with("TRUNKLINE_LIVEKIT_API_SECRET", lk.api_secret())
            .with("TRUNKLINE_LIVEKIT_REQUEST_TIMEOUT_SECS", "5")
            .with("TRUNKLINE_DISPATCH_RETRY_INTERVAL_MS", "100")
            .with("TRUNKLINE_DISPATCH_BACKOFF_BASE_MS", "100")
            .with("TRUNKLINE_DISPATCH_BACKOFF_MAX_MS", "1000")
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub async fn start(&self) -> TestServer {
        let mut opts = ServerOptions::default();
        for (k, v) in &self.env {
            opts = opts.env(k, v);
        }
        TestServer::start_with(opts)
            .await
            .expect("trunkline starts")
    }
}

/// An emulated Twilio account with a Standard key and some numbers.
#[derive(Debug, Clone)]
pub struct Carrier {
    pub account: TestAccount,
    pub key: TestApiKey,
    pub numbers: Vec<PhoneNumberSid>,
}

impl Carrier {
    pub fn new(emu: &TwilioEmulator, name: &str, numbers: usize) -> Self {
        let account = emu.add_account(name);
        let key = emu.add_api_key(&account.sid, true);
        let numbers = emu
            .seed_numbers(&account.sid, numbers)
            .into_iter()
            .map(|n| n.sid)
            .collect();
        Self {
            account,
            key,
            numbers,
        }
    }

    /// The body of `credentials:verify` / `credentials` for the Standard key.
    pub fn key_body(&self) -> Value {
        key_body(&self.key)
    }

    /// Every secret of the account: none may ever appear in an answer or a log line.
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.key.secret.clone(),
            self.account.auth_token.clone(),
            basic(self.key.sid.as_str(), &self.key.secret),
            basic(self.account.sid.as_str(), &self.account.auth_token),
        ]
    }
}

pub fn key_body(key: &TestApiKey) -> Value {
    json!({
        "accountSid": key.account_sid.as_str(),
        "apiKeySid": key.sid.as_str(),
        "apiKeySecret": key.secret,
    })
}

/// The `Authorization: Basic …` value the adapter sends: it must not leak either.
pub fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// One answer of the server.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub request_id: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    /// Assert the status and, for errors, the envelope's code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        if let Some(code) = code {
            assert_eq!(self.body["errorCode"], code, "{}", self.body);
            assert_eq!(
                self.body["requestId"].as_str(),
                self.request_id.as_deref(),
                "{}",
                self.body
            );
            assert!(
                self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{}",
                self.body
            );
        }
        self
    }

    /// Assert a 200; the body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        &self.expect(200, None).body
    }

    /// The error message; it must name `field` (the validation contract).
    #[track_caller]
    pub fn names_field(&self, field: &str) -> &Self {
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{message:?} does not name {field}");
        self
    }
}

/// Every answer body of a test, to search for secrets at the end.
#[derive(Debug, Clone, Default)]
pub struct Transcript(Arc<Mutex<Vec<String>>>);

impl Transcript {
    fn push(&self, text: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(text);
    }

    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }
}

/// A caller of one server: a token and the shared transcript.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    pub server: &'a TestServer,
    pub token: String,
    pub transcript: Transcript,
}

pub const TWILIO: &str = "/telephony/providers/twilio";

impl<'a> Client<'a> {
    pub fn new(server: &'a TestServer, token: String, transcript: &Transcript) -> Self {
        Self {
            server,
            token,
            transcript: transcript.clone(),
        }
    }

    /// Send a request; a `Value::Null` body sends none.
    pub async fn call(&self, method: Method, path: &str, body: &Value) -> Reply {
        match self.try_call(method, path, body).await {
            Ok(r) => r,
            Err(e) => panic!(
                "the server answers: {e:?}\n--- server stderr ---\n{}",
                self.server.stderr()
            ),
        }
    }

    /// [`Self::call`], with a connection error returned (a pooled connection the server
    /// closed just as it was reused: a client sends again).
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, reqwest::Error> {
        let mut req = self
            .server
            .client()
            .request(method, self.server.url(path))
            .bearer_auth(&self.token);
        if !body.is_null() {
            req = req.json(body);
        }
        let res = req.send().await?;
        let status = res.status();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(ToOwned::to_owned)
        };
        let request_id = header("x-request-id");
        let retry_after = header("retry-after");
        let text = res.text().await?;
        self.transcript.push(text.clone());
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        Ok(Reply {
            status,
            body,
            request_id,
            retry_after,
        })
    }

    pub async fn verify(&self, body: &Value) -> Reply {
        self.call(Method::POST, &format!("{TWILIO}/credentials:verify"), body)
            .await
    }

    pub async fn save(&self, body: &Value) -> Reply {
        self.call(Method::POST, &format!("{TWILIO}/credentials"), body)
            .await
    }

    pub async fn delete_credentials(&self) -> Reply {
        self.call(
            Method::DELETE,
            &format!("{TWILIO}/credentials"),
            &Value::Null,
        )
        .await
    }

    /// `query` is the raw query string, without `?`.
    pub async fn numbers(&self, query: &str) -> Reply {
        self.call(
            Method::GET,
            &format!("{TWILIO}/numbers?{query}"),
            &Value::Null,
        )
        .await
    }

    pub async fn connect(&self, number: &PhoneNumberSid, body: &Value) -> Reply {
        self.call(
            Method::POST,
            &format!("{TWILIO}/numbers/{number}/connect"),
            body,
        )
        .await
    }

    pub async fn disconnect(&self, number: &PhoneNumberSid, body: &Value) -> Reply {
        self.call(
            Method::POST,
            &format!("{TWILIO}/numbers/{number}/disconnect"),
            body,
        )
        .await
    }

    /// `query` is the raw query string, without `?` (e.g. `customerId=…` for support).
    pub async fn status(&self, number: &PhoneNumberSid, query: &str) -> Reply {
        self.call(
            Method::GET,
            &format!("{TWILIO}/numbers/{number}/status?{query}"),
            &Value::Null,
        )
        .await
    }

    pub async fn audit(&self, query: &str) -> Reply {
        self.call(
            Method::GET,
            &format!("/telephony/audit?{query}"),
            &Value::Null,
        )
        .await
    }
}

/// Start the emulator with a short hang time.
pub fn emulator() -> TwilioEmulator {
    TwilioEmulator::start_with(EmulatorOptions {
        hang_for: HANG_FOR,
        workers: 2,
        ..EmulatorOptions::default()
    })
    .expect("the Twilio emulator starts")
}

/// The trunks of an account whose name marks them as trunkline's.
pub fn trunkline_trunks(emu: &TwilioEmulator, carrier: &Carrier) -> Vec<TrunkView> {
    emu.trunks(&carrier.account.sid)
        .into_iter()
        .filter(|t| {
            t.friendly_name
                .as_deref()
                .is_some_and(|n| n.starts_with("trunkline"))
        })
        .collect()
}

/// The trunk a connect answer names, parsed.
#[track_caller]
pub fn trunk_of(answer: &Value) -> TrunkSid {
    TrunkSid::parse(answer["routeId"].as_str().expect("a trunkSid")).expect("a TK sid")
}

/// The steps of a connect/disconnect answer as `(step, action)` pairs.
pub fn steps(answer: &Value) -> Vec<(String, String)> {
    answer["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    (
                        s["step"].as_str().unwrap_or_default().to_owned(),
                        s["action"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The action of one step (panics when the step is missing or repeated).
#[track_caller]
pub fn action(answer: &Value, step: &str) -> String {
    let found: Vec<String> = steps(answer)
        .into_iter()
        .filter(|(s, _)| s == step)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(found.len(), 1, "step {step} in {answer}");
    found[0].clone()
}

/// No secret anywhere in the server's database in clear: every byte of the SQLite files in
/// its data directory, or every row of every PostgreSQL table as text.
pub async fn assert_not_stored_in_clear(
    server: &TestServer,
    backend: &Backend,
    secrets: &[String],
) {
    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    match backend {
        Backend::Sqlite => {
            let mut dirs = vec![server.data_dir().to_path_buf()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).expect("read the data directory") {
                    let path = entry.expect("a directory entry").path();
                    if path.is_dir() {
                        dirs.push(path);
                    } else {
                        let bytes = std::fs::read(&path).expect("read a database file");
                        haystacks.push((path.display().to_string(), bytes));
                    }
                }
            }
            assert!(
                haystacks.iter().any(|(p, _)| std::path::Path::new(p)
                    .extension()
                    .is_some_and(|e| e == "db")),
                "no SQLite file found in {}",
                server.data_dir().display()
            );
        }
        Backend::Postgres(db) => {
            let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .expect("connect to the test database");
            tokio::spawn(conn);
            let tables = client
                .query(
                    "select tablename from pg_tables where schemaname = 'public'",
                    &[],
                )
                .await
                .expect("list the tables");
            assert!(!tables.is_empty());
            for t in tables {
                let table: String = t.get(0);
                let rows = client
                    .query(&format!("select t::text from \"{table}\" t"), &[])
                    .await
                    .expect("read a table");
                let text: String = rows.iter().map(|r| r.get::<_, String>(0)).collect();
                haystacks.push((table, text.into_bytes()));
            }
        }
    }
    for secret in secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret}");
        for (place, bytes) in &haystacks {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is stored in clear in {place}"
            );
        }
    }
}

/// No secret in any answer, and none in anything the server printed or logged.
#[track_caller]
pub fn assert_no_secrets(server: &TestServer, transcript: &Transcript, secrets: &[String]) {
    let answers = transcript.text();
    let logs = format!("{}\n{}", server.stdout(), server.stderr());
    assert!(!answers.is_empty() && !logs.is_empty());
    for secret in secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret}");
        assert!(!answers.contains(secret.as_str()), "a secret was answered");
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
}
