//! The contract cases. Each takes a fresh, migrated store and asserts on what it stored and
//! returned; the concurrent cases race real tasks against one store (a pool of connections,
//! so real concurrent database sessions).
//!
//! Lease and claim expiry use the store's clock; the cases that check an expiry time allow
//! a few seconds between it and the test's clock (both run on the same host in tests).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::sync::Barrier;
use trunkline_core::model::{
    CallStatus, ConnectionStatus, DispatchClaim, DispatchStatus, IntegrationStatus, LeaseKey,
    LeaseResource, LeaseState, SealedSecret,
};
use trunkline_core::ports::{ClaimRequest, JoinRecorded, Store, StoreError, WebhookEventRecord};
use trunkline_core::{CallId, ConnectionId, IntegrationId, ProviderKind};

use crate::fixtures::{
    audit_event, bare_call, bare_connection, customer, dispatch_id, e164, full_call,
    full_connection, integration, lease_key, now_micros, number_id, room, telnyx_connection,
    telnyx_integration, ts, webhook_event,
};
use crate::harness::MigrateFn;
pub use crate::voice_url_cases::*;

pub use crate::outbound_cases::{
    outbound_call_idempotency_key_has_one_winner, outbound_routes_and_numbers_round_trip,
};

pub use crate::fleet_cases::*;

const TWILIO: ProviderKind = ProviderKind::Twilio;
const TELNYX: ProviderKind = ProviderKind::Telnyx;
/// How many tasks race in the concurrent cases.
const RACERS: usize = 32;
/// A time-to-live that outlives any case.
const LONG: Duration = Duration::from_secs(60);
/// A time-to-live meant to run out during a case, and how long to wait for that.
const SHORT: Duration = Duration::from_millis(200);
const PAST_SHORT: Duration = Duration::from_millis(700);
/// Allowed distance between the store's clock and the test's.
const CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(5);

