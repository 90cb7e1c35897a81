//! Outbound calls through Telnyx end to end: the real `trunkline` binary against the Telnyx
//! and LiveKit emulators, on SQLite and PostgreSQL. Connect with outbound sets up credential
//! authentication on the FQDN connection and an outbound voice profile assigned to it (the
//! number's country as the allowed destination), and one LiveKit outbound trunk per route
//! towards `sip.telnyx.com` carrying the `X-Telnyx-Username` header; reconnect changes
//! nothing; a second number joins the same trunk; a call is placed, its agent dispatched
//! once, and LiveKit's webhooks complete its record; drift shows and connect repairs it;
//! disconnect of the last outbound number removes the profile, the credential
//! authentication and the trunk; no SIP password in any answer or log.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use trunkline_testkit::livekit::{LiveKitEmulator, Method as LkMethod, proto};
use trunkline_testkit::telnyx::Route;

use support::livekit::{AGENT, all_accepted, call_by_id, livekit_emulator, wait_for, webhook_url};
use support::telnyx::{Emulators, Tx};
use support::{Backend, Client, Transcript, action, assert_no_secrets, token};

on_both_backends!(telnyx_outbound_connect_call_reconnect_and_disconnect);

/// Every answer of `POST /telephony/calls` in this test binary.
static PLACED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Telnyx's termination host, where LiveKit sends the calls.
const TELNYX_SIP: &str = "sip.telnyx.com";

/// `POST /telephony/calls`. Its answers are checked for the password at the end through
/// `PLACED` (the support client's transcript is filled by its own helpers only).
async fn place(client: &Client<'_>, body: &Value) -> support::Reply {
    let res = client
        .server
        .client()
        .request(Method::POST, client.server.url("/telephony/calls"))
        .bearer_auth(&client.token)
        .json(body)
        .send()
        .await
        .expect("the server answers");
    let status = res.status();
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let text = res.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    PLACED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(text);
    support::Reply {
        status,
        body,
        request_id,
        retry_after: None,
    }
}

