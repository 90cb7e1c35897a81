//! Every route the emulator serves answers with the fields Twilio's spec declares, with the
//! spec's types; every error answers with Twilio's error body.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use trunkline_core::E164;
use trunkline_testkit::twilio::spec::TwilioSpecs;
use trunkline_testkit::twilio::{Fault, Host, Route, RouteSelector, TwilioEmulator};
use trunkline_twilio::{ApplicationSid, VoiceConfig};

use crate::http::{Reply, send};

struct Checked {
    problems: Vec<String>,
}

impl Checked {
    fn check(&mut self, specs: &TwilioSpecs, host: Host, method: &str, url: &str, reply: &Reply) {
        let path = url::Url::parse(url).unwrap().path().to_owned();
        let Some(op) = specs.for_host(host).find(method, &path) else {
            self.problems
                .push(format!("{method} {path}: not in the spec"));
            return;
        };
        let id = op.operation_id().unwrap_or_default();
        if !op.has_response(reply.status) {
            self.problems
                .push(format!("{id}: status {} not in the spec", reply.status));
            return;
        }
        if reply.status == 204 {
            if !reply.body.is_null() {
                self.problems.push(format!("{id}: 204 with a body"));
            }
            return;
        }
        for p in op.check_response(reply.status, &reply.body) {
            self.problems.push(format!("{id}: {p}"));
        }
    }
}