/// Start `n` tasks at once (behind a barrier) and collect their results in task order.
async fn race<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks = (0..n).map(|i| {
        let barrier = Arc::clone(&barrier);
        let work = make(i);
        tokio::spawn(async move {
            barrier.wait().await;
            work.await
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("racing task panicked"))
        .collect()
}

fn assert_expiry_near(expires_at: DateTime<Utc>, before: DateTime<Utc>, ttl: Duration) {
    let ttl = chrono::Duration::from_std(ttl).expect("small ttl");
    let after = Utc::now();
    assert!(
        expires_at >= before + ttl - CLOCK_SLACK && expires_at <= after + ttl + CLOCK_SLACK,
        "expiry {expires_at} is not about {ttl} after {before}"
    );
}

// ---------------------------------------------------------------------------------------
// Integrations
// ---------------------------------------------------------------------------------------

pub async fn integration_get_put_replace_delete(store: Arc<dyn Store>) {
    let cust = customer("int");
    assert_eq!(store.get_integration(&cust, TWILIO).await.unwrap(), None);

    let first = integration(&cust);
    store.put_integration(&first).await.unwrap();
    assert_eq!(
        store.get_integration(&cust, TWILIO).await.unwrap(),
        Some(first.clone())
    );

    // Replacing writes every field, the id included.
    let mut second = integration(&cust);
    second.id = IntegrationId::new();
    // An auth-token integration: no key id.
    second.key_id = None;
    second.sealed_secret = SealedSecret((0..=255).collect());
    second.status = IntegrationStatus::Disabled;
    second.created_at = ts(100);
    second.updated_at = ts(101);
    assert_ne!(second.id, first.id);
    assert_ne!(second.account_id, first.account_id);
    store.put_integration(&second).await.unwrap();
    assert_eq!(
        store.get_integration(&cust, TWILIO).await.unwrap(),
        Some(second.clone())
    );

    // Keeping the id is the caller's choice.
    let mut third = second.clone();
    third.status = IntegrationStatus::Active;
    third.updated_at = ts(102);
    store.put_integration(&third).await.unwrap();
    assert_eq!(
        store.get_integration(&cust, TWILIO).await.unwrap(),
        Some(third)
    );

    assert!(store.delete_integration(&cust, TWILIO).await.unwrap());
    assert_eq!(store.get_integration(&cust, TWILIO).await.unwrap(), None);
    assert!(!store.delete_integration(&cust, TWILIO).await.unwrap());
}

pub async fn integrations_are_isolated_between_customers(store: Arc<dyn Store>) {
    let (a, b) = (customer("a"), customer("b"));
    let ia = integration(&a);
    let ib = integration(&b);
    store.put_integration(&ia).await.unwrap();
    store.put_integration(&ib).await.unwrap();

    assert_eq!(store.get_integration(&a, TWILIO).await.unwrap(), Some(ia));
    assert_eq!(
        store.get_integration(&b, TWILIO).await.unwrap(),
        Some(ib.clone())
    );

    // Replacing and deleting A's leaves B's untouched.
    let mut ia2 = integration(&a);
    ia2.updated_at = ts(50);
    store.put_integration(&ia2).await.unwrap();
    assert!(store.delete_integration(&a, TWILIO).await.unwrap());
    assert_eq!(store.get_integration(&a, TWILIO).await.unwrap(), None);
    assert_eq!(store.get_integration(&b, TWILIO).await.unwrap(), Some(ib));
    assert_eq!(
        store
            .get_integration(&customer("nobody"), TWILIO)
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

pub async fn connection_round_trips_every_field(store: Arc<dyn Store>) {
    let cust = customer("conn");
    let full = full_connection(&cust, e164(10));
    store.save_connection(&full).await.unwrap();
    assert_eq!(
        store
            .get_connection(&cust, TWILIO, &full.number_id)
            .await
            .unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.get_connection_by_id(full.id).await.unwrap(),
        Some(full.clone())
    );

    let bare = bare_connection(&cust, e164(11));
    store.save_connection(&bare).await.unwrap();
    assert_eq!(
        store.get_connection_by_id(bare.id).await.unwrap(),
        Some(bare.clone())
    );

    // Saving writes every field: values that became empty are cleared, not kept.
    let mut emptied = bare_connection(&cust, full.e164.clone());
    emptied.id = full.id;
    emptied.integration_id = full.integration_id;
    emptied.number_id = full.number_id.clone();
    emptied.status = ConnectionStatus::Disconnected;
    emptied.created_at = full.created_at;
    emptied.updated_at = ts(30);
    store.save_connection(&emptied).await.unwrap();
    assert_eq!(
        store.get_connection_by_id(full.id).await.unwrap(),
        Some(emptied.clone())
    );

    // ... and filled again.
    let mut refilled = full.clone();
    refilled.updated_at = ts(31);
    store.save_connection(&refilled).await.unwrap();
    assert_eq!(
        store.get_connection_by_id(full.id).await.unwrap(),
        Some(refilled)
    );
}

/// A second carrier's rows: no account or key id, numeric carrier ids, its own routing
/// record. They sit beside the same customer's Twilio rows without touching them.
pub async fn telnyx_integration_and_connection_round_trip(store: Arc<dyn Store>) {
    let cust = customer("telnyx");
    let twilio = integration(&cust);
    let telnyx = telnyx_integration(&cust);
    store.put_integration(&twilio).await.unwrap();
    store.put_integration(&telnyx).await.unwrap();
    assert_eq!(
        store.get_integration(&cust, TELNYX).await.unwrap(),
        Some(telnyx.clone())
    );
    assert_eq!(
        store.get_integration(&cust, TWILIO).await.unwrap(),
        Some(twilio.clone())
    );

    let conn = telnyx_connection(&cust, &telnyx, e164(15));
    assert!(conn.number_id.as_str().bytes().all(|b| b.is_ascii_digit()));
    store.save_connection(&conn).await.unwrap();
    assert_eq!(
        store
            .get_connection(&cust, TELNYX, &conn.number_id)
            .await
            .unwrap(),
        Some(conn.clone())
    );
    assert_eq!(
        store.get_connection_by_id(conn.id).await.unwrap(),
        Some(conn.clone())
    );
    assert_eq!(
        store.list_connections(&cust, TELNYX).await.unwrap(),
        vec![conn.clone()]
    );
    assert!(
        store
            .list_connections(&cust, TWILIO)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .find_live_connection_by_e164(&conn.e164)
            .await
            .unwrap(),
        Some(conn.clone())
    );

    // The provider is part of the number's identity: the same id under Twilio is another row.
    let mut same_id = bare_connection(&cust, e164(16));
    same_id.number_id = conn.number_id.clone();
    same_id.integration_id = twilio.id;
    store.save_connection(&same_id).await.unwrap();
    assert_eq!(
        store
            .get_connection(&cust, TWILIO, &conn.number_id)
            .await
            .unwrap(),
        Some(same_id)
    );
    assert_eq!(
        store
            .get_connection(&cust, TELNYX, &conn.number_id)
            .await
            .unwrap(),
        Some(conn.clone())
    );

    // So is the lease on it.
    let telnyx_key = LeaseKey::number(cust.clone(), TELNYX, conn.number_id.clone());
    let twilio_key = LeaseKey::number(cust.clone(), TWILIO, conn.number_id.clone());
    for key in [&telnyx_key, &twilio_key] {
        let lease = store
            .try_acquire_lease(key, "instance-a", LONG)
            .await
            .unwrap()
            .expect("each provider's number lease is free");
        assert_eq!(&lease.key, key);
    }

    let mut event = audit_event(&cust, ts(7));
    event.provider = TELNYX;
    store.append_audit(&event).await.unwrap();
    assert_eq!(store.list_audit(&cust, 10).await.unwrap(), vec![event]);

    // Deleting one carrier's credentials leaves the other's.
    assert!(store.delete_integration(&cust, TELNYX).await.unwrap());
    assert_eq!(store.get_integration(&cust, TELNYX).await.unwrap(), None);
    assert_eq!(
        store.get_integration(&cust, TWILIO).await.unwrap(),
        Some(twilio)
    );
}

pub async fn connection_save_updates_by_id_and_lists_oldest_first(store: Arc<dyn Store>) {
    let (cust, other) = (customer("list"), customer("other"));
    let mut older = bare_connection(&cust, e164(20));
    older.created_at = ts(1);
    let mut newer = full_connection(&cust, e164(21));
    newer.created_at = ts(2);
    let foreign = bare_connection(&other, e164(22));
    // Saved out of order on purpose: the listing orders by creation.
    store.save_connection(&newer).await.unwrap();
    store.save_connection(&older).await.unwrap();
    store.save_connection(&foreign).await.unwrap();

    assert_eq!(
        store.list_connections(&cust, TWILIO).await.unwrap(),
        vec![older.clone(), newer.clone()]
    );
    assert_eq!(
        store.list_connections(&other, TWILIO).await.unwrap(),
        vec![foreign.clone()]
    );
    assert!(
        store
            .list_connections(&customer("nobody"), TWILIO)
            .await
            .unwrap()
            .is_empty()
    );

    // An update by id keeps one row.
    let mut updated = older.clone();
    updated.status = ConnectionStatus::Failed;
    updated.last_error = Some("CONFLICT: lease held".to_owned());
    updated.updated_at = ts(40);
    store.save_connection(&updated).await.unwrap();
    assert_eq!(
        store.list_connections(&cust, TWILIO).await.unwrap(),
        vec![updated.clone(), newer]
    );

    // Absent things are `None`, including another customer's number.
    assert_eq!(
        store
            .get_connection_by_id(ConnectionId::new())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_connection(&cust, TWILIO, &number_id())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_connection(&other, TWILIO, &updated.number_id)
            .await
            .unwrap(),
        None
    );
}

pub async fn connection_save_conflicts_on_a_second_row_for_the_same_number(store: Arc<dyn Store>) {
    let cust = customer("dup");
    let original = full_connection(&cust, e164(30));
    store.save_connection(&original).await.unwrap();

    let mut duplicate = bare_connection(&cust, e164(30));
    duplicate.number_id = original.number_id.clone();
    assert_ne!(duplicate.id, original.id);
    let err = store.save_connection(&duplicate).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    assert_eq!(
        store
            .get_connection(&cust, TWILIO, &original.number_id)
            .await
            .unwrap(),
        Some(original.clone())
    );
    assert_eq!(
        store.get_connection_by_id(duplicate.id).await.unwrap(),
        None
    );

    // The same number sid under another customer is another row.
    let other = customer("dup2");
    let mut theirs = bare_connection(&other, e164(30));
    theirs.number_id = original.number_id.clone();
    store.save_connection(&theirs).await.unwrap();
    assert_eq!(
        store
            .get_connection(&other, TWILIO, &original.number_id)
            .await
            .unwrap(),
        Some(theirs)
    );
}

pub async fn connection_find_live_by_e164(store: Arc<dyn Store>) {
    let number = e164(40);
    let (a, b) = (customer("a"), customer("b"));
    let mut conn_a = full_connection(&a, number.clone());
    conn_a.status = ConnectionStatus::Connected;
    conn_a.updated_at = ts(100);
    let mut conn_b = bare_connection(&b, number.clone());
    conn_b.status = ConnectionStatus::Connected;
    conn_b.updated_at = ts(200);
    let mut old_a = bare_connection(&a, number.clone());
    old_a.status = ConnectionStatus::Disconnected;
    old_a.updated_at = ts(300);
    for c in [&conn_a, &conn_b, &old_a] {
        store.save_connection(c).await.unwrap();
    }
    assert_eq!(
        store.find_live_connection_by_e164(&e164(41)).await.unwrap(),
        None
    );

    // The most recently updated live one wins; a later disconnected row does not count.
    assert_eq!(
        store.find_live_connection_by_e164(&number).await.unwrap(),
        Some(conn_b.clone())
    );

    conn_b.status = ConnectionStatus::Disconnected;
    conn_b.updated_at = ts(400);
    store.save_connection(&conn_b).await.unwrap();
    assert_eq!(
        store.find_live_connection_by_e164(&number).await.unwrap(),
        Some(conn_a.clone())
    );

    // Pending and failed connections are live (not disconnected).
    conn_a.status = ConnectionStatus::Pending;
    store.save_connection(&conn_a).await.unwrap();
    assert_eq!(
        store.find_live_connection_by_e164(&number).await.unwrap(),
        Some(conn_a.clone())
    );

    conn_a.status = ConnectionStatus::Disconnected;
    store.save_connection(&conn_a).await.unwrap();
    assert_eq!(
        store.find_live_connection_by_e164(&number).await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------

pub async fn lease_acquire_block_renew_release(store: Arc<dyn Store>) {
    let cust = customer("lease");
    let key = lease_key(&cust);

    let before = Utc::now();
    let held = store
        .try_acquire_lease(&key, "instance-a", LONG)
        .await
        .unwrap()
        .expect("a free lease is acquired");
    assert_eq!(held.key, key);
    assert_eq!(held.holder, "instance-a");
    assert_expiry_near(held.expires_at, before, LONG);

    // A live lease blocks everyone else, whatever their holder name.
    assert_eq!(
        store
            .try_acquire_lease(&key, "instance-b", LONG)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .try_acquire_lease(&key, "instance-a", LONG)
            .await
            .unwrap(),
        None
    );

    // Other keys are independent: another number, a trunk of the same customer, the same
    // number at another customer.
    let LeaseResource::Number(number) = &key.resource else {
        unreachable!("lease_key is a number lease")
    };
    for other in [
        LeaseKey::number(cust.clone(), TWILIO, number_id()),
        LeaseKey::trunk(cust.clone(), TWILIO, "trunkline-shared"),
        LeaseKey::number(customer("lease-other"), TWILIO, number.clone()),
    ] {
        let lease = store
            .try_acquire_lease(&other, "instance-b", LONG)
            .await
            .unwrap()
            .expect("an independent key is free");
        assert_eq!(lease.key, other);
    }

    // Renewing extends and keeps the token.
    let before = Utc::now();
    let renewed = store
        .renew_lease(&held, LONG * 2)
        .await
        .unwrap()
        .expect("a held lease renews");
    assert_eq!(renewed.token, held.token);
    assert_eq!(renewed.holder, held.holder);
    assert!(renewed.expires_at > held.expires_at);
    assert_expiry_near(renewed.expires_at, before, LONG * 2);

    store.release_lease(&renewed).await.unwrap();
    assert_eq!(store.renew_lease(&held, LONG).await.unwrap(), None);
    let next = store
        .try_acquire_lease(&key, "instance-b", LONG)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!(next.holder, "instance-b");
    assert_ne!(next.token, held.token);
    // Releasing twice is harmless.
    store.release_lease(&renewed).await.unwrap();
    assert_eq!(
        store
            .try_acquire_lease(&key, "instance-c", LONG)
            .await
            .unwrap(),
        None
    );
}

/// `peek_lease` reads without taking: a key never taken is `None`; every acquisition and
/// every release changes the token, so a reader that peeked "free" before and sees the same
/// state after knows nobody held the lease in between.
pub async fn lease_peek_sees_every_holder_between_two_reads(store: Arc<dyn Store>) {
    let key = LeaseKey::trunk(customer("peek"), TWILIO, "trunkline-shared");
    assert_eq!(store.peek_lease(&key).await.unwrap(), None, "never taken");

    let held = store
        .try_acquire_lease(&key, "instance-a", LONG)
        .await
        .unwrap()
        .expect("free");
    let seen = store.peek_lease(&key).await.unwrap().expect("taken once");
    assert_eq!(seen.token, held.token);
    assert!(seen.held);
    // Peeking takes nothing.
    assert_eq!(
        store
            .try_acquire_lease(&key, "instance-b", LONG)
            .await
            .unwrap(),
        None
    );
    let renewed = store
        .renew_lease(&held, LONG)
        .await
        .unwrap()
        .expect("a peeked lease still renews");
    assert_eq!(store.peek_lease(&key).await.unwrap(), Some(seen));

    store.release_lease(&renewed).await.unwrap();
    let free = store
        .peek_lease(&key)
        .await
        .unwrap()
        .expect("kept after release");
    assert!(!free.held);
    assert_ne!(free.token, held.token, "a release is seen");
    assert_eq!(
        store.peek_lease(&key).await.unwrap(),
        Some(free),
        "stable while free"
    );
    assert_eq!(store.renew_lease(&held, LONG).await.unwrap(), None);

    // Held and released in between two reads: the reader sees a new token.
    let again = store
        .try_acquire_lease(&key, "instance-b", LONG)
        .await
        .unwrap()
        .expect("a released lease is free");
    store.release_lease(&again).await.unwrap();
    let after = store.peek_lease(&key).await.unwrap().expect("kept");
    assert!(!after.held);
    assert_ne!(after.token, free.token);
    assert_ne!(after.token, again.token);

    // An expired, never released lease reads as not held, under its holder's token.
    let short = LeaseKey::trunk(customer("peek"), TWILIO, "trunkline-other");
    let lost = store
        .try_acquire_lease(&short, "crashed", SHORT)
        .await
        .unwrap()
        .expect("free");
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        store.peek_lease(&short).await.unwrap(),
        Some(LeaseState {
            token: lost.token,
            held: false
        })
    );
}

pub async fn lease_expired_takeover_and_lost_lease_cannot_touch_the_new_holder(
    store: Arc<dyn Store>,
) {
    let key = lease_key(&customer("takeover"));
    let lost = store
        .try_acquire_lease(&key, "crashed", SHORT)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        store.try_acquire_lease(&key, "new", LONG).await.unwrap(),
        None,
        "still live"
    );
    tokio::time::sleep(PAST_SHORT).await;

    let current = store
        .try_acquire_lease(&key, "new", LONG)
        .await
        .unwrap()
        .expect("an expired lease is taken over");
    assert_eq!(current.holder, "new");
    assert_ne!(current.token, lost.token);
    assert!(current.expires_at > lost.expires_at);

    // The previous holder can neither renew nor release the new holder's lease.
    assert_eq!(store.renew_lease(&lost, LONG).await.unwrap(), None);
    store.release_lease(&lost).await.unwrap();
    assert_eq!(
        store.try_acquire_lease(&key, "third", LONG).await.unwrap(),
        None,
        "the new holder's lease survived the old holder's release"
    );
    let renewed = store
        .renew_lease(&current, LONG)
        .await
        .unwrap()
        .expect("the new holder still holds it");
    assert_eq!(renewed.token, current.token);
}

pub async fn lease_concurrent_acquisition_has_one_winner(store: Arc<dyn Store>) {
    let key = lease_key(&customer("race"));
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let key = key.clone();
        async move {
            store
                .try_acquire_lease(&key, &format!("racer-{i}"), LONG)
                .await
        }
    })
    .await;
    let winners: Vec<_> = results
        .into_iter()
        .filter_map(|r| r.expect("no racer fails"))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one racer holds the lease");
    let winner = &winners[0];
    assert!(winner.holder.starts_with("racer-"));
    // The stored lease is the winner's: it renews, nobody else acquires.
    assert!(store.renew_lease(winner, LONG).await.unwrap().is_some());
    assert_eq!(
        store.try_acquire_lease(&key, "late", LONG).await.unwrap(),
        None
    );
}

/// `try_acquire_lease_unchanged` with nothing seen: only a key never taken, and only once
/// (a released key is kept, under a new token).
pub async fn lease_unchanged_takes_a_never_taken_key_once(store: Arc<dyn Store>) {
    let key = LeaseKey::trunk(customer("unchanged-new"), TWILIO, "trunkline-shared");
    let before = Utc::now();
    let lease = store
        .try_acquire_lease_unchanged(&key, "instance-a", LONG, None)
        .await
        .unwrap()
        .expect("a key never taken is taken");
    assert_eq!((&lease.key, lease.holder.as_str()), (&key, "instance-a"));
    assert_expiry_near(lease.expires_at, before, LONG);
    let seen = store.peek_lease(&key).await.unwrap().expect("taken");
    assert_eq!((seen.token, seen.held), (lease.token, true));
    assert!(store.renew_lease(&lease, LONG).await.unwrap().is_some());

    store.release_lease(&lease).await.unwrap();
    assert_eq!(
        store
            .try_acquire_lease_unchanged(&key, "instance-b", LONG, None)
            .await
            .unwrap(),
        None,
        "taken and released since: not never taken"
    );
}

/// With a state seen free: taken while the token is still that one and nobody holds it, under
/// a new token. That includes a lease whose holder died (expired, never released).
pub async fn lease_unchanged_takes_a_free_lease_under_the_token_seen(store: Arc<dyn Store>) {
    let key = LeaseKey::trunk(customer("unchanged-free"), TWILIO, "trunkline-shared");
    let first = store
        .try_acquire_lease(&key, "instance-a", LONG)
        .await
        .unwrap()
        .expect("free");
    store.release_lease(&first).await.unwrap();
    let seen = store.peek_lease(&key).await.unwrap().expect("kept");
    assert!(!seen.held);

    let before = Utc::now();
    let lease = store
        .try_acquire_lease_unchanged(&key, "instance-b", LONG, Some(seen))
        .await
        .unwrap()
        .expect("unchanged since the peek");
    assert_eq!(lease.holder, "instance-b");
    assert_ne!(lease.token, seen.token);
    assert_expiry_near(lease.expires_at, before, LONG);
    assert_eq!(
        store
            .try_acquire_lease(&key, "instance-c", LONG)
            .await
            .unwrap(),
        None,
        "held by its taker"
    );
    assert!(store.renew_lease(&lease, LONG).await.unwrap().is_some());

    let short = LeaseKey::trunk(customer("unchanged-free"), TWILIO, "trunkline-other");
    let lost = store
        .try_acquire_lease(&short, "crashed", SHORT)
        .await
        .unwrap()
        .expect("free");
    tokio::time::sleep(PAST_SHORT).await;
    let seen = store.peek_lease(&short).await.unwrap().expect("kept");
    assert_eq!((seen.token, seen.held), (lost.token, false));
    let taken = store
        .try_acquire_lease_unchanged(&short, "instance-b", LONG, Some(seen))
        .await
        .unwrap()
        .expect("a dead holder's expired lease is free");
    assert_eq!(store.renew_lease(&lost, LONG).await.unwrap(), None);
    assert!(store.renew_lease(&taken, LONG).await.unwrap().is_some());
}

/// Refused when someone took the lease since the peek (released again or still holding it),
/// and for a state seen held; a plain `try_acquire_lease` still takes a free one.
pub async fn lease_unchanged_refuses_a_lease_held_or_changed_since(store: Arc<dyn Store>) {
    let key = LeaseKey::trunk(customer("unchanged-changed"), TWILIO, "trunkline-shared");
    let first = store
        .try_acquire_lease(&key, "instance-a", LONG)
        .await
        .unwrap()
        .expect("free");
    store.release_lease(&first).await.unwrap();
    let seen = store.peek_lease(&key).await.unwrap().expect("kept");

    // Taken and released by another holder since the peek.
    let other = store
        .try_acquire_lease(&key, "instance-b", LONG)
        .await
        .unwrap()
        .expect("free");
    store.release_lease(&other).await.unwrap();
    let unchanged = |seen: LeaseState| {
        let (store, key) = (Arc::clone(&store), key.clone());
        async move {
            store
                .try_acquire_lease_unchanged(&key, "instance-c", LONG, Some(seen))
                .await
                .unwrap()
        }
    };
    assert_eq!(unchanged(seen).await, None, "changed hands since the peek");
    assert!(!store.peek_lease(&key).await.unwrap().unwrap().held);

    // Held now.
    let seen = store.peek_lease(&key).await.unwrap().expect("kept");
    let holder = store
        .try_acquire_lease(&key, "instance-b", LONG)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(unchanged(seen).await, None, "held since the peek");
    // Seen held: its holder may have been at work after the peek, even once it is gone.
    let held = store.peek_lease(&key).await.unwrap().expect("held");
    assert!(held.held);
    assert_eq!(unchanged(held).await, None, "seen held");
    store.release_lease(&holder).await.unwrap();
    assert_eq!(unchanged(held).await, None, "seen held, released since");

    // Never refused silently to the plain way: a free lease is still taken.
    assert!(
        store
            .try_acquire_lease(&key, "instance-c", LONG)
            .await
            .unwrap()
            .is_some()
    );
}

/// Callers racing with the same state seen (none, then one free): exactly one takes it.
pub async fn lease_unchanged_concurrent_callers_have_one_winner(store: Arc<dyn Store>) {
    let key = LeaseKey::trunk(customer("unchanged-race"), TWILIO, "trunkline-shared");
    let round = |seen: Option<LeaseState>| {
        let store = Arc::clone(&store);
        let key = key.clone();
        async move {
            let results = race(RACERS, |i| {
                let (store, key) = (Arc::clone(&store), key.clone());
                async move {
                    store
                        .try_acquire_lease_unchanged(&key, &format!("racer-{i}"), LONG, seen)
                        .await
                }
            })
            .await;
            let winners: Vec<_> = results
                .into_iter()
                .filter_map(|r| r.expect("no racer fails"))
                .collect();
            assert_eq!(winners.len(), 1, "exactly one racer takes the lease");
            let winner = winners.into_iter().next().expect("one winner");
            assert!(store.renew_lease(&winner, LONG).await.unwrap().is_some());
            winner
        }
    };
    let first = round(None).await;
    store.release_lease(&first).await.unwrap();
    let seen = store.peek_lease(&key).await.unwrap().expect("kept");
    let second = round(Some(seen)).await;
    assert_ne!(second.token, first.token);
}

// ---------------------------------------------------------------------------------------
// Webhook events
// ---------------------------------------------------------------------------------------

pub async fn webhook_dedupe_sequential_and_last_event(store: Arc<dyn Store>) {
    let r = room("wh");
    assert_eq!(store.last_webhook_event(&r).await.unwrap(), None);

    let first = webhook_event(Some(&r), ts(1));
    assert!(store.record_webhook_event(&first).await.unwrap());
    assert!(!store.record_webhook_event(&first).await.unwrap());
    // The id alone is the dedupe key.
    let mut same_id = webhook_event(Some(&room("elsewhere")), ts(9));
    same_id.id = first.id.clone();
    "room_finished".clone_into(&mut same_id.kind);
    assert!(!store.record_webhook_event(&same_id).await.unwrap());
    assert_eq!(
        store.last_webhook_event(&r).await.unwrap(),
        Some(first.clone())
    );

    let later = webhook_event(Some(&r), ts(5));
    let earlier = webhook_event(Some(&r), ts(3));
    let roomless = webhook_event(None, ts(7));
    assert!(store.record_webhook_event(&later).await.unwrap());
    assert!(store.record_webhook_event(&earlier).await.unwrap());
    assert!(store.record_webhook_event(&roomless).await.unwrap());
    assert!(!store.record_webhook_event(&roomless).await.unwrap());

    assert_eq!(store.last_webhook_event(&r).await.unwrap(), Some(later));
    assert_eq!(
        store
            .last_webhook_event(&same_id.room_name.unwrap())
            .await
            .unwrap(),
        None
    );
}

pub async fn webhook_dedupe_concurrent_has_one_winner(store: Arc<dyn Store>) {
    let event = webhook_event(Some(&room("dupe")), now_micros());
    let results = race(RACERS, |_| {
        let store = Arc::clone(&store);
        let event = event.clone();
        async move { store.record_webhook_event(&event).await }
    })
    .await;
    let firsts = results
        .into_iter()
        .map(|r| r.expect("no racer fails"))
        .filter(|first| *first)
        .count();
    assert_eq!(firsts, 1, "exactly one delivery is the first");
    assert!(!store.record_webhook_event(&event).await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

pub async fn upsert_call_inserts_and_round_trips(store: Arc<dyn Store>) {
    let cust = customer("call");
    let full = full_call(&room("full"), &cust, ConnectionId::new(), ts(0));
    assert_eq!(store.upsert_call(&full).await.unwrap(), full);
    assert_eq!(store.get_call(full.id).await.unwrap(), Some(full.clone()));
    assert_eq!(
        store.get_call_by_room(&full.room_name).await.unwrap(),
        Some(full.clone())
    );

    let mut ended = bare_call(&room("bare"), ts(10));
    ended.status = CallStatus::Ended;
    ended.dispatch_status = DispatchStatus::ByRule;
    ended.dispatch_attempts = 3;
    ended.ended_at = Some(ts(70));
    assert_eq!(store.upsert_call(&ended).await.unwrap(), ended);
    assert_eq!(
        store.get_call_by_room(&ended.room_name).await.unwrap(),
        Some(ended.clone())
    );

    assert_eq!(store.get_call(CallId::new()).await.unwrap(), None);
    assert_eq!(store.get_call_by_room(&room("none")).await.unwrap(), None);
}

pub async fn upsert_call_merge_rules(store: Arc<dyn Store>) {
    let cust = customer("merge");
    let connection = ConnectionId::new();
    let r = room("merge");

    let mut first = bare_call(&r, ts(0));
    first.caller = Some(e164(50));
    let stored = store.upsert_call(&first).await.unwrap();
    assert_eq!(stored, first);

    // Missing fields are filled; present ones and the stored id and start stay.
    let mut update = full_call(&r, &cust, connection, ts(30));
    update.caller = Some(e164(51));
    update.status = CallStatus::Active;
    update.dispatch_status = DispatchStatus::ByRule;
    let merged = store.upsert_call(&update).await.unwrap();
    assert_eq!(merged.id, first.id, "the stored id wins");
    assert_eq!(merged.caller, Some(e164(50)), "a present field is kept");
    assert_eq!(merged.customer_id, Some(cust.clone()));
    assert_eq!(merged.connection_id, Some(connection));
    assert_eq!(merged.called, update.called);
    assert_eq!(merged.sip_call_id, update.sip_call_id);
    assert_eq!(merged.agent_name, update.agent_name);
    assert_eq!(merged.answered_at, update.answered_at);
    assert_eq!(merged.started_at, first.started_at);
    assert_eq!(merged.status, CallStatus::Active);
    assert_eq!(merged.dispatch_status, DispatchStatus::ByRule);
    assert_eq!(merged.updated_at, update.updated_at);
    assert_eq!(store.get_call(update.id).await.unwrap(), None);
    assert_eq!(
        store.get_call(first.id).await.unwrap(),
        Some(merged.clone())
    );

    // The status never goes backwards.
    let mut ringing = bare_call(&r, ts(40));
    ringing.status = CallStatus::Ringing;
    let after = store.upsert_call(&ringing).await.unwrap();
    assert_eq!(after.status, CallStatus::Active);
    assert_eq!(
        after.updated_at, ringing.updated_at,
        "updated_at moves forward"
    );

    let mut ended = bare_call(&r, ts(50));
    ended.status = CallStatus::Ended;
    ended.ended_at = Some(ts(50));
    let after = store.upsert_call(&ended).await.unwrap();
    assert_eq!(after.status, CallStatus::Ended);
    assert_eq!(after.ended_at, Some(ts(50)));

    let mut active_again = bare_call(&r, ts(60));
    active_again.status = CallStatus::Active;
    active_again.updated_at = ts(5);
    let after = store.upsert_call(&active_again).await.unwrap();
    assert_eq!(after.status, CallStatus::Ended);
    assert_eq!(
        after.updated_at,
        ts(50),
        "an older update does not move updated_at back"
    );

    // Unrouted stays unrouted, and a routed call does not become unrouted.
    let unrouted_room = room("unrouted");
    let mut unrouted = bare_call(&unrouted_room, ts(0));
    unrouted.status = CallStatus::Unrouted;
    store.upsert_call(&unrouted).await.unwrap();
    for status in [CallStatus::Ringing, CallStatus::Active, CallStatus::Ended] {
        let mut next = bare_call(&unrouted_room, ts(1));
        next.status = status;
        assert_eq!(
            store.upsert_call(&next).await.unwrap().status,
            CallStatus::Unrouted
        );
    }
    let mut late_unrouted = bare_call(&r, ts(70));
    late_unrouted.status = CallStatus::Unrouted;
    assert_eq!(
        store.upsert_call(&late_unrouted).await.unwrap().status,
        CallStatus::Ended
    );
}

pub async fn upsert_call_concurrent_merges_into_one_row(store: Arc<dyn Store>) {
    let cust = customer("concurrent");
    let connection = ConnectionId::new();
    let r = room("concurrent");
    let results = race(16, |i| {
        let store = Arc::clone(&store);
        let mut call = bare_call(&r, ts(0));
        // Each racer knows a different part of the call.
        match i % 4 {
            0 => call.customer_id = Some(cust.clone()),
            1 => call.connection_id = Some(connection),
            2 => call.agent_name = Some("agent".to_owned()),
            _ => call.status = CallStatus::Active,
        }
        async move { store.upsert_call(&call).await }
    })
    .await;
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("no racer fails"))
        .collect();
    let id = results[0].id;
    assert!(results.iter().all(|c| c.id == id), "one row, one id");

    let stored = store.get_call_by_room(&r).await.unwrap().expect("stored");
    assert_eq!(stored.id, id);
    assert_eq!(stored.customer_id, Some(cust));
    assert_eq!(stored.connection_id, Some(connection));
    assert_eq!(stored.agent_name.as_deref(), Some("agent"));
    assert_eq!(stored.status, CallStatus::Active);
}

pub async fn record_join_records_claims_and_recognises_duplicates(store: Arc<dyn Store>) {
    let r = room("join");
    let mut call = bare_call(&r, ts(0));
    call.dispatch_status = DispatchStatus::Failed;
    let event = webhook_event(Some(&r), ts(0));
    let claim = ClaimRequest {
        claimant: "worker-a".to_owned(),
        ttl: LONG,
    };

    let JoinRecorded::Recorded {
        call: stored,
        claim: won,
    } = store
        .record_join(&event, &call, Some(claim.clone()))
        .await
        .unwrap()
    else {
        panic!("the first delivery records the call");
    };
    assert_eq!(stored.id, call.id);
    assert_eq!(won, Some(DispatchClaim::Won { attempt: 1 }));
    assert!(
        !store.record_webhook_event(&event).await.unwrap(),
        "event remembered"
    );
    let now = store.get_call_by_room(&r).await.unwrap().unwrap();
    assert_eq!(now.dispatch_status, DispatchStatus::Claimed);
    assert_eq!(now.dispatch_attempts, 1);

    // The same event again: nothing changes, not even the claim.
    assert_eq!(
        store
            .record_join(&event, &call, Some(claim.clone()))
            .await
            .unwrap(),
        JoinRecorded::Duplicate
    );
    assert_eq!(store.get_call_by_room(&r).await.unwrap().unwrap(), now);

    // Another event of the same call merges, and its claim finds the first one's.
    let other = webhook_event(Some(&r), ts(1));
    let mut later = bare_call(&r, ts(1));
    later.caller = Some(e164(7));
    let JoinRecorded::Recorded {
        call: merged,
        claim,
    } = store
        .record_join(&other, &later, Some(claim.clone()))
        .await
        .unwrap()
    else {
        panic!("a new event is recorded");
    };
    assert_eq!(merged.id, call.id, "the stored id wins");
    assert_eq!(merged.caller, Some(e164(7)), "a missing field is filled");
    assert_eq!(claim, Some(DispatchClaim::HeldByOther));
    assert_eq!(
        (merged.dispatch_status, merged.dispatch_attempts),
        (DispatchStatus::Claimed, 1),
        "the answer is the call as the claim left it"
    );

    // Without a claim request nothing is claimed.
    let r2 = room("join-no-claim");
    let JoinRecorded::Recorded { claim, .. } = store
        .record_join(
            &webhook_event(Some(&r2), ts(2)),
            &bare_call(&r2, ts(2)),
            None,
        )
        .await
        .unwrap()
    else {
        panic!("recorded");
    };
    assert_eq!(claim, None);
    let stored = store.get_call_by_room(&r2).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::None);
    assert_eq!(stored.dispatch_attempts, 0);

    // An event remembered without its call (the first delivery died after recording the
    // event): a redelivery records the call.
    let r3 = room("join-event-only");
    let event3 = webhook_event(Some(&r3), ts(3));
    assert!(store.record_webhook_event(&event3).await.unwrap());
    let outcome = store
        .record_join(&event3, &bare_call(&r3, ts(3)), None)
        .await
        .unwrap();
    assert!(
        matches!(outcome, JoinRecorded::Recorded { .. }),
        "{outcome:?}"
    );
    assert!(store.get_call_by_room(&r3).await.unwrap().is_some());
}

pub async fn record_join_concurrent_deliveries_have_one_claim_winner(store: Arc<dyn Store>) {
    let r = room("join-race");
    let mut call = bare_call(&r, ts(0));
    call.dispatch_status = DispatchStatus::Failed;
    let event = webhook_event(Some(&r), ts(0));
    let results = race(RACERS, |i| {
        let (store, event, call) = (Arc::clone(&store), event.clone(), call.clone());
        async move {
            let claim = ClaimRequest {
                claimant: format!("worker-{i}"),
                ttl: LONG,
            };
            store.record_join(&event, &call, Some(claim)).await
        }
    })
    .await;
    let outcomes: Vec<JoinRecorded> = results
        .into_iter()
        .map(|r| r.expect("no racer fails"))
        .collect();
    let won = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                JoinRecorded::Recorded {
                    claim: Some(DispatchClaim::Won { attempt: 1 }),
                    ..
                }
            )
        })
        .count();
    assert_eq!(won, 1, "exactly one claim is won: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| match o {
            JoinRecorded::Duplicate => true,
            JoinRecorded::Recorded { call: c, claim } => {
                c.id == call.id
                    && matches!(
                        claim,
                        Some(DispatchClaim::Won { .. } | DispatchClaim::HeldByOther)
                    )
            }
        }),
        "{outcomes:?}"
    );
    let stored = store.get_call_by_room(&r).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_attempts, 1);
}

