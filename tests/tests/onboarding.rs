//! The onboarding API end to end: the real `trunkline` binary on a random port, against the
//! Twilio emulator, on SQLite and on PostgreSQL. Every step is checked over HTTP and in the
//! emulator's state; every test ends by searching all answers and all server output for the
//! secrets it used.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use trunkline_core::E164;
use trunkline_testkit::twilio::Route;
use trunkline_twilio::VoiceConfig;
use trunkline_twilio::{ApplicationSid, PhoneNumberSid};

use support::{
    Backend, Carrier, Client, SIP_TARGET, Settings, TWILIO, Transcript, action, assert_no_secrets,
    emulator, key_body, steps, token, trunk_of, trunkline_trunks,
};

on_both_backends!(
    happy_path,
    connect_is_idempotent_and_strategies_hold,
    carrier_refusals_have_their_codes,
    disconnect_restores_the_previous_voice_configuration,
    customers_are_isolated_and_support_only_reads,
    status_reports_drift_and_connect_repairs_it,
    a_rerun_keeps_what_is_stored_and_a_change_says_so,
    two_customers_on_one_account_never_take_each_others_numbers,
);

/// No request reached Twilio but reads.
#[track_caller]
fn only_reads(emu: &trunkline_testkit::twilio::TwilioEmulator) {
    only_reads_since(emu, 0);
}

/// No request but reads reached Twilio after the first `mark` requests.
#[track_caller]
fn only_reads_since(emu: &trunkline_testkit::twilio::TwilioEmulator, mark: usize) {
    let writes: Vec<String> = emu
        .requests()
        .iter()
        .skip(mark)
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "unexpected writes at Twilio: {writes:?}");
}

fn sids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|i| i["numberId"].as_str().unwrap().to_owned())
        .collect()
}

async fn happy_path(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 5);
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let pn = carrier.numbers[0].clone();

    // --- verify: the carrier's verdict, nothing saved, nothing changed at Twilio.
    let v = acme.verify(&carrier.key_body()).await;
    let v = v.ok();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["accountId"], carrier.account.sid.as_str());
    assert_eq!(
        v["capabilities"],
        json!({"numbers": "available", "trunking": "available"})
    );
    only_reads(&emu);
    acme.numbers("")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));

    // --- save (twice: the second replaces and keeps the id).
    let saved = acme.save(&carrier.key_body()).await;
    let saved = saved.ok().clone();
    assert_eq!(saved["accountId"], carrier.account.sid.as_str());
    assert_eq!(saved["keyId"], carrier.key.sid.as_str());
    assert_eq!(saved["replaced"], false);
    assert!(saved.get("apiKeySecret").is_none(), "{saved}");
    let again = acme.save(&carrier.key_body()).await;
    assert_eq!(again.ok()["integrationId"], saved["integrationId"]);
    assert_eq!(again.body["replaced"], true);
    only_reads(&emu);

    // --- list: every number across pages of two, as the emulator holds them.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("pageSize=2&cursor={c}"),
            None => "pageSize=2".to_owned(),
        };
        let page = acme.numbers(&query).await;
        let page = page.ok();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        for item in items {
            let sid = PhoneNumberSid::parse(item["numberId"].as_str().unwrap()).unwrap();
            let live = emu.number(&sid).expect("a number the emulator holds");
            assert_eq!(item["e164"], live.phone_number.as_str());
            assert_eq!(item["friendlyName"], live.friendly_name.as_str());
            assert_eq!(item["voiceCapable"], true);
            assert_eq!(item["routeId"], Value::Null);
            assert_eq!(item["connection"], Value::Null);
            seen.push(sid);
        }
        cursor = page["nextCursor"].as_str().map(ToOwned::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>(),
        carrier.numbers.iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(seen.len(), carrier.numbers.len(), "a number listed twice");
    let e164 = emu.number(&pn).unwrap().phone_number;
    let filtered = acme
        .numbers(&format!("phoneNumber={}", e164.replace('+', "%2B")))
        .await;
    assert_eq!(sids(&filtered.ok()["items"]), [pn.to_string()]);
    only_reads(&emu);

    // --- connect.
    let routing = json!({
        "agentName": "support-agent",
        "metadata": "{\"tier\":\"gold\"}",
        "attributes": {"team": "sales"},
        "dispatchMode": "webhook",
    });
    let c = acme.connect(&pn, &json!({"routing": routing})).await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(c["numberId"], pn.as_str());
    assert_eq!(c["e164"], e164.as_str());
    assert_eq!(c["trunkStrategy"], "shared");
    assert_eq!(c["sipTarget"], SIP_TARGET);
    assert_eq!(c["routing"], routing);
    assert_eq!(action(&c, "trunk"), "created");
    assert_eq!(action(&c, "originationUrl"), "created");
    assert_eq!(action(&c, "attachment"), "created");
    assert_eq!(action(&c, "voiceConfig"), "created");
    assert_eq!(action(&c, "livekitTrunk"), "skipped");
    assert_eq!(c["livekit"], json!({}));
    let trunk = trunk_of(&c);
    let trunks = emu.trunks(&carrier.account.sid);
    assert_eq!(trunks.len(), 1, "{trunks:?}");
    assert_eq!(trunks[0].sid, trunk);
    assert!(
        trunks[0]
            .friendly_name
            .as_deref()
            .is_some_and(|n| n.starts_with("trunkline-shared-")),
        "{trunks:?}"
    );
    let urls = emu.origination_urls(&trunk);
    assert_eq!(urls.len(), 1, "{urls:?}");
    assert_eq!(urls[0].sip_url, SIP_TARGET);
    assert!(urls[0].enabled);
    assert_eq!(
        c["originationTargets"],
        json!([{"id": urls[0].sid.as_str(), "sipUrl": SIP_TARGET, "priority": 10, "weight": 10}])
    );
    assert_eq!(emu.number(&pn).unwrap().trunk_sid, Some(trunk.clone()));
    assert_eq!(emu.trunk_numbers(&trunk), std::slice::from_ref(&pn));

    // The listing now says how trunkline connected it.
    let listed = acme
        .numbers(&format!("phoneNumber={}", e164.replace('+', "%2B")))
        .await;
    let item = &listed.ok()["items"][0];
    assert_eq!(item["routeId"], trunk.as_str());
    assert_eq!(
        item["connection"],
        json!({"connectionId": c["connectionId"], "status": "connected",
            "trunkStrategy": "shared", "routeId": trunk.as_str()})
    );

    // --- status: everything read live agrees with what was stored.
    let s = acme.status(&pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["credentials"]["ok"], true, "{s}");
    assert_eq!(s["credentials"]["capabilities"]["trunking"], "available");
    assert_eq!(s["number"]["ok"], true);
    assert_eq!(s["number"]["routeId"], trunk.as_str());
    assert_eq!(s["trunk"]["ok"], true);
    assert_eq!(s["trunk"]["exists"], true);
    assert_eq!(s["trunk"]["routeId"], trunk.as_str());
    assert_eq!(s["routeTargets"]["items"][0]["id"], urls[0].sid.as_str());
    assert_eq!(s["routeTargets"]["items"][0]["sipUrl"], SIP_TARGET);
    assert!(
        s["livekitTrunk"]["skipped"]
            .as_str()
            .is_some_and(|m| m.contains("LiveKit")),
        "{s}"
    );
    assert_eq!(s["connection"]["connectionId"], c["connectionId"]);
    assert_eq!(s["connection"]["status"], "connected");
    assert_eq!(s["connection"]["routing"], routing);
    assert_eq!(s["connection"]["routeCreated"], true);
    assert_eq!(s["drifts"], json!([]), "{s}");

    // --- disconnect: off the trunk, the shared trunk stays, the connection is history.
    let d = acme.disconnect(&pn, &Value::Null).await;
    let d = d.ok().clone();
    assert_eq!(d["status"], "disconnected", "{d}");
    assert_eq!(d["alreadyDisconnected"], false);
    assert_eq!(d["connectionId"], c["connectionId"]);
    assert_eq!(action(&d, "attachment"), "deleted");
    assert_eq!(emu.number(&pn).unwrap().trunk_sid, None);
    assert!(emu.trunk(&trunk).is_some(), "a shared trunk is kept");
    assert!(emu.trunk_numbers(&trunk).is_empty());
    let d2 = acme
        .disconnect(&pn, &json!({"restoreVoiceConfig": false}))
        .await;
    assert_eq!(d2.ok()["alreadyDisconnected"], true);
    assert_eq!(d2.body["steps"], json!([]));
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["connection"]["status"], "disconnected");
    assert_eq!(s.body["number"]["routeId"], Value::Null);
    assert_eq!(s.body["drifts"], json!([]), "{}", s.body);

    // --- audit: who did what, newest first, with the request ids of the answers.
    let audit = acme.audit("").await;
    let items = audit.ok()["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "number.disconnected",
            "number.connected",
            "credentials.saved",
            "credentials.saved",
            "credentials.verified",
        ]
    );
    assert_eq!(items[1]["details"]["numberId"], pn.as_str());
    assert_eq!(items[1]["details"]["routeId"], trunk.as_str());
    assert_eq!(items[1]["actor"]["subject"], "user-of-acme");
    assert_eq!(items[2]["details"]["keyId"], carrier.key.sid.as_str());
    for e in &items {
        assert!(
            e["requestId"].as_str().is_some_and(|r| !r.is_empty()),
            "{e}"
        );
        assert_eq!(e["provider"], "twilio");
    }
    assert_eq!(
        acme.audit("limit=2").await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // --- delete credentials: gone from trunkline, carrier configuration untouched.
    let del = acme.delete_credentials().await;
    let del = del.ok();
    assert_eq!(del["deleted"], true);
    assert_eq!(del["carrierConfigurationLeftInPlace"], true);
    assert!(
        del["message"]
            .as_str()
            .is_some_and(|m| m.contains("left as it is")),
        "{del}"
    );
    assert!(emu.trunk(&trunk).is_some());
    assert_eq!(emu.origination_urls(&trunk).len(), 1);
    acme.numbers("")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    assert_eq!(acme.delete_credentials().await.ok()["deleted"], false);
    let audit = acme.audit("limit=1").await;
    assert_eq!(audit.ok()["items"][0]["action"], "credentials.deleted");

    assert_no_secrets(&server, &transcript, &carrier.secrets());
    // Phone numbers are personal data: the logs only ever carry them masked.
    let logs = server.stderr();
    assert!(!logs.contains(&e164), "an unmasked phone number was logged");
    let masked = format!(
        "{}{}{}",
        &e164[..2],
        "*".repeat(e164.len() - 4),
        &e164[e164.len() - 2..]
    );
    assert!(logs.contains(&masked), "connect logs the masked number");
    drop(backend);
}

