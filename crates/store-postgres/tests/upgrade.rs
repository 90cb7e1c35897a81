//! The upgrade from the last Twilio-only release (issue 10): a schema at that release's
//! migrations, with rows as it wrote them, migrated by the store and read back through the
//! store API.

mod support;

use chrono::SecondsFormat;
use diesel::connection::SimpleConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use trunkline_core::ports::StoreHealth;
use trunkline_store_contract::upgrade::{
    LAST_TWILIO_ONLY_MIGRATION, Literal, MigrationsThrough, assert_legacy_rows_readable,
    assert_only_later_migrations_applied, hex, legacy_rows_sql, live_lease_expiry_micros, quote,
    time_of,
};
use trunkline_store_postgres::PostgresStore;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Untyped literals: PostgreSQL casts each to its column's type (uuid, jsonb, bytea, …).
fn postgres_literal(value: Literal<'_>) -> String {
    match value {
        Literal::Null => "NULL".to_owned(),
        Literal::Text(t) | Literal::Json(t) => quote(t),
        Literal::Int(n) => n.to_string(),
        Literal::Bool(b) => b.to_string(),
        Literal::Uuid(u) => quote(&u.hyphenated().to_string()),
        Literal::Micros(m) => quote(&time_of(m).to_rfc3339_opts(SecondsFormat::Micros, true)),
        Literal::Bytes(b) => quote(&format!("\\x{}", hex(b))),
    }
}

/// Apply the previous release's migrations and write its rows, as that release would have.
fn write_previous_release(url: &str) -> Vec<String> {
    use diesel::Connection;
    let mut old = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
        .expect("connect to the test schema");
    let applied = old
        .run_pending_migrations(MigrationsThrough {
            source: MIGRATIONS,
            last: LAST_TWILIO_ONLY_MIGRATION,
        })
        .expect("the previous release's migrations apply")
        .iter()
        .map(ToString::to_string)
        .collect();
    old.batch_execute(&legacy_rows_sql(
        live_lease_expiry_micros(),
        postgres_literal,
    ))
    .expect("the previous release's rows insert");
    applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_written_by_the_twilio_only_release_read_back_after_migrating() {
    let Some(base) = support::base_url() else {
        return;
    };
    let (schema, url) = support::fresh_schema(&base).await;
    // diesel_migrations is synchronous: the wrapper blocks on the runtime, off its workers.
    let old_url = url.clone();
    let applied = tokio::task::spawn_blocking(move || write_previous_release(&old_url))
        .await
        .unwrap();
    assert_eq!(applied, [LAST_TWILIO_ONLY_MIGRATION]);

    let store = PostgresStore::connect(&url, 4).await.expect("connect");
    let applied = store.migrate().await.expect("migrate");
    assert_only_later_migrations_applied(&applied);
    store.check_ready().await.expect("ready");
    assert_legacy_rows_readable(&store).await;
    drop(store);
    support::drop_schema(&base, &schema).await;
}
