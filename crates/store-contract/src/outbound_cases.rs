//! Contract cases of `OutboundStore`: outbound routes and numbers round-trip; an idempotency
//! key places one call however many instances race with it; a withdrawn call frees its key.

use std::sync::Arc;

use trunkline_core::model::SealedSecret;
use trunkline_core::ports::{
    OutboundCall, OutboundCallInsert, OutboundCallState, OutboundNumber, OutboundRoute, Store,
};
use trunkline_core::{CallId, ConnectionId, ProviderKind, RoomName, SipTrunkId};

use crate::fixtures::{customer, e164, now_micros, route_id};

const TWILIO: ProviderKind = ProviderKind::Twilio;

fn call(customer: &trunkline_core::CustomerId, key: Option<&str>) -> OutboundCall {
    let id = CallId::new();
    OutboundCall {
        call_id: id,
        room_name: RoomName::parse(&format!("call-out_{}", id.as_uuid().simple())).unwrap(),
        customer_id: customer.clone(),
        connection_id: ConnectionId::new(),
        from: e164(1),
        to: e164(2),
        idempotency_key: key.map(str::to_owned),
        request_digest: "d1".to_owned(),
        state: OutboundCallState::Dialing,
        failure: None,
        created_at: now_micros(),
        updated_at: now_micros(),
    }
}

pub async fn outbound_routes_and_numbers_round_trip(store: Arc<dyn Store>) {
    let c = customer("out");
    let route = route_id();
    assert_eq!(
        store.get_outbound_route(&c, TWILIO, &route).await.unwrap(),
        None
    );
    let mut row = OutboundRoute {
        customer_id: c.clone(),
        provider: TWILIO,
        route_id: route.clone(),
        termination_host: None,
        sip_username: "tl0123456789".to_owned(),
        sealed_password: SealedSecret(vec![1, 2, 3, 0, 255]),
        livekit_trunk_id: None,
        created_at: now_micros(),
        updated_at: now_micros(),
    };
    store.put_outbound_route(&row).await.unwrap();
    assert_eq!(
        store.get_outbound_route(&c, TWILIO, &route).await.unwrap(),
        Some(row.clone())
    );
    row.termination_host = Some("tl-x.pstn.twilio.com".to_owned());
    row.livekit_trunk_id = Some(SipTrunkId::parse("ST_abc").unwrap());
    row.updated_at = now_micros();
    store.put_outbound_route(&row).await.unwrap();
    assert_eq!(
        store.get_outbound_route(&c, TWILIO, &route).await.unwrap(),
        Some(row.clone())
    );
    // Another provider's route of the same id is another row.
    assert_eq!(
        store
            .get_outbound_route(&c, ProviderKind::Telnyx, &route)
            .await
            .unwrap(),
        None
    );

    let numbers: Vec<OutboundNumber> = (1..=2)
        .map(|n| OutboundNumber {
            connection_id: ConnectionId::new(),
            customer_id: c.clone(),
            provider: TWILIO,
            route_id: route.clone(),
            e164: e164(n),
            created_at: now_micros(),
        })
        .collect();
    for n in &numbers {
        store.put_outbound_number(n).await.unwrap();
        // Writing twice changes nothing.
        store.put_outbound_number(n).await.unwrap();
    }
    assert_eq!(
        store
            .get_outbound_number(numbers[0].connection_id)
            .await
            .unwrap(),
        Some(numbers[0].clone())
    );
    let on_route = store
        .outbound_numbers_on_route(&c, TWILIO, &route)
        .await
        .unwrap();
    assert_eq!(on_route.len(), 2);
    assert!(
        store
            .delete_outbound_number(numbers[0].connection_id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_outbound_number(numbers[0].connection_id)
            .await
            .unwrap()
    );
    let on_route = store
        .outbound_numbers_on_route(&c, TWILIO, &route)
        .await
        .unwrap();
    assert_eq!(on_route, vec![numbers[1].clone()]);
    store
        .delete_outbound_route(&c, TWILIO, &route)
        .await
        .unwrap();
    store
        .delete_outbound_route(&c, TWILIO, &route)
        .await
        .unwrap();
    assert_eq!(
        store.get_outbound_route(&c, TWILIO, &route).await.unwrap(),
        None
    );
}

pub async fn outbound_call_idempotency_key_has_one_winner(store: Arc<dyn Store>) {
    let c = customer("idem");
    let calls: Vec<OutboundCall> = (0..16).map(|_| call(&c, Some("key-1"))).collect();
    let tasks = calls.iter().cloned().map(|call| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.insert_outbound_call(&call).await })
    });
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("insert"))
        .collect();
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, OutboundCallInsert::Inserted))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one insert wins");
    let winner = &calls[winners[0]];
    for r in &results {
        if let OutboundCallInsert::Existing(first) = r {
            assert_eq!(first.call_id, winner.call_id);
        }
    }
    // Without a key, every call is its own; another customer's key is another key.
    for _ in 0..2 {
        assert_eq!(
            store.insert_outbound_call(&call(&c, None)).await.unwrap(),
            OutboundCallInsert::Inserted
        );
    }
    assert_eq!(
        store
            .insert_outbound_call(&call(&customer("other"), Some("key-1")))
            .await
            .unwrap(),
        OutboundCallInsert::Inserted
    );
    // State changes are read back; a withdrawn call frees its key.
    store
        .update_outbound_call(
            winner.call_id,
            OutboundCallState::Failed,
            Some("CALL_BUSY: busy".to_owned()),
        )
        .await
        .unwrap();
    let read = store
        .get_outbound_call(winner.call_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(read.state, OutboundCallState::Failed);
    assert_eq!(read.failure.as_deref(), Some("CALL_BUSY: busy"));
    assert_eq!(read.idempotency_key.as_deref(), Some("key-1"));
    store.delete_outbound_call(winner.call_id).await.unwrap();
    assert_eq!(store.get_outbound_call(winner.call_id).await.unwrap(), None);
    let again = call(&c, Some("key-1"));
    assert_eq!(
        store.insert_outbound_call(&again).await.unwrap(),
        OutboundCallInsert::Inserted
    );
}
