//! Bulk jobs over the fakes and the memory store: results per number, takeover after a holder died
//! (finished numbers are not done again), cancel, validation, isolation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::fakes::{FakeCarrier, MemoryStore, account};
use super::*;
use crate::ids::{CarrierNumberId, CredentialKeyId, JobId};
use crate::model::{Actor, TrunkStrategy};
use crate::ports::{
    ItemOutcome, ItemResult, JobItem, JobKind, JobStatus, JobStore as _, ProviderError,
};

struct World {
    jobs: Jobs,
    store: MemoryStore,
    carrier: FakeCarrier,
    onboarding: Arc<Onboarding>,
    numbers: Vec<CarrierNumberId>,
    customer: CustomerId,
    actor: Actor,
}

fn settings(instance: &str) -> JobSettings {
    JobSettings {
        instance_id: instance.to_owned(),
        claim_ttl: Duration::from_millis(300),
        parallelism: 3,
        max_attempts: 3,
        retry_base: Duration::from_millis(1),
    }
}

async fn world(numbers: usize) -> World {
    let (carrier, numbers) = FakeCarrier::with_numbers(numbers);
    let store = MemoryStore::default();
    let mut carriers: HashMap<ProviderKind, Arc<dyn crate::ports::CarrierProvider>> =
        HashMap::new();
    carriers.insert(ProviderKind::Twilio, Arc::new(carrier.clone()));
    let ports = store.onboarding_ports(carriers, None);
    let onboarding = Arc::new(Onboarding::new(
        ports,
        OnboardingSettings {
            default_sip_target: Some(SipTarget::parse("sip:ingress.example").unwrap()),
            ..OnboardingSettings::default()
        },
    ));
    let customer = CustomerId::parse("acme").unwrap();
    let actor = Actor {
        subject: "user-1".into(),
        role: "customer".into(),
    };
    let creds = CarrierCredentials {
        account_id: Some(account()),
        key_id: Some(CredentialKeyId::parse("SK0123456789abcdef0123456789abcdef").unwrap()),
        secret: SecretString::from("s3cr3t-value"),
    };
    onboarding
        .save_credentials(&actor, &customer, ProviderKind::Twilio, &creds, None)
        .await
        .unwrap();
    World {
        jobs: Jobs::new(onboarding.clone(), Arc::new(store.clone()), settings("a")),
        store,
        carrier,
        onboarding,
        numbers,
        customer,
        actor,
    }
}

impl World {
    async fn submit(&self, numbers: Vec<CarrierNumberId>) -> Result<crate::ports::BulkJob, Error> {
        let req = ConnectRequest {
            trunk_strategy: Some(TrunkStrategy::Dedicated),
            ..ConnectRequest::default()
        };
        self.jobs
            .submit_connect(
                &self.actor,
                &self.customer,
                ProviderKind::Twilio,
                numbers,
                &req,
                Some("rq-1"),
            )
            .await
    }

    async fn items(&self, id: JobId) -> Vec<JobItem> {
        self.jobs
            .get(&self.customer, id, 0, 1000)
            .await
            .unwrap()
            .items
    }

    fn attached(&self) -> usize {
        self.carrier
            .state()
            .numbers
            .iter()
            .filter(|n| n.route_id.is_some())
            .count()
    }
}

fn outcomes(items: &[JobItem]) -> Vec<ItemOutcome> {
    items.iter().map(|i| i.outcome).collect()
}

#[tokio::test]
async fn a_job_connects_every_number_and_a_second_one_reuses() {
    let w = world(5).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.counts.pending, 5);
    assert!(w.jobs.run_next().await.unwrap());
    assert!(!w.jobs.run_next().await.unwrap(), "nothing left to claim");
    let done = w.jobs.get(&w.customer, job.id, 0, 1000).await.unwrap();
    assert_eq!(done.job.status, JobStatus::Completed);
    assert_eq!(done.job.counts.connected, 5);
    assert_eq!(outcomes(&done.items), vec![ItemOutcome::Connected; 5]);
    assert_eq!(w.attached(), 5);
    let writes = w.carrier.writes();

    let again = w.submit(w.numbers.clone()).await.unwrap();
    w.jobs.run_next().await.unwrap();
    assert_eq!(
        outcomes(&w.items(again.id).await),
        vec![ItemOutcome::Reused; 5]
    );
    assert_eq!(
        w.carrier.writes(),
        writes,
        "a job of connected numbers writes nothing"
    );
}

