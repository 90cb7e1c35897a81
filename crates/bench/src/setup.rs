//! What every measurement needs around the servers: keys and tokens shared by all
//! instances of a deployment, the environment pointing them at the emulators, a scratch
//! PostgreSQL database, and the onboarding calls that connect numbers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use trunkline_testkit::livekit::LiveKitEmulator;
use trunkline_testkit::twilio::{TestApiKey, TwilioEmulator};

pub const ISSUER: &str = "https://idp.bench.test/";
pub const AUDIENCE: &str = "trunkline-bench";
pub const SIP_TARGET: &str = "sip:ingress.livekit.bench.test";
/// The agent the connected numbers route calls to (dispatched by the webhook).
pub const AGENT: &str = "bench-agent";
pub const TWILIO: &str = "/telephony/providers/twilio";
pub const WEBHOOK_PATH: &str = "/telephony/livekit-webhook";

/// Install the process-wide crypto providers (rustls for reqwest, jsonwebtoken's).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// A token-signing key pair and a vault key, shared by the instances of one deployment.
pub struct Keys {
    signing: EncodingKey,
    public_pem: PathBuf,
    vault_key: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Fresh random keys; the public key is written to `dir/bench-ed25519.pub.pem`.
    ///
    /// # Errors
    /// The PEM cannot be encoded or written.
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        let signing = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encode the signing key: {e}"))?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encode the public key: {e}"))?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("bench-ed25519.pub.pem");
        std::fs::write(&path, public_pem)?;
        Ok(Self {
            signing: EncodingKey::from_ed_pem(private_pem.as_bytes())?,
            public_pem: path,
            vault_key: base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
        })
    }

    /// A customer's bearer token, valid for an hour.
    ///
    /// # Errors
    /// Signing failed.
    pub fn token(&self, customer: &str) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": format!("bench-user-of-{customer}"),
            "customer_id": customer,
            "roles": ["customer"],
            "iat": now,
            "exp": now + 3600,
        });
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.signing,
        )?)
    }

    /// Auth and vault settings.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "TRUNKLINE_AUTH_PUBLIC_KEYS".to_owned(),
                self.public_pem.display().to_string(),
            ),
            ("TRUNKLINE_AUTH_ISSUER".to_owned(), ISSUER.to_owned()),
            ("TRUNKLINE_AUTH_AUDIENCE".to_owned(), AUDIENCE.to_owned()),
            (
                "TRUNKLINE_VAULT_KEYS".to_owned(),
                format!("bench1:{}", self.vault_key),
            ),
            ("TRUNKLINE_VAULT_ACTIVE_KEY".to_owned(), "bench1".to_owned()),
        ]
    }
}

/// The emulators' addresses and the SIP target.
pub fn upstream_env(twilio: &TwilioEmulator, livekit: &LiveKitEmulator) -> Vec<(String, String)> {
    vec![
        ("TRUNKLINE_TWILIO_API_BASE".to_owned(), twilio.api_base()),
        (
            "TRUNKLINE_TWILIO_TRUNKING_BASE".to_owned(),
            twilio.trunking_base(),
        ),
        ("TRUNKLINE_LIVEKIT_URL".to_owned(), livekit.url()),
        (
            "TRUNKLINE_LIVEKIT_API_KEY".to_owned(),
            livekit.api_key().to_owned(),
        ),
        (
            "TRUNKLINE_LIVEKIT_API_SECRET".to_owned(),
            livekit.api_secret().to_owned(),
        ),
        ("TRUNKLINE_SIP_TARGET".to_owned(), SIP_TARGET.to_owned()),
    ]
}

/// A PostgreSQL database made for one deployment and dropped afterwards.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

