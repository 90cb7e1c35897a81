//! Footprint: time from process start to `/readyz` answering 200 (migrations already
//! applied; with the default migrate-on-start check and without it), and resident memory
//! once idle. Memory under load is measured by the webhook scenario.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use trunkline_testkit::livekit::{self, LiveKitEmulator};
use trunkline_testkit::twilio::{self, TwilioEmulator};

use crate::instance::{self, Instance, InstanceConfig};
use crate::machine::{mib, say};
use crate::setup::{self, Keys, ScratchDatabase};
use crate::stats::{median, round3};

#[derive(Debug, Clone)]
pub struct FootprintOptions {
    pub bin: std::path::PathBuf,
    pub starts: usize,
    pub postgres_admin_url: Option<String>,
    /// How long a started server idles before its memory is read.
    pub settle: Duration,
}

/// How long the first and the second E.164 parse take in this process: the first loads
/// libphonenumber's metadata (what the first connect or SIP webhook after a server start
/// pays). Meaningful only before anything else in the process parsed a number.
pub fn first_phone_parse() -> Value {
    let time = |n: &str| {
        let t = std::time::Instant::now();
        let ok = trunkline_core::E164::parse(n).is_ok();
        (round3(t.elapsed().as_secs_f64() * 1000.0), ok)
    };
    let (first_ms, first_ok) = time("+14155550100");
    let (second_ms, second_ok) = time("+442071838750");
    json!({
        "first_parse_ms": first_ms,
        "second_parse_ms": second_ms,
        "parsed": first_ok && second_ok,
    })
}

/// Run on SQLite and (when given) PostgreSQL.
///
/// # Errors
/// A server did not start or become ready.
pub async fn run(opts: &FootprintOptions, work: &Path, phone: Value) -> anyhow::Result<Value> {
    let twilio = TwilioEmulator::start_with(twilio::EmulatorOptions::default())
        .context("start the Twilio emulator")?;
    let livekit = LiveKitEmulator::start_with(livekit::EmulatorOptions::default())
        .context("start the LiveKit emulator")?;
    let mut backends = vec![("sqlite", None)];
    if let Some(url) = &opts.postgres_admin_url {
        backends.push(("postgres", Some(url.clone())));
    }
    let mut results = Vec::new();
    for (backend, admin) in backends {
        let db = match &admin {
            Some(url) => Some(ScratchDatabase::create(url).await?),
            None => None,
        };
        let r = run_backend(opts, work, backend, db.as_ref(), &twilio, &livekit).await;
        if let Some(db) = &db {
            db.drop_now().await;
        }
        results.push(json!({"backend": backend, "result": r?}));
    }
    Ok(json!({"backends": results, "phone_metadata": phone}))
}

async fn run_backend(
    opts: &FootprintOptions,
    work: &Path,
    backend: &str,
    db: Option<&ScratchDatabase>,
    twilio: &TwilioEmulator,
    livekit: &LiveKitEmulator,
) -> anyhow::Result<Value> {
    let dir = work.join(format!("footprint-{backend}"));
    let keys = Keys::generate(&dir)?;
    let mut env = keys.env();
    env.extend(setup::upstream_env(twilio, livekit));
    if let Some(db) = db {
        env.push(("TRUNKLINE_DATABASE_URL".to_owned(), db.url.clone()));
    }
    let config = InstanceConfig {
        bin: opts.bin.clone(),
        env: env.clone(),
        data_dir: dir.clone(),
        name: "trunkline".to_owned(),
    };
    instance::migrate(&config)?;
    let client = crate::load::client(2)?;
    let mut variants = Vec::new();
    for (variant, migrate_on_start) in [
        ("migrate-on-start (default)", true),
        ("no migrate check", false),
    ] {
        let mut config = config.clone();
        if !migrate_on_start {
            config
                .env
                .push(("TRUNKLINE_MIGRATE_ON_START".to_owned(), "false".to_owned()));
        }
        let mut ready = Vec::new();
        let mut listening = Vec::new();
        let mut idle = None;
        for i in 0..opts.starts.max(1) {
            let mut server = Instance::spawn(&config)?;
            let t = server
                .wait_ready(&client, Duration::from_millis(1), Duration::from_secs(30))
                .await?;
            ready.push(t.as_secs_f64() * 1000.0);
            listening.push(server.listening_after.as_secs_f64() * 1000.0);
            if i == 0 && migrate_on_start {
                tokio::time::sleep(opts.settle).await;
                idle = server.memory_kib();
            }
            server.stop();
        }
        say(&format!(
            "footprint {backend} {variant}: ready median {:.1} ms, max {:.1} ms",
            median(&ready).unwrap_or_default(),
            ready.iter().copied().fold(0.0, f64::max)
        ));
        variants.push(json!({
            "variant": variant,
            "starts": ready.len(),
            "ready_ms": ready.iter().copied().map(round3).collect::<Vec<_>>(),
            "ready_ms_median": median(&ready).map(round3),
            "ready_ms_max": round3(ready.iter().copied().fold(0.0, f64::max)),
            "listening_ms_median": median(&listening).map(round3),
            "idle_memory_kib": idle,
            "idle_rss_mib": idle.map(|m| mib(m.rss_kib)),
        }));
    }
    Ok(json!({"variants": variants, "settle_s": opts.settle.as_secs_f64()}))
}

/// The Markdown table of [`run`]'s result.
pub fn markdown(results: &Value) -> String {
    let mut out = String::from(
        "| backend | start | ready ms (median) | ready ms (max) | starts | idle RSS MiB | target |\n|---|---|---|---|---|---|---|\n",
    );
    for b in results["backends"].as_array().into_iter().flatten() {
        for v in b["result"]["variants"].as_array().into_iter().flatten() {
            let ready_max = v["ready_ms_max"].as_f64().unwrap_or(f64::INFINITY);
            let idle = v["idle_rss_mib"].as_f64();
            let mut verdicts = vec![format!(
                "ready ≤ 300 ms: {}",
                crate::machine::verdict(ready_max <= 300.0)
            )];
            if let Some(m) = idle {
                verdicts.push(format!(
                    "idle ≤ 30 MiB: {}",
                    crate::machine::verdict(m <= 30.0)
                ));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                b["backend"].as_str().unwrap_or_default(),
                v["variant"].as_str().unwrap_or_default(),
                v["ready_ms_median"],
                v["ready_ms_max"],
                v["starts"],
                idle.map_or_else(|| "–".to_owned(), |m| m.to_string()),
                verdicts.join("; "),
            );
        }
    }
    let phone = &results["phone_metadata"];
    if let Some(first) = phone["first_parse_ms"].as_f64() {
        let _ = writeln!(
            out,
            "\nFirst E.164 parse in a process (loads libphonenumber's metadata): {first} ms; \
             the next one: {} ms.",
            phone["second_parse_ms"]
        );
    }
    out
}
