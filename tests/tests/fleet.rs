//! Fleet operations end to end: number purchase is opt-in and releases only what trunkline
//! bought (Twilio and Telnyx emulators), the support views are support-only and list the
//! LiveKit orphans a test planted, and the drift reconciler finds drift planted at the
//! carrier and at LiveKit and clears it after repair, running on one instance of three.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use trunkline_core::E164;
use trunkline_e2e::TestServer;
use trunkline_testkit::livekit::proto;

use support::livekit::{drift_kinds, livekit_emulator, wait_for};
use support::{Backend, Carrier, Client, Settings, TWILIO, Transcript, emulator, token};

on_both_backends!(reconciler_finds_and_clears_drift_on_one_instance);

const PURCHASE: &str = "TRUNKLINE_ALLOW_NUMBER_PURCHASE";

fn for_sale(n: u32) -> E164 {
    E164::parse(&format!("+1415777{n:04}")).unwrap()
}

async fn get(client: &Client<'_>, path: &str) -> support::Reply {
    client.call(Method::GET, path, &Value::Null).await
}

async fn post(client: &Client<'_>, path: &str, body: &Value) -> support::Reply {
    client.call(Method::POST, path, body).await
}

fn actions(audit: &Value) -> Vec<String> {
    audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn purchase_is_refused_unless_enabled() {
    let twilio = emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 1);
    twilio.add_for_sale("US", "Local", &for_sale(1));
    let server = Settings::new(&twilio, &Backend::Sqlite).start().await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.expect(200, None);

    let providers = get(&acme, "/telephony/providers").await;
    assert_eq!(providers.ok()["numberPurchase"], false);
    post(
        &acme,
        &format!("{TWILIO}/numbers:purchase"),
        &json!({"phoneNumber": for_sale(1).as_str()}),
    )
    .await
    .expect(403, Some("PURCHASE_NOT_ENABLED"));
    get(&acme, &format!("{TWILIO}/available-numbers?country=US"))
        .await
        .expect(403, Some("PURCHASE_NOT_ENABLED"));
    let pn = &carrier.numbers[0];
    post(
        &acme,
        &format!("{TWILIO}/numbers/{pn}/release"),
        &json!({"confirm": "+14155550000"}),
    )
    .await
    .expect(403, Some("PURCHASE_NOT_ENABLED"));
    // Nothing was bought: the number is still for sale, the account unchanged.
    assert!(twilio.is_for_sale(&for_sale(1)));
    assert_eq!(twilio.numbers(&carrier.account.sid).len(), 1);
}

