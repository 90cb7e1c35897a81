//! Voice-URL mode end to end (issue 14): the real `trunkline` binary against the Twilio and
//! LiveKit emulators, on SQLite and PostgreSQL. An account without SIP trunking connects with
//! `auto` and ends in voice-URL mode; the emulator places a call the way Twilio does (a
//! signed POST to the number's voice URL) and gets TwiML that dials LiveKit with the right
//! credentials; LiveKit accepts the call only with them and its webhooks dispatch the agent
//! once; disconnect restores the old voice URL. Two customers' accounts share the one route;
//! every forgery (another account's token, a tampered parameter, a replay to another URL, no
//! signature, an unknown account) is refused, and nothing is stored for it.

#[macro_use]
mod support;

use serde_json::{Value, json};
use trunkline_core::E164;
use trunkline_testkit::livekit::InviteRefused;
use trunkline_testkit::twilio::{TestAccount, TwilioEmulator, Twiml, VoiceCallOptions};
use trunkline_twilio::{PhoneNumberSid, VoiceConfig};

use support::livekit::{
    AGENT, all_accepted, deliver, livekit_emulator, pg_count, wait_for_call, webhook_url,
};
use support::{
    Backend, Client, SIP_TARGET, Settings, Transcript, action, assert_no_secrets, emulator, token,
};

on_both_backends!(
    an_account_without_trunking_connects_by_voice_url,
    accounts_share_the_route_and_forgeries_are_refused,
    voice_url_mode_needs_a_public_url_and_the_auth_token,
);

/// The URL Twilio reaches trunkline at: a proxy in front of the test server.
const PUBLIC: &str = "https://voice.trunkline.e2e.test";
const VOICE_PATH: &str = "/telephony/providers/twilio/voice";
const OLD_VOICE_URL: &str = "https://old.example.com/answer";

fn voice_url() -> String {
    format!("{PUBLIC}{VOICE_PATH}")
}

fn token_body(account: &TestAccount) -> Value {
    json!({ "accountSid": account.sid.as_str(), "authToken": account.auth_token })
}

/// A number of `account` that answers calls at [`OLD_VOICE_URL`] (GET) before trunkline.
fn number_with_old_voice_url(
    twilio: &TwilioEmulator,
    account: &TestAccount,
    e164: &str,
) -> PhoneNumberSid {
    twilio.add_number(
        &account.sid,
        &E164::parse(e164).unwrap(),
        &VoiceConfig {
            voice_url: Some(OLD_VOICE_URL.to_owned()),
            voice_method: Some("GET".to_owned()),
            ..VoiceConfig::default()
        },
    )
}

/// Through the proxy to the server, signed over the public URL as Twilio signs.
fn via_proxy(server: &trunkline_e2e::TestServer) -> VoiceCallOptions {
    VoiceCallOptions {
        deliver_to: Some(server.url(VOICE_PATH)),
        ..VoiceCallOptions::default()
    }
}

fn dial_of(twiml: Option<&Twiml>) -> (String, String, String) {
    match twiml {
        Some(Twiml::DialSip {
            uri,
            username: Some(u),
            password: Some(p),
        }) => (uri.clone(), u.clone(), p.clone()),
        other => panic!("expected a SIP dial with credentials, got {other:?}"),
    }
}

