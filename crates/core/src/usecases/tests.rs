use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use super::fakes::{FakeCarrier, MemoryStore, account};
use super::*;
use crate::ids::{CarrierNumberId, CredentialKeyId, RouteId};
use crate::model::{
    Actor, AuditAction, ConnectionStatus, OriginationTarget, OriginationTargets, RoutingPolicy,
    RoutingPolicyParts, TrunkStrategy,
};
use crate::ports::ProviderError;

struct World {
    onboarding: Onboarding,
    carrier: FakeCarrier,
    store: MemoryStore,
    numbers: Vec<CarrierNumberId>,
    customer: CustomerId,
    actor: Actor,
}

fn target(s: &str) -> SipTarget {
    SipTarget::parse(s).unwrap()
}

async fn world(numbers: usize, allow_override: bool) -> World {
    world_with(numbers, allow_override, None).await
}

async fn world_with(
    numbers: usize,
    allow_override: bool,
    sip: Option<Arc<dyn crate::ports::SipPlatform>>,
) -> World {
    let (carrier, numbers) = FakeCarrier::with_numbers(numbers);
    let store = MemoryStore::default();
    let mut carriers: HashMap<ProviderKind, Arc<dyn crate::ports::CarrierProvider>> =
        HashMap::new();
    carriers.insert(ProviderKind::Twilio, Arc::new(carrier.clone()));
    let ports = store.onboarding_ports(carriers, sip);
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

fn actions(steps: &[Step], step: StepKind) -> Vec<StepAction> {
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
    assert_eq!(
        actions(&first.steps, StepKind::Trunk),
        [StepAction::Created]
    );
    assert_eq!(
        actions(&first.steps, StepKind::OriginationUrl),
        [StepAction::Created]
    );
    assert_eq!(
        actions(&first.steps, StepKind::Attachment),
        [StepAction::Created]
    );
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
    let audit = w.store.tables().audit.clone();
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
        trunk_strategy: Some(TrunkStrategy::Dedicated),
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
    assert_eq!(
        actions(&out.steps, StepKind::Attachment),
        [StepAction::Moved]
    );
    let s = w.carrier.state();
    assert_ne!(s.numbers[0].route_id.as_ref(), Some(&foreign));
    assert_eq!(s.numbers[0].route_id, out.connection.route_id);
}

#[tokio::test]
async fn sip_target_override_needs_permission_and_a_default_or_a_target() {
    let w = world(1, false).await;
    let req = ConnectRequest {
        targets: TargetChoice::One(target("sip:other.example")),
        ..Default::default()
    };
    assert_eq!(
        w.connect(0, req).await.unwrap_err().code,
        ErrorCode::InvalidSipTarget
    );

    let w = world(1, true).await;
    let req = ConnectRequest {
        targets: TargetChoice::Several(
            OriginationTargets::new(vec![
                OriginationTarget::new(target("sip:b.example"), 20, 5).unwrap(),
                OriginationTarget::new(target("sip:a.example"), 10, 5).unwrap(),
            ])
            .unwrap(),
        ),
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
        targets: TargetChoice::One(target("sip:a.example")),
        ..Default::default()
    };
    let out = w.connect(0, req).await.unwrap();
    assert_eq!(
        actions(&out.steps, StepKind::OriginationUrl),
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
    let stored = w.store.tables().connections[0].clone();
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
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Reused]);
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
            trunk_strategy: Some(TrunkStrategy::Dedicated),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.carrier.state().numbers[0].routing.0["voiceUrl"] = "https://changed.example".into();
    let out = w.disconnect(0, true).await.unwrap();
    assert!(!out.already_disconnected);
    assert_eq!(out.connection.status, ConnectionStatus::Disconnected);
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Deleted]);
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