async fn connect_is_idempotent_and_strategies_hold(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 4);
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let n = &carrier.numbers;

    // Two targets for high availability; connect twice.
    let body = json!({"originationTargets": [
        {"sipUrl": "sip:b.lk.e2e.test;transport=tcp", "priority": 20, "weight": 5},
        {"sipUrl": "sip:a.lk.e2e.test", "priority": 10, "weight": 30},
    ]});
    let first = acme.connect(&n[0], &body).await;
    let first = first.ok().clone();
    assert_eq!(
        first["sipTarget"], "sip:a.lk.e2e.test",
        "lowest priority is primary"
    );
    assert_eq!(
        steps(&first)
            .iter()
            .filter(|(s, a)| s == "originationUrl" && a == "created")
            .count(),
        2
    );
    let mark = emu.requests().len();
    let second = acme.connect(&n[0], &body).await;
    let second = second.ok().clone();
    only_reads_since(&emu, mark);
    for (step, act) in steps(&second) {
        assert!(
            matches!(act.as_str(), "reused" | "skipped"),
            "{step} was {act} on a repeated connect: {second}"
        );
    }
    for field in ["connectionId", "routeId", "originationTargets", "sipTarget"] {
        assert_eq!(first[field], second[field], "{field}");
    }
    let shared = trunk_of(&first);
    let urls = emu.origination_urls(&shared);
    let mut live: Vec<(String, u16, u16)> = urls
        .iter()
        .map(|u| (u.sip_url.clone(), u.priority, u.weight))
        .collect();
    live.sort();
    assert_eq!(
        live,
        [
            ("sip:a.lk.e2e.test".to_owned(), 10, 30),
            ("sip:b.lk.e2e.test;transport=tcp".to_owned(), 20, 5)
        ]
    );
    assert_eq!(emu.trunk_numbers(&shared), [n[0].clone()]);

    // `shared`: a second number goes on the same trunk.
    let other = acme.connect(&n[1], &body).await;
    assert_eq!(trunk_of(other.ok()), shared);
    assert_eq!(action(&other.body, "trunk"), "reused");
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 1);
    assert_eq!(emu.origination_urls(&shared).len(), 2);
    let on_shared: BTreeSet<_> = emu.trunk_numbers(&shared).into_iter().collect();
    assert_eq!(
        on_shared,
        [n[0].clone(), n[1].clone()].into_iter().collect()
    );

    // `dedicated`: one trunk per number, each with its own origination URL.
    let dedicated = json!({"trunkStrategy": "dedicated"});
    let d2 = acme.connect(&n[2], &dedicated).await;
    let d3 = acme.connect(&n[3], &dedicated).await;
    let (t2, t3) = (trunk_of(d2.ok()), trunk_of(d3.ok()));
    assert_ne!(t2, t3);
    assert_ne!(t2, shared);
    assert_eq!(d2.body["trunkStrategy"], "dedicated");
    for (trunk, number) in [(&t2, &n[2]), (&t3, &n[3])] {
        let t = emu.trunk(trunk).unwrap();
        assert_eq!(
            t.friendly_name.as_deref(),
            Some(format!("trunkline-dedicated-{number}").as_str())
        );
        assert_eq!(emu.trunk_numbers(trunk), std::slice::from_ref(number));
        let urls = emu.origination_urls(trunk);
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].sip_url, SIP_TARGET);
    }
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 3);
    let again = acme.connect(&n[2], &dedicated).await;
    assert_eq!(trunk_of(again.ok()), t2);
    assert_eq!(action(&again.body, "trunk"), "reused");
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 3);
    // Four numbers, three trunks, 2 + 1 + 1 origination URLs: one create each, ever.
    assert_eq!(emu.count(Route::CreateTrunk), 3);
    assert_eq!(emu.count(Route::CreateOriginationUrl), 4);
    assert_eq!(
        emu.count(Route::CreatePhoneNumber),
        4,
        "one attachment per number"
    );
    let total_urls: usize = trunkline_trunks(&emu, &carrier)
        .iter()
        .map(|t| emu.origination_urls(&t.sid).len())
        .sum();
    assert_eq!(total_urls, 4);

    // A dedicated trunk left empty is removed on disconnect; the shared one is kept.
    let d = acme.disconnect(&n[3], &Value::Null).await;
    assert_eq!(action(d.ok(), "trunk"), "deleted");
    assert!(emu.trunk(&t3).is_none());
    acme.disconnect(&n[0], &Value::Null).await.ok();
    acme.disconnect(&n[1], &Value::Null).await.ok();
    assert!(emu.trunk(&shared).is_some());
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}

