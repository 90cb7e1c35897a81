//! A `trunkline serve` process started for a measurement: its own data directory, a free
//! loopback port, logs to a file, resident memory read from `/proc/<pid>/status`. Killed
//! on drop.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

/// How long a server may take to print its address.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start one server.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub bin: PathBuf,
    /// Environment on top of the defaults below (a later entry wins).
    pub env: Vec<(String, String)>,
    /// Data directory (and working directory); the SQLite file lives here unless `env`
    /// names another database.
    pub data_dir: PathBuf,
    /// A name for the log file (`<data_dir>/<name>.log`).
    pub name: String,
}

/// A running server.
#[derive(Debug)]
pub struct Instance {
    child: Child,
    pub name: String,
    pub base_url: String,
    pub pid: u32,
    pub spawned_at: Instant,
    /// From spawn to "listening on".
    pub listening_after: Duration,
    pub log: PathBuf,
}

/// The command line of `trunkline <args>` with a clean environment plus `env`.
fn command(bin: &Path, args: &[&str], data_dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(data_dir).stdin(Stdio::null());
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
        .env("TRUNKLINE_DATA_DIR", data_dir)
        .env("TRUNKLINE_LOG_FORMAT", "json")
        .env("TRUNKLINE_SHUTDOWN_TIMEOUT_SECS", "2")
        .env(
            "RUST_LOG",
            std::env::var("TRUNKLINE_BENCH_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `trunkline migrate` with this configuration, to completion.
///
/// # Errors
/// It could not run or failed (its output is in the error).
pub fn migrate(config: &InstanceConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let out = command(&config.bin, &["migrate"], &config.data_dir, &config.env)
        .output()
        .with_context(|| format!("run {} migrate", config.bin.display()))?;
    if !out.status.success() {
        bail!(
            "trunkline migrate failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Instance {
    /// Spawn and wait until it prints its address (not until it is ready).
    ///
    /// # Errors
    /// It could not be spawned, exited, or printed no address in time.
    pub fn spawn(config: &InstanceConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let log = config.data_dir.join(format!("{}.log", config.name));
        let log_file = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = command(&config.bin, &["serve"], &config.data_dir, &config.env);
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(log_file));
        let spawned_at = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", config.bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("the child's stdout")?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        // Reads until the process ends, so a full pipe never blocks the server.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.trim().strip_prefix("listening on ")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(addr.to_owned());
                }
            }
        });
        let mut instance = Self {
            child,
            name: config.name.clone(),
            base_url: String::new(),
            pid,
            spawned_at,
            listening_after: Duration::ZERO,
            log,
        };
        if let Ok(addr) = rx.recv_timeout(LISTEN_TIMEOUT) {
            instance.listening_after = spawned_at.elapsed();
            instance.base_url = addr;
            Ok(instance)
        } else {
            let _ = instance.child.kill();
            let _ = instance.child.wait();
            Err(anyhow!(
                "trunkline printed no address within {LISTEN_TIMEOUT:?}; its log:\n{}",
                instance.log_tail()
            ))
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Poll `/readyz` every `every` until it answers 200; the time from spawn.
    ///
    /// # Errors
    /// Not ready within `timeout`, or the process exited.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let url = self.url("/readyz");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(self.spawned_at.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "trunkline exited ({status}) before ready; its log:\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "trunkline not ready within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(every).await;
        }
    }

    /// `VmRSS` and `VmHWM` (peak) in KiB, from `/proc/<pid>/status`.
    pub fn memory_kib(&self) -> Option<Memory> {
        memory_of(self.pid)
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGKILL and wait.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

/// Read `VmRSS` / `VmHWM` of `pid`.
pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

/// `VmRSS` / `VmHWM` of a `/proc/<pid>/status` text.
pub fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let text =
            "Name:\ttrunkline\nVmPeak:\t  200000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   21000 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 21000,
                hwm_kib: 23456
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
        // This very process has both.
        assert!(memory_of(std::process::id()).is_some_and(|m| m.rss_kib > 0));
    }
}
