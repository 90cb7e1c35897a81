//! What the emulator does, request by request, compared with what Twilio does.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use trunkline_core::E164;
use trunkline_testkit::twilio::{
    EmulatorOptions, Fault, Host, KeyPermissions, Route, RouteSelector, TwilioEmulator,
};
use trunkline_twilio::{ApplicationSid, VoiceConfig};

use crate::http::{client, send, send_with};

fn numbers_url(emu: &TwilioEmulator, account: &str) -> String {
    format!(
        "{}/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
        emu.api_base()
    )
}

fn number_url(emu: &TwilioEmulator, account: &str, pn: &str) -> String {
    format!(
        "{}/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{pn}.json",
        emu.api_base()
    )
}

#[tokio::test]
async fn authentication_is_checked_like_twilio() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let b = emu.add_account("b");
    let url = numbers_url(&emu, a.sid.as_str());

    let r = send("GET", &url, None, &[]).await;
    assert_eq!((r.status, r.code()), (401, Some(20003)));
    assert!(r.headers.get("www-authenticate").is_some());

    let r = send("GET", &url, Some((a.sid.as_str(), "wrong")), &[]).await;
    assert_eq!((r.status, r.code()), (401, Some(20003)));
    let r = send("GET", &url, Some((a.sid.as_str(), &a.auth_token)), &[]).await;
    assert_eq!(r.status, 200);
    // Another account's valid credentials on this account's resource.
    let r = send("GET", &url, Some((b.sid.as_str(), &b.auth_token)), &[]).await;
    assert_eq!((r.status, r.code()), (401, Some(20003)));

    let account_url = format!("{}/2010-04-01/Accounts/{}.json", emu.api_base(), a.sid);
    let standard = emu.add_api_key(&a.sid, true);
    let r = send(
        "GET",
        &account_url,
        Some((standard.sid.as_str(), &standard.secret)),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (401, Some(20003)),
        "a Standard key cannot read /Accounts"
    );
    let main = emu.add_api_key_with(
        &a.sid,
        KeyPermissions {
            numbers: true,
            trunking: true,
            main: true,
        },
    );
    let r = send(
        "GET",
        &account_url,
        Some((main.sid.as_str(), &main.secret)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["friendly_name"], "a");
    let r = send(
        "GET",
        &account_url,
        Some((a.sid.as_str(), &a.auth_token)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);

    emu.remove_api_key(&standard.sid);
    let r = send(
        "GET",
        &url,
        Some((standard.sid.as_str(), &standard.secret)),
        &[],
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn restricted_keys_and_accounts_without_trunking_are_refused() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let trunks = format!("{}/v1/Trunks", emu.trunking_base());
    let restricted = emu.add_api_key(&a.sid, false);
    let auth = Some((restricted.sid.as_str(), restricted.secret.as_str()));
    let r = send("GET", &trunks, auth, &[]).await;
    assert_eq!((r.status, r.code()), (403, Some(70051)));
    let r = send("GET", &numbers_url(&emu, a.sid.as_str()), auth, &[]).await;
    assert_eq!(r.status, 200, "numbers are allowed");

    let no_numbers = emu.add_api_key_with(
        &a.sid,
        KeyPermissions {
            numbers: false,
            trunking: true,
            main: false,
        },
    );
    let auth = Some((no_numbers.sid.as_str(), no_numbers.secret.as_str()));
    let r = send("GET", &numbers_url(&emu, a.sid.as_str()), auth, &[]).await;
    assert_eq!((r.status, r.code()), (403, Some(70051)));

    let plain = emu.add_account_without_trunking("plain");
    let auth = Some((plain.sid.as_str(), plain.auth_token.as_str()));
    let r = send("GET", &trunks, auth, &[]).await;
    assert_eq!((r.status, r.code()), (403, Some(20403)));
    emu.set_trunking_enabled(&plain.sid, true);
    assert_eq!(send("GET", &trunks, auth, &[]).await.status, 200);
}

#[tokio::test]
async fn incoming_numbers_page_like_the_2010_api() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let seeded = emu.seed_numbers(&a.sid, 7);
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let first = send(
        "GET",
        &format!("{}?PageSize=3", numbers_url(&emu, a.sid.as_str())),
        auth,
        &[],
    )
    .await;
    assert_eq!(first.status, 200);
    let body = &first.body;
    assert_eq!(body["page"], 0);
    assert_eq!(body["page_size"], 3);
    assert_eq!(
        (body["start"].as_i64(), body["end"].as_i64()),
        (Some(0), Some(2))
    );
    assert!(body["previous_page_uri"].is_null());
    let mut seen: Vec<String> = Vec::new();
    let mut page = first.body.clone();
    let mut pages = 1;
    loop {
        seen.extend(
            page["incoming_phone_numbers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["sid"].as_str().unwrap().to_owned()),
        );
        let Some(next) = page["next_page_uri"].as_str() else {
            break;
        };
        assert!(next.starts_with("/2010-04-01/Accounts/"), "{next}");
        assert!(next.contains("PageToken=PA"), "{next}");
        page = send("GET", &format!("{}{next}", emu.api_base()), auth, &[])
            .await
            .body;
        pages += 1;
        assert_eq!(page["page"], pages - 1);
    }
    assert_eq!(pages, 3);
    let expected: BTreeSet<String> = seeded.iter().map(|n| n.sid.to_string()).collect();
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(seen.len(), 7);
    // The last page links back to the one before it.
    let prev = page["previous_page_uri"].as_str().unwrap().to_owned();
    let back = send("GET", &format!("{}{prev}", emu.api_base()), auth, &[])
        .await
        .body;
    let back_sids: Vec<_> = back["incoming_phone_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(back_sids, seen[3..6]);

    // Filter by number: exact, and the filter survives into the links.
    let wanted = &seeded[4].e164;
    let url = format!(
        "{}?PhoneNumber={}&PageSize=1",
        numbers_url(&emu, a.sid.as_str()),
        wanted.as_str().replace('+', "%2B")
    );
    let r = send("GET", &url, auth, &[]).await;
    let items = r.body["incoming_phone_numbers"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["phone_number"], wanted.as_str());
    assert!(r.body["uri"].as_str().unwrap().contains("PhoneNumber=%2B1"));

    for bad in ["PageSize=1001", "PageSize=0", "PageToken=XX1", "Page=-1"] {
        let r = send(
            "GET",
            &format!("{}?{bad}", numbers_url(&emu, a.sid.as_str())),
            auth,
            &[],
        )
        .await;
        assert_eq!((r.status, r.code()), (400, Some(70002)), "{bad}");
    }
}

#[tokio::test]
async fn trunking_lists_page_with_a_meta_block() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    for i in 0..5 {
        emu.add_trunk(&a.sid, Some(&format!("t{i}")));
    }
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let mut url = format!("{}/v1/Trunks?PageSize=2", emu.trunking_base());
    let mut total = 0;
    let mut pages = 0;
    loop {
        let r = send("GET", &url, auth, &[]).await;
        assert_eq!(r.status, 200);
        let meta = &r.body["meta"];
        assert_eq!(meta["key"], "trunks");
        assert_eq!(meta["page_size"], 2);
        assert!(
            meta["first_page_url"]
                .as_str()
                .unwrap()
                .starts_with(&emu.trunking_base())
        );
        total += r.body["trunks"].as_array().unwrap().len();
        pages += 1;
        match meta["next_page_url"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((total, pages), (5, 3));
}

#[tokio::test]
async fn a_number_sits_on_one_trunk_and_attaching_clears_its_application() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let app = ApplicationSid::parse(&format!("AP{}", "1".repeat(32))).unwrap();
    let pn = emu.add_number(
        &a.sid,
        &E164::parse("+14155550142").unwrap(),
        &VoiceConfig {
            voice_url: Some("https://example.com/v".into()),
            voice_application_sid: Some(app.clone()),
            ..VoiceConfig::default()
        },
    );
    let t1 = emu.add_trunk(&a.sid, Some("one"));
    let t2 = emu.add_trunk(&a.sid, Some("two"));
    let attach = |tk: &str| format!("{}/v1/Trunks/{tk}/PhoneNumbers", emu.trunking_base());

    let r = send(
        "POST",
        &attach(t1.as_str()),
        auth,
        &[("PhoneNumberSid", pn.as_str())],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["trunk_sid"], t1.as_str());
    assert!(r.body["voice_application_sid"].is_null());
    let n = emu.number(&pn).unwrap();
    assert_eq!(n.trunk_sid.as_ref(), Some(&t1));
    assert_eq!(n.voice.voice_application_sid, None);
    assert_eq!(n.voice.voice_url.as_deref(), Some("https://example.com/v"));

    for tk in [&t1, &t2] {
        let r = send(
            "POST",
            &attach(tk.as_str()),
            auth,
            &[("PhoneNumberSid", pn.as_str())],
        )
        .await;
        assert_eq!((r.status, r.code()), (409, Some(20409)), "{tk}");
    }
    assert_eq!(emu.trunk_numbers(&t1), vec![pn.clone()]);
    assert!(emu.trunk_numbers(&t2).is_empty());

    // Setting a voice application through the 2010 API takes the number off its trunk…
    let url = number_url(&emu, a.sid.as_str(), pn.as_str());
    let r = send("POST", &url, auth, &[("VoiceApplicationSid", app.as_str())]).await;
    assert_eq!(r.status, 200);
    assert!(r.body["trunk_sid"].is_null());
    assert_eq!(r.body["voice_application_sid"], app.as_str());
    // …and setting TrunkSid there puts it on one and drops the application.
    let r = send("POST", &url, auth, &[("TrunkSid", t2.as_str())]).await;
    assert_eq!(r.body["trunk_sid"], t2.as_str());
    assert!(r.body["voice_application_sid"].is_null());
    let r = send("POST", &url, auth, &[("TrunkSid", "")]).await;
    assert!(r.body["trunk_sid"].is_null());
    let r = send("POST", &url, auth, &[("VoiceMethod", "PUT")]).await;
    assert_eq!((r.status, r.code()), (400, Some(70002)));
}

#[tokio::test]
async fn deleting_a_trunk_releases_numbers_drops_urls_and_reserves_its_domain() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let base = emu.trunking_base();
    let r = send(
        "POST",
        &format!("{base}/v1/Trunks"),
        auth,
        &[
            ("FriendlyName", "t"),
            ("DomainName", "acme-1.pstn.twilio.com"),
        ],
    )
    .await;
    assert_eq!(r.status, 201);
    let tk = r.body["sid"].as_str().unwrap().to_owned();
    let tk_sid = trunkline_twilio::TrunkSid::parse(&tk).unwrap();
    let pn = emu.seed_numbers(&a.sid, 1).remove(0).sid;
    emu.attach_number(&tk_sid, &pn);
    emu.add_origination_url(&tk_sid, "sip:a.example.com", 10, 10)
        .unwrap();

    let r = send("DELETE", &format!("{base}/v1/Trunks/{tk}"), auth, &[]).await;
    assert_eq!(r.status, 204);
    assert_eq!(emu.number(&pn).unwrap().trunk_sid, None);
    assert!(emu.origination_urls(&tk_sid).is_empty());
    let r = send("GET", &format!("{base}/v1/Trunks/{tk}"), auth, &[]).await;
    assert_eq!((r.status, r.code()), (404, Some(20404)));
    let r = send(
        "POST",
        &format!("{base}/v1/Trunks"),
        auth,
        &[("DomainName", "acme-1.pstn.twilio.com")],
    )
    .await;
    assert_eq!((r.status, r.code()), (409, Some(21248)));
}

#[tokio::test]
async fn origination_urls_need_every_required_parameter() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let tk = emu.add_trunk(&a.sid, None);
    let url = format!("{}/v1/Trunks/{tk}/OriginationUrls", emu.trunking_base());
    let full = [
        ("Weight", "10"),
        ("Priority", "20"),
        ("Enabled", "true"),
        ("FriendlyName", "f"),
        ("SipUrl", "sip:a.example.com"),
    ];
    for skip in 0..full.len() {
        let partial: Vec<_> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, p)| *p)
            .collect();
        let r = send("POST", &url, auth, &partial).await;
        assert_eq!(
            (r.status, r.code()),
            (400, Some(70002)),
            "without {}",
            full[skip].0
        );
    }
    let mut bad = full;
    bad[4] = ("SipUrl", "https://a.example.com");
    assert_eq!(send("POST", &url, auth, &bad).await.status, 400);
    bad = full;
    bad[0] = ("Weight", "70000");
    assert_eq!(send("POST", &url, auth, &bad).await.status, 400);
    let r = send("POST", &url, auth, &full).await;
    assert_eq!(r.status, 201);
    let stored = emu.origination_urls(&tk);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].priority, stored[0].weight, stored[0].enabled),
        (20, 10, true)
    );
    assert!(
        emu.origination_urls(&emu.add_trunk(&a.sid, None))
            .is_empty()
    );
}

