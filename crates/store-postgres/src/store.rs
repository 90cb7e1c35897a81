//! `PostgresStore`: every store port on a deadpool of `AsyncPgConnection`s.

use std::fmt;
use std::time::Duration;

use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use trunkline_core::RoomName;
use trunkline_core::model::{CallRecord, DispatchClaim, DispatchStatus};
use trunkline_core::ports::{ClaimRequest, JoinRecorded, StoreError, WebhookEventRecord};
use trunkline_store_sql::claim::classify_lost_claim;
use trunkline_store_sql::codec;
use trunkline_store_sql::encoding::native as enc;

use crate::error;
use crate::migrate;
use crate::prepared::Prepared;
use crate::rows::{AuditRow, CallRow, ConnectionRow, IntegrationRow, LeaseRow, WebhookEventRow};
use crate::schema::{
    __diesel_schema_migrations, SqlId, SqlTs, audit_events, calls, integrations, leases,
    number_connections, webhook_events,
};

mod fleet;

/// How long `connect` waits for the first connection before reporting `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation waits for a pooled connection (pool exhausted, or a server that
/// is gone or accepts connections and never answers) unless `with_acquire_timeout` says.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// One statement: a concurrent acquirer either inserts, or waits on the row lock and then
/// re-checks `expires_at` against the committed row, so exactly one caller gets a row back.
/// `now()` is the database clock: instances with skewed clocks agree on expiry.
const ACQUIRE_LEASE: &str = "\
    INSERT INTO leases (key, holder, token, expires_at) \
    VALUES ($1, $2, $3, now() + $4::float8 * interval '1 microsecond') \
    ON CONFLICT (key) DO UPDATE \
        SET holder = EXCLUDED.holder, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at \
        WHERE leases.expires_at <= now() \
    RETURNING holder, token, expires_at";

/// `try_acquire_lease_unchanged` of a key never taken: a concurrent inserter of the same key
/// waits for the first one's insert and then inserts nothing.
const ACQUIRE_NEW_LEASE: &str = "\
    INSERT INTO leases (key, holder, token, expires_at) \
    VALUES ($1, $2, $3, now() + $4::float8 * interval '1 microsecond') \
    ON CONFLICT (key) DO NOTHING \
    RETURNING holder, token, expires_at";

/// `try_acquire_lease_unchanged` of a key last seen free under token `$5`. A concurrent
/// acquirer waits on the row lock and then re-checks the token against the committed row, so
/// of callers with the same token exactly one gets a row back.
const ACQUIRE_UNCHANGED_LEASE: &str = "\
    UPDATE leases SET holder = $2, token = $3, \
        expires_at = now() + $4::float8 * interval '1 microsecond' \
    WHERE key = $1 AND token = $5 AND expires_at <= now() \
    RETURNING holder, token, expires_at";

/// Matching the token (not the holder name) means a holder whose lease was taken over
/// cannot extend the new holder's lease.
const RENEW_LEASE: &str = "\
    UPDATE leases SET expires_at = now() + $3::float8 * interval '1 microsecond' \
    WHERE key = $1 AND token = $2 \
    RETURNING holder, token, expires_at";

/// Insert or merge in one statement (the row lock serializes concurrent merges): missing
/// fields are filled, the status only moves forward and `unrouted` stays.
/// The merge of a call into the stored one: missing fields are filled, the status only moves
/// forward and `unrouted` stays. Shared by `UPSERT_CALL` and `JOIN_CALL`.
macro_rules! merge_call {
    () => {
        " ON CONFLICT (room_name) DO UPDATE SET \
             customer_id = COALESCE(calls.customer_id, EXCLUDED.customer_id), \
             connection_id = COALESCE(calls.connection_id, EXCLUDED.connection_id), \
             sip_call_id = COALESCE(calls.sip_call_id, EXCLUDED.sip_call_id), \
             called = COALESCE(calls.called, EXCLUDED.called), \
             caller = COALESCE(calls.caller, EXCLUDED.caller), \
             agent_name = COALESCE(calls.agent_name, EXCLUDED.agent_name), \
             answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at), \
             ended_at = COALESCE(calls.ended_at, EXCLUDED.ended_at), \
             dispatch_id = COALESCE(calls.dispatch_id, EXCLUDED.dispatch_id), \
             dispatch_status = CASE WHEN calls.dispatch_status = 'none' \
                 THEN EXCLUDED.dispatch_status ELSE calls.dispatch_status END, \
             status = CASE \
                 WHEN calls.status IN ('unrouted', 'ended') THEN calls.status \
                 WHEN EXCLUDED.status IN ('active', 'ended') THEN EXCLUDED.status \
                 ELSE calls.status END, \
             updated_at = GREATEST(calls.updated_at, EXCLUDED.updated_at)"
    };
}