/// Copies of one event delivered at once (LiveKit retries, several instances): one records
/// the call and claims; every other copy is a duplicate, even one that raced past the event
/// insert while the first was committing. It claims nothing, so it costs nothing more.
pub async fn record_join_racing_copies_of_one_event_are_duplicates(store: Arc<dyn Store>) {
    for round in 0..4 {
        let r = room(&format!("join-copies-{round}"));
        let mut call = bare_call(&r, ts(0));
        call.dispatch_status = DispatchStatus::Failed;
        let event = webhook_event(Some(&r), ts(0));
        let results = race(RACERS, |i| {
            let (store, event, call) = (Arc::clone(&store), event.clone(), call.clone());
            async move {
                let claim = ClaimRequest {
                    claimant: format!("worker-{i}"),
                    ttl: LONG,
                };
                store.record_join(&event, &call, Some(claim)).await
            }
        })
        .await;
        let outcomes: Vec<JoinRecorded> = results
            .into_iter()
            .map(|r| r.expect("no racer fails"))
            .collect();
        let recorded: Vec<&JoinRecorded> = outcomes
            .iter()
            .filter(|o| !matches!(o, JoinRecorded::Duplicate))
            .collect();
        assert_eq!(recorded.len(), 1, "one copy records: {outcomes:?}");
        assert!(
            matches!(
                recorded[0],
                JoinRecorded::Recorded {
                    claim: Some(DispatchClaim::Won { attempt: 1 }),
                    ..
                }
            ),
            "{recorded:?}"
        );
        let stored = store.get_call_by_room(&r).await.unwrap().unwrap();
        assert_eq!(stored.dispatch_attempts, 1);
    }
}

