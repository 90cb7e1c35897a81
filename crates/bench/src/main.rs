//! `trunkline-bench`: run trunkline's benchmarks against a release build and write the raw
//! results (JSON) plus Markdown tables. See `docs/benchmarks.md`; `scripts/bench` is the
//! documented way to run it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use trunkline_bench::machine::{Machine, say, write_raw};
use trunkline_bench::scenarios::bulk::{self, BulkOptions};
use trunkline_bench::scenarios::connect::{self, ConnectOptions};
use trunkline_bench::scenarios::footprint::{self, FootprintOptions};
use trunkline_bench::scenarios::webhooks::{self, Deployment, WebhookOptions};
use trunkline_bench::setup;

#[derive(Debug, Parser)]
#[command(
    name = "trunkline-bench",
    about = "Benchmarks of trunkline (docs/benchmarks.md)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Common {
    /// The trunkline binary to measure (a release build).
    #[arg(long, global = true, env = "TRUNKLINE_BENCH_BIN")]
    trunkline_bin: Option<PathBuf>,
    /// Where the raw JSON results go.
    #[arg(long, global = true, default_value = "docs/benchmarks/raw")]
    out: PathBuf,
    /// A PostgreSQL URL whose user may create databases; empty: SQLite only.
    #[arg(
        long,
        global = true,
        env = "TRUNKLINE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Smaller runs (a quick check that everything works; not for the record).
    #[arg(long, global = true)]
    quick: bool,
    /// Keep the working directory (servers' data and logs) and print where it is.
    #[arg(long, global = true)]
    keep_work: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Webhook ingestion against the HTTP and insert ceilings.
    Webhooks(WebhookArgs),
    /// The two ceilings only (no webhook runs).
    Ceilings(WebhookArgs),
    /// The connect critical path with emulated upstream latency.
    Connect(ConnectArgs),
    /// Start-up time to ready and idle memory.
    Footprint(FootprintArgs),
    /// Bulk connect of many numbers as one job, under Twilio's concurrency limit.
    Bulk(BulkArgs),
    /// Everything, in order: footprint, connect, webhooks (with ceilings).
    All {
        #[command(flatten)]
        webhooks: WebhookArgs,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        footprint: FootprintArgs,
        #[command(flatten)]
        bulk: BulkArgs,
    },
}

#[derive(Debug, Clone, Args)]
struct BulkArgs {
    /// Numbers in the job.
    #[arg(long, default_value_t = 1000)]
    bulk_numbers: usize,
    /// Latency injected on every upstream call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    bulk_latency_ms: u64,
    /// The Twilio emulator's concurrency limit (Twilio's default per account: 100).
    #[arg(long, default_value_t = 100)]
    twilio_limit: usize,
    /// `TRUNKLINE_UPSTREAM_CONCURRENCY` of the server.
    #[arg(long, default_value_t = 50)]
    upstream_concurrency: usize,
    /// `TRUNKLINE_JOBS_PARALLELISM` of the server.
    #[arg(long, default_value_t = 64)]
    parallelism: usize,
    /// Trunk strategies to measure.
    #[arg(long, value_delimiter = ',', default_values = ["dedicated"])]
    strategies: Vec<String>,
}

#[derive(Debug, Clone, Args)]
struct WebhookArgs {
    /// Deployments to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["sqlite1", "postgres1", "postgres3"])]
    deployments: Vec<Deployment>,
    /// Requests in flight from the load generator.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Distinct events of the mixed and no-action runs (each delivered twice).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Distinct calls of the SIP-only run (each `participant_joined` delivered twice).
    #[arg(long, default_value_t = 3_000)]
    calls: usize,
    /// Requests of the /healthz ceiling.
    #[arg(long, default_value_t = 50_000)]
    healthz_requests: usize,
    /// Keys of the insert ceiling (each inserted twice).
    #[arg(long, default_value_t = 10_000)]
    insert_keys: usize,
    /// Pool size of each PostgreSQL instance (`TRUNKLINE_DATABASE_MAX_CONNECTIONS`).
    #[arg(long, default_value_t = 10)]
    pg_pool: usize,
    /// Longest one run may take, in seconds.
    #[arg(long, default_value_t = 60)]
    run_limit_s: u64,
}

