//! Onboarding with Telnyx end to end: the real `trunkline` binary against the Telnyx and
//! LiveKit emulators over HTTP, on SQLite and on PostgreSQL. What the API answers is checked
//! against what the emulators hold, and every test ends by searching all answers and all
//! server output for the API keys it used.

#[macro_use]
mod support;

use std::collections::BTreeSet;

use futures::future::join_all;
use serde_json::{Value, json};
use trunkline_testkit::livekit::MethodSelector;
use trunkline_testkit::telnyx::{Fault, Route};

use support::livekit::{drift_kinds, livekit_emulator};
use support::telnyx::{Emulators, Tx, key_body};
use support::{Backend, Client, SIP_TARGET, Transcript, action, assert_no_secrets, steps, token};

on_both_backends!(
    happy_path,
    status_reports_drift_and_connect_repairs_it,
    refusals_have_their_codes,
    customers_are_isolated_and_support_reads,
    two_instances_connect_one_number_once,
);

/// The LiveKit SIP ingress host the server's default target names.
const SIP_HOST: &str = "ingress.livekit.e2e.test";

fn tx<'a>(
    server: &'a trunkline_e2e::TestServer,
    customer: &str,
    roles: &[&str],
    t: &Transcript,
) -> Tx<'a> {
    Tx(Client::new(server, token(customer, roles), t))
}

/// Every step of an answer is `reused` or `skipped`.
#[track_caller]
fn nothing_done(answer: &Value) {
    let all = steps(answer);
    assert!(!all.is_empty(), "{answer}");
    for (step, act) in all {
        assert!(
            matches!(act.as_str(), "reused" | "skipped"),
            "{step} was {act}: {answer}"
        );
    }
}

fn route_of(answer: &Value) -> String {
    answer["routeId"].as_str().expect("a routeId").to_owned()
}

