//! End-to-end harness: run the real `trunkline` binary on a free loopback port with its own
//! data directory, capture everything it prints, and talk to it over HTTP.
//!
//! The binary is `TRUNKLINE_BIN` when set, else `trunkline` next to the test executable's
//! directory (`target/<profile>/trunkline`). `cargo test --workspace` builds it (the server
//! crate's integration tests depend on it); with `cargo test -p trunkline-e2e` alone, run
//! `cargo build -p trunkline-server` first.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::mpsc;

/// How long the server may take to print its address and become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Install rustls' ring provider (reqwest's TLS has none of its own here).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The `trunkline` binary under test.
///
/// # Errors
/// It cannot be found.
pub fn trunkline_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TRUNKLINE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    // target/<profile>/deps/<test> → target/<profile>/trunkline
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let bin = dir.join(format!("trunkline{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "{} not found: run `cargo build -p trunkline-server` (or `cargo test --workspace`), \
             or set TRUNKLINE_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// How to start a server.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra environment (applied last, so it overrides the harness defaults).
    pub env: Vec<(String, String)>,
    /// Use this data directory instead of a fresh temporary one (to restart on the same
    /// data). The SQLite database lives in it unless `env` names another database.
    pub data_dir: Option<PathBuf>,
    /// Return once the server listens, without waiting for `/readyz` (to test readiness).
    pub skip_ready: bool,
    /// Run `trunkline dev` (in-process emulators, data in the data directory) instead of
    /// `trunkline serve`.
    pub dev: bool,
}

impl ServerOptions {
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    #[must_use]
    pub fn dev(mut self) -> Self {
        self.dev = true;
        self
    }

    #[must_use]
    pub fn skip_ready(mut self) -> Self {
        self.skip_ready = true;
        self
    }
}

/// Output a child wrote, shared with the threads that read it.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn push_line(&self, line: &str) {
        let mut s = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.push_str(line);
        s.push('\n');
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn capture(
    stream: impl Read + Send + 'static,
    into: Captured,
    lines: Option<mpsc::UnboundedSender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            into.push_line(&line);
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    })
}

/// A running `trunkline serve`. Killed on drop.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    base_url: String,
    data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    stdout: Captured,
    stderr: Captured,
    readers: Vec<std::thread::JoinHandle<()>>,
    client: reqwest::Client,
}

impl TestServer {
    /// A development server on SQLite in a fresh temporary directory.
    ///
    /// # Errors
    /// It did not start or become ready in time (the error carries its output).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ServerOptions::default()).await
    }

    /// # Errors
    /// It did not start or become ready in time (the error carries its output).
    pub async fn start_with(opts: ServerOptions) -> anyhow::Result<Self> {
        install_crypto_provider();
        let bin = trunkline_bin()?;
        let (temp, data_dir) = if let Some(dir) = opts.data_dir {
            (None, dir)
        } else {
            let t = tempfile::Builder::new()
                .prefix("trunkline-e2e-")
                .tempdir()?;
            let dir = t.path().to_path_buf();
            (Some(t), dir)
        };
        std::fs::create_dir_all(&data_dir)?;
        let mut cmd = Command::new(&bin);
        if opts.dev {
            cmd.arg("dev").arg("--data-dir").arg(&data_dir);
        } else {
            cmd.arg("serve");
        }
        cmd.current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The developer's own settings must not leak into a test.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("TRUNKLINE_") || k == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("TRUNKLINE_LISTEN", "127.0.0.1:0")
            .env(
                "TRUNKLINE_DATABASE_URL",
                format!("sqlite://{}", data_dir.join("trunkline.db").display()),
            )
            .env("TRUNKLINE_DATA_DIR", &data_dir)
            .env("TRUNKLINE_LOG_FORMAT", "json")
            .env("TRUNKLINE_SHUTDOWN_TIMEOUT_SECS", "2")
            // The drift reconciler reads every carrier and LiveKit in the background: off, so
            // that tests counting upstream requests count only their own. The fleet tests
            // turn it on.
            .env("TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE", "0")
            .env("RUST_LOG", "info");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;

        let stdout = Captured::default();
        let stderr = Captured::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let readers = vec![
            capture(
                child.stdout.take().context("stdout")?,
                stdout.clone(),
                Some(tx),
            ),
            capture(child.stderr.take().context("stderr")?, stderr.clone(), None),
        ];
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Under the server's keep-alive (actix: 5 s), so a connection the server is
            // closing for idleness is never sent a request: on a loaded machine that race
            // answered `IncompleteMessage` to a test's first request after a pause.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        let mut server = Self {
            child,
            base_url: String::new(),
            data_dir,
            _temp: temp,
            stdout,
            stderr,
            readers,
            client,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        let address = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = rx.recv().await {
                if let Some(addr) = line.trim().strip_prefix("listening on ") {
                    return Some(addr.to_owned());
                }
            }
            None
        })
        .await;
        server.base_url = match address {
            Ok(Some(a)) => a,
            Ok(None) => return Err(server.failure("exited before listening")),
            Err(_) => return Err(server.failure("did not print its address in time")),
        };
        if !opts.skip_ready {
            server.wait_ready(deadline).await?;
        }
        Ok(server)
    }

    async fn wait_ready(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(&format!("exited ({status}) before ready")));
            }
            if Instant::now() > deadline {
                return Err(self.failure("did not become ready in time"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn failure(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The readers end with the process; their text is then complete.
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        anyhow!(
            "trunkline {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Everything logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The value of `export NAME=...` in the start-up output.
    pub fn exported(&self, name: &str) -> Option<String> {
        let prefix = format!("export {name}=");
        self.stdout()
            .lines()
            .find_map(|l| l.trim().strip_prefix(&prefix).map(ToOwned::to_owned))
    }

    /// The customer token a development server printed.
    pub fn dev_token(&self) -> Option<String> {
        self.exported("TRUNKLINE_TOKEN")
    }

    /// The support token a development server printed.
    pub fn support_token(&self) -> Option<String> {
        self.exported("TRUNKLINE_SUPPORT_TOKEN")
    }

    /// GET a path, optionally with a bearer token.
    ///
    /// # Errors
    /// The request failed at the transport level.
    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Ok(req.send().await?)
    }

    /// Stop the server (SIGKILL) and wait for it; the captured output is then complete.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Send SIGTERM and wait up to `timeout` for a clean exit; the exit status.
    ///
    /// # Errors
    /// The signal could not be sent or the process did not exit in time.
    pub async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("trunkline did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// `TRUNKLINE_TEST_POSTGRES_URL`, or `None` after printing a skip line to stderr.
    pub fn admin_url_or_skip(test: &str) -> Option<String> {
        match std::env::var("TRUNKLINE_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ => {
                // Straight to the stream: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping {test}: TRUNKLINE_TEST_POSTGRES_URL is not set"
                );
                None
            }
        }
    }

    /// Create `e2e_<random>` on the server `admin_url` points at.
    ///
    /// # Errors
    /// The server cannot be reached or refuses.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("e2e_{:016x}", rand::random::<u64>());
        let client = admin_client(admin_url).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let mut url = url::Url::parse(admin_url).context("TRUNKLINE_TEST_POSTGRES_URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    /// The new database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn admin_client(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connect to TRUNKLINE_TEST_POSTGRES_URL")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await; a thread with its own runtime works inside or outside tokio.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                admin_client(&admin).await?.batch_execute(&sql).await?;
                Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop test database {}",
                self.name
            );
        }
    }
}
