//! Every typed operation does what Telnyx needs, and reads back what Telnyx answers.

use std::collections::BTreeSet;

use trunkline_core::{E164, ErrorCode};
use trunkline_telnyx::{
    Capability, ConnectionId, DnsRecordType, FailoverPlan, FqdnSpec, NewConnection, NumberId,
    NumberQuery, RoutingMethod, Transport,
};

use crate::common::World;

#[tokio::test]
async fn verify_reports_the_balance_and_what_the_key_may_do() {
    let w = World::new();
    w.emu.seed_numbers(&w.account.id, 3);
    let v = w.client.verify(&w.key).await.unwrap();
    assert_eq!(v.numbers_read, Capability::Allowed);
    assert_eq!(v.number_count, Some(3));
    let balance = v.balance.unwrap();
    assert_eq!(
        (balance.balance.as_str(), balance.currency.as_str()),
        ("300.00", "USD")
    );
    let listed = w
        .emu
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/phone_numbers"))
        .unwrap();
    assert_eq!(listed.query.get("page[size]"), Some("1"));

    let limited = w.emu.add_api_key(&w.account.id, false);
    let v = w.client.verify(&limited.key.clone().into()).await.unwrap();
    assert_eq!(v.numbers_read, Capability::Forbidden);
    assert_eq!(v.number_count, None);
    assert!(v.balance.is_some());
}

