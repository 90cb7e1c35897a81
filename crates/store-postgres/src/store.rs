//! `PostgresStore`: every store port on a deadpool of `AsyncPgConnection`s.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::upsert::excluded;
use diesel::{ConnectionError, ConnectionResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
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

use crate::codec;
use crate::error;
use crate::migrate;
use crate::prepared::Prepared;
use crate::rows::{AuditRow, CallRow, ConnectionRow, IntegrationRow, LeaseRow, WebhookEventRow};
mod fleet;

use crate::schema::{
    __diesel_schema_migrations, audit_events, calls, integrations, leases, number_connections,
    webhook_events,
};

/// How long `connect` waits for the first connection before reporting `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation waits for a pooled connection (pool exhausted, or a server that
/// is gone or accepts connections and never answers) unless `with_acquire_timeout` says.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

const DISCONNECTED: &str = "disconnected";

macro_rules! call_columns {
    () => {
        "id, room_name, customer_id, connection_id, sip_call_id, called, caller, status, \
         dispatch_status, dispatch_id, dispatch_attempts, agent_name, started_at, answered_at, \
         ended_at, updated_at"
    };
}

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
    call_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    merge_call!(),
    " RETURNING ",
    call_columns!()
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
    call_columns!(),
    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
     WHERE EXISTS (SELECT 1 FROM ev) \
        OR NOT EXISTS (SELECT 1 FROM calls WHERE room_name = $2)",
    merge_call!(),
    " WHERE EXISTS (SELECT 1 FROM ev) RETURNING ",
    call_columns!()
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
    call_columns!()
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
    call_columns!(),
    ") SELECT true AS updated, ",
    call_columns!(),
    " FROM claimed \
     UNION ALL SELECT false, ",
    call_columns!(),
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
}

#[async_trait]
impl IntegrationStore for PostgresStore {
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
impl ConnectionStore for PostgresStore {
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
            .find(id.as_uuid())
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
        // (customer, provider, number) raises a unique violation, mapped to `Conflict`.
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

#[async_trait]
impl LeaseStore for PostgresStore {
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
            .bind::<SqlUuid, _>(Uuid::new_v4())
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(row.map(|r| Lease {
            key: key.clone(),
            holder: r.holder,
            token: r.token,
            expires_at: r.expires_at,
        }))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<LeaseRow> = diesel::sql_query(RENEW_LEASE)
            .bind::<Text, _>(lease.key.storage_key())
            .bind::<SqlUuid, _>(lease.token)
            .bind::<BigInt, _>(codec::ttl_micros(ttl))
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(row.map(|r| Lease {
            key: lease.key.clone(),
            holder: r.holder,
            token: r.token,
            expires_at: r.expires_at,
        }))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        // Kept, expired and under a new token: `peek_lease` tells a release from no holder.
        diesel::update(
            leases::table
                .filter(leases::key.eq(lease.key.storage_key()))
                .filter(leases::token.eq(lease.token)),
        )
        .set((leases::token.eq(Uuid::new_v4()), leases::expires_at.eq(now)))
        .execute(&mut conn)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn peek_lease(&self, key: &LeaseKey) -> Result<Option<LeaseState>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<(Uuid, bool)> = leases::table
            .filter(leases::key.eq(key.storage_key()))
            .select((leases::token, leases::expires_at.gt(now)))
            .first(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        Ok(row.map(|(token, held)| LeaseState { token, held }))
    }
}

#[async_trait]
impl CallStore for PostgresStore {
    async fn record_webhook_event(&self, event: &WebhookEventRecord) -> Result<bool, StoreError> {
        let query = event_binds(RECORD_EVENT, event);
        let mut conn = self.conn().await?;
        let inserted = query.execute(&mut conn).await.map_err(error::db)?;
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
        let query = call_binds(UPSERT_CALL, call)?;
        let mut conn = self.conn().await?;
        let row: CallRow = query.get_result(&mut conn).await.map_err(error::db)?;
        row.into_domain()
    }