async fn carrier_refusals_have_their_codes(backend: Backend) {
    let emu = emulator();
    let acme_carrier = Carrier::new(&emu, "Acme Inc", 3);
    let settings = Settings::new(&emu, &backend);
    let server = settings.start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let n = &acme_carrier.numbers;
    let mut secrets = acme_carrier.secrets();

    // A wrong secret: the verdict on verify, an error on save, nothing stored.
    let wrong = "wrong-secret-0123456789";
    secrets.push(wrong.to_owned());
    let bad = json!({
        "accountSid": acme_carrier.account.sid.as_str(),
        "apiKeySid": acme_carrier.key.sid.as_str(),
        "apiKeySecret": wrong,
    });
    let v = acme.verify(&bad).await;
    assert_eq!(v.ok()["ok"], false);
    assert_eq!(v.body["errorCode"], "AUTH_INVALID");
    acme.save(&bad).await.expect(422, Some("AUTH_INVALID"));
    acme.numbers("")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    // Another account's key with this account's SID is not valid for this account.
    let stranger = Carrier::new(&emu, "Stranger", 0);
    secrets.extend(stranger.secrets());
    let mixed = json!({
        "accountSid": acme_carrier.account.sid.as_str(),
        "apiKeySid": stranger.key.sid.as_str(),
        "apiKeySecret": stranger.key.secret,
    });
    assert_eq!(acme.verify(&mixed).await.ok()["errorCode"], "AUTH_INVALID");

    // The account's auth token works too, and may read the account's name.
    let by_token = json!({
        "accountSid": acme_carrier.account.sid.as_str(),
        "authToken": acme_carrier.account.auth_token,
    });
    let v = acme.verify(&by_token).await;
    assert_eq!(v.ok()["ok"], true, "{}", v.body);
    assert_eq!(v.body["friendlyName"], "Acme Inc");

    // A key without trunking permission verifies (and says so) but cannot connect.
    let restricted = emu.add_api_key(&acme_carrier.account.sid, false);
    secrets.push(restricted.secret.clone());
    let v = acme.verify(&key_body(&restricted)).await;
    assert_eq!(v.ok()["ok"], true);
    assert_eq!(
        v.body["capabilities"],
        json!({"numbers": "available", "trunking": "forbidden"})
    );
    let saved = acme.save(&key_body(&restricted)).await;
    assert_eq!(saved.ok()["capabilities"]["trunking"], "forbidden");
    acme.connect(&n[0], &Value::Null)
        .await
        .expect(422, Some("INSUFFICIENT_PERMISSIONS"));
    assert!(emu.trunks(&acme_carrier.account.sid).is_empty());
    assert_eq!(emu.number(&n[0]).unwrap().trunk_sid, None);

    // An account without Elastic SIP Trunking.
    let plain = emu.add_account_without_trunking("No Trunking LLC");
    let plain_key = emu.add_api_key(&plain.sid, true);
    let plain_numbers = emu.seed_numbers(&plain.sid, 1);
    secrets.extend([plain_key.secret.clone(), plain.auth_token.clone()]);
    let initech = Client::new(&server, token("initech", &["customer"]), &transcript);
    let v = initech.verify(&key_body(&plain_key)).await;
    assert_eq!(
        v.ok()["capabilities"]["trunking"],
        "not_enabled",
        "{}",
        v.body
    );
    initech.save(&key_body(&plain_key)).await.ok();
    initech
        .connect(&plain_numbers[0].sid, &Value::Null)
        .await
        .expect(409, Some("TRUNKING_NOT_ENABLED"));

    // Back to the Standard key: unknown numbers and another account's numbers.
    acme.save(&acme_carrier.key_body()).await.ok();
    let unknown = PhoneNumberSid::parse("PNffffffffffffffffffffffffffffffff").unwrap();
    acme.connect(&unknown, &Value::Null)
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    acme.status(&unknown, "")
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    acme.connect(&plain_numbers[0].sid, &Value::Null)
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));

    // SIP targets Twilio cannot dial, or that are not plain `sip:` host URIs.
    for (body, field) in [
        (json!({"sipTarget": "sips:secure.lk.e2e.test"}), "sipTarget"),
        (json!({"sipTarget": "sip:agent@lk.e2e.test"}), "sipTarget"),
        (json!({"sipTarget": "https://lk.e2e.test"}), "sipTarget"),
        (
            json!({"originationTargets": [{"sipUrl": "sip:ok.e2e.test"}, {"sipUrl": "sip:bad host"}]}),
            "originationTargets[1].sipUrl",
        ),
        (
            json!({"originationTargets": [{"sipUrl": "sip:a.e2e.test"}, {"sipUrl": "sip:a.e2e.test"}]}),
            "listed twice",
        ),
    ] {
        acme.connect(&n[0], &body)
            .await
            .expect(400, Some("INVALID_SIP_TARGET"))
            .names_field(field);
    }
    assert!(trunkline_trunks(&emu, &acme_carrier).is_empty());

    // A number on a trunk trunkline did not create: refused, then moved with `force`.
    let pbx = emu.add_trunk(&acme_carrier.account.sid, Some("Acme PBX"));
    assert!(emu.attach_number(&pbx, &n[1]));
    let refused = acme.connect(&n[1], &Value::Null).await;
    refused.expect(409, Some("NUMBER_IN_USE"));
    assert!(
        refused.body["message"].as_str().unwrap().contains("force"),
        "{}",
        refused.body
    );
    assert_eq!(emu.number(&n[1]).unwrap().trunk_sid, Some(pbx.clone()));
    assert!(
        trunkline_trunks(&emu, &acme_carrier).is_empty(),
        "nothing created"
    );
    let forced = acme.connect(&n[1], &json!({"force": true})).await;
    let ours = trunk_of(forced.ok());
    assert_eq!(action(&forced.body, "attachment"), "moved");
    assert_eq!(emu.number(&n[1]).unwrap().trunk_sid, Some(ours.clone()));
    assert!(
        emu.trunk(&pbx).is_some(),
        "the foreign trunk is never deleted"
    );
    assert!(emu.trunk_numbers(&pbx).is_empty());
    // Connecting again does not bounce it anywhere.
    let again = acme.connect(&n[1], &Value::Null).await;
    assert_eq!(action(again.ok(), "attachment"), "reused");

    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn disconnect_restores_the_previous_voice_configuration(backend: Backend) {
    let emu = emulator();
    let account = emu.add_account("Acme Inc");
    let key = emu.add_api_key(&account.sid, true);
    let app = ApplicationSid::parse("AP0123456789abcdef0123456789abcdef").unwrap();
    let hook_password = "hook-password-0123456789";
    let voice = |i: usize, with_credentials: bool| VoiceConfig {
        voice_url: Some(if with_credentials {
            format!("https://hooks:{hook_password}@ivr.e2e.test/voice/{i}")
        } else {
            format!("https://ivr.e2e.test/voice/{i}")
        }),
        voice_method: Some("GET".to_owned()),
        voice_fallback_url: Some(format!("https://ivr.e2e.test/fallback/{i}")),
        voice_fallback_method: Some("POST".to_owned()),
        voice_application_sid: Some(app.clone()),
        status_callback: None,
    };
    let restored_voice = voice(0, false);
    let kept_voice = voice(1, true);
    let n0 = emu.add_number(
        &account.sid,
        &E164::parse("+14155550140").unwrap(),
        &restored_voice,
    );
    let n1 = emu.add_number(
        &account.sid,
        &E164::parse("+14155550141").unwrap(),
        &kept_voice,
    );
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&key_body(&key)).await.ok();

    for n in [&n0, &n1] {
        acme.connect(n, &json!({"trunkStrategy": "dedicated"}))
            .await
            .ok();
        // Twilio's side effect of attaching: the voice application is dropped.
        assert_eq!(emu.number(n).unwrap().voice.voice_application_sid, None);
    }
    let s = acme.status(&n1, "").await;
    let previous = &s.ok()["connection"]["previousRouting"];
    assert_eq!(previous["voiceApplicationSid"], app.as_str());
    assert_eq!(
        previous["voiceUrl"], "https://***@ivr.e2e.test/voice/1",
        "credentials in a stored URL are never answered"
    );

    let d = acme
        .disconnect(&n0, &json!({"restoreVoiceConfig": true}))
        .await;
    assert_eq!(action(d.ok(), "voiceConfig"), "restored");
    assert_eq!(action(&d.body, "trunk"), "deleted");
    let live = emu.number(&n0).unwrap();
    assert_eq!(live.trunk_sid, None);
    assert_eq!(
        live.voice, restored_voice,
        "the previous voice configuration is back"
    );

    let d = acme.disconnect(&n1, &Value::Null).await;
    assert!(
        steps(d.ok()).iter().all(|(s, _)| s != "voiceConfig"),
        "{}",
        d.body
    );
    let live = emu.number(&n1).unwrap();
    assert_eq!(live.trunk_sid, None);
    assert_eq!(
        live.voice.voice_application_sid, None,
        "without restore the number keeps what attaching left"
    );
    assert!(
        emu.trunks(&account.sid).is_empty(),
        "both dedicated trunks removed"
    );

    let mut secrets = vec![key.secret.clone(), account.auth_token.clone()];
    secrets.push(hook_password.to_owned());
    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn customers_are_isolated_and_support_only_reads(backend: Backend) {
    let emu = emulator();
    let a = Carrier::new(&emu, "Acme Inc", 2);
    let b = Carrier::new(&emu, "Globex", 1);
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let globex = Client::new(&server, token("globex", &["customer"]), &transcript);
    let support = Client::new(&server, token("helpdesk", &["support"]), &transcript);
    acme.save(&a.key_body()).await.ok();
    let connected = acme.connect(&a.numbers[0], &Value::Null).await;
    let a_trunk = trunk_of(connected.ok());
    let a_state = || {
        (
            emu.number(&a.numbers[0]).unwrap(),
            emu.number(&a.numbers[1]).unwrap(),
            emu.trunks(&a.account.sid),
            emu.origination_urls(&a_trunk),
        )
    };
    let before = a_state();
    let pn = &a.numbers[0];

    // Globex without credentials of its own: none of Acme's ids exist for it.
    globex
        .status(pn, "")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    globex
        .connect(pn, &Value::Null)
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    globex
        .disconnect(pn, &Value::Null)
        .await
        .expect(404, Some("NOT_CONNECTED"));
    globex
        .numbers("")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    assert_eq!(globex.audit("").await.ok()["items"], json!([]));
    assert_eq!(globex.delete_credentials().await.ok()["deleted"], false);
    // Naming another customer is for support only.
    globex
        .status(pn, "customerId=acme")
        .await
        .expect(403, Some("FORBIDDEN"));
    globex
        .numbers("customerId=acme")
        .await
        .expect(403, Some("FORBIDDEN"));
    globex
        .audit("customerId=acme")
        .await
        .expect(403, Some("FORBIDDEN"));

    // With its own credentials, Acme's numbers are still not Globex's.
    globex.save(&b.key_body()).await.ok();
    globex
        .status(pn, "")
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    globex
        .connect(pn, &Value::Null)
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    globex
        .disconnect(pn, &Value::Null)
        .await
        .expect(404, Some("NOT_CONNECTED"));
    let listed = globex.numbers("").await;
    assert_eq!(sids(&listed.ok()["items"]), [b.numbers[0].to_string()]);
    assert!(
        globex.audit("").await.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["details"]["numberId"] != pn.as_str()),
    );

    // Support reads Acme's numbers, status and audit trail...
    let s = support.status(pn, "customerId=acme").await;
    assert_eq!(s.ok()["connection"]["routeId"], a_trunk.as_str());
    let listed = support.numbers("customerId=acme").await;
    assert_eq!(listed.ok()["items"].as_array().unwrap().len(), 2);
    let audit = support.audit("customerId=acme").await;
    assert_eq!(audit.ok()["items"][0]["action"], "number.connected");
    support
        .status(pn, "")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));
    // ...and changes nothing, for anyone.
    for query in ["", "?customerId=acme"] {
        let forbidden = [
            support
                .call(
                    Method::POST,
                    &format!("{TWILIO}/numbers/{}/connect{query}", a.numbers[1]),
                    &Value::Null,
                )
                .await,
            support
                .call(
                    Method::POST,
                    &format!("{TWILIO}/numbers/{pn}/disconnect{query}"),
                    &Value::Null,
                )
                .await,
            support
                .call(
                    Method::POST,
                    &format!("{TWILIO}/credentials{query}"),
                    &a.key_body(),
                )
                .await,
            support
                .call(
                    Method::POST,
                    &format!("{TWILIO}/credentials:verify{query}"),
                    &a.key_body(),
                )
                .await,
            support
                .call(
                    Method::DELETE,
                    &format!("{TWILIO}/credentials{query}"),
                    &Value::Null,
                )
                .await,
        ];
        for reply in forbidden {
            reply.expect(403, Some("FORBIDDEN"));
        }
    }
    assert_eq!(a_state(), before, "Acme's carrier state changed");
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["connection"]["status"], "connected");
    assert_eq!(s.body["drifts"], json!([]));
    // Acme's trail holds no event of Globex's or support's.
    let audit = acme.audit("").await;
    for e in audit.ok()["items"].as_array().unwrap() {
        assert_eq!(e["actor"]["subject"], "user-of-acme", "{e}");
    }

    let mut secrets = a.secrets();
    secrets.extend(b.secrets());
    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn status_reports_drift_and_connect_repairs_it(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    let first = acme.connect(pn, &Value::Null).await;
    let trunk = trunk_of(first.ok());

    // Someone adds an origination URL, then deletes the trunk, in the Twilio console.
    emu.add_origination_url(&trunk, "sip:pbx.other.test", 5, 5)
        .unwrap();
    let s = acme.status(pn, "").await;
    let kinds: Vec<&str> = s.ok()["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["origination_url_unexpected"], "{}", s.body);
    assert!(emu.remove_trunk(&trunk));
    let s = acme.status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["trunk"], json!({"ok": true, "exists": false}), "{s}");
    assert_eq!(s["number"]["routeId"], Value::Null);
    let kinds: BTreeSet<&str> = s["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("trunk_missing") && kinds.contains("number_not_on_trunk"),
        "{s}"
    );
    // The originationUrls read failed (its trunk is gone); the rest was still read.
    assert_eq!(s["routeTargets"]["ok"], false, "{s}");
    assert_eq!(s["credentials"]["ok"], true);

    // Connecting again repairs it: a new trunk, URL and attachment; no drift left.
    let repaired = acme.connect(pn, &Value::Null).await;
    let new_trunk = trunk_of(repaired.ok());
    assert_ne!(new_trunk, trunk);
    assert_eq!(action(&repaired.body, "trunk"), "created");
    assert_eq!(emu.number(pn).unwrap().trunk_sid, Some(new_trunk.clone()));
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}

