//! Embedded migrations, applied inside one `BEGIN IMMEDIATE` transaction.

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use trunkline_core::ports::StoreError;

use crate::error;
use crate::store::CONNECTION_PRAGMAS;

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Versions of every embedded migration, in order.
pub(crate) fn embedded_versions() -> Result<Vec<String>, StoreError> {
    trunkline_store_sql::migrations::versions::<Sqlite>(&MIGRATIONS)
}

/// Apply pending migrations to the database file at `path`; returns the versions applied.
///
/// The write lock is taken before diesel looks at what is pending (its per-migration
/// transactions become savepoints inside ours), so two processes starting at once take
/// turns and the second finds nothing to do, instead of both applying the same migration.
pub(crate) async fn run(path: PathBuf) -> Result<Vec<String>, StoreError> {
    tokio::task::spawn_blocking(move || {
        let path = path
            .to_str()
            .ok_or_else(|| StoreError::Other("the database path is not UTF-8".to_owned()))?;
        let mut conn = SqliteConnection::establish(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open the database: {e}")))?;
        conn.batch_execute(CONNECTION_PRAGMAS).map_err(error::db)?;
        conn.immediate_transaction(|conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        })
        .map_err(|e: Box<dyn std::error::Error + Send + Sync>| {
            StoreError::Other(format!("migration failed: {e}"))
        })
    })
    .await
    .map_err(|e| StoreError::Other(format!("migration task failed: {e}")))?
}