/// Insert or merge in one statement (`merge_call!`). `$1`–`$16` are the call's columns.
const UPSERT_CALL: &str = concat!(
    "INSERT INTO calls (",
    trunkline_store_sql::call_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    merge_call!(),
    " RETURNING ",
    trunkline_store_sql::call_columns!()
);

/// A join's event and call in one statement (one round trip, one commit): the event id is
/// inserted (`$17`–`$20`); the call (`$1`–`$16`) is merged unless the event was known and
/// the room already has a call, in which case no row comes back (a duplicate).
///
/// Run concurrently, the event insert of a second delivery waits for the first's commit,
/// which wrote the call in the same transaction. The second's `NOT EXISTS` uses the
/// statement's older snapshot and may let its row through to the insert; the insert then
/// meets the committed call, and the merge's own `WHERE` (the event was new) stops it there:
/// a duplicate that raced is still a duplicate, with no claim and no read after it.
/// (`NOT EXISTS` is for an event recorded without its call, which this statement never
/// leaves behind but a crash between the separate steps of older versions could.)
const JOIN_CALL: &str = concat!(
    "WITH ev AS (INSERT INTO webhook_events (id, kind, room_name, received_at) \
         VALUES ($17, $18, $19, $20) ON CONFLICT DO NOTHING RETURNING 1) \
     INSERT INTO calls (",
    trunkline_store_sql::call_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
     WHERE EXISTS (SELECT 1 FROM ev) \
        OR NOT EXISTS (SELECT 1 FROM calls WHERE room_name = $2)",
    merge_call!(),
    " WHERE EXISTS (SELECT 1 FROM ev) RETURNING ",
    trunkline_store_sql::call_columns!()
);

/// The end also cancels a dispatch that is due or under way (the claimant is kept, so a
/// worker dispatching right now can still record what it did).
const END_CALL: &str = concat!(
    "UPDATE calls SET \
         ended_at = COALESCE(ended_at, $2), \
         status = CASE WHEN status = 'unrouted' THEN status ELSE 'ended' END, \
         dispatch_status = CASE WHEN dispatch_status IN ('failed', 'claimed') \
             THEN 'cancelled' ELSE dispatch_status END, \
         updated_at = GREATEST(updated_at, now()) \
     WHERE room_name = $1 \
     RETURNING ",
    trunkline_store_sql::call_columns!()
);

/// Whether the call has ended: its end recorded, or LiveKit's `room_finished` for its room
/// received (which can come before anything else of the call).
macro_rules! ended_at {
    () => {
        "COALESCE(calls.ended_at, (SELECT at FROM finished))"
    };
}

/// The claim is one conditional UPDATE: concurrent claimants queue on the row lock and
/// re-evaluate the WHERE clause against the winner's committed row, so exactly one wins.
/// A claim without an expiry (written by `upsert_call`) counts as expired. A call that
/// ended is not claimed: the same statement cancels its dispatch (and ends the call when
/// only `room_finished` said so), and the row comes back `cancelled`.
///
/// The same statement answers a lost claim: `updated` false and the call as the statement's
/// snapshot saw it. That row may predate the winner's commit; any answer but "won" means
/// "nothing to do now", which stays true, so no second read is needed.
///
/// The claim stays a statement of its own, after the join's commit, on purpose: LiveKit's
/// `room_finished` can arrive at the same moment on another instance, whose `end_call`
/// cannot see a call that is not committed yet. Claiming after the commit means that either
/// the end sees the call (and cancels its dispatch) or the claim sees the `room_finished`
/// event; one statement doing both from one older snapshot could miss both.
const CLAIM_DISPATCH: &str = concat!(
    "WITH finished AS (SELECT MIN(received_at) AS at FROM webhook_events \
         WHERE room_name = $1 AND kind = 'room_finished'), \
     claimed AS (UPDATE calls SET \
         ended_at = ",
    ended_at!(),
    ", status = CASE WHEN status = 'unrouted' OR ",
    ended_at!(),
    " IS NULL THEN status ELSE 'ended' END, \
         dispatch_status = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN 'claimed' ELSE 'cancelled' END, \
         claimant = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN $2 END, \
         claim_expires_at = CASE WHEN ",
    ended_at!(),
    " IS NULL THEN now() + $3::float8 * interval '1 microsecond' END, \
         dispatch_attempts = dispatch_attempts + CASE WHEN ",
    ended_at!(),
    " IS NULL THEN 1 ELSE 0 END, \
         updated_at = GREATEST(updated_at, now()) \
     WHERE room_name = $1 \
       AND (dispatch_status IN ('none', 'failed') \
            OR (dispatch_status = 'claimed' \
                AND (claim_expires_at IS NULL OR claim_expires_at <= now()))) \
     RETURNING ",
    trunkline_store_sql::call_columns!(),
    ") SELECT true AS updated, ",
    trunkline_store_sql::call_columns!(),
    " FROM claimed \
     UNION ALL SELECT false, ",
    trunkline_store_sql::call_columns!(),
    " FROM calls WHERE room_name = $1 AND NOT EXISTS (SELECT 1 FROM claimed)"
);

