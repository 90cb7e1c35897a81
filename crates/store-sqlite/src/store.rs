//! `SqliteStore`: every store port on a small pool of `SyncConnectionWrapper<SqliteConnection>`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use trunkline_core::RoomName;
use trunkline_core::model::{CallRecord, DispatchClaim};
use trunkline_core::ports::{ClaimRequest, JoinRecorded, StoreError, WebhookEventRecord};
use trunkline_store_sql::claim::ClaimOutcome;
use trunkline_store_sql::codec;
use trunkline_store_sql::encoding::text as enc;

use crate::blocking::{Blocking, Turn, Write};
use crate::error;
use crate::migrate;
use crate::rows::{AuditRow, CallRow, ConnectionRow, IntegrationRow, LeaseRow, WebhookEventRow};
use crate::schema::{
    __diesel_schema_migrations, SqlId, SqlTs, audit_events, calls, integrations, leases,
    number_connections, webhook_events,
};
use crate::sync_ops;

mod fleet;

/// Statements run on [`Blocking`]: a store call dropped mid-statement waits for it without
/// diesel-async's `block_in_place`, which panics on actix's current-thread workers.
type Conn = SyncConnectionWrapper<SqliteConnection, Blocking>;
/// The same, for writes: each blocking call takes the process's write turn first
/// ([`crate::blocking::Write`]).
type WriteConn = SyncConnectionWrapper<SqliteConnection, Blocking<Write>>;

/// Run on every new connection. `busy_timeout` first: SQLite serializes writers, and a
/// writer that finds the lock taken must wait for it rather than fail with SQLITE_BUSY.
/// WAL lets readers proceed while one writer writes (and persists in the file).
/// `synchronous = FULL` syncs the WAL at every commit: a dedupe row or a dispatch claim
/// that was acknowledged must survive a power cut, or an event could be acted on twice.
/// Foreign keys are off by default in SQLite and must be asked for per connection.
pub(crate) const CONNECTION_PRAGMAS: &str = "\
    PRAGMA busy_timeout = 5000; \
    PRAGMA journal_mode = WAL; \
    PRAGMA synchronous = FULL; \
    PRAGMA foreign_keys = ON;";

/// Per pool (reads, writes): enough for concurrent readers under WAL, and for writers to
/// get their statements ready while one of them writes.
const POOL_SIZE: usize = 8;
/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A dispatch cancelled by the call's end while its claimant was dispatching is still
/// recorded: the agent may be in the room. `?4` is now.
const COMPLETE_DISPATCH: &str = "\
    UPDATE calls SET dispatch_status = 'dispatched', dispatch_id = ?3, claimant = NULL, \
        claim_expires_at = NULL, updated_at = ?4 \
    WHERE room_name = ?1 AND dispatch_status IN ('claimed', 'cancelled') AND claimant = ?2";

/// `?3` is the status (`failed` or `gave_up`), `?4` now.
const FAIL_DISPATCH: &str = "\
    UPDATE calls SET dispatch_status = ?3, claimant = NULL, claim_expires_at = NULL, \
        updated_at = ?4 \
    WHERE room_name = ?1 AND dispatch_status = 'claimed' AND claimant = ?2";

/// One statement, and SQLite runs one writer at a time: either the key is free (insert),
/// or expired (take over), or the statement returns no row. `?4` is the ttl, `?5` now.
const ACQUIRE_LEASE: &str = "\
    INSERT INTO leases (key, holder, token, expires_at) VALUES (?1, ?2, ?3, ?5 + ?4) \
    ON CONFLICT (key) DO UPDATE \
        SET holder = excluded.holder, token = excluded.token, expires_at = excluded.expires_at \
        WHERE leases.expires_at <= ?5 \
    RETURNING holder, token, expires_at";

/// `try_acquire_lease_unchanged` of a key never taken (one writer at a time: a second
/// inserter finds the row and inserts nothing). `?4` is the ttl, `?5` now.
const ACQUIRE_NEW_LEASE: &str = "\
    INSERT INTO leases (key, holder, token, expires_at) VALUES (?1, ?2, ?3, ?5 + ?4) \
    ON CONFLICT (key) DO NOTHING \
    RETURNING holder, token, expires_at";

/// `try_acquire_lease_unchanged` of a key last seen free under token `?6`. `?4` is the ttl,
/// `?5` now.
const ACQUIRE_UNCHANGED_LEASE: &str = "\
    UPDATE leases SET holder = ?2, token = ?3, expires_at = ?5 + ?4 \
    WHERE key = ?1 AND token = ?6 AND expires_at <= ?5 \
    RETURNING holder, token, expires_at";