async fn happy_path(backend: Backend) {
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let lk = livekit_emulator();
    let acme_acct = emus.account("Acme Inc", 5);
    let server = emus.settings(&backend).with_livekit(&lk).start().await;
    let transcript = Transcript::default();
    let acme = tx(&server, "acme", &["customer"], &transcript);

    // --- the carriers offered, with Telnyx's form.
    let providers = acme
        .call(reqwest::Method::GET, "/telephony/providers", &Value::Null)
        .await;
    let providers = providers.ok().clone();
    let names: BTreeSet<&str> = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["telnyx", "twilio"].into_iter().collect(),
        "{providers}"
    );
    let telnyx = providers["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "telnyx")
        .unwrap();
    let fields: Vec<(&str, bool)> = telnyx["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["fields"].as_array().unwrap())
        .map(|f| (f["name"].as_str().unwrap(), f["secret"].as_bool().unwrap()))
        .collect();
    assert_eq!(fields, [("apiKey", true)], "{telnyx}");

    // --- verify and save: no key in any answer.
    let v = acme.verify(&acme_acct.key_body()).await;
    let v = v.ok();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["capabilities"],
        json!({"numbers": "available", "trunking": "available"}),
        "{v}"
    );
    emus.only_reads_since(0);
    let saved = acme.save(&acme_acct.key_body()).await;
    let saved = saved.ok();
    assert_eq!(saved["replaced"], false, "{saved}");
    assert!(saved.get("apiKey").is_none(), "{saved}");

    // --- list, in pages of two: every number, digits for ids, E.164 as Telnyx holds it.
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
            let id = item["numberId"].as_str().unwrap().to_owned();
            assert!(
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
                "{item}"
            );
            let live = emu.number(&id).expect("a number the emulator holds");
            assert_eq!(item["e164"], live.phone_number.as_str());
            assert_eq!(item["routeId"], Value::Null, "{item}");
            seen.push(id);
        }
        cursor = page["nextCursor"].as_str().map(ToOwned::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let expected: BTreeSet<String> = acme_acct.numbers.iter().map(|n| n.id.clone()).collect();
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(seen.len(), expected.len(), "a number listed twice");
    emus.only_reads_since(0);

    // --- connect a number on no connection, on a dedicated route (emptied → removed).
    let pn = acme_acct.id(0).to_owned();
    let e164 = acme_acct.e164(0).to_owned();
    let c = acme
        .connect(
            &pn,
            &json!({"trunkStrategy": "dedicated", "routing": {"agentName": "support-agent"}}),
        )
        .await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(c["numberId"], pn.as_str());
    assert_eq!(c["e164"], e164.as_str());
    assert_eq!(c["sipTarget"], SIP_TARGET);
    for step in [
        "trunk",
        "originationUrl",
        "attachment",
        "livekitTrunk",
        "livekitRule",
    ] {
        assert_eq!(action(&c, step), "created", "{step}: {c}");
    }
    let route = route_of(&c);
    let ours = emus.our_connections(&acme_acct);
    assert_eq!(ours.len(), 1, "{ours:?}");
    let conn = &ours[0];
    assert_eq!(conn.id, route);
    assert!(conn.connection_name.starts_with("trunkline-"), "{conn:?}");
    assert_eq!(conn.ani_number_format, "+E.164", "{conn:?}");
    assert_eq!(conn.dnis_number_format, "+e164", "{conn:?}");
    assert!(
        conn.transport_protocol.eq_ignore_ascii_case("tcp"),
        "{conn:?}"
    );
    assert!(conn.active);
    let fqdns = emu.fqdns(&route);
    assert_eq!(fqdns.len(), 1, "{fqdns:?}");
    assert_eq!(fqdns[0].fqdn, SIP_HOST);
    assert_eq!(fqdns[0].port, 5060);
    assert_eq!(fqdns[0].dns_record_type, "a");
    assert_eq!(
        conn.failover[0].as_deref(),
        Some(fqdns[0].id.as_str()),
        "{conn:?}"
    );
    assert_eq!(
        emu.number(&pn).unwrap().connection_id.as_deref(),
        Some(route.as_str())
    );
    let lk_trunk = c["livekit"]["trunkId"]
        .as_str()
        .expect("a LiveKit trunk")
        .to_owned();
    let holding = lk.trunks_for_number(&e164);
    assert_eq!(holding.len(), 1, "{holding:?}");
    assert_eq!(holding[0].sip_trunk_id, lk_trunk);
    assert_eq!(lk.rules_for_trunk(&lk_trunk).len(), 1);

    // The listing now says which route the number is on.
    let listed = acme
        .numbers(&format!("phoneNumber={}", e164.replace('+', "%2B")))
        .await;
    let item = &listed.ok()["items"][0];
    assert_eq!(item["numberId"], pn.as_str(), "{}", listed.body);
    assert_eq!(item["routeId"], route.as_str(), "{}", listed.body);

    // --- status: everything read live agrees with what was stored.
    let s = acme.status(&pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["credentials"]["ok"], true, "{s}");
    assert_eq!(s["number"]["routeId"], route.as_str(), "{s}");
    assert_eq!(s["trunk"]["routeId"], route.as_str(), "{s}");
    assert_eq!(s["trunk"]["name"], conn.connection_name.as_str(), "{s}");
    assert_eq!(
        s["routeTargets"]["items"][0]["id"],
        fqdns[0].id.as_str(),
        "{s}"
    );
    assert_eq!(s["routeTargets"]["items"][0]["sipUrl"], SIP_TARGET, "{s}");
    assert_eq!(s["connection"]["status"], "connected");
    assert_eq!(
        s["connection"]["previousRouting"],
        json!({"connectionId": null}),
        "{s}"
    );
    assert_eq!(s["drifts"], json!([]), "{s}");

    // --- reconnect without a body: a resume, nothing written at Telnyx or LiveKit.
    let mark = emu.requests().len();
    let lk_mark = lk.count(MethodSelector::Writes);
    let again = acme.connect(&pn, &Value::Null).await;
    let again = again.ok().clone();
    nothing_done(&again);
    assert_eq!(route_of(&again), route);
    assert!(emu.requests().len() > mark, "the resume read Telnyx");
    emus.only_reads_since(mark);
    assert_eq!(
        lk.count(MethodSelector::Writes),
        lk_mark,
        "a resume writes nothing at LiveKit"
    );

    // --- a number on a connection the customer made: forced over, restored on disconnect.
    let old = emu.add_connection(&acme_acct.account.id, "Old PBX");
    emu.add_fqdn(&old, "pbx.old.example", 5060, "a").unwrap();
    let pn2 = acme_acct.id(1).to_owned();
    assert!(emu.set_number_connection(&pn2, Some(&old)));
    acme.connect(&pn2, &Value::Null)
        .await
        .expect(409, Some("NUMBER_IN_USE"));
    assert_eq!(
        emu.number(&pn2).unwrap().connection_id.as_deref(),
        Some(old.as_str())
    );
    let forced = acme.connect(&pn2, &json!({"force": true})).await;
    let forced = forced.ok().clone();
    assert_eq!(forced["status"], "connected", "{forced}");
    assert_eq!(action(&forced, "attachment"), "moved", "{forced}");
    let shared = route_of(&forced);
    assert_ne!(shared, route);
    let s2 = acme.status(&pn2, "").await;
    assert_eq!(
        s2.ok()["connection"]["previousRouting"],
        json!({"connectionId": old.as_str()}),
        "{}",
        s2.body
    );
    assert_eq!(
        emu.number(&pn2).unwrap().connection_id.as_deref(),
        Some(shared.as_str())
    );
    let d2 = acme
        .disconnect(&pn2, &json!({"restoreVoiceConfig": true}))
        .await;
    let d2 = d2.ok().clone();
    assert_eq!(d2["status"], "disconnected", "{d2}");
    assert_eq!(action(&d2, "attachment"), "deleted", "{d2}");
    assert_eq!(action(&d2, "voiceConfig"), "restored", "{d2}");
    assert_eq!(
        emu.number(&pn2).unwrap().connection_id.as_deref(),
        Some(old.as_str()),
        "back on its previous connection"
    );
    assert!(emu.connection(&old).is_some());
    assert_eq!(
        emu.fqdns(&old).len(),
        1,
        "the customer's connection is untouched"
    );

    // --- disconnect the first with restore: it had no connection, so it is left detached;
    // the dedicated connection it emptied goes, with its FQDN.
    let d = acme
        .disconnect(&pn, &json!({"restoreVoiceConfig": true}))
        .await;
    let d = d.ok().clone();
    assert_eq!(d["status"], "disconnected", "{d}");
    assert_eq!(d["alreadyDisconnected"], false);
    assert_eq!(action(&d, "attachment"), "deleted", "{d}");
    assert_eq!(action(&d, "trunk"), "deleted", "{d}");
    assert_eq!(action(&d, "livekitTrunk"), "deleted", "{d}");
    assert_eq!(action(&d, "livekitRule"), "deleted", "{d}");
    assert_eq!(emu.number(&pn).unwrap().connection_id, None, "detached");
    assert!(
        emu.connection(&route).is_none(),
        "the emptied connection is removed"
    );
    assert!(emu.fqdns(&route).is_empty(), "and its FQDN");
    assert!(lk.trunks_for_number(&e164).is_empty());
    assert!(lk.rules_for_trunk(&lk_trunk).is_empty());
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["connection"]["status"], "disconnected", "{}", s.body);
    assert_eq!(s.body["drifts"], json!([]), "{}", s.body);

    // --- audit: connects and disconnects, all with provider telnyx.
    let audit = acme.audit("limit=100").await;
    let items = audit.ok()["items"].as_array().unwrap().clone();
    for e in &items {
        assert_eq!(e["provider"], "telnyx", "{e}");
    }
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "number.disconnected",
            "number.disconnected",
            "number.connected",
            "number.connected",
            "number.connected",
            "credentials.saved",
            "credentials.verified",
        ]
    );

    assert_no_secrets(
        &server,
        &transcript,
        &[
            acme_acct.account.api_key.clone(),
            lk.api_secret().to_owned(),
        ],
    );

    // Last, so that everything above is checked first: the audit trail speaks the neutral
    // words of the API (numberId, routeId), not Twilio's, whatever the carrier.
    let on = |act: &str, number: &str| {
        items
            .iter()
            .filter(|e| e["action"] == act && e["details"]["numberId"] == number)
            .count()
    };
    let per_number = [
        on("number.connected", &pn),
        on("number.connected", &pn2),
        on("number.disconnected", &pn),
        on("number.disconnected", &pn2),
    ];
    assert_eq!(
        per_number,
        [2, 1, 1, 1],
        "audit details name numberId: {items:?}"
    );
    for e in items
        .iter()
        .filter(|e| e["action"] != "credentials.verified")
    {
        assert!(e["details"].get("phoneNumberSid").is_none(), "{e}");
        assert!(e["details"].get("trunkSid").is_none(), "{e}");
    }
    drop(backend);
}