/// trunkline's outbound trunks in the LiveKit emulator.
fn outbound_trunks(lk: &LiveKitEmulator) -> Vec<proto::SipOutboundTrunkInfo> {
    lk.outbound_trunks()
        .into_iter()
        .filter(|t| t.name.starts_with("trunkline-outbound-"))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn telnyx_outbound_connect_call_reconnect_and_disconnect(backend: Backend) {
    let emus = Emulators::start();
    let emu = &emus.telnyx;
    let lk = livekit_emulator();
    let acct = emus.account("Acme Inc", 3);
    let server = emus.settings(&backend).with_livekit(&lk).start().await;
    let transcript = Transcript::default();
    let acme = Tx(Client::new(
        &server,
        token("acme", &["customer"]),
        &transcript,
    ));
    acme.save(&acct.key_body()).await.ok();
    let (first, second, inbound_only) = (acct.id(0), acct.id(1), acct.id(2));
    let from = acct.e164(0).to_owned();
    let callee = "+14155550199";

    // --- connect with outbound: credential auth and a voice profile at Telnyx, one LiveKit
    //     outbound trunk towards sip.telnyx.com with the X-Telnyx-Username header.
    let c = acme
        .connect(
            first,
            &json!({"routing": {"agentName": AGENT}, "outbound": true}),
        )
        .await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(action(&c, "termination"), "created", "{c}");
    assert_eq!(action(&c, "livekitOutboundTrunk"), "created", "{c}");
    let route = c["routeId"].as_str().expect("a route").to_owned();
    let auth = emu.outbound_auth(&route).expect("the connection exists");
    assert_eq!(auth.method, "credential-authentication", "{auth:?}");
    let username = auth.user_name.clone().expect("a SIP username");
    assert!(
        (4..=32).contains(&username.len()) && username.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{username}"
    );
    let password = auth.password.clone().expect("a SIP password");
    assert!(password.len() >= 20, "a strong password");
    let profiles = emu.voice_profiles(&acct.account.id);
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    let profile = profiles[0].clone();
    assert!(
        profile.name.starts_with("trunkline-outbound-"),
        "{profile:?}"
    );
    assert!(profile.enabled);
    assert_eq!(
        profile.whitelisted_destinations,
        vec!["US"],
        "the number's country by default"
    );
    assert_eq!(profile.connections, vec![route.clone()]);
    assert_eq!(
        emu.connection(&route)
            .and_then(|c| c.outbound_voice_profile_id)
            .as_deref(),
        Some(profile.id.as_str())
    );
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1, "{lk_trunks:?}");
    let lk_trunk = lk_trunks[0].clone();
    assert_eq!(lk_trunk.address, TELNYX_SIP);
    assert_eq!(lk_trunk.numbers, vec![from.clone()]);
    assert_eq!(lk_trunk.auth_username, username);
    assert_eq!(
        lk_trunk.auth_password, password,
        "LiveKit and Telnyx hold one password"
    );
    assert_eq!(lk_trunk.transport, proto::SipTransport::Tcp as i32);
    let want_headers = BTreeMap::from([("X-Telnyx-Username".to_owned(), username.clone())]);
    let headers: BTreeMap<String, String> = lk_trunk.headers.clone().into_iter().collect();
    assert_eq!(headers, want_headers, "the username header on every INVITE");

    // --- a second connect changes nothing at Telnyx or LiveKit.
    let mark = emu.requests().len();
    lk.reset_requests();
    let again = acme.connect(first, &json!({})).await;
    let again = again.ok().clone();
    assert_eq!(action(&again, "termination"), "reused", "{again}");
    assert_eq!(action(&again, "livekitOutboundTrunk"), "reused", "{again}");
    emus.only_reads_since(mark);
    let lk_writes: Vec<_> = lk
        .requests()
        .into_iter()
        .filter(|r| r.method.is_some_and(LkMethod::is_write))
        .collect();
    assert!(lk_writes.is_empty(), "{lk_writes:?}");

    // --- status: the outbound half as Telnyx and LiveKit hold it, no drift.
    let status = acme.status(first, "").await;
    let outbound = status.ok()["outbound"].clone();
    assert_eq!(outbound["enabled"], true, "{outbound}");
    assert_eq!(outbound["terminationHost"], TELNYX_SIP, "{outbound}");
    assert_eq!(outbound["credentialsAttached"], true, "{outbound}");
    assert_eq!(outbound["livekitTrunkExists"], true, "{outbound}");
    assert_eq!(outbound["drift"], json!([]), "{outbound}");

    // --- a second number on the same route joins the same LiveKit outbound trunk; Telnyx's
    //     credentials and profile are shared, not made again.
    let s = acme
        .connect(
            second,
            &json!({"routing": {"agentName": AGENT}, "outbound": true}),
        )
        .await;
    let s = s.ok().clone();
    assert_eq!(s["routeId"], route.as_str(), "one shared connection: {s}");
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1, "{lk_trunks:?}");
    assert_eq!(lk_trunks[0].sip_trunk_id, lk_trunk.sip_trunk_id);
    assert_eq!(
        sorted(lk_trunks[0].numbers.clone()),
        sorted(vec![from.clone(), acct.e164(1).to_owned()])
    );
    let headers: BTreeMap<String, String> = lk_trunks[0].headers.clone().into_iter().collect();
    assert_eq!(headers, want_headers);
    assert_eq!(emu.voice_profiles(&acct.account.id).len(), 1);
    assert_eq!(emu.count(Route::UpdateFqdnAuthentication), 1);
    assert_eq!(emu.count(Route::CreateVoiceProfile), 1);

    // --- refused before anything is dialled: a number connected inbound only.
    acme.connect(inbound_only, &json!({"routing": {"agentName": AGENT}}))
        .await
        .ok();
    place(&acme, &json!({"from": acct.e164(2), "to": callee}))
        .await
        .expect(409, Some("OUTBOUND_NOT_ENABLED"));
    assert_eq!(lk.count(LkMethod::CreateSipParticipant), 0);

    // --- place a call: agent dispatched once, dialled on the Telnyx trunk with
    //     sip_number = from.
    let placed = place(
        &acme,
        &json!({"from": from, "to": callee, "waitUntilAnswered": true}),
    )
    .await;
    placed.expect(201, None);
    assert_eq!(placed.body["direction"], "outbound", "{}", placed.body);
    assert_eq!(placed.body["status"], "answered", "{}", placed.body);
    let room = placed.body["roomName"].as_str().expect("a room").to_owned();
    let call_id = placed.body["callId"]
        .as_str()
        .expect("a call id")
        .to_owned();
    let calls = lk.outbound_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let dialled = &calls[0];
    assert_eq!(dialled.room, room);
    assert_eq!(dialled.from, from);
    assert_eq!(dialled.to, callee);
    assert_eq!(dialled.trunk_id, lk_trunk.sip_trunk_id);
    assert_eq!(dialled.address, TELNYX_SIP);
    assert_eq!(dialled.auth_username, username);
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
    assert_eq!(record["caller"], from.as_str());
    assert_eq!(
        lk.dispatch_history(&room).len(),
        1,
        "dispatched exactly once"
    );

    // --- drift: credential authentication switched off behind trunkline's back shows in
    //     status; connect puts it back with the same credentials.
    assert!(emu.drop_outbound_credentials(&route));
    let status = acme.status(first, "").await;
    let drift = status.ok()["outbound"]["drift"].clone();
    assert!(
        drift.to_string().contains("credentials are not attached"),
        "{drift}"
    );
    acme.connect(first, &json!({})).await.ok();
    let auth = emu.outbound_auth(&route).unwrap();
    assert_eq!(auth.method, "credential-authentication");
    assert_eq!(auth.user_name.as_deref(), Some(username.as_str()));
    assert_eq!(auth.password.as_deref(), Some(password.as_str()));
    let status = acme.status(first, "").await;
    assert_eq!(
        status.ok()["outbound"]["drift"],
        json!([]),
        "{}",
        status.body
    );

    // --- disconnect: the first leaves the trunk's list (the header stays); the last removes
    //     the voice profile, the credential authentication and the trunk.
    acme.disconnect(first, &json!({})).await.ok();
    let lk_trunks = outbound_trunks(&lk);
    assert_eq!(lk_trunks.len(), 1);
    assert_eq!(lk_trunks[0].numbers, vec![acct.e164(1).to_owned()]);
    let headers: BTreeMap<String, String> = lk_trunks[0].headers.clone().into_iter().collect();
    assert_eq!(headers, want_headers, "a number leaving keeps the header");
    assert_eq!(emu.voice_profiles(&acct.account.id).len(), 1);
    assert_eq!(
        emu.outbound_auth(&route).unwrap().method,
        "credential-authentication"
    );
    acme.disconnect(second, &json!({})).await.ok();
    assert!(
        outbound_trunks(&lk).is_empty(),
        "{:?}",
        lk.outbound_trunks()
    );
    assert!(
        emu.voice_profiles(&acct.account.id).is_empty(),
        "{:?}",
        emu.voice_profiles(&acct.account.id)
    );
    // The connection still carries the inbound-only number: it stays, without credential
    // authentication or a profile.
    let conn = emu.connection(&route).expect("still used inbound");
    assert_eq!(conn.outbound_voice_profile_id, None);
    assert_eq!(
        emu.outbound_auth(&route).unwrap().method,
        "ip-authentication"
    );
    // A disconnected number may not call any more.
    place(&acme, &json!({"from": from, "to": callee}))
        .await
        .expect(404, Some("NOT_CONNECTED"));

    // --- the SIP password and the API key never left trunkline towards a client or a log.
    let placed = PLACED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .join("\n");
    assert!(!placed.is_empty());
    assert!(
        !placed.contains(&password),
        "a call answer held the password"
    );
    assert_no_secrets(
        &server,
        &transcript,
        &[password, acct.account.api_key.clone()],
    );
}

