use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::ids::CallId;
use crate::model::{CallStatus, DispatchClaim, DispatchMode, DispatchStatus, NumberConnection};
use crate::model::{RoutingPolicy, RoutingPolicyParts};
use crate::phone::E164;
use crate::usecases::fakes::MemoryStore;
use crate::usecases::fakes::calls::{FakeSip, sample_connection};

const CALLED: &str = "+14155550100";
const CALLER: &str = "+14155550199";

struct World {
    calls: Calls,
    store: MemoryStore,
    /// The same store, as the connections port.
    connections: MemoryStore,
    sip: FakeSip,
}

fn settings() -> CallSettings {
    CallSettings {
        instance_id: "test-instance".to_owned(),
        max_attempts: 3,
        backoff_base: Duration::from_secs(2),
        backoff_max: Duration::from_secs(30),
        ..CallSettings::default()
    }
}

fn world_with(routing: Option<RoutingPolicy>) -> World {
    let store = MemoryStore::default();
    let connections = store.clone();
    let sip = FakeSip::default();
    if let Some(routing) = routing {
        connections.tables().connections.push(NumberConnection {
            routing,
            ..sample_connection(CALLED)
        });
    }
    let ports = CallsPorts {
        calls: Arc::new(store.clone()),
        connections: Arc::new(connections.clone()),
        sip: Some(Arc::new(sip.clone())),
    };
    World {
        calls: Calls::new(ports, settings()),
        store,
        connections,
        sip,
    }
}

