//! The LiveKit half end to end: the real `trunkline` binary against the Twilio and LiveKit
//! emulators, on SQLite and PostgreSQL. Connect, reconnect, disconnect and drift in
//! LiveKit; webhooks refused for every kind of bad signature with nothing stored; calls to
//! numbers nobody connected; a dispatch that fails twice and then succeeds; and no secret or
//! unmasked phone number in any answer or log line.

#[macro_use]
mod support;

use reqwest::Method;
use serde_json::{Value, json};
use trunkline_testkit::livekit::proto::sip_dispatch_rule::Rule;
use trunkline_testkit::livekit::{
    CallScript, Fault, LiveKitEmulator, Method as LkMethod, MethodSelector, WebhookSigning,
    body_sha256, proto, sign_webhook_token,
};

use support::livekit::{
    AGENT, all_accepted, call_by_id, call_by_room, deliver, drift_kinds, event, livekit_emulator,
    pg_count, wait_for_call, wait_for_log, warnings, webhook_url,
};
use support::{
    Backend, Carrier, Client, Settings, Transcript, action, assert_no_secrets, emulator, token,
};

on_both_backends!(
    connect_reconnect_disconnect_and_drift,
    bad_signatures_are_refused_and_store_nothing,
    calls_to_unconnected_numbers_are_recorded_unrouted,
    failed_dispatches_are_retried_until_exactly_one_succeeds,
    a_call_that_ended_is_never_dispatched,
);

const SIP_PASSWORD: &str = "sip-digest-password-0451";

/// The e164 of a number the Twilio emulator holds.
fn e164(
    twilio: &trunkline_testkit::twilio::TwilioEmulator,
    pn: &trunkline_twilio::PhoneNumberSid,
) -> String {
    twilio.number(pn).expect("a seeded number").phone_number
}

fn routing(mode: &str) -> Value {
    json!({
        "agentName": AGENT,
        "metadata": "{\"tier\":\"gold\"}",
        "attributes": {"team": "sales"},
        "dispatchMode": mode,
    })
}

/// trunkline's trunks and rules in the emulator (named after their connection).
fn managed(
    lk: &LiveKitEmulator,
) -> (
    Vec<proto::SipInboundTrunkInfo>,
    Vec<proto::SipDispatchRuleInfo>,
) {
    (
        lk.trunks()
            .into_iter()
            .filter(|t| t.name.starts_with("trunkline "))
            .collect(),
        lk.rules()
            .into_iter()
            .filter(|r| r.name.starts_with("trunkline "))
            .collect(),
    )
}

fn room_prefix(rule: &proto::SipDispatchRuleInfo) -> Option<String> {
    match rule.rule.as_ref().and_then(|r| r.rule.as_ref()) {
        Some(Rule::DispatchRuleIndividual(i)) => Some(i.room_prefix.clone()),
        _ => None,
    }
}

fn rule_agents(rule: &proto::SipDispatchRuleInfo) -> Vec<(String, String)> {
    rule.room_config
        .as_ref()
        .map(|c| {
            c.agents
                .iter()
                .map(|a| (a.agent_name.clone(), a.metadata.clone()))
                .collect()
        })
        .unwrap_or_default()
}

