//! The shared store contract, against a fresh SQLite file per test.

use trunkline_store_contract::Harness;
use trunkline_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A directory that does not exist yet: `connect` creates it.
    let path = dir.path().join("nested").join("trunkline.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("open a fresh SQLite file");
    Some(
        Harness::new(store, |s: SqliteStore| async move { s.migrate().await })
            .on_teardown(async move { drop(dir) }),
    )
}

trunkline_store_contract::contract_tests!(fresh_store);