pub async fn end_call_first_end_time_wins(store: Arc<dyn Store>) {
    assert_eq!(store.end_call(&room("ghost"), ts(1)).await.unwrap(), None);

    let cust = customer("end");
    let call = full_call(&room("end"), &cust, ConnectionId::new(), ts(0));
    store.upsert_call(&call).await.unwrap();
    let ended = store
        .end_call(&call.room_name, ts(90))
        .await
        .unwrap()
        .expect("the call exists");
    assert_eq!(ended.id, call.id);
    assert_eq!(ended.status, CallStatus::Ended);
    assert_eq!(ended.ended_at, Some(ts(90)));
    assert_eq!(ended.customer_id, call.customer_id);
    assert!(ended.updated_at >= call.updated_at);

    let again = store
        .end_call(&call.room_name, ts(120))
        .await
        .unwrap()
        .expect("still exists");
    assert_eq!(again.ended_at, Some(ts(90)), "the first end time wins");
    assert_eq!(
        store.get_call(call.id).await.unwrap().unwrap().ended_at,
        Some(ts(90))
    );

    let mut unrouted = bare_call(&room("end-unrouted"), ts(0));
    unrouted.status = CallStatus::Unrouted;
    store.upsert_call(&unrouted).await.unwrap();
    let ended = store
        .end_call(&unrouted.room_name, ts(15))
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(ended.status, CallStatus::Unrouted, "unrouted stays");
    assert_eq!(ended.ended_at, Some(ts(15)));
}