async fn an_account_without_trunking_connects_by_voice_url(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let account = twilio.add_account_without_trunking("Trial Co");
    let e164 = "+14155550142";
    let pn = number_with_old_voice_url(&twilio, &account, e164);
    let mut server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_PUBLIC_URL", PUBLIC)
        .start()
        .await;
    let transcript = Transcript::default();
    let trial = Client::new(&server, token("trial", &["customer"]), &transcript);

    let saved = trial.save(&token_body(&account)).await;
    let saved = saved.ok();
    assert_eq!(saved["webhookSecretStored"], true, "{saved}");
    assert_eq!(saved["capabilities"]["trunking"], "not_enabled", "{saved}");

    // --- auto: the carrier says trunking is not enabled, so voice-URL mode.
    let c = trial
        .connect(
            &pn,
            &json!({"mode": "auto", "routing": {"agentName": AGENT}}),
        )
        .await;
    let c = c.ok().clone();
    assert_eq!(c["status"], "connected", "{c}");
    assert_eq!(c["mode"], "voiceUrl", "{c}");
    assert_eq!(c["routeId"], Value::Null, "{c}");
    assert_eq!(action(&c, "voiceConfig"), "created");
    assert_eq!(action(&c, "voiceUrl"), "updated");
    assert_eq!(action(&c, "sipCredentials"), "created");
    assert_eq!(action(&c, "livekitTrunk"), "created");
    assert!(twilio.trunks(&account.sid).is_empty(), "no trunk at Twilio");
    let number = twilio.number(&pn).unwrap();
    assert_eq!(
        number.voice.voice_url.as_deref(),
        Some(voice_url().as_str())
    );
    assert_eq!(number.voice.voice_method.as_deref(), Some("POST"));
    let trunks = lk.trunks_for_number(e164);
    assert_eq!(trunks.len(), 1, "{trunks:?}");
    let (lk_user, lk_pass) = (
        trunks[0].auth_username.clone(),
        trunks[0].auth_password.clone(),
    );
    assert!(
        lk_user.len() >= 8 && lk_pass.len() >= 32,
        "digest credentials required"
    );
    assert!(
        !c.to_string().contains(&lk_pass),
        "the SIP password is never returned"
    );

    // A rerun finds everything right and changes nothing.
    let again = trial.connect(&pn, &json!({})).await;
    let again = again.ok().clone();
    assert_eq!(again["mode"], "voiceUrl");
    assert_eq!(action(&again, "voiceUrl"), "reused");
    assert_eq!(action(&again, "sipCredentials"), "reused");
    assert_eq!(lk.trunks_for_number(e164)[0].auth_password, lk_pass);

    // --- a call: Twilio fetches the voice URL, signed, through the proxy.
    let call = twilio.place_voice_url_call(&pn, &via_proxy(&server)).await;
    assert_eq!(call.status, Some(200), "{call:?}");
    assert!(
        call.content_type
            .as_deref()
            .is_some_and(|t| t.contains("xml")),
        "{call:?}"
    );
    let (uri, user, pass) = dial_of(call.twiml.as_ref());
    let host = SIP_TARGET.trim_start_matches("sip:");
    assert_eq!(uri, format!("sip:{e164}@{host};transport=tcp"));
    assert_eq!(
        (user.as_str(), pass.as_str()),
        (lk_user.as_str(), lk_pass.as_str())
    );

    // LiveKit takes the call only with those credentials.
    assert_eq!(
        lk.sip_invite(&uri, "+14155550199", Some(user.as_str()), Some("wrong"))
            .unwrap_err(),
        InviteRefused::Unauthorized
    );
    assert_eq!(
        lk.sip_invite(&uri, "+14155550199", None, None).unwrap_err(),
        InviteRefused::Unauthorized
    );
    let played = lk
        .sip_invite(
            &uri,
            "+14155550199",
            Some(user.as_str()),
            Some(pass.as_str()),
        )
        .expect("LiveKit accepts the call");
    // --- the webhooks that follow dispatch the agent once, even delivered twice. The start
    // (room started, caller joined) first: an end acted on before the join would cancel the
    // dispatch, as in trunk mode.
    let (start, end) = played.events.split_at(2);
    let deliveries = deliver(&lk, &[webhook_url(&server)], start, 2, false).await;
    all_accepted(&deliveries);
    let record = wait_for_call(&trial, &played.room, "the dispatch", |c| {
        c["dispatchStatus"] == "dispatched"
    })
    .await;
    let history = lk.dispatch_history(&played.room);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].agent_name, AGENT);
    assert_eq!(record["dispatchId"], history[0].id.as_str());
    // The end of the call, twice too: it ends the call and dispatches nothing more.
    all_accepted(&deliver(&lk, &[webhook_url(&server)], end, 2, false).await);
    wait_for_call(&trial, &played.room, "the end of the call", |c| {
        c["status"] == "ended"
    })
    .await;
    assert_eq!(lk.dispatch_history(&played.room).len(), 1);

    // --- status: the mode, and drift when the voice URL is changed at the carrier.
    let s = trial.status(&pn, "").await;
    let s = s.ok().clone();
    assert_eq!(s["mode"], "voiceUrl", "{s}");
    assert!(s["drifts"].as_array().unwrap().is_empty(), "{s}");
    twilio.set_voice_url(&pn, Some("https://elsewhere.example.com/x"));
    let s = trial.status(&pn, "").await;
    let kinds = support::livekit::drift_kinds(s.ok());
    assert!(kinds.contains("voice_url_changed"), "{kinds:?}");
    // Connecting again points it back.
    let fixed = trial.connect(&pn, &json!({})).await;
    assert_eq!(action(fixed.ok(), "voiceUrl"), "updated");
    assert_eq!(
        twilio.number(&pn).unwrap().voice.voice_url.as_deref(),
        Some(voice_url().as_str())
    );

    // --- disconnect restores the old voice URL and method, and removes the LiveKit trunk.
    let d = trial.disconnect(&pn, &json!({})).await;
    let d = d.ok().clone();
    assert_eq!(d["status"], "disconnected", "{d}");
    assert_eq!(action(&d, "voiceConfig"), "restored");
    let number = twilio.number(&pn).unwrap();
    assert_eq!(number.voice.voice_url.as_deref(), Some(OLD_VOICE_URL));
    assert_eq!(number.voice.voice_method.as_deref(), Some("GET"));
    assert!(lk.trunks_for_number(e164).is_empty());
    // A late request for the number is rejected: trunkline no longer routes it.
    let late = twilio
        .place_voice_url_call(
            &pn,
            &VoiceCallOptions {
                sign_url: Some(voice_url()),
                ..via_proxy(&server)
            },
        )
        .await;
    assert_eq!(late.status, Some(200), "{late:?}");
    assert_eq!(late.twiml, Some(Twiml::Reject));
    // Logged, masked: the number never appears in full in a log line (stopped first, so
    // the output is complete).
    server.stop();
    let logs = server.stderr() + &server.stdout();
    assert!(
        logs.contains("+1********42"),
        "the rejected number is logged masked"
    );
    assert!(!logs.contains(e164), "an unmasked number was logged");

    let mut secrets = vec![account.auth_token.clone(), lk_pass];
    secrets.push(support::basic(account.sid.as_str(), &account.auth_token));
    assert_no_secrets(&server, &transcript, &secrets);
}