    async fn end_call(
        &self,
        room: &RoomName,
        at: DateTime<Utc>,
    ) -> Result<Option<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<CallRow> = Prepared::new(END_CALL)
            .bind::<Text, _>(room.as_str())
            .bind::<Timestamptz, _>(at)
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(error::db)?;
        row.map(CallRow::into_domain).transpose()
    }

    async fn get_call(&self, id: CallId) -> Result<Option<CallRecord>, StoreError> {
        let mut conn = self.conn().await?;
        calls::table
            .find(id.as_uuid())
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
            .filter(calls::connection_id.eq(connection.as_uuid()))
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
        Ok(self.claim(room, claimant, ttl).await?.0)
    }

    async fn complete_dispatch(
        &self,
        room: &RoomName,
        claimant: &str,
        dispatch_id: &AgentDispatchId,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let updated = Prepared::new(COMPLETE_DISPATCH)
            .bind::<Text, _>(room.as_str())
            .bind::<Text, _>(claimant)
            .bind::<Text, _>(dispatch_id.as_str())
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
        let updated = Prepared::new(FAIL_DISPATCH)
            .bind::<Text, _>(room.as_str())
            .bind::<Text, _>(claimant)
            .bind::<Text, _>(status.as_str())
            .execute(&mut conn)
            .await
            .map_err(error::db)?;
        Ok(updated == 1)
    }

    async fn dispatches_due(&self, limit: u32) -> Result<Vec<CallRecord>, StoreError> {
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

/// Why a claim was not won, from the row as it is now.
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

/// `sql` with a call's columns bound as `$1`–`$16`, in `call_columns!` order.
fn call_binds<'a>(sql: &'static str, call: &'a CallRecord) -> Result<Prepared<'a>, StoreError> {
    let attempts = codec::attempts_to_db(call.dispatch_attempts)?;
    Ok(Prepared::new(sql)
        .bind::<SqlUuid, _>(call.id.as_uuid())
        .bind::<Text, _>(call.room_name.as_str())
        .bind::<Nullable<Text>, _>(call.customer_id.as_ref().map(CustomerId::as_str))
        .bind::<Nullable<SqlUuid>, _>(call.connection_id.map(|c| c.as_uuid()))
        .bind::<Nullable<Text>, _>(call.sip_call_id.as_deref())
        .bind::<Nullable<Text>, _>(call.called.as_ref().map(E164::as_str))
        .bind::<Nullable<Text>, _>(call.caller.as_ref().map(E164::as_str))
        .bind::<Text, _>(call.status.as_str())
        .bind::<Text, _>(call.dispatch_status.as_str())
        .bind::<Nullable<Text>, _>(call.dispatch_id.as_ref().map(AgentDispatchId::as_str))
        .bind::<Integer, _>(attempts)
        .bind::<Nullable<Text>, _>(call.agent_name.as_deref())
        .bind::<Timestamptz, _>(call.started_at)
        .bind::<Nullable<Timestamptz>, _>(call.answered_at)
        .bind::<Nullable<Timestamptz>, _>(call.ended_at)
        .bind::<Timestamptz, _>(call.updated_at))
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

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let row = AuditRow::from_domain(event);
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
impl StoreHealth for PostgresStore {
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
    fn a_lost_claim_is_explained_from_the_current_row() {
        assert_eq!(classify_lost_claim(None), Ok(DispatchClaim::NoSuchCall));
        assert_eq!(
            classify_lost_claim(Some(("claimed".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("by_rule".into(), None))),
            Ok(DispatchClaim::HeldByOther)
        );
        assert_eq!(
            classify_lost_claim(Some(("dispatched".into(), Some("AD_1".into())))),
            Ok(DispatchClaim::AlreadyDispatched {
                dispatch_id: AgentDispatchId::parse("AD_1").unwrap()
            })
        );
        assert!(matches!(
            classify_lost_claim(Some(("dispatched".into(), None))),
            Err(StoreError::Corrupt(_))
        ));
    }
}