#[tokio::test]
async fn twilio_purchase_connect_and_release_only_what_trunkline_bought() {
    let twilio = emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 1);
    for n in 1..=3 {
        twilio.add_for_sale("US", "Local", &for_sale(n));
    }
    twilio.add_for_sale("US", "TollFree", &E164::parse("+18885550123").unwrap());
    let server = Settings::new(&twilio, &Backend::Sqlite)
        .with(PURCHASE, "true")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.expect(200, None);
    assert_eq!(
        get(&acme, "/telephony/providers").await.ok()["numberPurchase"],
        true
    );

    // Search: by area code and prefix, by type.
    let found = get(
        &acme,
        &format!("{TWILIO}/available-numbers?country=US&areaCode=415&prefix=4157770002"),
    )
    .await;
    let numbers: Vec<&str> = found.ok()["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["phoneNumber"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec![for_sale(2).as_str()]);
    let toll_free = get(
        &acme,
        &format!("{TWILIO}/available-numbers?country=US&type=toll_free"),
    )
    .await;
    assert_eq!(toll_free.ok()["numbers"][0]["phoneNumber"], "+18885550123");
    get(&acme, &format!("{TWILIO}/available-numbers?country=USA"))
        .await
        .expect(400, Some("VALIDATION_FAILED"))
        .names_field("country");

    // Purchase and connect in one request.
    let bought = post(
        &acme,
        &format!("{TWILIO}/numbers:purchase"),
        &json!({"phoneNumber": for_sale(2).as_str(), "connect": {}}),
    )
    .await;
    bought.expect(201, None);
    assert_eq!(bought.body["connect"]["ok"], true, "{}", bought.body);
    assert_eq!(bought.body["connect"]["status"], "connected");
    let pn = bought.body["numberId"].as_str().unwrap().to_owned();
    assert!(!twilio.is_for_sale(&for_sale(2)));
    let sid = trunkline_twilio::PhoneNumberSid::parse(&pn).unwrap();
    assert!(twilio.number(&sid).unwrap().trunk_sid.is_some());

    // A number the customer brought is never released, confirmed or not.
    let customers_own = &carrier.numbers[0];
    let customers_own_e164 = twilio.number(customers_own).unwrap().phone_number;
    post(
        &acme,
        &format!("{TWILIO}/numbers/{customers_own}/release"),
        &json!({"confirm": customers_own_e164}),
    )
    .await
    .expect(409, Some("NOT_PURCHASED"));
    assert!(twilio.number(customers_own).is_some());

    // Still connected: disconnect first. Then the confirmation must repeat the number.
    let release = format!("{TWILIO}/numbers/{pn}/release");
    post(&acme, &release, &json!({"confirm": for_sale(2).as_str()}))
        .await
        .expect(409, Some("CONFLICT"));
    acme.disconnect(&sid, &json!({})).await.expect(200, None);
    post(&acme, &release, &json!({"confirm": for_sale(3).as_str()}))
        .await
        .expect(400, Some("VALIDATION_FAILED"))
        .names_field("confirm");
    post(&acme, &release, &json!({}))
        .await
        .expect(400, Some("VALIDATION_FAILED"));
    assert!(twilio.number(&sid).is_some());
    let released = post(&acme, &release, &json!({"confirm": for_sale(2).as_str()})).await;
    assert_eq!(released.ok()["released"], true);
    assert!(twilio.number(&sid).is_none());
    // Released once: a second release is refused, not repeated.
    post(&acme, &release, &json!({"confirm": for_sale(2).as_str()}))
        .await
        .expect(409, Some("NOT_PURCHASED"));

    // A number no longer for sale.
    post(
        &acme,
        &format!("{TWILIO}/numbers:purchase"),
        &json!({"phoneNumber": for_sale(9).as_str()}),
    )
    .await
    .expect(404, Some("NUMBER_NOT_FOUND"));
    // The support role buys nothing.
    let support = Client::new(&server, token("ops", &["support"]), &transcript);
    post(
        &support,
        &format!("{TWILIO}/numbers:purchase?customerId=acme"),
        &json!({"phoneNumber": for_sale(1).as_str()}),
    )
    .await
    .expect(403, Some("FORBIDDEN"));

    let audit = acme.audit("limit=50").await;
    let actions = actions(audit.ok());
    assert!(
        actions.contains(&"number.purchased".to_owned()),
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "number.released").count(),
        1,
        "{actions:?}"
    );
}

#[tokio::test]
async fn telnyx_purchase_polls_the_order_and_releases() {
    const TELNYX: &str = support::telnyx::TELNYX;
    let emus = support::telnyx::Emulators::start();
    let account = emus.account("Acme Telnyx", 1);
    emus.telnyx.add_for_sale("US", "local", "+14157770001");
    // The order stays pending for three reads: the adapter must poll it.
    emus.telnyx.set_order_polls(3);
    let server = emus
        .settings(&Backend::Sqlite)
        .with(PURCHASE, "true")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    post(&acme, &format!("{TELNYX}/credentials"), &account.key_body())
        .await
        .expect(200, None);
    let found = get(
        &acme,
        &format!("{TELNYX}/available-numbers?country=US&areaCode=415"),
    )
    .await;
    assert_eq!(found.ok()["numbers"][0]["phoneNumber"], "+14157770001");
    let bought = post(
        &acme,
        &format!("{TELNYX}/numbers:purchase"),
        &json!({"phoneNumber": "+14157770001"}),
    )
    .await;
    bought.expect(201, None);
    let id = bought.body["numberId"].as_str().unwrap().to_owned();
    assert!(emus.telnyx.number(&id).is_some());
    let reads = emus
        .telnyx
        .count(trunkline_testkit::telnyx::Route::RetrieveNumberOrder);
    assert!(reads >= 3, "the order was read {reads} times");
    // The number the customer brought stays.
    post(
        &acme,
        &format!("{TELNYX}/numbers/{}/release", account.id(0)),
        &json!({"confirm": account.e164(0)}),
    )
    .await
    .expect(409, Some("NOT_PURCHASED"));
    let released = post(
        &acme,
        &format!("{TELNYX}/numbers/{id}/release"),
        &json!({"confirm": "+14157770001"}),
    )
    .await;
    assert_eq!(released.ok()["released"], true);
    assert!(emus.telnyx.number(&id).is_none());
    assert!(emus.telnyx.number(account.id(0)).is_some());
}

