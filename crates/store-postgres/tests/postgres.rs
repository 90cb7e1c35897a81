//! PostgreSQL-specific behaviour beyond the shared contract: failing fast, keeping the
//! password out of errors and Debug output, concurrent migrations, several instances.

mod support;

use std::time::{Duration, Instant};

use trunkline_core::ports::{CallStore, StoreError, StoreHealth};
use trunkline_store_contract::fixtures::{bare_call, room, ts, webhook_event};
use trunkline_store_postgres::PostgresStore;

const PASSWORD: &str = "pw-Zq8-never-shown";

#[tokio::test]
async fn connect_refused_is_unavailable_quickly_and_keeps_the_password_out() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let url = format!("postgres://trunkline:{PASSWORD}@127.0.0.1:1/trunkline");
    let started = Instant::now();
    let err = PostgresStore::connect(&url, 4).await.unwrap_err();
    eprintln!("refused: {err}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(!err.to_string().contains(PASSWORD), "{err}");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
}

#[tokio::test]
async fn connect_to_a_silent_server_times_out_as_unavailable() {
    // Accepts TCP connections and never says a word, like a hung server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://trunkline:{PASSWORD}@127.0.0.1:{port}/trunkline");
    let started = Instant::now();
    let err = PostgresStore::connect(&url, 4).await.unwrap_err();
    let elapsed = started.elapsed();
    hold.abort();
    eprintln!("silent after {elapsed:?}: {err}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(15),
        "gave up after {elapsed:?}"
    );
    assert!(!err.to_string().contains(PASSWORD), "{err}");
}

#[tokio::test]
async fn connect_to_a_missing_database_says_so_without_the_password() {
    let Some(base) = support::base_url() else {
        return;
    };
    let mut url = url::Url::parse(&base).expect("a URL");
    url.set_path("trunkline_no_such_database");
    if url.password().is_none() {
        url.set_password(Some(PASSWORD)).expect("settable");
    }
    let password = url.password().expect("set").to_owned();
    let err = PostgresStore::connect(url.as_str(), 2).await.unwrap_err();
    eprintln!("missing database: {err}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!err.to_string().contains(&password), "{err}");
}

#[tokio::test]
async fn connect_refuses_other_url_schemes() {
    for url in [
        "mysql://root@127.0.0.1/db",
        "sqlite://data/t.db",
        "127.0.0.1:5432",
    ] {
        let err = PostgresStore::connect(url, 4).await.unwrap_err();
        assert!(matches!(err, StoreError::Other(_)), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn debug_output_never_shows_the_url() {
    let Some(base) = support::base_url() else {
        return;
    };
    let mut url = url::Url::parse(&base).expect("a URL");
    if url.password().is_none() {
        // Trust authentication ignores it; it is only here to be looked for.
        url.set_password(Some(PASSWORD)).expect("settable");
    }
    let password = url.password().expect("set").to_owned();
    let store = PostgresStore::connect(url.as_str(), 2)
        .await
        .expect("connect");
    let debug = format!("{store:?}");
    assert!(debug.contains("PostgresStore"), "{debug}");
    assert!(!debug.contains(&password), "{debug}");
    assert!(
        !debug.contains(url.host_str().unwrap_or("127.0.0.1")),
        "{debug}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_once() {
    let Some(base) = support::base_url() else {
        return;
    };
    let (schema, url) = support::fresh_schema(&base).await;
    let a = PostgresStore::connect(&url, 2).await.expect("connect a");
    let b = PostgresStore::connect(&url, 2).await.expect("connect b");
    assert!(matches!(
        a.check_ready().await,
        Err(StoreError::NotMigrated(_))
    ));

    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.expect("a migrates"), rb.expect("b migrates"));
    assert!(
        ra.is_empty() != rb.is_empty(),
        "exactly one instance applies the migrations: {ra:?} / {rb:?}"
    );
    a.check_ready().await.expect("a ready");
    b.check_ready().await.expect("b ready");
    assert!(a.migrate().await.unwrap().is_empty());
    drop((a, b));
    support::drop_schema(&base, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_agree_on_dedupe_and_claims() {
    let Some(base) = support::base_url() else {
        return;
    };
    let (schema, url) = support::fresh_schema(&base).await;
    let a = PostgresStore::connect(&url, 4).await.expect("connect a");
    a.migrate().await.expect("migrate");
    let b = PostgresStore::connect(&url, 4).await.expect("connect b");

    let event = webhook_event(Some(&room("two")), ts(0));
    let call = bare_call(&room("two"), ts(0));
    a.upsert_call(&call).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (event, room) = (event.clone(), call.room_name.clone());
        tasks.push(tokio::spawn(async move {
            let first = store.record_webhook_event(&event).await.unwrap();
            let claim = store
                .claim_dispatch(
                    &room,
                    &format!("instance-{}-{i}", i % 2),
                    Duration::from_secs(60),
                )
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
        wins += usize::from(matches!(
            claim,
            trunkline_core::model::DispatchClaim::Won { .. }
        ));
    }
    assert_eq!(firsts, 1);
    assert_eq!(wins, 1);
    drop((a, b));
    support::drop_schema(&base, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_the_server_closed_are_replaced_not_used() {
    let Some(base) = support::base_url() else {
        return;
    };
    let (schema, url) = support::fresh_schema(&base).await;
    // Named, so that only this store's sessions are terminated (tests share the database).
    let url = format!("{url}&application_name={schema}");
    let store = PostgresStore::connect(&url, 2).await.expect("connect");
    store.migrate().await.expect("migrate");
    let (r1, r2) = tokio::join!(store.check_ready(), store.check_ready());
    r1.and(r2).expect("ready on two pooled sessions");

    support::admin(
        &base,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{schema}'"
        ),
    )
    .await;
    // The clients read the server's goodbye in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..4 {
        store
            .check_ready()
            .await
            .expect("a fresh session answers after the old ones were closed");
    }
    drop(store);
    support::drop_schema(&base, &schema).await;
}
