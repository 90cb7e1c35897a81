use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use super::fakes::{FakeCarrier, FakeStore, FakeVault, account};
use super::*;
use crate::ids::{CarrierNumberId, CredentialKeyId};
use crate::model::{
    Actor, AuditAction, ConnectionStatus, OriginationTarget, TrunkStrategy,
};
use crate::ports::ProviderError;

struct World {
    onboarding: Onboarding,
    carrier: FakeCarrier,
    store: FakeStore,
    numbers: Vec<CarrierNumberId>,
    customer: CustomerId,
    actor: Actor,
}

fn target(s: &str) -> SipTarget {
    SipTarget::parse(s).unwrap()
}

async fn world(numbers: usize, allow_override: bool) -> World {
    let (carrier, numbers) = FakeCarrier::with_numbers(numbers);
    let store = FakeStore::default();
    let mut carriers: HashMap<ProviderKind, Arc<dyn crate::ports::CarrierProvider>> =
        HashMap::new();
    carriers.insert(ProviderKind::Twilio, Arc::new(carrier.clone()));
    let ports = OnboardingPorts {
        carriers,
        sip: None,
        vault: Arc::new(FakeVault),
        integrations: Arc::new(store.clone()),
        connections: Arc::new(store.clone()),
        leases: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
    };
    let settings = OnboardingSettings {
        default_sip_target: Some(target("sip:ingress.example")),
        allow_sip_target_override: allow_override,
        lease_wait: std::time::Duration::from_millis(300),
        ..OnboardingSettings::default()
    };
    let w = World {
        onboarding: Onboarding::new(ports, settings),
        carrier,
        store,
        numbers,
        customer: CustomerId::parse("acme").unwrap(),
        actor: Actor {
            subject: "user-1".into(),
            role: "customer".into(),
        },
    };
    w.onboarding
        .save_credentials(&w.actor, &w.customer, ProviderKind::Twilio, &creds(), None)
        .await
        .unwrap();
    w
}

fn creds() -> CarrierCredentials {
    CarrierCredentials {
        account_id: Some(account()),
        key_id: Some(CredentialKeyId::parse("SK0123456789abcdef0123456789abcdef").unwrap()),
        secret: SecretString::from("s3cr3t-value"),
    }
}

impl World {
    async fn connect(&self, n: usize, req: ConnectRequest) -> Result<ConnectOutcome, Error> {
        self.onboarding
            .connect(
                &self.actor,
                &self.customer,
                ProviderKind::Twilio,
                &self.numbers[n],
                req,
                None,
            )
            .await
    }

    async fn disconnect(&self, n: usize, restore: bool) -> Result<DisconnectOutcome, Error> {
        self.onboarding
            .disconnect(
                &self.actor,
                &self.customer,
                ProviderKind::Twilio,
                &self.numbers[n],
                restore,
                None,
            )
            .await
    }
}

fn actions(steps: &[Step], step: &str) -> Vec<StepAction> {
    steps
        .iter()
        .filter(|s| s.step == step)
        .map(|s| s.action)
        .collect()
}

#[tokio::test]
async fn cold_connect_creates_everything_and_reconnect_writes_nothing() {
    let w = world(1, false).await;
    let first = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(actions(&first.steps, "trunk"), [StepAction::Created]);
    assert_eq!(
        actions(&first.steps, "originationUrl"),
        [StepAction::Created]
    );
    assert_eq!(actions(&first.steps, "attachment"), [StepAction::Created]);
    assert_eq!(first.connection.status, ConnectionStatus::Connected);
    let prev = first.connection.previous_routing.clone().unwrap();
    assert_eq!(prev.0["voiceUrl"], "https://old.example/0");
    {
        let s = w.carrier.state();
        assert_eq!(s.trunks.len(), 1);
        assert_eq!(s.urls.len(), 1);
        assert_eq!(s.urls[0].sip_url, "sip:ingress.example");
        assert_eq!(s.numbers[0].route_id.as_ref(), Some(&s.trunks[0].id));
    }
    let writes = w.carrier.writes();
    let second = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(
        w.carrier.writes(),
        writes,
        "a warm reconnect must not write"
    );
    assert_eq!(second.connection.id, first.connection.id);
    assert_eq!(second.connection.route_id, first.connection.route_id);
    assert!(
        second
            .steps
            .iter()
            .all(|s| matches!(s.action, StepAction::Reused | StepAction::Skipped)),
        "{:?}",
        second.steps
    );
    let audit = w.store.audit.lock().unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action == AuditAction::NumberConnected)
            .count(),
        2
    );
    assert!(
        audit
            .iter()
            .all(|e| !e.details.to_string().contains("s3cr3t"))
    );
}