fn planted_trunk(name: &str, number: &str) -> proto::SipInboundTrunkInfo {
    proto::SipInboundTrunkInfo {
        name: name.to_owned(),
        numbers: vec![number.to_owned()],
        ..proto::SipInboundTrunkInfo::default()
    }
}

fn planted_rule(name: &str) -> proto::SipDispatchRuleInfo {
    proto::SipDispatchRuleInfo {
        name: name.to_owned(),
        ..proto::SipDispatchRuleInfo::default()
    }
}

#[tokio::test]
async fn admin_views_are_support_only_and_list_planted_orphans() {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 2);
    let server = Settings::new(&twilio, &Backend::Sqlite)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Client::new(&server, token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.expect(200, None);
    // With the outbound half: its LiveKit outbound trunk is listed with the same owner.
    let connected = acme
        .connect(&carrier.numbers[0], &json!({"outbound": true}))
        .await;
    let connection = connected.ok()["connectionId"].as_str().unwrap().to_owned();
    let outbound_trunks = lk.outbound_trunks();
    assert_eq!(outbound_trunks.len(), 1, "{outbound_trunks:?}");
    let owned_outbound = outbound_trunks[0].sip_trunk_id.clone();
    let owned_trunk = connected.body["livekit"]["trunkId"]
        .as_str()
        .unwrap()
        .to_owned();
    let owned_rule = connected.body["livekit"]["ruleId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Orphans: trunkline-named objects no connection owns; and one someone else made.
    let orphan_trunk = lk.insert_trunk(planted_trunk("trunkline 0190-orphan", "+14155559999"));
    let orphan_rule = lk.insert_rule(planted_rule("trunkline 0190-orphan-rule"));
    let foreign = lk.insert_trunk(planted_trunk("pbx-main", "+14155558888"));
    let orphan_outbound = lk.insert_outbound_trunk(proto::SipOutboundTrunkInfo {
        name: "trunkline-out 0190-orphan".to_owned(),
        address: "tl-orphan.pstn.twilio.com".to_owned(),
        numbers: vec!["+14155557777".to_owned()],
        ..proto::SipOutboundTrunkInfo::default()
    });
    let foreign_outbound = lk.insert_outbound_trunk(proto::SipOutboundTrunkInfo {
        name: "pbx-out".to_owned(),
        ..proto::SipOutboundTrunkInfo::default()
    });

    for path in ["customers", "routes", "livekit"] {
        get(&acme, &format!("/telephony/admin/{path}"))
            .await
            .expect(403, Some("FORBIDDEN"));
    }
    let support = Client::new(&server, token("ops", &["support"]), &transcript);

    let customers = get(&support, "/telephony/admin/customers").await;
    let acme_row = customers.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customerId"] == "acme")
        .cloned()
        .expect("acme is listed");
    let twilio_row = &acme_row["integrations"][0];
    assert_eq!(twilio_row["provider"], "twilio");
    assert_eq!(twilio_row["connectedNumbers"], 1);
    assert_eq!(twilio_row["autoRepair"], false);

    let routes = get(&support, "/telephony/admin/routes").await;
    let acme_routes = routes.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customerId"] == "acme")
        .cloned()
        .unwrap();
    assert_eq!(acme_routes["routes"].as_array().unwrap().len(), 1);
    assert_eq!(
        acme_routes["routes"][0]["numbers"][0]["connectionId"],
        connection.as_str()
    );
    assert_eq!(acme_routes["routes"][0]["createdByTrunkline"], true);

    let all = get(&support, "/telephony/admin/livekit").await;
    let items = all.ok()["items"].as_array().unwrap().clone();
    let ids: BTreeSet<&str> = items.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = [
        owned_trunk.as_str(),
        owned_rule.as_str(),
        owned_outbound.as_str(),
        orphan_trunk.as_str(),
        orphan_rule.as_str(),
        orphan_outbound.as_str(),
    ]
    .into();
    assert_eq!(ids, expected, "{items:?}");
    assert!(!ids.contains(foreign.as_str()));
    assert!(!ids.contains(foreign_outbound.as_str()));
    let kind_of = |id: &str| {
        items
            .iter()
            .find(|o| o["id"] == id)
            .map(|o| o["kind"].as_str().unwrap().to_owned())
    };
    assert_eq!(kind_of(&owned_outbound).as_deref(), Some("outbound_trunk"));
    assert_eq!(kind_of(&orphan_outbound).as_deref(), Some("outbound_trunk"));
    for o in &items {
        let is_orphan = o["id"] == orphan_trunk.as_str()
            || o["id"] == orphan_rule.as_str()
            || o["id"] == orphan_outbound.as_str();
        assert_eq!(o["orphan"], is_orphan, "{o}");
        if !is_orphan {
            assert_eq!(o["owner"]["connectionId"], connection.as_str());
        }
    }
    let orphans = get(&support, "/telephony/admin/livekit?orphans=true").await;
    let orphan_ids: BTreeSet<String> = orphans.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        orphan_ids,
        [
            orphan_trunk.clone(),
            orphan_rule.clone(),
            orphan_outbound.clone()
        ]
        .into()
    );
    // Paged one at a time, the same six objects, each once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={}", urlencode(c)));
        let page = get(&support, &format!("/telephony/admin/livekit?pageSize=1{q}")).await;
        let body = page.ok().clone();
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 6, "{seen:?}");
    get(&support, "/telephony/admin/customers?pageSize=0")
        .await
        .expect(400, Some("VALIDATION_FAILED"));
}

