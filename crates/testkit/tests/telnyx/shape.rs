//! Every route the emulator serves answers with the fields and types Telnyx's spec declares;
//! every error answers with Telnyx's error body.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use trunkline_testkit::telnyx::spec::TelnyxSpec;
use trunkline_testkit::telnyx::{Fault, MASKED_PASSWORD, Route, RouteSelector, TelnyxEmulator};

use crate::http::{Reply, send};

fn spec_path(url: &str) -> String {
    let path = url::Url::parse(url).unwrap().path().to_owned();
    path.strip_prefix("/v2").unwrap().to_owned()
}

fn check(spec: &TelnyxSpec, method: &str, url: &str, reply: &Reply, problems: &mut Vec<String>) {
    let path = spec_path(url);
    let Some(op) = spec.find(method, &path) else {
        problems.push(format!("{method} {path}: not in the spec"));
        return;
    };
    let id = op.operation_id().unwrap_or_default();
    if !op.has_response(reply.status) {
        problems.push(format!("{id}: status {} not in the spec", reply.status));
        return;
    }
    for p in op.check_response(reply.status, &reply.body) {
        problems.push(format!("{id} {}: {p}", reply.status));
    }
}

#[tokio::test]
async fn every_route_answers_in_the_spec_shape() {
    let spec = TelnyxSpec::load().unwrap();
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("shape");
    let key = Some(a.api_key.as_str());
    let base = emu.api_base();
    emu.seed_numbers(&a.id, 3);
    let mut problems = Vec::new();
    let mut go = async |method: &str, url: String, body: Option<Value>| -> Reply {
        let reply = send(method, &url, key, body.as_ref()).await;
        assert!(
            reply.status < 300,
            "{method} {url}: {} {}",
            reply.status,
            reply.body
        );
        check(&spec, method, &url, &reply, &mut problems);
        reply
    };

    go("GET", format!("{base}/balance"), None).await;
    let conn = go(
        "POST",
        format!("{base}/fqdn_connections"),
        Some(
            json!({"connection_name": "trunkline-shape", "transport_protocol": "TCP",
            "inbound": {"ani_number_format": "+E.164", "dnis_number_format": "+e164"}}),
        ),
    )
    .await;
    let conn_id = conn.body["data"]["id"].as_str().unwrap().to_owned();
    go(
        "GET",
        format!("{base}/fqdn_connections?page[size]=1&filter[connection_name][contains]=shape"),
        None,
    )
    .await;
    let conn_url = format!("{base}/fqdn_connections/{conn_id}");
    go("GET", conn_url.clone(), None).await;
    let fqdn = go(
        "POST",
        format!("{base}/fqdns"),
        Some(json!({"connection_id": conn_id, "fqdn": "sip.example.com", "dns_record_type": "a", "port": 5060})),
    )
    .await;
    let fqdn_id = fqdn.body["data"]["id"].as_str().unwrap().to_owned();
    go(
        "GET",
        format!("{base}/fqdns?filter[connection_id]={conn_id}"),
        None,
    )
    .await;
    go("GET", format!("{base}/fqdns/{fqdn_id}"), None).await;
    go(
        "PATCH",
        format!("{base}/fqdns/{fqdn_id}"),
        Some(json!({"port": 5061})),
    )
    .await;
    // Failover slots set and unset.
    go(
        "PATCH",
        conn_url.clone(),
        Some(json!({"inbound": {"default_primary_fqdn_id": fqdn_id}})),
    )
    .await;

    let list = go(
        "GET",
        format!("{base}/phone_numbers?page[number]=1&page[size]=2"),
        None,
    )
    .await;
    let number = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    let number_url = format!("{base}/phone_numbers/{number}");
    // On a connection and on none.
    go(
        "PATCH",
        number_url.clone(),
        Some(json!({"connection_id": conn_id})),
    )
    .await;
    go("GET", number_url.clone(), None).await;
    go(
        "PATCH",
        number_url.clone(),
        Some(json!({"connection_id": ""})),
    )
    .await;

    // Outbound: a voice profile on the connection, credential authentication.
    let profile = go(
        "POST",
        format!("{base}/outbound_voice_profiles"),
        Some(json!({"name": "trunkline-outbound-shape", "enabled": true,
            "whitelisted_destinations": ["US"]})),
    )
    .await;
    let profile_id = profile.body["data"]["id"].as_str().unwrap().to_owned();
    let profile_url = format!("{base}/outbound_voice_profiles/{profile_id}");
    go(
        "GET",
        format!("{base}/outbound_voice_profiles?page[size]=1&filter[name][contains]=shape"),
        None,
    )
    .await;
    go("GET", profile_url.clone(), None).await;
    go(
        "PATCH",
        profile_url.clone(),
        Some(json!({"whitelisted_destinations": ["US", "CA"]})),
    )
    .await;
    let assigned = go(
        "PATCH",
        conn_url.clone(),
        Some(json!({"outbound": {"outbound_voice_profile_id": profile_id}})),
    )
    .await;
    assert_eq!(
        assigned.body["data"]["outbound"]["outbound_voice_profile_id"],
        profile_id.as_str()
    );
    // Not in the spec: the shape of Telnyx's SDK types, and the password never in clear.
    let auth_url = format!("{conn_url}/fqdn_authentication");
    for (method, body) in [
        ("GET", None),
        (
            "PATCH",
            Some(
                json!({"fqdn_outbound_authentication": "credential-authentication",
                "user_name": "tlshape01", "password": "n0tShownBack!"}),
            ),
        ),
        ("GET", None),
    ] {
        let r = send(method, &auth_url, key, body.as_ref()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(spec.find(method, &spec_path(&auth_url)).is_none());
        let data = &r.body["data"];
        assert_eq!(data["record_type"], "fqdn_authentication", "{data}");
        assert_eq!(data["connection_id"], conn_id.as_str());
        assert!(data["fqdn_outbound_authentication"].is_string(), "{data}");
        assert!(!r.body.to_string().contains("n0tShownBack!"), "{data}");
    }
    let shown = send("GET", &auth_url, key, None).await;
    assert_eq!(shown.body["data"]["user_name"], "tlshape01");
    assert_eq!(shown.body["data"]["password"], MASKED_PASSWORD);
    go(
        "PATCH",
        conn_url.clone(),
        Some(json!({"outbound": {"outbound_voice_profile_id": ""}})),
    )
    .await;
    go("DELETE", profile_url.clone(), None).await;

    go("DELETE", format!("{base}/fqdns/{fqdn_id}"), None).await;
    go("DELETE", conn_url.clone(), None).await;

    assert!(problems.is_empty(), "{problems:#?}");
    let served: BTreeSet<_> = emu
        .requests()
        .iter()
        .filter_map(|r| r.route)
        .map(Route::as_str)
        .collect();
    let all: BTreeSet<_> = Route::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(served, all, "every route was checked");
}

fn assert_error_body(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let errors = reply.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["code"], code);
    for field in ["title", "detail"] {
        assert!(
            e[field].as_str().is_some_and(|t| !t.is_empty()),
            "{field}: {e}"
        );
    }
    assert_eq!(
        e["meta"]["url"],
        format!("https://developers.telnyx.com/docs/overview/errors/{code}")
    );
    let keys: BTreeSet<_> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(
        keys.is_subset(&BTreeSet::from([
            "code", "title", "detail", "source", "meta"
        ])),
        "{keys:?}"
    );
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn errors_carry_telnyxs_error_body_and_fit_the_spec() {
    let spec = TelnyxSpec::load().unwrap();
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let base = emu.api_base();
    let mut problems = Vec::new();
    let mut go = async |method: &str,
                        url: String,
                        key: Option<&str>,
                        body: Option<Value>,
                        status: u16,
                        code: &str| {
        let r = send(method, &url, key, body.as_ref()).await;
        assert_error_body(&r, status, code);
        check(&spec, method, &url, &r, &mut problems);
    };
    go(
        "GET",
        format!("{base}/fqdn_connections"),
        None,
        None,
        401,
        "10009",
    )
    .await;
    go(
        "GET",
        format!("{base}/phone_numbers"),
        Some("KEYbad"),
        None,
        401,
        "10009",
    )
    .await;
    let restricted = emu.add_api_key(&a.id, false);
    // The spec lists no 403 for phone numbers; Telnyx answers it all the same.
    let r = send(
        "GET",
        &format!("{base}/phone_numbers/1"),
        Some(&restricted.key),
        None,
    )
    .await;
    assert_error_body(&r, 403, "10010");
    go(
        "GET",
        format!("{base}/fqdn_connections/1"),
        key,
        None,
        404,
        "10005",
    )
    .await;
    go(
        "GET",
        format!("{base}/phone_numbers/1"),
        key,
        None,
        404,
        "10005",
    )
    .await;
    go(
        "GET",
        format!("{base}/phone_numbers?page[size]=500"),
        key,
        None,
        400,
        "10015",
    )
    .await;
    go(
        "POST",
        format!("{base}/fqdn_connections"),
        key,
        Some(json!({"connection_name": "x", "inbound": {"dnis_number_format": "test"}})),
        422,
        "10015",
    )
    .await;
    go(
        "POST",
        format!("{base}/fqdns"),
        key,
        Some(json!({"fqdn": "a.example"})),
        422,
        "10015",
    )
    .await;
    // Outbound voice profiles: the spec declares their 404 and 422 without a body, so only
    // Telnyx's error body is checked.
    let r = send(
        "POST",
        &format!("{base}/outbound_voice_profiles"),
        key,
        Some(&json!({"name": "trunkline-x", "whitelisted_destinations": ["USA"]})),
    )
    .await;
    assert_error_body(&r, 422, "10015");
    assert_eq!(
        r.body["errors"][0]["source"]["pointer"],
        "/whitelisted_destinations/0"
    );
    let r = send(
        "GET",
        &format!("{base}/outbound_voice_profiles/1"),
        key,
        None,
    )
    .await;
    assert_error_body(&r, 404, "10005");
    // A profile a connection uses cannot be deleted.
    let conn = emu.add_connection(&a.id, "trunkline-in-use");
    let made = send(
        "POST",
        &format!("{base}/outbound_voice_profiles"),
        key,
        Some(&json!({"name": "trunkline-in-use"})),
    )
    .await;
    let profile = made.body["data"]["id"].as_str().unwrap().to_owned();
    let assigned = send(
        "PATCH",
        &format!("{base}/fqdn_connections/{conn}"),
        key,
        Some(&json!({"outbound": {"outbound_voice_profile_id": profile}})),
    )
    .await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    let r = send(
        "DELETE",
        &format!("{base}/outbound_voice_profiles/{profile}"),
        key,
        None,
    )
    .await;
    assert_error_body(&r, 422, "10015");
    go(
        "PATCH",
        format!("{base}/fqdn_connections/{conn}"),
        key,
        Some(json!({"outbound": {"outbound_voice_profile_id": "42"}})),
        422,
        "10015",
    )
    .await;
    assert!(problems.is_empty(), "{problems:#?}");
    // Credential authentication refuses bad values with Telnyx's error, never echoing the
    // password (the route is not in the spec, so only its error body is checked).
    let auth_url = format!("{base}/fqdn_connections/{conn}/fqdn_authentication");
    for (body, pointer) in [
        (
            json!({"fqdn_outbound_authentication": "credential-authentication"}),
            "/user_name",
        ),
        (
            json!({"fqdn_outbound_authentication": "credential-authentication",
                "user_name": "tlabc01", "password": "short"}),
            "/password",
        ),
        (
            json!({"user_name": "a-name-that-has-dashes", "password": "longenough"}),
            "/user_name",
        ),
        (
            json!({"fqdn_outbound_authentication": "magic"}),
            "/fqdn_outbound_authentication",
        ),
    ] {
        let r = send("PATCH", &auth_url, key, Some(&body)).await;
        assert_error_body(&r, 422, "10015");
        assert_eq!(
            r.body["errors"][0]["source"]["pointer"], pointer,
            "{}",
            r.body
        );
        assert!(!r.body.to_string().contains("short"), "{}", r.body);
        assert!(!r.body.to_string().contains("longenough"), "{}", r.body);
    }
    let r = send(
        "GET",
        &format!("{base}/fqdn_connections/1/fqdn_authentication"),
        key,
        None,
    )
    .await;
    assert_error_body(&r, 404, "10005");

    emu.inject(
        RouteSelector::Any,
        Fault::RateLimit {
            count: 1,
            reset: std::time::Duration::ZERO,
        },
    );
    let r = send("GET", &format!("{base}/balance"), key, None).await;
    assert_error_body(&r, 429, "10011");
}

#[test]
fn the_checker_reports_missing_fields_wrong_types_extras_and_unknown_parameters() {
    let spec = TelnyxSpec::load().unwrap();
    let op = spec.find("GET", "/fqdns/123").unwrap();
    assert_eq!(op.operation_id(), Some("RetrieveFqdn"));
    let good = json!({"data": {"id": "1", "connection_id": "2", "fqdn": "a.example", "port": 5060,
        "dns_record_type": "a", "record_type": "fqdn", "created_at": "x", "updated_at": "y"}});
    assert_eq!(op.check_response(200, &good), Vec::<String>::new());
    let bad = json!({"data": {"id": 1, "port": "5060", "surprise": true}});
    let problems = op.check_response(200, &bad);
    for expected in [
        "$.data.id: expected string",
        "$.data.port: expected integer",
        "$.data.surprise: not in the spec",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected} not in {problems:?}"
        );
    }
    let list = spec.find("GET", "/phone_numbers").unwrap();
    let missing = list.check_response(200, &json!({"data": [{"id": "1"}]}));
    assert!(
        missing.iter().any(|p| p == "$.meta: missing"),
        "{missing:?}"
    );
    assert!(
        missing
            .iter()
            .any(|p| p == "$.data[0].phone_number: missing"),
        "{missing:?}"
    );

    let q = |pairs: &[(&str, &str)]| {
        trunkline_testkit::twilio::Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    };
    assert!(
        list.check_request(
            "/phone_numbers",
            &q(&[("page[size]", "250"), ("filter[phone_number]", "1312")]),
            None
        )
        .is_empty()
    );
    let p = list.check_request(
        "/phone_numbers",
        &q(&[("page[size]", "251"), ("PageSize", "1")]),
        None,
    );
    assert!(
        p.iter().any(|p| p.contains("query parameter page[size]")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p.contains("unknown query parameter PageSize")),
        "{p:?}"
    );

    let create = spec.operation("POST", "/fqdn_connections").unwrap();
    assert!(
        create
            .check_request(
                "/fqdn_connections",
                &q(&[]),
                Some(&json!({"connection_name": "x", "inbound": {"dnis_number_format": "+e164"}}))
            )
            .is_empty()
    );
    let p = create.check_request(
        "/fqdn_connections",
        &q(&[]),
        Some(&json!({"inbound": {"dnis_number_format": "+E.164", "nope": 1}})),
    );
    for expected in [
        "$.inbound.dnis_number_format",
        "$.inbound.nope: not in the spec",
        "$.connection_name: missing",
    ] {
        assert!(
            p.iter().any(|x| x.contains(expected)),
            "{expected} not in {p:?}"
        );
    }
    assert!(
        !create
            .check_request("/fqdn_connections", &q(&[]), None)
            .is_empty(),
        "the body is required"
    );
}