/// A disconnect killed after the carrier deleted its dedicated trunk (the answer lost): the
/// retry finds the trunk gone and the record must not keep naming it.
#[tokio::test]
async fn disconnect_retried_after_the_trunk_was_deleted_forgets_the_trunk() {
    let w = world(1, false).await;
    let first = w
        .connect(
            0,
            ConnectRequest {
                trunk_strategy: Some(TrunkStrategy::Dedicated),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(first.connection.route_id.is_some());
    {
        // What the first attempt did before it died: detached, restored, deleted the trunk.
        let mut s = w.carrier.state();
        s.numbers[0].route_id = None;
        s.trunks.clear();
        s.urls.clear();
    }
    let out = w.disconnect(0, true).await.unwrap();
    assert_eq!(out.connection.status, ConnectionStatus::Disconnected);
    assert_eq!(out.connection.route_id, None);
    assert!(!out.connection.route_created);
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Skipped]);
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
    let kinds: Vec<_> = st.drifts.iter().map(|d| d.kind.as_str()).collect();
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
    let kinds: Vec<_> = st.drifts.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["number_not_on_trunk", "origination_url_changed"]);
    w.carrier.state().trunks.clear();
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    assert!(st.drifts.iter().any(|d| d.kind.as_str() == "trunk_missing"));
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
    let first = w.store.tables().integrations[0].clone();
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
        st.drifts
            .iter()
            .any(|d| d.kind.as_str() == "number_missing"),
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
        targets: TargetChoice::One(target("sip:a.example")),
        ..Default::default()
    };
    let b = ConnectRequest {
        targets: TargetChoice::One(target("sip:b.example")),
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
    let audit = w.store.tables().audit.clone();
    let last = audit.last().unwrap();
    assert_eq!(last.action, AuditAction::CredentialsVerified);
    assert_eq!(last.details["ok"], false);
    assert_eq!(last.details["errorCode"], "AUTH_INVALID");
    assert!(!last.details.to_string().contains("s3cr3t"));
}

fn strategy(s: TrunkStrategy) -> ConnectRequest {
    ConnectRequest {
        trunk_strategy: Some(s),
        ..Default::default()
    }
}

