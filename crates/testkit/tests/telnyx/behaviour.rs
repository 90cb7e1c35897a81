//! Telnyx's rules as the emulator plays them: keys, paging, numbers moving between
//! connections, connections and their FQDNs.

use std::collections::BTreeSet;

use serde_json::json;
use trunkline_testkit::telnyx::{Route, TelnyxEmulator};

use crate::http::send;

#[tokio::test]
async fn a_missing_unknown_or_revoked_key_is_10009() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let balance = format!("{}/balance", emu.api_base());
    for key in [None, Some("KEYnotakey")] {
        let r = send("GET", &balance, key, None).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.code(), Some("10009"));
        assert_eq!(r.body["errors"][0]["title"], "Authentication failed");
    }
    let extra = emu.add_api_key(&a.id, true);
    assert_eq!(
        send("GET", &balance, Some(&extra.key), None).await.status,
        200
    );
    emu.remove_api_key(&extra.key);
    assert_eq!(
        send("GET", &balance, Some(&extra.key), None).await.code(),
        Some("10009")
    );
    // The log keeps whether a key came and whose it was, never the key.
    let log = emu.requests();
    assert_eq!(log.len(), 4);
    assert!(!log[0].bearer && log[1].bearer);
    assert_eq!(log[2].account.as_deref(), Some(a.id.as_str()));
    assert!(!format!("{log:?}").contains(&extra.key));
}

#[tokio::test]
async fn a_key_without_number_permissions_gets_10010_on_numbers_only() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let n = emu.seed_numbers(&a.id, 1);
    let key = emu.add_api_key(&a.id, false);
    let base = emu.api_base();
    for (method, path, body) in [
        ("GET", "/phone_numbers?page[size]=1".to_owned(), None),
        ("GET", format!("/phone_numbers/{}", n[0].id), None),
        (
            "PATCH",
            format!("/phone_numbers/{}", n[0].id),
            Some(json!({"connection_id": ""})),
        ),
    ] {
        let r = send(
            method,
            &format!("{base}{path}"),
            Some(&key.key),
            body.as_ref(),
        )
        .await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
        assert_eq!(r.code(), Some("10010"));
    }
    for path in ["/balance", "/fqdn_connections", "/fqdns"] {
        let r = send("GET", &format!("{base}{path}"), Some(&key.key), None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn numbers_page_like_telnyx() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let seeded = emu.seed_numbers(&a.id, 7);
    let other = emu.add_account("other");
    emu.seed_numbers(&other.id, 2);
    let list = format!("{}/phone_numbers", emu.api_base());
    let key = Some(a.api_key.as_str());
    let mut seen = Vec::new();
    for page in 1..=3 {
        let r = send(
            "GET",
            &format!("{list}?page[number]={page}&page[size]=3"),
            key,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["meta"],
            json!({"page_number": page, "page_size": 3, "total_pages": 3, "total_results": 7})
        );
        let data = r.body["data"].as_array().unwrap();
        assert_eq!(data.len(), if page == 3 { 1 } else { 3 });
        seen.extend(data.iter().map(|n| n["id"].as_str().unwrap().to_owned()));
    }
    let expected: BTreeSet<_> = seeded.iter().map(|n| n.id.clone()).collect();
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(seen.len(), 7, "no number on two pages");
    // Newest first, as Telnyx sorts by created_at descending.
    assert_eq!(seen[0], seeded[6].id);
    let past = send(
        "GET",
        &format!("{list}?page[number]=9&page[size]=3"),
        key,
        None,
    )
    .await;
    assert_eq!(past.body["data"], json!([]));

    for bad in [
        "page[size]=251",
        "page[size]=0",
        "page[number]=0",
        "page[size]=x",
    ] {
        let r = send("GET", &format!("{list}?{bad}"), key, None).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.code(), Some("10015"));
        let param = bad.split('=').next().unwrap();
        assert_eq!(r.body["errors"][0]["source"]["parameter"], param);
    }
    let max = send("GET", &format!("{list}?page[size]=250"), key, None).await;
    assert_eq!(max.body["meta"]["page_size"], 250);

    let one = &seeded[3].phone_number;
    let digits = one.trim_start_matches('+');
    let r = send(
        "GET",
        &format!("{list}?filter[phone_number]={digits}"),
        key,
        None,
    )
    .await;
    assert_eq!(r.body["meta"]["total_results"], 1, "{}", r.body);
    assert_eq!(r.body["data"][0]["phone_number"], one.as_str());
    // As Telnyx's spec says: a non-digit (the `+` too) matches nothing.
    let r = send(
        "GET",
        &format!("{list}?filter[phone_number]=%2B{digits}"),
        key,
        None,
    )
    .await;
    assert_eq!(r.body["meta"]["total_results"], 0, "{}", r.body);
    let r = send(
        "GET",
        &format!("{list}?filter[phone_number]=555"),
        key,
        None,
    )
    .await;
    assert_eq!(r.body["meta"]["total_results"], 7, "digits match anywhere");
}

