//! Embedded migrations, run under a cluster-wide advisory lock.

use std::time::{Duration, Instant};

use diesel::pg::Pg;
use diesel::sql_types::BigInt;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use trunkline_core::ports::StoreError;

use crate::error;

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Advisory-lock key shared by every trunkline instance ("trunklin" in ASCII): only one of
/// them runs migrations at a time; the others wait and then find nothing pending.
const MIGRATION_LOCK_KEY: i64 = 0x7472_756e_6b6c_696e;
/// How long an instance waits for another one's migrations before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(120);
const LOCK_POLL: Duration = Duration::from_millis(200);

diesel::define_sql_function! {
    fn pg_try_advisory_lock(key: BigInt) -> Bool;
}

diesel::define_sql_function! {
    fn pg_advisory_unlock(key: BigInt) -> Bool;
}

/// Versions of every embedded migration, in order.
pub(crate) fn embedded_versions() -> Result<Vec<String>, StoreError> {
    trunkline_store_sql::migrations::versions::<Pg>(&MIGRATIONS)
}

/// Apply pending migrations on `conn`, a connection taken out of the pool (the advisory
/// lock is held by the session, so it must not be shared). Returns the versions applied.
pub(crate) async fn run(mut conn: AsyncPgConnection) -> Result<Vec<String>, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let locked = diesel::select(pg_try_advisory_lock(MIGRATION_LOCK_KEY))
            .get_result::<bool>(&mut conn)
            .await
            .map_err(error::db)?;
        if locked {
            break;
        }
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(
                "another instance has been running migrations for too long".to_owned(),
            ));
        }
        tracing::debug!("waiting for another instance to finish migrating");
        tokio::time::sleep(LOCK_POLL).await;
    }

    // diesel_migrations is synchronous: drive it through the async connection on a
    // blocking thread (the wrapper blocks on the runtime handle there).
    let (conn, applied) = tokio::task::spawn_blocking(move || {
        let mut wrapper = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        let applied = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")));
        (wrapper.into_inner(), applied)
    })
    .await
    .map_err(|e| StoreError::Other(format!("migration task failed: {e}")))?;

    let mut conn = conn;
    // If unlocking fails the session still ends when `conn` is dropped, which releases it.
    if let Err(e) = diesel::select(pg_advisory_unlock(MIGRATION_LOCK_KEY))
        .get_result::<bool>(&mut conn)
        .await
    {
        tracing::warn!(error = %e, "could not release the migration lock; dropping the session");
    }
    applied
}