/// Delete an FQDN through Telnyx's API, as the customer would in the portal.
async fn delete_fqdn_behind_trunklines_back(emus: &Emulators, key: &str, fqdn: &str) {
    let res = reqwest::Client::new()
        .delete(format!("{}/fqdns/{fqdn}", emus.telnyx.api_base()))
        .bearer_auth(key)
        .send()
        .await
        .expect("the emulator answers");
    assert!(res.status().is_success(), "{}", res.status());
}

async fn status_reports_drift_and_connect_repairs_it(backend: Backend) {
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let acct = emus.account("Acme Inc", 1);
    let server = emus.settings(&backend).start().await;
    let transcript = Transcript::default();
    let acme = tx(&server, "acme", &["customer"], &transcript);
    acme.save(&acct.key_body()).await.ok();
    let pn = acct.id(0).to_owned();
    let first = acme.connect(&pn, &Value::Null).await;
    let route = route_of(first.ok());
    let fqdn = emu.fqdns(&route)[0].id.clone();

    // The FQDN is deleted in the portal: missing, and connect puts one back.
    delete_fqdn_behind_trunklines_back(&emus, &acct.account.api_key, &fqdn).await;
    let s = acme.status(&pn, "").await;
    let kinds = drift_kinds(s.ok());
    assert!(kinds.contains("origination_url_missing"), "{}", s.body);
    let repaired = acme.connect(&pn, &Value::Null).await;
    assert_eq!(
        action(repaired.ok(), "originationUrl"),
        "created",
        "{}",
        repaired.body
    );
    assert_eq!(route_of(&repaired.body), route);
    let fqdns = emu.fqdns(&route);
    assert_eq!(fqdns.len(), 1, "{fqdns:?}");
    assert_eq!(fqdns[0].fqdn, SIP_HOST);
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // The number is taken off the connection: not on trunkline's route; connect re-attaches.
    assert!(emu.set_number_connection(&pn, None));
    let s = acme.status(&pn, "").await;
    assert!(
        drift_kinds(s.ok()).contains("number_not_on_trunk"),
        "{}",
        s.body
    );
    let repaired = acme.connect(&pn, &Value::Null).await;
    assert_eq!(
        action(repaired.ok(), "attachment"),
        "created",
        "{}",
        repaired.body
    );
    assert_eq!(
        emu.number(&pn).unwrap().connection_id.as_deref(),
        Some(route.as_str())
    );
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    // The whole connection is deleted: a new one, FQDN and attachment; no drift left.
    assert!(emu.remove_connection(&route));
    let s = acme.status(&pn, "").await;
    let kinds = drift_kinds(s.ok());
    assert!(
        kinds.contains("trunk_missing") && kinds.contains("number_not_on_trunk"),
        "{}",
        s.body
    );
    let repaired = acme.connect(&pn, &Value::Null).await;
    let new_route = route_of(repaired.ok());
    assert_ne!(new_route, route);
    assert_eq!(
        action(&repaired.body, "trunk"),
        "created",
        "{}",
        repaired.body
    );
    assert_eq!(emus.our_connections(&acct).len(), 1);
    assert_eq!(emu.fqdns(&new_route).len(), 1);
    assert_eq!(
        emu.number(&pn).unwrap().connection_id.as_deref(),
        Some(new_route.as_str())
    );
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    assert_no_secrets(
        &server,
        &transcript,
        std::slice::from_ref(&acct.account.api_key),
    );
    drop(backend);
}