#[tokio::test]
async fn every_route_answers_in_the_spec_shape() {
    let specs = TwilioSpecs::load().unwrap();
    let emu = TwilioEmulator::start();
    let a = emu.add_account("shape");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let api = emu.api_base();
    let trunking = emu.trunking_base();
    let app = ApplicationSid::parse(&format!("AP{}", "2".repeat(32))).unwrap();
    // Values in every field the emulator can fill: set, unset, attached, not attached.
    let pn = emu.add_number(
        &a.sid,
        &E164::parse("+14155550111").unwrap(),
        &VoiceConfig {
            voice_url: Some("https://example.com/v".into()),
            voice_method: Some("GET".into()),
            voice_fallback_url: Some("https://example.com/f".into()),
            voice_fallback_method: Some("POST".into()),
            voice_application_sid: Some(app),
            status_callback: Some("https://example.com/s".into()),
        },
    );
    emu.seed_numbers(&a.sid, 3);
    let mut c = Checked {
        problems: Vec::new(),
    };
    let mut go = async |host: Host, method: &str, url: String, form: &[(&str, &str)]| -> Reply {
        let reply = send(method, &url, auth, form).await;
        assert!(
            reply.status < 300,
            "{method} {url}: {} {}",
            reply.status,
            reply.body
        );
        c.check(&specs, host, method, &url, &reply);
        reply
    };

    go(
        Host::Api,
        "GET",
        format!("{api}/2010-04-01/Accounts/{}.json", a.sid),
        &[],
    )
    .await;
    let numbers = format!(
        "{api}/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json",
        a.sid
    );
    let list = go(Host::Api, "GET", format!("{numbers}?PageSize=2"), &[]).await;
    let next = list.body["next_page_uri"].as_str().unwrap().to_owned();
    go(Host::Api, "GET", format!("{api}{next}"), &[]).await;
    let number = format!(
        "{api}/2010-04-01/Accounts/{}/IncomingPhoneNumbers/{pn}.json",
        a.sid
    );
    go(Host::Api, "GET", number.clone(), &[]).await;
    go(
        Host::Api,
        "POST",
        number.clone(),
        &[("VoiceUrl", ""), ("StatusCallback", "")],
    )
    .await;

    let created = go(
        Host::Trunking,
        "POST",
        format!("{trunking}/v1/Trunks"),
        &[
            ("FriendlyName", "shape"),
            ("DomainName", "shape-1.pstn.twilio.com"),
            ("Secure", "true"),
        ],
    )
    .await;
    let tk = created.body["sid"].as_str().unwrap().to_owned();
    go(Host::Trunking, "POST", format!("{trunking}/v1/Trunks"), &[]).await;
    go(
        Host::Trunking,
        "GET",
        format!("{trunking}/v1/Trunks?PageSize=1"),
        &[],
    )
    .await;
    let trunk = format!("{trunking}/v1/Trunks/{tk}");
    go(Host::Trunking, "GET", trunk.clone(), &[]).await;
    go(
        Host::Trunking,
        "POST",
        trunk.clone(),
        &[
            ("DisasterRecoveryUrl", "https://example.com/dr"),
            ("DisasterRecoveryMethod", "GET"),
        ],
    )
    .await;

    let ous = format!("{trunk}/OriginationUrls");
    let ou = go(
        Host::Trunking,
        "POST",
        ous.clone(),
        &[
            ("Weight", "1"),
            ("Priority", "2"),
            ("Enabled", "true"),
            ("FriendlyName", "f"),
            ("SipUrl", "sip:a.example.com"),
        ],
    )
    .await;
    let ou_sid = ou.body["sid"].as_str().unwrap().to_owned();
    go(Host::Trunking, "GET", ous.clone(), &[]).await;
    go(Host::Trunking, "GET", format!("{ous}/{ou_sid}"), &[]).await;
    go(
        Host::Trunking,
        "POST",
        format!("{ous}/{ou_sid}"),
        &[("Enabled", "false")],
    )
    .await;
    go(Host::Trunking, "DELETE", format!("{ous}/{ou_sid}"), &[]).await;

    let tns = format!("{trunk}/PhoneNumbers");
    go(
        Host::Trunking,
        "POST",
        tns.clone(),
        &[("PhoneNumberSid", pn.as_str())],
    )
    .await;
    go(Host::Trunking, "GET", tns.clone(), &[]).await;
    go(Host::Trunking, "GET", format!("{tns}/{pn}"), &[]).await;
    // A number on a trunk, through the 2010 API too.
    go(Host::Api, "GET", number.clone(), &[]).await;
    go(Host::Api, "GET", format!("{numbers}?PageSize=50"), &[]).await;
    go(Host::Trunking, "DELETE", format!("{tns}/{pn}"), &[]).await;

    // Termination: a credential list with one credential, attached to the trunk.
    let cls = format!("{api}/2010-04-01/Accounts/{}/SIP/CredentialLists", a.sid);
    let list_reply = go(
        Host::Api,
        "POST",
        format!("{cls}.json"),
        &[("FriendlyName", "shape-list")],
    )
    .await;
    let list_sid = list_reply.body["sid"].as_str().unwrap().to_owned();
    go(Host::Api, "GET", format!("{cls}.json"), &[]).await;
    let credentials = format!("{cls}/{list_sid}/Credentials");
    let credential = go(
        Host::Api,
        "POST",
        format!("{credentials}.json"),
        &[("Username", "shapeuser"), ("Password", "Shape0Password1")],
    )
    .await;
    assert!(
        credential.body.get("password").is_none(),
        "a password is never shown back: {}",
        credential.body
    );
    let credential_sid = credential.body["sid"].as_str().unwrap().to_owned();
    go(Host::Api, "GET", format!("{credentials}.json"), &[]).await;
    go(
        Host::Api,
        "POST",
        format!("{credentials}/{credential_sid}.json"),
        &[("Password", "Shape0Password2")],
    )
    .await;
    let tcls = format!("{trunk}/CredentialLists");
    go(
        Host::Trunking,
        "POST",
        tcls.clone(),
        &[("CredentialListSid", list_sid.as_str())],
    )
    .await;
    go(Host::Trunking, "GET", tcls.clone(), &[]).await;
    go(Host::Trunking, "DELETE", format!("{tcls}/{list_sid}"), &[]).await;
    go(
        Host::Api,
        "DELETE",
        format!("{credentials}/{credential_sid}.json"),
        &[],
    )
    .await;
    go(Host::Api, "DELETE", format!("{cls}/{list_sid}.json"), &[]).await;
    go(Host::Trunking, "DELETE", trunk.clone(), &[]).await;

    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    let served: BTreeSet<_> = emu
        .requests()
        .iter()
        .filter_map(|r| r.route)
        .map(Route::as_str)
        .collect();
    let all: BTreeSet<_> = Route::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(served, all, "every route was checked");
}

