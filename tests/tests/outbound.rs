//! Outbound calls end to end: the real `trunkline` binary against the Twilio and LiveKit
//! emulators, on SQLite and PostgreSQL. Connect with outbound sets up Twilio termination
//! (domain name, credential list attached to the trunk) and one LiveKit outbound trunk per
//! route; a call is placed, its agent dispatched once, and LiveKit's webhooks complete its
//! record; reconnect changes nothing; a second number joins the same trunk; disconnect of the
//! last outbound number removes the list and the trunk. Calls from numbers that may not call
//! are refused before anything is dialled; SIP failures answer their codes; the same
//! `Idempotency-Key` sent to two instances at once places one call; no SIP password anywhere.

#[macro_use]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use trunkline_testkit::livekit::{CallOutcome, Method as LkMethod};
use trunkline_testkit::twilio::{Route, TwilioEmulator};

use support::livekit::{
    AGENT, all_accepted, call_by_id, livekit_emulator, outbound_trunks, wait_for, webhook_url,
};
use support::{
    Backend, Carrier, Client, Settings, Transcript, action, assert_no_secrets,
    assert_not_stored_in_clear, emulator, token, trunk_of,
};

on_both_backends!(
    outbound_connect_call_reconnect_and_disconnect,
    one_idempotency_key_on_two_instances_places_one_call,
);

fn e164(twilio: &TwilioEmulator, pn: &trunkline_twilio::PhoneNumberSid) -> String {
    twilio.number(pn).expect("a seeded number").phone_number
}

async fn place(client: &Client<'_>, body: &Value, key: Option<&str>) -> support::Reply {
    let mut req = client
        .server
        .client()
        .request(Method::POST, client.server.url("/telephony/calls"))
        .bearer_auth(&client.token)
        .json(body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.expect("the server answers");
    let status = res.status();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(ToOwned::to_owned)
    };
    let request_id = header("x-request-id");
    let retry_after = header("retry-after");
    let text = res.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    support::Reply {
        status,
        body,
        request_id,
        retry_after,
    }
}