pub async fn recent_calls_newest_first_per_connection(store: Arc<dyn Store>) {
    let cust = customer("recent");
    let (x, y) = (ConnectionId::new(), ConnectionId::new());
    let c1 = full_call(&room("x1"), &cust, x, ts(10));
    let c2 = full_call(&room("x2"), &cust, x, ts(30));
    let c3 = full_call(&room("x3"), &cust, x, ts(20));
    let c4 = full_call(&room("y1"), &cust, y, ts(40));
    for c in [&c1, &c2, &c3, &c4] {
        store.upsert_call(c).await.unwrap();
    }
    assert_eq!(
        store.recent_calls(x, 10).await.unwrap(),
        vec![c2.clone(), c3.clone(), c1]
    );
    assert_eq!(store.recent_calls(x, 2).await.unwrap(), vec![c2, c3]);
    assert_eq!(store.recent_calls(y, 10).await.unwrap(), vec![c4]);
    assert!(
        store
            .recent_calls(ConnectionId::new(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.recent_calls(x, 0).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Agent dispatch claims
// ---------------------------------------------------------------------------------------

pub async fn claim_dispatch_concurrent_has_one_winner(store: Arc<dyn Store>) {
    let call = bare_call(&room("claim-race"), ts(0));
    store.upsert_call(&call).await.unwrap();
    let results = race(RACERS, |i| {
        let store = Arc::clone(&store);
        let r = call.room_name.clone();
        async move { store.claim_dispatch(&r, &format!("worker-{i}"), LONG).await }
    })
    .await;
    let outcomes: Vec<DispatchClaim> = results
        .into_iter()
        .map(|r| r.expect("no racer fails"))
        .collect();
    let won: Vec<_> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, DispatchClaim::Won { .. }))
        .collect();
    assert_eq!(won.len(), 1, "exactly one winner: {outcomes:?}");
    assert_eq!(won[0].1, &DispatchClaim::Won { attempt: 1 });
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == DispatchClaim::HeldByOther)
            .count(),
        RACERS - 1
    );

    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::Claimed);
    assert_eq!(stored.dispatch_attempts, 1);

    // The winner is the one who holds the claim.
    let winner = format!("worker-{}", won[0].0);
    let loser = format!("worker-{}", (won[0].0 + 1) % RACERS);
    let id = dispatch_id();
    assert!(
        !store
            .complete_dispatch(&call.room_name, &loser, &id)
            .await
            .unwrap()
    );
    assert!(
        store
            .complete_dispatch(&call.room_name, &winner, &id)
            .await
            .unwrap()
    );
}

