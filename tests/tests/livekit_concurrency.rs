//! Exactly-once agent dispatch under LiveKit's at-least-once webhook delivery: every webhook
//! of a call delivered three times, shuffled, all at once, to three `trunkline` instances
//! sharing one PostgreSQL database (each delivery of an event to another instance). One
//! call (its start, then its end), then a hundred at once, start and end together: a call
//! whose end is acted on before its join is never dispatched, any other exactly once. On
//! SQLite (one instance's embedded store) the same deliveries all go to the one instance.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Value, json};
use trunkline_e2e::TestServer;
use trunkline_testkit::livekit::{CallScript, Method as LkMethod};

use support::livekit::{
    AGENT, all_accepted, call_by_id, call_by_room, deliver, livekit_emulator, pg_count,
    wait_for_call, webhook_url, with_talk_time,
};
use support::{Backend, Carrier, Client, Settings, Transcript, assert_no_secrets, emulator, token};

on_both_backends!(
    one_call_delivered_everywhere_dispatches_once,
    a_hundred_calls_at_once
);

/// Three instances on PostgreSQL; one on SQLite. Started together: their migrations run
/// under PostgreSQL's advisory lock, so concurrent starts are safe (and exercised here).
async fn instances(settings: &Settings, backend: &Backend) -> Vec<TestServer> {
    let n = match backend {
        Backend::Postgres(_) => 3,
        Backend::Sqlite => 1,
    };
    join_all((0..n).map(|_| settings.start())).await
}

fn routing() -> Value {
    json!({"agentName": AGENT, "metadata": "{\"tier\":\"gold\"}", "dispatchMode": "webhook"})
}

async fn one_call_delivered_everywhere_dispatches_once(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 1);
    let settings = Settings::new(&twilio, &backend).with_livekit(&lk);
    let servers = instances(&settings, &backend).await;
    let transcript = Transcript::default();
    let acme_token = token("acme", &["customer"]);
    let clients: Vec<Client<'_>> = servers
        .iter()
        .map(|s| Client::new(s, acme_token.clone(), &transcript))
        .collect();
    clients[0].save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    let connected = clients[0].connect(pn, &json!({"routing": routing()})).await;
    let connection = connected.ok()["connectionId"].clone();
    let number = twilio.number(pn).unwrap().phone_number;
    let targets: Vec<String> = servers.iter().map(webhook_url).collect();

    let caller = "+14155550199";
    let played = lk.inbound_call(&CallScript::new(&number, caller));
    // The caller stays on the line for 42 seconds (by the events' timestamps).
    let events = with_talk_time(&played.events, 42);
    // The start of the call, then its end (an end acted on before the join cancels the
    // dispatch: `a_hundred_calls_at_once` mixes them).
    let (start, end) = events.split_at(2);
    assert_eq!(start[1]["event"], "participant_joined");
    let mut deliveries = deliver(&lk, &targets, start, 3, true).await;
    deliveries.extend(deliver(&lk, &targets, end, 3, true).await);
    assert_eq!(deliveries.len(), 12);
    all_accepted(&deliveries);
    for target in &targets {
        let n = deliveries.iter().filter(|d| &d.target == target).count();
        assert_eq!(n, 12 / targets.len(), "{target}");
    }

    let call = wait_for_call(&clients[0], &played.room, "a dispatched, ended call", |c| {
        c["dispatchStatus"] == "dispatched" && c["status"] == "ended"
    })
    .await;
    // Exactly one agent dispatch for the room, made with one request.
    let history = lk.dispatch_history(&played.room);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].agent_name, AGENT);
    assert_eq!(history[0].metadata, "{\"tier\":\"gold\"}");
    assert_eq!(lk.count(LkMethod::CreateDispatch), 1);
    // A complete call record.
    assert_eq!(call["roomName"], played.room.as_str());
    assert_eq!(call["customerId"], "acme");
    assert_eq!(call["connectionId"], connection);
    assert_eq!(call["sipCallId"], played.sip_call_id.as_str());
    assert_eq!(call["called"], number);
    assert_eq!(call["caller"], caller);
    assert_eq!(call["agentName"], AGENT);
    assert_eq!(call["dispatchId"], history[0].id.as_str());
    assert_eq!(call["dispatchAttempts"], 1, "{call}");
    assert!(
        call["answeredAt"].is_string() && call["endedAt"].is_string(),
        "{call}"
    );
    assert_eq!(call["durationSeconds"], 42, "{call}");
    // Every instance reads the same record.
    let id = call["callId"].as_str().unwrap();
    for c in &clients {
        let again = call_by_id(c, id).await;
        assert_eq!(again.ok()["dispatchId"], call["dispatchId"]);
    }
    // The number's status shows the call and the last webhook.
    let s = clients[clients.len() - 1].status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["recentCalls"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["recentCalls"][0]["callId"], id);
    assert_eq!(s["lastWebhook"]["roomName"], played.room.as_str());
    assert!(
        ["participant_joined", "participant_left", "room_finished"]
            .contains(&s["lastWebhook"]["event"].as_str().unwrap_or_default()),
        "{s}"
    );
    // Each event id stored once; `room_started` needed no action and is not stored.
    if let Some(n) = pg_count(&backend, "webhook_events").await {
        assert_eq!(n, 3);
    }
    if let Some(n) = pg_count(&backend, "calls").await {
        assert_eq!(n, 1);
    }
    // The background retriers of all instances leave it alone afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lk.dispatch_history(&played.room).len(), 1);
    assert_eq!(lk.count(LkMethod::CreateDispatch), 1);

    for server in &servers {
        assert_no_secrets(server, &transcript, &[lk.api_secret().to_owned()]);
    }
    drop(servers);
    drop(backend);
}

