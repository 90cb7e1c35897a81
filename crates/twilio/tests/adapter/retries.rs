//! Bounded retries: what is retried, how often, and how long it waits.

use std::time::{Duration, Instant};

use trunkline_core::ErrorCode;
use trunkline_core::ports::{CarrierProvider, NumberQuery, RouteSpec};
use trunkline_testkit::twilio::{Fault, Route};

use crate::common::{World, number_id};

fn page() -> NumberQuery {
    NumberQuery {
        page_size: 10,
        cursor: None,
        e164: None,
    }
}

#[tokio::test]
async fn a_429_then_success_is_retried_transparently() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.sid, 3);
    w.emu.inject(
        Route::ListIncomingPhoneNumber,
        Fault::RateLimit {
            count: 1,
            retry_after: Duration::ZERO,
        },
    );
    let p = w.carrier.list_numbers(&w.creds(), &page()).await.unwrap();
    assert_eq!(p.items.len(), 3);
    let statuses: Vec<_> = w.emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
}

#[tokio::test]
async fn a_429_forever_ends_as_rate_limited_within_the_bound() {
    let w = World::with(|c| c.max_retries = 3);
    w.emu.inject(
        Route::ListIncomingPhoneNumber,
        Fault::RateLimit {
            count: u32::MAX,
            retry_after: Duration::ZERO,
        },
    );
    let started = Instant::now();
    let e = w
        .carrier
        .list_numbers(&w.creds(), &page())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(
        w.emu.count(Route::ListIncomingPhoneNumber),
        4,
        "1 + 3 retries"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let w = World::new();
    w.emu.inject(
        Route::ListTrunk,
        Fault::RateLimit {
            count: 1,
            retry_after: Duration::from_secs(1),
        },
    );
    let started = Instant::now();
    w.carrier.find_routes(&w.creds(), "t").await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1), "did not wait: {waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(w.emu.count(Route::ListTrunk), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_handed_back_at_once() {
    let w = World::with(|c| c.retry_budget = Duration::from_secs(2));
    w.emu.inject(
        Route::ListTrunk,
        Fault::RateLimit {
            count: 1,
            retry_after: Duration::from_secs(30),
        },
    );
    let started = Instant::now();
    let e = w.carrier.find_routes(&w.creds(), "t").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(w.emu.count(Route::ListTrunk), 1);
}

#[tokio::test]
async fn a_503_is_retried_for_reads_but_not_for_creates() {
    let w = World::new();
    w.emu.inject(
        Route::ListTrunk,
        Fault::Unavailable {
            count: 1,
            retry_after: None,
        },
    );
    w.carrier.find_routes(&w.creds(), "t").await.unwrap();
    assert_eq!(w.emu.count(Route::ListTrunk), 2);

    w.emu.inject(
        Route::CreateTrunk,
        Fault::Unavailable {
            count: 1,
            retry_after: None,
        },
    );
    let e = w
        .carrier
        .create_route(&w.creds(), &RouteSpec { name: "t".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(w.emu.count(Route::CreateTrunk), 1);
    assert!(w.emu.trunks(&w.account.sid).is_empty());
}

#[tokio::test]
async fn a_create_is_retried_after_a_429_because_twilio_did_nothing() {
    let w = World::new();
    w.emu.inject(
        Route::CreateTrunk,
        Fault::RateLimit {
            count: 1,
            retry_after: Duration::ZERO,
        },
    );
    w.carrier
        .create_route(&w.creds(), &RouteSpec { name: "t".into() })
        .await
        .unwrap();
    assert_eq!(w.emu.count(Route::CreateTrunk), 2);
    assert_eq!(w.emu.trunks(&w.account.sid).len(), 1, "exactly one trunk");
}

#[tokio::test]
async fn a_timed_out_read_is_retried_but_a_timed_out_create_is_not() {
    let w = World::with(|c| c.request_timeout = Duration::from_millis(300));
    let pn = number_id(&w.emu.seed_numbers(&w.account.sid, 1).remove(0).sid);
    w.emu
        .inject(Route::FetchIncomingPhoneNumber, Fault::Hang { count: 1 });
    let n = w.carrier.fetch_number(&w.creds(), &pn).await.unwrap();
    assert_eq!(n.id, pn);
    assert_eq!(w.emu.count(Route::FetchIncomingPhoneNumber), 2);

    w.emu.inject(Route::CreateTrunk, Fault::Hang { count: 1 });
    let e = w
        .carrier
        .create_route(&w.creds(), &RouteSpec { name: "t".into() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ProviderUnavailable);
    assert_eq!(w.emu.count(Route::CreateTrunk), 1);
}

#[tokio::test]
async fn latency_under_the_timeout_is_only_slower() {
    let w = World::with(|c| c.request_timeout = Duration::from_secs(2));
    w.emu
        .inject(Route::ListTrunk, Fault::Latency(Duration::from_millis(200)));
    let started = Instant::now();
    w.carrier.find_routes(&w.creds(), "t").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(w.emu.count(Route::ListTrunk), 1);
}