async fn connect_reconnect_disconnect_and_drift(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 2);
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with(
            "TRUNKLINE_LIVEKIT_INBOUND_ALLOWED_ADDRESSES",
            "54.172.60.0/30, 54.244.51.0/30",
        )
        .with("TRUNKLINE_LIVEKIT_INBOUND_AUTH_USERNAME", "twilio-carrier")
        .with("TRUNKLINE_LIVEKIT_INBOUND_AUTH_PASSWORD", SIP_PASSWORD)
        .with("TRUNKLINE_LIVEKIT_MEDIA_ENCRYPTION", "allow")
        .with("TRUNKLINE_LIVEKIT_ROOM_PREFIX", "inbound-")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let (pn, other_pn) = (&carrier.numbers[0], &carrier.numbers[1]);
    let number = e164(&twilio, pn);

    // --- connect: one trunk holding exactly the number, one rule for it.
    let c = acme
        .connect(pn, &json!({"routing": routing("webhook")}))
        .await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(action(&c, "livekitTrunk"), "created");
    assert_eq!(action(&c, "livekitRule"), "created");
    let connection = c["connectionId"].as_str().unwrap().to_owned();
    let trunk_id = c["livekit"]["trunkId"]
        .as_str()
        .expect("a trunk id")
        .to_owned();
    let rule_id = c["livekit"]["ruleId"]
        .as_str()
        .expect("a rule id")
        .to_owned();
    let holding = lk.trunks_for_number(&number);
    assert_eq!(holding.len(), 1, "{holding:?}");
    let trunk = &holding[0];
    assert_eq!(trunk.sip_trunk_id, trunk_id);
    assert_eq!(trunk.name, format!("trunkline {connection}"));
    assert_eq!(trunk.numbers, std::slice::from_ref(&number));
    assert!(trunk.allowed_numbers.is_empty());
    assert_eq!(
        trunk.allowed_addresses,
        ["54.172.60.0/30", "54.244.51.0/30"]
    );
    assert_eq!(trunk.auth_username, "twilio-carrier");
    assert_eq!(trunk.auth_password, SIP_PASSWORD);
    assert_eq!(
        trunk.media.as_ref().and_then(|m| m.encryption),
        Some(proto::SipMediaEncryption::SipMediaEncryptAllow as i32)
    );
    let (trunks, rules) = managed(&lk);
    assert_eq!(trunks.len(), 1);
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.sip_dispatch_rule_id, rule_id);
    assert_eq!(rule.trunk_ids, std::slice::from_ref(&trunk_id));
    assert_eq!(room_prefix(rule).as_deref(), Some("inbound-"));
    assert_eq!(
        rule.attributes,
        [("team".to_owned(), "sales".to_owned())]
            .into_iter()
            .collect()
    );
    // Mode `webhook`: trunkline dispatches; an agent in the rule too would come twice.
    assert!(rule_agents(rule).is_empty(), "{rule:?}");

    // --- reconnect: nothing written at LiveKit, the same objects.
    let writes = lk.count(MethodSelector::Writes);
    let again = acme
        .connect(pn, &json!({"routing": routing("webhook")}))
        .await;
    let again = again.ok().clone();
    assert_eq!(action(&again, "livekitTrunk"), "reused");
    assert_eq!(action(&again, "livekitRule"), "reused");
    assert_eq!(again["livekit"], c["livekit"]);
    assert_eq!(
        lk.count(MethodSelector::Writes),
        writes,
        "{:?}",
        lk.counts()
    );
    assert_eq!(managed(&lk).0.len(), 1);
    assert_eq!(managed(&lk).1.len(), 1);

    // --- status: both read back from LiveKit, no drift, no calls yet.
    let s = acme.status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(
        s["livekitTrunk"],
        json!({"ok": true, "exists": true, "id": trunk_id, "name": format!("trunkline {connection}"),
            "numbers": [number]}),
        "{s}"
    );
    assert_eq!(
        s["livekitRule"],
        json!({"ok": true, "exists": true, "id": rule_id, "name": format!("trunkline {connection}"),
            "trunkIds": [trunk_id], "roomPrefix": "inbound-", "agentNames": []}),
        "{s}"
    );
    assert_eq!(s["drifts"], json!([]), "{s}");
    assert_eq!(s["lastWebhook"], Value::Null);
    assert_eq!(s["recentCalls"], json!([]));

    // --- dispatch mode `rule`: the agent moves into the rule, updated in place.
    let updates = lk.count(LkMethod::UpdateSipDispatchRule);
    let by_rule = acme.connect(pn, &json!({"routing": routing("rule")})).await;
    assert_eq!(action(by_rule.ok(), "livekitRule"), "updated");
    assert_eq!(lk.count(LkMethod::UpdateSipDispatchRule), updates + 1);
    let rule = lk.rule(&rule_id).expect("the same rule");
    assert_eq!(
        rule_agents(&rule),
        [(AGENT.to_owned(), "{\"tier\":\"gold\"}".to_owned())]
    );
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["livekitRule"]["agentNames"], json!([AGENT]));
    assert_eq!(s.body["drifts"], json!([]), "{}", s.body);
    // And back: trunkline dispatches again, the rule carries no agent.
    acme.connect(pn, &json!({"routing": routing("webhook")}))
        .await
        .ok();
    assert!(rule_agents(&lk.rule(&rule_id).unwrap()).is_empty());

    // --- another number: its own trunk and rule.
    let other = acme.connect(other_pn, &Value::Null).await;
    let other_trunk = other.ok()["livekit"]["trunkId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(other_trunk, trunk_id);
    assert_eq!(managed(&lk).0.len(), 2);
    assert_eq!(managed(&lk).1.len(), 2);

    // --- drift: the LiveKit trunk deleted behind trunkline's back.
    assert!(lk.remove_trunk(&trunk_id));
    let s = acme.status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(
        s["livekitTrunk"],
        json!({"ok": true, "exists": false, "numbers": []}),
        "{s}"
    );
    assert!(drift_kinds(&s).contains("livekit_trunk_missing"), "{s}");
    // A reconnect repairs it: a new trunk holds the number, the rule follows it.
    let repaired = acme
        .connect(pn, &json!({"routing": routing("webhook")}))
        .await;
    let repaired = repaired.ok().clone();
    assert_eq!(action(&repaired, "livekitTrunk"), "created");
    let new_trunk = repaired["livekit"]["trunkId"].as_str().unwrap().to_owned();
    assert_ne!(new_trunk, trunk_id);
    let holding = lk.trunks_for_number(&number);
    assert_eq!(holding.len(), 1, "{holding:?}");
    assert_eq!(holding[0].sip_trunk_id, new_trunk);
    assert_eq!(
        lk.rule(&rule_id).expect("the rule").trunk_ids,
        std::slice::from_ref(&new_trunk)
    );
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // --- drift: the rule deleted; a reconnect recreates it.
    assert!(lk.remove_rule(&rule_id));
    let s = acme.status(pn, "").await;
    assert!(
        drift_kinds(s.ok()).contains("livekit_rule_missing"),
        "{}",
        s.body
    );
    let repaired = acme
        .connect(pn, &json!({"routing": routing("webhook")}))
        .await;
    assert_eq!(action(repaired.ok(), "livekitRule"), "created");
    assert_eq!(lk.rules_for_trunk(&new_trunk).len(), 1);
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // --- drift: both deleted. A reconnect reads both at once; the rule it had to recreate
    // for the stored (gone) trunk ends up on the new trunk, and is the only one.
    let rules_before = managed(&lk).1.len();
    let rule_id = lk.rules_for_trunk(&new_trunk)[0]
        .sip_dispatch_rule_id
        .clone();
    assert!(lk.remove_trunk(&new_trunk));
    assert!(lk.remove_rule(&rule_id));
    let repaired = acme
        .connect(pn, &json!({"routing": routing("webhook")}))
        .await;
    let repaired = repaired.ok().clone();
    assert_eq!(action(&repaired, "livekitTrunk"), "created");
    assert_eq!(action(&repaired, "livekitRule"), "created");
    let new_trunk = repaired["livekit"]["trunkId"].as_str().unwrap().to_owned();
    let holding = lk.trunks_for_number(&number);
    assert_eq!(holding.len(), 1, "{holding:?}");
    assert_eq!(holding[0].sip_trunk_id, new_trunk);
    assert_eq!(lk.rules_for_trunk(&new_trunk).len(), 1);
    assert_eq!(managed(&lk).1.len(), rules_before, "no rule left dangling");
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // --- disconnect removes both, and only this number's.
    let d = acme.disconnect(pn, &Value::Null).await;
    let d = d.ok().clone();
    assert_eq!(action(&d, "livekitRule"), "deleted");
    assert_eq!(action(&d, "livekitTrunk"), "deleted");
    assert!(lk.trunks_for_number(&number).is_empty());
    assert!(lk.rules_for_trunk(&new_trunk).is_empty());
    let (trunks, rules) = managed(&lk);
    assert_eq!(trunks.len(), 1, "{trunks:?}");
    assert_eq!(trunks[0].sip_trunk_id, other_trunk);
    assert_eq!(rules.len(), 1);
    // Disconnecting again is a no-op at LiveKit.
    let writes = lk.count(MethodSelector::Writes);
    acme.disconnect(pn, &Value::Null).await.ok();
    assert_eq!(lk.count(MethodSelector::Writes), writes);

    // Every LiveKit request was signed with the configured key.
    assert!(
        lk.requests()
            .iter()
            .all(|r| r.api_key.as_deref() == Some(lk.api_key()))
    );
    let mut secrets = carrier.secrets();
    secrets.extend([lk.api_secret().to_owned(), SIP_PASSWORD.to_owned()]);
    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

/// Connect one number of a fresh account to the agent; (client, called number).
async fn connected<'a>(
    twilio: &trunkline_testkit::twilio::TwilioEmulator,
    server: &'a trunkline_e2e::TestServer,
    transcript: &Transcript,
) -> (Client<'a>, String) {
    let carrier = Carrier::new(twilio, "Acme Inc", 1);
    let acme = Client::new(server, token("acme", &["customer"]), transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    acme.connect(pn, &json!({"routing": routing("webhook")}))
        .await
        .ok();
    (acme, e164(twilio, pn))
}

/// POST a raw body with an `Authorization` value (or none).
async fn post_webhook(
    server: &trunkline_e2e::TestServer,
    body: &[u8],
    auth: Option<&str>,
) -> (u16, Value) {
    let mut req = server
        .client()
        .post(webhook_url(server))
        .header("content-type", "application/webhook+json")
        .body(body.to_vec());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.expect("the server answers");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn bad_signatures_are_refused_and_store_nothing(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    let support = Client::new(&server, token("staff", &["support"]), &transcript);

    let played = lk.inbound_call(&CallScript::new(&number, "+14155550199"));
    let join = event(&played.events, "participant_joined")
        .to_string()
        .into_bytes();
    let other_key = lk.add_api_key();
    let now = chrono::Utc::now();
    let good = lk.webhook_signing();
    let tampered_body = {
        let mut v: Value = serde_json::from_slice(&join).unwrap();
        v["room"]["name"] = json!("call-_+14155550100_stolen");
        v.to_string().into_bytes()
    };
    let expired = WebhookSigning {
        not_before: now - chrono::Duration::minutes(20),
        expires_at: now - chrono::Duration::minutes(10),
        ..good.clone()
    };
    let not_yet = WebhookSigning {
        not_before: now + chrono::Duration::minutes(10),
        expires_at: now + chrono::Duration::minutes(15),
        ..good.clone()
    };
    let forged = WebhookSigning {
        api_secret: "not-the-secret-at-all-0123456789abcdef".to_owned(),
        ..good.clone()
    };
    // A key LiveKit knows, but not the one this server is configured with.
    let wrong_key = WebhookSigning::new(&other_key.0, &other_key.1);
    let other_issuer = WebhookSigning {
        api_key: other_key.0.clone(),
        ..good.clone()
    };
    let wrong_hash = WebhookSigning {
        sha256: Some(body_sha256(b"another body")),
        ..good.clone()
    };
    let genuine = sign_webhook_token(&join, &good);
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        (
            "forged (another secret)",
            join.clone(),
            Some(sign_webhook_token(&join, &forged)),
        ),
        ("tampered body", tampered_body, Some(genuine.clone())),
        (
            "one byte added",
            [join.as_slice(), b" "].concat(),
            Some(genuine.clone()),
        ),
        (
            "hash claim of another body",
            join.clone(),
            Some(sign_webhook_token(&join, &wrong_hash)),
        ),
        (
            "expired",
            join.clone(),
            Some(sign_webhook_token(&join, &expired)),
        ),
        (
            "not yet valid",
            join.clone(),
            Some(sign_webhook_token(&join, &not_yet)),
        ),
        (
            "another API key",
            join.clone(),
            Some(sign_webhook_token(&join, &wrong_key)),
        ),
        (
            "issued by another key",
            join.clone(),
            Some(sign_webhook_token(&join, &other_issuer)),
        ),
        (
            "Bearer-prefixed",
            join.clone(),
            Some(format!("Bearer {genuine}")),
        ),
        ("no header", join.clone(), None),
        (
            "a body that is not UTF-8, forged",
            vec![0xff, 0xfe, b'{', b'}'],
            Some(sign_webhook_token(&[0xff, 0xfe, b'{', b'}'], &forged)),
        ),
        ("garbage", join.clone(), Some("not-a-jwt".to_owned())),
    ];
    for (what, body, auth) in &cases {
        let (status, answer) = post_webhook(&server, body, auth.as_deref()).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["errorCode"], "UNAUTHENTICATED", "{what}: {answer}");
    }
    // Nothing stored: no call, no webhook row, no dispatch.
    call_by_room(&support, &played.room)
        .await
        .expect(404, Some("NOT_FOUND"));
    assert_eq!(pg_count(&backend, "webhook_events").await.unwrap_or(0), 0);
    assert_eq!(pg_count(&backend, "calls").await.unwrap_or(0), 0);
    assert_eq!(lk.total_dispatches(), 0);
    assert_eq!(lk.count(LkMethod::CreateDispatch), 0);
    // Each refusal is logged with its reason, never with the token.
    for reason in [
        "token expired",
        "token not yet valid",
        "signature does not verify",
        "body does not match",
        "not issued by the configured API key",
        "missing or malformed authorization",
        "not a JWT",
    ] {
        wait_for_log(&server, reason).await;
    }

    // A signed body that is not an event: 400, nothing stored.
    let junk = br#"{"hello":"world"}"#;
    let (status, answer) = post_webhook(&server, junk, Some(&lk.sign_webhook(junk))).await;
    assert_eq!(
        (status, answer["errorCode"].as_str()),
        (400, Some("VALIDATION_FAILED")),
        "{answer}"
    );

    // Events that need no action: acknowledged, nothing stored.
    for name in ["room_started", "track_published"] {
        let mut e = event(&played.events, "room_started").clone();
        e["event"] = json!(name);
        e["id"] = json!(format!("EV_noaction_{name}"));
        let body = e.to_string().into_bytes();
        let (status, answer) = post_webhook(&server, &body, Some(&lk.sign_webhook(&body))).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, json!({"result": "ignored", "event": name}));
    }
    // An agent joining is not a call.
    let mut agent_joined = event(&played.events, "participant_joined").clone();
    agent_joined["id"] = json!("EV_agent_joined");
    agent_joined["participant"]["kind"] = json!("AGENT");
    let body = agent_joined.to_string().into_bytes();
    let (status, answer) = post_webhook(&server, &body, Some(&lk.sign_webhook(&body))).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert_eq!(pg_count(&backend, "webhook_events").await.unwrap_or(0), 0);
    call_by_room(&support, &played.room)
        .await
        .expect(404, Some("NOT_FOUND"));

    // The same event, genuinely signed: handled as the first delivery (the refused ones
    // left no dedupe record behind), and the agent is dispatched.
    let (status, answer) = post_webhook(&server, &join, Some(&genuine)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], "accepted", "{answer}");
    assert_eq!(answer["dispatch"], "dispatched", "{answer}");
    let (status, answer) = post_webhook(&server, &join, Some(&genuine)).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(lk.dispatch_history(&played.room).len(), 1);
    if let Some(n) = pg_count(&backend, "webhook_events").await {
        assert_eq!(n, 1);
    }
    let call = call_by_room(&acme, &played.room).await;
    assert_eq!(call.ok()["dispatchStatus"], "dispatched");

    // The user token still verifies after LiveKit's verifier ran in this process.
    let me = acme.call(Method::GET, "/telephony/me", &Value::Null).await;
    assert_eq!(me.ok()["customerId"], "acme");

    let mut secrets = vec![
        lk.api_secret().to_owned(),
        other_key.1.clone(),
        genuine.clone(),
    ];
    secrets.extend(
        cases
            .iter()
            .filter_map(|(_, _, a)| a.clone())
            .filter(|a| a.contains('.')),
    );
    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn calls_to_unconnected_numbers_are_recorded_unrouted(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let mut server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    let support = Client::new(&server, token("staff", &["support"]), &transcript);
    let targets = [webhook_url(&server)];

    // A number nobody connected (LiveKit took it on some catch-all trunk), every webhook
    // three times, shuffled, at once.
    let stranger = lk.inbound_call(&CallScript::new("+14155550177", "+14155550199"));
    assert_eq!(stranger.trunk_id, None);
    let deliveries = deliver(&lk, &targets, &stranger.events, 3, true).await;
    all_accepted(&deliveries);
    let call = call_by_room(&support, &stranger.room).await;
    let call = call.ok().clone();
    assert_eq!(call["status"], "unrouted", "{call}");
    assert_eq!(call["dispatchStatus"], "none", "{call}");
    assert_eq!(call["dispatchAttempts"], 0);
    assert_eq!(call["customerId"], Value::Null);
    assert_eq!(call["connectionId"], Value::Null);
    assert_eq!(call["agentName"], Value::Null);
    assert!(call["endedAt"].is_string(), "{call}");
    // Numbers are masked for support; the call belongs to no customer.
    assert_eq!(call["called"], "+1********77");
    call_by_room(&acme, &stranger.room)
        .await
        .expect(404, Some("NOT_FOUND"));
    let call_id = call["callId"].as_str().unwrap();
    call_by_id(&acme, call_id)
        .await
        .expect(404, Some("NOT_FOUND"));
    assert_eq!(
        call_by_id(&support, call_id).await.ok()["roomName"],
        stranger.room
    );
    if let Some(n) = pg_count(&backend, "calls").await {
        assert_eq!(n, 1, "one record however often it was delivered");
    }

    // A number that was connected and then disconnected: unrouted too.
    let carrier = Carrier::new(&twilio, "Acme Two", 1);
    let globex = Client::new(&server, token("globex", &["customer"]), &transcript);
    globex.save(&carrier.key_body()).await.ok();
    let gone = &carrier.numbers[0];
    globex
        .connect(gone, &json!({"routing": routing("webhook")}))
        .await
        .ok();
    globex.disconnect(gone, &Value::Null).await.ok();
    let late = lk.inbound_call(&CallScript::new(e164(&twilio, gone), "+14155550123"));
    all_accepted(&deliver(&lk, &targets, &late.events, 2, true).await);
    let call = call_by_room(&support, &late.room).await;
    assert_eq!(call.ok()["status"], "unrouted", "{}", call.body);
    call_by_room(&globex, &late.room)
        .await
        .expect(404, Some("NOT_FOUND"));

    // Nothing was dispatched.
    assert_eq!(lk.total_dispatches(), 0);
    assert_eq!(lk.count(LkMethod::CreateDispatch), 0);
    // The connected number still works alongside.
    let routed = lk.inbound_call(&CallScript::new(&number, "+14155550142"));
    // The start only: an end acted on before the join would cancel the dispatch.
    all_accepted(&deliver(&lk, &targets, &routed.events[..2], 1, false).await);
    let call = call_by_room(&acme, &routed.room).await;
    assert_eq!(call.ok()["dispatchStatus"], "dispatched", "{}", call.body);
    assert_eq!(lk.total_dispatches(), 1);

    // No error storm: not one warning or error in the whole run (stopped first, so the
    // output is complete).
    server.stop();
    let noise = warnings(&server);
    assert!(noise.is_empty(), "{noise:#?}");
    drop(backend);
}