/// Matching the token (not the holder name) means a holder whose lease was taken over
/// cannot extend the new holder's lease.
const RENEW_LEASE: &str = "\
    UPDATE leases SET expires_at = ?4 + ?3 WHERE key = ?1 AND token = ?2 \
    RETURNING holder, token, expires_at";

/// Insert or merge in one statement: missing fields are filled, the status only moves
/// forward and `unrouted` stays.
pub(crate) const UPSERT_CALL: &str = concat!(
    "INSERT INTO calls (id, room_name, customer_id, connection_id, sip_call_id, called, \
         caller, status, dispatch_status, dispatch_id, dispatch_attempts, agent_name, \
         started_at, answered_at, ended_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
     ON CONFLICT (room_name) DO UPDATE SET \
         customer_id = COALESCE(calls.customer_id, excluded.customer_id), \
         connection_id = COALESCE(calls.connection_id, excluded.connection_id), \
         sip_call_id = COALESCE(calls.sip_call_id, excluded.sip_call_id), \
         called = COALESCE(calls.called, excluded.called), \
         caller = COALESCE(calls.caller, excluded.caller), \
         agent_name = COALESCE(calls.agent_name, excluded.agent_name), \
         answered_at = COALESCE(calls.answered_at, excluded.answered_at), \
         ended_at = COALESCE(calls.ended_at, excluded.ended_at), \
         dispatch_id = COALESCE(calls.dispatch_id, excluded.dispatch_id), \
         dispatch_status = CASE WHEN calls.dispatch_status = 'none' \
             THEN excluded.dispatch_status ELSE calls.dispatch_status END, \
         status = CASE \
             WHEN calls.status IN ('unrouted', 'ended') THEN calls.status \
             WHEN excluded.status IN ('active', 'ended') THEN excluded.status \
             ELSE calls.status END, \
         updated_at = MAX(calls.updated_at, excluded.updated_at) \
     RETURNING ",
    trunkline_store_sql::call_columns!()
);

/// The end also cancels a dispatch that is due or under way (the claimant is kept, so a
/// worker dispatching right now can still record what it did).
const END_CALL: &str = concat!(
    "UPDATE calls SET \
         ended_at = COALESCE(ended_at, ?2), \
         status = CASE WHEN status = 'unrouted' THEN status ELSE 'ended' END, \
         dispatch_status = CASE WHEN dispatch_status IN ('failed', 'claimed') \
             THEN 'cancelled' ELSE dispatch_status END, \
         updated_at = MAX(updated_at, ?3) \
     WHERE room_name = ?1 \
     RETURNING ",
    trunkline_store_sql::call_columns!()
);

/// The SQLite store: the embedded default, one file, one host.
///
/// Cloning is cheap (the pool is shared). Times that decide expiry (leases, dispatch
/// claims) come from this process's clock: every process using the file is on one host.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: Pool<Conn>,
    /// Every statement that writes, and every transaction that does.
    writer: Pool<WriteConn>,
    path: Arc<Path>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        let writer = self.writer.status();
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("open_connections", &(status.size + writer.size))
            .field("idle_connections", &(status.available + writer.available))
            .finish()
    }
}

/// `sqlite://relative/path.db`, `sqlite:///absolute/path.db` (or `sqlite:path`) to a path.
fn parse_url(url: &str) -> Result<PathBuf, StoreError> {
    let invalid = |why: &str| StoreError::Other(format!("invalid SQLite database URL: {why}"));
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid("it must start with sqlite://"))?;
    if rest.is_empty() {
        return Err(invalid("it names no file"));
    }
    // An in-memory database is per connection: each pooled connection would see its own
    // empty database. URI filenames and parameters are refused so the path means a path.
    if rest.contains(":memory:") || rest.starts_with("file:") || rest.contains('?') {
        return Err(invalid(
            "in-memory databases and URI parameters are not supported; give a file path",
        ));
    }
    Ok(PathBuf::from(rest))
}