#[derive(Debug, Clone, Args)]
struct ConnectArgs {
    /// Latency injected on every upstream call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    latency_ms: u64,
    /// Cold connect / warm reconnect / disconnect cycles per backend.
    #[arg(long, default_value_t = 5)]
    iterations: usize,
}

#[derive(Debug, Clone, Args)]
struct FootprintArgs {
    /// Starts per backend and variant.
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Idle time before reading idle memory, in seconds.
    #[arg(long, default_value_t = 3)]
    settle_s: u64,
}

fn default_bin() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    target.join("release").join("trunkline")
}

struct Context {
    bin: PathBuf,
    out: PathBuf,
    postgres: Option<String>,
    machine: Machine,
    work: tempfile::TempDir,
    quick: bool,
    /// The first phone-number parse of this process, measured before anything else.
    phone: Value,
}

impl Context {
    fn save(&self, name: &str, settings: &Value, results: &Value) -> anyhow::Result<()> {
        let path = write_raw(&self.out, name, &self.machine, settings, results)?;
        say(&format!("wrote {}", path.display()));
        Ok(())
    }
}

async fn webhooks(
    ctx: &Context,
    args: &WebhookArgs,
    ceilings_only: bool,
) -> anyhow::Result<String> {
    let scale = |n: usize| if ctx.quick { (n / 10).max(200) } else { n };
    let opts = WebhookOptions {
        bin: ctx.bin.clone(),
        deployments: args.deployments.clone(),
        postgres_admin_url: ctx.postgres.clone(),
        pg_pool: args.pg_pool,
        concurrency: args.concurrency,
        events: scale(args.events),
        calls: scale(args.calls),
        healthz_requests: scale(args.healthz_requests),
        insert_keys: scale(args.insert_keys),
        ceilings_only,
        run_limit: Duration::from_secs(args.run_limit_s),
    };
    let results = webhooks::run(&opts, ctx.work.path()).await?;
    let settings = json!({
        "deployments": opts.deployments.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "concurrency": opts.concurrency,
        "events": opts.events,
        "calls": opts.calls,
        "healthz_requests": opts.healthz_requests,
        "insert_keys": opts.insert_keys,
        "pg_pool_per_instance": opts.pg_pool,
        "sqlite_pool": trunkline_bench::insert::SQLITE_POOL_SIZE,
        "copies_per_event": 2,
        "sip_percent_in_mix": 20,
        "quick": ctx.quick,
    });
    ctx.save(
        if ceilings_only {
            "ceilings"
        } else {
            "webhooks"
        },
        &settings,
        &results,
    )?;
    Ok(webhooks::markdown(&results))
}

async fn connect(ctx: &Context, args: &ConnectArgs) -> anyhow::Result<String> {
    let opts = ConnectOptions {
        bin: ctx.bin.clone(),
        latency: Duration::from_millis(args.latency_ms),
        iterations: if ctx.quick { 1 } else { args.iterations },
        postgres_admin_url: ctx.postgres.clone(),
    };
    let results = connect::run(&opts, ctx.work.path()).await?;
    let settings = json!({"latency_ms": args.latency_ms, "iterations": opts.iterations});
    ctx.save("connect", &settings, &results)?;
    Ok(connect::markdown(&results))
}