async fn failed_dispatches_are_retried_until_exactly_one_succeeds(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    let target = webhook_url(&server);

    // --- CreateDispatch fails twice (503), then works.
    lk.inject(
        LkMethod::CreateDispatch,
        Fault::Fail {
            count: 2,
            status: 503,
        },
    );
    let played = lk.inbound_call(&CallScript::new(&number, "+14155550199"));
    let join = lk
        .send_webhook(&target, event(&played.events, "participant_joined"))
        .await;
    assert_eq!(join.status, Some(200), "{join:?}");
    // The failure is answered 200 (the retry is trunkline's job, not LiveKit's).
    let first = call_by_room(&acme, &played.room).await;
    let first = first.ok().clone();
    assert!(
        matches!(
            first["dispatchStatus"].as_str(),
            Some("failed" | "claimed" | "dispatched")
        ),
        "{first}"
    );
    let call = wait_for_call(&acme, &played.room, "the retried dispatch", |c| {
        c["dispatchStatus"] == "dispatched"
    })
    .await;
    let history = lk.dispatch_history(&played.room);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].agent_name, AGENT);
    assert_eq!(history[0].metadata, "{\"tier\":\"gold\"}");
    assert_eq!(call["dispatchId"], history[0].id.as_str());
    assert_eq!(call["dispatchAttempts"], 3, "{call}");
    assert_eq!(call["agentName"], AGENT);
    assert_eq!(lk.count(LkMethod::CreateDispatch), 3);
    // The retrier logged what it did.
    wait_for_log(&server, "agent dispatch failed; it will be retried").await;
    wait_for_log(&server, "dispatch retry pass").await;

    // The rest of the call: the record ends, the status shows it.
    for name in ["participant_left", "room_finished"] {
        let d = lk.send_webhook(&target, event(&played.events, name)).await;
        assert_eq!(d.status, Some(200), "{d:?}");
    }
    let call = call_by_room(&acme, &played.room).await;
    let call = call.ok().clone();
    assert_eq!(call["status"], "ended", "{call}");
    assert_eq!(call["caller"], "+14155550199");
    assert_eq!(call["called"], number);
    let pn_status = {
        let numbers = acme.numbers("").await;
        let pn = numbers.ok()["items"][0]["numberId"]
            .as_str()
            .unwrap()
            .to_owned();
        acme.status(&trunkline_twilio::PhoneNumberSid::parse(&pn).unwrap(), "")
            .await
    };
    let s = pn_status.ok();
    assert_eq!(s["lastWebhook"]["event"], "room_finished", "{s}");
    assert_eq!(s["lastWebhook"]["roomName"], played.room.as_str());
    assert_eq!(s["recentCalls"][0]["callId"], call["callId"], "{s}");
    assert_eq!(s["recentCalls"][0]["dispatchAttempts"], 3);

    // --- The answer of a dispatch is lost (LiveKit created it): found, not repeated.
    lk.inject(
        LkMethod::CreateDispatch,
        Fault::LoseAnswer {
            count: 1,
            status: 503,
        },
    );
    let lost = lk.inbound_call(&CallScript::new(&number, "+14155550142"));
    all_accepted(
        &deliver(
            &lk,
            std::slice::from_ref(&target),
            &lost.events[..2],
            1,
            false,
        )
        .await,
    );
    let call = wait_for_call(&acme, &lost.room, "the recovered dispatch", |c| {
        c["dispatchStatus"] == "dispatched"
    })
    .await;
    let history = lk.dispatch_history(&lost.room);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(call["dispatchId"], history[0].id.as_str());
    assert_eq!(call["dispatchAttempts"], 1, "{call}");

    drop(backend);
}

