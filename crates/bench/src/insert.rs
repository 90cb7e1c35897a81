//! The durable-dedupe ceiling: the database's own rate of single-row
//! `INSERT … ON CONFLICT DO NOTHING` through the stores' client stack (diesel-async on a
//! deadpool of the same size, SQLite with the same pragmas), into a scratch table shaped
//! like `webhook_events` (same columns, primary key and index). Every key is inserted twice,
//! as every webhook is delivered twice, so half the statements conflict.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel::prelude::*;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde::Serialize;

use crate::stats::{Latencies, Summary, rate, round3};

/// The pragmas of `crates/store-sqlite` (`CONNECTION_PRAGMAS`), verbatim.
pub const SQLITE_PRAGMAS: &str = "\
    PRAGMA busy_timeout = 5000; \
    PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = FULL; \
    PRAGMA foreign_keys = ON;";

/// `crates/store-sqlite`'s pool size (`POOL_SIZE`).
pub const SQLITE_POOL_SIZE: usize = 8;

mod pg {
    diesel::table! {
        bench_dedupe_scratch (id) {
            id -> Text,
            kind -> Text,
            room_name -> Nullable<Text>,
            received_at -> Timestamptz,
        }
    }
}

mod lite {
    diesel::table! {
        bench_dedupe_scratch (id) {
            id -> Text,
            kind -> Text,
            room_name -> Nullable<Text>,
            received_at -> BigInt,
        }
    }
}

const PG_SCHEMA: &str = "\
    DROP TABLE IF EXISTS bench_dedupe_scratch; \
    CREATE TABLE bench_dedupe_scratch ( \
        id text PRIMARY KEY, kind text NOT NULL, room_name text, \
        received_at timestamptz NOT NULL); \
    CREATE INDEX bench_dedupe_scratch_room_idx \
        ON bench_dedupe_scratch (room_name, received_at DESC);";

const SQLITE_SCHEMA: &str = "\
    DROP TABLE IF EXISTS bench_dedupe_scratch; \
    CREATE TABLE bench_dedupe_scratch ( \
        id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, room_name TEXT, \
        received_at INTEGER NOT NULL) STRICT; \
    CREATE INDEX bench_dedupe_scratch_room_idx \
        ON bench_dedupe_scratch (room_name, received_at DESC);";

/// Which database, and how the pool checks connections out.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file; the pool is `Fast` as in the SQLite store.
    Sqlite(std::path::PathBuf),
    /// `Verified` runs `SELECT 1` at every checkout (as the PostgreSQL store did until it
    /// moved to `Fast`, see docs/benchmarks.md);
    /// `Fast` does not (the raw ceiling, and the store's setting).
    Postgres { url: String, verified: bool },
}

/// One ceiling run.
#[derive(Debug, Clone, Serialize)]
pub struct InsertCeiling {
    pub database: String,
    pub recycling: String,
    pub pool_size: usize,
    pub concurrency: usize,
    pub statements: u64,
    pub inserted: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    pub rate_per_s: f64,
    pub latency: Summary,
}

/// The statements to run: `keys` distinct ids, each twice, the second copy shortly after
/// the first (the same window shuffle as the webhook load).
fn plan(keys: usize, seed: u64) -> Vec<usize> {
    crate::mix::deliveries(keys, 2, 1, 32, seed)
        .into_iter()
        .map(|d| d.event)
        .collect()
}

type LiteConn = SyncConnectionWrapper<SqliteConnection>;