// ---------------------------------------------------------------------------------------
// Validation (the database plays no part: SQLite only)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_input_is_refused_naming_the_field() {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    let backend = Backend::Sqlite;
    let server = Settings::new(&emu, &backend).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    emu.reset_requests();
    let pn = carrier.numbers[0].to_string();
    let ac = carrier.account.sid.as_str();
    let sk = carrier.key.sid.as_str();
    let connect = format!("{TWILIO}/numbers/{pn}/connect");

    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            format!("{TWILIO}/credentials:verify"),
            json!({"apiKeySid": sk, "apiKeySecret": "x"}),
            "accountSid",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials:verify"),
            json!({"accountSid": "AC123", "authToken": "x"}),
            "accountSid",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials:verify"),
            json!({"accountSid": ac, "apiKeySid": "SK1", "apiKeySecret": "x"}),
            "apiKeySid",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials:verify"),
            json!({"accountSid": ac, "apiKeySid": sk}),
            "apiKeySecret",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials:verify"),
            json!({"accountSid": ac, "apiKeySid": sk, "apiKeySecret": 12345}),
            "apiKeySecret",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials"),
            json!({"accountSid": ac, "authToken": "t", "region": "ie1"}),
            "region",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials"),
            // Half of an API key with an auth token (all three is a form: voice-URL mode).
            json!({"accountSid": ac, "apiKeySid": sk, "authToken": "t"}),
            "authToken",
        ),
        (
            Method::POST,
            format!("{TWILIO}/credentials"),
            json!("credentials"),
            "body",
        ),
        (
            Method::POST,
            "/telephony/providers/plivo/credentials".to_owned(),
            json!({"accountSid": ac, "authToken": "t"}),
            "provider",
        ),
        (
            Method::GET,
            format!("{TWILIO}/numbers?pageSize=0"),
            Value::Null,
            "pageSize",
        ),
        (
            Method::GET,
            format!("{TWILIO}/numbers?pageSize=many"),
            Value::Null,
            "pageSize",
        ),
        (
            Method::GET,
            format!("{TWILIO}/numbers?phoneNumber=4155550100"),
            Value::Null,
            "phoneNumber",
        ),
        (
            Method::GET,
            format!("{TWILIO}/numbers?cursor=not-a-cursor"),
            Value::Null,
            "cursor",
        ),
        (
            Method::POST,
            format!("{TWILIO}/numbers/PN123/connect"),
            Value::Null,
            "numberId",
        ),
        (
            Method::GET,
            format!("{TWILIO}/numbers/TK0123456789abcdef0123456789abcdef/status"),
            Value::Null,
            "numberId",
        ),
        (
            Method::POST,
            format!("{TWILIO}/numbers/PN123/disconnect"),
            Value::Null,
            "numberId",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"trunkStrategy": "both"}),
            "trunkStrategy",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"force": "yes"}),
            "force",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"sip_target": "sip:x.e2e.test"}),
            "sip_target",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"routing": {"agentName": ""}}),
            "routing.agentName",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"routing": {"agentName": "a", "dispatchMode": "always"}}),
            "routing.dispatchMode",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"routing": {"dispatchMode": "rule"}}),
            "routing.agentName",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"routing": {"metadata": "x".repeat(17 * 1024)}}),
            "routing.metadata",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"routing": {"attributes": {"": "v"}}}),
            "routing.attributes",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"originationTargets": [{"sipUrl": "sip:a.e2e.test", "priority": 70000}]}),
            "originationTargets[0].priority",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"originationTargets": [{"sipUrl": "sip:a.e2e.test", "weight": 0}]}),
            "originationTargets[0].weight",
        ),
        (
            Method::POST,
            connect.clone(),
            json!({"originationTargets": [{"url": "sip:a.e2e.test"}]}),
            "originationTargets[0]",
        ),
        (
            Method::POST,
            format!("{TWILIO}/numbers/{pn}/disconnect"),
            json!({"restoreVoiceConfig": "yes"}),
            "restoreVoiceConfig",
        ),
        (
            Method::GET,
            "/telephony/audit?limit=0".to_owned(),
            Value::Null,
            "limit",
        ),
        (
            Method::GET,
            "/telephony/audit?limit=lots".to_owned(),
            Value::Null,
            "limit",
        ),
    ];
    for (method, path, body, field) in cases {
        let reply = acme.call(method.clone(), &path, &body).await;
        assert_eq!(
            reply.status.as_u16(),
            400,
            "{method} {path}: {}",
            reply.body
        );
        reply
            .expect(400, Some("VALIDATION_FAILED"))
            .names_field(field);
    }
    // A body that is not JSON at all, and one of the wrong type.
    let res = server
        .client()
        .post(server.url(&connect))
        .bearer_auth(&acme.token)
        .header("content-type", "text/plain")
        .body("force=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // None of it reached Twilio.
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
    assert_no_secrets(&server, &transcript, &carrier.secrets());
}

