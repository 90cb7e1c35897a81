//! Every request the adapter can make, checked against Telnyx's OpenAPI spec
//! (`telnyx_byoc_v2.json`): the catalogue statically, then every request actually sent while
//! exercising every operation (and its error paths) against the emulator.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use secrecy::SecretString;
use trunkline_core::E164;
use trunkline_telnyx::{
    ConnectionId, DnsRecordType, FQDN_AUTHENTICATION_SDK_FIELDS, FailoverPlan, FqdnSpec,
    NewConnection, NumberId, NumberQuery, TelnyxOperation, Transport,
};
use trunkline_testkit::telnyx::spec::TelnyxSpec;

use common::World;

#[test]
fn the_catalogue_matches_the_spec() {
    let spec = TelnyxSpec::load().unwrap();
    for op in TelnyxOperation::ALL {
        let info = op.info();
        if !info.in_spec {
            // Only in Telnyx's SDKs: the spec must not have it (else it belongs above), and
            // every field sent is one the SDKs' `FqdnAuthenticationPatchAllParams` has.
            assert!(
                spec.operation(info.method, info.template).is_none(),
                "{op}: the spec has it now; check it against the spec"
            );
            assert!(info.query.is_empty(), "{op}");
            for f in info.body {
                assert!(
                    FQDN_AUTHENTICATION_SDK_FIELDS.contains(f),
                    "{op}: body field {f} unknown to Telnyx's SDKs"
                );
            }
            continue;
        }
        let found = spec
            .operation(info.method, info.template)
            .unwrap_or_else(|| panic!("{op}: {} {} not in the spec", info.method, info.template));
        assert_eq!(found.operation_id(), Some(info.operation_id), "{op}");
        let known: Vec<String> = found.query_names().into_iter().map(|q| q.name).collect();
        for q in info.query {
            assert!(
                known.iter().any(|k| k == q),
                "{op}: query parameter {q} unknown to the spec"
            );
        }
        for f in info.body {
            assert!(
                found.has_body_field(f),
                "{op}: body field {f} unknown to the spec"
            );
        }
    }
}

