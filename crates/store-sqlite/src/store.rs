//! `SqliteStore`: every store port on a small pool of `SyncConnectionWrapper<SqliteConnection>`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::upsert::excluded;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use trunkline_core::model::{
    AuditEvent, CallRecord, DispatchClaim, DispatchStatus, Integration, Lease, LeaseKey,
    LeaseState, NumberConnection,
};
use trunkline_core::ports::{
    AuditLog, CallStore, ClaimRequest, ConnectionStore, IntegrationStore, JoinRecorded, LeaseStore,
    StoreError, StoreHealth, WebhookEventRecord,
};
use trunkline_core::{
    AgentDispatchId, CallId, CarrierNumberId, ConnectionId, CustomerId, E164, ProviderKind,
    RoomName,
};
use uuid::Uuid;

use crate::blocking::Blocking;
use crate::codec;
use crate::error;
use crate::migrate;
use crate::rows::{
    AuditRow, CallRow, ConnectionRow, IntegrationRow, LeaseRow, WebhookEventRow, from_micros,
    micros, parse_uuid, uuid_text,
};
use crate::schema::{
    __diesel_schema_migrations, audit_events, calls, integrations, leases, number_connections,
    webhook_events,
};
use crate::sync_ops::{self, ClaimOutcome};

mod fleet;

/// Statements run on [`Blocking`]: a store call dropped mid-statement waits for it without
/// diesel-async's `block_in_place`, which panics on actix's current-thread workers.
type Conn = SyncConnectionWrapper<SqliteConnection, Blocking>;

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

/// Enough for concurrent readers under WAL; writers take turns anyway.
const POOL_SIZE: usize = 8;
/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const DISCONNECTED: &str = "disconnected";

/// The dispatch statuses its claimant can complete: its claim, or the claim the call's end
/// cancelled while it was dispatching.
const COMPLETABLE: [&str; 2] = ["claimed", "cancelled"];

macro_rules! call_columns {
    () => {
        "id, room_name, customer_id, connection_id, sip_call_id, called, caller, status, \
         dispatch_status, dispatch_id, dispatch_attempts, agent_name, started_at, answered_at, \
         ended_at, updated_at"
    };
}

/// One statement, and SQLite runs one writer at a time: either the key is free (insert),
/// or expired (take over), or the statement returns no row. `?4` is now, `?5` the ttl.
const ACQUIRE_LEASE: &str = "\
    INSERT INTO leases (key, holder, token, expires_at) VALUES (?1, ?2, ?3, ?4 + ?5) \
    ON CONFLICT (key) DO UPDATE \
        SET holder = excluded.holder, token = excluded.token, expires_at = excluded.expires_at \
        WHERE leases.expires_at <= ?4 \
    RETURNING holder, token, expires_at";

/// Matching the token (not the holder name) means a holder whose lease was taken over
/// cannot extend the new holder's lease.
const RENEW_LEASE: &str = "\
    UPDATE leases SET expires_at = ?3 + ?4 WHERE key = ?1 AND token = ?2 \
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
    call_columns!()
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
    call_columns!()
);

/// The SQLite store: the embedded default, one file, one host.
///
/// Cloning is cheap (the pool is shared). Times that decide expiry (leases, dispatch
/// claims) come from this process's clock: every process using the file is on one host.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Conn>,
    path: Arc<Path>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("open_connections", &status.size)
            .field("idle_connections", &status.available)
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

async fn establish(path: String) -> ConnectionResult<Conn> {
    let mut conn = Conn::establish(&path).await?;
    conn.batch_execute(CONNECTION_PRAGMAS)
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
        let path = parse_url(url)?;
        let path_str = path
            .to_str()
            .ok_or_else(|| StoreError::Other("the database path is not UTF-8".to_owned()))?
            .to_owned();
        let file = path.clone();
        tokio::task::spawn_blocking(move || create_private(&file))
            .await
            .map_err(|e| StoreError::Other(format!("directory task failed: {e}")))??;
        let mut config = ManagerConfig::<Conn>::default();
        config.custom_setup = Box::new(|path| Box::pin(establish(path.to_owned())));
        // A connection to a local file does not go stale like a network session; skip the
        // `SELECT 1` round trip (a blocking-thread hop here) on every checkout.
        config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(path_str, config);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build the connection pool: {e}")))?;
        let store = SqliteStore {
            pool,
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

    pub(crate) async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.pool.get())
            .await
            .map_err(|_| error::timed_out())?
            .map_err(error::pool)
    }
}

