//! Concurrent connects: of one number, and of two numbers racing to create their shared
//! trunk. On PostgreSQL across two instances sharing the database (and the vault and auth
//! keys); on SQLite within one instance.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use futures::future::join_all;
use serde_json::{Value, json};
use trunkline_testkit::twilio::Route;

use support::{
    Backend, Carrier, Client, Settings, Transcript, action, assert_no_secrets, emulator, token,
    trunk_of, trunkline_trunks,
};

on_both_backends!(concurrent_connects_do_the_work_once);

async fn concurrent_connects_do_the_work_once(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 3);
    let settings = Settings::new(&emu, &backend);
    let first = settings.start().await;
    // Two instances need one database: PostgreSQL. SQLite is one instance's embedded store.
    let second = match &backend {
        Backend::Postgres(_) => Some(settings.start().await),
        Backend::Sqlite => None,
    };
    let transcript = Transcript::default();
    let acme_token = token("acme", &["customer"]);
    let clients: Vec<Client<'_>> = [Some(&first), second.as_ref()]
        .into_iter()
        .flatten()
        .map(|s| Client::new(s, acme_token.clone(), &transcript))
        .collect();
    let client = |i: usize| &clients[i % clients.len()];
    client(0).save(&carrier.key_body()).await.ok();
    let n = &carrier.numbers;

    // Two numbers at once on a fresh account: both need the shared trunk; one is created.
    let pair = join_all([
        client(0).connect(&n[1], &Value::Null),
        client(1).connect(&n[2], &Value::Null),
    ])
    .await;
    let shared = trunk_of(pair[0].ok());
    assert_eq!(trunk_of(pair[1].ok()), shared);
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 1);
    assert_eq!(emu.count(Route::CreateTrunk), 1);
    let on_trunk: BTreeSet<_> = emu.trunk_numbers(&shared).into_iter().collect();
    assert_eq!(on_trunk, [n[1].clone(), n[2].clone()].into_iter().collect());
    assert_eq!(emu.origination_urls(&shared).len(), 1);

    // Ten connects of one number at once, spread over the instances.
    let before = emu.count(Route::CreatePhoneNumber);
    let body = json!({"routing": {"agentName": "a"}});
    let replies = join_all((0..10).map(|i| client(i).connect(&n[0], &body))).await;
    let answers: Vec<&Value> = replies.iter().map(support::Reply::ok).collect();
    for a in &answers {
        for field in ["connectionId", "routeId", "originationTargets", "status"] {
            assert_eq!(a[field], answers[0][field], "{field}: {a}");
        }
    }
    assert_eq!(answers[0]["status"], "connected");
    assert_eq!(trunk_of(answers[0]), shared);
    let attached = answers
        .iter()
        .filter(|a| action(a, "attachment") == "created")
        .count();
    assert_eq!(attached, 1, "exactly one connect attached the number");
    assert_eq!(emu.count(Route::CreatePhoneNumber) - before, 1);
    // The same single set of objects: one trunk, one origination URL, three numbers on it.
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 1);
    assert_eq!(emu.count(Route::CreateTrunk), 1);
    assert_eq!(emu.count(Route::CreateOriginationUrl), 1);
    assert_eq!(emu.origination_urls(&shared).len(), 1);
    assert_eq!(emu.trunk_numbers(&shared).len(), 3);
    assert_eq!(emu.number(&n[0]).unwrap().trunk_sid, Some(shared.clone()));
    // One connection row, seen alike from every instance.
    for c in &clients {
        let s = c.status(&n[0], "").await;
        assert_eq!(
            s.ok()["connection"]["connectionId"],
            answers[0]["connectionId"]
        );
        assert_eq!(s.body["drifts"], json!([]), "{}", s.body);
    }
    let audit = client(1).audit("limit=100").await;
    let connected = audit.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "number.connected" && e["details"]["numberId"] == n[0].as_str())
        .count();
    assert_eq!(connected, 10, "every connect is audited");

    assert_no_secrets(&first, &transcript, &carrier.secrets());
    if let Some(second) = &second {
        assert_no_secrets(second, &transcript, &carrier.secrets());
    }
    drop(second);
    drop(first);
}