pub async fn claim_dispatch_after_complete_is_already_dispatched(store: Arc<dyn Store>) {
    assert_eq!(
        store
            .claim_dispatch(&room("nothing"), "w1", LONG)
            .await
            .unwrap(),
        DispatchClaim::NoSuchCall
    );

    let call = bare_call(&room("done"), ts(0));
    store.upsert_call(&call).await.unwrap();
    let r = &call.room_name;
    assert_eq!(
        store.claim_dispatch(r, "w1", LONG).await.unwrap(),
        DispatchClaim::Won { attempt: 1 }
    );
    let id = dispatch_id();
    assert!(store.complete_dispatch(r, "w1", &id).await.unwrap());

    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::Dispatched);
    assert_eq!(stored.dispatch_id, Some(id.clone()));
    assert_eq!(stored.dispatch_attempts, 1);

    assert_eq!(
        store.claim_dispatch(r, "w2", LONG).await.unwrap(),
        DispatchClaim::AlreadyDispatched {
            dispatch_id: id.clone()
        }
    );
    // A completed dispatch is final: neither a second completion nor a failure changes it.
    assert!(
        !store
            .complete_dispatch(r, "w1", &dispatch_id())
            .await
            .unwrap()
    );
    assert!(!store.fail_dispatch(r, "w1", false).await.unwrap());
    let after = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(after.dispatch_status, DispatchStatus::Dispatched);
    assert_eq!(after.dispatch_id, Some(id));
    assert_eq!(after.dispatch_attempts, 1);
}

pub async fn claim_dispatch_expired_claim_can_be_won_again(store: Arc<dyn Store>) {
    let call = bare_call(&room("expired"), ts(0));
    store.upsert_call(&call).await.unwrap();
    let r = &call.room_name;
    assert_eq!(
        store.claim_dispatch(r, "crashed", SHORT).await.unwrap(),
        DispatchClaim::Won { attempt: 1 }
    );
    assert_eq!(
        store.claim_dispatch(r, "w2", LONG).await.unwrap(),
        DispatchClaim::HeldByOther
    );
    tokio::time::sleep(PAST_SHORT).await;

    assert_eq!(
        store.claim_dispatch(r, "w2", LONG).await.unwrap(),
        DispatchClaim::Won { attempt: 2 }
    );
    assert_eq!(
        store.claim_dispatch(r, "w3", LONG).await.unwrap(),
        DispatchClaim::HeldByOther
    );
    // The crashed claimant lost its claim.
    assert!(
        !store
            .complete_dispatch(r, "crashed", &dispatch_id())
            .await
            .unwrap()
    );
    assert!(!store.fail_dispatch(r, "crashed", false).await.unwrap());
    let id = dispatch_id();
    assert!(store.complete_dispatch(r, "w2", &id).await.unwrap());
    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_attempts, 2);
    assert_eq!(stored.dispatch_id, Some(id));
}

pub async fn complete_dispatch_by_a_non_holder_is_refused(store: Arc<dyn Store>) {
    let call = bare_call(&room("holder"), ts(0));
    store.upsert_call(&call).await.unwrap();
    let r = &call.room_name;

    // Nobody holds a claim yet.
    assert!(
        !store
            .complete_dispatch(r, "w1", &dispatch_id())
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_dispatch(&room("ghost"), "w1", &dispatch_id())
            .await
            .unwrap()
    );

    assert_eq!(
        store.claim_dispatch(r, "w1", LONG).await.unwrap(),
        DispatchClaim::Won { attempt: 1 }
    );
    assert!(
        !store
            .complete_dispatch(r, "w2", &dispatch_id())
            .await
            .unwrap()
    );
    assert!(!store.fail_dispatch(r, "w2", true).await.unwrap());
    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::Claimed);
    assert_eq!(stored.dispatch_id, None);

    let id = dispatch_id();
    assert!(store.complete_dispatch(r, "w1", &id).await.unwrap());
    assert_eq!(
        store.get_call(call.id).await.unwrap().unwrap().dispatch_id,
        Some(id)
    );
}

pub async fn fail_dispatch_then_reclaim(store: Arc<dyn Store>) {
    let call = bare_call(&room("retry"), ts(0));
    store.upsert_call(&call).await.unwrap();
    let r = &call.room_name;

    assert_eq!(
        store.claim_dispatch(r, "w1", LONG).await.unwrap(),
        DispatchClaim::Won { attempt: 1 }
    );
    assert!(store.fail_dispatch(r, "w1", false).await.unwrap());
    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::Failed);
    assert_eq!(stored.dispatch_attempts, 1);
    // The claim was dropped: failing again is refused.
    assert!(!store.fail_dispatch(r, "w1", false).await.unwrap());

    assert_eq!(
        store.claim_dispatch(r, "w2", LONG).await.unwrap(),
        DispatchClaim::Won { attempt: 2 }
    );
    assert!(store.fail_dispatch(r, "w2", true).await.unwrap());
    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(stored.dispatch_status, DispatchStatus::GaveUp);
    assert_eq!(stored.dispatch_attempts, 2);

    // Given up is not claimed again (a human looks at it).
    assert_eq!(
        store.claim_dispatch(r, "w3", LONG).await.unwrap(),
        DispatchClaim::HeldByOther
    );
    assert_eq!(
        store
            .get_call(call.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_attempts,
        2
    );
}