#[tokio::test]
async fn every_request_the_adapter_sends_fits_the_spec() {
    let spec = TelnyxSpec::load().unwrap();
    let w = World::new();
    let key = &w.key;
    let c = &w.client;
    let seeded = w.emu.seed_numbers(&w.account.id, 5);
    let id = NumberId::parse(&seeded[0].id).unwrap();

    // Every operation, on its happy path and its error paths.
    c.verify(key).await.unwrap();
    let limited = SecretString::from(w.emu.add_api_key(&w.account.id, false).key);
    c.verify(&limited).await.unwrap();
    c.verify(&SecretString::from("KEYnope".to_owned()))
        .await
        .unwrap_err();
    let mut query = NumberQuery {
        page_size: 2,
        ..NumberQuery::default()
    };
    while let Some(next) = c.list_numbers(key, &query).await.unwrap().next_cursor {
        query.cursor = Some(next);
    }
    let one = E164::parse(&seeded[1].phone_number).unwrap();
    c.list_numbers(
        key,
        &NumberQuery {
            page_size: 250,
            phone_number: Some(one),
            cursor: None,
        },
    )
    .await
    .unwrap();
    c.get_number(key, &id).await.unwrap();
    c.get_number(key, &NumberId::parse("1").unwrap())
        .await
        .unwrap_err();
    let spec_conn = NewConnection {
        name: "trunkline-conformance".into(),
        transport: Transport::default(),
    };
    let conn = c.create_connection(key, &spec_conn).await.unwrap();
    c.create_connection(
        key,
        &NewConnection {
            name: "udp-one".into(),
            transport: Transport::Udp,
        },
    )
    .await
    .unwrap();
    c.find_connections_by_name(key, "trunkline-conformance")
        .await
        .unwrap();
    c.find_connections_by_name(key, "ab").await.unwrap();
    c.get_connection(key, &conn.id).await.unwrap();
    c.get_connection(key, &ConnectionId::parse("1").unwrap())
        .await
        .unwrap();
    c.reset_connection(key, &conn.id, &spec_conn).await.unwrap();
    let mut fqdns = Vec::new();
    for (host, rt) in [
        ("a.example.com", DnsRecordType::A),
        ("b.example.com", DnsRecordType::Srv),
    ] {
        fqdns.push(
            c.create_fqdn(
                key,
                &conn.id,
                &FqdnSpec {
                    host: host.into(),
                    port: 5060,
                    record_type: rt,
                },
            )
            .await
            .unwrap(),
        );
    }
    c.list_fqdns(key, &conn.id).await.unwrap();
    c.update_fqdn(
        key,
        &fqdns[0].id,
        &FqdnSpec {
            host: "c.example.com".into(),
            port: 5061,
            record_type: DnsRecordType::A,
        },
    )
    .await
    .unwrap();
    let plan =
        FailoverPlan::from_priorities(&[(fqdns[0].id.clone(), 1, 1), (fqdns[1].id.clone(), 2, 1)])
            .unwrap();
    c.set_failover(key, &conn.id, &plan).await.unwrap();
    let equal =
        FailoverPlan::from_priorities(&[(fqdns[0].id.clone(), 1, 1), (fqdns[1].id.clone(), 1, 1)])
            .unwrap();
    c.set_failover(key, &conn.id, &equal).await.unwrap();
    c.set_number_connection(key, &id, Some(&conn.id))
        .await
        .unwrap();
    // Outbound: credential authentication and a voice profile on the connection.
    c.get_outbound_auth(key, &conn.id).await.unwrap();
    c.get_outbound_auth(key, &ConnectionId::parse("1").unwrap())
        .await
        .unwrap();
    let password = SecretString::from("s3cretPassw0rdForTelnyx".to_owned());
    c.set_outbound_credentials(key, &conn.id, "tlconformance01", &password)
        .await
        .unwrap();
    let profile = c
        .create_voice_profile(key, "trunkline-outbound-conformance", &["US".to_owned()])
        .await
        .unwrap();
    c.update_voice_profile(key, &profile, &["USA".to_owned()])
        .await
        .unwrap_err();
    c.find_voice_profiles(key, "trunkline-outbound-conformance")
        .await
        .unwrap();
    c.update_voice_profile(key, &profile, &["CA".to_owned(), "US".to_owned()])
        .await
        .unwrap();
    c.set_connection_voice_profile(key, &conn.id, Some(&profile.id))
        .await
        .unwrap();
    c.delete_voice_profile(key, &profile.id).await.unwrap_err();
    c.set_connection_voice_profile(key, &conn.id, None)
        .await
        .unwrap();
    c.delete_voice_profile(key, &profile.id).await.unwrap();
    c.delete_voice_profile(key, &profile.id).await.unwrap();
    c.clear_outbound_credentials(key, &conn.id).await.unwrap();
    c.list_connection_numbers(key, &conn.id).await.unwrap();
    c.delete_connection(key, &conn.id).await.unwrap_err();
    c.set_number_connection(key, &id, None).await.unwrap();
    c.delete_fqdn(key, &fqdns[0].id).await.unwrap();
    c.delete_fqdn(key, &fqdns[0].id).await.unwrap();
    c.delete_connection(key, &conn.id).await.unwrap();
    c.delete_connection(key, &conn.id).await.unwrap();

    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let requests = w.emu.requests();
    for r in &requests {
        let path = r.path.strip_prefix("/v2").unwrap_or(&r.path);
        if let Some(op) = sdk_only(&r.method, path) {
            used.insert(op.info().operation_id.to_owned());
            let fields: Vec<String> = r
                .body
                .as_ref()
                .and_then(|b| b.as_object())
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            for f in fields {
                if !op.info().body.contains(&f.as_str()) {
                    problems.push(format!("{op}: body field {f} not in the catalogue"));
                }
            }
            assert!(r.bearer, "{} {path} without a key", r.method);
            continue;
        }
        let Some(op) = spec.find(&r.method, path) else {
            problems.push(format!("{} {path}: not in the spec", r.method));
            continue;
        };
        let op_id = op.operation_id().unwrap_or_default().to_owned();
        assert!(
            TelnyxOperation::ALL
                .iter()
                .any(|o| o.info().operation_id == op_id),
            "{op_id} is not in the catalogue"
        );
        used.insert(op_id);
        problems.extend(op.check_request(path, &r.query, r.body.as_ref()));
        if r.body.is_some() {
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/json"),
                "{} {path}",
                r.method
            );
        }
        assert!(r.bearer, "{} {path} without a key", r.method);
        assert!(
            r.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("trunkline/")),
            "{:?}",
            r.user_agent
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let all: BTreeSet<_> = TelnyxOperation::ALL
        .iter()
        .map(|o| o.info().operation_id.to_owned())
        .collect();
    assert_eq!(used, all, "every operation was exercised");
}

/// The catalogue's operation outside the spec a request hits, if any
/// (`/fqdn_connections/{id}/fqdn_authentication`).
fn sdk_only(method: &str, path: &str) -> Option<TelnyxOperation> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["fqdn_connections", id, "fqdn_authentication"] = segments.as_slice() else {
        return None;
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    TelnyxOperation::ALL
        .into_iter()
        .find(|op| !op.info().in_spec && op.info().method == method)
}