async fn accounts_share_the_route_and_forgeries_are_refused(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let (a, b) = (
        twilio.add_account_without_trunking("A Co"),
        twilio.add_account_without_trunking("B Co"),
    );
    assert_ne!(a.auth_token, b.auth_token);
    let pa = number_with_old_voice_url(&twilio, &a, "+14155550201");
    let pb = number_with_old_voice_url(&twilio, &b, "+14155550202");
    let mut server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_PUBLIC_URL", PUBLIC)
        .start()
        .await;
    let transcript = Transcript::default();
    let ca = Client::new(&server, token("cust-a", &["customer"]), &transcript);
    let cb = Client::new(&server, token("cust-b", &["customer"]), &transcript);
    ca.save(&token_body(&a)).await.ok();
    cb.save(&token_body(&b)).await.ok();
    for (client, pn) in [(&ca, &pa), (&cb, &pb)] {
        let c = client.connect(pn, &json!({"mode": "voiceUrl"})).await;
        assert_eq!(c.ok()["mode"], "voiceUrl");
    }

    // Both accounts' calls reach the one route, each validated with its own token.
    let call_a = twilio.place_voice_url_call(&pa, &via_proxy(&server)).await;
    let call_b = twilio.place_voice_url_call(&pb, &via_proxy(&server)).await;
    let (uri_a, user_a, _) = dial_of(call_a.twiml.as_ref());
    let (uri_b, user_b, _) = dial_of(call_b.twiml.as_ref());
    assert!(uri_a.starts_with("sip:+14155550201@") && uri_b.starts_with("sip:+14155550202@"));
    assert_ne!(user_a, user_b);
    // Signed with the default port written out: Twilio's SDKs accept it, so does trunkline.
    let with_port = twilio
        .place_voice_url_call(
            &pa,
            &VoiceCallOptions {
                sign_with_port: true,
                ..via_proxy(&server)
            },
        )
        .await;
    assert_eq!(with_port.status, Some(200), "{with_port:?}");

    let calls_before = pg_count(&backend, "calls").await;
    let refused =
        |outcome: &trunkline_testkit::twilio::VoiceCallOutcome, status: u16, code: &str| {
            assert_eq!(outcome.status, Some(status), "{outcome:?}");
            let body: Value = serde_json::from_str(&outcome.body).expect("an error envelope");
            assert_eq!(body["errorCode"], code, "{body}");
            assert!(body["requestId"].is_string(), "{body}");
            assert!(!outcome.body.contains("<Sip"), "{outcome:?}");
        };
    // The other account's token.
    let forged = twilio
        .place_voice_url_call(
            &pa,
            &VoiceCallOptions {
                sign_with_token: Some(b.auth_token.clone()),
                ..via_proxy(&server)
            },
        )
        .await;
    refused(&forged, 403, "FORBIDDEN");
    // A parameter changed after signing: the called number, or the caller.
    for (name, value) in [("To", "+14155550202"), ("From", "+19995550000")] {
        let tampered = twilio
            .place_voice_url_call(
                &pa,
                &VoiceCallOptions {
                    tamper: Some((name.to_owned(), value.to_owned())),
                    ..via_proxy(&server)
                },
            )
            .await;
        refused(&tampered, 403, "FORBIDDEN");
    }
    // Signed for another URL and replayed here.
    let replayed = twilio
        .place_voice_url_call(
            &pa,
            &VoiceCallOptions {
                sign_url: Some(format!("https://other.example.net{VOICE_PATH}")),
                ..via_proxy(&server)
            },
        )
        .await;
    refused(&replayed, 403, "FORBIDDEN");
    // No signature at all.
    let unsigned = twilio
        .place_voice_url_call(
            &pa,
            &VoiceCallOptions {
                unsigned: true,
                ..via_proxy(&server)
            },
        )
        .await;
    refused(&unsigned, 400, "VALIDATION_FAILED");
    // A called number that is not a phone number: 400 naming it, before any lookup.
    let malformed = twilio
        .place_voice_url_call(
            &pa,
            &VoiceCallOptions {
                tamper: Some(("To".to_owned(), "client:alice".to_owned())),
                ..via_proxy(&server)
            },
        )
        .await;
    refused(&malformed, 400, "VALIDATION_FAILED");
    assert!(malformed.body.contains("To"), "{malformed:?}");
    // An account trunkline has no credentials for, though its number points here.
    let stranger = twilio.add_account_without_trunking("Stranger");
    let ps = twilio.add_number(
        &stranger.sid,
        &E164::parse("+14155550203").unwrap(),
        &VoiceConfig {
            voice_url: Some(voice_url()),
            ..VoiceConfig::default()
        },
    );
    let unknown = twilio.place_voice_url_call(&ps, &via_proxy(&server)).await;
    refused(&unknown, 403, "FORBIDDEN");
    // Nothing was stored for any refused request.
    assert_eq!(pg_count(&backend, "calls").await, calls_before);
    assert_eq!(
        pg_count(&backend, "webhook_events").await,
        calls_before.map(|_| 0)
    );
    server.stop();
    let logs = server.stderr() + &server.stdout();
    assert!(logs.contains("bad_signature") && logs.contains("unknown_account"));

    let mut secrets = vec![a.auth_token.clone(), b.auth_token.clone()];
    for t in lk.trunks() {
        secrets.push(t.auth_password.clone());
    }
    assert_no_secrets(&server, &transcript, &secrets);
}