fn assert_error_body(reply: &Reply, status: u16, code: i64) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let obj = reply.body.as_object().unwrap();
    let keys: BTreeSet<_> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "message", "more_info", "status"])
    );
    assert_eq!(reply.body["code"], code);
    assert_eq!(reply.body["status"], status);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        reply.body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn errors_carry_twilios_error_body() {
    let emu = TwilioEmulator::start();
    let a = emu.add_account("a");
    let auth = Some((a.sid.as_str(), a.auth_token.as_str()));
    let trunks = format!("{}/v1/Trunks", emu.trunking_base());
    assert_error_body(&send("GET", &trunks, None, &[]).await, 401, 20003);
    assert_error_body(
        &send("GET", &format!("{trunks}/TK{}", "0".repeat(32)), auth, &[]).await,
        404,
        20404,
    );
    assert_error_body(
        &send("GET", &format!("{trunks}?PageSize=5000"), auth, &[]).await,
        400,
        70002,
    );
    let restricted = emu.add_api_key(&a.sid, false);
    assert_error_body(
        &send(
            "GET",
            &trunks,
            Some((restricted.sid.as_str(), restricted.secret.as_str())),
            &[],
        )
        .await,
        403,
        70051,
    );
    emu.inject(
        RouteSelector::Any,
        Fault::RateLimit {
            count: 1,
            retry_after: std::time::Duration::ZERO,
        },
    );
    assert_error_body(&send("GET", &trunks, auth, &[]).await, 429, 20429);
}

#[test]
fn the_response_checker_reports_missing_fields_wrong_types_and_extras() {
    let specs = TwilioSpecs::load().unwrap();
    let op = specs
        .trunking
        .find(
            "GET",
            &format!(
                "/v1/Trunks/TK{}/OriginationUrls/OU{}",
                "0".repeat(32),
                "0".repeat(32)
            ),
        )
        .unwrap();
    let good = json!({
        "account_sid": format!("AC{}", "0".repeat(32)),
        "sid": format!("OU{}", "0".repeat(32)),
        "trunk_sid": format!("TK{}", "0".repeat(32)),
        "weight": 1, "enabled": true, "sip_url": "sip:a.example.com", "friendly_name": "f",
        "priority": 1, "date_created": "2024-01-01T00:00:00Z", "date_updated": "2024-01-01T00:00:00Z",
        "url": "https://trunking.twilio.com/v1/Trunks/x/OriginationUrls/y",
    });
    assert_eq!(op.check_response(200, &good), Vec::<String>::new());
    let mut bad = good.clone();
    let obj = bad.as_object_mut().unwrap();
    obj.remove("trunk_sid");
    obj.insert("weight".into(), json!("heavy"));
    obj.insert("sid".into(), json!("XX123"));
    obj.insert("date_created".into(), json!("yesterday"));
    obj.insert("enabled".into(), Value::Null);
    obj.insert("surprise".into(), json!(1));
    let problems = op.check_response(200, &bad);
    for expected in [
        "$.trunk_sid: missing",
        "$.weight: expected an integer",
        "$.sid:",
        "$.date_created:",
        "$.surprise: not in the spec",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected} not in {problems:?}"
        );
    }
    // `enabled` is nullable in the spec: null is fine.
    assert!(!problems.iter().any(|p| p.starts_with("$.enabled")));
}