#[tokio::test]
async fn faults_answer_as_injected_and_are_counted_per_route() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let trunks = format!("{}/v1/Trunks", emu.trunking_base());
    let numbers = numbers_url(&emu, a.sid.as_str());

    emu.inject(
        Route::ListTrunk,
        Fault::RateLimit {
            count: 2,
            retry_after: Duration::from_millis(1500),
        },
    );
    for _ in 0..2 {
        let r = send("GET", &trunks, auth, &[]).await;
        assert_eq!((r.status, r.code()), (429, Some(20429)));
        assert_eq!(
            r.headers.get("retry-after").unwrap(),
            "2",
            "rounded up to whole seconds"
        );
    }
    assert_eq!(send("GET", &trunks, auth, &[]).await.status, 200);
    assert_eq!(
        send("GET", &numbers, auth, &[]).await.status,
        200,
        "other routes untouched"
    );
    assert_eq!(emu.count(Route::ListTrunk), 3);
    assert_eq!(emu.count(Route::ListIncomingPhoneNumber), 1);
    assert_eq!(emu.count(Host::Trunking), 3);
    assert_eq!(emu.count(RouteSelector::Any), 4);
    assert_eq!(
        emu.counts(),
        vec![(Route::ListIncomingPhoneNumber, 1), (Route::ListTrunk, 3)]
    );

    emu.inject(Host::Api, Fault::ServerError { count: 1 });
    let r = send("GET", &numbers, auth, &[]).await;
    assert_eq!((r.status, r.code()), (500, Some(20500)));
    emu.inject(
        RouteSelector::Any,
        Fault::Unavailable {
            count: 1,
            retry_after: Some(Duration::from_secs(1)),
        },
    );
    let r = send("GET", &trunks, auth, &[]).await;
    assert_eq!((r.status, r.code()), (503, Some(20503)));
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");

    // Faults act before authentication, like a limiter in front of Twilio.
    emu.inject(
        Route::ListTrunk,
        Fault::RateLimit {
            count: 1,
            retry_after: Duration::ZERO,
        },
    );
    assert_eq!(send("GET", &trunks, None, &[]).await.status, 429);

    emu.inject(Route::ListTrunk, Fault::Latency(Duration::from_millis(150)));
    let t = Instant::now();
    assert_eq!(send("GET", &trunks, auth, &[]).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    emu.clear_faults();
    let t = Instant::now();
    assert_eq!(send("GET", &trunks, auth, &[]).await.status, 200);
    assert!(t.elapsed() < Duration::from_millis(150));

    let statuses: Vec<_> = emu.requests().iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(Option::is_some));
    emu.reset_requests();
    assert_eq!(emu.count(RouteSelector::Any), 0);
}

