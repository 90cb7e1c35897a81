//! The connect critical path: every upstream call (Twilio and LiveKit emulators) delayed by
//! the same latency; cold connect (nothing exists yet: a fresh account, no trunk, no LiveKit
//! trunk or rule), warm reconnect (everything exists), disconnect. For each: the upstream
//! calls made (from the emulators' request logs), the writes among them, the wall time,
//! and how many round trips happened one after another — as wall time / latency and as the
//! longest chain of non-overlapping requests in the logs' timeline.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Value, json};
use trunkline_testkit::livekit::{self, LiveKitEmulator};
use trunkline_testkit::twilio::{self, RouteSelector, TwilioEmulator};

use crate::checks::{Interval, busy_ms, max_in_flight, sequential_round_trips};
use crate::instance::{Instance, InstanceConfig};
use crate::machine::say;
use crate::observe::{LogSampler, Timeline};
use crate::setup::{self, Keys, ScratchDatabase};
use crate::stats::{median, round3};

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub bin: std::path::PathBuf,
    pub latency: Duration,
    pub iterations: usize,
    /// `None`: SQLite only.
    pub postgres_admin_url: Option<String>,
}

/// One operation of one iteration.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub phase: String,
    pub status: u16,
    pub wall_ms: f64,
    pub upstream_calls: usize,
    pub writes: usize,
    pub calls: BTreeMap<String, usize>,
    /// wall time / injected latency.
    pub sequential_by_wall: f64,
    /// Longest chain of requests each starting after the previous was answered.
    pub sequential_by_timeline: usize,
    pub max_in_flight: usize,
    /// Time with at least one upstream request in flight.
    pub upstream_busy_ms: f64,
    pub steps: Value,
    pub timeline: Vec<Interval>,
}

fn intervals(
    t0: Instant,
    seen: &Timeline,
    twilio: &TwilioEmulator,
    livekit: &LiveKitEmulator,
) -> Vec<Interval> {
    let ms = |t: Instant| round3(t.saturating_duration_since(t0).as_secs_f64() * 1000.0);
    let mut out = Vec::new();
    for r in twilio.requests() {
        if let Some(s) = seen.twilio.get(&r.seq)
            && let Some(done) = s.answered
        {
            out.push(Interval {
                system: "twilio".to_owned(),
                call: r.route.map_or_else(
                    || format!("{} {}", r.method, r.path),
                    |route| route.as_str().to_owned(),
                ),
                write: r.method != "GET",
                start_ms: ms(s.arrived),
                end_ms: ms(done),
            });
        }
    }
    for r in livekit.requests() {
        if let Some(s) = seen.livekit.get(&r.seq)
            && let Some(done) = s.answered
        {
            out.push(Interval {
                system: "livekit".to_owned(),
                call: r
                    .method
                    .map_or_else(|| r.path.clone(), |m| m.as_str().to_owned()),
                write: r.method.is_some_and(livekit::Method::is_write),
                start_ms: ms(s.arrived),
                end_ms: ms(done),
            });
        }
    }
    out.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    out
}

async fn phase<F, Fut>(
    name: &str,
    latency: Duration,
    twilio: &Arc<TwilioEmulator>,
    livekit: &Arc<LiveKitEmulator>,
    op: F,
) -> anyhow::Result<Phase>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<setup::Reply>>,
{
    twilio.reset_requests();
    livekit.reset_requests();
    let sampler = LogSampler::start(
        Arc::clone(twilio),
        Arc::clone(livekit),
        Duration::from_micros(500),
    );
    let t0 = Instant::now();
    let reply = op().await;
    let wall = t0.elapsed();
    let seen = sampler.finish();
    let reply = reply?;
    let timeline = intervals(t0, &seen, twilio, livekit);
    let total = twilio.requests().len() + livekit.requests().len();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for i in &timeline {
        *calls.entry(format!("{} {}", i.system, i.call)).or_default() += 1;
    }
    let wall_ms = wall.as_secs_f64() * 1000.0;
    Ok(Phase {
        phase: name.to_owned(),
        status: reply.status,
        wall_ms: round3(wall_ms),
        upstream_calls: total,
        writes: timeline.iter().filter(|i| i.write).count(),
        calls,
        sequential_by_wall: round3(wall_ms / (latency.as_secs_f64() * 1000.0)),
        sequential_by_timeline: sequential_round_trips(&timeline),
        max_in_flight: max_in_flight(&timeline),
        upstream_busy_ms: round3(busy_ms(&timeline)),
        steps: reply.body.get("steps").cloned().unwrap_or(Value::Null),
        timeline,
    })
}

/// Run the scenario on SQLite and (when given) PostgreSQL; the raw results.
///
/// # Errors
/// An emulator or server did not start, or an operation failed outright.
pub async fn run(opts: &ConnectOptions, work: &Path) -> anyhow::Result<Value> {
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = &opts.postgres_admin_url {
        backends.push(("postgres", Some(url.clone())));
    }
    let mut results = Vec::new();
    for (backend, admin) in backends {
        say(&format!("connect: {backend}"));
        let db = match &admin {
            Some(url) => Some(ScratchDatabase::create(url).await?),
            None => None,
        };
        let r = run_backend(opts, work, backend, db.as_ref()).await;
        if let Some(db) = &db {
            db.drop_now().await;
        }
        results.push(json!({"backend": backend, "result": r?}));
    }
    Ok(Value::Array(results))
}