#[tokio::test]
async fn sip_target_rules_follow_the_server_configuration() {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    let backend = Backend::Sqlite;
    let server = Settings::new(&emu, &backend)
        .with("TRUNKLINE_ALLOW_SIP_TARGET_OVERRIDE", "false")
        .with("TRUNKLINE_SIP_TARGET", "")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    acme.connect(pn, &Value::Null)
        .await
        .expect(503, Some("NOT_CONFIGURED"))
        .names_field("TRUNKLINE_SIP_TARGET");
    acme.connect(pn, &json!({"sipTarget": "sip:mine.e2e.test"}))
        .await
        .expect(400, Some("INVALID_SIP_TARGET"));
    acme.connect(
        pn,
        &json!({"originationTargets": [{"sipUrl": "sip:mine.e2e.test"}]}),
    )
    .await
    .expect(400, Some("INVALID_SIP_TARGET"));
    assert!(emu.trunks(&carrier.account.sid).is_empty());
}

/// Everything the server prints, at debug level, through a whole session with API keys,
/// an auth token, refused secrets and LiveKit configured (its API secret signs every
/// LiveKit request): no secret, no `Authorization` value, ever.
#[tokio::test]
async fn secrets_appear_in_no_answer_and_no_log_line() {
    let emu = emulator();
    let lk = support::livekit::livekit_emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 2);
    let backend = Backend::Sqlite;
    let vault = support::vault_key();
    let server = Settings::new(&emu, &backend)
        .with_livekit(&lk)
        .with("RUST_LOG", "debug")
        .with("TRUNKLINE_VAULT_KEYS", &format!("k9:{vault}"))
        .with("TRUNKLINE_VAULT_ACTIVE_KEY", "k9")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let wrong = "definitely-not-the-secret-42";
    let mut secrets = carrier.secrets();
    secrets.extend([
        wrong.to_owned(),
        vault.clone(),
        acme.token.clone(),
        lk.api_secret().to_owned(),
    ]);

    let mut bad = carrier.key_body();
    bad["apiKeySecret"] = json!(wrong);
    acme.verify(&bad).await.ok();
    acme.save(&bad).await.expect(422, Some("AUTH_INVALID"));
    acme.verify(&json!({"accountSid": carrier.account.sid.as_str(),
        "authToken": carrier.account.auth_token}))
        .await
        .ok();
    acme.save(&json!({"accountSid": carrier.account.sid.as_str(),
        "authToken": carrier.account.auth_token}))
        .await
        .ok();
    acme.save(&carrier.key_body()).await.ok();
    // Malformed bodies carrying the secret: the error message must not echo it.
    let mut typo = carrier.key_body();
    typo["apiKeySecrets"] = json!(carrier.key.secret);
    acme.save(&typo)
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    let mut wrong_type = carrier.key_body();
    wrong_type["apiKeySid"] = json!(carrier.key.secret);
    acme.save(&wrong_type)
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    let pn = &carrier.numbers[0];
    let connected = acme.connect(pn, &Value::Null).await;
    assert_eq!(action(connected.ok(), "livekitTrunk"), "created");
    acme.status(pn, "").await.ok();
    acme.numbers("").await.ok();
    let e164 = emu.number(pn).unwrap().phone_number;
    let encoded = e164.replace('+', "%2B");
    acme.numbers(&format!("phoneNumber={encoded}")).await.ok();
    acme.audit("").await.ok();
    acme.disconnect(pn, &json!({"restoreVoiceConfig": true}))
        .await
        .ok();
    acme.delete_credentials().await.ok();

    // The server did log at debug level (the search covered real output).
    let logs = server.stderr();
    assert!(logs.contains("\"level\":\"DEBUG\""), "no debug output");
    assert_no_secrets(&server, &transcript, &secrets);
    // Phone numbers only ever masked, even at debug level and when a query carried one.
    for form in [e164.as_str(), encoded.as_str(), &e164[1..]] {
        assert!(!logs.contains(form), "{form} was logged");
    }
}