/// A claim's answer: whether this statement changed the row, and the row.
#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    updated: bool,
    #[diesel(embed)]
    call: CallRow,
}

/// A dispatch cancelled by the call's end while its claimant was dispatching is still
/// recorded: the agent may be in the room.
const COMPLETE_DISPATCH: &str = "\
    UPDATE calls SET dispatch_status = 'dispatched', dispatch_id = $3, claimant = NULL, \
        claim_expires_at = NULL, updated_at = now() \
    WHERE room_name = $1 AND dispatch_status IN ('claimed', 'cancelled') AND claimant = $2";

const FAIL_DISPATCH: &str = "\
    UPDATE calls SET dispatch_status = $3, claimant = NULL, claim_expires_at = NULL, \
        updated_at = now() \
    WHERE room_name = $1 AND dispatch_status = 'claimed' AND claimant = $2";

const RECORD_EVENT: &str = "\
    INSERT INTO webhook_events (id, kind, room_name, received_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT DO NOTHING";

/// The PostgreSQL store: production, several instances against one database.
///
/// Cloning is cheap (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool<AsyncPgConnection>,
    max_connections: usize,
    acquire_timeout: Duration,
}

impl fmt::Debug for PostgresStore {
    // Deliberately neither the URL nor anything derived from it (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("max_connections", &self.max_connections)
            .field("open_connections", &status.size)
            .field("idle_connections", &status.available)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// Like `AsyncPgConnection::establish`, but keeps the cause of a failure ("connection
/// refused", "password authentication failed for user …", "database … does not exist"),
/// which diesel-async flattens to "error connecting to server". tokio-postgres never puts
/// the password in these messages.
async fn establish(url: String) -> ConnectionResult<AsyncPgConnection> {
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| ConnectionError::BadConnection(error::with_causes(&e)))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

impl PostgresStore {
    /// Connect to `postgres://…` or `postgresql://…` with a pool of at most
    /// `max_connections` (at least 1). Waits a few seconds at most for the server and
    /// answers `StoreError::Unavailable` when it does not answer. Does not migrate.
    pub async fn connect(url: &str, max_connections: usize) -> Result<PostgresStore, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Other(
                "the database URL must start with postgres:// or postgresql://".to_owned(),
            ));
        }
        let max_connections = max_connections.max(1);
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        config.custom_setup = Box::new(|url| Box::pin(establish(url.to_owned())));
        // A pooled session the server closed meanwhile (restart, idle timeout, terminated
        // backend) is noticed by its client and replaced at checkout (`is_broken`), without
        // the `SELECT 1` of `Verified`, which doubled every statement's round trips
        // (docs/benchmarks.md: the insert ceiling went from 15,198/s to 10,462/s with it).
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build the connection pool: {e}")))?;
        let first = tokio::time::timeout(CONNECT_TIMEOUT, pool.get())
            .await
            .map_err(|_| error::timed_out())?
            .map_err(error::pool)?;
        drop(first);
        Ok(PostgresStore {
            pool,
            max_connections,
            acquire_timeout: ACQUIRE_TIMEOUT,
        })
    }

    /// Wait at most `timeout` for a pooled connection (opening one included): past it an
    /// operation fails `Unavailable` instead of holding its caller.
    #[must_use]
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Apply pending embedded migrations; returns the versions applied (empty when up to
    /// date). Safe when several instances start at once: they take turns on an advisory
    /// lock, and the later ones find nothing pending.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        // The advisory lock belongs to the session, so the connection leaves the pool.
        let conn = Object::take(self.conn().await?);
        let applied = migrate::run(conn).await?;
        if !applied.is_empty() {
            tracing::info!(versions = ?applied, "applied PostgreSQL migrations");
        }
        Ok(applied)
    }

    pub(crate) async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        tokio::time::timeout(self.acquire_timeout, self.pool.get())
            .await
            .map_err(|_| error::timed_out())?
            .map_err(error::pool)
    }

    /// The shared code asks for a writer where SQLite needs its one (see store-sqlite's
    /// `write_conn`); PostgreSQL lets writers in side by side, so any pooled connection will do.
    pub(crate) async fn write_conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.conn().await
    }
}