fn urlencode(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// A metric's value in Prometheus text (`name{labels} value`), 0 when absent.
async fn metric(server: &TestServer, series: &str) -> f64 {
    let text = server
        .get("/metrics", None)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn reconciler_view(client: &Client<'_>, pn: &trunkline_twilio::PhoneNumberSid) -> Value {
    client.status(pn, "").await.ok()["reconciler"].clone()
}

/// The drift kinds of a reconciler check (`null`: not checked yet, no kinds).
fn kinds(check: &Value) -> BTreeSet<String> {
    check["drifts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["kind"].as_str().map(str::to_owned))
        .collect()
}

async fn reconciler_finds_and_clears_drift_on_one_instance(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let carrier = Carrier::new(&twilio, "Acme Inc", 2);
    let settings = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_RECONCILE_RECHECK_SECS", "1")
        .with("TRUNKLINE_RECONCILE_CHECKS_PER_MINUTE", "6000")
        .with("TRUNKLINE_RECONCILE_TICK_MS", "100");
    let n = match backend {
        Backend::Postgres(_) => 3,
        Backend::Sqlite => 1,
    };
    let servers: Vec<TestServer> = join_all((0..n).map(|_| settings.start())).await;
    let transcript = Transcript::default();
    let acme = Client::new(&servers[0], token("acme", &["customer"]), &transcript);
    acme.save(&carrier.key_body()).await.expect(200, None);
    let (a, b) = (&carrier.numbers[0], &carrier.numbers[1]);
    acme.connect(a, &json!({})).await.expect(200, None);
    let connected_b = acme.connect(b, &json!({})).await;
    let rule_b = connected_b.ok()["livekit"]["ruleId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Both are checked and clean.
    for pn in [a, b] {
        wait_for("a clean check", Duration::from_secs(20), || async {
            let v = reconciler_view(&acme, pn).await;
            (v.is_object() && kinds(&v).is_empty()).then_some(())
        })
        .await;
    }

    // Drift at the carrier (a is taken off its trunk) and at LiveKit (b's rule deleted).
    assert!(twilio.detach_number(a));
    assert!(lk.remove_rule(&rule_b));
    let found_a = wait_for("drift at the carrier", Duration::from_secs(20), || async {
        let v = reconciler_view(&acme, a).await;
        kinds(&v).contains("number_not_on_trunk").then_some(v)
    })
    .await;
    assert!(found_a["driftSince"].is_string(), "{found_a}");
    wait_for("drift at LiveKit", Duration::from_secs(20), || async {
        let v = reconciler_view(&acme, b).await;
        kinds(&v).contains("livekit_rule_missing").then_some(())
    })
    .await;
    let audit = acme.audit("limit=100").await;
    assert!(
        actions(audit.ok()).contains(&"connection.drift_detected".to_owned()),
        "{:?}",
        actions(&audit.body)
    );
    // The support view counts them.
    let support = Client::new(&servers[0], token("ops", &["support"]), &transcript);
    let customers = get(&support, "/telephony/admin/customers").await;
    let row = &customers.ok()["items"][0]["integrations"][0];
    assert_eq!(row["driftedNumbers"], 2, "{row}");
    assert_eq!(row["health"], "drifted");

    // Nothing was repaired: auto-repair is off by default.
    assert!(twilio.number(a).unwrap().trunk_sid.is_none());
    assert!(lk.rules().iter().all(|r| r.sip_dispatch_rule_id != rule_b));

    // Turn auto-repair on: the reconciler reconnects both, and the next check is clean.
    let put = acme
        .call(
            Method::PUT,
            &format!("{TWILIO}/settings"),
            &json!({"autoRepair": true}),
        )
        .await;
    assert_eq!(put.ok()["autoRepair"], true);
    for pn in [a, b] {
        wait_for("the drift cleared", Duration::from_secs(30), || async {
            let v = reconciler_view(&acme, pn).await;
            (kinds(&v).is_empty() && v["repairedAt"].is_string()).then_some(())
        })
        .await;
    }
    assert!(twilio.number(a).unwrap().trunk_sid.is_some());
    let status_b = acme.status(b, "").await;
    assert!(drift_kinds(status_b.ok()).is_empty(), "{}", status_b.body);
    let audit = acme.audit("limit=200").await;
    let acts = actions(audit.ok());
    assert!(
        acts.contains(&"connection.drift_cleared".to_owned()),
        "{acts:?}"
    );

    // One instance of the three did every check.
    let mut checked = Vec::new();
    let mut leaders = 0.0;
    for s in &servers {
        checked.push(metric(s, "trunkline_reconcile_checks_total{outcome=\"checked\"}").await);
        leaders += metric(s, "trunkline_reconcile_leader").await;
    }
    assert!(
        (leaders - 1.0).abs() < f64::EPSILON,
        "leaders {leaders}, checks {checked:?}"
    );
    assert_eq!(
        checked.iter().filter(|c| **c > 0.0).count(),
        1,
        "checks per instance: {checked:?}"
    );
    let leader = servers
        .iter()
        .zip(&checked)
        .find(|(_, c)| **c > 0.0)
        .map(|(s, _)| s)
        .unwrap();
    // The gauges are exported when a batch ends, after the checks it stored (which status
    // shows at once): wait for the batch that saw both clean.
    wait_for(
        "two connected in the leader's gauge",
        Duration::from_secs(20),
        || async {
            let connected = metric(
                leader,
                "trunkline_connections{provider=\"twilio\",state=\"connected\"}",
            )
            .await;
            ((connected - 2.0).abs() < f64::EPSILON).then_some(())
        },
    )
    .await;
}