fn agent(name: &str) -> RoutingPolicy {
    RoutingPolicy::new(RoutingPolicyParts {
        agent_name: Some(name.into()),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_rerun_without_options_keeps_what_is_stored_and_a_given_option_is_a_change() {
    let w = world(1, true).await;
    let first = ConnectRequest {
        targets: TargetChoice::One(target("sip:b.example")),
        routing: Some(agent("a")),
        trunk_strategy: Some(TrunkStrategy::Dedicated),
        ..Default::default()
    };
    let made = w.connect(0, first).await.unwrap();
    assert!(made.changes.is_empty(), "{:?}", made.changes);
    let writes = w.carrier.writes();

    let rerun = w.connect(0, ConnectRequest::default()).await.unwrap();
    let c = &rerun.connection;
    assert_eq!(c.routing.agent_name(), Some("a"), "agent kept");
    assert_eq!(c.trunk_strategy, TrunkStrategy::Dedicated, "strategy kept");
    assert_eq!(c.route_id, made.connection.route_id, "same trunk");
    assert_eq!(c.sip_target, target("sip:b.example"), "targets kept");
    assert!(rerun.changes.is_empty(), "{:?}", rerun.changes);
    assert_eq!(w.carrier.writes(), writes, "a resume writes nothing");
    assert_eq!(
        actions(&rerun.steps, StepKind::VoiceConfig),
        [StepAction::Reused]
    );
    assert!(
        rerun
            .steps
            .iter()
            .all(|s| matches!(s.action, StepAction::Reused | StepAction::Skipped)),
        "{:?}",
        rerun.steps
    );

    // The same values given again are no change; a different one is, and says so.
    let same = w
        .connect(
            0,
            ConnectRequest {
                routing: Some(agent("a")),
                trunk_strategy: Some(TrunkStrategy::Dedicated),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(same.changes.is_empty(), "{:?}", same.changes);
    let changed = w
        .connect(
            0,
            ConnectRequest {
                routing: Some(agent("b")),
                targets: TargetChoice::One(target("sip:c.example")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.changes, ["routing", "originationTargets"]);
    assert_eq!(changed.connection.routing.agent_name(), Some("b"));
    assert!(actions(&changed.steps, StepKind::OriginationUrl).contains(&StepAction::Created));
    // An explicit empty routing clears the agent.
    let cleared = w
        .connect(
            0,
            ConnectRequest {
                routing: Some(RoutingPolicy::default()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.changes, ["routing"]);
    assert_eq!(cleared.connection.routing.agent_name(), None);
    assert_eq!(cleared.connection.sip_target, target("sip:c.example"));
}

/// Both wire fields at once cannot reach connect: the choice refuses them as it is made.
#[test]
fn sip_target_and_origination_targets_together_are_refused() {
    let list = OriginationTargets::one(target("sip:b.example"));
    let err =
        TargetChoice::from_fields(Some(target("sip:a.example")), Some(list.clone())).unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationFailed);
    let message = err.to_string();
    assert!(
        message.contains("sipTarget") && message.contains("originationTargets"),
        "{message}"
    );
    assert_eq!(
        TargetChoice::from_fields(None, Some(list.clone())),
        Ok(TargetChoice::Several(list))
    );
    assert_eq!(
        TargetChoice::from_fields(Some(target("sip:a.example")), None),
        Ok(TargetChoice::One(target("sip:a.example")))
    );
    assert_eq!(
        TargetChoice::from_fields(None, None),
        Ok(TargetChoice::Keep)
    );
}

#[tokio::test]
async fn a_change_to_shared_removes_the_dedicated_trunk_it_empties() {
    let w = world(1, false).await;
    let ded = w
        .connect(0, strategy(TrunkStrategy::Dedicated))
        .await
        .unwrap();
    let dedicated = ded.connection.route_id.clone().unwrap();
    let out = w.connect(0, strategy(TrunkStrategy::Shared)).await.unwrap();
    assert_eq!(out.changes, ["trunkStrategy"]);
    assert_eq!(
        actions(&out.steps, StepKind::Attachment),
        [StepAction::Moved]
    );
    let deleted: Vec<_> = out
        .steps
        .iter()
        .filter(|s| s.step == StepKind::Trunk && s.action == StepAction::Deleted)
        .filter_map(|s| s.id.clone())
        .collect();
    assert_eq!(deleted, [dedicated.to_string()]);
    let s = w.carrier.state();
    assert_eq!(s.trunks.len(), 1, "only the shared trunk is left");
    assert!(s.urls.iter().all(|u| u.route_id != dedicated));
    assert_eq!(s.numbers[0].route_id, out.connection.route_id);
}

/// A dedicated trunk an earlier version left behind when the number went `shared`.
fn leave_orphan(w: &World, n: usize) -> RouteId {
    let orphan = w.carrier.add_foreign_trunk();
    let name = trunk_friendly_name(TrunkStrategy::Dedicated, &w.customer, &w.numbers[n]);
    let mut s = w.carrier.state();
    s.trunks.iter_mut().find(|t| t.id == orphan).unwrap().name = Some(name);
    orphan
}

#[tokio::test]
async fn an_existing_orphan_dedicated_trunk_goes_with_the_next_connect_or_disconnect() {
    let w = world(2, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    w.connect(1, ConnectRequest::default()).await.unwrap();
    let orphan = leave_orphan(&w, 0);
    let st = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[0])
        .await
        .unwrap();
    let kinds: Vec<_> = st.drifts.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["orphan_trunk"]);
    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert!(
        out.steps.iter().any(|s| s.step == StepKind::Trunk
            && s.action == StepAction::Deleted
            && s.id.as_deref() == Some(orphan.as_str())),
        "{:?}",
        out.steps
    );
    assert!(w.carrier.state().trunks.iter().all(|t| t.id != orphan));

    let orphan = leave_orphan(&w, 1);
    let out = w.disconnect(1, false).await.unwrap();
    assert!(
        actions(&out.steps, StepKind::Trunk).contains(&StepAction::Deleted),
        "{:?}",
        out.steps
    );
    let s = w.carrier.state();
    assert!(s.trunks.iter().all(|t| t.id != orphan));
    assert_eq!(
        s.trunks.len(),
        1,
        "the shared trunk stays: number 0 is on it"
    );
    assert!(
        out.connection.route_id.is_some(),
        "the stored shared trunk is not the one removed"
    );
}

#[tokio::test]
async fn another_customers_live_connection_is_never_taken_even_forced() {
    let w = world(1, false).await;
    let a = w.connect(0, ConnectRequest::default()).await.unwrap();
    let c = CustomerId::parse("initech").unwrap();
    w.onboarding
        .save_credentials(&w.actor, &c, ProviderKind::Twilio, &creds(), None)
        .await
        .unwrap();
    let writes = w.carrier.writes();
    let err = w
        .onboarding
        .connect(
            &w.actor,
            &c,
            ProviderKind::Twilio,
            &w.numbers[0],
            ConnectRequest {
                force: true,
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberInUse, "{err}");
    assert_eq!(w.carrier.writes(), writes, "nothing moved at the carrier");
    assert_eq!(
        w.carrier.state().numbers[0].route_id,
        a.connection.route_id,
        "A's number stays on A's trunk"
    );
    let trunk = a.connection.route_id.unwrap().to_string();
    assert!(
        !err.message.contains(&a.connection.id.to_string()) && !err.message.contains(&trunk),
        "{err}"
    );
    assert!(err.message.contains("disconnect it"), "{err}");
    assert!(
        w.store
            .tables()
            .connections
            .iter()
            .all(|x| x.customer_id != c),
        "a refused first connect stores nothing"
    );
}

#[tokio::test]
async fn a_livekit_trunk_of_someone_else_refuses_before_the_carrier_moves() {
    let sip = super::fakes::calls::FakeSip::default();
    let w = world_with(1, false, Some(Arc::new(sip.clone()))).await;
    let e164 = w.carrier.state().numbers[0].e164.clone();
    let foreign = w.carrier.add_foreign_trunk();
    w.carrier.state().numbers[0].route_id = Some(foreign.clone());
    sip.state()
        .inbound_trunks
        .push(crate::ports::InboundTrunkInfo {
            id: crate::ids::SipTrunkId::parse("ST_theirs").unwrap(),
            name: format!("trunkline {}", crate::ids::ConnectionId::new()),
            numbers: vec![e164.to_string()],
        });
    let err = w
        .connect(
            0,
            ConnectRequest {
                force: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NumberInUse, "{err}");
    assert!(!err.message.contains("ST_theirs"), "{err}");
    assert_eq!(w.carrier.writes(), 0, "nothing moved at the carrier");
    assert_eq!(w.carrier.state().numbers[0].route_id, Some(foreign));
}

fn number_key(w: &World, n: usize) -> crate::model::LeaseKey {
    crate::model::LeaseKey::number(
        w.customer.clone(),
        ProviderKind::Twilio,
        w.numbers[n].clone(),
    )
}

async fn status_of(w: &World, n: usize) -> Result<NumberStatus, Error> {
    w.onboarding
        .status(&w.customer, ProviderKind::Twilio, &w.numbers[n])
        .await
}

fn kinds(drifts: &[Drift]) -> Vec<&'static str> {
    drifts.iter().map(|d| d.kind.as_str()).collect()
}

#[tokio::test]
async fn a_dead_holders_lease_expires_within_seconds_and_conflict_says_when_to_retry() {
    // What the server runs with: a holder that died blocks the number for seconds only.
    let defaults = OnboardingSettings::default();
    assert!(defaults.lease_ttl <= std::time::Duration::from_secs(10));
    assert!(defaults.lease_wait < defaults.lease_ttl);
    let dead = MemoryStore::default()
        .try_acquire_lease(
            &crate::model::LeaseKey::number(
                CustomerId::parse("acme").unwrap(),
                ProviderKind::Twilio,
                CarrierNumberId::parse("PN0123456789abcdef0123456789abcdef").unwrap(),
            ),
            "crashed",
            defaults.lease_ttl,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(dead.expires_at <= chrono::Utc::now() + chrono::Duration::seconds(10));

    // The same at test scale: a holder took the lease and died (it never renews it).
    let mut w = world(1, false).await;
    w.onboarding.settings.lease_ttl = std::time::Duration::from_millis(1500);
    let key = number_key(&w, 0);
    w.store
        .try_acquire_lease(&key, "crashed", w.onboarding.settings.lease_ttl)
        .await
        .unwrap()
        .unwrap();
    let err = w.connect(0, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    let after = err
        .retry_after
        .expect("a held lease answers with when to retry");
    // 1.5 s TTL, 0.3 s waited: the dead holder's lease is gone within 1.2 s, said as 2 s.
    assert_eq!(after, std::time::Duration::from_secs(2), "{err}");
    assert!(err.message.contains("retry in 2 s"), "{err}");
    tokio::time::sleep(after).await;
    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(out.connection.status, ConnectionStatus::Connected);
}

#[tokio::test]
async fn status_counts_a_half_made_connects_own_url_as_incomplete_not_foreign() {
    let w = world(1, false).await;
    w.carrier.state().fail_once.insert(
        "attach_number",
        ProviderError::new(ErrorCode::ProviderUnavailable, "Twilio is down"),
    );
    w.connect(0, ConnectRequest::default()).await.unwrap_err();
    // As after a crash between creating the URL and recording it.
    w.store.tables().connections[0].route_targets.clear();
    let ours = w.carrier.state().urls[0].id.clone();
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(kinds(&st.drifts), ["connect_incomplete"], "{:?}", st.drifts);
    assert!(
        st.drifts[0].message.contains(ours.as_str()),
        "{:?}",
        st.drifts
    );

    // Someone else's URL on the trunk is still foreign.
    {
        let mut s = w.carrier.state();
        let mut foreign = s.urls[0].clone();
        foreign.id =
            crate::ids::RouteTargetId::parse("OUffffffffffffffffffffffffffffffff").unwrap();
        foreign.sip_url = "sip:pbx.example".into();
        foreign.name = Some("pbx".into());
        s.urls.push(foreign);
    }
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(
        kinds(&st.drifts),
        ["connect_incomplete", "origination_url_unexpected"],
        "{:?}",
        st.drifts
    );
    // Connecting again takes the half-made URL over.
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(kinds(&st.drifts), ["origination_url_unexpected"]);
    assert_eq!(st.connection.unwrap().route_targets[0].id, ours);
}

#[tokio::test]
async fn status_shows_the_stored_connection_when_the_carrier_side_cannot_be_read() {
    let w = world(1, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();

    // A stored secret that does not open: the carrier sections say so, the rest is shown.
    let sealed = w.store.tables().integrations[0].sealed_secret.clone();
    w.store.tables().integrations[0].sealed_secret =
        crate::model::SealedSecret(b"garbage".to_vec());
    let st = status_of(&w, 0).await.unwrap();
    assert!(st.connection.is_some());
    for code in [
        st.credentials.failure(),
        st.number.failure(),
        st.trunk.failure(),
        st.route_targets.failure(),
    ] {
        assert_eq!(code, Some(ErrorCode::Internal));
    }
    assert!(
        st.drifts.is_empty(),
        "a read failure is not drift: {:?}",
        st.drifts
    );
    w.store.tables().integrations[0].sealed_secret = sealed;

    // The carrier failing one read fails that part only.
    w.carrier.state().fail_once.insert(
        "fetch_number",
        ProviderError::new(ErrorCode::ProviderUnavailable, "Twilio answered 500"),
    );
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(st.number.failure(), Some(ErrorCode::ProviderUnavailable));
    assert!(st.credentials.ok().is_some() && st.trunk.ok().is_some());

    // Credentials deleted: the number still takes calls, and status still shows it.
    w.onboarding
        .delete_credentials(&w.actor, &w.customer, ProviderKind::Twilio, None)
        .await
        .unwrap();
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(
        st.connection.as_ref().unwrap().status,
        ConnectionStatus::Connected
    );
    assert_eq!(st.number.failure(), Some(ErrorCode::IntegrationNotFound));
    let Section::Failed { message, .. } = &st.credentials else {
        panic!("{:?}", st.credentials)
    };
    assert!(message.contains("credentials were deleted"), "{message}");
    assert_eq!(kinds(&st.drifts), ["credentials_missing"]);
    // A number trunkline never connected has nothing to show without credentials.
    let unknown = CarrierNumberId::parse("PNffffffffffffffffffffffffffffffff").unwrap();
    let err = w
        .onboarding
        .status(&w.customer, ProviderKind::Twilio, &unknown)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::IntegrationNotFound);
}

#[tokio::test]
async fn without_livekit_status_and_connect_say_calls_cannot_reach_an_agent() {
    let w = world(1, false).await;
    assert!(status_of(&w, 0).await.unwrap().warnings.is_empty());
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let st = status_of(&w, 0).await.unwrap();
    assert_eq!(kinds(&st.warnings), ["livekit_not_configured"]);
    assert!(
        st.warnings[0]
            .message
            .contains("calls to this number cannot reach an agent"),
        "{:?}",
        st.warnings
    );
    assert!(st.drifts.is_empty(), "{:?}", st.drifts);
    assert_eq!(kinds(&w.onboarding.warnings()), ["livekit_not_configured"]);
    w.disconnect(0, false).await.unwrap();
    assert!(status_of(&w, 0).await.unwrap().warnings.is_empty());
}

#[path = "voice_url_tests.rs"]
mod voice_url;

fn shared_trunk_key(w: &World) -> String {
    let name = naming::trunk_friendly_name(TrunkStrategy::Shared, &w.customer, &w.numbers[0]);
    crate::model::LeaseKey::trunk(w.customer.clone(), ProviderKind::Twilio, &name).storage_key()
}

/// Issue 13: numbers joining a shared trunk that is already as it must be do not queue
/// behind its lease (a bulk connect of 1,000 numbers took 331 s that way).
#[tokio::test]
async fn numbers_join_a_shared_trunk_in_place_without_its_lease() {
    let w = world(6, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let trunk_key = shared_trunk_key(&w);
    assert!(
        w.store.leases_won().contains(&trunk_key),
        "creating the trunk and its URL takes the trunk's lease"
    );
    w.store.clear_journal();

    let outcomes =
        futures::future::join_all((1..6).map(|n| w.connect(n, ConnectRequest::default()))).await;
    for out in outcomes {
        let out = out.unwrap();
        assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Reused]);
        assert_eq!(
            actions(&out.steps, StepKind::OriginationUrl),
            [StepAction::Reused]
        );
        assert_eq!(out.connection.status, ConnectionStatus::Connected);
        assert!(out.connection.route_id.is_some());
        assert_eq!(out.connection.route_targets.len(), 1);
    }
    let acquired = w.store.leases_won();
    assert!(
        !acquired.contains(&trunk_key),
        "a trunk in place is joined without its lease: {acquired:?}"
    );
    assert_eq!(acquired.len(), 5, "each number's own lease, once");
    let s = w.carrier.state();
    assert_eq!(s.trunks.len(), 1);
    assert_eq!(s.urls.len(), 1);
    assert!(
        s.numbers
            .iter()
            .all(|n| n.route_id == s.numbers[0].route_id)
    );
}

/// A connect that read the shared trunk while somebody took and released its lease (and so
/// may have changed it) does not trust that read: it reads the trunk again.
#[tokio::test]
async fn a_trunk_read_while_its_lease_changed_hands_is_read_again() {
    let w = world(2, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let trunk_key = shared_trunk_key(&w);
    let reads = || w.carrier.state().calls.get("list_route_targets").copied();
    let before = reads().unwrap_or_default();
    w.store.clear_journal();

    // Another instance takes and releases the trunk's lease while this connect reads the
    // trunk's URLs, before it checks the lease again.
    // (Its token changes as a take and a release would change it; through the port, the
    // other instance's take would count among this test's leases.)
    let store = w.store.clone();
    let key = trunk_key.clone();
    w.carrier.state().meanwhile.insert(
        "list_route_targets",
        fakes::Meanwhile(Box::new(move |_| {
            if let Some(l) = store.tables().leases.get_mut(&key) {
                l.token = uuid::Uuid::new_v4();
            }
        })),
    );
    let out = w.connect(1, ConnectRequest::default()).await.unwrap();
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Reused]);
    assert_eq!(
        actions(&out.steps, StepKind::OriginationUrl),
        [StepAction::Reused]
    );
    assert_eq!(
        reads().unwrap_or_default() - before,
        2,
        "the URLs are read again after the lease changed hands"
    );
    assert!(
        !w.store.leases_won().contains(&trunk_key),
        "reading again needs no lease either"
    );
    let s = w.carrier.state();
    assert_eq!((s.trunks.len(), s.urls.len()), (1, 1));
}

/// A cold connect's read of its shared trunk (none yet) stands when it takes the trunk's lease
/// in the state it peeked before that read (never taken): it creates the trunk without a
/// second lookup, one carrier round trip fewer (docs/benchmarks.md).
#[tokio::test]
async fn a_cold_shared_trunk_connect_looks_the_trunk_up_once() {
    let w = world(1, false).await;
    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Created]);
    assert!(w.store.leases_won().contains(&shared_trunk_key(&w)));
    let s = w.carrier.state();
    assert_eq!(s.calls.get("find_routes"), Some(&1), "{:?}", s.calls);
    assert_eq!((s.trunks.len(), s.urls.len()), (1, 1));
}

/// Another instance's release of the trunk's lease, as the fake's store sees it: a new token,
/// expired now.
fn released_by_another_instance(store: &MemoryStore, key: &crate::model::LeaseKey) {
    store.tables().leases.insert(
        key.storage_key(),
        crate::model::Lease {
            key: key.clone(),
            holder: "other-instance".to_owned(),
            token: uuid::Uuid::new_v4(),
            expires_at: chrono::Utc::now(),
        },
    );
}

/// Between a cold connect's read (no trunk) and its taking the trunk's lease, another
/// instance took the lease, created the trunk and released it: the read no longer stands, and
/// the trunk is looked up again under the lease and joined, not created twice.
#[tokio::test]
async fn a_trunk_created_after_the_read_under_its_lease_is_joined_not_created_twice() {
    let w = world(1, false).await;
    let name = naming::trunk_friendly_name(TrunkStrategy::Shared, &w.customer, &w.numbers[0]);
    let key = crate::model::LeaseKey::trunk(w.customer.clone(), ProviderKind::Twilio, &name);
    let store = w.store.clone();
    w.carrier.state().after_read.insert(
        "find_routes",
        fakes::Meanwhile(Box::new(move |s| {
            s.trunks.push(crate::ports::CarrierRoute {
                id: RouteId::parse(&format!("TK{:032x}", 7777)).unwrap(),
                name: Some(name),
            });
            released_by_another_instance(&store, &key);
        })),
    );
    let out = w.connect(0, ConnectRequest::default()).await.unwrap();
    assert_eq!(actions(&out.steps, StepKind::Trunk), [StepAction::Reused]);
    let s = w.carrier.state();
    assert_eq!(s.trunks.len(), 1, "one trunk: {:?}", s.trunks);
    assert_eq!(s.calls.get("find_routes"), Some(&2), "looked up again");
    assert_eq!(s.urls.len(), 1);
}

/// The same with a lease taken before: the shared trunk lost its URL, and between a connect's
/// read of the URLs and its taking the lease, another instance put it back under the lease.
/// The connect reads the URLs again and reuses that one instead of making a second.
#[tokio::test]
async fn urls_changed_after_the_read_under_the_trunks_lease_are_read_again() {
    let w = world(2, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let name = naming::trunk_friendly_name(TrunkStrategy::Shared, &w.customer, &w.numbers[0]);
    let key = crate::model::LeaseKey::trunk(w.customer.clone(), ProviderKind::Twilio, &name);
    let url = w.carrier.state().urls.pop().unwrap();
    let store = w.store.clone();
    w.carrier.state().after_read.insert(
        "list_route_targets",
        fakes::Meanwhile(Box::new(move |s| {
            s.urls.push(url);
            released_by_another_instance(&store, &key);
        })),
    );
    let out = w.connect(1, ConnectRequest::default()).await.unwrap();
    assert_eq!(
        actions(&out.steps, StepKind::OriginationUrl),
        [StepAction::Reused]
    );
    assert_eq!(w.carrier.state().urls.len(), 1, "no second URL");
}

/// While another instance holds the trunk's lease (changing the trunk), a connect waits for
/// it rather than read a trunk in mid-change; past the lease wait it is a `CONFLICT` with a
/// retry time, and nothing was written.
#[tokio::test]
async fn a_connect_waits_for_the_holder_of_its_trunks_lease() {
    use crate::ports::LeaseStore;
    let w = world(2, false).await;
    w.connect(0, ConnectRequest::default()).await.unwrap();
    let name = naming::trunk_friendly_name(TrunkStrategy::Shared, &w.customer, &w.numbers[0]);
    let key = crate::model::LeaseKey::trunk(w.customer.clone(), ProviderKind::Twilio, &name);
    let held = w
        .store
        .try_acquire_lease(&key, "other-instance", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let writes = w.carrier.writes();
    let err = w.connect(1, ConnectRequest::default()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(err.retry_after.is_some());
    assert_eq!(w.carrier.writes(), writes, "nothing changed at the carrier");

    // Released a little later: the waiting connect goes on.
    let store = w.store.clone();
    let release = async move {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        store.release_lease(&held).await.unwrap();
    };
    let (out, ()) = futures::join!(w.connect(1, ConnectRequest::default()), release);
    assert_eq!(out.unwrap().connection.status, ConnectionStatus::Connected);
}