#[tokio::test]
async fn shared_strategy_uses_one_trunk_and_dedicated_one_each() {
    let w = world(4, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    w.connect(1, ConnectRequest::default()).await.unwrap();
    assert_eq!(w.carrier.state().trunks.len(), 1);
    let ded = ConnectRequest {
        trunk_strategy: TrunkStrategy::Dedicated,
        ..Default::default()
    };
    w.connect(2, ded.clone()).await.unwrap();
    w.connect(3, ded).await.unwrap();
    let s = w.carrier.state();
    assert_eq!(s.trunks.len(), 3);
    let trunk_of = |i: usize| s.numbers[i].route_id.clone().unwrap();
    assert_eq!(trunk_of(0), trunk_of(1));
    assert_ne!(trunk_of(2), trunk_of(3));
}

#[tokio::test]
async fn foreign_trunk_is_a_conflict_unless_forced() {
    let w = world(1, false).await;
    let foreign = w.carrier.add_foreign_trunk();
    w.carrier.state().numbers[0].route_id = Some(foreign.clone());
    let err = w.connect(0, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberInUse);
    assert_eq!(
        w.carrier.writes(),
        0,
        "a refused connect must not change the carrier"
    );
    let out = w
        .connect(
            0,
            ConnectRequest {
                force: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(actions(&out.steps, "attachment"), [StepAction::Moved]);
    let s = w.carrier.state();
    assert_ne!(s.numbers[0].route_id.as_ref(), Some(&foreign));
    assert_eq!(s.numbers[0].route_id, out.connection.route_id);
}

#[tokio::test]
async fn sip_target_override_needs_permission_and_a_default_or_a_target() {
    let w = world(1, false).await;
    let req = ConnectRequest {
        sip_target: Some(target("sip:other.example")),
        ..Default::default()
    };
    assert_eq!(
        w.connect(0, req).await.unwrap_err().code,
        ErrorCode::InvalidSipTarget
    );

    let w = world(1, true).await;
    let req = ConnectRequest {
        origination_targets: vec![
            OriginationTarget {
                sip_url: target("sip:b.example"),
                priority: 20,
                weight: 5,
            },
            OriginationTarget {
                sip_url: target("sip:a.example"),
                priority: 10,
                weight: 5,
            },
        ],
        ..Default::default()
    };
    let out = w.connect(0, req).await.unwrap();
    assert_eq!(
        out.connection.sip_target,
        target("sip:a.example"),
        "lowest priority is primary"
    );
    assert_eq!(w.carrier.state().urls.len(), 2);
    // Changing the targets replaces trunkline's stale URL instead of piling up, and a new
    // weight (the default, 10) updates the kept one in place.
    let req = ConnectRequest {
        sip_target: Some(target("sip:a.example")),
        ..Default::default()
    };
    let out = w.connect(0, req).await.unwrap();
    assert_eq!(
        actions(&out.steps, "originationUrl"),
        [StepAction::Updated, StepAction::Deleted]
    );
    assert_eq!(
        w.carrier.state().urls[0].weight,
        OriginationTarget::DEFAULT_WEIGHT
    );
    assert_eq!(w.carrier.state().urls.len(), 1);
}

#[tokio::test]
async fn failure_midway_keeps_created_ids_and_a_retry_completes_without_duplicates() {
    let w = world(1, false).await;
    w.carrier.state().fail_once.insert(
        "create_route_target",
        ProviderError::new(ErrorCode::RateLimited, "slow down"),
    );
    let err = w.connect(0, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    let stored = w.store.connections.lock().unwrap()[0].clone();
    assert_eq!(stored.status, ConnectionStatus::Failed);
    assert!(stored.route_id.is_some(), "the created trunk id is kept");
    assert!(
        stored
            .last_error
            .as_deref()
            .unwrap()
            .contains("RATE_LIMITED")
    );

    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(actions(&out.steps, "trunk"), [StepAction::Reused]);
    assert_eq!(out.connection.route_id, stored.route_id);
    let s = w.carrier.state();
    assert_eq!((s.trunks.len(), s.urls.len()), (1, 1));
}

#[tokio::test]
async fn a_lost_create_answer_is_found_again_not_created_twice() {
    let w = world(1, false).await;
    w.carrier.state().lose_create_answer = true;
    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(w.carrier.state().trunks.len(), 1);
    assert_eq!(out.connection.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn a_held_lease_makes_connect_wait_then_conflict() {
    let w = world(1, false).await;
    let key = crate::model::LeaseKey::number(
        w.customer.clone(),
        ProviderKind::Twilio,
        w.numbers[0].clone(),
    );
    let held = w.onboarding.acquire_lease(&key).await.unwrap();
    let err = w.connect(0, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    w.onboarding.release_lease(&held).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
}

#[tokio::test]
async fn disconnect_restores_deletes_empty_dedicated_trunk_and_is_idempotent() {
    let w = world(1, false).await;
    w.connect(
        0,
        ConnectRequest {
            trunk_strategy: TrunkStrategy::Dedicated,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.carrier.state().numbers[0].routing.0["voiceUrl"] = "https://changed.example".into();
    let out = w.disconnect(0, true).await.unwrap();
    assert!(!out.already_disconnected);
    assert_eq!(out.connection.status, ConnectionStatus::Disconnected);
    assert_eq!(actions(&out.steps, "trunk"), [StepAction::Deleted]);
    {
        let s = w.carrier.state();
        assert!(s.trunks.is_empty());
        assert_eq!(s.numbers[0].route_id, None);
        assert_eq!(s.numbers[0].routing.0["voiceUrl"], "https://old.example/0");
    }
    let again = w.disconnect(0, true).await.unwrap();
    assert!(again.already_disconnected);
    assert!(again.steps.is_empty());
    // Reconnecting after a disconnect reuses the row.
    let re = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(re.connection.id, out.connection.id);
    assert_eq!(re.connection.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn shared_trunk_survives_disconnect() {
    let w = world(2, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    w.connect(1, ConnectRequest::default()).await.unwrap();
    w.disconnect(0, false).await.unwrap();
    let s = w.carrier.state();
    assert_eq!(s.trunks.len(), 1);
    assert_eq!(s.numbers[0].route_id, None);
    assert!(s.numbers[1].route_id.is_some());
}

#[tokio::test]
async fn disconnect_of_an_unknown_number_is_not_connected() {
    let w = world(1, false).await;
    assert_eq!(
        w.disconnect(0, false).await.unwrap_err().code,
        ErrorCode::NotConnected
    );
}

#[tokio::test]
async fn status_reports_drift_after_changes_behind_our_back() {
    let w = world(1, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    let kinds: Vec<_> = st.drifts.iter().map(|d| d.kind).collect();
    assert!(kinds.is_empty(), "{kinds:?}");
    {
        let mut s = w.carrier.state();
        s.numbers[0].route_id = None;
        s.urls[0].priority = 99;
    }
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    let kinds: Vec<_> = st.drifts.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, ["number_not_on_trunk", "origination_url_changed"]);
    w.carrier.state().trunks.clear();
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    assert!(st.drifts.iter().any(|d| d.kind == "trunk_missing"));
    // A reconnect repairs it.
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    assert!(st.drifts.is_empty(), "{:?}", st.drifts);
}

#[tokio::test]
async fn credentials_are_sealed_bound_and_replace_keeps_the_id() {
    let w = world(0, false).await;
    let first = w.store.integrations.lock().unwrap()[0].clone();
    assert!(!String::from_utf8_lossy(&first.sealed_secret.0).is_empty());
    let saved = w
        .onboarding
        .save_credentials(&w.actor, &w.customer, ProviderKind::Twilio, &creds(), None)
        .await
        .unwrap();
    assert!(saved.replaced);
    assert_eq!(saved.integration_id, first.id);
    assert!(
        w.onboarding
            .delete_credentials(&w.actor, &w.customer, ProviderKind::Twilio, None)
            .await
            .unwrap()
    );
    assert!(
        !w.onboarding
            .delete_credentials(&w.actor, &w.customer, ProviderKind::Twilio, None)
            .await
            .unwrap()
    );
    let err = w
        .onboarding
        .list_numbers(
            &w.customer,
            ProviderKind::Twilio,
            &crate::ports::NumberQuery {
                page_size: 10,
                cursor: None,
                e164: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::IntegrationNotFound);
}

#[tokio::test]
async fn status_of_a_number_neither_held_nor_connected_is_number_not_found() {
    let w = world(1, false).await;
    let unknown = CarrierNumberId::parse("PNffffffffffffffffffffffffffffffff").unwrap();
    let err = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &unknown)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberNotFound);
    // A connected number that later vanished from the account is still reported, as drift.
    w.connect(0, ConnectRequest::default()).await.unwrap();
    w.carrier.state().numbers.clear();
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    assert!(
        st.drifts.iter().any(|d| d.kind == "number_missing"),
        "{:?}",
        st.drifts
    );
}

#[tokio::test]
async fn audit_trail_is_newest_first_and_per_customer() {
    let w = world(1, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let events = w.onboarding.audit_trail(&w.customer, 10).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [AuditAction::NumberConnected, AuditAction::CredentialsSaved]
    );
    let other = CustomerId::parse("someone-else").unwrap();
    assert!(
        w.onboarding
            .audit_trail(&other, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.onboarding
            .audit_trail(&w.customer, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_lease_is_renewed_while_its_holder_works() {
    let mut w = world(1, false).await;
    // A lease that would expire three times over during the work below.
    w.onboarding.settings.lease_ttl = std::time::Duration::from_millis(90);
    let key = crate::model::LeaseKey::number(
        w.customer.clone(),
        ProviderKind::Twilio,
        w.numbers[0].clone(),
    );
    let lease = w.onboarding.acquire_lease(&key).await.unwrap();
    let work = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok::<_, Error>("done")
    };
    let rival = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        w.store
            .try_acquire_lease(&key, "rival", std::time::Duration::from_secs(1))
            .await
            .unwrap()
    };
    let (result, stolen) = futures::join!(w.onboarding.holding(&lease, work), rival);
    assert_eq!(result.unwrap(), "done");
    assert!(
        stolen.is_none(),
        "the lease expired while its holder was working"
    );
    w.onboarding.release_lease(&lease).await;
    // Released: the next one gets it at once.
    assert!(
        w.store
            .try_acquire_lease(&key, "next", std::time::Duration::from_secs(1))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_shared_trunk_is_not_repointed_under_other_numbers_unless_forced() {
    let w = world(2, true).await;
    let a = ConnectRequest {
        sip_target: Some(target("sip:a.example")),
        ..Default::default()
    };
    let b = ConnectRequest {
        sip_target: Some(target("sip:b.example")),
        ..Default::default()
    };
    w.connect(0, a.clone()).await.unwrap();
    let err = w.connect(1, b.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert!(err.message.contains("dedicated"), "{err}");
    {
        let s = w.carrier.state();
        assert_eq!(s.urls.len(), 1);
        assert_eq!(
            s.urls[0].sip_url, "sip:a.example",
            "number 0's calls still go to a"
        );
    }
    // The same targets are fine, and so is a dedicated trunk.
    w.connect(1, a).await.unwrap();
    let forced = ConnectRequest { force: true, ..b };
    w.connect(1, forced).await.unwrap();
    let s = w.carrier.state();
    assert_eq!(s.urls.len(), 1);
    assert_eq!(s.urls[0].sip_url, "sip:b.example");
}

#[tokio::test]
async fn another_customers_trunkline_trunk_counts_as_foreign() {
    let w = world(1, false).await;
    let other = CustomerId::parse("globex").unwrap();
    let name = trunk_friendly_name(TrunkStrategy::Shared, &other, &w.numbers[0]);
    let theirs = w.carrier.add_foreign_trunk();
    {
        let mut s = w.carrier.state();
        let t = s.trunks.iter_mut().find(|t| t.id == theirs).unwrap();
        t.name = Some(name);
        s.numbers[0].route_id = Some(theirs.clone());
    }
    let err = w.connect(0, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberInUse);
    assert_eq!(
        w.carrier.state().numbers[0].route_id.as_ref(),
        Some(&theirs)
    );
}

#[tokio::test]
async fn failed_verdicts_are_audited_without_the_secret() {
    let w = world(0, false).await;
    w.carrier.state().fail_once.insert(
        "verify",
        ProviderError::new(ErrorCode::AuthInvalid, "bad credentials").with_provider_code("20003"),
    );
    let err = w
        .onboarding
        .verify_credentials(&w.actor, &w.customer, ProviderKind::Twilio, &creds(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AuthInvalid);
    let audit = w.store.audit.lock().unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action, AuditAction::CredentialsVerified);
    assert_eq!(last.details["ok"], false);
    assert_eq!(last.details["errorCode"], "AUTH_INVALID");
    assert!(!last.details.to_string().contains("s3cr3t"));
}