/// Every step of an answer is `reused` or `skipped`.
#[track_caller]
fn nothing_done(answer: &Value) {
    for (step, act) in steps(answer) {
        assert!(
            matches!(act.as_str(), "reused" | "skipped"),
            "{step} was {act}: {answer}"
        );
    }
}

/// Issue 9, bugs 3 and 4: connect without a body resumes what is stored; a field given and
/// different is a change, listed and applied; going back to `shared` removes the emptied
/// dedicated trunk, and an orphan left by an earlier version goes with the next connect.
async fn a_rerun_keeps_what_is_stored_and_a_change_says_so(backend: Backend) {
    let emu = emulator();
    let lk = support::livekit::livekit_emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 2);
    let server = Settings::new(&emu, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];

    let first = acme
        .connect(
            pn,
            &json!({"routing": {"agentName": "a"}, "trunkStrategy": "dedicated"}),
        )
        .await;
    let first = first.ok().clone();
    assert_eq!(first["changes"], json!([]), "{first}");
    let dedicated = trunk_of(&first);

    // No body: a resume. Nothing stored changes, nothing is written anywhere.
    let mark = emu.requests().len();
    let lk_writes = |lk: &trunkline_testkit::livekit::LiveKitEmulator| {
        lk.count(trunkline_testkit::livekit::MethodSelector::Writes)
    };
    let lk_mark = lk_writes(&lk);
    let rerun = acme.connect(pn, &Value::Null).await;
    let rerun = rerun.ok().clone();
    only_reads_since(&emu, mark);
    assert_eq!(
        lk_writes(&lk),
        lk_mark,
        "a resume writes nothing at LiveKit"
    );
    assert_eq!(rerun["routing"]["agentName"], "a", "{rerun}");
    assert_eq!(rerun["trunkStrategy"], "dedicated");
    assert_eq!(trunk_of(&rerun), dedicated);
    assert_eq!(rerun["changes"], json!([]));
    assert_eq!(action(&rerun, "voiceConfig"), "reused");
    nothing_done(&rerun);
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["connection"]["routing"]["agentName"], "a");

    // A given field that differs is a change: listed, and the step says `updated`.
    let changed = acme
        .connect(pn, &json!({"routing": {"agentName": "b"}}))
        .await;
    let changed = changed.ok().clone();
    assert_eq!(changed["changes"], json!(["routing"]), "{changed}");
    assert_eq!(action(&changed, "livekitRule"), "updated");
    assert_eq!(changed["routing"]["agentName"], "b");
    assert_eq!(changed["trunkStrategy"], "dedicated", "not given: kept");
    // `{}` clears the agent, explicitly.
    let cleared = acme.connect(pn, &json!({"routing": {}})).await;
    assert_eq!(cleared.ok()["changes"], json!(["routing"]));
    assert_eq!(cleared.body["routing"]["agentName"], Value::Null);

    // Back to `shared`: moved, and the dedicated trunk it left empty is gone with its URL.
    let shared = acme.connect(pn, &json!({"trunkStrategy": "shared"})).await;
    let shared = shared.ok().clone();
    assert_eq!(shared["changes"], json!(["trunkStrategy"]), "{shared}");
    assert_eq!(action(&shared, "attachment"), "moved");
    let trunk_steps: Vec<_> = steps(&shared)
        .into_iter()
        .filter(|(s, _)| s == "trunk")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(trunk_steps, ["created", "deleted"], "{shared}");
    assert!(
        emu.trunk(&dedicated).is_none(),
        "the emptied trunk is removed"
    );
    assert!(emu.origination_urls(&dedicated).is_empty());
    assert_eq!(trunkline_trunks(&emu, &carrier).len(), 1);
    assert_eq!(emu.number(pn).unwrap().trunk_sid, Some(trunk_of(&shared)));
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // An orphan an earlier version left behind goes with the next connect, then disconnect.
    let orphan_name = format!("trunkline-dedicated-{pn}");
    let orphan = emu.add_trunk(&carrier.account.sid, Some(&orphan_name));
    let again = acme.connect(pn, &Value::Null).await;
    assert_eq!(again.ok()["changes"], json!([]));
    assert!(emu.trunk(&orphan).is_none(), "{}", again.body);
    let orphan = emu.add_trunk(&carrier.account.sid, Some(&orphan_name));
    let d = acme.disconnect(pn, &Value::Null).await;
    assert!(
        steps(d.ok()).contains(&("trunk".to_owned(), "deleted".to_owned())),
        "{}",
        d.body
    );
    assert!(emu.trunk(&orphan).is_none());
    assert!(
        emu.trunk(&trunk_of(&shared)).is_some(),
        "the shared trunk stays"
    );

    // Input edges: both target fields, and LiveKit's attribute namespaces.
    let other = &carrier.numbers[1];
    acme.connect(
        other,
        &json!({"sipTarget": SIP_TARGET, "originationTargets": [{"sipUrl": SIP_TARGET}]}),
    )
    .await
    .expect(400, Some("VALIDATION_FAILED"))
    .names_field("sipTarget")
    .names_field("originationTargets");
    for key in ["sip.trunkPhoneNumber", "lk.agent.state"] {
        acme.connect(other, &json!({"routing": {"attributes": {key: "x"}}}))
            .await
            .expect(400, Some("VALIDATION_FAILED"))
            .names_field("routing.attributes");
    }
    assert_eq!(emu.number(other).unwrap().trunk_sid, None);
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}

