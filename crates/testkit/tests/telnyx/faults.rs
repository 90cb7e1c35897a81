//! Faults per route: latency, 429 with Telnyx's rate-limit headers, 5xx, requests that hang.

use std::time::{Duration, Instant};

use trunkline_testkit::telnyx::{EmulatorOptions, Fault, Route, RouteSelector, TelnyxEmulator};

use crate::http::{client, send, send_with};

#[tokio::test]
async fn a_rate_limit_answers_429_10011_with_the_headers_then_clears() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let numbers = format!("{}/phone_numbers", emu.api_base());
    emu.inject(
        Route::ListPhoneNumbers,
        Fault::RateLimit {
            count: 2,
            reset: Duration::from_millis(1500),
        },
    );
    // Another route is untouched.
    assert_eq!(
        send("GET", &format!("{}/balance", emu.api_base()), key, None)
            .await
            .status,
        200
    );
    for _ in 0..2 {
        let r = send("GET", &numbers, key, None).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.code(), Some("10011"));
        assert_eq!(r.body["errors"][0]["title"], "Too many requests");
        assert_eq!(
            r.header("x-ratelimit-reset"),
            Some("2"),
            "seconds, rounded up"
        );
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(r.header("x-ratelimit-limit"), Some("100"));
    }
    assert_eq!(send("GET", &numbers, key, None).await.status, 200);
    assert_eq!(emu.count(Route::ListPhoneNumbers), 3);
    assert_eq!(emu.count(RouteSelector::Any), 4);
}

#[tokio::test]
async fn server_errors_act_before_authentication() {
    let emu = TelnyxEmulator::start();
    let url = format!("{}/fqdns", emu.api_base());
    emu.inject(RouteSelector::Any, Fault::ServerError { count: 1 });
    emu.inject(RouteSelector::Any, Fault::Unavailable { count: 1 });
    let r = send("GET", &url, None, None).await;
    assert_eq!((r.status, r.code()), (500, Some("10007")));
    let r = send("GET", &url, None, None).await;
    assert_eq!(r.status, 503);
    assert_eq!(send("GET", &url, None, None).await.status, 401);
}

#[tokio::test]
async fn latency_delays_and_a_hang_outlasts_the_client() {
    let emu = TelnyxEmulator::start_with(EmulatorOptions {
        hang_for: Duration::from_secs(5),
        ..EmulatorOptions::default()
    })
    .unwrap();
    let a = emu.add_account("a");
    let url = format!("{}/balance", emu.api_base());
    emu.inject(
        Route::GetUserBalance,
        Fault::Latency(Duration::from_millis(300)),
    );
    let started = Instant::now();
    assert_eq!(send("GET", &url, Some(&a.api_key), None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    emu.clear_faults();

    emu.inject(Route::GetUserBalance, Fault::Hang { count: 1 });
    let quick = client(Duration::from_millis(300));
    let err = send_with(&quick, "GET", &url, Some(&a.api_key), None)
        .await
        .err()
        .expect("the request times out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(emu.requests()[1].status, None, "still hanging");
    assert_eq!(send("GET", &url, Some(&a.api_key), None).await.status, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_telnyx_errors() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let base = emu.api_base();
    let r = send("GET", &format!("{base}/nothing"), key, None).await;
    assert_eq!((r.status, r.code()), (404, Some("10005")));
    let r = send("PUT", &format!("{base}/balance"), key, None).await;
    assert_eq!(r.status, 405);
    assert!(emu.requests().iter().all(|r| r.route.is_none()));
}