async fn bulk(ctx: &Context, args: &BulkArgs) -> anyhow::Result<String> {
    let opts = BulkOptions {
        bin: ctx.bin.clone(),
        latency: Duration::from_millis(args.bulk_latency_ms),
        numbers: if ctx.quick { 100 } else { args.bulk_numbers },
        twilio_limit: args.twilio_limit,
        upstream_concurrency: args.upstream_concurrency,
        parallelism: args.parallelism,
        strategies: args.strategies.clone(),
        postgres_admin_url: ctx.postgres.clone(),
    };
    let results = bulk::run(&opts, ctx.work.path()).await?;
    let settings = json!({
        "numbers": opts.numbers,
        "latency_ms": args.bulk_latency_ms,
        "twilio_limit": opts.twilio_limit,
        "upstream_concurrency": opts.upstream_concurrency,
        "parallelism": opts.parallelism,
        "strategies": opts.strategies,
    });
    ctx.save("bulk", &settings, &results)?;
    Ok(bulk::markdown(&results))
}

async fn footprint(ctx: &Context, args: &FootprintArgs) -> anyhow::Result<String> {
    let opts = FootprintOptions {
        bin: ctx.bin.clone(),
        starts: if ctx.quick { 2 } else { args.starts },
        postgres_admin_url: ctx.postgres.clone(),
        settle: Duration::from_secs(args.settle_s),
    };
    let results = footprint::run(&opts, ctx.work.path(), ctx.phone.clone()).await?;
    let settings = json!({"starts": opts.starts, "settle_s": args.settle_s});
    ctx.save("footprint", &settings, &results)?;
    Ok(footprint::markdown(&results))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let phone = footprint::first_phone_parse();
    setup::install_crypto();
    let bin = cli.common.trunkline_bin.clone().unwrap_or_else(default_bin);
    if !bin.is_file() {
        anyhow::bail!(
            "{} not found: build it with `cargo build --release -p trunkline-server` or pass --trunkline-bin",
            bin.display()
        );
    }
    let bin = std::path::absolute(&bin)?;
    let url = cli.common.postgres_url.trim().to_owned();
    let (postgres, pg_version) = if url.is_empty() {
        (None, None)
    } else {
        match setup::postgres_version(&url).await {
            Ok(v) => (Some(url), Some(v)),
            Err(e) => {
                say(&format!(
                    "PostgreSQL at the given URL does not answer ({e:#}): SQLite only"
                ));
                (None, None)
            }
        }
    };
    let ctx = Context {
        machine: Machine::describe(&bin, pg_version),
        bin,
        out: cli.common.out.clone(),
        postgres,
        work: tempfile::Builder::new()
            .prefix("trunkline-bench-")
            .tempdir()?,
        quick: cli.common.quick,
        phone,
    };
    say(&format!(
        "machine: {} × {}, {} MiB, kernel {}, {}, PostgreSQL {}",
        ctx.machine.cpus,
        ctx.machine.cpu_model,
        ctx.machine.memory_mib,
        ctx.machine.kernel,
        ctx.machine.rustc,
        ctx.machine.postgres.as_deref().unwrap_or("none")
    ));
    let mut tables = Vec::new();
    match &cli.command {
        Command::Webhooks(a) => tables.push(("Webhooks", webhooks(&ctx, a, false).await?)),
        Command::Ceilings(a) => tables.push(("Ceilings", webhooks(&ctx, a, true).await?)),
        Command::Connect(a) => tables.push(("Connect critical path", connect(&ctx, a).await?)),
        Command::Footprint(a) => tables.push(("Footprint", footprint(&ctx, a).await?)),
        Command::Bulk(a) => tables.push(("Bulk connect", bulk(&ctx, a).await?)),
        Command::All {
            webhooks: w,
            connect: c,
            footprint: f,
            bulk: b,
        } => {
            tables.push(("Footprint", footprint(&ctx, f).await?));
            tables.push(("Connect critical path", connect(&ctx, c).await?));
            tables.push(("Webhooks", webhooks(&ctx, w, false).await?));
            tables.push(("Bulk connect", bulk(&ctx, b).await?));
        }
    }
    if cli.common.keep_work {
        let kept = ctx.work.keep();
        say(&format!("kept the working directory {}", kept.display()));
    }
    let mut out = String::new();
    for (title, table) in tables {
        let _ = writeln!(out, "### {title}\n\n{table}");
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("failed: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