async fn run_backend(
    opts: &ConnectOptions,
    work: &Path,
    backend: &str,
    db: Option<&ScratchDatabase>,
) -> anyhow::Result<Value> {
    let twilio = Arc::new(
        TwilioEmulator::start_with(twilio::EmulatorOptions {
            workers: 2,
            ..twilio::EmulatorOptions::default()
        })
        .context("start the Twilio emulator")?,
    );
    let livekit = Arc::new(
        LiveKitEmulator::start_with(livekit::EmulatorOptions::default())
            .context("start the LiveKit emulator")?,
    );
    let dir = work.join(format!("connect-{backend}"));
    let keys = Keys::generate(&dir)?;
    let mut env = keys.env();
    env.extend(setup::upstream_env(&twilio, &livekit));
    if let Some(db) = db {
        env.push(("TRUNKLINE_DATABASE_URL".to_owned(), db.url.clone()));
    }
    let mut server = Instance::spawn(&InstanceConfig {
        bin: opts.bin.clone(),
        env,
        data_dir: dir.clone(),
        name: "trunkline".to_owned(),
    })?;
    let client = crate::load::client(4)?;
    server
        .wait_ready(&client, Duration::from_millis(20), Duration::from_secs(60))
        .await?;
    let base = server.base_url.clone();
    hold_for_tools(server.pid).await;

    let mut iterations = Vec::new();
    for i in 0..opts.iterations.max(1) {
        let account = twilio.add_account(&format!("bench connect {i}"));
        let key = twilio.add_api_key(&account.sid, true);
        let number = twilio
            .seed_numbers(&account.sid, 1)
            .into_iter()
            .next()
            .context("a seeded number")?
            .sid
            .to_string();
        let token = keys.token(&format!("bench-connect-{i}"))?;
        setup::save_credentials(&client, &base, &token, &key).await?;

        twilio.inject(RouteSelector::Any, twilio::Fault::Latency(opts.latency));
        livekit.inject(
            livekit::MethodSelector::Any,
            livekit::Fault::Latency(opts.latency),
        );
        let cold = phase("cold connect", opts.latency, &twilio, &livekit, || {
            setup::connect(&client, &base, &token, &number)
        })
        .await?;
        let warm = phase("warm reconnect", opts.latency, &twilio, &livekit, || {
            setup::connect(&client, &base, &token, &number)
        })
        .await?;
        let off = phase("disconnect", opts.latency, &twilio, &livekit, || {
            setup::disconnect(&client, &base, &token, &number)
        })
        .await?;
        twilio.clear_faults();
        livekit.clear_faults();
        for p in [&cold, &warm, &off] {
            if p.status != 200 {
                bail!(
                    "{backend}: {} answered {} (steps {})\n{}",
                    p.phase,
                    p.status,
                    p.steps,
                    server.log_tail()
                );
            }
        }
        say(&format!(
            "connect {backend} #{i}: cold {:.0} ms / {} calls / chain {}; warm {:.0} ms / {} calls / {} writes; disconnect {:.0} ms",
            cold.wall_ms,
            cold.upstream_calls,
            cold.sequential_by_timeline,
            warm.wall_ms,
            warm.upstream_calls,
            warm.writes,
            off.wall_ms
        ));
        iterations.push([cold, warm, off]);
    }
    let livekit_wired = iterations
        .iter()
        .any(|ps| ps[0].calls.keys().any(|k| k.starts_with("livekit")));
    let summary: Vec<Value> = (0..3)
        .map(|k| {
            let walls: Vec<f64> = iterations.iter().map(|ps| ps[k].wall_ms).collect();
            let first = &iterations[0][k];
            let stable = iterations.iter().all(|ps| {
                ps[k].upstream_calls == first.upstream_calls
                    && ps[k].sequential_by_timeline == first.sequential_by_timeline
                    && ps[k].writes == first.writes
            });
            json!({
                "phase": first.phase,
                "wall_ms_median": median(&walls).map(round3),
                // The first connect after start also pays one-time lazy initialisation.
                "wall_ms_first": walls.first().copied(),
                "wall_ms_min": walls.iter().copied().fold(f64::INFINITY, f64::min),
                "wall_ms_max": walls.iter().copied().fold(0.0, f64::max),
                "upstream_calls": first.upstream_calls,
                "writes": first.writes,
                "calls": first.calls,
                "sequential_by_wall_median": median(&walls).map(|w| round3(w / (opts.latency.as_secs_f64() * 1000.0))),
                "sequential_by_timeline": first.sequential_by_timeline,
                "max_in_flight": first.max_in_flight,
                "same_calls_every_iteration": stable,
            })
        })
        .collect();
    Ok(json!({
        "latency_ms": opts.latency.as_secs_f64() * 1000.0,
        "iterations": opts.iterations,
        "livekit_half_measured": livekit_wired,
        "summary": summary,
        "runs": iterations,
    }))
}

/// `TRUNKLINE_BENCH_HOLD_MS=<ms>`: pause once the server is ready, printing its pid, so
/// that `strace`/`perf` can be attached before the measured operations.
async fn hold_for_tools(pid: u32) {
    if let Some(ms) = std::env::var("TRUNKLINE_BENCH_HOLD_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        say(&format!("holding {ms} ms: trunkline pid {pid}"));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The Markdown table of [`run`]'s result.
pub fn markdown(results: &Value) -> String {
    let mut out = String::from(
        "| backend | operation | upstream calls | writes | sequential (timeline) | sequential (wall / latency) | wall ms (median) | LiveKit measured |\n|---|---|---|---|---|---|---|---|\n",
    );
    for b in results.as_array().into_iter().flatten() {
        let r = &b["result"];
        for s in r["summary"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                b["backend"].as_str().unwrap_or_default(),
                s["phase"].as_str().unwrap_or_default(),
                s["upstream_calls"],
                s["writes"],
                s["sequential_by_timeline"],
                s["sequential_by_wall_median"],
                s["wall_ms_median"],
                r["livekit_half_measured"],
            );
        }
    }
    out
}