/// The two ways an agent used to be dispatched into a call that had ended: the end's
/// webhooks acted on before the join's, and a hang-up while a failed dispatch waited for
/// its retry. Each ends `cancelled`, with no dispatch at LiveKit, after the retrier has had
/// many passes (every 100 ms) well past the backoff.
async fn a_call_that_ended_is_never_dispatched(backend: Backend) {
    // The first retry waits 1 s: long enough for the hang-up to arrive before it.
    const BACKOFF_MS: u64 = 1_000;
    let twilio = emulator();
    let lk = livekit_emulator();
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with(
            "TRUNKLINE_DISPATCH_BACKOFF_BASE_MS",
            &BACKOFF_MS.to_string(),
        )
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    let target = webhook_url(&server);
    let send = |played: &trunkline_testkit::livekit::PlayedCall, name: &'static str| {
        let event = event(&played.events, name).clone();
        let target = target.clone();
        let lk = &lk;
        async move {
            let d = lk.send_webhook(&target, &event).await;
            assert_eq!(d.status, Some(200), "{name}: {d:?}");
        }
    };
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(2 * BACKOFF_MS + 500));

    // --- The caller's leave and the room's end, then the join (LiveKit does not keep
    // webhooks in order).
    let early = lk.inbound_call(&CallScript::new(&number, "+14155550161"));
    send(&early, "participant_left").await;
    send(&early, "room_finished").await;
    let call = call_by_room(&acme, &early.room).await;
    let call = call.ok().clone();
    assert_eq!(call["status"], "ended", "{call}");
    assert_eq!(call["dispatchStatus"], "cancelled", "{call}");
    assert_eq!(call["dispatchAttempts"], 0, "{call}");
    settle().await;
    send(&early, "participant_joined").await;
    settle().await;
    let call = call_by_room(&acme, &early.room).await;
    let call = call.ok().clone();
    assert_eq!(
        (
            &call["status"],
            &call["dispatchStatus"],
            &call["dispatchAttempts"]
        ),
        (&json!("ended"), &json!("cancelled"), &json!(0)),
        "{call}"
    );
    assert!(lk.dispatch_history(&early.room).is_empty());

    // --- `room_finished` first, then the join, then the leave.
    let finished = lk.inbound_call(&CallScript::new(&number, "+14155550162"));
    send(&finished, "room_finished").await;
    send(&finished, "participant_joined").await;
    send(&finished, "participant_left").await;
    settle().await;
    let call = call_by_room(&acme, &finished.room).await;
    let call = call.ok().clone();
    assert_eq!(
        (
            &call["status"],
            &call["dispatchStatus"],
            &call["dispatchAttempts"]
        ),
        (&json!("ended"), &json!("cancelled"), &json!(0)),
        "{call}"
    );
    assert!(lk.dispatch_history(&finished.room).is_empty());
    assert_eq!(lk.count(LkMethod::CreateDispatch), 0);

    // --- The join's dispatch fails once; the caller hangs up before the retry.
    lk.inject(
        LkMethod::CreateDispatch,
        Fault::Fail {
            count: 1,
            status: 503,
        },
    );
    let hung_up = lk.inbound_call(&CallScript::new(&number, "+14155550163"));
    send(&hung_up, "participant_joined").await;
    let call = call_by_room(&acme, &hung_up.room).await;
    assert_eq!(call.ok()["dispatchStatus"], "failed", "{:?}", call.body);
    send(&hung_up, "participant_left").await;
    send(&hung_up, "room_finished").await;
    settle().await;
    let call = call_by_room(&acme, &hung_up.room).await;
    let call = call.ok().clone();
    assert_eq!(
        (
            &call["status"],
            &call["dispatchStatus"],
            &call["dispatchAttempts"]
        ),
        (&json!("ended"), &json!("cancelled"), &json!(1)),
        "{call}"
    );
    assert!(lk.dispatch_history(&hung_up.room).is_empty());
    assert_eq!(
        lk.count(LkMethod::CreateDispatch),
        1,
        "only the join's attempt"
    );
    lk.clear_faults();

    drop(backend);
}