/// Issue 9, bug 5: two customers saved one Twilio account. The second never takes the
/// first's connected number, `force` or not, never moves it at Twilio on the way, and never
/// sees the first's ids.
async fn two_customers_on_one_account_never_take_each_others_numbers(backend: Backend) {
    let emu = emulator();
    let lk = support::livekit::livekit_emulator();
    let carrier = Carrier::new(&emu, "Shared Inc", 1);
    let server = Settings::new(&emu, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    let initech = Client::new(&server, token("initech", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    initech.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];
    let a = acme
        .connect(pn, &json!({"routing": {"agentName": "a"}}))
        .await;
    let a = a.ok().clone();
    let a_trunk = trunk_of(&a);

    for body in [Value::Null, json!({"force": true})] {
        let mark = emu.requests().len();
        let refused = initech.connect(pn, &body).await;
        refused.expect(409, Some("NUMBER_IN_USE"));
        only_reads_since(&emu, mark);
        let message = refused.body["message"].as_str().unwrap();
        for foreign in [
            a["connectionId"].as_str().unwrap(),
            a["livekit"]["trunkId"].as_str().unwrap(),
            a["livekit"]["ruleId"].as_str().unwrap(),
            a_trunk.as_str(),
        ] {
            assert!(!message.contains(foreign), "{message} names {foreign}");
        }
        assert!(!message.contains("did not create"), "{message}");
        assert!(message.contains("disconnect"), "{message}");
    }
    assert_eq!(emu.number(pn).unwrap().trunk_sid, Some(a_trunk));
    let s = acme.status(pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);
    assert_eq!(s.body["connection"]["status"], "connected");
    initech
        .disconnect(pn, &Value::Null)
        .await
        .expect(404, Some("NOT_CONNECTED"));

    // Once Acme lets go, Initech may take it.
    acme.disconnect(pn, &Value::Null).await.ok();
    let taken = initech.connect(pn, &Value::Null).await;
    assert_eq!(taken.ok()["status"], "connected", "{}", taken.body);
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}

// ---------------------------------------------------------------------------------------
// Crash recovery and status part by part (issue 9)
// ---------------------------------------------------------------------------------------

use std::path::Path;
use std::time::{Duration, Instant};

use support::vault_key;
use trunkline_e2e::{ServerOptions, TestServer};
use trunkline_testkit::twilio::Fault;

on_both_backends!(
    a_crashed_connect_blocks_the_number_for_seconds_only,
    status_shows_each_part_on_its_own,
    status_counts_a_half_made_connect_as_incomplete,
);

/// A server over the data directory `dir`: a restarted instance finds its SQLite database
/// again (PostgreSQL is named by the settings).
async fn start_in(settings: &Settings, dir: &Path) -> TestServer {
    let mut opts = ServerOptions::default().data_dir(dir);
    for (k, v) in &settings.env {
        opts = opts.env(k, v);
    }
    TestServer::start_with(opts)
        .await
        .expect("trunkline starts")
}

fn kinds_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect()
}

fn retry_after_secs(reply: &support::Reply) -> u64 {
    reply
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("409 without Retry-After: {}", reply.body))
        .parse()
        .expect("Retry-After in whole seconds")
}

async fn a_crashed_connect_blocks_the_number_for_seconds_only(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    // Twilio slow enough that a connect holds the number's lease for a while.
    let settings = Settings::new(&emu, &backend).with("TRUNKLINE_TWILIO_TIMEOUT_MS", "30000");
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_in(&settings, dir.path()).await;
    let transcript = Transcript::default();
    let acme_token = token("acme", &["customer"]);
    let pn = carrier.numbers[0].clone();
    Client::new(&first, acme_token.clone(), &transcript)
        .save(&carrier.key_body())
        .await
        .ok();
    emu.inject(
        Route::FetchIncomingPhoneNumber,
        Fault::Latency(Duration::from_secs(20)),
    );
    let slow = tokio::spawn(
        first
            .client()
            .post(first.url(&format!("{TWILIO}/numbers/{pn}/connect")))
            .bearer_auth(&acme_token)
            .send(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.count(Route::FetchIncomingPhoneNumber) == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow connect never reached Twilio"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A second connect waits briefly for the running one, then is told when to retry.
    let asked = Instant::now();
    let busy = Client::new(&first, acme_token.clone(), &transcript)
        .connect(&pn, &Value::Null)
        .await;
    busy.expect(409, Some("CONFLICT"));
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    let after = retry_after_secs(&busy);
    assert!((1..=10).contains(&after), "Retry-After {after}");
    let message = busy.body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("retry in {after} s")),
        "{message}"
    );

    // The instance running the connect dies (kill -9); another takes over the database.
    first.stop();
    let _ = slow.await;
    emu.clear_faults();
    let killed = Instant::now();
    let second = start_in(&settings, dir.path()).await;
    let acme = Client::new(&second, acme_token.clone(), &transcript);
    let mut reply = acme.connect(&pn, &Value::Null).await;
    if reply.status.as_u16() == 409 {
        // At most once: by its Retry-After the dead instance's lease has expired.
        tokio::time::sleep(Duration::from_secs(retry_after_secs(&reply))).await;
        reply = acme.connect(&pn, &Value::Null).await;
    }
    assert_eq!(reply.ok()["status"], "connected");
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "the dead instance blocked the number for {:?}",
        killed.elapsed()
    );
    assert_no_secrets(&second, &transcript, &carrier.secrets());
    drop(backend);
}