async fn establish_sqlite(path: String) -> ConnectionResult<LiteConn> {
    let mut conn = LiteConn::establish(&path).await?;
    conn.batch_execute(SQLITE_PRAGMAS)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

async fn establish_pg(url: String) -> ConnectionResult<AsyncPgConnection> {
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// Run `keys × 2` inserts with `concurrency` tasks sharing a pool of `pool_size`.
///
/// # Errors
/// The database cannot be opened or the scratch table created.
pub async fn measure(
    target: &Target,
    pool_size: usize,
    concurrency: usize,
    keys: usize,
    time_limit: Duration,
) -> anyhow::Result<InsertCeiling> {
    let order: Arc<[usize]> = plan(keys, 11).into();
    let tag = format!("{:08x}", rand::random::<u32>());
    match target {
        Target::Sqlite(path) => {
            let path_str = path.to_str().context("a UTF-8 path")?.to_owned();
            let mut config = ManagerConfig::<LiteConn>::default();
            config.custom_setup = Box::new(|p| Box::pin(establish_sqlite(p.to_owned())));
            config.recycling_method = RecyclingMethod::Fast;
            let pool = Pool::builder(AsyncDieselConnectionManager::new_with_config(
                path_str, config,
            ))
            .max_size(pool_size)
            .build()?;
            {
                let mut c = pool.get().await?;
                c.batch_execute(SQLITE_SCHEMA).await?;
            }
            let run = drive(order, concurrency, time_limit, move |i| {
                let pool = pool.clone();
                let id = format!("EV_{tag}_{i:08}");
                async move {
                    use lite::bench_dedupe_scratch as t;
                    let mut c = pool.get().await.map_err(|e| e.to_string())?;
                    diesel::insert_into(t::table)
                        .values((
                            t::id.eq(&id),
                            t::kind.eq("participant_joined"),
                            t::room_name.eq(Some(format!("room-{id}"))),
                            t::received_at.eq(chrono::Utc::now().timestamp_micros()),
                        ))
                        .on_conflict_do_nothing()
                        .execute(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                }
            })
            .await;
            Ok(run.into_ceiling(
                format!("sqlite {}", file_name(path)),
                "fast",
                pool_size,
                concurrency,
            ))
        }
        Target::Postgres { url, verified } => {
            let mut config = ManagerConfig::<AsyncPgConnection>::default();
            config.custom_setup = Box::new(|u| Box::pin(establish_pg(u.to_owned())));
            config.recycling_method = if *verified {
                RecyclingMethod::Verified
            } else {
                RecyclingMethod::Fast
            };
            let pool = Pool::builder(AsyncDieselConnectionManager::new_with_config(
                url.clone(),
                config,
            ))
            .max_size(pool_size)
            .build()?;
            {
                let mut c = pool.get().await?;
                c.batch_execute(PG_SCHEMA).await?;
            }
            // Open the whole pool first: connection set-up is not part of the ceiling.
            let warm: Vec<_> = futures::future::join_all((0..pool_size).map(|_| pool.get()))
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            drop(warm);
            let run = drive(order, concurrency, time_limit, move |i| {
                let pool = pool.clone();
                let id = format!("EV_{tag}_{i:08}");
                async move {
                    use pg::bench_dedupe_scratch as t;
                    let mut c = pool.get().await.map_err(|e| e.to_string())?;
                    diesel::insert_into(t::table)
                        .values((
                            t::id.eq(&id),
                            t::kind.eq("participant_joined"),
                            t::room_name.eq(Some(format!("room-{id}"))),
                            t::received_at.eq(chrono::Utc::now()),
                        ))
                        .on_conflict_do_nothing()
                        .execute(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                }
            })
            .await;
            Ok(run.into_ceiling(
                "postgres".to_owned(),
                if *verified { "verified" } else { "fast" },
                pool_size,
                concurrency,
            ))
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

struct Run {
    statements: u64,
    inserted: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Latencies,
}

impl Run {
    fn into_ceiling(
        self,
        database: String,
        recycling: &str,
        pool_size: usize,
        concurrency: usize,
    ) -> InsertCeiling {
        InsertCeiling {
            database,
            recycling: recycling.to_owned(),
            pool_size,
            concurrency,
            statements: self.statements,
            inserted: self.inserted,
            errors: self.errors,
            elapsed_s: round3(self.elapsed.as_secs_f64()),
            rate_per_s: rate(self.statements, self.elapsed).round(),
            latency: self.latencies.summary(),
        }
    }
}

async fn drive<F, Fut>(order: Arc<[usize]>, concurrency: usize, time_limit: Duration, op: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<usize, String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + time_limit;
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let order = Arc::clone(&order);
            let next = Arc::clone(&next);
            let op = op.clone();
            tokio::spawn(async move {
                let mut run = Run {
                    statements: 0,
                    inserted: 0,
                    errors: 0,
                    elapsed: Duration::ZERO,
                    latencies: Latencies::new(),
                };
                let mut last = start;
                while Instant::now() < deadline {
                    let Some(&key) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    let t = Instant::now();
                    match op(key).await {
                        Ok(n) => {
                            run.statements += 1;
                            run.inserted += n as u64;
                        }
                        Err(_) => run.errors += 1,
                    }
                    last = Instant::now();
                    run.latencies.record(last - t);
                }
                run.elapsed = last - start;
                run
            })
        })
        .collect();
    let mut total = Run {
        statements: 0,
        inserted: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Latencies::new(),
    };
    for t in tasks {
        if let Ok(r) = t.await {
            total.statements += r.statements;
            total.inserted += r.inserted;
            total.errors += r.errors;
            total.elapsed = total.elapsed.max(r.elapsed);
            total.latencies.merge(&r.latencies);
        }
    }
    total
}
