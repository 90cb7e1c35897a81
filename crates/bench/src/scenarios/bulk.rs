//! Bulk connect as a job: 1,000 numbers in one `numbers:connect`, every upstream call
//! (Twilio and LiveKit emulators) delayed by the same latency, the Twilio emulator refusing
//! requests beyond its concurrency limit as Twilio does (100 per account by default, 429 /
//! 20429). Measured: wall time from the request to the job's end, the most Twilio and
//! LiveKit requests in flight at once (counted by the emulators), how many requests the
//! limit refused (the 429s met), and each number's result.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use trunkline_testkit::livekit::{self, LiveKitEmulator};
use trunkline_testkit::twilio::{self, RouteSelector, TwilioEmulator};

use crate::instance::{Instance, InstanceConfig};
use crate::machine::say;
use crate::setup::{self, Keys, ScratchDatabase};
use crate::stats::round3;

#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub bin: std::path::PathBuf,
    pub latency: Duration,
    pub numbers: usize,
    /// The Twilio emulator's concurrency limit.
    pub twilio_limit: usize,
    /// `TRUNKLINE_UPSTREAM_CONCURRENCY`.
    pub upstream_concurrency: usize,
    /// `TRUNKLINE_JOBS_PARALLELISM`.
    pub parallelism: usize,
    /// `shared` or `dedicated`.
    pub strategies: Vec<String>,
    /// `None`: SQLite only.
    pub postgres_admin_url: Option<String>,
}

/// Run on SQLite and (when given) PostgreSQL, each strategy; the raw results.
///
/// # Errors
/// An emulator or server did not start, or the job could not be submitted or read.
pub async fn run(opts: &BulkOptions, work: &Path) -> anyhow::Result<Value> {
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = &opts.postgres_admin_url {
        backends.push(("postgres", Some(url.clone())));
    }
    let mut results = Vec::new();
    for (backend, admin) in backends {
        for strategy in &opts.strategies {
            say(&format!("bulk: {backend}, {strategy} trunk"));
            let db = match &admin {
                Some(url) => Some(ScratchDatabase::create(url).await?),
                None => None,
            };
            let r = run_one(opts, work, backend, strategy, db.as_ref()).await;
            if let Some(db) = &db {
                db.drop_now().await;
            }
            results.push(json!({"backend": backend, "strategy": strategy, "result": r?}));
        }
    }
    Ok(Value::Array(results))
}