async fn outbound_connect_call_reconnect_and_disconnect(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 3);
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let support_staff = Client::new(&server, token("acme", &["support"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let (pn, second_pn, inbound_pn) = (
        &carrier.numbers[0],
        &carrier.numbers[1],
        &carrier.numbers[2],
    );
    let from = e164(&twilio, pn);
    let callee = "+14155550199";

    // --- connect with outbound: termination at Twilio, one LiveKit outbound trunk.
    let c = acme
        .connect(
            pn,
            &json!({"routing": {"agentName": AGENT}, "outbound": true}),
        )
        .await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(action(&c, "termination"), "created", "{c}");
    assert_eq!(action(&c, "livekitOutboundTrunk"), "created", "{c}");
    let trunk = trunk_of(&c);
    let domain = twilio
        .trunk(&trunk)
        .and_then(|t| t.domain_name)
        .expect("the trunk has a termination domain");
    assert!(domain.ends_with(".pstn.twilio.com"), "{domain}");
    let lists = twilio.credential_lists(&carrier.account.sid);
    assert_eq!(lists.len(), 1, "{lists:?}");
    let list = lists[0].0.clone();
    assert_eq!(twilio.trunk_credential_lists(&trunk), vec![list.clone()]);
    let creds = twilio.sip_credentials(&list);
    assert_eq!(creds.len(), 1);
    let (username, password) = creds[0].clone();
    assert!(username.len() <= 32, "{username}");
    assert!(password.len() >= 12);
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1, "{lk_trunks:?}");
    let lk_trunk = &lk_trunks[0];
    assert_eq!(lk_trunk.address, domain);
    assert_eq!(lk_trunk.numbers, vec![from.clone()]);
    assert_eq!(lk_trunk.auth_username, username);
    assert_eq!(
        lk_trunk.auth_password, password,
        "LiveKit and Twilio hold one password"
    );
    assert_eq!(
        lk_trunk.transport,
        trunkline_testkit::livekit::proto::SipTransport::Tcp as i32
    );

    // The route's password is sealed: not in any table or database file in clear.
    assert_not_stored_in_clear(&server, &backend, std::slice::from_ref(&password)).await;

    // --- a second connect changes nothing at Twilio or LiveKit.
    twilio.reset_requests();
    lk.reset_requests();
    let again = acme.connect(pn, &json!({})).await;
    let again = again.ok().clone();
    assert_eq!(action(&again, "termination"), "reused", "{again}");
    assert_eq!(action(&again, "livekitOutboundTrunk"), "reused", "{again}");
    let twilio_writes: Vec<_> = twilio
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(twilio_writes.is_empty(), "{twilio_writes:?}");
    let lk_writes: Vec<_> = lk
        .requests()
        .into_iter()
        .filter(|r| r.method.is_some_and(LkMethod::is_write))
        .collect();
    assert!(lk_writes.is_empty(), "{lk_writes:?}");

    // --- refused before anything is dialled: a number never connected, one connected
    //     inbound only, and a number of another customer.
    acme.connect(inbound_pn, &json!({"routing": {"agentName": AGENT}}))
        .await
        .ok();
    let dialled_before = lk.count(LkMethod::CreateSipParticipant);
    place(
        &acme,
        &json!({"from": e164(&twilio, inbound_pn), "to": callee}),
        None,
    )
    .await
    .expect(409, Some("OUTBOUND_NOT_ENABLED"));
    place(&acme, &json!({"from": "+14155550123", "to": callee}), None)
        .await
        .expect(404, Some("NOT_CONNECTED"));
    let globex = Client::new(&server, token("globex", &["customer"]), &transcript);
    place(&globex, &json!({"from": from, "to": callee}), None)
        .await
        .expect(404, Some("NOT_CONNECTED"));
    place(&support_staff, &json!({"from": from, "to": callee}), None)
        .await
        .expect(403, Some("FORBIDDEN"));
    place(&acme, &json!({"from": from, "to": "not a number"}), None)
        .await
        .expect(400, Some("VALIDATION_FAILED"))
        .names_field("to");
    assert_eq!(lk.count(LkMethod::CreateSipParticipant), dialled_before);

    // --- place a call: agent dispatched once, dialled with sip_number = from.
    let placed = place(
        &acme,
        &json!({"from": from, "to": callee, "waitUntilAnswered": true}),
        None,
    )
    .await;
    placed.expect(201, None);
    assert_eq!(placed.body["direction"], "outbound");
    assert_eq!(placed.body["status"], "answered");
    let room = placed.body["roomName"].as_str().expect("a room").to_owned();
    let call_id = placed.body["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    let calls = lk.outbound_calls();
    let dialled = calls.iter().find(|c| c.room == room).expect("dialled");
    assert_eq!(dialled.from, from);
    assert_eq!(dialled.to, callee);
    assert_eq!(dialled.trunk_id, lk_trunk.sip_trunk_id);
    assert_eq!(lk.dispatches(&room).len(), 1);

    // --- LiveKit's webhooks complete the record, and dispatch nothing more.
    let deliveries = lk.play_outbound_call(&[webhook_url(&server)], &room).await;
    assert_eq!(deliveries.len(), 3);
    all_accepted(&deliveries);
    let record = wait_for(
        "the call to end",
        std::time::Duration::from_secs(10),
        || async {
            let r = call_by_id(&acme, &call_id).await;
            (r.body["status"] == "ended").then_some(r.body)
        },
    )
    .await;
    assert_eq!(record["direction"], "outbound", "{record}");
    assert_eq!(record["dispatchStatus"], "dispatched", "{record}");
    assert_eq!(record["called"], callee);
    assert_eq!(record["caller"], from);
    assert!(record["sipCallId"].as_str().is_some(), "{record}");
    assert_eq!(
        lk.dispatch_history(&room).len(),
        1,
        "dispatched exactly once"
    );
    // Support reads it (masked), never places it.
    let seen = call_by_id(&support_staff, &call_id).await;
    assert_eq!(seen.ok()["direction"], "outbound");
    // The number's status shows the call and the outbound half without drift.
    let status = acme.status(pn, "").await;
    let status = status.ok();
    assert_eq!(
        status["recentCalls"][0]["direction"], "outbound",
        "{status}"
    );
    assert_eq!(status["outbound"]["enabled"], true, "{status}");
    assert_eq!(status["outbound"]["drift"], json!([]), "{status}");

    // --- SIP failures map to codes with the SIP status; nothing is retried by trunkline.
    for (to, outcome, code) in [
        ("+14155550101", CallOutcome::Busy, "CALL_BUSY"),
        ("+14155550102", CallOutcome::NoAnswer, "CALL_NO_ANSWER"),
        ("+14155550103", CallOutcome::Rejected, "CALL_REJECTED"),
        (
            "+14155550104",
            CallOutcome::CallerIdRefused,
            "CALLER_ID_NOT_ALLOWED",
        ),
        (
            "+14155550105",
            CallOutcome::DestinationRefused,
            "DESTINATION_NOT_PERMITTED",
        ),
    ] {
        lk.script_destination(to, outcome);
        // One call per second per number: wait out the previous call's slot.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = place(
            &acme,
            &json!({"from": from, "to": to, "waitUntilAnswered": true}),
            None,
        )
        .await;
        r.expect(422, Some(code));
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("SIP "), "{message}");
    }
    // --- the number's rate: two calls at once, one is RATE_LIMITED with Retry-After.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let plain = json!({"from": from, "to": callee});
    let (a, b) = tokio::join!(place(&acme, &plain, None), place(&acme, &plain, None));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 429], "{} / {}", a.body, b.body);
    let limited = if a.status.as_u16() == 429 { &a } else { &b };
    assert_eq!(limited.body["errorCode"], "RATE_LIMITED");
    assert_eq!(limited.retry_after.as_deref(), Some("1"));

    // --- a second number on the same route joins the same LiveKit outbound trunk.
    let second = acme
        .connect(
            second_pn,
            &json!({"routing": {"agentName": AGENT}, "outbound": true}),
        )
        .await;
    let second = second.ok().clone();
    assert_eq!(trunk_of(&second), trunk, "one shared Twilio trunk");
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1, "{lk_trunks:?}");
    let mut numbers = lk_trunks[0].numbers.clone();
    numbers.sort();
    let mut want = vec![from.clone(), e164(&twilio, second_pn)];
    want.sort();
    assert_eq!(numbers, want);
    assert_eq!(twilio.credential_lists(&carrier.account.sid).len(), 1);

    // --- drift: the list detached behind trunkline's back shows; connect repairs it.
    assert!(twilio.detach_credential_list(&trunk, &list));
    let status = acme.status(pn, "").await;
    let drift = status.ok()["outbound"]["drift"].clone();
    assert!(
        drift.to_string().contains("credentials are not attached"),
        "{drift}"
    );
    acme.connect(pn, &json!({})).await.ok();
    assert_eq!(twilio.trunk_credential_lists(&trunk), vec![list.clone()]);

    // --- disconnect: the first leaves the trunk's list; the last removes list and trunk.
    acme.disconnect(pn, &json!({})).await.ok();
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1);
    assert_eq!(lk_trunks[0].numbers, vec![e164(&twilio, second_pn)]);
    assert_eq!(twilio.credential_lists(&carrier.account.sid).len(), 1);
    acme.disconnect(second_pn, &json!({})).await.ok();
    assert!(
        outbound_trunks(&lk).is_empty(),
        "{:?}",
        lk.outbound_trunks()
    );
    assert!(twilio.credential_lists(&carrier.account.sid).is_empty());
    assert!(twilio.trunk_credential_lists(&trunk).is_empty());
    // A disconnected number may not call any more.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    place(&acme, &json!({"from": from, "to": callee}), None)
        .await
        .expect(404, Some("NOT_CONNECTED"));

    // --- the SIP password never left trunkline towards a client or a log.
    assert_no_secrets(&server, &transcript, std::slice::from_ref(&password));
    assert_not_stored_in_clear(&server, &backend, &[password]).await;
    // The request log was emptied after the first connect: the repairs since reused the one
    // credential instead of creating another.
    assert_eq!(twilio.count(Route::CreateSipCredential), 0);
}

