//! The `JobStore` contract: jobs and their numbers round-trip, a customer sees only their
//! own, exactly one of many concurrent claimers wins a job, an expired claim is taken over
//! and the old holder can no longer write, a number's result is recorded once, and cancel
//! leaves numbers not started `cancelled`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::sync::Barrier;
use trunkline_core::model::Actor;
use trunkline_core::ports::{
    BulkJob, ClaimState, ItemOutcome, ItemResult, JobCounts, JobKind, JobStatus, Store,
};
use trunkline_core::{CarrierNumberId, CustomerId, JobId, ProviderKind};

use crate::fixtures::{customer, now_micros, number_id};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
const PAST_SHORT: Duration = Duration::from_millis(700);
const RACERS: usize = 16;

fn job(customer: &CustomerId, n: u32) -> BulkJob {
    let now = now_micros();
    let mut counts = JobCounts::default();
    counts.add(ItemOutcome::Pending, n);
    BulkJob {
        id: JobId::new(),
        customer_id: customer.clone(),
        provider: ProviderKind::Twilio,
        kind: JobKind::Connect,
        actor: Actor {
            subject: "user-1".into(),
            role: "customer".into(),
        },
        request_id: Some("rq-1".into()),
        options: serde_json::json!({"trunkStrategy": "dedicated", "force": false}),
        status: JobStatus::Queued,
        cancel_requested: false,
        holder: None,
        counts,
        created_at: now,
        updated_at: now,
        finished_at: None,
    }
}

async fn create(
    store: &Arc<dyn Store>,
    customer: &CustomerId,
    n: u32,
) -> (BulkJob, Vec<CarrierNumberId>) {
    let j = job(customer, n);
    let numbers: Vec<CarrierNumberId> = (0..n).map(|_| number_id()).collect();
    store.create_job(&j, &numbers).await.expect("create job");
    (j, numbers)
}

fn result(position: u32, outcome: ItemOutcome) -> ItemResult {
    ItemResult {
        position,
        outcome,
        error_code: (outcome == ItemOutcome::Failed).then(|| "NUMBER_NOT_FOUND".to_owned()),
        message: (outcome == ItemOutcome::Failed).then(|| "not in the account".to_owned()),
    }
}

pub async fn job_round_trips_and_is_the_customers_own(store: Arc<dyn Store>) {
    let acme = customer("acme");
    let globex = customer("globex");
    let (first, numbers) = create(&store, &acme, 3).await;
    let (second, _) = create(&store, &acme, 1).await;
    let (third, _) = create(&store, &acme, 2).await;
    create(&store, &globex, 1).await;

    let got = store
        .get_job(&acme, first.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got, first, "every field round-trips");
    assert_eq!(got.counts.pending, 3);
    assert!(store.get_job(&globex, first.id).await.unwrap().is_none());
    assert!(store.get_job(&acme, JobId::new()).await.unwrap().is_none());

    let items = store.job_items(first.id, 0, 100).await.unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| i.number_id.clone())
            .collect::<Vec<_>>(),
        numbers
    );
    assert!(
        items
            .iter()
            .all(|i| i.outcome == ItemOutcome::Pending && i.finished_at.is_none())
    );
    assert_eq!(
        items.iter().map(|i| i.position).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let tail = store.job_items(first.id, 1, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].number_id, numbers[1]);

    // Newest first, paged by the last id seen.
    let page = store.list_jobs(&acme, 2, None).await.unwrap();
    assert_eq!(
        page.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![third.id, second.id]
    );
    let rest = store.list_jobs(&acme, 2, Some(second.id)).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert_eq!(store.list_jobs(&globex, 10, None).await.unwrap().len(), 1);
}

