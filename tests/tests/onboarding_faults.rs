//! Connect under Twilio faults: a 429 storm, 500s and timeouts injected at each step of
//! connect, then a retry. Every time: the failure is answered with its code, the retry
//! finishes, and the end state is consistent with nothing duplicated.

#[macro_use]
mod support;

use std::time::Duration;

use serde_json::{Value, json};
use trunkline_testkit::twilio::{Fault, Route, TwilioEmulator};
use trunkline_twilio::PhoneNumberSid;

use support::{
    Backend, Carrier, Client, Settings, Transcript, assert_no_secrets, emulator, token, trunk_of,
    trunkline_trunks,
};

on_both_backends!(rate_limit_storm, server_errors, timeouts);

/// The Twilio requests of a connect. The number and the trunk are read at once; a trunk
/// created just now has no origination URLs to list, so `FetchTrunk` and
/// `ListOriginationUrl` only happen once a trunk is stored: their scenarios first leave one
/// behind (see `prepare`).
const STEPS: [Route; 7] = [
    Route::FetchIncomingPhoneNumber,
    Route::ListTrunk,
    Route::CreateTrunk,
    Route::ListOriginationUrl,
    Route::CreateOriginationUrl,
    Route::CreatePhoneNumber,
    Route::FetchTrunk,
];

async fn rate_limit_storm(backend: Backend) {
    faults_at_every_step(
        backend,
        |i| Fault::RateLimit {
            count: 100,
            // Twilio's Retry-After, 0 or 1 s: the adapter honours it within its budget.
            retry_after: Duration::from_secs(u64::from(i % 2 == 1)),
        },
        429,
        "RATE_LIMITED",
        "2000",
    )
    .await;
}

async fn server_errors(backend: Backend) {
    faults_at_every_step(
        backend,
        |_| Fault::ServerError { count: 100 },
        503,
        "PROVIDER_UNAVAILABLE",
        "2000",
    )
    .await;
}

async fn timeouts(backend: Backend) {
    faults_at_every_step(
        backend,
        |_| Fault::Hang { count: 100 },
        503,
        "PROVIDER_UNAVAILABLE",
        // Long enough that a healthy answer on a busy machine is never taken for a hang.
        "1000",
    )
    .await;
}

/// Leave a trunk stored for `pn` by a connect that fails at the attachment, so the next
/// connect reads it back (`FetchTrunk` and `ListOriginationUrl` at once).
async fn prepare(emu: &TwilioEmulator, acme: &Client<'_>, pn: &PhoneNumberSid, body: &Value) {
    emu.inject(Route::CreatePhoneNumber, Fault::ServerError { count: 1 });
    acme.connect(pn, body)
        .await
        .expect(503, Some("PROVIDER_UNAVAILABLE"));
    emu.clear_faults();
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["connection"]["status"], "failed", "{}", s.body);
    assert!(s.body["connection"]["routeId"].is_string(), "{}", s.body);
}

async fn faults_at_every_step(
    backend: Backend,
    fault: impl Fn(u64) -> Fault,
    status: u16,
    code: &str,
    timeout_ms: &str,
) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", STEPS.len());
    let server = Settings::new(&emu, &backend)
        .with("TRUNKLINE_TWILIO_TIMEOUT_MS", timeout_ms)
        .with("TRUNKLINE_TWILIO_RETRY_BUDGET_MS", "1000")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    // Dedicated trunks, so every number's connect walks every step, trunk creation included.
    let body = json!({"trunkStrategy": "dedicated"});

    for (i, (route, pn)) in STEPS.iter().zip(&carrier.numbers).enumerate() {
        let what = format!("{code} at {route:?}");
        if matches!(*route, Route::FetchTrunk | Route::ListOriginationUrl) {
            prepare(&emu, &acme, pn, &body).await;
        }
        let hits = emu.count(*route);
        emu.inject(*route, fault(i as u64));
        let failed = acme.connect(pn, &body).await;
        failed.expect(status, Some(code));
        assert!(
            emu.count(*route) > hits,
            "{what}: the faulty step was never reached"
        );
        if code == "RATE_LIMITED" {
            assert!(failed.retry_after.is_some(), "{what}: no Retry-After");
        }
        emu.clear_faults();

        // The failure is visible, with what was done so far, until a retry finishes it.
        let s = acme.status(pn, "").await;
        let s = s.ok();
        if let Some(conn) = s["connection"].as_object() {
            assert_eq!(conn["status"], "failed", "{what}: {s}");
            assert!(
                conn["lastError"].as_str().is_some_and(|e| e.contains(code)),
                "{what}: {s}"
            );
            assert!(
                s["drifts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["kind"] == "connect_incomplete"),
                "{what}: {s}"
            );
        } else {
            // A first connect fails in its reads (the number and the trunk, at once) before
            // it writes anything, even its connection.
            assert!(
                matches!(*route, Route::FetchIncomingPhoneNumber | Route::ListTrunk),
                "{what}: {s}"
            );
        }

        let done = acme.connect(pn, &body).await;
        let done = done.ok().clone();
        assert_eq!(done["status"], "connected", "{what}: {done}");
        let trunk = trunk_of(&done);

        // Consistent, nothing duplicated: this number's one trunk, one origination URL,
        // one attachment; one trunk per number connected so far.
        let named = format!("trunkline-dedicated-{pn}");
        let mine: Vec<_> = trunkline_trunks(&emu, &carrier)
            .into_iter()
            .filter(|t| t.friendly_name.as_deref() == Some(named.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "{what}: {mine:?}");
        assert_eq!(mine[0].sid, trunk, "{what}");
        assert_eq!(
            emu.trunk_numbers(&trunk),
            std::slice::from_ref(pn),
            "{what}"
        );
        assert_eq!(emu.origination_urls(&trunk).len(), 1, "{what}");
        assert_eq!(emu.number(pn).unwrap().trunk_sid, Some(trunk.clone()));
        assert_eq!(trunkline_trunks(&emu, &carrier).len(), i + 1, "{what}");
        let s = acme.status(pn, "").await;
        assert_eq!(s.ok()["drifts"], json!([]), "{what}: {}", s.body);
        assert_eq!(s.body["connection"]["lastError"], Value::Null, "{what}");
    }

    // Every trunk trunkline created carries exactly its number.
    for t in trunkline_trunks(&emu, &carrier) {
        assert_eq!(emu.trunk_numbers(&t.sid).len(), 1, "{t:?}");
        assert_eq!(emu.origination_urls(&t.sid).len(), 1, "{t:?}");
    }
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}
