//! A fresh schema per test, created from `TRUNKLINE_TEST_POSTGRES_URL` and dropped after.

#![allow(dead_code)] // each test binary uses its own part of this module

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use trunkline_store_contract::Harness;
use trunkline_store_postgres::PostgresStore;

pub const ENV: &str = "TRUNKLINE_TEST_POSTGRES_URL";

/// The test database URL, or `None` after saying on stderr how to enable these tests.
pub fn base_url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test) \
                 to run the PostgreSQL store tests"
            );
            None
        }
    }
}

pub async fn admin(base: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(base)
        .await
        .expect("connect to the test database");
    conn.batch_execute(sql).await.expect("admin statement");
}

/// A new, empty schema; returns its name and a URL whose sessions use it.
pub async fn fresh_schema(base: &str) -> (String, String) {
    // Only [a-z0-9_]: safe to splice into SQL and into the URL unquoted.
    let schema = format!("tl_test_{}", uuid::Uuid::new_v4().simple());
    admin(base, &format!("CREATE SCHEMA {schema}")).await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    (schema, url)
}

pub async fn drop_schema(base: &str, schema: &str) {
    let mut conn = match AsyncPgConnection::establish(base).await {
        Ok(conn) => conn,
        Err(e) => return eprintln!("could not drop test schema {schema}: {e}"),
    };
    if let Err(e) = conn
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
    {
        eprintln!("could not drop test schema {schema}: {e}");
    }
}

pub async fn fresh_store() -> Option<Harness> {
    let base = base_url()?;
    let (schema, url) = fresh_schema(&base).await;
    let store = PostgresStore::connect(&url, 8)
        .await
        .expect("connect to the test schema");
    Some(
        Harness::new(store, |s: PostgresStore| async move { s.migrate().await })
            .on_teardown(async move { drop_schema(&base, &schema).await }),
    )
}