async fn refusals_have_their_codes(backend: Backend) {
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let acct = emus.account("Acme Inc", 2);
    let server = emus.settings(&backend).start().await;
    let transcript = Transcript::default();
    let acme = tx(&server, "acme", &["customer"], &transcript);
    let mut secrets = vec![acct.account.api_key.clone()];

    // A key Telnyx does not know: the verdict on verify, an error on save.
    let wrong = "KEYnot-a-real-telnyx-key-0123456789";
    secrets.push(wrong.to_owned());
    let v = acme.verify(&key_body(wrong)).await;
    assert_eq!(v.ok()["ok"], false, "{}", v.body);
    assert_eq!(v.body["errorCode"], "AUTH_INVALID", "{}", v.body);
    acme.save(&key_body(wrong))
        .await
        .expect(422, Some("AUTH_INVALID"));
    acme.numbers("")
        .await
        .expect(404, Some("INTEGRATION_NOT_FOUND"));

    // A key without number permissions: it verifies, but listing is refused.
    let restricted = emu.add_api_key(&acct.account.id, false);
    secrets.push(restricted.key.clone());
    let v = acme.verify(&key_body(&restricted.key)).await;
    assert_eq!(v.ok()["ok"], true, "{}", v.body);
    assert_eq!(v.body["capabilities"]["numbers"], "forbidden", "{}", v.body);
    acme.save(&key_body(&restricted.key)).await.ok();
    acme.numbers("")
        .await
        .expect(422, Some("INSUFFICIENT_PERMISSIONS"));

    // A number on someone else's connection: refused without force, moved with it.
    let (foreign_acct, foreign_conn, foreign_numbers) =
        emu.add_account_on_foreign_connection("Foreign Inc", 1);
    secrets.push(foreign_acct.api_key.clone());
    let globex = tx(&server, "globex", &["customer"], &transcript);
    globex.save(&key_body(&foreign_acct.api_key)).await.ok();
    let taken = &foreign_numbers[0].id;
    globex
        .connect(taken, &Value::Null)
        .await
        .expect(409, Some("NUMBER_IN_USE"));
    assert_eq!(
        emu.number(taken).unwrap().connection_id.as_deref(),
        Some(foreign_conn.as_str()),
        "a refusal moves nothing"
    );
    let forced = globex.connect(taken, &json!({"force": true})).await;
    let route = route_of(forced.ok());
    assert_ne!(route, foreign_conn);
    assert_eq!(
        emu.number(taken).unwrap().connection_id.as_deref(),
        Some(route.as_str())
    );
    assert_eq!(
        emu.fqdns(&foreign_conn).len(),
        1,
        "the foreign connection is untouched"
    );

    // A number id that is not Telnyx's: refused before anything is sent.
    acme.save(&acct.key_body()).await.ok();
    let mark = emu.requests().len();
    for bad in ["PN0123456789abcdef0123456789abcdef", "12a4", "-5"] {
        acme.connect(bad, &Value::Null)
            .await
            .expect(400, Some("VALIDATION_FAILED"))
            .names_field("numberId");
        acme.status(bad, "")
            .await
            .expect(400, Some("VALIDATION_FAILED"))
            .names_field("numberId");
    }
    let extra: Vec<String> = emu.requests()[mark..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        extra.is_empty(),
        "nothing sent for a malformed id: {extra:?}"
    );

    // Telnyx fails creating the FQDN: 503, and a retry finishes without duplicates.
    let pn = acct.id(0).to_owned();
    emu.inject(Route::CreateFqdn, Fault::Unavailable { count: 1 });
    let failed = acme.connect(&pn, &Value::Null).await;
    failed.expect(503, Some("PROVIDER_UNAVAILABLE"));
    let done = acme.connect(&pn, &Value::Null).await;
    let route = route_of(done.ok());
    assert_eq!(done.body["status"], "connected", "{}", done.body);
    let ours = emus.our_connections(&acct);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].id, route);
    assert_eq!(
        emu.count(Route::CreateFqdnConnection),
        2,
        "one for Acme, one for Globex"
    );
    let fqdns = emu.fqdns(&route);
    assert_eq!(fqdns.len(), 1, "{fqdns:?}");
    assert_eq!(
        emu.number(&pn).unwrap().connection_id.as_deref(),
        Some(route.as_str())
    );
    let s = acme.status(&pn, "").await;
    assert_eq!(s.ok()["drifts"], json!([]), "{}", s.body);

    assert_no_secrets(&server, &transcript, &secrets);
    drop(backend);
}