async fn run_one(
    opts: &BulkOptions,
    work: &Path,
    backend: &str,
    strategy: &str,
    db: Option<&ScratchDatabase>,
) -> anyhow::Result<Value> {
    let twilio = TwilioEmulator::start_with(twilio::EmulatorOptions {
        workers: 2,
        ..twilio::EmulatorOptions::default()
    })
    .context("start the Twilio emulator")?;
    let livekit = LiveKitEmulator::start_with(livekit::EmulatorOptions::default())
        .context("start the LiveKit emulator")?;
    let dir = work.join(format!("bulk-{backend}-{strategy}"));
    let keys = Keys::generate(&dir)?;
    let mut env = keys.env();
    env.extend(setup::upstream_env(&twilio, &livekit));
    env.extend([
        (
            "TRUNKLINE_UPSTREAM_CONCURRENCY".to_owned(),
            opts.upstream_concurrency.to_string(),
        ),
        (
            "TRUNKLINE_JOBS_PARALLELISM".to_owned(),
            opts.parallelism.to_string(),
        ),
        (
            "TRUNKLINE_JOBS_POLL_INTERVAL_MS".to_owned(),
            "20".to_owned(),
        ),
    ]);
    if let Some(db) = db {
        env.push(("TRUNKLINE_DATABASE_URL".to_owned(), db.url.clone()));
        // One connection per number under way, plus the job's own bookkeeping.
        env.push((
            "TRUNKLINE_DATABASE_MAX_CONNECTIONS".to_owned(),
            "40".to_owned(),
        ));
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

    let account = twilio.add_account("bench bulk");
    let key = twilio.add_api_key(&account.sid, true);
    let numbers: Vec<String> = twilio
        .seed_numbers(&account.sid, opts.numbers)
        .into_iter()
        .map(|n| n.sid.to_string())
        .collect();
    let token = keys.token("bench-bulk")?;
    setup::save_credentials(&client, &base, &token, &key).await?;

    twilio.set_concurrency_limit(Some(opts.twilio_limit));
    twilio.inject(RouteSelector::Any, twilio::Fault::Latency(opts.latency));
    livekit.inject(
        livekit::MethodSelector::Any,
        livekit::Fault::Latency(opts.latency),
    );
    twilio.reset_requests();
    livekit.reset_requests();

    let body = json!({
        "numberIds": numbers,
        "options": {"trunkStrategy": strategy, "routing": {"agentName": setup::AGENT}},
    });
    let t0 = Instant::now();
    let queued = setup::call(
        &client,
        reqwest::Method::POST,
        &format!("{base}/telephony/providers/twilio/numbers:connect"),
        &token,
        Some(&body),
    )
    .await?;
    if queued.status != 202 {
        bail!(
            "numbers:connect answered {}: {}",
            queued.status,
            queued.body
        );
    }
    let id = queued.body["jobId"]
        .as_str()
        .context("a job id")?
        .to_owned();
    let limit = Duration::from_secs(900);
    // Polled through the list (the job without its 1,000 items) so that watching the job
    // costs the server little; a transport error (an idle keep-alive connection closed by
    // the server as the poll reuses it) is tried again, a few in a row end the run.
    let mut transport_errors = 0;
    loop {
        let r = match setup::call(
            &client,
            reqwest::Method::GET,
            &format!("{base}/telephony/jobs?limit=1"),
            &token,
            None,
        )
        .await
        {
            Ok(r) => r,
            Err(e) if transport_errors < 5 => {
                transport_errors += 1;
                say(&format!("bulk: polling the job failed ({e}); trying again"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => bail!("polling the job failed: {e}\n{}", server.log_tail()),
        };
        transport_errors = 0;
        let latest = &r.body["items"][0];
        if latest["jobId"] != json!(id) {
            bail!(
                "the job list does not show the bench's job first: {}",
                r.body
            );
        }
        if matches!(latest["status"].as_str(), Some("completed" | "cancelled")) {
            break;
        }
        if t0.elapsed() > limit {
            bail!(
                "the job did not finish within {limit:?}: {}\n{}",
                latest["progress"],
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = t0.elapsed();
    let job = setup::call(
        &client,
        reqwest::Method::GET,
        &format!("{base}/telephony/jobs/{id}"),
        &token,
        None,
    )
    .await?
    .body;
    let tw = twilio.concurrency();
    let lk = livekit.concurrency();
    let twilio_calls = twilio.requests().len();
    let livekit_calls = livekit.requests().len();
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for i in job["items"].as_array().into_iter().flatten() {
        if let Some(code) = i["errorCode"].as_str() {
            *errors.entry(code.to_owned()).or_default() += 1;
        }
    }
    twilio.clear_faults();
    livekit.clear_faults();
    server.stop();
    let progress = job["progress"].clone();
    say(&format!(
        "bulk {backend} {strategy}: {} numbers in {:.2} s; Twilio max in flight {} (limit {}), 429s {}; LiveKit max in flight {}; {progress}",
        opts.numbers,
        wall.as_secs_f64(),
        tw.max_in_flight,
        opts.twilio_limit,
        tw.refused,
        lk.max_in_flight,
    ));
    Ok(json!({
        "numbers": opts.numbers,
        "latency_ms": opts.latency.as_secs_f64() * 1000.0,
        "twilio_concurrency_limit": opts.twilio_limit,
        "upstream_concurrency": opts.upstream_concurrency,
        "parallelism": opts.parallelism,
        "wall_s": round3(wall.as_secs_f64()),
        "twilio_max_in_flight": tw.max_in_flight,
        "twilio_429s": tw.refused,
        "livekit_max_in_flight": lk.max_in_flight,
        "twilio_calls": twilio_calls,
        "livekit_calls": livekit_calls,
        "status": job["status"],
        "progress": progress,
        "errors": errors,
    }))
}

/// The Markdown table of [`run`]'s result.
pub fn markdown(results: &Value) -> String {
    let mut out = String::from(
        "| backend | trunk | numbers | wall s | Twilio max in flight (limit) | 429s met | LiveKit max in flight | connected | failed | upstream calls |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for b in results.as_array().into_iter().flatten() {
        let r = &b["result"];
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} Twilio + {} LiveKit |",
            b["backend"].as_str().unwrap_or_default(),
            b["strategy"].as_str().unwrap_or_default(),
            r["numbers"],
            r["wall_s"],
            r["twilio_max_in_flight"],
            r["twilio_concurrency_limit"],
            r["twilio_429s"],
            r["livekit_max_in_flight"],
            r["progress"]["connected"],
            r["progress"]["failed"],
            r["twilio_calls"],
            r["livekit_calls"],
        );
    }
    out
}