#[tokio::test]
async fn failures_are_recorded_per_number_and_the_others_go_on() {
    let w = world(3).await;
    let missing = CarrierNumberId::parse(&format!("PN{:032x}", 999)).unwrap();
    let mut numbers = w.numbers.clone();
    numbers.insert(1, missing);
    let job = w.submit(numbers).await.unwrap();
    w.jobs.run_next().await.unwrap();
    let items = w.items(job.id).await;
    assert_eq!(
        outcomes(&items),
        vec![
            ItemOutcome::Connected,
            ItemOutcome::Failed,
            ItemOutcome::Connected,
            ItemOutcome::Connected
        ]
    );
    assert_eq!(items[1].error_code.as_deref(), Some("NUMBER_NOT_FOUND"));
    assert!(items[1].message.is_some());
}

#[tokio::test]
async fn a_transient_failure_is_tried_again_not_recorded() {
    let w = world(2).await;
    w.carrier.state().fail_once.insert(
        "attach_number",
        ProviderError::new(crate::error::ErrorCode::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(5)),
    );
    let job = w.submit(w.numbers.clone()).await.unwrap();
    w.jobs.run_next().await.unwrap();
    assert_eq!(
        outcomes(&w.items(job.id).await),
        vec![ItemOutcome::Connected; 2]
    );
}

