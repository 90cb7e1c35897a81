//! Drift reconciler throughput: `connections` numbers connected (spread over `integrations`
//! customers, each with its own Twilio account), then a fresh `trunkline serve` on the same
//! database with the reconciler on and every upstream call (Twilio and LiveKit emulators)
//! delayed by `latency`. Measured: the wall time until every connection has been checked
//! once, as checks per hour; the server's CPU time per check; the upstream requests per
//! check.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use trunkline_testkit::livekit::{self, LiveKitEmulator};
use trunkline_testkit::twilio::{self, RouteSelector, TwilioEmulator};

use crate::instance::{Instance, InstanceConfig};
use crate::machine::say;
use crate::observe::CpuSnapshot;
use crate::setup::{self, Keys};

#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub bin: std::path::PathBuf,
    pub latency: Duration,
    pub connections: usize,
    pub integrations: usize,
    /// `(checks per minute, in flight, per integration in flight)` runs.
    pub settings: Vec<(u32, usize, usize)>,
}

/// Connect every number with the reconciler off; the server is stopped afterwards.
async fn populate(
    opts: &ReconcileOptions,
    dir: &Path,
    keys: &Keys,
    twilio: &TwilioEmulator,
    livekit: &LiveKitEmulator,
) -> anyhow::Result<()> {
    let mut env = keys.env();
    env.extend(setup::upstream_env(twilio, livekit));
    env.push((
        "TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE".to_owned(),
        "0".to_owned(),
    ));
    let mut server = Instance::spawn(&InstanceConfig {
        bin: opts.bin.clone(),
        env,
        data_dir: dir.to_path_buf(),
        name: "populate".to_owned(),
    })?;
    let client = crate::load::client(8)?;
    server
        .wait_ready(&client, Duration::from_millis(20), Duration::from_secs(60))
        .await?;
    let base = server.base_url.clone();
    let per = opts.connections.div_ceil(opts.integrations.max(1));
    let mut jobs = Vec::new();
    for i in 0..opts.integrations.max(1) {
        let account = twilio.add_account(&format!("bench reconcile {i}"));
        let key = twilio.add_api_key(&account.sid, true);
        let token = keys.token(&format!("bench-reconcile-{i}"))?;
        setup::save_credentials(&client, &base, &token, &key).await?;
        for n in twilio.seed_numbers(&account.sid, per) {
            jobs.push((token.clone(), n.sid.to_string()));
        }
    }
    jobs.truncate(opts.connections);
    let results = futures::future::join_all(jobs.chunks(8).map(|chunk| {
        let client = client.clone();
        let base = base.clone();
        let chunk = chunk.to_vec();
        async move {
            let mut failed = 0;
            for (token, number) in chunk {
                // Numbers of one customer share a trunk, changed under one lease: a connect
                // that waited too long for it is answered 409 and tried again, as a client
                // is told to.
                let mut ok = false;
                for _ in 0..20 {
                    match setup::connect(&client, &base, &token, &number).await {
                        Ok(r) if r.status == 200 => {
                            ok = true;
                            break;
                        }
                        Ok(r) if r.status == 409 => {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        _ => break,
                    }
                }
                if !ok {
                    failed += 1;
                }
            }
            failed
        }
    }))
    .await;
    let failed: usize = results.into_iter().sum();
    server.stop();
    if failed > 0 {
        bail!("{failed} connects failed while populating");
    }
    Ok(())
}

/// The value of one series of `/metrics`.
async fn metric(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let Ok(r) = client.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[allow(clippy::cast_precision_loss)] // counts and CPU ticks far below 2^53
async fn one_run(
    opts: &ReconcileOptions,
    dir: &Path,
    keys: &Keys,
    twilio: &TwilioEmulator,
    livekit: &LiveKitEmulator,
    (per_minute, in_flight, per_integration): (u32, usize, usize),
) -> anyhow::Result<Value> {
    let mut env = keys.env();
    env.extend(setup::upstream_env(twilio, livekit));
    for (k, v) in [
        (
            "TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE",
            per_minute.to_string(),
        ),
        ("TRUNKLINE_RECONCILE_IN_FLIGHT", in_flight.to_string()),
        (
            "TRUNKLINE_RECONCILE_PER_INTEGRATION_IN_FLIGHT",
            per_integration.to_string(),
        ),
        // Every connection is due once per run, never twice.
        ("TRUNKLINE_RECONCILE_RECHECK_SECS", "86400".to_owned()),
        ("TRUNKLINE_RECONCILE_TICK_MS", "200".to_owned()),
    ] {
        env.push((k.to_owned(), v));
    }
    twilio.reset_requests();
    livekit.reset_requests();
    twilio.inject(RouteSelector::Any, twilio::Fault::Latency(opts.latency));
    livekit.inject(
        livekit::MethodSelector::Any,
        livekit::Fault::Latency(opts.latency),
    );
    let mut server = Instance::spawn(&InstanceConfig {
        bin: opts.bin.clone(),
        env,
        data_dir: dir.to_path_buf(),
        name: format!("reconcile-{per_minute}"),
    })?;
    let client = crate::load::client(2)?;
    server
        .wait_ready(&client, Duration::from_millis(20), Duration::from_secs(60))
        .await?;
    let base = server.base_url.clone();
    let t0 = Instant::now();
    let cpu0 = CpuSnapshot::take(&[server.pid]);
    let target = opts.connections as f64;
    let series = "trunkline_reconcile_checks_total{outcome=\"checked\"}";
    let limit = Duration::from_secs(600);
    loop {
        if metric(&client, &base, series).await >= target {
            break;
        }
        if t0.elapsed() > limit {
            server.stop();
            bail!("not every connection was checked within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t0.elapsed();
    let cpu1 = CpuSnapshot::take(&[server.pid]);
    let oldest = metric(
        &client,
        &base,
        "trunkline_reconcile_oldest_unchecked_seconds",
    )
    .await;
    let drifted = metric(
        &client,
        &base,
        "trunkline_connections{provider=\"twilio\",state=\"drifted\"}",
    )
    .await;
    server.stop();
    twilio.clear_faults();
    livekit.clear_faults();
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_ticks = cpu1
        .processes
        .get(&server.pid)
        .copied()
        .unwrap_or(0)
        .saturating_sub(cpu0.processes.get(&server.pid).copied().unwrap_or(0));
    let cpu_s = cpu_ticks as f64 / ticks_per_sec;
    let tw = twilio.requests();
    let lk = livekit.requests();
    let upstream = tw.len() + lk.len();
    let checks = opts.connections as f64;
    Ok(json!({
        "checks_per_minute": per_minute,
        "in_flight": in_flight,
        "per_integration_in_flight": per_integration,
        "connections": opts.connections,
        "wall_s": wall.as_secs_f64(),
        "checks_per_hour": checks / wall.as_secs_f64() * 3600.0,
        "cpu_s": cpu_s,
        "cpu_ms_per_check": cpu_s * 1000.0 / checks,
        "cpu_share_of_one_core": cpu_s / wall.as_secs_f64(),
        "upstream_requests": upstream,
        "upstream_per_check": upstream as f64 / checks,
        "twilio_requests": tw.len(),
        "livekit_requests": lk.len(),
        "drifted_after": drifted,
        "oldest_unchecked_s_after": oldest,
    }))
}

pub async fn run(opts: &ReconcileOptions, work: &Path) -> anyhow::Result<Value> {
    let twilio = TwilioEmulator::start_with(twilio::EmulatorOptions {
        workers: 4,
        ..twilio::EmulatorOptions::default()
    })
    .context("start the Twilio emulator")?;
    let livekit = LiveKitEmulator::start_with(livekit::EmulatorOptions {
        workers: 4,
        ..livekit::EmulatorOptions::default()
    })
    .context("start the LiveKit emulator")?;
    let dir = work.join("reconcile");
    let keys = Keys::generate(&dir)?;
    say(&format!(
        "reconcile: connecting {} numbers over {} integrations",
        opts.connections, opts.integrations
    ));
    populate(opts, &dir, &keys, &twilio, &livekit).await?;
    let mut runs = Vec::new();
    for s in &opts.settings {
        say(&format!("reconcile: {} checks/min, {} in flight", s.0, s.1));
        // Each run starts from unchecked connections: a fresh copy of the populated file.
        let run_dir = work.join(format!("reconcile-{}-{}", s.0, s.1));
        std::fs::create_dir_all(&run_dir)?;
        for f in std::fs::read_dir(&dir)? {
            let f = f?;
            if f.file_type()?.is_file() {
                std::fs::copy(f.path(), run_dir.join(f.file_name()))?;
            }
        }
        runs.push(one_run(opts, &run_dir, &keys, &twilio, &livekit, *s).await?);
    }
    let latency_ms = u64::try_from(opts.latency.as_millis()).unwrap_or(u64::MAX);
    Ok(json!({"latency_ms": latency_ms, "runs": runs}))
}

pub fn markdown(results: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Upstream latency {} ms on every Twilio and LiveKit request.\n",
        results["latency_ms"]
    );
    let _ = writeln!(
        out,
        "| checks/min set | in flight (per integration) | connections | wall s | checks/hour | CPU ms/check | CPU share of one core | upstream req/check |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for r in results["runs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {:.1} | {:.0} | {:.2} | {:.3} | {:.1} |",
            r["checks_per_minute"],
            r["in_flight"],
            r["per_integration_in_flight"],
            r["connections"],
            r["wall_s"].as_f64().unwrap_or(0.0),
            r["checks_per_hour"].as_f64().unwrap_or(0.0),
            r["cpu_ms_per_check"].as_f64().unwrap_or(0.0),
            r["cpu_share_of_one_core"].as_f64().unwrap_or(0.0),
            r["upstream_per_check"].as_f64().unwrap_or(0.0),
        );
    }
    out
}