async fn establish<T: Turn>(
    path: String,
    pragmas: &'static str,
) -> ConnectionResult<SyncConnectionWrapper<SqliteConnection, Blocking<T>>> {
    let mut conn = SyncConnectionWrapper::<SqliteConnection, Blocking<T>>::establish(&path).await?;
    conn.batch_execute(pragmas)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Create the database's directory (0700) and the file (0600) when missing, before SQLite
/// would create them with the umask's modes: the file holds sealed credentials and call
/// records. SQLite gives its `-wal` and `-shm` files the database file's mode. Existing
/// ones are left as the operator set them.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        dir.mode(0o700);
        file.mode(0o600);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir.create(parent).map_err(|e| {
            StoreError::Unavailable(format!("cannot create the database directory: {e}"))
        })?;
    }
    file.open(path)
        .map(drop)
        .map_err(|e| StoreError::Unavailable(format!("cannot create the database file: {e}")))
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

impl SqliteStore {
    /// Open (creating the parent directory and the file when missing) the database named
    /// by `url`: `sqlite://path/to/file.db` (relative to the working directory) or
    /// `sqlite:///abs/path.db`. Does not migrate.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        Self::connect_with(url, CONNECTION_PRAGMAS).await
    }

    async fn connect_with(url: &str, pragmas: &'static str) -> Result<SqliteStore, StoreError> {
        let path = parse_url(url)?;
        let path_str = path
            .to_str()
            .ok_or_else(|| StoreError::Other("the database path is not UTF-8".to_owned()))?
            .to_owned();
        let file = path.clone();
        tokio::task::spawn_blocking(move || create_private(&file))
            .await
            .map_err(|e| StoreError::Other(format!("directory task failed: {e}")))??;
        let store = SqliteStore {
            pool: pool(&path_str, POOL_SIZE, pragmas)?,
            writer: pool(&path_str, POOL_SIZE, pragmas)?,
            path: Arc::from(path),
        };
        // Open one connection now: creates the file and reports a bad path at start-up.
        drop(store.conn().await?);
        Ok(store)
    }

    /// Apply pending embedded migrations; returns the versions applied (empty when up to
    /// date). Safe when several processes open the same file at once.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let applied = migrate::run(self.path.to_path_buf()).await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, "applied SQLite migrations");
        }
        Ok(applied)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection for reads.
    pub(crate) async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        checkout(&self.pool).await
    }

    /// A connection for writes: its statements take the write turn
    /// ([`crate::blocking::Write`]).
    pub(crate) async fn write_conn(&self) -> Result<Object<WriteConn>, StoreError> {
        checkout(&self.writer).await
    }
}

async fn checkout<T: Turn>(
    pool: &Pool<SyncConnectionWrapper<SqliteConnection, Blocking<T>>>,
) -> Result<Object<SyncConnectionWrapper<SqliteConnection, Blocking<T>>>, StoreError> {
    tokio::time::timeout(ACQUIRE_TIMEOUT, pool.get())
        .await
        .map_err(|_| error::timed_out())?
        .map_err(error::pool)
}

fn pool<T: Turn>(
    path: &str,
    size: usize,
    pragmas: &'static str,
) -> Result<Pool<SyncConnectionWrapper<SqliteConnection, Blocking<T>>>, StoreError> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |path| Box::pin(establish(path.to_owned(), pragmas)));
    // A connection to a local file does not go stale like a network session; skip the
    // `SELECT 1` round trip (a blocking-thread hop here) on every checkout.
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::new_with_config(path, config);
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| StoreError::Other(format!("cannot build the connection pool: {e}")))
}

trunkline_store_sql::lease_store!(
    SqliteStore,
    clock = [.bind::<BigInt, _>(now_micros())],
    now = now_micros()
);

