//! Bounded retries: reads and idempotent writes ride out rate limits (honouring
//! `x-ratelimit-reset`), 5xx and timeouts; creates are never repeated.

use std::time::{Duration, Instant};

use trunkline_core::ErrorCode;
use trunkline_telnyx::{
    ConnectionId, DnsRecordType, FqdnSpec, NewConnection, NumberId, NumberQuery, Transport,
};
use trunkline_testkit::telnyx::{Fault, Route, RouteSelector};

use crate::common::{World, config};

fn q() -> NumberQuery {
    NumberQuery {
        page_size: 10,
        ..NumberQuery::default()
    }
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_for_the_reset_it_announces() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.id, 2);
    w.emu.inject(
        Route::ListPhoneNumbers,
        Fault::RateLimit {
            count: 1,
            reset: Duration::from_secs(1),
        },
    );
    let started = Instant::now();
    let page = w.client.list_numbers(&w.key, &q()).await.unwrap();
    assert_eq!(page.numbers.len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(w.emu.count(Route::ListPhoneNumbers), 2);
}

#[tokio::test]
async fn a_rate_limit_outlasting_the_budget_is_rate_limited_with_the_reset() {
    let w = World::new();
    // Reset 0: retried at once, until the retries run out.
    w.emu.inject(
        RouteSelector::Any,
        Fault::RateLimit {
            count: 10,
            reset: Duration::ZERO,
        },
    );
    let e = w.client.list_numbers(&w.key, &q()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.provider_code.as_deref(), Some("10011"));
    assert_eq!(
        w.emu.count(RouteSelector::Any),
        4,
        "one attempt and three retries"
    );
    w.emu.clear_faults();
    w.emu.reset_requests();

    // A reset beyond the 3 s budget is not waited for: one attempt, and the wait is passed on.
    w.emu.inject(
        RouteSelector::Any,
        Fault::RateLimit {
            count: 1,
            reset: Duration::from_secs(60),
        },
    );
    let started = Instant::now();
    let e = w.client.list_numbers(&w.key, &q()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(60)));
    assert_eq!(w.emu.count(RouteSelector::Any), 1);
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_and_idempotent_writes() {
    let w = World::new();
    let n = w.emu.seed_numbers(&w.account.id, 1);
    let id = NumberId::parse(&n[0].id).unwrap();
    w.emu
        .inject(Route::RetrievePhoneNumber, Fault::ServerError { count: 2 });
    assert!(w.client.get_number(&w.key, &id).await.is_ok());
    assert_eq!(w.emu.count(Route::RetrievePhoneNumber), 3);

    let conn = ConnectionId::parse(&w.emu.add_connection(&w.account.id, "c")).unwrap();
    w.emu
        .inject(Route::UpdatePhoneNumber, Fault::Unavailable { count: 1 });
    let moved = w
        .client
        .set_number_connection(&w.key, &id, Some(&conn))
        .await
        .unwrap();
    assert_eq!(moved.connection_id, Some(conn.clone()));
    assert_eq!(w.emu.count(Route::UpdatePhoneNumber), 2);

    w.emu
        .inject(Route::DeleteFqdnConnection, Fault::ServerError { count: 1 });
    w.emu.set_number_connection(&n[0].id, None);
    w.client.delete_connection(&w.key, &conn).await.unwrap();
    assert_eq!(w.emu.count(Route::DeleteFqdnConnection), 2);

    w.emu
        .inject(Route::GetUserBalance, Fault::ServerError { count: 10 });
    let e = w.client.verify(&w.key).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(w.emu.count(Route::GetUserBalance), 4);
}

#[tokio::test]
async fn creates_are_never_retried() {
    let w = World::new();
    let spec = NewConnection {
        name: "trunkline-once".into(),
        transport: Transport::Tcp,
    };
    for fault in [
        Fault::ServerError { count: 1 },
        Fault::Unavailable { count: 1 },
        Fault::RateLimit {
            count: 1,
            reset: Duration::ZERO,
        },
    ] {
        w.emu.inject(Route::CreateFqdnConnection, fault.clone());
        let e = w.client.create_connection(&w.key, &spec).await.unwrap_err();
        assert!(e.is_transient(), "{fault:?}: {e:?}");
    }
    assert_eq!(
        w.emu.count(Route::CreateFqdnConnection),
        3,
        "one attempt per call"
    );
    assert!(w.emu.connections(&w.account.id).is_empty());

    let conn = w.client.create_connection(&w.key, &spec).await.unwrap();
    w.emu.inject(Route::CreateFqdn, Fault::Hang { count: 1 });
    let e = w
        .client
        .create_fqdn(
            &w.key,
            &conn.id,
            &FqdnSpec {
                host: "sip.example.com".into(),
                port: 5060,
                record_type: DnsRecordType::A,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(w.emu.count(Route::CreateFqdn), 1);
}

#[tokio::test]
async fn timeouts_are_retried_then_unavailable() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.id, 1);
    w.emu
        .inject(Route::ListPhoneNumbers, Fault::Hang { count: 1 });
    let page = w.client.list_numbers(&w.key, &q()).await.unwrap();
    assert_eq!(
        page.numbers.len(),
        1,
        "the retry after the timeout answered"
    );
    assert_eq!(w.emu.count(Route::ListPhoneNumbers), 2);

    w.emu
        .inject(Route::ListPhoneNumbers, Fault::Hang { count: 10 });
    let started = Instant::now();
    let e = w.client.list_numbers(&w.key, &q()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    // Budget 3 s + one 500 ms request, give or take the backoff.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_zero_budget_means_one_attempt() {
    let w = World::with_config(|base| trunkline_telnyx::TelnyxConfig {
        retry_budget: Duration::ZERO,
        ..config(base)
    });
    w.emu
        .inject(RouteSelector::Any, Fault::ServerError { count: 1 });
    let e = w.client.list_numbers(&w.key, &q()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(w.emu.count(RouteSelector::Any), 1);
}

#[tokio::test]
async fn a_dead_telnyx_is_unavailable() {
    let w = World::new();
    let addr = w.emu.addr();
    drop(w.emu);
    let client = trunkline_telnyx::TelnyxClient::new(config(&format!("http://{addr}/v2"))).unwrap();
    let e = client.verify(&w.key).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
}