#[tokio::test]
async fn a_dead_holders_job_is_finished_by_another_without_redoing_numbers() {
    let w = world(6).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    // Instance A claims it, connects the first three numbers and dies before the rest.
    let claim = w
        .store
        .claim_job("a", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    for (i, n) in w.numbers.iter().take(3).enumerate() {
        w.onboarding
            .connect(
                &w.actor,
                &w.customer,
                ProviderKind::Twilio,
                n,
                ConnectRequest {
                    trunk_strategy: Some(TrunkStrategy::Dedicated),
                    ..ConnectRequest::default()
                },
                None,
            )
            .await
            .unwrap();
        let result = ItemResult {
            position: u32::try_from(i).unwrap(),
            outcome: ItemOutcome::Connected,
            error_code: None,
            message: None,
        };
        assert!(
            w.store
                .record_job_item(job.id, claim.token, &result)
                .await
                .unwrap()
        );
    }
    let attaches = || {
        w.carrier
            .state()
            .calls
            .get("attach_number")
            .copied()
            .unwrap_or(0)
    };
    let number_reads = || {
        w.carrier
            .state()
            .calls
            .get("fetch_number")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(attaches(), 3);
    let reads_before = number_reads();

    // B cannot claim it while A's claim lives, then takes it over.
    let b = Jobs::new(
        w.onboarding.clone(),
        Arc::new(w.store.clone()),
        settings("b"),
    );
    assert!(!b.run_next().await.unwrap());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(b.run_next().await.unwrap());
    let done = w.jobs.get(&w.customer, job.id, 0, 1000).await.unwrap();
    assert_eq!(done.job.status, JobStatus::Completed);
    assert_eq!(outcomes(&done.items), vec![ItemOutcome::Connected; 6]);
    assert_eq!(
        attaches(),
        6,
        "the three numbers A finished are not attached again"
    );
    assert_eq!(
        number_reads() - reads_before,
        3,
        "B only read the numbers it did"
    );
    // A, back from the dead, can record nothing.
    let late = ItemResult {
        position: 4,
        outcome: ItemOutcome::Failed,
        error_code: Some("X".into()),
        message: None,
    };
    assert!(
        !w.store
            .record_job_item(job.id, claim.token, &late)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cancel_before_any_instance_claims_leaves_every_number_untouched() {
    let w = world(4).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    let cancelled = w.jobs.cancel(&w.customer, job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.counts.cancelled, 4);
    assert!(!w.jobs.run_next().await.unwrap());
    assert_eq!(w.carrier.writes(), 0);
    assert_eq!(w.attached(), 0);
}

#[tokio::test]
async fn cancel_while_running_stops_starting_numbers() {
    let w = world(6).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    let claim = w.jobs.claim_next().await.unwrap().unwrap();
    // The cancel is asked before the holder starts; it sees it with the claim.
    w.jobs.cancel(&w.customer, job.id).await.unwrap();
    let claim = crate::ports::JobClaim {
        job: crate::ports::BulkJob {
            cancel_requested: true,
            ..claim.job
        },
        token: claim.token,
    };
    w.jobs.run_claimed(claim).await;
    let done = w.jobs.get(&w.customer, job.id, 0, 1000).await.unwrap();
    assert_eq!(done.job.status, JobStatus::Cancelled);
    assert_eq!(outcomes(&done.items), vec![ItemOutcome::Cancelled; 6]);
    assert_eq!(w.attached(), 0);
}

#[tokio::test]
async fn submissions_are_checked_before_anything_is_stored() {
    let w = world(2).await;
    let code = |r: Result<crate::ports::BulkJob, Error>| r.unwrap_err().code;
    assert_eq!(
        code(w.submit(vec![]).await),
        crate::error::ErrorCode::ValidationFailed
    );
    let twice = vec![w.numbers[0].clone(), w.numbers[0].clone()];
    let e = w.submit(twice).await.unwrap_err();
    assert!(e.message.contains("numberIds[1]"), "{}", e.message);
    let many: Vec<CarrierNumberId> = (0..=MAX_JOB_NUMBERS)
        .map(|i| CarrierNumberId::parse(&format!("PN{i:032x}")).unwrap())
        .collect();
    assert_eq!(
        code(w.submit(many).await),
        crate::error::ErrorCode::ValidationFailed
    );
    let other = CustomerId::parse("globex").unwrap();
    let e = w
        .jobs
        .submit_disconnect(
            &w.actor,
            &other,
            ProviderKind::Twilio,
            w.numbers.clone(),
            false,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, crate::error::ErrorCode::IntegrationNotFound);
    assert!(w.store.tables().jobs.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn another_customers_job_is_not_found() {
    let w = world(1).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    let other = CustomerId::parse("globex").unwrap();
    let e = w.jobs.get(&other, job.id, 0, 10).await.unwrap_err();
    assert_eq!(e.code, crate::error::ErrorCode::NotFound);
    assert_eq!(
        w.jobs.cancel(&other, job.id).await.unwrap_err().code,
        crate::error::ErrorCode::NotFound
    );
    assert!(w.jobs.list(&other, 10, None).await.unwrap().is_empty());
    let mine = w.jobs.list(&w.customer, 10, None).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].kind, JobKind::Connect);
}

/// The options are stored as the request's wire fields, as they always were, and read back
/// through the checks a request passes.
#[test]
fn job_options_are_stored_as_the_wire_fields_and_read_back_checked() {
    let sip = |raw: &str| SipTarget::parse(raw).unwrap();
    let one = JobOptions::connect(&ConnectRequest {
        targets: TargetChoice::One(sip("sip:a.example")),
        trunk_strategy: Some(TrunkStrategy::Dedicated),
        ..ConnectRequest::default()
    });
    let json = serde_json::to_value(&one).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "sipTarget": "sip:a.example",
            "trunkStrategy": "dedicated",
            "force": false,
            "restoreVoiceConfig": false,
        })
    );
    assert_eq!(serde_json::from_value::<JobOptions>(json).unwrap(), one);
    let back_to_default = JobOptions::connect(&ConnectRequest {
        targets: TargetChoice::Several(crate::model::OriginationTargets::default()),
        ..ConnectRequest::default()
    });
    let json = serde_json::to_value(&back_to_default).unwrap();
    assert_eq!(json["originationTargets"], serde_json::json!([]));
    assert_eq!(
        serde_json::from_value::<JobOptions>(json).unwrap(),
        back_to_default
    );
    assert_eq!(
        serde_json::from_value::<JobOptions>(serde_json::json!({})).unwrap(),
        JobOptions::default()
    );

    for refused in [
        serde_json::json!({"sipTarget": "sip:a.example", "originationTargets": []}),
        serde_json::json!({"routing": {"dispatchMode": "rule"}}),
        serde_json::json!({"originationTargets": [
            {"sipUrl": "sip:a.example", "priority": 1, "weight": 1},
            {"sipUrl": "sip:a.example", "priority": 2, "weight": 1},
        ]}),
    ] {
        assert!(
            serde_json::from_value::<JobOptions>(refused.clone()).is_err(),
            "{refused}"
        );
    }
}

/// A job whose stored options fail the checks fails its numbers; it does not connect them
/// with other options than were asked for.
#[tokio::test]
async fn a_job_whose_stored_options_fail_the_checks_fails_its_numbers() {
    let w = world(2).await;
    let job = w.submit(w.numbers.clone()).await.unwrap();
    let claim = w.jobs.claim_next().await.unwrap().unwrap();
    // The job as a row whose options fail the checks reads back.
    let claim = crate::ports::JobClaim {
        job: crate::ports::BulkJob {
            options: serde_json::json!({"routing": {"dispatchMode": "rule"}}),
            ..claim.job
        },
        token: claim.token,
    };
    w.jobs.run_claimed(claim).await;
    let items = w.items(job.id).await;
    assert_eq!(outcomes(&items), vec![ItemOutcome::Failed; 2]);
    assert_eq!(items[0].error_code.as_deref(), Some("INTERNAL"));
    assert_eq!(w.attached(), 0);
    assert_eq!(w.carrier.writes(), 0);
}