#[tokio::test]
async fn a_hang_outlasts_the_client_and_then_the_route_recovers() {
    let emu = TwilioEmulator::start_with(EmulatorOptions {
        hang_for: Duration::from_secs(5),
        ..EmulatorOptions::default()
    })
    .unwrap();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let url = numbers_url(&emu, a.sid.as_str());
    emu.inject(Route::ListIncomingPhoneNumber, Fault::Hang { count: 1 });
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let _ = client();
    let t = Instant::now();
    let err = send_with(&impatient, "GET", &url, auth, &[])
        .await
        .err()
        .unwrap();
    assert!(err.is_timeout(), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));
    // The hanging request is logged, unanswered; the next one is served at once.
    assert_eq!(emu.requests()[0].status, None);
    let r = send_with(&impatient, "GET", &url, auth, &[]).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn each_host_serves_only_its_own_paths() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let r = send("GET", &format!("{}/v1/Trunks", emu.api_base()), auth, &[]).await;
    assert_eq!((r.status, r.code()), (404, Some(20404)));
    let r = send(
        "GET",
        &numbers_url(&emu, a.sid.as_str()).replace(&emu.api_base(), &emu.trunking_base()),
        auth,
        &[],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = send("DELETE", &numbers_url(&emu, a.sid.as_str()), auth, &[]).await;
    assert_eq!((r.status, r.code()), (405, Some(20004)));
    let unknown: Vec<_> = emu.requests().iter().map(|r| r.route).collect();
    assert_eq!(unknown, [None, None, None]);
}