#[tokio::test]
async fn numbers_page_behind_an_opaque_cursor() {
    let w = World::new();
    let seeded = w.emu.seed_numbers(&w.account.id, 5);
    let mut query = NumberQuery {
        page_size: 2,
        ..NumberQuery::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = w.client.list_numbers(&w.key, &query).await.unwrap();
        pages += 1;
        assert_eq!(page.total, Some(5));
        seen.extend(page.numbers.iter().map(|n| n.id.to_string()));
        match page.next_cursor {
            Some(c) => {
                assert!(!c.contains("page"), "opaque: {c}");
                query = NumberQuery {
                    page_size: 99,
                    cursor: Some(c),
                    ..NumberQuery::default()
                };
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    let all: BTreeSet<_> = seeded.iter().map(|n| n.id.clone()).collect();
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
    // The cursor's page size was used, not the query's 99.
    let last = w.emu.requests().pop().unwrap();
    assert_eq!(
        (last.query.get("page[number]"), last.query.get("page[size]")),
        (Some("3"), Some("2"))
    );

    for bad in ["t1.Zm9v", "n1.abc", "https://evil.example/", ""] {
        let e = w
            .client
            .list_numbers(
                &w.key,
                &NumberQuery {
                    cursor: Some(bad.into()),
                    ..NumberQuery::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
    }
    for size in [0, 251] {
        let e = w
            .client
            .list_numbers(
                &w.key,
                &NumberQuery {
                    page_size: size,
                    ..NumberQuery::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert!(e.message.starts_with("pageSize"), "{e:?}");
    }
    let requests = w.emu.count(trunkline_testkit::telnyx::RouteSelector::Any);
    assert_eq!(requests, 3, "refused queries never reach Telnyx");
}

#[tokio::test]
async fn one_number_can_be_listed_by_its_e164() {
    let w = World::new();
    let seeded = w.emu.seed_numbers(&w.account.id, 4);
    let wanted = E164::parse(&seeded[2].phone_number).unwrap();
    let page = w
        .client
        .list_numbers(
            &w.key,
            &NumberQuery {
                page_size: 10,
                phone_number: Some(wanted.clone()),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.numbers.len(), 1);
    assert_eq!(page.numbers[0].phone_number, wanted);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn moving_a_number_remembers_where_it_was() {
    let w = World::new();
    let (account, foreign, numbers) = w.emu.add_account_on_foreign_connection("acme", 1);
    let key = account.api_key.clone().into();
    let id = NumberId::parse(&numbers[0].id).unwrap();
    let before = w.client.get_number(&key, &id).await.unwrap();
    assert_eq!(
        before.connection_id.as_ref().map(ConnectionId::as_str),
        Some(foreign.as_str())
    );
    assert_eq!(before.connection_name.as_deref(), Some("Acme PBX"));
    assert_eq!(before.status, "active");
    assert_eq!(before.phone_number.as_str(), numbers[0].phone_number);

    let ours = w
        .client
        .create_connection(
            &key,
            &NewConnection {
                name: "trunkline-acme".into(),
                transport: Transport::default(),
            },
        )
        .await
        .unwrap();
    let moved = w
        .client
        .set_number_connection(&key, &id, Some(&ours.id))
        .await
        .unwrap();
    assert_eq!(moved.connection_id, Some(ours.id.clone()));
    assert_eq!(
        w.emu.number(id.as_str()).unwrap().connection_id.as_deref(),
        Some(ours.id.as_str())
    );

    let restored = w
        .client
        .set_number_connection(&key, &id, before.connection_id.as_ref())
        .await
        .unwrap();
    assert_eq!(restored.connection_id, before.connection_id);
    let cleared = w
        .client
        .set_number_connection(&key, &id, None)
        .await
        .unwrap();
    assert_eq!(cleared.connection_id, None);
    assert_eq!(w.emu.number(id.as_str()).unwrap().connection_id, None);
}

#[tokio::test]
async fn connections_are_created_with_trunklines_formats_and_found_by_name() {
    let w = World::new();
    let key = &w.key;
    let spec = NewConnection {
        name: "trunkline-cust-1".into(),
        transport: Transport::default(),
    };
    let created = w.client.create_connection(key, &spec).await.unwrap();
    assert_eq!(created.transport, Some(Transport::Tcp));
    assert!(created.has_trunkline_number_formats(), "{created:?}");
    let view = w.emu.connection(created.id.as_str()).unwrap();
    assert_eq!(
        (
            view.ani_number_format.as_str(),
            view.dnis_number_format.as_str(),
            view.transport_protocol.as_str()
        ),
        ("+E.164", "+e164", "TCP")
    );

    // Look-alikes on several pages: only exact names come back, oldest first.
    for name in [
        "trunkline-cust-10",
        "TRUNKLINE-CUST-1",
        "other",
        "trunkline-cust-1x",
    ] {
        w.emu.add_connection(&w.account.id, name);
    }
    let twin = w.emu.add_connection(&w.account.id, "trunkline-cust-1");
    let found = w
        .client
        .find_connections_by_name(key, "trunkline-cust-1")
        .await
        .unwrap();
    let ids: Vec<_> = found.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, vec![created.id.to_string(), twin]);
    let listed = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/fqdn_connections") && r.method == "GET")
        .collect::<Vec<_>>();
    assert!(listed.len() >= 2, "crossed pages of 2");
    assert_eq!(
        listed[0].query.get("filter[connection_name][contains]"),
        Some("trunkline-cust-1")
    );
    // A short name cannot be filtered by Telnyx: every page is read.
    w.emu.add_connection(&w.account.id, "ab");
    let short = w.client.find_connections_by_name(key, "ab").await.unwrap();
    assert_eq!(short.len(), 1);
    assert!(
        w.client
            .find_connections_by_name(key, "nothing-like-it")
            .await
            .unwrap()
            .is_empty()
    );

    // Drift and its repair.
    let foreign = w.emu.add_connection(&w.account.id, "drifted");
    let foreign = ConnectionId::parse(&foreign).unwrap();
    let got = w
        .client
        .get_connection(key, &foreign)
        .await
        .unwrap()
        .unwrap();
    assert!(!got.has_trunkline_number_formats());
    assert_eq!(got.transport, Some(Transport::Udp));
    let reset = w
        .client
        .reset_connection(key, &foreign, &spec)
        .await
        .unwrap();
    assert!(reset.has_trunkline_number_formats());
    assert_eq!(reset.name, "trunkline-cust-1");

    w.client.delete_connection(key, &created.id).await.unwrap();
    assert!(w.emu.connection(created.id.as_str()).is_none());
    assert_eq!(
        w.client.get_connection(key, &created.id).await.unwrap(),
        None
    );
    w.client
        .delete_connection(key, &created.id)
        .await
        .expect("already gone is success");

    let blank = w
        .client
        .create_connection(
            key,
            &NewConnection {
                name: " ".into(),
                transport: Transport::Udp,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(blank.code, ErrorCode::ValidationFailed);
}

#[tokio::test]
async fn fqdns_are_the_sip_targets_and_the_connection_orders_them() {
    let w = World::new();
    let key = &w.key;
    let conn = w
        .client
        .create_connection(
            key,
            &NewConnection {
                name: "trunkline-x".into(),
                transport: Transport::Tcp,
            },
        )
        .await
        .unwrap();
    let target = |host: &str, port, record_type| FqdnSpec {
        host: host.into(),
        port,
        record_type,
    };
    let mut made = Vec::new();
    for (host, port) in [
        ("a.sip.example.com", 5060),
        ("b.sip.example.com", 5061),
        ("c.sip.example.com", 5062),
    ] {
        made.push(
            w.client
                .create_fqdn(key, &conn.id, &target(host, port, DnsRecordType::A))
                .await
                .unwrap(),
        );
    }
    let other = w.emu.add_connection(&w.account.id, "other");
    w.emu.add_fqdn(&other, "elsewhere.example.com", 5060, "a");

    let listed = w.client.list_fqdns(key, &conn.id).await.unwrap();
    assert_eq!(
        listed, made,
        "three FQDNs over pages of two, none of the other connection"
    );
    assert_eq!(listed[1].port, 5061);
    assert_eq!(listed[1].record_type, Some(DnsRecordType::A));

    let plan = FailoverPlan::from_priorities(&[
        (made[0].id.clone(), 20, 1),
        (made[1].id.clone(), 10, 1),
        (made[2].id.clone(), 30, 1),
    ])
    .unwrap();
    let ordered = w.client.set_failover(key, &conn.id, &plan).await.unwrap();
    assert_eq!(
        ordered.failover,
        vec![made[1].id.clone(), made[0].id.clone(), made[2].id.clone()]
    );
    assert_eq!(ordered.routing_method, Some(RoutingMethod::Sequential));
    let view = w.emu.connection(conn.id.as_str()).unwrap();
    assert_eq!(view.failover[0].as_deref(), Some(made[1].id.as_str()));
    assert_eq!(view.routing_method, "sequential");

    let two = FailoverPlan {
        order: vec![made[2].id.clone(), made[0].id.clone()],
        method: RoutingMethod::RoundRobin,
    };
    let ordered = w.client.set_failover(key, &conn.id, &two).await.unwrap();
    assert_eq!(ordered.failover, two.order, "the third slot is cleared");

    let updated = w
        .client
        .update_fqdn(
            key,
            &made[0].id,
            &target("z.sip.example.com", 5080, DnsRecordType::Srv),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.host.as_str(), updated.port, updated.record_type),
        ("z.sip.example.com", 5080, Some(DnsRecordType::Srv))
    );

    w.client.delete_fqdn(key, &made[0].id).await.unwrap();
    w.client
        .delete_fqdn(key, &made[0].id)
        .await
        .expect("already gone is success");
    assert_eq!(w.emu.fqdns(conn.id.as_str()).len(), 2);
    let e = w
        .client
        .update_fqdn(
            key,
            &made[0].id,
            &target("y.example.com", 5060, DnsRecordType::A),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);

    for (bad, field) in [
        (target("not a host", 5060, DnsRecordType::A), "host"),
        (target("localhost", 5060, DnsRecordType::A), "host"),
        (target("10.0.0.1", 5060, DnsRecordType::A), "host"),
        (target("a.example.com", 0, DnsRecordType::A), "port"),
    ] {
        let e = w.client.create_fqdn(key, &conn.id, &bad).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad:?}");
        assert!(e.message.starts_with(field), "{e:?}");
    }
}