trunkline_store_sql::call_store!(
    SqliteStore,
    statement = diesel::sql_query,
    clock = [.bind::<BigInt, _>(now_micros())],
    now = now_micros(),
    {
    async fn record_webhook_event(&self, event: &WebhookEventRecord) -> Result<bool, StoreError> {
        let row = WebhookEventRow::from_domain(event);
        let mut conn = self.write_conn().await?;
        let inserted = diesel::insert_into(webhook_events::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(inserted == 1)
    }


    async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError> {
        let attempts = codec::attempts_to_db(call.dispatch_attempts)?;
        let mut conn = self.write_conn().await?;
        let call = call.clone();
        let row = conn
            .spawn_blocking(move |c| sync_ops::upsert_call(c, &call, attempts))
            .await
            .map_err(error::db)?;
        row.into_domain()
    }




    async fn claim_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        ttl: Duration,
    ) -> Result<DispatchClaim, StoreError> {
        let mut conn = self.write_conn().await?;
        let (room, claimant) = (room.as_str().to_owned(), claimant.to_owned());
        let (now, ttl) = (now_micros(), codec::ttl_micros(ttl));
        // The whole BEGIN IMMEDIATE … COMMIT runs in one blocking task: if this future is
        // dropped midway, the transaction still ends instead of holding the write lock.
        let outcome = conn
            .spawn_blocking(move |c| sync_ops::claim_dispatch(c, &room, &claimant, now, ttl))
            .await
            .map_err(error::db)?;
        outcome.into_claim()
    }

    async fn record_join(
        &self,
        event: &WebhookEventRecord,
        call: &CallRecord,
        claim: Option<ClaimRequest>,
    ) -> Result<JoinRecorded, StoreError> {
        let attempts = codec::attempts_to_db(call.dispatch_attempts)?;
        let event = WebhookEventRow::from_domain(event);
        let claim: Option<sync_ops::ClaimArgs> =
            claim.map(|c| (c.claimant, now_micros(), codec::ttl_micros(c.ttl)));
        let call = call.clone();
        let mut conn = self.write_conn().await?;
        // One blocking task for the whole transaction, as for `claim_dispatch`.
        let outcome = conn
            .spawn_blocking(move |c| {
                sync_ops::record_join(c, &event, &call, attempts, claim.as_ref())
            })
            .await
            .map_err(error::db)?;
        match outcome {
            sync_ops::JoinOutcome::Duplicate => Ok(JoinRecorded::Duplicate),
            sync_ops::JoinOutcome::Recorded(row, claim) => Ok(JoinRecorded::Recorded {
                call: Box::new(row.into_domain()?),
                claim: claim.map(ClaimOutcome::into_claim).transpose()?,
            }),
        }
    }
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            parse_url("sqlite://data/trunkline.db").unwrap(),
            PathBuf::from("data/trunkline.db")
        );
        assert_eq!(
            parse_url("sqlite://./data/trunkline.db").unwrap(),
            PathBuf::from("./data/trunkline.db")
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/trunkline/t.db").unwrap(),
            PathBuf::from("/var/lib/trunkline/t.db")
        );
        assert_eq!(parse_url("sqlite:t.db").unwrap(), PathBuf::from("t.db"));
    }

    #[test]
    fn refused_urls_say_why() {
        for url in [
            "sqlite://:memory:",
            "sqlite::memory:",
            "sqlite://file:t.db?mode=memory",
            "sqlite://t.db?mode=ro",
            "sqlite://",
            "postgres://localhost/db",
            "t.db",
        ] {
            let err = parse_url(url).expect_err(url);
            assert!(matches!(err, StoreError::Other(_)), "{url}: {err:?}");
            assert!(err.to_string().contains("SQLite"), "{url}: {err}");
        }
    }

    /// With no busy timeout, a connection that finds the write lock taken fails at once
    /// with SQLITE_BUSY instead of sleeping in SQLite's busy handler. The store's own
    /// writers must never get there: they take the write turn first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_of_one_process_queue_instead_of_meeting_the_write_lock() {
        use trunkline_core::model::LeaseKey;
        use trunkline_core::ports::LeaseStore as _;
        use trunkline_core::{CarrierNumberId, CustomerId, ProviderKind};

        const NO_WAITING: &str = "\
            PRAGMA busy_timeout = 0; \
            PRAGMA journal_mode = WAL; \
            PRAGMA synchronous = FULL; \
            PRAGMA foreign_keys = ON;";
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::connect_with(&url, NO_WAITING).await.unwrap();
        store.migrate().await.unwrap();
        let customer = CustomerId::parse("cust_writers").unwrap();
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let (store, customer) = (store.clone(), customer.clone());
                tokio::spawn(async move {
                    let number = CarrierNumberId::parse(&format!("PN{i:032x}")).unwrap();
                    let key = LeaseKey::number(customer, ProviderKind::Twilio, number);
                    let lease = store
                        .try_acquire_lease(&key, "writer", Duration::from_secs(30))
                        .await?
                        .expect("a free key");
                    store.release_lease(&lease).await
                })
            })
            .collect();
        let mut busy = 0;
        for write in writes {
            if let Err(e) = write.await.unwrap() {
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                busy += 1;
            }
        }
        assert_eq!(
            busy, 0,
            "writes that met the lock held by another of our connections"
        );
    }
}

trunkline_store_sql::catalog_ports!(SqliteStore);
trunkline_store_sql::store_health!(SqliteStore);