#[tokio::test]
async fn the_log_keeps_the_user_name_never_the_password() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let key = emu.add_api_key(&a.sid, true);
    let tk = emu.add_trunk(&a.sid, None);
    send(
        "POST",
        &format!("{}/v1/Trunks/{tk}/OriginationUrls", emu.trunking_base()),
        Some((key.sid.as_str(), key.secret.as_str())),
        &[
            ("Weight", "1"),
            ("Priority", "2"),
            ("Enabled", "false"),
            ("FriendlyName", "f"),
            ("SipUrl", "sip:x.example.com"),
        ],
    )
    .await;
    let log = emu.requests();
    assert_eq!(log.len(), 1);
    let r = &log[0];
    assert_eq!(r.route, Some(Route::CreateOriginationUrl));
    assert_eq!(r.host, Host::Trunking);
    assert_eq!(r.auth_user.as_deref(), Some(key.sid.as_str()));
    assert_eq!(r.form.get("SipUrl"), Some("sip:x.example.com"));
    assert_eq!(r.status, Some(201));
    assert!(!format!("{log:?}").contains(&key.secret));
}

#[tokio::test]
async fn reset_forgets_everything() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    emu.seed_numbers(&a.sid, 3);
    emu.inject(RouteSelector::Any, Fault::ServerError { count: 5 });
    emu.reset();
    let r = send(
        "GET",
        &numbers_url(&emu, a.sid.as_str()),
        Some((a.sid.as_str(), a.auth_token.as_str())),
        &[],
    )
    .await;
    assert_eq!(r.status, 401, "no fault, and the account is gone");
    assert!(emu.numbers(&a.sid).is_empty());
}