trunkline_store_sql::lease_store!(PostgresStore, clock = [], now = diesel::dsl::now);

trunkline_store_sql::call_store!(
    PostgresStore,
    statement = Prepared::new,
    clock = [],
    now = diesel::dsl::now,
    {
        async fn record_webhook_event(
            &self,
            event: &WebhookEventRecord,
        ) -> Result<bool, StoreError> {
            let query = event_binds(RECORD_EVENT, event);
            let mut conn = self.conn().await?;
            let inserted = query.execute(&mut conn).await.map_err(error::db)?;
            Ok(inserted == 1)
        }

        async fn upsert_call(&self, call: &CallRecord) -> Result<CallRecord, StoreError> {
            let query = call_binds(UPSERT_CALL, call)?;
            let mut conn = self.conn().await?;
            let row: CallRow = query.get_result(&mut conn).await.map_err(error::db)?;
            row.into_domain()
        }

        async fn claim_dispatch(
            &self,
            room: &RoomName,
            claimant: &str,
            ttl: Duration,
        ) -> Result<DispatchClaim, StoreError> {
            Ok(self.claim(room, claimant, ttl).await?.0)
        }

        async fn record_join(
            &self,
            event: &WebhookEventRecord,
            call: &CallRecord,
            claim: Option<ClaimRequest>,
        ) -> Result<JoinRecorded, StoreError> {
            let query = call_binds(JOIN_CALL, call)?
                .bind::<Text, _>(event.id.as_str())
                .bind::<Text, _>(event.kind.as_str())
                .bind::<Nullable<Text>, _>(event.room_name.as_ref().map(RoomName::as_str))
                .bind::<Timestamptz, _>(event.received_at);
            let row: Option<CallRow> = {
                let mut conn = self.conn().await?;
                query
                    .get_result(&mut conn)
                    .await
                    .optional()
                    .map_err(error::db)?
            };
            let Some(row) = row else {
                return Ok(JoinRecorded::Duplicate);
            };
            let mut call = row.into_domain()?;
            // A statement of its own, after the join's commit (see `CLAIM_DISPATCH`).
            let claim = match claim {
                Some(c) => {
                    let (claim, after) = self.claim(&call.room_name, &c.claimant, c.ttl).await?;
                    call = after.unwrap_or(call);
                    Some(claim)
                }
                None => None,
            };
            Ok(JoinRecorded::Recorded {
                call: Box::new(call),
                claim,
            })
        }
    }
);

/// `sql` with a call's columns bound as `$1`–`$16`, in `call_columns!` order.
fn call_binds<'a>(sql: &'static str, call: &'a CallRecord) -> Result<Prepared<'a>, StoreError> {
    let attempts = codec::attempts_to_db(call.dispatch_attempts)?;
    Ok(trunkline_store_sql::bind_call_columns!(
        Prepared::new(sql),
        call,
        attempts
    ))
}

/// `sql` with an event bound as `$1`–`$4` (id, kind, room, received).
fn event_binds<'a>(sql: &'static str, event: &'a WebhookEventRecord) -> Prepared<'a> {
    Prepared::new(sql)
        .bind::<Text, _>(event.id.as_str())
        .bind::<Text, _>(event.kind.as_str())
        .bind::<Nullable<Text>, _>(event.room_name.as_ref().map(RoomName::as_str))
        .bind::<Timestamptz, _>(event.received_at)
}

impl PostgresStore {
    /// `claim_dispatch`, plus the call as this statement left it (`None`: no such call).
    async fn claim(
        &self,
        room: &RoomName,
        claimant: &str,
        ttl: Duration,
    ) -> Result<(DispatchClaim, Option<CallRecord>), StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<ClaimRow> = Prepared::new(CLAIM_DISPATCH)
            .bind::<Text, _>(room.as_str())
            .bind::<Text, _>(claimant)
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        drop(conn);
        let Some(ClaimRow { updated, call }) = row else {
            return Ok((DispatchClaim::NoSuchCall, None));
        };
        let claim = if updated && call.dispatch_status == DispatchStatus::Claimed.as_str() {
            DispatchClaim::Won {
                attempt: codec::attempts_from_db(call.dispatch_attempts)?,
            }
        } else if updated {
            // Refused: the call ended, and the statement cancelled its dispatch.
            classify_lost_claim(Some((call.dispatch_status.clone(), None)))?
        } else {
            classify_lost_claim(Some((
                call.dispatch_status.clone(),
                call.dispatch_id.clone(),
            )))?
        };
        Ok((claim, Some(call.into_domain()?)))
    }
}

trunkline_store_sql::catalog_ports!(PostgresStore);
trunkline_store_sql::store_health!(PostgresStore);