#[tokio::test]
async fn patching_connection_id_moves_the_number_silently() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let n = emu.seed_numbers(&a.id, 1).remove(0);
    let first = emu.add_connection(&a.id, "first");
    let second = emu.add_connection(&a.id, "second");
    let url = format!("{}/phone_numbers/{}", emu.api_base(), n.id);

    let r = send("PATCH", &url, key, Some(&json!({"connection_id": first}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["connection_id"], first.as_str());
    assert_eq!(r.body["data"]["connection_name"], "first");
    let r = send("PATCH", &url, key, Some(&json!({"connection_id": second}))).await;
    assert_eq!(r.body["data"]["connection_name"], "second");
    assert_eq!(
        emu.number(&n.id).unwrap().connection_id,
        Some(second.clone())
    );
    assert_eq!(emu.connection_numbers(&second), vec![n.id.clone()]);
    assert!(emu.connection_numbers(&first).is_empty());

    let got = send("GET", &url, key, None).await;
    assert_eq!(got.body["data"]["connection_id"], second.as_str());

    for clear in [json!(""), json!(null)] {
        emu.set_number_connection(&n.id, Some(&first));
        let r = send("PATCH", &url, key, Some(&json!({"connection_id": clear}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["connection_id"], json!(null));
        assert_eq!(r.body["data"]["connection_name"], json!(null));
    }

    let other = emu.add_account("other");
    let theirs = emu.add_connection(&other.id, "theirs");
    for bad in [json!("999"), json!(theirs), json!(42)] {
        let r = send("PATCH", &url, key, Some(&json!({"connection_id": bad}))).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert_eq!(r.code(), Some("10015"));
        assert_eq!(r.body["errors"][0]["source"]["pointer"], "/connection_id");
    }
    assert_eq!(emu.number(&n.id).unwrap().connection_id, None, "unchanged");

    let base = emu.api_base();
    for missing in ["1", "abc", &emu.seed_numbers(&other.id, 1)[0].id] {
        let r = send("GET", &format!("{base}/phone_numbers/{missing}"), key, None).await;
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.code(), Some("10005"));
        let r = send(
            "PATCH",
            &format!("{base}/phone_numbers/{missing}"),
            key,
            Some(&json!({"connection_id": ""})),
        )
        .await;
        assert_eq!(r.code(), Some("10005"));
    }
}

#[tokio::test]
async fn fqdn_connections_have_telnyx_defaults_and_validate() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let url = format!("{}/fqdn_connections", emu.api_base());

    let plain = send(
        "POST",
        &url,
        key,
        Some(&json!({"connection_name": "Plain"})),
    )
    .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    let d = &plain.body["data"];
    assert_eq!(d["transport_protocol"], "UDP");
    assert_eq!(d["inbound"]["ani_number_format"], "E.164-national");
    assert_eq!(d["inbound"]["dnis_number_format"], "e164");
    assert_eq!(d["active"], true);
    assert!(
        d["id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_digit())
    );

    let ours = send(
        "POST",
        &url,
        key,
        Some(&json!({
            "connection_name": "trunkline-abc",
            "transport_protocol": "TCP",
            "inbound": {"ani_number_format": "+E.164", "dnis_number_format": "+e164"},
        })),
    )
    .await;
    assert_eq!(ours.status, 201);
    let id = ours.body["data"]["id"].as_str().unwrap().to_owned();
    let view = emu.connection(&id).unwrap();
    assert_eq!(
        (
            view.transport_protocol.as_str(),
            view.ani_number_format.as_str(),
            view.dnis_number_format.as_str()
        ),
        ("TCP", "+E.164", "+e164")
    );

    for (body, pointer) in [
        (json!({}), "/connection_name"),
        (
            json!({"connection_name": "x", "transport_protocol": "SCTP"}),
            "/transport_protocol",
        ),
        (
            json!({"connection_name": "x", "inbound": {"dnis_number_format": "test"}}),
            "/inbound/dnis_number_format",
        ),
        (
            json!({"connection_name": "x", "inbound": {"ani_number_format": "+e164"}}),
            "/inbound/ani_number_format",
        ),
    ] {
        let r = send("POST", &url, key, Some(&body)).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.code(), Some("10015"));
        assert_eq!(r.body["errors"][0]["source"]["pointer"], pointer);
    }
    assert_eq!(
        emu.connections(&a.id).len(),
        2,
        "nothing made by a refused create"
    );

    // Name filter: contains, case-insensitive, at least three characters.
    let r = send(
        "GET",
        &format!("{url}?filter[connection_name][contains]=TRUNKLINE"),
        key,
        None,
    )
    .await;
    let names: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connection_name"].clone())
        .collect();
    assert_eq!(names, vec![json!("trunkline-abc")]);
    let r = send(
        "GET",
        &format!("{url}?filter[connection_name][contains]=tr"),
        key,
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"][0]["source"]["parameter"],
        "filter[connection_name][contains]"
    );

    let r = send(
        "PATCH",
        &format!("{url}/{id}"),
        key,
        Some(&json!({"active": false, "connection_name": "renamed"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["active"], false);
    assert_eq!(emu.connection(&id).unwrap().connection_name, "renamed");

    // Another account sees none of it.
    let b = emu.add_account("b");
    let r = send("GET", &format!("{url}/{id}"), Some(&b.api_key), None).await;
    assert_eq!(r.status, 404);
    let r = send("GET", &url, Some(&b.api_key), None).await;
    assert_eq!(r.body["meta"]["total_results"], 0);
}

#[tokio::test]
async fn fqdns_belong_to_a_connection_and_fill_its_failover_slots() {
    let emu = TelnyxEmulator::start();
    let a = emu.add_account("a");
    let key = Some(a.api_key.as_str());
    let base = emu.api_base();
    let conn = emu.add_connection(&a.id, "trunkline-x");
    let other_conn = emu.add_connection(&a.id, "other");
    let create = async |body: serde_json::Value| {
        send("POST", &format!("{base}/fqdns"), key, Some(&body)).await
    };

    let first = create(json!({"connection_id": conn, "fqdn": "sip.a.example", "dns_record_type": "a", "port": 5070})).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second =
        create(json!({"connection_id": conn, "fqdn": "sip.b.example", "dns_record_type": "srv"}))
            .await;
    assert_eq!(second.body["data"]["port"], 5060, "Telnyx's default port");
    let elsewhere =
        create(json!({"connection_id": other_conn, "fqdn": "x.example", "dns_record_type": "a"}))
            .await;
    let (f1, f2, f3) = (
        first.body["data"]["id"].as_str().unwrap().to_owned(),
        second.body["data"]["id"].as_str().unwrap().to_owned(),
        elsewhere.body["data"]["id"].as_str().unwrap().to_owned(),
    );
    for (body, pointer) in [
        (
            json!({"fqdn": "a.example", "dns_record_type": "a"}),
            "/connection_id",
        ),
        (
            json!({"connection_id": "1", "fqdn": "a.example", "dns_record_type": "a"}),
            "/connection_id",
        ),
        (
            json!({"connection_id": conn, "fqdn": "not a host", "dns_record_type": "a"}),
            "/fqdn",
        ),
        (
            json!({"connection_id": conn, "fqdn": "a.example", "dns_record_type": "naptr"}),
            "/dns_record_type",
        ),
        (
            json!({"connection_id": conn, "fqdn": "a.example", "dns_record_type": "a", "port": 70000}),
            "/port",
        ),
    ] {
        let r = create(body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.body["errors"][0]["source"]["pointer"], pointer, "{body}");
    }

    let listed = send(
        "GET",
        &format!("{base}/fqdns?filter[connection_id]={conn}"),
        key,
        None,
    )
    .await;
    let ids: Vec<_> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![f1.clone(), f2.clone()]);

    let conn_url = format!("{base}/fqdn_connections/{conn}");
    let r = send("PATCH", &conn_url, key, Some(&json!({"inbound": {
        "default_primary_fqdn_id": f2, "default_secondary_fqdn_id": f1, "default_routing_method": "sequential"
    }}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["data"]["inbound"]["default_primary_fqdn_id"],
        f2.as_str()
    );
    let r = send(
        "PATCH",
        &conn_url,
        key,
        Some(&json!({"inbound": {"default_tertiary_fqdn_id": f3}})),
    )
    .await;
    assert_eq!(r.status, 422, "an FQDN of another connection: {}", r.body);
    assert_eq!(
        r.body["errors"][0]["source"]["pointer"],
        "/inbound/default_tertiary_fqdn_id"
    );

    let r = send(
        "PATCH",
        &format!("{base}/fqdns/{f1}"),
        key,
        Some(&json!({"port": 5080})),
    )
    .await;
    assert_eq!(r.body["data"]["port"], 5080);
    let r = send("DELETE", &format!("{base}/fqdns/{f2}"), key, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        emu.connection(&conn).unwrap().failover,
        [None, Some(f1.clone()), None]
    );
    assert_eq!(
        send("GET", &format!("{base}/fqdns/{f2}"), key, None)
            .await
            .code(),
        Some("10005")
    );

    // A connection in use is not deleted; once empty it goes with its FQDNs.
    let n = emu.seed_numbers(&a.id, 1).remove(0);
    emu.set_number_connection(&n.id, Some(&conn));
    let r = send("DELETE", &conn_url, key, None).await;
    assert_eq!(r.status, 422, "{}", r.body);
    emu.set_number_connection(&n.id, None);
    let r = send("DELETE", &conn_url, key, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(emu.connection(&conn).is_none());
    assert!(emu.fqdns(&conn).is_empty());
    assert_eq!(
        send("DELETE", &conn_url, key, None).await.code(),
        Some("10005")
    );
    assert_eq!(emu.count(Route::DeleteFqdnConnection), 3);
}

#[tokio::test]
async fn an_account_can_have_its_numbers_on_someone_elses_connection() {
    let emu = TelnyxEmulator::start();
    let (account, connection, numbers) = emu.add_account_on_foreign_connection("acme", 2);
    let r = send(
        "GET",
        &format!("{}/phone_numbers", emu.api_base()),
        Some(&account.api_key),
        None,
    )
    .await;
    for n in r.body["data"].as_array().unwrap() {
        assert_eq!(n["connection_id"], connection.as_str());
        assert_eq!(n["connection_name"], "Acme PBX");
    }
    assert_eq!(emu.connection_numbers(&connection).len(), numbers.len());
    assert_eq!(emu.fqdns(&connection)[0].fqdn, "pbx.acme.example");
}