async fn one_idempotency_key_on_two_instances_places_one_call(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 1);
    let settings = Settings::new(&twilio, &backend).with_livekit(&lk);
    let first = settings.start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&first, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    acme.connect(
        pn,
        &json!({"routing": {"agentName": AGENT}, "outbound": true}),
    )
    .await
    .ok();
    // SQLite: the second instance shares the first's database file.
    let settings = match &backend {
        Backend::Sqlite => settings.with(
            "TRUNKLINE_DATABASE_URL",
            &format!("sqlite://{}/trunkline.db", first.data_dir().display()),
        ),
        Backend::Postgres(_) => settings,
    };
    let second = settings.start().await;
    let acme2 = Client::new(&second, token("acme", &["customer"]), &transcript);
    let from = e164(&twilio, pn);
    let body = json!({"from": from, "to": "+14155550199", "waitUntilAnswered": true});

    let (a, b) = tokio::join!(
        place(&acme, &body, Some("order-4711")),
        place(&acme2, &body, Some("order-4711")),
    );
    a.expect(201, None);
    b.expect(201, None);
    assert_eq!(
        a.body["callId"], b.body["callId"],
        "{} / {}",
        a.body, b.body
    );
    assert_eq!(a.body["roomName"], b.body["roomName"]);
    let replays = [&a, &b]
        .iter()
        .filter(|r| r.body["replayed"] == true)
        .count();
    assert_eq!(replays, 1, "{} / {}", a.body, b.body);
    assert_eq!(lk.count(LkMethod::CreateSipParticipant), 1, "dialled once");
    let room = a.body["roomName"].as_str().unwrap_or_default();
    assert_eq!(lk.dispatch_history(room).len(), 1, "dispatched once");

    // Later, on either instance, the key still answers the first call without dialling.
    let later = place(&acme2, &body, Some("order-4711")).await;
    later.expect(201, None);
    assert_eq!(later.body["callId"], a.body["callId"]);
    assert_eq!(later.body["replayed"], true);
    // The same key with another request is refused.
    let other = json!({"from": from, "to": "+14155550198"});
    place(&acme, &other, Some("order-4711"))
        .await
        .expect(409, Some("CONFLICT"));
    assert_eq!(lk.count(LkMethod::CreateSipParticipant), 1);
}