#[async_trait]
impl IntegrationStore for SqliteStore {
    async fn get_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Option<Integration>, StoreError> {
        let mut conn = self.conn().await?;
        integrations::table
            .filter(integrations::customer_id.eq(customer.as_str()))
            .filter(integrations::provider.eq(provider.as_str()))
            .select(IntegrationRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(IntegrationRow::into_domain)
            .transpose()
    }

    async fn put_integration(&self, integration: &Integration) -> Result<(), StoreError> {
        let row = IntegrationRow::from_domain(integration);
        let mut conn = self.conn().await?;
        diesel::insert_into(integrations::table)
            .values(&row)
            .on_conflict((integrations::customer_id, integrations::provider))
            .do_update()
            .set((
                integrations::id.eq(excluded(integrations::id)),
                integrations::account_id.eq(excluded(integrations::account_id)),
                integrations::key_id.eq(excluded(integrations::key_id)),
                integrations::sealed_secret.eq(excluded(integrations::sealed_secret)),
                integrations::status.eq(excluded(integrations::status)),
                integrations::created_at.eq(excluded(integrations::created_at)),
                integrations::updated_at.eq(excluded(integrations::updated_at)),
            ))
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn delete_integration(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let deleted = diesel::delete(
            integrations::table
                .filter(integrations::customer_id.eq(customer.as_str()))
                .filter(integrations::provider.eq(provider.as_str())),
        )
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(deleted > 0)
    }
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn get_connection(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
        number: &CarrierNumberId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let mut conn = self.conn().await?;
        number_connections::table
            .filter(number_connections::customer_id.eq(customer.as_str()))
            .filter(number_connections::provider.eq(provider.as_str()))
            .filter(number_connections::number_id.eq(number.as_str()))
            .select(ConnectionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(ConnectionRow::into_domain)
            .transpose()
    }

    async fn get_connection_by_id(
        &self,
        id: ConnectionId,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let mut conn = self.conn().await?;
        number_connections::table
            .find(uuid_text(id.as_uuid()))
            .select(ConnectionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(ConnectionRow::into_domain)
            .transpose()
    }

    async fn find_live_connection_by_e164(
        &self,
        e164: &E164,
    ) -> Result<Option<NumberConnection>, StoreError> {
        let mut conn = self.conn().await?;
        number_connections::table
            .filter(number_connections::e164.eq(e164.as_str()))
            .filter(number_connections::status.ne(DISCONNECTED))
            .order((
                number_connections::updated_at.desc(),
                number_connections::id.desc(),
            ))
            .select(ConnectionRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(ConnectionRow::into_domain)
            .transpose()
    }

    async fn list_connections(
        &self,
        customer: &CustomerId,
        provider: ProviderKind,
    ) -> Result<Vec<NumberConnection>, StoreError> {
        let mut conn = self.conn().await?;
        number_connections::table
            .filter(number_connections::customer_id.eq(customer.as_str()))
            .filter(number_connections::provider.eq(provider.as_str()))
            .order((
                number_connections::created_at.asc(),
                number_connections::id.asc(),
            ))
            .select(ConnectionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(ConnectionRow::into_domain)
            .collect()
    }

    async fn save_connection(&self, connection: &NumberConnection) -> Result<(), StoreError> {
        let row = ConnectionRow::from_domain(connection)?;
        let mut conn = self.conn().await?;
        // The upsert only absorbs a conflict on `id`; another row holding the same
        // (customer, provider, number) fails the unique constraint, mapped to `Conflict`.
        diesel::insert_into(number_connections::table)
            .values(&row)
            .on_conflict(number_connections::id)
            .do_update()
            .set(&row)
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }
}

fn lease_from_row(key: &LeaseKey, row: LeaseRow) -> Result<Lease, StoreError> {
    Ok(Lease {
        key: key.clone(),
        holder: row.holder,
        token: parse_uuid("leases.token", &row.token)?,
        expires_at: from_micros("leases.expires_at", row.expires_at)?,
    })
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn try_acquire_lease(
        &self,
        key: &LeaseKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<LeaseRow> = diesel::sql_query(ACQUIRE_LEASE)
            .bind::<Text, _>(key.storage_key())
            .bind::<Text, _>(holder)
            .bind::<Text, _>(uuid_text(Uuid::new_v4()))
            .bind::<BigInt, _>(now_micros())
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(|r| lease_from_row(key, r)).transpose()
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<LeaseRow> = diesel::sql_query(RENEW_LEASE)
            .bind::<Text, _>(lease.key.storage_key())
            .bind::<Text, _>(uuid_text(lease.token))
            .bind::<BigInt, _>(now_micros())
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(|r| lease_from_row(&lease.key, r)).transpose()
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // Kept, expired and under a new token: `peek_lease` tells a release from no holder.
        diesel::update(
            leases::table
                .filter(leases::key.eq(lease.key.storage_key()))
                .filter(leases::token.eq(uuid_text(lease.token))),
        )
        .set((
            leases::token.eq(uuid_text(Uuid::new_v4())),
            leases::expires_at.eq(now_micros()),
        ))
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn peek_lease(&self, key: &LeaseKey) -> Result<Option<LeaseState>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<(String, i64)> = leases::table
            .filter(leases::key.eq(key.storage_key()))
            .select((leases::token, leases::expires_at))
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(|(token, expires_at)| {
            Ok(LeaseState {
                token: parse_uuid("leases.token", &token)?,
                held: expires_at > now_micros(),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl CallStore for SqliteStore {
    async fn record_webhook_event(&self, event: &WebhookEventRecord) -> Result<bool, StoreError> {
        let row = WebhookEventRow::from_domain(event);
        let mut conn = self.conn().await?;
        let inserted = diesel::insert_into(webhook_events::table)
            .values(&row)
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(inserted == 1)
    }

    async fn last_webhook_event(
        &self,
        room: &RoomName,
    ) -> Result<Option<WebhookEventRecord>, StoreError> {
        let mut conn = self.conn().await?;
        webhook_events::table
            .filter(webhook_events::room_name.eq(room.as_str()))
            .order((
                webhook_events::received_at.desc(),
                webhook_events::id.desc(),
            ))
            .select(WebhookEventRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(WebhookEventRow::into_domain)
            .transpose()
    }

    async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError> {
        let attempts = codec::attempts_to_db(call.dispatch_attempts)?;
        let mut conn = self.conn().await?;
        let call = call.clone();
        let row = conn
            .spawn_blocking(move |c| sync_ops::upsert_call(c, &call, attempts))
            .await
            .map_err(error::db)?;
        row.into_domain()
    }

    async fn end_call(
        &self,
        room: &RoomName,
        at: DateTime<Utc>,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<CallRow> = diesel::sql_query(END_CALL)
            .bind::<Text, _>(room.as_str())
            .bind::<BigInt, _>(micros(at))
            .bind::<BigInt, _>(now_micros())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(CallRow::into_domain).transpose()
    }

    async fn get_call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        calls::table
            .find(uuid_text(id.as_uuid()))
            .select(CallRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(CallRow::into_domain)
            .transpose()
    }

    async fn get_call_by_room(&self, room: &RoomName) -> Result<Option<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        calls::table
            .filter(calls::room_name.eq(room.as_str()))
            .select(CallRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?
            .map(CallRow::into_domain)
            .transpose()
    }

    async fn recent_calls(
        &self,
        connection: ConnectionId,
        limit: u32,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        calls::table
            .filter(calls::connection_id.eq(uuid_text(connection.as_uuid())))
            .order((calls::started_at.desc(), calls::id.desc()))
            .limit(codec::limit(limit))
            .select(CallRow::as_select())
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(CallRow::into_domain)
            .collect()
    }

    async fn claim_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        ttl: Duration,
    ) -> Result<DispatchClaim, StoreError> {
        let mut conn = self.conn().await?;
        let (room, claimant) = (room.as_str().to_owned(), claimant.to_owned());
        let (now, ttl) = (now_micros(), codec::ttl_micros(ttl));
        // The whole BEGIN IMMEDIATE … COMMIT runs in one blocking task: if this future is
        // dropped midway, the transaction still ends instead of holding the write lock.
        let outcome = conn
            .spawn_blocking(move |c| sync_ops::claim_dispatch(c, &room, &claimant, now, ttl))
            .await
            .map_err(error::db)?;
        claim_from(outcome)
    }

    async fn complete_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        dispatch_id: &AgentDispatchId,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        // A dispatch cancelled by the call's end while its claimant was dispatching is
        // still recorded: the agent may be in the room.
        let updated = diesel::update(
            calls::table
                .filter(calls::room_name.eq(room.as_str()))
                .filter(calls::dispatch_status.eq_any(COMPLETABLE))
                .filter(calls::claimant.eq(claimant)),
        )
        .set((
            calls::dispatch_status.eq(DispatchStatus::Dispatched.as_str()),
            calls::dispatch_id.eq(dispatch_id.as_str()),
            calls::claimant.eq(None::<String>),
            calls::claim_expires_at.eq(None::<i64>),
            calls::updated_at.eq(now_micros()),
        ))
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(updated == 1)
    }

    async fn fail_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        gave_up: bool,
    ) -> Result<bool, StoreError> {
        let status = if gave_up {
            DispatchStatus::GaveUp
        } else {
            DispatchStatus::Failed
        };
        let mut conn = self.conn().await?;
        let updated = diesel::update(
            calls::table
                .filter(calls::room_name.eq(room.as_str()))
                .filter(calls::dispatch_status.eq(DispatchStatus::Claimed.as_str()))
                .filter(calls::claimant.eq(claimant)),
        )
        .set((
            calls::dispatch_status.eq(status.as_str()),
            calls::claimant.eq(None::<String>),
            calls::claim_expires_at.eq(None::<i64>),
            calls::updated_at.eq(now_micros()),
        ))
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(updated == 1)
    }

    async fn dispatches_due(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
        let now = now_micros();
        let mut conn = self.conn().await?;
        calls::table
            .filter(calls::ended_at.is_null())
            .filter(
                calls::dispatch_status
                    .eq(DispatchStatus::Failed.as_str())
                    .or(calls::dispatch_status
                        .eq(DispatchStatus::Claimed.as_str())
                        .and(
                            calls::claim_expires_at
                                .is_null()
                                .or(calls::claim_expires_at.le(now)),
                        )),
            )
            .order((calls::started_at.asc(), calls::id.asc()))
            .limit(codec::limit(limit))
            .select(CallRow::as_select())
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(CallRow::into_domain)
            .collect()
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
        let mut conn = self.conn().await?;
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
                claim: claim.map(claim_from).transpose()?,
            }),
        }
    }
}

fn claim_from(outcome: ClaimOutcome) -> Result<DispatchClaim, StoreError> {
    match outcome {
        ClaimOutcome::Won(attempts) => Ok(DispatchClaim::Won {
            attempt: codec::attempts_from_db(attempts)?,
        }),
        ClaimOutcome::Lost(current) => classify_lost_claim(current),
    }
}

/// Why a claim was not won, from the row as it was inside the claim's transaction.
fn classify_lost_claim(
    current: Option<(String, Option<String>)>,
) -> Result<DispatchClaim, StoreError> {
    let Some((status, dispatch_id)) = current else {
        return Ok(DispatchClaim::NoSuchCall);
    };
    if codec::parse_dispatch_status(&status)? != DispatchStatus::Dispatched {
        // Claimed by someone else, or `by_rule` / `gave_up` / `cancelled`: not ours to
        // dispatch.
        return Ok(DispatchClaim::HeldByOther);
    }
    let dispatch_id = codec::parse_opt(
        "calls.dispatch_id",
        dispatch_id.as_deref(),
        AgentDispatchId::parse,
    )?
    .ok_or_else(|| codec::corrupt("calls.dispatch_id", "missing on a dispatched call"))?;
    Ok(DispatchClaim::AlreadyDispatched { dispatch_id })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let row = AuditRow::from_domain(event)?;
        let mut conn = self.conn().await?;
        diesel::insert_into(audit_events::table)
            .values(&row)
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        customer: &CustomerId,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut conn = self.conn().await?;
        audit_events::table
            .filter(audit_events::customer_id.eq(customer.as_str()))
            .order((audit_events::at.desc(), audit_events::id.desc()))
            .limit(codec::limit(limit))
            .select(AuditRow::as_select())
            .load(&mut conn)
            .await
            .map_err(error::db)?
            .into_iter()
            .map(AuditRow::into_domain)
            .collect()
    }
}

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::select(1_i32.into_sql::<Integer>())
            .get_result::<i32>(&mut conn)
            .await
            .map_err(|e| match error::db(e) {
                StoreError::Other(m) => StoreError::Unavailable(m),
                other => other,
            })?;
        let applied: Vec<String> = __diesel_schema_migrations::table
            .select(__diesel_schema_migrations::version)
            .load(&mut conn)
            .await
            .map_err(|e| match error::db(e) {
                StoreError::NotMigrated(_) => {
                    StoreError::NotMigrated("no migration has been applied".to_owned())
                }
                other => other,
            })?;
        let pending: Vec<String> = migrate::embedded_versions()?
            .into_iter()
            .filter(|v| !applied.contains(v))
            .collect();
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotMigrated(format!(
                "pending migrations: {}",
                pending.join(", ")
            )))
        }
    }
}

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

    #[test]
    fn a_lost_claim_is_explained_from_the_current_row() {
        assert_eq!(classify_lost_claim(None), Ok(DispatchClaim::NoSuchCall));
        assert_eq!(
            classify_lost_claim(Some(("gave_up".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("dispatched".into(), Some("AD_1".into())))),
            Ok(DispatchClaim::AlreadyDispatched {
                dispatch_id: AgentDispatchId::parse("AD_1").unwrap()
            })
        );
    }
}
