//! The upgrade from the last Twilio-only release (issue 10): a file at that release's schema,
//! with rows as it wrote them, migrated by the store and read back through the store API.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use trunkline_core::ports::StoreHealth;
use trunkline_store_contract::upgrade::{
    LAST_TWILIO_ONLY_MIGRATION, Literal, MigrationsThrough, assert_legacy_rows_readable,
    assert_only_later_migrations_applied, hex, legacy_rows_sql, live_lease_expiry_micros, quote,
};
use trunkline_store_sqlite::SqliteStore;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// How the SQLite schema stores each value (see the initial migration).
fn sqlite_literal(value: Literal<'_>) -> String {
    match value {
        Literal::Null => "NULL".to_owned(),
        Literal::Text(t) | Literal::Json(t) => quote(t),
        Literal::Int(n) | Literal::Micros(n) => n.to_string(),
        Literal::Bool(b) => i64::from(b).to_string(),
        Literal::Uuid(u) => quote(&u.hyphenated().to_string()),
        Literal::Bytes(b) => format!("X'{}'", hex(b)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_written_by_the_twilio_only_release_read_back_after_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.db");
    {
        let mut old = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        let applied = old
            .run_pending_migrations(MigrationsThrough {
                source: MIGRATIONS,
                last: LAST_TWILIO_ONLY_MIGRATION,
            })
            .unwrap();
        assert_eq!(
            applied.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [LAST_TWILIO_ONLY_MIGRATION]
        );
        old.batch_execute(&legacy_rows_sql(live_lease_expiry_micros(), sqlite_literal))
            .unwrap();
    }

    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let applied = store.migrate().await.unwrap();
    assert_only_later_migrations_applied(&applied);
    store.check_ready().await.unwrap();
    assert_legacy_rows_readable(&store).await;
}