pub async fn dispatches_due_lists_failed_and_expired_claims_oldest_first(store: Arc<dyn Store>) {
    assert!(store.dispatches_due(10).await.unwrap().is_empty());

    let mk = |tag: &str, started: i64| bare_call(&room(tag), ts(started));
    let failed_old = mk("failed-old", 0);
    let failed = mk("failed", 10);
    let live_claim = mk("live", 20);
    let expired_claim = mk("expired", 30);
    let dispatched = mk("dispatched", 5);
    let untouched = mk("untouched", 1);
    let gave_up = mk("gave-up", 2);
    let by_rule = {
        let mut c = mk("by-rule", 3);
        c.dispatch_status = DispatchStatus::ByRule;
        c
    };
    for c in [
        &failed_old,
        &failed,
        &live_claim,
        &expired_claim,
        &dispatched,
        &untouched,
        &gave_up,
        &by_rule,
    ] {
        store.upsert_call(c).await.unwrap();
    }
    for (c, gave) in [(&failed_old, false), (&failed, false), (&gave_up, true)] {
        store.claim_dispatch(&c.room_name, "w", LONG).await.unwrap();
        assert!(store.fail_dispatch(&c.room_name, "w", gave).await.unwrap());
    }
    store
        .claim_dispatch(&live_claim.room_name, "w", LONG)
        .await
        .unwrap();
    store
        .claim_dispatch(&dispatched.room_name, "w", LONG)
        .await
        .unwrap();
    assert!(
        store
            .complete_dispatch(&dispatched.room_name, "w", &dispatch_id())
            .await
            .unwrap()
    );
    store
        .claim_dispatch(&expired_claim.room_name, "w", SHORT)
        .await
        .unwrap();
    tokio::time::sleep(PAST_SHORT).await;

    let due: Vec<CallId> = store
        .dispatches_due(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(due, vec![failed_old.id, failed.id, expired_claim.id]);

    let first_two: Vec<CallId> = store
        .dispatches_due(2)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(first_two, vec![failed_old.id, failed.id]);

    // Picking one up removes it from the list until its claim expires.
    assert_eq!(
        store
            .claim_dispatch(&failed_old.room_name, "retrier", LONG)
            .await
            .unwrap(),
        DispatchClaim::Won { attempt: 2 }
    );
    let due: Vec<CallId> = store
        .dispatches_due(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(due, vec![failed.id, expired_claim.id]);
}

/// A call that ended has nothing left to dispatch: its end cancels a dispatch that is due
/// or being attempted, and leaves a settled one as it was.
pub async fn end_call_cancels_a_pending_dispatch(store: Arc<dyn Store>) {
    let mk = |tag: &str, dispatch: DispatchStatus| {
        let mut c = bare_call(&room(tag), ts(0));
        c.status = CallStatus::Active;
        c.dispatch_status = dispatch;
        c
    };
    // Due without an attempt (a join recorded it, nobody claimed it yet).
    let due = mk("end-due", DispatchStatus::Failed);
    // Due after a failed attempt.
    let failed = mk("end-failed", DispatchStatus::None);
    // Being dispatched by a worker: one that succeeds, one that fails after the end.
    let held = mk("end-held", DispatchStatus::None);
    let held_fails = mk("end-held-fails", DispatchStatus::None);
    let dispatched = mk("end-dispatched", DispatchStatus::None);
    let gave_up = mk("end-gave-up", DispatchStatus::None);
    let by_rule = mk("end-by-rule", DispatchStatus::ByRule);
    let nothing = mk("end-nothing", DispatchStatus::None);
    for c in [
        &due,
        &failed,
        &held,
        &held_fails,
        &dispatched,
        &gave_up,
        &by_rule,
        &nothing,
    ] {
        store.upsert_call(c).await.unwrap();
    }
    for (c, gave) in [(&failed, false), (&gave_up, true)] {
        store.claim_dispatch(&c.room_name, "w", LONG).await.unwrap();
        assert!(store.fail_dispatch(&c.room_name, "w", gave).await.unwrap());
    }
    store
        .claim_dispatch(&dispatched.room_name, "w", LONG)
        .await
        .unwrap();
    let dispatch = dispatch_id();
    assert!(
        store
            .complete_dispatch(&dispatched.room_name, "w", &dispatch)
            .await
            .unwrap()
    );
    store
        .claim_dispatch(&held.room_name, "holder", LONG)
        .await
        .unwrap();
    store
        .claim_dispatch(&held_fails.room_name, "holder", LONG)
        .await
        .unwrap();

    for (c, dispatch, attempts) in [
        (&due, DispatchStatus::Cancelled, 0),
        (&failed, DispatchStatus::Cancelled, 1),
        (&held, DispatchStatus::Cancelled, 1),
        (&held_fails, DispatchStatus::Cancelled, 1),
        (&dispatched, DispatchStatus::Dispatched, 1),
        (&gave_up, DispatchStatus::GaveUp, 1),
        (&by_rule, DispatchStatus::ByRule, 0),
        (&nothing, DispatchStatus::None, 0),
    ] {
        let ended = store
            .end_call(&c.room_name, ts(60))
            .await
            .unwrap()
            .expect("the call exists");
        let tag = c.room_name.as_str();
        assert_eq!(ended.status, CallStatus::Ended, "{tag}");
        assert_eq!(
            (ended.dispatch_status, ended.dispatch_attempts),
            (dispatch, attempts),
            "{tag}"
        );
        assert_eq!(
            store.get_call(c.id).await.unwrap().unwrap().dispatch_status,
            dispatch,
            "{tag}: as stored"
        );
    }
    assert_eq!(
        store
            .get_call(dispatched.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_id,
        Some(dispatch)
    );
    assert!(store.dispatches_due(10).await.unwrap().is_empty());

    // The worker that was dispatching when the call ended records what it did (the agent
    // may be in the room by now); its failure changes nothing: nothing more is attempted.
    let id = dispatch_id();
    assert!(
        store
            .complete_dispatch(&held.room_name, "holder", &id)
            .await
            .unwrap()
    );
    let stored = store.get_call(held.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.dispatch_status, stored.dispatch_id),
        (DispatchStatus::Dispatched, Some(id))
    );
    assert!(
        !store
            .fail_dispatch(&held_fails.room_name, "holder", false)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_call(held_fails.id)
            .await
            .unwrap()
            .unwrap()
            .dispatch_status,
        DispatchStatus::Cancelled
    );
    // Nobody else can complete a cancelled dispatch.
    assert!(
        !store
            .complete_dispatch(&due.room_name, "holder", &dispatch_id())
            .await
            .unwrap()
    );
    assert!(store.dispatches_due(10).await.unwrap().is_empty());
}

/// The claim itself refuses a call that ended (or whose room LiveKit said is finished),
/// whatever its dispatch status says, and cancels the dispatch: a retrier that listed the
/// call before its end (on any instance) cannot dispatch it. An ended call is never listed
/// as due.
pub async fn claim_dispatch_refuses_an_ended_call(store: Arc<dyn Store>) {
    // Ended rows whose dispatch still reads as due (rows written before cancelling
    // existed).
    let mut ended = Vec::new();
    for (tag, dispatch) in [
        ("ended-none", DispatchStatus::None),
        ("ended-failed", DispatchStatus::Failed),
        ("ended-claimed", DispatchStatus::Claimed),
    ] {
        let mut c = bare_call(&room(tag), ts(0));
        c.status = CallStatus::Ended;
        c.dispatch_status = dispatch;
        c.ended_at = Some(ts(30));
        store.upsert_call(&c).await.unwrap();
        ended.push(c);
    }
    assert!(store.dispatches_due(10).await.unwrap().is_empty());
    for c in &ended {
        let tag = c.room_name.as_str();
        assert_eq!(
            store
                .claim_dispatch(&c.room_name, "retrier", LONG)
                .await
                .unwrap(),
            DispatchClaim::HeldByOther,
            "{tag}"
        );
        let stored = store.get_call(c.id).await.unwrap().unwrap();
        assert_eq!(
            (stored.dispatch_status, stored.dispatch_attempts),
            (DispatchStatus::Cancelled, 0),
            "{tag}"
        );
    }

    // A failed dispatch, then the hang-up: the retrier finds nothing due, and its claim
    // of the call it listed before the hang-up is refused.
    let mut call = bare_call(&room("hung-up"), ts(0));
    call.status = CallStatus::Active;
    store.upsert_call(&call).await.unwrap();
    store
        .claim_dispatch(&call.room_name, "w", LONG)
        .await
        .unwrap();
    assert!(
        store
            .fail_dispatch(&call.room_name, "w", false)
            .await
            .unwrap()
    );
    let listed = store.dispatches_due(10).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [call.id]);
    store.end_call(&call.room_name, ts(40)).await.unwrap();
    assert!(store.dispatches_due(10).await.unwrap().is_empty());
    assert_eq!(
        store
            .claim_dispatch(&call.room_name, "retrier", LONG)
            .await
            .unwrap(),
        DispatchClaim::HeldByOther
    );
    let stored = store.get_call(call.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.dispatch_status, stored.dispatch_attempts),
        (DispatchStatus::Cancelled, 1)
    );

    // The join of a call whose end came first: recorded, its claim refused, and the
    // dispatch stays cancelled without an attempt.
    let r = room("late-join");
    let mut left = bare_call(&r, ts(0));
    left.status = CallStatus::Active;
    left.dispatch_status = DispatchStatus::Failed;
    store.upsert_call(&left).await.unwrap();
    store.end_call(&r, ts(5)).await.unwrap();
    let JoinRecorded::Recorded {
        call: joined,
        claim,
    } = store
        .record_join(
            &webhook_event(Some(&r), ts(6)),
            &left,
            Some(ClaimRequest {
                claimant: "joiner".to_owned(),
                ttl: LONG,
            }),
        )
        .await
        .unwrap()
    else {
        panic!("a new event is recorded");
    };
    assert_eq!(claim, Some(DispatchClaim::HeldByOther));
    assert_eq!(joined.status, CallStatus::Ended);
    assert_eq!(
        joined.dispatch_status,
        DispatchStatus::Cancelled,
        "the answer shows the refusal's cancellation without another read"
    );
    let stored = store.get_call_by_room(&r).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.dispatch_status,
            stored.dispatch_attempts
        ),
        (CallStatus::Ended, DispatchStatus::Cancelled, 0)
    );
    assert!(store.dispatches_due(10).await.unwrap().is_empty());

    // `room_finished` came before anything else of the call: no call to end then, but the
    // event is remembered, and the join's claim finds it: refused, the call ended.
    let r = room("finished-first");
    let finished = WebhookEventRecord {
        kind: "room_finished".to_owned(),
        ..webhook_event(Some(&r), ts(8))
    };
    assert!(store.record_webhook_event(&finished).await.unwrap());
    let mut joining = bare_call(&r, ts(7));
    joining.status = CallStatus::Active;
    joining.dispatch_status = DispatchStatus::Failed;
    let JoinRecorded::Recorded { claim, .. } = store
        .record_join(
            &webhook_event(Some(&r), ts(9)),
            &joining,
            Some(ClaimRequest {
                claimant: "joiner".to_owned(),
                ttl: LONG,
            }),
        )
        .await
        .unwrap()
    else {
        panic!("a new event is recorded");
    };
    assert_eq!(claim, Some(DispatchClaim::HeldByOther));
    let stored = store.get_call_by_room(&r).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.status,
            stored.dispatch_status,
            stored.dispatch_attempts
        ),
        (CallStatus::Ended, DispatchStatus::Cancelled, 0)
    );
    assert_eq!(stored.ended_at, Some(ts(8)), "ended when the room finished");
    assert!(store.dispatches_due(10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------

pub async fn audit_append_and_list_newest_first_per_customer(store: Arc<dyn Store>) {
    let (a, b) = (customer("audit-a"), customer("audit-b"));
    let e1 = audit_event(&a, ts(1));
    let e2 = audit_event(&a, ts(3));
    let mut e3 = audit_event(&a, ts(2));
    e3.request_id = None;
    e3.details = serde_json::json!({});
    let eb = audit_event(&b, ts(4));
    for e in [&e1, &e2, &e3, &eb] {
        store.append_audit(e).await.unwrap();
    }
    assert_eq!(
        store.list_audit(&a, 10).await.unwrap(),
        vec![e2.clone(), e3.clone(), e1]
    );
    assert_eq!(store.list_audit(&a, 2).await.unwrap(), vec![e2, e3]);
    assert_eq!(store.list_audit(&b, 10).await.unwrap(), vec![eb]);
    assert!(
        store
            .list_audit(&customer("none"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------

/// Takes an unmigrated store.
pub async fn check_ready_reports_pending_migrations(store: Arc<dyn Store>, migrate: MigrateFn) {
    let err = store.check_ready().await.unwrap_err();
    assert!(matches!(err, StoreError::NotMigrated(_)), "{err:?}");

    let applied = migrate().await.unwrap();
    assert!(
        !applied.is_empty(),
        "a fresh database has migrations to apply"
    );
    store.check_ready().await.unwrap();

    assert!(
        migrate().await.unwrap().is_empty(),
        "migrating again applies nothing"
    );
    store.check_ready().await.unwrap();
    // And the schema is usable.
    let cust = customer("ready");
    store.put_integration(&integration(&cust)).await.unwrap();
    assert!(
        store
            .get_integration(&cust, TWILIO)
            .await
            .unwrap()
            .is_some()
    );
}

/// Key rotation's walk: every sealed secret of every kind, in pages, each once and with the
/// context it was sealed with; and its compare-and-swap, which keeps a newer value.
pub async fn sealed_secrets_walk_in_id_order_and_replace_only_what_was_read(store: Arc<dyn Store>) {
    use trunkline_core::model::SealContext;
    use trunkline_core::ports::{OutboundRoute, SealedKind, SealedRow, VoiceBinding};

    let ctx = |i: &trunkline_core::model::Integration| SealContext {
        customer_id: i.customer_id.clone(),
        integration_id: i.id,
        provider: i.provider,
    };
    let mut integrations = Vec::new();
    for n in 0..5 {
        let mut i = integration(&customer(&format!("rot{n}")));
        i.sealed_secret = SealedSecret(vec![1, 2, n]);
        store.put_integration(&i).await.unwrap();
        integrations.push(i);
    }
    let mut t = telnyx_integration(&customer("rot0"));
    t.sealed_secret = SealedSecret(vec![9]);
    store.put_integration(&t).await.unwrap();
    integrations.push(t);
    // A webhook secret, an outbound route and a voice-URL binding of rot1's.
    let owner = integrations[1].clone();
    store
        .put_webhook_secret(
            &owner.customer_id,
            owner.provider,
            owner.id,
            Some(SealedSecret(vec![3, 1])),
        )
        .await
        .unwrap();
    let route = OutboundRoute {
        customer_id: owner.customer_id.clone(),
        provider: owner.provider,
        route_id: crate::fixtures::route_id(),
        termination_host: None,
        sip_username: "tl0123456789".to_owned(),
        sealed_password: SealedSecret(vec![3, 2]),
        livekit_trunk_id: None,
        created_at: now_micros(),
        updated_at: now_micros(),
    };
    store.put_outbound_route(&route).await.unwrap();
    let mut conn = bare_connection(&owner.customer_id, e164(7));
    conn.integration_id = owner.id;
    store.save_connection(&conn).await.unwrap();
    store
        .save_voice_binding(&VoiceBinding {
            connection_id: conn.id,
            voice_url: "https://tl.example.com/voice".to_owned(),
            sip_username: "tlvoice".to_owned(),
            sealed_sip_password: SealedSecret(vec![3, 3]),
            created_at: now_micros(),
            updated_at: now_micros(),
        })
        .await
        .unwrap();

    // Pages of two, each from the last key of the one before: all, once, in order.
    let walk = async |kind: SealedKind| {
        let mut seen: Vec<SealedRow> = Vec::new();
        let mut after = None;
        loop {
            let page = store.sealed_after(kind, after.clone(), 2).await.unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            seen.extend(page);
        }
        assert!(
            store
                .sealed_after(kind, after, 10)
                .await
                .unwrap()
                .is_empty()
        );
        seen
    };
    let mut want: Vec<(Option<SealContext>, SealedSecret)> = integrations
        .iter()
        .map(|i| (Some(ctx(i)), i.sealed_secret.clone()))
        .collect();
    let creds = walk(SealedKind::Credentials).await;
    assert!(creds.windows(2).all(|w| w[0].key < w[1].key), "{creds:?}");
    let mut got: Vec<_> = creds
        .iter()
        .map(|r| (r.context.clone(), r.sealed.clone()))
        .collect();
    want.sort_by(|a, b| a.1.0.cmp(&b.1.0));
    got.sort_by(|a, b| a.1.0.cmp(&b.1.0));
    assert_eq!(got, want);
    for (kind, sealed) in [
        (SealedKind::WebhookSecret, SealedSecret(vec![3, 1])),
        (SealedKind::OutboundPassword, SealedSecret(vec![3, 2])),
        (SealedKind::VoiceSipPassword, SealedSecret(vec![3, 3])),
    ] {
        let rows = walk(kind).await;
        assert_eq!(rows.len(), 1, "{kind:?}: {rows:?}");
        assert_eq!(rows[0].context, Some(ctx(&owner)), "{kind:?}");
        assert_eq!(rows[0].sealed, sealed, "{kind:?}");
        // Compare-and-swap: the value read is replaced; a stale one is not.
        let new = SealedSecret(vec![7, 7, 7]);
        assert!(
            store
                .replace_sealed(kind, &rows[0].key, &sealed, &new)
                .await
                .unwrap(),
            "{kind:?}"
        );
        assert!(
            !store
                .replace_sealed(kind, &rows[0].key, &sealed, &SealedSecret(vec![8]))
                .await
                .unwrap(),
            "{kind:?}: a stale value replaced the newer one"
        );
        assert_eq!(walk(kind).await[0].sealed, new, "{kind:?}");
    }
    // Credentials: the value read is replaced, `updated_at` kept; a stale one is not.
    let target = creds[0].clone();
    let new = SealedSecret(vec![7, 7, 7]);
    assert!(
        store
            .replace_sealed(SealedKind::Credentials, &target.key, &target.sealed, &new)
            .await
            .unwrap()
    );
    let again = store
        .replace_sealed(
            SealedKind::Credentials,
            &target.key,
            &target.sealed,
            &SealedSecret(vec![8]),
        )
        .await
        .unwrap();
    assert!(!again, "a stale value replaced the newer one");
    let ctx0 = target.context.clone().unwrap();
    let before = integrations
        .iter()
        .find(|i| i.id == ctx0.integration_id)
        .unwrap();
    let read = store
        .get_integration(&before.customer_id, before.provider)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.sealed_secret, new);
    assert_eq!(read.updated_at, before.updated_at);
    // Nothing else changed.
    for other in integrations.iter().filter(|i| i.id != before.id) {
        let read = store
            .get_integration(&other.customer_id, other.provider)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&read, other);
    }
    // A secret that is gone is not replaced.
    assert!(
        !store
            .replace_sealed(
                SealedKind::Credentials,
                &IntegrationId::new().to_string(),
                &new,
                &SealedSecret(vec![1])
            )
            .await
            .unwrap()
    );
}