/// A dispatch that never succeeds is given up after the configured attempts, loudly, and
/// no retrier touches it again.
#[tokio::test]
async fn a_dispatch_that_never_succeeds_is_given_up_loudly() {
    let twilio = emulator();
    let lk = livekit_emulator();
    let backend = Backend::Sqlite;
    let mut server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_DISPATCH_MAX_ATTEMPTS", "3")
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    lk.inject(
        LkMethod::CreateDispatch,
        Fault::Fail {
            count: 100,
            status: 500,
        },
    );
    let doomed = lk.inbound_call(&CallScript::new(&number, "+14155550111"));
    let d = lk
        .send_webhook(
            &webhook_url(&server),
            event(&doomed.events, "participant_joined"),
        )
        .await;
    assert_eq!(d.status, Some(200), "{d:?}");
    let call = wait_for_call(&acme, &doomed.room, "giving up", |c| {
        c["dispatchStatus"] == "gave_up"
    })
    .await;
    assert_eq!(call["dispatchAttempts"], 3, "{call}");
    assert!(lk.dispatch_history(&doomed.room).is_empty());
    // Logged for a human.
    wait_for_log(&server, "GAVE UP dispatching the agent").await;
    // Given up is final: later passes leave it alone.
    let attempts = lk.count(LkMethod::CreateDispatch);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(lk.count(LkMethod::CreateDispatch), attempts);
    lk.clear_faults();

    // SIGTERM: the background retrier stops with the server, which exits cleanly.
    let status = server
        .terminate(std::time::Duration::from_secs(20))
        .await
        .expect("trunkline exits");
    assert!(status.success(), "{status}");
    let logs = server.stderr();
    assert!(logs.contains("dispatch retrier stopped"), "{logs}");
}