#[test]
fn seeded_numbers_are_distinct_valid_e164_across_accounts() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let b = emu.add_account("b");
    let mut all = emu.seed_numbers(&a.sid, 3000);
    all.extend(emu.seed_numbers(&b.sid, 500));
    assert_eq!(all.len(), 3500, "every seeded number parses as E.164");
    let distinct: BTreeSet<_> = all.iter().map(|n| n.e164.clone()).collect();
    assert_eq!(distinct.len(), 3500);
    let sids: BTreeSet<_> = all.iter().map(|n| n.sid.clone()).collect();
    assert_eq!(sids.len(), 3500);
    assert_eq!(emu.numbers(&a.sid).len(), 3000);
    for n in emu.numbers(&b.sid) {
        assert_eq!(
            E164::parse(&n.phone_number).unwrap().as_str(),
            n.phone_number
        );
        assert!(n.voice_capable);
        assert_eq!(n.trunk_sid, None);
    }
}

/// No async runtime needed: a plain test (or a binary) can start it and talk raw HTTP.
#[test]
fn starts_from_a_plain_test_without_a_runtime() {
    let emu = TwilioEmulator::start();
    let mut stream = std::net::TcpStream::connect(emu.api_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /2010-04-01/Accounts/AC00000000000000000000000000000000.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["code"], 20003);
    drop(emu);
}
