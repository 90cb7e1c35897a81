//! SQLite-specific behaviour beyond the shared contract: the file and its directory, the
//! pragmas, writers waiting for each other, several stores (processes) on one file.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;
use trunkline_core::model::DispatchClaim;
use trunkline_core::ports::{CallStore, StoreError, StoreHealth};
use trunkline_store_contract::fixtures::{bare_call, room, ts, webhook_event};
use trunkline_store_sqlite::SqliteStore;

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

#[tokio::test]
async fn connect_creates_the_directory_and_the_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("trunkline.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.path(), path.as_path());
    assert!(path.is_file(), "the file exists before any migration");
    assert!(matches!(
        store.check_ready().await,
        Err(StoreError::NotMigrated(_))
    ));

    // WAL is a property of the file: a separate connection sees it.
    let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let mode: JournalMode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(&mut raw)
        .unwrap();
    assert_eq!(mode.journal_mode, "wal");
    assert!(format!("{store:?}").contains("trunkline.db"));
}

#[tokio::test]
async fn in_memory_and_foreign_urls_are_refused() {
    for url in [
        "sqlite://:memory:",
        "sqlite::memory:",
        "postgres://localhost/db",
    ] {
        let err = SqliteStore::connect(url).await.unwrap_err();
        assert!(matches!(err, StoreError::Other(_)), "{url}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_for_the_lock_instead_of_failing_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    // Another process holds the write lock for a while.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        raw.batch_execute("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        raw.batch_execute("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();

    let started = Instant::now();
    let first = store
        .record_webhook_event(&webhook_event(Some(&room("busy")), ts(0)))
        .await
        .expect("the write waits for the lock rather than failing with SQLITE_BUSY");
    assert!(first);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the write really had to wait ({:?})",
        started.elapsed()
    );
    holder.join().unwrap();
}

/// A store call dropped while its statement runs (a client gone, a timeout around it) on a
/// current-thread runtime, which is what every actix worker runs: the store must neither panic
/// (diesel-async's own cancel guard calls `block_in_place`, which panics there) nor lose the
/// connection; the statement finishes, and the next call works.
#[tokio::test(flavor = "current_thread")]
async fn a_call_dropped_mid_statement_on_a_current_thread_runtime_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut raw = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        raw.batch_execute("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        raw.batch_execute("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();

    // The write waits for the lock (busy_timeout); the caller gives up first.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        store.record_webhook_event(&webhook_event(Some(&room("dropped")), ts(0))),
    )
    .await;
    assert!(gave_up.is_err(), "the write was still waiting for the lock");
    holder.join().unwrap();

    // The store goes on: every connection of the pool works.
    for i in 0..6 {
        let recorded = store
            .record_webhook_event(&webhook_event(Some(&room(&format!("after-{i}"))), ts(i)))
            .await
            .expect("the store works after a dropped call");
        assert!(recorded);
    }
    store.check_ready().await.expect("ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_stores_on_one_file_migrate_once_and_agree_on_dedupe_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let a = SqliteStore::connect(&url).await.unwrap();
    let b = SqliteStore::connect(&url).await.unwrap();

    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.is_empty() != rb.is_empty(),
        "exactly one store applies the migrations: {ra:?} / {rb:?}"
    );
    a.check_ready().await.unwrap();
    b.check_ready().await.unwrap();

    let event = webhook_event(Some(&room("shared")), ts(0));
    let call = bare_call(&room("shared"), ts(0));
    a.upsert_call(&call).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (event, room) = (event.clone(), call.room_name.clone());
        tasks.push(tokio::spawn(async move {
            let first = store.record_webhook_event(&event).await.unwrap();
            let claim = store
                .claim_dispatch(&room, &format!("p{}-{i}", i % 2), Duration::from_secs(60))
                .await
                .unwrap();
            (first, claim)
        }));
    }
    let mut firsts = 0;
    let mut wins = 0;
    for t in tasks {
        let (first, claim) = t.await.unwrap();
        firsts += usize::from(first);
        wins += usize::from(matches!(claim, DispatchClaim::Won { .. }));
    }
    assert_eq!(firsts, 1);
    assert_eq!(wins, 1);
}