/// `TRUNKLINE_OUTBOUND_ALLOWED_COUNTRIES` replaces the default whitelist (the numbers'
/// countries) of the outbound voice profile. One backend: the setting never reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_destination_countries_reach_the_voice_profile() {
    let emus = Emulators::start();
    let lk = livekit_emulator();
    let acct = emus.account("Acme Inc", 1);
    let server = emus
        .settings(&Backend::Sqlite)
        .with_livekit(&lk)
        .with("TRUNKLINE_OUTBOUND_ALLOWED_COUNTRIES", "us, gb,CA")
        .start()
        .await;
    let transcript = Transcript::default();
    let acme = Tx(Client::new(
        &server,
        token("acme", &["customer"]),
        &transcript,
    ));
    acme.save(&acct.key_body()).await.ok();
    let c = acme
        .connect(
            acct.id(0),
            &json!({"routing": {"agentName": AGENT}, "outbound": true}),
        )
        .await;
    assert_eq!(c.ok()["status"], "connected");
    let profiles = emus.telnyx.voice_profiles(&acct.account.id);
    assert_eq!(profiles.len(), 1, "{profiles:?}");
    assert_eq!(
        sorted(profiles[0].whitelisted_destinations.clone()),
        ["CA", "GB", "US"]
    );
}