async fn customers_are_isolated_and_support_reads(backend: Backend) {
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let a = emus.account("Acme Inc", 2);
    let b = emus.account("Globex", 1);
    let server = emus.settings(&backend).start().await;
    let transcript = Transcript::default();
    let acme = tx(&server, "acme", &["customer"], &transcript);
    let globex = tx(&server, "globex", &["customer"], &transcript);
    let support = tx(&server, "helpdesk", &["support"], &transcript);
    acme.save(&a.key_body()).await.ok();
    globex.save(&b.key_body()).await.ok();
    let pn = a.id(0).to_owned();
    let connected = acme.connect(&pn, &Value::Null).await;
    let route = route_of(connected.ok());
    let before = (
        emu.number(&pn),
        emu.connections(&a.account.id),
        emu.fqdns(&route),
    );

    // Acme's number is not Globex's, whatever it asks.
    let listed = globex.numbers("").await;
    let ids: Vec<&str> = listed.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["numberId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.id(0)], "{}", listed.body);
    globex
        .status(&pn, "")
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    globex
        .connect(&pn, &json!({"force": true}))
        .await
        .expect(404, Some("NUMBER_NOT_FOUND"));
    globex
        .disconnect(&pn, &Value::Null)
        .await
        .expect(404, Some("NOT_CONNECTED"));
    globex
        .status(&pn, "customerId=acme")
        .await
        .expect(403, Some("FORBIDDEN"));
    assert_eq!(
        (
            emu.number(&pn),
            emu.connections(&a.account.id),
            emu.fqdns(&route)
        ),
        before,
        "nothing of Acme's changed"
    );
    assert!(emus.our_connections(&b).is_empty());

    // Support reads Acme's status by naming the customer.
    let s = support.status(&pn, "customerId=acme").await;
    assert_eq!(
        s.ok()["connection"]["routeId"],
        route.as_str(),
        "{}",
        s.body
    );
    assert_eq!(s.body["drifts"], json!([]), "{}", s.body);

    assert_no_secrets(
        &server,
        &transcript,
        &[a.account.api_key.clone(), b.account.api_key.clone()],
    );
    drop(backend);
}

/// Two instances on one PostgreSQL database connect the same number at once.
async fn two_instances_connect_one_number_once(backend: Backend) {
    // Two instances need one database: PostgreSQL. SQLite is one instance's embedded store.
    if matches!(backend, Backend::Sqlite) {
        eprintln!("skipped on SQLite: two instances need one shared database");
        return;
    }
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let acct = emus.account("Acme Inc", 1);
    let settings = emus.settings(&backend);
    let first = settings.start().await;
    let second = settings.start().await;
    let transcript = Transcript::default();
    let clients = [
        tx(&first, "acme", &["customer"], &transcript),
        tx(&second, "acme", &["customer"], &transcript),
    ];
    clients[0].save(&acct.key_body()).await.ok();
    let pn = acct.id(0).to_owned();

    let body = json!({"routing": {"agentName": "a"}});
    let replies = join_all((0..6).map(|i| clients[i % 2].connect(&pn, &body))).await;
    let answers: Vec<&Value> = replies.iter().map(support::Reply::ok).collect();
    for a in &answers {
        for field in ["connectionId", "routeId", "originationTargets", "status"] {
            assert_eq!(a[field], answers[0][field], "{field}: {a}");
        }
    }
    assert_eq!(answers[0]["status"], "connected");
    let route = route_of(answers[0]);
    let attached = answers
        .iter()
        .filter(|a| action(a, "attachment") == "created")
        .count();
    assert_eq!(attached, 1, "exactly one connect attached the number");
    let ours = emus.our_connections(&acct);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].id, route);
    assert_eq!(emu.count(Route::CreateFqdnConnection), 1);
    assert_eq!(emu.count(Route::CreateFqdn), 1);
    assert_eq!(emu.fqdns(&route).len(), 1);
    assert_eq!(
        emu.number(&pn).unwrap().connection_id.as_deref(),
        Some(route.as_str())
    );
    for c in &clients {
        let s = c.status(&pn, "").await;
        assert_eq!(
            s.ok()["connection"]["connectionId"],
            answers[0]["connectionId"]
        );
        assert_eq!(s.body["drifts"], json!([]), "{}", s.body);
    }

    assert_no_secrets(
        &first,
        &transcript,
        std::slice::from_ref(&acct.account.api_key),
    );
    assert_no_secrets(
        &second,
        &transcript,
        std::slice::from_ref(&acct.account.api_key),
    );
}
