//! Contract cases of the fleet port (`FleetStore`): cross-customer listings, the
//! reconciler's checks, purchase records and per-integration settings.

use std::sync::Arc;

use trunkline_core::model::{ConnectionCheck, IntegrationSettings, PurchasedNumber, RecordedDrift};
use trunkline_core::ports::Store;
use trunkline_core::{ConnectionId, ProviderKind};

use crate::fixtures::{bare_connection, customer, e164, integration, number_id, ts};

const TWILIO: ProviderKind = ProviderKind::Twilio;
const TELNYX: ProviderKind = ProviderKind::Telnyx;

/// Customers with an integration or a connection, each once, ascending, paged by `after`.
pub async fn fleet_lists_customers_and_connections_in_pages(store: Arc<dyn Store>) {
    let (a, b, c) = (customer("a"), customer("b"), customer("c"));
    store.put_integration(&integration(&a)).await.unwrap();
    // b has connections but no integration (deleted credentials): still a customer.
    let mut conns = vec![
        bare_connection(&a, e164(30)),
        bare_connection(&b, e164(31)),
        bare_connection(&b, e164(32)),
    ];
    for conn in &conns {
        store.save_connection(conn).await.unwrap();
    }
    store.put_integration(&integration(&c)).await.unwrap();
    let mut expected = vec![a.clone(), b.clone(), c.clone()];
    expected.sort();
    assert_eq!(store.list_customers(None, 10).await.unwrap(), expected);
    assert_eq!(
        store.list_customers(None, 2).await.unwrap(),
        expected[..2].to_vec()
    );
    assert_eq!(
        store
            .list_customers(Some(expected[1].clone()), 10)
            .await
            .unwrap(),
        expected[2..].to_vec()
    );
    assert!(
        store
            .list_customers(Some(expected[2].clone()), 10)
            .await
            .unwrap()
            .is_empty()
    );

    conns.sort_by_key(|c| c.id);
    assert_eq!(store.list_all_connections(None, 10).await.unwrap(), conns);
    let first = store.list_all_connections(None, 2).await.unwrap();
    assert_eq!(first, conns[..2].to_vec());
    let rest = store
        .list_all_connections(Some(first[1].id), 2)
        .await
        .unwrap();
    assert_eq!(rest, conns[2..].to_vec());
}

/// A check is stored per connection, replaced by the next one, and read back for the ids
/// asked (those that have one).
pub async fn fleet_checks_round_trip_and_replace(store: Arc<dyn Store>) {
    let cust = customer("checks");
    let (one, two) = (
        bare_connection(&cust, e164(40)),
        bare_connection(&cust, e164(41)),
    );
    store.save_connection(&one).await.unwrap();
    store.save_connection(&two).await.unwrap();
    assert!(
        store
            .get_checks(&[one.id, two.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.get_checks(&[]).await.unwrap().is_empty());

    let drifted = ConnectionCheck {
        connection_id: one.id,
        checked_at: ts(100),
        drifts: vec![RecordedDrift {
            kind: "livekit_rule_missing".to_owned(),
            message: "the LiveKit dispatch rule for this number does not exist".to_owned(),
        }],
        drift_since: Some(ts(90)),
        unreadable: vec!["trunk:PROVIDER_UNAVAILABLE".to_owned()],
        repaired_at: None,
    };
    store.save_check(&drifted).await.unwrap();
    assert_eq!(
        store
            .get_checks(&[one.id, two.id, ConnectionId::new()])
            .await
            .unwrap(),
        vec![drifted.clone()]
    );
    let clean = ConnectionCheck {
        checked_at: ts(200),
        drifts: Vec::new(),
        drift_since: None,
        unreadable: Vec::new(),
        repaired_at: Some(ts(150)),
        ..drifted
    };
    store.save_check(&clean).await.unwrap();
    assert_eq!(store.get_checks(&[one.id]).await.unwrap(), vec![clean]);
}

/// Purchases are keyed by customer, provider and number; a release is an update.
pub async fn fleet_purchases_and_settings_round_trip(store: Arc<dyn Store>) {
    let (cust, other) = (customer("buyer"), customer("other"));
    let number = number_id();
    assert!(
        store
            .get_purchase(&cust, TWILIO, &number)
            .await
            .unwrap()
            .is_none()
    );
    let bought = PurchasedNumber {
        customer_id: cust.clone(),
        provider: TWILIO,
        number_id: number.clone(),
        e164: e164(50),
        purchased_at: ts(10),
        released_at: None,
    };
    store.save_purchase(&bought).await.unwrap();
    assert_eq!(
        store.get_purchase(&cust, TWILIO, &number).await.unwrap(),
        Some(bought.clone())
    );
    // Another customer, or the other carrier, did not buy it.
    assert!(
        store
            .get_purchase(&other, TWILIO, &number)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_purchase(&cust, TELNYX, &number)
            .await
            .unwrap()
            .is_none()
    );
    let released = PurchasedNumber {
        released_at: Some(ts(20)),
        ..bought
    };
    store.save_purchase(&released).await.unwrap();
    assert_eq!(
        store.get_purchase(&cust, TWILIO, &number).await.unwrap(),
        Some(released)
    );

    assert!(store.get_settings(&cust, TWILIO).await.unwrap().is_none());
    let on = IntegrationSettings {
        customer_id: cust.clone(),
        provider: TWILIO,
        auto_repair: true,
        updated_at: ts(30),
    };
    store.put_settings(&on).await.unwrap();
    assert_eq!(
        store.get_settings(&cust, TWILIO).await.unwrap(),
        Some(on.clone())
    );
    assert!(store.get_settings(&cust, TELNYX).await.unwrap().is_none());
    let off = IntegrationSettings {
        auto_repair: false,
        updated_at: ts(31),
        ..on
    };
    store.put_settings(&off).await.unwrap();
    assert_eq!(store.get_settings(&cust, TWILIO).await.unwrap(), Some(off));
}