async fn a_hundred_calls_at_once(backend: Backend) {
    const CALLS: usize = 100;
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 2);
    let settings = Settings::new(&twilio, &backend).with_livekit(&lk);
    let servers = instances(&settings, &backend).await;
    let transcript = Transcript::default();
    let acme = Client::new(&servers[0], token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let numbers: Vec<String> = carrier
        .numbers
        .iter()
        .map(|pn| twilio.number(pn).unwrap().phone_number)
        .collect();
    for pn in &carrier.numbers {
        acme.connect(pn, &json!({"routing": routing()})).await.ok();
    }
    let targets: Vec<String> = servers.iter().map(webhook_url).collect();

    // A hundred callers, across both numbers; every webhook of every call three times,
    // shuffled per call, all 1200 deliveries at once.
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let caller = format!("+1415555{:04}", 1000 + i);
            lk.inbound_call(&CallScript::new(&numbers[i % numbers.len()], caller))
        })
        .collect();
    let started = Instant::now();
    let deliveries: Vec<_> = join_all(
        calls
            .iter()
            .map(|c| deliver(&lk, &targets, &c.events, 3, true)),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(deliveries.len(), CALLS * 12);
    all_accepted(&deliveries);

    // Each call record complete and settled, read through any instance: dispatched once,
    // or cancelled (its end was acted on before its join) and never dispatched.
    let reads = join_all(calls.iter().enumerate().map(|(i, c)| {
        let client = Client::new(&servers[i % servers.len()], acme.token.clone(), &transcript);
        async move {
            let room = c.room.clone();
            wait_for_call(&client, &room, "an ended, settled call", |v| {
                v["status"] == "ended"
                    && (v["dispatchStatus"] == "dispatched" || v["dispatchStatus"] == "cancelled")
            })
            .await
        }
    }))
    .await;
    let elapsed = started.elapsed();
    let rooms: BTreeSet<&str> = calls.iter().map(|c| c.room.as_str()).collect();
    assert_eq!(rooms.len(), CALLS);
    let mut dispatched = 0;
    for (call, played) in reads.iter().zip(&calls) {
        let history = lk.dispatch_history(&played.room);
        if call["dispatchStatus"] == "dispatched" {
            assert_eq!(history.len(), 1, "{call}");
            assert_eq!(call["dispatchId"], history[0].id.as_str());
            assert_eq!(call["dispatchAttempts"], 1, "{call}");
            dispatched += 1;
        } else {
            assert!(history.is_empty(), "{call}: {history:?}");
            assert_eq!(call["dispatchId"], Value::Null, "{call}");
        }
        assert_eq!(call["sipCallId"], played.sip_call_id.as_str());
    }
    // The retriers of every instance leave the cancelled ones alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lk.total_dispatches(), dispatched);
    assert_eq!(lk.count(LkMethod::CreateDispatch), dispatched);
    if let Some(n) = pg_count(&backend, "calls").await {
        assert_eq!(n, i64::try_from(CALLS).unwrap());
    }
    if let Some(n) = pg_count(&backend, "webhook_events").await {
        assert_eq!(n, i64::try_from(CALLS * 3).unwrap());
    }
    // Straight to the stream: how long the whole burst took, for whoever tunes this.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "{} calls ({dispatched} dispatched), {} deliveries to {} instance(s) ({}): all \
             settled in {elapsed:?}\n",
            CALLS,
            deliveries.len(),
            servers.len(),
            backend.name()
        )
        .as_bytes(),
    );
    let unrelated = call_by_room(&acme, "call-_nobody_x").await;
    unrelated.expect(404, Some("NOT_FOUND"));
    drop(servers);
    drop(backend);
}