fn webhook_mode() -> RoutingPolicy {
    RoutingPolicy::new(RoutingPolicyParts {
        agent_name: Some("support-agent".to_owned()),
        metadata: Some(r#"{"tier":"gold"}"#.to_owned()),
        attributes: BTreeMap::new(),
        dispatch_mode: DispatchMode::Webhook,
    })
    .unwrap()
}

fn world() -> World {
    world_with(Some(webhook_mode()))
}

fn body(id: &str, event: &str, room: &str, sip: bool, at: i64) -> Vec<u8> {
    let mut v = json!({ "id": id, "event": event, "room": room, "createdAt": at });
    if sip {
        v["kind"] = json!("SIP");
        v["called"] = json!(CALLED);
        v["caller"] = json!(CALLER);
        v["callId"] = json!("SCL_1");
    }
    v.to_string().into_bytes()
}

/// The four webhooks of one call, as (body, authorization).
fn call_events(room: &str) -> Vec<(Vec<u8>, String)> {
    let t0 = 1_767_225_600;
    [
        body(&format!("EV_{room}_1"), "room_started", room, false, t0),
        body(
            &format!("EV_{room}_2"),
            "participant_joined",
            room,
            true,
            t0 + 1,
        ),
        body(
            &format!("EV_{room}_3"),
            "participant_left",
            room,
            true,
            t0 + 61,
        ),
        body(
            &format!("EV_{room}_4"),
            "room_finished",
            room,
            false,
            t0 + 62,
        ),
    ]
    .into_iter()
    .map(|b| {
        let auth = FakeSip::sign(&b);
        (b, auth)
    })
    .collect()
}

impl World {
    async fn deliver(&self, (body, auth): &(Vec<u8>, String)) -> WebhookOutcome {
        self.calls.handle_webhook(body, auth).await.unwrap()
    }

    fn call(&self, room: &str) -> CallRecord {
        self.store.tables().calls.get(room).unwrap().call.clone()
    }
}

#[tokio::test]
async fn the_called_numbers_connection_is_looked_up_once_per_instance() {
    let w = world();
    let first = call_events("call-cache");
    let second = call_events("call-cache-2");
    assert!(matches!(
        w.deliver(&first[1]).await,
        WebhookOutcome::CallRecorded { .. }
    ));
    assert!(matches!(
        w.deliver(&first[1]).await,
        WebhookOutcome::Duplicate { .. }
    ));
    assert!(matches!(
        w.deliver(&second[1]).await,
        WebhookOutcome::CallRecorded { .. }
    ));
    assert_eq!(
        w.connections.calls_to("find_live_connection_by_e164"),
        1,
        "the duplicate and the next call are routed from memory"
    );
}

#[tokio::test]
async fn a_call_is_recorded_and_its_agent_dispatched_once() {
    let w = world();
    let events = call_events("call-a");
    assert!(matches!(
        w.deliver(&events[0]).await,
        WebhookOutcome::Ignored { .. }
    ));
    assert_eq!(w.store.total_calls(), 0, "room_started needs no database");

    let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
        panic!("not recorded");
    };
    let DispatchOutcome::Dispatched {
        dispatch_id,
        recovered: false,
    } = dispatch
    else {
        panic!("{dispatch:?}");
    };
    assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
    assert_eq!(call.dispatch_id.as_ref(), Some(&dispatch_id));
    assert_eq!(call.dispatch_attempts, 1);
    assert_eq!(call.status, CallStatus::Active);
    assert_eq!(
        call.customer_id.as_ref().map(CustomerId::as_str),
        Some("acme")
    );
    assert_eq!(call.called.as_ref().map(E164::as_str), Some(CALLED));
    assert_eq!(call.caller.as_ref().map(E164::as_str), Some(CALLER));
    assert_eq!(call.sip_call_id.as_deref(), Some("SCL_1"));
    // The answer is the stored call, known without reading it back.
    let stored = w.call("call-a");
    assert_eq!(
        CallRecord {
            updated_at: stored.updated_at,
            ..call.clone()
        },
        stored
    );
    assert_eq!(w.store.calls_to("get_call_by_room"), 0);
    {
        let sip = w.sip.state();
        assert_eq!(sip.dispatches.len(), 1);
        let (room, _, agent, metadata) = &sip.dispatches[0];
        assert_eq!((room.as_str(), agent.as_str()), ("call-a", "support-agent"));
        assert_eq!(metadata.as_deref(), Some(r#"{"tier":"gold"}"#));
        // A first claim: nobody can have dispatched before, so LiveKit is not asked first.
        assert_eq!(
            sip.list_calls, 0,
            "the first attempt dispatched without a list"
        );
    }

    w.deliver(&events[2]).await;
    w.deliver(&events[3]).await;
    let call = w.call("call-a");
    assert_eq!(call.status, CallStatus::Ended);
    assert_eq!(call.duration(), Some(Duration::from_secs(60)));
    assert_eq!(w.sip.dispatches_in("call-a"), 1);
}

#[tokio::test]
async fn every_duplicate_in_any_order_still_dispatches_once() {
    let w = world();
    let events = call_events("call-b");
    // Each event three times, the join before the call's end.
    for i in [1, 2, 1, 3, 2, 0, 3, 1, 0, 2, 3, 0] {
        w.deliver(&events[i]).await;
    }
    assert_eq!(w.sip.dispatches_in("call-b"), 1);
    let call = w.call("call-b");
    assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
    assert_eq!(call.status, CallStatus::Ended);
    assert!(call.ended_at.is_some() && call.customer_id.is_some() && call.called.is_some());
    assert_eq!(call.duration(), Some(Duration::from_secs(60)));
    assert_eq!(
        w.store.tables().webhook_events.len(),
        3,
        "room_started is not stored"
    );
}

/// LiveKit does not keep its webhooks in order: the end of a call can come before its
/// join. Whatever the order, a join acted on after the end dispatches nothing, and the
/// background retrier finds nothing due.
#[tokio::test]
async fn a_call_that_ended_before_its_join_is_acted_on_is_never_dispatched() {
    // (left, finished, join), (finished, join, left), (finished, left, join), each
    // event of the end delivered twice.
    for (n, order) in [[2, 3, 1, 2, 3], [3, 1, 2, 3, 2], [3, 2, 1, 3, 2]]
        .into_iter()
        .enumerate()
    {
        let w = world();
        let name = format!("call-ended-first-{n}");
        let room = RoomName::parse(&name).unwrap();
        let events = call_events(&name);
        for i in order {
            let out = w.deliver(&events[i]).await;
            if i == 1 {
                let WebhookOutcome::CallRecorded { call, dispatch } = out else {
                    panic!("{order:?}: {out:?}");
                };
                assert_eq!(dispatch, DispatchOutcome::Cancelled, "{order:?}");
                assert_eq!(
                    (call.status, call.dispatch_status, call.dispatch_attempts),
                    (CallStatus::Ended, DispatchStatus::Cancelled, 0),
                    "{order:?}: the answer"
                );
            }
            if let Some(stored) = w.store.tables().calls.get(name.as_str()) {
                assert_ne!(
                    (stored.call.dispatch_status, stored.call.dispatch_attempts),
                    (DispatchStatus::Failed, 0),
                    "{order:?}: never `failed` without an attempt"
                );
            }
            // The retrier runs between any two deliveries, long after any backoff.
            w.store.age(&room, chrono::Duration::minutes(5));
            let report = w.calls.retry_due_dispatches(10).await.unwrap();
            assert_eq!(report.attempted, 0, "{order:?}: {report:?}");
        }
        let call = w.call(&name);
        assert_eq!(
            (call.status, call.dispatch_status, call.dispatch_attempts),
            (CallStatus::Ended, DispatchStatus::Cancelled, 0),
            "{order:?}"
        );
        assert!(call.customer_id.is_some() && call.ended_at.is_some());
        assert_eq!(w.sip.state().dispatch_calls, 0, "{order:?}");
        assert_eq!(w.sip.dispatches_in(&name), 0, "{order:?}");
    }

    // The leave first, the join last: the answer time is still the join's.
    let w = world();
    let events = call_events("call-left-first");
    for i in [2, 1] {
        w.deliver(&events[i]).await;
    }
    assert_eq!(
        w.call("call-left-first").duration(),
        Some(Duration::from_secs(60))
    );
}

#[tokio::test]
async fn a_hang_up_after_a_failed_dispatch_cancels_its_retries() {
    let w = world();
    w.sip.state().fail_dispatches = 1;
    let events = call_events("call-hung-up");
    let room = RoomName::parse("call-hung-up").unwrap();
    let WebhookOutcome::CallRecorded { dispatch, .. } = w.deliver(&events[1]).await else {
        panic!()
    };
    assert!(
        matches!(dispatch, DispatchOutcome::Failed { attempt: 1, .. }),
        "{dispatch:?}"
    );
    for i in [2, 3] {
        w.deliver(&events[i]).await;
    }
    let call = w.call("call-hung-up");
    assert_eq!(
        (call.status, call.dispatch_status, call.dispatch_attempts),
        (CallStatus::Ended, DispatchStatus::Cancelled, 1)
    );
    w.store.age(&room, chrono::Duration::minutes(5));
    assert_eq!(
        w.calls.retry_due_dispatches(10).await.unwrap(),
        RetryReport::default()
    );
    assert_eq!(w.sip.state().dispatch_calls, 1, "only the join's attempt");
    assert_eq!(w.sip.dispatches_in("call-hung-up"), 0);
    assert_eq!(
        w.call("call-hung-up").dispatch_status,
        DispatchStatus::Cancelled
    );
}

#[tokio::test]
async fn duplicates_are_recognised_by_event_id() {
    let w = world();
    let events = call_events("call-c");
    w.deliver(&events[1]).await;
    let touches = w.store.total_calls();
    match w.deliver(&events[1]).await {
        WebhookOutcome::Duplicate { event_id } => assert_eq!(event_id.as_str(), "EV_call-c_2"),
        other => panic!("{other:?}"),
    }
    // One round trip: the join's record finds the event seen and its call there, and stops
    // (the store does that in one step, as SQLite does in one transaction).
    assert_eq!(w.store.total_calls(), touches + 1);
    assert_eq!(w.store.calls_to("record_join"), 2);
    assert_eq!(w.sip.state().dispatch_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_the_same_event_dispatch_once() {
    for round in 0..20 {
        let w = world();
        let room = format!("call-race-{round}");
        let joined = call_events(&room).swap_remove(1);
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let calls = w.calls.clone();
                let (body, auth) = joined.clone();
                tokio::spawn(async move { calls.handle_webhook(&body, &auth).await.unwrap() })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(w.sip.dispatches_in(&room), 1, "round {round}");
        assert_eq!(w.call(&room).dispatch_status, DispatchStatus::Dispatched);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_sharing_a_store_dispatch_once() {
    let w = world();
    // Three instances: the same store and LiveKit, their own names.
    let instances: Vec<Calls> = (0..3)
        .map(|i| {
            let mut s = settings();
            s.instance_id = format!("instance-{i}");
            Calls::new(w.calls.ports.clone(), s)
        })
        .collect();
    let mut tasks = Vec::new();
    for n in 0..30 {
        let room = format!("call-{n}");
        for (k, event) in call_events(&room).into_iter().enumerate() {
            for copy in 0..3 {
                let calls = instances[(k + copy) % 3].clone();
                let event = event.clone();
                tasks.push(tokio::spawn(async move {
                    calls.handle_webhook(&event.0, &event.1).await.unwrap()
                }));
            }
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A call whose end was acted on before its join is never dispatched; every other
    // one exactly once, and the record says which.
    let mut dispatched = 0;
    for n in 0..30 {
        let room = format!("call-{n}");
        let call = w.call(&room);
        assert_eq!(call.status, CallStatus::Ended, "{room}");
        let expected = match call.dispatch_status {
            DispatchStatus::Dispatched => 1,
            DispatchStatus::Cancelled => 0,
            other => panic!("{room}: {other:?}"),
        };
        assert_eq!(w.sip.dispatches_in(&room), expected, "{room}");
        dispatched += expected;
    }
    assert_eq!(w.sip.state().dispatches.len(), dispatched);
}

#[tokio::test]
async fn a_failed_dispatch_is_retried_with_backoff_and_succeeds_once() {
    let w = world();
    w.sip.state().fail_dispatches = 2;
    let events = call_events("call-d");
    let WebhookOutcome::CallRecorded { dispatch, call } = w.deliver(&events[1]).await else {
        panic!()
    };
    assert!(
        matches!(
            dispatch,
            DispatchOutcome::Failed {
                attempt: 1,
                gave_up: false,
                ..
            }
        ),
        "{dispatch:?}"
    );
    assert_eq!(call.dispatch_status, DispatchStatus::Failed);

    // Not due before its backoff.
    let report = w.calls.retry_due_dispatches(10).await.unwrap();
    assert_eq!((report.due, report.waiting, report.attempted), (1, 1, 0));

    let room = RoomName::parse("call-d").unwrap();
    w.store.age(&room, chrono::Duration::seconds(3));
    let report = w.calls.retry_due_dispatches(10).await.unwrap();
    assert_eq!((report.attempted, report.failed, report.gave_up), (1, 1, 0));
    // The second failure waits twice as long.
    w.store.age(&room, chrono::Duration::seconds(3));
    assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().waiting, 1);
    w.store.age(&room, chrono::Duration::seconds(2));
    let report = w.calls.retry_due_dispatches(10).await.unwrap();
    assert_eq!((report.attempted, report.dispatched), (1, 1));

    let call = w.call("call-d");
    assert_eq!(call.dispatch_status, DispatchStatus::Dispatched);
    assert_eq!(call.dispatch_attempts, 3);
    assert_eq!(w.sip.dispatches_in("call-d"), 1);
    assert_eq!(w.sip.state().dispatch_calls, 3);
    // Each failed `CreateDispatch` was followed by a list (its answer may have been lost),
    // and the two attempts after the first asked LiveKit first (an earlier holder may have
    // dispatched); the first attempt did not: 2 + 2, not 2 + 3.
    assert_eq!(w.sip.state().list_calls, 4);
    // Nothing is due any more, and a late duplicate changes nothing.
    assert_eq!(
        w.calls.retry_due_dispatches(10).await.unwrap(),
        RetryReport::default()
    );
    w.deliver(&events[1]).await;
    assert_eq!(w.sip.state().dispatch_calls, 3);
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_give_up() {
    let w = world();
    w.sip.state().fail_dispatches = 10;
    w.deliver(&call_events("call-e")[1]).await;
    let room = RoomName::parse("call-e").unwrap();
    for _ in 0..5 {
        w.store.age(&room, chrono::Duration::minutes(5));
        w.calls.retry_due_dispatches(10).await.unwrap();
    }
    let call = w.call("call-e");
    assert_eq!(call.dispatch_status, DispatchStatus::GaveUp);
    assert_eq!(call.dispatch_attempts, 3, "max_attempts");
    assert_eq!(w.sip.state().dispatch_calls, 3);
    assert!(w.sip.state().dispatches.is_empty());
}

#[tokio::test]
async fn a_dispatch_whose_answer_was_lost_is_not_repeated() {
    let w = world();
    w.sip.state().lose_dispatch_answers = 1;
    let WebhookOutcome::CallRecorded { dispatch, .. } = w.deliver(&call_events("call-f")[1]).await
    else {
        panic!()
    };
    assert!(
        matches!(
            dispatch,
            DispatchOutcome::Dispatched {
                recovered: true,
                ..
            }
        ),
        "{dispatch:?}"
    );
    assert_eq!(w.sip.dispatches_in("call-f"), 1);
    assert_eq!(w.call("call-f").dispatch_status, DispatchStatus::Dispatched);
}

#[tokio::test]
async fn a_worker_that_died_after_dispatching_is_not_followed_by_a_second_dispatch() {
    let w = world();
    let room = RoomName::parse("call-g").unwrap();
    // The worker dispatched, then died before recording it: its claim is still there.
    w.sip.state().fail_dispatches = 1;
    w.deliver(&call_events("call-g")[1]).await;
    assert_eq!(w.call("call-g").dispatch_status, DispatchStatus::Failed);
    w.sip
        .dispatch_agent(&room, "support-agent", None)
        .await
        .unwrap();
    w.store.age(&room, chrono::Duration::minutes(1));
    let report = w.calls.retry_due_dispatches(10).await.unwrap();
    assert_eq!(report.dispatched, 1);
    assert_eq!(
        w.sip.dispatches_in("call-g"),
        1,
        "found in the room, not dispatched again"
    );
    assert_eq!(w.call("call-g").dispatch_status, DispatchStatus::Dispatched);

    // An expired claim (its holder died) is taken over without waiting for backoff.
    let w = world();
    w.deliver(&call_events("call-h")[0]).await;
    w.sip.state().fail_dispatches = 1;
    w.deliver(&call_events("call-h")[1]).await;
    let room = RoomName::parse("call-h").unwrap();
    let won = w
        .store
        .claim_dispatch(&room, "dead-worker", Duration::from_millis(1))
        .await;
    assert!(matches!(won, Ok(DispatchClaim::Won { .. })), "{won:?}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = w.calls.retry_due_dispatches(10).await.unwrap();
    assert_eq!(report.dispatched, 1);
    assert_eq!(w.sip.dispatches_in("call-h"), 1);
}

#[tokio::test]
async fn rule_mode_records_the_call_and_never_dispatches() {
    let w = world_with(Some(
        RoutingPolicy::new(RoutingPolicyParts {
            dispatch_mode: DispatchMode::Rule,
            ..RoutingPolicyParts::from(webhook_mode())
        })
        .unwrap(),
    ));
    let events = call_events("call-i");
    let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
        panic!()
    };
    assert_eq!(dispatch, DispatchOutcome::ByRule);
    assert_eq!(call.dispatch_status, DispatchStatus::ByRule);
    assert_eq!(call.agent_name.as_deref(), Some("support-agent"));
    for e in &events {
        w.deliver(e).await;
    }
    assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);
    assert_eq!(w.sip.state().dispatch_calls, 0);
    assert_eq!(w.store.calls_to("claim_dispatch"), 0);
    // A claim made inside the join's `record_join` would have counted an attempt.
    assert_eq!(w.call("call-i").dispatch_attempts, 0);
}

#[tokio::test]
async fn a_number_without_an_agent_is_recorded_without_dispatch() {
    let w = world_with(Some(
        RoutingPolicy::new(RoutingPolicyParts {
            agent_name: None,
            ..RoutingPolicyParts::from(webhook_mode())
        })
        .unwrap(),
    ));
    let WebhookOutcome::CallRecorded { call, dispatch } =
        w.deliver(&call_events("call-j")[1]).await
    else {
        panic!()
    };
    assert_eq!(dispatch, DispatchOutcome::NoAgent);
    assert_eq!(call.dispatch_status, DispatchStatus::None);
    assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);
    assert_eq!(w.sip.state().dispatch_calls, 0);
}

#[tokio::test]
async fn a_call_to_a_number_nobody_connected_is_unrouted() {
    let w = world_with(None);
    let events = call_events("call-k");
    let WebhookOutcome::CallRecorded { call, dispatch } = w.deliver(&events[1]).await else {
        panic!()
    };
    assert_eq!(dispatch, DispatchOutcome::Unrouted);
    assert_eq!(
        (call.status, call.customer_id.clone()),
        (CallStatus::Unrouted, None)
    );
    assert_eq!(call.called.as_ref().map(E164::as_str), Some(CALLED));
    for e in &events {
        w.deliver(e).await;
    }
    let call = w.call("call-k");
    assert_eq!(
        call.status,
        CallStatus::Unrouted,
        "stays unrouted after the end"
    );
    assert!(call.ended_at.is_some());
    assert_eq!(w.sip.state().dispatch_calls, 0);
    assert_eq!(w.calls.retry_due_dispatches(10).await.unwrap().due, 0);

    // Left before joined: still unrouted.
    let w = world_with(None);
    let events = call_events("call-l");
    w.deliver(&events[2]).await;
    w.deliver(&events[1]).await;
    assert_eq!(w.call("call-l").status, CallStatus::Unrouted);
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_nothing_is_stored() {
    let w = world();
    let (body, auth) = call_events("call-m").swap_remove(1);
    let mut tampered = body.clone();
    tampered.push(b' ');
    for (b, a) in [
        (&body, ""),
        (&body, "signed:1"),
        (&body, &format!("Bearer {auth}")),
        (&tampered, auth.as_str()),
    ] {
        let err = w.calls.handle_webhook(b, a).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthenticated, "{a}");
        assert!(!err.message.contains(a) || a.is_empty());
    }
    let garbage = b"not json".to_vec();
    let err = w
        .calls
        .handle_webhook(&garbage, &FakeSip::sign(&garbage))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationFailed);
    assert_eq!(w.store.total_calls(), 0);
    assert_eq!(w.sip.state().dispatch_calls, 0);
}

#[tokio::test]
async fn events_that_need_no_action_touch_nothing() {
    let w = world();
    for (event, sip) in [
        ("room_started", false),
        ("participant_joined", false),
        ("participant_left", false),
        ("track_published", false),
        ("egress_ended", false),
    ] {
        let b = body("EV_x", event, "call-n", sip, 1);
        let out = w
            .calls
            .handle_webhook(&b, &FakeSip::sign(&b))
            .await
            .unwrap();
        assert!(
            matches!(out, WebhookOutcome::Ignored { .. }),
            "{event}: {out:?}"
        );
    }
    assert_eq!(w.store.total_calls(), 0);
    // A finished room trunkline never recorded: looked up, nothing created.
    let b = body("EV_y", "room_finished", "not-a-call", false, 1);
    let out = w
        .calls
        .handle_webhook(&b, &FakeSip::sign(&b))
        .await
        .unwrap();
    assert_eq!(out, WebhookOutcome::CallEnded { call: None });
    assert!(w.store.tables().calls.is_empty());
}

#[tokio::test]
async fn without_livekit_webhooks_are_not_configured() {
    let w = world();
    let ports = CallsPorts {
        sip: None,
        ..w.calls.ports.clone()
    };
    let calls = Calls::new(ports, settings());
    let (b, a) = call_events("call-o").swap_remove(1);
    assert_eq!(
        calls.handle_webhook(&b, &a).await.unwrap_err().code,
        ErrorCode::NotConfigured
    );
}

#[tokio::test]
async fn reads_are_scoped_to_the_customer() {
    let w = world();
    w.deliver(&call_events("call-p")[1]).await;
    let unrouted = world_with(None);
    unrouted.deliver(&call_events("call-q")[1]).await;
    let call = w.call("call-p");
    let acme = CallViewer::Customer(CustomerId::parse("acme").unwrap());
    let other = CallViewer::Customer(CustomerId::parse("globex").unwrap());
    let room = RoomName::parse("call-p").unwrap();

    assert_eq!(w.calls.get_call(&acme, call.id).await.unwrap(), call);
    assert_eq!(w.calls.get_call_by_room(&acme, &room).await.unwrap(), call);
    assert_eq!(
        w.calls
            .get_call(&CallViewer::Support, call.id)
            .await
            .unwrap(),
        call
    );
    for viewer in [&other] {
        assert_eq!(
            w.calls.get_call(viewer, call.id).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            w.calls
                .get_call_by_room(viewer, &room)
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    }
    assert_eq!(
        w.calls
            .get_call(&acme, CallId::new())
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    // Unrouted calls belong to nobody: support only.
    let q = RoomName::parse("call-q").unwrap();
    assert!(
        unrouted
            .calls
            .get_call_by_room(&CallViewer::Support, &q)
            .await
            .is_ok()
    );
    assert_eq!(
        unrouted
            .calls
            .get_call_by_room(&acme, &q)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    let connection = call.connection_id.unwrap();
    let activity = w.calls.activity(&acme, connection, 10).await.unwrap();
    assert_eq!(activity.recent_calls, std::slice::from_ref(&call));
    assert_eq!(
        activity.last_webhook.map(|e| e.kind),
        Some("participant_joined".to_owned())
    );
    assert_eq!(
        w.calls
            .recent_calls(&other, connection, 10)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        w.calls
            .recent_calls(&CallViewer::Support, connection, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let _ = w
        .connections
        .get_connection_by_id(connection)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn rooms_are_logged_without_the_callers_number() {
    assert_eq!(
        loggable("call-_+14155550199_AbC12"),
        "call-_+1********99_AbC12"
    );
    assert_eq!(loggable("call-7_room-123"), "call-7_room-123");
    assert_eq!(loggable("4155550199"), "4*******99");
}

#[test]
fn backoff_doubles_and_is_capped() {
    let s = settings();
    let secs: Vec<u64> = (1..=6).map(|n| s.backoff(n).as_secs()).collect();
    assert_eq!(secs, [2, 4, 8, 16, 30, 30]);
    assert_eq!(s.backoff(u32::MAX), Duration::from_secs(30));
}