async fn admin(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connect to the PostgreSQL admin URL")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl ScratchDatabase {
    /// `CREATE DATABASE trunkline_bench_<random>` on the server of `admin_url`.
    ///
    /// # Errors
    /// The server cannot be reached or refuses.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("trunkline_bench_{:012x}", rand::random::<u64>() >> 16);
        admin(admin_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let mut url = url::Url::parse(admin_url).context("the PostgreSQL URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// Drop it (forcing out leftover sessions).
    pub async fn drop_now(&self) {
        if let Ok(c) = admin(&self.admin_url).await {
            let _ = c
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

/// Counters of `pg_stat_database` for this database (what every session did: each
/// autocommit statement is one transaction). PostgreSQL publishes a session's counters when
/// it goes idle, at most once a second: read them a second or more after the load.
///
/// # Errors
/// The server cannot be reached.
pub async fn database_stats(
    admin_url: &str,
    name: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let row = admin(admin_url)
        .await?
        .query_one(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, \
                    tup_updated, tup_deleted \
             FROM pg_stat_database WHERE datname = $1",
            &[&name],
        )
        .await?;
    let names = [
        "xact_commit",
        "xact_rollback",
        "tup_returned",
        "tup_fetched",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
    ];
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), row.get::<_, i64>(i)))
        .collect())
}

impl ScratchDatabase {
    /// [`database_stats`] of this database.
    ///
    /// # Errors
    /// The server cannot be reached.
    pub async fn stats(&self) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
        database_stats(&self.admin_url, &self.name).await
    }
}

/// `after - before`, counter by counter.
pub fn stats_delta(
    before: &std::collections::BTreeMap<String, i64>,
    after: &std::collections::BTreeMap<String, i64>,
) -> std::collections::BTreeMap<String, i64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// `SHOW server_version` of the server at `url`.
///
/// # Errors
/// The server cannot be reached.
pub async fn postgres_version(url: &str) -> anyhow::Result<String> {
    let row = admin(url)
        .await?
        .query_one("SHOW server_version", &[])
        .await?;
    Ok(row.get::<_, String>(0))
}

/// An answer: status and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Call the onboarding API as `token`.
///
/// # Errors
/// The request failed at the transport level.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> anyhow::Result<Reply> {
    let mut req = client
        .request(method, url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok(Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    })
}

/// Save a Twilio key as the customer's credentials.
///
/// # Errors
/// Any answer but 200.
pub async fn save_credentials(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &TestApiKey,
) -> anyhow::Result<()> {
    let body = json!({
        "accountSid": key.account_sid.as_str(),
        "apiKeySid": key.sid.as_str(),
        "apiKeySecret": key.secret,
    });
    let r = call(
        client,
        reqwest::Method::POST,
        &format!("{base}{TWILIO}/credentials"),
        token,
        Some(&body),
    )
    .await?;
    if r.status != 200 {
        bail!("saving credentials answered {}: {}", r.status, r.body);
    }
    Ok(())
}

/// The connect body: calls to the number dispatch [`AGENT`] from the webhook.
pub fn connect_body() -> Value {
    json!({"routing": {"agentName": AGENT, "dispatchMode": "webhook"}})
}

/// Connect `number` (a `PN…`); the answer.
///
/// # Errors
/// The request failed at the transport level.
pub async fn connect(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    number: &str,
) -> anyhow::Result<Reply> {
    call(
        client,
        reqwest::Method::POST,
        &format!("{base}{TWILIO}/numbers/{number}/connect"),
        token,
        Some(&connect_body()),
    )
    .await
}

/// Disconnect `number`; the answer.
///
/// # Errors
/// The request failed at the transport level.
pub async fn disconnect(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    number: &str,
) -> anyhow::Result<Reply> {
    call(
        client,
        reqwest::Method::POST,
        &format!("{base}{TWILIO}/numbers/{number}/disconnect"),
        token,
        Some(&json!({})),
    )
    .await
}

/// Whether the server has the webhook route: an unsigned POST is refused by the route
/// (401/400/503) rather than unknown (404/405).
pub async fn has_webhook_route(client: &reqwest::Client, base: &str) -> bool {
    match client
        .post(format!("{base}{WEBHOOK_PATH}"))
        .header(reqwest::header::CONTENT_TYPE, "application/webhook+json")
        .body("{}")
        .send()
        .await
    {
        Ok(r) => !matches!(r.status().as_u16(), 404 | 405),
        Err(_) => false,
    }
}