pub async fn job_claim_has_one_winner_and_an_expired_claim_is_taken_over(store: Arc<dyn Store>) {
    let acme = customer("acme");
    let (j, _) = create(&store, &acme, 2).await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let claims = join_all((0..RACERS).map(|i| {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            store.claim_job(&format!("racer-{i}"), SHORT).await.unwrap()
        })
    }))
    .await;
    let won: Vec<_> = claims.into_iter().filter_map(|c| c.unwrap()).collect();
    assert_eq!(won.len(), 1, "exactly one claimer wins");
    let first = &won[0];
    assert_eq!(first.job.id, j.id);
    assert_eq!(first.job.status, JobStatus::Running);
    assert!(
        first
            .job
            .holder
            .as_deref()
            .is_some_and(|h| h.starts_with("racer-"))
    );
    assert!(
        store.claim_job("late", SHORT).await.unwrap().is_none(),
        "held"
    );
    assert_eq!(
        store
            .renew_job_claim(j.id, first.token, SHORT)
            .await
            .unwrap(),
        ClaimState::Held {
            cancel_requested: false
        }
    );

    // The holder dies: its claim runs out and another takes the job over.
    tokio::time::sleep(PAST_SHORT).await;
    let taken = store
        .claim_job("successor", LONG)
        .await
        .unwrap()
        .expect("taken over");
    assert_eq!(taken.job.id, j.id);
    assert_ne!(taken.token, first.token);
    assert_eq!(taken.job.holder.as_deref(), Some("successor"));
    // The old holder can neither renew nor record.
    assert_eq!(
        store
            .renew_job_claim(j.id, first.token, LONG)
            .await
            .unwrap(),
        ClaimState::Lost
    );
    assert!(
        !store
            .record_job_item(j.id, first.token, &result(0, ItemOutcome::Connected))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_job(j.id, first.token, JobStatus::Completed)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_job_item(j.id, taken.token, &result(0, ItemOutcome::Connected))
            .await
            .unwrap()
    );
}

pub async fn job_results_are_recorded_once_and_a_finished_job_is_never_claimed(
    store: Arc<dyn Store>,
) {
    let acme = customer("acme");
    let (j, _) = create(&store, &acme, 3).await;
    let claim = store.claim_job("a", LONG).await.unwrap().expect("claimed");
    assert!(
        store
            .record_job_item(j.id, claim.token, &result(0, ItemOutcome::Connected))
            .await
            .unwrap()
    );
    assert!(
        store
            .record_job_item(j.id, claim.token, &result(2, ItemOutcome::Failed))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_job_item(j.id, claim.token, &result(0, ItemOutcome::Reused))
            .await
            .unwrap(),
        "a number with a result keeps it"
    );
    let items = store.job_items(j.id, 0, 10).await.unwrap();
    assert_eq!(items[0].outcome, ItemOutcome::Connected);
    assert!(items[0].finished_at.is_some());
    assert_eq!(items[2].outcome, ItemOutcome::Failed);
    assert_eq!(items[2].error_code.as_deref(), Some("NUMBER_NOT_FOUND"));
    assert_eq!(items[2].message.as_deref(), Some("not in the account"));
    let got = store.get_job(&acme, j.id).await.unwrap().unwrap();
    assert_eq!(
        (got.counts.connected, got.counts.failed, got.counts.pending),
        (1, 1, 1)
    );

    assert!(
        store
            .record_job_item(j.id, claim.token, &result(1, ItemOutcome::Reused))
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_job(j.id, claim.token, JobStatus::Completed)
            .await
            .unwrap()
    );
    let done = store.get_job(&acme, j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.finished_at.is_some());
    assert_eq!(done.holder, None);
    assert!(store.claim_job("b", LONG).await.unwrap().is_none());
    // Cancelling a finished job changes nothing.
    let after = store.cancel_job(&acme, j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Completed);
    assert!(!after.cancel_requested);
}

pub async fn job_cancel_queued_at_once_running_through_its_holder(store: Arc<dyn Store>) {
    let acme = customer("acme");
    let globex = customer("globex");
    // Queued: cancelled at once, every number with it.
    let (queued, _) = create(&store, &acme, 2).await;
    assert!(
        store
            .cancel_job(&globex, queued.id)
            .await
            .unwrap()
            .is_none()
    );
    let c = store.cancel_job(&acme, queued.id).await.unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Cancelled);
    assert!(c.cancel_requested && c.finished_at.is_some());
    assert_eq!(c.counts.cancelled, 2);
    assert!(store.claim_job("a", LONG).await.unwrap().is_none());

    // Running: marked; the holder sees it on renewal and finishes it cancelled.
    let (running, _) = create(&store, &acme, 3).await;
    let claim = store.claim_job("a", LONG).await.unwrap().expect("claimed");
    assert!(
        store
            .record_job_item(running.id, claim.token, &result(0, ItemOutcome::Connected))
            .await
            .unwrap()
    );
    let c = store.cancel_job(&acme, running.id).await.unwrap().unwrap();
    assert_eq!(c.status, JobStatus::Running);
    assert!(c.cancel_requested);
    assert_eq!(
        store
            .renew_job_claim(running.id, claim.token, LONG)
            .await
            .unwrap(),
        ClaimState::Held {
            cancel_requested: true
        }
    );
    assert!(
        store
            .finish_job(running.id, claim.token, JobStatus::Cancelled)
            .await
            .unwrap()
    );
    let done = store.get_job(&acme, running.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Cancelled);
    assert_eq!(
        (
            done.counts.connected,
            done.counts.cancelled,
            done.counts.pending
        ),
        (1, 2, 0)
    );
}