async fn status_shows_each_part_on_its_own(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    let settings = Settings::new(&emu, &backend);
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_in(&settings, dir.path()).await;
    let transcript = Transcript::default();
    let acme_token = token("acme", &["customer"]);
    let pn = carrier.numbers[0].clone();
    let (integration, connection) = {
        let acme = Client::new(&server, acme_token.clone(), &transcript);
        let saved = acme.save(&carrier.key_body()).await;
        let integration = saved.ok()["integrationId"].as_str().unwrap().to_owned();
        let connected = acme.connect(&pn, &Value::Null).await;
        let connection = connected.ok()["connectionId"].as_str().unwrap().to_owned();

        // Twilio failing one read fails that part only.
        emu.inject(
            Route::FetchIncomingPhoneNumber,
            Fault::ServerError { count: 100 },
        );
        let s = acme.status(&pn, "").await;
        let s = s.ok();
        assert_eq!(s["number"]["ok"], false, "{s}");
        assert_eq!(s["number"]["errorCode"], "PROVIDER_UNAVAILABLE", "{s}");
        assert_eq!(s["credentials"]["ok"], true, "{s}");
        assert_eq!(s["trunk"]["ok"], true, "{s}");
        assert_eq!(s["connection"]["connectionId"], connection.as_str());
        emu.clear_faults();
        (integration, connection)
    };
    server.stop();

    // Restarted without the vault key that sealed the secret: it no longer opens.
    let rekeyed = settings
        .clone()
        .with("TRUNKLINE_VAULT_KEYS", &format!("e2e2:{}", vault_key()))
        .with("TRUNKLINE_VAULT_ACTIVE_KEY", "e2e2");
    let server = start_in(&rekeyed, dir.path()).await;
    let acme = Client::new(&server, acme_token.clone(), &transcript);
    let s = acme.status(&pn, "").await;
    let s = s.ok().clone();
    for part in ["credentials", "number", "trunk", "routeTargets"] {
        assert_eq!(s[part]["ok"], false, "{part}: {s}");
        assert_eq!(s[part]["errorCode"], "INTERNAL", "{part}: {s}");
    }
    assert_eq!(s["connection"]["connectionId"], connection.as_str(), "{s}");
    assert_eq!(s["connection"]["status"], "connected", "{s}");
    assert_eq!(s["drifts"], json!([]), "a read failure is not drift: {s}");
    // The log names the row (never the secret: checked below).
    let logs = server.stderr();
    let line = logs
        .lines()
        .find(|l| l.contains("stored credentials could not be opened"))
        .unwrap_or_else(|| panic!("no log line names the failure:\n{logs}"));
    assert!(
        line.contains(&integration) && line.contains(&connection),
        "{line}"
    );

    // Credentials deleted: the number still takes calls, and status still shows it.
    let deleted = acme.delete_credentials().await;
    deleted.ok();
    let s = acme.status(&pn, "").await;
    let s = s.ok().clone();
    for part in ["credentials", "number", "trunk", "routeTargets"] {
        assert_eq!(s[part]["errorCode"], "INTEGRATION_NOT_FOUND", "{part}: {s}");
    }
    let message = s["number"]["message"].as_str().unwrap();
    assert!(message.contains("credentials were deleted"), "{message}");
    assert_eq!(s["connection"]["status"], "connected", "{s}");
    assert_eq!(kinds_of(&s["drifts"]), ["credentials_missing"], "{s}");

    let mut secrets = carrier.secrets();
    secrets.extend(
        rekeyed
            .env
            .iter()
            .chain(&settings.env)
            .filter(|(k, _)| k == "TRUNKLINE_VAULT_KEYS")
            .map(|(_, v)| v.split_once(':').unwrap().1.to_owned()),
    );
    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn status_counts_a_half_made_connect_as_incomplete(backend: Backend) {
    let emu = emulator();
    let carrier = Carrier::new(&emu, "Acme Inc", 1);
    let server = Settings::new(&emu, &backend)
        .with("TRUNKLINE_TWILIO_TIMEOUT_MS", "2000")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.ok();
    let pn = &carrier.numbers[0];

    // Twilio creates the origination URL but its answer comes after trunkline gave up
    // waiting (creates are not retried): the URL exists, the connection does not record it.
    emu.inject(
        Route::CreateOriginationUrl,
        Fault::Latency(Duration::from_secs(4)),
    );
    let failed = acme.connect(pn, &Value::Null).await;
    failed.expect(503, Some("PROVIDER_UNAVAILABLE"));
    emu.clear_faults();
    let trunk = trunkline_trunks(&emu, &carrier)
        .first()
        .map(|t| t.sid.clone())
        .expect("the trunk was created");
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        if let Some(u) = emu.origination_urls(&trunk).first() {
            break u.sid.clone();
        }
        assert!(Instant::now() < deadline, "Twilio never created the URL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let s = acme.status(pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["connection"]["status"], "failed", "{s}");
    assert_eq!(kinds_of(&s["drifts"]), ["connect_incomplete"], "{s}");
    let message = s["drifts"][0]["message"].as_str().unwrap();
    assert!(message.contains(url.as_str()), "{message}");

    // Connecting again finishes it with the URL Twilio made; no drift is left. Without
    // LiveKit, both answers say that calls cannot reach an agent.
    let repaired = acme.connect(pn, &Value::Null).await;
    let repaired = repaired.ok().clone();
    assert_eq!(repaired["originationTargets"][0]["id"], url.as_str());
    assert_eq!(kinds_of(&repaired["warnings"]), ["livekit_not_configured"]);
    let s = acme.status(pn, "").await;
    let s = s.ok();
    assert_eq!(s["drifts"], json!([]), "{s}");
    assert_eq!(kinds_of(&s["warnings"]), ["livekit_not_configured"], "{s}");
    let warning = s["warnings"][0]["message"].as_str().unwrap();
    assert!(
        warning.contains("calls to this number cannot reach an agent"),
        "{warning}"
    );
    assert_eq!(emu.origination_urls(&trunk).len(), 1);
    assert_no_secrets(&server, &transcript, &carrier.secrets());
    drop(backend);
}