async fn voice_url_mode_needs_a_public_url_and_the_auth_token(backend: Backend) {
    let twilio = emulator();
    let lk = livekit_emulator();
    let account = twilio.add_account_without_trunking("No URL Co");
    let pn = number_with_old_voice_url(&twilio, &account, "+14155550301");
    // No TRUNKLINE_PUBLIC_URL: trunkline cannot say where Twilio should send calls, nor
    // check a signature.
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .start()
        .await;
    let transcript = Transcript::default();
    let client = Client::new(&server, token("no-url", &["customer"]), &transcript);
    client.save(&token_body(&account)).await.ok();
    client
        .connect(&pn, &json!({"mode": "voiceUrl"}))
        .await
        .expect(503, Some("NOT_CONFIGURED"));
    // `auto` on an account without trunking picks voice-URL mode, which cannot be set up.
    client
        .connect(&pn, &json!({"mode": "auto"}))
        .await
        .expect(503, Some("NOT_CONFIGURED"));
    let number = twilio.number(&pn).unwrap();
    assert_eq!(number.voice.voice_url.as_deref(), Some(OLD_VOICE_URL));
    assert!(lk.trunks_for_number("+14155550301").is_empty());
    // Twilio calling anyway (the number pointed here by hand): 503, not a guess.
    assert!(twilio.set_voice_url(&pn, Some(&voice_url())));
    let call = twilio.place_voice_url_call(&pn, &via_proxy(&server)).await;
    assert_eq!(call.status, Some(503), "{call:?}");
    let body: Value = serde_json::from_str(&call.body).expect("an error envelope");
    assert_eq!(body["errorCode"], "NOT_CONFIGURED", "{body}");
    assert!(twilio.set_voice_url(&pn, Some(OLD_VOICE_URL)));

    // With the public URL, credentials without the auth token (an API key alone) cannot
    // connect in voice-URL mode: Twilio signs with the auth token.
    let server = Settings::new(&twilio, &backend)
        .with_livekit(&lk)
        .with("TRUNKLINE_PUBLIC_URL", PUBLIC)
        .start()
        .await;
    let client = Client::new(&server, token("no-token", &["customer"]), &transcript);
    let key = twilio.add_api_key(&account.sid, false);
    let saved = client
        .save(&json!({
            "accountSid": account.sid.as_str(),
            "apiKeySid": key.sid.as_str(),
            "apiKeySecret": key.secret,
        }))
        .await;
    assert_eq!(saved.ok()["webhookSecretStored"], false);
    // An auth token beside the key is checked at Twilio: a wrong one is refused, nothing
    // saved (a typo would otherwise fail every call's signature).
    let with_token = |t: &str| {
        json!({
            "accountSid": account.sid.as_str(),
            "apiKeySid": key.sid.as_str(),
            "apiKeySecret": key.secret,
            "authToken": t,
        })
    };
    let typo = client
        .save(&with_token("0123456789abcdef0123456789abcdef"))
        .await;
    let typo = typo.expect(422, Some("AUTH_INVALID"));
    assert!(
        typo.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("authToken")),
        "{}",
        typo.body
    );
    let refused = client.connect(&pn, &json!({"mode": "voiceUrl"})).await;
    let refused = refused.expect(400, Some("VALIDATION_FAILED"));
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("authToken")),
        "{}",
        refused.body
    );
    let number = twilio.number(&pn).unwrap();
    assert_eq!(number.voice.voice_url.as_deref(), Some(OLD_VOICE_URL));
    // Another customer of this server saved the same account (same token) and connected
    // nothing: its secret validates the call too, and the store reads it first (ids sort
    // before "no-token").
    let other = Client::new(&server, token("a-same-account", &["customer"]), &transcript);
    other.save(&token_body(&account)).await.ok();
    // The right token beside the key: stored, and voice-URL mode connects.
    let saved = client.save(&with_token(&account.auth_token)).await;
    assert_eq!(saved.ok()["webhookSecretStored"], true);
    assert_eq!(saved.ok()["keyId"], key.sid.as_str());
    let c = client.connect(&pn, &json!({"mode": "voiceUrl"})).await;
    assert_eq!(c.ok()["mode"], "voiceUrl");
    // The first customer saved the same account (same token) without connecting it: the
    // customer holding the connection answers, whatever order the store reads them in.
    let call = twilio.place_voice_url_call(&pn, &via_proxy(&server)).await;
    assert_eq!(call.status, Some(200), "{call:?}");
    let (uri, _, _) = dial_of(call.twiml.as_ref());
    assert!(uri.starts_with("sip:+14155550301@"), "{uri}");
    assert_no_secrets(
        &server,
        &transcript,
        &[account.auth_token.clone(), key.secret.clone()],
    );
}