/// Everything the server prints at debug level through connects, calls and refused
/// webhooks: neither the LiveKit API secret, nor the SIP password, nor a webhook token, and
/// phone numbers (in room names too) only ever masked.
#[tokio::test]
async fn livekit_secrets_and_phone_numbers_stay_out_of_logs() {
    let twilio = emulator();
    let lk = livekit_emulator();
    let backend = Backend::Sqlite;
    let mut server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("RUST_LOG", "debug")
        .with("TRUNKLINE_LIVEKIT_INBOUND_AUTH_USERNAME", "twilio-carrier")
        .with("TRUNKLINE_LIVEKIT_INBOUND_AUTH_PASSWORD", SIP_PASSWORD)
        .start()
        .await;
    let transcript = Transcript::default();
    let (acme, number) = connected(&twilio, &server, &transcript).await;
    let support = Client::new(&server, token("staff", &["support"]), &transcript);
    let target = webhook_url(&server);
    let caller = "+14155550199";
    let stranger = "+14155550177";
    let mut tokens = Vec::new();

    lk.inject(
        LkMethod::CreateDispatch,
        Fault::Fail {
            count: 1,
            status: 503,
        },
    );
    let played = lk.inbound_call(&CallScript::new(&number, caller));
    // The start, the retried dispatch, then the end (a hang-up before the retry would
    // cancel it).
    let (start, end) = played.events.split_at(2);
    for (n, part) in [start, end].into_iter().enumerate() {
        for e in part {
            let body = e.to_string().into_bytes();
            let auth = lk.sign_webhook(&body);
            tokens.push(auth.clone());
            lk.send_raw_webhook(&target, body, Some(auth)).await;
        }
        if n == 0 {
            wait_for_call(&acme, &played.room, "the dispatch", |c| {
                c["dispatchStatus"] == "dispatched"
            })
            .await;
        }
    }
    let unrouted = lk.inbound_call(&CallScript::new(stranger, caller));
    all_accepted(
        &deliver(
            &lk,
            std::slice::from_ref(&target),
            &unrouted.events,
            2,
            true,
        )
        .await,
    );
    // Refused: the token of another body, and a Bearer one.
    let body = event(&played.events, "participant_left")
        .to_string()
        .into_bytes();
    let bearer = format!("Bearer {}", tokens[0]);
    lk.send_raw_webhook(&target, body.clone(), Some(tokens[0].clone()))
        .await;
    lk.send_raw_webhook(&target, body, Some(bearer)).await;
    call_by_room(&acme, &played.room).await.ok();
    call_by_room(&support, &unrouted.room).await.ok();
    let numbers = acme.numbers("").await;
    let pn = numbers.ok()["items"][0]["numberId"]
        .as_str()
        .unwrap()
        .to_owned();
    let pn = trunkline_twilio::PhoneNumberSid::parse(&pn).unwrap();
    acme.status(&pn, "").await.ok();
    acme.disconnect(&pn, &Value::Null).await.ok();

    // Stopped: its output is complete.
    server.stop();
    let logs = format!("{}\n{}", server.stdout(), server.stderr());
    assert!(logs.contains("\"level\":\"DEBUG\""), "no debug output");
    let mut secrets = vec![lk.api_secret().to_owned(), SIP_PASSWORD.to_owned()];
    secrets.extend(tokens);
    assert_no_secrets(&server, &transcript, &secrets);
    for n in [number.as_str(), caller, stranger] {
        for form in [n.to_owned(), n.replace('+', "%2B"), n[1..].to_owned()] {
            assert!(!logs.contains(&form), "{form} was logged");
        }
    }
    for room in [&played.room, &unrouted.room] {
        assert!(
            !logs.contains(room.as_str()),
            "room {room} was logged unmasked"
        );
    }
}
